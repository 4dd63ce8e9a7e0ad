//! The privilege split end to end (SPEC §2, §12): the root helper runs as
//! root and the owner daemon as a throwaway unprivileged uid, both inside a
//! network namespace this test creates, started as their units would start
//! them. The owner boots a real VM (QEMU under TCG, banger's kernel and
//! minimal image copied from the e2e cache into its own home): the helper
//! makes the bridge, the fence and the tap; everything else — the daemon,
//! QEMU, vhost-device-vsock, the log cappers — runs as the owner.
//!
//! Needs root, setpriv, and what the end-to-end suite needs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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
    fn add() -> Account {
        let exists = Command::new("getent")
            .args(["passwd", &OWNER.to_string()])
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let out = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--no-user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .args(["--uid", &OWNER.to_string(), OWNER_NAME])
                .output()
                .unwrap();
            assert_success(&out);
        }
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

struct Rig {
    dir: tempfile::TempDir,
    ns: Netns,
    children: Vec<Child>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.as_owner(common::BANGER, &["vm", "delete", VM]);
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in common::vmenv::pids_mentioning(&self.home()) {
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

    fn helper_socket(&self) -> PathBuf {
        self.dir.path().join("helper/helper.sock")
    }

    /// `program args` as the owner, with the environment a unit would give
    /// it, inside the namespace.
    fn owner_command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name(), "setpriv"])
            .arg(format!("--reuid={OWNER}"))
            .arg(format!("--regid={OWNER}"))
            .args(["--clear-groups", "--", "env", "-i"])
            .arg(format!(
                "HOME={}",
                self.dir.path().join("owner-home").display()
            ))
            .arg(format!("BANGER_HOME={}", self.home().display()))
            .arg(format!(
                "PATH={}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                self.dir.path().join("bin").display()
            ))
            .arg(format!(
                "BANGER_ROOT_HELPER_SOCKET={}",
                self.helper_socket().display()
            ))
            .arg(format!(
                "BANGER_AGENT_BIN={}",
                std::env::var("BANGER_AGENT_BIN").unwrap()
            ))
            .arg(program)
            .args(args);
        cmd
    }

    /// The helper, as bangerd-root.service runs it; returns once it serves.
    fn start_helper(&self) -> Child {
        let home = self.home();
        let mut helper = Command::new("ip");
        helper
            .args([
                "netns",
                "exec",
                self.ns.name(),
                common::BANGERD,
                "--root-helper",
            ])
            .args(["--owner-uid", &OWNER.to_string()]);
        for root in ["state", "cache", "run"] {
            helper.arg("--managed-root").arg(home.join(root));
        }
        let child = helper
            .arg("--socket")
            .arg(self.helper_socket())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let socket = self.helper_socket();
        assert!(
            common::wait_until(Duration::from_secs(20), || {
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            }),
            "the helper does not serve {}",
            socket.display()
        );
        child
    }

    /// The owner daemon, as bangerd.service runs it; returns once it
    /// answers.
    fn start_daemon(&self) -> Child {
        let child = self
            .owner_command(common::BANGERD, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let socket = self.home().join("run/bangerd.sock");
        assert!(
            common::wait_until(Duration::from_secs(20), || {
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            }),
            "the owner daemon does not answer"
        );
        child
    }

    /// Kills child `index` (`kill -9`, as a crash or a unit stop would end
    /// it) and puts a fresh one in its place.
    fn restart(&mut self, index: usize, start: fn(&Rig) -> Child) {
        let old = &mut self.children[index];
        let _ = old.kill();
        let _ = old.wait();
        let fresh = start(self);
        self.children[index] = fresh;
    }

    fn as_owner(&self, program: &str, args: &[&str]) -> Output {
        run_bounded(self.owner_command(program, args), Duration::from_secs(300))
    }
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

#[test]
fn an_unprivileged_owner_runs_a_vm_through_the_root_helper() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = common::e2e_lock();
    let _account = Account::add();
    let _tun = TunOpen::ensure();
    let dir = tempfile::Builder::new()
        .prefix("own")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ns = Netns::create("owner").expect("network namespace");
    let mut rig = Rig {
        dir,
        ns,
        children: Vec::new(),
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
    std::fs::create_dir_all(rig.dir.path().join("owner-home")).unwrap();
    let bin = rig.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(
        banger_sys::find_program("vhost-device-vsock").unwrap(),
        bin.join("vhost-device-vsock"),
    )
    .unwrap();
    chown_tree(&home);
    chown_tree(&rig.dir.path().join("owner-home"));

    let helper = rig.start_helper();
    rig.children.push(helper);
    let daemon = rig.start_daemon();
    rig.children.push(daemon);

    let out = rig.as_owner(
        common::BANGER,
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
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        assert!(
            uids.iter().all(|u| *u == OWNER.to_string()),
            "pid {pid} ({cmdline}) runs as {uid_line}"
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
        let out = rig.as_owner(common::BANGER, &["vm", "exec", VM, "--", "id", "-u"]);
        assert_success(&out);
        assert_eq!(stdout(&out), "0\n", "root in the guest");
    };
    root_in_guest(&rig);

    // The helper restarts (its unit restarted or updated): the VM keeps
    // answering, and what needs the helper (delete, below) gets the new one.
    rig.restart(0, Rig::start_helper);
    root_in_guest(&rig);
    // The owner daemon dies and starts again: it adopts the running VM.
    rig.restart(1, Rig::start_daemon);
    root_in_guest(&rig);

    let out = rig.as_owner(common::BANGER, &["vm", "delete", VM]);
    assert_success(&out);
    assert!(common::vmenv::pids_mentioning(&vm_dir).is_empty());
}
