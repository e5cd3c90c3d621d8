//! Start-up. The first allocator call of a process image (often from the dynamic loader, before
//! libc or the shim's constructor ran) maps the tracer's shared memory, named by the
//! `MEMCHECK_SHM` variable read from `/proc/self/environ` with raw system calls. A process the
//! tracer does not trace (an exec'd program without `--trace-children=yes`, or memcheck not
//! running at all) runs in pass-through mode: plain glibc, no headers, no records.

use crate::{backtrace, block, real, stacks, sys, tls};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use memcheck_wire::{self as wire, Header};

pub const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
/// Recording.
pub const ACTIVE: u8 = 2;
/// Not traced: plain glibc.
pub const PASSTHROUGH: u8 = 3;
/// Traced, but the tracer is gone: headers still checked, nothing recorded.
pub const ORPHANED: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(UNINIT);
static SHM: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static DEPTH: AtomicU32 = AtomicU32::new(12);
static KEEP: AtomicU32 = AtomicU32::new(wire::KEEP_ALLOC | wire::KEEP_FREE);
static MALLOC_FILL: AtomicU32 = AtomicU32::new(0);
static FREE_FILL: AtomicU32 = AtomicU32::new(0);
static FREELIST_VOL: AtomicU64 = AtomicU64::new(20_000_000);
static FREELIST_BLOCKS: AtomicU64 = AtomicU64::new(0);
static TRACER: AtomicU32 = AtomicU32::new(0);
static THREAD_KEY: AtomicU32 = AtomicU32::new(u32::MAX);
/// The pid this process image recorded as: differs from getpid() in a vfork child, which
/// shares our memory and must not touch it.
static OWN_PID: AtomicU32 = AtomicU32::new(0);
static FREERES_DONE: AtomicU32 = AtomicU32::new(0);

#[inline(always)]
pub fn mode() -> u8 {
    let m = MODE.load(Ordering::Acquire);
    if m >= ACTIVE {
        m
    } else {
        init()
    }
}

pub fn shm() -> *mut u8 {
    SHM.load(Ordering::Relaxed)
}
pub fn depth() -> usize {
    DEPTH.load(Ordering::Relaxed) as usize
}
/// Whether stacks of kind `what` (`wire::KEEP_ALLOC`, `wire::KEEP_FREE`) are captured.
#[inline(always)]
pub fn keeps(what: u32) -> bool {
    KEEP.load(Ordering::Relaxed) & what != 0
}
/// The byte to fill allocated (not calloc'd) blocks with, if any (--malloc-fill).
#[inline(always)]
pub fn malloc_fill() -> Option<u8> {
    fill_byte(MALLOC_FILL.load(Ordering::Relaxed))
}
/// The byte to fill freed blocks with, if any (--free-fill).
#[inline(always)]
pub fn free_fill() -> Option<u8> {
    fill_byte(FREE_FILL.load(Ordering::Relaxed))
}
#[inline(always)]
fn fill_byte(v: u32) -> Option<u8> {
    (v & wire::FILL != 0).then_some(v as u8)
}
pub fn freelist_vol() -> usize {
    FREELIST_VOL.load(Ordering::Relaxed) as usize
}
pub fn freelist_blocks() -> usize {
    FREELIST_BLOCKS.load(Ordering::Relaxed) as usize
}

/// Stop recording for good (the tracer is gone).
pub fn orphan() {
    MODE.store(ORPHANED, Ordering::Release);
}

pub fn reader_alive() -> bool {
    let shm = shm();
    if shm.is_null() {
        return false;
    }
    // SAFETY: the header is at the start of the mapping.
    let h = unsafe { &*(shm as *const Header) };
    h.reader_gone.load(Ordering::Acquire) == 0 && sys::alive(TRACER.load(Ordering::Relaxed))
}

#[cold]
fn init() -> u8 {
    if MODE
        .compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        loop {
            let m = MODE.load(Ordering::Acquire);
            if m >= ACTIVE {
                return m;
            }
            core::hint::spin_loop();
        }
    }
    let m = setup();
    MODE.store(m, Ordering::Release);
    m
}

