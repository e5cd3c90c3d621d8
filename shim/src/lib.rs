//! The memcheck shim: a `cdylib` preloaded (LD_PRELOAD) into the traced program. It interposes
//! the malloc family and the C++ allocation operators, puts a small header in front of every
//! block so that a bad free is recognised before it reaches glibc, captures the call stack of
//! every allocation and deallocation, and writes compact records into shared memory for the
//! tracer. Nothing on the allocation path allocates, takes a lock shared by all threads, makes a
//! system call, formats or symbolises.
//!
//! Module map: `hooks` is the exported C ABI and nothing else; `engine` is what the hooks call;
//! `real` the glibc functions they forward to; `block` the block header; `tls` per-thread state;
//! `channel` the ring writer; `backtrace` stack capture; `rules` the shared
//! return address -> unwind rule table; `tail` the reuse of each thread's last stack; `stacks` stack interning; `quarantine`
//! the held-back freed blocks; `sys` raw system calls; `init` start-up.

// Under `cargo test` the hooks are not exported (the test harness keeps its own malloc), so
// most of the shim is unreachable there.
#![cfg_attr(test, allow(dead_code))]

mod backtrace;
mod block;
mod channel;
mod engine;
mod hooks;
mod init;
mod order;
mod quarantine;
mod real;
mod rules;
mod stacks;
mod sys;
mod tail;
mod tls;

/// The shim's own Rust allocations go straight to glibc, never through the hooks.
struct LibcAllocator;

// SAFETY: forwards to glibc's allocator, which satisfies the GlobalAlloc contract; alignment
// above 16 goes through memalign.
unsafe impl core::alloc::GlobalAlloc for LibcAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: plain calls into glibc's allocator.
        unsafe {
            if layout.align() <= 16 {
                real::__libc_malloc(layout.size()) as *mut u8
            } else {
                real::__libc_memalign(layout.align(), layout.size()) as *mut u8
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: core::alloc::Layout) {
        // SAFETY: ptr came from alloc above.
        unsafe { real::__libc_free(ptr as *mut _) }
    }
}

#[global_allocator]
static GLOBAL: LibcAllocator = LibcAllocator;
