//! The services as systemd sees them (`systemctl`), and waiting until the
//! processes behind them answer on their sockets.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_api::protocol::{NoParams, Pong, Request};
use banger_sys::Cmd;
use serde::Serialize;

use super::SystemError;
use super::layout::{DAEMON_UNIT, HELPER_UNIT};
use super::steps::Steps;

/// How long a started service gets to answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One unit's state, from `systemctl show`.
#[derive(Debug, Clone, Serialize)]
pub struct UnitState {
    pub unit: String,
    /// `active`, `inactive`, `failed`, ...
    pub active: String,
    pub sub: String,
    /// `enabled`, `disabled`, ... (empty when systemd does not know it).
    pub enabled: String,
    pub main_pid: u32,
}

impl UnitState {
    pub fn is_running(&self) -> bool {
        self.active == "active" && self.sub == "running"
    }
}

pub fn systemctl(steps: &mut Steps, args: &[&str]) -> Result<(), SystemError> {
    steps.run(Cmd::new("systemctl").args(args)).map(drop)
}

/// Both units, helper first.
pub fn units() -> [&'static str; 2] {
    [HELPER_UNIT, DAEMON_UNIT]
}

/// Why a unit's state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitLookupError {
    #[error(
        "systemctl is not installed: this host does not run systemd, which a system install needs"
    )]
    NoSystemctl,
    #[error("{0}")]
    Failed(String),
}

/// The properties [`UnitState::parse`] reads.
const SHOWN: &str = "--property=ActiveState,SubState,UnitFileState,MainPID";

/// `systemctl show UNIT`: the unit's state as `KEY=value` lines. `doctor`
/// and `system status` take this as a parameter, so tests feed their own.
pub fn systemctl_show(unit: &str) -> Result<String, UnitLookupError> {
    match Cmd::new("systemctl").args(["show", unit, SHOWN]).run() {
        Ok(out) => Ok(out.stdout_str()),
        Err(banger_sys::ProcessError::NotFound { .. }) => Err(UnitLookupError::NoSystemctl),
        Err(e) => Err(UnitLookupError::Failed(banger_api::error_chain(&e))),
    }
}

impl UnitState {
    /// Reads `systemctl show`'s `KEY=value` lines; a missing key is empty
    /// (or pid 0).
    pub fn parse(unit: &str, show: &str) -> UnitState {
        let value = |key: &str| {
            show.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        UnitState {
            unit: unit.to_owned(),
            active: value("ActiveState"),
            sub: value("SubState"),
            enabled: value("UnitFileState"),
            main_pid: value("MainPID").parse().unwrap_or(0),
        }
    }
}

/// `unit`'s state through `show` ([`systemctl_show`], or a test's fake).
pub fn unit_state(
    unit: &str,
    show: impl Fn(&str) -> Result<String, UnitLookupError>,
) -> Result<UnitState, UnitLookupError> {
    show(unit).map(|text| UnitState::parse(unit, &text))
}

/// Calls `ready` every `every` until it is true (true) or `timeout` has
/// passed (false): every wait for a service to come up.
pub fn poll_until(timeout: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Waits until something accepts connections on `socket`.
pub fn wait_for_socket(socket: &Path, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(100), || {
        UnixStream::connect(socket).is_ok()
    })
}

/// The daemon's answer to a ping, or why there is none.
pub fn ping(socket: &Path) -> Result<Pong, String> {
    crate::client::Client::new(socket)
        .call::<Pong>(Request::Ping(NoParams {}))
        .map_err(|e| crate::error_line::error_line(&e))
}

/// Waits until the daemon at `socket` answers a ping.
pub fn wait_for_daemon(socket: &Path, timeout: Duration) -> Result<(), SystemError> {
    if poll_until(timeout, Duration::from_millis(200), || ping(socket).is_ok()) {
        Ok(())
    } else {
        Err(SystemError::NoAnswer {
            what: "the daemon",
            unit: DAEMON_UNIT,
            secs: timeout.as_secs(),
        })
    }
}
