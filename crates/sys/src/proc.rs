//! Processes by pid: whether one runs, whether it is ours, reaping it,
//! waiting for it to go, and stopping it with signals.
//!
//! A pid alone is not an identity: after a daemon restart the recorded pid
//! may belong to anything. A process counts as ours only while its argv
//! matches an [`Identity`] (for VMMs: a socket path unique to the VM). A
//! zombie has an empty `/proc/<pid>/cmdline`, and [`is_running`] treats it as
//! exited, so an exited child is gone even before it is reaped.
//!
//! Children started with `Cmd::spawn_detached` are not waited for by
//! anyone else, so they are reaped here: `waitpid` on exactly that pid,
//! never `-1`, so other children's exit statuses are not stolen. A pid that
//! is not our child answers `ECHILD`, which makes [`reap`] a harmless no-op
//! on anyone else's process.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

const POLL: Duration = Duration::from_millis(20);
/// After a child's command line disappears it takes a moment to become
/// reapable; bounded, because a pid that is not our child answers ECHILD at
/// once and one that is still running (reused) keeps saying "not yet".
const REAP_GRACE: Duration = Duration::from_millis(100);

/// The arguments of a process, as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Argv(Vec<Vec<u8>>);

impl Argv {
    /// The argv of `pid`; empty if it is gone or a zombie (whose cmdline the
    /// kernel no longer has).
    pub fn of(pid: u32) -> Argv {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| Argv::parse(&raw))
            .unwrap_or_default()
    }

    /// Parses the NUL-separated `/proc/<pid>/cmdline` format.
    pub fn parse(raw: &[u8]) -> Argv {
        let mut args: Vec<Vec<u8>> = raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        // The kernel ends every argument with a NUL: the split leaves one
        // empty piece after the last.
        if args.last().is_some_and(Vec::is_empty) {
            args.pop();
        }
        Argv(args)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether one argument (not two joined) contains `needle`.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && self
                .0
                .iter()
                .any(|arg| arg.windows(needle.len()).any(|w| w == needle))
    }

    /// Whether one argument is exactly `arg`.
    pub fn has(&self, arg: &[u8]) -> bool {
        self.0.iter().any(|a| a == arg)
    }

    /// Whether `flag` is immediately followed by `value`.
    pub fn has_pair(&self, flag: &[u8], value: &[u8]) -> bool {
        self.0.windows(2).any(|w| w[0] == flag && w[1] == value)
    }
}

/// What makes a running process ours.
pub trait Identity {
    fn identifies(&self, argv: &Argv) -> bool;
}

/// A string one of the arguments contains.
impl Identity for str {
    fn identifies(&self, argv: &Argv) -> bool {
        argv.contains(self.as_bytes())
    }
}

impl Identity for String {
    fn identifies(&self, argv: &Argv) -> bool {
        self.as_str().identifies(argv)
    }
}

/// A path one of the arguments contains.
impl Identity for Path {
    fn identifies(&self, argv: &Argv) -> bool {
        use std::os::unix::ffi::OsStrExt;
        argv.contains(self.as_os_str().as_bytes())
    }
}

/// Any test over the argv.
impl<F: Fn(&Argv) -> bool> Identity for F {
    fn identifies(&self, argv: &Argv) -> bool {
        self(argv)
    }
}

/// A child this process spawned and has not reaped: its pid cannot have
/// been given to anyone else (an exited child stays a zombie until reaped),
/// so any argv is its own, even the empty one it has for a moment after
/// `spawn` and before the kernel records the new arguments.
pub struct UnreapedChild;

impl Identity for UnreapedChild {
    fn identifies(&self, _: &Argv) -> bool {
        true
    }
}

fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Collects the exit status of `pid` if it is an exited child of this
/// process; a no-op for a running child and for anyone else's process.
pub fn reap(pid: u32) {
    if let Some(pid) = pid_of(pid) {
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
    }
}

/// Reaps `pid` once it has exited, if it is our child, waiting at most
/// [`REAP_GRACE`] for it to become reapable.
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

/// Whether `pid` is a running process: it exists and is not a zombie (or
/// dead). It may belong to another user.
pub fn is_running(pid: u32) -> bool {
    if pid_of(pid).is_none() {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`; comm may hold spaces and parentheses, so the state
    // is found after the last `)`.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// Whether `pid` runs and is ours. Reaps it first if it is our exited
/// child, so a VMM this daemon started never lingers as a zombie.
pub fn is_ours<I: Identity + ?Sized>(pid: u32, identity: &I) -> bool {
    reap(pid);
    is_running(pid) && identity.identifies(&Argv::of(pid))
}

/// Waits until a process we just spawned shows `identity` in its argv;
/// false if it exited first or `timeout` passed. Needed because `spawn`
/// returns as soon as the child's `execve` has replaced its memory, a
/// moment before the kernel records the new arguments: until then
/// `/proc/<pid>/cmdline` is empty and the process would not pass as ours.
pub fn wait_exec<I: Identity + ?Sized>(pid: u32, identity: &I, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_ours(pid, identity) {
            return true;
        }
        if !is_running(pid) || Instant::now() >= deadline {
            reap(pid);
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits up to `timeout` for `pid` to stop being ours; true if it did.
/// An exited child of ours is reaped on the way out.
pub fn wait_gone<I: Identity + ?Sized>(pid: u32, identity: &I, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
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

/// Sends `signal` if `pid` is still ours. A process that exits in between
/// is not an error: the caller wanted it gone.
fn signal<I: Identity + ?Sized>(pid: u32, identity: &I, signal: Signal) {
    if !is_ours(pid, identity) {
        return;
    }
    if let Some(p) = pid_of(pid)
        && let Err(e) = rustix::process::kill_process(p, signal)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!(pid, ?signal, error = %e, "cannot signal");
    }
}

/// Every process one of whose arguments names something inside `dir` (a
/// socket, a disk, a log of a VM directory): what a crash may have left
/// running before its pid was recorded.
pub fn mentioning(dir: &Path) -> Vec<u32> {
    use std::os::unix::ffi::OsStrExt;
    let mut needle = dir.as_os_str().as_bytes().to_vec();
    needle.push(b'/');
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && Argv::of(*pid).contains(&needle))
        .collect()
}

/// SIGKILL, then waits up to `grace` for the process to be gone; true once
/// none of ours is left (a stranger on that pid counts as gone, untouched).
pub fn kill_hard<I: Identity + ?Sized>(pid: u32, identity: &I, grace: Duration) -> bool {
    signal(pid, identity, Signal::KILL);
    wait_gone(pid, identity, grace)
}

/// SIGTERM, `grace` to exit, then SIGKILL and `grace` again; true once it
/// is gone.
pub fn terminate<I: Identity + ?Sized>(pid: u32, identity: &I, grace: Duration) -> bool {
    signal(pid, identity, Signal::TERM);
    wait_gone(pid, identity, grace) || kill_hard(pid, identity, grace)
}

#[cfg(test)]
mod tests;
