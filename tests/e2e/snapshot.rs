//! Snapshot scenarios of the end-to-end suite (SPEC §14.2): a running VM
//! snapshotted and restored twice; each copy answers, sees what the parent
//! had written, and has its own identity (host key, address, MAC,
//! machine-id, hostname, randomness); a write in one is seen nowhere else.

use std::time::Instant;

use crate::common::vmenv::{MINIMAL_IMAGE, VmEnv, report};
use crate::common::{assert_success, stderr, stdout};

const PARENT: &str = "snap-parent";
const COPIES: [&str; 2] = ["snap-copy-a", "snap-copy-b"];
const SNAPSHOT: &str = "snap-base";

/// What identifies a guest, read inside it: hostname, address, MAC,
/// machine-id, its ssh host key, and 32 bytes of fresh randomness.
fn identity(env: &VmEnv, vm: &str) -> Vec<String> {
    let out = env.exec(
        vm,
        "hostname; ip -o -4 addr show eth0 | awk '{print $4}'; cat /sys/class/net/eth0/address; \
         cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2; \
         head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo",
    );
    assert_success(&out);
    stdout(&out).lines().map(str::to_owned).collect()
}

fn snapshot_names(env: &VmEnv) -> Vec<String> {
    let out = env.banger(&["snapshot", "list", "--json"]);
    assert_success(&out);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub fn restore_twice(env: &VmEnv) {
    let out = env.banger(&[
        "vm",
        "create",
        "--name",
        PARENT,
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
    ]);
    assert_success(&out);
    assert_success(&env.exec(PARENT, "echo from-the-parent > /root/marker && sync"));
    let parent = identity(env, PARENT);

    let started = Instant::now();
    let out = env.banger(&["vm", "snapshot", PARENT, "--name", SNAPSHOT]);
    report(&format!(
        "  vm snapshot: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_success(&out);
    let progress = stderr(&out);
    assert!(
        progress.contains("saving memory and device state"),
        "{progress}"
    );
    // The parent runs on, and answers.
    assert_success(&env.exec(PARENT, "true"));

    let listed = env.banger(&["snapshot", "list", "--json"]);
    assert_success(&listed);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let ours = list
        .iter()
        .find(|s| s["name"] == SNAPSHOT)
        .unwrap_or_else(|| panic!("{SNAPSHOT} not listed: {list:?}"));
    assert_eq!(ours["source_vm"], PARENT, "{ours}");

    let mut seen = vec![parent.clone()];
    for copy in COPIES {
        let started = Instant::now();
        let out = env.banger(&["vm", "restore", SNAPSHOT, "--name", copy]);
        report(&format!(
            "  vm restore {copy}: {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        assert_success(&out);
        let progress = stderr(&out);
        assert!(
            progress.contains(&format!("from snapshot {SNAPSHOT}")),
            "{progress}"
        );
        let vm = env.show(copy);
        assert_eq!(vm["state"], "running", "{vm}");
        let marker = env.exec(copy, "cat /root/marker");
        assert_success(&marker);
        assert_eq!(stdout(&marker).trim(), "from-the-parent");
        let id = identity(env, copy);
        assert_eq!(id[0], copy, "hostname: {id:?}");
        assert_eq!(
            id[1].split('/').next().unwrap(),
            vm["runtime"]["ip"].as_str().unwrap(),
            "address: {id:?}"
        );
        for other in &seen {
            for (field, (mine, theirs)) in [
                "hostname",
                "address",
                "MAC",
                "machine-id",
                "host key",
                "randomness",
            ]
            .iter()
            .zip(id.iter().zip(other.iter()))
            {
                assert_ne!(
                    mine, theirs,
                    "{copy} shares its {field} with another copy or the parent"
                );
            }
        }
        // The pinned key is the one the guest serves: ssh gets in.
        let out = crate::ssh(env, copy, &["cat", "/root/marker"]);
        assert_success(&out);
        seen.push(id);
    }

    // A write in one copy reaches neither the other nor the parent.
    assert_success(&env.exec(COPIES[0], "echo only-a > /root/own && sync"));
    for other in [COPIES[1], PARENT] {
        let out = env.exec(other, "test ! -e /root/own");
        assert_success(&out);
    }

    // The snapshot outlives neither check: it is in use until its copies go.
    let refused = env.banger(&["snapshot", "delete", SNAPSHOT]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("delete them first"),
        "{}",
        stderr(&refused)
    );
    for vm in COPIES.iter().chain([&PARENT]) {
        assert_success(&env.banger(&["vm", "delete", vm]));
    }
    assert_success(&env.banger(&["snapshot", "delete", SNAPSHOT]));
    assert!(!snapshot_names(env).iter().any(|n| n == SNAPSHOT));
}

/// `vm fork -n 3` of a VM with a workspace: three running children, each
/// with its own address and name, each running `git status` in the
/// workspace it inherited; the fork's snapshot goes with the last child.
pub fn fork_with_workspace(env: &VmEnv) {
    const SOURCE: &str = "fork-src";
    let repo = crate::workspace::host_repo();
    let path = repo.path.to_str().unwrap();
    let out = env.banger(&[
        "vm",
        "run",
        "-d",
        "--name",
        SOURCE,
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
        path,
    ]);
    assert_success(&out);
    let started = Instant::now();
    let out = env.banger(&["vm", "fork", SOURCE, "-n", "3"]);
    report(&format!(
        "  vm fork -n 3: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_success(&out);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "one line per child: {lines:?}");
    let mut ips = vec![
        env.show(SOURCE)["runtime"]["ip"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    for i in 1..=3 {
        let child = format!("{SOURCE}-{i}");
        assert!(lines[i - 1].starts_with(&child), "{lines:?}");
        let vm = env.show(&child);
        assert_eq!(vm["state"], "running", "{vm}");
        let ip = vm["runtime"]["ip"].as_str().unwrap().to_owned();
        assert!(!ips.contains(&ip), "{child} shares the address {ip}");
        assert_eq!(env.dig(&format!("{child}.vm")), ip);
        ips.push(ip);
        let status = env.banger(&["vm", "exec", &child, "--", "git", "status", "--short"]);
        assert_success(&status);
        assert!(
            stdout(&status).contains("M a.txt"),
            "{child}: {}",
            stdout(&status)
        );
    }
    // The parent runs on.
    assert_success(&env.exec(SOURCE, "true"));
    for i in 1..=3 {
        assert_success(&env.banger(&["vm", "delete", &format!("{SOURCE}-{i}")]));
    }
    assert_success(&env.banger(&["vm", "delete", SOURCE]));
    let left: Vec<String> = snapshot_names(env)
        .into_iter()
        .filter(|n| n.starts_with("fork-"))
        .collect();
    assert!(left.is_empty(), "the fork's snapshot is left: {left:?}");
}
