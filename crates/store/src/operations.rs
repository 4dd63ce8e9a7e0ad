//! The `operations` table: the daemon's registry of long operations, kept so
//! that `banger` can show what is running and what recently finished, even
//! across daemon restarts.

use banger_api::protocol::{Operation, OperationState};
use rusqlite::{Row, params};

use crate::clock::now_rfc3339;
use crate::db::Db;
use crate::error::StoreError;
use crate::store::Store;
use crate::vms::unique_violation;

const TABLE: &str = "operations";

/// Recorded on operations that were running when the daemon went away: their
/// work stopped with it.
pub const INTERRUPTED_ERROR: &str = "interrupted: the daemon stopped while this operation ran";

const COLUMNS: &str = "id, kind, target, state, stage, error, started_at, finished_at";

const STATES: [OperationState; 4] = [
    OperationState::Running,
    OperationState::Succeeded,
    OperationState::Failed,
    OperationState::Cancelled,
];

impl Store {
    pub fn insert_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let db = self.db();
        db.conn
            .execute(
                &format!(
                    "INSERT INTO operations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    op.id,
                    op.kind,
                    op.target,
                    op.state.as_str(),
                    op.stage,
                    op.error,
                    op.started_at,
                    op.finished_at,
                ],
            )
            .map_err(|e| match unique_violation(&e) {
                Some("operations.id") => StoreError::OperationExists { id: op.id.clone() },
                _ => db.err("recording an operation")(e),
            })?;
        Ok(())
    }

    /// Moves an operation on. `stage` of `None` keeps the recorded stage, so
    /// a finished operation still says where it ended; `error` is replaced.
    /// Any state but `Running` stamps `finished_at`.
    pub fn update_operation(
        &self,
        id: &str,
        state: OperationState,
        stage: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let db = self.db();
        let finished_at = (state != OperationState::Running).then(now_rfc3339);
        let changed = db
            .conn
            .execute(
                "UPDATE operations
                 SET state = ?1, stage = coalesce(?2, stage), error = ?3, finished_at = ?4
                 WHERE id = ?5",
                params![state.as_str(), stage, error, finished_at, id],
            )
            .map_err(db.err("updating an operation"))?;
        if changed == 0 {
            return Err(StoreError::OperationNotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Names what an operation works on once that is known (a `vm.create`
    /// learns its VM's generated name after it started).
    pub fn set_operation_target(&self, id: &str, target: &str) -> Result<(), StoreError> {
        let db = self.db();
        let changed = db
            .conn
            .execute(
                "UPDATE operations SET target = ?1 WHERE id = ?2",
                params![target, id],
            )
            .map_err(db.err("naming an operation's target"))?;
        if changed == 0 {
            return Err(StoreError::OperationNotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Every running operation plus the `finished_limit` most recently
    /// finished ones, newest first.
    pub fn list_operations(&self, finished_limit: usize) -> Result<Vec<Operation>, StoreError> {
        let db = self.db();
        let action = "listing operations";
        // rowid breaks ties between operations started in the same second.
        let mut stmt = db
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM operations
                 WHERE state = 'running' OR id IN (
                     SELECT id FROM operations WHERE state != 'running'
                     ORDER BY finished_at DESC, rowid DESC LIMIT ?1)
                 ORDER BY started_at DESC, rowid DESC"
            ))
            .map_err(db.err(action))?;
        let limit = i64::try_from(finished_limit).unwrap_or(i64::MAX);
        let raws: Vec<RawOperation> = stmt
            .query_map([limit], RawOperation::from_row)
            .and_then(Iterator::collect)
            .map_err(db.err(action))?;
        raws.into_iter().map(|raw| raw.decode(db)).collect()
    }

    /// Run at daemon start: whatever was running died with the previous
    /// daemon, so it is recorded as failed. Returns how many were.
    pub fn mark_interrupted_operations(&self) -> Result<usize, StoreError> {
        let db = self.db();
        db.conn
            .execute(
                "UPDATE operations SET state = 'failed', error = ?1, finished_at = ?2
                 WHERE state = 'running'",
                params![INTERRUPTED_ERROR, now_rfc3339()],
            )
            .map_err(db.err("marking interrupted operations"))
    }
}

/// An `operations` row as stored, its state not yet checked.
struct RawOperation {
    id: String,
    kind: String,
    target: Option<String>,
    state: String,
    stage: Option<String>,
    error: Option<String>,
    started_at: String,
    finished_at: Option<String>,
}

impl RawOperation {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawOperation> {
        Ok(RawOperation {
            id: row.get(0)?,
            kind: row.get(1)?,
            target: row.get(2)?,
            state: row.get(3)?,
            stage: row.get(4)?,
            error: row.get(5)?,
            started_at: row.get(6)?,
            finished_at: row.get(7)?,
        })
    }

    fn decode(self, db: Db<'_>) -> Result<Operation, StoreError> {
        let Some(state) = STATES.into_iter().find(|s| s.as_str() == self.state) else {
            let reason = format!("unknown operation state {:?}", self.state);
            return Err(db.corrupt(TABLE, &self.id, reason));
        };
        Ok(Operation {
            id: self.id,
            kind: self.kind,
            target: self.target,
            state,
            stage: self.stage,
            error: self.error,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[cfg(test)]
mod tests;
