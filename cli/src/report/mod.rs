//! The findings of a run, symbolised and matched against the suppressions, in one model that
//! every output format renders: the Valgrind-style text report (`text`), Valgrind's XML
//! (`xml`), JSON (`json`) and SARIF (`sarif`).

pub mod html;
pub mod json;
pub mod profile;
pub mod sarif;
pub mod supp;
pub mod text;
pub mod xml;

use crate::args::Config;
use crate::symbolize::Symbolizer;
pub use crate::symbolize::{Frame, FrameRef};
use memcheck_tracer::{
    AddrDescription, ErrorKind, ExitStatus, LeakKind, Module, ProcessReport, RunResult,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use supp::Suppression;

/// Frames captured and shown per stack for the profile outputs, unless --num-callers asks
/// for more: flamegraphs need whole stacks.
pub const PROFILE_DEPTH: u32 = 96;

pub fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

pub fn hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&format!("{v:#x}")),
        None => s.serialize_none(),
    }
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Exit {
        match s {
            ExitStatus::Code(c) => Exit::Code(c),
            ExitStatus::Signal(s) => Exit::Signal(s),
        }
    }
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub command: Vec<String>,
    pub exit: Exit,
    pub processes: Vec<Process>,
    /// How the records reached the tracer: every record is counted; a writer that found its
    /// ring full waited (stalls, and for how long); calls not recorded (tracer gone) are dropped.
    pub transport: Transport,
}

#[derive(Serialize, Debug, Clone, Copy)]
pub struct Transport {
    pub records: u64,
    pub stalls: u64,
    pub stall_ms: u64,
    pub dropped: u64,
}

#[derive(Serialize, Debug)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub exit: Option<Exit>,
    /// Started by exec (false: a forked child that did not exec).
    pub execed: bool,
    /// Errors not suppressed, in the order they first happened.
    pub errors: Vec<Error>,
    /// Loss records not suppressed, largest first.
    pub leaks: Vec<LossRecord>,
    pub heap_summary: HeapSummary,
    pub leak_summary: LeakSummary,
    pub error_summary: ErrorSummary,
    /// How often each suppression was used.
    pub suppcounts: Vec<SuppCount>,
    /// With --profile, --flamegraph or --folded.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "json::profile"
    )]
    pub profile: Option<ProfileOut>,
}

/// The allocation profile of a process.
#[derive(Serialize, Debug, Clone)]
pub struct ProfileOut {
    pub peak_heap_bytes: u64,
    /// Milliseconds after the start when the heap peaked.
    pub peak_ms: u64,
    pub peak_rss_bytes: u64,
    pub allocations: u64,
    pub temporary: u64,
    pub bytes_allocated: u64,
    pub leaked_bytes: u64,
    /// One per allocation site (stack and allocator), most bytes allocated first. In JSON,
    /// with their frames in one table (see `json::profile`).
    #[serde(skip)]
    pub sites: Vec<SiteOut>,
    /// Heap in use and RSS over time.
    pub samples: Vec<SampleOut>,
}

#[derive(Serialize, Debug, Clone)]
pub struct SiteOut {
    pub allocations: u64,
    pub bytes: u64,
    pub temporary: u64,
    pub peak_bytes: u64,
    pub leaked_bytes: u64,
    #[serde(skip)]
    pub stack: Vec<FrameRef>,
}

#[derive(Serialize, Debug, Clone, Copy)]
pub struct SampleOut {
    pub ms: u64,
    pub heap_bytes: u64,
    pub rss_bytes: u64,
}

#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct ErrorSummary {
    /// Errors (occurrences), leak errors of --errors-for-leak-kinds included (with
    /// --leak-check=full), and the distinct contexts they come from.
    pub errors: u64,
    pub contexts: u64,
    pub suppressed_errors: u64,
    pub suppressed_contexts: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct SuppCount {
    pub name: String,
    pub count: u64,
}

#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct HeapSummary {
    pub in_use_bytes: u64,
    pub in_use_blocks: u64,
    pub allocs: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
}

