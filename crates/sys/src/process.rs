//! Running external programs: argv only (never a shell), logged, with stderr
//! captured into the error so the user sees why a tool failed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

mod reader;
pub use reader::ReadingChild;

/// Longest stderr excerpt kept in an error message.
const STDERR_EXCERPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "cannot run `{argv}`: {program} was not found in PATH; install it or set its path in config.toml"
    )]
    NotFound { argv: String, program: String },
    #[error("cannot run `{argv}`")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        argv: String,
        status: String,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// An external command, built as argv.
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The argv as one display string, for logs and errors.
    pub fn argv(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn_error(&self, source: std::io::Error) -> ProcessError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound {
                argv: self.argv(),
                program: self.program.to_string_lossy().into_owned(),
            }
        } else {
            ProcessError::Spawn {
                argv: self.argv(),
                source,
            }
        }
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let (status, out) = self.run_any_status()?;
        if !status.success() {
            let argv = self.argv();
            let stderr = excerpt(&out.stderr);
            tracing::debug!(%argv, status = %describe(status), %stderr, "failed");
            return Err(ProcessError::Failed {
                argv,
                status: describe(status),
                stderr,
            });
        }
        Ok(out)
    }

    /// Runs to completion and returns the exit status with the output, for
    /// programs whose non-zero exits are answers (`--check-migrations`).
    pub fn run_any_status(&self) -> Result<(ExitStatus, Output), ProcessError> {
        let argv = self.argv();
        tracing::debug!(%argv, "running");
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let (Some(bytes), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            // A child that exits without reading its input is not our error;
            // its exit status tells what happened.
            let _ = pipe.write_all(bytes);
        }
        let out = child
            .wait_with_output()
            .map_err(|source| ProcessError::Spawn {
                argv: argv.clone(),
                source,
            })?;
        Ok((
            out.status,
            Output {
                stdout: out.stdout,
                stderr: out.stderr,
            },
        ))
    }

    /// Runs with this process's terminal (stdin, stdout, stderr inherited),
    /// for programs the user drives, like `ssh`. Returns the exit code, or
    /// 128 + the signal that killed it, as a shell would.
    pub fn run_interactive(&self) -> Result<i32, ProcessError> {
        use std::os::unix::process::ExitStatusExt;
        tracing::debug!(argv = %self.argv(), "running interactively");
        let status = self.command().status().map_err(|e| self.spawn_error(e))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    /// Starts the program in its own session, detached from this terminal,
    /// with stdout and stderr appended to `log`. Returns its pid.
    pub fn spawn_detached(&self, log: &Path) -> Result<u32, ProcessError> {
        let argv = self.argv();
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| ProcessError::Spawn {
                    argv: argv.clone(),
                    source,
                })
        };
        let (out, err) = (open_log()?, open_log()?);
        tracing::debug!(%argv, log = %log.display(), "spawning detached");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(child.id())
    }
}

/// Where a detached program's standard streams go
/// ([`Cmd::spawn_detached_io`]).
pub enum Detached {
    /// Appended to a file (created if missing).
    File(PathBuf),
    /// One end of a pipe (see [`pipe`]); the caller drops its own copy
    /// after the spawn, so the reader sees EOF when the program exits.
    Pipe(OwnedFd),
    Null,
}

impl Cmd {
    /// Starts the program in its own session (process group), detached from
    /// this terminal and from this process's lifetime, with stdin, stdout
    /// and stderr as given. Returns its pid.
    pub fn spawn_detached_io(
        &self,
        stdin: Detached,
        stdout: Detached,
        stderr: Detached,
    ) -> Result<u32, ProcessError> {
        let argv = self.argv();
        let stdio = |d: Detached, write: bool| -> Result<Stdio, ProcessError> {
            Ok(match d {
                Detached::Null => Stdio::null(),
                Detached::Pipe(fd) => Stdio::from(fd),
                Detached::File(path) => {
                    let file = if write {
                        File::options().create(true).append(true).open(&path)
                    } else {
                        File::open(&path)
                    };
                    Stdio::from(file.map_err(|source| ProcessError::Spawn {
                        argv: argv.clone(),
                        source,
                    })?)
                }
            })
        };
        let (i, o, e) = (
            stdio(stdin, false)?,
            stdio(stdout, true)?,
            stdio(stderr, true)?,
        );
        tracing::debug!(%argv, "spawning detached");
        let mut cmd = self.command();
        cmd.stdin(i).stdout(o).stderr(e).process_group(0);
        let child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(child.id())
    }
}

/// A pipe, both ends close-on-exec (so a program spawned by another thread
/// never inherits them by accident): `(read, write)`.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(std::io::Error::from)
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd({})", self.argv())
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= STDERR_EXCERPT {
        return text.to_owned();
    }
    let mut cut = text.len() - STDERR_EXCERPT;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &text[cut..])
}

/// Finds a program the way `execvp` would: a name containing `/` is taken as
/// a path, anything else is searched in `PATH`. Only executable regular files
/// count.
pub fn find_program(name: &str) -> Option<PathBuf> {
    find_program_in(name, std::env::var_os("PATH").as_deref())
}

pub fn find_program_in(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exe(&p).then_some(p);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|p| is_exe(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout() {
        let out = Cmd::new("sh").args(["-c", "printf hello"]).run().unwrap();
        assert_eq!(out.stdout_str(), "hello");
    }

    #[test]
    fn failure_carries_argv_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo boom >&2; exit 3"), "{msg}");
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(msg.ends_with(": boom"), "{msg}");
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = Cmd::new("banger-no-such-program").run().unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn interactive_runs_pass_the_status_through() {
        assert_eq!(
            Cmd::new("sh")
                .args(["-c", "exit 7"])
                .run_interactive()
                .unwrap(),
            7
        );
        assert_eq!(
            Cmd::new("sh")
                .args(["-c", "kill -9 $$"])
                .run_interactive()
                .unwrap(),
            137
        );
        assert!(matches!(
            Cmd::new("banger-no-such-program").run_interactive(),
            Err(ProcessError::NotFound { .. })
        ));
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin_bytes("piped").run().unwrap();
        assert_eq!(out.stdout_str(), "piped");
    }

    #[test]
    fn long_stderr_keeps_the_tail() {
        let err = Cmd::new("sh")
            .args([
                "-c",
                "head -c 10000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1",
            ])
            .run()
            .unwrap_err();
        let ProcessError::Failed { stderr, .. } = err else {
            panic!()
        };
        assert!(
            stderr.len() < 4200 && stderr.ends_with("END"),
            "{}",
            stderr.len()
        );
    }

    #[test]
    fn finds_programs_in_path_only_if_executable() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(
            find_program_in("tool", Some(&path)),
            None,
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program_in("tool", Some(&path)), Some(exe.clone()));
        assert_eq!(find_program_in(exe.to_str().unwrap(), None), Some(exe));
        assert_eq!(find_program_in("tool", None), None);
    }

    #[test]
    fn detached_child_writes_to_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let pid = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .spawn_detached(&log)
            .unwrap();
        assert!(pid > 0);
        for _ in 0..100 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("out") && text.contains("err") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("log never filled");
    }
}
