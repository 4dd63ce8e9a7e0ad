//! Device-mapper snapshots: the VM's writes go to a sparse COW file in its
//! directory; the snapshot device itself (loop devices and the `dmsetup`
//! table) is made by the privileged host layer, which accepts only paths
//! inside banger's directories.

use std::path::Path;

use banger_host::{DmName, HostOps, ManagedPath, ManagedRoots, SnapshotRequest};

use super::{CowStrategy, DiskFormat, RootDisk};
use crate::error::DiskError;
use crate::newfile::{NewFile, remove_if_exists};

const MIB: u64 = 1024 * 1024;

/// Size of the COW file for a base of `base_len` bytes. A persistent
/// snapshot stores each 4 KiB chunk the VM writes plus one 4 KiB metadata
/// chunk per 256 of them and a header; sizing it to the base plus 1/128 and
/// a MiB means even a VM that rewrites its whole disk never fills it (a
/// full snapshot becomes invalid). The file is sparse, so the margin costs
/// nothing until used.
pub(super) fn cow_file_size(base_len: u64) -> u64 {
    base_len.saturating_add(base_len / 128).saturating_add(MIB)
}

pub(super) fn create(
    base: &Path,
    cow_path: &Path,
    host: &dyn HostOps,
    roots: &ManagedRoots,
    name: &DmName,
) -> Result<RootDisk, DiskError> {
    let unmanaged = |source| DiskError::Unmanaged {
        strategy: CowStrategy::DmSnapshot,
        source: Box::new(source),
    };
    // Validated before anything is created, so a refusal leaves nothing.
    let managed_base = ManagedPath::new(base, roots).map_err(unmanaged)?;
    let managed_cow = ManagedPath::new(cow_path, roots).map_err(unmanaged)?;
    let base_len = std::fs::metadata(base)
        .map_err(|e| DiskError::io("inspect the base image", base, e))?
        .len();

    let mut cow = NewFile::create(cow_path)?;
    cow.set_len(cow_file_size(base_len))?;
    cow.close();

    let request = SnapshotRequest {
        name: name.clone(),
        base: managed_base,
        cow: managed_cow,
    };
    let device = host
        .create_snapshot(&request)
        .map_err(|source| DiskError::Host {
            action: format!(
                "create device-mapper snapshot {name} over {} with COW file {}",
                base.display(),
                cow_path.display()
            ),
            source: Box::new(source),
        })?;
    Ok(RootDisk {
        strategy: CowStrategy::DmSnapshot,
        path: device.device.clone(),
        format: DiskFormat::Raw,
        snapshot: Some(device),
        cow_file: Some(cow.keep()),
    })
}

