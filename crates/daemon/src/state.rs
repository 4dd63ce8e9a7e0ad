//! The daemon's shared state, handed to every handler: paths, config, the
//! store, DNS records and the VM machinery. Built by [`crate::startup`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use banger_config::{Config, Paths};
use banger_net::dns::DnsRecords;
use banger_net::tap_pool::TapPool;

use crate::backend::Chosen;
use crate::error::DaemonError;
use crate::machinery::Machinery;
use crate::store_handle::StoreHandle;

pub struct Daemon {
    pub paths: Paths,
    pub config: Config,
    pub store: StoreHandle,
    pub owner_uid: u32,
    /// `[[file_sync]]` with host paths resolved in the owner's home.
    pub file_sync: Vec<banger_config::ResolvedFileSync>,
    /// The owner's home: where the git identity new work disks get is read
    /// from. `None` skips it.
    pub owner_home: Option<PathBuf>,
    /// `<name>.vm` → guest address, for running VMs.
    pub dns: DnsRecords,
    /// Where the DNS server listens, once it is up.
    pub dns_addr: Option<SocketAddr>,
    /// Host operations, the VMM, the guest interface, the tap pool and
    /// per-VM locks.
    pub vms: Machinery,
}

impl Daemon {
    /// The VMM new VMs get, chosen at the first need.
    pub async fn vmm(&self) -> Result<Arc<Chosen>, DaemonError> {
        self.vms
            .vmm(&self.config, &self.paths, self.owner_uid)
            .await
    }

    /// The bridge and the warm tap pool, set up at the first need.
    pub async fn taps(&self) -> Result<Arc<TapPool>, DaemonError> {
        self.vms.taps(&self.config, self.owner_uid).await
    }
}
