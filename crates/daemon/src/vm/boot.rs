//! The launch half shared by create and start: tap, NAT, the VMM, agent
//! health, identity, DNS, `running`.

use std::time::{Duration, Instant};

use banger_agent_proto::protocol::{HealthResult, IdentityRequest, IdentityResult};
use banger_api::model::VmAction;
use banger_api::protocol::ErrorCode;
use banger_image::kernel::KernelStore;
use banger_store::VmRecord;
use banger_vmm::{BackendKind, DiskFormat, DiskSpec, VmConfig, VmHandle, VmmBackend};
use tokio_util::sync::CancellationToken;

use super::evidence::quote_logs;
use super::handles::{Handles, write_handles};
use super::record::{
    WORK_DISK_FILE, check_cancel, guest_mac, held, held_mut, root_disk_of, save_runtime, transition,
};
use crate::blocking::run;
use crate::error::DaemonError;
use crate::guest::Guest;
use crate::machinery::bridge_name;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// Boot to agent health under TCG is ~3-20 s on an idle host (minimal and
/// systemd images); a loaded one (several boots, a build) can take many
/// times that. A guest silent for the first deadline is relaunched once and
/// then gets the second.
const FIRST_AGENT_DEADLINE: Duration = if cfg!(test) {
    Duration::from_secs(3)
} else {
    Duration::from_secs(60)
};
const AGENT_DEADLINE: Duration = if cfg!(test) {
    Duration::from_secs(5)
} else {
    Duration::from_secs(120)
};
/// Short: a restored guest's agent answers within a fraction of a second,
/// and a refused probe costs the host and the guest next to nothing.
const AGENT_RETRY: Duration = Duration::from_millis(50);

/// Starts `vm` (recorded `created`, `stopped` or `error`, with its disks in
/// place) and returns it `running`. On failure the caller unwinds.
pub(super) async fn boot(
    daemon: &Daemon,
    op: &mut OpTracker,
    cancel: &CancellationToken,
    vm: VmRecord,
    identity: Option<IdentityRequest>,
) -> Result<VmRecord, DaemonError> {
    boot_from(daemon, op, cancel, vm, identity, None).await
}

