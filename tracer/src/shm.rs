//! The tracer's side of the shared memory: creation, the traced-pid bitmap, and the reader of
//! the per-thread rings (see `memcheck_wire`).
//!
//! It also keeps the transport's statistics: records read, back-pressure stalls of the writers
//! (and how long they waited), allocation calls that could not be recorded. When the
//! `MEMCHECK_STATS` environment variable names a file, they are written there as one line of
//! `key=value` pairs when the shared memory is released (for `scripts/bench`).

use crate::{Options, TraceError};
use memcheck_wire::{self as wire, Header, Kind, RecordHeader, RingHeader};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

/// One decoded record.
#[derive(Debug)]
pub enum Record<'a> {
    ThreadStart,
    Stack { id: u32, frames: &'a [u8] },
    Alloc(wire::Alloc),
    Free(wire::Free),
    BadFree(wire::Free),
    DlClose,
}

/// How far ahead of the record being applied records are announced (`Phase::Soon`), and
/// further ahead the ring's memory prefetched (bytes).
const PREFETCH_BYTES: u64 = 1536;

/// Why a drain callback is called with a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// The record will be applied shortly: a chance to prefetch what it will touch.
    Soon,
    /// Apply it.
    Apply,
}

/// A drain callback that only applies records.
fn apply_only<'f, F: FnMut(u32, u32, Record<'_>)>(
    f: &'f mut F,
) -> impl FnMut(u32, u32, Record<'_>, Phase) + 'f {
    move |pid, tid, rec, phase| {
        if phase == Phase::Apply {
            f(pid, tid, rec)
        }
    }
}

pub struct Shm {
    fd: OwnedFd,
    base: *mut u8,
    records: Cell<u64>,
    /// Stalls and stall time of rings freed so far.
    stalls: Cell<u64>,
    stall_ns: Cell<u64>,
}

/// Transport statistics (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub stalls: u64,
    pub stall_ns: u64,
    pub dropped: u64,
}

