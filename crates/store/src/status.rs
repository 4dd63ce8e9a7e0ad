//! Where a database stands against this binary's migrations, without
//! changing it: `bangerd --check-migrations` and `banger doctor`.

use std::path::Path;

use crate::error::StoreError;
pub use crate::migrate::MigrationStatus;
use crate::migrate::{self, Migration, compare};
use crate::readonly::ReadOnlyStore;
use crate::schema::MIGRATIONS;

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

#[cfg(test)]
mod tests;
