//! A real boot through the QEMU driver (root only): banger's Debian kernel
//! and minimal image under TCG, a qcow2 root overlay, a raw work disk, a tap
//! in a private network namespace, and the agent over the serial channel's
//! hybrid socket (the agent-mux sidecar). Then a clean stop, and nothing left behind.
//!
//! Uses the kernel and image the workspace's e2e test caches
//! (`tests/boot_tcg.rs`); skipped when they are absent. Holds the cache's
//! `.e2e.lock`, as every test that boots VMs does, so boots never pile up
//! on the two cores.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_agent::client::AgentClient;
use banger_agent::protocol::{AGENT_PORT, ExecRequest};
use banger_sys::Cmd;
use banger_sys::netns::Netns;
use banger_vmm::qemu::{Accel, Qemu};
use banger_vmm::{DiskFormat, DiskSpec, VmConfig, VmHandle, VmmBackend};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const MAC: &str = "02:fc:00:00:00:2a";
const TAP: &str = "fctap42";
const WORK_DISK_BYTES: u64 = 64 << 20;
const MARKER: &str = "banger-qemu-boot-marker";

fn cache_root() -> PathBuf {
    std::env::var_os("BANGER_E2E_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/banger-e2e"), PathBuf::from)
}

fn cache() -> PathBuf {
    cache_root().join("state")
}

/// The lock the workspace's `tests/common::e2e_lock` takes.
fn e2e_lock() -> std::fs::File {
    let lock = std::fs::File::create(cache_root().join(".e2e.lock")).unwrap();
    banger_sys::os::lock_exclusive(&lock).expect("lock the end-to-end cache");
    lock
}

fn program(name: &str) -> Option<PathBuf> {
    banger_sys::find_program(name).or_else(|| {
        let p = Path::new(&std::env::var_os("HOME")?)
            .join(".cargo/bin")
            .join(name);
        p.is_file().then_some(p)
    })
}

struct Prerequisites {
    qemu: PathBuf,
    mux: PathBuf,
    kernel_dir: PathBuf,
    rootfs: PathBuf,
    init: String,
}

fn prerequisites() -> Result<Prerequisites, String> {
    if !banger_sys::os::is_root() {
        return Err("needs root (a tap in a network namespace)".into());
    }
    let find = |name: &str| program(name).ok_or(format!("{name} is not installed"));
    let qemu = find("qemu-system-x86_64")?;
    let mux = PathBuf::from(env!("CARGO_BIN_EXE_agent-mux"));
    find("qemu-img")?;
    let kernel_dir = cache().join("kernels/debian-cloud-amd64");
    let image_dir = cache().join("images/debian-bookworm-minimal");
    let rootfs = image_dir.join("rootfs.ext4");
    let missing = ["bzImage", "initrd.img"]
        .iter()
        .map(|f| kernel_dir.join(f))
        .chain([rootfs.clone(), image_dir.join("manifest.json")])
        .find(|p| !p.is_file());
    if let Some(path) = missing {
        return Err(format!(
            "{} is missing: run the workspace e2e test first (tests/boot_tcg.rs) \
             to build the kernel and image",
            path.display()
        ));
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image_dir.join("manifest.json")).unwrap()).unwrap();
    let init = manifest["init"]
        .as_str()
        .ok_or("the image manifest names no init")?
        .to_owned();
    Ok(Prerequisites {
        qemu,
        mux,
        kernel_dir,
        rootfs,
        init,
    })
}

fn run(cmd: Cmd) {
    cmd.run().unwrap_or_else(|e| panic!("{e}"));
}

fn console(handle: &VmHandle) -> String {
    std::fs::read_to_string(&handle.console_log).unwrap_or_default()
}

fn agent(handle: &VmHandle) -> Result<AgentClient, banger_agent::client::ClientError> {
    AgentClient::connect_hybrid(&handle.vsock_uds, AGENT_PORT, Duration::from_secs(5))
}

fn exec(handle: &VmHandle, argv: &[&str]) -> String {
    let result = agent(handle)
        .and_then(|c| c.exec(ExecRequest::new(argv.iter().copied())))
        .unwrap_or_else(|e| panic!("exec {argv:?}: {e}"));
    assert_eq!(result.status, Some(0), "{argv:?}: {result:?}");
    result.stdout
}

/// Processes whose command line mentions `unique`.
fn processes_mentioning(unique: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(unique).then_some(text)
        })
        .collect()
}

