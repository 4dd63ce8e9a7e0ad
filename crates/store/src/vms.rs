//! The `vms` table: VM records, looked up by name or id prefix.

use std::net::Ipv4Addr;

use banger_api::model::{VmName, VmState};
use banger_api::protocol::{VmSpec, Workspace};
use rusqlite::{ErrorCode, Params, Row, Transaction, TransactionBehavior, params};
use serde::de::DeserializeOwned;

use crate::clock::now_rfc3339;
use crate::db::Db;
use crate::error::StoreError;
use crate::record::{NewVm, RuntimeRecord, VmRecord, decode_runtime, encode_runtime};
use crate::store::Store;

const TABLE: &str = "vms";

/// The columns [`RawVm::from_row`] reads, in its order.
const COLUMNS: &str =
    "id, name, image, state, spec, runtime, workspace, created_at, updated_at, last_error";

impl Store {
    /// Records a new VM (`created`) together with what it holds from the
    /// start, in one transaction: the lowest free vsock CID and the first
    /// free address of `addresses`, leased to its id. Its name must be free
    /// ([`StoreError::VmNameTaken`]); on any error nothing is recorded.
    pub fn create_vm(
        &self,
        new: NewVm,
        addresses: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<VmRecord, StoreError> {
        let err = |what| StoreError::sqlite(&self.path, what);
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(err("starting a VM's creation"))?;
        if self.vm_name_taken(&new.name)? {
            return Err(StoreError::VmNameTaken {
                name: new.name.to_string(),
            });
        }
        let vsock_cid = self.free_vsock_cid()?;
        let ip = self.lease_ip_in_transaction(&new.id, addresses)?;
        let now = now_rfc3339();
        let vm = VmRecord {
            id: new.id,
            name: new.name,
            image: new.image,
            state: VmState::Created,
            spec: new.spec,
            runtime: Some(RuntimeRecord::new(ip, vsock_cid, new.kernel)),
            workspace: None,
            created_at: now.clone(),
            updated_at: now,
            last_error: None,
        };
        self.insert_vm(&vm)?;
        tx.commit().map_err(err("committing a VM's creation"))?;
        Ok(vm)
    }

    /// Writes a VM record as it is. Its name must be free:
    /// [`StoreError::VmNameTaken`]. A new VM is made by [`Store::create_vm`];
    /// this is the row write it ends with (and what tests record).
    pub fn insert_vm(&self, vm: &VmRecord) -> Result<(), StoreError> {
        let db = self.db();
        db.conn
            .execute(
                &format!(
                    "INSERT INTO vms ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    vm.id,
                    vm.name.as_str(),
                    vm.image,
                    vm.state.as_str(),
                    to_json(&vm.spec),
                    encode_runtime(vm.runtime.as_ref()),
                    vm.workspace.as_ref().map(to_json),
                    vm.created_at,
                    vm.updated_at,
                    vm.last_error,
                ],
            )
            .map_err(|e| match unique_violation(&e) {
                Some("vms.name") => StoreError::VmNameTaken {
                    name: vm.name.to_string(),
                },
                Some("vms.id") => StoreError::VmIdTaken { id: vm.id.clone() },
                _ => db.err("inserting a VM")(e),
            })?;
        Ok(())
    }

    /// Every VM, oldest first (ties by name).
    pub fn list_vms(&self) -> Result<Vec<VmRecord>, StoreError> {
        self.db().list_vms()
    }

    /// Resolves what a user typed: an exact name wins; otherwise a non-empty
    /// lower-case hex string is taken as the start of an id and must match
    /// exactly one VM.
    pub fn find_vm(&self, reference: &str) -> Result<VmRecord, StoreError> {
        let db = self.db();
        let action = "looking up a VM";
        if let Some(vm) = db.select_vms("WHERE name = ?1", [reference], action)?.pop() {
            return Ok(vm);
        }
        let not_found = || StoreError::VmNotFound {
            reference: reference.to_owned(),
        };
        let is_id_prefix = !reference.is_empty()
            && reference
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_id_prefix {
            return Err(not_found());
        }
        // An exact, case-sensitive prefix comparison (LIKE would ignore case).
        let mut found = db.select_vms(
            "WHERE substr(id, 1, length(?1)) = ?1 ORDER BY name",
            [reference],
            action,
        )?;
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::VmAmbiguous {
                reference: reference.to_owned(),
                candidates: found.into_iter().map(|vm| vm.name.to_string()).collect(),
            }),
        }
    }

    pub fn vm_name_taken(&self, name: &VmName) -> Result<bool, StoreError> {
        let db = self.db();
        db.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM vms WHERE name = ?1)",
                [name.as_str()],
                |row| row.get(0),
            )
            .map_err(db.err("checking a VM name"))
    }

    /// Persists a state change. `last_error` replaces the recorded one, so a
    /// VM that starts again after a failure sheds its old error.
    pub fn set_vm_state(
        &self,
        id: &str,
        state: VmState,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let db = self.db();
        let changed = db
            .conn
            .execute(
                "UPDATE vms SET state = ?1, last_error = ?2, updated_at = ?3 WHERE id = ?4",
                params![state.as_str(), last_error, now_rfc3339(), id],
            )
            .map_err(db.err("updating a VM's state"))?;
        if changed == 0 {
            return Err(StoreError::VmNotFound {
                reference: id.to_owned(),
            });
        }
        Ok(())
    }
}

