//! What running under the jailer is configured with, and the checks that
//! apply before anything is made: below both the path layout and the jail
//! staging, which each use them.

use std::path::PathBuf;

use super::error::FirecrackerError;

/// The API socket as Firecracker sees it inside the jail.
pub const JAILED_API_SOCKET: &str = "/run/firecracker.socket";

/// How to run Firecracker under the jailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailerConfig {
    /// The `jailer` program.
    pub binary: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `--chroot-base-dir`; jails are `<base>/<exec file name>/<id>/root`.
    pub chroot_base: PathBuf,
}

/// The jailer accepts ids of 1–64 alphanumerics and hyphens; checking here
/// gives the error before anything is created.
pub fn validate_id(id: &str) -> Result<(), FirecrackerError> {
    let ok =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FirecrackerError::JailerId { id: id.to_owned() })
    }
}
