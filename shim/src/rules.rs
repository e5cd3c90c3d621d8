//! A compact return address -> unwind rule table shared by all threads of a process.
//!
//! Stepping over a frame without frame pointers means finding the `.eh_frame` rule of its
//! return address. framehop does that with a binary search and a DWARF CFI evaluation (several
//! microseconds), then keeps the rule in a small per-thread cache (509 slots, direct-mapped),
//! where two hot addresses that collide evict each other. This table learns each return
//! address's rule once, for every thread, and a step then costs a hash, two loads and one or
//! two stack reads.
//!
//! A rule is learned by letting framehop step once over a synthetic stack whose every word
//! encodes its own address, from two different register sets: where the new sp, bp and return
//! address came from gives the rule. Anything that is not one of the simple forms (the CFA an
//! offset from sp with bp kept or restored from the frame, or a frame-pointer frame), such as
//! a DWARF expression, stays framehop's to step every time.
//!
//! Entries are two words, the return address and the encoded rule; the rule word carries a tag
//! of its address, so a reader that races with a writer replacing the entry sees a mismatch
//! instead of another address's rule. A table serves the builds of the module list from one
//! unload (dlclose) to the next.

use core::sync::atomic::{AtomicU64, Ordering};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

const SLOTS: usize = 1 << 17;
const PROBES: usize = 8;

const KIND_OFFSET_SP: u64 = 1;
const KIND_RESTORE_BP: u64 = 2;
const KIND_FRAME_POINTER: u64 = 3;
const KIND_END: u64 = 4;
/// framehop steps this address every time.
const KIND_FRAMEHOP: u64 = 5;

/// Synthetic stack: the word at `a` holds `a ^ SYNTH`.
const SYNTH: u64 = 0x5a5a_0000_0000_0000;

/// A decoded rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    /// sp += off; bp kept.
    OffsetSp {
        off: u32,
    },
    /// sp += off; bp = [old sp + bp_at].
    RestoreBp {
        off: u32,
        bp_at: i32,
    },
    /// sp = bp + 16; bp = [bp].
    FramePointer,
    End,
    Framehop,
}

pub struct Rules {
    table: *const AtomicU64,
}

// SAFETY: the table is only accessed through atomics.
unsafe impl Send for Rules {}
// SAFETY: as above.
unsafe impl Sync for Rules {}

fn tag(ra: u64) -> u64 {
    (ra.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) << 40
}

fn slot(ra: u64) -> usize {
    (ra.wrapping_mul(0xff51_afd7_ed55_8ccd) >> 47) as usize & (SLOTS - 1)
}

fn encode(r: Rule) -> u64 {
    match r {
        Rule::OffsetSp { off } => KIND_OFFSET_SP | (off as u64 / 8) << 8,
        Rule::RestoreBp { off, bp_at } => {
            KIND_RESTORE_BP | (off as u64 / 8) << 8 | ((bp_at / 8) as i16 as u16 as u64) << 24
        }
        // The CFA is bp + 16, and bp is restored from bp + 0.
        Rule::FramePointer => KIND_FRAME_POINTER | 2 << 8,
        Rule::End => KIND_END,
        Rule::Framehop => KIND_FRAMEHOP,
    }
}

impl Rules {
    /// A table in private memory of a memfd named `memcheck-rules` (the leak scan skips
    /// memcheck's own memory); without one, every step is framehop's.
    pub fn new() -> Rules {
        let len = SLOTS * 16;
        let fd = crate::sys::memfd(b"memcheck-rules\0", len);
        if fd < 0 {
            return Rules {
                table: core::ptr::null(),
            };
        }
        let p = crate::sys::mmap(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            fd,
        );
        crate::sys::close(fd);
        Rules {
            table: p as *const AtomicU64,
        }
    }

    /// The same table, for the next build of a module list that only grew.
    pub fn share(&self) -> Rules {
        Rules { table: self.table }
    }

    /// The learned rule of return address `ra` as stored (see `step_word`), if any.
    #[inline(always)]
    pub fn get_word(&self, ra: u64) -> Option<u64> {
        if self.table.is_null() {
            return None;
        }
        let mut i = slot(ra);
        for _ in 0..PROBES {
            // SAFETY: 2 * i + 1 < 2 * SLOTS words of the mapping.
            let (k, v) = unsafe { (&*self.table.add(2 * i), &*self.table.add(2 * i + 1)) };
            let key = k.load(Ordering::Acquire);
            if key == ra {
                let v = v.load(Ordering::Acquire);
                return if v & !((1 << 40) - 1) == tag(ra) {
                    Some(v & ((1 << 40) - 1))
                } else {
                    None
                };
            }
            if key == 0 {
                return None;
            }
            i = (i + 1) & (SLOTS - 1);
        }
        None
    }

