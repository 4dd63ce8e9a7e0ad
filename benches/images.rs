//! Where the default image's boot goes (issue: a faster systemd boot).
//!
//! `sudo -E cargo bench --bench images` times `banger vm run --rm -- true`
//! with the default image (`debian-bookworm`: systemd, sshd, Docker) and the
//! minimal one (banger's agent as PID 1) in the same run, alternating them
//! round by round so both see the same machine, and prints both medians and
//! their ratio (the goal is at most 2). Then it boots one default-image VM
//! and prints what systemd says about its boot: `systemd-analyze`, the ten
//! slowest units (`blame`) and the `critical-chain` to `multi-user.target`.
//!
//! Like the vm_run benchmark it needs root and the kernel and images that
//! tests/boot_tcg.rs builds into the e2e cache, and says what is missing and
//! exits 0 without them. `BENCH_ROUNDS` (default 3) sets the rounds.

#[path = "../tests/common/mod.rs"]
mod common;
mod shared;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::vmenv::{self, FULL_IMAGE, MINIMAL_IMAGE, VmEnv};

const VCPU: &str = "1";
const MEMORY_MIB: &str = "1024";
const DEFAULT_ROUNDS: usize = 3;
const GOAL: f64 = 2.0;
const VM: &str = "bench-boot";

use shared::{Fallible, median};

fn main() -> ExitCode {
    let skip = vmenv::missing_prerequisite(&[MINIMAL_IMAGE, FULL_IMAGE]);
    shared::main("images", skip, run)
}

fn run() -> Fallible<()> {
    let rounds = shared::rounds(DEFAULT_ROUNDS)?;
    println!(
        "images benchmark: {rounds} rounds, {VCPU} vCPU, {MEMORY_MIB} MiB, `banger vm run --rm -- true`"
    );
    let env = VmEnv::start("benchimg");
    env.delete_all_vms();
    let (mut full, mut minimal) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let f = vm_run(&env, FULL_IMAGE)?;
        let m = vm_run(&env, MINIMAL_IMAGE)?;
        println!("round {round}: {FULL_IMAGE} {f:6.2} s | {MINIMAL_IMAGE} {m:6.2} s");
        full.push(f);
        minimal.push(m);
    }
    let (f, m) = (median(full), median(minimal));
    println!();
    println!("median {FULL_IMAGE}: {f:.2} s");
    println!("median {MINIMAL_IMAGE}: {m:.2} s");
    println!("ratio default/minimal = {:.2} (goal <= {GOAL:.2})", f / m);
    println!();
    boot_report(&env)
}

/// One `vm run --rm -- true`, timed from spawn to exit.
fn vm_run(env: &VmEnv, image: &str) -> Fallible<f64> {
    let started = Instant::now();
    let out = env.banger(&[
        "vm", "run", "--rm", "--image", image, "--memory", MEMORY_MIB, "--vcpu", VCPU, "--", "true",
    ]);
    if !out.status.success() {
        return Err(format!(
            "vm run --image {image} failed: {}",
            common::stderr(&out)
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Boots one default-image VM and prints systemd's account of its boot.
fn boot_report(env: &VmEnv) -> Fallible<()> {
    let out = env.banger(&[
        "vm", "create", "--name", VM, "--image", FULL_IMAGE, "--memory", MEMORY_MIB, "--vcpu", VCPU,
    ]);
    if !out.status.success() {
        return Err(format!("vm create failed: {}", common::stderr(&out)));
    }
    // systemd finishes its boot a little after sshd answers.
    let settled = common::wait_until(Duration::from_secs(60), || {
        let out = env.exec(
            VM,
            "systemctl is-system-running --wait >/dev/null 2>&1; true",
        );
        out.status.success()
    });
    let report = [
        ("systemd-analyze", "systemd-analyze"),
        (
            "slowest units (systemd-analyze blame | head -10)",
            "systemd-analyze blame | head -10",
        ),
        (
            "critical chain (systemd-analyze critical-chain multi-user.target)",
            "systemd-analyze critical-chain multi-user.target",
        ),
    ];
    for (title, script) in report {
        let out = env.exec(VM, script);
        println!("== {title}");
        print!("{}", common::stdout(&out));
        if !out.status.success() {
            println!(
                "(exit {:?}: {})",
                out.status.code(),
                common::stderr(&out).trim()
            );
        }
    }
    if !settled {
        println!("(systemd had not finished booting after 60 s)");
    }
    let out = env.banger(&["vm", "delete", VM]);
    if !out.status.success() {
        return Err(format!("vm delete failed: {}", common::stderr(&out)));
    }
    Ok(())
}
