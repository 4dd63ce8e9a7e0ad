//! A small client of the Debian archive (SPEC §9.3): enough to find a
//! package in the signed indices of a mirror, download it verified, and take
//! files out of it, with no tool beyond `gpgv`.
//!
//! - [`DebianMirror`]: base URL, suites, component, architecture, keyring;
//! - [`Archive`]: fetches and verifies `InRelease` ([`gpgv`]), reads the
//!   `Packages` indices it vouches for ([`PackageIndex`]), downloads `.deb`s;
//! - [`extract_deb`]: the files a [`Selection`] names, safely.
//!
//! The network is behind [`Fetch`] ([`HttpFetch`] in production), so tests
//! serve a fixture mirror from a directory, signed with a throwaway key.

mod ar;
pub(crate) mod deb;
mod deb822;
mod error;
mod fetch;
mod gpgv;
mod index;
pub(crate) mod limit;
mod mirror;
mod package;
mod release;
mod version;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
pub(crate) mod testing;

pub use ar::{ArError, ArReader};
pub use deb::{Selection, extract_deb};
pub use error::DebianError;
pub use fetch::{Expected, Fetch, HttpFetch, download_verified, read_capped};
pub use index::PackageIndex;
pub(crate) use index::lzma_io_error;
pub use mirror::{Archive, DebianMirror};
pub use package::{Op, Package, Relation, parse_depends};
pub use release::Release;
pub use version::compare as compare_versions;

#[cfg(test)]
mod tests;
