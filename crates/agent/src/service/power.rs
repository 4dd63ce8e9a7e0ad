//! What `poweroff` does, depending on who runs the guest: systemd (full
//! image) or banger's own guest-init (minimal image).

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use thiserror::Error;

use crate::mode::PowerChoice;
use crate::run_cmd::{self, RunError};

/// Why the guest could not be powered off.
#[derive(Debug, Error)]
pub enum PowerError {
    #[error("power-off is disabled for this agent (--power none)")]
    Disabled,
    #[error(transparent)]
    Systemctl(#[from] RunError),
    #[error("cannot signal PID 1: {0}")]
    Signal(nix::errno::Errno),
}

/// Powers the guest off; called after the reply has been sent.
pub trait PowerControl: Send + Sync {
    /// Whether a request can be honoured, checked before replying `ok`.
    fn available(&self) -> Result<(), PowerError> {
        Ok(())
    }

    fn power_off(&self) -> Result<(), PowerError>;
}

/// Under systemd: an orderly shutdown of every unit.
pub struct SystemdPower;

impl PowerControl for SystemdPower {
    fn power_off(&self) -> Result<(), PowerError> {
        // --no-block: systemd is about to stop this very service.
        run_cmd::run(&["systemctl", "--no-block", "poweroff"])?;
        Ok(())
    }
}

/// Under banger's guest-init: SIGTERM to PID 1, which stops everything,
/// unmounts and powers off.
pub struct InitSignalPower;

impl PowerControl for InitSignalPower {
    fn power_off(&self) -> Result<(), PowerError> {
        kill(Pid::from_raw(1), Signal::SIGTERM).map_err(PowerError::Signal)
    }
}

/// `--power none`: refuse.
pub struct DisabledPower;

impl PowerControl for DisabledPower {
    fn available(&self) -> Result<(), PowerError> {
        Err(PowerError::Disabled)
    }

    fn power_off(&self) -> Result<(), PowerError> {
        Err(PowerError::Disabled)
    }
}

/// The implementation for a `--power` choice; `auto` checks for systemd
/// the way `sd_booted(3)` does.
pub fn from_choice(choice: PowerChoice) -> std::sync::Arc<dyn PowerControl> {
    let resolved = match choice {
        PowerChoice::Auto if Path::new("/run/systemd/system").is_dir() => PowerChoice::Systemd,
        PowerChoice::Auto => PowerChoice::Init,
        other => other,
    };
    match resolved {
        PowerChoice::Systemd => std::sync::Arc::new(SystemdPower),
        PowerChoice::None => std::sync::Arc::new(DisabledPower),
        PowerChoice::Init | PowerChoice::Auto => std::sync::Arc::new(InitSignalPower),
    }
}
