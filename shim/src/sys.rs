//! Raw Linux system calls. The shim uses them where libc may not be ready (calls arrive before
//! libc's own initialisation) or must not be re-entered.

use core::arch::asm;

#[inline]
unsafe fn syscall6(n: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the caller passes a valid system call; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
             in("r10") a[3], in("r8") a[4], in("r9") a[5], lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

pub fn open_read(path: &[u8]) -> i64 {
    // SAFETY: path is NUL-terminated by the callers.
    unsafe {
        syscall6(
            libc::SYS_open,
            [
                path.as_ptr() as u64,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                0,
                0,
                0,
                0,
            ],
        )
    }
}

pub fn open_rw(path: &[u8]) -> i64 {
    // SAFETY: path is NUL-terminated by the callers.
    unsafe {
        syscall6(
            libc::SYS_open,
            [
                path.as_ptr() as u64,
                (libc::O_RDWR | libc::O_CLOEXEC) as u64,
                0,
                0,
                0,
                0,
            ],
        )
    }
}

pub fn read(fd: i64, buf: &mut [u8]) -> i64 {
    // SAFETY: buf is writable for its length.
    unsafe {
        syscall6(
            libc::SYS_read,
            [
                fd as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                0,
                0,
                0,
            ],
        )
    }
}

pub fn close(fd: i64) {
    // SAFETY: closing an fd the shim opened.
    unsafe { syscall6(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]) };
}

/// Maps `len` bytes; returns null on failure.
pub fn mmap(len: usize, prot: i32, flags: i32, fd: i64) -> *mut u8 {
    // SAFETY: a fresh mapping chosen by the kernel does not alias anything.
    let r = unsafe {
        syscall6(
            libc::SYS_mmap,
            [0, len as u64, prot as u64, flags as u64, fd as u64, 0],
        )
    };
    if (-4095..0).contains(&r) {
        core::ptr::null_mut()
    } else {
        r as *mut u8
    }
}

/// Unmaps a mapping the shim made.
pub fn munmap(p: *mut u8, len: usize) {
    // SAFETY: the caller's own mapping, not used any more.
    unsafe { syscall6(libc::SYS_munmap, [p as u64, len as u64, 0, 0, 0, 0]) };
}

pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall6(libc::SYS_getpid, [0; 6]) as u32 }
}

pub fn gettid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall6(libc::SYS_gettid, [0; 6]) as u32 }
}

/// Whether process `pid` exists (signal 0).
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence and permission.
    let r = unsafe { syscall6(libc::SYS_kill, [pid as u64, 0, 0, 0, 0, 0]) };
    r != -(libc::ESRCH as i64)
}

/// Waits on a futex word in shared memory while it holds `val`, at most `nanos`.
pub fn futex_wait(word: *const u32, val: u32, nanos: u64) {
    let ts = libc::timespec {
        tv_sec: (nanos / 1_000_000_000) as i64,
        tv_nsec: (nanos % 1_000_000_000) as i64,
    };
    // SAFETY: word points into the shared mapping; ts lives across the call.
    unsafe {
        syscall6(
            libc::SYS_futex,
            [
                word as u64,
                libc::FUTEX_WAIT as u64,
                val as u64,
                &ts as *const _ as u64,
                0,
                0,
            ],
        )
    };
}

pub fn sleep_nanos(nanos: u64) {
    let ts = libc::timespec {
        tv_sec: (nanos / 1_000_000_000) as i64,
        tv_nsec: (nanos % 1_000_000_000) as i64,
    };
    // SAFETY: ts lives across the call.
    unsafe { syscall6(libc::SYS_nanosleep, [&ts as *const _ as u64, 0, 0, 0, 0, 0]) };
}

/// CLOCK_MONOTONIC in nanoseconds (a system call: for slow paths only).
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is writable across the call.
    unsafe {
        syscall6(
            libc::SYS_clock_gettime,
            [
                libc::CLOCK_MONOTONIC as u64,
                &mut ts as *mut _ as u64,
                0,
                0,
                0,
                0,
            ],
        )
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A memfd of `len` bytes named `name` (NUL-terminated); negative on failure.
pub fn memfd(name: &[u8], len: usize) -> i64 {
    // SAFETY: name is NUL-terminated by the callers.
    let fd = unsafe {
        syscall6(
            libc::SYS_memfd_create,
            [name.as_ptr() as u64, libc::MFD_CLOEXEC as u64, 0, 0, 0, 0],
        )
    };
    if fd < 0 {
        return fd;
    }
    // SAFETY: resizing our own memfd.
    if unsafe { syscall6(libc::SYS_ftruncate, [fd as u64, len as u64, 0, 0, 0, 0]) } < 0 {
        close(fd);
        return -1;
    }
    fd
}

/// Ends the process at once (what glibc's `_exit` does).
pub fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: exit_group does not return.
        unsafe { syscall6(libc::SYS_exit_group, [code as u64, 0, 0, 0, 0, 0]) };
    }
}

/// process_vm_readv on our own pid: copies one iovec, or fails (EFAULT) without faulting.
pub fn read_own_memory(local: &libc::iovec, remote: &libc::iovec) -> i64 {
    // SAFETY: both iovecs live across the call; local is writable for its length.
    unsafe {
        syscall6(
            libc::SYS_process_vm_readv,
            [
                getpid() as u64,
                local as *const _ as u64,
                1,
                remote as *const _ as u64,
                1,
                0,
            ],
        )
    }
}
