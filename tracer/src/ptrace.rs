//! The event loop: every ptrace stop decoded once (`nix`'s `WaitStatus`) and handled here,
//! interleaved with draining the shared-memory rings, so one thread owns all tracer state.
//!
//! New threads and forked children start stopped; a new child is resumed only once its
//! parent's fork event was handled, so that its heap (a copy of the parent's) exists before
//! its first record.

use crate::hash::{AddrHasher, AddrMap};
use crate::heap::{AddrDescription, Heap, LiveBlock};
use crate::leak::{self, ClassifiedBlock, LeakKind};
use crate::maps::{self, ModuleMap};
use crate::profile;
use crate::shm::{Phase, Record, Shm};
use crate::trace::{Event, TraceWriter};
use crate::{ExitStatus, Options, ProcessReport, ProfileReport, RunResult, TraceError};
use memcheck_wire::Func;
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SYS_EXIT_GROUP: u64 = 231;

/// One traced process image.
pub(crate) struct Proc {
    pid: u32,
    ppid: u32,
    pub(crate) heap: Heap,
    stacks: HashMap<u32, Vec<u64>>,
    /// The shim sends a stack again under a new id when its intern table grows (see
    /// shim/src/stacks.rs): each later id of the same frames maps to the first.
    alias: AddrMap<u32, u32>,
    /// A hash of each stack's frames -> its first id.
    by_frames: AddrMap<u64, u32>,
    modules: ModuleMap,
    threads: HashSet<u32>,
    exe: PathBuf,
    cmdline: Vec<String>,
    /// The exit report was taken (at PTRACE_EVENT_EXIT).
    report: Option<ProcessReport>,
    /// The first exec of the root process has happened.
    started: bool,
    /// This image was started by exec.
    execed: bool,
    /// A process running now (false: replayed from a trace, where /proc says nothing of it).
    pub(crate) live: bool,
}

impl Proc {
    pub(crate) fn new(pid: u32, ppid: u32, heap: Heap) -> Proc {
        Proc {
            pid,
            ppid,
            heap,
            stacks: HashMap::new(),
            alias: AddrMap::default(),
            by_frames: AddrMap::default(),
            modules: ModuleMap::default(),
            threads: HashSet::from([pid]),
            exe: PathBuf::new(),
            cmdline: Vec::new(),
            report: None,
            started: false,
            execed: false,
            live: true,
        }
    }

    pub(crate) fn identity_event(&self) -> Event {
        Event::Proc {
            pid: self.pid,
            ppid: self.ppid,
            execed: self.execed,
            exe: self.exe.clone(),
            cmdline: self.cmdline.clone(),
        }
    }

    pub(crate) fn set_identity(&mut self, execed: bool, exe: PathBuf, cmdline: Vec<String>) {
        self.execed = execed;
        self.exe = exe;
        self.cmdline = cmdline;
    }

