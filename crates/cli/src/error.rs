//! CLI errors and their exit codes: 1 when an operation failed, 2 for usage
//! errors (SPEC §3).

use banger_api::protocol::ErrorCode;

use crate::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A combination of arguments that cannot work, found after parsing.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Paths(#[from] banger_config::PathError),
    #[error(transparent)]
    Config(#[from] banger_config::ConfigError),
    #[error("cannot resolve {path}")]
    Path {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error(transparent)]
    Update(Box<crate::update::UpdateError>),
    #[error(transparent)]
    Ssh(#[from] banger_net::ssh::SshError),
    #[error("{vm} has no address: is it running? (`banger vm start {vm}`)")]
    NotRunning { vm: String },
    #[error(transparent)]
    Process(banger_sys::ProcessError),
    #[error("HOME is not set: cannot find ~/.ssh/config")]
    NoHome,
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A result that came incomplete, which is never a success (SPEC §12).
    #[error("{0}")]
    Incomplete(String),
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    /// The guest command's own exit status (`vm exec`); nothing to print.
    #[error("the guest command exited with status {0}")]
    GuestExit(u8),
    /// Some of several VMs failed; each was reported as it happened.
    #[error("{failed} of {total} VMs failed")]
    Some { failed: usize, total: usize },
    /// Checks ran and reported failures; the report itself is the message.
    #[error("doctor found {0} failing check(s)")]
    DoctorFailed(usize),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(ClientError::Daemon { error, .. })
                if matches!(error.code, ErrorCode::BadRequest | ErrorCode::UnknownMethod) =>
            {
                2
            }
            CliError::GuestExit(status) => *status,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}
