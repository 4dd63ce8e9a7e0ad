//! What banger adds to a VM's life (issue 5, item 6): in one run, the wall
//! time of `banger vm run --rm -- true` divided by a bare
//! `qemu-system-x86_64` boot of the same kernel and disk to ssh-ready and
//! poweroff (goal <= 1.10), and the time of each create stage.
//!
//! `sudo -E cargo bench --bench vm_run` with `BANGER_AGENT_BIN` set (the
//! static agent: `crates/agent/build-static.sh`) and the end-to-end cache
//! built (`tests/boot_tcg.rs`). Without root or a prerequisite it says why
//! and exits 0. `BENCH_ROUNDS` (default 3) sets the number of rounds; each
//! round times one banger run, then one bare boot.
//!
//! Figures, not a test: the goal is printed, never asserted. The exit
//! status is non-zero only when something failed to run.
//!
//! The two measurements:
//! - banger: the daemon is already running (in its own network namespace,
//!   over the cached home, as the end-to-end suite runs it); timed is the CLI
//!   process from spawn to exit: create (every stage, up to ssh answering),
//!   `true` through the agent, delete. Each progress line on the CLI's
//!   stderr is timestamped on arrival, which gives each stage's duration.
//! - bare: the same `qemu-system-x86_64` binary, kernel, initramfs, disk
//!   content, vCPUs, memory, machine and accelerator (read from the command
//!   line of banger's own QEMU in round 1, so the baseline follows whatever
//!   banger chose, including `tsc_early_khz=`), started by hand; timed from
//!   spawn until sshd's banner arrives through a user-networking port
//!   forward, then Ctrl-Alt-Del over QMP until QEMU exits. The disk is a
//!   private copy of the image with an ssh host key already in /etc/ssh
//!   (what banger's create provides), made before the clock starts.

#[path = "../tests/common/mod.rs"]
mod common;
mod shared;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use banger_image::{Entry, Ext4Image};
use common::vmenv::{self, KERNEL, MINIMAL_IMAGE, VmEnv};

/// Bounds each timed run (and each step of the bare boot) as a whole.
const TIMEOUT: Duration = Duration::from_secs(120);
const VCPU: u32 = 1;
const MEMORY_MIB: u32 = 512;
const DEFAULT_ROUNDS: usize = 3;
/// The bare boot's ssh probe (see [`wait_for_ssh_banner`]): the pause
/// after a refused attempt, how long the newest attempt may hang before
/// another starts beside it, and how many may be open at once.
const SSH_RETRY: Duration = Duration::from_millis(50);
const SSH_OVERLAP_AFTER: Duration = Duration::from_secs(1);
const SSH_MAX_IN_FLIGHT: usize = 3;
/// How often a running child is checked for exit: the resolution of the
/// end of each timing.
const POLL: Duration = Duration::from_millis(5);
const GOAL: f64 = 1.10;

use shared::{Fallible, median};

fn main() -> ExitCode {
    shared::main("vm_run", skip_reason(), run)
}

fn skip_reason() -> Option<String> {
    if let Some(why) = vmenv::missing_prerequisite(&[MINIMAL_IMAGE]) {
        return Some(why);
    }
    if vmenv::vmm() == "firecracker" {
        return Some("BANGER_E2E_VMM=firecracker: the bare baseline is a QEMU boot".into());
    }
    ["ssh-keygen", "debugfs", "cp"]
        .into_iter()
        .find(|tool| banger_sys::find_program(tool).is_none())
        .map(|tool| format!("{tool} is not installed"))
}

