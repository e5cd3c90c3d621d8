//! The allocation profile of one process, kept as the records arrive: per allocation site
//! (stack and allocator function) the number of allocations, bytes allocated, temporary
//! allocations (freed before any other allocation of the same thread, heaptrack's definition),
//! bytes live at the heap's peak, and, at exit, bytes still allocated; and over time, the heap
//! in use and the process's RSS.
//!
//! The bytes each site has live at the peak are kept lazily: a new peak bumps an epoch, and a
//! site remembers its live bytes as of the latest peak the first time it changes after it.

use crate::hash::AddrMap;
use memcheck_wire::Func;

/// Totals of one allocation site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteStats {
    pub allocations: u64,
    pub bytes: u64,
    pub temporary: u64,
    /// Bytes of this site live when the heap reached its peak.
    pub peak_bytes: u64,
    /// Bytes of this site still allocated at exit.
    pub leaked_bytes: u64,
    /// Bytes live now (during the run).
    live_bytes: u64,
    peak_epoch: u64,
}

/// One point of the heap-over-time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since the tracer started the program.
    pub ms: u64,
    pub heap_bytes: u64,
    /// Resident set size of the process (0 where it could not be read).
    pub rss_bytes: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub sites: AddrMap<(u32, Func), SiteStats>,
    pub heap_bytes: u64,
    pub peak_heap_bytes: u64,
    pub peak_ms: u64,
    pub peak_rss_bytes: u64,
    pub temporary: u64,
    pub samples: Vec<Sample>,
    epoch: u64,
    /// Per thread: the address of its last allocation, while no other allocation followed.
    last_alloc: AddrMap<u32, u64>,
    /// The tracer's clock (ms since the start), set as records are read, so that a replayed
    /// trace gives the same times as the run.
    pub now_ms: u64,
}

impl SiteStats {
    /// Brings `peak_bytes` up to the latest peak before this site changes.
    fn sync(&mut self, epoch: u64) {
        if self.peak_epoch != epoch {
            self.peak_bytes = self.live_bytes;
            self.peak_epoch = epoch;
        }
    }
}

impl Profile {
    pub fn new() -> Profile {
        Profile::default()
    }

    /// A fork child's profile starts from its parent's.
    pub fn fork_child(&self) -> Profile {
        let mut p = self.clone();
        p.last_alloc = AddrMap::default();
        p
    }

    pub fn on_alloc(&mut self, stack: u32, func: Func, addr: u64, size: u64, tid: u32) {
        let epoch = self.epoch;
        let s = self.sites.entry((stack, func)).or_default();
        s.sync(epoch);
        s.allocations += 1;
        s.bytes += size;
        s.live_bytes += size;
        self.heap_bytes += size;
        self.last_alloc.insert(tid, addr);
        if self.heap_bytes > self.peak_heap_bytes {
            self.peak_heap_bytes = self.heap_bytes;
            self.peak_ms = self.now_ms;
            self.epoch += 1;
            // This site changed at the peak: its value now is its value at the peak.
            let s = self.sites.get_mut(&(stack, func)).expect("just inserted");
            s.peak_bytes = s.live_bytes;
            s.peak_epoch = self.epoch;
        }
    }

    pub fn on_free(&mut self, stack: u32, func: Func, addr: u64, size: u64, tid: u32) {
        let epoch = self.epoch;
        let temporary = self.last_alloc.get(&tid) == Some(&addr);
        if temporary {
            self.last_alloc.remove(&tid);
            self.temporary += 1;
        }
        if let Some(s) = self.sites.get_mut(&(stack, func)) {
            s.sync(epoch);
            s.live_bytes = s.live_bytes.saturating_sub(size);
            if temporary {
                s.temporary += 1;
            }
        }
        self.heap_bytes = self.heap_bytes.saturating_sub(size);
    }

    /// Records a point of the series (the tracer calls it at least every 10 ms).
    pub fn sample(&mut self, rss_bytes: u64) {
        let ms = self.now_ms;
        self.peak_rss_bytes = self.peak_rss_bytes.max(rss_bytes);
        self.samples.push(Sample {
            ms,
            heap_bytes: self.heap_bytes,
            rss_bytes,
        });
    }

    /// The final per-site numbers, with the blocks still allocated at exit.
    pub fn finish(
        &self,
        live: impl Iterator<Item = (u32, Func, u64)>,
    ) -> AddrMap<(u32, Func), SiteStats> {
        let mut sites = self.sites.clone();
        for s in sites.values_mut() {
            s.sync(self.epoch);
        }
        for (stack, func, size) in live {
            if let Some(s) = sites.get_mut(&(stack, func)) {
                s.leaked_bytes += size;
            }
        }
        sites
    }
}

/// The resident set size of a process, from /proc/PID/statm.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_temporary_and_leaked_per_site() {
        let mut p = Profile::new();
        let (a, b) = ((1, Func::Malloc), (2, Func::Malloc));
        p.on_alloc(a.0, a.1, 0x100, 100, 1); // a: 100
        p.on_alloc(b.0, b.1, 0x200, 50, 1); // peak 150: a 100, b 50
        p.on_free(a.0, a.1, 0x100, 100, 1); // not temporary (b came between)
        p.on_alloc(b.0, b.1, 0x300, 10, 1);
        p.on_free(b.0, b.1, 0x300, 10, 1); // temporary
        p.on_alloc(a.0, a.1, 0x400, 20, 2);
        let sites = p.finish([(b.0, b.1, 50), (a.0, a.1, 20)].into_iter());
        assert_eq!(p.peak_heap_bytes, 150);
        assert_eq!(sites[&a].peak_bytes, 100);
        assert_eq!(sites[&b].peak_bytes, 50);
        assert_eq!(sites[&b].temporary, 1);
        assert_eq!(sites[&a].temporary, 0);
        assert_eq!(p.temporary, 1);
        assert_eq!(sites[&a].allocations, 2);
        assert_eq!(sites[&a].bytes, 120);
        assert_eq!(sites[&a].leaked_bytes, 20);
    }
}
