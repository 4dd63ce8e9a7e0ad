//! Which of its roles the binary plays, from how it was started.
//!
//! - PID 1 started as `/init` (the initramfs) → `init`.
//! - PID 1 under any other name (the minimal image's `/sbin/init` is the
//!   agent, or `banger.init=` names it) → `guest-init`. As PID 1 the
//!   arguments are ignored: the kernel hands init the command-line words it
//!   does not know, which are not ours.
//! - Otherwise the first argument names the mode: `service` (the systemd
//!   unit), `network` (a oneshot unit that applies `banger.ip=`), `version`,
//!   and `launch PROG ARGS...` (exec PROG with a clean signal mask: how
//!   guest-init starts sshd; see `signals`).
//!   `init` and `guest-init` are refused unless PID 1, so running them by
//!   mistake on a host cannot remount its filesystems.

use std::path::PathBuf;

use thiserror::Error;

/// How the service powers the guest off when asked to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PowerChoice {
    /// systemd when `/run/systemd/system` exists, else signal PID 1.
    #[default]
    Auto,
    /// `systemctl poweroff`.
    Systemd,
    /// SIGTERM to PID 1 (banger's guest-init powers off on it).
    Init,
    /// Refuse `poweroff` requests.
    None,
}

/// Options of `service`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceArgs {
    pub power: PowerChoice,
    /// Listen on this Unix socket instead of vsock (debugging, tests).
    pub unix: Option<PathBuf>,
    /// Serve the serial channel's multiplexer over a connection to this
    /// Unix socket, where an agent-mux sidecar listens (tests).
    pub serial_socket: Option<PathBuf>,
}

/// The role to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Init,
    GuestInit,
    Service(ServiceArgs),
    Network,
    /// Exec the given argv (guest-init's trampoline for external programs).
    Launch(Vec<String>),
    Version,
    Help,
}