    fn read_identity(&mut self) {
        self.exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).unwrap_or_default();
        self.cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
    }

    /// Starts loading what applying `rec` will look up.
    #[inline]
    pub(crate) fn prefetch(&self, rec: &Record<'_>) {
        match rec {
            Record::Alloc(a) => self.heap.prefetch(a.addr),
            Record::Free(f) => self.heap.prefetch(f.addr),
            _ => {}
        }
    }

    /// Applies one record; `trace` gets it (and what the tracer looked up for it) when the run
    /// is recorded.
    pub(crate) fn apply(&mut self, tid: u32, rec: Record<'_>, trace: &mut Option<TraceWriter>) {
        if let Some(t) = trace.as_mut() {
            if let Some(ev) = trace_event(self.pid, tid, &rec) {
                let _ = t.write(&ev);
            }
        }
        match rec {
            Record::ThreadStart => {}
            Record::Stack { id, frames } => {
                let frames: Vec<u64> = frames
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                self.add_stack(id, frames);
            }
            Record::Alloc(a) => {
                let func = Func::from_u32(a.func).unwrap_or(Func::Malloc);
                self.heap.alloc(
                    LiveBlock {
                        addr: a.addr,
                        size: a.size,
                        stack: self.stack(a.stack),
                        func,
                        seq: a.seq,
                    },
                    tid,
                );
            }
            Record::Free(f) => {
                let func = Func::from_u32(f.func).unwrap_or(Func::Free);
                let by = crate::heap::Dealloc {
                    func,
                    stack: self.stack(f.stack),
                    tid,
                    flags: f.flags,
                };
                self.heap.free(f.addr, f.seq, f.alloc_key, by);
            }
            Record::BadFree(f) => {
                let func = Func::from_u32(f.func).unwrap_or(Func::Free);
                let before = self.heap.errors().len();
                self.heap
                    .bad_free(f.addr, f.size, func, self.stack(f.stack), tid);
                if self.live && self.heap.errors().len() > before {
                    let e = self.heap.errors_mut().last_mut().expect("just added");
                    if matches!(e.what, AddrDescription::Unknown) {
                        e.what = describe_mapping(self.pid, f.addr);
                        if let Some(t) = trace.as_mut() {
                            let _ = t.write(&Event::Describe {
                                pid: self.pid,
                                addr: f.addr,
                                what: e.what.clone(),
                            });
                        }
                    }
                }
            }
            Record::DlClose => {
                if self.live {
                    self.modules.refresh(self.pid)
                }
            }
        }
    }

    /// The process a fork of this one starts as (pid `child`).
    pub(crate) fn fork_copy(&self, child: u32) -> Proc {
        let mut c = Proc::new(child, self.pid, self.heap.fork_child());
        c.stacks = self.stacks.clone();
        c.alias = self.alias.clone();
        c.by_frames = self.by_frames.clone();
        c.modules = self.modules.clone();
        c.exe = self.exe.clone();
        c.cmdline = self.cmdline.clone();
        c.started = true;
        c.live = self.live;
        c
    }

    pub(crate) fn add_stack(&mut self, id: u32, frames: Vec<u64>) {
        if self.live && frames.iter().any(|&f| !self.modules.knows(f)) {
            self.modules.refresh(self.pid);
        }
        let mut hasher = AddrHasher::default();
        hasher.write_u64(frames.len() as u64);
        frames.iter().for_each(|&f| hasher.write_u64(f));
        let h = hasher.finish();
        match self.by_frames.get(&h) {
            Some(&first) if self.stacks.get(&first) == Some(&frames) => {
                // The frames stay under this id too: a record of another thread may have used
                // it before this definition arrived (it found the id in the shim's table
                // before the defining thread sent the frames), and so was not mapped.
                self.alias.insert(id, first);
            }
            Some(_) => {}
            None => {
                self.by_frames.insert(h, id);
            }
        }
        self.stacks.insert(id, frames);
    }

    /// The first id of the stack the shim sent as `id`.
    #[inline]
    fn stack(&self, id: u32) -> u32 {
        if self.alias.is_empty() {
            id
        } else {
            self.alias.get(&id).copied().unwrap_or(id)
        }
    }

    /// What a replayed trace says the tracer found for the last bad free.
    pub(crate) fn set_description(&mut self, what: AddrDescription) {
        if let Some(e) = self.heap.errors_mut().last_mut() {
            if matches!(e.what, AddrDescription::Unknown) {
                e.what = what;
            }
        }
    }

    /// The report with blocks classified as a trace recorded them.
    pub(crate) fn report_replayed(
        &mut self,
        exit: Option<ExitStatus>,
        classified: Option<Vec<crate::trace::Classified>>,
        modules: Vec<crate::Module>,
    ) -> ProcessReport {
        self.modules.modules = modules;
        let mut r = self.report(exit, None);
        if let Some(c) = classified {
            let by_addr: crate::hash::AddrMap<u64, crate::trace::Classified> =
                c.into_iter().map(|x| (x.0, x)).collect();
            for b in &mut r.live {
                if let Some(&(_, kind, heuristic, ib, ic)) = by_addr.get(&b.block.addr) {
                    b.kind = kind;
                    b.heuristic = heuristic;
                    b.indirect_bytes = ib;
                    b.indirect_blocks = ic;
                }
            }
        }
        r
    }

    /// The report, with blocks classified by a scan of the stopped process (`snap`), or left
    /// unclassified when the process could not be stopped before it died.
    pub(crate) fn report(
        &mut self,
        exit: Option<ExitStatus>,
        snap: Option<&leak::Snapshot<'_>>,
    ) -> ProcessReport {
        let started = std::time::Instant::now();
        let live = self.heap.live_blocks();
        let live = match snap {
            Some(s) => {
                let c = leak::classify(&live, s);
                if std::env::var_os("MEMCHECK_DEBUG_TIMING").is_some() {
                    eprintln!(
                        "memcheck: leak scan of {} blocks in pid {}: {:?}",
                        live.len(),
                        self.pid,
                        started.elapsed()
                    );
                }
                c
            }
            None => live
                .into_iter()
                .map(|block| ClassifiedBlock {
                    block,
                    kind: LeakKind::Unclassified,
                    heuristic: None,
                    indirect_bytes: 0,
                    indirect_blocks: 0,
                })
                .collect(),
        };
        ProcessReport {
            pid: self.pid,
            ppid: self.ppid,
            exe: self.exe.clone(),
            cmdline: self.cmdline.clone(),
            exit,
            execed: self.execed,
            errors: self.heap.errors().to_vec(),
            live,
            totals: self.heap.totals(),
            stacks: self.stacks.clone(),
            modules: self.modules.modules.clone(),
            dropped: 0,
            profile: self.heap.profile.as_ref().map(|p| {
                let sites = p.finish(
                    self.heap
                        .live_blocks()
                        .iter()
                        .map(|b| (b.stack, b.func, b.size)),
                );
                ProfileReport {
                    sites: sites.into_iter().map(|((s, f), st)| (s, f, st)).collect(),
                    peak_heap_bytes: p.peak_heap_bytes,
                    peak_ms: p.peak_ms,
                    peak_rss_bytes: p.peak_rss_bytes,
                    temporary: p.temporary,
                    samples: p.samples.clone(),
                }
            }),
        }
    }
}

