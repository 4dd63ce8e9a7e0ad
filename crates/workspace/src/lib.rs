//! Workspaces (SPEC §10): a host git repository shipped into a guest.
//!
//! The host side is here and runs no guest code: [`plan`] checks the
//! repository (exists, a non-bare work tree, no submodules, has commits),
//! resolves the base commit and lists the files that ship; [`pack`] makes a
//! shallow clone of the base commit and streams it, with the working tree
//! overlaid, as a tar archive. [`guest`] holds the fixed scripts the guest
//! runs (extract, export, tooling bootstrap) and the guest-path rules.
//!
//! Every git call goes through [`git`]: on a user's repository through
//! [`git::HostRepo`], whose shadow git directory means git never loads the
//! repository's config, so nothing the repository names is run (SPEC §12
//! "Repositories are data"), owned by the daemon's user or not.
#![forbid(unsafe_code)]

mod error;
pub mod git;
pub mod guest;
pub mod pack;
pub mod plan;

pub use error::WorkspaceError;
pub use pack::{Packed, pack};
pub use plan::{Plan, Selection, plan};

#[cfg(test)]
mod test_repo;

#[cfg(test)]
mod security_tests;
