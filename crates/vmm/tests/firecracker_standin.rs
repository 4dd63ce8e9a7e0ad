//! The Firecracker driver against the stand-in Firecracker (`fc-standin`),
//! which validates every request against the published API description and
//! records it (SPEC §13). With `BANGER_E2E_VMM=firecracker` and a real
//! `firecracker` in PATH, `real_firecracker_boots_and_dies_when_opted_in`
//! drives the real binary instead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_agent::client::AgentClient;
use banger_agent::protocol::AGENT_PORT;
use banger_vmm::firecracker::schema::ApiSpec;
use banger_vmm::firecracker::standin::{args_path, read_requests};
use banger_vmm::firecracker::{ApiClient, Firecracker, FirecrackerError};
use banger_vmm::logcap::LogCapper;
use banger_vmm::{DiskFormat, DiskSpec, VmConfig, VmHandle, VmmBackend, VmmError};

const STANDIN: &str = env!("CARGO_BIN_EXE_fc-standin");
const CAPPER: &str = env!("CARGO_BIN_EXE_log-capper");

struct Fixture {
    dir: tempfile::TempDir,
    config: VmConfig,
}

/// A VM whose kernel and disks are placeholder files: the stand-in opens
/// them, as Firecracker would, but boots nothing.
fn fixture(tap: Option<&str>) -> Fixture {
    let dir = tempfile::Builder::new().prefix("fcst").tempdir().unwrap();
    let file = |name: &str| {
        let path = dir.path().join(name);
        fs::write(&path, b"placeholder").unwrap();
        path
    };
    let config = VmConfig {
        id: "vm-standin".into(),
        vcpu: 2,
        memory_mib: 512,
        kernel: file("vmlinux"),
        initrd: Some(file("initrd.img")),
        kernel_args: "banger.root=/dev/vda banger.ip=172.16.0.2/24".into(),
        root_disk: DiskSpec {
            path: file("root.ext4"),
            format: DiskFormat::Raw,
            read_only: false,
        },
        work_disk: Some(DiskSpec {
            path: file("work.ext4"),
            format: DiskFormat::Raw,
            read_only: false,
        }),
        modules_disk: None,
        tap: tap.map(str::to_owned),
        mac: tap.map(|_| "06:00:ac:10:00:02".to_owned()),
        vsock_cid: 3,
        run_dir: dir.path().join("run"),
    };
    Fixture { dir, config }
}

impl Fixture {
    /// A `firecracker` that runs `body` (a shell script fragment), for
    /// environment knobs and misbehaving VMMs.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn standin_with_env(&self, env: &str) -> Firecracker {
        Firecracker::new(self.script("firecracker", &format!("{env} exec {STANDIN} \"$@\"")))
    }

    fn api_socket(&self) -> PathBuf {
        self.config.run_dir.join("api.sock")
    }

    fn vsock(&self) -> PathBuf {
        self.config.run_dir.join("vsock.sock")
    }
}

/// Pids of processes with an argument naming `path`: how a test proves no
/// VMM of its run dir is left.
fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_str().unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            raw.split(|b| *b == 0)
                .any(|arg| String::from_utf8_lossy(arg).contains(needle))
        })
        .collect()
}

fn describe_recorded(api_socket: &Path) -> Vec<String> {
    read_requests(api_socket)
        .unwrap()
        .iter()
        .map(|r| r.describe())
        .collect()
}

fn assert_nothing_left(f: &Fixture) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&f.config.run_dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        processes_mentioning(&f.config.run_dir),
        Vec::<u32>::new(),
        "stray VMM"
    );
    assert!(!f.api_socket().exists(), "api.sock left behind");
    assert!(!f.vsock().exists(), "vsock.sock left behind");
}

/// Named so that `cargo test -p banger-vmm firecracker` selects these.
mod firecracker {
    use super::*;

