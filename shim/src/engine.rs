//! What the exported hooks call: allocate behind a header, validate and release, and record.

use crate::backtrace::{self, Caller};
use crate::block::{self, Block};
use crate::channel::{as_bytes, Lost};
use crate::init::{self, ACTIVE, PASSTHROUGH};
use crate::order;
use crate::{quarantine, real, stacks, tls};
use core::ffi::c_void;
use memcheck_wire::{self as wire, Family, Func, Kind};

fn family_code(f: Family) -> u32 {
    match f {
        Family::Malloc => 0,
        Family::New => 1,
        Family::NewArray => 2,
    }
}

/// Captures the current stack, interns it and sends it if new; returns its id (0: none).
#[inline]
fn stack_id(st: &mut tls::ThreadState, caller: Caller) -> Result<u32, Lost> {
    let n = backtrace::capture(st, init::depth(), caller);
    let (id, new) = stacks::intern(&mut st.recent, &st.frames[..n]);
    if new {
        let def = wire::StackDef {
            id,
            nframes: n as u32,
        };
        // SAFETY: StackDef is plain old data; frames are u64s.
        let (d, f) = unsafe {
            (
                as_bytes(&def),
                core::slice::from_raw_parts(st.frames.as_ptr() as *const u8, n * 8),
            )
        };
        if let Some(w) = st.writer.as_mut() {
            w.write(Kind::Stack, &[d, f])?;
        }
    }
    Ok(id)
}

fn lost(_: Lost) {
    init::orphan();
}

/// Sends an allocation record.
#[inline]
fn record_alloc(
    st: &mut tls::ThreadState,
    p: *mut c_void,
    size: usize,
    func: Func,
    stack: u32,
    key: u64,
) -> Result<(), Lost> {
    let rec = wire::Alloc {
        seq: key,
        addr: p as u64,
        size: size as u64,
        stack,
        func: func as u32,
    };
    // SAFETY: Alloc is plain old data.
    let b = unsafe { as_bytes(&rec) };
    match st.writer.as_mut() {
        Some(w) => w.write(Kind::Alloc, &[b]),
        None => Ok(()),
    }
}

/// Sends the record of a valid free of block `b`, with its order key and stack (0: none).
fn record_free(
    st: &mut tls::ThreadState,
    key: u64,
    b: &Block,
    func: Func,
    stack: u32,
) -> Result<(), Lost> {
    let mut flags = 0;
    if !init::keeps(wire::KEEP_FREE) {
        flags |= wire::FREE_STACK_NOT_KEPT;
    }
    if init::keeps(wire::KEEP_THEN_FREE) {
        flags |= wire::FREE_FORGETS_ALLOC_STACK;
    }
    record_free_sized(
        st,
        Kind::Free,
        key,
        b.user as u64,
        0,
        func,
        stack,
        flags,
        b.alloc_key(),
    )
}

#[allow(clippy::too_many_arguments)]
fn record_free_sized(
    st: &mut tls::ThreadState,
    kind: Kind,
    key: u64,
    addr: u64,
    size: usize,
    func: Func,
    stack: u32,
    flags: u32,
    alloc_key: u32,
) -> Result<(), Lost> {
    let rec = wire::Free {
        seq: key,
        addr,
        size: size as u64,
        stack,
        func: func as u32,
        flags,
        alloc_key,
    };
    // SAFETY: Free is plain old data.
    let b = unsafe { as_bytes(&rec) };
    match st.writer.as_mut() {
        Some(w) => w.write(kind, &[b]),
        None => Ok(()),
    }
}

/// Whether a valid free of `b` by `func` is recorded with its stack: if free stacks are kept,
/// and always for a mismatched free, whose stack is the error's.
#[inline]
fn free_stack_kept(b: &Block, func: Func) -> bool {
    init::keeps(wire::KEEP_FREE) || b.family() != family_code(func.family())
}

/// Allocates for `func`; null on failure (errno set by glibc).
#[inline]
pub fn alloc(size: usize, align: usize, zero: bool, func: Func, caller: Caller) -> *mut c_void {
    let mode = init::mode();
    if mode == PASSTHROUGH {
        return real::alloc(size, align, zero);
    }
    let (_g, outer) = tls::Guard::enter();
    let record = outer && mode == ACTIVE;
    let (p, key) = block::alloc(size, align, zero, family_code(func.family()), record);
    if p.is_null() || !record {
        return p;
    }
    if let Some(st) = init::thread_state() {
        let id = if init::keeps(wire::KEEP_ALLOC) {
            stack_id(st, caller)
        } else {
            Ok(0)
        };
        let r = id.and_then(|id| record_alloc(st, p, size, func, id, key));
        if let Err(e) = r {
            lost(e);
        }
    }
    p
}

/// Gives a validated block, freed with order key `key`, back: held in the quarantine, or to
/// glibc.
fn release(b: Block, key: u64) {
    b.mark_freed();
    let s = tls::slot();
    // SAFETY: the slot belongs to this thread.
    let (st, exiting) = unsafe { ((*s).thread, (*s).flags & tls::EXITING != 0) };
    let (vol, blocks) = (init::freelist_vol(), init::freelist_blocks());
    if st.is_null() || exiting || vol == 0 || blocks == 0 {
        // SAFETY: b.base() is the glibc pointer of a block released exactly once.
        unsafe { quarantine::give_back(b.base(), key) };
    } else {
        // SAFETY: st is this thread's state.
        unsafe {
            (*st)
                .quarantine
                .push(b.base(), b.footprint(), key, vol, blocks)
        };
    }
}

