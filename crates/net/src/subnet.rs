//! The guest subnet: the bridge holds one address, guests get the others.

use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error(
        "prefix length {0} is out of range 8..=30 (a guest subnet needs room for the bridge and guests)"
    )]
    Prefix(u8),
    #[error(
        "{bridge} is the network or broadcast address of {network}/{prefix}; give the bridge a host address"
    )]
    BridgeAddress {
        bridge: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
}

/// `bridge_ip/cidr` from config.toml, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestSubnet {
    bridge: Ipv4Addr,
    prefix: u8,
}

impl GuestSubnet {
    pub fn new(bridge: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        if !(8..=30).contains(&prefix) {
            return Err(SubnetError::Prefix(prefix));
        }
        let subnet = Self { bridge, prefix };
        if bridge == subnet.network() || bridge == subnet.broadcast() {
            return Err(SubnetError::BridgeAddress {
                bridge,
                network: subnet.network(),
                prefix,
            });
        }
        Ok(subnet)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    pub fn bridge(&self) -> Ipv4Addr {
        self.bridge
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.bridge) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.bridge) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Every address a guest may get, lowest first: never the network, the
    /// bridge or the broadcast address.
    pub fn guest_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let (first, last) = (
            u32::from(self.network()) + 1,
            u32::from(self.broadcast()) - 1,
        );
        let bridge = u32::from(self.bridge);
        (first..=last)
            .filter(move |ip| *ip != bridge)
            .map(Ipv4Addr::from)
    }
}

impl fmt::Display for GuestSubnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_subnet() {
        let s = GuestSubnet::new(Ipv4Addr::new(172, 16, 0, 1), 24).unwrap();
        assert_eq!(s.to_string(), "172.16.0.0/24");
        let all: Vec<Ipv4Addr> = s.guest_addresses().collect();
        assert_eq!(all.len(), 253);
        assert_eq!(all[0], Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(*all.last().unwrap(), Ipv4Addr::new(172, 16, 0, 254));
    }

    #[test]
    fn bridge_in_the_middle_is_skipped() {
        let s = GuestSubnet::new(Ipv4Addr::new(10, 0, 0, 5), 29).unwrap();
        let all: Vec<u8> = s.guest_addresses().map(|ip| ip.octets()[3]).collect();
        assert_eq!(all, [1, 2, 3, 4, 6]);
    }

    #[test]
    fn refuses_unusable_subnets() {
        assert_eq!(
            GuestSubnet::new(Ipv4Addr::new(10, 0, 0, 1), 31),
            Err(SubnetError::Prefix(31))
        );
        assert_eq!(
            GuestSubnet::new(Ipv4Addr::new(10, 0, 0, 1), 7),
            Err(SubnetError::Prefix(7))
        );
        assert!(matches!(
            GuestSubnet::new(Ipv4Addr::new(10, 0, 0, 0), 24),
            Err(SubnetError::BridgeAddress { .. })
        ));
        assert!(matches!(
            GuestSubnet::new(Ipv4Addr::new(10, 0, 0, 255), 24),
            Err(SubnetError::BridgeAddress { .. })
        ));
    }

    proptest! {
        #[test]
        fn guests_never_get_reserved_addresses(ip in any::<u32>(), prefix in 22u8..=30) {
            if let Ok(s) = GuestSubnet::new(Ipv4Addr::from(ip), prefix) {
                let all: Vec<Ipv4Addr> = s.guest_addresses().collect();
                prop_assert_eq!(all.len() as u64, (1u64 << (32 - prefix)) - 3);
                for g in all {
                    prop_assert!(s.contains(g));
                    prop_assert!(g != s.network() && g != s.broadcast() && g != s.bridge());
                }
            }
        }
    }
}
