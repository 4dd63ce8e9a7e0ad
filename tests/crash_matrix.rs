//! A crash at any instant leaves nothing behind (SPEC §12): for every named
//! crash point of the daemon (`banger_daemon::CRASH_POINTS`, armed with
//! `BANGER_CRASH_AT` in `test-methods` builds), bangerd is made to abort
//! right there in the middle of the operation that reaches it — create,
//! boot, stop, delete, set, image build — then started again (reconcile
//! and the sweep run), the VM is deleted, and what is left on the host is
//! listed where it lives (`common::leaks`): taps, NAT and fence rules, loop
//! devices, leases, processes, files under the state directory, known_hosts
//! pins, the database's integrity. Each point prints `stage NAME: clean`
//! or what leaked.
//!
//! Most points run against the Firecracker stand-in (`fc-standin-e2e`: a
//! VMM at the OS boundary that serves Firecracker's API and plays the
//! guest's agent and sshd, so a boot takes a second); three run with real
//! QEMU boots of banger's minimal image, and the image build point runs a
//! real mmdebstrap build. Needs root (namespaces, taps, nftables).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::vmenv::{VmEnv, pids_mentioning, report, run_bounded};
use common::{Home, stderr};

const STANDIN: &str = env!("CARGO_BIN_EXE_fc-standin-e2e");
const VM: &str = "crash";
const CALL_TIMEOUT: Duration = Duration::from_secs(180);
/// Points also run with real QEMU boots: the VMM and its vsock sidecar
/// spawned before `handles.json` names them, a guest that has its
/// identity, and a stop half done.
const QEMU_POINTS: &[&str] = &["boot.launched", "boot.identity", "stop.poweroff"];

/// What must exist before the crash, and the command that meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `vm create --nat`: create.* and boot.* points.
    Create,
    /// A stopped VM, then `vm start`: boot.* points again, reached by a
    /// start this time.
    Start,
    /// A running VM, then `vm stop`.
    Stop,
    /// A running VM, then `vm delete`.
    Delete,
    /// A running VM without NAT, then `vm set --nat`.
    SetNat,
    /// `image build debian-bookworm-minimal` in an empty home.
    ImageBuild,
}

/// Every way the matrix reaches `point`.
fn cases(point: &str) -> Vec<Case> {
    match case(point) {
        // A start gives the guest no identity: it has it from its create.
        Case::Create if point.starts_with("boot.") && point != "boot.identity" => {
            vec![Case::Create, Case::Start]
        }
        case => vec![case],
    }
}

fn case(point: &str) -> Case {
    match point.split('.').next() {
        Some("create" | "boot") => Case::Create,
        Some("stop") => Case::Stop,
        Some("delete") => Case::Delete,
        Some("set") => Case::SetNat,
        Some("image") => Case::ImageBuild,
        _ => panic!("no case for crash point {point}"),
    }
}

/// What the matrix drives: a home, a namespace and the daemon in it.
trait Rig {
    fn home(&self) -> &Path;
    fn banger(&self, args: &[&str]) -> Output;
    fn in_ns(&self, argv: &[&str]) -> String;
    fn start_daemon(&self, crash_at: Option<&str>);
    /// Waits up to `limit` for a daemon armed with a crash point to abort.
    fn crashed(&self, limit: Duration) -> bool;
    fn create_args(&self) -> Vec<&'static str>;
}

/// Sets the case up, crashes the daemon at `point`, restarts it, deletes
/// the VM and lists what is left. `Err` says why the point was not reached.
fn run_point(rig: &dyn Rig, point: &str, case: Case) -> Result<Vec<String>, String> {
    let mut create = vec!["vm", "create", "--name", VM];
    create.extend(rig.create_args());
    match case {
        Case::Stop | Case::Delete | Case::Start => {
            let mut with_nat = create.clone();
            with_nat.push("--nat");
            must(rig.banger(&with_nat))?;
            if case == Case::Start {
                must(rig.banger(&["vm", "stop", VM]))?;
            }
        }
        Case::SetNat => must(rig.banger(&create))?,
        Case::Create | Case::ImageBuild => {}
    }
    rig.start_daemon(Some(point));
    let op = match case {
        Case::Create => {
            let mut with_nat = create.clone();
            with_nat.push("--nat");
            rig.banger(&with_nat)
        }
        Case::Stop => rig.banger(&["vm", "stop", VM]),
        Case::Start => rig.banger(&["vm", "start", VM]),
        Case::Delete => rig.banger(&["vm", "delete", VM]),
        Case::SetNat => rig.banger(&["vm", "set", VM, "--nat"]),
        Case::ImageBuild => rig.banger(&[
            "image",
            "build",
            "debian-bookworm-minimal",
            "--variant",
            "minimal",
        ]),
    };
    // An image build downloads and bootstraps Debian before its point; a
    // real boot takes seconds under TCG.
    let limit = match case {
        Case::ImageBuild => Duration::from_secs(300),
        _ => Duration::from_secs(120),
    };
    if !rig.crashed(limit) {
        return Err(format!(
            "the daemon did not stop at {point}; the command said: {}",
            stderr(&op)
        ));
    }
    rig.start_daemon(None);
    let delete = rig.banger(&["vm", "delete", VM]);
    let gone = delete.status.success() || stderr(&delete).contains("no VM is named");
    let mut leaks = Vec::new();
    if !gone {
        leaks.push(format!("vm delete failed: {}", stderr(&delete)));
    }
    let list = rig.banger(&["vm", "list", "--json"]);
    if list.stdout != b"[]\n" {
        leaks.push(format!(
            "VM records: {}",
            String::from_utf8_lossy(&list.stdout).trim()
        ));
    }
    leaks.extend(common::leaks::leaks(rig.home(), VM, &|argv| {
        rig.in_ns(argv)
    }));
    Ok(leaks)
}

