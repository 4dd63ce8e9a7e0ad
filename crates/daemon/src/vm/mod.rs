//! The VM lifecycle (SPEC §6): create, start, stop, kill, delete and exec,
//! over a VMM driver (`banger-vmm`: Firecracker or QEMU, chosen once, see
//! [`backend`]), guest networking (`banger-net`),
//! disks (`banger-image`) and privileged host operations (`banger-host`).
//!
//! Every state change goes through the store's transition table. What a VM
//! got (address, vsock CID, tap, root disk) is in its durable record, so
//! teardown ([`teardown`]) works from the record alone and can be re-run;
//! the transient `handles.json` in the VM directory says which processes
//! run it. Operations on one VM are serialised by a per-VM lock.

mod backend;
mod boot;
mod create;
mod exec;
mod first_use;
mod logread;
mod manage;
mod observe;
mod ports;
mod power;
mod ready;
mod reconcile;
mod seed;
mod teardown;
mod workspace;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use banger_api::model::VmAction;
use banger_api::protocol::{ErrorCode, Vm, VmRuntime};
use banger_host::{BridgeName, HostOps, LocalHost};
use banger_image::cow::RootDisk;
use banger_net::tap_pool::TapPool;
use banger_vmm::VmHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;
use crate::dispatch::blocking::run;
use crate::error::DaemonError;

pub use create::create;
pub use exec::exec;
pub use manage::{prune, set};
pub use observe::{logs, stats};
pub use ports::ports;
pub use power::{delete, kill, restart, start, stop};
pub use reconcile::reconcile;
pub use workspace::{
    export as workspace_export, plan as workspace_plan, prepare as workspace_prepare,
};

/// The transient file naming the processes of a running VM.
const HANDLES_FILE: &str = "handles.json";
/// The work disk inside the VM directory.
const WORK_DISK_FILE: &str = "work.ext4";

/// The daemon's VM machinery, built lazily: the VMM is chosen and the
/// bridge and tap pool are set up at the first VM start.
pub struct Machinery {
    host: Option<Arc<dyn HostOps>>,
    vmm: OnceCell<Arc<backend::Chosen>>,
    taps: OnceCell<Arc<TapPool>>,
    locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Held while a name, id and vsock CID are chosen and recorded, so two
    /// creates never pick the same.
    alloc: Mutex<()>,
    shutdown: CancellationToken,
}

impl Machinery {
    /// Host operations run in-process when the daemon is root; the root
    /// helper that will serve them to an unprivileged daemon is not there yet.
    pub fn new(shutdown: CancellationToken) -> Machinery {
        let host: Option<Arc<dyn HostOps>> = if banger_sys::os::is_root() {
            Some(Arc::new(LocalHost::new()))
        } else {
            None
        };
        Machinery {
            host,
            vmm: OnceCell::new(),
            taps: OnceCell::new(),
            locks: StdMutex::new(HashMap::new()),
            alloc: Mutex::new(()),
            shutdown,
        }
    }

    fn host(&self) -> Result<Arc<dyn HostOps>, DaemonError> {
        self.host.clone().ok_or_else(|| {
            DaemonError::failed(
                ErrorCode::OperationFailed,
                "VMs need bridges, taps and NAT rules, which need root, and banger's root \
                 helper is not available yet: run bangerd as root (e.g. `sudo bangerd`)",
            )
        })
    }

    /// One lock per VM id: lifecycle operations on one VM run one at a time.
    async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// The VMM new VMs are launched with (`vmm` in config.toml), chosen
    /// once. A failure (e.g. `vmm = "firecracker"` without Firecracker) is
    /// not remembered: the next create or start tries again.
    async fn vmm(&self, daemon: &Daemon) -> Result<Arc<backend::Chosen>, DaemonError> {
        self.vmm
            .get_or_try_init(|| async {
                let (config, paths, uid) = (
                    daemon.config.clone(),
                    daemon.paths.clone(),
                    daemon.owner_uid,
                );
                let chosen = run(move || backend::discover(&config, &paths, uid)).await??;
                Ok::<_, DaemonError>(Arc::new(chosen))
            })
            .await
            .cloned()
    }

