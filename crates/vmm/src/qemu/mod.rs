//! The QEMU microvm driver (SPEC §13, §14.1): for hosts without Firecracker,
//! and for tests on hosts whose KVM cannot boot guests (TCG).
//!
//! One VM is two processes: the agent-mux sidecar (started first; QEMU's
//! virtio-serial chardev connects to it, see `crate::agent_mux`) and QEMU
//! itself, both
//! detached into their own process groups so a daemon restart does not stop
//! them; with a [`LogCapper`], two more: the cappers of the serial console
//! (QEMU's stdout) and of QEMU's own log (its stderr), started before both. Their sockets, logs and pidfile live in the VM's run directory
//! ([`RunPaths`]); the handle records the pids, and a pid counts as the VM's
//! only while its command line names the VM's sockets.

mod accel;
mod argv;
mod launch;
mod logs;
mod paths;
mod qmp;
mod sidecar;
mod snapshot;
mod tsc;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_sys::proc;

pub use accel::{ACCEL_ENV, Accel};
pub use argv::{Console, build as build_argv, build_with as build_argv_with, kernel_cmdline};
pub use paths::RunPaths;
pub use qmp::{QmpClient, QmpError, RunStatus};
pub use tsc::host_tsc_khz;

use crate::logcap::{self, LogCapper};
use crate::{BackendKind, VmConfig, VmHandle, VmmBackend, VmmError};

/// The saved state in a snapshot's directory.
pub const MEMORY_FILE: &str = "memory.qemu";

/// How long one QMP exchange may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long QEMU gets to exit after `quit` before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// How long a SIGKILLed process gets to disappear.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long the sidecar gets after SIGTERM (and again after SIGKILL).
const SIDECAR_GRACE: Duration = Duration::from_secs(2);

/// The QEMU driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    /// `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// The program that runs the agent-mux sidecar with `--agent-mux`
    /// (`bangerd` itself in the product).
    pub mux_program: PathBuf,
    pub accel: Accel,
    /// `Some`: the console and QEMU's own log go through log cappers
    /// (`crate::logcap`), bounded on disk; `None`: QEMU writes them itself.
    pub log_capper: Option<LogCapper>,
}

impl Qemu {
    pub fn new(binary: PathBuf, mux_program: PathBuf, accel: Accel) -> Qemu {
        Qemu {
            binary,
            mux_program,
            accel,
            log_capper: None,
        }
    }

    /// Launches bound the console and QEMU's log through `capper`.
    pub fn with_log_capper(mut self, capper: Option<LogCapper>) -> Qemu {
        self.log_capper = capper;
        self
    }

    /// A driver for VMs launched earlier: watching, stopping and killing
    /// use only the handle's pids and sockets (QMP), never the binaries or
    /// the accelerator, so it works after QEMU was uninstalled.
    pub fn for_handles() -> Qemu {
        Qemu::new(
            PathBuf::from("qemu-system-x86_64"),
            PathBuf::from("bangerd"),
            Accel::Tcg,
        )
    }

    /// QEMU from `PATH` (or `qemu_bin`, a name or path, when given), the
    /// accelerator from [`Accel::detect`]; `mux_program` runs the sidecar.
    pub fn discover(qemu_bin: Option<&str>, mux_program: PathBuf) -> Result<Qemu, VmmError> {
        let find = |name: &str, hint: &str| {
            banger_sys::find_program(name).ok_or_else(|| VmmError::BinaryMissing {
                binary: name.to_owned(),
                hint: hint.to_owned(),
            })
        };
        let binary = find(
            qemu_bin.unwrap_or("qemu-system-x86_64"),
            "install qemu-system-x86 or set qemu_bin in config.toml",
        )?;
        let accel = Accel::detect(&binary)?;
        Ok(Qemu::new(binary, mux_program, accel))
    }
}

/// What identifies a VM's QEMU among all processes: its QMP socket, spelled
/// as it appears on QEMU's command line.
fn qemu_identity(control_socket: &Path) -> String {
    argv::option_value(control_socket).unwrap_or_else(|_| control_socket.display().to_string())
}