/// [`boot`], or with `snapshot` (a snapshot's directory) a restore of the
/// state saved there instead of a boot; `identity` then carries the
/// refresh every restored copy needs before it counts as running.
pub(super) async fn boot_from(
    daemon: &Daemon,
    op: &mut OpTracker,
    cancel: &CancellationToken,
    vm: VmRecord,
    identity: Option<IdentityRequest>,
    snapshot: Option<(&str, &std::path::Path)>,
) -> Result<VmRecord, DaemonError> {
    let mut vm = transition(daemon, &vm.id, VmAction::Start, None)
        .await?
        .expect("start keeps the record");
    let vmm = daemon.vmm().await?;
    let ip = held(&vm)?.ip;

    let stage = "network: tap on the bridge";
    op.stage(stage).await?;
    let tap = async {
        let pool = daemon.taps().await?;
        Ok::<_, DaemonError>(pool.take().await?)
    }
    .await
    .map_err(|e| e.in_stage(stage))?;
    held_mut(&mut vm)?.tap = Some(tap.as_str().to_owned());
    save_runtime(daemon, &vm.id, held(&vm)?).await?;
    crate::fault::point("boot.tap");
    let stage = "network: fence (own address and MAC only)";
    op.stage(stage).await?;
    let (host, t) = (daemon.vms.host()?, tap.clone());
    match run(move || host.fence_guest(&t, ip, guest_mac(ip))).await? {
        Ok(()) => {}
        // An iptables-only host has no bridge-family filter: the guest
        // runs, and the user is told what it may do.
        Err(e @ banger_host::HostError::FenceUnavailable { .. }) => {
            op.stage(&format!(
                "warning: {}; this guest could send from other addresses",
                banger_api::error_chain(&e)
            ))
            .await?;
        }
        Err(e) => return Err(DaemonError::from(e).in_stage(stage)),
    }
    crate::fault::point("boot.fenced");
    if vm.spec.nat {
        let stage = "network: NAT";
        op.stage(stage).await?;
        let host = daemon.vms.host()?;
        let bridge = bridge_name(&daemon.config)?;
        run(move || host.add_nat(ip, &bridge))
            .await?
            .map_err(|e| DaemonError::from(e).in_stage(stage))?;
        crate::fault::point("boot.nat");
    }
    check_cancel(cancel)?;

    let modules = kernel_boot_files(daemon, op, &held(&vm)?.kernel).await?;
    let stage = match snapshot {
        Some((name, _)) => format!("restoring on {} from snapshot {name}", vmm.label),
        None => format!("launching {}", vmm.label),
    };
    op.stage(&stage).await?;
    let from = snapshot.map(|(_, dir)| dir.to_owned());
    let config = vm_config(daemon, &vm, tap.as_str(), vmm.kind(), modules)?;
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let tap_name = vm.tap().map(str::to_owned);
    let launch = |config: VmConfig| {
        let (driver, vm_dir, tap) = (vmm.driver.clone(), vm_dir.clone(), tap_name.clone());
        let (stage, from) = (stage.clone(), from.clone());
        async move {
            let handle = run(move || match &from {
                Some(dir) => driver.restore(&config, dir),
                None => driver.launch(&config),
            })
            .await?
            .map_err(|e| DaemonError::from(e).in_stage(&stage))?;
            crate::fault::point("boot.launched");
            write_handles(
                &vm_dir,
                &Handles {
                    handle: handle.clone(),
                    tap,
                },
            )?;
            crate::fault::point("boot.handles");
            Ok::<_, DaemonError>(handle)
        }
    };
    let mut handle = launch(config.clone()).await?;

    let stage = "waiting for the guest agent";
    op.stage(stage).await?;
    let wait = |handle: &VmHandle, deadline: Duration| {
        let (driver, h, c) = (vmm.driver.clone(), handle.clone(), cancel.clone());
        let guest = daemon.vms.guest();
        run(move || wait_for_agent(guest.as_ref(), driver.as_ref(), &h, &c, deadline))
    };
    let health = match wait(&handle, FIRST_AGENT_DEADLINE)
        .await?
        .map_err(|e| e.in_stage(stage))?
    {
        AgentWait::Answered(health) => health,
        // Seen rarely under TCG after a restart: the guest's agent serves,
        // yet no vsock handshake is ever answered. A fresh VMM and sidecar
        // have always answered; a second silence is the error.
        AgentWait::Silent(why) => {
            tracing::warn!(vm = %vm.name, error = %banger_api::error_chain(&why), "the guest agent is silent; relaunching once");
            op.stage(&format!(
                "warning: no answer from the guest agent within {FIRST_AGENT_DEADLINE:?}; \
                 relaunching the VM once"
            ))
            .await?;
            let (driver, h) = (vmm.driver.clone(), handle.clone());
            run(move || driver.kill(&h))
                .await?
                .map_err(|e| DaemonError::from(e).in_stage(stage))?;
            check_cancel(cancel)?;
            handle = launch(config).await?;
            match wait(&handle, AGENT_DEADLINE)
                .await?
                .map_err(|e| e.in_stage(stage))?
            {
                AgentWait::Answered(health) => health,
                AgentWait::Silent(why) => return Err(why.in_stage(stage)),
            }
        }
    };
    tracing::info!(vm = %vm.name, agent = %health.agent, uptime_s = health.uptime_s, "agent answers");
    crate::fault::point("boot.agent");

    if let Some(identity) = identity {
        let stage = if snapshot.is_some() {
            "identity: name, address, MAC, machine-id, host key, RNG seed, clock"
        } else {
            "identity: hostname, authorized key, host key"
        };
        op.stage(stage).await?;
        let (guest, uds) = (daemon.vms.guest(), handle.vsock_uds.clone());
        let applied = run(move || guest.identity(&uds, identity))
            .await?
            .map_err(|e| DaemonError::from(e).in_stage(stage))?;
        if snapshot.is_some() {
            refresh_confirmed(&applied).map_err(|e| e.in_stage(stage))?;
        }
        mark_identity_delivered(&daemon.paths.vm_dir(&vm.id))?;
        crate::fault::point("boot.identity");
    }

    let stage = "waiting for ssh";
    op.stage(stage).await?;
    let (c, guest) = (cancel.clone(), daemon.vms.guest());
    let banner = run(move || {
        let addr = super::ready::ssh_addr(ip);
        super::ready::wait_for_ssh(guest.as_ref(), addr, super::ready::SSH_DEADLINE, &c)
    })
    .await?
    .map_err(|e| e.in_stage(stage))?;
    tracing::info!(vm = %vm.name, %banner, "sshd answers");

    daemon.dns.set(&vm.name, ip);
    let vm = transition(daemon, &vm.id, VmAction::Booted, None)
        .await?
        .expect("booted keeps the record");
    op.stage("running").await?;
    Ok(vm)
}

