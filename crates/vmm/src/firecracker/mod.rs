//! The Firecracker driver (SPEC §13): our own small HTTP client for its API
//! socket, the launch sequence, process handling by pid with an identity
//! check (`banger_sys::proc`), and the jailer's argv and chroot layout.
//!
//! With the `test-support` feature it also carries the API schema validator
//! (`schema`) and the stand-in Firecracker (`standin`) the tests run
//! where no real Firecracker (or KVM) is available.

mod api;
mod client;
mod error;
mod http;
mod jail_config;
mod jailer;
mod launch;
mod layout;
mod plan;
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_sys::proc::{self, Argv};
use banger_sys::{Cmd, ProcessError};

use crate::logcap::{self, LogCapper};
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
    /// `Some`: the serial console (Firecracker's stdout and stderr) goes
    /// through a log capper (`crate::logcap`), bounded on disk.
    pub log_capper: Option<LogCapper>,
}

impl Firecracker {
    pub fn new(binary: impl Into<PathBuf>) -> Firecracker {
        Firecracker {
            binary: binary.into(),
            jailer: None,
            log_capper: None,
        }
    }

    /// Launches bound the serial console through `capper`.
    pub fn with_log_capper(mut self, capper: Option<LogCapper>) -> Firecracker {
        self.log_capper = capper;
        self
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

    /// A driver for VMs launched earlier, whatever the configuration was
    /// then: watching, stopping and killing need only the handle's pid and
    /// sockets ([`identity`]), never the binary or the jailer settings.
    pub fn for_handles() -> Firecracker {
        Firecracker::new("firecracker")
    }
}

/// What identifies a handle's VMM among all processes, read from the handle
/// alone, so a VM launched under another configuration is still recognised
/// (and a pid the kernel has since given to another program is never
/// mistaken for it): its API socket as one argument when unjailed; for a
/// jailed one (API socket `<base>/<exec>/<id>/root/run/firecracker.socket`),
/// `--id <id>` and the in-jail socket, as the jailer passes them on.
fn identity(handle: &VmHandle) -> impl Fn(&Argv) -> bool + '_ {
    let socket = path_bytes(&handle.control_socket);
    let jail_id = jailer::jail_id_of(&handle.control_socket);
    move |argv: &Argv| {
        argv.has(socket)
            || jail_id.is_some_and(|id| {
                argv.has_pair(b"--id", id.as_bytes()) && argv.has(JAILED_API_SOCKET.as_bytes())
            })
    }
}

fn path_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

