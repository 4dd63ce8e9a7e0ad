//! `vm.create`: one tracked operation, a stage per step; any failure
//! unwinds what was made and records `error` with the reason.

use std::os::unix::fs::DirBuilderExt;

use banger_agent_proto::protocol::{HostKey as AgentHostKey, IdentityRequest};
use banger_api::model::{VmAction, VmName, generate_name};
use banger_api::protocol::{ErrorCode, MIN_DISK_MIB, MIN_MEMORY_MIB, Vm, VmCreateParams, VmSpec};
use banger_config::{HostFacts, resolve_vm_defaults};
use banger_host::{DmName, ManagedRoots};
use banger_image::cow::{CowSupport, choose, provision_root_disk};
use banger_image::images::{ImageManifest, ImageStore};
use banger_net::ssh::{SshPaths, ensure_user_key, generate_host_key, pin_host};
use banger_net::subnet::GuestSubnet;
use banger_store::{NewVm, VmRecord};
use tokio_util::sync::CancellationToken;

use super::boot::boot;
use super::first_use::{ensure_image, ensure_kernel};
use super::record::{
    WORK_DISK_FILE, check_cancel, find, held, held_mut, root_disk_record, save_runtime, transition,
};
use super::seed;
use super::teardown::unwind_create;
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;

pub async fn create(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmCreateParams,
) -> Result<Vm, DaemonError> {
    daemon.vms.host()?;
    let spec = resolve_spec(daemon, &p)?;
    // A bad or taken name is refused before any first-use build.
    let requested = p.name.as_deref().map(valid_name).transpose()?;
    if let Some(name) = &requested {
        ensure_name_free(daemon, name).await?;
    }
    let image_name = p
        .image
        .clone()
        .unwrap_or_else(|| daemon.config.default_image_name().to_owned());
    let mut op = OpTracker::begin(&daemon.store, ctx, "vm.create", p.name.clone()).await?;
    let result = create_tracked(
        daemon,
        ctx,
        &mut op,
        requested,
        &image_name,
        spec,
        p.no_start,
    )
    .await;
    op.finish(result).await.map(super::view::vm)
}

async fn create_tracked(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    requested: Option<VmName>,
    image_name: &str,
    spec: VmSpec,
    no_start: bool,
) -> Result<VmRecord, DaemonError> {
    let manifest = ensure_image(daemon, op, image_name).await?;
    let kernel = manifest
        .kernel_ref
        .clone()
        .unwrap_or_else(|| daemon.config.default_kernel_name().to_owned());
    ensure_kernel(daemon, op, &kernel).await?;
    check_cancel(&ctx.cancel)?;
    // Refused before anything is allocated when the configured VMM cannot
    // run (e.g. `vmm = "firecracker"` without Firecracker or KVM).
    daemon.vmm().await?;

    // Name, id, CID and the record are chosen under one lock, so two
    // concurrent creates never pick the same.
    let alloc = daemon.vms.alloc.lock().await;
    let name = choose_name(daemon, requested).await?;
    op.set_target(name.as_str()).await?;
    op.stage(&format!("image {image_name}, kernel {kernel}"))
        .await?;
    let id = format!("{:016x}", fastrand::u64(..));
    let _vm_lock = daemon.vms.lock(&id).await;
    let recorded = record(daemon, &id, &name, image_name, &kernel, spec).await;
    drop(alloc);
    let vm = recorded?;
    crate::fault::point("create.recorded");

    let work = daemon.vms.interruptible(&vm.id, &ctx.cancel);
    let result = provision(daemon, op, &work.token, vm.clone(), &manifest, no_start).await;
    settle(daemon, &vm, work.killed(), result).await
}

/// How a create (or a restore) ends: on success the VM loses its
/// [`CREATING`] marker; on failure everything made is unwound and the
/// record says why.
pub(super) async fn settle(
    daemon: &Daemon,
    vm: &VmRecord,
    was_killed: bool,
    result: Result<VmRecord, DaemonError>,
) -> Result<VmRecord, DaemonError> {
    match result {
        Ok(vm) => {
            let marker = daemon.paths.vm_dir(&vm.id).join(CREATING);
            std::fs::remove_file(&marker).map_err(|e| {
                DaemonError::Internal(format!("cannot remove {}: {e}", marker.display()))
            })?;
            Ok(vm)
        }
        Err(e) => {
            let e = if was_killed { killed() } else { e };
            let reason = banger_api::error_chain(&e);
            tracing::warn!(vm = %vm.name, error = %reason, "create failed; unwinding");
            let current = find(daemon, &vm.id).await.unwrap_or_else(|_| vm.clone());
            if let Err(u) = unwind_create(daemon, &current).await {
                tracing::error!(vm = %vm.name, error = %banger_api::error_chain(&u), "unwinding a failed create");
            }
            if let Err(t) = transition(daemon, &vm.id, VmAction::Fail, Some(reason)).await {
                tracing::error!(vm = %vm.name, error = %banger_api::error_chain(&t), "recording the failure");
            }
            Err(e)
        }
    }
}

