//! [`RecordingHost`]: an in-memory [`HostOps`] for other crates' tests. It
//! records every call, keeps the state the real host would have (so
//! `list_taps` and idempotent removals behave alike), refuses what the real
//! host would refuse, and can be told to fail the next call of a kind to
//! exercise callers' unwinding.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::error::HostError;
use crate::ops::{HostOps, OpKind, PrivOp, SnapshotDevice, SnapshotRequest};
use crate::validate::{BridgeName, DmName, GuestMac, Ipv4Cidr, TapName};

/// A simulated tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTap {
    pub owner_uid: u32,
    /// The bridge it is attached to, if any.
    pub bridge: Option<BridgeName>,
}

/// What exists on the simulated host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeState {
    pub bridges: BTreeMap<BridgeName, Ipv4Cidr>,
    pub taps: BTreeMap<TapName, FakeTap>,
    /// Guests with NAT, and the bridge it was set up for.
    pub nat: BTreeMap<Ipv4Addr, BridgeName>,
    /// Bridges with a fence, and the address guests may reach.
    pub bridge_fences: BTreeMap<BridgeName, Ipv4Cidr>,
    /// Fenced taps: the only IP and MAC each may send from.
    pub guest_fences: BTreeMap<TapName, (Ipv4Addr, GuestMac)>,
    pub snapshots: BTreeMap<DmName, SnapshotDevice>,
    pub resolver_routes: BTreeMap<BridgeName, SocketAddrV4>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<PrivOp>,
    state: FakeState,
    failures: HashMap<OpKind, usize>,
    resolver_missing: bool,
    next_loop: u32,
}

#[derive(Default)]
pub struct RecordingHost {
    inner: Mutex<Inner>,
}