    #[test]
    fn launch_configures_in_order_starts_answers_health_and_shuts_down() {
        let f = fixture(Some("fctap0"));
        let fc = Firecracker::new(STANDIN);
        let handle = fc.launch(&f.config).unwrap();
        let run = &f.config.run_dir;
        assert_eq!(handle.control_socket, run.join("api.sock"));
        assert_eq!(handle.vsock_uds, run.join("vsock.sock"));
        assert_eq!(handle.console_log, run.join("console.log"));
        assert_eq!(handle.vmm_log, run.join("firecracker.log"));
        assert!(handle.helper_pids.is_empty());

        let recorded = read_requests(&handle.control_socket).unwrap();
        let names: Vec<String> = recorded.iter().map(|r| r.describe()).collect();
        assert_eq!(
            names,
            [
                "GET /",
                "PUT /logger",
                "PUT /metrics",
                "PUT /machine-config",
                "PUT /boot-source",
                "PUT /drives/rootfs",
                "PUT /drives/work",
                "PUT /network-interfaces/eth0",
                "PUT /vsock",
                "PUT /actions (InstanceStart)",
            ]
        );
        // Accepted by the stand-in, and valid against the API description by
        // our own check too.
        let spec = ApiSpec::reference().unwrap();
        for r in &recorded {
            assert!(r.status == 200 || r.status == 204, "{r:?}");
            spec.validate(&r.method, &r.path, r.body.as_ref())
                .unwrap_or_else(|v| panic!("{v}"));
        }
        let body = |path: &str| {
            recorded
                .iter()
                .find(|r| r.path == path)
                .and_then(|r| r.body.clone())
                .unwrap()
        };
        assert_eq!(
            body("/boot-source")["boot_args"],
            "console=ttyS0 reboot=k panic=1 pci=off banger.halt=reboot banger.root=/dev/vda banger.ip=172.16.0.2/24"
        );
        assert_eq!(body("/machine-config")["vcpu_count"], 2);
        assert_eq!(body("/drives/rootfs")["is_root_device"], true);
        assert_eq!(body("/drives/work")["is_root_device"], false);
        assert_eq!(body("/network-interfaces/eth0")["host_dev_name"], "fctap0");
        assert_eq!(body("/vsock")["guest_cid"], 3);
        assert_eq!(
            body("/vsock")["uds_path"],
            run.join("vsock.sock").to_str().unwrap()
        );
        let argv: Vec<String> =
            serde_json::from_slice(&fs::read(args_path(&handle.control_socket)).unwrap()).unwrap();
        assert_eq!(
            argv,
            [
                "--api-sock",
                run.join("api.sock").to_str().unwrap(),
                "--id",
                "vm-standin"
            ]
        );
        assert!(run.join("firecracker.log").exists() && run.join("firecracker.metrics").exists());
        assert!(
            fs::read_to_string(&handle.console_log)
                .unwrap()
                .contains("fc-standin"),
            "stderr goes to the console log"
        );

        assert!(fc.is_alive(&handle));
        let info = ApiClient::new(&handle.control_socket, Duration::from_secs(5))
            .instance_info()
            .unwrap();
        assert_eq!(info.state, "Running");
        let health =
            AgentClient::connect_hybrid(&handle.vsock_uds, AGENT_PORT, Duration::from_secs(5))
                .unwrap()
                .health()
                .unwrap();
        assert_eq!(health.hostname, "vm-standin");

        fc.request_shutdown(&handle).unwrap();
        assert!(fc.wait_exit(&handle, Duration::from_secs(5)).unwrap());
        assert!(!fc.is_alive(&handle));
        assert_eq!(
            describe_recorded(&handle.control_socket)
                .last()
                .map(String::as_str),
            Some("PUT /actions (SendCtrlAltDel)")
        );
        fc.kill(&handle).unwrap();
        assert_nothing_left(&f);
    }

