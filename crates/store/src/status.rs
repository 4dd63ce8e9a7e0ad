//! Where a database stands against this binary's migrations, without
//! changing it: `bangerd --check-migrations` and `banger doctor`.

use std::path::Path;

use crate::error::StoreError;
use crate::migrate::{self, Migration};
use crate::readonly::ReadOnlyStore;
use crate::schema::MIGRATIONS;

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

/// The status of the database at `path` against banger's [`MIGRATIONS`].
pub fn migration_status(path: &Path) -> Result<MigrationStatus, StoreError> {
    migration_status_with(path, MIGRATIONS)
}

/// [`migration_status`] against another list. A missing file has everything
/// pending (the daemon would create it) and is left missing.
pub fn migration_status_with(
    path: &Path,
    migrations: &[Migration],
) -> Result<MigrationStatus, StoreError> {
    migrate::validate(migrations)?;
    let applied = match ReadOnlyStore::open(path) {
        Ok(store) => store.applied_ids()?,
        Err(StoreError::Missing { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(compare(&applied, migrations))
}

pub(crate) fn compare(applied: &[u32], migrations: &[Migration]) -> MigrationStatus {
    let db_version = applied.iter().copied().max().unwrap_or(0);
    let latest = migrate::latest(migrations);
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

#[cfg(test)]
mod tests;
