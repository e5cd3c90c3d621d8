//! The memcheck tracer: launches a program under ptrace with the memcheck shim preloaded,
//! follows its threads, forks and execs, drains the shim's shared-memory records while it runs,
//! rebuilds each process's heap, explains bad frees, and stops each process at its exit to
//! take the list of blocks still allocated. Symbolisation and reporting are the caller's.

mod error;
mod hash;
mod heap;
mod launch;
mod leak;
mod live;
mod maps;
mod mem;
mod profile;
mod ptrace;
mod replay;
mod shm;
mod signals;
mod trace;

pub use replay::replay;
pub use trace::{decode_all, encode_all, TraceFileError};

pub use signals::{die_by_signal, ignore_terminal_signals};

pub use error::TraceError;
pub use heap::{AddrDescription, BlockInfo, ErrorKind, Freelist, HeapError, HeapTotals, LiveBlock};
pub use leak::{ClassifiedBlock, Heuristic, Heuristics, LeakKind};
pub use maps::{Mapping, Module};
pub use memcheck_wire::{Family, Func, KEEP_ALLOC, KEEP_FREE, KEEP_THEN_FREE};
pub use profile::{Sample, SiteStats};

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// The program (a path, already resolved) and its arguments (argv[0] included).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The shim to preload.
    pub shim: PathBuf,
    /// Frames to capture per stack.
    pub depth: u32,
    /// Which stacks to keep: `memcheck_wire::KEEP_*` bits (Valgrind's --keep-stacktraces; a
    /// stack not kept has id 0).
    pub keep: u32,
    /// Fill allocated (not calloc'd) and freed blocks with these bytes (Valgrind's
    /// --malloc-fill and --free-fill).
    pub malloc_fill: Option<u8>,
    pub free_fill: Option<u8>,
    /// Follow programs started by exec (Valgrind's --trace-children).
    pub trace_children: bool,
    /// Freed blocks held back from reuse.
    pub freelist: Freelist,
    /// Interior-pointer heuristics of the leak scan (Valgrind's --leak-check-heuristics).
    pub heuristics: Heuristics,
    /// Keep the allocation profile (per-site totals, peak, heap and RSS over time).
    pub profile: bool,
    /// Live numbers of every traced process, refreshed every 100 ms (for --metrics-addr).
    pub metrics: Option<std::sync::Arc<Metrics>>,
    /// Record a trace of the run to this file (for `memcheck report`).
    pub record: Option<PathBuf>,
}

/// Live numbers of the traced processes, for a metrics endpoint to read while the program runs.
#[derive(Debug, Default)]
pub struct Metrics {
    pub processes: std::sync::Mutex<Vec<ProcessMetrics>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessMetrics {
    pub pid: u32,
    /// The program's name (its command's first word, without directories).
    pub program: String,
    pub heap_bytes: u64,
    pub heap_blocks: u64,
    pub peak_heap_bytes: u64,
    pub allocations: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub errors: u64,
    pub rss_bytes: u64,
}

/// The allocation profile of a process.
#[derive(Clone, Debug, Default)]
pub struct ProfileReport {
    /// Per allocation site: (stack id, allocator function, totals).
    pub sites: Vec<(u32, Func, SiteStats)>,
    pub peak_heap_bytes: u64,
    /// When the peak was reached, in ms since the program started.
    pub peak_ms: u64,
    pub peak_rss_bytes: u64,
    pub temporary: u64,
    /// Heap in use and RSS over time, at least every 10 ms.
    pub samples: Vec<Sample>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// One traced process image: from its start (or the exec that started it) to its exit.
#[derive(Clone, Debug)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    /// The executable and command line, as /proc showed them.
    pub exe: PathBuf,
    pub cmdline: Vec<String>,
    pub exit: Option<ExitStatus>,
    /// The image was started by exec (the program memcheck ran, or one it exec'd), not by a
    /// fork that did not exec.
    pub execed: bool,
    /// Bad frees and mismatched deallocations, one per distinct (kind, stack), in first-seen order.
    pub errors: Vec<HeapError>,
    /// Blocks still allocated when the process exited, classified by the reachability scan.
    pub live: Vec<ClassifiedBlock>,
    pub totals: HeapTotals,
    /// Interned stacks: id -> return addresses (innermost first).
    pub stacks: HashMap<u32, Vec<u64>>,
    /// Every module seen mapped in the process (dlclose'd ones included).
    pub modules: Vec<Module>,
    /// Records lost because the tracer could not keep up (always 0: writers wait instead).
    pub dropped: u64,
    /// With `Options::profile`.
    pub profile: Option<ProfileReport>,
}

/// The outcome of a traced run.
#[derive(Debug)]
pub struct RunResult {
    /// Reports in the order the processes exited.
    pub processes: Vec<ProcessReport>,
    /// How the program memcheck started ended.
    pub status: ExitStatus,
    pub root_pid: u32,
    /// How the records travelled: read, writer stalls on full rings, calls not recorded.
    pub transport: TransportStats,
}

pub use shm::Stats as TransportStats;

/// Runs the program to completion under the tracer.
pub fn run(opts: &Options) -> Result<RunResult, TraceError> {
    let trace = match &opts.record {
        Some(p) => {
            let mut w = trace::TraceWriter::create(p).map_err(TraceError::Record)?;
            w.write(&trace::Event::Settings {
                freelist: opts.freelist,
            })
            .map_err(TraceError::Record)?;
            Some(w)
        }
        None => None,
    };
    let shm = shm::Shm::create(opts)?;
    let child = launch::spawn(opts, &shm)?;
    ptrace::Tracer::new(opts, shm, child, trace).run()
}
