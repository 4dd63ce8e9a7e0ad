//! Why an `identity` request is malformed: shared by the checks in
//! `identity` (names, keys) and `refresh` (machine-id, network, entropy,
//! clock), below both.

use thiserror::Error;

use crate::protocol::{MAX_ENTROPY_BYTES, MIN_ENTROPY_BYTES};

/// Why an `identity` request is malformed (`bad_request`).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidIdentity {
    #[error(
        "nothing to change: give hostname, authorized_keys, host_key, machine_id, network, \
         entropy or realtime_ns"
    )]
    Empty,
    #[error("hostname {0:?} is not a valid host name (labels of a-z, 0-9, '-', at most 253 bytes)")]
    Hostname(String),
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("host_key.public is not an ssh-ed25519 public key")]
    PublicKey,
    #[error("host_key.private is not an OpenSSH private key")]
    PrivateKey,
    #[error("machine_id {0:?} is not 32 lowercase hex digits (not all zero)")]
    MachineId(String),
    #[error(
        "network.iface {0:?} is not an interface name (1 to 15 of A-Z, a-z, 0-9, '_', '.', '-')"
    )]
    Iface(String),
    #[error("network.mac {0:?} is not a unicast MAC address like 02:00:ac:10:00:02")]
    Mac(String),
    #[error("network.address {0:?} is not a host's IPv4 address and prefix, a.b.c.d/1..32")]
    Address(String),
    #[error("network.gateway {0:?} is not a host's IPv4 address")]
    Gateway(String),
    #[error("network.gateway {gateway} is not another host of network.address {address}")]
    GatewayOutsideSubnet { gateway: String, address: String },
    #[error("entropy is not padded base64: {0}")]
    EntropyEncoding(String),
    #[error(
        "entropy is {0} bytes; {MIN_ENTROPY_BYTES} to {MAX_ENTROPY_BYTES} from the host's RNG are needed"
    )]
    EntropyLength(usize),
    #[error(
        "realtime_ns {0} is before 2020: it must be the host's clock in nanoseconds since the epoch"
    )]
    RealtimeNs(u64),
}