/// The trace event of a ring record (None for those the tracer only uses live).
fn trace_event(pid: u32, tid: u32, rec: &Record<'_>) -> Option<Event> {
    Some(match rec {
        Record::Stack { id, frames } => Event::Stack {
            pid,
            tid,
            id: *id,
            frames: frames
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        },
        Record::Alloc(a) => Event::Alloc { pid, tid, rec: *a },
        Record::Free(f) => Event::Free {
            pid,
            tid,
            bad: false,
            rec: *f,
        },
        Record::BadFree(f) => Event::Free {
            pid,
            tid,
            bad: true,
            rec: *f,
        },
        Record::ThreadStart | Record::DlClose => return None,
    })
}

/// Says where an address that is no heap block lies: a thread's stack or a module's data.
fn describe_mapping(pid: u32, addr: u64) -> AddrDescription {
    for m in maps::read(pid) {
        if m.start <= addr && addr < m.end {
            if m.path == "[stack]" {
                return AddrDescription::Stack { thread: 1 };
            }
            if m.path.starts_with('/') {
                return AddrDescription::InModule {
                    path: m.path.into(),
                    file_offset: addr - m.start + m.offset,
                };
            }
        }
    }
    AddrDescription::Unknown
}

/// A new process heap, with a profile if asked for.
fn new_heap(opts: &Options, now_ms: u64) -> Heap {
    Heap::with_profile(opts.freelist, opts.profile, now_ms)
}

