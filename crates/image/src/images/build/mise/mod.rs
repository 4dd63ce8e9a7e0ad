//! mise (the dev-tool manager) in the default image, from its npm package.
//!
//! The package registries banger's hosts reach are Debian's, crates.io,
//! PyPI and npm's, and Debian has no mise for bookworm; mise's own npm
//! package `@jdxcode/mise-linux-x64` carries the release binary. The
//! version, size and sha256 of its tarball are pinned here ([`MISE`]): npm
//! only says where the tarball is (`npm view`, [`NpmView`]), the pin says
//! what it must be. The verified tarball is kept in the build's cache
//! directory, named by its sha256, and checked again before every use.

mod error;
mod extract;
mod npm;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::fs::{DirBuilder, File};
use std::io::{self, Seek};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use self::error::MiseError;
pub use self::npm::NpmView;
use crate::debian::{Expected, Fetch, download_verified};
use crate::images::error::ImageError;
pub(crate) use extract::install;

/// Where the binary goes in the guest: on every user's PATH.
pub const MISE_PATH: &str = "/usr/local/bin/mise";
/// mise's licence (MIT), beside the binary it covers.
pub const MISE_LICENSE_PATH: &str = "/usr/local/share/doc/mise/LICENSE";

/// The mise release the default image carries. Changing it changes the
/// recipe hash, so default images are rebuilt with the new one.
pub const MISE: MisePin = MisePin {
    package: "@jdxcode/mise-linux-x64",
    version: "2026.9.15",
    tarball: Expected {
        size: 52_298_098,
        sha256: sha256_hex("b51f2463bc4fcdc3b0959b1454792f64be3612e73d856cbca4a062e39e070e74"),
    },
};

/// One release of an npm package that holds mise, and the exact tarball
/// banger accepts for it (whatever the registry says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MisePin {
    pub package: &'static str,
    pub version: &'static str,
    pub tarball: Expected,
}

impl MisePin {
    /// `package@version`, as npm names it.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.package, self.version)
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.tarball.sha256)
    }

    /// The cached tarball's file name: the sha256 is the key, so a new pin
    /// never reads an old pin's file.
    fn file_name(&self) -> String {
        format!("mise-{}.tgz", self.sha256_hex())
    }
}

/// Finds the download URL of one version of an npm package.
pub trait ResolveTarball: Send + Sync {
    fn tarball_url(&self, package: &str, version: &str) -> Result<String, MiseError>;
}

/// Where the build gets mise's tarball from: who says where it is, and who
/// downloads it.
#[derive(Clone, Copy)]
pub struct MiseSource<'a> {
    pub resolver: &'a dyn ResolveTarball,
    pub fetch: &'a dyn Fetch,
}

/// The verified tarball of `pin`, open at its start: the copy in `dir` if
/// it still verifies, else a fresh download into `dir` (temporary file,
/// renamed only once verified). Other pins' tarballs in `dir` are removed.
pub(crate) fn obtain(
    pin: &MisePin,
    dir: &Path,
    source: MiseSource<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<(File, PathBuf), ImageError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ImageError::io("create the download cache", dir, e))?;
    let path = dir.join(pin.file_name());
    if let Some(file) = open_verified(&path, &pin.tarball)? {
        progress(&format!(
            "mise {} is cached ({}), verified",
            pin.version,
            path.display()
        ));
        prune(dir, &pin.file_name());
        return Ok((file, path));
    }
    if path.exists() {
        tracing::warn!(path = %path.display(), "the cached mise tarball no longer verifies; downloading it again");
    }
    let url = source.resolver.tarball_url(pin.package, pin.version)?;
    progress(&format!(
        "downloading mise {} ({} MiB) from {url}",
        pin.version,
        pin.tarball.size.div_ceil(1024 * 1024)
    ));
    download_verified(source.fetch, &url, &pin.tarball, &path)
        .map_err(|e| MiseError::download(&url, &pin.spec(), e))?;
    // Read back through the same check as a cached copy: what is extracted
    // is what was verified on this open file.
    let file = open_verified(&path, &pin.tarball)?.ok_or_else(|| MiseError::NotPinned {
        url: url.clone(),
        spec: pin.spec(),
        detail: format!("{} changed after its download", path.display()),
    })?;
    prune(dir, &pin.file_name());
    Ok((file, path))
}

/// `path` opened and rewound if it has exactly the expected size and
/// sha256; `None` if it is missing or differs.
fn open_verified(path: &Path, expected: &Expected) -> Result<Option<File>, ImageError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io("open", path, e)),
    };
    let read = |e| ImageError::io("read", path, e);
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() || meta.len() != expected.size {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(read)?;
    if <[u8; 32]>::from(hasher.finalize()) != expected.sha256 {
        return Ok(None);
    }
    file.rewind().map_err(read)?;
    Ok(Some(file))
}

/// Removes the tarballs of earlier pins, which nothing will read again.
/// Best effort: a leftover only costs disk space.
fn prune(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("mise-") && name.ends_with(".tgz") && name != keep {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed an old mise tarball")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove an old mise tarball")
                }
            }
        }
    }
}

/// A sha256 written as 64 lowercase hex digits, decoded at compile time so a
/// mistyped pin does not build.
const fn sha256_hex(hex: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("a sha256 is written in 0-9 and a-f"),
        }
    }
    let b = hex.as_bytes();
    assert!(b.len() == 64, "a sha256 is 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}
