//! Freed blocks held back from reuse (Valgrind's freelist), so that a second free of the same
//! pointer still finds a header that says "freed" and is recognised as a double free instead of
//! silently freeing a newer block at the same address.
//!
//! Each thread keeps its own FIFO (no shared lock). The limits are per process, as under
//! Valgrind: `--freelist-vol` bytes and `--freelist-blocks` blocks, shared out equally among
//! the threads that hold blocks. A thread comes down to a smaller share (other threads started
//! freeing) at its next free: an idle thread keeps its older, larger share until then.
//!
//! The count limit is what keeps the quarantine cheap. Every block held back is one the
//! program's next allocations do not get: they get blocks freed long ago instead, out of the
//! caches. Holding 65,536 small blocks (python's, well under Valgrind's 20 MB) made python run
//! 20% slower than holding 4,096, which stay in the second-level cache. A block
//! whose header was overwritten by glibc after its release is still recognised by the tracer,
//! which keeps the same number of freed blocks: only a free through a stale pointer to an
//! address glibc has handed out again goes unnoticed.
//!
//! The block released to glibc is the one held longest, and glibc's `free` stalls on reading
//! its chunk header; the headers of the blocks a few places further in line are prefetched.

use crate::{order, real};
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The most entries a thread's ring has, whatever `--freelist-blocks` says (16 MiB of ring).
const MAX_SLOTS: usize = 1 << 20;
/// How many releases ahead a held block's chunk header is prefetched.
const AHEAD: usize = 8;

/// Threads holding blocks; each gets an equal share of the limits.
static HOLDERS: AtomicUsize = AtomicUsize::new(0);

/// In a fork child: only the forking thread's quarantine exists there.
pub fn after_fork(holds: bool) {
    HOLDERS.store(holds as usize, Ordering::Relaxed);
}

#[inline(always)]
fn prefetch(addr: usize) {
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
}

/// Bits of an entry's second word that hold the block's size; the others hold the low bits of
/// its free's order key.
const SIZE_BITS: u32 = 64 - order::LOW_BITS;

/// Gives a freed block (freed with order key `key`, or its low bits) back to glibc: the only
/// way a block the program freed goes back, so that glibc never hands out an address again
/// before the epoch has moved past its free (see `order`).
///
/// # Safety
/// `base` is the glibc pointer of a block released exactly once.
#[inline]
pub unsafe fn give_back(base: *mut c_void, key: u64) {
    order::before_release(key);
    // SAFETY: guaranteed by the caller.
    unsafe { real::__libc_free(base) };
}

pub struct Quarantine {
    /// (base pointer, bytes | free's order key << SIZE_BITS) ring of `mask + 1` entries;
    /// allocated on first use.
    entries: *mut (usize, usize),
    mask: usize,
    head: usize,
    len: usize,
    bytes: usize,
    registered: bool,
}

impl Quarantine {
    pub const fn new() -> Quarantine {
        Quarantine {
            entries: core::ptr::null_mut(),
            mask: 0,
            head: 0,
            len: 0,
            bytes: 0,
            registered: false,
        }
    }

    /// Whether this thread holds blocks (and counts among the limits' sharers).
    pub fn holds(&self) -> bool {
        self.registered
    }

    /// Holds `base` (a glibc pointer of `bytes` bytes, freed with order key `key`) back,
    /// releasing the oldest blocks to glibc while this thread's share of the process limits
    /// (`vol` bytes, `blocks` blocks) is exceeded.
    pub fn push(&mut self, base: *mut c_void, bytes: usize, key: u64, vol: usize, blocks: usize) {
        if self.entries.is_null() {
            let slots = blocks.clamp(1, MAX_SLOTS).next_power_of_two();
            // SAFETY: plain glibc allocation of the ring.
            self.entries = unsafe { real::__libc_malloc(slots * 16) } as *mut (usize, usize);
            if self.entries.is_null() {
                // SAFETY: base is a live glibc block owned by the caller.
                unsafe { give_back(base, key) };
                return;
            }
            self.mask = slots - 1;
            self.registered = true;
            HOLDERS.fetch_add(1, Ordering::Relaxed);
        }
        let holders = HOLDERS.load(Ordering::Relaxed).max(1);
        let (vol, blocks) = (vol / holders, (blocks / holders).min(self.mask + 1));
        // Down to this thread's share, which shrinks as other threads start freeing.
        while self.len > 0 && (self.len >= blocks || self.bytes + bytes > vol) {
            self.pop();
        }
        if bytes > vol || bytes >> SIZE_BITS != 0 || blocks == 0 {
            // SAFETY: base is a live glibc block owned by the caller.
            unsafe { give_back(base, key) };
            return;
        }
        let word = bytes | (key as usize) << SIZE_BITS;
        // SAFETY: the index is within the ring.
        unsafe { *self.entries.add((self.head + self.len) & self.mask) = (base as usize, word) };
        self.len += 1;
        self.bytes += bytes;
    }

    fn pop(&mut self) {
        if self.len > AHEAD {
            // SAFETY: the index is within the ring and the entry is a held block.
            let (ahead, _) = unsafe { *self.entries.add((self.head + AHEAD) & self.mask) };
            // glibc reads the chunk size just below the pointer and writes the free-list links
            // at it.
            prefetch(ahead.wrapping_sub(8));
            prefetch(ahead);
        }
        // SAFETY: len > 0, so the head entry is a held block.
        let (base, word) = unsafe { *self.entries.add(self.head) };
        self.head = (self.head + 1) & self.mask;
        self.len -= 1;
        self.bytes -= word & ((1 << SIZE_BITS) - 1);
        // SAFETY: the block was held back by push and is released exactly once.
        unsafe { give_back(base as *mut c_void, (word >> SIZE_BITS) as u64) };
    }

    /// Releases every held block and the ring (thread exit), and leaves the limits to the
    /// other threads.
    pub fn flush(&mut self) {
        while self.len > 0 {
            self.pop();
        }
        if self.registered {
            self.registered = false;
            HOLDERS.fetch_sub(1, Ordering::Relaxed);
        }
        if !self.entries.is_null() {
            // SAFETY: the ring was allocated by push and nothing is held in it any more.
            unsafe { real::__libc_free(self.entries as *mut c_void) };
            self.entries = core::ptr::null_mut();
            self.head = 0;
        }
    }
}
