//! The host network settings: bridge name and address, subnet, tap pool, DNS.
//! Each type checks its value while deserialising, so the TOML error already
//! carries the line of the bad value.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Deserialize;

pub(crate) const DEFAULT_BRIDGE_NAME: &str = "br-fc";
pub(crate) const DEFAULT_BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
pub(crate) const DEFAULT_CIDR: u8 = 24;
pub(crate) const DEFAULT_TAP_POOL_SIZE: u32 = 4;
pub(crate) const DEFAULT_DNS: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
/// Where the daemon's `.vm` DNS server listens (SPEC §8).
pub(crate) const DEFAULT_DNS_LISTEN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 42069);

/// Linux interface names are at most IFNAMSIZ - 1 = 15 bytes.
const MAX_IFNAME: usize = 15;
const MIN_PREFIX: i64 = 8;
const MAX_PREFIX: i64 = 32;
const MAX_TAP_POOL: i64 = 64;

/// The bridge banger owns. The `br-fc` prefix keeps banger's cleanup from
/// ever touching a bridge it did not create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct BridgeName(pub(crate) String);

impl TryFrom<String> for BridgeName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let prefixed = name == DEFAULT_BRIDGE_NAME
            || name
                .strip_prefix("br-fc-")
                .is_some_and(|suffix| !suffix.is_empty());
        if !prefixed {
            return Err(format!(
                "bridge name {name:?} must be \"br-fc\" or start with \"br-fc-\""
            ));
        }
        if name.len() > MAX_IFNAME {
            return Err(format!(
                "bridge name {name:?} is {} characters; Linux allows at most {MAX_IFNAME}",
                name.len()
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "bridge name {name:?} contains {bad:?}; use only a-z, 0-9 and -"
            ));
        }
        Ok(Self(name))
    }
}

/// Subnet prefix length of the bridge network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub(crate) struct CidrPrefix(pub(crate) u8);

impl TryFrom<i64> for CidrPrefix {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u8::try_from(n) {
            Ok(p) if (MIN_PREFIX..=MAX_PREFIX).contains(&n) => Ok(Self(p)),
            _ => Err(format!(
                "prefix length {n} is out of range {MIN_PREFIX}..={MAX_PREFIX}"
            )),
        }
    }
}

/// How many tap devices the helper keeps ready for fast VM starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub(crate) struct TapPoolSize(pub(crate) u32);

impl TryFrom<i64> for TapPoolSize {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(size) if n <= MAX_TAP_POOL => Ok(Self(size)),
            _ => Err(format!(
                "tap pool size {n} is out of range 0..={MAX_TAP_POOL}"
            )),
        }
    }
}

/// An IPv4 address written as a string, with an error that shows the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Ipv4(pub(crate) Ipv4Addr);

impl TryFrom<String> for Ipv4 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Self)
            .map_err(|_| format!("{s:?} is not an IPv4 address (write e.g. \"172.16.0.1\")"))
    }
}

/// An IPv4 socket address written as a string, e.g. "127.0.0.1:42069".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ListenAddr(pub(crate) SocketAddrV4);

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Self).map_err(|_| {
            format!("{s:?} is not an IPv4 address and port (write e.g. \"127.0.0.1:42069\")")
        })
    }
}

fn netmask(prefix: u8) -> u32 {
    // checked_shl: a /0 mask would shift by 32, which overflows.
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The bridge address must be a usable host address of its own subnet:
/// guests route through it, and neither the network nor the broadcast
/// address can be assigned to an interface meaningfully.
pub(crate) fn check_bridge_ip(ip: Ipv4Addr, prefix: u8) -> Result<(), String> {
    let mask = netmask(prefix);
    let bits = u32::from(ip);
    let network = Ipv4Addr::from(bits & mask);
    let broadcast = Ipv4Addr::from(bits | !mask);
    if ip == network {
        return Err(format!(
            "bridge_ip {ip} is the network address of {network}/{prefix}; use a host address such as {}",
            Ipv4Addr::from(u32::from(network).saturating_add(1))
        ));
    }
    if ip == broadcast {
        return Err(format!(
            "bridge_ip {ip} is the broadcast address of {network}/{prefix}; use a host address inside the subnet"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names() {
        let ok = |s: &str| BridgeName::try_from(s.to_owned()).is_ok();
        assert!(ok("br-fc"));
        assert!(ok("br-fc-2"));
        assert!(ok("br-fc-abcdefghi")); // 15 characters
        assert!(!ok("br-fc-abcdefghij")); // 16
        assert!(!ok("eth0"));
        assert!(!ok("br-fc-"));
        assert!(!ok("br-fcx"));
        assert!(!ok("br-fc-Dev"));
        assert!(!ok("br-fc-a_b"));
    }

    #[test]
    fn cidr_and_tap_pool_ranges() {
        assert!(CidrPrefix::try_from(7).is_err());
        assert_eq!(CidrPrefix::try_from(8).unwrap().0, 8);
        assert_eq!(CidrPrefix::try_from(32).unwrap().0, 32);
        assert!(CidrPrefix::try_from(33).is_err());
        assert!(CidrPrefix::try_from(-1).is_err());
        assert!(CidrPrefix::try_from(256 + 24).is_err());
        assert_eq!(TapPoolSize::try_from(0).unwrap().0, 0);
        assert_eq!(TapPoolSize::try_from(64).unwrap().0, 64);
        assert!(TapPoolSize::try_from(65).is_err());
        assert!(TapPoolSize::try_from(-1).is_err());
    }

    #[test]
    fn bridge_ip_must_be_a_host_address() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(check_bridge_ip(ip("172.16.0.1"), 24).is_ok());
        assert!(check_bridge_ip(ip("10.1.2.3"), 8).is_ok());
        let network = check_bridge_ip(ip("172.16.0.0"), 24).unwrap_err();
        assert!(
            network.contains("network address of 172.16.0.0/24"),
            "{network}"
        );
        let broadcast = check_bridge_ip(ip("172.16.0.255"), 24).unwrap_err();
        assert!(broadcast.contains("broadcast address"), "{broadcast}");
        assert!(check_bridge_ip(ip("172.16.0.1"), 32).is_err());
        assert!(check_bridge_ip(ip("172.16.0.1"), 31).is_err());
    }

    #[test]
    fn ipv4_values() {
        assert_eq!(Ipv4::try_from("1.1.1.1".to_owned()).unwrap().0, DEFAULT_DNS);
        let err = Ipv4::try_from("1.1.1".to_owned()).unwrap_err();
        assert!(err.contains("is not an IPv4 address"), "{err}");
    }
}
