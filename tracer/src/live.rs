//! A process's live blocks by address: an open-addressing table (linear probing, backward-shift
//! deletion, at most 70% full) of the blocks themselves.
//!
//! Unlike a standard hash map, the slot an address starts at is known before the lookup, so
//! the tracer can prefetch the slots of the records it is about to apply (see
//! `Shm::drain`): python keeps up to 370,000 blocks live, a 16 MiB table, and each record's
//! lookup was a wait on memory (the tracer's time per record on python fell by a third).

use crate::heap::LiveBlock;
use memcheck_wire::Func;

const EMPTY: LiveBlock = LiveBlock {
    addr: 0,
    size: 0,
    stack: 0,
    func: Func::Malloc,
    seq: 0,
};

#[derive(Clone, Debug, Default)]
pub struct LiveTable {
    /// `addr == 0`: an empty slot (no block starts at address 0).
    slots: Vec<LiveBlock>,
    len: usize,
    /// 64 - log2(slots.len()).
    shift: u32,
}

impl LiveTable {
    #[inline(always)]
    fn home(&self, addr: u64) -> usize {
        (addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Starts loading the slot where a lookup of `addr` begins.
    #[inline(always)]
    pub fn prefetch(&self, addr: u64) {
        if !self.slots.is_empty() {
            let p = &self.slots[self.home(addr)] as *const LiveBlock as *const i8;
            // SAFETY: a prefetch never faults.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p) };
        }
    }

    fn find(&self, addr: u64) -> Option<usize> {
        if self.len == 0 || addr == 0 {
            return None;
        }
        let mut i = self.home(addr);
        loop {
            let a = self.slots[i].addr;
            if a == addr {
                return Some(i);
            }
            if a == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
    }

    pub fn get(&self, addr: u64) -> Option<&LiveBlock> {
        self.find(addr).map(|i| &self.slots[i])
    }

    /// Inserts `b`, returning the block it replaces at the same address.
    pub fn insert(&mut self, b: LiveBlock) -> Option<LiveBlock> {
        debug_assert!(b.addr != 0);
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        let mut i = self.home(b.addr);
        loop {
            let a = self.slots[i].addr;
            if a == b.addr {
                return Some(std::mem::replace(&mut self.slots[i], b));
            }
            if a == 0 {
                self.slots[i] = b;
                self.len += 1;
                return None;
            }
            i = (i + 1) & self.mask();
        }
    }

    pub fn remove(&mut self, addr: u64) -> Option<LiveBlock> {
        let mut hole = self.find(addr)?;
        let removed = self.slots[hole].clone();
        // Backward shift: move up each following block whose probe sequence passes the hole.
        let mask = self.mask();
        let mut k = hole;
        loop {
            k = (k + 1) & mask;
            let a = self.slots[k].addr;
            if a == 0 {
                break;
            }
            let home = self.home(a);
            // The block at k stays if its home lies cyclically in (hole, k].
            if k.wrapping_sub(home) & mask < k.wrapping_sub(hole) & mask {
                continue;
            }
            self.slots[hole] = self.slots[k].clone();
            hole = k;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        Some(removed)
    }

    pub fn values(&self) -> impl Iterator<Item = &LiveBlock> {
        self.slots.iter().filter(|b| b.addr != 0)
    }

    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        self.shift = 64 - n.trailing_zeros();
        self.len = 0;
        for b in old.into_iter().filter(|b| b.addr != 0) {
            self.insert(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn blk(addr: u64, seq: u64) -> LiveBlock {
        LiveBlock {
            addr,
            size: addr & 0xff,
            stack: 1,
            func: Func::Malloc,
            seq,
        }
    }

    #[test]
    fn agrees_with_a_hash_map_under_churn() {
        let mut t = LiveTable::default();
        let mut m: HashMap<u64, u64> = HashMap::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct addresses, 16 apart: long probe runs, many removals in them.
            let addr = 0x10000 + (x % 3000) * 16;
            if x & 0x300 == 0 {
                assert_eq!(
                    t.remove(addr).map(|b| b.seq),
                    m.remove(&addr),
                    "step {step}"
                );
            } else {
                assert_eq!(
                    t.insert(blk(addr, step)).map(|b| b.seq),
                    m.insert(addr, step),
                    "step {step}"
                );
            }
            assert_eq!(t.len(), m.len());
        }
        for (a, s) in &m {
            assert_eq!(t.get(*a).map(|b| b.seq), Some(*s));
        }
        assert_eq!(t.values().count(), m.len());
        assert!(t.get(0x10008).is_none());
    }
}
