//! Every C symbol the shim exports, and nothing else: the malloc family, the C++ allocation
//! and deallocation operators libstdc++ exports, `_exit` and `dlclose`.
//!
//! Each allocation or deallocation entry point is a naked trampoline that passes the stack
//! pointer and frame-pointer register it was entered with, as two extra arguments, to its
//! implementation and jumps to it: the implementation returns straight to the program, and the
//! stack capture starts at the program's frame instead of unwinding through the shim's own.
//! The `operator new` family calls its implementation instead, and on failure tail-jumps to a
//! C function that runs the new_handler loop and throws `std::bad_alloc`, since a C++ exception
//! must not unwind through a Rust frame. CFI directives let an unwinder step over all of them.

// The exported names are C and C++ ABI names.
#![allow(non_snake_case)]

use crate::backtrace::Caller;
use crate::engine;
use core::ffi::c_void;
use memcheck_wire::Func;

const PAGE: usize = 4096;

fn set_errno(e: i32) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

fn caller(sp: usize, bp: usize) -> Caller {
    Caller {
        sp: sp as u64,
        bp: bp as u64,
    }
}

/// Exports `$name` as a trampoline to `$imp`, which takes the C arguments followed by the
/// entry stack pointer and frame-pointer register (`$sp` and `$bp`: the next two argument
/// registers).
macro_rules! trampoline {
    ($name:ident => $imp:ident, $sp:literal, $bp:literal) => {
        /// # Safety
        /// Called by C code as the glibc / libstdc++ function of the same name.
        #[unsafe(naked)]
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                ".cfi_startproc",
                concat!("mov ", $sp, ", rsp"),
                concat!("mov ", $bp, ", rbp"),
                "jmp {imp}",
                ".cfi_endproc",
                imp = sym $imp,
            )
        }
    };
}

extern "C" fn malloc_impl(size: usize, sp: usize, bp: usize) -> *mut c_void {
    engine::alloc(size, 16, false, Func::Malloc, caller(sp, bp))
}
trampoline!(malloc => malloc_impl, "rsi", "rdx");

extern "C" fn calloc_impl(n: usize, size: usize, sp: usize, bp: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => engine::alloc(total, 16, true, Func::Calloc, caller(sp, bp)),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}
trampoline!(calloc => calloc_impl, "rdx", "rcx");

extern "C" fn realloc_impl(p: *mut c_void, size: usize, sp: usize, bp: usize) -> *mut c_void {
    engine::realloc(p, size, Func::Realloc, caller(sp, bp))
}
trampoline!(realloc => realloc_impl, "rdx", "rcx");

extern "C" fn reallocarray_impl(
    p: *mut c_void,
    n: usize,
    size: usize,
    sp: usize,
    bp: usize,
) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => engine::realloc(p, total, Func::Reallocarray, caller(sp, bp)),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}
trampoline!(reallocarray => reallocarray_impl, "rcx", "r8");

extern "C" fn free_impl(p: *mut c_void, sp: usize, bp: usize) {
    engine::dealloc(p, Func::Free, caller(sp, bp))
}
trampoline!(free => free_impl, "rsi", "rdx");
trampoline!(cfree => free_impl, "rsi", "rdx");

extern "C" fn memalign_impl(align: usize, size: usize, sp: usize, bp: usize) -> *mut c_void {
    // glibc rounds an alignment that is not a power of two up to the next one.
    let align = align.max(1).checked_next_power_of_two().unwrap_or(0);
    if align == 0 {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    engine::alloc(size, align, false, Func::Memalign, caller(sp, bp))
}
trampoline!(memalign => memalign_impl, "rdx", "rcx");

extern "C" fn aligned_alloc_impl(align: usize, size: usize, sp: usize, bp: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    engine::alloc(size, align, false, Func::AlignedAlloc, caller(sp, bp))
}
trampoline!(aligned_alloc => aligned_alloc_impl, "rdx", "rcx");

extern "C" fn posix_memalign_impl(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    sp: usize,
    bp: usize,
) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let p = engine::alloc(size, align, false, Func::PosixMemalign, caller(sp, bp));
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer, as to glibc's posix_memalign.
    unsafe { *out = p };
    0
}
trampoline!(posix_memalign => posix_memalign_impl, "rcx", "r8");

