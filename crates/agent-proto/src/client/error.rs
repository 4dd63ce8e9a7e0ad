//! Typed errors of the host-side client.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::protocol::{ErrorCode, FROZEN_REFUSAL};

/// Where in a call something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connecting,
    Handshake,
    SendingRequest,
    ReadingResponse,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connecting => "connecting",
            Stage::Handshake => "during the vsock handshake",
            Stage::SendingRequest => "sending the request",
            Stage::ReadingResponse => "waiting for the response",
        })
    }
}

/// Why a call to the agent failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to the VM's vsock socket {}: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("timed out {stage} via {} (after {timeout:?})", path.display())]
    Timeout {
        path: PathBuf,
        stage: Stage,
        timeout: Duration,
    },
    #[error(
        "vsock port {port} refused via {}: {}",
        path.display(),
        if reply.is_empty() { "connection closed (is the agent listening?)".to_string() } else { format!("reply {reply:?}") }
    )]
    HandshakeRefused {
        path: PathBuf,
        port: u32,
        /// The VMM's reply line; empty when it closed the connection.
        reply: String,
    },
    #[error("i/o error {stage} via {}: {source}", path.display())]
    Io {
        path: PathBuf,
        stage: Stage,
        source: io::Error,
    },
    #[error("bad response from the agent: {reason}")]
    BadResponse { reason: String },
    #[error("agent error ({code}): {message}")]
    Agent { code: ErrorCode, message: String },
    /// Reading the input to send to the guest failed; the guest got no end
    /// of input, so it killed the command rather than let it act on part.
    #[error("reading the input to send to the guest failed: {source}")]
    Input { source: io::Error },
    /// An [`Aborter`](super::Aborter) ended the call: its result is no
    /// longer wanted, and an `exec`'s command was killed.
    #[error("the call to the agent was abandoned")]
    Aborted,
}

