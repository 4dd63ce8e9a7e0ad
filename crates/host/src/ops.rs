//! The interface: one method per privileged operation, each taking validated
//! arguments. [`PrivOp`] names the same calls as data, for logs, the
//! recording fake and (later) the root helper's wire protocol.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::HostError;
pub use crate::op_kind::{OpKind, UnknownOpKind};
use crate::validate::{BridgeName, DmName, GuestMac, Ipv4Cidr, ManagedPath, TapName};

/// A copy-on-write block device over a read-only base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// The device-mapper name to create (`banger-<vm id>`).
    pub name: DmName,
    /// The shared read-only image (attached read-only).
    pub base: ManagedPath,
    /// A sparse file receiving the VM's writes; created by the caller.
    pub cow: ManagedPath,
}

/// What [`HostOps::create_snapshot`] set up. Every field is needed for
/// teardown and is stored in the VM's durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDevice {
    pub name: DmName,
    /// `/dev/mapper/<name>`.
    pub device: PathBuf,
    pub base_loop: PathBuf,
    pub cow_loop: PathBuf,
}

/// Every privileged call as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PrivOp {
    EnsureBridge {
        bridge: BridgeName,
        address: Ipv4Cidr,
    },
    DeleteBridge {
        bridge: BridgeName,
    },
    CreateTap {
        tap: TapName,
        owner_uid: u32,
    },
    DeleteTap {
        tap: TapName,
    },
    AttachTap {
        tap: TapName,
        bridge: BridgeName,
    },
    AddNat {
        guest: Ipv4Addr,
        bridge: BridgeName,
    },
    RemoveNat {
        guest: Ipv4Addr,
        bridge: BridgeName,
    },
    EnsureBridgeFence {
        bridge: BridgeName,
        address: Ipv4Cidr,
    },
    RemoveBridgeFence {
        bridge: BridgeName,
    },
    FenceGuest {
        tap: TapName,
        guest: Ipv4Addr,
        mac: GuestMac,
    },
    UnfenceGuest {
        tap: TapName,
    },
    CreateSnapshot {
        request: SnapshotRequest,
    },
    RemoveSnapshot {
        device: SnapshotDevice,
    },
    RouteResolver {
        bridge: BridgeName,
        dns: SocketAddrV4,
    },
    UnrouteResolver {
        bridge: BridgeName,
    },
}

/// Privileged host operations. Every removal is idempotent: removing what is
/// already gone succeeds, so teardown can always be re-run from the durable
/// record. Implementations never touch objects banger did not create.
pub trait HostOps: Send + Sync {
    /// Creates the bridge if missing, gives it `address` and brings it up.
    fn ensure_bridge(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError>;
    fn delete_bridge(&self, bridge: &BridgeName) -> Result<(), HostError>;
    /// A persistent tap the VMM (running as `owner_uid`) may open.
    fn create_tap(&self, tap: &TapName, owner_uid: u32) -> Result<(), HostError>;
    fn delete_tap(&self, tap: &TapName) -> Result<(), HostError>;
    /// Enslaves the tap to the bridge and brings it up.
    fn attach_tap(&self, tap: &TapName, bridge: &BridgeName) -> Result<(), HostError>;
    /// Taps that exist on the host with banger's name prefix.
    fn list_taps(&self) -> Result<Vec<TapName>, HostError>;
    /// Forwarding and masquerade for this guest only, in banger's own
    /// nftables table (or iptables chains when `nft` is missing). IPv4
    /// forwarding is switched on; with a forwarding state file configured
    /// (`LocalHost::with_forwarding_state`) its previous value is recorded
    /// there first, and put back when the last NAT guest goes.
    fn add_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError>;
    /// Removes this guest's NAT rules. When no NAT guest is left (also when
    /// this one was already gone, e.g. after a crash), IPv4 forwarding gets
    /// back the value recorded by the first `add_nat`.
    fn remove_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError>;
    /// The bridge-wide part of the fence (SPEC §12), once per bridge after
    /// [`HostOps::ensure_bridge`] and before any guest boots: from the
    /// bridge, the host accepts only packets to `address`'s IP (and replies
    /// to its own connections); nothing from or to the bridge is forwarded
    /// except what a NAT guest's rules accept; frames from banger's taps
    /// (`fctap*`) are dropped unless a [`HostOps::fence_guest`] rule lets
    /// them through. Idempotent; a changed address replaces the rules.
    fn ensure_bridge_fence(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError>;
    /// Removes the bridge's fence (with the bridge, at teardown). When no
    /// bridge fence is left, the per-guest rules go too. Idempotent.
    fn remove_bridge_fence(&self, bridge: &BridgeName) -> Result<(), HostError>;
    /// Lets frames entering from `tap` through only when they come from
    /// `mac` and carry IPv4 from `guest` or ARP for `guest` (a probe's
    /// 0.0.0.0 included); everything else (other addresses, IPv6, other
    /// ethertypes) is dropped. Call it before the VMM starts. Replaces the
    /// tap's earlier rules and any other tap's rules claiming `guest` or
    /// `mac`. Fails when no bridge fence exists (the rules would have no
    /// effect), and on the iptables backend (needs nftables' bridge family).
    fn fence_guest(&self, tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Result<(), HostError>;
    /// Removes the tap's rules: frames from it are dropped again. Idempotent.
    fn unfence_guest(&self, tap: &TapName) -> Result<(), HostError>;
    fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotDevice, HostError>;
    fn remove_snapshot(&self, device: &SnapshotDevice) -> Result<(), HostError>;
    /// Routes the `vm` domain to banger's DNS server (systemd-resolved).
    fn route_resolver(&self, bridge: &BridgeName, dns: SocketAddrV4) -> Result<(), HostError>;
    fn unroute_resolver(&self, bridge: &BridgeName) -> Result<(), HostError>;
}

impl PrivOp {
    pub fn kind(&self) -> OpKind {
        match self {
            PrivOp::EnsureBridge { .. } => OpKind::EnsureBridge,
            PrivOp::DeleteBridge { .. } => OpKind::DeleteBridge,
            PrivOp::CreateTap { .. } => OpKind::CreateTap,
            PrivOp::DeleteTap { .. } => OpKind::DeleteTap,
            PrivOp::AttachTap { .. } => OpKind::AttachTap,
            PrivOp::AddNat { .. } => OpKind::AddNat,
            PrivOp::RemoveNat { .. } => OpKind::RemoveNat,
            PrivOp::EnsureBridgeFence { .. } => OpKind::EnsureBridgeFence,
            PrivOp::RemoveBridgeFence { .. } => OpKind::RemoveBridgeFence,
            PrivOp::FenceGuest { .. } => OpKind::FenceGuest,
            PrivOp::UnfenceGuest { .. } => OpKind::UnfenceGuest,
            PrivOp::CreateSnapshot { .. } => OpKind::CreateSnapshot,
            PrivOp::RemoveSnapshot { .. } => OpKind::RemoveSnapshot,
            PrivOp::RouteResolver { .. } => OpKind::RouteResolver,
            PrivOp::UnrouteResolver { .. } => OpKind::UnrouteResolver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_kinds_round_trip_their_names_and_match_serde() {
        for kind in OpKind::ALL {
            assert_eq!(kind.as_str().parse::<OpKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert!("CreateTap".parse::<OpKind>().is_err());
    }

    #[test]
    fn priv_op_tags_are_their_kinds() {
        let op = PrivOp::DeleteTap {
            tap: TapName::numbered(1),
        };
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(json["op"], op.kind().as_str());
    }
}