    /// The bridge (created if missing) and the warm tap pool with its
    /// refiller, at the first VM start. Taps an earlier daemon left behind
    /// join the pool unless a VM record holds them.
    async fn taps(&self, daemon: &Daemon) -> Result<Arc<TapPool>, DaemonError> {
        let host = self.host()?;
        self.taps
            .get_or_try_init(|| async {
                let bridge = bridge_name(daemon)?;
                let cidr = banger_host::Ipv4Cidr::new(
                    daemon.config.bridge_ip(),
                    daemon.config.cidr_prefix(),
                )
                .map_err(banger_host::HostError::from)?;
                let (h, b) = (host.clone(), bridge.clone());
                run(move || h.ensure_bridge(&b, cidr)).await??;
                let pool = TapPool::new(
                    host,
                    bridge,
                    daemon.owner_uid,
                    daemon.config.tap_pool_size() as usize,
                );
                let held: Vec<banger_host::TapName> = daemon
                    .store
                    .call(|s| s.list_vms())
                    .await?
                    .into_iter()
                    .filter_map(|vm| vm.runtime.tap)
                    .filter_map(|t| banger_host::TapName::new(t).ok())
                    .collect();
                let adopted = pool.adopt_existing(&held).await?;
                if adopted > 0 {
                    tracing::info!(adopted, "taps left by an earlier daemon joined the pool");
                }
                pool.spawn_refiller(self.shutdown.clone());
                Ok::<_, DaemonError>(pool)
            })
            .await
            .cloned()
    }
}

fn bridge_name(daemon: &Daemon) -> Result<BridgeName, DaemonError> {
    BridgeName::new(daemon.config.bridge_name())
        .map_err(|e| DaemonError::from(banger_host::HostError::from(e)))
}

/// What `handles.json` holds: the VMM's handle and the tap it was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Handles {
    handle: VmHandle,
    tap: Option<String>,
}

fn handles_path(vm_dir: &Path) -> PathBuf {
    vm_dir.join(HANDLES_FILE)
}

fn write_handles(vm_dir: &Path, handles: &Handles) -> Result<(), DaemonError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = handles_path(vm_dir);
    let tmp = vm_dir.join(format!(".{HANDLES_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(handles).expect("handles always serialise");
    let io =
        |e: std::io::Error| DaemonError::Internal(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&text).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// `None` when the VM has no running processes on record (or the file is
/// unreadable, which is logged: teardown must still go on).
fn read_handles(vm_dir: &Path) -> Option<Handles> {
    let path = handles_path(vm_dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the VM's handles");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable handles file");
            None
        }
    }
}

fn root_disk_of(runtime: &VmRuntime) -> Result<Option<RootDisk>, DaemonError> {
    runtime
        .root_disk
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| DaemonError::Internal(format!("the recorded root disk is unreadable: {e}")))
}

/// A locally administered, unicast MAC derived from the guest address.
fn guest_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:fc:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

async fn find(daemon: &Daemon, reference: &str) -> Result<Vm, DaemonError> {
    let reference = reference.to_owned();
    daemon.store.call(move |s| s.find_vm(&reference)).await
}

async fn transition(
    daemon: &Daemon,
    id: &str,
    action: VmAction,
    last_error: Option<String>,
) -> Result<Option<Vm>, DaemonError> {
    let id = id.to_owned();
    daemon
        .store
        .call(move |s| s.transition_vm(&id, action, last_error.as_deref()))
        .await
}

async fn save_runtime(daemon: &Daemon, id: &str, runtime: &VmRuntime) -> Result<(), DaemonError> {
    let (id, runtime) = (id.to_owned(), runtime.clone());
    daemon
        .store
        .call(move |s| s.set_vm_runtime(&id, &runtime))
        .await
}

fn check_cancel(cancel: &CancellationToken) -> Result<(), DaemonError> {
    if cancel.is_cancelled() {
        Err(DaemonError::Cancelled)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_local_unicast_and_follow_the_address() {
        let mac = guest_mac(Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(mac, "02:fc:ac:10:00:02");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 1, 0, "unicast");
        assert_eq!(first & 2, 2, "locally administered");
    }

    #[test]
    fn handles_round_trip_through_the_vm_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_handles(dir.path()).is_none());
        let handles = Handles {
            handle: VmHandle {
                backend: banger_vmm::BackendKind::Qemu,
                pid: 42,
                helper_pids: vec![43],
                control_socket: dir.path().join("qmp.sock"),
                vsock_uds: dir.path().join("vsock.sock"),
                console_log: dir.path().join("console.log"),
                vmm_log: dir.path().join("qemu.log"),
            },
            tap: Some("fctap3".into()),
        };
        write_handles(dir.path(), &handles).unwrap();
        let back = read_handles(dir.path()).unwrap();
        assert_eq!(back.handle, handles.handle);
        assert_eq!(back.tap, handles.tap);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(handles_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(handles_path(dir.path()), "not json").unwrap();
        assert!(read_handles(dir.path()).is_none(), "garbage is no handle");
    }

    #[test]
    fn an_unrecorded_root_disk_is_none() {
        assert!(root_disk_of(&VmRuntime::default()).unwrap().is_none());
    }
}
