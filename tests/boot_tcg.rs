//! The default kernel and the minimal image, both built by banger from
//! Debian's archive, booted with a plain `qemu-system-x86_64 -M microvm
//! -accel tcg` command line: the initramfs loads the virtio and vsock
//! modules, mounts the root disk, and the agent answers a health request
//! over its virtio-serial channel through bangerd's agent-mux sidecar
//! (SPEC §9.3, §10, §13).
//!
//! Needs root, QEMU, the Debian mirror and a static
//! agent (`BANGER_AGENT_BIN`, set by scripts/test). The kernel and image are
//! kept in `BANGER_E2E_CACHE` (default /var/cache/banger-e2e) so a warm run
//! reuses them: the image is keyed by its recipe hash.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use banger_agent_proto::client::AgentClient;
use common::{Home, assert_success, stdout};

/// Bounds every boot: TCG is slow, but not this slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn missing_prerequisite() -> Option<String> {
    if !common::is_root() {
        return Some("needs root".into());
    }
    for tool in ["qemu-system-x86_64", "mmdebstrap", "debugfs"] {
        if banger_sys::find_program(tool).is_none() {
            return Some(format!("{tool} is not installed"));
        }
    }
    match std::env::var_os("BANGER_AGENT_BIN") {
        None => {
            return Some(
                "BANGER_AGENT_BIN is not set (scripts/test builds the static agent)".into(),
            );
        }
        Some(p) if !Path::new(&p).is_file() => {
            return Some(format!("BANGER_AGENT_BIN {p:?} does not exist"));
        }
        Some(_) => {}
    }
    None
}

/// Kills a child process (and waits for it) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host's TSC frequency: without `tsc_early_khz` microvm hangs in early
/// boot under TCG in about 7% of runs (SPEC §13).
fn tsc_khz() -> u64 {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let mhz: f64 = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz").and_then(|r| r.split(':').nth(1)))
        .and_then(|v| v.trim().parse().ok())
        .expect("cpu MHz in /proc/cpuinfo");
    (mhz * 1000.0).round() as u64
}

fn timed(label: &str, f: impl FnOnce() -> std::process::Output) -> std::process::Output {
    let start = Instant::now();
    let out = f();
    println!("{label}: {:.1} s", start.elapsed().as_secs_f64());
    out
}

