//! The Firecracker driver (SPEC §13): our own small HTTP client for its API
//! socket, the launch sequence, process handling by pid with an identity
//! check, and the jailer's argv and chroot layout.
//!
//! With the `test-support` feature it also carries the API schema validator
//! (`schema`) and the stand-in Firecracker (`standin`) the tests run
//! where no real Firecracker (or KVM) is available.

mod api;
mod client;
mod error;
mod http;
mod jailer;
mod launch;
mod layout;
mod plan;
mod process;
mod version;

#[cfg(feature = "test-support")]
pub mod schema;
#[cfg(feature = "test-support")]
pub mod standin;

pub use api::{
    ActionType, ApiRequest, BootSource, Drive, InstanceAction, InstanceInfo, LogLevel, Logger,
    MachineConfig, Metrics, NetworkInterface, Vsock,
};
pub use client::ApiClient;
pub use error::FirecrackerError;
pub use jailer::{JAILED_API_SOCKET, JailerConfig};
pub use launch::{API_TIMEOUT, START_TIMEOUT};
pub use layout::{API_SOCKET, CONSOLE_LOG, Layout, METRICS, MappedPath, VMM_LOG, VSOCK_SOCKET};
pub use plan::{BASE_BOOT_ARGS, IFACE_ID, ROOT_DRIVE_ID, WORK_DRIVE_ID, boot_args, configuration};
pub use version::FirecrackerVersion;

use std::path::PathBuf;
use std::time::Duration;

use banger_sys::{Cmd, ProcessError};

use crate::{BackendKind, VmConfig, VmHandle, VmmBackend, VmmError};

/// How long `kill` waits for the process to be gone after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The Firecracker backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firecracker {
    /// The `firecracker` program (a name looked up in `PATH`, or a path).
    pub binary: PathBuf,
    /// `Some`: run Firecracker under the jailer.
    pub jailer: Option<JailerConfig>,
}

impl Firecracker {
    pub fn new(binary: impl Into<PathBuf>) -> Firecracker {
        Firecracker {
            binary: binary.into(),
            jailer: None,
        }
    }

    /// Runs `firecracker --version`; refuses a release older than
    /// [`FirecrackerVersion::MINIMUM`].
    pub fn version(&self) -> Result<FirecrackerVersion, FirecrackerError> {
        let output = Cmd::new(&self.binary).arg("--version").run()?;
        let text = output.stdout_str();
        let version = FirecrackerVersion::parse_cli_output(&text).ok_or_else(|| {
            FirecrackerError::UnparsableVersion {
                binary: self.binary.clone(),
                output: text.trim().to_owned(),
            }
        })?;
        if !version.is_supported() {
            return Err(FirecrackerError::TooOld {
                binary: self.binary.clone(),
                found: version,
            });
        }
        Ok(version)
    }

    /// Whether the process of `handle.pid` is this handle's VMM: its argv
    /// names the API socket (unjailed) or the jail id and in-jail socket.
    fn owns(&self, handle: &VmHandle) -> bool {
        let argv = process::cmdline(handle.pid);
        if process::argv_has(&argv, process::path_bytes(&handle.control_socket)) {
            return true;
        }
        let Some(jail) = &self.jailer else {
            return false;
        };
        jailer::jail_id_of(jail, &handle.control_socket).is_some_and(|id| {
            process::argv_has_pair(&argv, b"--id", id.as_bytes())
                && process::argv_has(&argv, JAILED_API_SOCKET.as_bytes())
        })
    }
}

impl VmmBackend for Firecracker {
    fn kind(&self) -> BackendKind {
        BackendKind::Firecracker
    }

    fn launch(&self, config: &VmConfig) -> Result<VmHandle, VmmError> {
        launch::launch(self, config).map_err(|e| match e {
            VmmError::Process(ProcessError::NotFound { program, .. }) => VmmError::BinaryMissing {
                binary: program,
                hint: "install Firecracker 1.5 or newer, or set its path in config.toml".into(),
            },
            other => other,
        })
    }

