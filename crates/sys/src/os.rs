//! Syscalls and host facts, through `rustix`'s safe wrappers.

use std::path::Path;

pub use rustix::fs::Mode;

/// Sets the process umask and returns the previous one. The daemon calls this
/// before binding its socket so the socket never exists with looser modes.
pub fn set_umask(mask: u32) -> u32 {
    rustix::process::umask(Mode::from_raw_mode(mask)).as_raw_mode()
}

pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn is_root() -> bool {
    effective_uid() == 0
}

pub fn pid() -> u32 {
    std::process::id()
}

/// Whether a process with this pid exists (it may belong to another user).
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Takes an exclusive advisory lock on `file` without waiting; an error of
/// kind `WouldBlock` means another process holds it.
pub fn lock_exclusive_nonblocking(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

/// The CPU architecture banger was built for, in the kernel's spelling.
pub fn arch() -> &'static str {
    std::env::consts::ARCH
}

/// Whether the current user can open `path` for reading and writing.
pub fn can_open_rw(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_round_trips() {
        let old = set_umask(0o077);
        assert_eq!(set_umask(old), 0o077);
    }

    #[test]
    fn own_process_is_alive_and_bogus_pid_is_not() {
        assert!(process_alive(pid()));
        assert!(!process_alive(0));
        assert!(!process_alive(u32::MAX));
    }
}
