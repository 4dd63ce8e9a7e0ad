//! The agent's channel under QEMU: many byte streams over one virtio-serial
//! port, which survives a snapshot where `vhost-user-vsock` cannot (QEMU
//! refuses to migrate a VM that has one).
//!
//! The host end runs in a sidecar beside QEMU that serves the same
//! hybrid-vsock socket (`CONNECT <port>\n` → `OK <port>\n`) Firecracker
//! gives, so the host's client has one code path for both VMMs; the guest
//! end runs in the agent and hands each stream to the same server loop the
//! vsock listener feeds. ARCHITECTURE.md says why not the network or the
//! kernel's vhost-vsock.
//!
//! Sessions: the host starts one (SYNC with a fresh nonce, after [`PAD`]
//! zeros) when it connects and whenever the guest asks (SYNC_REQ, which the
//! guest repeats while it has none); the guest drops every stream it had and
//! acknowledges. That is what a restored VM goes through: its agent's old
//! streams belonged to a host process that no longer exists.

mod engine;
mod frame;

pub use engine::{MAX_STREAMS, Mux, OpenError, Role, WINDOW};
pub use frame::{Event, Frame, MAGIC, MAX_FRAME, MAX_PAYLOAD, PAD, Parser};

#[cfg(test)]
mod tests;
