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

/// Takes an exclusive advisory lock on `file`, waiting for whoever holds
/// it; released when the file is closed.
pub fn lock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).map_err(std::io::Error::from)
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

/// The primary group of user `uid`, from `/etc/passwd`; `None` when the
/// user has no entry there (e.g. a directory service only).
pub fn primary_gid(uid: u32) -> Option<u32> {
    passwd_primary_gid(&std::fs::read_to_string("/etc/passwd").ok()?, uid)
}

/// `name:password:uid:gid:gecos:home:shell`, one user per line.
fn passwd_primary_gid(passwd: &str, uid: u32) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':').skip(2);
        let entry_uid: u32 = fields.next()?.parse().ok()?;
        (entry_uid == uid).then(|| fields.next()?.parse().ok())?
    })
}

/// The uid of the process at the other end of a Unix stream
/// (`SO_PEERCRED`: the credentials it had when it connected).
pub fn peer_uid(stream: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    rustix::net::sockopt::socket_peercred(stream)
        .map(|cred| cred.uid.as_raw())
        .map_err(std::io::Error::from)
}

/// The pid of the process at the other end of a Unix stream: for a
/// connection to a listening socket, the process that is serving it.
pub fn peer_pid(stream: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    rustix::net::sockopt::socket_peercred(stream)
        .map(|cred| cred.pid.as_raw_nonzero().get().unsigned_abs())
        .map_err(std::io::Error::from)
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

    #[test]
    fn primary_gid_comes_from_the_users_passwd_line() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\n\
                      dev:x:1000:1001:Dev,,,:/home/dev:/bin/bash\n";
        assert_eq!(passwd_primary_gid(passwd, 0), Some(0));
        assert_eq!(passwd_primary_gid(passwd, 1000), Some(1001));
        assert_eq!(passwd_primary_gid(passwd, 1001), None, "a gid is not a uid");
        assert_eq!(passwd_primary_gid("x:x:7:notanumber::/:/bin/sh\n", 7), None);
        assert_eq!(primary_gid(0), Some(0), "root is in every /etc/passwd");
    }

    #[test]
    fn a_blocking_lock_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = std::fs::File::create(&path).unwrap();
        lock_exclusive(&held).unwrap();
        let other = std::fs::File::open(&path).unwrap();
        assert_eq!(
            lock_exclusive_nonblocking(&other).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        let waiter = std::thread::spawn(move || lock_exclusive(&other).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished(), "took a held lock");
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
