//! Leak classification by a reachability scan of the stopped process, with Valgrind's
//! definitions: a block reached through a chain of start pointers from a root is still
//! reachable; one whose chain needs an interior pointer is possibly lost; one with no pointer
//! to it is definitely lost; one reachable only from lost blocks is indirectly lost, and its
//! bytes are counted in the definitely-lost block that leads its group.
//!
//! Roots: the registers of the threads that could be stopped, and every readable and writable
//! mapping except glibc's heap memory (the `[heap]` segment and anonymous mappings that hold
//! blocks: a block there is scanned only when it is reached), memcheck's own shared memory and
//! shim, and the dead part of each stopped thread's stack below its stack pointer.

use crate::heap::LiveBlock;
use crate::maps::Mapping;
use crate::mem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeakKind {
    DefinitelyLost,
    IndirectlyLost,
    PossiblyLost,
    StillReachable,
    /// The process died before memcheck could stop it (SIGKILL): nothing could be scanned.
    Unclassified,
}

/// Valgrind's interior-pointer heuristics (`--leak-check-heuristics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Heuristic {
    /// A pointer to the characters of a pre-C++11 `std::string` (length, capacity, refcount).
    StdString,
    /// A pointer 8 bytes in, after a 64-bit length of the rest (sqlite's allocator).
    Length64,
    /// A pointer to the first element of a `new[]` array, after its element count.
    NewArray,
    /// A pointer to a secondary base of an object with multiple inheritance (vtable pointers).
    MultipleInheritance,
}

impl Heuristic {
    pub fn name(self) -> &'static str {
        match self {
            Heuristic::StdString => "stdstring",
            Heuristic::Length64 => "length64",
            Heuristic::NewArray => "newarray",
            Heuristic::MultipleInheritance => "multipleinheritance",
        }
    }
}

/// Which heuristics are on (Valgrind's default: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heuristics {
    pub stdstring: bool,
    pub length64: bool,
    pub newarray: bool,
    pub multipleinheritance: bool,
}

impl Default for Heuristics {
    fn default() -> Heuristics {
        Heuristics {
            stdstring: true,
            length64: true,
            newarray: true,
            multipleinheritance: true,
        }
    }
}

/// A block still allocated at exit, classified.
#[derive(Clone, Debug)]
pub struct ClassifiedBlock {
    pub block: LiveBlock,
    pub kind: LeakKind,
    /// The heuristic through which a still-reachable block was reached, if any.
    pub heuristic: Option<Heuristic>,
    /// For a definitely-lost group leader: bytes and blocks indirectly lost through it.
    pub indirect_bytes: u64,
    pub indirect_blocks: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unreached,
    Possible,
    Reachable,
    /// Indirectly lost, in the group of the given leader.
    Indirect(usize),
}

/// What the scan needs to know about the stopped process.
pub struct Snapshot<'a> {
    pub pid: u32,
    pub maps: &'a [Mapping],
    /// Register values of each stopped thread (general-purpose registers, rsp included), with
    /// that thread's stack pointer.
    pub threads: Vec<(u64, Vec<u64>)>,
    /// Mapping paths never scanned (memcheck's own).
    pub exclude: &'a dyn Fn(&str) -> bool,
    pub heuristics: Heuristics,
}

struct Scan<'a> {
    /// Blocks sorted by address.
    blocks: Vec<&'a LiveBlock>,
    /// Their start addresses, in one array: the binary search of each scanned word reads only
    /// this (following `blocks`' references cost a cache miss per step on large heaps).
    starts: Vec<u64>,
    state: Vec<State>,
    heuristic: Vec<Option<Heuristic>>,
    heuristics: Heuristics,
    /// Readable, non-executable file mappings: where vtables live.
    vtable_ranges: Vec<(u64, u64)>,
    data: Vec<u8>,
    offsets: Vec<usize>,
    work: Vec<usize>,
    /// Whether a block's first word is a vtable's address, for the multipleinheritance
    /// heuristic (worked out once per block: interior pointers into a block can be many).
    vtable_first: Vec<bool>,
    /// The 1 MiB pages any block lies in: most words of a large root region (a program's own
    /// memory pools, such as gcc's garbage-collected pages) point nowhere near a block, and
    /// this rejects them with one lookup instead of a binary search.
    pages: crate::hash::AddrSet,
    /// For each 4 KiB page any block lies in, the blocks that do (a range of `blocks`): the
    /// binary search of a word is over those few instead of the whole heap. `pages` comes
    /// first: a much smaller set, it stays in the cache while most words of a large root
    /// region are rejected.
    small_pages: crate::hash::AddrMap<u64, (u32, u32)>,
}

const PAGE_SHIFT: u32 = 20;
const SMALL_PAGE_SHIFT: u32 = 12;