impl Shm {
    pub fn create(opts: &Options) -> Result<Shm, TraceError> {
        // SAFETY: memfd_create with a static name.
        let fd = unsafe { libc::memfd_create(c"memcheck".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(TraceError::Shm(io::Error::last_os_error()));
        }
        // SAFETY: fd was just created and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: resizing our own memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), wire::SHM_SIZE as i64) } != 0 {
            return Err(TraceError::Shm(io::Error::last_os_error()));
        }
        // SAFETY: a fresh shared mapping of the memfd.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                wire::SHM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(TraceError::Shm(io::Error::last_os_error()));
        }
        let shm = Shm {
            fd,
            base: base as *mut u8,
            records: Cell::new(0),
            stalls: Cell::new(0),
            stall_ns: Cell::new(0),
        };
        let h = shm.header();
        h.version.store(wire::PROTOCOL_VERSION, Ordering::Relaxed);
        h.tracer_pid.store(std::process::id(), Ordering::Relaxed);
        h.depth.store(opts.depth, Ordering::Relaxed);
        h.keep.store(opts.keep, Ordering::Relaxed);
        let fill = |b: Option<u8>| b.map_or(0, |b| wire::FILL | b as u32);
        h.malloc_fill
            .store(fill(opts.malloc_fill), Ordering::Relaxed);
        h.free_fill.store(fill(opts.free_fill), Ordering::Relaxed);
        h.freelist_vol.store(opts.freelist.vol, Ordering::Relaxed);
        h.freelist_blocks
            .store(opts.freelist.blocks, Ordering::Relaxed);
        h.magic.store(wire::MAGIC, Ordering::Release);
        Ok(shm)
    }

    /// The path the shim opens to map this memory.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is at the start of the mapping and only accessed through atomics.
        unsafe { &*(self.base as *const Header) }
    }

    fn ring(&self, i: usize) -> &RingHeader {
        // SAFETY: ring i lies within the mapping; its header is only accessed through atomics.
        unsafe { &*(self.base.add(wire::ring_offset(i)) as *const RingHeader) }
    }

    fn bitmap_byte(&self, pid: u32) -> Option<&AtomicU8> {
        let pid = pid as usize;
        // SAFETY: the byte lies within the bitmap; accessed atomically.
        (pid < wire::MAX_PID)
            .then(|| unsafe { &*(self.base.add(wire::BITMAP_OFFSET + pid / 8) as *const AtomicU8) })
    }

    /// Marks `pid` traced (or not): a process image checks it when its shim starts.
    pub fn set_traced(&self, pid: u32, traced: bool) {
        if let Some(b) = self.bitmap_byte(pid) {
            let bit = 1u8 << (pid % 8);
            if traced {
                b.fetch_or(bit, Ordering::Release);
            } else {
                b.fetch_and(!bit, Ordering::Release);
            }
        }
    }

    /// Tells writers that nobody reads any more (they stop waiting and stop recording).
    pub fn close_reader(&self) {
        self.header().reader_gone.store(1, Ordering::Release);
    }

    /// Reads every record published so far in every active ring. `f` gets the ring's owner
    /// (pid, tid) and the record, twice: first a few records before it is to be applied
    /// (`Phase::Soon`), then to apply it. Returns how many records were read.
    pub fn drain(&self, mut f: impl FnMut(u32, u32, Record<'_>, Phase)) -> usize {
        let mut n = 0;
        for i in 0..wire::RING_COUNT {
            n += self.drain_ring(i, &mut f);
        }
        n
    }

    /// Reads the rings owned by one process.
    pub fn drain_pid(&self, pid: u32, mut f: impl FnMut(u32, u32, Record<'_>)) -> usize {
        let mut n = 0;
        for i in 0..wire::RING_COUNT {
            let r = self.ring(i);
            if r.state.load(Ordering::Acquire) == wire::RING_ACTIVE
                && r.owner_pid.load(Ordering::Acquire) == pid
            {
                n += self.drain_ring(i, &mut apply_only(&mut f));
            }
        }
        n
    }

    fn drain_ring(&self, i: usize, f: &mut impl FnMut(u32, u32, Record<'_>, Phase)) -> usize {
        let r = self.ring(i);
        if r.state.load(Ordering::Acquire) != wire::RING_ACTIVE {
            return 0;
        }
        let end = r.write_pos.load(Ordering::Acquire);
        let mut pos = r.read_pos.load(Ordering::Relaxed);
        if pos == end {
            return 0;
        }
        let pid = r.owner_pid.load(Ordering::Acquire);
        let tid = r.owner_tid.load(Ordering::Acquire);
        // SAFETY: the data area follows the ring header; bytes below `end` are published.
        let data = unsafe {
            std::slice::from_raw_parts(
                self.base.add(wire::ring_offset(i) + wire::RING_HEADER_SIZE),
                wire::RING_DATA,
            )
        };
        // The record at `pos` is applied once the records up to `PREFETCH_BYTES` further on
        // have been announced (`Phase::Soon`).
        let record_at = |at: u64| -> Result<(Option<Record<'_>>, usize), ()> {
            let off = (at as usize) & (wire::RING_DATA - 1);
            // SAFETY: a record header is 8 bytes at an 8-aligned offset inside the data area.
            let hdr: RecordHeader =
                unsafe { std::ptr::read_unaligned(data.as_ptr().add(off) as *const RecordHeader) };
            let len = hdr.len as usize;
            if len < 8 || off + len > wire::RING_DATA {
                // A corrupt ring (a wild write by the program into our memory).
                return Err(());
            }
            Ok((decode(hdr.kind, &data[off + 8..off + len]), len))
        };
        let mut ahead = pos;
        let mut n = 0;
        while pos < end {
            while ahead < end && ahead - pos < PREFETCH_BYTES {
                let off = (ahead as usize) & (wire::RING_DATA - 1);
                // The writer's core has the lines: ask for them ahead too.
                // SAFETY: a prefetch never faults; the address is inside the data area.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        data.as_ptr()
                            .add((off + PREFETCH_BYTES as usize) & (wire::RING_DATA - 1))
                            as *const i8,
                    )
                };
                match record_at(ahead) {
                    Ok((rec, len)) => {
                        if let Some(rec) = rec {
                            f(pid, tid, rec, Phase::Soon);
                        }
                        ahead += len as u64;
                    }
                    Err(()) => break,
                }
            }
            match record_at(pos) {
                Ok((rec, len)) => {
                    if let Some(rec) = rec {
                        f(pid, tid, rec, Phase::Apply);
                        n += 1;
                    }
                    pos += len as u64;
                }
                Err(()) => {
                    // Skip what is left.
                    pos = end;
                    break;
                }
            }
        }
        r.read_pos.store(pos, Ordering::Release);
        self.records.set(self.records.get() + n as u64);
        if r.writer_waiting.swap(0, Ordering::AcqRel) != 0 {
            // SAFETY: waking futex waiters on a word of the shared mapping. syscall() is
            // variadic: every argument is passed as a full 64-bit value.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    r.writer_waiting.as_ptr() as libc::c_long,
                    libc::FUTEX_WAKE as libc::c_long,
                    i32::MAX as libc::c_long,
                    0 as libc::c_long,
                    0 as libc::c_long,
                    0 as libc::c_long,
                )
            };
        }
        n
    }

    /// Frees the rings of a thread that is gone (after draining them with `f`).
    pub fn release_tid(&self, pid: u32, tid: Option<u32>, mut f: impl FnMut(u32, u32, Record<'_>)) {
        for i in 0..wire::RING_COUNT {
            let r = self.ring(i);
            if r.state.load(Ordering::Acquire) != wire::RING_ACTIVE
                || r.owner_pid.load(Ordering::Acquire) != pid
            {
                continue;
            }
            if tid.is_some_and(|t| r.owner_tid.load(Ordering::Acquire) != t) {
                continue;
            }
            self.drain_ring(i, &mut apply_only(&mut f));
            self.stalls
                .set(self.stalls.get() + r.stalls.swap(0, Ordering::Relaxed));
            self.stall_ns
                .set(self.stall_ns.get() + r.stall_ns.swap(0, Ordering::Relaxed));
            r.owner_tid.store(0, Ordering::Relaxed);
            r.owner_pid.store(0, Ordering::Relaxed);
            r.state.store(wire::RING_FREE, Ordering::Release);
        }
    }
}

