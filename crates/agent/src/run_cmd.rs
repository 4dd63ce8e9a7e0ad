//! Running the guest's own tools (`ip`, `ssh-keygen`, `systemctl`): argv
//! only, never a shell, logged, with stderr kept for the error.

use std::io;
use std::process::{Command, Stdio};

use thiserror::Error;

use crate::DEFAULT_PATH;

/// A program that could not run or did not succeed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot run {argv:?}: {source}")]
    Spawn {
        argv: Vec<String>,
        source: io::Error,
    },
    #[error("{argv:?} failed ({status}): {stderr}")]
    Failed {
        argv: Vec<String>,
        status: String,
        stderr: String,
    },
}

/// Runs `argv` to completion with [`DEFAULT_PATH`], stdin from /dev/null
/// and stdout discarded; a non-zero exit is an error carrying stderr.
///
/// Only for use before PID 1 starts reaping with `waitpid(-1)`, or outside
/// PID 1: the exit status is collected by waiting for this child.
pub fn run(argv: &[&str]) -> Result<(), RunError> {
    let owned: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let (program, args) = argv.split_first().ok_or_else(|| RunError::Spawn {
        argv: owned.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "empty argv"),
    })?;
    crate::info!("running {owned:?}");
    let output = Command::new(program)
        .args(args)
        .env("PATH", DEFAULT_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| RunError::Spawn {
            argv: owned.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(RunError::Failed {
        argv: owned,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_failure_and_missing_program() {
        run(&["true"]).unwrap();
        match run(&["sh", "-c", "echo oops >&2; exit 3"]) {
            Err(RunError::Failed { stderr, status, .. }) => {
                assert_eq!(stderr, "oops");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(&["/nonexistent/banger-test"]),
            Err(RunError::Spawn { .. })
        ));
        assert!(matches!(run(&[]), Err(RunError::Spawn { .. })));
    }
}
