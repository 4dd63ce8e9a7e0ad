//! Small file operations the agent needs to be exact about: files appear
//! whole or not at all (temp file + rename), with exactly the mode asked for
//! whatever the umask, and directories are never followed through symlinks.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// A file operation that failed, with the path it was about.
#[derive(Debug, Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

fn fs_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Replaces `path` with `contents` atomically: a reader sees the old file or
/// the new one, never a mix, and a crash leaves no half-written file. The
/// rename replaces a symlink at `path` rather than writing through it.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| fs_err("write", path)(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let temp = dir.join(format!(
        ".{}.banger-tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .map_err(fs_err("create", &temp))?;
        // The umask may have narrowed the mode given to open(2).
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(fs_err("chmod", &temp))?;
        file.write_all(contents).map_err(fs_err("write", &temp))?;
        file.sync_all().map_err(fs_err("fsync", &temp))?;
        fs::rename(&temp, path).map_err(fs_err("rename into place", path))?;
        // Make the rename itself durable.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fs_err("fsync", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes sure `path` is a real directory (not a symlink) with exactly `mode`,
/// creating it and its missing parents.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), FsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
            return Err(FsError {
                action: "use as a directory",
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory (symlinks are not followed)",
                ),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(fs_err("create directory", path))?;
        }
        Err(e) => return Err(fs_err("inspect", path)(e)),
    }
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(fs_err("chmod", path))
}

/// Ends `text` with exactly one newline (OpenSSH refuses some key files
/// without a final newline; config files conventionally have one).
pub fn with_final_newline(text: &str) -> String {
    let trimmed = text.trim_end_matches('\n');
    format!("{trimmed}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_with_the_exact_mode_and_replaces_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_atomic(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o600);
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o644);
        // No temp files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        write_atomic(&link, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("missing/dir/file"), b"x", 0o600).unwrap_err();
        assert_eq!(err.action, "create");
    }

    #[test]
    fn ensure_dir_creates_fixes_mode_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("root/.ssh");
        ensure_dir(&ssh, 0o700).unwrap();
        assert_eq!(mode_of(&ssh), 0o700);
        fs::set_permissions(&ssh, Permissions::from_mode(0o777)).unwrap();
        ensure_dir(&ssh, 0o700).unwrap();
        assert_eq!(mode_of(&ssh), 0o700);

        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = dir.path().join("link");
        symlink(&elsewhere, &link).unwrap();
        assert!(ensure_dir(&link, 0o700).is_err());
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ensure_dir(&file, 0o700).is_err());
    }

    #[test]
    fn final_newline_is_exactly_one() {
        assert_eq!(with_final_newline("a"), "a\n");
        assert_eq!(with_final_newline("a\n\n"), "a\n");
        assert_eq!(with_final_newline(""), "\n");
    }
}
