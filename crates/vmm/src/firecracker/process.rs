//! Finding, waiting for and killing a Firecracker process by pid, with the
//! pid checked against `/proc/<pid>/cmdline` so a pid the kernel has since
//! given to another program is never mistaken for (or killed as) our VMM.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use banger_sys::Cmd;

const POLL: Duration = Duration::from_millis(20);

/// Whether `pid` is a running process: it exists and is not a zombie. A VMM
/// we spawned stays a zombie until reaped, which for us means exited.
pub fn running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`; comm may hold spaces and parentheses, so the state
    // is found after the last `)`.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// The argv of `pid`, empty if it is gone (or a zombie, whose cmdline the
/// kernel no longer has).
pub fn cmdline(pid: u32) -> Vec<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `argv` names `socket` as one whole argument.
pub fn argv_has(argv: &[Vec<u8>], arg: &[u8]) -> bool {
    argv.iter().any(|a| a == arg)
}

/// Whether `argv` has `flag` immediately followed by `value`.
pub fn argv_has_pair(argv: &[Vec<u8>], flag: &[u8], value: &[u8]) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == value)
}

pub fn path_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

/// Polls until `alive` turns false or `timeout` passes; true if it did.
pub fn wait_until_gone(timeout: Duration, alive: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Sends SIGKILL. A process that vanished in the meantime is not an error:
/// the caller wanted it gone.
pub fn sigkill(pid: u32) -> Result<(), banger_sys::ProcessError> {
    // `kill` would read 0 as "my process group" and a value past i32::MAX
    // may wrap to -1, "every process": neither is ever a VMM's pid.
    if pid == 0 || pid > i32::MAX as u32 {
        return Ok(());
    }
    match Cmd::new("kill").args(["-KILL", &pid.to_string()]).run() {
        Ok(_) => Ok(()),
        Err(_) if !running(pid) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes `path` if it exists.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn own_process_runs_and_reads_its_cmdline() {
        let me = std::process::id();
        assert!(running(me));
        let argv = cmdline(me);
        assert!(!argv.is_empty());
        let exe = std::env::args().next().unwrap();
        assert!(argv_has(&argv, exe.as_bytes()));
        assert!(!running(u32::MAX));
        assert!(cmdline(u32::MAX).is_empty());
    }

    #[test]
    fn a_zombie_counts_as_exited() {
        let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: the pid exists as a zombie once `true` exits.
        assert!(wait_until_gone(Duration::from_secs(5), || running(pid)));
        assert!(
            fs::metadata(format!("/proc/{pid}")).is_ok(),
            "still a zombie"
        );
        assert!(cmdline(pid).is_empty());
        child.wait().unwrap();
    }

    #[test]
    fn sigkill_stops_a_process_and_tolerates_a_gone_one() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(running(pid));
        // Right after spawn the child may still be inside exec, with an
        // empty cmdline; it is there once exec completes.
        assert!(wait_until_gone(Duration::from_secs(5), || {
            !argv_has_pair(&cmdline(pid), b"sleep", b"30")
        }));
        sigkill(pid).unwrap();
        assert!(wait_until_gone(Duration::from_secs(5), || running(pid)));
        child.wait().unwrap();
        // No process can have pid_max as its pid (pids stay below it).
        let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        sigkill(pid_max).unwrap();
        sigkill(0).unwrap();
        sigkill(u32::MAX).unwrap();
    }

    #[test]
    fn wait_until_gone_times_out_for_a_live_condition() {
        let start = Instant::now();
        assert!(!wait_until_gone(Duration::from_millis(100), || true));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