#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct Amount {
    pub bytes: u64,
    pub blocks: u64,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct LeakSummary {
    pub definitely_lost: Amount,
    pub indirectly_lost: Amount,
    pub possibly_lost: Amount,
    pub still_reachable: Amount,
    /// Of the still reachable blocks, those reached through an interior pointer that a leak
    /// heuristic accepted, by heuristic.
    pub reachable_via_heuristic: BTreeMap<String, Amount>,
    pub unclassified: Amount,
    pub suppressed: Amount,
}

#[derive(Serialize, Debug, Clone)]
pub struct Error {
    /// Valgrind's `unique`: the error's number in this process (errors and loss records).
    pub unique: u64,
    /// Valgrind's error kind: InvalidFree or MismatchedFree.
    pub kind: &'static str,
    /// Valgrind's headline for the kind.
    pub what: &'static str,
    /// The deallocation function that was called.
    pub function: &'static str,
    pub count: u64,
    pub tid: u32,
    #[serde(serialize_with = "hex")]
    pub address: u64,
    pub stack: Vec<FrameRef>,
    pub address_description: AddressDescription,
    /// With --gen-suppressions: the suppression that matches this error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct AddressDescription {
    /// live, freed, stack, global or unknown.
    pub kind: &'static str,
    /// Valgrind's sentence, e.g. "Address 0x4a4b040 is 0 bytes inside a block of size 10 free'd".
    pub text: String,
    #[serde(serialize_with = "hex_opt")]
    pub block_address: Option<u64>,
    pub block_size: Option<u64>,
    pub offset: Option<u64>,
    pub alloc_stack: Vec<FrameRef>,
    pub free_stack: Vec<FrameRef>,
}

#[derive(Serialize, Debug, Clone)]
pub struct LossRecord {
    pub unique: u64,
    /// Leak_DefinitelyLost, Leak_IndirectlyLost, Leak_PossiblyLost, Leak_StillReachable or
    /// Leak_Unclassified (the process died before it could be scanned).
    pub kind: &'static str,
    /// 1-based position, largest first.
    pub record: usize,
    pub records: usize,
    /// Bytes of the blocks themselves.
    pub bytes: u64,
    /// Bytes indirectly lost through them (definitely lost records only).
    pub indirect_bytes: u64,
    pub blocks: u64,
    pub indirect_blocks: u64,
    pub stack: Vec<FrameRef>,
    /// With --gen-suppressions: the suppression that matches this loss record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<String>,
}

pub fn leak_kind_name(k: LeakKind) -> &'static str {
    match k {
        LeakKind::DefinitelyLost => "Leak_DefinitelyLost",
        LeakKind::IndirectlyLost => "Leak_IndirectlyLost",
        LeakKind::PossiblyLost => "Leak_PossiblyLost",
        LeakKind::StillReachable => "Leak_StillReachable",
        LeakKind::Unclassified => "Leak_Unclassified",
    }
}

/// Builds stacks of frames for one process.
struct Stacks<'a> {
    sym: &'a mut Symbolizer,
    proc: &'a ProcessReport,
    shim: &'a Path,
    num_callers: usize,
    cache: HashMap<(u32, u32), Vec<FrameRef>>,
    /// The frames (inlined ones first) of each return address symbolised so far: a stack
    /// shares them with every other stack through that address.
    by_ip: HashMap<u64, Vec<FrameRef>>,
    /// The first frame of every stack, the interposed function, by function.
    entries: HashMap<u32, FrameRef>,
    /// The one frame of a stack not kept (`0x0: ???`).
    none: FrameRef,
    /// Function names as demangled (--demangle=yes) or as linked.
    demangle: bool,
    /// Frames below main shown as they are (--show-below-main=yes).
    below_main: bool,
}

/// What a stack shows for the frame below main, as Valgrind does.
const BELOW_MAIN: &str = "(below main)";

