//! A command's process: started by argv in its own process group, fed its
//! request's stdin, and killed as a group. What `exec`, its streaming
//! variant and the input feed share, below all three.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;

use super::exec_spec::ExecSpec;

/// How long output may keep arriving after the process ended (from
/// descendants it left running) before the answer is sent without it.
pub(super) const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The longest pause between two checks of whether the child exited.
pub(super) const MAX_POLL: Duration = Duration::from_millis(50);

/// Why a valid request could not be carried out (`failed`).
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("working directory {}: {source}", path.display())]
    Cwd { path: PathBuf, source: io::Error },
    #[error("cannot run {program:?}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("cannot start a thread for the command's input or output: {0}")]
    Thread(io::Error),
    #[error("waiting for {program:?} failed: {source}")]
    Wait { program: String, source: io::Error },
    #[error("stdin_stream without a connection to read the input frames from")]
    NoInput,
}

/// Starts the program with piped stdout and stderr (stdin piped only when
/// the request has some or streams it), in its own process group.
pub(super) fn spawn(spec: &ExecSpec) -> Result<(Child, Instant), ExecError> {
    let program = spec.argv[0].clone();
    let cwd = resolve_cwd(spec.cwd.as_deref())?;
    let mut command = Command::new(&program);
    command
        .args(&spec.argv[1..])
        .current_dir(&cwd)
        .stdin(if spec.stdin.is_some() || spec.input_follows() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // PID 1 starts without PATH or a useful HOME; give children sane ones
    // unless the request sets its own.
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", crate::DEFAULT_PATH);
    }
    if std::env::var_os("HOME").is_none_or(|h| h == "/") {
        command.env("HOME", "/root");
    }
    command.envs(&spec.env);

    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|source| ExecError::Spawn { program, source })?;
    Ok((child, started))
}

fn resolve_cwd(requested: Option<&Path>) -> Result<PathBuf, ExecError> {
    let path = match requested {
        Some(p) => p.to_path_buf(),
        None if Path::new("/root").is_dir() => PathBuf::from("/root"),
        None => PathBuf::from("/"),
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(ExecError::Cwd {
            path,
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }),
        Err(source) => Err(ExecError::Cwd { path, source }),
    }
}

/// Writes stdin on its own thread so a child that does not read it (or
/// reads it only after writing lots of output) cannot deadlock the agent.
pub(super) fn feed_stdin(child: &mut Child, data: Vec<u8>) {
    let Some(mut stdin) = child.stdin.take() else {
        return;
    };
    let spawned = thread::Builder::new()
        .name("exec-stdin".into())
        .spawn(move || {
            // EPIPE just means the child did not want the rest.
            let _ = stdin.write_all(&data);
        });
    if let Err(e) = spawned {
        crate::warn!("cannot start the stdin thread, closing stdin: {e}");
    }
}

/// Kills and reaps a command whose setup failed half-way; returns `error`.
pub(super) fn abandon(child: &mut Child, error: ExecError) -> ExecError {
    kill_group(child);
    let _ = child.wait();
    error
}

pub(super) fn kill_group(child: &Child) {
    // The child leads its own group (process_group(0)), so its pid is the
    // group id. It is not reaped yet, so the id cannot have been reused.
    kill_pgid(child.id());
}

/// SIGKILLs process group `pgid`; true when some process got the signal.
pub(super) fn kill_pgid(pgid: u32) -> bool {
    match i32::try_from(pgid) {
        Ok(pgid) => killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_ok(),
        Err(_) => false,
    }
}
