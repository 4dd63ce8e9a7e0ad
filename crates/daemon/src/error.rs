//! Errors of request handling, each mapped to one protocol error code, and
//! of start-up.

use banger_api::protocol::{ErrorCode, ProtocolError};
use std::path::{Path, PathBuf};

use banger_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] banger_image::images::ImageError),
    #[error(transparent)]
    Kernel(#[from] banger_image::kernel::KernelError),
    #[error(transparent)]
    Agent(#[from] banger_image::agent_bin::AgentBinError),
    #[error(transparent)]
    Vmm(#[from] banger_vmm::VmmError),
    #[error(transparent)]
    Host(#[from] banger_host::HostError),
    #[error(transparent)]
    Disk(#[from] banger_image::DiskError),
    #[error(transparent)]
    Ssh(#[from] banger_net::ssh::SshError),
    #[error(transparent)]
    Workspace(#[from] banger_workspace::WorkspaceError),
    #[error(transparent)]
    Process(#[from] banger_sys::ProcessError),
    #[error("cannot prepare the work disk's content: cannot {what}")]
    Seed {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest agent did not answer as expected")]
    AgentCall(#[source] banger_agent_proto::client::ClientError),
    /// A stage of a VM operation failed; the code is the cause's.
    #[error("{stage} failed")]
    Stage {
        stage: String,
        #[source]
        source: Box<DaemonError>,
    },
    #[error("cancelled: the client went away or the daemon is shutting down")]
    Cancelled,
    #[error("internal error: {0}; see the daemon log")]
    Internal(String),
}

/// A call abandoned because the request was cancelled is the request's
/// cancellation, not a guest failure.
impl From<banger_agent_proto::client::ClientError> for DaemonError {
    fn from(e: banger_agent_proto::client::ClientError) -> Self {
        match e {
            banger_agent_proto::client::ClientError::Aborted => DaemonError::Cancelled,
            e => DaemonError::AgentCall(e),
        }
    }
}

impl DaemonError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DaemonError::Protocol(p) => p.code,
            DaemonError::Store(StoreError::VmNotFound { .. }) => ErrorCode::NotFound,
            DaemonError::Store(StoreError::VmAmbiguous { .. }) => ErrorCode::BadRequest,
            DaemonError::Store(StoreError::VmNameTaken { .. }) => ErrorCode::AlreadyExists,
            DaemonError::Image(e) => image_code(e),
            DaemonError::Kernel(e) => kernel_code(e),
            DaemonError::Workspace(e) => workspace_code(e),
            DaemonError::Stage { source, .. } => source.code(),
            DaemonError::Store(_)
            | DaemonError::Vmm(_)
            | DaemonError::Host(_)
            | DaemonError::Disk(_)
            | DaemonError::Ssh(_)
            | DaemonError::AgentCall(_)
            | DaemonError::Process(_)
            | DaemonError::Seed { .. }
            | DaemonError::Agent(_)
            | DaemonError::Cancelled
            | DaemonError::Internal(_) => ErrorCode::OperationFailed,
        }
    }

    /// The message sent to the client: the whole cause chain, once.
    /// Names the stage a failure happened in; cancellation stays itself.
    pub fn in_stage(self, stage: &str) -> DaemonError {
        match self {
            DaemonError::Cancelled | DaemonError::Stage { .. } => self,
            e => DaemonError::Stage {
                stage: stage.to_owned(),
                source: Box::new(e),
            },
        }
    }

    /// A failure explained by a message, with a protocol code.
    pub fn failed(code: ErrorCode, message: impl Into<String>) -> DaemonError {
        DaemonError::Protocol(ProtocolError::new(code, message))
    }

    pub fn to_protocol(&self) -> ProtocolError {
        ProtocolError::new(self.code(), banger_api::error_chain(self))
    }
}

fn image_code(e: &banger_image::images::ImageError) -> ErrorCode {
    use banger_image::images::ImageError as E;
    match e {
        E::NotFound { .. } => ErrorCode::NotFound,
        E::AlreadyExists { .. } => ErrorCode::AlreadyExists,
        E::InvalidName { .. } | E::InvalidKernelRef { .. } | E::UnknownRecipe { .. } => {
            ErrorCode::BadRequest
        }
        _ => ErrorCode::OperationFailed,
    }
}

fn kernel_code(e: &banger_image::kernel::KernelError) -> ErrorCode {
    use banger_image::kernel::KernelError as E;
    match e {
        E::NotFound { .. } => ErrorCode::NotFound,
        E::InvalidName { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::OperationFailed,
    }
}

fn workspace_code(e: &banger_workspace::WorkspaceError) -> ErrorCode {
    use banger_workspace::WorkspaceError as E;
    match e {
        E::Missing { .. } => ErrorCode::NotFound,
        E::NotARepo { .. }
        | E::Bare { .. }
        | E::Submodules { .. }
        | E::NoCommits { .. }
        | E::BadRevision { .. }
        | E::BadBranch { .. } => ErrorCode::BadRequest,
        E::Git { .. } | E::Io { .. } | E::Archive { .. } => ErrorCode::OperationFailed,
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot prepare banger's directories")]
    Dirs(#[source] banger_config::PathError),
    #[error("cannot open the state store")]
    Store(#[source] banger_store::StoreError),
    #[error(
        "another bangerd ({holder}) already serves this state directory ({socket}); stop it \
         first (its lock is {lock}); this one changed nothing"
    )]
    AlreadyRunning {
        socket: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error(transparent)]
    Config(#[from] banger_config::ConfigError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("root helper: {0}")]
    Helper(String),
}

pub fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StartupError {
    let path = path.to_owned();
    move |source| StartupError::Io {
        action,
        path,
        source,
    }
}
