//! Failed QEMU launches leave nothing behind: real `qemu-system-x86_64` and
//! the real agent-mux sidecar (the `agent-mux` test binary) where the test
//! needs them, small scripts where a sidecar must misbehave. No root
//! needed; skipped when QEMU is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use banger_vmm::qemu::{Accel, Qemu};
use banger_vmm::{DiskFormat, DiskSpec, VmConfig, VmmBackend, VmmError};

fn program(name: &str) -> Option<PathBuf> {
    let found = banger_sys::find_program(name);
    if found.is_none() {
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// A run directory with a comma in its name (QEMU's option syntax must
/// escape it) holding a kernel, an initrd and a root disk that are files,
/// not necessarily valid ones.
struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::Builder::new()
            .prefix("bq-launch,")
            .tempdir_in("/tmp")
            .unwrap();
        for file in ["bzImage", "initrd.img", "root.img"] {
            std::fs::write(dir.path().join(file), b"not a real kernel or disk").unwrap();
        }
        Run { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> VmConfig {
        VmConfig {
            id: "launch-test".into(),
            vcpu: 1,
            memory_mib: 128,
            kernel: self.path("bzImage"),
            initrd: Some(self.path("initrd.img")),
            kernel_args: String::new(),
            root_disk: DiskSpec {
                path: self.path("root.img"),
                format: DiskFormat::Raw,
                read_only: false,
            },
            work_disk: None,
            modules_disk: None,
            tap: None,
            mac: None,
            vsock_cid: 3,
            run_dir: self.dir.path().to_owned(),
        }
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Processes whose command line mentions this run directory, found by
    /// the random part of its name (QEMU's arguments double the comma).
    fn processes(&self) -> Vec<String> {
        let name = self.dir.path().file_name().unwrap().to_str().unwrap();
        let unique = name.rsplit(',').next().unwrap();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(unique) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
        found
    }

    fn sockets_left(&self) -> Vec<String> {
        ["qmp.sock", "vsock.sock", "agent-port.sock"]
            .into_iter()
            .filter(|s| self.path(s).exists())
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn qemu_launch_that_cannot_load_the_kernel_is_reported_and_cleaned_up() {
    let Some(qemu_bin) = program("qemu-system-x86_64") else {
        return;
    };
    let mux = PathBuf::from(MUX);
    let run = Run::new();
    let qemu = Qemu::new(qemu_bin, mux, Accel::Tcg);
    let started = Instant::now();
    let err = qemu.launch(&run.config()).unwrap_err();
    let VmmError::ExitedEarly { log, tail } = &err else {
        panic!("expected ExitedEarly, got {err:?}");
    };
    assert_eq!(log, &run.path("qemu.log"));
    // QEMU's own complaint about the kernel's contents, quoted from its log:
    // it opened the file, so the comma in the path reached it intact.
    assert!(tail.contains("kernel"), "{err}");
    assert!(!tail.contains("could not open"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
    assert!(run.sockets_left().is_empty(), "{:?}", run.sockets_left());
}

#[test]
fn qemu_launch_stops_when_the_sidecar_dies() {
    let run = Run::new();
    let qemu_marker = run.path("qemu-was-started");
    let fake_qemu = run.script("fake-qemu", &format!("touch '{}'", qemu_marker.display()));
    let sidecar = run.script(
        "fake-mux",
        "echo 'cannot create the vsock device' >&2; exit 1",
    );
    let err = Qemu::new(fake_qemu, sidecar, Accel::Tcg)
        .launch(&run.config())
        .unwrap_err();
    let VmmError::ExitedEarly { log, tail } = &err else {
        panic!("expected ExitedEarly, got {err:?}");
    };
    assert_eq!(log, &run.path("agent-mux.log"));
    assert!(tail.contains("cannot create the vsock device"), "{err}");
    assert!(
        !qemu_marker.exists(),
        "QEMU was started without its sidecar"
    );
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
}

#[test]
fn qemu_launch_times_out_on_a_sidecar_that_never_listens() {
    let run = Run::new();
    // Ignores SIGTERM, so the driver has to insist.
    let sidecar = run.script(
        "fake-mux",
        &format!(
            "trap '' TERM; while [ -d '{}' ]; do sleep 0.05; done",
            run.dir.path().display()
        ),
    );
    let started = Instant::now();
    let err = Qemu::new("/nonexistent/qemu".into(), sidecar, Accel::Tcg)
        .launch(&run.config())
        .unwrap_err();
    assert!(matches!(err, VmmError::Timeout(..)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
}

#[test]
fn qemu_launch_without_the_qemu_binary_stops_the_sidecar() {
    let mux = PathBuf::from(MUX);
    let run = Run::new();
    let err = Qemu::new(run.path("no-such-qemu"), mux, Accel::Tcg)
        .launch(&run.config())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            VmmError::Process(banger_sys::ProcessError::NotFound { .. })
        ),
        "{err:?}"
    );
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
    assert!(run.sockets_left().is_empty(), "{:?}", run.sockets_left());
}

const CAPPER: &str = env!("CARGO_BIN_EXE_log-capper");
const MUX: &str = env!("CARGO_BIN_EXE_agent-mux");

#[test]
fn qemu_with_log_cappers_writes_its_logs_through_them_and_leaves_nothing() {
    let Some(qemu_bin) = program("qemu-system-x86_64") else {
        return;
    };
    let mux = PathBuf::from(MUX);
    let capper = Some(banger_vmm::logcap::LogCapper::new(CAPPER, 1 << 20));
    // Real QEMU with a kernel it cannot load: its complaint reaches qemu.log
    // through the capper, and the launch error quotes it.
    let run = Run::new();
    let qemu = Qemu::new(qemu_bin, mux.clone(), Accel::Tcg).with_log_capper(capper.clone());
    let err = qemu.launch(&run.config()).unwrap_err();
    let VmmError::ExitedEarly { log, tail } = &err else {
        panic!("expected ExitedEarly, got {err:?}");
    };
    assert_eq!(log, &run.path("qemu.log"));
    assert!(tail.contains("kernel"), "{err}");
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
    assert!(run.sockets_left().is_empty(), "{:?}", run.sockets_left());

    // A QEMU that prints on both streams: stdout is the serial console.
    let run = Run::new();
    let fake = run.script(
        "fake-qemu",
        "echo 'guest console line'; echo 'qemu: a warning' >&2; exit 1",
    );
    let err = Qemu::new(fake, mux, Accel::Tcg)
        .with_log_capper(capper)
        .launch(&run.config())
        .unwrap_err();
    assert!(matches!(err, VmmError::ExitedEarly { .. }), "{err:?}");
    let read = |name: &str| std::fs::read_to_string(run.path(name)).unwrap_or_default();
    assert_eq!(read("console.log"), "guest console line\n");
    assert_eq!(read("qemu.log"), "qemu: a warning\n");
    assert!(
        run.processes().is_empty(),
        "left behind: {:?}",
        run.processes()
    );
}
