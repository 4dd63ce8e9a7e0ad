//! Privileged host operations (SPEC §2, §4): everything that needs root goes
//! through the [`HostOps`] trait, whose arguments are validated types. Today
//! the daemon runs them in-process when it is root ([`LocalHost`]); the root
//! helper will serve the same calls over its socket, so choosing between the
//! two is a wiring decision. [`RecordingHost`] is the in-memory fake other
//! crates test against.
#![forbid(unsafe_code)]

mod error;
mod fake;
pub mod helper;
mod local;
mod op_kind;
mod ops;
mod validate;

pub use error::HostError;
pub use fake::{FakeState, FakeTap, RecordingHost};
pub use local::{
    IP_FORWARD_SYSCTL, LocalHost, NatBackend, Runner, SystemRunner, device_mapper_status,
};
pub use ops::{HostOps, OpKind, PrivOp, SnapshotDevice, SnapshotRequest, UnknownOpKind};
pub use validate::{
    BridgeName, CidrProblem, DmName, ExecProblem, GuestMac, Ipv4Cidr, ManagedPath, ManagedRoots,
    PathProblem, TapName, ValidationError, parse_ipv4, validate_executable,
};
