//! Call-stack capture inside the target, without frame pointers: `.eh_frame` unwinding with
//! framehop over the modules the dynamic loader reports (`dl_iterate_phdr`). The unwind tables
//! are read in place from the mapped images; nothing is copied or allocated while unwinding.
//!
//! The module list is an immutable unwinder behind an atomic pointer: a rebuild (after a
//! `dlclose`, or when a return address falls in no known module and the loader's counters
//! moved) makes a new one and swaps it in; the old one is leaked, because another thread may
//! still be unwinding with it.

use crate::rules::{self, Rules};
use crate::tail::{Tail, MAX_WORDS};
use crate::tls::ThreadState;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use framehop::x86_64::{UnwindRegsX86_64, UnwinderX86_64};
use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, MustNotAllocateDuringUnwind, Unwinder,
};

/// Bytes of a mapped image, read in place.
#[derive(Clone, Copy)]
pub struct Mapped {
    ptr: *const u8,
    len: usize,
}

impl Default for Mapped {
    fn default() -> Mapped {
        Mapped {
            ptr: core::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
        }
    }
}

// SAFETY: the memory is immutable mapped image data shared by all threads.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len describe a mapped segment of a loaded module.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

type Unw = UnwinderX86_64<Mapped, MustNotAllocateDuringUnwind>;

/// One immutable build of the module list.
struct Built {
    unw: Unw,
    /// Return address -> unwind rule, learned from `unw` (see `rules`).
    rules: Rules,
    /// Address ranges of the modules, to tell "no module here" from other unwind failures.
    ranges: Vec<(u64, u64)>,
}

static UNWINDER: AtomicPtr<Built> = AtomicPtr::new(core::ptr::null_mut());
static READY: AtomicBool = AtomicBool::new(false);
static REBUILDING: AtomicBool = AtomicBool::new(false);
/// dl_iterate_phdr's adds + subs counters at the last build.
static GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);
/// dl_iterate_phdr's subs counter at the last build.
static SUBS: AtomicU64 = AtomicU64::new(0);
static SHIM_LO: AtomicU64 = AtomicU64::new(0);
static SHIM_HI: AtomicU64 = AtomicU64::new(0);

/// Called from the shim's constructor: the loader and libc are now usable.
pub fn set_ready() {
    READY.store(true, Ordering::Release);
    rebuild();
}

pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

struct Collect {
    modules: Vec<Module<Mapped>>,
    generation: u64,
    /// The loader's count of unloads.
    subs: u64,
}

unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid info for the duration of the call; data is our Collect.
    let (info, out) = unsafe { (&*info, &mut *(data as *mut Collect)) };
    out.generation = info.dlpi_adds.wrapping_add(info.dlpi_subs);
    out.subs = info.dlpi_subs;
    let bias = info.dlpi_addr;
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut lo = u64::MAX;
    let mut hi = 0;
    let mut text = None;
    let mut hdr = None;
    for ph in phdrs {
        match ph.p_type {
            libc::PT_LOAD => {
                lo = lo.min(ph.p_vaddr);
                hi = hi.max(ph.p_vaddr + ph.p_memsz);
                if ph.p_flags & libc::PF_X != 0 && text.is_none() {
                    text = Some((ph.p_vaddr, ph.p_vaddr + ph.p_filesz));
                }
            }
            libc::PT_GNU_EH_FRAME => hdr = Some((ph.p_vaddr, ph.p_memsz)),
            _ => {}
        }
    }
    if lo >= hi {
        return 0;
    }
    let seg_end = |svma: u64| {
        phdrs
            .iter()
            .find(|p| {
                p.p_type == libc::PT_LOAD && p.p_vaddr <= svma && svma < p.p_vaddr + p.p_filesz
            })
            .map(|p| p.p_vaddr + p.p_filesz)
    };
    let mut sect = ExplicitModuleSectionInfo::<Mapped> {
        base_svma: 0,
        ..Default::default()
    };
    if let Some((t0, t1)) = text {
        sect.text_svma = Some(t0..t1);
        sect.text = Some(Mapped {
            ptr: (bias + t0) as *const u8,
            len: (t1 - t0) as usize,
        });
    }
    if let Some((h0, hlen)) = hdr {
        let avma = bias + h0;
        // SAFETY: the eh_frame_hdr segment is mapped; its first 8 bytes are the version, the
        // pointer encodings and the encoded eh_frame pointer.
        let eh_frame = unsafe { decode_eh_frame_ptr(avma as *const u8) };
        if let Some(ef_avma) = eh_frame {
            let ef_svma = ef_avma.wrapping_sub(bias);
            if let Some(end) = seg_end(ef_svma) {
                sect.eh_frame_hdr_svma = Some(h0..h0 + hlen);
                sect.eh_frame_hdr = Some(Mapped {
                    ptr: avma as *const u8,
                    len: hlen as usize,
                });
                sect.eh_frame_svma = Some(ef_svma..end);
                sect.eh_frame = Some(Mapped {
                    ptr: ef_avma as *const u8,
                    len: (end - ef_svma) as usize,
                });
            }
        }
    }
    out.modules
        .push(Module::new(String::new(), bias + lo..bias + hi, bias, sect));
    0
}

