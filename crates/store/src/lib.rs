//! banger's durable state (SPEC §5): one SQLite database holding VMs (as
//! [`VmRecord`]s, the store's own type: the daemon turns them into wire
//! types at its edge), IP leases and the operations registry (images and kernels are described by
//! manifests beside their files; migration 2 dropped the baseline's unused
//! tables for them).
//!
//! [`Store`] is the daemon's read-write handle: opening it applies any pending
//! [migrations](migrate). [`ReadOnlyStore`] serves `banger doctor` and never
//! writes, and [`migration_status`] backs `bangerd --check-migrations`.
#![forbid(unsafe_code)]

mod clock;
mod conn;
mod db;
mod error;
mod leases;
pub mod migrate;
mod operations;
mod readonly;
mod record;
pub mod schema;
mod status;
mod store;
mod vm_lifecycle;
mod vms;

#[cfg(test)]
mod test_support;

pub use clock::now_rfc3339;
pub use error::StoreError;
pub use leases::IpLease;
pub use migrate::Migration;
pub use operations::INTERRUPTED_ERROR;
pub use readonly::{AppliedMigration, ReadOnlyStore};
pub use record::{
    NewVm, RootDiskFormat, RootDiskRecord, RootDiskStrategy, RuntimeRecord, SnapshotRecord,
    VmRecord,
};
pub use schema::MIGRATIONS;
pub use status::{MigrationStatus, migration_status, migration_status_with};
pub use store::Store;
