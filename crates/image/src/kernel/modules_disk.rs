//! The modules disk: a kernel's whole module tree, with the `modules.dep`
//! family (text and the `.bin` indexes `modprobe` actually reads) that
//! `depmod` writes, as a small read-only ext4 image in the kernel's
//! directory. Every VM that boots the kernel gets it as a read-only drive,
//! and banger's initramfs mounts it at `/lib/modules/<release>`, so any
//! image — built by banger, registered, or pulled — can load exactly the
//! booted kernel's modules without a copy of them in every image.
//!
//! Built once per kernel, by `kernel pull`/`import`, or on first use for a
//! kernel installed by an older banger. A flock serialises builders; the
//! image is written under a temporary name and renamed into place, so the
//! disk is either absent or complete.

use std::fs;
use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::error::KernelError;
use super::kernel_dir::{self, MODULES, tree_stats};

/// The file name of the modules disk inside a kernel directory.
pub const MODULES_DISK: &str = "modules.ext4";
/// The disk's filesystem label (the guest finds it by position; the label
/// is for people reading `blkid`).
pub const MODULES_LABEL: &str = "banger-modules";

const MIB: u64 = 1024 * 1024;

/// The index `modprobe` cannot work without; checked after `depmod`.
const DEP_INDEX: &str = "modules.dep.bin";

/// The modules disk of the kernel in `dir` (its tree in `dir/modules`,
/// built for `release`), made now if it is missing. `None`: the kernel has
/// no module tree (a kernel imported without `--modules`).
pub(crate) fn ensure(dir: &Path, release: &str) -> Result<Option<PathBuf>, KernelError> {
    let tree = dir.join(MODULES);
    if !tree.is_dir() {
        return Ok(None);
    }
    let disk = dir.join(MODULES_DISK);
    if disk.is_file() {
        return Ok(Some(disk));
    }
    check_release(release, dir)?;
    let _lock = kernel_dir::lock(dir)?;
    // Another builder may have finished while this one waited.
    if disk.is_file() {
        return Ok(Some(disk));
    }
    depmod(dir, &tree, release)?;
    let partial = tempfile::Builder::new()
        .prefix(&kernel_dir::temp_prefix("modules-disk"))
        .tempfile_in(dir)
        .map_err(|e| KernelError::io("create a temporary file in", dir, e))?;
    let size = disk_size(&tree)?;
    partial
        .as_file()
        .set_len(size)
        .map_err(|e| KernelError::io("size", partial.path(), e))?;
    mkfs(&tree, partial.path())?;
    partial
        .persist(&disk)
        .map_err(|e| KernelError::io("move into place", &disk, e.error))?;
    tracing::info!(disk = %disk.display(), size_mib = size / MIB, "modules disk built");
    Ok(Some(disk))
}

/// A release names one directory under `/lib/modules`.
fn check_release(release: &str, dir: &Path) -> Result<(), KernelError> {
    let ok = !release.is_empty()
        && release != "."
        && release != ".."
        && release
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KernelError::NoKernel {
            dir: dir.to_owned(),
            detail: format!("its release {release:?} cannot name a module directory"),
        })
    }
}

/// Runs `depmod` over `tree`, which it expects at
/// `BASE/lib/modules/<release>`: a private base whose module directory is
/// a link to the tree, so the indexes are written into the tree itself.
fn depmod(dir: &Path, tree: &Path, release: &str) -> Result<(), KernelError> {
    let base = tempfile::Builder::new()
        .prefix(&kernel_dir::temp_prefix("depmod"))
        .tempdir_in(dir)
        .map_err(|e| KernelError::io("create a temporary directory in", dir, e))?;
    let modules_dir = base.path().join("lib/modules");
    fs::create_dir_all(&modules_dir).map_err(|e| KernelError::io("create", &modules_dir, e))?;
    let tree = fs::canonicalize(tree).map_err(|e| KernelError::io("resolve", tree, e))?;
    let link = modules_dir.join(release);
    std::os::unix::fs::symlink(&tree, &link).map_err(|e| KernelError::io("link", &link, e))?;
    Cmd::new("depmod")
        .arg("-b")
        .arg(base.path())
        .arg(release)
        .run()
        .map_err(|source| KernelError::Command {
            action: format!(
                "index the modules of {release} in {} (depmod is in Debian's kmod package)",
                tree.display()
            ),
            source: Box::new(source),
        })?;
    let index = tree.join(DEP_INDEX);
    if !index.is_file() {
        return Err(KernelError::NoKernel {
            dir: dir.to_owned(),
            detail: format!("depmod wrote no {}", index.display()),
        });
    }
    Ok(())
}

