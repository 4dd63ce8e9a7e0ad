//! The agent-mux sidecar (`crate::agent_mux`): the process that serves the
//! guest agent's virtio-serial port to the host as Firecracker's
//! hybrid-vsock socket (`CONNECT <port>\n`), so everything above the
//! driver is backend-blind (SPEC §10).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_sys::{Cmd, proc};

use super::logs;
use super::paths::RunPaths;
use crate::VmmError;

/// It binds its socket within milliseconds; this allows for a loaded host.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// What identifies our sidecar among all processes: its hybrid-vsock path.
pub fn identity(vsock_uds: &Path) -> String {
    vsock_uds.display().to_string()
}

/// Starts the sidecar (`binary --agent-mux ...`) and waits until it
/// listens on both sockets; returns its pid. On failure nothing is left
/// running.
pub fn start(binary: &Path, paths: &RunPaths) -> Result<u32, VmmError> {
    let log_start = logs::log_len(&paths.sidecar_log);
    let args = crate::agent_mux::MuxArgs {
        port_socket: paths.port_socket.clone(),
        uds: paths.vsock_uds.clone(),
    };
    let pid = Cmd::new(binary)
        .args(args.to_args())
        .spawn_detached(&paths.sidecar_log)?;
    let id = identity(&paths.vsock_uds);
    let deadline = Instant::now() + SOCKET_TIMEOUT;
    proc::wait_exec(pid, &id, SOCKET_TIMEOUT);
    loop {
        if is_socket(&paths.vsock_uds) {
            return Ok(pid);
        }
        if !proc::is_ours(pid, &id) {
            return Err(VmmError::ExitedEarly {
                log: paths.sidecar_log.clone(),
                tail: logs::log_tail_since(&paths.sidecar_log, log_start),
            });
        }
        if Instant::now() >= deadline {
            proc::terminate(pid, &id, Duration::from_secs(1));
            return Err(VmmError::Timeout(
                SOCKET_TIMEOUT,
                format!(
                    "{} to listen on {}{}",
                    binary.display(),
                    paths.vsock_uds.display(),
                    logs::log_tail_since(&paths.sidecar_log, log_start)
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
