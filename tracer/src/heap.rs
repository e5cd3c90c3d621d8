//! One process's heap as rebuilt from the shim's records: live blocks, a bounded history of
//! freed blocks (to explain double frees), totals, and the deallocation errors.
//!
//! Records of different threads arrive through different rings, so for one address an
//! allocation by one thread and the free by another may arrive in either order. Each record
//! carries an order key (`seq`, see `memcheck_wire::Alloc`): for one address, an allocation's
//! key is at most its free's, and the free's is below the next allocation's. A free is matched
//! with the block at that address whose allocation has the greatest key not above the free's,
//! among those whose key's low bits are the ones the free names (`memcheck_wire::Free::
//! alloc_key`): a free of the address's next allocation may be read before the free of the
//! allocation still live.

use crate::hash::AddrMap;
use crate::live::LiveTable;
use crate::profile::Profile;
use memcheck_wire::{is_alloc_key, Func, FREE_FORGETS_ALLOC_STACK, FREE_STACK_NOT_KEPT};
use std::collections::{HashMap, VecDeque};

/// A block still allocated.
#[derive(Clone, Debug)]
pub struct LiveBlock {
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    pub func: Func,
    pub seq: u64,
}

/// Who freed a block, and how (a valid free).
#[derive(Clone, Copy, Debug)]
pub struct Dealloc {
    pub func: Func,
    pub stack: u32,
    pub tid: u32,
    /// `memcheck_wire::FREE_*` bits.
    pub flags: u32,
}

/// A free read before the allocation it frees.
#[derive(Clone, Debug)]
struct PendingFree {
    seq: u64,
    alloc_key: u32,
    by: Dealloc,
}

#[derive(Clone, Debug)]
struct FreedBlock {
    block: LiveBlock,
    free_stack: u32,
    free_func: Func,
}

/// What a bad address was, as far as the heap knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrDescription {
    /// Inside (or at the start of) a live block.
    Live(BlockInfo),
    /// Inside a block freed earlier.
    Freed {
        block: BlockInfo,
        free_stack: u32,
        free_func: Func,
    },
    /// On a thread's stack (threads numbered from 1, as Valgrind does).
    Stack { thread: u32 },
    /// In a mapped file (a global of the program or a library).
    InModule {
        path: std::path::PathBuf,
        file_offset: u64,
    },
    /// Not stack'd, malloc'd or (recently) free'd.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub addr: u64,
    pub size: u64,
    pub offset: u64,
    pub alloc_stack: u32,
    pub func: Func,
}

/// Valgrind's error kinds for deallocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `InvalidFree`: double free, free of a non-heap or interior pointer, realloc of one.
    InvalidFree,
    /// `MismatchedFree`: deallocated by another family than it was allocated with.
    MismatchedFree,
}

#[derive(Clone, Debug)]
pub struct HeapError {
    pub kind: ErrorKind,
    /// The deallocation function called.
    pub func: Func,
    pub stack: u32,
    pub addr: u64,
    pub what: AddrDescription,
    /// Occurrences from the same stack.
    pub count: u64,
    pub tid: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapTotals {
    pub allocs: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub in_use_bytes: u64,
    pub in_use_blocks: u64,
}

/// How much of the freed blocks is held back from reuse, so that a later free of one is still
/// recognised and explained: at most `vol` bytes (Valgrind's --freelist-vol) and `blocks`
/// blocks (--freelist-blocks) per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freelist {
    pub vol: u64,
    pub blocks: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Heap {
    live: LiveTable,
    /// Older blocks at an address whose free has not arrived yet (rare: cross-thread reuse).
    shadowed: AddrMap<u64, Vec<LiveBlock>>,
    /// Frees whose allocation has not arrived yet (rare), by address.
    pending: AddrMap<u64, Vec<PendingFree>>,
    /// The allocation profile, when asked for (--profile and the outputs built on it).
    pub profile: Option<Box<Profile>>,
    freed: VecDeque<FreedBlock>,
    freed_bytes: u64,
    freelist: Freelist,
    pub allocs: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    /// Bytes and blocks live now, and the most bytes ever live.
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub peak_bytes: u64,
    errors: Vec<HeapError>,
    error_index: HashMap<(ErrorKind, u32), usize>,
}

impl Heap {
    pub fn new(freelist: Freelist) -> Heap {
        Heap {
            freelist,
            ..Default::default()
        }
    }

    /// A new heap, keeping the allocation profile if `profile`, with its clock at `now_ms`.
    pub fn with_profile(freelist: Freelist, profile: bool, now_ms: u64) -> Heap {
        let mut h = Heap::new(freelist);
        if profile {
            let mut p = Profile::new();
            p.now_ms = now_ms;
            h.profile = Some(Box::new(p));
        }
        h
    }

