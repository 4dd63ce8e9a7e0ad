//! The privilege split end to end (SPEC §2, §12): the root helper runs as
//! root and the owner daemon as a throwaway unprivileged uid, both inside a
//! network namespace this test creates, started as their units would start
//! them. The owner boots a real VM (QEMU under TCG, banger's kernel and
//! minimal image copied from the e2e cache into its own home): the helper
//! makes the bridge, the fence and the tap; everything else — the daemon,
//! QEMU, the agent-mux sidecar, the log cappers — runs as the owner.
//!
//! Needs root, setpriv, and what the end-to-end suite needs.

mod common;
#[path = "owner/release.rs"]
mod release;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use banger_sys::netns::Netns;
use common::vmenv::{KERNEL, MINIMAL_IMAGE, run_bounded};
use common::{assert_success, stderr, stdout};

const OWNER: u32 = 4244;
/// A throwaway account for [`OWNER`] (ssh-keygen wants a passwd entry),
/// added for the test and removed after it.
const OWNER_NAME: &str = "banger-e2e-owner";
const VM: &str = "owned";

/// The throwaway owner account, removed when dropped.
struct Account;

impl Account {
    /// Added afresh with `home` (a leftover of an interrupted run goes).
    fn add(home: &Path) -> Account {
        let _ = Command::new("userdel").arg(OWNER_NAME).output();
        let out = Command::new("useradd")
            .args([
                "--no-create-home",
                "--no-user-group",
                "--shell",
                "/usr/sbin/nologin",
                "--home-dir",
            ])
            .arg(home)
            .args(["--uid", &OWNER.to_string(), OWNER_NAME])
            .output()
            .unwrap();
        assert_success(&out);
        Account
    }
}

/// `/dev/net/tun` as Debian's udev rules leave it (0666: opening it makes
/// nothing; a tap is used only by its owner). Machines of this kind have it
/// 0600; the previous mode is put back when dropped.
struct TunOpen(Option<u32>);

impl TunOpen {
    fn ensure() -> TunOpen {
        let tun = Path::new("/dev/net/tun");
        let mode = std::fs::metadata(tun).unwrap().permissions().mode() & 0o777;
        if mode == 0o666 {
            return TunOpen(None);
        }
        std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666)).unwrap();
        TunOpen(Some(mode))
    }
}

impl Drop for TunOpen {
    fn drop(&mut self) {
        if let Some(mode) = self.0 {
            let _ = std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(mode));
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(OWNER_NAME).status();
    }
}

