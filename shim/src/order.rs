//! Order keys of records without a locked instruction per call.
//!
//! The tracer reads each thread's records from its own ring, so for one address it may read a
//! free by one thread before the allocation by another, or an allocation of a reused address
//! before the free that gave it back. What it needs, per address, is that an allocation's key
//! is at most its free's key, and that its free's key is below the next allocation's.
//!
//! A key is the process's epoch, a counter read (not changed) by every record: an allocation
//! reads it after glibc returned the block, a free before the block goes anywhere. The first
//! needs nothing more: whoever frees a block learned its address after the allocation, so reads
//! the same epoch or a later one. For the second, a freed block goes back to glibc only once
//! the epoch has moved past its free's key: whoever gets the address from glibc next reads a
//! greater epoch. Blocks wait in the freelist for thousands of frees, so the epoch has usually
//! moved on already; otherwise the releasing thread advances it. One shared counter taken by
//! every record (a locked add per call) cost 27% of the run time of a two-threaded
//! malloc/free loop, where its cache line went back and forth between the cores.

use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

static EPOCH: AtomicU64 = AtomicU64::new(1);

/// Bits of a key the freelist keeps with a held block (see `before_release`).
pub const LOW_BITS: u32 = 24;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;

/// The key of a record made now.
#[inline(always)]
pub fn key() -> u64 {
    // Not before the glibc call whose result the record describes.
    compiler_fence(Ordering::SeqCst);
    EPOCH.load(Ordering::Relaxed)
}

/// Before a block freed with key `key` (or only its low `LOW_BITS` bits) goes back to glibc:
/// moves the epoch past it unless it has moved already. Equal low bits with a greater epoch
/// (2^24 epochs later) only cost a needless advance.
#[inline(always)]
pub fn before_release(key: u64) {
    if EPOCH.load(Ordering::Relaxed) & LOW_MASK == key & LOW_MASK {
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }
    // The advance is made before glibc can hand the block out again.
    compiler_fence(Ordering::SeqCst);
}
