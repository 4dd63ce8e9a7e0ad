//! Programs the root helper may start (the VMM binaries): they must be
//! files only root can change, or running them as root hands root to
//! whoever can.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ValidationError;

/// Why an executable was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExecProblem {
    #[error("it is not an absolute path")]
    NotAbsolute,
    #[error("cannot inspect it: {0}")]
    Inspect(io::Error),
    #[error("it is not a regular file")]
    NotRegularFile,
    #[error("it is owned by uid {uid}, not root; reinstall it as root")]
    NotRootOwned { uid: u32 },
    #[error("its mode {mode:o} lets group or others modify it; run `chmod go-w` on it")]
    Writable { mode: u32 },
    #[error("it is not executable")]
    NotExecutable,
    #[error(
        "directory {} above it is not root-owned or is group/world-writable, so someone else could replace the file",
        dir.display()
    )]
    UnsafeDirectory { dir: PathBuf },
}

/// Checks that `path` is an absolute, root-owned, executable regular file
/// that neither group nor others can write, in directories only root can
/// change. Symlinks are resolved first and the checks apply to the target;
/// the returned path is that target, which is what the caller must exec.
pub fn validate_executable(path: &Path) -> Result<PathBuf, ValidationError> {
    let refuse = |problem| ValidationError::Executable {
        path: path.to_owned(),
        problem,
    };
    if !path.is_absolute() {
        return Err(refuse(ExecProblem::NotAbsolute));
    }
    let resolved = path
        .canonicalize()
        .map_err(|e| refuse(ExecProblem::Inspect(e)))?;
    let meta = resolved
        .metadata()
        .map_err(|e| refuse(ExecProblem::Inspect(e)))?;
    if !meta.is_file() {
        return Err(refuse(ExecProblem::NotRegularFile));
    }
    if meta.uid() != 0 {
        return Err(refuse(ExecProblem::NotRootOwned { uid: meta.uid() }));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(ExecProblem::Writable { mode }));
    }
    if mode & 0o111 == 0 {
        return Err(refuse(ExecProblem::NotExecutable));
    }
    for dir in resolved.ancestors().skip(1) {
        let safe = dir
            .metadata()
            .is_ok_and(|m| m.uid() == 0 && m.permissions().mode() & 0o022 == 0);
        if !safe {
            return Err(refuse(ExecProblem::UnsafeDirectory {
                dir: dir.to_owned(),
            }));
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use proptest::prelude::*;

    use super::*;

    fn problem(path: &Path) -> ExecProblem {
        match validate_executable(path) {
            Err(ValidationError::Executable { problem, .. }) => problem,
            other => panic!(
                "expected an executable error for {}, got {other:?}",
                path.display()
            ),
        }
    }

    #[test]
    fn a_system_binary_is_accepted_and_resolved() {
        let env = validate_executable(Path::new("/usr/bin/env")).unwrap();
        assert_eq!(env, Path::new("/usr/bin/env").canonicalize().unwrap());
    }

    #[test]
    fn relative_missing_and_non_files_are_rejected() {
        assert!(matches!(
            problem(Path::new("usr/bin/env")),
            ExecProblem::NotAbsolute
        ));
        assert!(matches!(
            problem(Path::new("/no/such/banger-vmm")),
            ExecProblem::Inspect(_)
        ));
        assert!(matches!(
            problem(Path::new("/usr/bin")),
            ExecProblem::NotRegularFile
        ));
    }

    #[test]
    fn files_others_can_change_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("vmm");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, Permissions::from_mode(0o755)).unwrap();
        if !banger_sys::os::is_root() {
            // Files we create are ours, not root's.
            assert!(matches!(problem(&exe), ExecProblem::NotRootOwned { .. }));
            return;
        }
        // Root-owned and 0755, but inside /tmp, which everyone can write.
        assert!(matches!(problem(&exe), ExecProblem::UnsafeDirectory { .. }));
        std::fs::set_permissions(&exe, Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            problem(&exe),
            ExecProblem::Writable { mode: 0o775 }
        ));
        std::fs::set_permissions(&exe, Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(problem(&exe), ExecProblem::NotExecutable));
        std::os::unix::fs::chown(&exe, Some(1000), None).unwrap();
        assert!(matches!(
            problem(&exe),
            ExecProblem::NotRootOwned { uid: 1000 }
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_relative_ones_fail(s in any::<String>()) {
            let r = validate_executable(Path::new(&s));
            if !s.starts_with('/') {
                prop_assert!(r.is_err());
            }
        }
    }
}
