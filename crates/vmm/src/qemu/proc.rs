//! Finding, waiting for and killing the processes of one VM.
//!
//! A pid alone is not an identity: after a daemon restart the recorded pid
//! may belong to anything. A process counts as ours only while one of its
//! arguments contains a string unique to the VM (a socket path inside its
//! run directory). A zombie has an empty `/proc/<pid>/cmdline`, so an exited
//! child counts as gone even before it is reaped.
//!
//! `spawn_detached` does not keep the child handle, so the processes this
//! daemon started are reaped here (`waitpid` on exactly that pid, never
//! `-1`, so other children's exit statuses are not stolen). Signals and
//! `waitpid` use rustix's safe wrappers; they belong in `banger_sys::os`
//! together with `process_alive`, and move there when that crate grows them.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

const POLL: Duration = Duration::from_millis(20);
/// How much of a log an error quotes.
const LOG_TAIL_BYTES: u64 = 2048;

fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Whether `pid` runs and one of its arguments contains `identity`.
pub fn is_ours(pid: u32, identity: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    cmdline_matches(&cmdline, identity)
}

pub(crate) fn cmdline_matches(cmdline: &[u8], identity: &str) -> bool {
    let needle = identity.as_bytes();
    !needle.is_empty()
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.windows(needle.len()).any(|w| w == needle))
}

