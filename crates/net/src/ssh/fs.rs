//! File primitives shared by the SSH files: private directories, reads that
//! treat a missing file as empty, and atomic writes with a final mode.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::error::SshError;

pub(super) const PRIVATE_DIR_MODE: u32 = 0o700;
pub(super) const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700. An existing directory is
/// forced to 0700 only when `force` is set: banger's own ssh directory must
/// be private, but the user's `~/.ssh` is theirs to configure.
pub(super) fn ensure_private_dir(dir: &Path, force: bool) -> Result<(), SshError> {
    let existed = dir.is_dir();
    if !existed {
        DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(dir)
            .map_err(|source| SshError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    // The mode given to mkdir is filtered by the umask; set it explicitly.
    if force || !existed {
        set_mode(dir, PRIVATE_DIR_MODE)?;
    }
    Ok(())
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), SshError> {
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| SshError::SetMode {
        path: path.to_path_buf(),
        mode,
        source,
    })
}

/// The file's bytes, or `None` if it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SshError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SshError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces `path` with `contents`: a temporary file in the same directory
/// gets the bytes and `mode`, is synced, then renamed over `path`, so a
/// reader (or a crash) sees the old file or the new one, never a torn one.
/// The temporary file is created 0600 and removed if anything fails.
pub(super) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), SshError> {
    let write_err = |source: io::Error| SshError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        write_atomic(&path, b"one\n", 0o600).unwrap();
        write_atomic(&path, b"two\n", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(mode(&path), 0o644);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("known_hosts")]);
    }

    #[test]
    fn atomic_write_into_a_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/known_hosts");
        let err = write_atomic(&path, b"x", 0o600).unwrap_err();
        assert!(matches!(err, SshError::Write { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn private_dir_is_created_0700_and_forced_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        ensure_private_dir(&nested, false).unwrap();
        assert_eq!(mode(&nested), 0o700);

        set_mode(&nested, 0o755).unwrap();
        ensure_private_dir(&nested, false).unwrap();
        assert_eq!(mode(&nested), 0o755, "an existing dir is left alone");
        ensure_private_dir(&nested, true).unwrap();
        assert_eq!(mode(&nested), 0o700, "forced back to private");
    }

    #[test]
    fn missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_optional(&dir.path().join("nope")).unwrap(), None);
        let err = read_optional(dir.path()).unwrap_err();
        assert!(matches!(err, SshError::Read { .. }), "{err:?}");
    }
}
