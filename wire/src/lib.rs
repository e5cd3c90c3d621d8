//! The shared-memory protocol between the memcheck shim (the writer, inside the target) and the
//! memcheck tracer (the reader). Both sides map one memfd whose layout is described here:
//!
//! ```text
//! [ Header (4 KiB) ][ traced-pid bitmap (512 KiB) ][ ring 0 ][ ring 1 ] ... [ ring N-1 ]
//! ring = [ RingHeader (256 B) ][ data (RING_DATA bytes) ]
//! ```
//!
//! Each thread of a traced process claims one ring and is its only writer; the tracer is its only
//! reader. Records are variable-length, 8-byte aligned and never split across the end of the data
//! area (a [`Kind::Pad`] record fills the tail). A record becomes visible only when the writer
//! publishes its new write position with a release store, so a reader never sees a torn record,
//! even when the target is SIGKILLed in the middle of a write.
//!
//! Bump [`PROTOCOL_VERSION`] whenever a layout, a record kind or the meaning of a field changes.
#![no_std]

use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicU64};

/// Version of everything in this crate; the tracer refuses a shim of another version.
pub const PROTOCOL_VERSION: u32 = 6;
/// First word of the shared memory.
pub const MAGIC: u64 = 0x4b43_4843_4d45_4d31; // "1MEMCHCK"

/// Environment variable naming the shared memory (a `/proc/PID/fd/N` path).
pub const ENV_SHM: &str = "MEMCHECK_SHM";

/// Number of rings: the most threads that can record at the same time across all traced processes.
pub const RING_COUNT: usize = 512;
/// Bytes of record data per ring (a power of two).
pub const RING_DATA: usize = 512 * 1024;
/// Size of the header at the start of the shared memory.
pub const HEADER_SIZE: usize = 4096;
/// Highest pid the traced-pid bitmap covers (Linux's `pid_max` limit is 2^22).
pub const MAX_PID: usize = 1 << 22;
/// Size of the traced-pid bitmap.
pub const BITMAP_SIZE: usize = MAX_PID / 8;
/// Size of one ring's header.
pub const RING_HEADER_SIZE: usize = 256;
/// Size of one ring, header included.
pub const RING_SIZE: usize = RING_HEADER_SIZE + RING_DATA;
/// Total size of the shared memory.
pub const SHM_SIZE: usize = HEADER_SIZE + BITMAP_SIZE + RING_COUNT * RING_SIZE;
/// The most frames one stack record carries.
pub const MAX_FRAMES: usize = 256;

/// Start of the shared memory.
#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// Pid of the tracer; a writer that waits too long checks that it is still alive.
    pub tracer_pid: AtomicU32,
    /// Frames to capture per stack (after the shim's own frames are skipped).
    pub depth: AtomicU32,
    /// Bytes of freed blocks a process holds back from reuse (Valgrind's --freelist-vol),
    /// shared out among its threads.
    pub freelist_vol: AtomicU64,
    /// The most freed blocks a process holds back (--freelist-blocks), shared out likewise.
    pub freelist_blocks: AtomicU64,
    /// Set by the tracer when it stops reading: writers then drop records instead of waiting.
    pub reader_gone: AtomicU32,
    /// Allocation calls that could not be recorded (no free ring for the thread).
    pub dropped: AtomicU64,
    /// What Valgrind's --keep-stacktraces keeps: [`KEEP_ALLOC`] and [`KEEP_FREE`], the stacks
    /// the shim captures (one not kept is sent as id 0; the stack of a bad or mismatched free
    /// is the error's own and always captured), and [`KEEP_THEN_FREE`].
    pub keep: AtomicU32,
    /// Valgrind's --malloc-fill and --free-fill: `FILL | byte` to fill blocks allocated (but
    /// not by calloc) or freed with that byte, 0 not to.
    pub malloc_fill: AtomicU32,
    pub free_fill: AtomicU32,
}

/// Set in [`Header::malloc_fill`] and [`Header::free_fill`] when filling.
pub const FILL: u32 = 1 << 8;

/// [`Header::keep`]: allocation stacks.
pub const KEEP_ALLOC: u32 = 1;
/// [`Header::keep`]: free stacks.
pub const KEEP_FREE: u32 = 2;
/// [`Header::keep`]: a block's allocation stack is forgotten once it is freed (Valgrind's
/// alloc-then-free); the shim marks its frees [`FREE_FORGETS_ALLOC_STACK`].
pub const KEEP_THEN_FREE: u32 = 4;

/// A valid free's `flags`: free stacks are not kept, so the freed block keeps none (a stack
/// the record has is the mismatched free's, for that error only).
pub const FREE_STACK_NOT_KEPT: u32 = 1;
/// A valid free's `flags`: the freed block keeps no allocation stack (see [`KEEP_THEN_FREE`]).
pub const FREE_FORGETS_ALLOC_STACK: u32 = 2;

