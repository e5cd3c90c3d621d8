//! Freed blocks held back from reuse (Valgrind's freelist, `--freelist-vol`), so that a second
//! free of the same pointer still finds a header that says "freed" and is recognised as a
//! double free instead of silently freeing a newer block at the same address.
//!
//! Each thread keeps its own FIFO (no shared lock); its byte budget is the freelist volume.
//!
//! The block released to glibc is the one held longest: its memory is long out of the caches,
//! and glibc's `free` stalls on reading its chunk header. The headers of the blocks a few places
//! further in line are prefetched, so that by their turn they are in the cache.

use crate::real;
use core::ffi::c_void;

const SLOTS: usize = 1 << 16;
/// How many releases ahead a held block's chunk header is prefetched.
const AHEAD: usize = 8;

#[inline(always)]
fn prefetch(addr: usize) {
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
}

pub struct Quarantine {
    /// (base pointer, bytes) ring; allocated on first use.
    entries: *mut (usize, usize),
    head: usize,
    len: usize,
    bytes: usize,
}

impl Quarantine {
    pub const fn new() -> Quarantine {
        Quarantine {
            entries: core::ptr::null_mut(),
            head: 0,
            len: 0,
            bytes: 0,
        }
    }

    /// Holds `base` (a glibc pointer of `bytes` bytes) back, releasing the oldest blocks to glibc
    /// while the volume exceeds `vol`.
    pub fn push(&mut self, base: *mut c_void, bytes: usize, vol: usize) {
        if bytes > vol {
            // SAFETY: base is a live glibc block owned by the caller.
            unsafe { real::__libc_free(base) };
            return;
        }
        if self.entries.is_null() {
            // SAFETY: plain glibc allocation of the ring.
            self.entries = unsafe { real::__libc_malloc(SLOTS * 16) } as *mut (usize, usize);
            if self.entries.is_null() {
                // SAFETY: as above.
                unsafe { real::__libc_free(base) };
                return;
            }
        }
        while self.len == SLOTS || (self.len > 0 && self.bytes + bytes > vol) {
            self.pop();
        }
        // SAFETY: the index is within the SLOTS-entry ring.
        unsafe { *self.entries.add((self.head + self.len) % SLOTS) = (base as usize, bytes) };
        self.len += 1;
        self.bytes += bytes;
    }

    fn pop(&mut self) {
        if self.len > AHEAD {
            // SAFETY: the index is within the ring and the entry is a held block.
            let (ahead, _) = unsafe { *self.entries.add((self.head + AHEAD) % SLOTS) };
            // glibc reads the chunk size just below the pointer and writes the free-list links
            // at it.
            prefetch(ahead.wrapping_sub(8));
            prefetch(ahead);
        }
        // SAFETY: len > 0, so the head entry is a held block.
        let (base, bytes) = unsafe { *self.entries.add(self.head) };
        self.head = (self.head + 1) % SLOTS;
        self.len -= 1;
        self.bytes -= bytes;
        // SAFETY: the block was held back by push and is released exactly once.
        unsafe { real::__libc_free(base as *mut c_void) };
    }

    /// Releases every held block (thread exit).
    pub fn flush(&mut self) {
        while self.len > 0 {
            self.pop();
        }
    }
}
