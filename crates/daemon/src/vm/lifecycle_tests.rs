//! The VM lifecycle driven without root through fakes at the OS boundary:
//! [`RecordingHost`] for bridges, taps and NAT, and one fake machine that is
//! both the VMM driver and the guest (its agent and sshd). A table of steps
//! runs create, set, stop, start, kill, reconcile (a VMM that survived, one
//! that died) and delete, and after each step compares what exists — on the
//! simulated host, in the fake VMM, in the store, in DNS and on disk — with
//! what that step must leave. The last row proves that teardown undoes
//! exactly what setup did: the host is as it was before the first create.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banger_agent_proto::client::{ClientError, OutputSink};
use banger_agent_proto::protocol::{
    ExecRequest, ExecResult, HealthResult, IdentityRequest, IdentityResult, ListeningPort,
};
use banger_api::model::VmState;
use banger_api::protocol::{VmCreateParams, VmRef, VmSetParams};
use banger_config::{Config, Paths};
use banger_host::{FakeState, HostOps, OpKind, RecordingHost};
use banger_vmm::{BackendKind, VmConfig, VmHandle, VmmBackend, VmmError};
use tokio_util::sync::CancellationToken;

use crate::backend::{Chosen, Vmms};
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::guest::Guest;
use crate::lock::StateLock;
use crate::machinery::{Boundaries, Machinery};
use crate::startup::{DaemonOptions, open};
use crate::state::Daemon;

/// One fake VM process.
#[derive(Debug, Clone)]
struct Proc {
    vm: String,
    uds: PathBuf,
    alive: bool,
    /// Runs, but its guest's agent never answers.
    mute: bool,
}

/// The fake VMM and the guests it runs: a launch makes a "process" whose
/// agent and sshd answer while it is alive.
#[derive(Default)]
struct FakeMachine {
    procs: Mutex<BTreeMap<u32, Proc>>,
    /// Guests never answer: a boot waits for its agent until interrupted.
    silent: std::sync::atomic::AtomicBool,
    /// The next this many launches run a guest whose agent never answers.
    mute_launches: std::sync::atomic::AtomicUsize,
    /// The VMM dies at once, its guest having written control sequences
    /// (a clipboard write, a screen clear) to the console.
    hostile_console: std::sync::atomic::AtomicBool,
}

