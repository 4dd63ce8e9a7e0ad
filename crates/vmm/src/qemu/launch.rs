//! Starting one VM: checks, the log cappers, the sidecar, QEMU, and waiting until QEMU says
//! it runs. Any failure stops what was started and removes its sockets, so
//! a failed launch leaves no process behind.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_sys::{Cmd, Detached, proc};

use super::{Accel, Qemu, QmpClient, RunPaths, argv, logs, qemu_identity, sidecar, tsc, validate};
use crate::{BackendKind, VmConfig, VmHandle, VmmBackend, VmmError, logcap};

/// QEMU answers QMP well under a second after start, even under TCG.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Loading a saved state reads the whole memory file first.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn launch(qemu: &Qemu, config: &VmConfig) -> Result<VmHandle, VmmError> {
    launch_from(qemu, config, None)
}

/// Launches `config`, booting it, or with `incoming` loading the saved
/// state there (a snapshot's `memory.qemu`) and resuming it.
pub(super) fn launch_from(
    qemu: &Qemu,
    config: &VmConfig,
    incoming: Option<&Path>,
) -> Result<VmHandle, VmmError> {
    let paths = RunPaths::new(&config.run_dir);
    let tsc_khz = match qemu.accel {
        Accel::Tcg => {
            let khz = tsc::host_tsc_khz();
            if khz.is_none() {
                tracing::warn!(
                    vm = %config.id,
                    "host TSC frequency unknown: booting without tsc_early_khz, \
                     which can hang early boot under TCG"
                );
            }
            khz
        }
        Accel::Kvm => None,
    };
    let console = if qemu.log_capper.is_some() {
        argv::Console::Stdout
    } else {
        argv::Console::File
    };
    let mut args = argv::build_with(config, &paths, qemu.accel, tsc_khz, console)?;
    if let Some(state) = incoming {
        args.extend(["-incoming".to_owned(), argv::incoming_from_file(state)?]);
    }
    validate::check_files(config)?;
    refuse_if_running(&paths)?;
    for socket in paths.sockets() {
        remove_socket(socket);
    }

    let mut handle = VmHandle {
        backend: BackendKind::Qemu,
        pid: 0,
        helper_pids: Vec::new(),
        control_socket: paths.qmp.clone(),
        vsock_uds: paths.vsock_uds.clone(),
        console_log: paths.console_log.clone(),
        vmm_log: paths.qemu_log.clone(),
    };
    // The cappers first: the pipes' write ends become QEMU's stdout and
    // stderr, so QEMU never waits for a reader (see `crate::logcap`).
    let pipes = match &qemu.log_capper {
        None => None,
        Some(capper) => {
            let mut start = |file: &Path| {
                capper.start(file).map(|(pid, pipe)| {
                    handle.helper_pids.push(pid);
                    pipe
                })
            };
            match start(&paths.console_log).and_then(|c| Ok((c, start(&paths.qemu_log)?))) {
                Ok(pipes) => Some(pipes),
                Err(e) => {
                    cleanup(qemu, &handle);
                    return Err(e);
                }
            }
        }
    };
    match sidecar::start(&qemu.mux_program, &paths) {
        Ok(pid) => handle.helper_pids.push(pid),
        Err(e) => {
            drop(pipes);
            cleanup(qemu, &handle);
            return Err(e);
        }
    }
    let log_start = logs::log_len(&paths.qemu_log);
    let cmd = Cmd::new(&qemu.binary).args(&args);
    tracing::info!(vm = %config.id, accel = qemu.accel.as_str(), argv = %cmd.argv(), "starting QEMU");
    let spawned = match pipes {
        // Our copies of the write ends go with the call: only QEMU holds
        // them, so the cappers see EOF when it exits.
        Some((console, log)) => {
            cmd.spawn_detached_io(Detached::Null, Detached::Pipe(console), Detached::Pipe(log))
        }
        None => cmd.spawn_detached(&paths.qemu_log),
    };
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            cleanup(qemu, &handle);
            return Err(e.into());
        }
    };
    let handle = VmHandle { pid, ..handle };
    let ready =
        wait_ready(pid, &paths, log_start, &handle, incoming.is_some()).and_then(
            |()| match incoming {
                Some(_) => super::snapshot::resume(&handle),
                None => Ok(()),
            },
        );
    match ready {
        Ok(()) => Ok(handle),
        Err(e) => {
            cleanup(qemu, &handle);
            Err(e)
        }
    }
}

/// Stops whatever a failed launch started; the launch error is what the
/// caller needs, so a cleanup failure is only logged.
fn cleanup(qemu: &Qemu, handle: &VmHandle) {
    if let Err(e) = qemu.kill(handle) {
        tracing::warn!(error = %e, "cleaning up after a failed launch");
    }
}

/// A QEMU already answering on this run directory's QMP socket is another
/// launch of the same VM; starting a second one would corrupt its disks.
fn refuse_if_running(paths: &RunPaths) -> Result<(), VmmError> {
    if !is_socket(&paths.qmp) {
        return Ok(());
    }
    match QmpClient::connect(&paths.qmp, PROBE_TIMEOUT) {
        Ok(_) => Err(VmmError::Refused {
            what: "launch".into(),
            detail: format!("a QEMU already answers on {}", paths.qmp.display()),
        }),
        Err(_) => Ok(()),
    }
}

/// Waits for QEMU to answer `query-status` with `running`, or, loading a
/// saved state, with `paused` (the state was saved from a paused VM, and
/// the caller resumes it once loaded).
fn wait_ready(
    pid: u32,
    paths: &RunPaths,
    log_start: u64,
    handle: &VmHandle,
    loading: bool,
) -> Result<(), VmmError> {
    let id = qemu_identity(&paths.qmp);
    let timeout = if loading { LOAD_TIMEOUT } else { READY_TIMEOUT };
    let deadline = Instant::now() + timeout;
    proc::wait_exec(pid, &id, READY_TIMEOUT);
    loop {
        if !proc::is_ours(pid, &id) {
            // What QEMU last printed reaches its log through the capper.
            logcap::stop_cappers(handle);
            return Err(VmmError::ExitedEarly {
                log: paths.qemu_log.clone(),
                tail: logs::log_tail_since(&paths.qemu_log, log_start),
            });
        }
        let last = match QmpClient::connect(&paths.qmp, PROBE_TIMEOUT)
            .and_then(|mut c| c.query_status())
        {
            Ok(status) if status.running => return Ok(()),
            Ok(status) if loading && status.status == "paused" => return Ok(()),
            Ok(status) => format!("QEMU reports {}", status.status),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(VmmError::Timeout(
                timeout,
                format!(
                    "QEMU to run ({last}); see {}{}",
                    paths.qemu_log.display(),
                    logs::log_tail_since(&paths.qemu_log, log_start)
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Removes the VM's sockets and a pidfile a killed QEMU could not remove.
/// Only sockets and that one regular file: banger removes only what it made.
pub(super) fn remove_leftovers(handle: &VmHandle) {
    let run_dir = handle.control_socket.parent().unwrap_or(Path::new("/"));
    let paths = RunPaths::new(run_dir);
    remove_socket(&handle.control_socket);
    remove_socket(&handle.vsock_uds);
    remove_socket(&paths.port_socket);
    if std::fs::symlink_metadata(&paths.pidfile).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(&paths.pidfile);
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn remove_socket(path: &Path) {
    if is_socket(path)
        && let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove socket");
    }
}