/// See `Scan::small_pages`; `blocks` sorted by address, not overlapping.
fn small_pages(blocks: &[&LiveBlock]) -> crate::hash::AddrMap<u64, (u32, u32)> {
    let mut pages = crate::hash::AddrMap::<u64, (u32, u32)>::default();
    for (i, b) in blocks.iter().enumerate() {
        let i = i as u32;
        let last = b.addr + b.size.max(1) - 1;
        for p in b.addr >> SMALL_PAGE_SHIFT..=last >> SMALL_PAGE_SHIFT {
            pages
                .entry(p)
                .and_modify(|r| r.1 = i + 1)
                .or_insert((i, i + 1));
        }
    }
    pages
}

fn block_pages(blocks: &[&LiveBlock]) -> crate::hash::AddrSet {
    let mut pages = crate::hash::AddrSet::default();
    for b in blocks {
        let last = b.addr + b.size.max(1) - 1;
        for p in b.addr >> PAGE_SHIFT..=last >> PAGE_SHIFT {
            pages.insert(p);
        }
    }
    pages
}

impl<'a> Scan<'a> {
    /// The block `v` points into, and whether it points at its start.
    fn find(&self, v: u64) -> Option<(usize, bool)> {
        if !self.pages.contains(&(v >> PAGE_SHIFT)) {
            return None;
        }
        let &(lo, hi) = self.small_pages.get(&(v >> SMALL_PAGE_SHIFT))?;
        let (lo, hi) = (lo as usize, hi as usize);
        let i = lo
            + self.starts[lo..hi]
                .partition_point(|&a| a <= v)
                .checked_sub(1)?;
        let start = self.starts[i];
        if v == start {
            Some((i, true))
        } else if v < start + self.blocks[i].size {
            Some((i, false))
        } else {
            None
        }
    }

    /// The word at `offset` of block `i`, if the block is that long.
    fn word(&self, i: usize, offset: u64) -> Option<u64> {
        let b = self.blocks[i];
        if offset + 8 > b.size {
            return None;
        }
        let at = self.offsets[i] + offset as usize;
        Some(u64::from_ne_bytes(
            self.data[at..at + 8].try_into().expect("8 bytes"),
        ))
    }

    fn is_vtable_addr(&self, a: u64) -> bool {
        a & 7 == 0 && a >= 4096 && self.vtable_ranges.iter().any(|&(s, e)| s <= a && a < e)
    }

    /// Which heuristic, if any, makes the interior pointer `v` into block `i` count as a
    /// pointer to its start (Valgrind's `heuristic_reachedness`).
    fn heuristic_for(&self, i: usize, v: u64) -> Option<Heuristic> {
        let b = self.blocks[i];
        let off = v - b.addr;
        let h = self.heuristics;
        if h.stdstring && off == 24 {
            if let (Some(len), Some(cap)) = (self.word(i, 0), self.word(i, 8)) {
                if cap.checked_add(25) == Some(b.size) && len <= cap {
                    return Some(Heuristic::StdString);
                }
            }
        }
        if (h.length64 || h.newarray) && off == 8 {
            if let Some(n) = self.word(i, 0) {
                if h.length64 && n > 0 && b.size - 8 == n {
                    return Some(Heuristic::Length64);
                }
                if h.newarray && n > 0 && (b.size - 8).is_multiple_of(n) {
                    return Some(Heuristic::NewArray);
                }
            }
        }
        if h.multipleinheritance && self.vtable_first[i] && off.is_multiple_of(8) {
            if let Some(inner) = self.word(i, off) {
                if self.is_vtable_addr(inner) {
                    return Some(Heuristic::MultipleInheritance);
                }
            }
        }
        None
    }

    /// Valgrind's rule: a start pointer (or an interior pointer a heuristic accepts) from a
    /// definite place makes a block reachable; anything else makes an unreached block
    /// possibly lost.
    fn push(&mut self, v: u64, definite: bool) {
        let Some((i, mut start)) = self.find(v) else {
            return;
        };
        let mut via_heuristic = false;
        if !start && self.state[i] != State::Reachable {
            if let Some(h) = self.heuristic_for(i, v) {
                via_heuristic = true;
                start = true;
                if definite {
                    self.heuristic[i] = Some(h);
                }
            }
        }
        if start && definite {
            if !via_heuristic {
                self.heuristic[i] = None;
            }
            if self.state[i] != State::Reachable {
                self.state[i] = State::Reachable;
                self.work.push(i);
            }
        } else if self.state[i] == State::Unreached {
            self.state[i] = State::Possible;
            self.work.push(i);
        }
    }

    /// The number of whole words in block `i` (blocks are 16-aligned, so words are aligned).
    fn nwords(&self, i: usize) -> usize {
        self.blocks[i].size as usize / 8
    }

    /// Word `k` of block `i`.
    fn word_at(&self, i: usize, k: usize) -> u64 {
        let at = self.offsets[i] + 8 * k;
        u64::from_ne_bytes(self.data[at..at + 8].try_into().expect("8 bytes"))
    }

    fn drain(&mut self) {
        while let Some(i) = self.work.pop() {
            let definite = self.state[i] == State::Reachable;
            for k in 0..self.nwords(i) {
                let v = self.word_at(i, k);
                self.push(v, definite);
            }
        }
    }
}