    #[test]
    fn without_a_tap_or_work_disk_no_such_requests_are_sent() {
        let mut f = fixture(None);
        f.config.work_disk = None;
        f.config.initrd = None;
        let fc = Firecracker::new(STANDIN);
        let handle = fc.launch(&f.config).unwrap();
        let names = describe_recorded(&handle.control_socket);
        assert!(
            !names.iter().any(|n| n.contains("network-interfaces")),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "PUT /drives/work"), "{names:?}");
        assert!(names.iter().any(|n| n == "PUT /drives/rootfs"), "{names:?}");
        fc.kill(&handle).unwrap();
        assert_nothing_left(&f);
    }

    #[test]
    fn a_refused_request_fails_the_launch_naming_it_and_leaves_nothing() {
        let f = fixture(Some("fctap0"));
        let fc = f.standin_with_env("FC_STANDIN_FAIL_ON=boot-source");
        let err = fc.launch(&f.config).unwrap_err();
        match &err {
            VmmError::Refused { what, detail } => {
                assert_eq!(what, "PUT /boot-source");
                assert!(
                    detail.contains("FC_STANDIN_FAIL_ON=boot-source"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_nothing_left(&f);
        let names = describe_recorded(&f.api_socket());
        assert_eq!(names.last().map(String::as_str), Some("PUT /boot-source"));
        assert!(
            !names.iter().any(|n| n.contains("InstanceStart")),
            "{names:?}"
        );
    }

    #[test]
    fn a_vmm_that_dies_at_once_is_reported_with_its_console() {
        let f = fixture(None);
        let fc = Firecracker::new(f.script(
            "firecracker",
            "echo 'Error: cannot open /dev/kvm' >&2; exit 1",
        ));
        let err = fc.launch(&f.config).unwrap_err();
        match &err {
            VmmError::ExitedEarly { log, tail } => {
                assert_eq!(log, &f.config.run_dir.join("console.log"));
                assert!(tail.contains("cannot open /dev/kvm"), "{tail}");
            }
            other => panic!("{other:?}"),
        }
        assert_nothing_left(&f);
    }

    #[test]
    fn a_vmm_that_never_opens_its_socket_times_out_and_is_killed() {
        let f = fixture(None);
        let fc = f.standin_with_env("FC_STANDIN_HANG=1");
        let start = Instant::now();
        let err = fc.launch(&f.config).unwrap_err();
        assert!(matches!(err, VmmError::Timeout(..)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(15));
        assert_nothing_left(&f);
    }

    #[test]
    fn an_old_firecracker_is_refused() {
        let f = fixture(None);
        let fc = f.standin_with_env("FC_STANDIN_VERSION=1.4.0");
        let err = fc.launch(&f.config).unwrap_err();
        match &err {
            VmmError::InvalidConfig(msg) => {
                assert!(msg.contains("v1.4.0") && msg.contains("1.5.0"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        assert_nothing_left(&f);
        assert_eq!(describe_recorded(&f.api_socket()), ["GET /"]);
        match fc.version() {
            Err(FirecrackerError::TooOld { found, .. }) => assert_eq!(found.to_string(), "1.4.0"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_comes_from_the_binary() {
        let version = Firecracker::new(STANDIN).version().unwrap();
        assert_eq!(version.to_string(), "1.17.0");
        let f = fixture(None);
        let garbled = Firecracker::new(f.script("firecracker", "echo hello"));
        assert!(matches!(
            garbled.version(),
            Err(FirecrackerError::UnparsableVersion { .. })
        ));
    }

    #[test]
    fn a_missing_binary_is_binary_missing() {
        let f = fixture(None);
        let fc = Firecracker::new(f.dir.path().join("no-firecracker-here"));
        let err = fc.launch(&f.config).unwrap_err();
        assert!(matches!(err, VmmError::BinaryMissing { .. }), "{err:?}");
    }

    #[test]
    fn qcow2_is_refused_before_anything_starts() {
        let mut f = fixture(None);
        f.config.root_disk.format = DiskFormat::Qcow2;
        let err = Firecracker::new(STANDIN).launch(&f.config).unwrap_err();
        match &err {
            VmmError::InvalidConfig(msg) => assert!(msg.contains("raw"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(!f.config.run_dir.exists(), "nothing was prepared");
    }

    #[test]
    fn stale_sockets_from_a_previous_run_are_replaced() {
        let f = fixture(None);
        fs::create_dir_all(&f.config.run_dir).unwrap();
        fs::write(f.api_socket(), b"stale").unwrap();
        fs::write(f.vsock(), b"stale").unwrap();
        let fc = Firecracker::new(STANDIN);
        let handle = fc.launch(&f.config).unwrap();
        assert!(fc.is_alive(&handle));
        fc.kill(&handle).unwrap();
        assert_nothing_left(&f);
    }

    #[test]
    fn kill_is_idempotent_and_never_kills_a_stranger() {
        let f = fixture(None);
        let fc = Firecracker::new(STANDIN);
        let handle = fc.launch(&f.config).unwrap();
        assert!(fc.is_alive(&handle));
        fc.kill(&handle).unwrap();
        assert!(!fc.is_alive(&handle));
        assert!(fc.wait_exit(&handle, Duration::from_millis(10)).unwrap());
        fc.kill(&handle).unwrap();
        assert_nothing_left(&f);

        // A recorded pid now used by another program: not our VMM, so neither
        // alive nor killed.
        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let reused = VmHandle {
            pid: stranger.id(),
            ..handle
        };
        assert!(!fc.is_alive(&reused));
        // Our VMM is gone, whoever holds its pid now.
        assert!(fc.wait_exit(&reused, Duration::ZERO).unwrap());
        fc.kill(&reused).unwrap();
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger was killed"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }

    #[test]
    fn with_a_log_capper_the_console_goes_through_it_and_it_stops_with_the_vmm() {
        let f = fixture(Some("fctap0"));
        let fc = Firecracker::new(STANDIN).with_log_capper(Some(LogCapper::new(CAPPER, 1 << 20)));
        let handle = fc.launch(&f.config).unwrap();
        let console = f.config.run_dir.join("console.log");
        assert_eq!(handle.helper_pids.len(), 1, "{handle:?}");
        let capper = handle.helper_pids[0];
        let argv = banger_sys::proc::Argv::of(capper);
        assert!(argv.has(b"--cap-log") && argv.has(console.to_str().unwrap().as_bytes()));
        assert!(fc.is_alive(&handle));
        fc.kill(&handle).unwrap();
        assert!(
            !banger_sys::proc::is_running(capper),
            "the capper outlived kill"
        );
        assert!(
            fs::read_to_string(&console).unwrap().contains("fc-standin"),
            "stderr reaches the console log through the capper"
        );
        assert_nothing_left(&f);
    }

    #[test]
    fn a_console_flood_is_capped_on_disk() {
        let f = fixture(None);
        let cap = 1 << 20;
        // 50 MiB on the console before the API comes up, then a last line.
        let fc = Firecracker::new(f.script(
            "firecracker",
            &format!(
                "yes 'the guest prints forever' | head -c 52428800; echo 'LAST LINE' >&2; exec {STANDIN} \"$@\""
            ),
        ))
        .with_log_capper(Some(LogCapper::new(CAPPER, cap)));
        let handle = fc.launch(&f.config).unwrap();
        let console = f.config.run_dir.join("console.log");
        let rotated = banger_vmm::logcap::rotated_path(&console);
        let on_disk = || {
            fs::metadata(&console).map_or(0, |m| m.len())
                + fs::metadata(&rotated).map_or(0, |m| m.len())
        };
        assert!(on_disk() <= 2 * cap, "{} bytes on disk", on_disk());
        fc.kill(&handle).unwrap();
        assert!(on_disk() <= 2 * cap && on_disk() >= cap, "{}", on_disk());
        let kept = fs::read_to_string(&console).unwrap();
        assert!(kept.contains("LAST LINE"), "the newest output is kept");
        let written = banger_vmm::logcap::read_start(&console).unwrap() + kept.len() as u64;
        assert!(written > 50 << 20, "{written}");
        assert_nothing_left(&f);
    }

    /// Opt-in: `BANGER_E2E_VMM=firecracker`, a `firecracker` in PATH, KVM, and a
    /// bootable kernel and root image in `BANGER_E2E_FC_KERNEL` and
    /// `BANGER_E2E_FC_ROOTFS`.
    #[test]
    fn real_firecracker_boots_and_dies_when_opted_in() {
        if std::env::var("BANGER_E2E_VMM").as_deref() != Ok("firecracker") {
            eprintln!("skipped: set BANGER_E2E_VMM=firecracker to run against a real Firecracker");
            return;
        }
        let Some(binary) = banger_sys::find_program("firecracker") else {
            eprintln!("skipped: BANGER_E2E_VMM=firecracker but no firecracker in PATH");
            return;
        };
        let (Some(kernel), Some(rootfs)) = (
            std::env::var_os("BANGER_E2E_FC_KERNEL"),
            std::env::var_os("BANGER_E2E_FC_ROOTFS"),
        ) else {
            eprintln!(
                "skipped: set BANGER_E2E_FC_KERNEL and BANGER_E2E_FC_ROOTFS to a vmlinux and a raw root image"
            );
            return;
        };
        let mut f = fixture(None);
        f.config.kernel = kernel.into();
        f.config.initrd = None;
        f.config.work_disk = None;
        // A private copy: the guest writes to its root disk.
        let root = f.dir.path().join("root-copy.ext4");
        fs::copy(PathBuf::from(rootfs), &root).unwrap();
        f.config.root_disk.path = root;
        f.config.kernel_args = "root=/dev/vda rw".into();
        let fc = Firecracker::new(binary);
        assert!(fc.version().unwrap().is_supported());
        let handle = fc.launch(&f.config).unwrap();
        assert!(fc.is_alive(&handle));
        let info = ApiClient::new(&handle.control_socket, Duration::from_secs(5))
            .instance_info()
            .unwrap();
        assert_eq!(info.state, "Running");
        fc.kill(&handle).unwrap();
        assert!(!fc.is_alive(&handle));
        fc.kill(&handle).unwrap();
        assert_nothing_left(&f);
    }
}