pub struct Tracer<'a> {
    opts: &'a Options,
    shm: Shm,
    procs: crate::hash::AddrMap<u32, Proc>,
    tid_pid: HashMap<u32, u32>,
    /// New tasks seen stopped before their creation event.
    stopped_new: HashSet<u32>,
    /// New tasks whose creation event was seen before their first stop.
    expected: HashSet<u32>,
    done: Vec<ProcessReport>,
    root: u32,
    root_status: Option<ExitStatus>,
    started: Instant,
    last_sample: Instant,
    last_metrics: Instant,
    /// The trace being recorded (--record), and the clock value last written to it.
    trace: Option<TraceWriter>,
    last_ms: u64,
}

fn status_of(raw: i32) -> ExitStatus {
    if libc::WIFSIGNALED(raw) {
        ExitStatus::Signal(libc::WTERMSIG(raw))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(raw))
    }
}

impl<'a> Tracer<'a> {
    pub fn new(opts: &'a Options, shm: Shm, root: u32, trace: Option<TraceWriter>) -> Tracer<'a> {
        let started = Instant::now();
        let mut procs = crate::hash::AddrMap::default();
        procs.insert(root, Proc::new(root, std::process::id(), new_heap(opts, 0)));
        Tracer {
            opts,
            shm,
            procs,
            tid_pid: HashMap::from([(root, root)]),
            stopped_new: HashSet::new(),
            expected: HashSet::new(),
            done: Vec::new(),
            root,
            root_status: None,
            started,
            last_sample: started,
            last_metrics: started,
            trace,
            last_ms: 0,
        }
    }

    fn write(&mut self, e: &Event) {
        if let Some(t) = self.trace.as_mut() {
            let _ = t.write(e);
        }
    }

    /// Advances the clock the profiles use (and the trace records).
    fn tick(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        if ms == self.last_ms {
            return;
        }
        self.last_ms = ms;
        self.write(&Event::Time(ms));
        if self.opts.profile {
            for pr in self.procs.values_mut() {
                if let Some(p) = pr.heap.profile.as_mut() {
                    p.now_ms = ms;
                }
            }
        }
    }

    fn drain(&mut self) -> usize {
        self.tick();
        let (shm, procs, opts, trace, ms) = (
            &self.shm,
            &mut self.procs,
            self.opts,
            &mut self.trace,
            self.last_ms,
        );
        let n = shm.drain(|pid, tid, rec, phase| match phase {
            Phase::Soon => {
                if let Some(p) = procs.get(&pid) {
                    p.prefetch(&rec);
                }
            }
            Phase::Apply => procs
                .entry(pid)
                .or_insert_with(|| Proc::new(pid, 0, new_heap(opts, ms)))
                .apply(tid, rec, trace),
        });
        if self.opts.profile {
            self.sample();
        }
        if self.opts.metrics.is_some() && self.last_metrics.elapsed() >= Duration::from_millis(100)
        {
            self.publish_metrics();
        }
        n
    }

    /// Refreshes the live numbers a metrics endpoint serves.
    fn publish_metrics(&mut self) {
        self.last_metrics = Instant::now();
        let Some(m) = &self.opts.metrics else { return };
        let mut procs: Vec<crate::ProcessMetrics> = self
            .procs
            .values()
            .filter(|p| p.report.is_none())
            .map(|p| crate::ProcessMetrics {
                pid: p.pid,
                program: p
                    .cmdline
                    .first()
                    .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
                    .unwrap_or_default(),
                heap_bytes: p.heap.live_bytes,
                heap_blocks: p.heap.live_blocks,
                peak_heap_bytes: p.heap.peak_bytes,
                allocations: p.heap.allocs,
                frees: p.heap.frees,
                bytes_allocated: p.heap.bytes_allocated,
                errors: p.heap.errors().iter().map(|e| e.count).sum(),
                rss_bytes: profile::rss_bytes(p.pid),
            })
            .collect();
        procs.sort_by_key(|p| p.pid);
        if let Ok(mut g) = m.processes.lock() {
            *g = procs;
        }
    }

    /// Samples heap and RSS of every process: every 10 ms, and soon after a new heap peak.
    fn sample(&mut self) {
        let since = self.last_sample.elapsed();
        if since < Duration::from_millis(1) {
            return;
        }
        let due = since >= Duration::from_millis(10);
        let mut sampled = false;
        for pr in self.procs.values_mut() {
            let pid = pr.pid;
            if !pr.started || pr.report.is_some() {
                // Not exec'd yet (its profile starts at the exec), or exited (its report is
                // taken).
                continue;
            }
            if let Some(p) = pr.heap.profile.as_mut() {
                let peak_since_last = p.samples.last().is_none_or(|s| {
                    p.peak_heap_bytes > s.heap_bytes && p.heap_bytes == p.peak_heap_bytes
                });
                if due || peak_since_last {
                    let rss = profile::rss_bytes(pid);
                    p.sample(rss);
                    if let Some(t) = self.trace.as_mut() {
                        let _ = t.write(&Event::Sample { pid, rss });
                    }
                    sampled = true;
                }
            }
        }
        if sampled || due {
            self.last_sample = Instant::now();
        }
    }

    fn drain_pid(&mut self, pid: u32) {
        let (shm, procs, trace) = (&self.shm, &mut self.procs, &mut self.trace);
        if let Some(p) = procs.get_mut(&pid) {
            while shm.drain_pid(pid, |_, tid, rec| p.apply(tid, rec, trace)) > 0 {}
        }
    }

    fn release(&mut self, pid: u32, tid: Option<u32>) {
        let (shm, procs, trace) = (&self.shm, &mut self.procs, &mut self.trace);
        match procs.get_mut(&pid) {
            Some(p) => shm.release_tid(pid, tid, |_, t, rec| p.apply(t, rec, trace)),
            None => shm.release_tid(pid, tid, |_, _, _| {}),
        }
    }

    pub fn run(mut self) -> Result<RunResult, TraceError> {
        // A pass that found fewer records than this waits before the next one; at the fastest
        // rate seen (about 10 M records per second from one thread) the wait lets ~2,000
        // records (~100 KiB) gather, a fifth of a ring.
        const BATCH_RECORDS: usize = 4096;
        const BATCH_WAIT_US: u64 = 200;
        let mut idle = 0u32;
        loop {
            let n = self.drain();
            match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    if n == 0 {
                        idle = (idle + 1).min(20);
                        std::thread::sleep(Duration::from_micros(if idle < 10 { 50 } else { 500 }));
                    } else {
                        idle = 0;
                        if n < BATCH_RECORDS {
                            // Let the writers get ahead: reading right behind a writer takes
                            // each cache line it is still filling, and its position word, away
                            // from its core once per record.
                            std::thread::sleep(Duration::from_micros(BATCH_WAIT_US));
                        }
                    }
                }
                Ok(st) => {
                    idle = 0;
                    self.handle(st)?;
                }
                Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.drain();
        self.shm.close_reader();
        for pid in self.procs.keys().copied().collect::<Vec<_>>() {
            self.finish(pid, None);
        }
        let status = self.root_status.unwrap_or(ExitStatus::Code(0));
        let transport = self.shm.stats();
        if let Some(mut t) = self.trace.take() {
            let _ = t.write(&Event::End {
                root: self.root,
                status,
                transport,
            });
            t.finish().map_err(TraceError::Record)?;
        }
        Ok(RunResult {
            processes: self.done,
            status,
            root_pid: self.root,
            transport,
        })
    }

    fn resume(&self, tid: u32, sig: Option<Signal>) {
        // A task may vanish (killed) between its stop and this call: nothing to do then.
        let _ = ptrace::cont(Pid::from_raw(tid as i32), sig);
    }

    fn handle(&mut self, st: WaitStatus) -> Result<(), TraceError> {
        match st {
            WaitStatus::Stopped(pid, sig) => {
                let tid = pid.as_raw() as u32;
                if !self.tid_pid.contains_key(&tid) {
                    // The first stop of a new task.
                    if self.expected.remove(&tid) {
                        self.tid_pid.entry(tid).or_insert(tid);
                        self.resume(tid, None);
                    } else {
                        self.stopped_new.insert(tid);
                    }
                    return Ok(());
                }
                if self.expected.remove(&tid) && sig == Signal::SIGSTOP {
                    self.resume(tid, None);
                    return Ok(());
                }
                match ptrace::getsiginfo(pid) {
                    Ok(_) => self.resume(tid, Some(sig)),
                    // A group stop: let it go on (a PTRACE_TRACEME tracee cannot be held).
                    Err(_) => self.resume(tid, None),
                }
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                let tid = pid.as_raw() as u32;
                self.event(tid, event);
            }
            WaitStatus::Exited(pid, code) => self.gone(pid.as_raw() as u32, ExitStatus::Code(code)),
            WaitStatus::Signaled(pid, sig, _) => {
                self.gone(pid.as_raw() as u32, ExitStatus::Signal(sig as i32))
            }
            WaitStatus::PtraceSyscall(pid) | WaitStatus::Continued(pid) => {
                self.resume(pid.as_raw() as u32, None)
            }
            WaitStatus::StillAlive => {}
        }
        Ok(())
    }

    fn event(&mut self, tid: u32, event: i32) {
        let p = Pid::from_raw(tid as i32);
        let msg = ptrace::getevent(p).unwrap_or(0);
        let pid = self.tid_pid.get(&tid).copied().unwrap_or(tid);
        match event {
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                let new = msg as u32;
                let thread = event == libc::PTRACE_EVENT_CLONE && tgid(new) == Some(pid);
                if thread {
                    self.tid_pid.insert(new, pid);
                    if let Some(pr) = self.procs.get_mut(&pid) {
                        pr.threads.insert(new);
                    }
                } else {
                    self.drain_pid(pid);
                    let child = match self.procs.get(&pid) {
                        Some(parent) => parent.fork_copy(new),
                        None => Proc::new(new, pid, new_heap(self.opts, self.last_ms)),
                    };
                    self.write(&Event::Fork {
                        parent: pid,
                        child: new,
                    });
                    self.procs.insert(new, child);
                    self.tid_pid.insert(new, new);
                    self.shm.set_traced(new, true);
                }
                if self.stopped_new.remove(&new) {
                    self.resume(new, None);
                } else {
                    self.expected.insert(new);
                }
                self.resume(tid, None);
            }
            libc::PTRACE_EVENT_EXEC => {
                // The exec'ing thread is now the leader; every other thread is gone.
                let old = msg as u32;
                if old != tid {
                    self.tid_pid.remove(&old);
                }
                self.release(pid, None);
                let others: Vec<u32> = self
                    .tid_pid
                    .iter()
                    .filter(|&(&t, &pp)| pp == pid && t != pid)
                    .map(|(&t, _)| t)
                    .collect();
                for t in others {
                    self.tid_pid.remove(&t);
                }
                let first = self
                    .procs
                    .get(&pid)
                    .is_some_and(|pr| pid == self.root && !pr.started);
                if first || self.opts.trace_children {
                    let ppid = self.procs.get(&pid).map(|pr| pr.ppid).unwrap_or(0);
                    if !first {
                        // The image before exec is not reported (Valgrind checks leaks at exit,
                        // never at exec); the new image starts with an empty heap.
                        self.procs.remove(&pid);
                    }
                    let mut pr = self
                        .procs
                        .remove(&pid)
                        .unwrap_or_else(|| Proc::new(pid, ppid, new_heap(self.opts, self.last_ms)));
                    pr.started = true;
                    pr.execed = true;
                    pr.threads = HashSet::from([pid]);
                    pr.read_identity();
                    let ev = pr.identity_event();
                    self.procs.insert(pid, pr);
                    self.write(&ev);
                    self.resume(tid, None);
                } else {
                    self.shm.set_traced(pid, false);
                    self.procs.remove(&pid);
                    self.tid_pid.remove(&pid);
                    let _ = ptrace::detach(p, None);
                }
            }
            libc::PTRACE_EVENT_EXIT => {
                let status = status_of(msg as i32);
                let group = matches!(status, ExitStatus::Signal(_))
                    || ptrace::getregs(p)
                        .map(|r| r.orig_rax == SYS_EXIT_GROUP)
                        .unwrap_or(false)
                    || self.procs.get(&pid).is_some_and(|pr| pr.threads.len() <= 1);
                if group {
                    self.take_report(pid, status);
                }
                self.resume(tid, None);
            }
            _ => self.resume(tid, None),
        }
    }

