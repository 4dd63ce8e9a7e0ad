//! `vm.list` and `vm.show`.

use banger_api::protocol::{Vm, VmRef};

use crate::error::DaemonError;
use crate::state::Daemon;

pub async fn list(daemon: &Daemon) -> Result<Vec<Vm>, DaemonError> {
    daemon.store.call(|s| s.list_vms()).await
}

pub async fn show(daemon: &Daemon, p: VmRef) -> Result<Vm, DaemonError> {
    super::record::find(daemon, &p.vm).await
}
