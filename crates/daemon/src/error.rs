//! Errors of request handling, each mapped to one protocol error code.

use banger_api::protocol::{ErrorCode, ProtocolError};
use banger_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cancelled: the client went away or the daemon is shutting down")]
    Cancelled,
    #[error("internal error: {0}; see the daemon log")]
    Internal(String),
}

impl DaemonError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DaemonError::Protocol(p) => p.code,
            DaemonError::Store(StoreError::VmNotFound { .. }) => ErrorCode::NotFound,
            DaemonError::Store(StoreError::VmAmbiguous { .. }) => ErrorCode::BadRequest,
            DaemonError::Store(StoreError::VmNameTaken { .. }) => ErrorCode::AlreadyExists,
            DaemonError::Store(_) | DaemonError::Cancelled | DaemonError::Internal(_) => {
                ErrorCode::OperationFailed
            }
        }
    }

    /// The message sent to the client: the whole cause chain, once.
    pub fn to_protocol(&self) -> ProtocolError {
        ProtocolError::new(self.code(), banger_api::error_chain(self))
    }
}
