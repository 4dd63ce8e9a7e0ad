//! Persisted lifecycle changes: every state change goes through the
//! transition table of `banger_api::model::VmState`, checked and written in
//! one transaction, so two requests racing on one VM cannot both win.

use std::collections::HashSet;

use banger_api::model::{Transition, VmAction};
use banger_api::protocol::{VmSpec, Workspace};
use rusqlite::{Transaction, TransactionBehavior, params};

use crate::clock::now_rfc3339;
use crate::error::StoreError;
use crate::record::{RuntimeRecord, VmRecord, encode_runtime};
use crate::store::Store;

/// The JSON columns of `vms` written on their own.
enum JsonColumn {
    Runtime,
    Spec,
    Workspace,
}

/// vsock context ids 0–2 are reserved (hypervisor, local, host).
const FIRST_GUEST_CID: u32 = 3;

impl Store {
    /// Applies `action` to the VM's recorded state. Returns the updated VM,
    /// or `None` when the action removed it (delete), in which case its IP
    /// lease goes with it. An illegal action changes nothing.
    pub fn transition_vm(
        &self,
        id: &str,
        action: VmAction,
        last_error: Option<&str>,
    ) -> Result<Option<VmRecord>, StoreError> {
        let err = |what| StoreError::sqlite(&self.path, what);
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(err("starting a VM state change"))?;
        let vm = self.find_vm(id)?;
        if vm.id != id {
            // find_vm also matches names and prefixes; a transition needs the exact VM.
            return Err(StoreError::VmNotFound {
                reference: id.to_owned(),
            });
        }
        let next = vm
            .state
            .apply(action)
            .map_err(|source| StoreError::IllegalTransition {
                name: vm.name.to_string(),
                source,
            })?;
        let result = match next {
            Transition::To(state) => {
                tx.execute(
                    "UPDATE vms SET state = ?1, last_error = ?2, updated_at = ?3 WHERE id = ?4",
                    params![state.as_str(), last_error, now_rfc3339(), id],
                )
                .map_err(err("updating a VM's state"))?;
                Some(VmRecord {
                    state,
                    last_error: last_error.map(str::to_owned),
                    ..vm
                })
            }
            Transition::Removed => {
                tx.execute("DELETE FROM ip_leases WHERE holder = ?1", [id])
                    .map_err(err("releasing a deleted VM's address"))?;
                tx.execute("DELETE FROM vms WHERE id = ?1", [id])
                    .map_err(err("deleting a VM"))?;
                None
            }
        };
        tx.commit().map_err(err("committing a VM state change"))?;
        tracing::info!(vm = id, action = %action, "state change recorded");
        Ok(result)
    }

    /// Records what the VM holds (its tap, its root disk, ...): the durable
    /// part teardown needs.
    pub fn set_vm_runtime(&self, id: &str, runtime: &RuntimeRecord) -> Result<(), StoreError> {
        self.set_vm_column(id, JsonColumn::Runtime, Some(encode_runtime(Some(runtime))))
    }

    /// Records that the VM holds nothing any more (a failed create, unwound:
    /// its address, disk and tap are given back).
    pub fn release_vm_runtime(&self, id: &str) -> Result<(), StoreError> {
        self.set_vm_column(id, JsonColumn::Runtime, Some(encode_runtime(None)))
    }

    /// Replaces what the VM was asked to be (`vm set`). The caller has
    /// checked the change is allowed in the VM's state and made it real
    /// (disk grown, NAT rule added) first.
    pub fn set_vm_spec(&self, id: &str, spec: &VmSpec) -> Result<(), StoreError> {
        let json = serde_json::to_string(spec).expect("a spec always serialises");
        self.set_vm_column(id, JsonColumn::Spec, Some(json))
    }

    /// Records the workspace prepared in the VM (or that there is none).
    pub fn set_vm_workspace(
        &self,
        id: &str,
        workspace: Option<&Workspace>,
    ) -> Result<(), StoreError> {
        let json =
            workspace.map(|w| serde_json::to_string(w).expect("a workspace always serialises"));
        self.set_vm_column(id, JsonColumn::Workspace, json)
    }

    fn set_vm_column(
        &self,
        id: &str,
        column: JsonColumn,
        json: Option<String>,
    ) -> Result<(), StoreError> {
        let (name, action) = match column {
            JsonColumn::Runtime => ("runtime", "recording a VM's runtime"),
            JsonColumn::Spec => ("spec", "recording a VM's spec"),
            JsonColumn::Workspace => ("workspace", "recording a VM's workspace"),
        };
        let changed = self
            .conn
            .execute(
                &format!("UPDATE vms SET {name} = ?1, updated_at = ?2 WHERE id = ?3"),
                params![json, now_rfc3339(), id],
            )
            .map_err(StoreError::sqlite(&self.path, action))?;
        if changed == 0 {
            return Err(StoreError::VmNotFound {
                reference: id.to_owned(),
            });
        }
        Ok(())
    }

