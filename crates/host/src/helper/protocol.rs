//! The root helper's wire protocol: one JSON line each way per connection.
//! The owner daemon sends a [`HelperRequest`]; the helper answers one
//! [`HelperReply`] and closes. Every argument is a validated type, so a
//! request that deserialises is already well-formed; the helper then checks
//! what only it can (its managed roots, its owner).

use serde::{Deserialize, Serialize};

use super::image_build::ImageBuildRequest;
use crate::ops::{PrivOp, SnapshotDevice};
use crate::validate::TapName;

/// Where an installed helper listens (SPEC §2).
pub const HELPER_SOCKET: &str = "/run/banger-root/bangerd-root.sock";
/// The environment variable naming another helper socket (development and
/// tests); the daemon and `banger update` both read it.
pub const HELPER_SOCKET_ENV: &str = "BANGER_ROOT_HELPER_SOCKET";

/// The helper socket `HELPER_SOCKET_ENV` names, else the installed one.
pub fn helper_socket_path() -> std::path::PathBuf {
    std::env::var_os(HELPER_SOCKET_ENV)
        .filter(|s| !s.is_empty())
        .map_or_else(|| HELPER_SOCKET.into(), Into::into)
}

/// Bumped on any incompatible change of the two messages.
pub const HELPER_PROTOCOL: u32 = 1;
/// The longest line either side reads; a request or reply is a few hundred
/// bytes, a tap list at most a few KiB.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest operation id the helper logs.
pub const MAX_OP_ID: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperRequest {
    pub version: u32,
    /// The owner daemon's operation id, logged by the helper with the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    pub call: HelperCall,
}

/// What to do: a privileged operation, or the one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperCall {
    Op(PrivOp),
    ListTaps,
    /// Build an image into the owner's store (minutes, not milliseconds).
    BuildImage(ImageBuildRequest),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperReply {
    Done,
    /// The image build finished; `built` is false when it was up to date.
    Built {
        built: bool,
    },
    Taps(Vec<TapName>),
    Snapshot(SnapshotDevice),
    /// Not attempted: who asked or what was asked is not allowed.
    Refused {
        message: String,
    },
    /// Attempted, and the host operation failed.
    Failed {
        message: String,
    },
    /// [`crate::HostError::FenceUnavailable`], kept typed.
    FenceUnavailable {
        what: String,
        reason: String,
    },
}

/// Whether `op_id` is safe to log as it is: short, and only letters,
/// digits, `-` and `_` (the daemon mints `op-<hex>`).
pub fn valid_op_id(op_id: &str) -> bool {
    !op_id.is_empty()
        && op_id.len() <= MAX_OP_ID
        && op_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::BridgeName;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let request = HelperRequest {
            version: HELPER_PROTOCOL,
            op_id: Some("op-1f".into()),
            call: HelperCall::Op(PrivOp::DeleteBridge {
                bridge: BridgeName::new("br-fc").unwrap(),
            }),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<HelperRequest>(&line).unwrap(),
            request
        );
        let extra = line.replacen('{', "{\"shell\":\"rm -rf /\",", 1);
        assert!(serde_json::from_str::<HelperRequest>(&extra).is_err());
    }

    #[test]
    fn a_bridge_that_is_not_bangers_does_not_even_parse() {
        let line = r#"{"version":1,"call":{"op":{"op":"delete_bridge","bridge":"eth0"}}}"#;
        let err = serde_json::from_str::<HelperRequest>(line).unwrap_err();
        assert!(err.to_string().contains("eth0"), "{err}");
    }

    #[test]
    fn op_ids_are_checked_before_they_are_logged() {
        assert!(valid_op_id("op-6af2e411a24d"));
        for bad in ["", "op 1", "op\n1", "op-\u{1b}[2J", &"x".repeat(65)] {
            assert!(!valid_op_id(bad), "{bad:?}");
        }
    }
}
