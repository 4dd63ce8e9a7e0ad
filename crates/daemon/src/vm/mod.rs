//! The VM lifecycle (SPEC §6): create, start, stop, kill, delete and exec,
//! over a VMM driver (`banger-vmm`: Firecracker or QEMU, chosen once, see
//! `crate::backend`), guest networking (`banger-net`),
//! disks (`banger-image`) and privileged host operations (`banger-host`).
//!
//! Every state change goes through the store's transition table. What a VM
//! got (address, vsock CID, tap, root disk) is in its durable record, so
//! teardown (`teardown`) works from the record alone and can be re-run;
//! the transient `handles.json` in the VM directory says which processes
//! run it. Operations on one VM are serialised by a per-VM lock.

mod allocate;
mod boot;
mod create;
mod evidence;
mod exec;
mod first_use;
mod fork;
mod handles;
#[cfg(test)]
mod lifecycle_tests;
mod list;
mod logread;
mod manage;
mod observe;
mod ports;
mod power;
mod ready;
mod reconcile;
mod record;
mod restore;
mod seed;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
mod sweep;
mod teardown;
mod view;
mod warm;
mod workspace;

pub use create::create;
pub use exec::exec;
pub use fork::fork;
pub use list::{list, show};
pub use manage::{prune, set};
pub use observe::{logs, stats};
pub use ports::ports;
pub use power::{delete, kill, restart, start, stop};
pub use reconcile::reconcile;
pub use restore::restore;
pub use snapshot::snapshot;
pub use workspace::{
    export as workspace_export, plan as workspace_plan, prepare as workspace_prepare,
};