/// Room for the tree's bytes, a block per file and directory for the
/// rounding, and ext4's own metadata. The file is sparse: unused room
/// costs nothing.
fn disk_size(tree: &Path) -> Result<u64, KernelError> {
    let stats = tree_stats(tree)?;
    let needed = stats.bytes + stats.entries * 4096;
    Ok((needed + needed / 4 + 32 * MIB).div_ceil(MIB) * MIB)
}

/// Writes `tree` into the sized file `dest` as ext4 with no journal (the
/// guest never writes to it) and no reserved blocks, then checks it.
fn mkfs(tree: &Path, dest: &Path) -> Result<(), KernelError> {
    let command = |action: &str| {
        let action = format!("{action} {}", dest.display());
        move |source| KernelError::Command {
            action,
            source: Box::new(source),
        }
    };
    Cmd::new("mkfs.ext4")
        .args([
            "-F",
            "-q",
            "-L",
            MODULES_LABEL,
            "-O",
            "^has_journal",
            "-m",
            "0",
        ])
        .args(["-E", "root_owner=0:0"])
        .arg("-d")
        .arg(tree)
        .arg(dest)
        .run()
        .map_err(command("write the modules filesystem"))?;
    Cmd::new("e2fsck")
        .args(["-f", "-n"])
        .arg(dest)
        .run()
        .map_err(command("verify the modules filesystem"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext4::Ext4Image;

    const RELEASE: &str = "6.1.0-test-amd64";

    /// A kernel directory whose tree has no real modules: depmod still
    /// writes every index (empty), which is what the disk must carry.
    fn kernel_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("modules");
        fs::create_dir_all(tree.join("kernel/fs")).unwrap();
        fs::write(tree.join("modules.order"), b"").unwrap();
        fs::write(tree.join("modules.builtin"), b"kernel/fs/ext4/ext4.ko\n").unwrap();
        fs::write(tree.join("kernel/fs/README"), b"not a module\n").unwrap();
        dir
    }

    #[test]
    fn the_disk_holds_the_tree_and_the_indexes_modprobe_reads() {
        let dir = kernel_dir();
        let disk = ensure(dir.path(), RELEASE).unwrap().unwrap();
        assert_eq!(disk, dir.path().join(MODULES_DISK));
        let image = Ext4Image::open(&disk).unwrap();
        for index in ["/modules.dep", "/modules.dep.bin", "/modules.alias.bin"] {
            assert!(image.stat(index).unwrap().is_some(), "{index}");
        }
        assert_eq!(
            image.read_file("/kernel/fs/README").unwrap(),
            b"not a module\n"
        );
        let root = image.stat("/").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        // Nothing of the build is left beside it.
        let mut names = crate::test_support::dir_names(dir.path());
        names.retain(|n| n.starts_with(".boot-files.tmp-"));
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn an_existing_disk_is_used_as_it_is() {
        let dir = kernel_dir();
        let disk = dir.path().join(MODULES_DISK);
        fs::write(&disk, b"already built").unwrap();
        assert_eq!(ensure(dir.path(), RELEASE).unwrap(), Some(disk.clone()));
        assert_eq!(fs::read(&disk).unwrap(), b"already built");
    }

    #[test]
    fn a_kernel_without_modules_has_no_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ensure(dir.path(), RELEASE).unwrap(), None);
        assert!(!dir.path().join(MODULES_DISK).exists());
    }

    #[test]
    fn what_a_killed_build_left_is_removed_and_the_disk_built() {
        let dir = kernel_dir();
        let partial = dir
            .path()
            .join(format!("{}abc", kernel_dir::temp_prefix("modules-disk")));
        fs::write(&partial, b"half").unwrap();
        let depmod_dir = dir
            .path()
            .join(format!("{}abc/lib", kernel_dir::temp_prefix("depmod")));
        fs::create_dir_all(&depmod_dir).unwrap();
        ensure(dir.path(), RELEASE).unwrap().unwrap();
        assert!(!partial.exists());
        assert!(!depmod_dir.exists());
    }

    #[test]
    fn a_release_that_is_not_one_directory_name_is_refused() {
        for bad in ["", "..", "a/b", "6.1 x"] {
            let dir = kernel_dir();
            let err = ensure(dir.path(), bad).unwrap_err();
            assert!(err.to_string().contains("release"), "{bad}: {err}");
            assert!(!dir.path().join(MODULES_DISK).exists());
        }
    }

    #[test]
    fn concurrent_builders_make_one_disk() {
        let dir = kernel_dir();
        let path = dir.path().to_owned();
        let builders: Vec<_> = (0..3)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || ensure(&path, RELEASE).unwrap().unwrap())
            })
            .collect();
        for b in builders {
            assert_eq!(b.join().unwrap(), path.join(MODULES_DISK));
        }
        Ext4Image::open(&path.join(MODULES_DISK)).unwrap();
    }
}
