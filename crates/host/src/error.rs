//! The one error type of host operations. Every variant names the object
//! and, through its source, the argv and stderr of the program that failed.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use banger_sys::ProcessError;

use crate::op_kind::OpKind;
use crate::validate::{BridgeName, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// A program failed; the source carries its argv, exit status and stderr.
    #[error("cannot {action} ({hint})")]
    Command {
        action: String,
        hint: &'static str,
        #[source]
        source: ProcessError,
    },

    #[error("`{argv}` printed {found:?} where banger expected {expected}")]
    UnexpectedOutput {
        argv: String,
        expected: &'static str,
        found: String,
    },

    #[error("cannot read the JSON printed by `{argv}`")]
    Json {
        argv: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "a network link named {name} exists but is a {found}, not a {wanted}; \
         banger will not touch it: delete it (`ip link delete {name}`) or configure another name"
    )]
    LinkKind {
        name: String,
        wanted: &'static str,
        found: String,
    },

    #[error(
        "cannot enable IPv4 forwarding, which NAT for guest {guest} needs: writing 1 to {} failed",
        path.display()
    )]
    IpForward {
        path: PathBuf,
        guest: Ipv4Addr,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot {action} {} (how banger puts IPv4 forwarding back when the last NAT guest goes)",
        path.display()
    )]
    ForwardingState {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A file the caller keeps about host resources (the daemon's ledger of
    /// the taps it made) could not be written.
    #[error("cannot {action} {}", path.display())]
    StateFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The guest fence needs nftables: its source checks live in a `bridge`
    /// family table, which the iptables backend has no equivalent for
    /// (ebtables is not used).
    #[error("cannot fence {what}: {reason}")]
    FenceUnavailable { what: String, reason: String },

    /// Not fatal for the daemon: guests work, only `<name>.vm` lookups from
    /// the host need the resolver configured by hand.
    #[error(
        "cannot route the .vm domain to banger's DNS server over {bridge}: resolvectl \
         (systemd-resolved) is not installed; configure dnsmasq or resolv.conf as the DNS \
         guide in banger's documentation describes"
    )]
    ResolverUnavailable { bridge: BridgeName },

    /// A failure of [`crate::RecordingHost`]: injected with `fail_next`, or
    /// what the real host would refuse (attaching a missing tap, ...).
    #[error("{op} failed in the recording host: {reason}")]
    Simulated { op: OpKind, reason: String },

    /// A failure around the host call rather than in it, e.g. the blocking
    /// task that ran it panicked.
    #[error("internal error: {0}")]
    Internal(String),

    #[error("banger's root helper {} {op}: {message}", if *refused { "refused" } else { "could not" })]
    Helper {
        op: OpKind,
        refused: bool,
        message: String,
    },

    #[error(
        "cannot reach banger's root helper at {}; is it running? (`sudo banger system install --owner $USER` sets it up)",
        socket.display()
    )]
    HelperUnreachable {
        socket: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