/// Valgrind stops a stack at the frame below main.
fn below_main(f: &Frame) -> bool {
    matches!(
        f.function.as_deref(),
        Some("__libc_start_call_main" | "__libc_start_main" | "__libc_start_main_impl" | "_start")
    )
}

impl Stacks<'_> {
    /// The stack of a call to `func` (its interposer first), up to --num-callers addresses.
    fn get(&mut self, id: u32, func: memcheck_tracer::Func) -> Vec<FrameRef> {
        self.get_deep(id, func, self.num_callers)
    }

    /// The stack with up to `limit` addresses (the profile shows the whole captured stack).
    fn get_deep(&mut self, id: u32, func: memcheck_tracer::Func, limit: usize) -> Vec<FrameRef> {
        if id == 0 {
            // Not kept (--keep-stacktraces): Valgrind's null stack.
            return vec![self.none.clone()];
        }
        let key = (id, func as u32 | (limit as u32) << 16);
        if let Some(v) = self.cache.get(&key) {
            return v.clone();
        }
        let modules: &[Module] = &self.proc.modules;
        let entry = self
            .sym
            .export_address(modules, self.shim, func.symbol())
            .unwrap_or(0);
        let (shim, demangle, below_main_shown) = (self.shim, self.demangle, self.below_main);
        let entry = self.entries.entry(func as u32).or_insert_with(|| {
            FrameRef::new(Frame {
                ip: entry,
                function: Some(if demangle {
                    func.display_name().to_string()
                } else {
                    func.symbol().to_string()
                }),
                mangled: Some(func.symbol().to_string()),
                object: Some(shim.display().to_string()),
                ..Default::default()
            })
        });
        let mut out = vec![entry.clone()];
        let empty = Vec::new();
        let ips = self.proc.stacks.get(&id).unwrap_or(&empty);
        for &ip in ips.iter().take(limit.saturating_sub(1)) {
            let frames = self.by_ip.entry(ip).or_insert_with(|| {
                self.sym
                    .frames(modules, ip, true)
                    .into_iter()
                    .map(|f| {
                        FrameRef::new(if below_main(&f) && !below_main_shown {
                            Frame {
                                function: Some(BELOW_MAIN.to_string()),
                                ..f
                            }
                        } else if !demangle && !f.inlined {
                            Frame {
                                function: f.mangled.clone().or(f.function),
                                ..f
                            }
                        } else {
                            f
                        })
                    })
                    .collect()
            });
            if below_main_shown {
                out.extend(frames.iter().cloned());
                continue;
            }
            // Like Valgrind (--show-below-main=no), the stack ends at main, or at the first
            // frame below it when main is not on the stack.
            let at_main = frames.iter().any(|f| f.function.as_deref() == Some("main"));
            let below = frames
                .iter()
                .any(|f| f.function.as_deref() == Some(BELOW_MAIN));
            if below && out.iter().any(|f| f.function.as_deref() == Some("main")) {
                break;
            }
            out.extend(frames.iter().cloned());
            if at_main || below {
                break;
            }
        }
        self.cache.insert(key, out.clone());
        out
    }
}

pub fn build(
    cfg: &Config,
    run: &RunResult,
    sym: &mut Symbolizer,
    shim: &Path,
    supps: &[Suppression],
) -> Report {
    let processes = run
        .processes
        .iter()
        .map(|p| build_process(cfg, p, sym, shim, supps))
        .collect();
    Report {
        tool: "memcheck",
        version: env!("CARGO_PKG_VERSION"),
        command: cfg
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exit: run.status.into(),
        processes,
        transport: Transport {
            records: run.transport.records,
            stalls: run.transport.stalls,
            stall_ms: run.transport.stall_ns / 1_000_000,
            dropped: run.transport.dropped,
        },
    }
}

impl AddressDescription {
    /// The block the address is in, and where it was allocated.
    fn set_block(&mut self, b: &memcheck_tracer::BlockInfo, stacks: &mut Stacks<'_>) {
        self.block_address = Some(b.addr);
        self.block_size = Some(b.size);
        self.offset = Some(b.offset);
        self.alloc_stack = stacks.get(b.alloc_stack, b.func);
    }
}