fn run() -> Fallible<()> {
    let rounds = shared::rounds(DEFAULT_ROUNDS)?;
    println!(
        "vm_run benchmark: {rounds} rounds, {VCPU} vCPU, {MEMORY_MIB} MiB, image {MINIMAL_IMAGE}, kernel {KERNEL}"
    );
    // Takes the shared e2e lock first: nothing else boots VMs or rewrites
    // the cache while this runs.
    let env = VmEnv::start("bench");
    let work = tempfile::Builder::new()
        .prefix("bvm")
        .tempdir_in("/tmp")
        .map_err(|e| format!("temporary directory: {e}"))?;
    let bare = BareSetup::prepare(work.path())?;

    let mut banger_runs: Vec<BangerRun> = Vec::new();
    let mut bare_runs: Vec<BareRun> = Vec::new();
    let mut shape: Option<QemuShape> = None;
    for round in 1..=rounds {
        let b = banger_round(&env)?;
        if shape.is_none() {
            shape = Some(match &b.qemu_argv {
                Some(argv) => {
                    println!("banger's QEMU command line: {}", argv.join(" "));
                    QemuShape::from_banger(argv)?
                }
                None => return Err("banger's QEMU process was not found while the VM ran".into()),
            });
        }
        let shape = shape.as_ref().expect("set above");
        let q = bare.boot(shape, round)?;
        println!(
            "round {round}: banger {:6.2} s (create {:.2} s) | bare {:6.2} s (ssh-ready {:.2} s)",
            b.total.as_secs_f64(),
            b.create().map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
            q.total.as_secs_f64(),
            q.ssh_ready.as_secs_f64()
        );
        banger_runs.push(b);
        bare_runs.push(q);
    }

    let banger_median = median(banger_runs.iter().map(|r| r.total.as_secs_f64()).collect());
    let bare_median = median(bare_runs.iter().map(|r| r.total.as_secs_f64()).collect());
    let ssh_median = median(
        bare_runs
            .iter()
            .map(|r| r.ssh_ready.as_secs_f64())
            .collect(),
    );
    println!();
    println!("median banger (vm run --rm -- true):        {banger_median:6.2} s");
    println!(
        "median bare QEMU (spawn, ssh-ready, poweroff): {bare_median:6.2} s (ssh-ready {ssh_median:.2} s)"
    );
    println!(
        "ratio banger/bare = {:.2} (goal <= {GOAL:.2})",
        banger_median / bare_median
    );
    println!();
    print_stage_table(&banger_runs);
    Ok(())
}

// ---------------------------------------------------------------- banger

/// One `banger vm run`: its total time and each stderr line's arrival.
struct BangerRun {
    total: Duration,
    /// (offset from spawn, line), in order.
    lines: Vec<(Duration, String)>,
    qemu_argv: Option<Vec<String>>,
}

impl BangerRun {
    /// Spawn until the `running` stage line: the create as the user sees it.
    fn create(&self) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.trim() == "running")
            .map(|(t, _)| *t)
    }
}

fn banger_round(env: &VmEnv) -> Fallible<BangerRun> {
    let (vcpu, mem) = (VCPU.to_string(), MEMORY_MIB.to_string());
    let mut cmd = env.home.command(common::BANGER);
    cmd.args([
        "vm",
        "run",
        "--rm",
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        &mem,
        "--vcpu",
        &vcpu,
        "--",
        "true",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());

    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", common::BANGER))?;
    let mut child = Reaped::new(child);
    let stderr = child.0.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });

    let mut lines: Vec<(Duration, String)> = Vec::new();
    let mut qemu_argv = None;
    let mut launched = false;
    let status = loop {
        while let Ok((at, line)) = rx.try_recv() {
            // The line after "launching QEMU" comes once QEMU runs: one
            // look at /proc then (not a polling loop, which would load the
            // two cores the guest boots on).
            if launched && qemu_argv.is_none() {
                qemu_argv = find_qemu_argv(&env.vms_dir());
            }
            launched |= line.trim_start().starts_with("launching QEMU");
            lines.push((at - started, line));
        }
        if let Some(status) = child.0.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            return Err(format!(
                "banger vm run did not finish within {TIMEOUT:?}; stderr so far:\n{}",
                joined(&lines)
            ));
        }
        std::thread::sleep(POLL);
    };
    let total = started.elapsed();
    // The rest of stderr; bounded, in case something the CLI started holds
    // the pipe open.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok((at, line)) =
        rx.recv_timeout(drain_until.saturating_duration_since(Instant::now()))
    {
        lines.push((at - started, line));
    }
    drop(reader);
    if !status.success() {
        return Err(format!(
            "banger vm run exited with {status}; stderr:\n{}",
            joined(&lines)
        ));
    }
    Ok(BangerRun {
        total,
        lines,
        qemu_argv,
    })
}