extern "C" fn valloc_impl(size: usize, sp: usize, bp: usize) -> *mut c_void {
    engine::alloc(size, PAGE, false, Func::Valloc, caller(sp, bp))
}
trampoline!(valloc => valloc_impl, "rsi", "rdx");

extern "C" fn pvalloc_impl(size: usize, sp: usize, bp: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_add(PAGE - 1).map(|s| s & !(PAGE - 1)) else {
        set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    engine::alloc(rounded, PAGE, false, Func::Pvalloc, caller(sp, bp))
}
trampoline!(pvalloc => pvalloc_impl, "rsi", "rdx");

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    engine::usable_size(p)
}

/// `_exit`, when the program calls it directly: run the freeres hooks first, as Valgrind does.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn _exit(code: i32) -> ! {
    crate::init::before_exit();
    crate::sys::exit_group(code)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn _Exit(code: i32) -> ! {
    crate::init::before_exit();
    crate::sys::exit_group(code)
}

type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> i32;

/// # Safety
/// As glibc's dlclose.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> i32 {
    engine::before_dlclose();
    // SAFETY: looking up the next definition of dlclose (glibc's).
    let real =
        unsafe { crate::real::dlsym(crate::real::RTLD_NEXT, c"dlclose".as_ptr() as *const u8) };
    if real.is_null() {
        return -1;
    }
    // SAFETY: real is glibc's dlclose.
    let r = unsafe { core::mem::transmute::<*mut c_void, DlcloseFn>(real)(handle) };
    engine::after_dlclose();
    r
}

/// The fast path of every operator new: null on failure (the naked callers then take the
/// new_handler / bad_alloc path). `sp == 0` when called from that path (caller unknown).
#[unsafe(no_mangle)]
pub extern "C" fn memcheck_new_fast(
    size: usize,
    align: usize,
    func: u32,
    _nothrow: i32,
    sp: usize,
    bp: usize,
) -> *mut c_void {
    let func = Func::from_u32(func).unwrap_or(Func::New);
    engine::alloc(size, align.max(16), false, func, caller(sp, bp))
}

extern "C" {
    fn memcheck_new_slow(size: usize, align: usize, func: u32, nothrow: i32) -> *mut c_void;
}

/// Defines an operator new. `align_in_rsi`: the operator takes an alignment as its second
/// argument; otherwise the alignment is 16.
macro_rules! operator_new {
    ($name:ident, $func:expr, $nothrow:expr, align_in_rsi) => {
        /// # Safety
        /// Called by C++ code as the corresponding libstdc++ operator.
        #[unsafe(naked)]
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                ".cfi_startproc",
                "mov r8, rsp",
                "mov r9, rbp",
                "push rdi",
                ".cfi_adjust_cfa_offset 8",
                "push rsi",
                ".cfi_adjust_cfa_offset 8",
                "sub rsp, 8",
                ".cfi_adjust_cfa_offset 8",
                "mov edx, {func}",
                "mov ecx, {nothrow}",
                "call {fast}",
                "add rsp, 8",
                ".cfi_adjust_cfa_offset -8",
                "pop rsi",
                ".cfi_adjust_cfa_offset -8",
                "pop rdi",
                ".cfi_adjust_cfa_offset -8",
                "test rax, rax",
                "jz 2f",
                "ret",
                "2:",
                "mov edx, {func}",
                "mov ecx, {nothrow}",
                "jmp {slow}",
                ".cfi_endproc",
                func = const $func as u32,
                nothrow = const $nothrow,
                fast = sym memcheck_new_fast,
                slow = sym memcheck_new_slow,
            )
        }
    };
    ($name:ident, $func:expr, $nothrow:expr) => {
        /// # Safety
        /// Called by C++ code as the corresponding libstdc++ operator.
        #[unsafe(naked)]
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                ".cfi_startproc",
                "mov r8, rsp",
                "mov r9, rbp",
                "push rdi",
                ".cfi_adjust_cfa_offset 8",
                "mov esi, 16",
                "mov edx, {func}",
                "mov ecx, {nothrow}",
                "call {fast}",
                "pop rdi",
                ".cfi_adjust_cfa_offset -8",
                "test rax, rax",
                "jz 2f",
                "ret",
                "2:",
                "mov esi, 16",
                "mov edx, {func}",
                "mov ecx, {nothrow}",
                "jmp {slow}",
                ".cfi_endproc",
                func = const $func as u32,
                nothrow = const $nothrow,
                fast = sym memcheck_new_fast,
                slow = sym memcheck_new_slow,
            )
        }
    };
}