fn describe(d: &AddrDescription, addr: u64, stacks: &mut Stacks<'_>) -> AddressDescription {
    let mut out = AddressDescription {
        kind: "unknown",
        text: format!("Address {addr:#x} is not stack'd, malloc'd or (recently) free'd"),
        block_address: None,
        block_size: None,
        offset: None,
        alloc_stack: Vec::new(),
        free_stack: Vec::new(),
    };
    match d {
        AddrDescription::Live(b) => {
            out.kind = "live";
            out.text = format!(
                "Address {addr:#x} is {} bytes inside a block of size {} alloc'd",
                b.offset,
                fmt_num(b.size)
            );
            out.set_block(b, stacks);
        }
        AddrDescription::Freed {
            block: b,
            free_stack,
            free_func,
        } => {
            out.kind = "freed";
            out.text = format!(
                "Address {addr:#x} is {} bytes inside a block of size {} free'd",
                b.offset,
                fmt_num(b.size)
            );
            out.set_block(b, stacks);
            out.free_stack = stacks.get(*free_stack, *free_func);
            // As Valgrind: a freed block's allocation stack is shown only if it was kept.
            if b.alloc_stack == 0 {
                out.alloc_stack.clear();
            }
        }
        AddrDescription::Stack { thread } => {
            out.kind = "stack";
            out.text = format!("Address {addr:#x} is on thread {thread}'s stack");
        }
        AddrDescription::InModule { path, file_offset } => {
            out.kind = "global";
            out.text = match stacks.sym.data_symbol(path, *file_offset) {
                Some((name, off)) => {
                    format!("Address {addr:#x} is {off} bytes inside data symbol \"{name}\"")
                }
                None => format!(
                    "Address {addr:#x} is in a rw- mapped file {} segment",
                    path.display()
                ),
            };
        }
        AddrDescription::Unknown => {}
    }
    out
}

