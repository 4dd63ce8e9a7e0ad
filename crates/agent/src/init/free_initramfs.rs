//! Deleting the initramfs's files before leaving it.
//!
//! The initramfs lives in RAM and is never unmounted; without this its
//! contents (the modules, this binary) stay allocated for the guest's whole
//! life. Only entries on the root's own device are removed, so the new root
//! and the moved /dev, /proc and /sys are never descended into.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};

/// `RAMFS_MAGIC`, which nix does not export.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6_u32 as _);

/// Empties `/` if it is the initramfs (ramfs or tmpfs), sparing `keep`;
/// returns how many entries were removed.
pub fn free(keep: &Path) -> io::Result<usize> {
    let fs = statfs("/").map_err(io::Error::from)?;
    let kind = fs.filesystem_type();
    if kind != RAMFS_MAGIC && kind != TMPFS_MAGIC {
        return Err(io::Error::other(
            "/ is not a ramfs or tmpfs; refusing to delete anything",
        ));
    }
    let device = fs::symlink_metadata("/")?.dev();
    remove_contents(Path::new("/"), device, keep)
}

/// Removes everything under `dir` that is on `device`, except `keep`.
/// Errors on single entries are skipped: freeing memory is best effort.
pub fn remove_contents(dir: &Path, device: u64, keep: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path == keep {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != device {
            continue;
        }
        if meta.is_dir() {
            removed += remove_contents(&path, device, keep).unwrap_or(0);
            // Fails for mount points (EBUSY) and kept subtrees; both stay.
            if fs::remove_dir(&path).is_ok() {
                removed += 1;
            }
        } else if fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_everything_on_the_device_except_keep() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("lib/modules/6.1")).unwrap();
        fs::write(root.join("lib/modules/6.1/virtio.ko"), b"x").unwrap();
        fs::write(root.join("init"), b"x").unwrap();
        std::os::unix::fs::symlink("/init", root.join("linuxrc")).unwrap();
        fs::create_dir_all(root.join("newroot/sbin")).unwrap();
        fs::write(root.join("newroot/sbin/init"), b"x").unwrap();

        let device = fs::metadata(root).unwrap().dev();
        let removed = remove_contents(root, device, &root.join("newroot")).unwrap();
        assert_eq!(removed, 6);
        let left: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["newroot"]);
        assert!(root.join("newroot/sbin/init").exists());
    }

    #[test]
    fn does_not_cross_into_other_devices() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"x").unwrap();
        let device = fs::metadata(dir.path()).unwrap().dev();
        // Pretending the directory is on another device removes nothing.
        let removed = remove_contents(dir.path(), device + 1, Path::new("/nonexistent")).unwrap();
        assert_eq!(removed, 0);
        assert!(dir.path().join("file").exists());
    }
}
