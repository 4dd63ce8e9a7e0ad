//! The interface every VMM driver implements, and what a launch needs and
//! returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Firecracker,
    Qemu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    /// A file or block device.
    pub path: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
}

/// Everything a driver needs to boot one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    /// The VM's id: names sockets and log lines.
    pub id: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    /// An ELF `vmlinux` for Firecracker; a bzImage (or vmlinux) for QEMU.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// banger's own kernel arguments (`banger.root=`, `banger.ip=`, ...);
    /// the driver adds its console and timing arguments.
    pub kernel_args: String,
    /// `/dev/vda`.
    pub root_disk: DiskSpec,
    /// `/dev/vdb`, mounted at `/root` in the guest.
    pub work_disk: Option<DiskSpec>,
    /// The kernel's modules, read-only: the disk after the work disk
    /// (`/dev/vdc`, or `/dev/vdb` without one), mounted by banger's
    /// initramfs at `/lib/modules/<release>` (`banger.modules=`).
    #[serde(default)]
    pub modules_disk: Option<DiskSpec>,
    /// A tap attached to banger's bridge; `None`: no network device.
    pub tap: Option<String>,
    pub mac: Option<String>,
    /// The guest's vsock context id (3 or more).
    pub vsock_cid: u32,
    /// The VM's private directory: sockets, console and VMM logs live here.
    pub run_dir: PathBuf,
}

/// What a launched VM is, for the driver to find it again: enough to stop,
/// kill or adopt it after a daemon restart. Stored as `handles.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmHandle {
    pub backend: BackendKind,
    /// The VMM process.
    pub pid: u32,
    /// Helper processes the VM needs: QEMU's agent-mux sidecar, and the log
    /// cappers of either backend (`crate::logcap`).
    #[serde(default)]
    pub helper_pids: Vec<u32>,
    /// Firecracker's API socket, or QEMU's QMP socket.
    pub control_socket: PathBuf,
    /// The hybrid-vsock Unix socket: connect, `CONNECT <port>\n`, `OK ...`.
    pub vsock_uds: PathBuf,
    /// Serial console output.
    pub console_log: PathBuf,
    /// The VMM's own log.
    pub vmm_log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{binary} not found: {hint}")]
    BinaryMissing { binary: String, hint: String },
    #[error(transparent)]
    Process(#[from] banger_sys::ProcessError),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the VMM refused {what}: {detail}")]
    Refused { what: String, detail: String },
    #[error("the VMM exited during start-up; see {log}{tail}")]
    ExitedEarly { log: PathBuf, tail: String },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("invalid VM configuration: {0}")]
    InvalidConfig(String),
}

/// A VMM driver. Launch returns once the guest is starting; reaching the
/// agent is the caller's business (through [`VmHandle::vsock_uds`]).
pub trait VmmBackend: Send + Sync {
    fn kind(&self) -> BackendKind;
    fn launch(&self, config: &VmConfig) -> Result<VmHandle, VmmError>;
    /// Pauses the VM and writes its memory and device state into `dir`
    /// (an empty directory); the VM stays paused, its disks still, until
    /// [`VmmBackend::resume`].
    fn save(&self, handle: &VmHandle, dir: &Path) -> Result<(), VmmError>;
    /// Continues a VM paused by [`VmmBackend::save`].
    fn resume(&self, handle: &VmHandle) -> Result<(), VmmError>;
    /// Launches `config` from the state [`VmmBackend::save`] wrote in
    /// `dir`, running. The files in `dir` are only read; `config`'s disks
    /// must hold what the saved VM's held when it was saved.
    fn restore(&self, config: &VmConfig, dir: &Path) -> Result<VmHandle, VmmError>;
    /// Asks the guest to power off (ACPI power button / Ctrl-Alt-Del); does
    /// not wait.
    fn request_shutdown(&self, handle: &VmHandle) -> Result<(), VmmError>;
    /// Whether the VMM process of `handle` is still running (adoption after a
    /// daemon restart uses this).
    fn is_alive(&self, handle: &VmHandle) -> bool;
    /// Waits up to `timeout` for the VMM to exit; `Ok(true)` if it did.
    fn wait_exit(&self, handle: &VmHandle, timeout: Duration) -> Result<bool, VmmError>;
    /// Kills the VMM and its helpers, and removes their sockets. Idempotent.
    fn kill(&self, handle: &VmHandle) -> Result<(), VmmError>;
}

/// A driver for a VM launched earlier, chosen by the backend its handle
/// records rather than by today's configuration, and working when that
/// VMM's binary is no longer installed: observing, stopping and killing
/// need only the handle's pids and sockets.
pub fn driver_for(kind: BackendKind) -> Box<dyn VmmBackend> {
    match kind {
        BackendKind::Firecracker => Box::new(crate::firecracker::Firecracker::for_handles()),
        BackendKind::Qemu => Box::new(crate::qemu::Qemu::for_handles()),
    }
}
