//! Reading a stopped target's memory in bulk with `process_vm_readv`: many ranges per system
//! call, short reads handled range by range.

use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;
use std::io::IoSliceMut;

/// Ranges per system call (the kernel's IOV_MAX).
const BATCH: usize = 1024;

/// Reads `ranges` (address, length) into `out`, concatenated; bytes that cannot be read are
/// left zero. Returns the offset of each range in `out`.
pub fn read_ranges(pid: u32, ranges: &[(u64, usize)], out: &mut Vec<u8>) -> Vec<usize> {
    let total: usize = ranges.iter().map(|r| r.1).sum();
    let start = out.len();
    out.resize(start + total, 0);
    let mut offsets = Vec::with_capacity(ranges.len());
    let mut off = start;
    for r in ranges {
        offsets.push(off);
        off += r.1;
    }
    let pid = Pid::from_raw(pid as i32);
    let mut i = 0;
    while i < ranges.len() {
        let end = (i + BATCH).min(ranges.len());
        let batch = &ranges[i..end];
        let remote: Vec<RemoteIoVec> = batch
            .iter()
            .filter(|r| r.1 > 0)
            .map(|&(a, l)| RemoteIoVec {
                base: a as usize,
                len: l,
            })
            .collect();
        let expected: usize = batch.iter().map(|r| r.1).sum();
        let buf = &mut out[offsets[i]..offsets[i] + expected];
        let got = {
            let mut local = [IoSliceMut::new(buf)];
            process_vm_readv(pid, &mut local, &remote).unwrap_or(0)
        };
        if got == expected {
            i = end;
            continue;
        }
        // A short read: the range that failed is skipped, the rest retried.
        let mut acc = 0;
        let mut k = i;
        while k < end && acc + ranges[k].1 <= got {
            acc += ranges[k].1;
            k += 1;
        }
        if k < end {
            // Range k failed at least partly: read it in pages.
            read_one(
                pid,
                ranges[k],
                &mut out[offsets[k]..offsets[k] + ranges[k].1],
            );
            k += 1;
        }
        i = k;
    }
    offsets
}

fn read_one(pid: Pid, (addr, len): (u64, usize), buf: &mut [u8]) {
    let mut done = 0;
    while done < len {
        let page_end = ((addr + done as u64) | 0xfff) + 1;
        let n = ((page_end - (addr + done as u64)) as usize).min(len - done);
        let remote = [RemoteIoVec {
            base: (addr as usize) + done,
            len: n,
        }];
        let mut local = [IoSliceMut::new(&mut buf[done..done + n])];
        let _ = process_vm_readv(pid, &mut local, &remote);
        done += n;
    }
}