/// Brings the kernel's derived boot files up to date with this banger:
/// its initrd rebuilt around the installed agent if it holds another, and
/// its modules disk built if it was installed before banger made them
/// (once per kernel, a few seconds). Returns the modules disk.
pub(super) async fn kernel_boot_files(
    daemon: &Daemon,
    op: &mut OpTracker,
    kernel: &str,
) -> Result<Option<std::path::PathBuf>, DaemonError> {
    let store = KernelStore::new(&daemon.paths.kernels_dir);
    let paths = store.paths(kernel)?;
    let stage = "kernel: initrd and modules disk for this banger";
    let disk_missing = paths.modules.is_dir() && !paths.modules_disk.is_file();
    if disk_missing {
        op.stage("kernel: indexing its modules into a modules disk (once per kernel)")
            .await?;
    }
    let agent = banger_image::agent_bin::find_agent();
    let kernel = kernel.to_owned();
    run(move || {
        match agent {
            Ok(agent) => {
                if store.refresh_initrd(&kernel, &agent)? {
                    tracing::info!(%kernel, agent = %agent.display(), "initrd rebuilt around the installed agent");
                }
            }
            // The initrd keeps the agent it has; the boot says the rest.
            Err(e) => tracing::warn!(%kernel, error = %e, "no agent binary to check the initrd against"),
        }
        store.modules_disk(&kernel)
    })
    .await?
    .map_err(|e| DaemonError::from(e).in_stage(stage))
}

/// The guest device of the modules disk: the drive after the root and work
/// disks (see `VmConfig::modules_disk`).
const MODULES_DEVICE: &str = "/dev/vdc";

/// The kernel arguments the guest's init reads (`banger.*`, see the
/// agent's boot_config).
fn kernel_args(
    daemon: &Daemon,
    ip: std::net::Ipv4Addr,
    init: Option<&str>,
    modules: bool,
) -> String {
    let c = &daemon.config;
    let mut args = format!(
        "banger.root=/dev/vda banger.ip={ip}/{} banger.gw={} banger.dns={}",
        c.cidr_prefix(),
        c.bridge_ip(),
        c.default_dns()
    );
    if let Some(init) = init {
        args.push_str(&format!(" banger.init={init}"));
    }
    if modules {
        args.push_str(&format!(" banger.modules={MODULES_DEVICE}"));
    }
    args
}

fn vm_config(
    daemon: &Daemon,
    vm: &VmRecord,
    tap: &str,
    backend: BackendKind,
    modules: Option<std::path::PathBuf>,
) -> Result<VmConfig, DaemonError> {
    let runtime = held(vm)?;
    let (ip, cid) = (runtime.ip, runtime.vsock_cid);
    let kernel = KernelStore::new(&daemon.paths.kernels_dir).paths(&runtime.kernel)?;
    let root = root_disk_of(vm)?
        .ok_or_else(|| DaemonError::Internal("the VM has no root disk on record".into()))?;
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let init = banger_image::images::ImageStore::new(&daemon.paths.images_dir)
        .show(&vm.image)
        .ok()
        .and_then(|m| m.init);
    Ok(VmConfig {
        id: vm.id.clone(),
        vcpu: vm.spec.vcpu,
        memory_mib: vm.spec.memory_mib,
        // Firecracker loads only an ELF vmlinux (the kernel store unpacks
        // one from every bzImage); QEMU boots the bzImage, or the vmlinux
        // of a kernel imported without one.
        kernel: match backend {
            BackendKind::Qemu if kernel.bzimage.exists() => kernel.bzimage,
            _ => kernel.vmlinux,
        },
        initrd: kernel.initrd.exists().then_some(kernel.initrd),
        kernel_args: kernel_args(daemon, ip, init.as_deref(), modules.is_some()),
        root_disk: DiskSpec {
            path: root.path,
            format: match root.format {
                banger_image::cow::DiskFormat::Raw => DiskFormat::Raw,
                banger_image::cow::DiskFormat::Qcow2 => DiskFormat::Qcow2,
            },
            read_only: false,
        },
        work_disk: Some(DiskSpec {
            path: vm_dir.join(WORK_DISK_FILE),
            format: DiskFormat::Raw,
            read_only: false,
        }),
        // After the work disk, which every VM has: MODULES_DEVICE.
        modules_disk: modules.map(|path| DiskSpec {
            path,
            format: DiskFormat::Raw,
            read_only: true,
        }),
        tap: Some(tap.to_owned()),
        mac: Some(guest_mac(ip).to_string()),
        vsock_cid: cid,
        run_dir: vm_dir,
    })
}

