//! The VM lifecycle for real (SPEC §6, §13): `vm create`, `exec`, `.vm` DNS,
//! `stop`/`start` keeping the work disk, and `delete` leaving nothing behind,
//! with bangerd running as root inside a network namespace this test
//! creates (its bridge, taps and NAT rules never touch the host's network)
//! and QEMU under TCG.
//!
//! Needs root, qemu-system-x86_64, vhost-device-vsock, dig and a static agent
//! (`BANGER_AGENT_BIN`), and the kernel and minimal image that
//! `tests/boot_tcg.rs` builds into `BANGER_E2E_CACHE` (default
//! /var/cache/banger-e2e). VMs are created in that cached home (the image
//! store's atomic renames rule out linking its files elsewhere) and deleted
//! at the end.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Home, assert_success, stderr, stdout};

const VM: &str = "e2e-one";
const IMAGE: &str = "debian-bookworm-minimal";
const KERNEL: &str = "debian-cloud-amd64";
/// Bounds each CLI call: a create under TCG takes ~10-20 s on an idle host.
const CALL_TIMEOUT: Duration = Duration::from_secs(240);

fn cache_dir() -> PathBuf {
    common::e2e_cache_dir()
}

fn missing_prerequisite() -> Option<String> {
    if !common::is_root() {
        return Some("needs root".into());
    }
    for tool in ["qemu-system-x86_64", "vhost-device-vsock", "dig", "ip"] {
        if banger_sys::find_program(tool).is_none() {
            return Some(format!("{tool} is not installed"));
        }
    }
    match std::env::var_os("BANGER_AGENT_BIN") {
        None => return Some("BANGER_AGENT_BIN is not set (scripts/test builds it)".into()),
        Some(p) if !Path::new(&p).is_file() => {
            return Some(format!("BANGER_AGENT_BIN {p:?} does not exist"));
        }
        Some(_) => {}
    }
    let state = cache_dir().join("state");
    if !state.join("kernels").join(KERNEL).join("bzImage").is_file()
        || !state
            .join("images")
            .join(IMAGE)
            .join("rootfs.ext4")
            .is_file()
    {
        return Some(format!(
            "no cached kernel {KERNEL} and image {IMAGE} in {}: run tests/boot_tcg.rs first",
            cache_dir().display()
        ));
    }
    None
}

/// The daemon in the namespace, and everything the test may leave behind:
/// dropped first thing on the way out, even after a failed assertion.
struct Guard {
    home: Home,
    ns: banger_sys::netns::Netns,
    daemon: std::cell::RefCell<Option<Child>>,
}

impl Guard {
    fn banger(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(common::BANGER);
        cmd.args(args);
        run_bounded(cmd, CALL_TIMEOUT)
    }

