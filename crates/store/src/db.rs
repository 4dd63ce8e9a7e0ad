//! [`Db`]: a borrowed connection plus the file it belongs to, so that the
//! queries shared by [`crate::Store`] and [`crate::ReadOnlyStore`] are written
//! once and every error they return names the database.

use std::path::Path;

use rusqlite::Connection;

use crate::error::StoreError;

#[derive(Clone, Copy)]
pub(crate) struct Db<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) path: &'a Path,
}

impl<'a> Db<'a> {
    /// Maps a SQLite error to [`StoreError::Sqlite`] for this database.
    pub(crate) fn err(
        self,
        action: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
        StoreError::sqlite(self.path, action)
    }

    pub(crate) fn corrupt(
        self,
        table: &'static str,
        id: &str,
        reason: impl ToString,
    ) -> StoreError {
        StoreError::CorruptRow {
            path: self.path.to_path_buf(),
            table,
            id: id.to_owned(),
            reason: reason.to_string(),
        }
    }
}