/// Decodes the `eh_frame_ptr` field of an `.eh_frame_hdr`.
unsafe fn decode_eh_frame_ptr(hdr: *const u8) -> Option<u64> {
    // SAFETY: the caller guarantees 8 readable bytes at hdr.
    unsafe {
        if *hdr != 1 {
            return None;
        }
        let enc = *hdr.add(1);
        let field = hdr.add(4);
        match enc {
            0x1b => {
                Some((field as i64 + core::ptr::read_unaligned(field as *const i32) as i64) as u64)
            }
            0x03 => Some(core::ptr::read_unaligned(field as *const u32) as u64),
            0x00 | 0x04 => Some(core::ptr::read_unaligned(field as *const u64)),
            _ => None,
        }
    }
}

/// Rebuilds the module list from the loader's.
pub fn rebuild() {
    if REBUILDING.swap(true, Ordering::Acquire) {
        return;
    }
    let mut c = Collect {
        modules: Vec::new(),
        generation: 0,
        subs: 0,
    };
    // SAFETY: the callback only reads loader-provided data and pushes to `c`.
    unsafe {
        libc::dl_iterate_phdr(
            Some(each_object),
            &mut c as *mut Collect as *mut libc::c_void,
        )
    };
    let mut unw = Unw::new();
    let mut ranges = Vec::with_capacity(c.modules.len());
    let me = rebuild as *const () as usize as u64;
    for m in c.modules {
        let r = m.avma_range();
        if r.contains(&me) {
            SHIM_LO.store(r.start, Ordering::Relaxed);
            SHIM_HI.store(r.end, Ordering::Relaxed);
        }
        ranges.push((r.start, r.end));
        unw.add_module(m);
    }
    GENERATION.store(c.generation, Ordering::Relaxed);
    // Only modules added since the last build (a dlopen): the code at every address the rules
    // know is unchanged, and the table goes on (a new one would cost its memory and relearning
    // every rule). After an unload, an address may now hold other code: a new table.
    let old = UNWINDER.load(Ordering::Acquire);
    let rules = if !old.is_null() && SUBS.load(Ordering::Relaxed) == c.subs {
        // SAFETY: builds are never freed.
        unsafe { (*old).rules.share() }
    } else {
        Rules::new()
    };
    SUBS.store(c.subs, Ordering::Relaxed);
    UNWINDER.store(
        Box::into_raw(Box::new(Built { unw, rules, ranges })),
        Ordering::Release,
    );
    REBUILDING.store(false, Ordering::Release);
}

unsafe extern "C" fn generation_only(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: as in each_object.
    unsafe {
        *(data as *mut u64) = (*info).dlpi_adds.wrapping_add((*info).dlpi_subs);
    }
    1
}

