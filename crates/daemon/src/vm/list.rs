//! `vm.list` and `vm.show`.

use banger_api::protocol::{Vm, VmRef};

use crate::error::DaemonError;
use crate::state::Daemon;

pub async fn list(daemon: &Daemon) -> Result<Vec<Vm>, DaemonError> {
    let records = daemon.store.call(|s| s.list_vms()).await?;
    Ok(records.into_iter().map(super::view::vm).collect())
}

pub async fn show(daemon: &Daemon, p: VmRef) -> Result<Vm, DaemonError> {
    super::record::find(daemon, &p.vm)
        .await
        .map(super::view::vm)
}