    /// The process is exiting and stopped: take its report now, with its memory still there.
    fn take_report(&mut self, pid: u32, status: ExitStatus) {
        self.drain_pid(pid);
        let shim = self.opts.shim.display().to_string();
        let heuristics = self.opts.heuristics;
        if let Some(pr) = self.procs.get_mut(&pid) {
            if pr.report.is_none() {
                if let Some(p) = pr.heap.profile.as_mut() {
                    let rss = profile::rss_bytes(pid);
                    p.sample(rss);
                    if let Some(t) = self.trace.as_mut() {
                        let _ = t.write(&Event::Sample { pid, rss });
                    }
                }
                pr.modules.refresh(pid);
                let maps = maps::read(pid);
                let threads = pr
                    .threads
                    .iter()
                    .filter_map(|&t| ptrace::getregs(Pid::from_raw(t as i32)).ok())
                    .map(|r| {
                        (
                            r.rsp,
                            vec![
                                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9,
                                r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
                            ],
                        )
                    })
                    .collect();
                let exclude = |p: &str| p.contains("memfd:memcheck") || p == shim;
                let snap = leak::Snapshot {
                    pid,
                    maps: &maps,
                    threads,
                    exclude: &exclude,
                    heuristics,
                };
                pr.report = Some(pr.report(Some(status), Some(&snap)));
            }
        }
    }