impl VmmBackend for Qemu {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn launch(&self, config: &VmConfig) -> Result<VmHandle, VmmError> {
        launch::launch(self, config)
    }

    fn save(&self, handle: &VmHandle, dir: &Path) -> Result<(), VmmError> {
        snapshot::save(handle, &dir.join(MEMORY_FILE))
    }

    fn resume(&self, handle: &VmHandle) -> Result<(), VmmError> {
        snapshot::resume(handle)
    }

    fn restore(&self, config: &VmConfig, dir: &Path) -> Result<VmHandle, VmmError> {
        launch::launch_from(self, config, Some(&dir.join(MEMORY_FILE)))
    }

    /// Presses Ctrl-Alt-Del, then the ACPI power button. banger's minimal
    /// init powers off on Ctrl-Alt-Del and ignores the button; systemd
    /// guests act on either (Ctrl-Alt-Del reboots them, and `-no-reboot`
    /// makes that an exit). Both are tried; an error only if neither was
    /// accepted.
    fn request_shutdown(&self, handle: &VmHandle) -> Result<(), VmmError> {
        let mut client = QmpClient::connect(&handle.control_socket, QMP_TIMEOUT)?;
        let keys = client.send_ctrl_alt_del();
        let button = client.system_powerdown();
        match (keys, button) {
            (Err(e), Err(_)) => Err(e.into()),
            (keys, button) => {
                for e in [keys.err(), button.err()].into_iter().flatten() {
                    tracing::debug!(error = %e, "one shutdown request was refused");
                }
                Ok(())
            }
        }
    }

    fn is_alive(&self, handle: &VmHandle) -> bool {
        proc::is_ours(handle.pid, &qemu_identity(&handle.control_socket))
    }

    fn wait_exit(&self, handle: &VmHandle, timeout: Duration) -> Result<bool, VmmError> {
        let id = qemu_identity(&handle.control_socket);
        Ok(proc::wait_gone(handle.pid, &id, timeout))
    }

    /// `quit` over QMP (QEMU closes its disk images cleanly), SIGKILL when
    /// QMP does not answer or QEMU lingers; then the sidecar; then the
    /// log cappers (given time to write what QEMU last printed); then the
    /// sockets. Safe to repeat, and after the processes are long gone.
    fn kill(&self, handle: &VmHandle) -> Result<(), VmmError> {
        let id = qemu_identity(&handle.control_socket);
        if proc::is_ours(handle.pid, &id) {
            let quit =
                QmpClient::connect(&handle.control_socket, QMP_TIMEOUT).and_then(QmpClient::quit);
            if let Err(e) = &quit {
                tracing::debug!(pid = handle.pid, error = %e, "QMP quit failed; killing");
            }
            let gone = quit.is_ok() && proc::wait_gone(handle.pid, &id, QUIT_GRACE);
            if !gone && !proc::kill_hard(handle.pid, &id, KILL_GRACE) {
                return Err(VmmError::Timeout(
                    KILL_GRACE,
                    format!("QEMU (pid {}) to exit after SIGKILL", handle.pid),
                ));
            }
        } else {
            // Already gone; collect its exit status if it was our child.
            proc::wait_gone(handle.pid, &id, Duration::ZERO);
        }
        let sidecar_id = sidecar::identity(&handle.vsock_uds);
        for &pid in &handle.helper_pids {
            if !proc::terminate(pid, &sidecar_id, SIDECAR_GRACE) {
                return Err(VmmError::Timeout(
                    SIDECAR_GRACE * 2,
                    format!("the agent-mux sidecar (pid {pid}) to exit"),
                ));
            }
        }
        let left = logcap::stop_cappers(handle);
        if !left.is_empty() {
            return Err(VmmError::Timeout(
                SIDECAR_GRACE * 2,
                format!("log cappers {left:?} to exit"),
            ));
        }
        launch::remove_leftovers(handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