fn must(out: Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("setup failed: {}", stderr(&out)))
    }
}

/// Runs `point` on a fresh rig and prints its line; returns whether it was
/// clean.
fn check(rig: &dyn Rig, point: &str, case: Case, tier: &str) -> bool {
    let started = std::time::Instant::now();
    let outcome = run_point(rig, point, case);
    let tier = format!("{tier}, {}", format!("{case:?}").to_lowercase());
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(leaks) if leaks.is_empty() => {
            report(&format!("stage {point}: clean ({tier}, {secs:.1} s)"));
            true
        }
        Ok(leaks) => {
            report(&format!(
                "stage {point}: LEAKED ({tier}): {}",
                leaks.join("; ")
            ));
            false
        }
        Err(why) => {
            report(&format!("stage {point}: NOT RUN ({tier}): {why}"));
            false
        }
    }
}

// ---------------------------------------------------------------- stand-in

/// A private home and namespace with the stand-in as the VMM, a dummy
/// kernel and root filesystem (the stand-in boots nothing).
struct StandinRig {
    home: Home,
    /// `None` for the image build, which needs Debian's mirror and no taps:
    /// the daemon then runs in the host's namespace.
    ns: Option<banger_sys::netns::Netns>,
    daemon: std::cell::RefCell<Option<Child>>,
}

impl StandinRig {
    fn new(tag: &str, namespace: bool) -> StandinRig {
        let home = Home::new();
        home.write_config(&format!(
            "dns_listen = \"127.0.0.1:0\"\nvmm = \"firecracker\"\nfirecracker_bin = \"{STANDIN}\"\n\
             tap_pool_size = 2\n"
        ));
        let ns = namespace.then(|| {
            let ns = banger_sys::netns::Netns::create(tag).expect("network namespace");
            // The stand-in's "guest" answers ssh on its address only where
            // that address is local.
            ns.cmd("ip")
                .args(["route", "add", "local", "172.16.0.0/24", "dev", "lo"])
                .run()
                .expect("guest subnet local in the namespace");
            ns
        });
        let rig = StandinRig {
            home,
            ns,
            daemon: std::cell::RefCell::new(None),
        };
        rig.start_daemon(None);
        let fixtures = rig.home.path().join("fixtures");
        std::fs::create_dir_all(&fixtures).unwrap();
        let kernel = common::dummy_kernel(&fixtures);
        let rootfs = common::dummy_rootfs(&fixtures);
        common::assert_success(&rig.banger(&[
            "kernel",
            "import",
            "fc-dummy",
            "--from",
            kernel.to_str().unwrap(),
        ]));
        common::assert_success(&rig.banger(&[
            "image",
            "register",
            "--name",
            "fc-dummy",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--kernel-ref",
            "fc-dummy",
        ]));
        rig
    }

    fn log(&self) -> PathBuf {
        self.home.path().join("bangerd-crash.log")
    }