/// The requested name if still free, else a generated one; called under
/// `daemon.vms.alloc`, so two creates never pick the same.
pub(super) async fn choose_name(
    daemon: &Daemon,
    requested: Option<VmName>,
) -> Result<VmName, DaemonError> {
    match requested {
        Some(name) => {
            ensure_name_free(daemon, &name).await?;
            Ok(name)
        }
        None => {
            daemon
                .store
                .call(|s| Ok(generate_name(|n| s.vm_name_taken(n).unwrap_or(true))))
                .await
        }
    }
}

/// In the VM directory while its create runs: a VM that has it at daemon
/// start was being created when the previous daemon died, and is unwound
/// by reconcile like a failed create (a `--no-start` VM that finished has
/// none).
pub(super) const CREATING: &str = "creating";

fn mark_creating(vm_dir: &std::path::Path) -> std::io::Result<()> {
    let marker = std::fs::File::create(vm_dir.join(CREATING))?;
    marker.sync_all()?;
    std::fs::File::open(vm_dir)?.sync_all()
}

/// How a create or start that `vm kill` interrupted ends.
pub(super) fn killed() -> DaemonError {
    DaemonError::failed(
        ErrorCode::OperationFailed,
        "interrupted by `banger vm kill`; everything it had made was removed",
    )
}

pub(super) fn valid_name(name: &str) -> Result<VmName, DaemonError> {
    VmName::new(name)
        .map_err(|e| DaemonError::failed(ErrorCode::BadRequest, format!("invalid VM name: {e}")))
}

pub(super) async fn ensure_name_free(daemon: &Daemon, name: &VmName) -> Result<(), DaemonError> {
    let n = name.clone();
    if daemon.store.call(move |s| s.vm_name_taken(&n)).await? {
        return Err(banger_store::StoreError::VmNameTaken {
            name: name.to_string(),
        }
        .into());
    }
    Ok(())
}

fn resolve_spec(daemon: &Daemon, p: &VmCreateParams) -> Result<VmSpec, DaemonError> {
    let defaults = resolve_vm_defaults(&daemon.config, &HostFacts::detect());
    let spec = VmSpec {
        vcpu: p.vcpu.unwrap_or(defaults.vcpu.value),
        memory_mib: p.memory_mib.unwrap_or(defaults.memory_mib.value),
        disk_size: p.disk_size.unwrap_or(defaults.disk_size.value),
        nat: p.nat,
    };
    let bad = |m: String| Err(DaemonError::failed(ErrorCode::BadRequest, m));
    if spec.vcpu == 0 {
        return bad("--vcpu must be at least 1".into());
    }
    if spec.memory_mib < MIN_MEMORY_MIB {
        return bad(format!("--memory must be at least {MIN_MEMORY_MIB} MiB"));
    }
    if spec.disk_size.mib() < MIN_DISK_MIB {
        return bad(format!("--disk-size must be at least {MIN_DISK_MIB}M"));
    }
    Ok(spec)
}

/// The VM directory, vsock CID, the record (`created`) and the IP lease.
pub(super) async fn record(
    daemon: &Daemon,
    id: &str,
    name: &VmName,
    image: &str,
    kernel: &str,
    spec: VmSpec,
) -> Result<VmRecord, DaemonError> {
    let vm_dir = daemon.paths.vm_dir(id);
    std::fs::create_dir_all(&daemon.paths.vms_dir)
        .and_then(|()| std::fs::DirBuilder::new().mode(0o700).create(&vm_dir))
        .and_then(|()| mark_creating(&vm_dir))
        .map_err(|e| DaemonError::Internal(format!("cannot create {}: {e}", vm_dir.display())))?;
    let subnet = GuestSubnet::new(daemon.config.bridge_ip(), daemon.config.cidr_prefix())
        .map_err(|e| DaemonError::failed(ErrorCode::OperationFailed, e.to_string()))?;
    let new = NewVm {
        id: id.to_owned(),
        name: name.clone(),
        image: image.to_owned(),
        spec,
        kernel: kernel.to_owned(),
    };
    // One transaction: the record, its vsock CID and its address lease.
    let inserted = daemon
        .store
        .call(move |s| s.create_vm(new, subnet.guest_addresses()))
        .await;
    if inserted.is_err() {
        let _ = std::fs::remove_dir(&vm_dir);
    }
    inserted
}