/// Removes `path` if it exists.
fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writing a snapshot is bounded by the memory's size.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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

    /// Pause, then `PUT /snapshot/create` into `dir` (the VM stays paused).
    fn save(&self, handle: &VmHandle, dir: &Path) -> Result<(), VmmError> {
        let client = ApiClient::new(&handle.control_socket, SNAPSHOT_TIMEOUT);
        for request in plan::save(dir)? {
            client.send(&request)?;
        }
        Ok(())
    }

    fn resume(&self, handle: &VmHandle) -> Result<(), VmmError> {
        ApiClient::new(&handle.control_socket, API_TIMEOUT)
            .send(&plan::pause_or_resume(api::RunState::Resumed))?;
        Ok(())
    }

    fn restore(&self, config: &VmConfig, dir: &Path) -> Result<VmHandle, VmmError> {
        launch::launch_from(self, config, Some(dir))
    }

    /// Ctrl-Alt-Del: the guest reboots, and with `reboot=k` a rebooting
    /// guest makes Firecracker exit.
    fn request_shutdown(&self, handle: &VmHandle) -> Result<(), VmmError> {
        ApiClient::new(&handle.control_socket, API_TIMEOUT).send(&plan::ctrl_alt_del())?;
        Ok(())
    }

    /// Also reaps the VMM if it was this daemon's child and has exited, so
    /// it does not linger as a zombie.
    fn is_alive(&self, handle: &VmHandle) -> bool {
        proc::is_ours(handle.pid, &identity(handle))
    }

    fn wait_exit(&self, handle: &VmHandle, timeout: Duration) -> Result<bool, VmmError> {
        Ok(proc::wait_gone(handle.pid, &identity(handle), timeout))
    }

    /// SIGKILL only if the pid is still this VMM, then its console's log
    /// capper (its only helper process) is given time to write the last
    /// output and stopped, then the sockets go, and a jail with them (its
    /// VMM log kept beside the console log).
    fn kill(&self, handle: &VmHandle) -> Result<(), VmmError> {
        let id = identity(handle);
        if proc::is_ours(handle.pid, &id) {
            tracing::info!(pid = handle.pid, "killing firecracker");
        }
        if !proc::kill_hard(handle.pid, &id, KILL_WAIT) {
            return Err(VmmError::Timeout(
                KILL_WAIT,
                format!("Firecracker (pid {}) to exit after SIGKILL", handle.pid),
            ));
        }
        let left = logcap::stop_cappers(handle);
        if !left.is_empty() {
            return Err(VmmError::Timeout(
                KILL_WAIT,
                format!("log cappers {left:?} to exit"),
            ));
        }
        for socket in [&handle.control_socket, &handle.vsock_uds] {
            remove_if_present(socket).map_err(|source| VmmError::Io {
                action: "remove",
                path: socket.clone(),
                source,
            })?;
        }
        jailer::remove_jail(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(proc::wait_exec(child.id(), args[0], Duration::from_secs(5)));
        child
    }

    #[test]
    fn a_direct_vmm_is_recognised_by_its_api_socket_argument() {
        let mut child = process_with_args(&["--api-sock", "/run/vm-1/api.sock"]);
        let fc = Firecracker::new("firecracker");
        assert!(fc.is_alive(&handle(child.id(), Path::new("/run/vm-1/api.sock"))));
        assert!(!fc.is_alive(&handle(child.id(), Path::new("/run/vm-2/api.sock"))));
        // A longer path that merely starts with the socket is not it.
        assert!(!fc.is_alive(&handle(child.id(), Path::new("/run/vm-1/api"))));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_jailed_vmm_is_recognised_by_its_id_and_in_jail_socket_whatever_the_config() {
        let mut child = process_with_args(&["--id", "vm-1", "--api-sock", JAILED_API_SOCKET]);
        let ours = Path::new("/srv/jail/firecracker/vm-1/root/run/firecracker.socket");
        let other = Path::new("/srv/jail/firecracker/vm-2/root/run/firecracker.socket");
        // The handle alone decides: a driver built for teardown, with no
        // jailer configured (jailer_enabled turned off since the launch),
        // still recognises the VMM, so it is stopped rather than leaked.
        for fc in [Firecracker::for_handles(), {
            let mut jailed = Firecracker::new("/usr/bin/firecracker");
            jailed.jailer = Some(JailerConfig {
                binary: "/usr/bin/jailer".into(),
                uid: 1000,
                gid: 1000,
                chroot_base: "/srv/jail".into(),
            });
            jailed
        }] {
            assert!(fc.is_alive(&handle(child.id(), ours)));
            assert!(!fc.is_alive(&handle(child.id(), other)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn kill_spares_a_stranger_on_the_pid_and_reaps_an_exited_child() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let mut stranger = process_with_args(&["--api-sock", "/run/someone-else.sock"]);
        let fc = Firecracker::for_handles();
        fc.kill(&handle(stranger.id(), &socket)).unwrap();
        assert!(
            banger_sys::os::process_alive(stranger.id()),
            "killed a stranger"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();

        // A VMM this process started and that exited by itself: is_alive
        // reaps it, so no zombie is left that would still answer signals.
        let pid = Cmd::new("true")
            .spawn_detached(&dir.path().join("log"))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while proc::is_running(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(banger_sys::os::process_alive(pid), "a zombie until reaped");
        assert!(!fc.is_alive(&handle(pid, &socket)));
        assert!(!banger_sys::os::process_alive(pid), "left a zombie");
    }
}
