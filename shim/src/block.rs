//! The 16-byte header the shim puts in front of every block it hands out:
//!
//! ```text
//! [ key: u16 | size: u48 ][ tag: u64 ][ user data ... ]
//!                                      ^ pointer returned to the program
//! ```
//!
//! `key` is the low 16 bits of the allocation's order key (see `order`), which a free record
//! carries so that the tracer knows which allocation of the address it frees (no block is 2^48
//! bytes: user addresses have 47 bits).
//!
//! `tag` mixes the user pointer with a per-process secret (upper 48 bits) and keeps the block's
//! state in its low 16 bits: live or freed, allocator family, whether the block is recorded, and
//! the distance back to glibc's pointer for over-aligned blocks. A pointer whose tag does not
//! match is no block of ours (a stack, global or interior pointer, or a block long since given
//! back to glibc, whose free-list links overwrote the header): it never reaches glibc.

use crate::real;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

pub const HEADER: usize = 16;

const STATE_LIVE: u64 = 1;
const STATE_FREED: u64 = 2;
const STATE_MASK: u64 = 3;
const FAMILY_SHIFT: u64 = 2;
const UNTRACKED: u64 = 1 << 4;
const SHIFT_SHIFT: u64 = 8;
const SIZE_BITS: u64 = 48;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;

static SECRET: AtomicU64 = AtomicU64::new(0);

pub fn init_secret(seed: u64) {
    SECRET.store(seed | 1, Ordering::Relaxed);
}

#[inline(always)]
fn check(p: usize) -> u64 {
    ((p as u64) ^ SECRET.load(Ordering::Relaxed)).wrapping_mul(0x9e37_79b9_7f4a_7c15) & !0xffff
}

/// A block as seen through its header.
#[derive(Clone, Copy)]
pub struct Block {
    pub user: usize,
    pub size: usize,
    tag: u64,
    /// The low 16 bits of the allocation's order key.
    key: u16,
}

impl Block {
    /// What a free record says of the allocation it frees (`memcheck_wire::Free::alloc_key`).
    pub fn alloc_key(&self) -> u32 {
        memcheck_wire::alloc_key(self.key as u64)
    }
    pub fn is_freed(&self) -> bool {
        self.tag & STATE_MASK == STATE_FREED
    }
    /// The allocator family code the block was allocated with.
    pub fn family(&self) -> u32 {
        ((self.tag >> FAMILY_SHIFT) & 3) as u32
    }
    pub fn tracked(&self) -> bool {
        self.tag & UNTRACKED == 0
    }
    /// glibc's pointer for this block.
    pub fn base(&self) -> *mut c_void {
        (self.user - (1usize << ((self.tag >> SHIFT_SHIFT) & 63))) as *mut c_void
    }
    /// Bytes the block occupies in glibc, for the quarantine budget.
    pub fn footprint(&self) -> usize {
        self.size + (1usize << ((self.tag >> SHIFT_SHIFT) & 63))
    }
    /// Marks the block freed (it stays recognisable while it is held back), filling it with
    /// --free-fill's byte if asked.
    pub fn mark_freed(&self) {
        if let Some(b) = crate::init::free_fill() {
            // The block's bytes are still ours: it is held back or about to go back to glibc.
            fill(self.user, b, self.size);
        }
        let t = (self.tag & !STATE_MASK) | STATE_FREED;
        // SAFETY: the header of a validated block is ours to write.
        unsafe { *((self.user - 8) as *mut u64) = t };
    }
}

/// Fills the `size` bytes of the block at `user` with `b` (--malloc-fill, --free-fill): out of
/// the hot path, which only tests whether to.
#[cold]
#[inline(never)]
fn fill(user: usize, b: u8, size: usize) {
    // SAFETY: the callers pass a block of ours and its size.
    unsafe { core::ptr::write_bytes(user as *mut u8, b, size) };
}

/// Bytes asked of glibc beyond the block. glibc lets a chunk in use keep its last 8 bytes in
/// the next chunk's header (its `prev_size` field), so without them the address of that header
/// would lie inside the block, and glibc's pointers to it (its top chunk, its free lists) would
/// count as interior pointers into the block for the leak scan.
const TAIL: usize = 8;

/// Allocates `size` bytes aligned to `align` (a power of two) behind a header; returns the
/// block and, for a tracked one, its order key (0 for others), read once glibc returned it.
#[inline]
pub fn alloc(
    size: usize,
    align: usize,
    zero: bool,
    family: u32,
    tracked: bool,
) -> (*mut c_void, u64) {
    let (offset, shift) = if align <= HEADER {
        (HEADER, 4)
    } else {
        (align, align.trailing_zeros() as u64)
    };
    let Some(total) = size
        .checked_add(offset + TAIL)
        .filter(|_| size as u64 <= SIZE_MASK)
    else {
        // What glibc says of a size no mapping can hold.
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        return (core::ptr::null_mut(), 0);
    };
    let base = real::alloc(total, if offset == HEADER { 16 } else { align }, zero);
    if base.is_null() {
        return (base, 0);
    }
    let key = if tracked { crate::order::key() } else { 0 };
    let user = base as usize + offset;
    let mut low = STATE_LIVE | ((family as u64) << FAMILY_SHIFT) | (shift << SHIFT_SHIFT);
    if !tracked {
        low |= UNTRACKED;
    }
    // SAFETY: the header lies inside the glibc block, just before the user pointer.
    unsafe {
        *((user - 16) as *mut u64) = size as u64 | key << SIZE_BITS;
        *((user - 8) as *mut u64) = check(user) | low;
    }
    if !zero {
        if let Some(b) = crate::init::malloc_fill() {
            fill(user, b, size);
        }
    }
    (user as *mut c_void, key)
}

/// Reads the header in front of `p`, if `p` is a block of ours (live or held back freed).
#[inline]
pub fn lookup(p: *mut c_void) -> Option<Block> {
    let user = p as usize;
    if user & 15 != 0 || user < 4096 {
        return None;
    }
    if user & 0xfff < HEADER && !readable(user - HEADER) {
        return None;
    }
    // SAFETY: the header is in the same page as `p` or was probed readable just above; a
    // pointer the program passes to free points into mapped memory unless the program is
    // already broken beyond what glibc survives.
    let (size, tag) = unsafe { (*((user - 16) as *const u64), *((user - 8) as *const u64)) };
    if tag & !0xffff != check(user) {
        return None;
    }
    let state = tag & STATE_MASK;
    if state != STATE_LIVE && state != STATE_FREED {
        return None;
    }
    Some(Block {
        user,
        size: (size & SIZE_MASK) as usize,
        tag,
        key: (size >> SIZE_BITS) as u16,
    })
}

/// Whether 16 bytes at `addr` can be read, without faulting (slow: a system call).
#[cold]
fn readable(addr: usize) -> bool {
    let mut buf = [0u8; 16];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: 16,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 16,
    };
    crate::sys::read_own_memory(&local, &remote) == 16
}
