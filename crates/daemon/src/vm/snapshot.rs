//! `vm.snapshot`: the agent frozen, the VM paused and its memory and device
//! state saved, read-only copies of its disks taken while it is still, then
//! the VM resumed and thawed. The copies become the snapshot's frozen base:
//! every VM restored from it gets its own copy-on-write layer on top.

use std::path::Path;

use banger_api::model::generate_name;
use banger_api::protocol::{ErrorCode, SnapshotInfo, VmSnapshotParams};
use banger_store::{RootDiskStrategy, VmRecord};
use banger_vmm::{DiskFormat, VmHandle, VmmBackend};

use super::handles::{read_handles, running_agent};
use super::power::locked;
use super::record::{WORK_DISK_FILE, held};
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::snapshots::{self, SnapshotManifest, SnapshotStore};
use crate::state::Daemon;

pub async fn snapshot(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmSnapshotParams,
) -> Result<SnapshotInfo, DaemonError> {
    let store = snapshots::store(daemon);
    let name = match &p.name {
        Some(name) => snapshots::valid_name(name)?,
        None => generate_name(|n| store.exists(n.as_str())),
    };
    if store.exists(name.as_str()) {
        return Err(snapshots::taken(name.as_str()));
    }
    let (vm, _guard) = locked(daemon, &p.vm).await?;
    let agent = running_agent(daemon, &vm)?;
    let handle = read_handles(&daemon.paths.vm_dir(&vm.id))
        .map(|h| h.handle)
        .ok_or_else(|| {
            DaemonError::failed(
                ErrorCode::OperationFailed,
                format!("VM {} has no running VMM on record", vm.name),
            )
        })?;
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "vm.snapshot", Some(vm.name.to_string())).await?;
    let result = take(
        daemon,
        &mut op,
        &store,
        &vm,
        name.as_str(),
        &agent,
        handle,
        Kind::User,
    )
    .await;
    op.finish(result).await
}

/// Who a snapshot is for.
pub(super) enum Kind {
    /// `vm snapshot`.
    User,
    /// The warm cache, with its key.
    Warm(String),
    /// `vm fork`: removed with the last of its children.
    Fork,
}

/// Takes snapshot `name` of the running `vm` (whose lock the caller holds).
#[allow(clippy::too_many_arguments)]
pub(super) async fn take(
    daemon: &Daemon,
    op: &mut OpTracker,
    store: &SnapshotStore,
    vm: &VmRecord,
    name: &str,
    agent: &Path,
    handle: VmHandle,
    kind: Kind,
) -> Result<SnapshotInfo, DaemonError> {
    let runtime = held(vm)?;
    let root = runtime.root_disk.clone().ok_or_else(|| {
        DaemonError::Internal(format!("VM {} has no root disk on record", vm.name))
    })?;
    let root_format = match root.strategy {
        RootDiskStrategy::Qcow2Overlay => DiskFormat::Qcow2,
        RootDiskStrategy::Reflink | RootDiskStrategy::SparseCopy => DiskFormat::Raw,
        RootDiskStrategy::DmSnapshot => {
            return Err(DaemonError::failed(
                ErrorCode::OperationFailed,
                format!(
                    "VM {}'s root disk is a device-mapper snapshot, which banger cannot copy \
                     into a snapshot yet",
                    vm.name
                ),
            ));
        }
    };
    let driver = daemon.vms.driver_for(handle.backend);
    let staging = store.staging()?;
    let manifest = SnapshotManifest {
        format_version: snapshots::FORMAT_VERSION,
        name: name.to_string(),
        source_vm: vm.name.to_string(),
        source_id: vm.id.clone(),
        backend: handle.backend,
        image: vm.image.clone(),
        kernel: runtime.kernel.clone(),
        spec: vm.spec.clone(),
        root_format,
        created_at: banger_store::now_rfc3339(),
        warm_key: match &kind {
            Kind::Warm(key) => Some(key.clone()),
            Kind::User | Kind::Fork => None,
        },
        fork_of: matches!(kind, Kind::Fork).then(|| vm.name.to_string()),
    };
    let work = daemon.paths.vm_dir(&vm.id).join(WORK_DISK_FILE);
    let frozen = freeze_and_copy(
        daemon,
        op,
        &driver,
        &handle,
        agent,
        &staging,
        (&root.path, &work),
        &manifest,
    )
    .await;
    let published = frozen.and_then(|()| store.publish(&staging, &manifest));
    match published {
        Ok(path) => {
            op.stage(&format!("snapshot {name} taken; {} runs on", vm.name))
                .await?;
            Ok(snapshots::info(&manifest, &path, Vec::new()))
        }
        Err(e) => {
            if let Err(cleanup) = std::fs::remove_dir_all(&staging) {
                tracing::warn!(path = %staging.display(), error = %cleanup, "cannot remove a failed snapshot");
            }
            Err(e)
        }
    }
}

/// Everything between freezing the agent and thawing it. The VM resumes and
/// its agent thaws whatever happened in between: a failed snapshot must
/// not stop the VM it was taken of.
#[allow(clippy::too_many_arguments)]
async fn freeze_and_copy(
    daemon: &Daemon,
    op: &mut OpTracker,
    driver: &std::sync::Arc<dyn VmmBackend>,
    handle: &VmHandle,
    agent: &Path,
    staging: &Path,
    (root, work): (&Path, &Path),
    manifest: &SnapshotManifest,
) -> Result<(), DaemonError> {
    let stage = "agent: no command runs in a copy before its identity refresh";
    op.stage(stage).await?;
    let (guest, uds) = (daemon.vms.guest(), agent.to_owned());
    run(move || guest.freeze(&uds))
        .await?
        .map_err(|e| DaemonError::from(e).in_stage(stage))?;
    let saved = async {
        let stage = "pausing; saving memory and device state";
        op.stage(stage).await?;
        let (d, h, dir) = (driver.clone(), handle.clone(), staging.to_owned());
        run(move || d.save(&h, &dir))
            .await?
            .map_err(|e| DaemonError::from(e).in_stage(stage))?;
        let stage = "copying the disks while the VM is still";
        op.stage(stage).await?;
        let copies = [
            (root.to_owned(), staging.join(manifest.root_file())),
            (work.to_owned(), staging.join(snapshots::WORK_DISK)),
        ];
        run(move || {
            copies
                .iter()
                .try_for_each(|(from, to)| snapshots::copy_disk(from, to))
        })
        .await?
        .map_err(|e| e.in_stage(stage))
    }
    .await;
    op.stage("resuming").await?;
    let (d, h) = (driver.clone(), handle.clone());
    let resumed = run(move || d.resume(&h))
        .await?
        .map_err(|e| DaemonError::from(e).in_stage("resuming"));
    let (guest, uds) = (daemon.vms.guest(), agent.to_owned());
    let thawed = run(move || guest.thaw(&uds))
        .await?
        .map_err(|e| DaemonError::from(e).in_stage("thawing the agent"));
    saved.and(resumed).and(thawed)
}