/// Rebuilds when the loader's module list changed since the last build.
#[cold]
fn rebuild_if_changed() {
    let mut g = 0u64;
    // SAFETY: the callback writes one u64 into g.
    unsafe {
        libc::dl_iterate_phdr(
            Some(generation_only),
            &mut g as *mut u64 as *mut libc::c_void,
        )
    };
    if g != GENERATION.load(Ordering::Relaxed) {
        rebuild();
    }
}

/// Finds the bounds of this thread's stack.
pub fn stack_bounds(st: &mut ThreadState) {
    // SAFETY: pthread_getattr_np fills attr for the calling thread; it allocates, which the
    // re-entrancy guard of the caller keeps unrecorded.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if crate::real::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: usize = 0;
            if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                st.stack_lo = addr as u64;
                st.stack_hi = addr as u64 + size as u64;
            }
            libc::pthread_attr_destroy(&mut attr);
        }
    }
}

/// Where the program called the shim: the stack pointer at the entry of the exported hook (the
/// return address is at `sp`) and the frame-pointer register then. `sp == 0`: unknown (the
/// capture then unwinds through the shim's own frames first).
#[derive(Clone, Copy)]
pub struct Caller {
    pub sp: u64,
    pub bp: u64,
}

/// Captures the caller's stack (never the shim's own frames) into `st.frames`, at most `depth`
/// frames; returns how many.
#[inline(never)]
pub fn capture(st: &mut ThreadState, depth: usize, caller: Caller) -> usize {
    if !ready() {
        return 0;
    }
    if st.stack_hi == 0 {
        stack_bounds(st);
    }
    let mut unw = UNWINDER.load(Ordering::Acquire);
    if unw.is_null() {
        rebuild();
        unw = UNWINDER.load(Ordering::Acquire);
        if unw.is_null() {
            return 0;
        }
    }
    let (rip, mut rsp, mut rbp): (u64, u64, u64);
    // SAFETY: reads registers only.
    unsafe {
        core::arch::asm!("lea {0}, [rip]", "mov {1}, rsp", "mov {2}, rbp", out(reg) rip, out(reg) rsp, out(reg) rbp, options(nomem, nostack, preserves_flags));
    }
    let fast = caller.sp != 0 && caller.sp > rsp;
    if fast {
        rsp = caller.sp;
        rbp = caller.bp;
    }
    let (lo, hi) = if st.stack_lo <= rsp && rsp < st.stack_hi {
        (rsp, st.stack_hi)
    } else {
        // An alternate signal stack or a coroutine stack: read only the current page.
        (rsp, (rsp | 0xfff) + 1)
    };
    let mut read = |addr: u64| -> Result<u64, ()> {
        if addr >= lo && addr.checked_add(8).is_some_and(|e| e <= hi) && addr & 7 == 0 {
            // SAFETY: the address lies within this thread's mapped stack.
            Ok(unsafe { *(addr as *const u64) })
        } else {
            Err(())
        }
    };
    let depth = depth.min(st.frames.len());
    // SAFETY: builds are never freed.
    let built = unsafe { &*unw };
    let mut n = 0;
    let mut missed = false;
    if fast {
        // Start at the hook's return address: the caller's state after the return is
        // sp = entry sp + 8, with the entry's frame-pointer register.
        let Ok(ra) = read(rsp) else { return 0 };
        match st.tails.pair() {
            Some((last, next)) => {
                let r = unwind_with_tail(
                    built,
                    unw as usize,
                    (ra, rsp + 8, rbp),
                    depth,
                    &mut st.frames,
                    &mut st.cache,
                    &mut read,
                    last,
                    next,
                );
                n = r.0;
                missed = r.1;
                st.tails.swap();
            }
            None => {
                let mut regs = UnwindRegsX86_64::new(ra, rsp + 8, rbp);
                let mut addr = ra;
                while n < depth {
                    st.frames[n] = addr;
                    n += 1;
                    if n == depth {
                        break;
                    }
                    let Some(fa) = FrameAddress::from_return_address(addr) else {
                        break;
                    };
                    match built
                        .unw
                        .unwind_frame(fa, &mut regs, &mut st.cache, &mut read)
                    {
                        Ok(Some(next)) if next != 0 => addr = next,
                        Ok(_) => break,
                        Err(_) => {
                            missed = true;
                            break;
                        }
                    }
                }
            }
        }
    } else {
        let shim = SHIM_LO.load(Ordering::Relaxed)..SHIM_HI.load(Ordering::Relaxed);
        let mut in_shim = true;
        let mut it = built.unw.iter_frames(
            rip,
            UnwindRegsX86_64::new(rip, rsp, rbp),
            &mut st.cache,
            &mut read,
        );
        loop {
            match it.next() {
                Ok(Some(f)) => {
                    let a = match f {
                        FrameAddress::InstructionPointer(pc) => pc,
                        FrameAddress::ReturnAddress(ra) => ra.get(),
                    };
                    if in_shim && shim.contains(&a) {
                        continue;
                    }
                    in_shim = false;
                    if n == depth {
                        break;
                    }
                    st.frames[n] = a;
                    n += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    missed = true;
                    break;
                }
            }
        }
    }
    if missed
        && n > 0
        && !built
            .ranges
            .iter()
            .any(|&(a, b)| a <= st.frames[n - 1] && st.frames[n - 1] < b)
    {
        rebuild_if_changed();
    }
    n
}

