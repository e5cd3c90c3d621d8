//! Starting the program: fork, `PTRACE_TRACEME`, stop, then exec with the shim preloaded. A
//! failure of ptrace or exec in the child comes back through a close-on-exec pipe.

use crate::shm::Shm;
use crate::{Options, TraceError};
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const PTRACE_FAILED: i32 = 1 << 16;

fn cstring(b: &[u8]) -> CString {
    CString::new(b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>()).expect("no NUL")
}

/// Forks the program, stopped before its exec; returns its pid.
pub fn spawn(opts: &Options, shm: &Shm) -> Result<u32, TraceError> {
    let path = cstring(opts.program.as_os_str().as_bytes());
    let argv: Vec<CString> = opts.args.iter().map(|a| cstring(a.as_bytes())).collect();
    let mut envp: Vec<CString> = Vec::new();
    let mut preload = opts.shim.as_os_str().as_bytes().to_vec();
    for (k, v) in std::env::vars_os() {
        let k = k.as_bytes();
        if k == b"LD_PRELOAD" {
            if !v.is_empty() {
                preload.push(b':');
                preload.extend_from_slice(v.as_bytes());
            }
            continue;
        }
        if k == memcheck_wire::ENV_SHM.as_bytes() {
            continue;
        }
        let mut e = k.to_vec();
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        envp.push(cstring(&e));
    }
    let mut lp = b"LD_PRELOAD=".to_vec();
    lp.extend_from_slice(&preload);
    envp.push(cstring(&lp));
    envp.push(cstring(
        format!("{}={}", memcheck_wire::ENV_SHM, shm.path()).as_bytes(),
    ));

    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_p: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();

    let mut fds = [0i32; 2];
    // SAFETY: creating a pipe into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TraceError::Spawn(io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned here.
    let (mut rd, wr) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: the child only calls async-signal-safe functions before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(TraceError::Spawn(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only; all data was prepared before fork.
        unsafe {
            let report = |code: i32| {
                let b = code.to_ne_bytes();
                libc::write(fds[1], b.as_ptr() as *const libc::c_void, 4);
                libc::_exit(127);
            };
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                report(PTRACE_FAILED | *libc::__errno_location());
            }
            libc::raise(libc::SIGSTOP);
            libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
            report(*libc::__errno_location());
        }
    }
    drop(wr);
    // The parent waits for the child's stop, then reads the pipe only after resuming it (the
    // tracer does that); here, check that the child stopped rather than failed TRACEME.
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    if !libc::WIFSTOPPED(status) {
        let mut b = [0u8; 4];
        let code = if rd.read_exact(&mut b).is_ok() {
            i32::from_ne_bytes(b)
        } else {
            0
        };
        let err = io::Error::from_raw_os_error(code & 0xffff);
        return Err(TraceError::PtraceDenied(err.to_string()));
    }
    let opts_bits = libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_TRACEEXIT
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: setting options on our stopped tracee.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts_bits) } != 0 {
        return Err(TraceError::Ptrace(nix::Error::last()));
    }
    shm.set_traced(pid as u32, true);
    // SAFETY: resuming our stopped tracee (suppressing the SIGSTOP).
    unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, 0) };
    // Exec either fails (the child writes errno and exits) or closes the pipe.
    let mut b = [0u8; 4];
    if rd.read_exact(&mut b).is_ok() {
        let code = i32::from_ne_bytes(b);
        let mut st = 0;
        loop {
            // SAFETY: reaping our own child, which exits right after writing.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
            if r < 0 || libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
                break;
            }
            // SAFETY: let the tracee continue to its exit.
            unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, 0) };
        }
        return Err(TraceError::Exec {
            path: opts.program.display().to_string(),
            source: io::Error::from_raw_os_error(code & 0xffff),
        });
    }
    Ok(pid as u32)
}
