//! What the host and the guest agent share: the agent's versioned protocol
//! ([`protocol`]), its line framing ([`wire`]), base64 ([`base64`]) and the
//! host-side client ([`client`]) that reaches the agent through the VMM's
//! hybrid-vsock socket. See `PROTOCOL.md` in `crates/agent`.
//!
//! The daemon and the CLI depend on this crate alone; the guest binary
//! (`banger-agent`: init, guest-init, the service) depends on it too, so
//! both sides compile against the same types. Nothing here is guest code:
//! no syscalls beyond Unix sockets, no vsock.
#![forbid(unsafe_code)]

pub mod base64;
pub mod client;
pub mod mux;
pub mod protocol;
pub mod wire;

pub use client::{AgentClient, ClientError};
pub use protocol::{AGENT_PORT, PROTOCOL_VERSION};
