//! `snapshot.*` and what `vm.snapshot` and `vm.restore` share: the store on
//! disk ([`store`]), names, and copying a disk.

mod store;

use std::path::Path;

use banger_api::model::VmName;
use banger_api::protocol::{ErrorCode, NameParams, SnapshotInfo};
use banger_sys::Cmd;

pub use store::{
    FORMAT_VERSION, LAST_USED, SnapshotManifest, SnapshotStore, WORK_DISK, disk_bytes, last_used,
    taken,
};

use crate::blocking::run;
use crate::error::DaemonError;
use crate::state::Daemon;

pub fn store(daemon: &Daemon) -> SnapshotStore {
    SnapshotStore::new(daemon.paths.state_dir.join("snapshots"))
}

/// Snapshot names follow the VM name rule (a DNS label).
pub fn valid_name(name: &str) -> Result<VmName, DaemonError> {
    VmName::new(name).map_err(|e| {
        DaemonError::failed(ErrorCode::BadRequest, format!("invalid snapshot name: {e}"))
    })
}

/// Copies a disk, sparse, sharing blocks where the filesystem can (reflink):
/// time and space go with the data the disk holds, not its size.
pub fn copy_disk(from: &Path, to: &Path) -> Result<(), DaemonError> {
    Cmd::new("cp")
        .args(["--sparse=always", "--reflink=auto", "--"])
        .arg(from)
        .arg(to)
        .run()
        .map_err(|e| DaemonError::Internal(format!("cannot copy a disk: {e}")))?;
    // `cp` gives the copy its source's mode, and a snapshot's files are
    // read-only: the copy is the owner's to write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DaemonError::Internal(format!("cannot chmod {}: {e}", to.display())))
}

pub fn info(manifest: &SnapshotManifest, path: &Path, used_by: Vec<String>) -> SnapshotInfo {
    SnapshotInfo {
        name: manifest.name.clone(),
        source_vm: manifest.source_vm.clone(),
        backend: match manifest.backend {
            banger_vmm::BackendKind::Qemu => "qemu",
            banger_vmm::BackendKind::Firecracker => "firecracker",
        }
        .into(),
        image: manifest.image.clone(),
        kernel: manifest.kernel.clone(),
        spec: manifest.spec.clone(),
        created_at: manifest.created_at.clone(),
        disk_bytes: disk_bytes(path),
        path: path.display().to_string(),
        warm: manifest.warm_key.is_some(),
        used_by,
    }
}

/// The VMs restored from each snapshot (their disks are layered on it).
async fn users(daemon: &Daemon) -> Result<Vec<(String, String)>, DaemonError> {
    let vms = daemon.store.call(|s| s.list_vms()).await?;
    Ok(vms
        .into_iter()
        .filter_map(|vm| {
            let from = vm.runtime.as_ref()?.restored_from.clone()?;
            Some((from, vm.name.to_string()))
        })
        .collect())
}

fn used_by(users: &[(String, String)], name: &str) -> Vec<String> {
    users
        .iter()
        .filter(|(from, _)| from == name)
        .map(|(_, vm)| vm.clone())
        .collect()
}

/// Removes warm snapshots no VM uses, least recently used first, until
/// the warm ones together take at most `bound` bytes. Returns their names.
pub async fn prune_warm(daemon: &Daemon, bound: u64) -> Result<Vec<String>, DaemonError> {
    let users = users(daemon).await?;
    let store = store(daemon);
    run(move || {
        let mut warm: Vec<_> = store
            .list()?
            .into_iter()
            .filter(|(m, _)| m.warm_key.is_some())
            .map(|(m, dir)| (last_used(&dir), disk_bytes(&dir), m.name))
            .collect();
        let mut total: u64 = warm.iter().map(|w| w.1).sum();
        warm.sort();
        let mut removed = Vec::new();
        for (_, bytes, name) in warm {
            if total <= bound {
                break;
            }
            if !used_by(&users, &name).is_empty() {
                continue;
            }
            store.remove(&name)?;
            total = total.saturating_sub(bytes);
            removed.push(name);
        }
        Ok(removed)
    })
    .await?
}

/// After a VM restored from `name` is deleted: a `vm fork` snapshot that no
/// VM uses any more goes too (nothing else could use it).
pub async fn release(daemon: &Daemon, name: &str) -> Result<(), DaemonError> {
    let store = store(daemon);
    let Ok((manifest, _)) = store.show(name) else {
        return Ok(());
    };
    if manifest.fork_of.is_none() || !used_by(&users(daemon).await?, name).is_empty() {
        return Ok(());
    }
    let name = name.to_owned();
    run(move || store.remove(&name)).await?
}

pub async fn list(daemon: &Daemon) -> Result<Vec<SnapshotInfo>, DaemonError> {
    let store = store(daemon);
    let all = run(move || store.list()).await??;
    let users = users(daemon).await?;
    Ok(all
        .iter()
        .map(|(m, path)| info(m, path, used_by(&users, &m.name)))
        .collect())
}

pub async fn show(daemon: &Daemon, p: NameParams) -> Result<SnapshotInfo, DaemonError> {
    let store = store(daemon);
    let (m, path) = run(move || store.show(&p.name)).await??;
    let users = users(daemon).await?;
    Ok(info(&m, &path, used_by(&users, &m.name)))
}

pub async fn delete(daemon: &Daemon, p: NameParams) -> Result<(), DaemonError> {
    let users = used_by(&users(daemon).await?, &p.name);
    if !users.is_empty() {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "snapshot {} is the base of VMs {}: delete them first",
                p.name,
                users.join(", ")
            ),
        ));
    }
    let store = store(daemon);
    run(move || store.remove(&p.name)).await?
}