/// Disks, keys and the boot. Each step records what it made before the next.
async fn provision(
    daemon: &Daemon,
    op: &mut OpTracker,
    cancel: &CancellationToken,
    mut vm: VmRecord,
    image: &ImageManifest,
    no_start: bool,
) -> Result<VmRecord, DaemonError> {
    let host = daemon.vms.host()?;
    let vm_dir = daemon.paths.vm_dir(&vm.id);

    // The root disk must suit the VMM that boots it: Firecracker takes raw
    // disks only, and under its jailer only files it can hard-link (not a
    // device-mapper node).
    let vmm = daemon.vmm().await?;
    let (backend, jailed) = (crate::backend::cow_backend(vmm.kind()), vmm.jailed);
    let images_dir = daemon.paths.images_dir.clone();
    let strategy = run(move || {
        let mut support = CowSupport::detect(&images_dir);
        support.device_mapper &= !jailed;
        choose(&support, backend)
    })
    .await?;
    let stage = format!("root disk ({strategy})");
    op.stage(&stage).await?;
    let roots = ManagedRoots::new([
        daemon.paths.vms_dir.clone(),
        daemon.paths.images_dir.clone(),
    ])
    .map_err(|e| DaemonError::from(banger_host::HostError::from(e)))?;
    let dm_name = DmName::new(format!("banger-{}", vm.id))
        .map_err(|e| DaemonError::from(banger_host::HostError::from(e)))?;
    let (base, dir, h) = (image.rootfs.clone(), vm_dir.clone(), host.clone());
    let disk =
        run(move || provision_root_disk(strategy, &base, &dir, h.as_ref(), &roots, &dm_name))
            .await?
            .map_err(|e| DaemonError::from(e).in_stage(&stage))?;
    held_mut(&mut vm)?.root_disk = Some(root_disk_record(&disk));
    save_runtime(daemon, &vm.id, held(&vm)?).await?;
    check_cancel(cancel)?;
    crate::fault::point("create.root-disk");

    let stage = format!("work disk ({})", vm.spec.disk_size);
    op.stage(&stage).await?;
    let store = ImageStore::new(&daemon.paths.images_dir);
    let (image_name, path, size) = (
        image.name.to_string(),
        vm_dir.join(WORK_DISK_FILE),
        vm.spec.disk_size,
    );
    let (seed_dir, sync, home) = (
        vm_dir.join("work-seed"),
        daemon.file_sync.clone(),
        daemon.owner_home.clone(),
    );
    let warnings = run(move || {
        let image_seed = store.root_seed(&image_name)?;
        let (seed, warnings) =
            seed::compose(&seed_dir, image_seed.as_deref(), &sync, home.as_deref())?;
        banger_image::create_work_disk(&path, size, Some(seed.path()))?;
        if !banger_sys::os::is_root() {
            banger_image::give_seed_to_root(&path, seed.path())?;
        }
        Ok::<_, DaemonError>(warnings)
    })
    .await?
    .map_err(|e| e.in_stage(&stage))?;
    for warning in warnings {
        op.stage(&warning).await?;
    }
    check_cancel(cancel)?;
    crate::fault::point("create.work-disk");

    if no_start {
        op.stage(&format!(
            "created, not started: `banger vm start {}` boots it",
            vm.name
        ))
        .await?;
        return Ok(vm);
    }
    let identity = ssh_identity(daemon, op, &vm).await?;
    check_cancel(cancel)?;
    crate::fault::point("create.host-key");
    boot(daemon, op, cancel, vm, Some(identity)).await
}

/// The VM's ssh identity for its first boot: banger's user key (made once)
/// authorised, and a fresh host key pinned in banger's known_hosts under the
/// VM's name and address before anything connects. The agent installs it
/// in the guest ([`super::boot`]).
pub(super) async fn ssh_identity(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
) -> Result<IdentityRequest, DaemonError> {
    let stage = "ssh keys: host key pinned before the first connection";
    op.stage(stage).await?;
    let ssh = SshPaths::new(&daemon.paths);
    let ssh = match daemon.config.ssh_key_path() {
        Some(key) => ssh.with_user_key(key),
        None => ssh,
    };
    let (name, ip, dir) = (vm.name.clone(), vm.ip(), daemon.paths.vm_dir(&vm.id));
    run(move || {
        let user = ensure_user_key(&ssh)?;
        let host_key = generate_host_key(&dir)?;
        pin_host(&ssh, &name, ip, &host_key.public)?;
        Ok::<_, DaemonError>(IdentityRequest {
            hostname: Some(name.to_string()),
            authorized_keys: Some(format!("{user}\n")),
            host_key: Some(AgentHostKey {
                private: host_key.private,
                public: host_key.public,
            }),
            ..IdentityRequest::default()
        })
    })
    .await?
    .map_err(|e| e.in_stage(stage))
}
