//! Every C symbol the shim exports, and nothing else: the malloc family, the C++ allocation
//! and deallocation operators libstdc++ exports, and `dlclose`. Each forwards to `engine`.
//!
//! The `operator new` family is written as naked functions: on failure they tail-jump to a C
//! function that runs the new_handler loop and throws `std::bad_alloc`, since a C++ exception
//! must not unwind through a Rust frame. Their CFI directives let the unwinder step over them.

use crate::engine;
use core::ffi::c_void;
use memcheck_wire::Func;

const PAGE: usize = 4096;

fn set_errno(e: i32) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    engine::alloc(size, 16, false, Func::Malloc)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => engine::alloc(total, 16, true, Func::Calloc),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    engine::realloc(p, size, Func::Realloc)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => engine::realloc(p, total, Func::Reallocarray),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn free(p: *mut c_void) {
    engine::dealloc(p, Func::Free)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn cfree(p: *mut c_void) {
    engine::dealloc(p, Func::Free)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // glibc rounds an alignment that is not a power of two up to the next one.
    let align = align.max(1).checked_next_power_of_two().unwrap_or(0);
    if align == 0 {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    engine::alloc(size, align, false, Func::Memalign)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    engine::alloc(size, align, false, Func::AlignedAlloc)
}

/// # Safety
/// `out` must be writable, as for glibc's posix_memalign.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return libc::EINVAL;
    }
    let p = engine::alloc(size, align, false, Func::PosixMemalign);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer.
    unsafe { *out = p };
    0
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    engine::alloc(size, PAGE, false, Func::Valloc)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_add(PAGE - 1).map(|s| s & !(PAGE - 1)) else {
        set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    engine::alloc(rounded, PAGE, false, Func::Pvalloc)
}

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
    let real = unsafe { crate::real::dlsym(crate::real::RTLD_NEXT, b"dlclose\0".as_ptr()) };
    if real.is_null() {
        return -1;
    }
    // SAFETY: real is glibc's dlclose.
    let r = unsafe { core::mem::transmute::<*mut c_void, DlcloseFn>(real)(handle) };
    engine::after_dlclose();
    r
}

/// The fast path of every operator new: null on failure (the naked callers then take the
/// new_handler / bad_alloc path).
#[unsafe(no_mangle)]
pub extern "C" fn memcheck_new_fast(size: usize, align: usize, func: u32, _nothrow: i32) -> *mut c_void {
    let func = Func::from_u32(func).unwrap_or(Func::New);
    engine::alloc(size, align.max(16), false, func)
}

extern "C" {
    fn memcheck_new_slow(size: usize, align: usize, func: u32, nothrow: i32) -> *mut c_void;
}

/// Defines an operator new: `$align` is the register holding the alignment (or an immediate 16).
macro_rules! operator_new {
    ($name:ident, $func:expr, $nothrow:expr, align_in_rsi) => {
        /// # Safety
        /// Called by C++ code as the corresponding libstdc++ operator.
        #[unsafe(naked)]
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                ".cfi_startproc",
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
operator_new!(_ZnwmSt11align_val_tRKSt9nothrow_t, Func::NewAlignedNothrow, 1, align_in_rsi);
operator_new!(_ZnamSt11align_val_tRKSt9nothrow_t, Func::NewArrayAlignedNothrow, 1, align_in_rsi);

macro_rules! operator_delete {
    ($name:ident, $func:expr, ($($arg:ident: $ty:ty),*)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub extern "C" fn $name(p: *mut c_void $(, $arg: $ty)*) {
            $(let _ = $arg;)*
            engine::dealloc(p, $func)
        }
    };
}

operator_delete!(_ZdlPv, Func::Delete, ());
operator_delete!(_ZdaPv, Func::DeleteArray, ());
operator_delete!(_ZdlPvm, Func::DeleteSized, (_size: usize));
operator_delete!(_ZdaPvm, Func::DeleteArraySized, (_size: usize));
operator_delete!(_ZdlPvRKSt9nothrow_t, Func::DeleteNothrow, (_nt: *const c_void));
operator_delete!(_ZdaPvRKSt9nothrow_t, Func::DeleteArrayNothrow, (_nt: *const c_void));
operator_delete!(_ZdlPvSt11align_val_t, Func::DeleteAligned, (_al: usize));
operator_delete!(_ZdaPvSt11align_val_t, Func::DeleteArrayAligned, (_al: usize));
operator_delete!(_ZdlPvmSt11align_val_t, Func::DeleteSizedAligned, (_size: usize, _al: usize));
operator_delete!(_ZdaPvmSt11align_val_t, Func::DeleteArraySizedAligned, (_size: usize, _al: usize));
operator_delete!(_ZdlPvSt11align_val_tRKSt9nothrow_t, Func::DeleteAlignedNothrow, (_al: usize, _nt: *const c_void));
operator_delete!(_ZdaPvSt11align_val_tRKSt9nothrow_t, Func::DeleteArrayAlignedNothrow, (_al: usize, _nt: *const c_void));
