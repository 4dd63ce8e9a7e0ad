//! `banger system status` (what is installed, the units, the sockets, the
//! daemon's answer) and `banger system restart`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use banger_api::protocol::Pong;
use banger_config::InstallInfo;
use serde::Serialize;

use super::layout::Layout;
use super::service::{self, UnitState};
use super::steps::Steps;
use super::{SystemError, install, require_root};

#[derive(Debug, Serialize)]
pub struct SystemStatus {
    pub install: InstallInfo,
    pub units: Vec<UnitState>,
    pub sockets: Vec<SocketState>,
    /// The daemon's answer to a ping.
    pub daemon: Result<Pong, String>,
}

/// A socket (or its directory) as found, against what it should be.
#[derive(Debug, Serialize)]
pub struct SocketState {
    pub path: PathBuf,
    pub uid: Option<u32>,
    pub mode: Option<String>,
    pub want_uid: u32,
    pub want_mode: String,
}

impl SocketState {
    fn inspect(path: PathBuf, want_uid: u32, want_mode: u32) -> SocketState {
        let meta = std::fs::symlink_metadata(&path).ok();
        SocketState {
            uid: meta.as_ref().map(MetadataExt::uid),
            mode: meta.map(|m| format!("{:04o}", m.permissions().mode() & 0o7777)),
            path,
            want_uid,
            want_mode: format!("{want_mode:04o}"),
        }
    }

    pub fn ok(&self) -> bool {
        self.uid == Some(self.want_uid) && self.mode.as_deref() == Some(&self.want_mode)
    }
}

impl SystemStatus {
    pub fn healthy(&self) -> bool {
        self.units.iter().all(UnitState::is_running)
            && self.sockets.iter().all(SocketState::ok)
            && self.daemon.is_ok()
    }

    fn render(&self) -> String {
        let i = &self.install;
        let mut out = format!(
            "installed  v{} (commit {}) on {}, owner {} (uid {})\n",
            i.release.version, i.release.commit, i.release.installed, i.owner.user, i.owner.uid
        );
        for u in &self.units {
            out += &format!(
                "{:<10} {} {}/{} ({}), pid {}\n",
                mark(u.is_running()),
                u.unit,
                u.active,
                u.sub,
                u.enabled,
                u.main_pid
            );
        }
        for s in &self.sockets {
            let found = match (&s.uid, &s.mode) {
                (Some(uid), Some(mode)) => format!("uid {uid}, mode {mode}"),
                _ => "missing".into(),
            };
            out += &format!(
                "{:<10} {}: {found} (wants uid {}, mode {})\n",
                mark(s.ok()),
                s.path.display(),
                s.want_uid,
                s.want_mode
            );
        }
        out += &match &self.daemon {
            Ok(p) => format!(
                "{:<10} daemon v{} (commit {}), pid {}\n",
                mark(true),
                p.version,
                p.commit,
                p.pid
            ),
            Err(e) => format!("{:<10} daemon: {e}\n", mark(false)),
        };
        out
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "PROBLEM" }
}

pub fn gather(layout: &Layout) -> Result<SystemStatus, SystemError> {
    let install_file = layout.install_file();
    if !install_file.exists() {
        return Err(SystemError::NotInstalled(install_file));
    }
    let install = InstallInfo::load(&install_file)?;
    let owner = install.owner.uid;
    let helper_socket = PathBuf::from(banger_host::helper::HELPER_SOCKET);
    let daemon_socket = layout.run_dir().join("bangerd.sock");
    let sockets = vec![
        SocketState::inspect(layout.run_dir(), owner, 0o700),
        SocketState::inspect(daemon_socket.clone(), owner, 0o600),
        SocketState::inspect(layout.helper_run_dir(), 0, 0o711),
        SocketState::inspect(helper_socket, owner, 0o600),
    ];
    Ok(SystemStatus {
        units: service::units()
            .iter()
            .map(|u| service::unit_state(u))
            .collect(),
        sockets,
        daemon: service::ping(&daemon_socket),
        install,
    })
}

pub fn status(json: bool) -> Result<(), SystemError> {
    let report = gather(&Layout::system())?;
    let text = if json {
        serde_json::to_string_pretty(&report).expect("status serialises") + "\n"
    } else {
        report.render()
    };
    print!("{}", banger_api::text::clean_guest_text(&text));
    if report.healthy() {
        Ok(())
    } else {
        Err(SystemError::Refused(
            "the install is not healthy (rows marked PROBLEM); `journalctl -u bangerd.service -u bangerd-root.service` says why".into(),
        ))
    }
}

pub fn restart() -> Result<(), SystemError> {
    require_root("system restart")?;
    let layout = Layout::system();
    if !layout.install_file().exists() {
        return Err(SystemError::NotInstalled(layout.install_file()));
    }
    let mut steps = Steps::open(&layout.log_file());
    println!("Restarting banger's services; running VMs keep running.");
    install::restart_and_wait(&mut steps)
}
