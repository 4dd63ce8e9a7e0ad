//! Opt-in NAT, per guest (SPEC §8): forwarding and masquerade for that
//! guest's address only, in objects banger owns (its `ip banger` nftables
//! table, or its `BANGER-*` iptables chains), each rule tagged with the
//! comment `banger-nat <ip>`. Rules banger did not create are never
//! modified; removal selects rules by that comment.
//!
//! Caveat of the nftables backend: every base chain on the forward hook
//! sees the packet, so an accept in banger's table does not override a drop
//! in another firewall's table. Such hosts need the guest subnet allowed in
//! that firewall (`banger doctor` can point it out); the iptables backend
//! jumps to its chain from the top of FORWARD instead.

mod iptables;
mod nft;

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::runner::Runner;
use crate::error::HostError;
use crate::validate::BridgeName;

/// The sysctl NAT needs. It is per network namespace.
pub const IP_FORWARD_SYSCTL: &str = "/proc/sys/net/ipv4/ip_forward";

/// Which firewall tool holds banger's NAT rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatBackend {
    Nftables,
    Iptables,
}

impl NatBackend {
    /// nftables when `nft` is installed, else iptables. A host with neither
    /// gets nftables, whose "nft not found" error says what to install.
    pub fn detect() -> Self {
        if banger_sys::find_program("nft").is_none()
            && banger_sys::find_program("iptables").is_some()
        {
            NatBackend::Iptables
        } else {
            NatBackend::Nftables
        }
    }
}

impl fmt::Display for NatBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatBackend::Nftables => "nftables",
            NatBackend::Iptables => "iptables",
        })
    }
}

/// The comment that marks every rule of one guest.
fn comment(guest: Ipv4Addr) -> String {
    format!("banger-nat {guest}")
}

pub(crate) fn add(
    runner: &dyn Runner,
    backend: NatBackend,
    guest: Ipv4Addr,
    bridge: &BridgeName,
    ip_forward: &Path,
) -> Result<(), HostError> {
    // First: rules that cannot forward anything would be a silent failure.
    enable_ip_forward(ip_forward, guest)?;
    match backend {
        NatBackend::Nftables => nft::add(runner, guest, bridge),
        NatBackend::Iptables => iptables::add(runner, guest, bridge),
    }
}

pub(crate) fn remove(
    runner: &dyn Runner,
    backend: NatBackend,
    guest: Ipv4Addr,
    bridge: &BridgeName,
) -> Result<(), HostError> {
    match backend {
        NatBackend::Nftables => nft::remove(runner, guest),
        NatBackend::Iptables => iptables::remove(runner, guest, bridge),
    }
}

/// Turns IPv4 forwarding on; it is never turned off again, not even when
/// the last guest's NAT goes: banger cannot know whether it was on before
/// for another reason (containers, a VPN, a router setup), and turning it
/// off would silently break whatever relies on it.
fn enable_ip_forward(path: &Path, guest: Ipv4Addr) -> Result<(), HostError> {
    let fail = |source: io::Error| HostError::IpForward {
        path: path.to_owned(),
        guest,
        source,
    };
    if std::fs::read_to_string(path).map_err(fail)?.trim() == "1" {
        return Ok(());
    }
    tracing::info!(sysctl = %path.display(), "enabling IPv4 forwarding for NAT");
    std::fs::write(path, "1\n").map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_is_switched_on_and_left_on() {
        let dir = tempfile::tempdir().unwrap();
        let sysctl = dir.path().join("ip_forward");
        std::fs::write(&sysctl, "0\n").unwrap();
        let guest = Ipv4Addr::new(172, 16, 0, 2);
        enable_ip_forward(&sysctl, guest).unwrap();
        assert_eq!(std::fs::read_to_string(&sysctl).unwrap(), "1\n");
        enable_ip_forward(&sysctl, guest).unwrap();
        assert_eq!(std::fs::read_to_string(&sysctl).unwrap(), "1\n");
    }

    #[test]
    fn an_unwritable_sysctl_is_a_typed_error() {
        let err = enable_ip_forward(
            Path::new("/nonexistent/ip_forward"),
            Ipv4Addr::new(10, 0, 0, 2),
        )
        .unwrap_err();
        assert!(matches!(err, HostError::IpForward { .. }));
        assert!(
            err.to_string().contains("10.0.0.2")
                && err.to_string().contains("/nonexistent/ip_forward")
        );
    }
}