impl Db<'_> {
    pub(crate) fn list_vms(self) -> Result<Vec<VmRecord>, StoreError> {
        self.select_vms("ORDER BY created_at, name", [], "listing VMs")
    }

    /// Runs `SELECT <COLUMNS> FROM vms <tail>` and decodes every row.
    fn select_vms<P: Params>(
        self,
        tail: &str,
        params: P,
        action: &'static str,
    ) -> Result<Vec<VmRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM vms {tail}"))
            .map_err(self.err(action))?;
        let raws: Vec<RawVm> = stmt
            .query_map(params, RawVm::from_row)
            .and_then(Iterator::collect)
            .map_err(self.err(action))?;
        raws.into_iter().map(|raw| raw.decode(self)).collect()
    }
}

/// A `vms` row as stored, before its text columns are checked.
struct RawVm {
    id: String,
    name: String,
    image: String,
    state: String,
    spec: String,
    runtime: String,
    workspace: Option<String>,
    created_at: String,
    updated_at: String,
    last_error: Option<String>,
}

impl RawVm {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawVm> {
        Ok(RawVm {
            id: row.get(0)?,
            name: row.get(1)?,
            image: row.get(2)?,
            state: row.get(3)?,
            spec: row.get(4)?,
            runtime: row.get(5)?,
            workspace: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            last_error: row.get(9)?,
        })
    }

    /// A row someone edited by hand, or wrote with a different banger, is
    /// reported with its id rather than taking the daemon down.
    fn decode(self, db: Db<'_>) -> Result<VmRecord, StoreError> {
        let corrupt = |reason: String| db.corrupt(TABLE, &self.id, reason);
        let name = VmName::new(self.name).map_err(|e| corrupt(e.to_string()))?;
        let state: VmState = self.state.parse().map_err(|e| corrupt(format!("{e}")))?;
        let spec: VmSpec = from_json("spec", &self.spec).map_err(corrupt)?;
        let runtime = decode_runtime(&self.runtime).map_err(corrupt)?;
        let workspace: Option<Workspace> = self
            .workspace
            .as_deref()
            .map(|w| from_json("workspace", w))
            .transpose()
            .map_err(corrupt)?;
        Ok(VmRecord {
            id: self.id,
            name,
            image: self.image,
            state,
            spec,
            runtime,
            workspace,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_error: self.last_error,
        })
    }
}

fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("column {column} is not valid: {e}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .expect("VM specs and workspaces are plain structs that always serialise")
}

/// The `table.column` a UNIQUE or PRIMARY KEY constraint failed on, if that
/// is what `e` is.
pub(crate) fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg))
            if err.code == ErrorCode::ConstraintViolation =>
        {
            msg.strip_prefix("UNIQUE constraint failed: ")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