/// Ring states (`RingHeader::state`).
pub const RING_FREE: u32 = 0;
pub const RING_ACTIVE: u32 = 1;

/// Header of one single-producer single-consumer ring.
#[repr(C, align(64))]
pub struct RingHeader {
    /// [`RING_FREE`] or [`RING_ACTIVE`]; a writer claims a free ring by compare-and-swap, the
    /// tracer frees it after the owning thread is gone and the ring is drained.
    pub state: AtomicU32,
    pub owner_pid: AtomicU32,
    pub owner_tid: AtomicU32,
    _pad0: [u8; 52],
    /// Bytes ever written (published with release ordering). Only the writer stores it.
    pub write_pos: AtomicU64,
    _pad1: [u8; 56],
    /// Bytes ever consumed. Only the reader stores it.
    pub read_pos: AtomicU64,
    _pad2: [u8; 56],
    /// Futex word: the writer sets it to 1 and sleeps on it when the ring is full.
    pub writer_waiting: AtomicU32,
    _pad3: [u8; 4],
    /// Times the writer found the ring full and had to wait for the reader (back pressure),
    /// and the nanoseconds it waited in all. Written by the writer; the tracer adds them up
    /// and zeroes them when it frees the ring.
    pub stalls: AtomicU64,
    pub stall_ns: AtomicU64,
    _pad4: [u8; 40],
}

const _: () = assert!(size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(size_of::<RingHeader>() == RING_HEADER_SIZE);
const _: () = assert!(RING_DATA.is_power_of_two());

/// Byte offset of ring `i` in the shared memory.
pub const fn ring_offset(i: usize) -> usize {
    HEADER_SIZE + BITMAP_SIZE + i * RING_SIZE
}

/// Byte offset of the traced-pid bitmap.
pub const BITMAP_OFFSET: usize = HEADER_SIZE;

/// Record kinds.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Filler up to the end of the data area; skip it.
    Pad = 0,
    /// First record of every ring: [`ThreadStart`].
    ThreadStart = 1,
    /// A new interned stack: [`StackDef`] followed by `n` frames.
    Stack = 2,
    /// [`Alloc`].
    Alloc = 3,
    /// A valid deallocation: [`Free`].
    Free = 4,
    /// A deallocation of an address that is no live block: [`Free`] (`flags` says more).
    BadFree = 5,
    /// The thread is about to `dlclose` a library: the writer waits until the reader has
    /// consumed this record, so the tracer can read the module list while it is still mapped.
    DlClose = 6,
}

impl Kind {
    pub fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            0 => Kind::Pad,
            1 => Kind::ThreadStart,
            2 => Kind::Stack,
            3 => Kind::Alloc,
            4 => Kind::Free,
            5 => Kind::BadFree,
            6 => Kind::DlClose,
            _ => return None,
        })
    }
}

/// Every record starts with this; `len` counts the header and is a multiple of 8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    pub kind: u32,
    pub len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThreadStart {
    pub pid: u32,
    pub tid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StackDef {
    pub id: u32,
    pub nframes: u32,
}

/// `seq` is the record's order key: the process's epoch, read after the real allocation
/// returned. The shim moves the epoch past a free's key before the freed block goes back to
/// glibc, so for one address an allocation's key is at most its free's key and the free's key is
/// below the next allocation's (records of one address by different threads are ordered by
/// them; an allocation and its own free may share a key).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alloc {
    pub seq: u64,
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    pub func: u32,
}

/// `seq` is the order key (see [`Alloc`]), taken before the block is held back or given to
/// glibc.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Free {
    pub seq: u64,
    pub addr: u64,
    /// For a bad `realloc`: the size asked for (Valgrind counts it as allocated).
    pub size: u64,
    pub stack: u32,
    pub func: u32,
    /// For [`Kind::BadFree`]: one of the `BAD_*` constants; for [`Kind::Free`]: `FREE_*` bits.
    pub flags: u32,
    /// For [`Kind::Free`]: which allocation of the address is freed, as [`alloc_key`] of its
    /// key; 0: not known. The keys alone do not tell: thread A allocates a block, B frees it,
    /// gets the address back from glibc and hands it to A, which frees it; if the tracer reads
    /// A's ring (the allocation, then the second free) before B's, A's free could be taken for
    /// the free of the first allocation, still live as far as the tracer knows.
    pub alloc_key: u32,
}

/// A free record's `alloc_key` for an allocation with order key `seq`: its low 16 bits (what
/// the shim's block header keeps of it), marked as known.
pub const fn alloc_key(seq: u64) -> u32 {
    ALLOC_KEY_KNOWN | (seq & 0xffff) as u32
}

