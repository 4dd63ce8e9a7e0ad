//! Real processes: `sh` loops carrying a marker argument stand in for VMMs.
//! Each ends by itself once the test's directory is gone, so a failed test
//! leaves nothing running.

use std::process::{Command, Stdio};

use super::*;
use crate::Cmd;

/// A detached `sh` loop whose `$0` is `marker`; returns once its argv shows.
fn marked_process(dir: &Path, marker: &str, script_prefix: &str) -> u32 {
    // A loop, not one command: `sh -c` would exec a lone `sleep` and lose
    // the marker argument.
    let script = format!(
        "{script_prefix}while [ -d '{}' ]; do sleep 0.05; done",
        dir.display()
    );
    let pid = Cmd::new("sh")
        .args(["-c", &script, marker])
        .spawn_detached(&dir.join("log"))
        .unwrap();
    assert!(wait_exec(pid, marker, Duration::from_secs(5)));
    pid
}

#[test]
fn identity_must_be_inside_one_argument() {
    let argv = Argv::parse(b"qemu-system-x86_64\0-chardev\0socket,id=qmp,path=/run/vm1/qmp.sock\0");
    assert!("/run/vm1/qmp.sock".identifies(&argv));
    assert!(!"/run/vm2/qmp.sock".identifies(&argv));
    // Not across the NUL between two arguments.
    assert!(!"-chardev socket".identifies(&argv));
    assert!(!"".identifies(&argv), "an empty needle matches nothing");
    assert!(
        !"/run/vm1/qmp.sock".identifies(&Argv::parse(b"")),
        "a zombie's cmdline"
    );
    assert!(Path::new("/run/vm1/qmp.sock").identifies(&argv));
}

#[test]
fn whole_arguments_and_flag_pairs() {
    let argv = Argv::parse(b"jailer\0--id\0vm-1\0--api-sock\0/run/firecracker.socket\0");
    assert!(argv.has(b"/run/firecracker.socket"));
    assert!(
        !argv.has(b"/run/firecracker"),
        "a prefix is not the argument"
    );
    assert!(argv.has_pair(b"--id", b"vm-1"));
    assert!(!argv.has_pair(b"--id", b"/run/firecracker.socket"));
    assert!(!argv.has_pair(b"vm-1", b"--id"), "order matters");
    let pair = |a: &Argv| a.has_pair(b"--id", b"vm-1");
    assert!(pair.identifies(&argv));
    assert_eq!(Argv::parse(b"a\0b\0"), Argv::parse(b"a\0b"));
    assert!(Argv::parse(b"").is_empty());
}

#[test]
fn own_process_runs_and_reads_its_argv() {
    let me = std::process::id();
    assert!(is_running(me));
    let exe = std::env::args().next().unwrap();
    assert!(Argv::of(me).has(exe.as_bytes()));
    assert!(!is_running(0));
    assert!(!is_running(u32::MAX));
    assert!(Argv::of(u32::MAX).is_empty());
}

#[test]
fn a_zombie_is_not_running() {
    let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_running(pid) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    assert!(!is_running(pid));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "still a zombie: std's Child was not waited for"
    );
    assert!(Argv::of(pid).is_empty());
    child.wait().unwrap();
}

#[test]
fn a_process_is_ours_only_with_the_identity_and_is_killed_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker-arg").display().to_string();
    let pid = marked_process(dir.path(), &marker, "");
    assert!(is_ours(pid, marker.as_str()));
    assert!(!is_ours(pid, "/some/other/vm/qmp.sock"));
    // Signals are only sent to our own processes; a stranger counts as
    // "none of ours left".
    assert!(kill_hard(pid, "/some/other/vm/qmp.sock", Duration::ZERO));
    assert!(crate::os::process_alive(pid));
    assert!(kill_hard(pid, marker.as_str(), Duration::from_secs(5)));
    // Reaped: no zombie left behind (a zombie still answers signal 0).
    assert!(!crate::os::process_alive(pid));
}

#[test]
fn an_unreaped_child_is_killed_without_an_argv_check_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pid = marked_process(dir.path(), "child-marker", "");
    assert!(is_ours(pid, &UnreapedChild));
    assert!(kill_hard(pid, &UnreapedChild, Duration::from_secs(5)));
    assert!(!crate::os::process_alive(pid), "reaped");
}

#[test]
fn an_exited_child_is_reaped_by_the_liveness_check() {
    let dir = tempfile::tempdir().unwrap();
    let pid = Cmd::new("true")
        .spawn_detached(&dir.path().join("log"))
        .unwrap();
    assert!(wait_gone(pid, &UnreapedChild, Duration::from_secs(5)));
    assert!(
        !crate::os::process_alive(pid),
        "an exited child must not stay a zombie that looks alive"
    );
}

#[test]
fn wait_exec_gives_up_on_a_process_that_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pid = Cmd::new("true")
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
    let trap = format!("trap 'touch {}; exit 0' TERM; ", trapped.display());
    let pid = marked_process(dir.path(), &marker, &trap);
    // Let the shell install its trap.
    std::thread::sleep(Duration::from_millis(200));
    assert!(terminate(pid, marker.as_str(), Duration::from_secs(5)));
    assert!(trapped.exists(), "SIGTERM was not delivered first");
    assert!(!crate::os::process_alive(pid));
}

#[test]
fn terminate_falls_back_to_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("stubborn-arg").display().to_string();
    let pid = marked_process(dir.path(), &marker, "trap '' TERM; ");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert!(terminate(pid, marker.as_str(), Duration::from_millis(300)));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for TERM first"
    );
    assert!(!crate::os::process_alive(pid));
}

#[test]
fn wait_gone_times_out_for_a_live_process() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("live-arg").display().to_string();
    let pid = marked_process(dir.path(), &marker, "");
    let started = Instant::now();
    assert!(!wait_gone(pid, marker.as_str(), Duration::from_millis(100)));
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(kill_hard(pid, marker.as_str(), Duration::from_secs(5)));
}

#[test]
fn pids_that_cannot_be_processes_are_never_signalled() {
    // 0 is "my process group" to kill(2) and u32::MAX would wrap to -1,
    // "every process": neither may ever be signalled.
    for pid in [0, u32::MAX, i32::MAX as u32 + 1] {
        assert!(!is_ours(pid, &UnreapedChild));
        assert!(kill_hard(pid, &UnreapedChild, Duration::ZERO));
    }
    assert!(is_running(std::process::id()), "still here");
}