fn joined(lines: &[(Duration, String)]) -> String {
    lines
        .iter()
        .map(|(t, l)| format!("  [{:7.3} s] {l}\n", t.as_secs_f64()))
        .collect()
}

/// The command line of the QEMU whose arguments name something under the
/// daemon's VM directory.
fn find_qemu_argv(vms_dir: &Path) -> Option<Vec<String>> {
    vmenv::pids_mentioning(vms_dir).into_iter().find_map(|pid| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let program = Path::new(argv.first()?).file_name()?.to_str()?;
        program.starts_with("qemu-system").then_some(argv)
    })
}

/// Stage durations, median over rounds: each line lasts until the next one
/// (the last until the CLI exits). Before `running` the lines are create's
/// stages; `running` lasts while `true` runs through the agent; the lines
/// after it are the `--rm` delete's.
fn print_stage_table(runs: &[BangerRun]) {
    let mut order: Vec<String> = Vec::new();
    let mut samples: HashMap<String, Vec<f64>> = HashMap::new();
    for run in runs {
        let mut at_prev = Duration::ZERO;
        let mut label_prev = "(CLI start until its first line)".to_owned();
        let mut seen_running = false;
        for (at, line) in &run.lines {
            record(&mut order, &mut samples, &label_prev, *at - at_prev);
            let text = line.trim();
            let label = if text == "running" {
                seen_running = true;
                "running: exec `true`, until the next line".to_owned()
            } else if seen_running {
                format!("delete: {text}")
            } else {
                text.to_owned()
            };
            at_prev = *at;
            label_prev = label;
        }
        record(&mut order, &mut samples, &label_prev, run.total - at_prev);
    }
    let width = order.iter().map(|l| l.len()).max().unwrap_or(0).max(5);
    println!(
        "stages of `banger vm run --rm -- true` (seconds; median, min, max over {} rounds):",
        runs.len()
    );
    println!(
        "  {:<width$}  {:>7}  {:>7}  {:>7}",
        "stage", "median", "min", "max"
    );
    for label in &order {
        let values = &samples[label];
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let partial = if values.len() < runs.len() {
            format!("  (in {} of {} rounds)", values.len(), runs.len())
        } else {
            String::new()
        };
        println!(
            "  {label:<width$}  {:>7.3}  {min:>7.3}  {max:>7.3}{partial}",
            median(values.clone())
        );
    }
    let create = median(
        runs.iter()
            .filter_map(|r| r.create())
            .map(|d| d.as_secs_f64())
            .collect(),
    );
    let total = median(runs.iter().map(|r| r.total.as_secs_f64()).collect());
    println!(
        "  {:<width$}  {create:>7.3}",
        "create (spawn until `running`)"
    );
    println!("  {:<width$}  {total:>7.3}", "total (spawn until exit)");
}

fn record(
    order: &mut Vec<String>,
    samples: &mut HashMap<String, Vec<f64>>,
    label: &str,
    d: Duration,
) {
    if !samples.contains_key(label) {
        order.push(label.to_owned());
    }
    samples
        .entry(label.to_owned())
        .or_default()
        .push(d.as_secs_f64());
}

// ------------------------------------------------------------------ bare

/// What the baseline copies from banger's QEMU command line.
struct QemuShape {
    program: String,
    accel: String,
    cpu: String,
    /// `tsc_early_khz=N` when banger passed one.
    tsc: Option<String>,
}