    /// The lowest vsock context id no recorded VM holds.
    pub fn free_vsock_cid(&self) -> Result<u32, StoreError> {
        let taken: HashSet<u32> = self
            .list_vms()?
            .iter()
            .filter_map(|vm| vm.runtime.as_ref().map(|r| r.vsock_cid))
            .collect();
        (FIRST_GUEST_CID..u32::MAX)
            .find(|cid| !taken.contains(cid))
            .ok_or(StoreError::NoFreeCid)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use banger_api::model::{VmAction, VmState};

    use crate::error::StoreError;
    use crate::record::{RootDiskFormat, RootDiskRecord, RootDiskStrategy, RuntimeRecord};
    use crate::store::Store;
    use crate::test_support::{temp_db, vm};

    fn store() -> (tempfile::TempDir, Store) {
        let (dir, path) = temp_db();
        (dir, Store::open(&path).unwrap())
    }

    #[test]
    fn transitions_follow_the_table_and_persist() {
        let (_dir, store) = store();
        let mut v = vm("aaaa000000000001", "dev");
        v.state = VmState::Created;
        store.insert_vm(&v).unwrap();
        let started = store
            .transition_vm(&v.id, VmAction::Start, None)
            .unwrap()
            .unwrap();
        assert_eq!(started.state, VmState::Starting);
        assert_eq!(store.find_vm("dev").unwrap().state, VmState::Starting);

        let err = store
            .transition_vm(&v.id, VmAction::Delete, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("VM dev: cannot delete a VM that is starting"),
            "{err}"
        );
        assert_eq!(
            store.find_vm("dev").unwrap().state,
            VmState::Starting,
            "nothing changed"
        );

        let failed = store
            .transition_vm(&v.id, VmAction::Fail, Some("no kernel"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (failed.state, failed.last_error.as_deref()),
            (VmState::Error, Some("no kernel"))
        );
        assert_eq!(
            store.find_vm("dev").unwrap().last_error.as_deref(),
            Some("no kernel")
        );
    }

    #[test]
    fn delete_removes_the_record_and_its_lease() {
        let (_dir, store) = store();
        let mut v = vm("aaaa000000000002", "gone");
        v.state = VmState::Stopped;
        store.insert_vm(&v).unwrap();
        store.lease_ip(&v.id, [Ipv4Addr::new(10, 0, 0, 2)]).unwrap();
        store
            .lease_ip("someone-else", [Ipv4Addr::new(10, 0, 0, 3)])
            .unwrap();
        assert_eq!(
            store.transition_vm(&v.id, VmAction::Delete, None).unwrap(),
            None
        );
        assert!(matches!(
            store.find_vm("gone"),
            Err(StoreError::VmNotFound { .. })
        ));
        let holders: Vec<String> = store
            .list_leases()
            .unwrap()
            .into_iter()
            .map(|l| l.holder)
            .collect();
        assert_eq!(holders, ["someone-else"]);
    }

    #[test]
    fn a_name_is_not_an_id_for_transitions() {
        let (_dir, store) = store();
        store.insert_vm(&vm("aaaa000000000003", "byname")).unwrap();
        assert!(matches!(
            store.transition_vm("byname", VmAction::Start, None),
            Err(StoreError::VmNotFound { .. })
        ));
    }

    #[test]
    fn runtime_is_recorded_and_cids_are_the_lowest_free() {
        let (_dir, store) = store();
        assert_eq!(store.free_vsock_cid().unwrap(), 3);
        let v = vm("aaaa000000000004", "cid");
        store.insert_vm(&v).unwrap();
        let runtime = RuntimeRecord {
            ip: Ipv4Addr::new(172, 16, 0, 2),
            vsock_cid: 3,
            tap: Some("fctap0".into()),
            root_disk: Some(RootDiskRecord {
                strategy: RootDiskStrategy::Qcow2Overlay,
                path: "/v/root.qcow2".into(),
                format: RootDiskFormat::Qcow2,
                snapshot: None,
                cow_file: None,
            }),
            kernel: "debian-cloud-amd64".into(),
            restored_from: None,
        };
        store.set_vm_runtime(&v.id, &runtime).unwrap();
        assert_eq!(store.find_vm("cid").unwrap().runtime, Some(runtime.clone()));
        assert_eq!(store.free_vsock_cid().unwrap(), 4);
        store.release_vm_runtime(&v.id).unwrap();
        assert_eq!(store.find_vm("cid").unwrap().runtime, None);
        assert_eq!(store.free_vsock_cid().unwrap(), 3, "a released CID is free");
        assert!(matches!(
            store.set_vm_runtime("ffff", &runtime),
            Err(StoreError::VmNotFound { .. })
        ));
    }

    #[test]
    fn spec_is_replaced_and_an_unknown_id_is_not_found() {
        let (_dir, store) = store();
        let v = vm("aaaa000000000005", "grow");
        let other = vm("aaaa000000000006", "other");
        store.insert_vm(&v).unwrap();
        store.insert_vm(&other).unwrap();
        let spec = banger_api::protocol::VmSpec {
            vcpu: 4,
            memory_mib: 4096,
            disk_size: "16G".parse().unwrap(),
            nat: true,
        };
        store.set_vm_spec(&v.id, &spec).unwrap();
        let back = store.find_vm("grow").unwrap();
        assert_eq!(back.spec, spec);
        assert_eq!(back.state, v.state, "only the spec changes");
        assert_ne!(back.updated_at, v.updated_at, "the change is dated");
        assert_eq!(
            store.find_vm("other").unwrap(),
            other,
            "no other VM changes"
        );
        assert!(matches!(
            store.set_vm_spec("ffff", &spec),
            Err(StoreError::VmNotFound { .. })
        ));
    }

    #[test]
    fn workspace_is_recorded_and_cleared() {
        let (_dir, store) = store();
        let v = vm("aaaa000000000007", "ws");
        store.insert_vm(&v).unwrap();
        let ws = banger_api::protocol::Workspace {
            guest_path: "/root/app".into(),
            host_path: "/home/me/app".into(),
            base_commit: "0123abcd".into(),
        };
        store.set_vm_workspace(&v.id, Some(&ws)).unwrap();
        assert_eq!(store.find_vm("ws").unwrap().workspace, Some(ws));
        store.set_vm_workspace(&v.id, None).unwrap();
        assert_eq!(store.find_vm("ws").unwrap().workspace, None);
        assert!(matches!(
            store.set_vm_workspace("ffff", None),
            Err(StoreError::VmNotFound { .. })
        ));
    }
}