#[test]
fn default_kernel_and_minimal_image_boot_to_agent_health() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = common::e2e_lock();
    let home = Home::at(&common::e2e_cache_dir());

    // Built by banger itself, from the Debian mirror, with progress.
    if !home
        .banger(&["kernel", "show", "debian-cloud-amd64"])
        .status
        .success()
    {
        let out = timed("kernel pull (cold)", || {
            home.banger(&["kernel", "pull", "debian-cloud-amd64"])
        });
        assert_success(&out);
    }
    let out = timed("image build minimal", || {
        home.banger(&[
            "image",
            "build",
            "debian-bookworm-minimal",
            "--variant",
            "minimal",
        ])
    });
    assert_success(&out);
    // The golden image (systemd, sshd, Docker) for the end-to-end suite's
    // systemd scenario; kept in the cache by recipe hash like the minimal one.
    let out = timed("image build full", || {
        home.banger(&["image", "build", "debian-bookworm"])
    });
    assert_success(&out);

    // Listed with size and source, also as JSON.
    for what in ["kernel", "image"] {
        let out = home.banger(&[what, "list"]);
        assert_success(&out);
        println!("banger {what} list:\n{}", stdout(&out));
        let out = home.banger(&[what, "list", "--json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let first = &list.as_array().unwrap()[0];
        assert!(
            first["size_bytes"].as_u64().unwrap() > 0 && first["source"].is_string(),
            "{first}"
        );
    }

    let kernel: serde_json::Value = serde_json::from_slice(
        &home
            .banger(&["kernel", "show", "debian-cloud-amd64", "--json"])
            .stdout,
    )
    .unwrap();
    let image: serde_json::Value = serde_json::from_slice(
        &home
            .banger(&["image", "show", "debian-bookworm-minimal", "--json"])
            .stdout,
    )
    .unwrap();
    let kernel_dir = PathBuf::from(kernel["path"].as_str().unwrap());
    // What the daemon does before every boot: the initrd around this
    // build's agent, with the modules this build loads.
    let agent_bin = PathBuf::from(std::env::var_os("BANGER_AGENT_BIN").unwrap());
    banger_image::kernel::KernelStore::new(kernel_dir.parent().unwrap())
        .refresh_initrd("debian-cloud-amd64", &agent_bin)
        .unwrap();
    let rootfs = PathBuf::from(image["rootfs"].as_str().unwrap());
    let init = image["init"]
        .as_str()
        .expect("the minimal image names its init");

    // The rootfs as debugfs sees it.
    let stat = |p: &str| {
        let out = Command::new("debugfs")
            .args(["-R", &format!("stat {p}"), rootfs.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let usr_bin = stat("/usr/bin");
    assert!(usr_bin.contains("User:     0   Group:     0"), "{usr_bin}");
    let agent = stat("/usr/local/bin/banger-agent");
    assert!(
        agent.contains("Mode:  0755") && agent.contains("Type: regular"),
        "{agent}"
    );
    let dropin = stat("/etc/ssh/sshd_config.d/banger.conf");
    assert!(dropin.contains("Type: regular"), "{dropin}");
    home.stop_daemon();

    // A throwaway overlay so the image stays pristine.
    let run = tempfile::Builder::new()
        .prefix("boot")
        .tempdir_in("/tmp")
        .unwrap();
    let overlay = run.path().join("root.qcow2");
    assert_success(
        &Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&rootfs)
            .arg(&overlay)
            .output()
            .unwrap(),
    );

    // The agent's channel: a virtio-serial port, served to the host by
    // bangerd's agent-mux sidecar as a hybrid-vsock socket.
    let vsock_uds = run.path().join("vsock.sock");
    let port_sock = run.path().join("port.sock");
    let _mux = Reaped(
        Command::new(common::BANGERD)
            .args(["--agent-mux", "--port-socket"])
            .arg(&port_sock)
            .arg("--uds")
            .arg(&vsock_uds)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || vsock_uds.exists()),
        "the agent-mux sidecar did not start"
    );

    let console = run.path().join("console.log");
    let cmdline = format!(
        "console=ttyS0 reboot=t panic=-1 banger.channel=serial tsc_early_khz={} \
         banger.root=/dev/vda banger.init={init}",
        tsc_khz()
    );
    let started = Instant::now();
    let _qemu = Reaped(
        Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "microvm,acpi=on",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "512",
                "-smp",
                "1",
            ])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(kernel_dir.join("bzImage"))
            .arg("-initrd")
            .arg(kernel_dir.join("initrd.img"))
            .args(["-append", &cmdline])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-drive")
            .arg(format!(
                "id=root,file={},format=qcow2,if=none",
                overlay.display()
            ))
            .args(["-device", "virtio-blk-device,drive=root"])
            .args(["-device", "virtio-serial-device"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=agent,path={},reconnect=1",
                port_sock.display()
            ))
            .args([
                "-device",
                "virtserialport,chardev=agent,name=org.banger.agent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Health through the same hybrid-vsock handshake Firecracker uses.
    let health = loop {
        if started.elapsed() > BOOT_TIMEOUT {
            panic!(
                "no agent health within {BOOT_TIMEOUT:?}; console:\n{}",
                std::fs::read_to_string(&console).unwrap_or_default()
            );
        }
        match AgentClient::connect_hybrid(
            &vsock_uds,
            banger_agent_proto::protocol::AGENT_PORT,
            Duration::from_secs(2),
        )
        .and_then(|c| c.health())
        {
            Ok(h) => break h,
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    println!(
        "boot to agent health under TCG: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("agent health: {health:?}");
    let console_text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(
        console_text.contains("virtio_blk") || console_text.contains("vda"),
        "modules loaded:\n{console_text}"
    );
    assert!(!health.agent.is_empty());
}
