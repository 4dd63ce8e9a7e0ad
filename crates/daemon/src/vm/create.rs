//! `vm.create`: one tracked operation, a stage per step; any failure
//! unwinds what was made and records `error` with the reason.

use banger_api::model::VmName;
use banger_api::protocol::{ErrorCode, MIN_DISK_MIB, MIN_MEMORY_MIB, Vm, VmCreateParams, VmSpec};
use banger_config::{HostFacts, resolve_vm_defaults};
use banger_host::{DmName, ManagedRoots};
use banger_image::cow::{CowSupport, choose, provision_root_disk};
use banger_image::images::{ImageManifest, ImageStore};
use banger_store::VmRecord;
use tokio_util::sync::CancellationToken;

use super::allocate::{choose_name, ensure_name_free, record, settle, ssh_identity, valid_name};
use super::boot::{boot, kernel_boot_files};
use super::first_use::{ensure_image, ensure_kernel};
use super::record::{WORK_DISK_FILE, check_cancel, held, held_mut, root_disk_record, save_runtime};
use super::seed;
use super::warm::{self, WarmKey};
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
    let start = if p.no_start {
        Start::No
    } else if p.cold {
        Start::Cold
    } else {
        Start::Warm
    };
    let result = create_tracked(daemon, ctx, &mut op, requested, &image_name, spec, start).await;
    op.finish(result).await.map(super::view::vm)
}

/// How a create ends its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// `--no-start`: disks and record only.
    No,
    /// `--cold`: boot, and neither restore nor bake a warm snapshot.
    Cold,
    /// Restore the warm snapshot of this VM's key, or boot and bake one.
    Warm,
}

async fn create_tracked(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    requested: Option<VmName>,
    image_name: &str,
    spec: VmSpec,
    start: Start,
) -> Result<VmRecord, DaemonError> {
    let no_start = start == Start::No;
    let manifest = ensure_image(daemon, op, image_name).await?;
    let kernel = manifest
        .kernel_ref
        .clone()
        .unwrap_or_else(|| daemon.config.default_kernel_name().to_owned());
    ensure_kernel(daemon, op, &kernel).await?;
    check_cancel(&ctx.cancel)?;
    // Refused before anything is allocated when the configured VMM cannot
    // run (e.g. `vmm = "firecracker"` without Firecracker or KVM).
    let vmm = daemon.vmm().await?;
    let warm = match start {
        Start::Warm => {
            // The key names the initrd's agent: bring it up to date first.
            kernel_boot_files(daemon, op, &kernel).await?;
            tokio::task::block_in_place(|| warm::key(daemon, &manifest, &kernel, &spec, &vmm))?
        }
        Start::No | Start::Cold => None,
    };

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
    let baked = warm.as_ref().and_then(|key| warm::find(daemon, key));
    let result = match (&warm, baked) {
        (_, Some((snapshot, dir))) => {
            op.stage(&format!("restored from warm snapshot {}", snapshot.name))
                .await?;
            warm::touch(&dir);
            super::restore::layer_and_restore(daemon, op, &work.token, vm.clone(), &snapshot, &dir)
                .await
        }
        (Some(key), None) => {
            op.stage("cold boot").await?;
            let booted = provision(daemon, op, &work.token, vm.clone(), &manifest, false).await;
            if let Ok(vm) = &booted {
                bake(daemon, op, vm, key).await?;
            }
            booted
        }
        (None, None) => provision(daemon, op, &work.token, vm.clone(), &manifest, no_start).await,
    };
    settle(daemon, &vm, work.killed(), result).await
}

/// Snapshots the VM just booted as the warm snapshot of `key`, then prunes
/// the warm cache to its bound. A bake that fails costs the next create its
/// head start, not this one its VM: it is a warning.
async fn bake(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
    key: &WarmKey,
) -> Result<(), DaemonError> {
    let name = key.snapshot_name();
    op.stage(&format!("baking warm snapshot {name} for the next runs"))
        .await?;
    let baked = async {
        let agent = super::handles::running_agent(daemon, vm)?;
        let handle = super::handles::read_handles(&daemon.paths.vm_dir(&vm.id))
            .map(|h| h.handle)
            .ok_or_else(|| DaemonError::Internal("the new VM has no handles".into()))?;
        let store = crate::snapshots::store(daemon);
        let kind = super::snapshot::Kind::Warm(key.0.clone());
        super::snapshot::take(daemon, op, &store, vm, &name, &agent, handle, kind).await?;
        let bound = daemon.config.warm_cache_size().bytes();
        crate::snapshots::prune_warm(daemon, bound).await
    }
    .await;
    match baked {
        Ok(pruned) if !pruned.is_empty() => {
            op.stage(&format!(
                "warm cache over its bound: removed {}",
                pruned.join(", ")
            ))
            .await
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(vm = %vm.name, error = %banger_api::error_chain(&e), "no warm snapshot baked");
            op.stage(&format!(
                "warning: no warm snapshot baked: {}",
                banger_api::error_chain(&e)
            ))
            .await
        }
    }
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