    /// The heap a fork child starts with: its parent's live blocks and, as Valgrind's counters
    /// are in the memory the child copies, the parent's totals so far; not its errors.
    pub fn fork_child(&self) -> Heap {
        Heap {
            live: self.live.clone(),
            shadowed: self.shadowed.clone(),
            freed: self.freed.clone(),
            freed_bytes: self.freed_bytes,
            freelist: self.freelist,
            allocs: self.allocs,
            frees: self.frees,
            bytes_allocated: self.bytes_allocated,
            live_bytes: self.live_bytes,
            live_blocks: self.live_blocks,
            peak_bytes: self.peak_bytes,
            profile: self.profile.as_ref().map(|p| Box::new(p.fork_child())),
            ..Default::default()
        }
    }

    /// Starts loading what a record of `addr` will look up.
    #[inline(always)]
    pub fn prefetch(&self, addr: u64) {
        self.live.prefetch(addr);
    }

    pub fn alloc(&mut self, b: LiveBlock, tid: u32) {
        self.allocs += 1;
        self.bytes_allocated += b.size;
        self.live_bytes += b.size;
        self.live_blocks += 1;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        if let Some(p) = self.profile.as_mut() {
            p.on_alloc(b.stack, b.func, b.addr, b.size, tid);
        }
        if let Some(list) = (!self.pending.is_empty())
            .then(|| self.pending.get_mut(&b.addr))
            .flatten()
        {
            // A free of this block by another thread arrived first.
            if let Some(i) = list
                .iter()
                .enumerate()
                .filter(|(_, p)| p.seq >= b.seq && is_alloc_key(b.seq, p.alloc_key))
                .min_by_key(|(_, p)| p.seq)
                .map(|(i, _)| i)
            {
                let f = list.swap_remove(i);
                if list.is_empty() {
                    self.pending.remove(&b.addr);
                }
                self.retire(b, f.by);
                return;
            }
        }
        match self.live.remove(b.addr) {
            None => {
                self.live.insert(b);
            }
            Some(old) => {
                let (older, newer) = if old.seq < b.seq { (old, b) } else { (b, old) };
                self.shadowed.entry(older.addr).or_default().push(older);
                self.live.insert(newer);
            }
        }
    }

    /// A valid deallocation (the shim checked the block header), with its order key and the
    /// allocation key it names (`memcheck_wire::Free::alloc_key`).
    pub fn free(&mut self, addr: u64, seq: u64, alloc_key: u32, by: Dealloc) {
        self.frees += 1;
        let freed_by = |b: &LiveBlock| b.seq <= seq && is_alloc_key(b.seq, alloc_key);
        // The common case, in one lookup: no older block waits at any address, and the live
        // block at this one is the one freed.
        if self.shadowed.is_empty() {
            if let Some(b) = self.live.remove(addr) {
                if freed_by(&b) {
                    self.retire(b, by);
                    return;
                }
                self.live.insert(b);
            }
        }
        let in_live = self.live.get(addr).is_some_and(freed_by);
        let shadow_best = self.shadowed.get(&addr).and_then(|v| {
            v.iter()
                .enumerate()
                .filter(|(_, b)| freed_by(b))
                .max_by_key(|(_, b)| b.seq)
                .map(|(i, b)| (i, b.seq))
        });
        let live_seq = self.live.get(addr).map(|b| b.seq).unwrap_or(0);
        let block = match (in_live, shadow_best) {
            (true, Some((_, s))) if s < live_seq => self.take_live(addr),
            (true, None) => self.take_live(addr),
            (_, Some((i, _))) => {
                let v = self.shadowed.get_mut(&addr).expect("shadowed entry");
                let b = v.swap_remove(i);
                if v.is_empty() {
                    self.shadowed.remove(&addr);
                }
                b
            }
            (false, None) => {
                self.pending
                    .entry(addr)
                    .or_default()
                    .push(PendingFree { seq, alloc_key, by });
                return;
            }
        };
        self.retire(block, by);
    }

    fn take_live(&mut self, addr: u64) -> LiveBlock {
        let b = self.live.remove(addr).expect("live block");
        if let Some(v) = self.shadowed.get_mut(&addr) {
            if let Some(i) = v
                .iter()
                .enumerate()
                .max_by_key(|(_, b)| b.seq)
                .map(|(i, _)| i)
            {
                let promoted = v.swap_remove(i);
                self.live.insert(promoted);
            }
            if v.is_empty() {
                self.shadowed.remove(&addr);
            }
        }
        b
    }

