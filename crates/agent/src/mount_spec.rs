//! A mount as data, so the init modes' mount plans are plain values that
//! tests can inspect, and the syscall is one small function.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use thiserror::Error;

use crate::mountinfo::{self, MountEntry};

/// One filesystem to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: &'static str,
    pub target: PathBuf,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

impl MountSpec {
    pub fn new(
        source: &'static str,
        target: impl Into<PathBuf>,
        fstype: &'static str,
        flags: MsFlags,
        data: Option<&'static str>,
    ) -> Self {
        MountSpec {
            source,
            target: target.into(),
            fstype,
            flags,
            data,
        }
    }
}

/// A mount that failed.
#[derive(Debug, Error)]
pub enum MountError {
    #[error("cannot create mount point {}: {source}", path.display())]
    MountPoint { path: PathBuf, source: io::Error },
    #[error("mount {source_dev} on {} ({fstype}): {errno}", target.display())]
    Mount {
        source_dev: String,
        target: PathBuf,
        fstype: String,
        errno: nix::errno::Errno,
    },
    #[error("move mount {} to {}: {errno}", from.display(), to.display())]
    Move {
        from: PathBuf,
        to: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// The specs whose target is not already a mount point.
pub fn missing<'a>(plan: &'a [MountSpec], mounted: &[MountEntry]) -> Vec<&'a MountSpec> {
    plan.iter()
        .filter(|spec| !mountinfo::is_mount_point(mounted, &spec.target))
        .collect()
}

/// Creates the mount point if needed and mounts `spec`.
pub fn apply(spec: &MountSpec) -> Result<(), MountError> {
    fs::create_dir_all(&spec.target).map_err(|source| MountError::MountPoint {
        path: spec.target.clone(),
        source,
    })?;
    mount(
        Some(spec.source),
        &spec.target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    )
    .map_err(|errno| MountError::Mount {
        source_dev: spec.source.to_string(),
        target: spec.target.clone(),
        fstype: spec.fstype.to_string(),
        errno,
    })
}

/// Mounts a block device (whose path is only known at run time).
pub fn mount_device(
    device: &Path,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
) -> Result<(), MountError> {
    fs::create_dir_all(target).map_err(|source| MountError::MountPoint {
        path: target.to_path_buf(),
        source,
    })?;
    mount(Some(device), target, Some(fstype), flags, None::<&str>).map_err(|errno| {
        MountError::Mount {
            source_dev: device.display().to_string(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            errno,
        }
    })
}

/// `mount --move from to`.
pub fn move_mount(from: &Path, to: &Path) -> Result<(), MountError> {
    fs::create_dir_all(to).map_err(|source| MountError::MountPoint {
        path: to.to_path_buf(),
        source,
    })?;
    mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|errno| {
        MountError::Move {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            errno,
        }
    })
}

/// The current mount table, empty when `/proc` is not mounted yet.
pub fn current_mounts() -> Vec<MountEntry> {
    fs::read_to_string(mountinfo::PROC_MOUNTINFO)
        .map(|text| mountinfo::parse(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_skips_what_is_mounted() {
        let plan = [
            MountSpec::new("proc", "/proc", "proc", MsFlags::empty(), None),
            MountSpec::new("tmpfs", "/run", "tmpfs", MsFlags::empty(), None),
        ];
        let mounted = mountinfo::parse("1 0 0:1 / /proc rw - proc proc rw\n");
        let todo = missing(&plan, &mounted);
        assert_eq!(todo.len(), 1);
        assert_eq!(todo[0].target, Path::new("/run"));
    }
}
