//! Opt-in NAT, per guest (SPEC §8): forwarding and masquerade for that
//! guest's address only, in objects banger owns (its `ip banger` nftables
//! table, or its `BANGER-*` iptables chains), each rule tagged with the
//! comment `banger-nat <ip>`. Rules banger did not create are never
//! modified; removal selects rules by that comment.
//!
//! The guest fence (SPEC §12) lives in the same objects (see `fence.rs`
//! for nftables; the iptables backend has the bridge's input/forward part
//! only), and IPv4 forwarding is on only while a NAT guest needs it
//! (`forward.rs`).
//!
//! Caveat of the nftables backend: every base chain on the forward hook
//! sees the packet, so an accept in banger's table does not override a drop
//! in another firewall's table. Such hosts need the guest subnet allowed in
//! that firewall (`banger doctor` can point it out); the iptables backend
//! jumps to its chain from the top of FORWARD instead.

mod fence;
mod forward;
mod iptables;
mod nft;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::runner::Runner;
use crate::error::HostError;
use crate::validate::{BridgeName, GuestMac, Ipv4Cidr, TapName};

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
    forward_state: Option<&Path>,
) -> Result<(), HostError> {
    // First: rules that cannot forward anything would be a silent failure.
    forward::acquire(ip_forward, forward_state, guest)?;
    match backend {
        NatBackend::Nftables => nft::add(runner, guest, bridge),
        NatBackend::Iptables => iptables::add(runner, guest, bridge),
    }
}

/// Removes the guest's rules; when no NAT guest is left (whether or not
/// this one still had rules), forwarding gets its recorded value back.
pub(crate) fn remove(
    runner: &dyn Runner,
    backend: NatBackend,
    guest: Ipv4Addr,
    bridge: &BridgeName,
    ip_forward: &Path,
    forward_state: Option<&Path>,
) -> Result<(), HostError> {
    let others = match backend {
        NatBackend::Nftables => nft::remove(runner, guest)?,
        NatBackend::Iptables => iptables::remove(runner, guest, bridge)?,
    };
    if others {
        Ok(())
    } else {
        forward::release(ip_forward, forward_state)
    }
}

pub(crate) fn ensure_bridge_fence(
    runner: &dyn Runner,
    backend: NatBackend,
    bridge: &BridgeName,
    address: Ipv4Cidr,
) -> Result<(), HostError> {
    match backend {
        NatBackend::Nftables => fence::ensure_bridge(runner, bridge, address),
        NatBackend::Iptables => iptables::ensure_fence(runner, bridge, address),
    }
}

pub(crate) fn remove_bridge_fence(
    runner: &dyn Runner,
    backend: NatBackend,
    bridge: &BridgeName,
) -> Result<(), HostError> {
    match backend {
        NatBackend::Nftables => fence::remove_bridge(runner, bridge),
        NatBackend::Iptables => iptables::remove_fence(runner, bridge),
    }
}

/// The per-guest source checks: nftables only (its bridge family; ebtables
/// is not used), so the iptables backend refuses with a typed error.
pub(crate) fn fence_guest(
    runner: &dyn Runner,
    backend: NatBackend,
    tap: &TapName,
    guest: Ipv4Addr,
    mac: GuestMac,
) -> Result<(), HostError> {
    match backend {
        NatBackend::Nftables => fence::fence_guest(runner, tap, guest, mac),
        NatBackend::Iptables => Err(HostError::FenceUnavailable {
            what: format!("guest {guest} on {tap}"),
            reason: "the per-guest source checks need nftables' bridge family, and this \
                     host uses the iptables backend (no `nft`); install nftables"
                .to_owned(),
        }),
    }
}

pub(crate) fn unfence_guest(
    runner: &dyn Runner,
    backend: NatBackend,
    tap: &TapName,
) -> Result<(), HostError> {
    match backend {
        NatBackend::Nftables => fence::unfence_guest(runner, tap),
        // The iptables backend never installs guest rules.
        NatBackend::Iptables => Ok(()),
    }
}
