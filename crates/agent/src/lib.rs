//! The banger guest agent: one static binary that is the init of the
//! initramfs (`init`), the init of the minimal image (`guest-init`) and the
//! vsock service the host talks to (`service`).
//!
//! The wire protocol ([`protocol`]), its framing ([`wire`]) and the
//! host-side client ([`client`]) live in `banger-agent-proto`, which the
//! host uses without this crate; see `PROTOCOL.md` next to this crate for
//! the protocol itself.
//!
//! Modules that make Linux syscalls are compiled on Linux only (the guest is
//! always Linux, and so is every host banger supports); the pure parsers
//! build anywhere.
#![forbid(unsafe_code)]

pub mod boot_config;
pub mod cmdline;
pub mod fsutil;
pub mod log;
pub mod mode;
pub mod modules;
pub mod mountinfo;
pub mod procnet;

#[cfg(target_os = "linux")]
pub mod guest_init;
#[cfg(target_os = "linux")]
pub mod halt;
#[cfg(target_os = "linux")]
pub mod init;
#[cfg(target_os = "linux")]
pub mod mount_spec;
#[cfg(target_os = "linux")]
pub mod network;
#[cfg(target_os = "linux")]
pub mod run_cmd;
#[cfg(target_os = "linux")]
pub mod service;
#[cfg(target_os = "linux")]
pub mod signals;
#[cfg(target_os = "linux")]
pub mod workdisk;

// The protocol, its framing and the host-side client live in
// `banger-agent-proto`, which host code (daemon, CLI) uses directly; they
// are re-exported so the agent's own modules (and the Firecracker
// stand-in) name them as before.
pub use banger_agent_proto::{AGENT_PORT, PROTOCOL_VERSION, base64, client, protocol, wire};
pub use banger_agent_proto::{AgentClient, ClientError};

/// The agent's version, reported by `health` and `banger-agent version`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The search path given to every program the agent starts. The kernel
/// starts PID 1 without `PATH`, so nothing would be found otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
