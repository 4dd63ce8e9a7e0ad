//! Driver behaviour that needs no QEMU: process identity, kill's fallbacks,
//! cleanup, and QMP use against a fake server. Real processes stand in for
//! QEMU and the sidecar: `sh` loops carrying the identifying path as `$0`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;

use banger_sys::Cmd;

use super::*;

struct Vm {
    dir: tempfile::TempDir,
    paths: RunPaths,
}

impl Vm {
    fn new() -> Vm {
        let dir = tempfile::Builder::new()
            .prefix("bq,")
            .tempdir_in("/tmp")
            .unwrap();
        let paths = RunPaths::new(dir.path());
        Vm { dir, paths }
    }

    /// A process that looks like this VM's QEMU (or sidecar): its `$0`
    /// carries the identity. It exits by itself once `stop_file` exists, or
    /// once the test's directory is gone (so a failed test leaves nothing).
    fn stand_in(&self, identity: &str, stop_file: &Path) -> u32 {
        let script = format!(
            "while [ ! -e '{}' ] && [ -d '{}' ]; do sleep 0.02; done",
            stop_file.display(),
            self.dir.path().display()
        );
        let pid = Cmd::new("sh")
            .args(["-c", &script, identity])
            .spawn_detached(&self.dir.path().join("stand-in.log"))
            .unwrap();
        assert!(proc::wait_exec(pid, identity, Duration::from_secs(5)));
        pid
    }

    fn handle(&self, pid: u32, helpers: Vec<u32>) -> VmHandle {
        VmHandle {
            backend: BackendKind::Qemu,
            pid,
            helper_pids: helpers,
            control_socket: self.paths.qmp.clone(),
            vsock_uds: self.paths.vsock_uds.clone(),
            console_log: self.paths.console_log.clone(),
            vmm_log: self.paths.qemu_log.clone(),
        }
    }

    fn never_stop(&self) -> PathBuf {
        self.dir.path().join("never")
    }
}

fn qemu() -> Qemu {
    Qemu::new(
        "/nonexistent/qemu".into(),
        "/nonexistent/bangerd".into(),
        Accel::Tcg,
    )
}

/// A one-connection QMP server that reports each command it receives and
/// answers `{"return": {}}`, or an error for the commands in `refuse`; on
/// `quit` it also runs `on_quit`.
fn fake_qmp(
    path: &Path,
    refuse: &'static [&'static str],
    on_quit: impl FnOnce() + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        writer.write_all(b"{\"QMP\": {\"version\": {}}}\n").unwrap();
        let mut on_quit = Some(on_quit);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let command: serde_json::Value = serde_json::from_str(&line).unwrap();
            let command = command["execute"].as_str().unwrap().to_owned();
            line.clear();
            let reply: &[u8] = if refuse.contains(&command.as_str()) {
                b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"refused\"}}\n"
            } else {
                b"{\"return\": {}}\n"
            };
            let _ = writer.write_all(reply);
            if command == "quit" {
                on_quit.take().unwrap()();
            }
            let _ = tx.send(command);
        }
    });
    (rx, server)
}

#[test]
fn a_reused_pid_is_neither_alive_nor_killed() {
    let vm = Vm::new();
    let stranger = vm.stand_in("/somewhere/else", &vm.never_stop());
    let handle = vm.handle(stranger, vec![stranger]);
    assert!(!qemu().is_alive(&handle));
    assert!(qemu().wait_exit(&handle, Duration::ZERO).unwrap());
    qemu().kill(&handle).unwrap();
    assert!(banger_sys::os::process_alive(stranger), "killed a stranger");
    assert!(proc::kill_hard(stranger, "/somewhere/else", KILL_GRACE));
}

#[test]
fn kill_falls_back_to_sigkill_then_stops_the_sidecar_and_removes_sockets() {
    let vm = Vm::new();
    let qemu_pid = vm.stand_in(&qemu_identity(&vm.paths.qmp), &vm.never_stop());
    let sidecar_pid = vm.stand_in(&sidecar::identity(&vm.paths.vsock_uds), &vm.never_stop());
    // Leftovers: stale sockets, a pidfile, and a regular file that is not
    // ours to remove although it sits where a socket would.
    let _qmp = UnixListener::bind(&vm.paths.qmp).unwrap();
    let _port = UnixListener::bind(&vm.paths.port_socket).unwrap();
    std::fs::write(&vm.paths.vsock_uds, b"not a socket").unwrap();
    std::fs::write(&vm.paths.pidfile, b"123\n").unwrap();
    let handle = vm.handle(qemu_pid, vec![sidecar_pid]);
    assert!(qemu().is_alive(&handle), "the stand-in must pass as QEMU");
    assert!(
        !qemu()
            .wait_exit(&handle, Duration::from_millis(100))
            .unwrap()
    );

    // The QMP socket exists but nobody answers: SIGKILL.
    qemu().kill(&handle).unwrap();
    assert!(!qemu().is_alive(&handle));
    assert!(
        !banger_sys::os::process_alive(qemu_pid),
        "QEMU stand-in left (or a zombie)"
    );
    assert!(
        !banger_sys::os::process_alive(sidecar_pid),
        "sidecar stand-in left"
    );
    assert!(!vm.paths.qmp.exists() && !vm.paths.port_socket.exists());
    assert!(!vm.paths.pidfile.exists());
    assert!(
        vm.paths.vsock_uds.exists(),
        "removed a file that is not a socket"
    );

    // Idempotent.
    qemu().kill(&handle).unwrap();
    assert!(qemu().wait_exit(&handle, Duration::ZERO).unwrap());
}

