//! Validated arguments for privileged operations (SPEC §4, §12). Every value
//! that reaches a root-owned action is one of these types, so the checks run
//! once, where the value is built, and cannot be forgotten at a call site.
//! The root helper will deserialise the same types from its socket: serde
//! goes through the same validating constructors (except for the checks that
//! need context, see [`ManagedPath::revalidate`]).

mod exec;
mod ip;
mod mac;
mod names;
mod path;

use std::path::PathBuf;

pub use exec::{ExecProblem, validate_executable};
pub use ip::{CidrProblem, Ipv4Cidr, parse_ipv4};
pub use mac::GuestMac;
pub use names::{BridgeName, DmName, TapName};
pub use path::{ManagedPath, ManagedRoots, PathProblem};

/// A value that may not be handed to a privileged operation. The message
/// names the value and the rule it broke.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error(
        "bridge name {name:?} is not allowed: banger manages only `br-fc` or `br-fc-<suffix>` \
         (suffix of lowercase letters, digits and '-'), at most 15 bytes; set bridge_name in config.toml"
    )]
    BridgeName { name: String },
    #[error(
        "tap name {name:?} is not one of banger's: its taps are `fctap` followed by 1 to 10 digits"
    )]
    TapName { name: String },
    #[error(
        "device-mapper name {name:?} is not one of banger's: `banger-` followed by 1 to 64 \
         lowercase letters, digits or '-'"
    )]
    DmName { name: String },
    #[error("{input:?} is not a usable IPv4 network (a.b.c.d/prefix): {problem}")]
    Cidr { input: String, problem: CidrProblem },
    #[error("{input:?} is not an IPv4 address: {problem}")]
    Ipv4 { input: String, problem: CidrProblem },
    #[error("{input:?} is not a guest MAC address: {problem}")]
    Mac {
        input: String,
        problem: &'static str,
    },
    #[error("refusing path {}: {problem}", path.display())]
    Path { path: PathBuf, problem: PathProblem },
    #[error("refusing managed root {}: {problem}", root.display())]
    Root { root: PathBuf, problem: PathProblem },
    #[error("refusing to run {} as root: {problem}", path.display())]
    Executable { path: PathBuf, problem: ExecProblem },
    #[error(
        "{} is not a {kind} device path banger created (expected {expected})",
        path.display()
    )]
    DevicePath {
        path: PathBuf,
        kind: &'static str,
        expected: String,
    },
}

/// Implements the string plumbing shared by the name newtypes: `FromStr`,
/// `TryFrom<String>` (used by serde), `Display`, `AsRef<str>` and the
/// conversion back to `String`.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::validate::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::validate::ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use string_newtype;
