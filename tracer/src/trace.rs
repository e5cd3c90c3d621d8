//! Trace files (`--record=FILE`, `memcheck report FILE`): what the tracer read during a run,
//! zstd-compressed, so that the same report, profile, flamegraph and HTML can be made later,
//! on another machine. Reading streams: memory is bounded by the live blocks, not the length.
//!
//! ```text
//! "MCTRACE" VERSION, then events: TAG (u8) FIELDS...
//! ```
//! Integers are LEB128 varints; an allocation's order key and address are deltas from the
//! previous record of the same thread (zigzag), which makes the stream compress well. Events:
//! the run's freelist settings (from version 2), the clock (ms), a new process image, a fork,
//! ring records, where a bad free pointed (the /proc lookup made during the run), RSS samples,
//! a process's exit with its leak classification and modules, the end.

use crate::heap::AddrDescription;
use crate::leak::{Heuristic, LeakKind};
use crate::maps::{Mapping, Module};
use crate::ExitStatus;
use memcheck_wire as wire;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 7] = b"MCTRACE";
/// Version 3: an allocation and its free may share an order key (`memcheck_wire::Alloc::seq`),
/// which earlier readers would misread. Version 4: a free says which allocation it frees
/// (`memcheck_wire::Free::alloc_key`).
pub const VERSION: u8 = 4;
/// Oldest version this memcheck reads (version 1 lacks `Event::Settings`; versions 1 and 2 have
/// distinct keys, which read the same; before version 4, frees have no `alloc_key`).
const OLDEST: u8 = 1;

/// The classification of one block still allocated at exit: (address, kind, heuristic,
/// indirect bytes, indirect blocks).
pub type Classified = (u64, LeakKind, Option<Heuristic>, u64, u64);

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Time(u64),
    Proc {
        pid: u32,
        ppid: u32,
        execed: bool,
        exe: PathBuf,
        cmdline: Vec<String>,
    },
    Fork {
        parent: u32,
        child: u32,
    },
    Stack {
        pid: u32,
        tid: u32,
        id: u32,
        frames: Vec<u64>,
    },
    Alloc {
        pid: u32,
        tid: u32,
        rec: wire::Alloc,
    },
    Free {
        pid: u32,
        tid: u32,
        bad: bool,
        rec: wire::Free,
    },
    Describe {
        pid: u32,
        addr: u64,
        what: AddrDescription,
    },
    Sample {
        pid: u32,
        rss: u64,
    },
    Exit {
        pid: u32,
        status: Option<ExitStatus>,
        classified: Option<Vec<Classified>>,
        modules: Vec<Module>,
    },
    End {
        root: u32,
        status: ExitStatus,
        transport: crate::TransportStats,
    },
    /// The run's settings that change what the records mean (first event).
    Settings {
        freelist: crate::Freelist,
    },
}

/// Why a trace cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error("{0}: not a memcheck trace")]
    NotATrace(String),
    #[error("{0}: trace version {1} (this memcheck reads version {VERSION})")]
    Version(String, u8),
    #[error("{0}: the trace is truncated (the run was cut short while writing it?)")]
    Truncated(String),
    #[error("{0}: the trace is corrupt ({1})")]
    Corrupt(String, String),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn kind_code(k: LeakKind) -> u8 {
    match k {
        LeakKind::DefinitelyLost => 0,
        LeakKind::IndirectlyLost => 1,
        LeakKind::PossiblyLost => 2,
        LeakKind::StillReachable => 3,
        LeakKind::Unclassified => 4,
    }
}

fn heur_code(h: Option<Heuristic>) -> u8 {
    match h {
        None => 0,
        Some(Heuristic::StdString) => 1,
        Some(Heuristic::Length64) => 2,
        Some(Heuristic::NewArray) => 3,
        Some(Heuristic::MultipleInheritance) => 4,
    }
}

fn put_status(out: &mut Vec<u8>, s: Option<ExitStatus>) {
    match s {
        None => out.push(0),
        Some(ExitStatus::Code(c)) => {
            out.push(1);
            put(out, c as u32 as u64);
        }
        Some(ExitStatus::Signal(c)) => {
            out.push(2);
            put(out, c as u32 as u64);
        }
    }
}

