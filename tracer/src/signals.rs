//! memcheck's own signal dispositions: the terminal's SIGINT and SIGQUIT are for the program
//! (memcheck waits for it to end, then reports), and a program that died of a signal makes
//! memcheck die of the same signal, so the shell sees the same status.

use nix::sys::signal::{self, SigHandler, Signal};

pub fn ignore_terminal_signals() {
    for s in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal::signal(s, SigHandler::SigIgn) };
    }
}

/// Raises `sig` with its default action (no core dump of memcheck itself); returns only if
/// the signal does not terminate.
pub fn die_by_signal(sig: i32) {
    let Ok(s) = Signal::try_from(sig) else { return };
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setting our own core limit, restoring the default disposition, raising.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        let _ = signal::signal(s, SigHandler::SigDfl);
    }
    let _ = signal::raise(s);
}
