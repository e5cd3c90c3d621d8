//! Stack interning: each distinct stack is sent to the tracer once; records carry its id.
//!
//! A lock-free, insert-only open-addressing table of 64-bit stack hashes shared by the threads
//! of a process; a stack's id is its slot index plus the number of slots of the earlier tables
//! plus one. The thread that inserts a hash sends the stack's frames.
//!
//! A stack's slot is random in the table, so a lookup is a cache miss unless the table is
//! small: it starts at 512 KiB and a table three quarters full is followed by one twice its
//! size (the 8 MiB table of 1M slots it replaced took as much time as the unwinding on gcc,
//! nearly all of it waiting for that one load). The new table starts empty: a stack is sent
//! again, under a new id, the first time it is met after the switch, and the tracer maps the
//! new id to the first. Past the last table, stacks get fresh ids and are sent every time.
//! Each thread keeps the ids of the stacks it saw last in a small direct-mapped cache in front.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Slots of the first table; table `g` has `FIRST << g`.
const FIRST: usize = 1 << 16;
/// Tables at most: the last has 64M slots (512 MiB, mapped as needed).
const TABLES: usize = 11;
const MAX_PROBES: usize = 128;

const fn slots(g: usize) -> usize {
    FIRST << g
}

/// Ids of the tables before table `g`.
const fn base(g: usize) -> usize {
    FIRST * ((1 << g) - 1)
}

static TABLE: [AtomicPtr<AtomicU64>; TABLES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; TABLES];
static USED: [AtomicUsize; TABLES] = [const { AtomicUsize::new(0) }; TABLES];
/// The table new stacks go into.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// A table could not be mapped: no more tries (each is three system calls).
static NO_MORE: AtomicBool = AtomicBool::new(false);
static OVERFLOW: AtomicU32 = AtomicU32::new(base(TABLES) as u32 + 1);

/// Maps table `g`: private (a fork child gets its own copy) memory of a memfd named
/// `memcheck-stacks`, so that the leak scan recognises it as memcheck's and skips it. Null on
/// failure.
fn map(g: usize) -> *mut AtomicU64 {
    let len = slots(g) * 8;
    let fd = crate::sys::memfd(b"memcheck-stacks\0", len);
    if fd < 0 {
        return core::ptr::null_mut();
    }
    let p = crate::sys::mmap(
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        fd,
    );
    crate::sys::close(fd);
    p as *mut AtomicU64
}

pub fn init() {
    TABLE[0].store(map(0), Ordering::Release);
}

/// Moves new stacks on from table `g` to the next one (first caller maps it).
#[cold]
fn grow(g: usize) {
    if g + 1 >= TABLES || CURRENT.load(Ordering::Acquire) != g || NO_MORE.load(Ordering::Relaxed) {
        return;
    }
    if TABLE[g + 1].load(Ordering::Acquire).is_null() {
        let p = map(g + 1);
        if p.is_null() {
            NO_MORE.store(true, Ordering::Relaxed);
            return;
        }
        if TABLE[g + 1]
            .compare_exchange(
                core::ptr::null_mut(),
                p,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            crate::sys::munmap(p as *mut u8, slots(g + 1) * 8);
        }
    }
    let _ = CURRENT.compare_exchange(g, g + 1, Ordering::AcqRel, Ordering::Relaxed);
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
    let h = hash(frames);
    let r = &mut recent[(h >> 20) as usize & (RECENT - 1)];
    if r.0 == h {
        return (r.1, false);
    }
    match intern_hash(h) {
        Some((id, new)) => {
            *r = (h, id);
            (id, new)
        }
        None => (OVERFLOW.fetch_add(1, Ordering::Relaxed), true),
    }
}

fn intern_hash(h: u64) -> Option<(u32, bool)> {
    let g = CURRENT.load(Ordering::Acquire);
    let t = TABLE[g].load(Ordering::Acquire);
    if t.is_null() {
        return None;
    }
    let mask = slots(g) - 1;
    let mut i = (h as usize >> 1) & mask;
    let id = |i: usize| (base(g) + i + 1) as u32;
    for _ in 0..MAX_PROBES {
        // SAFETY: i < slots(g), the length of table g.
        let slot = unsafe { &*t.add(i) };
        let v = slot.load(Ordering::Relaxed);
        if v == h {
            return Some((id(i), false));
        }
        if v == 0 {
            match slot.compare_exchange(0, h, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    if USED[g].fetch_add(1, Ordering::Relaxed) + 1 > slots(g) / 4 * 3 {
                        grow(g);
                    }
                    return Some((id(i), true));
                }
                Err(cur) if cur == h => return Some((id(i), false)),
                Err(_) => {}
            }
        }
        i = (i + 1) & mask;
    }
    grow(g);
    None
}
