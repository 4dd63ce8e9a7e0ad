//! Claiming a new file and unwinding it: every disk banger makes is created
//! with `O_EXCL` (so a leftover is never silently reused or clobbered) and
//! removed again if a later step fails, so a failed create leaves no stray
//! file behind.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::DiskError;

/// Disks hold the guest's data: readable by the owner only.
pub(crate) const DISK_MODE: u32 = 0o600;

/// A file this process just created. Dropping it removes the file unless
/// [`NewFile::keep`] was called.
pub(crate) struct NewFile {
    path: PathBuf,
    file: Option<File>,
    keep: bool,
}

impl NewFile {
    /// Creates `path` (`O_CREAT | O_EXCL`, mode [`DISK_MODE`]) for writing.
    pub(crate) fn create(path: &Path) -> Result<Self, DiskError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(DISK_MODE)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => DiskError::AlreadyExists {
                    path: path.to_owned(),
                },
                _ => DiskError::io("create", path, e),
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
            keep: false,
        })
    }

    pub(crate) fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("the file stays open until the NewFile is consumed")
    }

    /// Closes the file without removing it, e.g. before handing the path to
    /// another program; it is still removed on drop unless kept.
    pub(crate) fn close(&mut self) {
        self.file = None;
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Sizes the file without writing data, so it stays sparse.
    pub(crate) fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.file()
            .set_len(len)
            .map_err(|e| DiskError::io("size", &self.path, e))
    }

    /// The file is complete: keep it.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        self.file = None;
        if let Err(e) = remove_if_exists(&self.path) {
            tracing::warn!(error = %e, "cannot remove a partial file after a failure; remove it by hand");
        }
    }
}

/// Removes a file; one that is already gone counts as removed, so teardown
/// can be repeated.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), DiskError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DiskError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_new_file_is_removed_and_a_kept_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        drop(NewFile::create(&path).unwrap());
        assert!(!path.exists());

        let kept = NewFile::create(&path).unwrap().keep();
        assert_eq!(kept, path);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            path.metadata().unwrap().permissions().mode() & 0o777,
            DISK_MODE
        );
    }

    #[test]
    fn an_existing_file_is_never_reused_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, b"earlier").unwrap();
        let err = NewFile::create(&path).err().unwrap();
        assert!(matches!(err, DiskError::AlreadyExists { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier");
    }

    #[test]
    fn removing_twice_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"").unwrap();
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert!(!path.exists());
    }
}
