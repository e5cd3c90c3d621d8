//! The last stack each thread captured, kept so that the next capture unwinds only the frames
//! that changed.
//!
//! Unwinding a frame is a function of the registers the unwinder tracks (ip, sp, bp) and of the
//! stack words it reads. For every frame of the last stack the tail keeps those registers and
//! the words read (address and value) while stepping to the next frame. A new capture unwinds
//! from the program's frame until it reaches the registers of a frame of the last stack; from
//! there on, as long as the words that frame's step read still hold the same values, the next
//! frame is the one of the last stack, with no unwinding. Consecutive allocations usually share
//! all but their innermost frames, so a capture typically unwinds one or two frames and
//! compares a few words for each of the others.

use memcheck_wire::MAX_FRAMES;

/// Stack words a tail can record; a stack that reads more is cached only up to that point.
pub const MAX_WORDS: usize = 1024;

/// The frames of one captured stack and what unwinding each of them read.
pub struct Tail {
    /// The unwinder build (module list) the frames were unwound with: another build means
    /// another mapping of code, and the tail is not used.
    pub build: usize,
    /// Frames recorded.
    pub n: usize,
    /// Unwinding stopped after frame `n - 1` (end of the stack or an unwinding error), rather
    /// than at the depth limit; the words of that last step are recorded too.
    pub ended: bool,
    pub ip: [u64; MAX_FRAMES],
    pub sp: [u64; MAX_FRAMES],
    pub bp: [u64; MAX_FRAMES],
    /// `words[start[k]..start[k + 1]]`: the (address, value) pairs read stepping from frame k.
    pub start: [u16; MAX_FRAMES + 1],
    pub words: [(u64, u64); MAX_WORDS],
}

/// The last stack and a scratch tail the next capture fills, swapped after each capture.
pub struct Tails {
    last: *mut Tail,
    next: *mut Tail,
}

impl Tails {
    /// Two zeroed tails (an all-zero tail is a valid empty one) in private memory of a memfd
    /// named `memcheck-tails`: they hold copies of stack words, pointers to heap blocks among
    /// them, and the leak scan must not take them for references, as it would in glibc's heap.
    /// Without that memory, stacks are captured without reuse.
    pub fn new() -> Tails {
        let none = Tails {
            last: core::ptr::null_mut(),
            next: core::ptr::null_mut(),
        };
        let len = 2 * core::mem::size_of::<Tail>();
        let fd = crate::sys::memfd(b"memcheck-tails\0", len);
        if fd < 0 {
            return none;
        }
        let p = crate::sys::mmap(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            fd,
        );
        crate::sys::close(fd);
        if p.is_null() {
            return none;
        }
        Tails {
            last: p as *mut Tail,
            // SAFETY: the mapping holds two tails.
            next: unsafe { (p as *mut Tail).add(1) },
        }
    }

    /// Gives the memory back (the thread is exiting); later captures do without reuse.
    pub fn release(&mut self) {
        if self.last.is_null() {
            return;
        }
        let base = self.last.min(self.next);
        self.last = core::ptr::null_mut();
        self.next = core::ptr::null_mut();
        // The mapping made by new, which nothing points into any more.
        crate::sys::munmap(base as *mut u8, 2 * core::mem::size_of::<Tail>());
    }

    /// The last stack and the scratch tail, if this thread has them.
    #[inline]
    pub fn pair(&mut self) -> Option<(&Tail, &mut Tail)> {
        if self.last.is_null() {
            return None;
        }
        // SAFETY: two distinct allocations owned by this thread's state.
        Some(unsafe { (&*self.last, &mut *self.next) })
    }

    /// The scratch tail becomes the last stack.
    #[inline]
    pub fn swap(&mut self) {
        core::mem::swap(&mut self.last, &mut self.next);
    }
}

impl Tail {
    /// The words recorded for the step from frame `k`.
    #[inline]
    pub fn words_of(&self, k: usize) -> &[(u64, u64)] {
        &self.words[self.start[k] as usize..self.start[k + 1] as usize]
    }
}