    fn kill_daemon(&self) {
        if let Some(mut d) = self.daemon.borrow_mut().take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Rig for StandinRig {
    fn home(&self) -> &Path {
        self.home.path()
    }

    fn banger(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(common::BANGER);
        cmd.args(args);
        run_bounded(cmd, CALL_TIMEOUT)
    }

    fn in_ns(&self, argv: &[&str]) -> String {
        let cmd = match &self.ns {
            Some(ns) => ns.cmd(argv[0]),
            None => banger_sys::Cmd::new(argv[0]),
        };
        cmd.args(&argv[1..])
            .run()
            .map(|o| o.stdout_str())
            .unwrap_or_default()
    }

    fn start_daemon(&self, crash_at: Option<&str>) {
        self.kill_daemon();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut cmd = self.home.command("ip");
                cmd.args(["netns", "exec", ns.name(), common::BANGERD]);
                cmd
            }
            None => self.home.command(common::BANGERD),
        };
        if let Some(point) = crash_at {
            cmd.env("BANGER_CRASH_AT", point);
        }
        cmd.stdout(Stdio::null()).stderr(log);
        *self.daemon.borrow_mut() = Some(cmd.spawn().expect("start bangerd"));
        let up = common::wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(self.home.socket()).is_ok()
        });
        assert!(up, "bangerd did not come up: {}", self.log().display());
    }

    fn crashed(&self, limit: Duration) -> bool {
        common::wait_child_exit(&self.daemon, limit)
    }

    fn create_args(&self) -> Vec<&'static str> {
        vec!["--image", "fc-dummy"]
    }
}

impl Drop for StandinRig {
    fn drop(&mut self) {
        if self.daemon.borrow().is_some() {
            let _ = self.banger(&["vm", "delete", VM]);
            self.home.stop_daemon();
        }
        self.kill_daemon();
        for pid in pids_mentioning(&self.home.path().join("state")) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn standin_missing() -> Option<String> {
    if !common::is_root() {
        return Some("needs root".into());
    }
    if let Err(e) = banger_sys::os::can_open_rw(Path::new("/dev/kvm")) {
        return Some(format!(
            "the stand-in path needs a read-write /dev/kvm ({e})"
        ));
    }
    for tool in ["ip", "nft", "mkfs.ext4", "debugfs", "ssh-keygen"] {
        if banger_sys::find_program(tool).is_none() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

#[test]
fn every_crash_point_leaves_nothing_behind() {
    if let Some(why) = standin_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    // `CRASH_POINTS=a,b` runs only those (when working on one).
    let only: Option<Vec<String>> = std::env::var("CRASH_POINTS")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect());
    let wanted = |p: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == p));
    let mut failed = Vec::new();
    for (i, point) in banger_daemon::CRASH_POINTS.iter().enumerate() {
        if !wanted(point) {
            continue;
        }
        if case(point) == Case::ImageBuild && image_build_missing().is_some() {
            report(&format!(
                "stage {point}: NOT RUN (image build): {}",
                image_build_missing().unwrap()
            ));
            continue;
        }
        for (j, case) in cases(point).into_iter().enumerate() {
            let rig = StandinRig::new(&format!("crash{i}-{j}"), case != Case::ImageBuild);
            if !check(&rig, point, case, "stand-in") {
                failed.push(*point);
            }
        }
    }
    // The real VMM, for the points where processes and a real guest matter.
    match common::vmenv::missing_prerequisite(&[common::vmenv::MINIMAL_IMAGE]) {
        Some(why) => report(&format!("QEMU crash points skipped: {why}")),
        None => {
            for point in QEMU_POINTS.iter().filter(|p| wanted(p)) {
                let env = QemuRig(VmEnv::start("crashq"));
                env.0.delete_all_vms();
                if !check(&env, point, case(point), "QEMU") {
                    failed.push(*point);
                }
            }
        }
    }
    assert!(failed.is_empty(), "crash points that leaked: {failed:?}");
}

/// The image build point builds the minimal image from Debian's mirror.
fn image_build_missing() -> Option<String> {
    if banger_sys::find_program("mmdebstrap").is_none() {
        return Some("mmdebstrap is not installed".into());
    }
    match std::env::var_os("BANGER_AGENT_BIN") {
        Some(p) if Path::new(&p).is_file() => None,
        _ => Some("BANGER_AGENT_BIN is not set (scripts/test builds it)".into()),
    }
}

// ---------------------------------------------------------------- QEMU

struct QemuRig(VmEnv);

impl Rig for QemuRig {
    fn home(&self) -> &Path {
        self.0.home.path()
    }

    fn banger(&self, args: &[&str]) -> Output {
        self.0.banger(args)
    }

    fn in_ns(&self, argv: &[&str]) -> String {
        common::stdout(&self.0.in_ns(argv))
    }

    fn start_daemon(&self, crash_at: Option<&str>) {
        self.0.kill_daemon();
        match crash_at {
            Some(point) => self.0.spawn_daemon_with(&[("BANGER_CRASH_AT", point)]),
            None => self.0.spawn_daemon_with(&[]),
        }
    }

    fn crashed(&self, limit: Duration) -> bool {
        self.0.wait_daemon_gone(limit)
    }

    fn create_args(&self) -> Vec<&'static str> {
        vec![
            "--image",
            common::vmenv::MINIMAL_IMAGE,
            "--memory",
            "512",
            "--vcpu",
            "1",
        ]
    }
}