/// The state both sides keep to encode compactly: per-thread deltas of the record stream, and
/// a trie of the stacks (as heaptrack keeps them): a stack is sent as the trie node of its
/// longest outer part already sent, plus its new inner frames.
#[derive(Default)]
struct Deltas {
    /// Reader: the trace's version (0: this one's).
    version: u8,
    last: HashMap<(u32, u32), (u64, u64)>,
    /// Writer: (parent node, address) -> node.
    trie: HashMap<(u32, u64), u32>,
    /// Reader: node -> (parent node, address); node 0 is the root.
    nodes: Vec<(u32, u64)>,
    /// The addresses freed most recently, in order (both sides): glibc hands them out again
    /// once the shim's quarantine lets them go, so an allocation is often "the block freed k
    /// frees ago", with k nearly constant, which compresses far better than the address.
    freed: std::collections::VecDeque<u64>,
    freed_pos: HashMap<u64, u64>,
    freed_count: u64,
}

const FREED_WINDOW: usize = 1 << 18;

impl Deltas {
    fn note_free(&mut self, addr: u64) {
        self.freed.push_back(addr);
        self.freed_pos.insert(addr, self.freed_count);
        self.freed_count += 1;
        if self.freed.len() > FREED_WINDOW {
            let old = self.freed.pop_front().expect("non-empty");
            let old_index = self.freed_count - 1 - FREED_WINDOW as u64;
            if self.freed_pos.get(&old) == Some(&old_index) {
                self.freed_pos.remove(&old);
            }
        }
    }

    /// How many frees ago `addr` was freed, if it is in the window.
    fn freed_ago(&self, addr: u64) -> Option<u64> {
        self.freed_pos.get(&addr).map(|&i| self.freed_count - i)
    }

    fn freed_at(&self, ago: u64) -> Option<u64> {
        let len = self.freed.len() as u64;
        (ago >= 1 && ago <= len).then(|| self.freed[(len - ago) as usize])
    }
}

impl Deltas {
    fn get(&mut self, pid: u32, tid: u32) -> &mut (u64, u64) {
        self.last.entry((pid, tid)).or_default()
    }
}

/// Writes a trace as the run goes.
pub struct TraceWriter {
    out: zstd::stream::write::Encoder<'static, BufWriter<std::fs::File>>,
    buf: Vec<u8>,
    deltas: Deltas,
}

impl TraceWriter {
    pub fn create(path: &Path) -> io::Result<TraceWriter> {
        let f = BufWriter::new(std::fs::File::create(path)?);
        let mut out = zstd::stream::write::Encoder::new(f, 12)?;
        out.long_distance_matching(true)?;
        // An 8 MiB window: what a reader must hold, whatever the length of the trace.
        out.window_log(23)?;
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        Ok(TraceWriter {
            out,
            buf: Vec::with_capacity(1 << 16),
            deltas: Deltas::default(),
        })
    }

    pub fn write(&mut self, e: &Event) -> io::Result<()> {
        encode(&mut self.buf, &mut self.deltas, e);
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.out.finish()?.flush()
    }
}

