//! Restarting both services on whatever programs are installed now, and
//! proving it: each service's process is ended (its unit, `Restart=always`,
//! starts it again from the installed file) and the update waits until a
//! new process serves whose executable *is* the installed file (same inode)
//! and, for the daemon, whose answer names the expected commit. The VMs'
//! processes are not the services' main processes and are left alone.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_config::{PathEnv, Paths};
use banger_host::HostOps;
use banger_host::helper::HelperHost;

use super::UpdateError;
use crate::system::layout::Layout;
use crate::system::service::poll_until;

/// How long a restarted service gets to serve again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the running services answer.
pub struct Services {
    pub daemon_socket: PathBuf,
    pub helper_socket: PathBuf,
}

impl Services {
    /// The daemon's socket as every banger command finds it; the helper's
    /// as the daemon does (`BANGER_ROOT_HELPER_SOCKET`, else the installed).
    pub fn locate() -> Result<Services, UpdateError> {
        let paths = Paths::resolve(&PathEnv::from_process())
            .map_err(|e| UpdateError::Restart(e.to_string()))?;
        Ok(Services {
            daemon_socket: paths.socket,
            helper_socket: banger_host::helper::helper_socket_path(),
        })
    }

    /// The helper first (the daemon needs it), then the daemon.
    pub fn restart(&self, layout: &Layout, commit: &str) -> Result<(), UpdateError> {
        let bangerd = layout.bangerd();
        let old = self.helper_pid();
        if let Some(pid) = old {
            end(pid, "--root-helper");
        }
        wait(RESTART_TIMEOUT, "the root helper", || {
            self.helper_pid().is_some_and(|pid| {
                Some(pid) != old
                    && runs(pid, &bangerd)
                    // And it serves a request, not only accepts.
                    && HelperHost::new(&self.helper_socket).list_taps().is_ok()
            })
        })?;
        let old = ping(&self.daemon_socket).map(|p| p.pid);
        if let Some(pid) = old {
            end(pid, "bangerd");
        }
        wait(RESTART_TIMEOUT, "the daemon", || {
            ping(&self.daemon_socket).is_some_and(|pong| {
                Some(pong.pid) != old && pong.commit == commit && runs(pong.pid, &bangerd)
            })
        })
    }

    fn helper_pid(&self) -> Option<u32> {
        let stream = UnixStream::connect(&self.helper_socket).ok()?;
        banger_sys::os::peer_pid(&stream).ok()
    }
}

/// SIGTERM to `pid` if its command line still has `marker`, and a wait for
/// it to be gone (SIGKILL after the grace).
fn ping(socket: &Path) -> Option<banger_api::protocol::Pong> {
    crate::system::service::ping(socket).ok()
}

fn end(pid: u32, marker: &str) {
    banger_sys::proc::terminate(pid, marker, Duration::from_secs(10));
}

/// Whether process `pid` runs the very file at `path` (not an older copy
/// that was replaced since it started).
fn runs(pid: u32, path: &Path) -> bool {
    let exe = std::fs::metadata(format!("/proc/{pid}/exe"));
    let file = std::fs::metadata(path);
    matches!((exe, file), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
}

fn wait(limit: Duration, what: &str, ready: impl FnMut() -> bool) -> Result<(), UpdateError> {
    if poll_until(limit, Duration::from_millis(200), ready) {
        return Ok(());
    }
    Err(UpdateError::Restart(format!(
        "{what} did not serve on the installed programs within {} s after its restart",
        limit.as_secs()
    )))
}
