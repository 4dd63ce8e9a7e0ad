//! [`Store`]: the daemon's read-write handle on the database.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::conn;
use crate::db::Db;
use crate::error::StoreError;
use crate::migrate::{self, Migration};
use crate::schema::MIGRATIONS;

/// The read-write store. Opening it brings the schema up to date; the VM and
/// operation methods live in their own modules.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Store {
    /// Opens the database at `path`, creating the file (not its directory) if
    /// missing, and applies banger's pending [`MIGRATIONS`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, MIGRATIONS)
    }

    /// [`Store::open`] with another migration list (tests).
    pub fn open_with(path: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        // A broken list is a bug in this binary: refuse before the file exists.
        migrate::validate(migrations)?;
        let mut conn = conn::open_read_write(path)?;
        migrate::apply(&mut conn, path, migrations)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest applied migration id, 0 if none.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let applied = migrate::applied_ids(&self.conn, &self.path)?;
        Ok(applied.last().copied().unwrap_or(0))
    }

    /// The queries shared with [`crate::ReadOnlyStore`] work on this.
    pub(crate) fn db(&self) -> Db<'_> {
        Db {
            conn: &self.conn,
            path: &self.path,
        }
    }
}