fn pod<T: Copy>(body: &[u8]) -> Option<T> {
    // SAFETY: the length is checked; T is a plain-old-data record payload.
    (body.len() >= std::mem::size_of::<T>())
        .then(|| unsafe { std::ptr::read_unaligned(body.as_ptr() as *const T) })
}

fn decode(kind: u32, body: &[u8]) -> Option<Record<'_>> {
    Some(match Kind::from_u32(kind)? {
        Kind::Pad => return None,
        Kind::ThreadStart => {
            let _: wire::ThreadStart = pod(body)?;
            Record::ThreadStart
        }
        Kind::Stack => {
            let d: wire::StackDef = pod(body)?;
            let frames = body.get(8..8 + d.nframes as usize * 8)?;
            Record::Stack { id: d.id, frames }
        }
        Kind::Alloc => Record::Alloc(pod(body)?),
        Kind::Free => Record::Free(pod(body)?),
        Kind::BadFree => Record::BadFree(pod(body)?),
        Kind::DlClose => Record::DlClose,
    })
}

impl Shm {
    /// The statistics so far (rings still in use included).
    pub fn stats(&self) -> Stats {
        let mut st = Stats {
            records: self.records.get(),
            stalls: self.stalls.get(),
            stall_ns: self.stall_ns.get(),
            dropped: self.header().dropped.load(Ordering::Relaxed),
        };
        for i in 0..wire::RING_COUNT {
            let r = self.ring(i);
            st.stalls += r.stalls.load(Ordering::Relaxed);
            st.stall_ns += r.stall_ns.load(Ordering::Relaxed);
        }
        st
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        if let Some(path) = std::env::var_os("MEMCHECK_STATS") {
            let s = self.stats();
            // Best effort: the statistics are a diagnostic, never a reason to fail the run.
            let _ = std::fs::write(
                path,
                format!(
                    "records={} stalls={} stall_us={} dropped={}\n",
                    s.records,
                    s.stalls,
                    s.stall_ns / 1000,
                    s.dropped
                ),
            );
        }
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.base as *mut libc::c_void, wire::SHM_SIZE) };
    }
}