#[test]
fn kill_asks_qemu_to_quit_first() {
    let vm = Vm::new();
    let stop = vm.dir.path().join("quit-received");
    let qemu_pid = vm.stand_in(&qemu_identity(&vm.paths.qmp), &stop);
    let stop_clone = stop.clone();
    let (commands, server) = fake_qmp(&vm.paths.qmp, &[], move || {
        std::fs::write(stop_clone, b"").unwrap();
    });
    let handle = vm.handle(qemu_pid, vec![]);
    let started = std::time::Instant::now();
    qemu().kill(&handle).unwrap();
    assert!(stop.exists());
    assert_eq!(commands.recv().unwrap(), "qmp_capabilities");
    assert_eq!(commands.recv().unwrap(), "quit");
    assert!(!banger_sys::os::process_alive(qemu_pid));
    assert!(
        started.elapsed() < QUIT_GRACE,
        "waited for a SIGKILL it did not need"
    );
    server.join().unwrap();
}

#[test]
fn request_shutdown_presses_ctrl_alt_del_and_the_power_button() {
    let vm = Vm::new();
    let (commands, server) = fake_qmp(&vm.paths.qmp, &[], || {});
    qemu().request_shutdown(&vm.handle(1, vec![])).unwrap();
    let sent: Vec<String> = commands.iter().collect();
    assert_eq!(sent, ["qmp_capabilities", "send-key", "system_powerdown"]);
    server.join().unwrap();
}

#[test]
fn request_shutdown_fails_only_when_both_requests_are_refused() {
    let vm = Vm::new();
    let (_, server) = fake_qmp(&vm.paths.qmp, &["send-key"], || {});
    qemu().request_shutdown(&vm.handle(1, vec![])).unwrap();
    server.join().unwrap();
    std::fs::remove_file(&vm.paths.qmp).unwrap();

    let (_, server) = fake_qmp(&vm.paths.qmp, &["send-key", "system_powerdown"], || {});
    let err = qemu().request_shutdown(&vm.handle(1, vec![])).unwrap_err();
    assert!(
        matches!(&err, VmmError::Refused { what, .. } if what == "send-key"),
        "{err:?}"
    );
    server.join().unwrap();
}

#[test]
fn request_shutdown_without_qemu_is_an_error() {
    let vm = Vm::new();
    let err = qemu().request_shutdown(&vm.handle(1, vec![])).unwrap_err();
    assert!(matches!(err, VmmError::Io { .. }), "{err:?}");
}

#[test]
fn launch_refuses_bad_configs_before_starting_anything() {
    let vm = Vm::new();
    let mut config = argv::tests::config();
    config.run_dir = vm.dir.path().to_owned();
    config.vsock_cid = 1;
    let err = qemu().launch(&config).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");

    config.vsock_cid = 3;
    let err = qemu().launch(&config).unwrap_err();
    assert!(
        matches!(
            &err,
            VmmError::Io {
                action: "find the kernel",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!vm.paths.sidecar_log.exists(), "the sidecar was started");
}

#[test]
fn a_second_launch_on_a_live_run_directory_is_refused() {
    let vm = Vm::new();
    let mut config = argv::tests::config();
    for file in ["bzImage", "initrd.img", "root.qcow2"] {
        std::fs::write(vm.dir.path().join(file), b"x").unwrap();
    }
    config.run_dir = vm.dir.path().to_owned();
    config.kernel = vm.dir.path().join("bzImage");
    config.initrd = Some(vm.dir.path().join("initrd.img"));
    config.root_disk.path = vm.dir.path().join("root.qcow2");
    let (_commands, server) = fake_qmp(&vm.paths.qmp, &[], || {});
    let err = qemu().launch(&config).unwrap_err();
    assert!(
        matches!(&err, VmmError::Refused { detail, .. } if detail.contains("already answers")),
        "{err:?}"
    );
    assert!(vm.paths.qmp.exists(), "removed a live VM's socket");
    assert!(!vm.paths.sidecar_log.exists(), "the sidecar was started");
    drop(server);
}
