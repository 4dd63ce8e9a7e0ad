//! The two keyword-valued settings: `log_level` and `vmm`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much the daemon logs. Ordered from quietest to loudest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// The lowercase name, which is also what `tracing`'s filters accept.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Which virtual machine monitor runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Vmm {
    /// Firecracker when KVM is usable, QEMU otherwise.
    #[default]
    Auto,
    Firecracker,
    Qemu,
}

impl Vmm {
    pub const ALL: [Vmm; 3] = [Self::Auto, Self::Firecracker, Self::Qemu];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Firecracker => "firecracker",
            Self::Qemu => "qemu",
        }
    }
}

/// A keyword that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of {expected})")]
pub struct UnknownKeyword {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// Keywords are matched case-insensitively: `BANGER_LOG_LEVEL=DEBUG` is an
/// obvious intent, and refusing it would only annoy.
fn parse_keyword<T: Copy>(
    what: &'static str,
    input: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, UnknownKeyword> {
    let wanted = input.trim();
    all.iter()
        .copied()
        .find(|&v| name(v).eq_ignore_ascii_case(wanted))
        .ok_or_else(|| UnknownKeyword {
            what,
            value: input.to_owned(),
            expected: all.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", "),
        })
}

macro_rules! keyword_impls {
    ($ty:ty, $what:literal) => {
        impl FromStr for $ty {
            type Err = UnknownKeyword;
            fn from_str(s: &str) -> Result<Self, UnknownKeyword> {
                parse_keyword($what, s, &Self::ALL, Self::as_str)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = UnknownKeyword;
            fn try_from(s: String) -> Result<Self, UnknownKeyword> {
                s.parse()
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_impls!(LogLevel, "log level");
keyword_impls!(Vmm, "vmm");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_ignore_case() {
        for level in LogLevel::ALL {
            assert_eq!(level.to_string().parse::<LogLevel>().unwrap(), level);
        }
        for vmm in Vmm::ALL {
            assert_eq!(vmm.to_string().parse::<Vmm>().unwrap(), vmm);
        }
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!(" Qemu ".parse::<Vmm>().unwrap(), Vmm::Qemu);
    }

    #[test]
    fn unknown_keyword_lists_the_choices() {
        let err = "loud".parse::<LogLevel>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log level \"loud\" (expected one of error, warn, info, debug, trace)"
        );
        let err = "kvm".parse::<Vmm>().unwrap_err();
        assert!(err.to_string().contains("auto, firecracker, qemu"), "{err}");
    }
}