operator_new!(_Znwm, Func::New, 0);
operator_new!(_Znam, Func::NewArray, 0);
operator_new!(_ZnwmRKSt9nothrow_t, Func::NewNothrow, 1);
operator_new!(_ZnamRKSt9nothrow_t, Func::NewArrayNothrow, 1);
operator_new!(_ZnwmSt11align_val_t, Func::NewAligned, 0, align_in_rsi);
operator_new!(_ZnamSt11align_val_t, Func::NewArrayAligned, 0, align_in_rsi);
operator_new!(
    _ZnwmSt11align_val_tRKSt9nothrow_t,
    Func::NewAlignedNothrow,
    1,
    align_in_rsi
);
operator_new!(
    _ZnamSt11align_val_tRKSt9nothrow_t,
    Func::NewArrayAlignedNothrow,
    1,
    align_in_rsi
);

/// Defines an operator delete taking `$extra` arguments after the pointer (0, 1 or 2).
macro_rules! operator_delete {
    ($name:ident, $imp:ident, $func:expr, 0) => {
        extern "C" fn $imp(p: *mut c_void, sp: usize, bp: usize) {
            engine::dealloc(p, $func, caller(sp, bp))
        }
        trampoline!($name => $imp, "rsi", "rdx");
    };
    ($name:ident, $imp:ident, $func:expr, 1) => {
        extern "C" fn $imp(p: *mut c_void, _a: usize, sp: usize, bp: usize) {
            engine::dealloc(p, $func, caller(sp, bp))
        }
        trampoline!($name => $imp, "rdx", "rcx");
    };
    ($name:ident, $imp:ident, $func:expr, 2) => {
        extern "C" fn $imp(p: *mut c_void, _a: usize, _b: usize, sp: usize, bp: usize) {
            engine::dealloc(p, $func, caller(sp, bp))
        }
        trampoline!($name => $imp, "rcx", "r8");
    };
}

operator_delete!(_ZdlPv, delete_impl, Func::Delete, 0);
operator_delete!(_ZdaPv, delete_array_impl, Func::DeleteArray, 0);
operator_delete!(_ZdlPvm, delete_sized_impl, Func::DeleteSized, 1);
operator_delete!(_ZdaPvm, delete_array_sized_impl, Func::DeleteArraySized, 1);
operator_delete!(
    _ZdlPvRKSt9nothrow_t,
    delete_nothrow_impl,
    Func::DeleteNothrow,
    1
);
operator_delete!(
    _ZdaPvRKSt9nothrow_t,
    delete_array_nothrow_impl,
    Func::DeleteArrayNothrow,
    1
);
operator_delete!(
    _ZdlPvSt11align_val_t,
    delete_aligned_impl,
    Func::DeleteAligned,
    1
);
operator_delete!(
    _ZdaPvSt11align_val_t,
    delete_array_aligned_impl,
    Func::DeleteArrayAligned,
    1
);
operator_delete!(
    _ZdlPvmSt11align_val_t,
    delete_sized_aligned_impl,
    Func::DeleteSizedAligned,
    2
);
operator_delete!(
    _ZdaPvmSt11align_val_t,
    delete_array_sized_aligned_impl,
    Func::DeleteArraySizedAligned,
    2
);
operator_delete!(
    _ZdlPvSt11align_val_tRKSt9nothrow_t,
    delete_aligned_nothrow_impl,
    Func::DeleteAlignedNothrow,
    2
);
operator_delete!(
    _ZdaPvSt11align_val_tRKSt9nothrow_t,
    delete_array_aligned_nothrow_impl,
    Func::DeleteArrayAlignedNothrow,
    2
);
