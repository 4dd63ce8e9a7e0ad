//! The VM's durable record, as the lifecycle reads and changes it: lookup,
//! state transitions through the store's table, runtime fields, and values
//! derived from them.

use std::net::Ipv4Addr;

use banger_api::model::VmAction;
use banger_host::{DmName, GuestMac, SnapshotDevice};
use banger_image::CowStrategy;
use banger_image::cow::{DiskFormat, RootDisk};
use banger_store::{
    RootDiskFormat, RootDiskRecord, RootDiskStrategy, RuntimeRecord, SnapshotRecord, VmRecord,
};
use tokio_util::sync::CancellationToken;

use crate::error::DaemonError;
use crate::state::Daemon;

/// The work disk inside the VM directory.
pub const WORK_DISK_FILE: &str = "work.ext4";

/// What the VM holds. Every VM holds its address, vsock CID and kernel
/// from its creation on, except one whose create failed and was unwound:
/// that one holds nothing and can only be deleted.
pub fn held(vm: &VmRecord) -> Result<&RuntimeRecord, DaemonError> {
    vm.runtime.as_ref().ok_or_else(|| unwound(vm))
}

/// [`held`], to change it.
pub fn held_mut(vm: &mut VmRecord) -> Result<&mut RuntimeRecord, DaemonError> {
    match vm.runtime {
        Some(ref mut runtime) => Ok(runtime),
        None => Err(unwound(vm)),
    }
}

fn unwound(vm: &VmRecord) -> DaemonError {
    DaemonError::Internal(format!(
        "VM {} holds no address, disk or kernel (its create failed and was undone): \
         `banger vm delete {}` removes it",
        vm.name, vm.name
    ))
}

/// The VM's root disk as the disk code takes it, if it has one.
pub fn root_disk_of(vm: &VmRecord) -> Result<Option<RootDisk>, DaemonError> {
    let Some(disk) = vm.runtime.as_ref().and_then(|r| r.root_disk.as_ref()) else {
        return Ok(None);
    };
    let snapshot = match &disk.snapshot {
        Some(s) => Some(SnapshotDevice {
            name: DmName::new(s.name.clone()).map_err(|e| {
                DaemonError::Internal(format!("the recorded root disk is unreadable: {e}"))
            })?,
            device: s.device.clone(),
            base_loop: s.base_loop.clone(),
            cow_loop: s.cow_loop.clone(),
        }),
        None => None,
    };
    Ok(Some(RootDisk {
        strategy: match disk.strategy {
            RootDiskStrategy::Reflink => CowStrategy::Reflink,
            RootDiskStrategy::DmSnapshot => CowStrategy::DmSnapshot,
            RootDiskStrategy::Qcow2Overlay => CowStrategy::Qcow2Overlay,
            RootDiskStrategy::SparseCopy => CowStrategy::SparseCopy,
        },
        path: disk.path.clone(),
        format: match disk.format {
            RootDiskFormat::Raw => DiskFormat::Raw,
            RootDiskFormat::Qcow2 => DiskFormat::Qcow2,
        },
        snapshot,
        cow_file: disk.cow_file.clone(),
    }))
}

/// The record of a root disk the disk code made.
pub fn root_disk_record(disk: &RootDisk) -> RootDiskRecord {
    RootDiskRecord {
        strategy: match disk.strategy {
            CowStrategy::Reflink => RootDiskStrategy::Reflink,
            CowStrategy::DmSnapshot => RootDiskStrategy::DmSnapshot,
            CowStrategy::Qcow2Overlay => RootDiskStrategy::Qcow2Overlay,
            CowStrategy::SparseCopy => RootDiskStrategy::SparseCopy,
        },
        path: disk.path.clone(),
        format: match disk.format {
            DiskFormat::Raw => RootDiskFormat::Raw,
            DiskFormat::Qcow2 => RootDiskFormat::Qcow2,
        },
        snapshot: disk.snapshot.as_ref().map(|s| SnapshotRecord {
            name: s.name.to_string(),
            device: s.device.clone(),
            base_loop: s.base_loop.clone(),
            cow_loop: s.cow_loop.clone(),
        }),
        cow_file: disk.cow_file.clone(),
    }
}