    fn in_ns(&self, argv: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name()]).args(argv);
        run_bounded(cmd, Duration::from_secs(30))
    }

    fn vm(&self) -> serde_json::Value {
        let out = self.banger(&["vm", "show", VM, "--json"]);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.daemon.borrow().is_some() {
            let _ = self.banger(&["vm", "delete", VM, "e2e-run"]);
            self.home.stop_daemon();
        }
        if let Some(mut d) = self.daemon.borrow_mut().take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        // Whatever still runs out of the cache's VM directories is ours.
        for pid in pids_mentioning(&self.home.path().join("state/vms")) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Runs `cmd`, killing it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line names something under `dir`.
fn pids_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

fn exec(g: &Guard, script: &str) -> Output {
    g.banger(&["vm", "exec", VM, "--", "sh", "-c", script])
}

#[test]
fn vm_create_exec_dns_stop_start_delete() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = common::e2e_lock();
    let home = Home::at(&cache_dir());
    home.stop_daemon();
    let ns = banger_sys::netns::Netns::create("e2e").expect("network namespace");
    let daemon_log = std::fs::File::create(home.path().join("state/bangerd-e2e.log")).unwrap();
    let mut cmd = home.command("ip");
    cmd.args(["netns", "exec", ns.name(), common::BANGERD])
        .stdout(Stdio::null())
        .stderr(daemon_log);
    let daemon = cmd.spawn().expect("start bangerd in the namespace");
    let g = Guard {
        home,
        ns,
        daemon: std::cell::RefCell::new(Some(daemon)),
    };
    assert!(
        common::wait_until(Duration::from_secs(20), || g.home.socket().exists()
            && g.banger(&["daemon", "ping"]).status.success()),
        "bangerd did not come up"
    );
    // A VM left by an interrupted earlier run.
    let _ = g.banger(&["vm", "delete", VM]);

    // Create: staged progress, then the VM, running with an address.
    let started = Instant::now();
    let out = g.banger(&[
        "vm", "create", "--name", VM, "--image", IMAGE, "--memory", "512",
    ]);
    let create_s = started.elapsed().as_secs_f64();
    println!(
        "vm create: {create_s:.1} s\n{}{}",
        stderr(&out),
        stdout(&out)
    );
    assert_success(&out);
    assert!(stderr(&out).starts_with("spec: "), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for the guest agent"),
        "{}",
        stderr(&out)
    );
    let vm = g.vm();
    assert_eq!(vm["state"], "running", "{vm}");
    let ip = vm["runtime"]["ip"].as_str().expect("an address").to_owned();
    let tap = vm["runtime"]["tap"].as_str().expect("a tap").to_owned();
    let id = vm["id"].as_str().unwrap().to_owned();
    let vm_dir = g.home.path().join("state/vms").join(&id);
    assert!(vm_dir.join("work.ext4").is_file());
    let known_hosts = g.home.path().join("state/ssh/known_hosts");
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(pins.contains(&format!("{VM}.vm,{ip}")), "{pins}");
    let links = stdout(&g.in_ns(&["ip", "-o", "link"]));
    assert!(links.contains(&tap), "{links}");

    // Exec: output and exit status pass through; the hostname was set.
    let out = exec(&g, "echo hi; hostname; exit 7");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("hi\n{VM}\n"));

    // DNS: <name>.vm answers with the guest's address while it runs.
    let pong: serde_json::Value =
        serde_json::from_slice(&g.banger(&["daemon", "ping", "--json"]).stdout).unwrap();
    let dns = pong["dns"]
        .as_str()
        .expect("the DNS server is up")
        .to_owned();
    let (dns_ip, dns_port) = dns.rsplit_once(':').unwrap();
    let dig = |name: &str| {
        stdout(&g.in_ns(&[
            "dig",
            &format!("@{dns_ip}"),
            "-p",
            dns_port,
            name,
            "+short",
            "+time=2",
            "+tries=2",
        ]))
    };
    assert_eq!(dig(&format!("{VM}.vm")).trim(), ip);

    // The guest reaches the host over the bridge.
    let out = exec(&g, "ip -o -4 addr show eth0");
    assert!(stdout(&out).contains(&format!("{ip}/")), "{}", stdout(&out));

    // ssh with banger's key and the host key pinned at create (sshd may still
    // be starting: the minimal init supervises it). From inside the
    // namespace, where the guest's address is reachable.
    let ssh = || {
        let mut cmd = g.home.command("ip");
        cmd.args([
            "netns",
            "exec",
            g.ns.name(),
            common::BANGER,
            "vm",
            "ssh",
            VM,
            "--",
        ])
        .args(["cat", "/etc/hostname"]);
        run_bounded(cmd, Duration::from_secs(30))
    };
    let t = Instant::now();
    let out = loop {
        let out = ssh();
        if out.status.success() || t.elapsed() > Duration::from_secs(90) {
            break out;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_success(&out);
    assert_eq!(stdout(&out), format!("{VM}\n"), "ssh reached the guest");

    // Stop and start: the work disk (/root) keeps what was written.
    assert_success(&exec(&g, "echo kept > /root/marker && sync"));
    let t = Instant::now();
    let out = g.banger(&["vm", "stop", VM]);
    assert_success(&out);
    println!("vm stop: {:.1} s", t.elapsed().as_secs_f64());
    let vm = g.vm();
    assert_eq!(vm["state"], "stopped", "{vm}");
    assert!(vm["runtime"]["tap"].is_null(), "the tap is released: {vm}");
    assert!(
        dig(&format!("{VM}.vm")).trim().is_empty(),
        "no name while stopped"
    );
    assert!(
        pids_mentioning(&vm_dir).is_empty(),
        "no VMM left after stop"
    );
    let out = exec(&g, "true");
    assert_eq!(out.status.code(), Some(1), "exec on a stopped VM fails");

    let t = Instant::now();
    let out = g.banger(&["vm", "start", VM]);
    assert_success(&out);
    println!("vm start: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(g.vm()["state"], "running");
    let out = exec(&g, "cat /root/marker");
    assert_success(&out);
    assert_eq!(stdout(&out), "kept\n");

    // `kill -9` of bangerd: the VM keeps running, and the next daemon
    // adopts it (SPEC §6 reconcile) instead of killing it.
    let mut old = g.daemon.borrow_mut().take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    let log = std::fs::File::options()
        .append(true)
        .open(g.home.path().join("state/bangerd-e2e.log"))
        .unwrap();
    let mut cmd = g.home.command("ip");
    cmd.args(["netns", "exec", g.ns.name(), common::BANGERD])
        .stdout(Stdio::null())
        .stderr(log);
    *g.daemon.borrow_mut() = Some(cmd.spawn().expect("restart bangerd"));
    // A raw connect, not the CLI: the CLI would start a daemon of its own
    // (outside the namespace) while the stale socket refuses connections.
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(g.home.socket()).is_ok()
        }),
        "bangerd did not come back"
    );
    assert_eq!(g.vm()["state"], "running", "adopted, not stopped");
    let out = exec(&g, "cat /root/marker");
    assert_success(&out);
    assert_eq!(stdout(&out), "kept\n", "the adopted VM still answers");
    // The new daemon's DNS server has a port of its own (tests use port 0).
    let pong: serde_json::Value =
        serde_json::from_slice(&g.banger(&["daemon", "ping", "--json"]).stdout).unwrap();
    let dns = pong["dns"]
        .as_str()
        .expect("the DNS server is up")
        .to_owned();
    let (dns_ip, dns_port) = dns.rsplit_once(':').unwrap();
    let answer = stdout(&g.in_ns(&[
        "dig",
        &format!("@{dns_ip}"),
        "-p",
        dns_port,
        &format!("{VM}.vm"),
        "+short",
        "+time=2",
        "+tries=2",
    ]));
    assert_eq!(answer.trim(), ip, "its name is served again");

    // Kill, then delete: nothing is left.
    assert_success(&g.banger(&["vm", "kill", VM]));
    assert_eq!(g.vm()["state"], "stopped");
    let vm = g.vm();
    assert_success(&g.banger(&["vm", "start", VM]));
    let tap = g.vm()["runtime"]["tap"].as_str().unwrap().to_owned();
    let out = g.banger(&["vm", "delete", VM]);
    assert_success(&out);
    let out = g.banger(&["vm", "show", VM]);
    assert_eq!(out.status.code(), Some(1), "the record is gone");
    let links = stdout(&g.in_ns(&["ip", "-o", "link"]));
    assert!(!links.contains(&format!("{tap}:")), "{tap} left:\n{links}");
    assert!(
        pids_mentioning(&vm_dir).is_empty(),
        "no VMM or sidecar left"
    );
    assert!(!vm_dir.exists(), "the VM directory is gone");
    let pins = std::fs::read_to_string(&known_hosts).unwrap_or_default();
    assert!(!pins.contains(&format!("banger:{VM}")), "{pins}");
    assert!(!pins.contains(&format!("{VM}.vm")), "{pins}");
    let conn = rusqlite::Connection::open(g.home.db()).unwrap();
    let leases: i64 = conn
        .query_row(
            "SELECT count(*) FROM ip_leases WHERE holder = ?1",
            [vm["id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leases, 0, "the address is released");
    println!("create took {create_s:.1} s");

    // `vm run --rm -- CMD` passes the command's status through and leaves
    // no VM behind.
    let t = Instant::now();
    let out = g.banger(&[
        "vm", "run", "--rm", "--name", "e2e-run", "--image", IMAGE, "--memory", "512", "--", "sh",
        "-c", "exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    println!(
        "vm run --rm -- sh -c 'exit 7': {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        g.banger(&["vm", "show", "e2e-run"]).status.code(),
        Some(1),
        "deleted"
    );
    let out = g.banger(&[
        "vm", "run", "--rm", "--name", "e2e-run", "--image", IMAGE, "--memory", "512", "--", "true",
    ]);
    assert_success(&out);
    assert_eq!(
        g.banger(&["vm", "list", "--json"]).stdout,
        b"[]\n",
        "nothing left"
    );
}
