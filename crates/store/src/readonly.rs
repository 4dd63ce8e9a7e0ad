//! [`ReadOnlyStore`]: what `banger doctor` reads through. It never migrates
//! and never writes, so it is safe on a database from another banger version,
//! on one the daemon is using, and on a read-only file.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::conn;
use crate::db::Db;
use crate::error::StoreError;
use crate::migrate;
use crate::record::VmRecord;

#[derive(Debug)]
pub struct ReadOnlyStore {
    conn: Connection,
    path: PathBuf,
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub id: u32,
    pub name: String,
    pub applied_at: String,
}

impl ReadOnlyStore {
    /// Opens an existing database; a missing file is [`StoreError::Missing`]
    /// and is not created.
    pub fn open(path: &Path) -> Result<ReadOnlyStore, StoreError> {
        Ok(ReadOnlyStore {
            conn: conn::open_read_only(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded migrations, by id; empty when the database has never
    /// been migrated.
    pub fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StoreError> {
        let db = self.db();
        let action = "reading applied migrations";
        if !migrate::has_migrations_table(db.conn, db.path)? {
            return Ok(Vec::new());
        }
        let mut stmt = db
            .conn
            .prepare("SELECT id, name, applied_at FROM schema_migrations ORDER BY id")
            .map_err(db.err(action))?;
        stmt.query_map([], |row| {
            Ok(AppliedMigration {
                id: row.get(0)?,
                name: row.get(1)?,
                applied_at: row.get(2)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(db.err(action))
    }

    pub(crate) fn applied_ids(&self) -> Result<Vec<u32>, StoreError> {
        migrate::applied_ids(&self.conn, &self.path)
    }

    pub fn list_vms(&self) -> Result<Vec<VmRecord>, StoreError> {
        self.db().list_vms()
    }

    fn db(&self) -> Db<'_> {
        Db {
            conn: &self.conn,
            path: &self.path,
        }
    }
}

#[cfg(test)]
mod tests;
