//! Copy-on-write root disks (SPEC §7). The image's `rootfs.ext4` is shared
//! and never written; each VM gets its own root disk over it, made by the
//! cheapest strategy the host supports ([`choose`]):
//!
//! - reflink: an `FICLONE` clone sharing every extent with the base (xfs
//!   with `reflink=1`, btrfs, ...); constant time, no privilege;
//! - device-mapper snapshot: the base and a sparse COW file through loop
//!   devices, made by the privileged host layer;
//! - qcow2 overlay: for QEMU only, a qcow2 file whose backing file is the
//!   base; no privilege;
//! - sparse copy: a full copy, holes preserved; time proportional to the
//!   image, so only the last resort (doctor warns).
//!
//! What was made is returned as a [`RootDisk`], which the caller stores in
//! the VM's durable record; [`teardown_root_disk`] works from it alone.

mod detect;
mod dm;
mod qcow2;
mod reflink;
mod sparse;
pub(crate) mod strategy;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;
pub use strategy::CowStrategy;

use banger_host::{DmName, HostOps, ManagedRoots, SnapshotDevice};
use serde::{Deserialize, Serialize};

pub use detect::{CowSupport, ProbeNotes, choose, describe};

use crate::error::DiskError;
use crate::newfile::remove_if_exists;

/// The VMM a root disk is made for: only QEMU reads qcow2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Firecracker,
    Qemu,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Firecracker => "Firecracker",
            Backend::Qemu => "QEMU",
        })
    }
}

/// The format the VMM must be told the root disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// What was made for one VM. Serialisable because it is stored in the VM's
/// durable record, so teardown works from it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDisk {
    pub strategy: CowStrategy,
    /// What the VMM opens: a file in the VM directory, or `/dev/mapper/...`.
    pub path: PathBuf,
    pub format: DiskFormat,
    /// The device-mapper snapshot, for [`CowStrategy::DmSnapshot`].
    pub snapshot: Option<SnapshotDevice>,
    /// The snapshot's exception store, for [`CowStrategy::DmSnapshot`].
    pub cow_file: Option<PathBuf>,
}

/// File names inside the VM directory.
pub const RAW_ROOT_NAME: &str = "root.ext4";
pub const QCOW2_ROOT_NAME: &str = "root.qcow2";
pub const COW_FILE_NAME: &str = "root.cow";

/// Makes the root disk of one VM over `base` (the image's read-only
/// `rootfs.ext4`) in `vm_dir` with the given strategy. `host`, `roots` and
/// `name` are used by [`CowStrategy::DmSnapshot`] only: the snapshot is
/// created by the privileged host layer, which accepts only paths inside
/// `roots`. Whatever a failing call created is removed again.
pub fn provision_root_disk(
    strategy: CowStrategy,
    base: &Path,
    vm_dir: &Path,
    host: &dyn HostOps,
    roots: &ManagedRoots,
    name: &DmName,
) -> Result<RootDisk, DiskError> {
    let started = Instant::now();
    let disk = match strategy {
        CowStrategy::Reflink => {
            let path = reflink::clone_file(base, &vm_dir.join(RAW_ROOT_NAME))?;
            raw_file(strategy, path)
        }
        CowStrategy::SparseCopy => {
            let path = sparse::copy(base, &vm_dir.join(RAW_ROOT_NAME))?;
            raw_file(strategy, path)
        }
        CowStrategy::Qcow2Overlay => RootDisk {
            strategy,
            path: qcow2::create_overlay(base, &vm_dir.join(QCOW2_ROOT_NAME))?,
            format: DiskFormat::Qcow2,
            snapshot: None,
            cow_file: None,
        },
        CowStrategy::DmSnapshot => {
            dm::create(base, &vm_dir.join(COW_FILE_NAME), host, roots, name)?
        }
    };
    tracing::info!(
        %strategy,
        base = %base.display(),
        disk = %disk.path.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "root disk provisioned"
    );
    Ok(disk)
}

/// The root disk of a VM restored from a snapshot, over the snapshot's
/// frozen root `base`: a qcow2 overlay when that is qcow2 (QEMU), else a
/// sparse copy (Firecracker takes raw disks only). The snapshot's file is
/// only read.
pub fn layer_over_snapshot(
    base: &Path,
    base_format: DiskFormat,
    vm_dir: &Path,
) -> Result<RootDisk, DiskError> {
    Ok(match base_format {
        DiskFormat::Qcow2 => RootDisk {
            strategy: CowStrategy::Qcow2Overlay,
            path: qcow2::create_overlay_of(base, "qcow2", &vm_dir.join(QCOW2_ROOT_NAME))?,
            format: DiskFormat::Qcow2,
            snapshot: None,
            cow_file: None,
        },
        DiskFormat::Raw => raw_file(
            CowStrategy::SparseCopy,
            sparse::copy(base, &vm_dir.join(RAW_ROOT_NAME))?,
        ),
    })
}

fn raw_file(strategy: CowStrategy, path: PathBuf) -> RootDisk {
    RootDisk {
        strategy,
        path,
        format: DiskFormat::Raw,
        snapshot: None,
        cow_file: None,
    }
}

/// Removes what [`provision_root_disk`] made. Idempotent: what is already
/// gone counts as removed, so an interrupted teardown can be re-run.
pub fn teardown_root_disk(disk: &RootDisk, host: &dyn HostOps) -> Result<(), DiskError> {
    match disk.strategy {
        CowStrategy::Reflink | CowStrategy::SparseCopy | CowStrategy::Qcow2Overlay => {
            remove_if_exists(&disk.path)?;
        }
        CowStrategy::DmSnapshot => dm::remove(disk, host)?,
    }
    tracing::info!(strategy = %disk.strategy, disk = %disk.path.display(), "root disk removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_serialise_in_kebab_case_and_display_the_same() {
        for (s, name) in [
            (CowStrategy::Reflink, "reflink"),
            (CowStrategy::DmSnapshot, "dm-snapshot"),
            (CowStrategy::Qcow2Overlay, "qcow2-overlay"),
            (CowStrategy::SparseCopy, "sparse-copy"),
        ] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
            assert_eq!(s.to_string(), name);
            assert_eq!(s.copies_the_image(), s == CowStrategy::SparseCopy);
        }
    }

    #[test]
    fn a_root_disk_record_round_trips() {
        let disk = RootDisk {
            strategy: CowStrategy::Qcow2Overlay,
            path: PathBuf::from("/var/lib/banger/vms/x/root.qcow2"),
            format: DiskFormat::Qcow2,
            snapshot: None,
            cow_file: None,
        };
        let json = serde_json::to_string(&disk).unwrap();
        assert!(
            json.contains("\"qcow2-overlay\"") && json.contains("\"qcow2\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<RootDisk>(&json).unwrap(), disk);
    }

    #[test]
    fn file_backed_teardown_removes_the_file_and_can_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RAW_ROOT_NAME);
        std::fs::write(&path, b"disk").unwrap();
        let disk = raw_file(CowStrategy::Reflink, path.clone());
        let host = banger_host::RecordingHost::new();
        teardown_root_disk(&disk, &host).unwrap();
        assert!(!path.exists());
        teardown_root_disk(&disk, &host).unwrap();
        assert!(
            host.calls().is_empty(),
            "file strategies never call the host"
        );
    }
}
