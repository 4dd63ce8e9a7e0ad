//! Turning the finished tree into `rootfs.ext4`.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_api::model::ByteSize;
use banger_sys::Cmd;

use crate::images::error::ImageError;

pub const ROOTFS_LABEL: &str = "banger-root";
const MIB: u64 = 1024 * 1024;
/// Smallest rootfs: room for installing a few packages in the guest.
const MIN_SIZE: u64 = 1024 * MIB;

/// Bytes the tree occupies (allocated blocks, each hard-linked inode
/// once). Stays on the tree's filesystem.
pub(crate) fn content_bytes(tree: &Path) -> Result<u64, ImageError> {
    let root = tree
        .symlink_metadata()
        .map_err(|e| ImageError::io("inspect", tree, e))?;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![tree.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ImageError::io("measure", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("measure", &dir, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| ImageError::io("measure", entry.path(), e))?;
            if meta.dev() != root.dev() {
                continue;
            }
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino()) {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// The rootfs size: `requested`, or content × 1.5 rounded up to a MiB and
/// at least 1 GiB (room for what the guest installs; the file is sparse,
/// so unused space costs nothing on the host).
pub(crate) fn rootfs_size(content: u64, requested: Option<ByteSize>) -> Result<u64, ImageError> {
    let needed_mib = content.div_ceil(MIB);
    match requested {
        Some(size) if size.bytes() < content => Err(ImageError::TooSmall {
            size_mib: size.mib(),
            needed_mib,
        }),
        Some(size) => Ok(size.bytes()),
        None => Ok((content.saturating_mul(3) / 2)
            .div_ceil(MIB)
            .saturating_mul(MIB)
            .max(MIN_SIZE)),
    }
}

/// Makes `dest` (which must not exist) a sparse ext4 of `size` holding
/// `tree`, then checks it. Owners and modes come from the tree, which the
/// build made as root.
pub(crate) fn make_rootfs(tree: &Path, dest: &Path, size: u64) -> Result<(), ImageError> {
    let file = File::create_new(dest).map_err(|e| ImageError::io("create", dest, e))?;
    file.set_len(size)
        .map_err(|e| ImageError::io("size", dest, e))?;
    drop(file);
    // lazy_itable_init=0: the inode tables are initialised here, once,
    // instead of by the kernel in every VM's copy-on-write root disk;
    // zeroing a file leaves holes, so the image stays sparse.
    Cmd::new("mkfs.ext4")
        .args(["-F", "-q", "-L", ROOTFS_LABEL, "-E"])
        .arg("root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0")
        .arg("-d")
        .arg(tree)
        .arg(dest)
        .run()
        .map_err(|source| ImageError::Command {
            action: format!("write the image filesystem {}", dest.display()),
            source,
        })?;
    // A read-only full check: cheap next to the bootstrap, and an image
    // that fails it would fail in every VM.
    Cmd::new("e2fsck")
        .args(["-f", "-n"])
        .arg(dest)
        .run()
        .map_err(|source| ImageError::Command {
            action: format!("verify the new image filesystem {}", dest.display()),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext4::{Ext4Image, FileKind};

    #[test]
    fn the_size_is_one_and_a_half_times_the_content_with_a_floor() {
        assert_eq!(rootfs_size(0, None).unwrap(), MIN_SIZE);
        assert_eq!(rootfs_size(100 * MIB, None).unwrap(), MIN_SIZE);
        assert_eq!(rootfs_size(1000 * MIB, None).unwrap(), 1500 * MIB);
        assert_eq!(rootfs_size(1000 * MIB + 1, None).unwrap(), 1501 * MIB);
        let two_g = ByteSize::from_mib(2048);
        assert_eq!(rootfs_size(1000 * MIB, two_g).unwrap(), 2048 * MIB);
        // An explicit size below the floor is the user's choice.
        assert_eq!(rootfs_size(MIB, ByteSize::from_mib(64)).unwrap(), 64 * MIB);
        let err = rootfs_size(3000 * MIB, two_g).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooSmall {
                    size_mib: 2048,
                    needed_mib: 3000
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn content_counts_hard_links_once_and_includes_directories() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        std::fs::create_dir(t.join("d")).unwrap();
        std::fs::write(t.join("d/big"), vec![1u8; 1024 * 1024]).unwrap();
        let one = content_bytes(t).unwrap();
        assert!(one >= 1024 * 1024, "{one}");
        std::fs::hard_link(t.join("d/big"), t.join("link")).unwrap();
        assert_eq!(content_bytes(t).unwrap(), one);
        std::fs::write(t.join("d/other"), vec![2u8; 1024 * 1024]).unwrap();
        assert!(content_bytes(t).unwrap() >= one + 1024 * 1024);
    }

    #[test]
    fn the_tree_becomes_a_labelled_sparse_ext4_with_a_root_owned_root() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), b"guest\n").unwrap();
        let dest = dir.path().join("rootfs.ext4");
        make_rootfs(&tree, &dest, 128 * MIB).unwrap();

        assert_eq!(dest.metadata().unwrap().len(), 128 * MIB);
        assert!(
            dest.metadata().unwrap().blocks() * 512 < 32 * MIB,
            "not sparse"
        );
        let image = Ext4Image::open(&dest).unwrap();
        assert_eq!(image.read_file("/etc/hostname").unwrap(), b"guest\n");
        let root = image.stat("/").unwrap().unwrap();
        assert_eq!((root.kind, root.uid, root.gid), (FileKind::Directory, 0, 0));
        let label = Cmd::new("e2label").arg(&dest).run().unwrap().stdout_str();
        assert_eq!(label.trim(), ROOTFS_LABEL);
        // Never over an existing file.
        assert!(make_rootfs(&tree, &dest, 128 * MIB).is_err());
    }

    #[test]
    fn a_tree_that_does_not_fit_is_a_command_error() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("big"), vec![7u8; 3 * 1024 * 1024]).unwrap();
        let err = make_rootfs(&tree, &dir.path().join("r.ext4"), MIB).unwrap_err();
        assert!(
            err.to_string().contains("write the image filesystem"),
            "{err}"
        );
    }
}
