//! Fixtures shared by the unit tests.

use std::path::{Path, PathBuf};

use banger_api::model::{ByteSize, VmName, VmState};
use banger_api::protocol::{Operation, OperationState, VmSpec};
use rusqlite::{Connection, Transaction};

use crate::migrate::Migration;
use crate::record::VmRecord;

/// A temporary directory and a database path inside it (not yet created).
pub(crate) fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banger.db");
    (dir, path)
}

/// Three migrations whose bodies fail if run twice (CREATE TABLE without IF
/// NOT EXISTS). Migration 1 also records each run in `a`.
pub(crate) const TEST_MIGRATIONS: &[Migration] = &[
    Migration {
        id: 1,
        name: "create a",
        up: create_a,
    },
    Migration {
        id: 2,
        name: "create b",
        up: |tx| tx.execute_batch("CREATE TABLE b (x)"),
    },
    Migration {
        id: 3,
        name: "create c",
        up: |tx| tx.execute_batch("CREATE TABLE c (x)"),
    },
];

fn create_a(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE a (x); INSERT INTO a VALUES ('ran');")
}

/// A plain connection for looking behind the store's back.
pub(crate) fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// `(id, name, applied_at)` of every row in `schema_migrations`.
pub(crate) fn migration_rows(path: &Path) -> Vec<(u32, String, String)> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT id, name, applied_at FROM schema_migrations ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub(crate) fn table_exists(path: &Path, table: &str) -> bool {
    raw(path)
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )
        .unwrap()
}

/// A VM record that holds nothing (as an unwound create).
pub(crate) fn vm(id: &str, name: &str) -> VmRecord {
    VmRecord {
        id: id.to_owned(),
        name: VmName::new(name).unwrap(),
        image: "debian-12".to_owned(),
        state: VmState::Created,
        spec: VmSpec {
            vcpu: 2,
            memory_mib: 2048,
            disk_size: ByteSize::from_mib(8192).unwrap(),
            nat: false,
        },
        runtime: None,
        workspace: None,
        created_at: "2024-05-01T10:00:00Z".to_owned(),
        updated_at: "2024-05-01T10:00:00Z".to_owned(),
        last_error: None,
    }
}

pub(crate) fn operation(id: &str, state: OperationState, started_at: &str) -> Operation {
    let finished = state != OperationState::Running;
    Operation {
        id: id.to_owned(),
        kind: "vm.create".to_owned(),
        target: Some("dev".to_owned()),
        state,
        stage: Some("boot".to_owned()),
        error: None,
        started_at: started_at.to_owned(),
        finished_at: finished.then(|| started_at.to_owned()),
    }
}
