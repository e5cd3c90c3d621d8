//! Per-thread state. The slot itself is initial-exec TLS defined in assembly (a `.tbss` symbol
//! read through `fs:`): a Rust `thread_local!` in a cdylib goes through `__tls_get_addr`, costs
//! ~10 ns per malloc/free pair and may allocate; one with a destructor panics when touched from
//! malloc during thread teardown.

use crate::channel::Writer;
use crate::quarantine::Quarantine;
use framehop::x86_64::CacheX86_64;
use framehop::MustNotAllocateDuringUnwind;

/// The raw TLS slot: zero-initialised by the loader for every thread.
#[repr(C)]
pub struct Slot {
    /// Re-entrancy depth: above zero, allocations are served but not recorded.
    pub depth: u32,
    /// `EXITING` once the thread's key destructor ran.
    pub flags: u32,
    pub thread: *mut ThreadState,
}

pub const EXITING: u32 = 1;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 4",
    ".globl memcheck_shim_tls",
    ".hidden memcheck_shim_tls",
    ".type memcheck_shim_tls, @object",
    ".size memcheck_shim_tls, 16",
    "memcheck_shim_tls:",
    ".zero 16",
    ".popsection",
);

/// This thread's slot.
#[inline(always)]
pub fn slot() -> *mut Slot {
    let p: *mut Slot;
    // SAFETY: reads the thread pointer and the symbol's TLS offset from the GOT; both are
    // constant for the thread.
    unsafe {
        core::arch::asm!(
            "mov {0}, qword ptr [rip + memcheck_shim_tls@GOTTPOFF]",
            "add {0}, qword ptr fs:0",
            out(reg) p,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    p
}

/// Everything a recording thread owns, allocated on its first recorded call.
pub struct ThreadState {
    pub writer: Option<Writer>,
    pub stack_lo: u64,
    pub stack_hi: u64,
    pub cache: CacheX86_64<MustNotAllocateDuringUnwind>,
    pub quarantine: Quarantine,
    pub tails: crate::tail::Tails,
    pub recent: crate::stacks::Recent,
    pub frames: [u64; memcheck_wire::MAX_FRAMES],
}

/// RAII re-entrancy guard: while one lives, the shim's own allocations are not recorded.
pub struct Guard(*mut Slot);

impl Guard {
    /// Enters the guard; returns whether this is the outermost level (the call may record).
    #[inline(always)]
    pub fn enter() -> (Guard, bool) {
        let s = slot();
        // SAFETY: the slot belongs to this thread.
        let outer = unsafe {
            let d = (*s).depth;
            (*s).depth = d + 1;
            d == 0
        };
        (Guard(s), outer)
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the slot belongs to this thread.
        unsafe { (*self.0).depth -= 1 };
    }
}