impl ClientError {
    /// True for the errors a caller waiting for a booting guest should retry:
    /// the socket is not there yet, nothing listens on the port yet, or the
    /// guest did not answer the handshake in time.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::HandshakeRefused { .. } => true,
            ClientError::Timeout { stage, .. } => {
                matches!(stage, Stage::Connecting | Stage::Handshake)
            }
            _ => false,
        }
    }

    /// True when an agent older than streaming refused a streaming `exec`
    /// for its `stream` field (it answers `bad_request` before running
    /// anything); the caller can ask again without streaming.
    pub fn is_streaming_unsupported(&self) -> bool {
        matches!(self, ClientError::Agent { code: ErrorCode::BadRequest, message }
            if message.contains("unknown field `stream`"))
    }

    /// True when an agent older than streamed stdin refused an `exec` with
    /// `stdin_stream` (it answers `bad_request` before running anything).
    /// An agent older than `stream` names that field instead when both are
    /// set, and it cannot know `stdin_stream` either, so that counts too.
    pub fn is_stdin_stream_unsupported(&self) -> bool {
        matches!(self, ClientError::Agent { code: ErrorCode::BadRequest, message }
            if message.contains("unknown field `stdin_stream`")
                || message.contains("unknown field `stream`"))
    }

    /// The agent predates raw input (`stdin_raw_bytes`): it refused the
    /// request before running anything, so the input can go as frames.
    pub fn is_raw_input_unsupported(&self) -> bool {
        matches!(self, ClientError::Agent { code: ErrorCode::BadRequest, message }
            if message.contains("unknown field `stdin_raw_bytes`"))
    }

    /// The agent is frozen (`freeze` came before a snapshot, and this may
    /// be a copy restored from it): it refused `exec` or `ports` until an
    /// `identity` with `entropy` and `realtime_ns`, or a `thaw`.
    pub fn is_frozen(&self) -> bool {
        matches!(self, ClientError::Agent { code: ErrorCode::Failed, message }
            if message.starts_with(FROZEN_REFUSAL))
    }

    /// The agent's error code, when the agent itself refused the call.
    pub fn agent_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Agent { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_without_raw_input_is_recognised() {
        let old = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: "bad params for exec: unknown field `stdin_raw_bytes`, expected one of ..."
                .into(),
        };
        assert!(old.is_raw_input_unsupported());
        let other = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: "argv is empty".into(),
        };
        assert!(!other.is_raw_input_unsupported());
    }

    #[test]
    fn a_frozen_agents_refusal_is_recognised() {
        let frozen = ClientError::Agent {
            code: ErrorCode::Failed,
            message: format!("{FROZEN_REFUSAL}: send identity"),
        };
        assert!(frozen.is_frozen());
        let other = ClientError::Agent {
            code: ErrorCode::Failed,
            message: "no such file".into(),
        };
        assert!(!other.is_frozen());
        let wrong_code = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: FROZEN_REFUSAL.into(),
        };
        assert!(!wrong_code.is_frozen());
    }

    #[test]
    fn only_not_yet_up_errors_are_retryable() {
        let path = PathBuf::from("/x.sock");
        assert!(
            ClientError::HandshakeRefused {
                path: path.clone(),
                port: 1024,
                reply: String::new()
            }
            .is_retryable()
        );
        assert!(
            ClientError::Timeout {
                path: path.clone(),
                stage: Stage::Handshake,
                timeout: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(
            !ClientError::Timeout {
                path,
                stage: Stage::ReadingResponse,
                timeout: Duration::from_secs(1)
            }
            .is_retryable()
        );
        let agent = ClientError::Agent {
            code: ErrorCode::Failed,
            message: "x".into(),
        };
        assert!(!agent.is_retryable());
        assert_eq!(agent.agent_code(), Some(ErrorCode::Failed));
    }

    #[test]
    fn an_older_agents_refusal_of_stream_is_recognised() {
        // What an agent without the field answers: serde's wording for a
        // struct with deny_unknown_fields, behind the agent's prefix.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OldExecRequest {
            argv: Vec<String>,
        }
        let serde_error =
            serde_json::from_str::<OldExecRequest>(r#"{"argv":["true"],"stream":true}"#)
                .unwrap_err();
        let old = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: format!("bad params for exec: {serde_error}"),
        };
        assert!(old.is_streaming_unsupported(), "{old}");
        let other = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: "argv is empty".into(),
        };
        assert!(!other.is_streaming_unsupported());
        assert!(!other.is_stdin_stream_unsupported());
    }

    #[test]
    fn an_older_agents_refusal_of_stdin_stream_is_recognised() {
        // An agent that knows `stream` but not `stdin_stream`.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OldExecRequest {
            argv: Vec<String>,
            #[serde(default)]
            stream: bool,
        }
        let serde_error = serde_json::from_str::<OldExecRequest>(
            r#"{"argv":["tar","-x"],"stdin_stream":true,"stream":true}"#,
        )
        .unwrap_err();
        let old = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: format!("bad params for exec: {serde_error}"),
        };
        assert!(old.is_stdin_stream_unsupported(), "{old}");
        assert!(!old.is_streaming_unsupported(), "{old}");
        let both = ClientError::Agent {
            code: ErrorCode::BadRequest,
            message: "bad params for exec: stdin and stdin_stream are exclusive".into(),
        };
        assert!(!both.is_stdin_stream_unsupported());
        let input = ClientError::Input {
            source: io::Error::other("disk on fire"),
        };
        assert!(
            input
                .to_string()
                .contains("reading the input to send to the guest failed"),
            "{input}"
        );
        assert!(!input.is_retryable());
    }

    #[test]
    fn refusal_message_explains_a_closed_connection() {
        let e = ClientError::HandshakeRefused {
            path: PathBuf::from("/v.sock"),
            port: 1024,
            reply: String::new(),
        };
        assert!(e.to_string().contains("connection closed"), "{e}");
        let e = ClientError::HandshakeRefused {
            path: PathBuf::from("/v.sock"),
            port: 1024,
            reply: "NO".into(),
        };
        assert!(e.to_string().contains("\"NO\""), "{e}");
    }
}
