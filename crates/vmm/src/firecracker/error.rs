//! What can go wrong between banger and Firecracker, typed so a caller can
//! tell a refused request from a dead socket; every variant converts into the
//! crate's [`VmmError`].

use std::path::PathBuf;
use std::time::Duration;

use crate::VmmError;

use super::version::FirecrackerVersion;

#[derive(Debug, thiserror::Error)]
pub enum FirecrackerError {
    #[error("cannot connect to the Firecracker API at {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{request} to the Firecracker API at {socket} failed")]
    Transport {
        request: String,
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{request} got no answer from Firecracker within {timeout:?}")]
    Timeout { request: String, timeout: Duration },
    #[error("Firecracker's answer to {request} is malformed: {reason}")]
    Malformed { request: String, reason: String },
    /// Firecracker answered with an error status and its `fault_message`.
    #[error("Firecracker refused {request} (HTTP {status}): {fault_message}")]
    Fault {
        request: String,
        status: u16,
        fault_message: String,
    },
    #[error("cannot read the version of {binary} from {output:?}")]
    UnparsableVersion { binary: PathBuf, output: String },
    #[error(
        "{binary} is Firecracker v{found}; banger needs v{} or newer",
        FirecrackerVersion::MINIMUM
    )]
    TooOld {
        binary: PathBuf,
        found: FirecrackerVersion,
    },
    #[error("Firecracker reads raw disk images only; {path} is qcow2")]
    Qcow2 { path: PathBuf },
    #[error("Firecracker needs UTF-8 paths; {path:?} is not")]
    NonUtf8Path { path: PathBuf },
    #[error("invalid jailer id {id:?}: 1-64 characters of [A-Za-z0-9-]")]
    JailerId { id: String },
    #[error(
        "cannot place {source_path} in the jail at {jail_path}; a jailed disk must be a regular file on the jail's filesystem"
    )]
    JailLink {
        source_path: PathBuf,
        jail_path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] banger_sys::ProcessError),
}

impl From<FirecrackerError> for VmmError {
    fn from(e: FirecrackerError) -> Self {
        let message = e.to_string();
        match e {
            FirecrackerError::Connect { socket, source } => VmmError::Io {
                action: "connect to the Firecracker API at",
                path: socket,
                source,
            },
            FirecrackerError::Transport { socket, source, .. } => VmmError::Io {
                action: "talk to the Firecracker API at",
                path: socket,
                source,
            },
            FirecrackerError::Timeout { request, timeout } => {
                VmmError::Timeout(timeout, format!("Firecracker to answer {request}"))
            }
            FirecrackerError::Malformed { request, reason } => VmmError::Refused {
                what: request,
                detail: format!("malformed answer: {reason}"),
            },
            FirecrackerError::Fault {
                request,
                status,
                fault_message,
            } => VmmError::Refused {
                what: request,
                detail: format!("{fault_message} (HTTP {status})"),
            },
            FirecrackerError::JailLink {
                source_path,
                source,
                ..
            } => VmmError::Io {
                action: "hard-link into the jail",
                path: source_path,
                source,
            },
            FirecrackerError::Process(p) => VmmError::Process(p),
            FirecrackerError::UnparsableVersion { .. }
            | FirecrackerError::TooOld { .. }
            | FirecrackerError::Qcow2 { .. }
            | FirecrackerError::NonUtf8Path { .. }
            | FirecrackerError::JailerId { .. } => VmmError::InvalidConfig(message),
        }
    }
}
