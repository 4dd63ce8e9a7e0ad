//! The packages of the configured suites, read from their verified
//! `Packages` indices, and choosing among them as apt would (newest version
//! satisfying a relation).

use std::collections::HashMap;
use std::io::BufReader;

use super::deb822;
use super::error::DebianError;
use super::limit::{LimitedWriter, is_limit};
use super::package::{Package, Relation};
use super::version;

/// Largest decompressed `Packages` file accepted (bookworm's main/amd64 is
/// about 50 MB).
const MAX_INDEX_TEXT: u64 = 1 << 30;

#[derive(Debug, Clone, Default)]
pub struct PackageIndex {
    by_name: HashMap<String, Vec<Package>>,
    suites: Vec<String>,
}

/// How a `Packages` index is compressed on the mirror, in order of
/// preference (smallest download first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexFormat {
    Xz,
    Gzip,
}

impl IndexFormat {
    pub const PREFERENCE: [IndexFormat; 2] = [IndexFormat::Xz, IndexFormat::Gzip];

    pub fn file_name(self) -> &'static str {
        match self {
            IndexFormat::Xz => "Packages.xz",
            IndexFormat::Gzip => "Packages.gz",
        }
    }

    fn name(self) -> &'static str {
        match self {
            IndexFormat::Xz => "xz",
            IndexFormat::Gzip => "gzip",
        }
    }
}

impl PackageIndex {
    /// Adds the packages of one decompressed `Packages` text whose names
    /// `keep` accepts; `what` names the file in errors.
    pub fn add_packages(
        &mut self,
        text: &str,
        suite: &str,
        what: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<usize, DebianError> {
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_owned());
        }
        let mut added = 0;
        for stanza in deb822::stanzas(text) {
            let stanza = stanza.map_err(|e| DebianError::Malformed {
                what: what.to_owned(),
                line: e.line,
                detail: e.detail,
            })?;
            // Only the packages asked for must be well-formed: an odd stanza
            // elsewhere in the archive must not block a kernel pull.
            if !stanza.get("Package").is_some_and(keep) {
                continue;
            }
            let package =
                Package::from_stanza(&stanza, suite).map_err(|detail| DebianError::Malformed {
                    what: what.to_owned(),
                    line: stanza.line,
                    detail,
                })?;
            self.by_name
                .entry(package.name.clone())
                .or_default()
                .push(package);
            added += 1;
        }
        Ok(added)
    }

    /// Number of package versions held.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The newest version of `name` in any suite.
    pub fn newest(&self, name: &str) -> Result<&Package, DebianError> {
        self.resolve(&Relation {
            name: name.to_owned(),
            constraint: None,
        })
    }

    /// The newest package satisfying `relation`.
    pub fn resolve(&self, relation: &Relation) -> Result<&Package, DebianError> {
        self.by_name
            .get(&relation.name)
            .into_iter()
            .flatten()
            .filter(|p| relation.accepts(&p.version))
            .max_by(|a, b| version::compare(&a.version, &b.version))
            .ok_or_else(|| DebianError::PackageNotFound {
                package: relation.to_string(),
                suites: self.suites.join(", "),
            })
    }
}

/// Decompresses a downloaded (and already verified) `Packages` index.
pub fn decompress(bytes: &[u8], format: IndexFormat, what: &str) -> Result<String, DebianError> {
    let fail = |source| DebianError::Decompress {
        what: what.to_owned(),
        format: format.name(),
        source,
    };
    let mut out = LimitedWriter::new(Vec::new(), MAX_INDEX_TEXT);
    match format {
        IndexFormat::Xz => lzma_rs::xz_decompress(&mut BufReader::new(bytes), &mut out)
            .map_err(|e| fail(lzma_io_error(e)))?,
        IndexFormat::Gzip => {
            std::io::copy(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)
                .map(drop)
                .map_err(fail)?;
        }
    }
    String::from_utf8(out.into_inner()).map_err(|_| DebianError::Malformed {
        what: what.to_owned(),
        line: 1,
        detail: "the index is not UTF-8".into(),
    })
}

/// lzma-rs wraps the writer's errors; unwrap them so a hit limit stays
/// recognisable.
pub(crate) fn lzma_io_error(err: lzma_rs::error::Error) -> std::io::Error {
    match err {
        lzma_rs::error::Error::IoError(e) if is_limit(&e) => e,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn stanza(name: &str, version: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nFilename: pool/{name}_{version}.deb\nSize: 1\n\
             SHA256: {}\n\n",
            "00".repeat(32)
        )
    }

    #[test]
    fn the_newest_matching_version_across_suites_wins() {
        let mut index = PackageIndex::default();
        let main = stanza("k", "6.1.170-1") + &stanza("other", "1");
        index
            .add_packages(&main, "bookworm", "main", &|n| n == "k")
            .unwrap();
        index
            .add_packages(
                &stanza("k", "6.1.176-1"),
                "bookworm-updates",
                "upd",
                &|_| true,
            )
            .unwrap();
        assert_eq!(index.len(), 2);
        let newest = index.newest("k").unwrap();
        assert_eq!(
            (newest.version.as_str(), newest.suite.as_str()),
            ("6.1.176-1", "bookworm-updates")
        );
        let pinned = &crate::debian::package::parse_depends("k (= 6.1.170-1)")[0][0];
        assert_eq!(index.resolve(pinned).unwrap().suite, "bookworm");

        let err = index.newest("other").unwrap_err();
        assert!(matches!(err, DebianError::PackageNotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("bookworm, bookworm-updates"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_wanted_stanza_is_an_error_but_an_unwanted_one_is_not() {
        let text = "Package: odd\nVersion: 1\n\n".to_owned() + &stanza("k", "1");
        let mut index = PackageIndex::default();
        index
            .add_packages(&text, "s", "Packages", &|n| n == "k")
            .unwrap();
        let err = index
            .add_packages(&text, "s", "Packages", &|_| true)
            .unwrap_err();
        assert!(
            matches!(&err, DebianError::Malformed { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn indices_decompress_from_xz_and_gzip() {
        let text = stanza("k", "1");
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut text.as_bytes(), &mut xz).unwrap();
        assert_eq!(decompress(&xz, IndexFormat::Xz, "x").unwrap(), text);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(&gz, IndexFormat::Gzip, "x").unwrap(), text);

        let err = decompress(&gz, IndexFormat::Xz, "Packages.xz").unwrap_err();
        assert!(
            matches!(err, DebianError::Decompress { format: "xz", .. }),
            "{err}"
        );
    }
}
