//! The taps this daemon made, written down before each is created and
//! struck off after it is deleted (a resource is recorded before it
//! exists): a tap the pool made, or one taken for a VM and not yet in the
//! VM's record when the daemon died, is then known to be ours at the next
//! start, and removed there. Taps of anyone else on the host, another
//! banger's included, are never named here and never touched.
//!
//! [`LedgeredHost`] wraps the real host operations; the ledger is a small
//! text file (one tap a line) in the state directory, rewritten atomically.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use banger_host::{
    BridgeName, GuestMac, HostError, HostOps, Ipv4Cidr, SnapshotDevice, SnapshotRequest, TapName,
};

/// Where the daemon writes down the taps it makes.
pub fn ledger_path(paths: &banger_config::Paths) -> PathBuf {
    paths.state_dir.join("taps")
}

pub struct LedgeredHost {
    inner: Arc<dyn HostOps>,
    ledger: Ledger,
}

impl LedgeredHost {
    pub fn new(inner: Arc<dyn HostOps>, path: PathBuf) -> LedgeredHost {
        LedgeredHost {
            inner,
            ledger: Ledger {
                path,
                lock: Mutex::new(()),
            },
        }
    }
}

/// The taps in the ledger at `path`.
pub fn recorded(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

struct Ledger {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Ledger {
    fn change(&self, tap: &TapName, add: bool) -> Result<(), HostError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut taps = recorded(&self.path);
        let changed = if add {
            taps.insert(tap.as_str().to_owned())
        } else {
            taps.remove(tap.as_str())
        };
        if !changed {
            return Ok(());
        }
        let text: String = taps.iter().map(|t| format!("{t}\n")).collect();
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|source| HostError::StateFile {
            action: "update the ledger of taps",
            path: self.path.clone(),
            source,
        })
    }
}

impl HostOps for LedgeredHost {
    fn create_tap(&self, tap: &TapName, owner_uid: u32) -> Result<(), HostError> {
        self.ledger.change(tap, true)?;
        self.inner.create_tap(tap, owner_uid)
    }

    fn delete_tap(&self, tap: &TapName) -> Result<(), HostError> {
        self.inner.delete_tap(tap)?;
        self.ledger.change(tap, false)
    }

    fn ensure_bridge(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        self.inner.ensure_bridge(bridge, address)
    }
    fn delete_bridge(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.delete_bridge(bridge)
    }
    fn attach_tap(&self, tap: &TapName, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.attach_tap(tap, bridge)
    }
    fn list_taps(&self) -> Result<Vec<TapName>, HostError> {
        self.inner.list_taps()
    }
    fn add_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.add_nat(guest, bridge)
    }
    fn remove_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.remove_nat(guest, bridge)
    }
    fn ensure_bridge_fence(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        self.inner.ensure_bridge_fence(bridge, address)
    }
    fn remove_bridge_fence(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.remove_bridge_fence(bridge)
    }
    fn fence_guest(&self, tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Result<(), HostError> {
        self.inner.fence_guest(tap, guest, mac)
    }
    fn unfence_guest(&self, tap: &TapName) -> Result<(), HostError> {
        self.inner.unfence_guest(tap)
    }
    fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotDevice, HostError> {
        self.inner.create_snapshot(request)
    }
    fn remove_snapshot(&self, device: &SnapshotDevice) -> Result<(), HostError> {
        self.inner.remove_snapshot(device)
    }
    fn route_resolver(&self, bridge: &BridgeName, dns: SocketAddrV4) -> Result<(), HostError> {
        self.inner.route_resolver(bridge, dns)
    }
    fn unroute_resolver(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.inner.unroute_resolver(bridge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_host::RecordingHost;

    #[test]
    fn a_tap_is_in_the_ledger_before_it_exists_and_leaves_after_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taps");
        let fake = Arc::new(RecordingHost::new());
        let host = LedgeredHost::new(fake.clone(), path.clone());
        let tap = TapName::new("fctap3").unwrap();
        fake.fail_next(banger_host::OpKind::CreateTap);
        assert!(host.create_tap(&tap, 0).is_err());
        assert!(
            recorded(&path).contains("fctap3"),
            "named before the attempt, so a crash during it leaves it known"
        );
        host.create_tap(&tap, 0).unwrap();
        assert!(fake.state().taps.contains_key(&tap));
        fake.fail_next(banger_host::OpKind::DeleteTap);
        assert!(host.delete_tap(&tap).is_err());
        assert!(
            recorded(&path).contains("fctap3"),
            "still there: still ours"
        );
        host.delete_tap(&tap).unwrap();
        assert!(recorded(&path).is_empty());
    }
}