fn encode(out: &mut Vec<u8>, d: &mut Deltas, e: &Event) {
    match e {
        Event::Time(ms) => {
            out.push(1);
            put(out, *ms);
        }
        Event::Proc {
            pid,
            ppid,
            execed,
            exe,
            cmdline,
        } => {
            out.push(2);
            put(out, *pid as u64);
            put(out, *ppid as u64);
            out.push(*execed as u8);
            put_str(out, &exe.to_string_lossy());
            put(out, cmdline.len() as u64);
            for a in cmdline {
                put_str(out, a);
            }
        }
        Event::Fork { parent, child } => {
            out.push(3);
            put(out, *parent as u64);
            put(out, *child as u64);
        }
        Event::Stack {
            pid,
            tid,
            id,
            frames,
        } => {
            out.push(4);
            put(out, *pid as u64);
            put(out, *tid as u64);
            put(out, *id as u64);
            // Outermost frame first down the trie, as far as it is known.
            let mut node = 0u32;
            let mut known = 0;
            for f in frames.iter().rev() {
                match d.trie.get(&(node, *f)) {
                    Some(&n) => {
                        node = n;
                        known += 1;
                    }
                    None => break,
                }
            }
            put(out, node as u64);
            let new = &frames[..frames.len() - known];
            put(out, new.len() as u64);
            for f in new.iter().rev() {
                put(out, *f);
                let next = d.trie.len() as u32 + 1;
                d.trie.insert((node, *f), next);
                node = next;
            }
        }
        Event::Alloc { pid, tid, rec } => {
            let ago = d.freed_ago(rec.addr);
            out.push(if ago.is_some() { 12 } else { 5 });
            put(out, *pid as u64);
            put(out, *tid as u64);
            let l = d.get(*pid, *tid);
            put(out, zigzag(rec.seq.wrapping_sub(l.0) as i64));
            match ago {
                Some(k) => put(out, k),
                None => put(out, zigzag(rec.addr.wrapping_sub(l.1) as i64)),
            }
            let l = d.get(*pid, *tid);
            *l = (rec.seq, rec.addr);
            put(out, rec.size);
            put(out, rec.stack as u64);
            put(out, rec.func as u64);
        }
        Event::Free { pid, tid, bad, rec } => {
            out.push(if *bad { 7 } else { 6 });
            put(out, *pid as u64);
            put(out, *tid as u64);
            let l = d.get(*pid, *tid);
            put(out, zigzag(rec.seq.wrapping_sub(l.0) as i64));
            put(out, zigzag(rec.addr.wrapping_sub(l.1) as i64));
            l.0 = rec.seq;
            put(out, rec.size);
            put(out, rec.stack as u64);
            put(out, rec.func as u64);
            put(out, rec.flags as u64);
            if !*bad {
                put(out, rec.alloc_key as u64);
                d.note_free(rec.addr);
            }
        }
        Event::Describe { pid, addr, what } => {
            out.push(8);
            put(out, *pid as u64);
            put(out, *addr);
            match what {
                AddrDescription::Stack { thread } => {
                    out.push(1);
                    put(out, *thread as u64);
                }
                AddrDescription::InModule { path, file_offset } => {
                    out.push(2);
                    put_str(out, &path.to_string_lossy());
                    put(out, *file_offset);
                }
                _ => out.push(0),
            }
        }
        Event::Sample { pid, rss } => {
            out.push(9);
            put(out, *pid as u64);
            put(out, *rss);
        }
        Event::Exit {
            pid,
            status,
            classified,
            modules,
        } => {
            out.push(10);
            put(out, *pid as u64);
            put_status(out, *status);
            match classified {
                None => out.push(0),
                Some(c) => {
                    out.push(1);
                    put(out, c.len() as u64);
                    let mut prev = 0u64;
                    for (addr, k, h, ib, ic) in c {
                        // Sorted by address: deltas.
                        put(out, zigzag(addr.wrapping_sub(prev) as i64));
                        prev = *addr;
                        out.push(kind_code(*k));
                        out.push(heur_code(*h));
                        put(out, *ib);
                        put(out, *ic);
                    }
                }
            }
            put(out, modules.len() as u64);
            for m in modules {
                put_str(out, &m.path.to_string_lossy());
                put(out, m.mappings.len() as u64);
                for mp in &m.mappings {
                    put(out, mp.start);
                    put(out, mp.end - mp.start);
                    put(out, mp.offset);
                    out.push(
                        (mp.readable as u8) | (mp.writable as u8) << 1 | (mp.executable as u8) << 2,
                    );
                }
            }
        }
        Event::Settings { freelist } => {
            out.push(13);
            put(out, freelist.vol);
            put(out, freelist.blocks);
        }
        Event::End {
            root,
            status,
            transport,
        } => {
            out.push(11);
            put(out, *root as u64);
            put_status(out, Some(*status));
            for v in [
                transport.records,
                transport.stalls,
                transport.stall_ns,
                transport.dropped,
            ] {
                put(out, v);
            }
        }
    }
}

/// Reads a trace event by event.
pub struct TraceReader {
    input: BufReader<zstd::stream::read::Decoder<'static, BufReader<std::fs::File>>>,
    deltas: Deltas,
    name: String,
}