/// Unwinds from `regs` (the program's frame) into `frames`, at most `depth` frames, reusing
/// the frames of `last` from the first frame whose registers match one of them, as long as the
/// stack words their steps read are unchanged (see `tail`), and stepping the others with the
/// shared rule table (see `rules`). Records the new stack in `next`. Returns the number of
/// frames and whether unwinding failed.
///
/// The registers are kept as three integers: framehop's register set is 136 bytes, and copying
/// it on every step cost more than the step itself.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn unwind_with_tail(
    built: &Built,
    build: usize,
    start: (u64, u64, u64),
    depth: usize,
    frames: &mut [u64],
    cache: &mut framehop::x86_64::CacheX86_64<MustNotAllocateDuringUnwind>,
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
    last: &Tail,
    next: &mut Tail,
) -> (usize, bool) {
    next.build = build;
    next.ended = false;
    next.start[0] = 0;
    let usable = last.build == build;
    let mut nw = 0usize;
    let mut n = 0usize;
    let (mut ip, mut sp, mut bp) = start;
    // Index in `last` of the first frame whose sp is not below the current one.
    let mut j = 0usize;
    // Whether the current frame is frame j of `last` (same registers).
    let mut on_tail = false;
    let mut missed = false;
    loop {
        if usable && !on_tail {
            while j < last.n && last.sp[j] < sp {
                j += 1;
            }
            on_tail = j < last.n && last.sp[j] == sp && last.ip[j] == ip && last.bp[j] == bp;
            if on_tail {
                // The rest of the last stack at once, if every word its steps read is
                // unchanged (the common case): one pass over the words, then block copies.
                let m = (last.n - j).min(depth - n);
                // Steps to check: from each frame taken but the deepest; from that one too if
                // the last stack ended after it and this one has room for more.
                let steps = if j + m == last.n && n + m < depth && last.ended {
                    m
                } else {
                    m - 1
                };
                let w0 = last.start[j] as usize;
                let words = &last.words[w0..last.start[j + steps] as usize];
                if nw + words.len() <= MAX_WORDS && words.iter().all(|&(a, v)| read(a) == Ok(v)) {
                    frames[n..n + m].copy_from_slice(&last.ip[j..j + m]);
                    next.ip[n..n + m].copy_from_slice(&last.ip[j..j + m]);
                    next.sp[n..n + m].copy_from_slice(&last.sp[j..j + m]);
                    next.bp[n..n + m].copy_from_slice(&last.bp[j..j + m]);
                    next.words[nw..nw + words.len()].copy_from_slice(words);
                    for k in 1..=steps {
                        next.start[n + k] = (last.start[j + k] as usize - w0 + nw) as u16;
                    }
                    nw += words.len();
                    n += m;
                    if n == depth || steps == m {
                        next.ended = steps == m;
                        break;
                    }
                    // The last stack stopped at its depth limit and this capture goes deeper:
                    // unwind on from its deepest frame.
                    n -= 1;
                    (ip, sp, bp) = (last.ip[j + m - 1], last.sp[j + m - 1], last.bp[j + m - 1]);
                    on_tail = false;
                    j = last.n;
                    continue;
                }
            }
        }
        frames[n] = ip;
        next.ip[n] = ip;
        next.sp[n] = sp;
        next.bp[n] = bp;
        n += 1;
        if n == depth {
            break;
        }
        if on_tail {
            // Frame j of the last stack: its step gives the same result if the words it read
            // are unchanged.
            let stepped = j + 1 < last.n || last.ended;
            let words = if stepped { last.words_of(j) } else { &[] };
            let reusable = stepped
                && nw + words.len() <= MAX_WORDS
                && words.iter().all(|&(a, v)| read(a) == Ok(v));
            if reusable {
                next.words[nw..nw + words.len()].copy_from_slice(words);
                nw += words.len();
                next.start[n] = nw as u16;
                if j + 1 == last.n {
                    next.ended = true;
                    break;
                }
                j += 1;
                (ip, sp, bp) = (last.ip[j], last.sp[j], last.bp[j]);
                continue;
            }
            on_tail = false;
            j += 1;
        }
        let mut overflow = false;
        let mut rec = |a: u64| -> Result<u64, ()> {
            let v = read(a)?;
            if nw < MAX_WORDS {
                next.words[nw] = (a, v);
                nw += 1;
            } else {
                overflow = true;
            }
            Ok(v)
        };
        let r = step(built, cache, (ip, sp, bp), &mut rec);
        if overflow {
            // The step is not recorded: the tail ends at this frame, unstepped, and the frames
            // unwound from here on are not kept.
            next.n = n;
            let mut state = r;
            loop {
                match state {
                    Ok(Some(regs)) => {
                        frames[n] = regs.0;
                        n += 1;
                        if n == depth {
                            return (n, false);
                        }
                        state = step(built, cache, regs, read);
                    }
                    Ok(None) => return (n, false),
                    Err(()) => return (n, true),
                }
            }
        }
        next.start[n] = nw as u16;
        match r {
            Ok(Some(regs)) => (ip, sp, bp) = regs,
            Ok(None) => {
                next.ended = true;
                break;
            }
            Err(()) => {
                next.ended = true;
                missed = true;
                break;
            }
        }
    }
    next.n = n;
    (n, missed)
}

/// Steps from the frame (ip, sp, bp), where ip is a return address, to its caller's frame:
/// with the rule the shared table has for ip, learning it first if needed, or with framehop.
#[inline(always)]
fn step(
    built: &Built,
    cache: &mut framehop::x86_64::CacheX86_64<MustNotAllocateDuringUnwind>,
    (ip, sp, bp): (u64, u64, u64),
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Result<Option<(u64, u64, u64)>, ()> {
    let rule = built.rules.get_word(ip).unwrap_or_else(|| {
        let known = built.ranges.iter().any(|&(a, b)| a <= ip && ip < b);
        built.rules.learn(&built.unw, cache, ip, known)
    });
    if !rules::is_framehop(rule) {
        return rules::step_word(rule, (ip, sp, bp), read);
    }
    let Some(fa) = FrameAddress::from_return_address(ip) else {
        return Ok(None);
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    match built.unw.unwind_frame(fa, &mut regs, cache, read) {
        Ok(Some(next)) if next != 0 => Ok(Some((next, regs.sp(), regs.bp()))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}
