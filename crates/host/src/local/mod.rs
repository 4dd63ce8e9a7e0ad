//! [`LocalHost`]: the privileged operations run in this process, for a
//! daemon that is root (development mode, SPEC §2). Each concern lives in
//! its own module; this one holds the configuration and the trait impl.

mod link;
mod nat;
mod resolver;
mod runner;
mod snapshot;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use nat::{IP_FORWARD_SYSCTL, NatBackend};
pub use runner::{Runner, SystemRunner};
pub use snapshot::device_mapper_status;

use crate::error::HostError;
use crate::ops::{HostOps, SnapshotDevice, SnapshotRequest};
use crate::validate::{BridgeName, GuestMac, Ipv4Cidr, TapName};

/// Host operations performed directly, through `ip`, `nft`/`iptables`,
/// `losetup`/`dmsetup` and `resolvectl`.
pub struct LocalHost {
    runner: Arc<dyn Runner>,
    nat_backend: NatBackend,
    ip_forward: PathBuf,
    forward_state: Option<PathBuf>,
    /// NAT and fence changes read the ruleset, then write it: one at a time, or two
    /// guests' updates could each decide from a stale listing (e.g. both
    /// think they remove the last guest).
    nat_lock: Mutex<()>,
}

impl LocalHost {
    /// Real commands; the NAT backend is chosen now, once (nftables when
    /// `nft` is installed, else iptables).
    pub fn new() -> Self {
        Self::with_nat_backend(NatBackend::detect())
    }

    /// Real commands with a fixed NAT backend.
    pub fn with_nat_backend(nat_backend: NatBackend) -> Self {
        Self::with_runner(Arc::new(SystemRunner), nat_backend)
    }

    /// Every command goes through `runner` (tests script it).
    pub fn with_runner(runner: Arc<dyn Runner>, nat_backend: NatBackend) -> Self {
        Self {
            runner,
            nat_backend,
            ip_forward: PathBuf::from(IP_FORWARD_SYSCTL),
            forward_state: None,
            nat_lock: Mutex::new(()),
        }
    }

    /// Where IPv4 forwarding is switched on (default [`IP_FORWARD_SYSCTL`]).
    pub fn with_ip_forward_sysctl(mut self, path: impl Into<PathBuf>) -> Self {
        self.ip_forward = path.into();
        self
    }

    /// Where the first NAT guest records IPv4 forwarding's previous value,
    /// which the removal of the last NAT guest puts back (a small file; its
    /// directory must exist). The daemon passes a path in its state
    /// directory, so a killed daemon's record is found by the next
    /// `remove_nat`. Without it, forwarding is switched on and left on.
    pub fn with_forwarding_state(mut self, path: impl Into<PathBuf>) -> Self {
        self.forward_state = Some(path.into());
        self
    }

    pub fn nat_backend(&self) -> NatBackend {
        self.nat_backend
    }

    fn nat_locked<T>(&self, f: impl FnOnce() -> Result<T, HostError>) -> Result<T, HostError> {
        // A panic while holding the lock leaves no half-written state here
        // (nft applies each change atomically; iptables is re-read each
        // time), so a poisoned lock is still usable.
        let _guard = self.nat_lock.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }
}

impl Default for LocalHost {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LocalHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHost")
            .field("nat_backend", &self.nat_backend)
            .field("ip_forward", &self.ip_forward)
            .field("forward_state", &self.forward_state)
            .finish_non_exhaustive()
    }
}

impl HostOps for LocalHost {
    fn ensure_bridge(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        link::ensure_bridge(&*self.runner, bridge, address)
    }

    fn delete_bridge(&self, bridge: &BridgeName) -> Result<(), HostError> {
        link::delete_bridge(&*self.runner, bridge)
    }

    fn create_tap(&self, tap: &TapName, owner_uid: u32) -> Result<(), HostError> {
        link::create_tap(&*self.runner, tap, owner_uid)
    }

    fn delete_tap(&self, tap: &TapName) -> Result<(), HostError> {
        link::delete_tap(&*self.runner, tap)
    }

    fn attach_tap(&self, tap: &TapName, bridge: &BridgeName) -> Result<(), HostError> {
        link::attach_tap(&*self.runner, tap, bridge)
    }

    fn list_taps(&self) -> Result<Vec<TapName>, HostError> {
        link::list_taps(&*self.runner)
    }

    fn add_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.nat_locked(|| {
            nat::add(
                &*self.runner,
                self.nat_backend,
                guest,
                bridge,
                &self.ip_forward,
                self.forward_state.as_deref(),
            )
        })
    }

    fn remove_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.nat_locked(|| {
            nat::remove(
                &*self.runner,
                self.nat_backend,
                guest,
                bridge,
                &self.ip_forward,
                self.forward_state.as_deref(),
            )
        })
    }

    fn ensure_bridge_fence(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        self.nat_locked(|| {
            nat::ensure_bridge_fence(&*self.runner, self.nat_backend, bridge, address)
        })
    }

    fn remove_bridge_fence(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.nat_locked(|| nat::remove_bridge_fence(&*self.runner, self.nat_backend, bridge))
    }

    fn fence_guest(&self, tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Result<(), HostError> {
        self.nat_locked(|| nat::fence_guest(&*self.runner, self.nat_backend, tap, guest, mac))
    }

    fn unfence_guest(&self, tap: &TapName) -> Result<(), HostError> {
        self.nat_locked(|| nat::unfence_guest(&*self.runner, self.nat_backend, tap))
    }

    fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotDevice, HostError> {
        snapshot::create(&*self.runner, request)
    }

    fn remove_snapshot(&self, device: &SnapshotDevice) -> Result<(), HostError> {
        snapshot::remove(&*self.runner, device)
    }

    fn route_resolver(&self, bridge: &BridgeName, dns: SocketAddrV4) -> Result<(), HostError> {
        resolver::route(&*self.runner, bridge, dns)
    }

    fn unroute_resolver(&self, bridge: &BridgeName) -> Result<(), HostError> {
        resolver::unroute(&*self.runner, bridge)
    }
}

#[cfg(test)]
mod tests {
    use super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    #[test]
    fn nat_uses_the_chosen_backend_and_switches_forwarding_on() {
        let dir = tempfile::tempdir().unwrap();
        let sysctl = dir.path().join("ip_forward");
        std::fs::write(&sysctl, "0\n").unwrap();
        let guest = Ipv4Addr::new(172, 16, 0, 2);
        let bridge = BridgeName::new("br-fc").unwrap();
        for (backend, program) in [
            (NatBackend::Nftables, "nft"),
            (NatBackend::Iptables, "iptables"),
        ] {
            let runner = Arc::new(ScriptedRunner::default());
            runner.on("nft -j", Reply::Out(r#"{"nftables": []}"#.into()));
            let host =
                LocalHost::with_runner(runner.clone(), backend).with_ip_forward_sysctl(&sysctl);
            assert_eq!(host.nat_backend(), backend);
            host.add_nat(guest, &bridge).unwrap();
            let argv = runner.argv();
            assert!(
                argv.iter().all(|a| a.starts_with(&format!("{program} "))),
                "{argv:?}"
            );
            assert!(
                argv.iter()
                    .any(|a| a.contains("masquerade") || a.contains("MASQUERADE")),
                "{argv:?}"
            );
        }
        assert_eq!(std::fs::read_to_string(&sysctl).unwrap(), "1\n");
    }
}