#[test]
fn qemu_boots_the_minimal_image_to_agent_health_and_stops_cleanly() {
    let pre = match prerequisites() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _lock = e2e_lock();
    // The comma exercises QEMU's option escaping for every path.
    let run_dir = tempfile::Builder::new()
        .prefix("bq-boot,")
        .tempdir_in("/tmp")
        .unwrap();
    let unique = run_dir
        .path()
        .to_str()
        .unwrap()
        .rsplit(',')
        .next()
        .unwrap()
        .to_owned();
    let overlay = run_dir.path().join("root.qcow2");
    run(Cmd::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&pre.rootfs)
        .arg(&overlay));
    let work = run_dir.path().join("work.img");
    std::fs::File::create(&work)
        .unwrap()
        .set_len(WORK_DISK_BYTES)
        .unwrap();

    // The tap lives in a namespace of its own; QEMU inherits it.
    let ns = Netns::create("qemu-boot").unwrap();
    let _inside = ns.enter().unwrap();
    run(Cmd::new("ip").args(["tuntap", "add", "dev", TAP, "mode", "tap"]));
    run(Cmd::new("ip").args(["link", "set", TAP, "up"]));

    let config = VmConfig {
        id: "qemu-boot".into(),
        vcpu: 1,
        memory_mib: 512,
        kernel: pre.kernel_dir.join("bzImage"),
        initrd: Some(pre.kernel_dir.join("initrd.img")),
        kernel_args: format!(
            "banger.root=/dev/vda banger.init={} banger.workdisk=none",
            pre.init
        ),
        root_disk: DiskSpec {
            path: overlay,
            format: DiskFormat::Qcow2,
            read_only: false,
        },
        work_disk: Some(DiskSpec {
            path: work.clone(),
            format: DiskFormat::Raw,
            read_only: false,
        }),
        modules_disk: None,
        tap: Some(TAP.into()),
        mac: Some(MAC.into()),
        vsock_cid: 3,
        run_dir: run_dir.path().to_owned(),
    };
    let accel = Accel::detect(&pre.qemu).unwrap();
    println!("accelerator: {accel:?}");
    let qemu = Qemu::new(pre.qemu.clone(), pre.mux.clone(), accel);

    // First boot: devices, a write, and the primary stop (the agent).
    let handle = boot(&qemu, &config);
    // Root first, then the work disk, then the NIC with our MAC.
    let sectors = |bytes: u64| (bytes / 512).to_string();
    let root_bytes = std::fs::metadata(&pre.rootfs).unwrap().len();
    assert_eq!(
        exec(&handle, &["cat", "/sys/block/vda/size"]).trim(),
        sectors(root_bytes)
    );
    assert_eq!(
        exec(&handle, &["cat", "/sys/block/vdb/size"]).trim(),
        sectors(WORK_DISK_BYTES)
    );
    assert_eq!(
        exec(&handle, &["cat", "/sys/class/net/eth0/address"]).trim(),
        MAC
    );
    // Written through the guest's page cache: only a clean stop flushes it.
    exec(
        &handle,
        &["sh", "-c", &format!("printf {MARKER} > /dev/vdb")],
    );
    stop(&qemu, &handle, "agent poweroff", || {
        agent(&handle).and_then(|c| c.poweroff()).unwrap();
    });
    let written = std::fs::read(&work).unwrap();
    assert_eq!(
        &written[..MARKER.len()],
        MARKER.as_bytes(),
        "the write did not reach the disk"
    );
    assert_no_leftovers(&qemu, &handle, &unique);

    // Second boot in the same run directory: the driver's own stop request.
    let handle = boot(&qemu, &config);
    stop(&qemu, &handle, "request_shutdown", || {
        qemu.request_shutdown(&handle).unwrap();
    });
    assert_no_leftovers(&qemu, &handle, &unique);
}

/// Launches and waits for the agent's health; prints the time it took.
fn boot(qemu: &Qemu, config: &VmConfig) -> VmHandle {
    let started = Instant::now();
    let handle = qemu.launch(config).unwrap();
    println!(
        "launch returned after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(qemu.is_alive(&handle));
    assert_eq!(handle.helper_pids.len(), 1);
    let health = loop {
        match agent(&handle).and_then(|c| c.health()) {
            Ok(h) => break h,
            Err(e) => {
                if !qemu.is_alive(&handle) || started.elapsed() > BOOT_TIMEOUT {
                    let _ = qemu.kill(&handle);
                    panic!(
                        "no agent health within {BOOT_TIMEOUT:?} (last: {e}); console:\n{}",
                        console(&handle)
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    };
    println!(
        "boot to agent health: {:.1} s ({:?})",
        started.elapsed().as_secs_f64(),
        qemu.accel
    );
    assert!(!health.agent.is_empty(), "{health:?}");
    handle
}

/// Runs `request` and asserts QEMU exits by itself within the bound.
fn stop(qemu: &Qemu, handle: &VmHandle, how: &str, request: impl FnOnce()) {
    let stopping = Instant::now();
    request();
    let exited = qemu.wait_exit(handle, STOP_TIMEOUT).unwrap();
    if !exited {
        let _ = qemu.kill(handle);
    }
    assert!(
        exited,
        "QEMU still runs {STOP_TIMEOUT:?} after {how}; console:\n{}",
        console(handle)
    );
    println!(
        "{how} to QEMU exit: {:.2} s",
        stopping.elapsed().as_secs_f64()
    );
    assert!(!qemu.is_alive(handle));
}

/// `kill` is idempotent, and no process or socket of the VM remains.
fn assert_no_leftovers(qemu: &Qemu, handle: &VmHandle, unique: &str) {
    qemu.kill(handle).unwrap();
    qemu.kill(handle).unwrap();
    for &pid in &handle.helper_pids {
        assert!(
            !banger_sys::os::process_alive(pid),
            "agent-mux sidecar {pid} left"
        );
    }
    let left = processes_mentioning(unique);
    assert!(left.is_empty(), "left behind: {left:?}");
    for socket in [&handle.control_socket, &handle.vsock_uds] {
        assert!(!socket.exists(), "{} left", socket.display());
    }
}