/// Set in every `alloc_key` the shim sends.
pub const ALLOC_KEY_KNOWN: u32 = 1 << 16;

/// Whether an allocation with order key `seq` is the one a free with `alloc_key` frees, as far
/// as the key tells (a key from a trace of an older memcheck is 0 and tells nothing).
pub const fn is_alloc_key(seq: u64, alloc_key: u32) -> bool {
    alloc_key == 0 || alloc_key == self::alloc_key(seq)
}

/// The block header says the block was already freed (it is held back from reuse).
pub const BAD_DOUBLE: u32 = 1;
/// No block header at that address.
pub const BAD_UNKNOWN: u32 = 2;

const _: () = assert!(size_of::<RecordHeader>() == 8);
const _: () = assert!(size_of::<Alloc>() == 32);
const _: () = assert!(size_of::<Free>() == 40);
const _: () = assert!(size_of::<ThreadStart>() == 8);
const _: () = assert!(size_of::<StackDef>() == 8);

/// The allocation and deallocation functions the shim intercepts.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Malloc = 0,
    Calloc,
    Realloc,
    Reallocarray,
    Memalign,
    PosixMemalign,
    AlignedAlloc,
    Valloc,
    Pvalloc,
    Free,
    New,
    NewArray,
    NewNothrow,
    NewArrayNothrow,
    NewAligned,
    NewArrayAligned,
    NewAlignedNothrow,
    NewArrayAlignedNothrow,
    Delete,
    DeleteArray,
    DeleteSized,
    DeleteArraySized,
    DeleteNothrow,
    DeleteArrayNothrow,
    DeleteAligned,
    DeleteArrayAligned,
    DeleteSizedAligned,
    DeleteArraySizedAligned,
    DeleteAlignedNothrow,
    DeleteArrayAlignedNothrow,
}

/// Which allocator family a block belongs to; freeing with another family is a mismatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Malloc,
    New,
    NewArray,
}

const ALL_FUNCS: [Func; 30] = [
    Func::Malloc,
    Func::Calloc,
    Func::Realloc,
    Func::Reallocarray,
    Func::Memalign,
    Func::PosixMemalign,
    Func::AlignedAlloc,
    Func::Valloc,
    Func::Pvalloc,
    Func::Free,
    Func::New,
    Func::NewArray,
    Func::NewNothrow,
    Func::NewArrayNothrow,
    Func::NewAligned,
    Func::NewArrayAligned,
    Func::NewAlignedNothrow,
    Func::NewArrayAlignedNothrow,
    Func::Delete,
    Func::DeleteArray,
    Func::DeleteSized,
    Func::DeleteArraySized,
    Func::DeleteNothrow,
    Func::DeleteArrayNothrow,
    Func::DeleteAligned,
    Func::DeleteArrayAligned,
    Func::DeleteSizedAligned,
    Func::DeleteArraySizedAligned,
    Func::DeleteAlignedNothrow,
    Func::DeleteArrayAlignedNothrow,
];

impl Func {
    pub fn from_u32(v: u32) -> Option<Func> {
        ALL_FUNCS.get(v as usize).copied()
    }

    pub fn family(self) -> Family {
        use Func::*;
        match self {
            New | NewNothrow | NewAligned | NewAlignedNothrow | Delete | DeleteSized
            | DeleteNothrow | DeleteAligned | DeleteSizedAligned | DeleteAlignedNothrow => {
                Family::New
            }
            NewArray
            | NewArrayNothrow
            | NewArrayAligned
            | NewArrayAlignedNothrow
            | DeleteArray
            | DeleteArraySized
            | DeleteArrayNothrow
            | DeleteArrayAligned
            | DeleteArraySizedAligned
            | DeleteArrayAlignedNothrow => Family::NewArray,
            _ => Family::Malloc,
        }
    }

