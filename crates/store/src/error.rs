//! Everything the store can refuse or fail at. Each variant names the database
//! file or the record involved, and says what to do about it where there is
//! something to do.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create database {path}: its directory does not exist (create it first)")]
    DirectoryMissing { path: PathBuf },

    #[error("database {path} does not exist: it is created when bangerd first starts")]
    Missing { path: PathBuf },

    #[error("database {path}: {action} failed: {source}")]
    Sqlite {
        path: PathBuf,
        /// What the store was doing, e.g. "listing VMs".
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "migration list is invalid: id {id} is used twice ({first:?} and {second:?}); give each migration its own id"
    )]
    DuplicateMigration {
        id: u32,
        first: &'static str,
        second: &'static str,
    },

    #[error(
        "migration list is invalid: migration {id} ({name:?}) comes after migration {previous}; ids must be in ascending order"
    )]
    MigrationOutOfOrder {
        id: u32,
        name: &'static str,
        previous: u32,
    },

    #[error(
        "database {path}: migration {id} ({name:?}) failed and was rolled back: {source}; fix the cause and restart, it will be retried"
    )]
    MigrationFailed {
        path: PathBuf,
        id: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "database {path} was written by a newer banger (schema {db_version}, this binary knows up to {binary_version}): upgrade banger"
    )]
    NewerThanBinary {
        path: PathBuf,
        db_version: u32,
        binary_version: u32,
    },

    #[error("database {path}: row {id:?} in table {table} is corrupt: {reason}")]
    CorruptRow {
        path: PathBuf,
        table: &'static str,
        id: String,
        reason: String,
    },

    #[error("a VM named {name:?} already exists: choose another name or delete that VM")]
    VmNameTaken { name: String },

    #[error("a VM with id {id} already exists")]
    VmIdTaken { id: String },

    #[error(
        "no VM is named {reference:?} or has an id starting with it: `banger vm list` shows the VMs"
    )]
    VmNotFound { reference: String },

    #[error(
        "{reference:?} is the start of several VM ids ({}): give more of the id, or the name",
        candidates.join(", ")
    )]
    VmAmbiguous {
        reference: String,
        /// Names of the VMs whose id starts with `reference`, sorted.
        candidates: Vec<String>,
    },

    #[error("an operation with id {id:?} is already recorded")]
    OperationExists { id: String },

    #[error("no operation with id {id:?} is recorded")]
    OperationNotFound { id: String },

    #[error("VM {name}: {source}")]
    IllegalTransition {
        name: String,
        #[source]
        source: banger_api::model::IllegalTransition,
    },

    #[error("no free vsock context id left: delete unused VMs")]
    NoFreeCid,

    #[error(
        "no free guest address left for {holder}: every address of the subnet is leased; delete unused VMs or widen `cidr` in config.toml"
    )]
    NoFreeAddress { holder: String },

    #[error("IP lease row {ip:?} in {path} is not an IPv4 address")]
    BadLease {
        path: std::path::PathBuf,
        ip: String,
    },
}

impl StoreError {
    /// Wraps a SQLite error with the database it came from and what was being done.
    pub(crate) fn sqlite<'a>(
        path: &'a Path,
        action: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
        move |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}