/// Waits until a process we just spawned shows `identity` in its command
/// line; false if it exited first or `timeout` passed. Needed because
/// `spawn` returns as soon as the child's `execve` has replaced its memory,
/// a moment before the kernel records the new arguments: until then
/// `/proc/<pid>/cmdline` is empty and the process would not pass as ours.
pub fn wait_exec(pid: u32, identity: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_ours(pid, identity) {
            return true;
        }
        reap(pid);
        if !banger_sys::os::process_alive(pid) || is_zombie(pid) || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Collects the exit status of `pid` if it is an exited child of this
/// process; a no-op (ECHILD) for anyone else's process.
pub fn reap(pid: u32) {
    if let Some(pid) = pid_of(pid) {
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
    }
}

/// After a child's command line disappears it takes a moment to become
/// reapable; bounded, because a pid that is not our child answers ECHILD at
/// once and one that is still running (reused) keeps saying "not yet".
const REAP_GRACE: Duration = Duration::from_millis(100);

/// Reaps `pid` once it has exited, if it is our child.
fn reap_exited(pid: u32) {
    let Some(p) = pid_of(pid) else {
        return;
    };
    let deadline = Instant::now() + REAP_GRACE;
    while let Ok(None) = rustix::process::waitpid(Some(p), WaitOptions::NOHANG) {
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits up to `timeout` for `pid` to stop being ours; true if it did.
pub fn wait_gone(pid: u32, identity: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reap(pid);
        if !is_ours(pid, identity) {
            reap_exited(pid);
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` if `pid` is still ours.
fn signal(pid: u32, identity: &str, signal: Signal) {
    if !is_ours(pid, identity) {
        return;
    }
    if let Some(p) = pid_of(pid)
        && let Err(e) = rustix::process::kill_process(p, signal)
    {
        tracing::warn!(pid, ?signal, error = %e, "cannot signal");
    }
}

/// SIGKILL, then waits up to `grace` for the process to be gone.
pub fn kill_hard(pid: u32, identity: &str, grace: Duration) -> bool {
    signal(pid, identity, Signal::KILL);
    wait_gone(pid, identity, grace)
}

/// SIGTERM, `grace` to exit, then SIGKILL; true once it is gone.
pub fn terminate(pid: u32, identity: &str, grace: Duration) -> bool {
    signal(pid, identity, Signal::TERM);
    wait_gone(pid, identity, grace) || kill_hard(pid, identity, grace)
}

/// The end of a log file after byte `since`, prefixed for
/// [`crate::VmmError::ExitedEarly`]'s `tail`; empty when nothing is there.
/// Logs are appended to across launches, and an error must quote only the
/// launch that failed.
pub fn log_tail_since(path: &Path, since: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(LOG_TAIL_BYTES).max(since.min(len));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else if start > since {
        format!(":\n…{text}")
    } else {
        format!(":\n{text}")
    }
}

/// The current length of a log, to quote only what follows.
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_must_be_inside_one_argument() {
        let cmdline = b"qemu-system-x86_64\0-chardev\0socket,id=qmp,path=/run/vm1/qmp.sock\0";
        assert!(cmdline_matches(cmdline, "/run/vm1/qmp.sock"));
        assert!(!cmdline_matches(cmdline, "/run/vm2/qmp.sock"));
        // Not across the NUL between two arguments.
        assert!(!cmdline_matches(cmdline, "-chardev socket"));
        assert!(!cmdline_matches(cmdline, ""));
        assert!(
            !cmdline_matches(b"", "/run/vm1/qmp.sock"),
            "a zombie's cmdline"
        );
    }

    #[test]
    fn a_process_is_ours_only_with_the_identity_and_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker-arg").display().to_string();
        // A loop, not one command: `sh -c` would exec a lone `sleep` and
        // lose the marker argument. It ends with the test's directory.
        let script = format!(
            "while [ -d '{}' ]; do sleep 0.05; done",
            dir.path().display()
        );
        let pid = banger_sys::Cmd::new("sh")
            .args(["-c", &script, &marker])
            .spawn_detached(&dir.path().join("log"))
            .unwrap();
        assert!(wait_exec(pid, &marker, Duration::from_secs(5)));
        assert!(is_ours(pid, &marker));
        assert!(!is_ours(pid, "/some/other/vm/qmp.sock"));
        // Signals are only sent to our own processes; a stranger counts as
        // "none of ours left".
        assert!(kill_hard(pid, "/some/other/vm/qmp.sock", Duration::ZERO));
        assert!(banger_sys::os::process_alive(pid));
        assert!(kill_hard(pid, &marker, Duration::from_secs(5)));
        // Reaped: no zombie left behind.
        assert!(!banger_sys::os::process_alive(pid));
    }

    #[test]
    fn wait_exec_gives_up_on_a_process_that_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pid = banger_sys::Cmd::new("true")
            .spawn_detached(&dir.path().join("log"))
            .unwrap();
        let started = Instant::now();
        assert!(!wait_exec(
            pid,
            "never-in-its-cmdline",
            Duration::from_secs(10)
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn terminate_uses_sigterm_first() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("term-arg").display().to_string();
        let trapped = dir.path().join("trapped");
        let script = format!(
            "trap 'touch {}; exit 0' TERM; while [ -d '{}' ]; do sleep 0.05; done",
            trapped.display(),
            dir.path().display()
        );
        let pid = banger_sys::Cmd::new("sh")
            .args(["-c", &script, &marker])
            .spawn_detached(&dir.path().join("log"))
            .unwrap();
        assert!(wait_exec(pid, &marker, Duration::from_secs(5)));
        // Let the shell install its trap.
        std::thread::sleep(Duration::from_millis(200));
        assert!(terminate(pid, &marker, Duration::from_secs(5)));
        assert!(trapped.exists(), "SIGTERM was not delivered first");
        assert!(!banger_sys::os::process_alive(pid));
    }

    #[test]
    fn log_tail_keeps_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        assert_eq!(log_tail_since(&log, 0), "", "missing log");
        std::fs::write(&log, "  \n").unwrap();
        assert_eq!(log_tail_since(&log, 0), "", "blank log");
        std::fs::write(&log, "short error\n").unwrap();
        assert_eq!(log_tail_since(&log, 0), ":\nshort error");
        let long = format!("{}THE END", "x".repeat(5000));
        std::fs::write(&log, &long).unwrap();
        let tail = log_tail_since(&log, 0);
        assert!(
            tail.starts_with(":\n…") && tail.ends_with("THE END"),
            "{tail}"
        );
        assert!(tail.len() < 2100, "{}", tail.len());
        let since = log_len(&log);
        assert_eq!(log_tail_since(&log, since), "", "nothing new");
        std::fs::write(&log, format!("{long}\nthis launch\n")).unwrap();
        assert_eq!(log_tail_since(&log, since), ":\nthis launch");
    }
}
