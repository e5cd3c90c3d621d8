//! Replaying a trace (`memcheck report FILE`): the events of a recorded run go through the same
//! process model as during the run, without the processes, so the reports come out the same.
//! Events are read one at a time: memory is bounded by the blocks live at once.

use crate::heap::{Freelist, Heap};
use crate::ptrace::Proc;
use crate::shm::Record;
use crate::trace::{Event, TraceReader};
use crate::{RunResult, TraceError, TraceFileError};
use std::path::Path;

fn new_proc(pid: u32, ppid: u32, profile: bool, freelist: Freelist, now: u64) -> Proc {
    let mut p = Proc::new(pid, ppid, Heap::with_profile(freelist, profile, now));
    p.live = false;
    p
}

/// Rebuilds the result of the recorded run. `profile`: keep the allocation profile;
/// `freelist`: as --freelist-vol and --freelist-blocks during the run, for traces that do not
/// say (written by a memcheck before trace version 2).
pub fn replay(path: &Path, profile: bool, freelist: Freelist) -> Result<RunResult, TraceError> {
    let mut r = TraceReader::open(path)?;
    let mut vol = freelist;
    let mut procs: crate::hash::AddrMap<u32, Proc> = crate::hash::AddrMap::default();
    let mut done = Vec::new();
    let mut now = 0u64;
    let mut none = None;
    loop {
        let Some(ev) = r.next_event()? else {
            return Err(TraceFileError::Truncated(path.display().to_string()).into());
        };
        match ev {
            Event::Settings { freelist } => vol = freelist,
            Event::Time(ms) => {
                now = ms;
                for p in procs.values_mut() {
                    if let Some(pr) = p.heap.profile.as_mut() {
                        pr.now_ms = ms;
                    }
                }
            }
            Event::Proc {
                pid,
                ppid,
                execed,
                exe,
                cmdline,
            } => {
                let mut p = new_proc(pid, ppid, profile, vol, now);
                p.set_identity(execed, exe, cmdline);
                procs.insert(pid, p);
            }
            Event::Fork { parent, child } => {
                let c = match procs.get(&parent) {
                    Some(par) => par.fork_copy(child),
                    None => new_proc(child, parent, profile, vol, now),
                };
                procs.insert(child, c);
            }
            Event::Stack {
                pid, id, frames, ..
            } => {
                procs
                    .entry(pid)
                    .or_insert_with(|| new_proc(pid, 0, profile, vol, now))
                    .add_stack(id, frames);
            }
            Event::Alloc { pid, tid, rec } => {
                let p = procs
                    .entry(pid)
                    .or_insert_with(|| new_proc(pid, 0, profile, vol, now));
                // As the run applied it (a stack sent again maps to its first id).
                p.apply(tid, Record::Alloc(rec), &mut none);
            }
            Event::Free { pid, tid, bad, rec } => {
                let p = procs
                    .entry(pid)
                    .or_insert_with(|| new_proc(pid, 0, profile, vol, now));
                let r = if bad {
                    Record::BadFree(rec)
                } else {
                    Record::Free(rec)
                };
                p.apply(tid, r, &mut none);
            }
            Event::Describe { pid, what, .. } => {
                if let Some(p) = procs.get_mut(&pid) {
                    p.set_description(what);
                }
            }
            Event::Sample { pid, rss } => {
                if let Some(pr) = procs.get_mut(&pid).and_then(|p| p.heap.profile.as_mut()) {
                    pr.sample(rss);
                }
            }
            Event::Exit {
                pid,
                status,
                classified,
                modules,
            } => {
                if let Some(mut p) = procs.remove(&pid) {
                    done.push(p.report_replayed(status, classified, modules));
                }
            }
            Event::End {
                root,
                status,
                transport,
            } => {
                return Ok(RunResult {
                    processes: done,
                    status,
                    root_pid: root,
                    transport,
                });
            }
        }
    }
}
