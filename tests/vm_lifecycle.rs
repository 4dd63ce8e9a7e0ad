//! The end-to-end suite (SPEC §6, §8, §13): the VM lifecycle for real, with
//! bangerd as root inside a network namespace this test creates and QEMU
//! under TCG (or Firecracker with `BANGER_E2E_VMM=firecracker` on a KVM
//! host), over the kernel and images `tests/boot_tcg.rs` builds into the
//! shared cache. Each scenario prints its name and result; a failing one
//! does not stop the others.
//!
//! Needs root, QEMU, dig and a static agent
//! (`BANGER_AGENT_BIN`, set by scripts/test).

mod common;
#[path = "e2e/snapshot.rs"]
mod snapshot;
#[path = "e2e/system_install.rs"]
mod system_install;
#[path = "e2e/warm.rs"]
mod warm;
#[path = "e2e/workspace.rs"]
mod workspace;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::vmenv::{
    FULL_IMAGE, MINIMAL_IMAGE, OWNER_GIT_NAME, SYNCED_DOTFILE, Suite, VmEnv, pids_mentioning,
    report,
};
use common::{assert_success, stderr, stdout};

#[test]
fn end_to_end_suite() {
    if let Some(why) = common::vmenv::missing_prerequisite(&[MINIMAL_IMAGE, FULL_IMAGE]) {
        report(&format!("skipped: {why}"));
        return;
    }
    let env = VmEnv::start("e2e");
    // VMs left by an interrupted earlier run.
    env.delete_all_vms();
    let mut suite = Suite::default();
    suite.scenario(
        "vm run --rm passes the command's status and leaves nothing",
        || vm_run_rm(&env),
    );
    suite.scenario(
        "create, modules load, exec, dns, ssh, stop/start keeps /root, daemon kill -9 adopts, delete leaves nothing",
        || lifecycle(&env),
    );
    suite.scenario(
        "two VMs get distinct addresses and reach each other",
        || two_vms(&env),
    );
    suite.scenario(
        "a VM whose VMM died with the daemon is cleaned up and starts again",
        || dead_vmm(&env),
    );
    suite.scenario(
        "vm create --no-start records the VM; its first start gives it its identity",
        || no_start(&env),
    );
    suite.scenario(
        "vm snapshot, then vm restore twice: each copy has the parent's files and its own identity",
        || snapshot::restore_twice(&env),
    );
    suite.scenario(
        "vm fork -n 3 of a VM with a workspace: each child runs git status in it",
        || snapshot::fork_with_workspace(&env),
    );
    suite.scenario(
        "warm cache: the first vm run bakes, the next restores, --cold boots, a new VMM re-bakes",
        || warm::warm_runs(&env),
    );
    suite.scenario(
        "vm run PATH -- CMD ships the repository with uncommitted work and runs CMD in it",
        || workspace::run_in_workspace(&env),
    );
    suite.scenario(
        "vm workspace export brings guest commits and edits back as a patch that applies",
        || workspace::export_round_trip(&env),
    );
    suite.scenario(
        "the default image boots systemd, answers exec and ssh, loads modules, runs Docker, bootstraps with mise",
        || systemd_image(&env),
    );
    suite.scenario(
        "system install inside the systemd image: both units start, status, sockets, restart, uninstall --purge leaves nothing",
        || system_install::install_in_systemd_guest(&env),
    );
    suite.finish();
}