impl FakeMachine {
    fn procs(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Proc>> {
        self.procs.lock().unwrap()
    }

    fn live(&self) -> Vec<String> {
        self.procs()
            .values()
            .filter(|p| p.alive)
            .map(|p| p.vm.clone())
            .collect()
    }

    /// The VMM of `vm` dies by itself (a crash while the daemon was away).
    fn crash(&self, vm: &str) {
        for p in self.procs().values_mut().filter(|p| p.vm == vm) {
            p.alive = false;
        }
    }

    fn alive_at(&self, uds: &Path) -> Result<(), ClientError> {
        let silent = self.silent.load(std::sync::atomic::Ordering::SeqCst);
        match !silent
            && self
                .procs()
                .values()
                .any(|p| p.alive && !p.mute && p.uds == uds)
        {
            true => Ok(()),
            false => Err(ClientError::Connect {
                path: uds.to_owned(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            }),
        }
    }
}

impl VmmBackend for FakeMachine {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn launch(&self, config: &VmConfig) -> Result<VmHandle, VmmError> {
        let mute = self
            .mute_launches
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        let mut procs = self.procs();
        let pid = 10_000 + procs.len() as u32;
        let uds = config.run_dir.join("vsock.sock");
        // What a VMM writes as it boots: read by `vm logs`, kept after a
        // failed create.
        let hostile = self
            .hostile_console
            .load(std::sync::atomic::Ordering::SeqCst);
        let console = if hostile {
            "fake kernel booting\n\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u{9b}31mKernel panic\n"
        } else {
            "fake kernel booting\n"
        };
        std::fs::write(config.run_dir.join("console.log"), console).unwrap();
        std::fs::write(
            config.run_dir.join("qemu.log"),
            "qemu: KVM_EXIT_INTERNAL_ERROR\n",
        )
        .unwrap();
        procs.insert(
            pid,
            Proc {
                vm: config.id.clone(),
                uds: uds.clone(),
                alive: !hostile,
                mute,
            },
        );
        Ok(VmHandle {
            backend: BackendKind::Qemu,
            pid,
            helper_pids: Vec::new(),
            control_socket: config.run_dir.join("qmp.sock"),
            vsock_uds: uds,
            console_log: config.run_dir.join("console.log"),
            vmm_log: config.run_dir.join("qemu.log"),
        })
    }

    fn save(&self, handle: &VmHandle, dir: &Path) -> Result<(), VmmError> {
        let vm = self.procs().get(&handle.pid).map(|p| p.vm.clone());
        std::fs::write(dir.join("memory.fake"), vm.unwrap_or_default()).unwrap();
        Ok(())
    }

    fn resume(&self, _handle: &VmHandle) -> Result<(), VmmError> {
        Ok(())
    }

    fn restore(&self, config: &VmConfig, dir: &Path) -> Result<VmHandle, VmmError> {
        assert!(dir.join("memory.fake").is_file(), "restore from a saved VM");
        self.launch(config)
    }

    fn request_shutdown(&self, handle: &VmHandle) -> Result<(), VmmError> {
        self.kill(handle)
    }

    fn is_alive(&self, handle: &VmHandle) -> bool {
        self.procs().get(&handle.pid).is_some_and(|p| p.alive)
    }

    fn wait_exit(&self, handle: &VmHandle, _timeout: Duration) -> Result<bool, VmmError> {
        Ok(!self.is_alive(handle))
    }

    fn kill(&self, handle: &VmHandle) -> Result<(), VmmError> {
        if let Some(p) = self.procs().get_mut(&handle.pid) {
            p.alive = false;
        }
        Ok(())
    }
}

impl Guest for FakeMachine {
    fn health(&self, agent: &Path) -> Result<HealthResult, ClientError> {
        self.alive_at(agent)?;
        Ok(HealthResult {
            agent: "fake".into(),
            protocol: 1,
            hostname: "fake".into(),
            uptime_s: 1.0,
            boot_id: "boot".into(),
            frozen: false,
        })
    }

    /// Confirms what the request carried, as the agent does.
    fn identity(&self, agent: &Path, r: IdentityRequest) -> Result<IdentityResult, ClientError> {
        self.alive_at(agent)?;
        Ok(IdentityResult {
            hostname_set: r.hostname.is_some(),
            machine_id_set: r.machine_id.is_some(),
            network_set: r.network.is_some(),
            reseeded: r.entropy.is_some(),
            clock_stepped: r.realtime_ns.is_some(),
            ..IdentityResult::default()
        })
    }

    fn poweroff(&self, agent: &Path) -> Result<(), ClientError> {
        self.alive_at(agent)?;
        for p in self.procs().values_mut().filter(|p| p.uds == agent) {
            p.alive = false;
        }
        Ok(())
    }

    fn freeze(&self, agent: &Path) -> Result<(), ClientError> {
        self.alive_at(agent)
    }

    fn thaw(&self, agent: &Path) -> Result<(), ClientError> {
        self.alive_at(agent)
    }

    fn ports(&self, agent: &Path) -> Result<Vec<ListeningPort>, ClientError> {
        self.alive_at(agent).map(|()| Vec::new())
    }

    fn exec(
        &self,
        agent: &Path,
        _: ExecRequest,
        _: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.alive_at(agent)?;
        Err(ClientError::BadResponse {
            reason: "the fake guest runs no commands".into(),
        })
    }

    fn exec_streaming(
        &self,
        agent: &Path,
        request: ExecRequest,
        _: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.exec(agent, request, cancel)
    }

    fn exec_with_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        _: &mut (dyn Read + Send),
        _: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.exec(agent, request, cancel)
    }

    fn ssh_banner(&self, _: SocketAddr) -> Result<String, String> {
        Ok("SSH-2.0-fake".into())
    }
}

struct FakeVmms(Arc<FakeMachine>);

impl Vmms for FakeVmms {
    fn choose(&self, _: &Config, _: &Paths, _: u32) -> Result<Chosen, DaemonError> {
        Ok(Chosen {
            driver: self.0.clone(),
            label: "fake VMM".into(),
            jailed: false,
            binary: PathBuf::from("/bin/true"),
        })
    }

