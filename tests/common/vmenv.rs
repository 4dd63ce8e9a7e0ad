//! The end-to-end environment shared by the suites and benchmarks that boot
//! real VMs: bangerd running as root inside a network namespace this
//! process creates (its bridge, taps and NAT rules never touch the host's
//! network), over the kernel and images cached in [`super::e2e_cache_dir`],
//! and a small scenario runner that prints each scenario's name and result.
//!
//! `BANGER_E2E_VMM=firecracker` (or `qemu`) writes `vmm = ...` into the
//! home's config, so the same suite runs against Firecracker on a KVM host.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Home, stderr, stdout};

/// The kernel every e2e VM boots.
pub const KERNEL: &str = "debian-cloud-amd64";
/// The image with banger's agent as PID 1: the fastest boot.
pub const MINIMAL_IMAGE: &str = "debian-bookworm-minimal";
/// The golden image: systemd, sshd, Docker.
pub const FULL_IMAGE: &str = "debian-bookworm";
/// Bounds each CLI call: a create under TCG takes ~10-20 s on an idle host,
/// a systemd one up to a minute.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the VM-booting tests cannot run here, if they cannot.
pub fn missing_prerequisite(images: &[&str]) -> Option<String> {
    if !super::is_root() {
        return Some("needs root".into());
    }
    let mut tools = vec!["dig", "ip"];
    if vmm() != "firecracker" {
        tools.push("qemu-system-x86_64");
    }
    for tool in tools {
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
    let state = super::e2e_cache_dir().join("state");
    let kernel = state.join("kernels").join(KERNEL).join("bzImage");
    let missing_image = images
        .iter()
        .find(|i| !state.join("images").join(i).join("rootfs.ext4").is_file());
    if !kernel.is_file() || missing_image.is_some() {
        return Some(format!(
            "no cached kernel {KERNEL} and images {images:?} in {}: tests/boot_tcg.rs builds them",
            super::e2e_cache_dir().display()
        ));
    }
    None
}

/// The owner's home the e2e daemon runs with, inside the cached home: a
/// git identity and one dotfile that `[[file_sync]]` copies into new VMs.
const OWNER_HOME: &str = "owner-home";
pub const SYNCED_DOTFILE: &str = "/root/.config/e2e/synced";
pub const OWNER_GIT_NAME: &str = "E2E Owner";
const OWNER_FILE_SYNC: &str = "[[file_sync]]\nhost = \"~/.config/e2e/synced\"\n\
                               guest = \"/root/.config/e2e/synced\"\nmode = \"0640\"\n";

fn owner_home(home: &Home) -> PathBuf {
    let dir = home.path().join(OWNER_HOME);
    std::fs::create_dir_all(dir.join(".config/e2e")).unwrap();
    std::fs::write(
        dir.join(".config/e2e/synced"),
        "synced from the owner's home\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".gitconfig"),
        format!("[user]\n\tname = {OWNER_GIT_NAME}\n\temail = owner@example.com\n"),
    )
    .unwrap();
    dir
}

/// The VMM the suite asks for (`BANGER_E2E_VMM`), `auto` by default.
pub fn vmm() -> String {
    std::env::var("BANGER_E2E_VMM").unwrap_or_else(|_| "auto".into())
}

/// bangerd in its own namespace over the cached home. Dropping it deletes
/// the VMs the suite made, stops the daemon and kills whatever still runs
/// out of the home's VM directories, even after a failed assertion.
pub struct VmEnv {
    pub home: Home,
    pub ns: banger_sys::netns::Netns,
    daemon: RefCell<Option<Child>>,
    _owner_home: PathBuf,
    log: PathBuf,
    _lock: std::fs::File,
}

/// The suite's config, with `extra` top-level keys. The warm cache is off
/// unless a scenario turns it on: the others boot every VM they create.
fn config(extra: &str) -> String {
    let vmm = vmm();
    let warm = if extra.contains("warm_cache =") {
        ""
    } else {
        "warm_cache = false\n"
    };
    format!("dns_listen = \"127.0.0.1:0\"\nvmm = \"{vmm}\"\n{warm}{extra}{OWNER_FILE_SYNC}")
}

impl VmEnv {
    /// Takes the e2e lock, stops any daemon of the cached home, and starts
    /// one inside a new namespace.
    pub fn start(tag: &str) -> VmEnv {
        let lock = super::e2e_lock();
        let home = Home::at(&super::e2e_cache_dir());
        home.stop_daemon();
        home.write_config(&config(""));
        let owner_home = owner_home(&home);
        let ns = banger_sys::netns::Netns::create(tag).expect("network namespace");
        let log = home.path().join(format!("state/bangerd-{tag}.log"));
        let env = VmEnv {
            home,
            _owner_home: owner_home,
            ns,
            daemon: RefCell::new(None),
            log,
            _lock: lock,
        };
        std::fs::write(&env.log, b"").unwrap();
        env.spawn_daemon();
        env
    }

    /// Rewrites the config with `extra` keys (top-level ones) and restarts
    /// the daemon so it reads them; `""` is the suite's own config.
    pub fn reconfigure(&self, extra: &str) {
        self.home.write_config(&config(extra));
        self.restart_daemon();
    }

    fn spawn_daemon(&self) {
        self.spawn_daemon_with(&[]);
    }

    /// Starts the daemon with extra environment (`BANGER_CRASH_AT=...`).
    pub fn spawn_daemon_with(&self, env: &[(&str, &str)]) {
        let log = std::fs::File::options()
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.home.command("ip");
        cmd.envs(env.iter().copied());
        cmd.env("HOME", self.home.path().join(OWNER_HOME))
            .args(["netns", "exec", self.ns.name(), super::BANGERD])
            .stdout(Stdio::null())
            .stderr(log);
        *self.daemon.borrow_mut() = Some(cmd.spawn().expect("start bangerd in the namespace"));
        // A raw connect, not the CLI: the CLI would start a daemon of its
        // own (outside the namespace) while a stale socket refuses.
        let up = super::wait_until(Duration::from_secs(30), || {
            std::os::unix::net::UnixStream::connect(self.home.socket()).is_ok()
        });
        assert!(up, "bangerd did not come up; log {}", self.log.display());
    }

    /// `kill -9` of the daemon, as a crash would.
    pub fn kill_daemon(&self) {
        if let Some(mut d) = self.daemon.borrow_mut().take() {
            d.kill().unwrap();
            d.wait().unwrap();
        }
    }

    pub fn restart_daemon(&self) {
        self.kill_daemon();
        self.spawn_daemon();
    }

    /// Waits up to `limit` for the daemon to exit by itself (a crash
    /// point); true if it did.
    pub fn wait_daemon_gone(&self, limit: Duration) -> bool {
        super::wait_child_exit(&self.daemon, limit)
    }

    pub fn banger(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(super::BANGER);
        cmd.args(args);
        run_bounded(cmd, CALL_TIMEOUT)
    }

    /// A command inside the namespace, where guests are reachable.
    pub fn in_ns(&self, argv: &[&str]) -> Output {
        let mut cmd = self.home.command("ip");
        cmd.args(["netns", "exec", self.ns.name()]).args(argv);
        run_bounded(cmd, Duration::from_secs(60))
    }

    pub fn show(&self, vm: &str) -> serde_json::Value {
        let out = self.banger(&["vm", "show", vm, "--json"]);
        super::assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn exec(&self, vm: &str, script: &str) -> Output {
        self.banger(&["vm", "exec", vm, "--", "sh", "-c", script])
    }

    /// `dig` against the daemon's DNS server: the answer's addresses.
    pub fn dig(&self, name: &str) -> String {
        let out = self.banger(&["daemon", "ping", "--json"]);
        let pong: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dns = pong["dns"]
            .as_str()
            .expect("the DNS server is up")
            .to_owned();
        let (ip, port) = dns.rsplit_once(':').unwrap();
        let out = self.in_ns(&[
            "dig",
            &format!("@{ip}"),
            "-p",
            port,
            name,
            "+short",
            "+time=2",
            "+tries=2",
        ]);
        stdout(&out).trim().to_owned()
    }

    /// The namespace's links, one per line.
    pub fn links(&self) -> String {
        stdout(&self.in_ns(&["ip", "-o", "link"]))
    }

    pub fn vms_dir(&self) -> PathBuf {
        self.home.path().join("state/vms")
    }

    /// Deletes every VM the home has: what an interrupted earlier run left,
    /// or what this one made.
    pub fn delete_all_vms(&self) {
        let list = self.banger(&["vm", "list", "--json"]);
        let vms: serde_json::Value =
            serde_json::from_slice(&list.stdout).unwrap_or(serde_json::Value::Null);
        for vm in vms.as_array().into_iter().flatten() {
            if let Some(name) = vm["name"].as_str() {
                let _ = self.banger(&["vm", "delete", name]);
            }
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for VmEnv {
    fn drop(&mut self) {
        if self.daemon.borrow().is_some() {
            self.delete_all_vms();
            self.home.stop_daemon();
        }
        self.kill_daemon();
        for pid in pids_mentioning(&self.vms_dir()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Runs `cmd`, killing it after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
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
pub fn pids_mentioning(dir: &Path) -> Vec<u32> {
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

/// Runs named scenarios one after another, printing each one's name, result
/// and duration; a failed scenario does not stop the next. [`Suite::finish`]
/// fails the test if any failed.
#[derive(Default)]
pub struct Suite {
    failed: Vec<String>,
    ran: usize,
}

/// Prints a line past the test harness's output capture (which takes only
/// what `print!` writes), so `scripts/test` and CI show every scenario's
/// result, not only a failing test's.
pub fn report(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Suite {
    /// Runs `body` as scenario `name`; with `BANGER_E2E_ONLY=TEXT` set (a
    /// developer's shortcut), only scenarios whose name contains TEXT run.
    pub fn scenario(&mut self, name: &str, body: impl FnOnce()) {
        if let Ok(only) = std::env::var("BANGER_E2E_ONLY")
            && !only.is_empty()
            && !name.contains(&only)
        {
            return;
        }
        report(&format!("scenario: {name} ..."));
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        let secs = started.elapsed().as_secs_f64();
        self.ran += 1;
        match result {
            Ok(()) => report(&format!("scenario: {name}: ok ({secs:.1} s)")),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                report(&format!("scenario: {name}: FAILED ({secs:.1} s): {why}"));
                self.failed.push(name.to_owned());
            }
        }
    }

    pub fn finish(self) {
        report(&format!(
            "scenario summary: {} of {} ok",
            self.ran - self.failed.len(),
            self.ran
        ));
        assert!(
            self.failed.is_empty(),
            "failed scenarios: {:?}",
            self.failed
        );
    }
}
