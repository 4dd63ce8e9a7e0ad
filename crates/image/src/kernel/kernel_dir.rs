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
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| KernelError::io("read", dir, e))? {
        let entry = entry.map_err(|e| KernelError::io("read", dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| KernelError::io("inspect", entry.path(), e))?;
        if meta.is_dir() {
            total += tree_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
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