    /// Ctrl-Alt-Del: the guest reboots, and with `reboot=k` a rebooting
    /// guest makes Firecracker exit.
    fn request_shutdown(&self, handle: &VmHandle) -> Result<(), VmmError> {
        ApiClient::new(&handle.control_socket, API_TIMEOUT).send(&plan::ctrl_alt_del())?;
        Ok(())
    }

    fn is_alive(&self, handle: &VmHandle) -> bool {
        process::running(handle.pid) && self.owns(handle)
    }

    fn wait_exit(&self, handle: &VmHandle, timeout: Duration) -> Result<bool, VmmError> {
        Ok(process::wait_until_gone(timeout, || self.is_alive(handle)))
    }

    /// SIGKILL only if the pid is still this VMM, then the sockets go.
    /// Firecracker has no helper processes (`helper_pids` stays empty).
    fn kill(&self, handle: &VmHandle) -> Result<(), VmmError> {
        if self.is_alive(handle) {
            tracing::info!(pid = handle.pid, "killing firecracker");
            process::sigkill(handle.pid)?;
            if !process::wait_until_gone(KILL_WAIT, || process::running(handle.pid)) {
                return Err(VmmError::Timeout(
                    KILL_WAIT,
                    format!("Firecracker (pid {}) to exit after SIGKILL", handle.pid),
                ));
            }
        }
        for socket in [&handle.control_socket, &handle.vsock_uds] {
            process::remove_if_present(socket).map_err(|source| VmmError::Io {
                action: "remove",
                path: socket.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::{Child, Command};

    fn handle(pid: u32, control_socket: &Path) -> VmHandle {
        VmHandle {
            backend: BackendKind::Firecracker,
            pid,
            helper_pids: Vec::new(),
            control_socket: control_socket.to_path_buf(),
            vsock_uds: "/nonexistent/vsock.sock".into(),
            console_log: "/nonexistent/console.log".into(),
            vmm_log: "/nonexistent/firecracker.log".into(),
        }
    }

    /// A process whose argv carries `args` (sh does not exec the sleep,
    /// because another command follows it).
    fn process_with_args(args: &[&str]) -> Child {
        let child = Command::new("sh")
            .args(["-c", "sleep 5; true", "sh"])
            .args(args)
            .spawn()
            .unwrap();
        let pid = child.id();
        let needle = args[0].as_bytes();
        process::wait_until_gone(Duration::from_secs(5), || {
            !process::argv_has(&process::cmdline(pid), needle)
        });
        child
    }

    #[test]
    fn a_direct_vmm_is_recognised_by_its_api_socket_argument() {
        let mut child = process_with_args(&["--api-sock", "/run/vm-1/api.sock"]);
        let fc = Firecracker::new("firecracker");
        assert!(fc.is_alive(&handle(child.id(), Path::new("/run/vm-1/api.sock"))));
        assert!(!fc.is_alive(&handle(child.id(), Path::new("/run/vm-2/api.sock"))));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_jailed_vmm_is_recognised_by_its_id_and_in_jail_socket() {
        let mut child = process_with_args(&["--id", "vm-1", "--api-sock", JAILED_API_SOCKET]);
        let mut fc = Firecracker::new("/usr/bin/firecracker");
        fc.jailer = Some(JailerConfig {
            binary: "/usr/bin/jailer".into(),
            uid: 1000,
            gid: 1000,
            chroot_base: "/srv/jail".into(),
        });
        let ours = Path::new("/srv/jail/firecracker/vm-1/root/run/firecracker.socket");
        let other = Path::new("/srv/jail/firecracker/vm-2/root/run/firecracker.socket");
        assert!(fc.is_alive(&handle(child.id(), ours)));
        assert!(!fc.is_alive(&handle(child.id(), other)));
        // Unjailed, the same process is not recognised as this handle's.
        assert!(!Firecracker::new("/usr/bin/firecracker").is_alive(&handle(child.id(), ours)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
