//! Parameters and results of the small methods: `health`, `ports`,
//! `identity`, `freeze`, `thaw` and `poweroff`.

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
/// writes at most five files).
pub const MAX_IDENTITY_WRITTEN: usize = 16;

/// The longest guest path the client accepts in an answer (`PATH_MAX`).
pub const MAX_GUEST_PATH_BYTES: usize = 4096;

/// How a frozen agent's `failed` answer to `exec` and `ports` begins;
/// [`ClientError::is_frozen`](crate::ClientError::is_frozen) looks for it.
pub const FROZEN_REFUSAL: &str = "the guest was restored from a snapshot and waits for its \
     identity refresh (a new RNG seed and clock) before it runs anything";

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
    /// The agent refuses `exec` and `ports` until an `identity` with a new
    /// RNG seed and clock (or a `thaw`): `freeze` came before a snapshot,
    /// and this guest may be a copy restored from it. An agent older than
    /// the field leaves it out, which means `false`.
    #[serde(default)]
    pub frozen: bool,
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
///
/// The parts after `host_key` refresh what every copy of a snapshot shares
/// with its parent: the machine id, the NIC's MAC and address, the state
/// of the kernel's random number generator and the clock.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// 32 lowercase hex digits, written to `/etc/machine-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// A new MAC and IPv4 address for the NIC, applied at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkIdentity>,
    /// Padded base64 of [`MIN_ENTROPY_BYTES`]..=[`MAX_ENTROPY_BYTES`] bytes
    /// from the host's RNG: mixed into the guest kernel's pool, which then
    /// reseeds its CRNG from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<String>,
    /// The host's `CLOCK_REALTIME` in nanoseconds since the epoch; the
    /// guest's clock is stepped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_ns: Option<u64>,
}

// The seed must never end up in a log line through `{:?}`: a copy's RNG
// state is its parent's plus these bytes.
impl fmt::Debug for IdentityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRequest")
            .field("hostname", &self.hostname)
            .field("authorized_keys", &self.authorized_keys)
            .field("host_key", &self.host_key)
            .field("machine_id", &self.machine_id)
            .field("network", &self.network)
            .field("entropy", &self.entropy.as_ref().map(|_| "<redacted>"))
            .field("realtime_ns", &self.realtime_ns)
            .finish()
    }
}

/// The fewest bytes of `identity`'s `entropy` (a 256-bit seed).
pub const MIN_ENTROPY_BYTES: usize = 32;

/// The most bytes of `identity`'s `entropy`.
pub const MAX_ENTROPY_BYTES: usize = 512;

/// The NIC's new identity in `identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkIdentity {
    /// The interface (`eth0`): 1 to 15 of `A-Z a-z 0-9 _ . -`.
    pub iface: String,
    /// A unicast MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The IPv4 address and prefix length, `a.b.c.d/prefix`.
    pub address: String,
    /// The IPv4 default gateway, inside `address`'s subnet.
    pub gateway: String,
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
    /// `/etc/machine-id` was written.
    #[serde(default)]
    pub machine_id_set: bool,
    /// The NIC got its new MAC, address and default route.
    #[serde(default)]
    pub network_set: bool,
    /// The entropy went into the kernel's pool and its CRNG was reseeded.
    #[serde(default)]
    pub reseeded: bool,
    /// The guest's clock was stepped to `realtime_ns`.
    #[serde(default)]
    pub clock_stepped: bool,
}

/// The empty result (`{}`) of methods that only acknowledge, like
/// `poweroff`, `freeze` and `thaw`.
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
    fn identity_debug_hides_the_entropy() {
        let request = IdentityRequest {
            entropy: Some("U0VDUkVU".into()),
            realtime_ns: Some(7),
            ..IdentityRequest::default()
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("U0VDUkVU"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("realtime_ns: Some(7)"));
        assert!(format!("{:?}", IdentityRequest::default()).contains("entropy: None"));
    }

    #[test]
    fn new_identity_parts_stay_off_the_wire_unless_given() {
        let old = IdentityRequest {
            hostname: Some("dev".into()),
            ..IdentityRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            serde_json::json!({"hostname": "dev"})
        );
        let refresh = IdentityRequest {
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            network: Some(NetworkIdentity {
                iface: "eth0".into(),
                mac: "06:00:ac:10:00:03".into(),
                address: "172.16.0.3/24".into(),
                gateway: "172.16.0.1".into(),
            }),
            entropy: Some("AAAA".into()),
            realtime_ns: Some(1_700_000_000_000_000_000),
            ..IdentityRequest::default()
        };
        let value = serde_json::to_value(&refresh).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "machine_id": "0123456789abcdef0123456789abcdef",
                "network": {"iface": "eth0", "mac": "06:00:ac:10:00:03",
                            "address": "172.16.0.3/24", "gateway": "172.16.0.1"},
                "entropy": "AAAA",
                "realtime_ns": 1_700_000_000_000_000_000u64,
            })
        );
        assert_eq!(
            serde_json::from_value::<IdentityRequest>(value).unwrap(),
            refresh
        );
        let extra = serde_json::json!({"network": {"iface": "eth0", "mac": "", "address": "",
                                                   "gateway": "", "mtu": 1500}});
        assert!(serde_json::from_value::<IdentityRequest>(extra).is_err());
    }

    #[test]
    fn an_older_agents_results_decode_with_the_new_flags_false() {
        let identity: IdentityResult = serde_json::from_str(
            r#"{"written":["/etc/hostname"],"hostname_set":true,"sshd_reloaded":false}"#,
        )
        .unwrap();
        assert!(identity.hostname_set);
        assert!(!identity.machine_id_set && !identity.network_set);
        assert!(!identity.reseeded && !identity.clock_stepped);
        let health: HealthResult = serde_json::from_str(
            r#"{"agent":"0.1.0","protocol":1,"hostname":"dev","uptime_s":1.0,"boot_id":"b"}"#,
        )
        .unwrap();
        assert!(!health.frozen);
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