/// Polls the agent's health until it answers, the VMM dies, the client
/// goes away, or [`AGENT_DEADLINE`] passes.
/// How waiting for the agent ended, when the VMM did not die and the
/// client did not go away.
enum AgentWait {
    Answered(HealthResult),
    /// `deadline` passed without an answer while the VMM ran.
    Silent(DaemonError),
}

/// Polls the agent's health until it answers, the VMM dies, the client
/// goes away, or `deadline` passes.
fn wait_for_agent(
    guest: &dyn Guest,
    driver: &dyn VmmBackend,
    handle: &VmHandle,
    cancel: &CancellationToken,
    deadline: Duration,
) -> Result<AgentWait, DaemonError> {
    let started = Instant::now();
    loop {
        check_cancel(cancel)?;
        match guest.health(&handle.vsock_uds) {
            Ok(h) => return Ok(AgentWait::Answered(h)),
            Err(e) if !e.is_retryable() => return Err(e.into()),
            Err(e) => {
                if !driver.is_alive(handle) {
                    return Err(DaemonError::failed(
                        ErrorCode::OperationFailed,
                        format!(
                            "{} exited while the guest booted; its last words:{}",
                            match handle.backend {
                                BackendKind::Firecracker => "Firecracker",
                                BackendKind::Qemu => "QEMU",
                            },
                            quote_logs(handle)
                        ),
                    ));
                }
                if started.elapsed() > deadline {
                    return Ok(AgentWait::Silent(DaemonError::failed(
                        ErrorCode::OperationFailed,
                        format!(
                            "no answer from the guest agent within {deadline:?} ({e}); \
                             the logs end:{}",
                            quote_logs(handle)
                        ),
                    )));
                }
                std::thread::sleep(AGENT_RETRY);
            }
        }
    }
}

/// A restored copy runs nothing until its agent confirms every part of
/// the refresh: a copy that kept its parent's RNG state, clock, address or
/// machine-id must not count as running.
fn refresh_confirmed(applied: &IdentityResult) -> Result<(), DaemonError> {
    let parts = [
        ("hostname", applied.hostname_set),
        ("network (address and MAC)", applied.network_set),
        ("machine-id", applied.machine_id_set),
        ("RNG reseed", applied.reseeded),
        ("clock", applied.clock_stepped),
    ];
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(_, done)| !done)
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(DaemonError::failed(
        ErrorCode::OperationFailed,
        format!(
            "the restored guest's agent did not confirm its {}; it is not used",
            missing.join(", ")
        ),
    ))
}

/// Written in the VM directory once the guest has its identity; a VM
/// without it (created with `--no-start`, or whose first boot failed before
/// the identity went in) gets one at its next start.
const IDENTITY_DELIVERED: &str = "identity-delivered";

pub(super) fn needs_identity(vm_dir: &std::path::Path) -> bool {
    !vm_dir.join(IDENTITY_DELIVERED).exists()
}

fn mark_identity_delivered(vm_dir: &std::path::Path) -> Result<(), DaemonError> {
    let path = vm_dir.join(IDENTITY_DELIVERED);
    std::fs::write(&path, b"")
        .map_err(|e| DaemonError::Internal(format!("cannot write {}: {e}", path.display())))
}
