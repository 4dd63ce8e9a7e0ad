//! `banger system status` (what is installed, the units, the sockets, the
//! daemon's answer) and `banger system restart`.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

use banger_api::protocol::Pong;
use banger_config::InstallInfo;
use serde::Serialize;

use super::layout::Layout;
use super::service::{self, UnitLookupError, UnitState};
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

/// What a path is, as `lstat` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Directory,
    Socket,
    File,
    Symlink,
    Other,
}

impl FileKind {
    fn of(meta: &std::fs::Metadata) -> FileKind {
        let t = meta.file_type();
        if t.is_dir() {
            FileKind::Directory
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_file() {
            FileKind::File
        } else if t.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            FileKind::Directory => "directory",
            FileKind::Socket => "socket",
            FileKind::File => "file",
            FileKind::Symlink => "symlink",
            FileKind::Other => "other",
        }
    }
}

/// Whose files the install's runtime paths are: the owner's, and root's
/// (uid 0; only tests, which cannot make root's files, name another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    pub owner: u32,
    pub root: u32,
}

impl Owners {
    pub fn new(owner: u32) -> Owners {
        Owners { owner, root: 0 }
    }
}

/// A socket (or its directory) as found, against what it should be.
#[derive(Debug, Serialize)]
pub struct SocketState {
    /// What it is for (`daemon socket`, ...).
    pub name: &'static str,
    pub path: PathBuf,
    pub kind: Option<FileKind>,
    pub uid: Option<u32>,
    pub mode: Option<String>,
    pub want_kind: FileKind,
    pub want_uid: u32,
    pub want_mode: String,
}

impl SocketState {
    pub fn inspect(
        name: &'static str,
        path: PathBuf,
        want_kind: FileKind,
        want_uid: u32,
        want_mode: u32,
    ) -> SocketState {
        let meta = std::fs::symlink_metadata(&path).ok();
        SocketState {
            name,
            kind: meta.as_ref().map(FileKind::of),
            uid: meta.as_ref().map(MetadataExt::uid),
            mode: meta.map(|m| format!("{:04o}", m.permissions().mode() & 0o7777)),
            path,
            want_kind,
            want_uid,
            want_mode: format!("{want_mode:04o}"),
        }
    }

    pub fn ok(&self) -> bool {
        self.kind == Some(self.want_kind)
            && self.uid == Some(self.want_uid)
            && self.mode.as_deref() == Some(&self.want_mode)
    }

    /// `socket, uid 1000, mode 0600`, or `missing`.
    pub fn found(&self) -> String {
        match (self.kind, self.uid, &self.mode) {
            (Some(kind), Some(uid), Some(mode)) => {
                format!("{}, uid {uid}, mode {mode}", kind.as_str())
            }
            _ => "missing".into(),
        }
    }

    pub fn wanted(&self) -> String {
        format!(
            "{}, uid {}, mode {}",
            self.want_kind.as_str(),
            self.want_uid,
            self.want_mode
        )
    }
}

/// The install's runtime directories and sockets (SPEC §2) as found: the
/// owner's directory and daemon socket, root's directory that others may
/// only pass through, and the helper's socket that only the owner (and
/// root) may open.
pub fn sockets(layout: &Layout, owners: Owners) -> Vec<SocketState> {
    use FileKind::{Directory, Socket};
    vec![
        SocketState::inspect(
            "daemon dir",
            layout.run_dir(),
            Directory,
            owners.owner,
            0o700,
        ),
        SocketState::inspect(
            "daemon socket",
            layout.daemon_socket(),
            Socket,
            owners.owner,
            0o600,
        ),
        SocketState::inspect(
            "helper dir",
            layout.helper_run_dir(),
            Directory,
            owners.root,
            0o711,
        ),
        SocketState::inspect(
            "helper socket",
            layout.helper_socket(),
            Socket,
            owners.owner,
            0o600,
        ),
    ]
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
            out += &format!(
                "{:<10} {}: {} (wants {})\n",
                mark(s.ok()),
                s.path.display(),
                s.found(),
                s.wanted()
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

/// The install's state; `show_unit` reads a unit's state
/// ([`service::systemctl_show`], or a test's fake).
pub fn gather(
    layout: &Layout,
    show_unit: impl Fn(&str) -> Result<String, UnitLookupError>,
) -> Result<SystemStatus, SystemError> {
    let install_file = layout.install_file();
    if !install_file.exists() {
        return Err(SystemError::NotInstalled(install_file));
    }
    let install = InstallInfo::load(&install_file)?;
    // Without systemctl, every field stays empty: not running.
    let unit =
        |u: &str| service::unit_state(u, &show_unit).unwrap_or_else(|_| UnitState::parse(u, ""));
    Ok(SystemStatus {
        units: service::units().into_iter().map(unit).collect(),
        sockets: sockets(layout, Owners::new(install.owner.uid)),
        daemon: service::ping(&layout.daemon_socket()),
        install,
    })
}

pub fn status(json: bool) -> Result<(), SystemError> {
    let report = gather(&Layout::system(), service::systemctl_show)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_reads_the_units_and_sockets_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let never = |_: &str| -> Result<String, UnitLookupError> { unreachable!() };
        assert!(matches!(
            gather(&layout, never),
            Err(SystemError::NotInstalled(_))
        ));
        std::fs::create_dir_all(layout.etc_dir()).unwrap();
        std::fs::write(
            layout.install_file(),
            "[owner]\nuser = \"alice\"\nuid = 1000\ngid = 1000\nhome = \"/home/alice\"\n\
             [release]\nversion = \"0.1.0\"\ncommit = \"c\"\nbuilt = \"b\"\ninstalled = \"i\"\n",
        )
        .unwrap();
        let status = gather(&layout, |_| {
            Ok("ActiveState=active\nSubState=running\nMainPID=7\n".into())
        })
        .unwrap();
        assert!(
            status
                .units
                .iter()
                .all(|u| u.is_running() && u.main_pid == 7)
        );
        let names: Vec<&str> = status.sockets.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["daemon dir", "daemon socket", "helper dir", "helper socket"]
        );
        assert!(status.sockets.iter().all(|s| !s.ok()));
        assert!(!status.healthy());
        let text = status.render();
        assert!(
            text.contains("/run/banger: missing (wants directory, uid 1000, mode 0700)"),
            "{text}"
        );
        assert!(
            text.contains("/run/banger-root: missing (wants directory, uid 0, mode 0711)"),
            "{text}"
        );
    }
}
