//! Parameters and results of the small methods: `health`, `ports`,
//! `identity` and `poweroff`.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The longest agent version string the client accepts in `health`.
pub const MAX_AGENT_VERSION_BYTES: usize = 64;

/// The longest hostname the client accepts in `health` (a DNS name is at
/// most 253 bytes; the kernel's is at most 64, which lossy UTF-8 can triple).
pub const MAX_HOSTNAME_BYTES: usize = 253;

/// The longest boot id the client accepts in `health` (the kernel's is a
/// 36-character UUID).
pub const MAX_BOOT_ID_BYTES: usize = 64;

/// The most paths the client accepts in `identity`'s `written` (the agent
/// writes at most four files).
pub const MAX_IDENTITY_WRITTEN: usize = 16;

/// The longest guest path the client accepts in an answer (`PATH_MAX`).
pub const MAX_GUEST_PATH_BYTES: usize = 4096;

/// Result of `health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResult {
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub agent: String,
    /// The protocol version the agent speaks.
    pub protocol: u32,
    pub hostname: String,
    /// Seconds since the guest kernel booted (`/proc/uptime`).
    pub uptime_s: f64,
    /// The kernel's boot id; it changes on every boot, so the host can tell
    /// a rebooted guest from the one it knew.
    pub boot_id: String,
}

/// Transport of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One entry of `ports`: a TCP socket in LISTEN or an unconnected UDP
/// socket, IPv4 or IPv6.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListeningPort {
    pub proto: Proto,
    /// Local address (`0.0.0.0` / `::` for every address).
    pub addr: IpAddr,
    pub port: u16,
    /// The socket's inode, to match it with a process via `/proc/*/fd`.
    pub inode: u64,
}

/// Parameters of `identity`; each part is optional, at least one is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// Written to `/etc/hostname` and set with `sethostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The whole of `/root/.ssh/authorized_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_keys: Option<String>,
    /// The ed25519 host key pair; sshd is told to reload when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<HostKey>,
}

/// An OpenSSH ed25519 key pair in its file formats.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` ... (the whole file).
    pub private: String,
    /// `ssh-ed25519 AAAA... [comment]`.
    pub public: String,
}

// The private key must never end up in a log line through `{:?}`.
impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey")
            .field("private", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// Result of `identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityResult {
    /// Guest paths written, in order.
    pub written: Vec<String>,
    /// The running kernel hostname was changed.
    pub hostname_set: bool,
    /// A running sshd was sent SIGHUP to pick up a new host key.
    pub sshd_reloaded: bool,
}

/// The empty result (`{}`) of methods that only acknowledge, like `poweroff`.
/// Unknown fields are ignored, like in every result, so a later agent may
/// add some within protocol v1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn listening_port_has_the_documented_shape() {
        let port = ListeningPort {
            proto: Proto::Tcp,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 22,
            inode: 1234,
        };
        assert_eq!(
            serde_json::to_value(&port).unwrap(),
            serde_json::json!({"proto": "tcp", "addr": "0.0.0.0", "port": 22, "inode": 1234})
        );
        let v6 = ListeningPort {
            proto: Proto::Udp,
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 53,
            inode: 1,
        };
        let back: ListeningPort =
            serde_json::from_str(&serde_json::to_string(&v6).unwrap()).unwrap();
        assert_eq!(back, v6);
        assert_eq!(serde_json::to_value(&v6).unwrap()["addr"], "::1");
    }

    #[test]
    fn host_key_debug_hides_the_private_key() {
        let key = HostKey {
            private: "SECRET".into(),
            public: "ssh-ed25519 AAAA".into(),
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("SECRET"));
        assert!(shown.contains("ssh-ed25519 AAAA"));
    }
}
