//! Doctor rows for a system install (SPEC §2): `install.toml`, the two
//! units, the runtime directories and sockets with their owners and modes,
//! the root helper's answer, and whether the caller is the owner. There are
//! none in development mode (`BANGER_HOME` set, or no install file).
//!
//! The units, sockets and modes are read by the same functions as
//! `banger system status` (`system::service`, `system::status`).

use std::path::Path;

use banger_config::{ConfigError, InstallInfo};
use banger_host::helper::HelperHost;
use banger_host::{HostError, HostOps};

use crate::system::layout::{HELPER_UNIT, Layout};
use crate::system::service::{self, UnitLookupError, UnitState};
use crate::system::status::{self, Owners, SocketState};

use super::{Check, Status, check};

/// Who runs doctor, and whose files root's are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Who {
    /// The caller's effective uid.
    pub euid: u32,
    /// 0; tests, which cannot make files of root's, name their own uid.
    pub root_uid: u32,
}

/// The rows for this host's install.
pub(super) fn system_rows() -> Vec<Check> {
    rows(
        &Layout::system(),
        Who {
            euid: banger_sys::os::effective_uid(),
            root_uid: 0,
        },
        service::systemctl_show,
    )
}

/// The rows for the install under `layout`, none without one; `show_unit`
/// reads a unit's state ([`service::systemctl_show`], or a test's fake).
pub(super) fn rows(
    layout: &Layout,
    who: Who,
    show_unit: impl Fn(&str) -> Result<String, UnitLookupError>,
) -> Vec<Check> {
    let file = layout.install_file();
    if !file.exists() {
        return Vec::new();
    }
    let info = InstallInfo::load(&file);
    let mut checks = vec![install_file(&file, &info)];
    checks.extend(
        service::units()
            .into_iter()
            .map(|u| unit(u, service::unit_state(u, &show_unit))),
    );
    // The rest is measured against the owner the file names.
    let Ok(info) = info else {
        return checks;
    };
    let owners = Owners {
        owner: info.owner.uid,
        root: who.root_uid,
    };
    checks.extend(status::sockets(layout, owners).iter().map(socket));
    checks.push(helper(&layout.helper_socket(), &info, who));
    checks.push(caller(&info, who));
    checks
}

fn install_file(path: &Path, info: &Result<InstallInfo, ConfigError>) -> Check {
    match info {
        Ok(i) => check(
            "install.toml",
            Status::Pass,
            format!(
                "owner {} (uid {}), v{} (commit {}), installed {}",
                i.owner.user, i.owner.uid, i.release.version, i.release.commit, i.release.installed
            ),
        ),
        Err(e) => check(
            "install.toml",
            Status::Fail,
            format!(
                "{}; the owner's rows are left out until {} parses",
                banger_api::error_chain(e),
                path.display()
            ),
        ),
    }
}

fn unit(name: &'static str, state: Result<UnitState, UnitLookupError>) -> Check {
    match state {
        Ok(s) if s.is_running() => {
            let enabled = match s.enabled.as_str() {
                "" => String::new(),
                e => format!(" ({e})"),
            };
            check(
                name,
                Status::Pass,
                format!("{}/{}, pid {}{enabled}", s.active, s.sub, s.main_pid),
            )
        }
        Ok(s) => {
            let state = if s.active.is_empty() {
                "unknown to systemd".to_owned()
            } else {
                format!("{}/{}", s.active, s.sub)
            };
            check(
                name,
                Status::Fail,
                format!(
                    "{state}: `sudo systemctl start {name}`; `journalctl -u {name}` says why it stopped"
                ),
            )
        }
        Err(e) => check(name, Status::Fail, e.to_string()),
    }
}

fn socket(s: &SocketState) -> Check {
    if s.ok() {
        check(
            s.name,
            Status::Pass,
            format!("{}: {}", s.path.display(), s.found()),
        )
    } else {
        let found = match s.kind {
            Some(_) => format!("found {}", s.found()),
            None => "missing".into(),
        };
        check(
            s.name,
            Status::Fail,
            format!("{}: {found}; wants {}", s.path.display(), s.wanted()),
        )
    }
}

/// One harmless call (the tap list) through the helper's socket. Only root
/// and the owner may connect; for anyone else the answer says nothing.
fn helper(socket: &Path, info: &InstallInfo, who: Who) -> Check {
    let owner = &info.owner;
    if who.euid != owner.uid && who.euid != 0 {
        return check(
            "root helper",
            Status::Warn,
            format!(
                "cannot tell: {} admits only root and {} (uid {}), by design",
                socket.display(),
                owner.user,
                owner.uid
            ),
        );
    }
    match HelperHost::new(socket).list_taps() {
        Ok(_) => check(
            "root helper",
            Status::Pass,
            format!("answers on {}", socket.display()),
        ),
        Err(HostError::HelperUnreachable { socket, source }) => check(
            "root helper",
            Status::Fail,
            format!(
                "nothing answers on {} ({source}); `journalctl -u {HELPER_UNIT}` says why",
                socket.display()
            ),
        ),
        Err(e) => check(
            "root helper",
            Status::Fail,
            format!(
                "{}; `journalctl -u {HELPER_UNIT}` says why",
                banger_api::error_chain(&e)
            ),
        ),
    }
}