    /// A task ended.
    fn gone(&mut self, tid: u32, status: ExitStatus) {
        let pid = self.tid_pid.remove(&tid).unwrap_or(tid);
        self.release(pid, Some(tid));
        let last = match self.procs.get_mut(&pid) {
            Some(pr) => {
                pr.threads.remove(&tid);
                tid == pid
            }
            None => tid == pid,
        };
        if last {
            if pid == self.root {
                self.root_status = Some(status);
            }
            self.finish(pid, Some(status));
        }
    }

    /// The process is gone: emit its report (taken at exit, or now from what was recorded
    /// before an exit that could not be stopped, such as SIGKILL).
    fn finish(&mut self, pid: u32, status: Option<ExitStatus>) {
        self.release(pid, None);
        if let Some(mut pr) = self.procs.remove(&pid) {
            let mut report = match pr.report.take() {
                Some(r) => r,
                None => pr.report(status, None),
            };
            if report.exit.is_none() || matches!(status, Some(ExitStatus::Signal(_))) {
                report.exit = status.or(report.exit);
            }
            if self.trace.is_some() {
                let scanned = report.live.iter().any(|c| c.kind != LeakKind::Unclassified);
                let classified = scanned.then(|| {
                    report
                        .live
                        .iter()
                        .map(|c| {
                            (
                                c.block.addr,
                                c.kind,
                                c.heuristic,
                                c.indirect_bytes,
                                c.indirect_blocks,
                            )
                        })
                        .collect()
                });
                let ev = Event::Exit {
                    pid,
                    status: report.exit,
                    classified,
                    modules: report.modules.clone(),
                };
                self.write(&ev);
            }
            self.done.push(report);
        }
    }
}

/// The thread-group id of a task.
fn tgid(tid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}
