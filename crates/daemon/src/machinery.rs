//! What VMs run on, as the composition root injected it: privileged host
//! operations, the VMM drivers and the guest interface, plus what is built
//! lazily at the first VM start (the chosen VMM, the bridge and the warm
//! tap pool) and the locks that serialise work on one VM.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use banger_api::protocol::ErrorCode;
use banger_config::{Config, Paths};
use banger_host::{BridgeName, HostOps};
use banger_net::tap_pool::TapPool;
use banger_vmm::{BackendKind, VmmBackend};
use tokio::sync::{Mutex, OnceCell, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

use crate::backend::{Chosen, Vmms};
use crate::blocking::run;
use crate::error::DaemonError;
use crate::guest::Guest;

/// The OS boundaries the daemon's VM work goes through.
pub struct Boundaries {
    /// `Err`: why this daemon cannot do privileged work (not root, no
    /// helper), saying what to run.
    pub host: Result<Arc<dyn HostOps>, String>,
    pub vmms: Arc<dyn Vmms>,
    pub guest: Arc<dyn Guest>,
    /// The root helper, when this daemon is not root: image builds (which
    /// run mmdebstrap as root) go there too.
    pub helper: Option<Arc<banger_host::helper::HelperHost>>,
}

pub struct Machinery {
    host: Result<Arc<dyn HostOps>, String>,
    helper: Option<Arc<banger_host::helper::HelperHost>>,
    vmms: Arc<dyn Vmms>,
    guest: Arc<dyn Guest>,
    vmm: OnceCell<Arc<Chosen>>,
    taps: OnceCell<Arc<TapPool>>,
    locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// VMs whose create or start is in progress, with the token that
    /// interrupts it (`vm kill`).
    busy: StdMutex<HashMap<String, CancellationToken>>,
    /// Held while a name, id and vsock CID are chosen and recorded, so two
    /// creates never pick the same.
    pub alloc: Mutex<()>,
    shutdown: CancellationToken,
}

impl Machinery {
    pub fn new(boundaries: Boundaries, shutdown: CancellationToken) -> Machinery {
        Machinery {
            host: boundaries.host,
            helper: boundaries.helper,
            vmms: boundaries.vmms,
            guest: boundaries.guest,
            vmm: OnceCell::new(),
            taps: OnceCell::new(),
            locks: StdMutex::new(HashMap::new()),
            busy: StdMutex::new(HashMap::new()),
            alloc: Mutex::new(()),
            shutdown,
        }
    }

    /// Host operations, or why this daemon cannot do them.
    pub fn host(&self) -> Result<Arc<dyn HostOps>, DaemonError> {
        self.host
            .clone()
            .map_err(|why| DaemonError::failed(ErrorCode::OperationFailed, why))
    }

    /// Host operations when there are any (teardown does what it can
    /// without).
    pub fn host_if_any(&self) -> Option<Arc<dyn HostOps>> {
        self.host.clone().ok()
    }

    /// The root helper that builds images for this daemon, if it has one.
    pub fn helper(&self) -> Option<Arc<banger_host::helper::HelperHost>> {
        self.helper.clone()
    }

    pub fn guest(&self) -> Arc<dyn Guest> {
        self.guest.clone()
    }

    /// The driver for a VM launched with `kind`.
    pub fn driver_for(&self, kind: BackendKind) -> Arc<dyn VmmBackend> {
        self.vmms.for_kind(kind)
    }

    /// One lock per VM id: lifecycle operations on one VM run one at a time.
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// Marks VM `id` as booting until the returned guard drops: its token
    /// fires when `parent` does (the client went away) or when `vm kill`
    /// interrupts it ([`Machinery::interrupt`]).
    pub fn interruptible(&self, id: &str, parent: &CancellationToken) -> Interruptible<'_> {
        let token = parent.child_token();
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert(id.to_owned(), token.clone());
        Interruptible {
            machinery: self,
            id: id.to_owned(),
            parent: parent.clone(),
            token,
        }
    }

    /// Interrupts VM `id`'s create or start, if one is in progress; it
    /// unwinds and releases the VM's lock. Returns whether there was one.
    pub fn interrupt(&self, id: &str) -> bool {
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        match busy.get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// The VMM new VMs are launched with (`vmm` in config.toml), chosen
    /// once. A failure (e.g. `vmm = "firecracker"` without Firecracker) is
    /// not remembered: the next create or start tries again.
    pub async fn vmm(
        &self,
        config: &Config,
        paths: &Paths,
        owner_uid: u32,
    ) -> Result<Arc<Chosen>, DaemonError> {
        self.vmm
            .get_or_try_init(|| async {
                let (vmms, config, paths) = (self.vmms.clone(), config.clone(), paths.clone());
                let chosen = run(move || vmms.choose(&config, &paths, owner_uid)).await??;
                Ok::<_, DaemonError>(Arc::new(chosen))
            })
            .await
            .cloned()
    }

    /// The bridge (created if missing) and the warm tap pool with its
    /// refiller, at the first VM start. Taps that exist already are left
    /// alone (VMs hold them, or someone else made them; this daemon's
    /// orphans were removed at start, see `vm::sweep`); new taps are
    /// numbered after them.
    pub async fn taps(&self, config: &Config, owner_uid: u32) -> Result<Arc<TapPool>, DaemonError> {
        let host = self.host()?;
        self.taps
            .get_or_try_init(|| async {
                let bridge = bridge_name(config)?;
                let cidr = banger_host::Ipv4Cidr::new(config.bridge_ip(), config.cidr_prefix())
                    .map_err(banger_host::HostError::from)?;
                let (h, b) = (host.clone(), bridge.clone());
                // The fence is up before any guest is: frames from a tap
                // without its guest's own rules are dropped.
                run(move || {
                    h.ensure_bridge(&b, cidr)?;
                    h.ensure_bridge_fence(&b, cidr)
                })
                .await??;
                let h = host.clone();
                let existing = run(move || h.list_taps()).await??;
                let pool = TapPool::new(host, bridge, owner_uid, config.tap_pool_size() as usize);
                pool.adopt_existing(&existing).await?;
                pool.spawn_refiller(self.shutdown.clone());
                Ok::<_, DaemonError>(pool)
            })
            .await
            .cloned()
    }
}

pub fn bridge_name(config: &Config) -> Result<BridgeName, DaemonError> {
    BridgeName::new(config.bridge_name())
        .map_err(|e| DaemonError::from(banger_host::HostError::from(e)))
}

/// A create or start that `vm kill` can interrupt; see
/// [`Machinery::interruptible`].
pub struct Interruptible<'a> {
    machinery: &'a Machinery,
    id: String,
    parent: CancellationToken,
    pub token: CancellationToken,
}

impl Interruptible<'_> {
    /// Whether `vm kill` (not the client going away) ended the work.
    pub fn killed(&self) -> bool {
        self.token.is_cancelled() && !self.parent.is_cancelled()
    }
}

impl Drop for Interruptible<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .machinery
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}