/// A command line that selects no mode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("no mode given")]
    NoMode,
    #[error("unknown mode {0:?}")]
    UnknownMode(String),
    #[error("mode {0} only runs as PID 1")]
    NotPid1(&'static str),
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    #[error("bad value {value:?} for {option}")]
    BadValue { option: &'static str, value: String },
}

pub const USAGE: &str = "\
usage: banger-agent MODE
  service [--power auto|systemd|init|none] [--unix PATH] [--serial-socket PATH]
            serve the host on vsock port 1024, or on the virtio-serial
            port with banger.channel=serial (or on a Unix socket, or
            through a sidecar's port socket)
  network   configure the NIC from banger.* kernel parameters and exit
  launch PROG [ARGS...]
            exec PROG with no signal blocked (used by guest-init)
  version   print the version
As PID 1: named /init it is the initramfs init; under any other name it is
the init of the minimal image (guest-init).";

/// Chooses the mode from `argv[0]`, the other arguments and the pid.
pub fn select(argv0: &str, args: &[String], pid: u32) -> Result<Mode, UsageError> {
    if pid == 1 {
        return Ok(if argv0 == "/init" {
            Mode::Init
        } else {
            Mode::GuestInit
        });
    }
    let Some(first) = args.first() else {
        return Err(UsageError::NoMode);
    };
    match first.as_str() {
        "init" => Err(UsageError::NotPid1("init")),
        "guest-init" => Err(UsageError::NotPid1("guest-init")),
        "service" => service_args(&args[1..]).map(Mode::Service),
        "network" => no_more_args(&args[1..]).map(|()| Mode::Network),
        "launch" => match &args[1..] {
            [] => Err(UsageError::MissingValue("launch")),
            argv => Ok(Mode::Launch(argv.to_vec())),
        },
        "version" | "--version" | "-V" => Ok(Mode::Version),
        "help" | "--help" | "-h" => Ok(Mode::Help),
        other => Err(UsageError::UnknownMode(other.to_string())),
    }
}

fn no_more_args(args: &[String]) -> Result<(), UsageError> {
    match args.first() {
        Some(extra) => Err(UsageError::UnknownOption(extra.clone())),
        None => Ok(()),
    }
}

fn service_args(args: &[String]) -> Result<ServiceArgs, UsageError> {
    let mut parsed = ServiceArgs::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = |option: &'static str| {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or(UsageError::MissingValue(option))
        };
        match name {
            "--power" => {
                let v = value("--power")?;
                parsed.power = match v.as_str() {
                    "auto" => PowerChoice::Auto,
                    "systemd" => PowerChoice::Systemd,
                    "init" => PowerChoice::Init,
                    "none" => PowerChoice::None,
                    _ => {
                        return Err(UsageError::BadValue {
                            option: "--power",
                            value: v,
                        });
                    }
                };
            }
            "--unix" => parsed.unix = Some(PathBuf::from(value("--unix")?)),
            "--serial-socket" => {
                parsed.serial_socket = Some(PathBuf::from(value("--serial-socket")?));
            }
            _ => return Err(UsageError::UnknownOption(arg.clone())),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pid1_mode_comes_from_the_name_and_ignores_arguments() {
        assert_eq!(select("/init", &[], 1), Ok(Mode::Init));
        assert_eq!(select("/init", &args(&["single"]), 1), Ok(Mode::Init));
        assert_eq!(select("/sbin/init", &[], 1), Ok(Mode::GuestInit));
        assert_eq!(
            select("/usr/local/lib/banger/banger-agent", &args(&["service"]), 1),
            Ok(Mode::GuestInit)
        );
    }

    #[test]
    fn init_modes_are_refused_off_pid1() {
        assert_eq!(
            select("banger-agent", &args(&["init"]), 42),
            Err(UsageError::NotPid1("init"))
        );
        assert_eq!(
            select("banger-agent", &args(&["guest-init"]), 42),
            Err(UsageError::NotPid1("guest-init"))
        );
        // Named /init but not PID 1: still needs an explicit mode.
        assert_eq!(select("/init", &[], 42), Err(UsageError::NoMode));
    }

    #[test]
    fn service_options() {
        assert_eq!(
            select("x", &args(&["service"]), 9),
            Ok(Mode::Service(ServiceArgs::default()))
        );
        assert_eq!(
            select(
                "x",
                &args(&["service", "--power", "init", "--unix=/tmp/a.sock"]),
                9
            ),
            Ok(Mode::Service(ServiceArgs {
                power: PowerChoice::Init,
                unix: Some(PathBuf::from("/tmp/a.sock")),
                serial_socket: None,
            }))
        );
        assert_eq!(
            select("x", &args(&["service", "--power=systemd"]), 9),
            Ok(Mode::Service(ServiceArgs {
                power: PowerChoice::Systemd,
                unix: None,
                serial_socket: None,
            }))
        );
        assert_eq!(
            select("x", &args(&["service", "--serial-socket", "/tmp/p"]), 9),
            Ok(Mode::Service(ServiceArgs {
                power: PowerChoice::Auto,
                unix: None,
                serial_socket: Some(PathBuf::from("/tmp/p")),
            }))
        );
        assert_eq!(
            select("x", &args(&["service", "--power"]), 9),
            Err(UsageError::MissingValue("--power"))
        );
        assert_eq!(
            select("x", &args(&["service", "--power", "maybe"]), 9),
            Err(UsageError::BadValue {
                option: "--power",
                value: "maybe".into()
            })
        );
        assert_eq!(
            select("x", &args(&["service", "--verbose"]), 9),
            Err(UsageError::UnknownOption("--verbose".into()))
        );
    }

    #[test]
    fn launch_takes_the_rest_verbatim() {
        assert_eq!(
            select("x", &args(&["launch", "/usr/sbin/sshd", "-D", "-e"]), 9),
            Ok(Mode::Launch(args(&["/usr/sbin/sshd", "-D", "-e"])))
        );
        assert_eq!(
            select("x", &args(&["launch"]), 9),
            Err(UsageError::MissingValue("launch"))
        );
    }

    #[test]
    fn other_modes() {
        assert_eq!(select("x", &args(&["version"]), 9), Ok(Mode::Version));
        assert_eq!(select("x", &args(&["--help"]), 9), Ok(Mode::Help));
        assert_eq!(select("x", &args(&["network"]), 9), Ok(Mode::Network));
        assert_eq!(
            select("x", &args(&["network", "now"]), 9),
            Err(UsageError::UnknownOption("now".into()))
        );
        assert_eq!(select("x", &[], 9), Err(UsageError::NoMode));
        assert_eq!(
            select("x", &args(&["dance"]), 9),
            Err(UsageError::UnknownMode("dance".into()))
        );
    }
}