/// Classifies `live` by scanning the stopped process described by `snap`.
pub fn classify(live: &[LiveBlock], snap: &Snapshot<'_>) -> Vec<ClassifiedBlock> {
    let mut blocks: Vec<&LiveBlock> = live.iter().collect();
    blocks.sort_unstable_by_key(|b| b.addr);
    let ranges: Vec<(u64, usize)> = blocks.iter().map(|b| (b.addr, b.size as usize)).collect();
    let mut data = Vec::new();
    let offsets = mem::read_ranges(snap.pid, &ranges, &mut data);
    let n = blocks.len();
    let vtable_ranges = snap
        .maps
        .iter()
        .filter(|m| m.readable && !m.executable && m.path.starts_with('/'))
        .map(|m| (m.start, m.end))
        .collect();
    let pages = block_pages(&blocks);
    let starts = blocks.iter().map(|b| b.addr).collect();
    let small_pages = small_pages(&blocks);
    let mut scan = Scan {
        pages,
        small_pages,
        blocks,
        starts,
        state: vec![State::Unreached; n],
        heuristic: vec![None; n],
        heuristics: snap.heuristics,
        vtable_ranges,
        data,
        offsets,
        work: Vec::new(),
        vtable_first: Vec::new(),
    };
    if scan.heuristics.multipleinheritance {
        scan.vtable_first = (0..n)
            .map(|i| scan.word(i, 0).is_some_and(|w| scan.is_vtable_addr(w)))
            .collect();
    }

    // Registers.
    for (_, regs) in &snap.threads {
        if std::env::var_os("MEMCHECK_DEBUG_ROOTS").is_some() {
            eprintln!("regs {regs:x?}");
        }
        for &r in regs {
            scan.push(r, true);
        }
    }
    // Memory roots.
    let holds_block = |m: &Mapping| {
        let i = scan.blocks.partition_point(|b| b.addr < m.start);
        i < scan.blocks.len() && scan.blocks[i].addr < m.end
    };
    let mut roots: Vec<(u64, usize)> = Vec::new();
    for m in snap.maps {
        if !m.readable || !m.writable || (snap.exclude)(&m.path) {
            continue;
        }
        if m.path == "[heap]" || (m.path.is_empty() && holds_block(m)) {
            continue;
        }
        let mut start = m.start;
        for (sp, _) in &snap.threads {
            if m.start <= *sp && *sp < m.end {
                start = *sp & !7;
            }
        }
        if start < m.end {
            roots.push((start, (m.end - start) as usize));
        }
    }
    const CHUNK: usize = 8 << 20;
    let mut pieces = Vec::new();
    for &(a, l) in &roots {
        let mut off = 0;
        while off < l {
            let len = CHUNK.min(l - off);
            pieces.push((a + off as u64, len));
            off += len;
        }
    }
    let dbg = std::env::var_os("MEMCHECK_DEBUG_ROOTS").is_some();
    for piece in pieces {
        let mut buf = Vec::new();
        mem::read_ranges(snap.pid, &[piece], &mut buf);
        for (k, c) in buf.chunks_exact(8).enumerate() {
            let v = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
            if dbg && scan.find(v).is_some() {
                eprintln!("root {:#x} -> {v:#x}", piece.0 + 8 * k as u64);
            }
            scan.push(v, true);
        }
        scan.drain();
    }
    scan.drain();

    // Groups of unreached blocks: each unreached block, in address order, leads the group of
    // the unreached blocks it reaches; a leader reached later joins the later group.
    let mut indirect = vec![(0u64, 0u64); n];
    for leader in 0..n {
        if scan.state[leader] != State::Unreached {
            continue;
        }
        let mut stack = vec![leader];
        while let Some(i) = stack.pop() {
            for k in 0..scan.nwords(i) {
                let Some((j, _)) = scan.find(scan.word_at(i, k)) else {
                    continue;
                };
                if j == leader {
                    continue;
                }
                if scan.state[j] == State::Unreached {
                    scan.state[j] = State::Indirect(leader);
                    if j < leader {
                        // An earlier leader joins this group with its own indirect bytes (its
                        // members stay indirectly lost; only the leader's totals matter).
                        let (b, c) = std::mem::take(&mut indirect[j]);
                        indirect[leader].0 += b + scan.blocks[j].size;
                        indirect[leader].1 += c + 1;
                    } else {
                        indirect[leader].0 += scan.blocks[j].size;
                        indirect[leader].1 += 1;
                        stack.push(j);
                    }
                }
            }
        }
    }

    scan.blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (kind, ib, ic) = match scan.state[i] {
                State::Reachable => (LeakKind::StillReachable, 0, 0),
                State::Possible => (LeakKind::PossiblyLost, 0, 0),
                State::Indirect(_) => (LeakKind::IndirectlyLost, 0, 0),
                State::Unreached => (LeakKind::DefinitelyLost, indirect[i].0, indirect[i].1),
            };
            let heuristic = if kind == LeakKind::StillReachable {
                scan.heuristic[i]
            } else {
                None
            };
            ClassifiedBlock {
                block: (*b).clone(),
                kind,
                heuristic,
                indirect_bytes: ib,
                indirect_blocks: ic,
            }
        })
        .collect()
}
