//! What a kernel directory holds: its file names, and the lock under which
//! its derived boot files change. The bottom of the kernel modules: the
//! store, the assembly and the boot files all name these.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use super::error::KernelError;

/// File names inside a kernel directory.
pub const VMLINUX: &str = "vmlinux";
pub const BZIMAGE: &str = "bzImage";
pub const INITRD: &str = "initrd.img";
pub const MODULES: &str = "modules";
pub const CONFIG: &str = "config";
pub const MANIFEST: &str = "manifest.json";
/// Held while a kernel's derived boot files change.
const LOCK_FILE: &str = ".boot-files.lock";
/// Every temporary file or directory of a boot-file build is named with
/// this prefix; one found while holding the lock was left by a build that
/// was killed, and goes.
const TEMP_PREFIX: &str = ".boot-files.tmp-";

/// The prefix of one kind of temporary of a boot-file build.
pub(super) fn temp_prefix(what: &str) -> String {
    format!("{TEMP_PREFIX}{what}-")
}

/// Total size of the regular files under `dir`.
pub(crate) fn tree_size(dir: &Path) -> Result<u64, KernelError> {
    Ok(tree_stats(dir)?.bytes)
}

/// What a directory tree holds.
pub(crate) struct TreeStats {
    /// Total size of its regular files.
    pub bytes: u64,
    /// Its entries (files, directories, links), the top excluded.
    pub entries: u64,
}

/// [`TreeStats`] of `dir`, in one walk.
pub(crate) fn tree_stats(dir: &Path) -> Result<TreeStats, KernelError> {
    let mut stats = TreeStats {
        bytes: 0,
        entries: 0,
    };
    for entry in fs::read_dir(dir).map_err(|e| KernelError::io("read", dir, e))? {
        let entry = entry.map_err(|e| KernelError::io("read", dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| KernelError::io("inspect", entry.path(), e))?;
        stats.entries += 1;
        if meta.is_dir() {
            let sub = tree_stats(&entry.path())?;
            stats.bytes += sub.bytes;
            stats.entries += sub.entries;
        } else if meta.is_file() {
            stats.bytes += meta.len();
        }
    }
    Ok(stats)
}

/// Serialises the changes to a kernel's derived boot files (the modules
/// disk, the agent initrd's rebuild); held until dropped. Taking it removes
/// what killed builds left.
pub(super) fn lock(dir: &Path) -> Result<File, KernelError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| KernelError::io("open the lock", &path, e))?;
    banger_sys::os::lock_exclusive(&file).map_err(|e| KernelError::io("lock", &path, e))?;
    remove_leftovers(dir)?;
    Ok(file)
}

fn remove_leftovers(dir: &Path) -> Result<(), KernelError> {
    for entry in fs::read_dir(dir).map_err(|e| KernelError::io("read", dir, e))? {
        let entry = entry.map_err(|e| KernelError::io("read", dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| KernelError::io("inspect", &path, e))?;
        let removed = if kind.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| KernelError::io("remove", &path, e))?;
        tracing::info!(path = %path.display(), "removed what a killed kernel build left");
    }
    Ok(())
}
