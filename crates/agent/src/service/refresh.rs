//! The parts of `identity` that every copy of a snapshot shares with its
//! parent and must make its own: the machine id, the NIC's MAC and
//! address, the kernel's RNG state and the clock. Checked and parsed here;
//! `identity::apply` decides which run (files always, the running kernel
//! only with `apply_live`).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_settime};
use thiserror::Error;

use super::invalid_identity::InvalidIdentity;
use crate::base64;
use crate::boot_config::NetConfig;
use crate::network::{self, NetworkError};
use crate::protocol::{IdentityRequest, MAX_ENTROPY_BYTES, MIN_ENTROPY_BYTES, NetworkIdentity};

/// Where entropy goes into the kernel's input pool.
const URANDOM: &str = "/dev/urandom";

/// 2020-01-01T00:00:00Z in nanoseconds: an earlier `realtime_ns` is a unit
/// mistake (seconds or milliseconds), never the host's clock.
pub const MIN_REALTIME_NS: u64 = 1_577_836_800 * 1_000_000_000;

/// Why applying a valid refresh to the running kernel failed.
#[derive(Debug, Error)]
pub enum RefreshError {
    #[error("cannot write the entropy to {URANDOM}: {0}")]
    WriteEntropy(io::Error),
    #[error("cannot reseed the kernel's CRNG (RNDRESEEDCRNG on {URANDOM}): {0}")]
    Reseed(io::Error),
    #[error("cannot step the clock to {ns} ns since the epoch: {errno}")]
    Clock { ns: u64, errno: nix::errno::Errno },
    #[error("cannot move the NIC to its new MAC and address: {0}")]
    Network(#[from] NetworkError),
}

/// The refresh parts of an `identity` request, checked and parsed.
#[derive(Default)]
pub struct Refresh<'a> {
    /// 32 lowercase hex digits.
    pub machine_id: Option<&'a str>,
    pub network: Option<Readdress>,
    /// The decoded seed (never logged).
    pub entropy: Option<Vec<u8>>,
    pub realtime_ns: Option<u64>,
}

/// A NIC's new MAC (lowercase) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readdress {
    pub net: NetConfig,
    pub mac: String,
}

impl Readdress {
    /// Moves the running NIC over, the way `network` configures it at boot.
    pub fn apply(&self) -> Result<(), RefreshError> {
        network::readdress(&self.net, &self.mac)?;
        Ok(())
    }
}

impl<'a> Refresh<'a> {
    /// Checks every refresh part `request` carries.
    pub fn parse(request: &'a IdentityRequest) -> Result<Refresh<'a>, InvalidIdentity> {
        if let Some(id) = &request.machine_id {
            if !valid_machine_id(id) {
                return Err(InvalidIdentity::MachineId(id.clone()));
            }
        }
        Ok(Refresh {
            machine_id: request.machine_id.as_deref(),
            network: request.network.as_ref().map(parse_network).transpose()?,
            entropy: request.entropy.as_deref().map(parse_entropy).transpose()?,
            realtime_ns: request
                .realtime_ns
                .map(|ns| {
                    if ns < MIN_REALTIME_NS {
                        Err(InvalidIdentity::RealtimeNs(ns))
                    } else {
                        Ok(ns)
                    }
                })
                .transpose()?,
        })
    }
}

/// What `/etc/machine-id` holds: 32 lowercase hex digits, not all zero
/// (systemd takes all zero for "none").
fn valid_machine_id(id: &str) -> bool {
    id.len() == 32
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

fn parse_network(network: &NetworkIdentity) -> Result<Readdress, InvalidIdentity> {
    if !valid_iface(&network.iface) {
        return Err(InvalidIdentity::Iface(network.iface.clone()));
    }
    let mac = parse_mac(&network.mac).ok_or_else(|| InvalidIdentity::Mac(network.mac.clone()))?;
    let (addr, prefix) = parse_address(&network.address)
        .ok_or_else(|| InvalidIdentity::Address(network.address.clone()))?;
    let gateway = network
        .gateway
        .parse::<Ipv4Addr>()
        .ok()
        .filter(|gw| usable_host(*gw))
        .ok_or_else(|| InvalidIdentity::Gateway(network.gateway.clone()))?;
    if gateway == addr || !same_subnet(addr, gateway, prefix) {
        return Err(InvalidIdentity::GatewayOutsideSubnet {
            gateway: network.gateway.clone(),
            address: network.address.clone(),
        });
    }
    Ok(Readdress {
        net: NetConfig {
            iface: network.iface.clone(),
            addr,
            prefix,
            gateway: Some(gateway),
            dns: Vec::new(),
        },
        mac,
    })
}

/// A Linux interface name as `identity` accepts it: 1 to 15 bytes of
/// `A-Z a-z 0-9 _ . -`, and not `.` or `..` (which the kernel refuses).
fn valid_iface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name != "."
        && name != ".."
}

/// `aa:bb:cc:dd:ee:ff` (either case), unicast and not all zero; lowercase.
fn parse_mac(text: &str) -> Option<String> {
    let octets: Vec<u8> = text
        .split(':')
        .map(|part| {
            (part.len() == 2 && part.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let unicast = octets.len() == 6 && octets[0] & 1 == 0 && octets.iter().any(|o| *o != 0);
    unicast.then(|| text.to_ascii_lowercase())
}

/// `a.b.c.d/prefix` with a prefix of 1..=32 and an address a host can have.
fn parse_address(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok().filter(|a| usable_host(*a))?;
    // Digits only: `u8::from_str` would also take a leading `+`.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
    Some((addr, prefix))
}

/// Not `0.0.0.0`, loopback, multicast or the broadcast address.
fn usable_host(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast())
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX << (32 - u32::from(prefix));
    u32::from(a) & mask == u32::from(b) & mask
}

fn parse_entropy(text: &str) -> Result<Vec<u8>, InvalidIdentity> {
    let seed = base64::decode(text).map_err(|e| InvalidIdentity::EntropyEncoding(e.to_string()))?;
    if !(MIN_ENTROPY_BYTES..=MAX_ENTROPY_BYTES).contains(&seed.len()) {
        return Err(InvalidIdentity::EntropyLength(seed.len()));
    }
    Ok(seed)
}

/// Mixes `seed` into the kernel's input pool through `/dev/urandom`, then
/// makes the CRNG reseed from that pool at once, so the next random bytes
/// anyone reads depend on the seed and not only on the state this guest
/// shares with every other copy of its snapshot. A failure is an error:
/// the host must not take the guest for refreshed.
pub fn reseed(seed: &[u8]) -> Result<(), RefreshError> {
    let mut urandom = OpenOptions::new()
        .write(true)
        .open(URANDOM)
        .map_err(RefreshError::WriteEntropy)?;
    urandom
        .write_all(seed)
        .map_err(RefreshError::WriteEntropy)?;
    banger_sys::ffi::reseed_crng(&urandom).map_err(RefreshError::Reseed)?;
    crate::info!(
        "mixed {} bytes from the host into the RNG and reseeded it",
        seed.len()
    );
    Ok(())
}

/// Steps `CLOCK_REALTIME` to `ns` since the epoch (a restored copy's clock
/// is where its parent's stood when the snapshot was taken).
pub fn step_clock(ns: u64) -> Result<(), RefreshError> {
    clock_settime(
        ClockId::CLOCK_REALTIME,
        TimeSpec::from_duration(Duration::from_nanos(ns)),
    )
    .map_err(|errno| RefreshError::Clock { ns, errno })?;
    crate::info!("clock stepped to {ns} ns since the epoch");
    Ok(())
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