impl TraceReader {
    pub fn open(path: &Path) -> Result<TraceReader, TraceFileError> {
        let name = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| TraceFileError::Io(name.clone(), e))?;
        let dec =
            zstd::stream::read::Decoder::new(f).map_err(|e| TraceFileError::Io(name.clone(), e))?;
        let mut r = TraceReader {
            input: BufReader::new(dec),
            deltas: Deltas::default(),
            name,
        };
        let mut head = [0u8; 8];
        if let Err(e) = r.input.read_exact(&mut head) {
            // A zstd frame that ends early is a truncated trace; anything else is no trace.
            let mut magic = [0u8; 4];
            let zstd = std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && magic == [0x28, 0xb5, 0x2f, 0xfd];
            return Err(if zstd && e.kind() != io::ErrorKind::InvalidData {
                TraceFileError::Truncated(r.name.clone())
            } else if zstd {
                TraceFileError::Corrupt(r.name.clone(), e.to_string())
            } else {
                TraceFileError::NotATrace(r.name.clone())
            });
        }
        if &head[..7] != MAGIC {
            return Err(TraceFileError::NotATrace(r.name.clone()));
        }
        if !(OLDEST..=VERSION).contains(&head[7]) {
            return Err(TraceFileError::Version(r.name.clone(), head[7]));
        }
        r.deltas.version = head[7];
        Ok(r)
    }

    fn err(&self, e: io::Error) -> TraceFileError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => TraceFileError::Truncated(self.name.clone()),
            io::ErrorKind::InvalidData => TraceFileError::Corrupt(self.name.clone(), e.to_string()),
            _ => TraceFileError::Corrupt(self.name.clone(), e.to_string()),
        }
    }

    /// The next event; None at the end of the stream (after an End event, or a truncated
    /// trace reported as an error).
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceFileError> {
        let at_end = match self.input.fill_buf() {
            Ok(b) => b.is_empty(),
            Err(e) => return Err(self.err(e)),
        };
        if at_end {
            return Ok(None);
        }
        decode(&mut self.input, &mut self.deltas)
            .map(Some)
            .map_err(|e| self.err(e))
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn get(r: &mut impl Read) -> io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        if shift == 63 && b[0] > 1 {
            return Err(bad("integer overflow"));
        }
        v |= ((b[0] & 0x7f) as u64) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("integer too long"))
}

fn get32(r: &mut impl Read) -> io::Result<u32> {
    u32::try_from(get(r)?).map_err(|_| bad("32-bit field out of range"))
}

fn get_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// A length for something that will be allocated: bounded, so that corrupt input cannot ask
/// for gigabytes.
fn get_len(r: &mut impl Read, max: u64) -> io::Result<usize> {
    let n = get(r)?;
    if n > max {
        return Err(bad("length out of range"));
    }
    Ok(n as usize)
}

fn get_str(r: &mut impl Read) -> io::Result<String> {
    let n = get_len(r, 1 << 20)?;
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|_| bad("invalid UTF-8"))
}

fn get_status(r: &mut impl Read) -> io::Result<Option<ExitStatus>> {
    Ok(match get_u8(r)? {
        0 => None,
        1 => Some(ExitStatus::Code(get32(r)? as i32)),
        2 => Some(ExitStatus::Signal(get32(r)? as i32)),
        _ => return Err(bad("exit status")),
    })
}

