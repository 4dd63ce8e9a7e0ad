//! How install, uninstall and update talk to the person running them: one
//! line per step, while every program's full output goes to a log file that
//! failures name. Also the file operations they share: writes that are never
//! seen half-done, and directories given to the owner.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_sys::{Cmd, Output};

use super::SystemError;

pub struct Steps {
    log_path: PathBuf,
    log: Option<File>,
}

impl Steps {
    /// Appends to `log_path` (0600); when it cannot be opened (a read-only
    /// destdir, say) the steps still run and say so once.
    pub fn open(log_path: &Path) -> Steps {
        if let Some(dir) = log_path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log_path)
            .ok();
        let mut steps = Steps {
            log_path: log_path.to_owned(),
            log,
        };
        steps.note(&format!(
            "==== {} {}",
            banger_api::build_info::version_line("banger"),
            std::env::args().collect::<Vec<_>>().join(" ")
        ));
        steps
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A line for the log only.
    pub fn note(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{line}");
        }
    }

    /// Prints `  what ... ` then `ok` or `failed`, around `f`.
    pub fn step<T, E: std::error::Error>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Steps) -> Result<T, E>,
    ) -> Result<T, E> {
        print!("  {what} ... ");
        let _ = std::io::stdout().flush();
        self.note(&format!("-- {what}"));
        let result = f(self);
        match &result {
            Ok(_) => println!("ok"),
            Err(e) => {
                println!("failed");
                self.note(&format!("   failed: {}", banger_api::error_chain(e)));
            }
        }
        result
    }

    /// Runs `cmd`, its argv and whole output appended to the log.
    pub fn run(&mut self, cmd: Cmd) -> Result<Output, SystemError> {
        self.note(&format!("$ {}", cmd.argv()));
        let result = cmd.run();
        match &result {
            Ok(out) => {
                self.note(&String::from_utf8_lossy(&out.stdout));
                self.note(&String::from_utf8_lossy(&out.stderr));
            }
            Err(e) => self.note(&e.to_string()),
        }
        result.map_err(|source| SystemError::Command {
            log: self.log_path.clone(),
            source,
        })
    }
}

/// Writes `bytes` to `path` with `mode`: a temporary file beside it, synced,
/// then renamed over it, so nobody ever runs or reads a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SystemError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(SystemError::io("create", dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()
    };
    if let Err(e) = write().and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(SystemError::io("write", path)(e));
    }
    Ok(())
}

/// Copies the file at `from` to `to` (mode `mode`) the same way.
pub fn copy_atomic(from: &Path, to: &Path, mode: u32) -> Result<(), SystemError> {
    let bytes = fs::read(from).map_err(SystemError::io("read", from))?;
    write_atomic(to, &bytes, mode)
}

/// Creates `dir` and any missing parents below `base` (which must exist),
/// each new one owned by `uid:gid` with `mode`; `dir` itself gets them even
/// if it existed.
pub fn owned_dir(
    base: &Path,
    dir: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<(), SystemError> {
    let rel = dir.strip_prefix(base).map_err(|_| {
        SystemError::Refused(format!("{} is not under {}", dir.display(), base.display()))
    })?;
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        let new = !at.exists();
        if new {
            fs::create_dir(&at).map_err(SystemError::io("create", &at))?;
        }
        if new || at == dir {
            chown_mode(&at, uid, gid, mode)?;
        }
    }
    Ok(())
}

/// `chown` (when root: a destdir install by a user cannot) and `chmod`.
pub fn chown_mode(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), SystemError> {
    // Never follow a link someone left where a directory should be.
    let meta = fs::symlink_metadata(path).map_err(SystemError::io("inspect", path))?;
    if meta.file_type().is_symlink() {
        return Err(SystemError::Refused(format!(
            "{} is a symbolic link; remove it and install again",
            path.display()
        )));
    }
    if banger_sys::os::is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(SystemError::io("give the owner", path))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(SystemError::io("set the mode of", path))
}

/// Removes a file or a whole tree; absent is fine.
pub fn remove_path(path: &Path) -> Result<(), SystemError> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(SystemError::io("remove", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/file");
        write_atomic(&target, b"one", 0o644).unwrap();
        write_atomic(&target, b"two", 0o755).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let names: Vec<_> = fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left");
    }

    #[test]
    fn owned_dirs_are_created_below_the_base_only() {
        let dir = tempfile::tempdir().unwrap();
        let uid = banger_sys::os::effective_uid();
        let target = dir.path().join("a/b/c");
        owned_dir(dir.path(), &target, uid, uid, 0o700).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(owned_dir(&target, dir.path(), uid, uid, 0o700).is_err());
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        assert!(owned_dir(dir.path(), &dir.path().join("link"), uid, uid, 0o700).is_err());
    }

    #[test]
    fn steps_log_whole_output_and_name_the_log_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("install.log");
        let mut steps = Steps::open(&log);
        steps
            .step("say", |s| {
                s.run(Cmd::new("sh").args(["-c", "echo noisy output"]))
            })
            .unwrap();
        let err = steps
            .step("fail", |s| {
                s.run(Cmd::new("sh").args(["-c", "echo why >&2; exit 3"]))
            })
            .unwrap_err();
        assert!(err.to_string().contains(log.to_str().unwrap()), "{err}");
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("noisy output") && text.contains("why"),
            "{text}"
        );
    }
}
