//! Stack interning: each distinct stack is sent to the tracer once; records carry its id.
//!
//! A lock-free, insert-only open-addressing table of 64-bit stack hashes shared by the threads
//! of a process; a stack's id is its slot index plus one. The thread that inserts a hash sends
//! the stack's frames. When the table is full, stacks get fresh ids and are sent every time.
//!
//! The table is 8 MiB and a stack's slot is random in it: a lookup is a cache miss. Each thread
//! keeps the ids of the stacks it saw last in a small direct-mapped cache in front of it.

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

const SLOTS: usize = 1 << 20;
const MAX_PROBES: usize = 128;

static TABLE: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());
static OVERFLOW: AtomicU32 = AtomicU32::new(SLOTS as u32 + 1);

/// Maps the table: private (a fork child gets its own copy) memory of a memfd named
/// `memcheck-stacks`, so that the leak scan recognises it as memcheck's and skips it.
pub fn init() {
    let fd = crate::sys::memfd(b"memcheck-stacks\0", SLOTS * 8);
    if fd < 0 {
        return;
    }
    let p = crate::sys::mmap(
        SLOTS * 8,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        fd,
    );
    crate::sys::close(fd);
    TABLE.store(p as *mut AtomicU64, Ordering::Release);
}

/// The stack's hash: four independent lanes over the frames (one chain of multiplications
/// costs its latency per frame), mixed at the end. Never 0.
#[inline]
fn hash(frames: &[u64]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut l = [
        0x243f_6a88_85a3_08d3 ^ frames.len() as u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut chunks = frames.chunks_exact(4);
    for c in &mut chunks {
        for k in 0..4 {
            l[k] = (l[k].rotate_left(5) ^ c[k]).wrapping_mul(K);
        }
    }
    for (k, &f) in chunks.remainder().iter().enumerate() {
        l[k] = (l[k].rotate_left(5) ^ f).wrapping_mul(K);
    }
    let mut h = l[0] ^ l[1].rotate_left(16) ^ l[2].rotate_left(32) ^ l[3].rotate_left(48);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 32)) | 1
}

/// Entries of a thread's cache of stack ids.
pub const RECENT: usize = 1024;

/// A thread's recently seen stacks: (hash, id).
pub type Recent = [(u64, u32); RECENT];

/// Returns the stack's id and whether the caller must send its frames.
#[inline]
pub fn intern(recent: &mut Recent, frames: &[u64]) -> (u32, bool) {
    let t = TABLE.load(Ordering::Acquire);
    if t.is_null() {
        return (OVERFLOW.fetch_add(1, Ordering::Relaxed), true);
    }
    let h = hash(frames);
    let r = &mut recent[(h >> 20) as usize & (RECENT - 1)];
    if r.0 == h {
        return (r.1, false);
    }
    let (id, new) = intern_hash(t, h);
    if id <= SLOTS as u32 {
        *r = (h, id);
    }
    (id, new)
}

fn intern_hash(t: *mut AtomicU64, h: u64) -> (u32, bool) {
    let mut i = (h as usize >> 1) & (SLOTS - 1);
    for _ in 0..MAX_PROBES {
        // SAFETY: i < SLOTS and the table has SLOTS entries.
        let slot = unsafe { &*t.add(i) };
        let v = slot.load(Ordering::Relaxed);
        if v == h {
            return (i as u32 + 1, false);
        }
        if v == 0 {
            match slot.compare_exchange(0, h, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (i as u32 + 1, true),
                Err(cur) if cur == h => return (i as u32 + 1, false),
                Err(_) => {}
            }
        }
        i = (i + 1) & (SLOTS - 1);
    }
    (OVERFLOW.fetch_add(1, Ordering::Relaxed), true)
}