fn decode(r: &mut impl Read, d: &mut Deltas) -> io::Result<Event> {
    Ok(match get_u8(r)? {
        1 => Event::Time(get(r)?),
        2 => {
            let (pid, ppid) = (get32(r)?, get32(r)?);
            let execed = get_u8(r)? != 0;
            let exe = PathBuf::from(get_str(r)?);
            let n = get_len(r, 1 << 16)?;
            let cmdline = (0..n).map(|_| get_str(r)).collect::<io::Result<_>>()?;
            Event::Proc {
                pid,
                ppid,
                execed,
                exe,
                cmdline,
            }
        }
        3 => Event::Fork {
            parent: get32(r)?,
            child: get32(r)?,
        },
        4 => {
            let (pid, tid, id) = (get32(r)?, get32(r)?, get32(r)?);
            if d.nodes.is_empty() {
                d.nodes.push((0, 0));
            }
            let mut node = get32(r)?;
            if node as usize >= d.nodes.len() {
                return Err(bad("stack node out of range"));
            }
            let n = get_len(r, wire::MAX_FRAMES as u64)?;
            for _ in 0..n {
                let ip = get(r)?;
                d.nodes.push((node, ip));
                node = (d.nodes.len() - 1) as u32;
            }
            // Innermost first: the new frames, then the known part up to the root.
            let mut frames: Vec<u64> = Vec::with_capacity(n + 8);
            let mut at = node as usize;
            while at != 0 {
                let (parent, ip) = d.nodes[at];
                frames.push(ip);
                if frames.len() > wire::MAX_FRAMES {
                    return Err(bad("stack too deep"));
                }
                at = parent as usize;
            }
            Event::Stack {
                pid,
                tid,
                id,
                frames,
            }
        }
        t @ (5 | 12) => {
            let (pid, tid) = (get32(r)?, get32(r)?);
            let l = d.get(pid, tid);
            let seq = l.0.wrapping_add(unzigzag(get(r)?) as u64);
            let last_addr = l.1;
            let v = get(r)?;
            let addr = if t == 12 {
                d.freed_at(v)
                    .ok_or_else(|| bad("freed block out of range"))?
            } else {
                last_addr.wrapping_add(unzigzag(v) as u64)
            };
            *d.get(pid, tid) = (seq, addr);
            let rec = wire::Alloc {
                seq,
                addr,
                size: get(r)?,
                stack: get32(r)?,
                func: get32(r)?,
            };
            Event::Alloc { pid, tid, rec }
        }
        t @ (6 | 7) => {
            let (pid, tid) = (get32(r)?, get32(r)?);
            let l = d.get(pid, tid);
            let seq = l.0.wrapping_add(unzigzag(get(r)?) as u64);
            let addr = l.1.wrapping_add(unzigzag(get(r)?) as u64);
            l.0 = seq;
            let mut rec = wire::Free {
                seq,
                addr,
                size: get(r)?,
                stack: get32(r)?,
                func: get32(r)?,
                flags: get32(r)?,
                alloc_key: 0,
            };
            if t == 6 {
                if d.version == 0 || d.version >= 4 {
                    rec.alloc_key = get32(r)?;
                }
                d.note_free(addr);
            }
            Event::Free {
                pid,
                tid,
                bad: t == 7,
                rec,
            }
        }
        8 => {
            let (pid, addr) = (get32(r)?, get(r)?);
            let what = match get_u8(r)? {
                0 => AddrDescription::Unknown,
                1 => AddrDescription::Stack { thread: get32(r)? },
                2 => AddrDescription::InModule {
                    path: PathBuf::from(get_str(r)?),
                    file_offset: get(r)?,
                },
                _ => return Err(bad("address description")),
            };
            Event::Describe { pid, addr, what }
        }
        9 => Event::Sample {
            pid: get32(r)?,
            rss: get(r)?,
        },
        10 => {
            let pid = get32(r)?;
            let status = get_status(r)?;
            let classified = match get_u8(r)? {
                0 => None,
                1 => {
                    let n = get_len(r, 1 << 34)?;
                    let mut v = Vec::with_capacity(n.min(1 << 20));
                    let mut prev = 0u64;
                    for _ in 0..n {
                        let addr = prev.wrapping_add(unzigzag(get(r)?) as u64);
                        prev = addr;
                        let k = match get_u8(r)? {
                            0 => LeakKind::DefinitelyLost,
                            1 => LeakKind::IndirectlyLost,
                            2 => LeakKind::PossiblyLost,
                            3 => LeakKind::StillReachable,
                            4 => LeakKind::Unclassified,
                            _ => return Err(bad("leak kind")),
                        };
                        let h = match get_u8(r)? {
                            0 => None,
                            1 => Some(Heuristic::StdString),
                            2 => Some(Heuristic::Length64),
                            3 => Some(Heuristic::NewArray),
                            4 => Some(Heuristic::MultipleInheritance),
                            _ => return Err(bad("heuristic")),
                        };
                        v.push((addr, k, h, get(r)?, get(r)?));
                    }
                    Some(v)
                }
                _ => return Err(bad("classification")),
            };
            let n = get_len(r, 1 << 20)?;
            let mut modules = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                let path = PathBuf::from(get_str(r)?);
                let m = get_len(r, 1 << 16)?;
                let mut mappings = Vec::with_capacity(m.min(64));
                for _ in 0..m {
                    let start = get(r)?;
                    let len = get(r)?;
                    let offset = get(r)?;
                    let perms = get_u8(r)?;
                    mappings.push(Mapping {
                        start,
                        end: start.checked_add(len).ok_or_else(|| bad("mapping range"))?,
                        readable: perms & 1 != 0,
                        writable: perms & 2 != 0,
                        executable: perms & 4 != 0,
                        offset,
                        path: path.display().to_string(),
                    });
                }
                modules.push(Module { path, mappings });
            }
            Event::Exit {
                pid,
                status,
                classified,
                modules,
            }
        }
        13 => Event::Settings {
            freelist: crate::Freelist {
                vol: get(r)?,
                blocks: get(r)?,
            },
        },
        11 => {
            let root = get32(r)?;
            let status = get_status(r)?.ok_or_else(|| bad("end status"))?;
            let transport = crate::TransportStats {
                records: get(r)?,
                stalls: get(r)?,
                stall_ns: get(r)?,
                dropped: get(r)?,
            };
            Event::End {
                root,
                status,
                transport,
            }
        }
        t => return Err(bad(&format!("unknown event {t}"))),
    })
}

