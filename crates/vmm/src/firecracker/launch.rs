//! One launch: prepare the run dir, start Firecracker, wait for its API,
//! configure, start the guest. Any failure kills what was started and
//! removes its sockets, so a failed launch leaves no stray VMM behind.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use banger_sys::{Cmd, Detached, proc};

use super::client::ApiClient;
use super::error::FirecrackerError;
use super::layout::Layout;
use super::version::FirecrackerVersion;
use super::{Firecracker, jailer, plan, remove_if_present};
use crate::{BackendKind, VmConfig, VmHandle, VmmError};

/// How long Firecracker gets to open its API socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one API request may take; `InstanceStart` loads the kernel.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the console log an early-exit error quotes.
const TAIL_BYTES: u64 = 2048;

pub fn launch(fc: &Firecracker, config: &VmConfig) -> Result<VmHandle, VmmError> {
    launch_from(fc, config, None)
}

/// Launches `config`, booting it, or with `snapshot` (a snapshot's
/// directory) loading the state saved there and resuming it. Restores run
/// unjailed only: the jail would need the snapshot's files linked in.
pub fn launch_from(
    fc: &Firecracker,
    config: &VmConfig,
    snapshot: Option<&Path>,
) -> Result<VmHandle, VmmError> {
    plan::check(config)?;
    if snapshot.is_some() && fc.jailer.is_some() {
        return Err(VmmError::Refused {
            what: "a restore".into(),
            detail: "restoring a snapshot under the jailer is not supported yet; \
                     set jailer_enabled = false to restore"
                .into(),
        });
    }
    // The jailer names the jail after the real file; a release install's
    // `firecracker` is a link to `firecracker-vX.Y.Z-<arch>`.
    let exec_file = jailer::exec_file(&fc.binary);
    let layout = match &fc.jailer {
        None => Layout::direct(config),
        Some(jail) => Layout::jailed(config, jail, &exec_file)?,
    };
    // Built before anything starts, so a path Firecracker cannot take fails
    // the launch without a process to clean up.
    let requests = match snapshot {
        None => {
            let mut requests = plan::configuration(config, &layout)?;
            requests.push(plan::start());
            requests
        }
        Some(dir) => plan::restore(config, &layout, dir)?,
    };
    prepare(config, &layout)?;
    if let Some(jail) = &fc.jailer {
        jailer::stage(config, &layout, jail)?;
    }
    let cmd = command(fc, &exec_file, config, &layout)?;
    let (pid, helper_pids) = match &fc.log_capper {
        None => (cmd.spawn_detached(&layout.console_log)?, Vec::new()),
        // The serial console is Firecracker's stdout: a pipe to the capper,
        // started first so Firecracker never waits for a reader. Our copies
        // of the write end go with the spawn call, so the capper sees EOF
        // when Firecracker exits (and exits too if the spawn failed).
        Some(capper) => {
            let (capper_pid, pipe) = capper.start(&layout.console_log)?;
            let spawned = pipe
                .try_clone()
                .map_err(|source| VmmError::Io {
                    action: "duplicate the console pipe of",
                    path: layout.console_log.clone(),
                    source,
                })
                .and_then(|out| {
                    cmd.spawn_detached_io(Detached::Null, Detached::Pipe(out), Detached::Pipe(pipe))
                        .map_err(VmmError::from)
                });
            match spawned {
                Ok(pid) => (pid, vec![capper_pid]),
                Err(e) => {
                    // Our unreaped child: it exits on EOF, or is stopped.
                    if !proc::wait_gone(capper_pid, &proc::UnreapedChild, Duration::from_secs(2)) {
                        proc::terminate(capper_pid, &proc::UnreapedChild, Duration::from_secs(1));
                    }
                    return Err(e);
                }
            }
        }
    };
    let handle = VmHandle {
        backend: BackendKind::Firecracker,
        pid,
        helper_pids,
        control_socket: layout.api_socket.host.clone(),
        vsock_uds: layout.vsock.host.clone(),
        console_log: layout.console_log.clone(),
        vmm_log: layout.vmm_log.host.clone(),
    };
    tracing::info!(id = %config.id, pid, "firecracker started");
    match configure(fc, &handle, &requests) {
        Ok(()) => Ok(handle),
        Err(e) => {
            tracing::warn!(id = %config.id, pid, error = %e, "launch failed; killing firecracker");
            abort(&handle);
            Err(e)
        }
    }
}

