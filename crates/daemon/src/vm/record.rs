//! The VM's durable record, as the lifecycle reads and changes it: lookup,
//! state transitions through the store's table, runtime fields, and values
//! derived from them.

use std::net::Ipv4Addr;

use banger_api::model::VmAction;
use banger_api::protocol::{Vm, VmRuntime};
use banger_host::GuestMac;
use banger_image::cow::RootDisk;
use tokio_util::sync::CancellationToken;

use crate::error::DaemonError;
use crate::state::Daemon;

/// The work disk inside the VM directory.
pub const WORK_DISK_FILE: &str = "work.ext4";

pub fn root_disk_of(runtime: &VmRuntime) -> Result<Option<RootDisk>, DaemonError> {
    runtime
        .root_disk
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| DaemonError::Internal(format!("the recorded root disk is unreadable: {e}")))
}

/// A locally administered, unicast MAC derived from the guest address: the
/// one the guest's fence lets through.
pub fn guest_mac(ip: Ipv4Addr) -> GuestMac {
    GuestMac::for_guest(ip)
}

pub async fn find(daemon: &Daemon, reference: &str) -> Result<Vm, DaemonError> {
    let reference = reference.to_owned();
    daemon.store.call(move |s| s.find_vm(&reference)).await
}

/// Most bytes of a VM's `last_error` kept in the store.
pub const MAX_LAST_ERROR: usize = 16 * 1024;

/// Applies `action` through the store's transition table. A failure's
/// reason can quote the guest (a console tail, an agent's message): it is
/// cleaned and capped before it is stored.
pub async fn transition(
    daemon: &Daemon,
    id: &str,
    action: VmAction,
    last_error: Option<String>,
) -> Result<Option<Vm>, DaemonError> {
    let id = id.to_owned();
    let last_error =
        last_error.map(|e| banger_api::text::clean_guest_text_capped(&e, MAX_LAST_ERROR));
    daemon
        .store
        .call(move |s| s.transition_vm(&id, action, last_error.as_deref()))
        .await
}

pub async fn save_runtime(
    daemon: &Daemon,
    id: &str,
    runtime: &VmRuntime,
) -> Result<(), DaemonError> {
    let (id, runtime) = (id.to_owned(), runtime.clone());
    daemon
        .store
        .call(move |s| s.set_vm_runtime(&id, &runtime))
        .await
}

pub fn check_cancel(cancel: &CancellationToken) -> Result<(), DaemonError> {
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
        let mac = guest_mac(Ipv4Addr::new(172, 16, 0, 2)).to_string();
        assert_eq!(mac, "02:fc:ac:10:00:02");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 1, 0, "unicast");
        assert_eq!(first & 2, 2, "locally administered");
    }

    #[test]
    fn an_unrecorded_root_disk_is_none() {
        assert!(root_disk_of(&VmRuntime::default()).unwrap().is_none());
    }
}
