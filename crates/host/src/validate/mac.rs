//! Guest MAC addresses. The fence (SPEC §12) lets a guest send only from its
//! own MAC, so the value that reaches a firewall rule must be one a guest
//! can legitimately own: a unicast, locally administered address.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// A guest's MAC address: six octets written `aa:bb:cc:dd:ee:ff` (either
/// case when parsed, lowercase when printed), unicast (bit 0 of the first
/// octet clear) and locally administered (bit 1 set), so it can be neither a
/// broadcast/multicast address nor a vendor's (a real NIC's) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GuestMac([u8; 6]);

impl GuestMac {
    pub fn new(octets: [u8; 6]) -> Result<Self, ValidationError> {
        if octets[0] & 0b01 == 0 && octets[0] & 0b10 != 0 {
            Ok(Self(octets))
        } else {
            Err(ValidationError::Mac {
                input: Self(octets).to_string(),
                problem: "not a unicast, locally administered address (the first octet's \
                          lowest bit must be 0 and the next bit 1, e.g. 02:...)",
            })
        }
    }

    /// The MAC banger gives the guest with `ip`: `02:fc:` followed by the
    /// address's four octets in hex (what the daemon writes into the VMM's
    /// configuration).
    pub fn for_guest(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Self([0x02, 0xfc, a, b, c, d])
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    fn parse(input: &str) -> Result<[u8; 6], &'static str> {
        let mut octets = [0u8; 6];
        let mut parts = input.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or("expected six octets separated by ':'")?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("every octet is exactly two hex digits");
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| "bad hex digit")?;
        }
        if parts.next().is_some() {
            return Err("expected six octets separated by ':'");
        }
        Ok(octets)
    }
}

impl FromStr for GuestMac {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let octets = Self::parse(s).map_err(|problem| ValidationError::Mac {
            input: s.to_owned(),
            problem,
        })?;
        Self::new(octets).map_err(|_| ValidationError::Mac {
            input: s.to_owned(),
            problem: "not a unicast, locally administered address (the first octet's \
                      lowest bit must be 0 and the next bit 1, e.g. 02:...)",
        })
    }
}

impl TryFrom<String> for GuestMac {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<GuestMac> for String {
    fn from(mac: GuestMac) -> String {
        mac.to_string()
    }
}

impl fmt::Display for GuestMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rule again, written independently: 17 chars, colons at fixed
    /// places, hex elsewhere, first octet's low bits `10`.
    fn mac_rule(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 17
            && (0..17).all(|i| {
                if i % 3 == 2 {
                    b[i] == b':'
                } else {
                    b[i].is_ascii_hexdigit()
                }
            })
            && u8::from_str_radix(&s[..2], 16).is_ok_and(|o| o % 4 == 2)
    }

    #[test]
    fn the_daemons_derivation_is_valid_and_matches() {
        let mac = GuestMac::for_guest(Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(mac.to_string(), "02:fc:ac:10:00:02");
        assert_eq!("02:FC:AC:10:00:02".parse::<GuestMac>().unwrap(), mac);
    }

    #[test]
    fn broadcast_multicast_and_vendor_addresses_are_refused() {
        for bad in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:16:3e:12:34:56",
            "33:33:00:00:00:01",
            "02:fc:ac:10:00",
            "02:fc:ac:10:00:02:03",
            "02-fc-ac-10-00-02",
            "2:fc:ac:10:0:2",
            "02:fc:ac:10:00:0g",
            "",
        ] {
            let err = bad.parse::<GuestMac>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(GuestMac::new([0x00, 1, 2, 3, 4, 5]).is_err());
        assert!(GuestMac::new([0x03, 1, 2, 3, 4, 5]).is_err());
    }

    proptest! {
        #[test]
        fn macs_follow_the_rule(s in prop_oneof![
            "[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}",
            "[0-9a-f:-]{15,19}",
            any::<String>(),
        ]) {
            let made = s.parse::<GuestMac>();
            prop_assert_eq!(made.is_ok(), mac_rule(&s), "{:?}", s);
            if let Ok(mac) = made {
                prop_assert_eq!(mac.to_string(), s.to_ascii_lowercase());
                let json = serde_json::to_string(&mac).unwrap();
                prop_assert_eq!(serde_json::from_str::<GuestMac>(&json).unwrap(), mac);
            } else {
                let json = serde_json::to_string(&s).unwrap();
                prop_assert!(serde_json::from_str::<GuestMac>(&json).is_err());
            }
        }

        #[test]
        fn every_guest_ip_derives_a_valid_mac(ip in any::<u32>()) {
            let mac = GuestMac::for_guest(Ipv4Addr::from(ip));
            prop_assert!(mac_rule(&mac.to_string()));
            prop_assert_eq!(mac.to_string().parse::<GuestMac>().unwrap(), mac);
        }
    }
}