impl QemuShape {
    fn from_banger(argv: &[String]) -> Fallible<QemuShape> {
        let after = |flag: &str| {
            argv.iter()
                .position(|a| a == flag)
                .and_then(|i| argv.get(i + 1))
                .cloned()
        };
        let missing = |flag: &str| format!("banger's QEMU command line has no {flag}");
        let append = after("-append").ok_or_else(|| missing("-append"))?;
        // Same size as banger's VM, or the comparison means nothing.
        let (m, smp) = (after("-m"), after("-smp"));
        if m.as_deref() != Some(&format!("{MEMORY_MIB}M")) || smp != Some(VCPU.to_string()) {
            return Err(format!(
                "banger's QEMU runs with -m {m:?} -smp {smp:?}, not {MEMORY_MIB}M and {VCPU}"
            ));
        }
        Ok(QemuShape {
            program: argv[0].clone(),
            accel: after("-accel").ok_or_else(|| missing("-accel"))?,
            cpu: after("-cpu").ok_or_else(|| missing("-cpu"))?,
            tsc: append
                .split_whitespace()
                .find(|a| a.starts_with("tsc_early_khz="))
                .map(str::to_owned),
        })
    }
}

/// The bare boot's inputs, prepared once before any timing.
struct BareSetup {
    dir: PathBuf,
    bzimage: PathBuf,
    initrd: PathBuf,
    init: String,
    /// The image plus an ssh host key; each boot gets its own copy.
    template: PathBuf,
}

struct BareRun {
    ssh_ready: Duration,
    total: Duration,
}

impl BareSetup {
    fn prepare(dir: &Path) -> Fallible<BareSetup> {
        let state = common::e2e_cache_dir().join("state");
        let kernel_dir = state.join("kernels").join(KERNEL);
        let image_dir = state.join("images").join(MINIMAL_IMAGE);
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(image_dir.join("manifest.json"))
                .map_err(|e| format!("read {MINIMAL_IMAGE}'s manifest: {e}"))?,
        )
        .map_err(|e| format!("parse {MINIMAL_IMAGE}'s manifest: {e}"))?;
        // A minimal image names its init (the agent as PID 1), as banger's
        // `banger.init=` does.
        let init = manifest["init"]
            .as_str()
            .ok_or("the minimal image's manifest names no init")?
            .to_owned();

