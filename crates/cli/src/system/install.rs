//! `banger system install --owner USER`: copies the three programs into
//! place, writes `/etc/banger/install.toml` and the two units, installs
//! completions and man pages, gives the owner its directories, then starts
//! both services and waits until the daemon answers.

use std::path::{Path, PathBuf};

use banger_config::{InstallInfo, InstallOwner, InstalledRelease};

use super::layout::Layout;
use super::service::{self, ANSWER_TIMEOUT};
use super::steps::{Steps, chown_mode, copy_atomic, owned_dir, write_atomic};
use super::units::{daemon_unit, helper_unit, unit_safe_path};
use super::{SystemError, account, require_root};
use crate::args::InstallArgs;

/// Where releases are published unless `--release-url` says otherwise.
pub const DEFAULT_RELEASE_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/releases");

/// The programs being installed: this `banger`, the `bangerd` beside it,
/// and the static agent.
struct Sources {
    banger: PathBuf,
    bangerd: PathBuf,
    agent: PathBuf,
}

fn sources(agent: Option<&Path>) -> Result<Sources, SystemError> {
    let banger =
        std::env::current_exe().map_err(SystemError::io("find", Path::new("/proc/self/exe")))?;
    let dir = banger.parent().unwrap_or(Path::new("/"));
    let bangerd = dir.join("bangerd");
    if !bangerd.is_file() {
        return Err(SystemError::Refused(format!(
            "{} is missing: install from a directory that holds both banger and bangerd",
            bangerd.display()
        )));
    }
    let agent = match agent {
        Some(path) => {
            banger_image::agent_bin::check_static(path)?;
            path.to_owned()
        }
        None => banger_image::agent_bin::find_agent()?,
    };
    Ok(Sources {
        banger,
        bangerd,
        agent,
    })
}

pub fn install(args: &InstallArgs) -> Result<(), SystemError> {
    let layout = args
        .destdir
        .as_ref()
        .map_or_else(Layout::system, Layout::new);
    let start = args.destdir.is_none();
    if start {
        require_root("system install")?;
    }
    let owner = account::owner(&args.owner)?;
    check_owner(&owner)?;
    if let Ok(existing) = InstallInfo::load(&layout.install_file())
        && existing.owner.uid != owner.uid
    {
        return Err(SystemError::Refused(format!(
            "banger is installed for {} (uid {}); `sudo banger system uninstall` first",
            existing.owner.user, existing.owner.uid
        )));
    }
    let src = sources(args.agent.as_deref())?;
    let info = install_info(&owner, args.release_url.clone());
    let mut steps = Steps::open(&layout.log_file());
    println!(
        "Installing {} for {} (uid {}); full output in {}",
        banger_api::build_info::version_line("banger"),
        owner.user,
        owner.uid,
        steps.log_path().display()
    );
    steps.step(
        &format!(
            "programs into {} and {}",
            layout.bin_dir().display(),
            layout.lib_dir().display()
        ),
        |_| {
            copy_atomic(&src.bangerd, &layout.bangerd(), 0o755)?;
            copy_atomic(&src.agent, &layout.agent(), 0o755)?;
            // Last: a half-done install has no `banger` to run it with.
            copy_atomic(&src.banger, &layout.banger(), 0o755)
        },
    )?;
    steps.step(&layout.install_file().display().to_string(), |_| {
        write_atomic(&layout.install_file(), info.to_toml().as_bytes(), 0o644)
    })?;
    steps.step("directories for the owner", |_| owner_dirs(&layout, &owner))?;
    steps.step(
        &format!(
            "units {} and {}",
            super::layout::HELPER_UNIT,
            super::layout::DAEMON_UNIT
        ),
        |_| {
            let kvm = account::kvm_group();
            write_atomic(
                &layout.unit(super::layout::DAEMON_UNIT),
                daemon_unit(&owner, kvm.as_deref()).as_bytes(),
                0o644,
            )?;
            write_atomic(
                &layout.unit(super::layout::HELPER_UNIT),
                helper_unit(&owner).as_bytes(),
                0o644,
            )
        },
    )?;
    steps.step("shell completions and man pages", |_| manuals(&layout))?;
    if !start {
        println!(
            "Files written under {}; nothing started (--destdir).",
            layout.root().display()
        );
        return Ok(());
    }
    start_services(&mut steps)?;
    println!(
        "Installed. As {}, without sudo: `banger doctor`, then `banger vm run -- uname -a`.",
        owner.user
    );
    Ok(())
}

