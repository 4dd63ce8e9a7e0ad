//! The ways a VM's root disk can share the image (a leaf module: errors
//! name a strategy without importing the strategies' code).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a VM's root disk shares the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CowStrategy {
    Reflink,
    DmSnapshot,
    Qcow2Overlay,
    SparseCopy,
}

impl CowStrategy {
    /// Whether creating a VM with this strategy costs time proportional to
    /// the image size (what doctor warns about).
    pub fn copies_the_image(self) -> bool {
        self == CowStrategy::SparseCopy
    }

    /// The serialised name (`reflink`, `dm-snapshot`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CowStrategy::Reflink => "reflink",
            CowStrategy::DmSnapshot => "dm-snapshot",
            CowStrategy::Qcow2Overlay => "qcow2-overlay",
            CowStrategy::SparseCopy => "sparse-copy",
        }
    }
}

impl fmt::Display for CowStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