/// Decodes events from raw (uncompressed) bytes, for tests of the decoder on arbitrary input.
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut d = Deltas::default();
    let mut v = Vec::new();
    while !bytes.is_empty() {
        v.push(decode(&mut bytes, &mut d).map_err(|e| e.to_string())?);
    }
    Ok(v)
}

/// Encodes events to raw (uncompressed) bytes (the inverse of [`decode_all`]).
pub fn encode_all(events: &[Event]) -> Vec<u8> {
    let mut d = Deltas::default();
    let mut out = Vec::new();
    for e in events {
        encode(&mut out, &mut d, e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_events() -> Vec<Event> {
        vec![
            Event::Settings {
                freelist: crate::Freelist {
                    vol: 20_000_000,
                    blocks: 4096,
                },
            },
            Event::Time(5),
            Event::Proc {
                pid: 10,
                ppid: 1,
                execed: true,
                exe: "/bin/x".into(),
                cmdline: vec!["x".into(), "-v".into()],
            },
            Event::Stack {
                pid: 10,
                tid: 10,
                id: 3,
                frames: vec![0x1000, 0x2000],
            },
            Event::Stack {
                pid: 10,
                tid: 10,
                id: 4,
                frames: vec![0x1500, 0x1000, 0x2000],
            },
            Event::Stack {
                pid: 10,
                tid: 11,
                id: 5,
                frames: vec![0x2000],
            },
            Event::Stack {
                pid: 10,
                tid: 11,
                id: 6,
                frames: vec![0x3000, 0x2000],
            },
            Event::Alloc {
                pid: 10,
                tid: 10,
                rec: wire::Alloc {
                    seq: 7,
                    addr: 0x5000,
                    size: 24,
                    stack: 3,
                    func: 0,
                },
            },
            Event::Free {
                pid: 10,
                tid: 10,
                bad: false,
                rec: wire::Free {
                    seq: 8,
                    addr: 0x5000,
                    size: 0,
                    stack: 3,
                    func: 9,
                    flags: 0,
                    alloc_key: wire::alloc_key(7),
                },
            },
            Event::Alloc {
                pid: 10,
                tid: 11,
                rec: wire::Alloc {
                    seq: 9,
                    addr: 0x5000,
                    size: 24,
                    stack: 3,
                    func: 0,
                },
            },
            Event::Alloc {
                pid: 10,
                tid: 11,
                rec: wire::Alloc {
                    seq: 10,
                    addr: 0x9000,
                    size: 24,
                    stack: 3,
                    func: 0,
                },
            },
            Event::Describe {
                pid: 10,
                addr: 0x7000,
                what: AddrDescription::Stack { thread: 1 },
            },
            Event::Sample {
                pid: 10,
                rss: 1 << 20,
            },
            Event::Exit {
                pid: 10,
                status: Some(ExitStatus::Signal(9)),
                classified: Some(vec![(0x6000, LeakKind::DefinitelyLost, None, 8, 1)]),
                modules: vec![Module {
                    path: "/bin/x".into(),
                    mappings: vec![Mapping {
                        start: 0x1000,
                        end: 0x3000,
                        readable: true,
                        writable: false,
                        executable: true,
                        offset: 0,
                        path: "/bin/x".into(),
                    }],
                }],
            },
            Event::End {
                root: 10,
                status: ExitStatus::Code(3),
                transport: crate::TransportStats {
                    records: 9,
                    stalls: 1,
                    stall_ns: 5000,
                    dropped: 0,
                },
            },
        ]
    }

    #[test]
    fn round_trip() {
        let ev = sample_events();
        assert_eq!(decode_all(&encode_all(&ev)).unwrap(), ev);
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let bytes = encode_all(&sample_events());
        for cut in 0..bytes.len() {
            let _ = decode_all(&bytes[..cut]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn flipped_bytes_never_panic(flip in 0usize..400, val in any::<u8>()) {
            let mut bytes = encode_all(&sample_events());
            let i = flip % bytes.len();
            bytes[i] = val;
            let _ = decode_all(&bytes);
        }
    }
}