        let template = dir.join("template.ext4");
        copy_disk(&image_dir.join("rootfs.ext4"), &template)?;
        let key = dir.join("hostkey");
        run_tool(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "banger-bench", "-f"])
                .arg(&key),
        )?;
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("read {}: {e}", p.display()));
        let file = |path: &str, content: Vec<u8>, mode: u32| Entry::File {
            path: path.into(),
            content,
            uid: 0,
            gid: 0,
            mode,
        };
        let entries = [
            file("/etc/ssh/ssh_host_ed25519_key", read(&key)?, 0o600),
            file(
                "/etc/ssh/ssh_host_ed25519_key.pub",
                read(&key.with_extension("pub"))?,
                0o644,
            ),
        ];
        Ext4Image::open(&template)
            .and_then(|image| image.write_files(&entries))
            .map_err(|e| format!("write the host key into {}: {e}", template.display()))?;

        Ok(BareSetup {
            dir: dir.to_owned(),
            bzimage: kernel_dir.join("bzImage"),
            initrd: kernel_dir.join("initrd.img"),
            init,
            template,
        })
    }

    /// One boot of a fresh copy of the template, timed from spawn to exit.
    fn boot(&self, shape: &QemuShape, round: usize) -> Fallible<BareRun> {
        let run_dir = self.dir.join(format!("round{round}"));
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let disk = run_dir.join("root.ext4");
        copy_disk(&self.template, &disk)?;
        let qmp = run_dir.join("qmp.sock");
        let console = run_dir.join("console.log");
        let port = free_port()?;
        let argv = self.argv(shape, &disk, &qmp, &console, port);
        if round == 1 {
            println!(
                "bare QEMU command line: {} {}",
                shape.program,
                argv.join(" ")
            );
        }

        let qemu_log = run_dir.join("qemu.log");
        let log = std::fs::File::create(&qemu_log).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = Command::new(&shape.program)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", shape.program))?;
        let mut qemu = Reaped::new(child);
        let why = |what: String| {
            format!(
                "bare QEMU, round {round}: {what}\nQEMU's stderr: {}\nconsole tail:\n{}",
                std::fs::read_to_string(&qemu_log)
                    .unwrap_or_default()
                    .trim(),
                tail(&console, 15)
            )
        };

        let ssh_at = wait_for_ssh_banner(port, &mut qemu.0, started).map_err(&why)?;
        let ssh_ready = ssh_at - started;
        request_poweroff(&qmp).map_err(&why)?;
        let status = loop {
            if let Some(status) = qemu.0.try_wait().map_err(|e| why(e.to_string()))? {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                return Err(why(format!(
                    "QEMU did not exit within {TIMEOUT:?} of its start"
                )));
            }
            std::thread::sleep(POLL);
        };
        let total = started.elapsed();
        if !status.success() {
            return Err(why(format!("QEMU exited with {status}")));
        }
        let _ = std::fs::remove_file(&disk);
        Ok(BareRun { ssh_ready, total })
    }

    /// A hand-written command line with banger's machine, CPU, memory,
    /// console, kernel and `banger.*` arguments. What differs from banger's
    /// and why this is the fair baseline:
    /// - no agent channel (serial port and agent-mux sidecar): that channel
    ///   is how banger runs commands, not something a VM needs to
    ///   reach ssh-ready (the guest boots without it; its service mode just
    ///   fails to listen);
    /// - no work disk (`banger.workdisk=none`): the bare boot has no /root
    ///   disk to mount;
    /// - QEMU user networking with a host port forward instead of a tap on a
    ///   bridge: no host setup outside the timed span, and the guest's
    ///   network init is the same (`banger.ip=`/`gw=`/`dns=` from slirp's
    ///   defaults);
    /// - a raw private copy of the image instead of banger's CoW root disk.
    ///
    /// Everything else the guest sees is the same, so the difference in time
    /// is what banger itself costs: the CLI and daemon, disks, network, host
    /// key and identity, readiness checks, the command, and the teardown.
    fn argv(
        &self,
        shape: &QemuShape,
        disk: &Path,
        qmp: &Path,
        console: &Path,
        port: u16,
    ) -> Vec<String> {
        let mut cmdline = vec!["console=ttyS0 reboot=t panic=-1".to_owned()];
        cmdline.extend(shape.tsc.clone());
        cmdline.push(format!(
            "banger.root=/dev/vda banger.ip=10.0.2.15/24 banger.gw=10.0.2.2 banger.dns=10.0.2.3 \
             banger.workdisk=none banger.init={}",
            self.init
        ));
        let mem = MEMORY_MIB;
        let s = |p: &Path| p.display().to_string().replace(',', ",,");
        [
            "-M",
            "microvm,acpi=on",
            "-accel",
            &shape.accel,
            "-cpu",
            &shape.cpu,
            "-m",
            &format!("{mem}M"),
            "-smp",
            &VCPU.to_string(),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-object",
            &format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
            "-machine",
            "memory-backend=mem",
            "-kernel",
            &self.bzimage.display().to_string(),
            "-initrd",
            &self.initrd.display().to_string(),
            "-append",
            &cmdline.join(" "),
            "-chardev",
            &format!("file,id=console,path={}", s(console)),
            "-serial",
            "chardev:console",
            // Ctrl-Alt-Del reaches the guest through the PS/2 controller.
            "-device",
            "i8042",
            "-drive",
            &format!("id=vda,file={},format=raw,if=none", s(disk)),
            "-device",
            "virtio-blk-device,drive=vda",
            "-netdev",
            &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
            "-device",
            "virtio-net-device,netdev=n0",
            "-qmp",
            &format!("unix:{},server=on,wait=off", s(qmp)),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// A sparse copy (a reflink where the filesystem has them), flushed so its
/// writeback does not land inside a timed boot.
fn copy_disk(from: &Path, to: &Path) -> Fallible<()> {
    run_tool(
        Command::new("cp")
            .args(["--reflink=auto", "--sparse=always"])
            .arg(from)
            .arg(to),
    )?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("sync {}: {e}", to.display()))?;
    // The template is copied from a read-only image.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod {}: {e}", to.display()))
}

fn run_tool(cmd: &mut Command) -> Fallible<()> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A loopback port nobody listens on (QEMU binds it a moment later).
fn free_port() -> Fallible<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

/// Waits until sshd's identification line arrives through the forward.
///
/// The forward accepts at once; while the guest does not listen on 22 the
/// connection is closed right away (then a new attempt follows after
/// [`SSH_RETRY`]), and while the guest's network is not up yet it hangs
/// until slirp's retransmitted SYN gets an answer. So when the newest
/// attempt has hung for [`SSH_OVERLAP_AFTER`], another one starts beside
/// it, up to [`SSH_MAX_IN_FLIGHT`]: a hung connection is kept, because it
/// may be sshd's, slowly forking under TCG. Attempts are few on purpose:
/// every connection sshd accepts costs the guest a fork and an exec, and
/// many at once starve the single emulated vCPU (sshd's MaxStartups then
/// drops them).
fn wait_for_ssh_banner(port: u16, qemu: &mut Child, started: Instant) -> Fallible<Instant> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = started + TIMEOUT;
    let (tx, rx) = mpsc::channel::<Instant>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut last_attempt: Option<Instant> = None;
    loop {
        if let Ok(at) = rx.recv_timeout(POLL) {
            return Ok(at);
        }
        if let Some(status) = qemu.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("QEMU exited with {status} before ssh answered"));
        }
        if Instant::now() > deadline {
            return Err(format!("no SSH banner on {addr} within {TIMEOUT:?}"));
        }
        let since = last_attempt.map_or(Duration::MAX, |t| t.elapsed());
        let running = in_flight.load(Ordering::SeqCst);
        let due = (running == 0 && since >= SSH_RETRY)
            || (running < SSH_MAX_IN_FLIGHT && since >= SSH_OVERLAP_AFTER);
        if due {
            last_attempt = Some(Instant::now());
            in_flight.fetch_add(1, Ordering::SeqCst);
            let (tx, in_flight) = (tx.clone(), Arc::clone(&in_flight));
            std::thread::spawn(move || {
                if let Some(at) = ssh_banner(addr, deadline) {
                    let _ = tx.send(at);
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

/// One attempt: the time a line starting with `SSH-` arrived, if one did
/// before `deadline`.
fn ssh_banner(addr: SocketAddr, deadline: Instant) -> Option<Instant> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let left = deadline.saturating_duration_since(Instant::now());
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(100))))
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'\n') && got.len() < 255 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"SSH-").then(Instant::now)
}

