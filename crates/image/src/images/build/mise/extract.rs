//! Taking mise's binary (and licence) out of its verified npm tarball into
//! the image tree. Nothing else of the package is extracted; its entries
//! are still checked, so a tarball that is not plainly laid out is refused
//! rather than half understood.

use std::fs::File;
use std::io::BufReader;
use std::path::{Component, Path};

use flate2::read::GzDecoder;

use super::error::MiseError;
use super::{MISE_LICENSE_PATH, MISE_PATH};
use crate::images::build::tree::GuestTree;
use crate::images::error::ImageError;

const BINARY_ENTRY: &str = "package/bin/mise";
const LICENSE_ENTRY: &str = "package/LICENSE";
/// mise 2026.9.15 is 144 MiB; the cap only stops something absurd.
pub(super) const MAX_BINARY: u64 = 512 * 1024 * 1024;
const MAX_LICENSE: u64 = 1024 * 1024;

/// What [`install`] wrote, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Installed {
    pub(crate) binary_size: u64,
    pub(crate) license: bool,
}

/// Writes `package/bin/mise` of the gzip tarball `tarball` (read from
/// `path`, named in errors) to [`MISE_PATH`] mode 0755, and its licence to
/// [`MISE_LICENSE_PATH`] if the package has one. The binary is copied
/// byte for byte: stripping it breaks it. A refusal fails the build, whose
/// staging directory (the tree in it) is then removed.
pub(crate) fn install(
    tree: &GuestTree,
    tarball: File,
    path: &Path,
) -> Result<Installed, ImageError> {
    let tar_err = |source| MiseError::Tar {
        path: path.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(tarball)));
    let mut installed = Installed {
        binary_size: 0,
        license: false,
    };
    let mut found_binary = false;
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = entry_name(&entry, path)?;
        let (limit, dest, mode, what) = match name.as_str() {
            BINARY_ENTRY => (MAX_BINARY, MISE_PATH, 0o755, BINARY_ENTRY),
            LICENSE_ENTRY => (MAX_LICENSE, MISE_LICENSE_PATH, 0o644, LICENSE_ENTRY),
            _ => continue,
        };
        let unsafe_entry = |reason| MiseError::UnsafeEntry {
            path: path.to_owned(),
            entry: name.clone(),
            reason,
        };
        if !entry.header().entry_type().is_file() {
            return Err(unsafe_entry("is not a regular file").into());
        }
        let seen = if what == BINARY_ENTRY {
            &mut found_binary
        } else {
            &mut installed.license
        };
        if std::mem::replace(seen, true) {
            return Err(unsafe_entry("appears twice").into());
        }
        let size = entry.size();
        if size > limit {
            return Err(MiseError::TooLarge {
                path: path.to_owned(),
                entry: what,
                size,
                limit,
            }
            .into());
        }
        // The entry reads exactly `size` bytes, so the cap holds while copying.
        tree.write_file(dest, &mut entry, mode)?;
        if what == BINARY_ENTRY {
            installed.binary_size = size;
        }
    }
    if !found_binary {
        return Err(MiseError::MissingEntry {
            path: path.to_owned(),
            entry: BINARY_ENTRY,
        }
        .into());
    }
    Ok(installed)
}

/// The entry's path with `.` and empty components dropped; an absolute one
/// or one that climbs with `..` is refused.
fn entry_name<R: std::io::Read>(
    entry: &tar::Entry<'_, R>,
    path: &Path,
) -> Result<String, MiseError> {
    let raw = entry.path().map_err(|source| MiseError::Tar {
        path: path.to_owned(),
        source,
    })?;
    let refuse = |reason| MiseError::UnsafeEntry {
        path: path.to_owned(),
        entry: raw.to_string_lossy().into_owned(),
        reason,
    };
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy()),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("is absolute")),
        }
    }
    Ok(parts.join("/"))
}