    /// Moves a freed block to the history, reporting a family mismatch.
    fn retire(&mut self, mut block: LiveBlock, by: Dealloc) {
        let Dealloc {
            func,
            stack,
            tid,
            flags,
        } = by;
        self.live_bytes = self.live_bytes.saturating_sub(block.size);
        self.live_blocks = self.live_blocks.saturating_sub(1);
        if let Some(p) = self.profile.as_mut() {
            p.on_free(block.stack, block.func, block.addr, block.size, tid);
        }
        if block.func.family() != func.family() {
            let what = AddrDescription::Live(info(&block, block.addr));
            self.error(
                ErrorKind::MismatchedFree,
                func,
                stack,
                block.addr,
                what,
                tid,
            );
        }
        self.freed_bytes += block.size;
        // What --keep-stacktraces keeps of a freed block.
        if flags & FREE_FORGETS_ALLOC_STACK != 0 {
            block.stack = 0;
        }
        self.freed.push_back(FreedBlock {
            block,
            free_stack: if flags & FREE_STACK_NOT_KEPT != 0 {
                0
            } else {
                stack
            },
            free_func: func,
        });
        while (self.freed_bytes > self.freelist.vol
            || self.freed.len() as u64 > self.freelist.blocks)
            && self.freed.len() > 1
        {
            let old = self.freed.pop_front().expect("non-empty");
            self.freed_bytes -= old.block.size;
        }
    }

    /// A deallocation of an address that is no live block.
    pub fn bad_free(&mut self, addr: u64, size: u64, func: Func, stack: u32, tid: u32) {
        // Valgrind counts every call as a free, valid or not, and a realloc as an allocation too.
        self.frees += 1;
        if matches!(func, Func::Realloc | Func::Reallocarray) {
            self.allocs += 1;
            self.bytes_allocated += size;
        }
        if let Some(&i) = self.error_index.get(&(ErrorKind::InvalidFree, stack)) {
            self.errors[i].count += 1;
            return;
        }
        let what = self.describe(addr);
        self.error(ErrorKind::InvalidFree, func, stack, addr, what, tid);
    }

    /// What the heap knows of `addr`: a live block containing it, else the most recently freed
    /// block containing it.
    pub fn describe(&self, addr: u64) -> AddrDescription {
        let inside = |b: &LiveBlock| addr >= b.addr && (addr < b.addr + b.size || addr == b.addr);
        if let Some(b) = self
            .live
            .values()
            .chain(self.shadowed.values().flatten())
            .find(|b| inside(b))
        {
            return AddrDescription::Live(info(b, addr));
        }
        if let Some(f) = self.freed.iter().rev().find(|f| inside(&f.block)) {
            return AddrDescription::Freed {
                block: info(&f.block, addr),
                free_stack: f.free_stack,
                free_func: f.free_func,
            };
        }
        AddrDescription::Unknown
    }

    fn error(
        &mut self,
        kind: ErrorKind,
        func: Func,
        stack: u32,
        addr: u64,
        what: AddrDescription,
        tid: u32,
    ) {
        if let Some(&i) = self.error_index.get(&(kind, stack)) {
            self.errors[i].count += 1;
            return;
        }
        self.error_index.insert((kind, stack), self.errors.len());
        self.errors.push(HeapError {
            kind,
            func,
            stack,
            addr,
            what,
            count: 1,
            tid,
        });
    }

    pub fn errors(&self) -> &[HeapError] {
        &self.errors
    }

    pub fn errors_mut(&mut self) -> &mut [HeapError] {
        &mut self.errors
    }

    /// The blocks allocated now.
    pub fn live_blocks(&self) -> Vec<LiveBlock> {
        let mut v: Vec<LiveBlock> = self
            .live
            .values()
            .chain(self.shadowed.values().flatten())
            .cloned()
            .collect();
        v.sort_unstable_by_key(|b| (b.seq, b.addr));
        v
    }

