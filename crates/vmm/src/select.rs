//! Which VMM runs new VMs (SPEC §11 `vmm = auto|firecracker|qemu`), and
//! why, in words the daemon logs and `banger doctor` prints.
//!
//! `auto` takes Firecracker when its binary is found, its version is one
//! banger drives, and KVM is usable ([`Kvm::Usable`]: not merely present on
//! a nested host, where guests often cannot boot); otherwise QEMU, which
//! falls back to TCG. An explicit `firecracker` is honoured on a nested host
//! (the user knows theirs works) but refused, with what is missing and what
//! to do, when the binary or `/dev/kvm` is not there.
//!
//! The decision is [`choose`], a pure function of the configured value and
//! the host facts; each fact sits behind a closure so nothing is probed
//! that the decision does not need (`vmm = qemu` runs no Firecracker).

use std::path::{Path, PathBuf};

use crate::firecracker::{Firecracker, FirecrackerError, FirecrackerVersion};
use crate::{BackendKind, Kvm};

/// The configured `vmm`, as this crate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    Auto,
    Firecracker,
    Qemu,
}

impl Preference {
    fn as_str(self) -> &'static str {
        match self {
            Preference::Auto => "auto",
            Preference::Firecracker => "firecracker",
            Preference::Qemu => "qemu",
        }
    }
}

/// What was found of Firecracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirecrackerFound {
    /// No such program: `looked_for` is the configured path or the name
    /// searched in `PATH`.
    Missing { looked_for: String },
    /// Found but not usable (too old, or `--version` failed).
    Unusable { binary: PathBuf, problem: String },
    Supported {
        binary: PathBuf,
        version: FirecrackerVersion,
    },
}

impl FirecrackerFound {
    /// Finds `configured` (a name or path) or `firecracker` in `PATH` and
    /// asks it for its version.
    pub fn detect(configured: Option<&Path>) -> FirecrackerFound {
        let looked_for = configured.map_or_else(
            || "firecracker".to_owned(),
            |p| p.to_string_lossy().into_owned(),
        );
        let Some(binary) = banger_sys::find_program(&looked_for) else {
            return FirecrackerFound::Missing { looked_for };
        };
        match Firecracker::new(&binary).version() {
            Ok(version) => FirecrackerFound::Supported { binary, version },
            Err(e) => FirecrackerFound::Unusable {
                problem: match &e {
                    FirecrackerError::TooOld { found, .. } => format!(
                        "Firecracker {found} at {} is too old (banger needs {} or newer)",
                        binary.display(),
                        FirecrackerVersion::MINIMUM
                    ),
                    _ => error_chain(&e),
                },
                binary,
            },
        }
    }
}

/// The backend new VMs get, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub kind: BackendKind,
    /// Set when Firecracker was chosen.
    pub firecracker: Option<(PathBuf, FirecrackerVersion)>,
    /// Why, e.g. `firecracker not installed` or `Firecracker 1.17.0 with KVM`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("vmm = \"firecracker\" in config.toml, but {missing}; {fix}")]
    FirecrackerUnusable { missing: String, fix: String },
}

/// The policy described in the module documentation.
pub fn choose(
    preference: Preference,
    firecracker: impl FnOnce() -> FirecrackerFound,
    kvm: impl FnOnce() -> Kvm,
) -> Result<Choice, SelectError> {
    let qemu = |reason: String| Choice {
        kind: BackendKind::Qemu,
        firecracker: None,
        reason,
    };
    if preference == Preference::Qemu {
        return Ok(qemu("vmm = \"qemu\" in config.toml".into()));
    }
    let explicit = preference == Preference::Firecracker;
    let refuse = |missing: String, fix: &str| SelectError::FirecrackerUnusable {
        missing,
        fix: fix.to_owned(),
    };
    let (binary, version) = match firecracker() {
        FirecrackerFound::Supported { binary, version } => (binary, version),
        FirecrackerFound::Missing { looked_for } if explicit => {
            return Err(refuse(
                format!("{looked_for} was not found"),
                "install Firecracker (1.5 or newer) and set firecracker_bin to its path, \
                 or set vmm = \"auto\" to use QEMU",
            ));
        }
        FirecrackerFound::Missing { .. } => return Ok(qemu("firecracker not installed".into())),
        FirecrackerFound::Unusable { problem, .. } if explicit => {
            return Err(refuse(
                problem,
                "install Firecracker 1.5 or newer, or set vmm = \"auto\" to use QEMU",
            ));
        }
        FirecrackerFound::Unusable { problem, .. } => {
            return Ok(qemu(format!("firecracker unusable: {problem}")));
        }
    };
    let firecracker = |reason: String| Choice {
        kind: BackendKind::Firecracker,
        firecracker: Some((binary.clone(), version)),
        reason,
    };
    match kvm() {
        Kvm::Usable => Ok(firecracker(format!("Firecracker {version} with KVM"))),
        Kvm::Nested if explicit => Ok(firecracker(format!(
            "vmm = \"firecracker\" in config.toml: Firecracker {version} on nested KVM"
        ))),
        Kvm::Nested => Ok(qemu(format!(
            "Firecracker {version} found, but {}; set vmm = \"firecracker\" to use it anyway",
            Kvm::Nested.describe()
        ))),
        Kvm::Unavailable(why) if explicit => Err(refuse(
            format!("Firecracker needs KVM and {why}"),
            "enable KVM (and make /dev/kvm read-write for banger), or set vmm = \"auto\" to \
             use QEMU",
        )),
        Kvm::Unavailable(why) => Ok(qemu(format!("Firecracker needs KVM: {why}"))),
    }
}

impl Choice {
    /// For log lines: `auto → qemu (firecracker not installed)`.
    pub fn summary(&self, preference: Preference) -> String {
        let kind = match self.kind {
            BackendKind::Firecracker => "firecracker",
            BackendKind::Qemu => "qemu",
        };
        format!("{} → {kind} ({})", preference.as_str(), self.reason)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