/// Ctrl-Alt-Del through QMP: the minimal image's init powers off on it,
/// and `-no-reboot` plus ACPI make QEMU exit.
fn request_poweroff(qmp: &Path) -> Fallible<()> {
    let stream = UnixStream::connect(qmp).map_err(|e| format!("connect {}: {e}", qmp.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut read_line = || -> Fallible<serde_json::Value> {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => Err("QMP closed the connection".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("QMP sent {line:?}: {e}")),
            Err(e) => Err(format!("read QMP: {e}")),
        }
    };
    let greeting = read_line()?;
    if greeting.get("QMP").is_none() {
        return Err(format!("unexpected QMP greeting {greeting}"));
    }
    let keys: Vec<serde_json::Value> = ["ctrl", "alt", "delete"]
        .iter()
        .map(|k| serde_json::json!({"type": "qcode", "data": k}))
        .collect();
    for command in [
        serde_json::json!({"execute": "qmp_capabilities"}),
        serde_json::json!({"execute": "send-key", "arguments": {"keys": keys}}),
    ] {
        writeln!(writer, "{command}").map_err(|e| format!("write QMP: {e}"))?;
        loop {
            let answer = read_line()?;
            if answer.get("return").is_some() {
                break;
            }
            if let Some(error) = answer.get("error") {
                return Err(format!("QMP refused {command}: {error}"));
            }
            // An event: keep reading for the answer.
        }
    }
    Ok(())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Kills the child (and reaps it) when dropped, so no VM outlives a
/// failure.
struct Reaped(Child);

impl Reaped {
    fn new(child: Child) -> Self {
        Reaped(child)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