    fn for_kind(&self, _: BackendKind) -> Arc<dyn VmmBackend> {
        self.0.clone()
    }
}

/// A daemon over a private home, the recording host and the fake machine,
/// with one registered image and one imported kernel.
pub(super) struct World {
    _home: tempfile::TempDir,
    _lock: StateLock,
    pub(super) daemon: Daemon,
    host: Arc<RecordingHost>,
    machine: Arc<FakeMachine>,
}

/// An ELF header for x86_64: all the kernel store checks of a `vmlinux`.
fn fake_vmlinux() -> Vec<u8> {
    let mut elf = vec![0u8; 4096];
    elf[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
    elf[18] = 0x3e;
    elf
}

pub(super) fn world() -> World {
    world_with("warm_cache = false\n")
}

/// A world whose config has `extra` keys besides the fixed ones.
pub(super) fn world_with(extra: &str) -> World {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::development(home.path());
    paths.ensure_private_dirs().unwrap();
    let config = Config::parse(
        &format!("tap_pool_size = 0\ndns_listen = \"127.0.0.1:0\"\n{extra}"),
        Path::new("config.toml"),
    )
    .unwrap();
    let kernel_src = home.path().join("kernel-src");
    std::fs::create_dir(&kernel_src).unwrap();
    std::fs::write(kernel_src.join("vmlinux"), fake_vmlinux()).unwrap();
    banger_image::kernel::KernelStore::new(&paths.kernels_dir)
        .import("fake-kernel", &kernel_src)
        .unwrap();
    let rootfs = home.path().join("rootfs.ext4");
    banger_image::create_work_disk(&rootfs, "64M".parse().unwrap(), None).unwrap();
    banger_image::images::ImageStore::new(&paths.images_dir)
        .register("fake-image", &rootfs, Some("fake-kernel"))
        .unwrap();

    let host = Arc::new(RecordingHost::new());
    let machine = Arc::new(FakeMachine::default());
    let boundaries = Boundaries {
        host: Ok(host.clone() as Arc<dyn HostOps>),
        vmms: Arc::new(FakeVmms(machine.clone())),
        guest: machine.clone(),
        helper: None,
    };
    let lock = StateLock::acquire(&paths).unwrap();
    let opts = DaemonOptions {
        paths,
        config,
        owner_uid: banger_sys::os::effective_uid(),
        owner_home: None,
    };
    let daemon = open(
        opts,
        &lock,
        Machinery::new(boundaries, CancellationToken::new()),
    )
    .unwrap();
    World {
        _home: home,
        _lock: lock,
        daemon,
        host,
        machine,
    }
}

pub(super) fn ctx() -> RequestCtx {
    RequestCtx {
        op_id: format!("op-{}", fastrand::u32(..)),
        progress: tokio::sync::mpsc::unbounded_channel().0,
        output: tokio::sync::mpsc::channel(64).0,
        cancel: CancellationToken::new(),
    }
}

/// Everything a VM can hold, as seen from outside the lifecycle code.
#[derive(Debug, PartialEq)]
pub(super) struct Seen {
    pub(super) state: Option<VmState>,
    /// Taps on the simulated host attached to the bridge.
    taps: usize,
    nat: Vec<Ipv4Addr>,
    /// Taps fenced to their guest's own address and MAC.
    fenced: Vec<(Ipv4Addr, String)>,
    /// VMs whose fake VMM runs.
    vmms: usize,
    dns: bool,
    vm_dir: bool,
    leases: usize,
    pinned: bool,
}

const NOTHING: Seen = Seen {
    state: None,
    taps: 0,
    nat: Vec::new(),
    fenced: Vec::new(),
    vmms: 0,
    dns: false,
    vm_dir: false,
    leases: 0,
    pinned: false,
};

pub(super) async fn seen(w: &World, name: &str) -> Seen {
    let vm = crate::vm::record::find(&w.daemon, name).await.ok();
    let host = w.host.state();
    let known_hosts =
        std::fs::read_to_string(banger_net::ssh::SshPaths::new(&w.daemon.paths).known_hosts)
            .unwrap_or_default();
    let leases = w
        .daemon
        .store
        .call(|s| s.list_leases())
        .await
        .unwrap()
        .len();
    Seen {
        state: vm.as_ref().map(|v| v.state),
        taps: host.taps.values().filter(|t| t.bridge.is_some()).count(),
        nat: host.nat.keys().copied().collect(),
        fenced: host
            .guest_fences
            .values()
            .map(|(ip, mac)| (*ip, mac.to_string()))
            .collect(),
        vmms: w.machine.live().len(),
        dns: w.daemon.dns.get(name).is_some(),
        vm_dir: vm
            .as_ref()
            .is_some_and(|v| w.daemon.paths.vm_dir(&v.id).exists()),
        leases,
        pinned: known_hosts.contains(&format!("banger:{name}")),
    }
}

pub(super) enum Step {
    Create {
        nat: bool,
        fail: Option<OpKind>,
    },
    Set {
        nat: bool,
    },
    /// A NAT rule for the VM that its record does not mention: what a `vm
    /// set --nat` killed between adding the rule and saving the spec left.
    StrayNat,
    Stop,
    Start,
    Kill,
    /// A daemon restart with the VMM still running.
    RestartDaemon,
    /// A daemon restart after the VMM died with it.
    CrashAndRestart,
    Delete,
}

fn running(nat: bool) -> Seen {
    Seen {
        state: Some(VmState::Running),
        taps: 1,
        nat: if nat { vec![ip()] } else { Vec::new() },
        fenced: vec![(ip(), "02:fc:ac:10:00:02".to_owned())],
        vmms: 1,
        dns: true,
        vm_dir: true,
        leases: 1,
        pinned: true,
    }
}

fn halted(state: VmState) -> Seen {
    Seen {
        state: Some(state),
        taps: 0,
        nat: Vec::new(),
        fenced: Vec::new(),
        vmms: 0,
        dns: false,
        vm_dir: true,
        leases: 1,
        pinned: true,
    }
}

/// A VM whose create failed and was unwound: only its record is left.
fn unwound() -> Seen {
    Seen {
        state: Some(VmState::Error),
        vm_dir: false,
        leases: 0,
        pinned: false,
        ..halted(VmState::Error)
    }
}

fn ip() -> Ipv4Addr {
    Ipv4Addr::new(172, 16, 0, 2)
}

pub(super) async fn run_step(w: &World, step: &Step) -> Result<(), DaemonError> {
    let vm = || VmRef { vm: "dev".into() };
    match step {
        Step::Create { nat, fail } => {
            if let Some(kind) = fail {
                w.host.fail_next(*kind);
            }
            let p = VmCreateParams {
                name: Some("dev".into()),
                image: Some("fake-image".into()),
                vcpu: Some(1),
                memory_mib: Some(256),
                disk_size: Some("128M".parse().unwrap()),
                nat: *nat,
                no_start: false,
                cold: false,
            };
            crate::vm::create(&w.daemon, &ctx(), p).await.map(|_| ())
        }
        Step::Set { nat } => {
            let p = VmSetParams {
                vm: "dev".into(),
                vcpu: None,
                memory_mib: None,
                disk_size: None,
                nat: Some(*nat),
            };
            crate::vm::set(&w.daemon, &ctx(), p).await.map(|_| ())
        }
        Step::StrayNat => {
            let bridge = crate::machinery::bridge_name(&w.daemon.config)?;
            Ok(w.host.add_nat(ip(), &bridge)?)
        }
        Step::Stop => crate::vm::stop(&w.daemon, &ctx(), vm()).await.map(|_| ()),
        Step::Start => crate::vm::start(&w.daemon, &ctx(), vm()).await.map(|_| ()),
        Step::Kill => crate::vm::kill(&w.daemon, &ctx(), vm()).await.map(|_| ()),
        Step::RestartDaemon | Step::CrashAndRestart => {
            if matches!(step, Step::CrashAndRestart) {
                w.machine
                    .crash(&crate::vm::record::find(&w.daemon, "dev").await?.id);
            }
            // A new daemon starts with no names served until reconcile.
            w.daemon.dns.remove(&"dev".parse().unwrap());
            crate::vm::reconcile(&w.daemon).await;
            Ok(())
        }
        Step::Delete => crate::vm::delete(&w.daemon, &ctx(), vm()).await.map(|_| ()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_leaves_exactly_what_it_should() {
    use Step::*;
    let w = world();
    let before = w.host.state();
    assert!(before.bridge_fences.is_empty());
    let table: Vec<(&str, Step, bool, Seen)> = vec![
        (
            "create with NAT",
            Create {
                nat: true,
                fail: None,
            },
            true,
            running(true),
        ),
        ("NAT off, live", Set { nat: false }, true, running(false)),
        ("NAT on, live", Set { nat: true }, true, running(true)),
        ("stop", Stop, true, halted(VmState::Stopped)),
        (
            "NAT off while stopped",
            Set { nat: false },
            true,
            halted(VmState::Stopped),
        ),
        ("start", Start, true, running(false)),
        ("kill", Kill, true, halted(VmState::Stopped)),
        ("start with NAT off", Start, true, running(false)),
        ("a set died after adding NAT", StrayNat, true, running(true)),
        (
            "stop removes the stray rule",
            Stop,
            true,
            halted(VmState::Stopped),
        ),
        ("start again", Start, true, running(false)),
        ("daemon restart adopts", RestartDaemon, true, running(false)),
        (
            "VMM died with the daemon",
            CrashAndRestart,
            true,
            halted(VmState::Stopped),
        ),
        ("delete", Delete, true, NOTHING),
        (
            "create failing at NAT unwinds",
            Create {
                nat: true,
                fail: Some(OpKind::AddNat),
            },
            false,
            unwound(),
        ),
        ("delete the failed VM", Delete, true, NOTHING),
        (
            "create failing at the tap unwinds",
            Create {
                nat: false,
                fail: Some(OpKind::CreateTap),
            },
            false,
            unwound(),
        ),
        ("delete that one too", Delete, true, NOTHING),
    ];
    for (what, step, ok, want) in &table {
        let result = run_step(&w, step).await;
        assert_eq!(
            result.is_ok(),
            *ok,
            "{what}: {:?}",
            result.as_ref().err().map(|e| banger_api::error_chain(e))
        );
        assert_eq!(&seen(&w, "dev").await, want, "{what}");
    }
    let after = w.host.state();
    assert_eq!(
        FakeState {
            bridges: Default::default(),
            bridge_fences: Default::default(),
            ..after
        },
        FakeState {
            bridges: Default::default(),
            bridge_fences: Default::default(),
            ..before
        },
        "teardown left something on the host that setup made"
    );
    assert!(w.machine.live().is_empty());
    assert_eq!(
        after
            .bridge_fences
            .keys()
            .map(|b| b.as_str())
            .collect::<Vec<_>>(),
        ["br-fc"],
        "the bridge was fenced before any guest ran"
    );
    let dirs: Vec<_> = std::fs::read_dir(&w.daemon.paths.vms_dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "VM directories left: {dirs:?}");
}

/// `vm kill` during a create whose guest never answers: the create is
/// interrupted at once (not after the agent's two-minute deadline), unwinds
/// everything and records why; the same for a start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_kill_interrupts_a_create_or_start_in_progress() {
    let w = Arc::new(world());
    w.machine
        .silent
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for what in ["create", "start"] {
        if what == "start" {
            // A VM that booted once and was stopped, started again.
            let quiet = std::sync::atomic::Ordering::SeqCst;
            run_step(&w, &Step::Delete).await.unwrap();
            w.machine.silent.store(false, quiet);
            run_step(
                &w,
                &Step::Create {
                    nat: true,
                    fail: None,
                },
            )
            .await
            .unwrap();
            run_step(&w, &Step::Stop).await.unwrap();
            w.machine.silent.store(true, quiet);
        }
        let booting = {
            let w = w.clone();
            tokio::spawn(async move {
                match what {
                    "create" => {
                        run_step(
                            &w,
                            &Step::Create {
                                nat: true,
                                fail: None,
                            },
                        )
                        .await
                    }
                    _ => run_step(&w, &Step::Start).await,
                }
            })
        };
        let waiting = async {
            while w.machine.live().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the boot never launched its VMM");
        let killed = tokio::time::timeout(
            Duration::from_secs(10),
            crate::vm::kill(&w.daemon, &ctx(), VmRef { vm: "dev".into() }),
        )
        .await
        .expect("vm kill waited for the boot to finish");
        let vm = killed.unwrap();
        assert_eq!(vm.state, VmState::Error, "{what}");
        assert!(
            vm.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("vm kill"),
            "{what}: {:?}",
            vm.last_error
        );
        let err = booting.await.unwrap().unwrap_err();
        assert!(banger_api::error_chain(&err).contains("vm kill"), "{what}");
        let seen = seen(&w, "dev").await;
        assert_eq!(
            (seen.taps, seen.vmms, seen.nat.len(), seen.fenced.len()),
            (0, 0, 0, 0),
            "{what}: {seen:?}"
        );
        // The evidence stays until `vm delete`: after a create, the logs and
        // nothing else; a VM that failed to start keeps its disks too.
        let mut left: Vec<_> = std::fs::read_dir(w.daemon.paths.vm_dir(&vm.id))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        match what {
            "create" => assert_eq!(left, ["console.log", "qemu.log"]),
            _ => assert!(left.contains(&"work.ext4".to_owned()), "{left:?}"),
        }
        let p = banger_api::protocol::VmLogsParams {
            vm: "dev".into(),
            console_offset: None,
            vmm_offset: None,
        };
        let logs = crate::vm::logs(&w.daemon, p).await.unwrap();
        assert!(logs.console.text.contains("fake kernel booting"), "{what}");
    }
}

/// A guest whose boot fails after writing control sequences to its console:
/// the failure quotes the VMM's log and the console, and neither the error
/// nor the stored `last_error` carries an escape sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_boot_quotes_both_logs_cleaned() {
    let w = world();
    w.machine
        .hostile_console
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = run_step(
        &w,
        &Step::Create {
            nat: false,
            fail: None,
        },
    )
    .await
    .unwrap_err();
    let vm = crate::vm::record::find(&w.daemon, "dev").await.unwrap();
    let stored = vm.last_error.unwrap();
    for text in [banger_api::error_chain(&err), stored] {
        assert!(
            text.contains("KVM_EXIT_INTERNAL_ERROR"),
            "the VMM's log: {text}"
        );
        assert!(text.contains("Kernel panic"), "the console: {text}");
        assert!(
            !text
                .chars()
                .any(|c| c == '\x1b' || c == '\x07' || c == '\u{9b}'),
            "{text:?}"
        );
    }
}

/// A guest whose agent stays silent is relaunched once (a fresh VMM and
/// sidecar); a second silence fails the boot, and leaves nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_guest_is_relaunched_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = world();
    w.machine.mute_launches.store(1, SeqCst);
    run_step(
        &w,
        &Step::Create {
            nat: false,
            fail: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.machine.procs().len(), 2, "launched twice");
    assert_eq!(seen(&w, "dev").await, running(false));
    run_step(&w, &Step::Delete).await.unwrap();

    w.machine.mute_launches.store(2, SeqCst);
    let err = run_step(
        &w,
        &Step::Create {
            nat: false,
            fail: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        banger_api::error_chain(&err).contains("no answer from the guest agent"),
        "{}",
        banger_api::error_chain(&err)
    );
    assert!(w.machine.live().is_empty(), "nothing left running");
}

/// At start, a VM directory no record names is removed only when it is
/// what an interrupted create left (its `creating` marker, or nothing at
/// all); any other (a database restored from an older copy, say) may hold
/// someone's work disk and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_interrupted_creates_directory_is_swept() {
    let w = world();
    let vms = &w.daemon.paths.vms_dir;
    let marked = vms.join("00000000000000aa");
    let empty = vms.join("00000000000000bb");
    let unknown = vms.join("00000000000000cc");
    for dir in [&marked, &empty, &unknown] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(marked.join(crate::vm::allocate::CREATING), b"").unwrap();
    std::fs::write(marked.join("work.ext4"), b"half made").unwrap();
    std::fs::write(unknown.join("work.ext4"), b"someone's work").unwrap();
    crate::vm::reconcile(&w.daemon).await;
    assert!(
        !marked.exists(),
        "an interrupted create's directory is swept"
    );
    assert!(!empty.exists(), "an empty directory is swept");
    assert_eq!(
        std::fs::read(unknown.join("work.ext4")).unwrap(),
        b"someone's work",
        "a directory that is not an interrupted create's stays"
    );
}