    fn put(&self, ra: u64, r: Rule) {
        if self.table.is_null() {
            return;
        }
        let mut i = slot(ra);
        for _ in 0..PROBES {
            // SAFETY: as in get.
            let (k, v) = unsafe { (&*self.table.add(2 * i), &*self.table.add(2 * i + 1)) };
            let key = k.load(Ordering::Acquire);
            if key == 0 || key == ra {
                v.store(encode(r) | tag(ra), Ordering::Release);
                if key == 0
                    && k.compare_exchange(0, ra, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    // Another thread took the slot; the rule word now belongs to it (its tag
                    // says whose it is): try the next slot.
                    i = (i + 1) & (SLOTS - 1);
                    continue;
                }
                return;
            }
            i = (i + 1) & (SLOTS - 1);
        }
    }

    /// Learns the rule of return address `ra` from framehop (see the module documentation) and
    /// returns it as stored (see `step_word`). `known`: `ra` lies in a module of the build (else
    /// framehop's answer is a guess that a later dlopen may change, and is not kept).
    #[cold]
    pub fn learn(
        &self,
        unw: &UnwinderX86_64<crate::backtrace::Mapped, MustNotAllocateDuringUnwind>,
        cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
        ra: u64,
        known: bool,
    ) -> u64 {
        let a = probe(unw, cache, ra, 0x1000_0000_0000, 0x2000_0000_0000);
        let b = probe(unw, cache, ra, 0x3000_0000_1000, 0x4000_0000_2000);
        let r = if a == b { a } else { Rule::Framehop };
        if known {
            self.put(ra, r);
        }
        encode(r)
    }
}

/// What framehop does at `ra` with sp = `s`, bp = `b` over the synthetic stack.
fn probe(
    unw: &UnwinderX86_64<crate::backtrace::Mapped, MustNotAllocateDuringUnwind>,
    cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
    ra: u64,
    s: u64,
    b: u64,
) -> Rule {
    let Some(fa) = FrameAddress::from_return_address(ra) else {
        return Rule::Framehop;
    };
    let mut regs = UnwindRegsX86_64::new(ra, s, b);
    let mut read = |a: u64| -> Result<u64, ()> { Ok(a ^ SYNTH) };
    let next = match unw.unwind_frame(fa, &mut regs, cache, &mut read) {
        Ok(Some(next)) => next,
        Ok(None) => return Rule::End,
        Err(_) => return Rule::Framehop,
    };
    let (sp, bp) = (regs.sp(), regs.bp());
    if next != (sp.wrapping_sub(8) ^ SYNTH) {
        return Rule::Framehop;
    }
    if sp == b + 16 && bp == b ^ SYNTH {
        return Rule::FramePointer;
    }
    let off = sp.wrapping_sub(s);
    if off == 0 || off >= 8 << 16 || off & 7 != 0 {
        return Rule::Framehop;
    }
    let off = off as u32;
    if bp == b {
        return Rule::OffsetSp { off };
    }
    let at = (bp ^ SYNTH).wrapping_sub(s) as i64;
    if (-(8 << 14)..(8 << 14)).contains(&at) && at & 7 == 0 {
        return Rule::RestoreBp {
            off,
            bp_at: at as i32,
        };
    }
    Rule::Framehop
}

/// Whether a stored rule leaves the step to framehop.
#[inline(always)]
pub fn is_framehop(w: u64) -> bool {
    w & 0xff == KIND_FRAMEHOP
}

/// Steps over one frame with a learned rule (as the table stores it), as framehop's rule would:
/// from the frame's (ip, sp, bp) to its caller's; `Ok(None)` at the end of the stack, `Err` for
/// a rule left to framehop. The rule is decoded on the way: the three usual rules are one
/// computation (the CFA is sp or bp plus an offset; bp is kept or read at the CFA's base
/// plus an offset) instead of a jump on the rule's kind, which the branch predictor misses
/// whenever consecutive frames have different kinds of rule.
#[inline(always)]
pub fn step_word(
    w: u64,
    (_, sp, bp): (u64, u64, u64),
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Result<Option<(u64, u64, u64)>, ()> {
    let kind = w & 0xff;
    if kind == KIND_END {
        return Ok(None);
    }
    if !(KIND_OFFSET_SP..=KIND_FRAME_POINTER).contains(&kind) {
        return Err(());
    }
    let fp = kind == KIND_FRAME_POINTER;
    if fp && bp == 0 {
        return Ok(None);
    }
    let base = if fp { bp } else { sp };
    let new_sp = base.checked_add(((w >> 8) & 0xffff) * 8).ok_or(())?;
    if new_sp <= sp {
        return Err(());
    }
    let new_bp = if kind == KIND_OFFSET_SP {
        bp
    } else {
        let bp_at = ((w >> 24) & 0xffff) as u16 as i16 as i64 * 8;
        read(base.checked_add_signed(bp_at).ok_or(())?)?
    };
    let ra = read(new_sp - 8)?;
    if ra == 0 {
        return Ok(None);
    }
    Ok(Some((ra, new_sp, new_bp)))
}
