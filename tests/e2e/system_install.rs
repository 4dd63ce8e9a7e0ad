//! `banger system install` for real: inside a VM of banger's systemd image
//! (these hosts have no systemd as PID 1), the freshly built binaries are
//! copied in, installed for a new account, and both units must start,
//! pass `systemd-analyze verify`, report healthy in `system status`, have
//! sockets with the modes of SPEC §2, serve the owner, survive `system
//! restart`, and leave nothing behind after `uninstall --purge`.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Instant;

use crate::common::vmenv::{FULL_IMAGE, VmEnv, report};
use crate::common::{self, assert_success, stderr, stdout};

const VM: &str = "e2e-install";
const OWNER: &str = "tester";

/// Every path the install writes; none may be left after `--purge`.
const INSTALLED: &[&str] = &[
    "/usr/local/bin/banger",
    "/usr/local/bin/bangerd",
    "/usr/local/lib/banger",
    "/etc/banger",
    "/etc/systemd/system/bangerd.service",
    "/etc/systemd/system/bangerd-root.service",
    "/var/lib/banger",
    "/var/cache/banger",
    "/var/cache/banger-root",
    "/run/banger",
    "/run/banger-root",
    "/usr/share/bash-completion/completions/banger",
    "/usr/local/share/zsh/site-functions/_banger",
    "/usr/share/fish/vendor_completions.d/banger.fish",
    "/usr/local/share/man/man1/banger.1",
    "/home/tester/.config/banger",
    "/home/tester/.local/state/banger",
    "/var/log/banger-install.log",
];

/// `program` copied into the guest at `to` through `vm ssh`'s stdin;
/// stripped first when `strip` is there (debug builds carry ~100 MB of
/// debug info the test does not need).
fn ship(env: &VmEnv, program: &Path, to: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let small = scratch.path().join("bin");
    let stripped = std::process::Command::new("strip")
        .arg("-o")
        .arg(&small)
        .arg(program)
        .status()
        .is_ok_and(|s| s.success());
    let source = if stripped { small.as_path() } else { program };
    // `timeout`, not run_bounded: that one gives the command no stdin.
    let out = env
        .home
        .command("timeout")
        .args([
            "300",
            "ip",
            "netns",
            "exec",
            env.ns.name(),
            common::BANGER,
            "vm",
            "ssh",
            VM,
            "--",
        ])
        .arg(format!("cat > {to} && chmod 755 {to} && stat -c %s {to}"))
        .stdin(Stdio::from(std::fs::File::open(source).unwrap()))
        .output()
        .unwrap();
    assert_success(&out);
    let size = std::fs::metadata(source).unwrap().len();
    assert_eq!(stdout(&out).trim(), size.to_string(), "{to} arrived whole");
}

fn guest(env: &VmEnv, script: &str) -> Output {
    env.exec(VM, script)
}

fn guest_ok(env: &VmEnv, script: &str) -> String {
    let out = guest(env, script);
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

pub fn install_in_systemd_guest(env: &VmEnv) {
    let out = env.banger(&[
        "vm", "create", "--name", VM, "--image", FULL_IMAGE, "--memory", "1024",
    ]);
    assert_success(&out);
    let t = Instant::now();
    guest_ok(
        env,
        &format!("mkdir -p /root/payload && useradd -m -s /bin/bash {OWNER}"),
    );
    ship(env, Path::new(common::BANGER), "/root/payload/banger");
    ship(env, Path::new(common::BANGERD), "/root/payload/bangerd");
    let agent = std::env::var("BANGER_AGENT_BIN").unwrap();
    ship(env, Path::new(&agent), "/root/payload/banger-agent");
    report(&format!(
        "  binaries copied in: {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let out = guest_ok(
        env,
        &format!(
            "/root/payload/banger system install --owner {OWNER} --agent /root/payload/banger-agent 2>&1"
        ),
    );
    report(&format!(
        "  system install: {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    // A line per step, each ending in ok; no package manager noise.
    assert!(out.lines().count() < 15, "{out}");
    assert!(out.contains("Installed."), "{out}");
    assert!(!out.contains("failed"), "{out}");

    guest_ok(
        env,
        "systemd-analyze verify /etc/systemd/system/bangerd.service /etc/systemd/system/bangerd-root.service",
    );
    let status = guest_ok(env, "banger system status");
    assert!(!status.contains("PROBLEM"), "{status}");
    // Modes and owners of SPEC §2, read with stat, not from banger.
    let stat = guest_ok(
        env,
        "stat -c '%n %U %a' /run/banger /run/banger/bangerd.sock /run/banger-root /run/banger-root/bangerd-root.sock",
    );
    assert_eq!(
        stat,
        format!(
            "/run/banger {OWNER} 700\n/run/banger/bangerd.sock {OWNER} 600\n\
             /run/banger-root root 711\n/run/banger-root/bangerd-root.sock {OWNER} 600\n"
        )
    );
    let users = guest_ok(
        env,
        "stat -c %U /proc/$(systemctl show -p MainPID --value bangerd.service) \
         /proc/$(systemctl show -p MainPID --value bangerd-root.service)",
    );
    assert_eq!(users, format!("{OWNER}\nroot\n"));
    // The owner uses it without sudo; another account cannot.
    let ping = guest_ok(env, &format!("su {OWNER} -c 'banger daemon ping'"));
    assert!(ping.contains("bangerd"), "{ping}");
    let out = guest(env, "useradd -m other && su other -c 'banger daemon ping'");
    assert!(!out.status.success(), "a stranger reached the daemon");
    // The owner's doctor checks the install: every row about it passes
    // (rows about this guest's missing KVM may fail; they are not the install).
    let out = guest(env, &format!("su {OWNER} -c 'banger doctor --json'"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stdout(&out)));
    let rows = report["checks"].as_array().unwrap();
    for name in [
        "install.toml",
        "bangerd-root.service",
        "bangerd.service",
        "daemon socket",
        "helper socket",
        "root helper",
        "owner",
    ] {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no doctor row {name}: {report}"));
        assert_eq!(row["status"], "pass", "{row}");
    }
    // Completions and man pages are where the shells and man look.
    guest_ok(
        env,
        "test -s /usr/share/bash-completion/completions/banger && test -s /usr/local/share/man/man1/banger-vm-run.1",
    );

    let before = guest_ok(env, "systemctl show -p MainPID --value bangerd.service");
    guest_ok(env, "banger system restart");
    let after = guest_ok(env, "systemctl show -p MainPID --value bangerd.service");
    assert_ne!(before, after, "the daemon was not restarted");
    let status = guest_ok(env, "banger system status");
    assert!(!status.contains("PROBLEM"), "{status}");

    let out = guest_ok(env, "/root/payload/banger system uninstall --purge");
    assert!(out.contains("uninstalled"), "{out}");
    let left = guest(
        env,
        &format!(
            "for p in {}; do test -e $p && echo $p; done; systemctl list-unit-files 'bangerd*' --no-legend",
            INSTALLED.join(" ")
        ),
    );
    assert_eq!(stdout(&left), "", "left behind after uninstall --purge");
    let procs = guest_ok(
        env,
        "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^bangerd' || true",
    );
    assert_eq!(procs.trim(), "0", "a bangerd process is left");
    assert_success(&env.banger(&["vm", "delete", VM]));
}
