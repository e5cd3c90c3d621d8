//! The writer side of a shared-memory ring (see `memcheck_wire` for the layout). One writer per
//! ring: the thread that claimed it. A record is written in place and becomes visible to the
//! tracer only when the new write position is published with a release store.
//!
//! When the ring is full the writer waits (back pressure): it spins briefly, then sleeps on a
//! futex in shared memory that the reader wakes. Every 10 ms of waiting it checks that the
//! tracer is still alive, so a dead reader never hangs the target.

use crate::sys;
use core::sync::atomic::Ordering;
use memcheck_wire::{self as wire, Kind, RecordHeader, RingHeader, RING_COUNT, RING_DATA};

pub struct Writer {
    ring: *const RingHeader,
    data: *mut u8,
    pos: u64,
    read: u64,
}

/// Why a write did not happen.
pub enum Lost {
    /// The tracer is gone: recording must stop for the whole process.
    ReaderGone,
}

impl Writer {
    /// Claims a free ring of the shared memory at `shm` for this thread.
    pub fn claim(shm: *mut u8, pid: u32, tid: u32) -> Option<Writer> {
        for i in 0..RING_COUNT {
            // SAFETY: ring i lies within the SHM_SIZE mapping; its header is only accessed
            // through atomics.
            let ring = unsafe { &*(shm.add(wire::ring_offset(i)) as *const RingHeader) };
            if ring.state.load(Ordering::Relaxed) != wire::RING_FREE {
                continue;
            }
            if ring
                .state
                .compare_exchange(
                    wire::RING_FREE,
                    wire::RING_ACTIVE,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                ring.owner_pid.store(pid, Ordering::Relaxed);
                ring.owner_tid.store(tid, Ordering::Release);
                let pos = ring.write_pos.load(Ordering::Relaxed);
                let mut w = Writer {
                    ring,
                    // SAFETY: the data area follows the ring header inside the mapping.
                    data: unsafe { shm.add(wire::ring_offset(i) + wire::RING_HEADER_SIZE) },
                    pos,
                    read: ring.read_pos.load(Ordering::Acquire),
                };
                let start = wire::ThreadStart { pid, tid };
                // SAFETY: ThreadStart is plain old data.
                let bytes = unsafe { as_bytes(&start) };
                if w.write(Kind::ThreadStart, &[bytes]).is_err() {
                    return None;
                }
                return Some(w);
            }
        }
        None
    }

    /// Writes one record made of the concatenation of `parts`.
    #[inline]
    pub fn write(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<(), Lost> {
        let payload: usize = parts.iter().map(|p| p.len()).sum();
        let len = wire::record_len(payload);
        let off = self.reserve(len)?;
        let hdr = RecordHeader {
            kind: kind as u32,
            len: len as u32,
        };
        // SAFETY: reserve returned `len` writable bytes at data+off that the reader will not
        // touch before the position is published.
        unsafe {
            let dst = self.data.add(off);
            core::ptr::write_unaligned(dst as *mut RecordHeader, hdr);
            let mut at = dst.add(8);
            for p in parts {
                core::ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
                at = at.add(p.len());
            }
        }
        self.pos += len as u64;
        // SAFETY: the ring header lives as long as the mapping.
        unsafe { (*self.ring).write_pos.store(self.pos, Ordering::Release) };
        Ok(())
    }

    /// Waits until everything written so far has been consumed by the tracer.
    pub fn sync(&mut self) -> Result<(), Lost> {
        let mut waited = 0u64;
        loop {
            // SAFETY: the ring header lives as long as the mapping.
            let read = unsafe { (*self.ring).read_pos.load(Ordering::Acquire) };
            if read >= self.pos {
                return Ok(());
            }
            sys::sleep_nanos(50_000);
            waited += 50_000;
            if waited.is_multiple_of(10_000_000) && !crate::init::reader_alive() {
                return Err(Lost::ReaderGone);
            }
        }
    }

    /// Finds `len` contiguous bytes; returns their offset in the data area.
    #[inline]
    fn reserve(&mut self, len: usize) -> Result<usize, Lost> {
        let mut off = (self.pos as usize) & (RING_DATA - 1);
        let mut need = len as u64;
        let pad = if off + len > RING_DATA {
            RING_DATA - off
        } else {
            0
        };
        need += pad as u64;
        if self.pos + need - self.read > RING_DATA as u64 {
            self.wait_for(need)?;
        }
        if pad > 0 {
            let hdr = RecordHeader {
                kind: Kind::Pad as u32,
                len: pad as u32,
            };
            // SAFETY: the pad lies within the data area and is reserved by the check above.
            unsafe { core::ptr::write_unaligned(self.data.add(off) as *mut RecordHeader, hdr) };
            self.pos += pad as u64;
            off = 0;
        }
        Ok(off)
    }

    /// Whether `need` more bytes fit, as of the reader's latest position.
    #[inline]
    fn fits(&mut self, need: u64) -> bool {
        // SAFETY: the ring header lives as long as the mapping.
        self.read = unsafe { (*self.ring).read_pos.load(Ordering::Acquire) };
        self.pos + need - self.read <= RING_DATA as u64
    }

    /// Waits until `need` bytes fit. A ring still full at the first look is a stall (back
    /// pressure), counted with its duration in the ring header.
    #[cold]
    fn wait_for(&mut self, need: u64) -> Result<(), Lost> {
        if self.fits(need) {
            return Ok(());
        }
        let t0 = sys::monotonic_nanos();
        let r = self.stall(need);
        let ns = sys::monotonic_nanos().saturating_sub(t0);
        // SAFETY: the ring header lives as long as the mapping.
        let ring = unsafe { &*self.ring };
        ring.stalls.fetch_add(1, Ordering::Relaxed);
        ring.stall_ns.fetch_add(ns, Ordering::Relaxed);
        r
    }

    fn stall(&mut self, need: u64) -> Result<(), Lost> {
        // SAFETY: the ring header lives as long as the mapping.
        let ring = unsafe { &*self.ring };
        for _ in 0..2000 {
            if self.fits(need) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        let mut slept = 0u64;
        loop {
            ring.writer_waiting.store(1, Ordering::SeqCst);
            if self.fits(need) {
                return Ok(());
            }
            sys::futex_wait(ring.writer_waiting.as_ptr(), 1, 2_000_000);
            slept += 2_000_000;
            if self.fits(need) {
                return Ok(());
            }
            if slept.is_multiple_of(10_000_000) && !crate::init::reader_alive() {
                return Err(Lost::ReaderGone);
            }
        }
    }
}

/// Views a plain-old-data record payload as bytes.
///
/// # Safety
/// `T` must be a `#[repr(C)]` type without padding that is read uninitialised.
pub unsafe fn as_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>()) }
}
