//! IPv4 addresses and networks. banger's guest network is IPv4 only (SPEC
//! §4): an IPv6 value is rejected with a message saying so, rather than a
//! generic parse error.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// Why an address or network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrProblem {
    #[error("banger's guest network is IPv4 only")]
    Ipv6,
    #[error("expected four decimal numbers 0-255 separated by dots")]
    BadAddress,
    #[error("missing the /prefix")]
    MissingPrefix,
    #[error("the prefix must be a number without leading zeros")]
    BadPrefix,
    #[error("prefix /{0} is outside /8 to /32")]
    PrefixOutOfRange(u8),
}

/// Parses a bare IPv4 address (a guest IP), rejecting IPv6 explicitly.
pub fn parse_ipv4(input: &str) -> Result<Ipv4Addr, ValidationError> {
    parse_addr(input).map_err(|problem| ValidationError::Ipv4 {
        input: input.to_owned(),
        problem,
    })
}

fn parse_addr(s: &str) -> Result<Ipv4Addr, CidrProblem> {
    // std's parser is strict: exactly four octets, no leading zeros (which
    // other tools would read as octal).
    Ipv4Addr::from_str(s).map_err(|_| {
        if Ipv6Addr::from_str(s).is_ok() {
            CidrProblem::Ipv6
        } else {
            CidrProblem::BadAddress
        }
    })
}