/// Records a bad deallocation of `p` by `func` (`size`: what a bad realloc asked for).
fn bad_free(p: *mut c_void, size: usize, func: Func, flags: u32, record: bool, caller: Caller) {
    if !record {
        return;
    }
    if let Some(st) = init::thread_state() {
        let r = stack_id(st, caller).and_then(|id| {
            record_free_sized(
                st,
                Kind::BadFree,
                order::key(),
                p as u64,
                size,
                func,
                id,
                flags,
                0,
            )
        });
        if let Err(e) = r {
            lost(e);
        }
    }
}

/// Deallocates `p` for `func` (free, or one of the delete operators).
#[inline]
pub fn dealloc(p: *mut c_void, func: Func, caller: Caller) {
    if p.is_null() {
        return;
    }
    let mode = init::mode();
    if mode == PASSTHROUGH {
        // SAFETY: in pass-through mode every block is glibc's own.
        unsafe { real::__libc_free(p) };
        return;
    }
    let (_g, outer) = tls::Guard::enter();
    let record = outer && mode == ACTIVE;
    match block::lookup(p) {
        Some(b) if !b.is_freed() => {
            let key = order::key();
            if b.tracked() && mode == ACTIVE {
                if let Some(st) = init::thread_state() {
                    let id = if outer && free_stack_kept(&b, func) {
                        stack_id(st, caller)
                    } else {
                        Ok(0)
                    };
                    if let Err(e) = id.and_then(|id| record_free(st, key, &b, func, id)) {
                        lost(e);
                    }
                }
            }
            release(b, key);
        }
        Some(_) => bad_free(p, 0, func, wire::BAD_DOUBLE, record, caller),
        None => bad_free(p, 0, func, wire::BAD_UNKNOWN, record, caller),
    }
}

/// realloc / reallocarray: always moves the block, as Valgrind does, so that a stale pointer to
/// the old block is caught.
pub fn realloc(p: *mut c_void, size: usize, func: Func, caller: Caller) -> *mut c_void {
    if p.is_null() {
        return alloc(size, 16, false, func, caller);
    }
    let mode = init::mode();
    if mode == PASSTHROUGH {
        // SAFETY: in pass-through mode every block is glibc's own.
        return unsafe { libc_realloc(p, size) };
    }
    let (g, outer) = tls::Guard::enter();
    let record = outer && mode == ACTIVE;
    let old = match block::lookup(p) {
        Some(b) if !b.is_freed() => b,
        Some(_) => {
            bad_free(p, size, func, wire::BAD_DOUBLE, record, caller);
            return core::ptr::null_mut();
        }
        None => {
            bad_free(p, size, func, wire::BAD_UNKNOWN, record, caller);
            return core::ptr::null_mut();
        }
    };
    let tracked = old.tracked() && mode == ACTIVE;
    if size == 0 {
        drop(g);
        dealloc(p, func, caller);
        return core::ptr::null_mut();
    }
    let (new, new_key) = block::alloc(size, 16, false, family_code(Family::Malloc), record);
    if new.is_null() {
        return new;
    }
    // SAFETY: both blocks are live and at least min(old, new) bytes long.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, new as *mut u8, old.size.min(size)) };
    let key = order::key();
    if tracked || record {
        if let Some(st) = init::thread_state() {
            // One stack serves the free of the old block and the allocation of the new one.
            let free_kept = tracked && free_stack_kept(&old, func);
            let alloc_kept = record && init::keeps(wire::KEEP_ALLOC);
            let id = if outer && (free_kept || alloc_kept) {
                stack_id(st, caller)
            } else {
                Ok(0)
            };
            let r = id.and_then(|id| {
                if tracked {
                    record_free(st, key, &old, func, if free_kept { id } else { 0 })?;
                }
                if record {
                    record_alloc(
                        st,
                        new,
                        size,
                        func,
                        if alloc_kept { id } else { 0 },
                        new_key,
                    )?;
                }
                Ok(())
            });
            if let Err(e) = r {
                lost(e);
            }
        }
    }
    release(old, key);
    new
}

extern "C" {
    #[link_name = "__libc_realloc"]
    fn libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
}

/// malloc_usable_size: the size the program asked for, as Valgrind reports it.
pub fn usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    if init::mode() == PASSTHROUGH {
        // SAFETY: glibc's malloc_usable_size (no __libc_ alias exists), on glibc's own block.
        return unsafe {
            let f = crate::real::dlsym(
                crate::real::RTLD_NEXT,
                c"malloc_usable_size".as_ptr() as *const u8,
            );
            if f.is_null() {
                return 0;
            }
            core::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> usize>(f)(p)
        };
    }
    match block::lookup(p) {
        Some(b) if !b.is_freed() => b.size,
        _ => 0,
    }
}

/// Before a `dlclose`: make sure the tracer has read every stack so far, while the library is
/// still mapped, then rebuild the unwinder's module list afterwards.
pub fn before_dlclose() {
    if init::mode() != ACTIVE {
        return;
    }
    let (_g, outer) = tls::Guard::enter();
    if !outer {
        return;
    }
    if let Some(st) = init::thread_state() {
        if let Some(w) = st.writer.as_mut() {
            if let Err(e) = w.write(Kind::DlClose, &[]).and_then(|_| w.sync()) {
                lost(e);
            }
        }
    }
}

pub fn after_dlclose() {
    if init::mode() == ACTIVE && backtrace::ready() {
        let _g = tls::Guard::enter();
        backtrace::rebuild();
    }
}