fn build_process(
    cfg: &Config,
    p: &ProcessReport,
    sym: &mut Symbolizer,
    shim: &Path,
    supps: &[Suppression],
) -> Process {
    // The shim as the process mapped it (a replayed trace may come from another machine).
    let own_shim = p
        .modules
        .iter()
        .map(|m| m.path.as_path())
        .find(|m| m.file_name().is_some_and(|n| n == "libmemcheck_shim.so"));
    let mut stacks = Stacks {
        sym,
        proc: p,
        shim: own_shim.unwrap_or(shim),
        num_callers: cfg.num_callers as usize,
        cache: HashMap::new(),
        by_ip: HashMap::new(),
        entries: HashMap::new(),
        none: FrameRef::default(),
        demangle: cfg.demangle,
        below_main: cfg.show_below_main,
    };
    let mut summary = ErrorSummary::default();
    let mut suppcounts: Vec<SuppCount> = Vec::new();
    let mut count_supp = |name: &str, n: u64| match suppcounts.iter_mut().find(|c| c.name == name) {
        Some(c) => c.count += n,
        None => suppcounts.push(SuppCount {
            name: name.to_string(),
            count: n,
        }),
    };
    let mut unique = 0u64;
    let mut errors = Vec::new();
    for e in &p.errors {
        if e.kind == ErrorKind::MismatchedFree && !cfg.show_mismatched_frees {
            continue;
        }
        let (kind, what) = match e.kind {
            ErrorKind::InvalidFree => (
                "InvalidFree",
                "Invalid free() / delete / delete[] / realloc()",
            ),
            ErrorKind::MismatchedFree => {
                ("MismatchedFree", "Mismatched free() / delete / delete []")
            }
        };
        let stack = stacks.get(e.stack, e.func);
        if let Some(s) = supp::find(supps, kind, &stack) {
            summary.suppressed_errors += e.count;
            summary.suppressed_contexts += 1;
            count_supp(&s.name, e.count);
            continue;
        }
        summary.errors += e.count;
        summary.contexts += 1;
        errors.push(Error {
            unique,
            kind,
            what,
            function: e.func.display_name(),
            count: e.count,
            tid: if e.tid == p.pid { 1 } else { e.tid },
            address: e.addr,
            suppression: cfg.gen_suppressions.then(|| supp::generate(kind, &stack)),
            stack,
            address_description: describe(&e.what, e.addr, &mut stacks),
        });
        unique += 1;
    }

    // Group the blocks into loss records by kind and allocation stack (the first frames of it
    // with --leak-resolution=low or med).
    // First by (kind, stack id): cheap, and each distinct stack is symbolised once.
    #[derive(Default)]
    struct Agg {
        bytes: u64,
        blocks: u64,
        indirect_bytes: u64,
        indirect_blocks: u64,
    }
    let mut by_id: HashMap<(LeakKind, u32, memcheck_tracer::Func), Agg> = HashMap::new();
    let mut leak_summary = LeakSummary::default();
    for c in &p.live {
        let a = by_id
            .entry((c.kind, c.block.stack, c.block.func))
            .or_default();
        a.bytes += c.block.size;
        a.blocks += 1;
        a.indirect_bytes += c.indirect_bytes;
        a.indirect_blocks += c.indirect_blocks;
        if let Some(h) = c.heuristic {
            let a = leak_summary
                .reachable_via_heuristic
                .entry(h.name().to_string())
                .or_default();
            a.bytes += c.block.size;
            a.blocks += 1;
        }
    }
    // Loss records group blocks by kind and allocation stack as captured, as Valgrind's do (to
    // --num-callers addresses, the first --leak-resolution of them). Only the stacks of
    // records some output shows are symbolised: loading a library's debug information for a
    // stack nobody sees took most of the time of a short run (libc's, compressed, 50 ms).
    let depth = (cfg.num_callers as usize).saturating_sub(1);
    let mut groups: HashMap<(LeakKind, Vec<u64>), (LossRecord, u32, memcheck_tracer::Func)> =
        HashMap::new();
    for ((kind, id, func), a) in by_id {
        // Blocks without a kept stack make one record per kind, as in Valgrind.
        let mut key = if id == 0 { vec![] } else { vec![func as u64] };
        if let Some(ips) = p.stacks.get(&id) {
            key.extend(ips.iter().take(depth));
        }
        key.truncate(cfg.leak_resolution.unwrap_or(usize::MAX));
        let (r, first, first_func) = groups.entry((kind, key)).or_insert_with(|| {
            let r = LossRecord {
                unique: 0,
                kind: leak_kind_name(kind),
                record: 0,
                records: 0,
                bytes: 0,
                indirect_bytes: 0,
                blocks: 0,
                indirect_blocks: 0,
                stack: Vec::new(),
                suppression: None,
            };
            (r, id, func)
        });
        // The stack shown is the group's of lowest id, whatever the order of `by_id`.
        if id < *first {
            (*first, *first_func) = (id, func);
        }
        r.bytes += a.bytes;
        r.blocks += a.blocks;
        r.indirect_bytes += a.indirect_bytes;
        r.indirect_blocks += a.indirect_blocks;
    }
    let mut leaks: Vec<_> = groups.into_iter().collect();
    leaks.sort_by(|((_, ka), (a, _, _)), ((_, kb), (b, _, _))| {
        (b.bytes + b.indirect_bytes)
            .cmp(&(a.bytes + a.indirect_bytes))
            .then(b.blocks.cmp(&a.blocks))
            .then(a.kind.cmp(b.kind))
            .then_with(|| ka.cmp(kb))
    });
    let every_stack = !supps.is_empty()
        || cfg.gen_suppressions
        || cfg.json.is_some()
        || cfg.sarif.is_some()
        || cfg.html.is_some();
    let n = leaks.len();
    let mut kept = Vec::new();
    for (i, (_, (mut l, id, func))) in leaks.into_iter().enumerate() {
        l.record = i + 1;
        l.records = n;
        if every_stack || (cfg.full() && cfg.show_leak_kinds.contains(l.kind)) {
            l.stack = stacks.get(id, func);
        }
        if let Some(s) = supp::find(supps, l.kind, &l.stack) {
            leak_summary.suppressed.bytes += l.bytes;
            leak_summary.suppressed.blocks += l.blocks;
            count_supp(&s.name, 1);
            if cfg.full() && cfg.errors_for_leak_kinds.contains(l.kind) {
                summary.suppressed_errors += 1;
                summary.suppressed_contexts += 1;
            }
            continue;
        }
        let amount = match l.kind {
            "Leak_DefinitelyLost" => &mut leak_summary.definitely_lost,
            "Leak_IndirectlyLost" => &mut leak_summary.indirectly_lost,
            "Leak_PossiblyLost" => &mut leak_summary.possibly_lost,
            "Leak_StillReachable" => &mut leak_summary.still_reachable,
            _ => &mut leak_summary.unclassified,
        };
        amount.bytes += l.bytes;
        amount.blocks += l.blocks;
        if cfg.full() && cfg.errors_for_leak_kinds.contains(l.kind) {
            summary.errors += 1;
            summary.contexts += 1;
        }
        l.unique = unique;
        unique += 1;
        if cfg.gen_suppressions {
            l.suppression = Some(supp::generate(l.kind, &l.stack));
        }
        kept.push(l);
    }
    Process {
        pid: p.pid,
        ppid: p.ppid,
        exe: p.exe.display().to_string(),
        cmdline: p.cmdline.clone(),
        exit: p.exit.map(Exit::from),
        execed: p.execed,
        errors,
        leaks: kept,
        heap_summary: HeapSummary {
            in_use_bytes: p.totals.in_use_bytes,
            in_use_blocks: p.totals.in_use_blocks,
            allocs: p.totals.allocs,
            frees: p.totals.frees,
            bytes_allocated: p.totals.bytes_allocated,
        },
        leak_summary,
        error_summary: summary,
        suppcounts,
        profile: p
            .profile
            .as_ref()
            .filter(|_| cfg.wants_profile())
            .map(|pr| {
                let mut sites: Vec<SiteOut> = pr
                    .sites
                    .iter()
                    .map(|(id, func, st)| SiteOut {
                        allocations: st.allocations,
                        bytes: st.bytes,
                        temporary: st.temporary,
                        peak_bytes: st.peak_bytes,
                        leaked_bytes: st.leaked_bytes,
                        stack: stacks.get_deep(*id, *func, PROFILE_DEPTH as usize),
                    })
                    .collect();
                sites.sort_by(|a, b| {
                    b.bytes
                        .cmp(&a.bytes)
                        .then(b.allocations.cmp(&a.allocations))
                });
                ProfileOut {
                    peak_heap_bytes: pr.peak_heap_bytes,
                    peak_ms: pr.peak_ms,
                    peak_rss_bytes: pr.peak_rss_bytes,
                    allocations: sites.iter().map(|s| s.allocations).sum(),
                    temporary: pr.temporary,
                    bytes_allocated: sites.iter().map(|s| s.bytes).sum(),
                    leaked_bytes: sites.iter().map(|s| s.leaked_bytes).sum(),
                    sites,
                    samples: pr
                        .samples
                        .iter()
                        .map(|s| SampleOut {
                            ms: s.ms,
                            heap_bytes: s.heap_bytes,
                            rss_bytes: s.rss_bytes,
                        })
                        .collect(),
                }
            }),
    }
}

/// A number with thousands separators, as Valgrind prints them.
pub fn fmt_num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fmt_num;

    #[test]
    fn thousands() {
        assert_eq!(fmt_num(0), "0");
        assert_eq!(fmt_num(999), "999");
        assert_eq!(fmt_num(1024), "1,024");
        assert_eq!(fmt_num(12345678), "12,345,678");
    }
}