/// The run dir with the files Firecracker expects: no stale sockets (it
/// refuses to bind over one), and existing log and metrics files (it opens
/// them but never creates them).
fn prepare(config: &VmConfig, layout: &Layout) -> Result<(), VmmError> {
    fs::create_dir_all(&config.run_dir).map_err(|source| VmmError::Io {
        action: "create",
        path: config.run_dir.clone(),
        source,
    })?;
    if let Some(root) = &layout.jail_root {
        fs::create_dir_all(root).map_err(|source| VmmError::Io {
            action: "create",
            path: root.clone(),
            source,
        })?;
    }
    for socket in layout.sockets() {
        remove_if_present(socket).map_err(|source| VmmError::Io {
            action: "remove the stale socket",
            path: socket.to_path_buf(),
            source,
        })?;
    }
    for file in [&layout.vmm_log.host, &layout.metrics.host] {
        File::options()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|source| VmmError::Io {
                action: "create",
                path: file.clone(),
                source,
            })?;
    }
    Ok(())
}

fn command(
    fc: &Firecracker,
    exec_file: &Path,
    config: &VmConfig,
    layout: &Layout,
) -> Result<Cmd, VmmError> {
    let cmd = match &fc.jailer {
        Some(jail) => {
            let argv = jail.argv(exec_file, &config.id)?;
            Cmd::new(&argv[0]).args(&argv[1..])
        }
        None => Cmd::new(&fc.binary)
            .arg("--api-sock")
            .arg(&layout.api_socket.vmm)
            .args(["--id", &config.id]),
    };
    Ok(cmd)
}

fn configure(
    fc: &Firecracker,
    handle: &VmHandle,
    requests: &[super::api::ApiRequest],
) -> Result<(), VmmError> {
    let client = ApiClient::new(&handle.control_socket, API_TIMEOUT);
    wait_for_api(fc, &client, handle)?;
    for request in requests {
        client.send(request)?;
    }
    Ok(())
}

/// Polls `GET /` until Firecracker answers, then checks its version.
/// Connection errors are retried (the socket is not bound yet); anything
/// else, or the process exiting, ends the wait.
fn wait_for_api(fc: &Firecracker, client: &ApiClient, handle: &VmHandle) -> Result<(), VmmError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let info = loop {
        if !proc::is_running(handle.pid) {
            // What it last printed reaches the console log through the capper.
            crate::logcap::stop_cappers(handle);
            return Err(VmmError::ExitedEarly {
                log: handle.console_log.clone(),
                tail: console_tail(&handle.console_log),
            });
        }
        match client.instance_info() {
            Ok(info) => break info,
            Err(FirecrackerError::Connect { .. }) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(FirecrackerError::Connect { .. }) => {
                return Err(VmmError::Timeout(
                    START_TIMEOUT,
                    format!(
                        "Firecracker's API socket {}",
                        handle.control_socket.display()
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let found = FirecrackerVersion::parse(&info.vmm_version).ok_or_else(|| {
        FirecrackerError::UnparsableVersion {
            binary: fc.binary.clone(),
            output: info.vmm_version.clone(),
        }
    })?;
    if !found.is_supported() {
        return Err(FirecrackerError::TooOld {
            binary: fc.binary.clone(),
            found,
        }
        .into());
    }
    tracing::debug!(version = %found, state = %info.state, "firecracker api ready");
    Ok(())
}

/// Kills a VMM this launch started, and reaps it. Its pid cannot have been
/// reused: the process is our child and stays a zombie until reaped, so no
/// ownership check is needed (and before the API is up there would be
/// nothing to check it against for a jailed VMM).
fn abort(handle: &VmHandle) {
    if !proc::kill_hard(handle.pid, &proc::UnreapedChild, Duration::from_secs(5)) {
        tracing::warn!(pid = handle.pid, "firecracker still runs after SIGKILL");
    }
    crate::logcap::stop_cappers(handle);
    for socket in [&handle.control_socket, &handle.vsock_uds] {
        if let Err(e) = remove_if_present(socket) {
            tracing::warn!(socket = %socket.display(), error = %e, "cannot remove socket");
        }
    }
    if let Err(e) = jailer::remove_jail(handle) {
        tracing::warn!(error = %e, "cannot remove the jail");
    }
}

/// The end of the console log, as the `tail` of an early-exit error.
fn console_tail(log: &Path) -> String {
    let Ok(mut file) = File::open(log) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .is_err()
        || file.read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(":\n{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_tail_quotes_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        assert_eq!(console_tail(&log), "", "missing log");
        fs::write(&log, "\n\n").unwrap();
        assert_eq!(console_tail(&log), "", "blank log");
        let mut text = "x".repeat(5000);
        text.push_str("\nError: bad kernel\n");
        fs::write(&log, &text).unwrap();
        let tail = console_tail(&log);
        assert!(
            tail.starts_with(":\n") && tail.ends_with("Error: bad kernel"),
            "{tail}"
        );
        assert!(tail.len() <= TAIL_BYTES as usize + 2);
    }
}
