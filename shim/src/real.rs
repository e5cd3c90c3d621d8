//! The real allocator functions the hooks forward to. glibc exports `__libc_*` aliases for the
//! core functions, so no `dlsym` is needed at start-up (dlsym itself allocates).

use core::ffi::c_void;

extern "C" {
    pub fn __libc_malloc(size: usize) -> *mut c_void;
    pub fn __libc_free(ptr: *mut c_void);
    pub fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    pub fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    pub fn __libc_freeres();
    pub fn __cxa_atexit(f: extern "C" fn(*mut c_void), arg: *mut c_void, dso: *mut c_void) -> i32;
    pub fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
    pub fn pthread_getattr_np(thread: libc::pthread_t, attr: *mut libc::pthread_attr_t) -> i32;
}

pub const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
pub const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();

/// glibc's allocator for `size` bytes aligned to `align` (a power of two), zeroed if asked.
pub fn alloc(size: usize, align: usize, zero: bool) -> *mut c_void {
    // SAFETY: plain calls into glibc's allocator; the memset covers the fresh block only.
    unsafe {
        if align <= 16 {
            if zero {
                __libc_calloc(1, size)
            } else {
                __libc_malloc(size)
            }
        } else {
            let p = __libc_memalign(align, size);
            if zero && !p.is_null() {
                core::ptr::write_bytes(p as *mut u8, 0, size);
            }
            p
        }
    }
}
