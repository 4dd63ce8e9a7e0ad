//! The warm cache in the end-to-end suite (SPEC §14.2): the first
//! `vm run --rm -- true` of a kind of VM boots cold and bakes a warm
//! snapshot; the next restores it and leaves nothing behind but the
//! snapshot; `--cold` boots; a changed VMM binary misses the old snapshot,
//! boots cold and bakes a new one.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use crate::common::vmenv::{MINIMAL_IMAGE, VmEnv, report};
use crate::common::{assert_success, stderr, stdout};

fn warm_snapshots(env: &VmEnv) -> Vec<serde_json::Value> {
    let out = env.banger(&["snapshot", "list", "--json"]);
    assert_success(&out);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter().filter(|s| s["warm"] == true).collect()
}

fn forget_warm(env: &VmEnv) {
    for s in warm_snapshots(env) {
        assert_success(&env.banger(&["snapshot", "delete", s["name"].as_str().unwrap()]));
    }
}

/// `vm run --rm -- true` with the given flags; its progress lines.
fn run_true(env: &VmEnv, label: &str, flags: &[&str]) -> String {
    let mut args = vec![
        "vm",
        "run",
        "--rm",
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
    ];
    args.extend_from_slice(flags);
    args.extend(["--", "true"]);
    let started = Instant::now();
    let out = env.banger(&args);
    report(&format!(
        "  vm run --rm -- true ({label}): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_success(&out);
    let list = env.banger(&["vm", "list", "--json"]);
    assert_eq!(stdout(&list).trim(), "[]", "vm run --rm left a VM");
    stderr(&out)
}

/// Puts the suite's own config back however the scenario ends, so a
/// failure here does not become the next scenario's.
struct OwnConfig<'a>(&'a VmEnv);

impl Drop for OwnConfig<'_> {
    fn drop(&mut self) {
        // Best effort, and never a panic while one may be unwinding.
        let out = self.0.banger(&["snapshot", "list", "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for s in all.iter().filter(|s| s["warm"] == true) {
            let _ = self
                .0
                .banger(&["snapshot", "delete", s["name"].as_str().unwrap_or_default()]);
        }
        self.0.reconfigure("");
    }
}

pub fn warm_runs(env: &VmEnv) {
    let _restore = OwnConfig(env);
    env.reconfigure("warm_cache = true\n");
    forget_warm(env);

    let first = run_true(env, "first: cold, bakes", &[]);
    assert!(first.contains("cold boot"), "{first}");
    assert!(first.contains("baking warm snapshot"), "{first}");
    let baked = warm_snapshots(env);
    assert_eq!(baked.len(), 1, "{baked:?}");

    let second = run_true(env, "warm", &[]);
    let name = baked[0]["name"].as_str().unwrap();
    assert!(
        second.contains(&format!("restored from warm snapshot {name}")),
        "{second}"
    );
    assert!(!second.contains("cold boot"), "{second}");
    // Nothing of the run is left; the snapshot is, and nothing uses it.
    let after = warm_snapshots(env);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["used_by"], serde_json::json!([]));

    let cold = run_true(env, "--cold", &["--cold"]);
    assert!(!cold.contains("restored from warm snapshot"), "{cold}");
    assert!(!cold.contains("baking"), "{cold}");

    // Another VMM program (a wrapper that runs the same QEMU: Debian's
    // QEMU loads its accelerator modules only from beside its own path, so
    // a copy elsewhere would not run): the key changes, so the next run
    // boots cold and bakes again.
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-system-x86_64");
    let real = banger_sys::find_program("qemu-system-x86_64").unwrap();
    std::fs::write(
        &qemu,
        format!("#!/bin/sh\nexec {} \"$@\"\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.reconfigure(&format!(
        "warm_cache = true\nqemu_bin = \"{}\"\n",
        qemu.display()
    ));
    let upgraded = run_true(env, "new VMM: cold, bakes", &[]);
    assert!(upgraded.contains("cold boot"), "{upgraded}");
    assert!(upgraded.contains("baking warm snapshot"), "{upgraded}");
    assert_eq!(warm_snapshots(env).len(), 2);
    let again = run_true(env, "new VMM: warm", &[]);
    assert!(again.contains("restored from warm snapshot"), "{again}");
}
