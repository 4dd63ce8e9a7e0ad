//! A program whose standard output is read as a stream, for output too big
//! to hold in memory (an archive piped on to a guest).

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

use super::{Cmd, ProcessError, describe, excerpt};

/// A running program: read its stdout, then [`ReadingChild::finish`] to
/// learn whether it succeeded. Dropped unfinished, it is killed and reaped.
pub struct ReadingChild {
    argv: String,
    child: Child,
    stdout: ChildStdout,
    /// Collects stderr concurrently, so a chatty program never blocks on it.
    stderr: Option<JoinHandle<Vec<u8>>>,
    finished: bool,
}

impl Cmd {
    /// Starts the program with stdin from /dev/null and stdout piped to the
    /// returned reader; stderr is kept for the error if it fails.
    pub fn spawn_reader(&self) -> Result<ReadingChild, ProcessError> {
        let argv = self.argv();
        tracing::debug!(%argv, "running, reading its output as a stream");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let collector = std::thread::Builder::new()
            .name("stderr-reader".into())
            .spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr.read_to_end(&mut buf);
                buf
            });
        let stderr = match collector {
            Ok(handle) => handle,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProcessError::Spawn { argv, source });
            }
        };
        Ok(ReadingChild {
            argv,
            child,
            stdout,
            stderr: Some(stderr),
            finished: false,
        })
    }
}

impl ReadingChild {
    /// The argv, for messages.
    pub fn argv(&self) -> &str {
        &self.argv
    }

    /// Waits for the program; a non-zero exit is an error carrying stderr.
    /// Output not read yet is drained first, so the program can end.
    pub fn finish(mut self) -> Result<(), ProcessError> {
        self.finished = true;
        let _ = io::copy(&mut self.stdout, &mut io::sink());
        let status = self.child.wait().map_err(|source| ProcessError::Spawn {
            argv: self.argv.clone(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let stderr = excerpt(&stderr);
        tracing::debug!(argv = %self.argv, status = %describe(status), %stderr, "failed");
        Err(ProcessError::Failed {
            argv: self.argv.clone(),
            status: describe(status),
            stderr,
        })
    }
}

impl Read for ReadingChild {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for ReadingChild {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_streams_and_success_is_reported() {
        let mut child = Cmd::new("sh")
            .args(["-c", "head -c 300000 /dev/zero; echo done >&2"])
            .spawn_reader()
            .unwrap();
        let mut out = Vec::new();
        child.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 300_000);
        child.finish().unwrap();
    }

    #[test]
    fn failure_carries_the_status_and_stderr_even_when_output_was_unread() {
        let child = Cmd::new("sh")
            .args(["-c", "head -c 200000 /dev/zero; echo broken >&2; exit 3"])
            .spawn_reader()
            .unwrap();
        let err = child.finish().unwrap_err().to_string();
        assert!(
            err.contains("exit status 3") && err.contains("broken"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = Cmd::new("banger-no-such-program")
            .spawn_reader()
            .err()
            .unwrap();
        assert!(matches!(err, ProcessError::NotFound { .. }), "{err}");
    }

    #[test]
    fn dropping_unfinished_kills_the_program() {
        let child = Cmd::new("sleep").arg("30").spawn_reader().unwrap();
        let pid = child.child.id();
        drop(child);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
