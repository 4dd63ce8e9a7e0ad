//! The daemon's VM lifecycle drives Firecracker (SPEC §6, §13): with
//! `vmm = "firecracker"` and the stand-in Firecracker (`fc-standin-e2e`,
//! which serves the API, validates every request against the OpenAPI
//! document and records it, and plays the guest's agent and sshd), `vm
//! create`, `stop`, `start`, a daemon restart under a config that now says
//! QEMU, and `delete` run against it, and leave no process, tap or VM
//! directory. The stand-in boots nothing, so the kernel and root filesystem
//! are small placeholders that are only opened.
//!
//! Needs root (bridges and taps, inside a network namespace this test
//! creates), a read-write /dev/kvm (the daemon refuses `vmm = "firecracker"`
//! without one), iproute2 and mkfs.ext4.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use banger_vmm::firecracker::standin::read_requests;
use common::vmenv::{pids_mentioning, run_bounded};
use common::{Home, assert_success, stderr, stdout};

const STANDIN: &str = env!("CARGO_BIN_EXE_fc-standin-e2e");
const VM: &str = "fc-one";
const NAME: &str = "fc-dummy";
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

fn missing_prerequisite() -> Option<String> {
    if !common::is_root() {
        return Some("needs root".into());
    }
    if let Err(e) = banger_sys::os::can_open_rw(Path::new("/dev/kvm")) {
        return Some(format!(
            "vmm = \"firecracker\" needs a read-write /dev/kvm ({e})"
        ));
    }
    for tool in ["ip", "mkfs.ext4", "debugfs", "ssh-keygen"] {
        if banger_sys::find_program(tool).is_none() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// The daemon in the namespace; dropped first thing on the way out, even
/// after a failed assertion, so nothing outlives the test.
struct Guard {
    home: Home,
    ns: banger_sys::netns::Netns,
    daemon: Option<Child>,
}

impl Guard {
    fn banger(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(common::BANGER);
        cmd.args(args);
        run_bounded(cmd, CALL_TIMEOUT)
    }

    fn vm(&self) -> serde_json::Value {
        let out = self.banger(&["vm", "show", VM, "--json"]);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn links(&self) -> String {
        let out = self
            .ns
            .cmd("ip")
            .args(["-o", "link"])
            .run()
            .expect("ip link in the namespace");
        out.stdout_str()
    }

    /// Starts bangerd inside the namespace and waits until it answers. A
    /// raw connect, not the CLI: the CLI would start a daemon of its own,
    /// outside the namespace, while a stale socket refuses connections.
    fn start_daemon(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.home.path().join("bangerd-test.log"))
            .unwrap();
        let mut cmd = self.home.command("ip");
        cmd.args(["netns", "exec", self.ns.name(), common::BANGERD])
            .stdout(Stdio::null())
            .stderr(log);
        self.daemon = Some(cmd.spawn().expect("start bangerd in the namespace"));
        assert!(
            common::wait_until(Duration::from_secs(20), || {
                std::os::unix::net::UnixStream::connect(self.home.socket()).is_ok()
            }),
            "bangerd did not come up: {}",
            self.daemon_log()
        );
    }

    fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("bangerd-test.log")).unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let _ = self.banger(&["vm", "delete", VM]);
            self.home.stop_daemon();
        }
        self.kill_daemon();
        for pid in pids_mentioning(&self.home.path().join("state/vms")) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// What the stand-in recorded, as `PUT /drives/rootfs` and
/// `PUT /actions (InstanceStart)`, all of them accepted (the stand-in
/// refuses a request the OpenAPI document does not allow with a 400).
fn recorded(vm_dir: &Path) -> Vec<String> {
    let requests = read_requests(&vm_dir.join("api.sock")).expect("the stand-in's record");
    for r in &requests {
        assert!(
            (200..300).contains(&r.status),
            "refused: {} {:?}: {:?}",
            r.describe(),
            r.body,
            r.fault_message
        );
    }
    requests.iter().map(|r| r.describe()).collect()
}

#[test]
fn vm_lifecycle_drives_firecracker() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("skipped: {why}");
        return;
    }
    let home = Home::new();
    home.write_config(&format!(
        "dns_listen = \"127.0.0.1:0\"\nvmm = \"firecracker\"\nfirecracker_bin = \"{STANDIN}\"\n"
    ));
    let ns = banger_sys::netns::Netns::create("fc").expect("network namespace");
    // The stand-in's "guest" answers ssh on its address (it reads
    // `banger.ip=`) only where that address is local: make the guest
    // subnet (the default 172.16.0.0/24) local inside the namespace.
    ns.cmd("ip")
        .args(["route", "add", "local", "172.16.0.0/24", "dev", "lo"])
        .run()
        .expect("guest subnet local in the namespace");
    let mut g = Guard {
        home,
        ns,
        daemon: None,
    };
    g.start_daemon();

    let fixtures = g.home.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let kernel_dir = common::dummy_kernel(&fixtures);
    assert_success(&g.banger(&[
        "kernel",
        "import",
        NAME,
        "--from",
        kernel_dir.to_str().unwrap(),
    ]));
    let rootfs = common::dummy_rootfs(&fixtures);
    assert_success(&g.banger(&[
        "image",
        "register",
        "--name",
        NAME,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--kernel-ref",
        NAME,
    ]));

    // Create: launched through the Firecracker driver.
    let out = g.banger(&[
        "vm", "create", "--name", VM, "--image", NAME, "--memory", "256",
    ]);
    println!("{}{}", stderr(&out), stdout(&out));
    assert_success(&out);
    assert!(
        stderr(&out).contains("launching Firecracker (1.17.0)"),
        "{}",
        stderr(&out)
    );
    let vm = g.vm();
    assert_eq!(vm["state"], "running", "{vm}");
    assert_eq!(
        vm["runtime"]["root_disk"]["format"], "raw",
        "Firecracker takes raw disks only: {vm}"
    );
    let id = vm["id"].as_str().unwrap().to_owned();
    let tap = vm["runtime"]["tap"].as_str().expect("a tap").to_owned();
    let vm_dir = g.home.path().join("state/vms").join(&id);
    let handles: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("handles.json")).unwrap()).unwrap();
    assert_eq!(handles["handle"]["backend"], "firecracker", "{handles}");
    // The serial console goes through bangerd's log capper, recorded as the
    // VM's helper process and naming the console log.
    let capper_of = |handles: &serde_json::Value| -> u32 {
        let helpers = handles["handle"]["helper_pids"].as_array().unwrap();
        assert_eq!(helpers.len(), 1, "{handles}");
        let pid = helpers[0].as_u64().unwrap() as u32;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains(&format!(
                "--cap-log {}",
                vm_dir.join("console.log").display()
            )),
            "not a log capper: {cmdline}"
        );
        pid
    };
    let capper = capper_of(&handles);
    // What the VMM prints reaches `vm logs` through it.
    let out = g.banger(&["vm", "logs", VM]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fc-standin"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let requests = recorded(&vm_dir);
    for wanted in [
        "PUT /machine-config",
        "PUT /boot-source",
        "PUT /drives/rootfs",
        "PUT /drives/work",
        "PUT /network-interfaces/eth0",
        "PUT /vsock",
        "PUT /actions (InstanceStart)",
    ] {
        assert!(
            requests.iter().any(|r| r == wanted),
            "no {wanted} in {requests:?}"
        );
    }
    assert_eq!(
        requests.last().map(String::as_str),
        Some("PUT /actions (InstanceStart)"),
        "configuration first, then the start: {requests:?}"
    );
    let boot = read_requests(&vm_dir.join("api.sock"))
        .unwrap()
        .into_iter()
        .find(|r| r.path == "/boot-source")
        .and_then(|r| r.body)
        .unwrap();
    assert!(
        boot["kernel_image_path"]
            .as_str()
            .unwrap()
            .ends_with("/vmlinux"),
        "Firecracker gets the ELF vmlinux: {boot}"
    );
    let boot_args = boot["boot_args"].as_str().unwrap();
    assert!(
        boot_args.contains("banger.halt=reboot") && boot_args.contains("banger.ip="),
        "{boot_args}"
    );

    // Exec reaches the guest agent through Firecracker's hybrid vsock; the
    // stand-in's agent has no guest to run it in, and says so.
    let out = g.banger(&["vm", "exec", VM, "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("boots no guest"), "{}", stderr(&out));

    // Stop: the agent's poweroff reboots a `banger.halt=reboot` guest,
    // which ends Firecracker: well before the 10 s after which the daemon
    // would kill it.
    let t = Instant::now();
    assert_success(&g.banger(&["vm", "stop", VM]));
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert_eq!(g.vm()["state"], "stopped");
    assert!(pids_mentioning(&vm_dir).is_empty(), "a VMM outlived stop");
    assert!(
        !Path::new(&format!("/proc/{capper}/cmdline")).exists()
            || std::fs::read(format!("/proc/{capper}/cmdline"))
                .unwrap_or_default()
                .is_empty(),
        "the log capper outlived stop"
    );
    assert!(!vm_dir.join("api.sock").exists(), "sockets are removed");
    assert!(
        !g.links().contains(&format!("{tap}:")),
        "the tap is released"
    );

    // Start: a second launch, configured and started again.
    assert_success(&g.banger(&["vm", "start", VM]));
    assert_eq!(g.vm()["state"], "running");
    let starts = recorded(&vm_dir)
        .iter()
        .filter(|r| *r == "PUT /actions (InstanceStart)")
        .count();
    assert_eq!(starts, 2);
    let tap = g.vm()["runtime"]["tap"].as_str().unwrap().to_owned();

    // The daemon dies and comes back configured for QEMU, without a
    // Firecracker: the VM is adopted and later stopped by the driver its
    // handle names, not by today's config.
    g.kill_daemon();
    g.home
        .write_config("dns_listen = \"127.0.0.1:0\"\nvmm = \"qemu\"\n");
    g.start_daemon();
    assert_eq!(g.vm()["state"], "running", "adopted: {}", g.daemon_log());
    // The second launch's capper outlived the daemon's kill -9, like the VMM.
    let handles: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("handles.json")).unwrap()).unwrap();
    let capper = capper_of(&handles);
    assert!(Path::new(&format!("/proc/{capper}")).exists());

    // Delete: nothing of the VM is left.
    let out = g.banger(&["vm", "delete", VM]);
    assert_success(&out);
    assert_eq!(g.banger(&["vm", "show", VM]).status.code(), Some(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids_mentioning(&vm_dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pids_mentioning(&vm_dir).is_empty(), "a VMM outlived delete");
    assert!(!vm_dir.exists(), "the VM directory is gone");
    let links = g.links();
    assert!(!links.contains(&format!("{tap}:")), "{tap} left:\n{links}");
}