/// A process kept running as its unit's `Restart=always` would: started
/// again whenever it exits, until [`Supervised::stop`].
struct Supervised {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervised {
    fn start(make: impl Fn() -> Command + Send + 'static) -> Supervised {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicU32::new(0));
        let (s, p) = (stop.clone(), pid.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let mut child = make().spawn().expect("start a supervised process");
                p.store(child.id(), Ordering::SeqCst);
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Supervised {
            stop,
            pid,
            thread: Some(thread),
        }
    }

    /// `kill -9`, as a crash would; the supervisor starts it again.
    fn crash(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }

    fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.crash();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Rig {
    dir: tempfile::TempDir,
    ns: Netns,
    services: Vec<Supervised>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.as_owner(&self.installed("banger"), &["vm", "delete", VM]);
        self.services.clear();
        for pid in common::vmenv::pids_mentioning(self.dir.path()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Rig {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn owner_home(&self) -> PathBuf {
        self.dir.path().join("owner-home")
    }

    /// What `system install --destdir` wrote: the install's root.
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn installed(&self, program: &str) -> String {
        let dir = if program == "banger-agent" {
            "usr/local/lib/banger"
        } else {
            "usr/local/bin"
        };
        self.root().join(dir).join(program).display().to_string()
    }

    fn helper_socket(&self) -> PathBuf {
        self.dir.path().join("helper/helper.sock")
    }

    /// `program args` as the owner, with the environment a unit would give
    /// it, inside the namespace.
    fn owner_command(&self, program: &str, args: &[&str]) -> Command {
        owner_command(self.ns.name(), self.dir.path(), program, args)
    }

    /// The helper, as bangerd-root.service runs it; returns once it serves.
    fn start_helper(&mut self) {
        let (ns, home, socket) = (self.ns.name().to_owned(), self.home(), self.helper_socket());
        let bangerd = self.installed("bangerd");
        self.services.push(Supervised::start(move || {
            let mut helper = Command::new("ip");
            helper
                .args(["netns", "exec", &ns, &bangerd, "--root-helper"])
                .args(["--owner-uid", &OWNER.to_string()]);
            for root in ["state", "cache", "run"] {
                helper.arg("--managed-root").arg(home.join(root));
            }
            helper
                .arg("--socket")
                .arg(&socket)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            helper
        }));
        self.wait_serving(&self.helper_socket(), "the helper");
    }

    /// The owner daemon, as bangerd.service runs it; returns once it
    /// answers.
    fn start_daemon(&mut self) {
        let (ns, dir) = (self.ns.name().to_owned(), self.dir.path().to_owned());
        let bangerd = self.installed("bangerd");
        self.services.push(Supervised::start(move || {
            let mut cmd = owner_command(&ns, &dir, &bangerd, &[]);
            cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
            cmd
        }));
        self.wait_serving(&self.home().join("run/bangerd.sock"), "the owner daemon");
    }

    fn wait_serving(&self, socket: &Path, what: &str) {
        assert!(
            common::wait_until(Duration::from_secs(30), || {
                std::os::unix::net::UnixStream::connect(socket).is_ok()
            }),
            "{what} does not serve {}",
            socket.display()
        );
    }

    fn as_owner(&self, program: &str, args: &[&str]) -> Output {
        run_bounded(self.owner_command(program, args), Duration::from_secs(300))
    }

    /// `sudo banger ARGS` as the installed CLI, for this rig's install.
    fn as_root(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.installed("banger"));
        cmd.args(args)
            .env("BANGER_HOME", self.home())
            .env("BANGER_ROOT_HELPER_SOCKET", self.helper_socket());
        run_bounded(cmd, Duration::from_secs(300))
    }

    fn daemon_commit(&self) -> String {
        let out = self.as_owner(&self.installed("banger"), &["daemon", "ping", "--json"]);
        assert_success(&out);
        let pong: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pong["commit"].as_str().unwrap().to_owned()
    }
}

fn owner_command(ns: &str, dir: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "setpriv"])
        .arg(format!("--reuid={OWNER}"))
        .arg(format!("--regid={OWNER}"))
        .args(["--clear-groups", "--", "env", "-i"])
        .arg(format!("HOME={}", dir.join("owner-home").display()))
        .arg(format!("BANGER_HOME={}", dir.join("home").display()))
        .arg(format!(
            "PATH={}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            dir.join("bin").display()
        ))
        .arg(format!(
            "BANGER_ROOT_HELPER_SOCKET={}",
            dir.join("helper/helper.sock").display()
        ))
        .arg(format!(
            "BANGER_AGENT_BIN={}",
            dir.join("root/usr/local/lib/banger/banger-agent").display()
        ))
        .arg(program)
        .args(args);
    cmd
}

fn missing() -> Option<String> {
    if let Some(why) = common::vmenv::missing_prerequisite(&[MINIMAL_IMAGE]) {
        return Some(why);
    }
    if common::vmenv::vmm() == "firecracker" {
        return Some("runs the QEMU backend".into());
    }
    ["setpriv", "useradd", "userdel"]
        .into_iter()
        .find(|tool| banger_sys::find_program(tool).is_none())
        .map(|tool| format!("needs {tool}"))
}

/// `cp -a` then the owner's: the cached kernel and image, as if pulled and
/// built by this owner.
fn copy_owned(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn chown_tree(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{OWNER}:{OWNER}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The uids of process `pid` (real, effective, saved, fs).
fn uids(pid: u32) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().skip(1).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Processes that name the rig's directory and run as root, other than
/// `expected` (the helper, and the test's own `ip netns exec … setpriv`
/// launcher, root for the moment before it becomes the owner): there must
/// be none.
fn root_processes(rig: &Rig, expected: &[u32]) -> Vec<String> {
    common::vmenv::pids_mentioning(rig.dir.path())
        .into_iter()
        .filter(|pid| !expected.contains(pid) && uids(*pid).iter().any(|u| u == "0"))
        .map(|pid| {
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            format!("{pid}: {cmdline}")
        })
        .collect()
}

#[test]
fn an_unprivileged_owner_runs_a_vm_through_the_root_helper() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = common::e2e_lock();
    let _tun = TunOpen::ensure();
    let dir = tempfile::Builder::new()
        .prefix("own")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let owner_home = dir.path().join("owner-home");
    std::fs::create_dir_all(&owner_home).unwrap();
    let _account = Account::add(&owner_home);
    let ns = Netns::create("owner").expect("network namespace");
    let mut rig = Rig {
        dir,
        ns,
        services: Vec::new(),
    };
    let home = rig.home();
    let cache = common::e2e_cache_dir().join("state");
    copy_owned(
        &cache.join("kernels").join(KERNEL),
        &home.join("state/kernels").join(KERNEL),
    );
    let image_dir = home.join("state/images").join(MINIMAL_IMAGE);
    copy_owned(&cache.join("images").join(MINIMAL_IMAGE), &image_dir);
    let manifest_path = image_dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["rootfs"] = serde_json::json!(image_dir.join("rootfs.ext4"));
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::create_dir_all(home.join("config")).unwrap();
    std::fs::write(
        home.join("config/config.toml"),
        "dns_listen = \"127.0.0.1:0\"\nvmm = \"qemu\"\n",
    )
    .unwrap();
    for sub in ["cache", "run"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    std::fs::create_dir_all(rig.dir.path().join("bin")).unwrap();
    chown_tree(&home);
    chown_tree(&rig.owner_home());

    // The install, as `sudo banger system install` makes it, into a
    // destdir (this host has no systemd to start units).
    let releases = rig.dir.path().join("releases");
    std::fs::create_dir_all(&releases).unwrap();
    let release_url = release::serve(releases.clone());
    let out = run_bounded(
        {
            let mut cmd = Command::new(common::BANGER);
            cmd.args(["system", "install", "--owner", OWNER_NAME, "--destdir"])
                .arg(rig.root())
                .args(["--release-url", &release_url, "--agent"])
                .arg(std::env::var("BANGER_AGENT_BIN").unwrap());
            cmd
        },
        Duration::from_secs(60),
    );
    assert_success(&out);
    rig.start_helper();
    rig.start_daemon();

    // `vm run --rm` as the owner, watching the processes while it runs.
    let mut run = rig
        .owner_command(
            &rig.installed("banger"),
            &[
                "vm",
                "run",
                "--rm",
                "--image",
                MINIMAL_IMAGE,
                "--memory",
                "512",
                "--",
                "id",
                "-u",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let expected = [rig.services[0].pid(), run.id()];
    let mut as_root = Vec::new();
    let started = std::time::Instant::now();
    while run.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(300), "vm run hangs");
        as_root.extend(root_processes(&rig, &expected));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    assert_success(&out);
    assert_eq!(stdout(&out), "0\n", "root in the guest");
    assert!(
        as_root.is_empty(),
        "processes ran as root besides the helper: {as_root:?}"
    );

    let out = rig.as_owner(
        &rig.installed("banger"),
        &[
            "vm",
            "create",
            "--name",
            VM,
            "--image",
            MINIMAL_IMAGE,
            "--memory",
            "512",
        ],
    );
    println!("{}", stderr(&out));
    assert_success(&out);

    // Everything of the VM runs as the owner.
    let vm_dir = home.join("state/vms");
    let pids = common::vmenv::pids_mentioning(&vm_dir);
    assert!(!pids.is_empty(), "no process of the VM found");
    for pid in pids {
        assert!(
            uids(pid).iter().all(|u| *u == OWNER.to_string()),
            "pid {pid} runs as {:?}",
            uids(pid)
        );
    }
    // The tap the helper made belongs to the owner.
    let links = rig
        .ns
        .cmd("ip")
        .args(["-d", "link", "show", "type", "tun"])
        .run()
        .unwrap()
        .stdout_str();
    // `ip` names the owner when the account exists.
    assert!(
        links.contains(&format!("user {OWNER_NAME} ")) || links.contains(&format!("user {OWNER} ")),
        "{links}"
    );
    assert!(!links.contains("user root"), "{links}");

    let root_in_guest = |rig: &Rig| {
        let out = rig.as_owner(
            &rig.installed("banger"),
            &["vm", "exec", VM, "--", "id", "-u"],
        );
        assert_success(&out);
        assert_eq!(stdout(&out), "0\n", "root in the guest");
    };
    root_in_guest(&rig);
    // The work disk (the guest's /root) was made by the owner, yet what the
    // image put in /root is root's in the guest.
    let out = rig.as_owner(
        &rig.installed("banger"),
        &[
            "vm",
            "exec",
            VM,
            "--",
            "sh",
            "-c",
            "stat -c '%u %g' /root/.profile /root",
        ],
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "0 0\n0 0\n", "owners in the guest's /root");

    // The helper dies and its unit starts it again: the VM keeps answering,
    // and what needs the helper (delete, below) gets the new one.
    rig.services[0].crash();
    rig.wait_serving(&rig.helper_socket(), "the helper");
    root_in_guest(&rig);
    // The owner daemon dies and starts again: it adopts the running VM.
    rig.services[1].crash();
    std::thread::sleep(Duration::from_millis(500));
    rig.wait_serving(&home.join("run/bangerd.sock"), "the owner daemon");
    root_in_guest(&rig);

    update_and_roll_back(&rig, &releases);
    root_in_guest(&rig);

    let out = rig.as_owner(&rig.installed("banger"), &["vm", "delete", VM]);
    assert_success(&out);
    assert!(common::vmenv::pids_mentioning(&vm_dir).is_empty());
}

/// `banger update` to a test release while the VM runs, then to a broken
/// release (its daemon never starts), which is rolled back.
fn update_and_roll_back(rig: &Rig, releases: &Path) {
    let installed_commit = release::commit_of(Path::new(&rig.installed("bangerd")));
    let stamp = |seed: &str| seed.repeat(16)[..installed_commit.len()].to_owned();
    let (good, broken) = (stamp("0e57"), stamp("b0b0"));
    for program in ["banger", "bangerd"] {
        release::restamp(
            Path::new(&rig.installed(program)),
            &releases.join(format!("good-{program}")),
            &installed_commit,
            &good,
        );
    }
    release::restamp(
        Path::new(&rig.installed("banger")),
        &releases.join("broken-banger"),
        &installed_commit,
        &broken,
    );
    // Says the right version and accepts the store, but never serves.
    std::fs::write(
        releases.join("broken-bangerd"),
        format!(
            "#!/bin/sh\ncase \"$1\" in\n--version) echo 'bangerd v0.1.0 (commit {broken}, built 2026-12-03T00:00:00Z)';;\n\
             --check-migrations) exit 0;;\n*) exit 1;;\nesac\n"
        ),
    )
    .unwrap();
    for name in ["good-banger-agent", "broken-banger-agent"] {
        std::fs::copy(rig.installed("banger-agent"), releases.join(name)).unwrap();
    }
    let version = banger_api::build_info::VERSION;
    let good_entry = release::entry(releases, "good-", version, &good);
    release::publish(releases, version, vec![good_entry.clone()]);
    let key = release::public_key_b64();
    let root = rig.root().display().to_string();
    let update = |extra: &[&str]| {
        let mut args = vec!["update", "--install-root", &root, "--release-key", &key];
        args.extend_from_slice(extra);
        rig.as_root(&args)
    };

    let out = update(&["--check"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("available: v{version} (commit {good})")),
        "{}",
        stdout(&out)
    );
    let out = update(&["--dry-run"]);
    assert_success(&out);
    assert!(stdout(&out).contains("Dry run"), "{}", stdout(&out));
    assert_eq!(
        rig.daemon_commit(),
        installed_commit,
        "a dry run changes nothing"
    );
    let out = update(&[]);
    println!("{}{}", stdout(&out), stderr(&out));
    assert_success(&out);
    assert_eq!(rig.daemon_commit(), good);
    assert!(Path::new(&format!("{}.previous", rig.installed("bangerd"))).exists());
    let info = std::fs::read_to_string(rig.root().join("etc/banger/install.toml")).unwrap();
    assert!(info.contains(&good), "{info}");
    let out = rig.as_owner(&rig.installed("banger"), &["vm", "exec", VM, "--", "true"]);
    assert_success(&out);

    let broken_entry = release::entry(releases, "broken-", version, &broken);
    release::publish(releases, version, vec![broken_entry]);
    let out = update(&[]);
    println!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "the broken release was accepted");
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert_eq!(
        rig.daemon_commit(),
        good,
        "the previous version serves again"
    );
    let info = std::fs::read_to_string(rig.root().join("etc/banger/install.toml")).unwrap();
    assert!(info.contains(&good) && !info.contains(&broken), "{info}");
}