fn caller(info: &InstallInfo, who: Who) -> Check {
    let owner = &info.owner;
    if who.euid == owner.uid {
        check(
            "owner",
            Status::Pass,
            format!("you are {} (uid {}), the owner", owner.user, owner.uid),
        )
    } else if who.euid == 0 {
        check(
            "owner",
            Status::Warn,
            format!(
                "run banger as {}; root works but VMs are meant to be {}'s",
                owner.user, owner.user
            ),
        )
    } else {
        check(
            "owner",
            Status::Fail,
            format!(
                "you are uid {}: this install belongs to {} (uid {}); the daemon refuses other users",
                who.euid, owner.user, owner.uid
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, chown};
    use std::os::unix::net::UnixListener;

    use banger_config::{InstallOwner, InstalledRelease};
    use banger_host::helper::HelperPolicy;
    use banger_host::{ManagedRoots, RecordingHost};

    use super::*;

    /// An install in a tempdir, owned by whoever can own files here: the
    /// test's own uid, or uid 4242 when the test runs as root.
    struct Rig {
        _dir: tempfile::TempDir,
        layout: Layout,
        owners: Owners,
    }

    impl Rig {
        fn new() -> Rig {
            let me = banger_sys::os::effective_uid();
            let owners = if me == 0 {
                Owners::new(4242)
            } else {
                Owners {
                    owner: me,
                    root: me,
                }
            };
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::new(dir.path());
            std::fs::create_dir_all(layout.etc_dir()).unwrap();
            let info = InstallInfo {
                owner: InstallOwner {
                    user: "alice".into(),
                    uid: owners.owner,
                    gid: owners.owner,
                    home: "/home/alice".into(),
                },
                release: InstalledRelease {
                    version: "0.1.0".into(),
                    commit: "abcd1234".into(),
                    built: "2026-12-01T00:00:00Z".into(),
                    installed: "2026-12-03T00:00:00Z".into(),
                },
                release_url: None,
            };
            std::fs::write(layout.install_file(), info.to_toml()).unwrap();
            Rig {
                _dir: dir,
                layout,
                owners,
            }
        }

        /// The caller is the owner.
        fn owner(&self) -> Who {
            Who {
                euid: self.owners.owner,
                root_uid: self.owners.root,
            }
        }

        /// The directories and sockets as the units make them; with
        /// `serve`, a helper answers one call on its socket (without it,
        /// nothing listens there).
        fn runtime(&self, serve: bool) {
            let l = &self.layout;
            let (owner, root) = (self.owners.owner, self.owners.root);
            make(&l.run_dir(), owner, 0o700, |p| std::fs::create_dir_all(p));
            make(&l.daemon_socket(), owner, 0o600, |p| {
                UnixListener::bind(p).map(drop)
            });
            make(&l.helper_run_dir(), root, 0o711, |p| {
                std::fs::create_dir_all(p)
            });
            let listener = UnixListener::bind(l.helper_socket()).unwrap();
            set(&l.helper_socket(), owner, 0o600);
            if serve {
                let policy = HelperPolicy {
                    owner_uid: owner,
                    roots: ManagedRoots::new([l.state_dir()]).unwrap(),
                    builder: None,
                };
                std::thread::spawn(move || {
                    let (stream, _) = listener.accept().unwrap();
                    banger_host::helper::handle(stream, &policy, &RecordingHost::new());
                });
            }
        }

        fn rows(
            &self,
            who: Who,
            show: impl Fn(&str) -> Result<String, UnitLookupError>,
        ) -> Vec<Check> {
            rows(&self.layout, who, show)
        }
    }

    fn make(path: &Path, uid: u32, mode: u32, create: impl Fn(&Path) -> std::io::Result<()>) {
        create(path).unwrap();
        set(path, uid, mode);
    }

    fn set(path: &Path, uid: u32, mode: u32) {
        chown(path, Some(uid), None).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn running(_unit: &str) -> Result<String, UnitLookupError> {
        Ok("ActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=42\n".into())
    }

    fn row<'a>(rows: &'a [Check], name: &str) -> &'a Check {
        rows.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} row in {rows:#?}"))
    }

    #[test]
    fn without_an_install_there_are_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let who = Who {
            euid: 1000,
            root_uid: 0,
        };
        assert!(rows(&Layout::new(dir.path()), who, running).is_empty());
    }

    #[test]
    fn a_good_install_passes_every_row() {
        let rig = Rig::new();
        rig.runtime(true);
        let rows = rig.rows(rig.owner(), running);
        let names: Vec<&str> = rows.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "install.toml",
                "bangerd-root.service",
                "bangerd.service",
                "daemon dir",
                "daemon socket",
                "helper dir",
                "helper socket",
                "root helper",
                "owner",
            ]
        );
        for c in &rows {
            assert_eq!(c.status, Status::Pass, "{c:?}");
        }
        assert!(
            row(&rows, "install.toml").detail.contains("owner alice"),
            "{rows:#?}"
        );
        // The same JSON shape as every other row.
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["status"], "pass");
        assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
    }

    #[test]
    fn a_wrong_mode_or_a_missing_socket_names_found_and_wanted() {
        let rig = Rig::new();
        rig.runtime(false);
        set(&rig.layout.helper_run_dir(), rig.owners.root, 0o755);
        std::fs::remove_file(rig.layout.daemon_socket()).unwrap();
        let rows = rig.rows(rig.owner(), running);
        let dir = row(&rows, "helper dir");
        assert_eq!(dir.status, Status::Fail);
        let root = rig.owners.root;
        assert!(
            dir.detail.ends_with(&format!(
                "found directory, uid {root}, mode 0755; wants directory, uid {root}, mode 0711"
            )),
            "{}",
            dir.detail
        );
        let sock = row(&rows, "daemon socket");
        assert_eq!(sock.status, Status::Fail);
        assert!(
            sock.detail.contains("bangerd.sock: missing; wants socket"),
            "{}",
            sock.detail
        );
        assert_eq!(row(&rows, "daemon dir").status, Status::Pass);
        // Nothing listens on the helper's socket.
        let helper = row(&rows, "root helper");
        assert_eq!(helper.status, Status::Fail);
        assert!(
            helper.detail.starts_with("nothing answers on")
                && helper.detail.contains("journalctl -u bangerd-root.service"),
            "{}",
            helper.detail
        );
    }

    #[test]
    fn a_socket_of_the_wrong_kind_fails() {
        let rig = Rig::new();
        rig.runtime(false);
        std::fs::remove_file(rig.layout.helper_socket()).unwrap();
        std::fs::write(rig.layout.helper_socket(), "").unwrap();
        set(&rig.layout.helper_socket(), rig.owners.owner, 0o600);
        let c = row(&rig.rows(rig.owner(), running), "helper socket").clone();
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("found file, "), "{}", c.detail);
    }

    #[test]
    fn a_stopped_unit_fails_with_how_to_start_it() {
        let rig = Rig::new();
        rig.runtime(true);
        let rows = rig.rows(rig.owner(), |unit| {
            if unit == "bangerd.service" {
                Ok(
                    "ActiveState=failed\nSubState=failed\nUnitFileState=enabled\nMainPID=0\n"
                        .into(),
                )
            } else {
                running(unit)
            }
        });
        let c = row(&rows, "bangerd.service");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.starts_with("failed/failed: "), "{}", c.detail);
        assert!(
            c.detail.contains("`sudo systemctl start bangerd.service`"),
            "{}",
            c.detail
        );
        assert!(
            c.detail.contains("`journalctl -u bangerd.service`"),
            "{}",
            c.detail
        );
        assert_eq!(row(&rows, "bangerd-root.service").status, Status::Pass);
    }

    #[test]
    fn without_systemctl_both_units_fail_saying_so() {
        let rig = Rig::new();
        let rows = rig.rows(rig.owner(), |_| Err(UnitLookupError::NoSystemctl));
        for unit in ["bangerd.service", "bangerd-root.service"] {
            let c = row(&rows, unit);
            assert_eq!(c.status, Status::Fail);
            assert!(
                c.detail.contains("systemctl is not installed"),
                "{}",
                c.detail
            );
        }
    }

    #[test]
    fn another_user_fails_and_cannot_judge_the_helper() {
        let rig = Rig::new();
        rig.runtime(false);
        let stranger = Who {
            euid: rig.owners.owner + 1,
            ..rig.owner()
        };
        let rows = rig.rows(stranger, running);
        let c = row(&rows, "owner");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("this install belongs to alice"),
            "{}",
            c.detail
        );
        assert!(
            c.detail.contains("the daemon refuses other users"),
            "{}",
            c.detail
        );
        let h = row(&rows, "root helper");
        assert_eq!(h.status, Status::Warn);
        assert!(h.detail.starts_with("cannot tell"), "{}", h.detail);
    }

    #[test]
    fn root_is_warned_to_be_the_owner() {
        let info = InstallInfo::parse(
            "[owner]\nuser = \"alice\"\nuid = 1000\ngid = 1000\nhome = \"/home/alice\"\n\
             [release]\nversion = \"0.1.0\"\ncommit = \"c\"\nbuilt = \"b\"\ninstalled = \"i\"\n",
            Path::new("install.toml"),
        )
        .unwrap();
        let c = caller(
            &info,
            Who {
                euid: 0,
                root_uid: 0,
            },
        );
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.starts_with("run banger as alice"), "{}", c.detail);
    }

    #[test]
    fn an_unparsable_install_file_fails_and_leaves_the_owner_rows_out() {
        let rig = Rig::new();
        std::fs::write(rig.layout.install_file(), "[owner]\nuser = \n").unwrap();
        let rows = rig.rows(rig.owner(), running);
        let names: Vec<&str> = rows.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["install.toml", "bangerd-root.service", "bangerd.service"]
        );
        let c = row(&rows, "install.toml");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("install.toml:2"), "{}", c.detail);
    }
}