/// A locally administered, unicast MAC derived from the guest address: the
/// one the guest's fence lets through.
pub fn guest_mac(ip: Ipv4Addr) -> GuestMac {
    GuestMac::for_guest(ip)
}

pub async fn find(daemon: &Daemon, reference: &str) -> Result<VmRecord, DaemonError> {
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
) -> Result<Option<VmRecord>, DaemonError> {
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
    runtime: &RuntimeRecord,
) -> Result<(), DaemonError> {
    let (id, runtime) = (id.to_owned(), runtime.clone());
    daemon
        .store
        .call(move |s| s.set_vm_runtime(&id, &runtime))
        .await
}

/// Records that the VM holds nothing any more (an unwound create).
pub async fn release_runtime(daemon: &Daemon, id: &str) -> Result<(), DaemonError> {
    let id = id.to_owned();
    daemon.store.call(move |s| s.release_vm_runtime(&id)).await
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

    fn record(root_disk: Option<RootDiskRecord>) -> VmRecord {
        VmRecord {
            id: "0123456789abcdef".into(),
            name: banger_api::model::VmName::new("dev").unwrap(),
            image: "img".into(),
            state: banger_api::model::VmState::Stopped,
            spec: banger_api::protocol::VmSpec {
                vcpu: 2,
                memory_mib: 2048,
                disk_size: "8G".parse().unwrap(),
                nat: false,
            },
            runtime: Some(RuntimeRecord {
                root_disk,
                ..RuntimeRecord::new(Ipv4Addr::new(172, 16, 0, 2), 3, "k".into())
            }),
            workspace: None,
            created_at: String::new(),
            updated_at: String::new(),
            last_error: None,
        }
    }

    #[test]
    fn an_unrecorded_root_disk_is_none() {
        assert!(root_disk_of(&record(None)).unwrap().is_none());
        let unwound = VmRecord {
            runtime: None,
            ..record(None)
        };
        assert!(root_disk_of(&unwound).unwrap().is_none());
        let err = held(&unwound).unwrap_err().to_string();
        assert!(err.contains("`banger vm delete dev`"), "{err}");
    }

    /// Every strategy and format goes to the record and back unchanged, and
    /// the record's JSON is what `RootDisk` serialises to (rows written
    /// before the store had its own type hold that).
    #[test]
    fn root_disks_round_trip_through_the_record() {
        let dm = RootDisk {
            strategy: CowStrategy::DmSnapshot,
            path: "/dev/mapper/banger-0123456789abcdef".into(),
            format: DiskFormat::Raw,
            snapshot: Some(SnapshotDevice {
                name: DmName::new("banger-0123456789abcdef".to_owned()).unwrap(),
                device: "/dev/mapper/banger-0123456789abcdef".into(),
                base_loop: "/dev/loop0".into(),
                cow_loop: "/dev/loop1".into(),
            }),
            cow_file: Some("/v/root.cow".into()),
        };
        let file = |strategy, format| RootDisk {
            strategy,
            path: "/v/root".into(),
            format,
            snapshot: None,
            cow_file: None,
        };
        for disk in [
            dm,
            file(CowStrategy::Reflink, DiskFormat::Raw),
            file(CowStrategy::Qcow2Overlay, DiskFormat::Qcow2),
            file(CowStrategy::SparseCopy, DiskFormat::Raw),
        ] {
            let recorded = root_disk_record(&disk);
            assert_eq!(
                serde_json::to_value(&recorded).unwrap(),
                serde_json::to_value(&disk).unwrap()
            );
            assert_eq!(root_disk_of(&record(Some(recorded))).unwrap(), Some(disk));
        }
    }
}