fn check_owner(owner: &InstallOwner) -> Result<(), SystemError> {
    if owner.uid == 0 {
        return Err(SystemError::Refused(
            "the owner must not be root: the daemon runs as the owner, without root; \
             name the user who will run VMs"
                .into(),
        ));
    }
    if !banger_config::valid_user_name(&owner.user) || !unit_safe_path(&owner.home) {
        return Err(SystemError::Refused(format!(
            "user {:?} (home {}) cannot be written into a systemd unit safely",
            owner.user,
            owner.home.display()
        )));
    }
    if !owner.home.is_dir() {
        return Err(SystemError::Refused(format!(
            "{}'s home {} does not exist; banger keeps the owner's ssh key there",
            owner.user,
            owner.home.display()
        )));
    }
    Ok(())
}

fn install_info(owner: &InstallOwner, release_url: Option<String>) -> InstallInfo {
    use banger_api::build_info as b;
    InstallInfo {
        owner: owner.clone(),
        release: InstalledRelease {
            version: b::VERSION.into(),
            commit: b::COMMIT.into(),
            built: b::BUILD_TIME.into(),
            installed: now_rfc3339(),
        },
        release_url: Some(release_url.unwrap_or_else(|| DEFAULT_RELEASE_URL.into())),
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The state and cache directories (systemd would make them at start; made
/// here so a destdir install is complete and `uninstall --purge` finds
/// them), and the owner's own banger directories in the home.
fn owner_dirs(layout: &Layout, owner: &InstallOwner) -> Result<(), SystemError> {
    for dir in [layout.state_dir(), layout.cache_dir()] {
        std::fs::create_dir_all(&dir).map_err(SystemError::io("create", &dir))?;
        chown_mode(&dir, owner.uid, owner.gid, 0o700)?;
    }
    for dir in Layout::owner_dirs(&owner.home) {
        owned_dir(&owner.home, &dir, owner.uid, owner.gid, 0o700)?;
    }
    Ok(())
}

fn manuals(layout: &Layout) -> Result<(), SystemError> {
    for (shell, path) in layout.completions() {
        write_atomic(&path, &crate::manuals::completion_script(shell), 0o644)?;
    }
    let man = layout.man_dir();
    std::fs::create_dir_all(&man).map_err(SystemError::io("create", &man))?;
    crate::manuals::write_man_pages(&man).map_err(SystemError::io("write man pages in", &man))?;
    Ok(())
}

/// Enables both units and (re)starts them, so a reinstall runs the new
/// binaries; running VMs survive it (`KillMode=process`).
pub fn start_services(steps: &mut Steps) -> Result<(), SystemError> {
    steps.step("systemd picks up the units", |s| {
        service::systemctl(s, &["daemon-reload"])?;
        let [helper, daemon] = service::units();
        service::systemctl(s, &["enable", helper, daemon])
    })?;
    restart_and_wait(steps)
}

/// Restarts both services and waits for both sockets and a daemon answer.
pub fn restart_and_wait(steps: &mut Steps) -> Result<(), SystemError> {
    let [helper, daemon] = service::units();
    steps.step(&format!("start {helper}"), |s| {
        service::systemctl(s, &["restart", helper])?;
        if service::wait_for_socket(&Layout::system().helper_socket(), ANSWER_TIMEOUT) {
            Ok(())
        } else {
            Err(SystemError::NoAnswer {
                what: "the root helper",
                unit: super::layout::HELPER_UNIT,
                secs: ANSWER_TIMEOUT.as_secs(),
            })
        }
    })?;
    steps.step(&format!("start {daemon}"), |s| {
        service::systemctl(s, &["restart", daemon])?;
        service::wait_for_daemon(&Layout::system().daemon_socket(), ANSWER_TIMEOUT)
    })
}