/// Removes the snapshot device, then its COW file. The file stays if the
/// device could not be removed: it still holds the VM's writes, and a later
/// teardown retries both.
pub(super) fn remove(disk: &RootDisk, host: &dyn HostOps) -> Result<(), DiskError> {
    if let Some(device) = &disk.snapshot {
        host.remove_snapshot(device)
            .map_err(|source| DiskError::Host {
                action: format!("remove device-mapper snapshot {}", device.name),
                source: Box::new(source),
            })?;
    }
    if let Some(cow) = &disk.cow_file {
        remove_if_exists(cow)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    use banger_host::{OpKind, PrivOp, RecordingHost};

    use super::super::{COW_FILE_NAME, provision_root_disk, teardown_root_disk};
    use super::*;

    /// A state directory with an image and a VM directory, as roots.
    struct Sandbox {
        _dir: tempfile::TempDir,
        base: PathBuf,
        vm_dir: PathBuf,
        roots: ManagedRoots,
    }

    fn sandbox() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        // Canonical: the roots must not contain a symlink (/tmp may be one).
        let state = dir.path().canonicalize().unwrap().join("state");
        std::fs::create_dir_all(state.join("images/debian")).unwrap();
        std::fs::create_dir_all(state.join("vms/abc")).unwrap();
        let base = state.join("images/debian/rootfs.ext4");
        std::fs::File::create(&base)
            .unwrap()
            .set_len(64 * MIB)
            .unwrap();
        Sandbox {
            _dir: dir,
            base,
            vm_dir: state.join("vms/abc"),
            roots: ManagedRoots::new([state]).unwrap(),
        }
    }

    fn dm_name() -> DmName {
        DmName::new("banger-abc").unwrap()
    }

    fn provision(s: &Sandbox, host: &RecordingHost) -> Result<RootDisk, DiskError> {
        provision_root_disk(
            CowStrategy::DmSnapshot,
            &s.base,
            &s.vm_dir,
            host,
            &s.roots,
            &dm_name(),
        )
    }

    #[test]
    fn provision_asks_the_host_for_a_snapshot_of_the_managed_paths() {
        let s = sandbox();
        let host = RecordingHost::new();
        let disk = provision(&s, &host).unwrap();

        let cow = s.vm_dir.join(COW_FILE_NAME);
        let calls = host.calls();
        let [PrivOp::CreateSnapshot { request }] = calls.as_slice() else {
            panic!("{calls:?}")
        };
        assert_eq!(request.name, dm_name());
        assert_eq!(request.base.as_path(), s.base);
        assert_eq!(request.cow.as_path(), cow);

        let device = host.state().snapshots[&dm_name()].clone();
        assert_eq!(disk.path, device.device);
        assert_eq!(disk.path, Path::new("/dev/mapper/banger-abc"));
        assert_eq!(disk.format, DiskFormat::Raw);
        assert_eq!(disk.snapshot, Some(device));
        assert_eq!(disk.cow_file.as_deref(), Some(cow.as_path()));

        let meta = cow.metadata().unwrap();
        assert_eq!(meta.len(), cow_file_size(64 * MIB));
        assert!(meta.len() > 64 * MIB, "room for the snapshot's metadata");
        assert!(
            meta.blocks() < 64,
            "the COW file must be sparse, has {} blocks",
            meta.blocks()
        );
    }

    #[test]
    fn a_failing_snapshot_leaves_no_cow_file() {
        let s = sandbox();
        let host = RecordingHost::new();
        host.fail_next(OpKind::CreateSnapshot);
        let err = provision(&s, &host).unwrap_err();
        assert!(matches!(err, DiskError::Host { .. }), "{err:?}");
        assert!(err.to_string().contains("banger-abc"), "{err}");
        assert!(!s.vm_dir.join(COW_FILE_NAME).exists());
        assert!(host.state().snapshots.is_empty());
    }

    #[test]
    fn paths_outside_the_roots_are_refused_before_anything_is_made() {
        let s = sandbox();
        let other = tempfile::tempdir().unwrap();
        let host = RecordingHost::new();
        let err = provision_root_disk(
            CowStrategy::DmSnapshot,
            &s.base,
            other.path(),
            &host,
            &s.roots,
            &dm_name(),
        )
        .unwrap_err();
        assert!(matches!(err, DiskError::Unmanaged { .. }), "{err:?}");
        assert!(host.calls().is_empty());
        assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
    }

    #[test]
    fn teardown_removes_the_snapshot_then_the_cow_file_and_can_repeat() {
        let s = sandbox();
        let host = RecordingHost::new();
        let disk = provision(&s, &host).unwrap();
        host.take_calls();

        teardown_root_disk(&disk, &host).unwrap();
        let device = disk.snapshot.clone().unwrap();
        assert_eq!(
            host.take_calls(),
            vec![PrivOp::RemoveSnapshot {
                device: device.clone()
            }]
        );
        assert!(host.state().snapshots.is_empty());
        assert!(!s.vm_dir.join(COW_FILE_NAME).exists());

        teardown_root_disk(&disk, &host).unwrap();
        assert_eq!(host.calls(), vec![PrivOp::RemoveSnapshot { device }]);
    }

    #[test]
    fn a_failed_snapshot_removal_keeps_the_cow_file_for_a_retry() {
        let s = sandbox();
        let host = RecordingHost::new();
        let disk = provision(&s, &host).unwrap();
        host.fail_next(OpKind::RemoveSnapshot);
        let err = teardown_root_disk(&disk, &host).unwrap_err();
        assert!(
            err.to_string()
                .contains("remove device-mapper snapshot banger-abc"),
            "{err}"
        );
        assert!(s.vm_dir.join(COW_FILE_NAME).exists());
        teardown_root_disk(&disk, &host).unwrap();
        assert!(!s.vm_dir.join(COW_FILE_NAME).exists());
    }

    #[test]
    fn the_record_alone_is_enough_for_teardown() {
        let s = sandbox();
        let host = RecordingHost::new();
        let disk = provision(&s, &host).unwrap();
        let stored: RootDisk =
            serde_json::from_str(&serde_json::to_string(&disk).unwrap()).unwrap();
        assert_eq!(stored, disk);
        teardown_root_disk(&stored, &host).unwrap();
        assert!(host.state().snapshots.is_empty());
        assert!(!s.vm_dir.join(COW_FILE_NAME).exists());
    }
}