    /// The exported symbol of the shim that implements this function.
    pub fn symbol(self) -> &'static str {
        use Func::*;
        match self {
            Malloc => "malloc",
            Calloc => "calloc",
            Realloc => "realloc",
            Reallocarray => "reallocarray",
            Memalign => "memalign",
            PosixMemalign => "posix_memalign",
            AlignedAlloc => "aligned_alloc",
            Valloc => "valloc",
            Pvalloc => "pvalloc",
            Free => "free",
            New => "_Znwm",
            NewArray => "_Znam",
            NewNothrow => "_ZnwmRKSt9nothrow_t",
            NewArrayNothrow => "_ZnamRKSt9nothrow_t",
            NewAligned => "_ZnwmSt11align_val_t",
            NewArrayAligned => "_ZnamSt11align_val_t",
            NewAlignedNothrow => "_ZnwmSt11align_val_tRKSt9nothrow_t",
            NewArrayAlignedNothrow => "_ZnamSt11align_val_tRKSt9nothrow_t",
            Delete => "_ZdlPv",
            DeleteArray => "_ZdaPv",
            DeleteSized => "_ZdlPvm",
            DeleteArraySized => "_ZdaPvm",
            DeleteNothrow => "_ZdlPvRKSt9nothrow_t",
            DeleteArrayNothrow => "_ZdaPvRKSt9nothrow_t",
            DeleteAligned => "_ZdlPvSt11align_val_t",
            DeleteArrayAligned => "_ZdaPvSt11align_val_t",
            DeleteSizedAligned => "_ZdlPvmSt11align_val_t",
            DeleteArraySizedAligned => "_ZdaPvmSt11align_val_t",
            DeleteAlignedNothrow => "_ZdlPvSt11align_val_tRKSt9nothrow_t",
            DeleteArrayAlignedNothrow => "_ZdaPvSt11align_val_tRKSt9nothrow_t",
        }
    }

    /// The name Valgrind prints for this function.
    pub fn display_name(self) -> &'static str {
        use Func::*;
        match self {
            New => "operator new(unsigned long)",
            NewArray => "operator new[](unsigned long)",
            NewNothrow => "operator new(unsigned long, std::nothrow_t const&)",
            NewArrayNothrow => "operator new[](unsigned long, std::nothrow_t const&)",
            NewAligned => "operator new(unsigned long, std::align_val_t)",
            NewArrayAligned => "operator new[](unsigned long, std::align_val_t)",
            NewAlignedNothrow => {
                "operator new(unsigned long, std::align_val_t, std::nothrow_t const&)"
            }
            NewArrayAlignedNothrow => {
                "operator new[](unsigned long, std::align_val_t, std::nothrow_t const&)"
            }
            Delete => "operator delete(void*)",
            DeleteArray => "operator delete[](void*)",
            DeleteSized => "operator delete(void*, unsigned long)",
            DeleteArraySized => "operator delete[](void*, unsigned long)",
            DeleteNothrow => "operator delete(void*, std::nothrow_t const&)",
            DeleteArrayNothrow => "operator delete[](void*, std::nothrow_t const&)",
            DeleteAligned => "operator delete(void*, std::align_val_t)",
            DeleteArrayAligned => "operator delete[](void*, std::align_val_t)",
            DeleteSizedAligned => "operator delete(void*, unsigned long, std::align_val_t)",
            DeleteArraySizedAligned => "operator delete[](void*, unsigned long, std::align_val_t)",
            DeleteAlignedNothrow => {
                "operator delete(void*, std::align_val_t, std::nothrow_t const&)"
            }
            DeleteArrayAlignedNothrow => {
                "operator delete[](void*, std::align_val_t, std::nothrow_t const&)"
            }
            other => other.symbol(),
        }
    }
}

/// Round a record length up to the ring's 8-byte granule.
pub const fn record_len(payload: usize) -> usize {
    (size_of::<RecordHeader>() + payload + 7) & !7
}

/// Whether `pid` is marked traced in the bitmap at `bitmap`.
///
/// # Safety
/// `bitmap` must point to [`BITMAP_SIZE`] bytes of mapped memory.
pub unsafe fn pid_is_traced(bitmap: *const u8, pid: u32) -> bool {
    let pid = pid as usize;
    if pid >= MAX_PID {
        return false;
    }
    // SAFETY: pid / 8 < BITMAP_SIZE and the caller guarantees the mapping; AtomicU8 has the
    // layout of u8 and the tracer writes the bitmap concurrently.
    let byte = unsafe {
        (*(bitmap.add(pid / 8) as *const core::sync::atomic::AtomicU8))
            .load(core::sync::atomic::Ordering::Acquire)
    };
    byte & (1 << (pid % 8)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn funcs_round_trip() {
        for (i, f) in ALL_FUNCS.iter().enumerate() {
            assert_eq!(Func::from_u32(i as u32), Some(*f));
        }
        assert_eq!(Func::from_u32(ALL_FUNCS.len() as u32), None);
    }

    #[test]
    fn families() {
        assert_eq!(Func::Calloc.family(), Family::Malloc);
        assert_eq!(Func::NewArrayAlignedNothrow.family(), Family::NewArray);
        assert_eq!(Func::DeleteSized.family(), Family::New);
    }

    #[test]
    fn layout() {
        assert_eq!(ring_offset(0) % 4096, 0);
        assert_eq!(ring_offset(1) - ring_offset(0), RING_SIZE);
        assert_eq!(record_len(32), 40);
        assert_eq!(record_len(1), 16);
    }
}