    pub fn totals(&self) -> HeapTotals {
        let live = self.live_blocks();
        HeapTotals {
            allocs: self.allocs,
            frees: self.frees,
            bytes_allocated: self.bytes_allocated,
            in_use_bytes: live.iter().map(|b| b.size).sum(),
            in_use_blocks: live.len() as u64,
        }
    }
}

fn info(b: &LiveBlock, addr: u64) -> BlockInfo {
    BlockInfo {
        addr: b.addr,
        size: b.size,
        offset: addr - b.addr,
        alloc_stack: b.stack,
        func: b.func,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memcheck_wire::alloc_key;

    /// A heap whose freelist holds every freed block of these tests.
    fn roomy_heap() -> Heap {
        Heap::new(Freelist {
            vol: 1 << 20,
            blocks: 1 << 20,
        })
    }

    fn by(func: Func, stack: u32, tid: u32) -> Dealloc {
        Dealloc {
            func,
            stack,
            tid,
            flags: 0,
        }
    }

    fn blk(addr: u64, seq: u64, func: Func) -> LiveBlock {
        LiveBlock {
            addr,
            size: 10,
            stack: 1,
            func,
            seq,
        }
    }

    #[test]
    fn free_before_alloc_from_another_thread_matches_by_seq() {
        let mut h = roomy_heap();
        // Thread B's free (seq 5) is read before thread A's allocation (seq 3).
        h.free(0x1000, 5, alloc_key(3), by(Func::Free, 2, 2));
        h.alloc(blk(0x1000, 3, Func::Malloc), 1);
        // And the address is reused (seq 7) by A.
        h.alloc(blk(0x1000, 7, Func::Malloc), 1);
        assert_eq!(h.live_blocks().len(), 1);
        assert_eq!(h.live_blocks()[0].seq, 7);
        assert!(h.errors().is_empty());
    }

    #[test]
    fn an_allocation_and_its_free_may_share_a_key() {
        let mut h = roomy_heap();
        // In one epoch (key 5): thread A allocates, thread B frees, read in either order.
        h.alloc(blk(0x1000, 5, Func::Malloc), 1);
        h.free(0x1000, 5, alloc_key(5), by(Func::Free, 2, 2));
        h.free(0x2000, 5, alloc_key(5), by(Func::Free, 2, 2));
        h.alloc(blk(0x2000, 5, Func::Malloc), 1);
        assert!(h.live_blocks().is_empty());
        // The address goes back to glibc in a later epoch: its reuse (key 6), read before the
        // free, stays live.
        h.alloc(blk(0x3000, 6, Func::Malloc), 1);
        h.alloc(blk(0x3000, 5, Func::Malloc), 1);
        h.free(0x3000, 5, alloc_key(5), by(Func::Free, 2, 2));
        let live = h.live_blocks();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].seq, 6);
        assert!(h.errors().is_empty());
    }

    #[test]
    fn a_free_of_the_next_life_of_an_address_waits_for_its_allocation() {
        let mut h = roomy_heap();
        // Thread A allocates (key 1) and thread B frees (key 2); B gets the address back from
        // glibc (key 3) and A frees it (key 4). A's records are read first: its free names the
        // allocation of key 3, not the live one of key 1.
        h.alloc(blk(0x1000, 1, Func::NewArray), 1);
        h.free(0x1000, 4, alloc_key(3), by(Func::Free, 2, 1));
        assert_eq!(h.live_blocks().len(), 1);
        h.free(0x1000, 2, alloc_key(1), by(Func::DeleteArray, 3, 2));
        h.alloc(blk(0x1000, 3, Func::Malloc), 2);
        assert!(h.live_blocks().is_empty());
        assert!(h.errors().is_empty(), "{:?}", h.errors());
        assert_eq!((h.totals().allocs, h.totals().frees), (2, 2));
    }

    #[test]
    fn reuse_read_before_free_keeps_the_newer_block() {
        let mut h = roomy_heap();
        h.alloc(blk(0x1000, 1, Func::Malloc), 1);
        h.alloc(blk(0x1000, 4, Func::Malloc), 1); // reuse read before the free (seq 2)
        h.free(0x1000, 2, alloc_key(1), by(Func::Free, 2, 2));
        let live = h.live_blocks();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].seq, 4);
    }

    #[test]
    fn mismatch_and_double_free_are_reported_once_per_stack() {
        let mut h = roomy_heap();
        h.alloc(blk(0x1000, 1, Func::NewArray), 1);
        h.free(0x1000, 2, alloc_key(1), by(Func::Delete, 9, 1));
        assert_eq!(h.errors().len(), 1);
        assert_eq!(h.errors()[0].kind, ErrorKind::MismatchedFree);
        h.bad_free(0x1000, 0, Func::Free, 8, 1);
        h.bad_free(0x1000, 0, Func::Free, 8, 1);
        assert_eq!(h.errors().len(), 2);
        assert_eq!(h.errors()[1].count, 2);
        assert!(matches!(h.errors()[1].what, AddrDescription::Freed { .. }));
        assert_eq!(h.totals().in_use_blocks, 0);
        assert_eq!(h.totals().allocs, 1);
        // Valgrind counts the invalid calls as frees too.
        assert_eq!(h.totals().frees, 3);
    }
}