/// An address with its network prefix, e.g. the bridge's `172.16.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    pub const MIN_PREFIX: u8 = 8;
    pub const MAX_PREFIX: u8 = 32;

    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, ValidationError> {
        Self::checked(addr, prefix).map_err(|problem| ValidationError::Cidr {
            input: format!("{addr}/{prefix}"),
            problem,
        })
    }

    fn checked(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrProblem> {
        if (Self::MIN_PREFIX..=Self::MAX_PREFIX).contains(&prefix) {
            Ok(Self { addr, prefix })
        } else {
            Err(CidrProblem::PrefixOutOfRange(prefix))
        }
    }

    fn parse(s: &str) -> Result<Self, CidrProblem> {
        let Some((addr, prefix)) = s.split_once('/') else {
            // Say "IPv4 only" for a bare IPv6 address too.
            parse_addr(s)?;
            return Err(CidrProblem::MissingPrefix);
        };
        let addr = parse_addr(addr)?;
        let canonical = !prefix.is_empty()
            && prefix.len() <= 2
            && prefix.bytes().all(|b| b.is_ascii_digit())
            && !(prefix.len() > 1 && prefix.starts_with('0'));
        if !canonical {
            return Err(CidrProblem::BadPrefix);
        }
        let prefix = prefix.parse::<u8>().map_err(|_| CidrProblem::BadPrefix)?;
        Self::checked(addr, prefix)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    fn mask(&self) -> u32 {
        // prefix is 8..=32, so the shift is 0..=24 and never overflows.
        u32::MAX << (32 - u32::from(self.prefix))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).map_err(|problem| ValidationError::Cidr {
            input: s.to_owned(),
            problem,
        })
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cidr(s: &str) -> Result<Ipv4Cidr, ValidationError> {
        s.parse()
    }

    #[test]
    fn prefix_must_be_8_to_32() {
        assert!(cidr("10.0.0.1/7").is_err());
        assert!(cidr("10.0.0.1/33").is_err());
        assert!(cidr("10.0.0.1/8").is_ok());
        assert!(cidr("10.0.0.1/32").is_ok());
        assert!(Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 7).is_err());
        assert!(Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33).is_err());
        let msg = cidr("10.0.0.1/33").unwrap_err().to_string();
        assert!(
            msg.contains("10.0.0.1/33") && msg.contains("/8 to /32"),
            "{msg}"
        );
    }

    #[test]
    fn ipv6_is_rejected_as_ipv6() {
        for input in ["fd00::1/64", "fd00::1", "::1/128"] {
            let err = cidr(input).unwrap_err();
            assert!(
                matches!(
                    &err,
                    ValidationError::Cidr {
                        problem: CidrProblem::Ipv6,
                        ..
                    }
                ),
                "{input}: {err:?}"
            );
            assert!(err.to_string().contains("IPv4 only"), "{err}");
        }
        let err = parse_ipv4("fd00::2").unwrap_err();
        assert!(err.to_string().contains("IPv4 only"), "{err}");
        assert_eq!(
            parse_ipv4("172.16.0.2").unwrap(),
            Ipv4Addr::new(172, 16, 0, 2)
        );
        assert!(matches!(
            parse_ipv4("172.16.0"),
            Err(ValidationError::Ipv4 {
                problem: CidrProblem::BadAddress,
                ..
            })
        ));
    }

    #[test]
    fn malformed_networks_are_rejected() {
        for input in [
            "10.0.0.1",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "10.0.0.1/08",
            "10.0.0.01/8",
            "10.0.0.1/24/1",
            " 10.0.0.1/24",
        ] {
            assert!(cidr(input).is_err(), "{input}");
        }
    }

    #[test]
    fn helpers_compute_the_network() {
        let c = cidr("172.16.5.9/22").unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(172, 16, 5, 9));
        assert_eq!(c.prefix(), 22);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 252, 0));
        assert_eq!(c.network(), Ipv4Addr::new(172, 16, 4, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(172, 16, 7, 255));
        assert!(c.contains(Ipv4Addr::new(172, 16, 4, 0)));
        assert!(c.contains(Ipv4Addr::new(172, 16, 7, 255)));
        assert!(!c.contains(Ipv4Addr::new(172, 16, 8, 0)));
        assert!(!c.contains(Ipv4Addr::new(172, 16, 3, 255)));
        let host = cidr("10.1.2.3/32").unwrap();
        assert_eq!(
            (host.network(), host.broadcast()),
            (host.addr(), host.addr())
        );
        let wide = cidr("10.200.2.3/8").unwrap();
        assert_eq!(
            (wide.network(), wide.broadcast()),
            (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 255, 255, 255))
        );
    }

    /// The accept rule written independently: four dot-separated decimal
    /// octets without leading zeros, then `/` and a canonical 8..=32.
    fn decimal(s: &str, max: u32) -> bool {
        !s.is_empty()
            && s.len() <= 3
            && s.chars().all(|c| c.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
            && s.parse::<u32>().is_ok_and(|n| n <= max)
    }

    fn addr_rule(s: &str) -> bool {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 4 && parts.iter().all(|p| decimal(p, 255))
    }

    fn cidr_rule(s: &str) -> bool {
        match s.split('/').collect::<Vec<_>>()[..] {
            [a, p] => addr_rule(a) && decimal(p, 32) && p.parse::<u32>().is_ok_and(|n| n >= 8),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn cidrs_follow_the_rule(s in prop_oneof![
            // Octets and prefixes around the edges: leading zeros, 25x,
            // one- to three-digit prefixes.
            "((1?[0-9]?[0-9]|2[0-5][0-9])\\.){3}(1?[0-9]?[0-9]|2[0-5][0-9])(/(0?[0-9]|[1-3][0-9]|[0-9]{3}|\\+8)?)?",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{0,3})?",
            "[0-9a-f:]{0,12}/[0-9]{1,3}",
            any::<String>(),
        ]) {
            let parsed = cidr(&s);
            prop_assert_eq!(parsed.is_ok(), cidr_rule(&s), "{:?}", s);
            if let Ok(c) = parsed {
                prop_assert_eq!(c.to_string(), s.clone());
                let json = serde_json::to_string(&c).unwrap();
                prop_assert_eq!(serde_json::from_str::<Ipv4Cidr>(&json).unwrap(), c);
                prop_assert!(c.contains(c.addr()) && c.contains(c.network()) && c.contains(c.broadcast()));
            } else {
                let json = serde_json::to_string(&s).unwrap();
                prop_assert!(serde_json::from_str::<Ipv4Cidr>(&json).is_err());
            }
        }

        #[test]
        fn bare_addresses_follow_the_rule(s in prop_oneof![
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            any::<String>(),
        ]) {
            prop_assert_eq!(parse_ipv4(&s).is_ok(), addr_rule(&s), "{:?}", s);
        }

        #[test]
        fn any_ipv6_is_refused_as_ipv6(a in any::<Ipv6Addr>(), p in 0u8..=128) {
            let err = parse_ipv4(&a.to_string()).unwrap_err();
            prop_assert!(err.to_string().contains("IPv4 only"));
            let err = cidr(&format!("{a}/{p}")).unwrap_err();
            prop_assert!(err.to_string().contains("IPv4 only"));
        }
    }
}