fn setup() -> u8 {
    let mut path = [0u8; 256];
    let Some(n) = env_value(b"MEMCHECK_SHM=", &mut path[..255]) else {
        return PASSTHROUGH;
    };
    path[n] = 0;
    let fd = sys::open_rw(&path[..=n]);
    if fd < 0 {
        return PASSTHROUGH;
    }
    let shm = sys::mmap(
        wire::SHM_SIZE,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        fd,
    );
    sys::close(fd);
    if shm.is_null() {
        return PASSTHROUGH;
    }
    // SAFETY: the header is at the start of the mapping.
    let h = unsafe { &*(shm as *const Header) };
    let pid = sys::getpid();
    // SAFETY: the bitmap lies within the mapping.
    let traced = unsafe { wire::pid_is_traced(shm.add(wire::BITMAP_OFFSET), pid) };
    if h.magic.load(Ordering::Acquire) != wire::MAGIC
        || h.version.load(Ordering::Relaxed) != wire::PROTOCOL_VERSION
        || !traced
    {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(shm as *mut c_void, wire::SHM_SIZE) };
        return PASSTHROUGH;
    }
    SHM.store(shm, Ordering::Relaxed);
    OWN_PID.store(pid, Ordering::Relaxed);
    TRACER.store(h.tracer_pid.load(Ordering::Relaxed), Ordering::Relaxed);
    DEPTH.store(
        h.depth
            .load(Ordering::Relaxed)
            .clamp(1, wire::MAX_FRAMES as u32),
        Ordering::Relaxed,
    );
    KEEP.store(h.keep.load(Ordering::Relaxed), Ordering::Relaxed);
    MALLOC_FILL.store(h.malloc_fill.load(Ordering::Relaxed), Ordering::Relaxed);
    FREE_FILL.store(h.free_fill.load(Ordering::Relaxed), Ordering::Relaxed);
    FREELIST_VOL.store(h.freelist_vol.load(Ordering::Relaxed), Ordering::Relaxed);
    FREELIST_BLOCKS.store(h.freelist_blocks.load(Ordering::Relaxed), Ordering::Relaxed);
    block::init_secret(sys::rdtsc().wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (pid as u64) << 32);
    stacks::init();
    ACTIVE
}

/// Finds `key` (with its '=') in /proc/self/environ and copies its value into `out`.
fn env_value(key: &[u8], out: &mut [u8]) -> Option<usize> {
    let fd = sys::open_read(b"/proc/self/environ\0");
    if fd < 0 {
        return None;
    }
    // Match the key at the start of each NUL-separated entry, streaming through a small buffer.
    let mut buf = [0u8; 512];
    let mut at_start = true;
    let mut matched = 0usize; // bytes of key matched so far in the current entry
    let mut copying = false;
    let mut n_out = 0usize;
    let mut result = None;
    'outer: loop {
        let r = sys::read(fd, &mut buf);
        if r <= 0 {
            break;
        }
        for &b in &buf[..r as usize] {
            if copying {
                if b == 0 {
                    result = Some(n_out);
                    break 'outer;
                }
                if n_out == out.len() {
                    break 'outer;
                }
                out[n_out] = b;
                n_out += 1;
                continue;
            }
            if b == 0 {
                at_start = true;
                matched = 0;
                continue;
            }
            if at_start {
                if b == key[matched] {
                    matched += 1;
                    if matched == key.len() {
                        copying = true;
                    }
                } else {
                    at_start = false;
                }
            }
        }
    }
    sys::close(fd);
    if copying && result.is_none() && n_out > 0 && n_out < out.len() {
        result = Some(n_out);
    }
    result
}

/// The calling thread's state, created on its first recorded call; `None` if no ring is free.
#[inline]
pub fn thread_state() -> Option<&'static mut tls::ThreadState> {
    let s = tls::slot();
    // SAFETY: the slot belongs to this thread.
    let st = unsafe { (*s).thread };
    if !st.is_null() {
        // SAFETY: created below for this thread and never freed while it runs.
        let st = unsafe { &mut *st };
        if st.writer.is_some() {
            return Some(st);
        }
    }
    new_thread_state(s)
}

