//! `banger system install|uninstall|status|restart` (SPEC §2, §3): banger
//! as two systemd services, the owner daemon without root and the root
//! helper beside it.

use std::path::{Path, PathBuf};

use crate::args::SystemCommand;

mod account;
mod install;
pub mod layout;
pub mod service;
pub mod status;
pub mod steps;
mod uninstall;
pub mod units;

pub use install::now_rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("{0}")]
    Refused(String),
    #[error(
        "no user {0:?} on this host (`getent passwd {0}` finds nothing); create the account first"
    )]
    NoSuchUser(String),
    #[error("{what} needs root: run `sudo banger {what}`")]
    NotRoot { what: &'static str },
    #[error("banger is not installed system-wide ({} is missing); `sudo banger system install --owner USER` installs it", .0.display())]
    NotInstalled(PathBuf),
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a step failed; its whole output is in {}", log.display())]
    Command {
        log: PathBuf,
        #[source]
        source: banger_sys::ProcessError,
    },
    #[error(transparent)]
    Config(#[from] banger_config::ConfigError),
    #[error(transparent)]
    Agent(#[from] banger_image::agent_bin::AgentBinError),
    #[error(
        "{what} did not answer within {secs} s; `banger system status` and `journalctl -u {unit}` say why"
    )]
    NoAnswer {
        what: &'static str,
        unit: &'static str,
        secs: u64,
    },
}

impl SystemError {
    pub fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SystemError {
        let path = path.to_owned();
        move |source| SystemError::Io { what, path, source }
    }
}

pub fn run(cmd: SystemCommand) -> Result<(), SystemError> {
    match cmd {
        SystemCommand::Install(args) => install::install(&args),
        SystemCommand::Uninstall { purge } => uninstall::uninstall(purge),
        SystemCommand::Status(flag) => status::status(flag.json),
        SystemCommand::Restart => status::restart(),
    }
}

/// Refuses unless this process is root.
fn require_root(what: &'static str) -> Result<(), SystemError> {
    if banger_sys::os::is_root() {
        Ok(())
    } else {
        Err(SystemError::NotRoot { what })
    }
}
