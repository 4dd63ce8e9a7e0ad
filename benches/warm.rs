//! Warm starts (SPEC §14.2): `sudo -E cargo bench --bench warm`.
//!
//! For the minimal image and the default (systemd) image, in one run:
//! - cold `banger vm run --rm -- true` (`--cold`) against warm (restored
//!   from the warm snapshot the first run baked), their medians and ratio
//!   (goal at most 0.15 under TCG);
//! - `vm snapshot` of a running VM (memory and device state to a file, the
//!   disks copied) and `vm restore` of it to a running VM whose agent has
//!   confirmed its new identity;
//! - the host memory a restored VM adds: the resident set of its QEMU and
//!   its agent-mux sidecar;
//! - `vm fork -n 4` of a running VM (goal at most 2 s under TCG).
//!
//! Like the other benchmarks it needs root and the kernel and images that
//! tests/boot_tcg.rs builds into the e2e cache, says what is missing and
//! exits 0 without them. `BENCH_ROUNDS` (default 3) sets the rounds.

#[path = "../tests/common/mod.rs"]
mod common;
mod shared;

use std::process::ExitCode;
use std::time::Instant;

use common::vmenv::{self, FULL_IMAGE, MINIMAL_IMAGE, VmEnv};
use shared::{Fallible, median};

const VCPU: &str = "1";
const MEMORY_MIB: &str = "1024";
const DEFAULT_ROUNDS: usize = 3;
const GOAL: f64 = 0.15;

fn main() -> ExitCode {
    let skip = vmenv::missing_prerequisite(&[MINIMAL_IMAGE, FULL_IMAGE]);
    shared::main("warm", skip, run)
}

fn run() -> Fallible<()> {
    let rounds = shared::rounds(DEFAULT_ROUNDS)?;
    println!(
        "warm benchmark: {rounds} rounds, {VCPU} vCPU, {MEMORY_MIB} MiB, \
         `banger vm run --rm -- true` cold and warm"
    );
    let env = VmEnv::start("benchwarm");
    env.delete_all_vms();
    env.reconfigure("warm_cache = true\n");
    forget_warm(&env)?;
    for image in [MINIMAL_IMAGE, FULL_IMAGE] {
        println!();
        println!("== {image}");
        // The first run bakes the warm snapshot the warm rounds restore.
        let bake = vm_run(&env, image, false)?;
        println!("first run (cold, bakes): {bake:.2} s");
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let c = vm_run(&env, image, true)?;
            let w = vm_run(&env, image, false)?;
            println!("round {round}: cold {c:6.2} s | warm {w:6.2} s");
            cold.push(c);
            warm.push(w);
        }
        let (c, w) = (median(cold), median(warm));
        println!("median cold: {c:.2} s, median warm: {w:.2} s");
        println!("ratio warm/cold = {:.3} (goal <= {GOAL:.2})", w / c);
        snapshot_and_restore(&env, image)?;
    }
    forget_warm(&env)?;
    env.reconfigure("");
    Ok(())
}

fn forget_warm(env: &VmEnv) -> Fallible<()> {
    let out = env.banger(&["snapshot", "list", "--json"]);
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("snapshot list: {e}"))?;
    for s in all.iter().filter(|s| s["warm"] == true) {
        checked(
            env,
            &["snapshot", "delete", s["name"].as_str().unwrap_or("")],
        )?;
    }
    Ok(())
}

fn checked(env: &VmEnv, args: &[&str]) -> Fallible<std::process::Output> {
    let out = env.banger(args);
    if !out.status.success() {
        return Err(format!("banger {args:?} failed: {}", common::stderr(&out)));
    }
    Ok(out)
}

/// One `vm run --rm -- true`, timed from spawn to exit.
fn vm_run(env: &VmEnv, image: &str, cold: bool) -> Fallible<f64> {
    let mut args = vec![
        "vm", "run", "--rm", "--image", image, "--memory", MEMORY_MIB, "--vcpu", VCPU,
    ];
    if cold {
        args.push("--cold");
    }
    args.extend(["--", "true"]);
    let started = Instant::now();
    checked(env, &args)?;
    Ok(started.elapsed().as_secs_f64())
}

/// `vm snapshot` of a running VM, `vm restore` of it, and what the
/// restored VM's processes hold in memory.
fn snapshot_and_restore(env: &VmEnv, image: &str) -> Fallible<()> {
    let (vm, copy, snap) = ("bench-parent", "bench-copy", "bench-snap");
    checked(
        env,
        &[
            "vm", "create", "--cold", "--name", vm, "--image", image, "--memory", MEMORY_MIB,
            "--vcpu", VCPU,
        ],
    )?;
    let started = Instant::now();
    checked(env, &["vm", "snapshot", vm, "--name", snap])?;
    let taken = started.elapsed().as_secs_f64();
    let started = Instant::now();
    checked(env, &["vm", "restore", snap, "--name", copy])?;
    let restored = started.elapsed().as_secs_f64();
    let shown = checked(env, &["vm", "show", copy, "--json"])?;
    let vm_json: serde_json::Value =
        serde_json::from_slice(&shown.stdout).map_err(|e| format!("vm show: {e}"))?;
    let id = vm_json["id"].as_str().unwrap_or_default().to_owned();
    let rss = rss_kib_of(&env.vms_dir().join(&id));
    println!("vm snapshot (running VM to files): {taken:.2} s");
    println!("vm restore (files to a running VM with its new identity): {restored:.2} s");
    println!(
        "host memory of the restored VM (RSS of QEMU and its sidecar): {} MiB",
        rss / 1024
    );
    let started = Instant::now();
    checked(env, &["vm", "fork", vm, "-n", "4"])?;
    println!(
        "vm fork -n 4: {:.2} s (goal <= 2 s)",
        started.elapsed().as_secs_f64()
    );
    for i in 1..=4 {
        checked(env, &["vm", "delete", &format!("{vm}-{i}")])?;
    }
    for name in [copy, vm] {
        checked(env, &["vm", "delete", name])?;
    }
    checked(env, &["snapshot", "delete", snap])?;
    Ok(())
}

/// The summed resident set (KiB) of the processes whose command line names
/// `dir`: the VM's QEMU and sidecar (its log cappers too, which are small).
fn rss_kib_of(dir: &std::path::Path) -> u64 {
    vmenv::pids_mentioning(dir)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