#[cold]
fn new_thread_state(s: *mut tls::Slot) -> Option<&'static mut tls::ThreadState> {
    // SAFETY: the slot belongs to this thread.
    let mut st = unsafe { (*s).thread };
    if st.is_null() {
        let b = Box::new(tls::ThreadState {
            writer: None,
            stack_lo: 0,
            stack_hi: 0,
            cache: Default::default(),
            quarantine: crate::quarantine::Quarantine::new(),
            tails: crate::tail::Tails::new(),
            recent: [(0, 0); crate::stacks::RECENT],
            frames: [0; wire::MAX_FRAMES],
        });
        st = Box::into_raw(b);
        // SAFETY: as above.
        unsafe { (*s).thread = st };
        let key = THREAD_KEY.load(Ordering::Relaxed);
        if key != u32::MAX {
            // SAFETY: key was created by the constructor.
            unsafe { libc::pthread_setspecific(key, st as *const c_void) };
        }
    }
    // SAFETY: st is this thread's state.
    let st = unsafe { &mut *st };
    st.writer = crate::channel::Writer::claim(shm(), sys::getpid(), sys::gettid());
    if st.writer.is_none() {
        // No free ring: this call goes unrecorded; the tracer reports how many did.
        // SAFETY: the header is at the start of the mapping.
        unsafe {
            (*(shm() as *const Header))
                .dropped
                .fetch_add(1, Ordering::Relaxed)
        };
        return None;
    }
    Some(st)
}

/// pthread key destructor: the thread is exiting; give its held-back blocks back to glibc.
unsafe extern "C" fn thread_exit(st: *mut c_void) {
    let s = tls::slot();
    // SAFETY: the slot belongs to this thread; st is its state.
    unsafe {
        (*s).flags |= tls::EXITING;
        (*(st as *mut tls::ThreadState)).quarantine.flush();
        (*(st as *mut tls::ThreadState)).tails.release();
    }
}

extern "C" fn atfork_child() {
    let s = tls::slot();
    // SAFETY: the slot belongs to this thread; the child must not write to the parent's ring.
    unsafe {
        let st = (*s).thread;
        crate::quarantine::after_fork(!st.is_null() && (*st).quarantine.holds());
        if !st.is_null() {
            (*st).writer = None;
        }
    }
    OWN_PID.store(sys::getpid(), Ordering::Relaxed);
    FREERES_DONE.store(0, Ordering::Relaxed);
}

/// At exit, after the program's atexit handlers: release what glibc and libstdc++ keep for the
/// life of the process, as Valgrind does (--run-libc-freeres, --run-cxx-freeres), so that only
/// the program's own blocks remain at exit.
extern "C" fn at_exit(_: *mut c_void) {
    run_freeres();
}

/// `_exit` called by the program (a fork child, typically): Valgrind runs the freeres hooks
/// then too. Not in a vfork child, which shares the parent's memory.
pub fn before_exit() {
    if MODE.load(Ordering::Acquire) == ACTIVE && OWN_PID.load(Ordering::Relaxed) == sys::getpid() {
        run_freeres();
    }
}

fn run_freeres() {
    if FREERES_DONE.swap(1, Ordering::AcqRel) != 0 {
        return;
    }
    // What glibc allocates inside dlsym and freeres is its own business: not recorded. The
    // blocks it frees are (as frees with an unknown stack).
    let _g = tls::Guard::enter();
    // SAFETY: looking up an optional libstdc++ function by its mangled name.
    let cxx = unsafe {
        real::dlsym(
            real::RTLD_DEFAULT,
            c"_ZN9__gnu_cxx9__freeresEv".as_ptr() as *const u8,
        )
    };
    // SAFETY: both functions exist for exactly this purpose and are called once, at exit.
    unsafe {
        if !cxx.is_null() {
            let f: extern "C" fn() = core::mem::transmute(cxx);
            f();
        }
        real::__libc_freeres();
    }
}

extern "C" fn constructor() {
    if mode() != ACTIVE {
        return;
    }
    let _g = tls::Guard::enter();
    backtrace::set_ready();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: registering process-wide hooks once, from the constructor.
    unsafe {
        if libc::pthread_key_create(&mut key, Some(thread_exit)) == 0 {
            THREAD_KEY.store(key, Ordering::Relaxed);
        }
        libc::pthread_atfork(None, None, Some(atfork_child));
        real::__cxa_atexit(at_exit, core::ptr::null_mut(), core::ptr::null_mut());
    }
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;
