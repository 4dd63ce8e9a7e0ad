//! The files one QEMU VM keeps in its run directory.

use std::path::{Path, PathBuf};

/// Where a VM's sockets, logs and pidfile live, all inside `run_dir` so
/// teardown can find them from the directory alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// QMP control socket (QEMU listens).
    pub qmp: PathBuf,
    /// Hybrid-vsock socket the host connects to (the agent-mux sidecar
    /// listens).
    pub vsock_uds: PathBuf,
    /// Where QEMU's virtio-serial chardev for the agent connects (the
    /// sidecar listens).
    pub port_socket: PathBuf,
    /// The guest's serial console.
    pub console_log: PathBuf,
    /// QEMU's stdout and stderr.
    pub qemu_log: PathBuf,
    /// The agent-mux sidecar's stdout and stderr.
    pub sidecar_log: PathBuf,
    pub pidfile: PathBuf,
}

impl RunPaths {
    pub fn new(run_dir: &Path) -> RunPaths {
        RunPaths {
            qmp: run_dir.join("qmp.sock"),
            vsock_uds: run_dir.join("vsock.sock"),
            port_socket: run_dir.join("agent-port.sock"),
            console_log: run_dir.join("console.log"),
            qemu_log: run_dir.join("qemu.log"),
            sidecar_log: run_dir.join("agent-mux.log"),
            pidfile: run_dir.join("qemu.pid"),
        }
    }

    /// The sockets this VM's processes create, for cleanup.
    pub fn sockets(&self) -> [&Path; 3] {
        [&self.qmp, &self.vsock_uds, &self.port_socket]
    }
}
