//! Signal masks across PID 1's children.
//!
//! guest-init blocks the signals it takes with `sigwait`, and a blocked
//! mask is inherited through fork and exec: sshd, and every shell it
//! starts, would ignore SIGTERM and Ctrl-C. So every non-PID-1 mode of the
//! agent clears its mask first, and external programs that PID 1
//! supervises are started through the agent's `launch` mode, which clears
//! the mask and then execs them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};

/// Unblocks every signal in the calling thread (call before starting any
/// thread, so they all inherit the empty mask).
pub fn clear_mask() -> nix::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// The `launch` mode: replaces this process with `argv` (whose signal mask
/// was cleared by the caller). Returns only on failure.
pub fn launch(argv: &[String]) -> io::Error {
    let Some((program, args)) = argv.split_first() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "launch: no program given");
    };
    Command::new(program).args(args).exec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn clear_mask_unblocks_what_was_blocked() {
        // On a thread of its own: the test harness's threads keep theirs.
        std::thread::spawn(|| {
            let mut set = SigSet::empty();
            set.add(Signal::SIGUSR2);
            set.thread_block().unwrap();
            assert!(SigSet::thread_get_mask().unwrap().contains(Signal::SIGUSR2));
            clear_mask().unwrap();
            assert!(!SigSet::thread_get_mask().unwrap().contains(Signal::SIGUSR2));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn launch_without_a_program_is_an_error() {
        assert_eq!(launch(&[]).kind(), io::ErrorKind::InvalidInput);
    }
}