fn create(env: &VmEnv, name: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "vm",
        "create",
        "--name",
        name,
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = env.banger(&args);
    report(&format!(
        "  vm create {name}: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_success(&out);
    out
}

/// Runs `ssh` as `vm ssh` does, from inside the namespace (where the
/// guest's address is routed).
fn ssh(env: &VmEnv, vm: &str, argv: &[&str]) -> Output {
    let mut cmd = env.home.command("ip");
    cmd.args([
        "netns",
        "exec",
        env.ns.name(),
        common::BANGER,
        "vm",
        "ssh",
        vm,
        "--",
    ])
    .args(argv);
    common::vmenv::run_bounded(cmd, Duration::from_secs(60))
}

/// What a deleted VM must not leave: its tap, NAT rule, lease, processes,
/// directory and known_hosts pins, each checked where it lives.
fn assert_nothing_left(env: &VmEnv, name: &str, id: &str, ip: &str, tap: Option<&str>) {
    if let Some(tap) = tap {
        let links = env.links();
        assert!(!links.contains(&format!("{tap}:")), "{tap} left:\n{links}");
    }
    let rules = stdout(&env.in_ns(&["nft", "list", "ruleset"]));
    assert!(!rules.contains(ip), "a rule for {ip} is left:\n{rules}");
    let vm_dir = env.vms_dir().join(id);
    assert!(
        pids_mentioning(&vm_dir).is_empty(),
        "a VMM or sidecar is left"
    );
    assert!(!vm_dir.exists(), "{} is left", vm_dir.display());
    let pins =
        std::fs::read_to_string(env.home.path().join("state/ssh/known_hosts")).unwrap_or_default();
    assert!(!pins.contains(&format!("{name}.vm")), "pins left:\n{pins}");
    let conn = rusqlite::Connection::open(env.home.db()).unwrap();
    let leases: i64 = conn
        .query_row(
            "SELECT count(*) FROM ip_leases WHERE holder = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leases, 0, "the address is still leased");
    assert_eq!(env.banger(&["vm", "show", name]).status.code(), Some(1));
}

/// `vm run --rm` of the minimal image as VM `e2e-run`, running `cmd`.
fn run_args<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "vm",
        "run",
        "--rm",
        "--name",
        "e2e-run",
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
        "--",
    ];
    args.extend_from_slice(cmd);
    args
}

/// [`run_args`] as a child with piped output, for the checks that act
/// while it runs.
fn spawn_run(env: &VmEnv, cmd: &[&str]) -> std::process::Child {
    env.home
        .command(common::BANGER)
        .args(run_args(cmd))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn vm_run_rm(env: &VmEnv) {
    let run = |cmd: &[&str]| {
        let args = run_args(cmd);
        let started = Instant::now();
        let out = env.banger(&args);
        report(&format!(
            "  vm run --rm -- {}: {:.1} s",
            cmd.join(" "),
            started.elapsed().as_secs_f64()
        ));
        out
    };
    let out = run(&["true"]);
    assert_success(&out);
    assert!(stderr(&out).starts_with("spec: "), "{}", stderr(&out));
    let out = run(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("still running"), "no hint with --rm");

    // Output is live: the first line is on our stdout while the guest
    // command still sleeps, not when it ends.
    let started = Instant::now();
    let mut child = spawn_run(env, &["sh", "-c", "echo first; sleep 20; echo second"]);
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout_pipe = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(300));
    let still_running = child.try_wait().unwrap().is_none();
    if first.is_err() {
        let _ = child.kill();
    }
    assert_eq!(first.as_deref(), Ok("first"), "the first line arrived");
    assert!(
        still_running,
        "`first` arrived only after the command ended"
    );
    let second = lines.recv_timeout(Duration::from_secs(120));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(second.as_deref(), Ok("second"), "{}", stderr(&out));
    report(&format!(
        "  vm run --rm -- sh -c 'echo first; sleep 20; echo second' (live output): {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // Ctrl-C while the command runs: the VM goes too, and the CLI says so.
    let child = spawn_run(env, &["sleep", "600"]);
    let running = common::wait_until(Duration::from_secs(240), || {
        std::thread::sleep(Duration::from_millis(300));
        let out = env.banger(&["vm", "show", "e2e-run", "--json"]);
        out.status.success() && stdout(&out).contains("\"running\"")
    });
    assert!(running, "the VM came up");
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted; deleting e2e-run"),
        "{}",
        stderr(&out)
    );

    let list = env.banger(&["vm", "list", "--json"]);
    assert_eq!(list.stdout, b"[]\n", "nothing left");
    let left: Vec<_> = std::fs::read_dir(env.vms_dir())
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "VM directories left: {left:?}");
}

fn lifecycle(env: &VmEnv) {
    const VM: &str = "e2e-one";
    let out = create(env, VM, &["--nat"]);
    for stage in ["waiting for the guest agent", "waiting for ssh", "running"] {
        assert!(stderr(&out).contains(stage), "{}", stderr(&out));
    }
    let vm = env.show(VM);
    assert_eq!(vm["state"], "running", "{vm}");
    let ip = vm["runtime"]["ip"].as_str().expect("an address").to_owned();
    let tap = vm["runtime"]["tap"].as_str().expect("a tap").to_owned();
    let id = vm["id"].as_str().unwrap().to_owned();
    let vm_dir = env.vms_dir().join(&id);
    assert!(vm_dir.join("work.ext4").is_file());
    // The minimal image has no module of its own either.
    modules_load(env, VM);
    let pins = std::fs::read_to_string(env.home.path().join("state/ssh/known_hosts")).unwrap();
    assert!(pins.contains(&format!("{VM}.vm,{ip}")), "{pins}");
    assert!(env.links().contains(&tap));
    let rules = stdout(&env.in_ns(&["nft", "list", "ruleset"]));
    assert!(
        rules.contains(&format!("banger-nat {ip}")),
        "--nat adds a rule for {ip}:\n{rules}"
    );
    // The guest's tap is fenced to its own address (and MAC).
    assert!(
        rules.contains(&format!("banger-guest {tap} {ip}")),
        "{tap} is fenced to {ip}:\n{rules}"
    );

    // Exec: output and exit status pass through; the hostname was set.
    let out = env.exec(VM, "echo hi; hostname; exit 7");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("hi\n{VM}\n"));
    let out = env.exec(VM, "ip -o -4 addr show eth0");
    assert!(stdout(&out).contains(&format!("{ip}/")), "{}", stdout(&out));
    // The work disk came with the owner's git identity and synced file.
    let out = env.exec(
        VM,
        &format!(
            "git config --global user.name; cat {SYNCED_DOTFILE}; stat -c %a {SYNCED_DOTFILE}"
        ),
    );
    assert_eq!(
        stdout(&out),
        format!("{OWNER_GIT_NAME}\nsynced from the owner's home\n640\n"),
        "{}",
        stderr(&out)
    );

    // DNS: the name answers while the VM runs.
    assert_eq!(env.dig(&format!("{VM}.vm")), ip);

    // ssh with banger's key and the host key pinned at create: ready the
    // moment create returned.
    let out = ssh(env, VM, &["cat", "/etc/hostname"]);
    assert_success(&out);
    assert_eq!(stdout(&out), format!("{VM}\n"));

    observe(env, VM);

    // NAT switched off and on while the VM runs.
    let rule_for_ip =
        || stdout(&env.in_ns(&["nft", "list", "ruleset"])).contains(&format!("banger-nat {ip}"));
    assert_success(&env.banger(&["vm", "set", VM, "--no-nat"]));
    assert!(!rule_for_ip(), "--no-nat removes the rule live");
    assert_success(&env.banger(&["vm", "set", VM, "--nat"]));
    assert!(rule_for_ip(), "--nat adds it back");
    let out = env.banger(&["vm", "set", VM, "--memory", "1024"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "memory changes need a stopped VM"
    );
    assert!(
        stderr(&out).contains(&format!("banger vm stop {VM}")),
        "{}",
        stderr(&out)
    );

    // Restart: a new boot of the same VM.
    let boot_id = || stdout(&env.exec(VM, "cat /proc/sys/kernel/random/boot_id"));
    let before = boot_id();
    let out = env.banger(&["vm", "restart", VM]);
    assert_success(&out);
    assert_eq!(stdout(&out), format!("{VM}: restarted\n"));
    assert_ne!(boot_id(), before, "the guest booted again");

    // Stop and start: the work disk (/root) keeps what was written.
    assert_success(&env.exec(VM, "echo kept > /root/marker"));
    let t = Instant::now();
    assert_success(&env.banger(&["vm", "stop", VM]));
    report(&format!("  vm stop: {:.1} s", t.elapsed().as_secs_f64()));
    let vm = env.show(VM);
    assert_eq!(vm["state"], "stopped", "{vm}");
    assert!(vm["runtime"]["tap"].is_null(), "the tap is released: {vm}");
    assert_eq!(env.dig(&format!("{VM}.vm")), "", "no name while stopped");
    assert!(pids_mentioning(&vm_dir).is_empty(), "no VMM after stop");
    assert_eq!(env.exec(VM, "true").status.code(), Some(1));
    // The work disk grows while the VM is stopped (never shrinks).
    assert_success(&env.banger(&["vm", "set", VM, "--disk-size", "9G"]));
    assert_eq!(
        env.banger(&["vm", "set", VM, "--disk-size", "8G"])
            .status
            .code(),
        Some(2),
        "shrinking is refused"
    );
    let t = Instant::now();
    assert_success(&env.banger(&["vm", "start", VM]));
    report(&format!("  vm start: {:.1} s", t.elapsed().as_secs_f64()));
    let out = env.exec(VM, "cat /root/marker");
    assert_success(&out);
    assert_eq!(stdout(&out), "kept\n");
    let out = env.exec(VM, "df -B1M --output=size /root | tail -1");
    let mib: u64 = stdout(&out).trim().parse().expect("df prints a size");
    assert!(
        mib > 8 * 1024 + 512,
        "the filesystem grew to ~9G: {mib} MiB"
    );

    // `kill -9` of bangerd: the VM keeps running, and the next daemon adopts
    // it (SPEC §6 reconcile) instead of killing it.
    env.restart_daemon();
    assert_eq!(env.show(VM)["state"], "running", "adopted, not stopped");
    let out = env.exec(VM, "cat /root/marker");
    assert_eq!(stdout(&out), "kept\n", "the adopted VM still answers");
    assert_eq!(env.dig(&format!("{VM}.vm")), ip, "its name is served again");

    // Kill, start, delete: nothing is left.
    assert_success(&env.banger(&["vm", "kill", VM]));
    assert_eq!(env.show(VM)["state"], "stopped");
    assert_success(&env.banger(&["vm", "start", VM]));
    let tap = env.show(VM)["runtime"]["tap"].as_str().unwrap().to_owned();
    assert_success(&env.banger(&["vm", "delete", VM]));
    assert_nothing_left(env, VM, &id, &ip, Some(&tap));
}

fn two_vms(env: &VmEnv) {
    // Both at once: SPEC §13 allows two VMs booting together on two cores.
    let spawn = |name: &str| {
        env.home
            .command(common::BANGER)
            .args([
                "vm",
                "create",
                "--name",
                name,
                "--image",
                MINIMAL_IMAGE,
                "--memory",
                "512",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("e2e-a"), spawn("e2e-b"));
    assert_success(&a.wait_with_output().unwrap());
    assert_success(&b.wait_with_output().unwrap());
    let ip_a = env.show("e2e-a")["runtime"]["ip"]
        .as_str()
        .unwrap()
        .to_owned();
    let ip_b = env.show("e2e-b")["runtime"]["ip"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(ip_a, ip_b);
    // Each reaches the other's sshd by address, over the bridge.
    for (from, to) in [("e2e-a", &ip_b), ("e2e-b", &ip_a)] {
        let probe = format!("exec 3<>/dev/tcp/{to}/22 && head -c 8 <&3");
        let out = env.banger(&["vm", "exec", from, "--", "bash", "-c", &probe]);
        assert_success(&out);
        assert_eq!(stdout(&out), "SSH-2.0-", "{from} reaches {to}");
    }
    // Several refs at once, reported in the order given.
    assert_success(&env.banger(&["vm", "delete", "e2e-b", "e2e-a"]));
    assert_eq!(env.banger(&["vm", "list", "--json"]).stdout, b"[]\n");
}

fn dead_vmm(env: &VmEnv) {
    const VM: &str = "e2e-dead";
    create(env, VM, &[]);
    let vm = env.show(VM);
    let id = vm["id"].as_str().unwrap().to_owned();
    let tap = vm["runtime"]["tap"].as_str().unwrap().to_owned();
    // The daemon dies, then the VM's processes: nobody saw them go.
    env.kill_daemon();
    let vm_dir = env.vms_dir().join(&id);
    for pid in pids_mentioning(&vm_dir) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(common::wait_until(Duration::from_secs(10), || {
        pids_mentioning(&vm_dir).is_empty()
    }));
    env.restart_daemon();
    let vm = env.show(VM);
    assert_eq!(vm["state"], "stopped", "{vm}");
    assert!(vm["runtime"]["tap"].is_null(), "{vm}");
    let links = env.links();
    assert!(!links.contains(&format!("{tap}:")), "{tap} left:\n{links}");
    assert_eq!(env.dig(&format!("{VM}.vm")), "");
    // It starts again from its disks (on a tap of the new daemon's pool,
    // whose names start over: the old pool went with the old daemon).
    assert_success(&env.banger(&["vm", "start", VM]));
    assert_success(&env.exec(VM, "true"));
    let tap = env.show(VM)["runtime"]["tap"].as_str().unwrap().to_owned();
    // Prune deletes what is not running, like delete.
    assert_success(&env.banger(&["vm", "stop", VM]));
    let out = env.banger(&["vm", "prune", "-f"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("deleted {VM}")),
        "{}",
        stdout(&out)
    );
    let ip = vm["runtime"]["ip"].as_str().unwrap();
    assert_nothing_left(env, VM, &id, ip, Some(&tap));
}

fn systemd_image(env: &VmEnv) {
    const VM: &str = "e2e-sysd";
    let started = Instant::now();
    let out = env.banger(&[
        "vm", "create", "--name", VM, "--image", FULL_IMAGE, "--memory", "1024",
    ]);
    report(&format!(
        "  vm create {VM} (systemd): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_success(&out);
    let out = env.exec(VM, "cat /proc/1/comm; hostname");
    assert_success(&out);
    assert_eq!(stdout(&out), format!("systemd\n{VM}\n"));
    let out = ssh(env, VM, &["systemctl", "is-active", "ssh"]);
    assert_success(&out);
    assert_eq!(stdout(&out), "active\n");
    modules_load(env, VM);
    let out = env.exec(VM, "nft list ruleset >/dev/null && echo nft ok");
    assert_success(&out);
    assert_eq!(stdout(&out), "nft ok\n");
    docker_runs(env, VM);
    let out = env.exec(VM, "mise --version");
    assert_success(&out);
    assert!(stdout(&out).starts_with("2026."), "{}", stdout(&out));
    mise_bootstrap(env, VM);
    assert_success(&env.exec(VM, "echo kept > /root/marker"));
    let t = Instant::now();
    assert_success(&env.banger(&["vm", "stop", VM]));
    report(&format!(
        "  vm stop (systemd): {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    assert_success(&env.banger(&["vm", "start", VM]));
    assert_eq!(stdout(&env.exec(VM, "cat /root/marker")), "kept\n");
    assert_success(&env.banger(&["vm", "delete", VM]));
}

/// The modules of the booted kernel load in the guest, whatever the image:
/// they come from the kernel's modules disk, not from the image.
fn modules_load(env: &VmEnv, vm: &str) {
    let out = env.exec(
        vm,
        "set -e; modprobe -a overlay br_netfilter veth tun loop fuse; \
         for m in overlay br_netfilter veth tun loop fuse; do grep -q \"^$m \" /proc/modules; done; \
         dir=/lib/modules/$(uname -r); findmnt -n -o FSTYPE $dir; findmnt -n -o OPTIONS $dir | cut -d, -f1",
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "ext4\nro\n", "{}", stderr(&out));
}

/// Docker as a user meets it: not running until first used (socket
/// activation), overlay2 storage, and an image made in the guest running
/// on the default bridge and reaching the VM's own address.
fn docker_runs(env: &VmEnv, vm: &str) {
    let out = env.exec(
        vm,
        "systemctl is-active docker.socket; systemctl is-active docker.service || true",
    );
    assert_eq!(stdout(&out), "active\ninactive\n", "{}", stderr(&out));
    let started = Instant::now();
    let out = env.exec(vm, "docker info --format '{{.Driver}}'");
    assert_success(&out);
    assert_eq!(stdout(&out), "overlay2\n");
    report(&format!(
        "  docker info (first use, starts dockerd): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let show = env.banger(&["vm", "show", vm, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let ip = shown["runtime"]["ip"].as_str().unwrap().to_owned();
    // An image with bash and its libraries, built FROM scratch in the guest
    // (no registry needed); the container reads the VM's sshd banner.
    let script = format!(
        "set -e; d=$(mktemp -d); mkdir -p $d/root/bin; cp -L /bin/bash $d/root/bin/; \
         for lib in $(ldd /bin/bash | grep -o '/[^ ]*'); do cp -L --parents $lib $d/root/; done; \
         printf 'FROM scratch\\nCOPY root/ /\\n' > $d/Dockerfile; \
         docker build -q -t banger-e2e-probe $d >/dev/null; \
         docker run --rm banger-e2e-probe /bin/bash -c \
           'exec 3<>/dev/tcp/{ip}/22; read -r banner <&3; echo \"${{banner%%_*}}\"'"
    );
    let started = Instant::now();
    let out = env.exec(vm, &script);
    assert_success(&out);
    assert_eq!(stdout(&out), "SSH-2.0-OpenSSH\n", "{}", stderr(&out));
    report(&format!(
        "  docker build FROM scratch + docker run on the default bridge: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// SPEC §10's tooling bootstrap with the image's mise: a repository with a
/// `.mise.toml` is trusted and installed when its workspace is prepared
/// (which needs NAT), and mise then applies it in the workspace. The file
/// asks for an environment variable, not a tool: the test network ends at
/// the host.
fn mise_bootstrap(env: &VmEnv, vm: &str) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("tooled");
    std::fs::create_dir(&repo).unwrap();
    common::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.join(".mise.toml"),
        "[env]\nBANGER_E2E_MISE = \"from-mise\"\n",
    )
    .unwrap();
    common::git(&repo, &["add", "--all"]);
    common::git(
        &repo,
        &[
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.com",
            "commit",
            "--quiet",
            "-m",
            "tools",
        ],
    );
    let repo_arg = repo.to_str().unwrap();
    let refused = env.banger(&["vm", "workspace", "prepare", vm, repo_arg]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--nat"), "{}", stderr(&refused));
    assert_success(&env.banger(&["vm", "set", vm, "--nat"]));
    let out = env.banger(&["vm", "workspace", "prepare", vm, repo_arg]);
    assert_success(&out);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("tools installed"), "{said}");
    let out = env.banger(&["vm", "exec", vm, "--", "mise", "env", "-s", "bash"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("BANGER_E2E_MISE=from-mise"),
        "{}",
        stdout(&out)
    );
}

/// `vm ports`, `vm stats` and `vm logs` of a running minimal VM.
fn observe(env: &VmEnv, vm: &str) {
    let out = env.banger(&["vm", "ports", vm, "--json"]);
    assert_success(&out);
    let ports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ssh = ports[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 22 && p["proto"] == "tcp")
        .unwrap_or_else(|| panic!("sshd is listed: {ports}"))
        .clone();
    assert_eq!(ssh["endpoint"], format!("{vm}.vm:22"));
    assert_eq!(ssh["reachable"], true);
    assert!(ssh["http"].is_null(), "sshd does not answer HTTP: {ssh}");

    let out = env.banger(&["vm", "stats", vm, "--json"]);
    assert_success(&out);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["state"], "running", "{stats}");
    assert!(stats["vmm"]["rss_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["vmm"]["cpu_seconds"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert!(
        stats["guest"]["uptime_s"].as_f64().unwrap() > 0.0,
        "{stats}"
    );

    assert_success(&env.exec(vm, "echo e2e-console-marker > /dev/console"));
    let out = env.banger(&["vm", "logs", vm]);
    assert_success(&out);
    let logs = stdout(&out);
    assert!(logs.contains("==> serial console"), "{logs}");
    assert!(logs.contains("e2e-console-marker"), "{logs}");
}

fn no_start(env: &VmEnv) {
    const VM: &str = "e2e-later";
    let out = create(env, VM, &["--no-start"]);
    assert!(!stderr(&out).contains("launching"), "{}", stderr(&out));
    let vm = env.show(VM);
    assert_eq!(vm["state"], "created", "{vm}");
    assert!(vm["runtime"]["tap"].is_null(), "no tap before a boot: {vm}");
    let id = vm["id"].as_str().unwrap();
    let vm_dir = env.vms_dir().join(id);
    assert!(vm_dir.join("work.ext4").is_file(), "the disks are ready");
    assert!(pids_mentioning(&vm_dir).is_empty(), "nothing runs");
    let out = env.banger(&["vm", "start", VM]);
    assert_success(&out);
    assert!(stderr(&out).contains("host key pinned"), "{}", stderr(&out));
    let out = ssh(env, VM, &["cat", "/etc/hostname"]);
    assert_success(&out);
    assert_eq!(stdout(&out), format!("{VM}\n"));
    // A second start keeps the identity it was given.
    let out = env.banger(&["vm", "restart", VM]);
    assert_success(&out);
    assert!(
        !stderr(&out).contains("host key pinned"),
        "{}",
        stderr(&out)
    );
    let out = ssh(env, VM, &["true"]);
    assert_success(&out);
    assert_success(&env.banger(&["vm", "delete", VM]));
}
