//! Which kind of guest an image is for: below both the recipe and the
//! files injected into the guest, which each depend on it.

use serde::{Deserialize, Serialize};

/// Which kind of guest the image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// systemd is PID 1; the agent and the network run as units.
    Full,
    /// The agent is PID 1 (`banger.init=` on the kernel command line).
    Minimal,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Full => "full",
            Variant::Minimal => "minimal",
        }
    }
}
