//! Versioned schema migrations (SPEC §5).
//!
//! Each [`Migration`] runs in its own IMMEDIATE transaction together with the
//! `schema_migrations` row that records it, so a migration is either fully
//! applied and recorded or not there at all; the next open retries it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::clock::now_rfc3339;
use crate::error::StoreError;

/// One step of the schema's history. Ids are never reused or renumbered once
/// released: they are what databases in the field record.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub id: u32,
    pub name: &'static str,
    pub up: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Checks a migration list before any database is touched: ids unique, above
/// zero (0 means "nothing applied") and strictly ascending.
pub fn validate(migrations: &[Migration]) -> Result<(), StoreError> {
    // Duplicates first, so that a repeated id is reported as such and not as
    // an ordering mistake.
    for (i, m) in migrations.iter().enumerate() {
        if let Some(first) = migrations[..i].iter().find(|p| p.id == m.id) {
            return Err(StoreError::DuplicateMigration {
                id: m.id,
                first: first.name,
                second: m.name,
            });
        }
    }
    let mut previous = 0;
    for m in migrations {
        if m.id <= previous {
            return Err(StoreError::MigrationOutOfOrder {
                id: m.id,
                name: m.name,
                previous,
            });
        }
        previous = m.id;
    }
    Ok(())
}

/// The newest schema version a (validated) list leads to; 0 for an empty list.
pub(crate) fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.id)
}

/// Where a database whose applied ids are `applied` stands against
/// `migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStatus {
    UpToDate {
        version: u32,
    },
    /// `applied` is the highest applied id (0 if none); `pending` lists the
    /// ids an open would apply, in order.
    Pending {
        applied: u32,
        latest: u32,
        pending: Vec<u32>,
    },
    NewerThanBinary {
        db_version: u32,
        binary_version: u32,
    },
}

pub(crate) fn compare(applied: &[u32], migrations: &[Migration]) -> MigrationStatus {
    let db_version = applied.iter().copied().max().unwrap_or(0);
    let latest = latest(migrations);
    if db_version > latest {
        return MigrationStatus::NewerThanBinary {
            db_version,
            binary_version: latest,
        };
    }
    let pending: Vec<u32> = migrations
        .iter()
        .map(|m| m.id)
        .filter(|id| !applied.contains(id))
        .collect();
    if pending.is_empty() {
        MigrationStatus::UpToDate {
            version: db_version,
        }
    } else {
        MigrationStatus::Pending {
            applied: db_version,
            latest,
            pending,
        }
    }
}

/// Ids recorded in `schema_migrations`, ascending; empty if the table does not
/// exist yet. Never writes.
pub(crate) fn applied_ids(conn: &Connection, path: &Path) -> Result<Vec<u32>, StoreError> {
    let action = "reading applied migrations";
    if !has_migrations_table(conn, path)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT id FROM schema_migrations ORDER BY id")
        .map_err(StoreError::sqlite(path, action))?;
    stmt.query_map([], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(StoreError::sqlite(path, action))
}

pub(crate) fn has_migrations_table(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |row| row.get(0),
    )
    .map_err(StoreError::sqlite(path, "looking for the schema_migrations table"))
}

/// Brings the database up to date with `migrations`, which must have passed
/// [`validate`].
pub(crate) fn apply(
    conn: &mut Connection,
    path: &Path,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let applied = applied_ids(conn, path)?;
    // A database that records a migration this binary does not know may have
    // changed in ways this code would misread or damage.
    if let MigrationStatus::NewerThanBinary {
        db_version,
        binary_version,
    } = compare(&applied, migrations)
    {
        return Err(StoreError::NewerThanBinary {
            path: path.to_path_buf(),
            db_version,
            binary_version,
        });
    }
    conn.execute_batch(CREATE_SCHEMA_MIGRATIONS)
        .map_err(StoreError::sqlite(
            path,
            "creating the schema_migrations table",
        ))?;
    for m in migrations.iter().filter(|m| !applied.contains(&m.id)) {
        apply_one(conn, path, m)?;
    }
    Ok(())
}

fn apply_one(conn: &mut Connection, path: &Path, m: &Migration) -> Result<(), StoreError> {
    let failed = |source| StoreError::MigrationFailed {
        path: path.to_path_buf(),
        id: m.id,
        name: m.name,
        source,
    };
    // IMMEDIATE takes the write lock up front, so two processes opening the
    // same database serialise here instead of failing half-way.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    // Whoever held the lock before us may have applied it already.
    let already: Option<u32> = tx
        .query_row(
            "SELECT id FROM schema_migrations WHERE id = ?1",
            [m.id],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    if already.is_some() {
        return Ok(());
    }
    // On any error below, dropping `tx` rolls the body back along with it.
    (m.up)(&tx).map_err(failed)?;
    tx.execute(
        "INSERT INTO schema_migrations (id, name, applied_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![m.id, m.name, now_rfc3339()],
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)?;
    tracing::info!(id = m.id, name = m.name, path = %path.display(), "applied database migration");
    Ok(())
}

#[cfg(test)]
mod tests;
