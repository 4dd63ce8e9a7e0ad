//! `vm.restore`: a new VM from a snapshot. It is allocated like a created
//! one (name, id, address, MAC, tap), its disks are copy-on-write layers
//! over the snapshot's frozen ones, and the VMM loads the saved memory
//! instead of booting. Before it counts as running, the agent gives it its
//! own identity: the copy starts out with its parent's hostname, address,
//! MAC, machine-id, host key, RNG state and a clock stopped at the moment
//! of the snapshot, and serves no command until all of that is replaced.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use banger_agent_proto::protocol::{IdentityRequest, NetworkIdentity};
use banger_api::model::VmName;
use banger_api::protocol::{ErrorCode, Vm, VmRestoreParams};
use banger_store::VmRecord;
use tokio_util::sync::CancellationToken;

use super::allocate::{choose_name, ensure_name_free, record, settle, ssh_identity, valid_name};
use super::boot::boot_from;
use super::record::{WORK_DISK_FILE, guest_mac, held, held_mut, root_disk_record, save_runtime};
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::snapshots::{self, SnapshotManifest};
use crate::state::Daemon;

/// Bytes of the host's randomness a restored guest mixes into its pool.
const ENTROPY_BYTES: usize = 64;
/// The NIC banger's guests are configured on.
const GUEST_IFACE: &str = "eth0";

pub async fn restore(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmRestoreParams,
) -> Result<Vm, DaemonError> {
    daemon.vms.host()?;
    let store = snapshots::store(daemon);
    let wanted = p.snapshot.clone();
    let (manifest, dir) = run(move || store.show(&wanted)).await??;
    let requested = p.name.as_deref().map(valid_name).transpose()?;
    if let Some(name) = &requested {
        ensure_name_free(daemon, name).await?;
    }
    let vmm = daemon.vmm().await?;
    if vmm.kind() != manifest.backend {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "snapshot {} was taken under {:?}, and this daemon runs new VMs on {}; \
                 only the VMM that saved a snapshot can restore it",
                manifest.name, manifest.backend, vmm.label
            ),
        ));
    }
    let mut op = OpTracker::begin(&daemon.store, ctx, "vm.restore", p.name.clone()).await?;
    let result = restore_tracked(daemon, ctx, &mut op, requested, &manifest, &dir).await;
    op.finish(result).await.map(super::view::vm)
}

pub(super) async fn restore_tracked(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    requested: Option<VmName>,
    manifest: &SnapshotManifest,
    dir: &Path,
) -> Result<VmRecord, DaemonError> {
    let alloc = daemon.vms.alloc.lock().await;
    let name = choose_name(daemon, requested).await?;
    op.set_target(name.as_str()).await?;
    op.stage(&format!(
        "snapshot {} of {}: image {}, kernel {}",
        manifest.name, manifest.source_vm, manifest.image, manifest.kernel
    ))
    .await?;
    let id = format!("{:016x}", fastrand::u64(..));
    let _vm_lock = daemon.vms.lock(&id).await;
    let recorded = record(
        daemon,
        &id,
        &name,
        &manifest.image,
        &manifest.kernel,
        manifest.spec.clone(),
    )
    .await;
    drop(alloc);
    let vm = recorded?;
    let work = daemon.vms.interruptible(&vm.id, &ctx.cancel);
    let result = layer_and_restore(daemon, op, &work.token, vm.clone(), manifest, dir).await;
    settle(daemon, &vm, work.killed(), result).await
}

pub(super) async fn layer_and_restore(
    daemon: &Daemon,
    op: &mut OpTracker,
    cancel: &CancellationToken,
    mut vm: VmRecord,
    manifest: &SnapshotManifest,
    dir: &Path,
) -> Result<VmRecord, DaemonError> {
    let stage = "disks: copy-on-write layers over the snapshot's";
    op.stage(stage).await?;
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let (base, format, into) = (
        dir.join(manifest.root_file()),
        match manifest.root_format {
            banger_vmm::DiskFormat::Qcow2 => banger_image::cow::DiskFormat::Qcow2,
            banger_vmm::DiskFormat::Raw => banger_image::cow::DiskFormat::Raw,
        },
        vm_dir.clone(),
    );
    let root = run(move || banger_image::cow::layer_over_snapshot(&base, format, &into))
        .await?
        .map_err(|e| DaemonError::from(e).in_stage(stage))?;
    {
        let runtime = held_mut(&mut vm)?;
        runtime.root_disk = Some(root_disk_record(&root));
        runtime.restored_from = Some(manifest.name.clone());
    }
    save_runtime(daemon, &vm.id, held(&vm)?).await?;
    let (from, to) = (dir.join(snapshots::WORK_DISK), vm_dir.join(WORK_DISK_FILE));
    run(move || snapshots::copy_disk(&from, &to))
        .await?
        .map_err(|e| e.in_stage(stage))?;
    super::record::check_cancel(cancel)?;

    let identity = refresh_identity(daemon, op, &vm).await?;
    boot_from(
        daemon,
        op,
        cancel,
        vm,
        Some(identity),
        Some((&manifest.name, dir)),
    )
    .await
}

/// Everything a copy must not share with its parent or its siblings: a
/// new name and host key (pinned before any connection), a new address and
/// MAC on its own tap's fence, a new machine-id, fresh randomness from the
/// host and the host's clock.
async fn refresh_identity(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
) -> Result<IdentityRequest, DaemonError> {
    let mut identity = ssh_identity(daemon, op, vm).await?;
    let ip = held(vm)?.ip;
    let c = &daemon.config;
    identity.network = Some(NetworkIdentity {
        iface: GUEST_IFACE.into(),
        mac: guest_mac(ip).to_string(),
        address: format!("{ip}/{}", c.cidr_prefix()),
        gateway: c.bridge_ip().to_string(),
    });
    let random = host_random(ENTROPY_BYTES + 16)?;
    identity.machine_id = Some(hex(&random[..16]));
    identity.entropy = Some(banger_agent_proto::base64::encode(&random[16..]));
    identity.realtime_ns = Some(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| DaemonError::Internal(format!("the host clock is before 1970: {e}")))?
            .as_nanos() as u64,
    );
    Ok(identity)
}

/// Bytes from the host kernel's RNG.
fn host_random(n: usize) -> Result<Vec<u8>, DaemonError> {
    use std::io::Read;
    let path = PathBuf::from("/dev/urandom");
    let mut bytes = vec![0u8; n];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| DaemonError::Internal(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
