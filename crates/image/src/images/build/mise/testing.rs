//! Test doubles for mise's download: tarballs made in the test, a fetcher
//! serving bytes from memory, a resolver answering a fixed URL. Both count
//! their calls, so a test can tell a cache hit from a download.

use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::{MisePin, MiseSource, ResolveTarball};
use crate::debian::{DebianError, Expected, Fetch};

pub(crate) const URL: &str = "test://npm/mise-linux-x64-9.9.9.tgz";

/// One entry of a test tarball.
pub(crate) enum Item<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    /// A regular file whose header claims `u64` bytes; no data follows.
    Claims(&'a str, u64),
}

/// A gzip tarball of `items`, names written verbatim (`..` included, which
/// tar's own path setter would refuse).
pub(crate) fn tarball(items: &[Item<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for item in items {
        let mut header = tar::Header::new_gnu();
        let (name, data, size): (&str, &[u8], u64) = match item {
            Item::File(name, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                (name, data, data.len() as u64)
            }
            Item::Claims(name, size) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                (name, &[], *size)
            }
            Item::Symlink(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                header.set_mode(0o777);
                (name, &[], 0)
            }
        };
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(size);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// mise's package as npm lays it out, with `binary` as the executable.
pub(crate) fn package(binary: &[u8]) -> Vec<u8> {
    tarball(&[
        Item::File("package/LICENSE", b"MIT License\n"),
        Item::File("package/README.md", b"# mise\n"),
        Item::File("package/bin/mise", binary),
        Item::File("package/package.json", b"{}"),
    ])
}

/// A pin for exactly `bytes`.
pub(crate) fn pin_for(bytes: &[u8]) -> MisePin {
    MisePin {
        package: "@test/mise",
        version: "9.9.9",
        tarball: Expected {
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        },
    }
}

/// Serves `bytes` at [`URL`].
#[derive(Default)]
pub(crate) struct Served {
    pub(crate) bytes: Mutex<Vec<u8>>,
    pub(crate) opens: AtomicUsize,
}

impl Served {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Mutex::new(bytes),
            opens: AtomicUsize::new(0),
        }
    }

    pub(crate) fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
}

impl Fetch for Served {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, DebianError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        if url != URL {
            return Err(DebianError::NotFound {
                url: url.to_owned(),
                status: 404,
            });
        }
        Ok(Box::new(Cursor::new(self.bytes.lock().unwrap().clone())))
    }

    fn probe(&self, _url: &str) -> Result<(), DebianError> {
        Ok(())
    }
}

/// Answers [`URL`] for every package.
#[derive(Default)]
pub(crate) struct FixedUrl {
    pub(crate) calls: AtomicUsize,
}

impl ResolveTarball for FixedUrl {
    fn tarball_url(&self, _package: &str, _version: &str) -> Result<String, super::MiseError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(URL.to_owned())
    }
}

impl FixedUrl {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A source over `served` and `resolver`.
pub(crate) fn source<'a>(served: &'a Served, resolver: &'a FixedUrl) -> MiseSource<'a> {
    MiseSource {
        resolver,
        fetch: served,
    }
}