impl RecordingHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order, including calls that failed (they were
    /// attempted). `list_taps` changes nothing and is not recorded.
    pub fn calls(&self) -> Vec<PrivOp> {
        self.lock().calls.clone()
    }

    /// Returns the calls so far and forgets them.
    pub fn take_calls(&self) -> Vec<PrivOp> {
        std::mem::take(&mut self.lock().calls)
    }

    pub fn state(&self) -> FakeState {
        self.lock().state.clone()
    }

    /// The next call of `kind` fails with [`HostError::Simulated`] and
    /// changes nothing. Calling this twice fails the next two such calls.
    pub fn fail_next(&self, kind: OpKind) {
        *self.lock().failures.entry(kind).or_default() += 1;
    }

    /// Simulates a host without systemd-resolved: `route_resolver` returns
    /// [`HostError::ResolverUnavailable`].
    pub fn set_resolver_available(&self, available: bool) {
        self.lock().resolver_missing = !available;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked mid-call leaves consistent state: every
        // change below is a single map operation.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `op`, applies a pending injected failure, else runs `apply`.
    fn call<T>(
        &self,
        op: PrivOp,
        apply: impl FnOnce(&mut Inner) -> Result<T, String>,
    ) -> Result<T, HostError> {
        let kind = op.kind();
        let mut inner = self.lock();
        inner.calls.push(op);
        if take_failure(&mut inner, kind) {
            return Err(simulated(kind, "injected by RecordingHost::fail_next"));
        }
        apply(&mut inner).map_err(|reason| simulated(kind, reason))
    }
}

fn take_failure(inner: &mut Inner, kind: OpKind) -> bool {
    match inner.failures.get_mut(&kind) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

fn simulated(op: OpKind, reason: impl Into<String>) -> HostError {
    HostError::Simulated {
        op,
        reason: reason.into(),
    }
}

impl HostOps for RecordingHost {
    fn ensure_bridge(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        let op = PrivOp::EnsureBridge {
            bridge: bridge.clone(),
            address,
        };
        self.call(op, |i| {
            i.state.bridges.insert(bridge.clone(), address);
            Ok(())
        })
    }

    fn delete_bridge(&self, bridge: &BridgeName) -> Result<(), HostError> {
        let op = PrivOp::DeleteBridge {
            bridge: bridge.clone(),
        };
        self.call(op, |i| {
            if i.state.bridges.remove(bridge).is_some() {
                // Like the kernel: ports are released, per-link DNS goes.
                for tap in i.state.taps.values_mut() {
                    if tap.bridge.as_ref() == Some(bridge) {
                        tap.bridge = None;
                    }
                }
                i.state.resolver_routes.remove(bridge);
            }
            Ok(())
        })
    }

    fn create_tap(&self, tap: &TapName, owner_uid: u32) -> Result<(), HostError> {
        let op = PrivOp::CreateTap {
            tap: tap.clone(),
            owner_uid,
        };
        self.call(op, |i| {
            // An existing tap is kept as it is, as LocalHost does.
            i.state.taps.entry(tap.clone()).or_insert(FakeTap {
                owner_uid,
                bridge: None,
            });
            Ok(())
        })
    }

    fn delete_tap(&self, tap: &TapName) -> Result<(), HostError> {
        self.call(PrivOp::DeleteTap { tap: tap.clone() }, |i| {
            i.state.taps.remove(tap);
            Ok(())
        })
    }

    fn attach_tap(&self, tap: &TapName, bridge: &BridgeName) -> Result<(), HostError> {
        let op = PrivOp::AttachTap {
            tap: tap.clone(),
            bridge: bridge.clone(),
        };
        self.call(op, |i| {
            if !i.state.bridges.contains_key(bridge) {
                return Err(format!("bridge {bridge} does not exist"));
            }
            let t = i
                .state
                .taps
                .get_mut(tap)
                .ok_or_else(|| format!("tap {tap} does not exist"))?;
            t.bridge = Some(bridge.clone());
            Ok(())
        })
    }

    fn list_taps(&self) -> Result<Vec<TapName>, HostError> {
        let mut inner = self.lock();
        if take_failure(&mut inner, OpKind::ListTaps) {
            return Err(simulated(
                OpKind::ListTaps,
                "injected by RecordingHost::fail_next",
            ));
        }
        let mut taps: Vec<TapName> = inner.state.taps.keys().cloned().collect();
        taps.sort_by(|a, b| a.number().cmp(&b.number()).then_with(|| a.cmp(b)));
        Ok(taps)
    }

    fn add_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        let op = PrivOp::AddNat {
            guest,
            bridge: bridge.clone(),
        };
        self.call(op, |i| {
            i.state.nat.insert(guest, bridge.clone());
            Ok(())
        })
    }

    fn remove_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        let op = PrivOp::RemoveNat {
            guest,
            bridge: bridge.clone(),
        };
        self.call(op, |i| {
            i.state.nat.remove(&guest);
            Ok(())
        })
    }

    fn ensure_bridge_fence(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        let op = PrivOp::EnsureBridgeFence {
            bridge: bridge.clone(),
            address,
        };
        self.call(op, |i| {
            i.state.bridge_fences.insert(bridge.clone(), address);
            Ok(())
        })
    }

    fn remove_bridge_fence(&self, bridge: &BridgeName) -> Result<(), HostError> {
        let op = PrivOp::RemoveBridgeFence {
            bridge: bridge.clone(),
        };
        self.call(op, |i| {
            i.state.bridge_fences.remove(bridge);
            // Like LocalHost: guest rules go with the last bridge fence.
            if i.state.bridge_fences.is_empty() {
                i.state.guest_fences.clear();
            }
            Ok(())
        })
    }

    fn fence_guest(&self, tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Result<(), HostError> {
        let op = PrivOp::FenceGuest {
            tap: tap.clone(),
            guest,
            mac,
        };
        self.call(op, |i| {
            if i.state.bridge_fences.is_empty() {
                return Err("no bridge is fenced: ensure_bridge_fence must run first".to_owned());
            }
            // Like LocalHost: the newest claim on an address or MAC wins.
            i.state
                .guest_fences
                .retain(|t, (ip, m)| t != tap && *ip != guest && *m != mac);
            i.state.guest_fences.insert(tap.clone(), (guest, mac));
            Ok(())
        })
    }

    fn unfence_guest(&self, tap: &TapName) -> Result<(), HostError> {
        self.call(PrivOp::UnfenceGuest { tap: tap.clone() }, |i| {
            i.state.guest_fences.remove(tap);
            Ok(())
        })
    }

    fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotDevice, HostError> {
        let op = PrivOp::CreateSnapshot {
            request: request.clone(),
        };
        self.call(op, |i| {
            if i.state.snapshots.contains_key(&request.name) {
                return Err(format!("device {} already exists", request.name));
            }
            let mut next_loop = || {
                let lo = PathBuf::from(format!("/dev/loop{}", i.next_loop));
                i.next_loop += 1;
                lo
            };
            let device = SnapshotDevice {
                name: request.name.clone(),
                device: PathBuf::from("/dev/mapper").join(request.name.as_str()),
                base_loop: next_loop(),
                cow_loop: next_loop(),
            };
            i.state
                .snapshots
                .insert(request.name.clone(), device.clone());
            Ok(device)
        })
    }

    fn remove_snapshot(&self, device: &SnapshotDevice) -> Result<(), HostError> {
        let op = PrivOp::RemoveSnapshot {
            device: device.clone(),
        };
        self.call(op, |i| {
            i.state.snapshots.remove(&device.name);
            Ok(())
        })
    }

    fn route_resolver(&self, bridge: &BridgeName, dns: SocketAddrV4) -> Result<(), HostError> {
        let op = PrivOp::RouteResolver {
            bridge: bridge.clone(),
            dns,
        };
        {
            let mut inner = self.lock();
            if inner.resolver_missing {
                inner.calls.push(op);
                return Err(HostError::ResolverUnavailable {
                    bridge: bridge.clone(),
                });
            }
        }
        self.call(op, |i| {
            if !i.state.bridges.contains_key(bridge) {
                return Err(format!("bridge {bridge} does not exist"));
            }
            i.state.resolver_routes.insert(bridge.clone(), dns);
            Ok(())
        })
    }

    fn unroute_resolver(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.call(
            PrivOp::UnrouteResolver {
                bridge: bridge.clone(),
            },
            |i| {
                i.state.resolver_routes.remove(bridge);
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{ManagedPath, ManagedRoots};

    fn br() -> BridgeName {
        BridgeName::new("br-fc").unwrap()
    }

    fn tap(n: u32) -> TapName {
        TapName::numbered(n)
    }

    fn cidr() -> Ipv4Cidr {
        "172.16.0.1/24".parse().unwrap()
    }

    #[test]
    fn records_calls_and_tracks_taps_like_the_host() {
        let host = RecordingHost::new();
        host.ensure_bridge(&br(), cidr()).unwrap();
        for n in [10, 2, 3] {
            host.create_tap(&tap(n), 1000).unwrap();
            host.attach_tap(&tap(n), &br()).unwrap();
        }
        host.create_tap(&tap(2), 1000).unwrap();
        assert_eq!(host.list_taps().unwrap(), [tap(2), tap(3), tap(10)]);
        host.delete_tap(&tap(3)).unwrap();
        host.delete_tap(&tap(3)).unwrap();
        assert_eq!(host.list_taps().unwrap(), [tap(2), tap(10)]);
        assert_eq!(host.state().taps[&tap(2)].bridge, Some(br()));

        let calls = host.calls();
        assert_eq!(calls.len(), 1 + 6 + 1 + 2);
        assert_eq!(
            calls[0],
            PrivOp::EnsureBridge {
                bridge: br(),
                address: cidr()
            }
        );
        assert_eq!(calls.last(), Some(&PrivOp::DeleteTap { tap: tap(3) }));
        assert_eq!(host.take_calls().len(), 10);
        assert!(host.calls().is_empty());
    }

    #[test]
    fn deleting_the_bridge_releases_its_taps_and_routes() {
        let host = RecordingHost::new();
        host.ensure_bridge(&br(), cidr()).unwrap();
        host.create_tap(&tap(0), 0).unwrap();
        host.attach_tap(&tap(0), &br()).unwrap();
        host.route_resolver(&br(), "127.0.0.1:42069".parse().unwrap())
            .unwrap();
        host.delete_bridge(&br()).unwrap();
        host.delete_bridge(&br()).unwrap();
        let state = host.state();
        assert!(state.bridges.is_empty() && state.resolver_routes.is_empty());
        assert_eq!(state.taps[&tap(0)].bridge, None);
    }

    #[test]
    fn refuses_what_the_host_would_refuse() {
        let host = RecordingHost::new();
        host.create_tap(&tap(1), 0).unwrap();
        let err = host.attach_tap(&tap(1), &br()).unwrap_err();
        assert!(
            matches!(
                &err,
                HostError::Simulated {
                    op: OpKind::AttachTap,
                    ..
                }
            ),
            "{err:?}"
        );
        host.ensure_bridge(&br(), cidr()).unwrap();
        assert!(host.attach_tap(&tap(2), &br()).is_err());
        assert!(host.attach_tap(&tap(1), &br()).is_ok());
    }

    #[test]
    fn fail_next_fails_once_and_changes_nothing() {
        let host = RecordingHost::new();
        host.ensure_bridge(&br(), cidr()).unwrap();
        host.fail_next(OpKind::CreateTap);
        host.fail_next(OpKind::ListTaps);
        let err = host.create_tap(&tap(1), 0).unwrap_err();
        assert!(
            err.to_string().contains("create_tap") && err.to_string().contains("fail_next"),
            "{err}"
        );
        assert!(host.list_taps().is_err());
        assert!(
            host.list_taps().unwrap().is_empty(),
            "the failed create left nothing"
        );
        host.create_tap(&tap(1), 0).unwrap();
        assert_eq!(host.list_taps().unwrap(), [tap(1)]);
        let kinds: Vec<OpKind> = host.calls().iter().map(PrivOp::kind).collect();
        assert_eq!(
            kinds,
            [OpKind::EnsureBridge, OpKind::CreateTap, OpKind::CreateTap]
        );
    }

    #[test]
    fn nat_and_snapshots_are_idempotent_to_remove() {
        let host = RecordingHost::new();
        let guest = Ipv4Addr::new(172, 16, 0, 2);
        host.add_nat(guest, &br()).unwrap();
        host.add_nat(guest, &br()).unwrap();
        assert_eq!(host.state().nat.len(), 1);
        host.remove_nat(guest, &br()).unwrap();
        host.remove_nat(guest, &br()).unwrap();
        assert!(host.state().nat.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let roots = ManagedRoots::new([root.clone()]).unwrap();
        let request = SnapshotRequest {
            name: DmName::new("banger-a").unwrap(),
            base: ManagedPath::new(root.join("base"), &roots).unwrap(),
            cow: ManagedPath::new(root.join("cow"), &roots).unwrap(),
        };
        let dev = host.create_snapshot(&request).unwrap();
        assert_eq!(dev.device, PathBuf::from("/dev/mapper/banger-a"));
        assert_ne!(dev.base_loop, dev.cow_loop);
        assert!(host.create_snapshot(&request).is_err(), "the name is taken");
        host.remove_snapshot(&dev).unwrap();
        host.remove_snapshot(&dev).unwrap();
        assert!(host.state().snapshots.is_empty());
    }

    #[test]
    fn fences_need_the_bridge_fence_and_are_idempotent() {
        let host = RecordingHost::new();
        let ip = Ipv4Addr::new(172, 16, 0, 2);
        let mac = GuestMac::for_guest(ip);
        assert!(host.fence_guest(&tap(1), ip, mac).is_err());
        host.ensure_bridge_fence(&br(), cidr()).unwrap();
        host.ensure_bridge_fence(&br(), cidr()).unwrap();
        host.fence_guest(&tap(1), ip, mac).unwrap();
        host.fence_guest(&tap(1), ip, mac).unwrap();
        // The address moves to another tap: the old claim goes.
        host.fence_guest(&tap(2), ip, mac).unwrap();
        assert_eq!(
            host.state().guest_fences.into_iter().collect::<Vec<_>>(),
            [(tap(2), (ip, mac))]
        );
        host.unfence_guest(&tap(2)).unwrap();
        host.unfence_guest(&tap(2)).unwrap();
        host.fence_guest(&tap(3), ip, mac).unwrap();
        host.remove_bridge_fence(&br()).unwrap();
        host.remove_bridge_fence(&br()).unwrap();
        let state = host.state();
        assert!(state.bridge_fences.is_empty() && state.guest_fences.is_empty());
        assert_eq!(
            host.calls()[..2]
                .iter()
                .map(PrivOp::kind)
                .collect::<Vec<_>>(),
            [OpKind::FenceGuest, OpKind::EnsureBridgeFence]
        );
    }

    #[test]
    fn a_host_without_resolved_says_so() {
        let host = RecordingHost::new();
        host.ensure_bridge(&br(), cidr()).unwrap();
        host.set_resolver_available(false);
        let dns = "127.0.0.1:42069".parse().unwrap();
        assert!(matches!(
            host.route_resolver(&br(), dns),
            Err(HostError::ResolverUnavailable { .. })
        ));
        assert_eq!(
            host.calls().last().map(PrivOp::kind),
            Some(OpKind::RouteResolver)
        );
        host.set_resolver_available(true);
        host.route_resolver(&br(), dns).unwrap();
        assert_eq!(host.state().resolver_routes[&br()], dns);
        host.unroute_resolver(&br()).unwrap();
        host.unroute_resolver(&br()).unwrap();
    }
}
