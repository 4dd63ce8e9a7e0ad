//! Talking to one Debian mirror: the signed release file of each configured
//! suite, the package indices it vouches for, and `.deb` downloads checked
//! against them. The chain of trust is keyring → `InRelease` signature →
//! index SHA-256 → package SHA-256, as with apt.

use std::path::{Component, Path, PathBuf};

use time::OffsetDateTime;

use super::error::DebianError;
use super::fetch::{self, Fetch};
use super::gpgv;
use super::index::{self, IndexFormat, PackageIndex};
use super::package::Package;
use super::release::Release;

/// Largest `InRelease` accepted (bookworm's is about 150 KB).
const MAX_INRELEASE: u64 = 4 << 20;

/// Where and what to fetch. Security updates live on a different host
/// (`security.debian.org/debian-security`, suite `bookworm-security`); a
/// second `DebianMirror` with that base URL can read them, but the default
/// sticks to one mirror: point releases fold security fixes into `bookworm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianMirror {
    pub base_url: String,
    /// Searched together; the newest version of a package wins.
    pub suites: Vec<String>,
    pub component: String,
    pub arch: String,
    pub keyring: PathBuf,
}

impl Default for DebianMirror {
    fn default() -> Self {
        Self {
            base_url: "http://deb.debian.org/debian".into(),
            suites: vec!["bookworm".into(), "bookworm-updates".into()],
            component: "main".into(),
            arch: "amd64".into(),
            keyring: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
        }
    }
}

impl DebianMirror {
    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    pub fn inrelease_url(&self, suite: &str) -> String {
        format!("{}/dists/{suite}/InRelease", self.base())
    }

    /// A human description for manifests and logs: `debian bookworm`.
    pub fn describe(&self) -> String {
        format!("debian {}", self.suites.first().map_or("", String::as_str))
    }
}

/// A mirror reached through a [`Fetch`].
pub struct Archive<'a> {
    mirror: &'a DebianMirror,
    fetch: &'a dyn Fetch,
}

impl<'a> Archive<'a> {
    pub fn new(mirror: &'a DebianMirror, fetch: &'a dyn Fetch) -> Self {
        Self { mirror, fetch }
    }

    pub fn mirror(&self) -> &DebianMirror {
        self.mirror
    }

    /// Checks that the mirror answers (a `HEAD` of the first suite's
    /// `InRelease`), without downloading anything.
    pub fn probe(&self) -> Result<(), DebianError> {
        let suite = self.mirror.suites.first().map_or("", String::as_str);
        self.fetch.probe(&self.mirror.inrelease_url(suite))
    }

    /// Fetches, verifies and parses one suite's `InRelease`. `work` is a
    /// scratch directory for the files gpgv reads and writes.
    pub fn release(&self, suite: &str, work: &Path) -> Result<Release, DebianError> {
        let url = self.mirror.inrelease_url(suite);
        let raw = fetch::read_capped(self.fetch, &url, MAX_INRELEASE)?;
        let scratch = tempfile::Builder::new()
            .prefix(".inrelease-")
            .tempdir_in(work)
            .map_err(|e| DebianError::io("create a temporary directory in", work, e))?;
        let signed = scratch.path().join("InRelease");
        std::fs::write(&signed, &raw).map_err(|e| DebianError::io("write", &signed, e))?;
        let out = scratch.path().join("out");
        std::fs::create_dir(&out).map_err(|e| DebianError::io("create", &out, e))?;
        let text = gpgv::verify_clearsigned(&self.mirror.keyring, &signed, &url, &out)?;
        let release = Release::parse(&text, &url)?;
        release.check(suite, &url, OffsetDateTime::now_utc())?;
        Ok(release)
    }

    /// Loads the packages whose names `keep` accepts from every configured
    /// suite. Each index is checked against its signed release file before
    /// it is decompressed.
    pub fn index(
        &self,
        work: &Path,
        keep: &dyn Fn(&str) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PackageIndex, DebianError> {
        let mut index = PackageIndex::default();
        for suite in &self.mirror.suites {
            progress(&format!("fetching {suite} InRelease"));
            let release = self.release(suite, work)?;
            progress(&format!("verified the signature of {suite} InRelease"));
            let (format, url, text) = self.packages_text(suite, &release, progress)?;
            let added = index.add_packages(&text, suite, &url, keep)?;
            tracing::debug!(%suite, %url, ?format, added, "read package index");
        }
        Ok(index)
    }

    /// Downloads the best available `Packages` index of `suite` and returns
    /// its text.
    fn packages_text(
        &self,
        suite: &str,
        release: &Release,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(IndexFormat, String, String), DebianError> {
        let dir = format!("{}/binary-{}", self.mirror.component, self.mirror.arch);
        for format in IndexFormat::PREFERENCE {
            let rel = format!("{dir}/{}", format.file_name());
            let Some(expected) = release.files.get(&rel) else {
                continue;
            };
            // by-hash names cannot change while the mirror updates, so the
            // file always matches the release file just read; the plain name
            // is the fallback for mirrors that lag behind on by-hash.
            let plain = format!("{}/dists/{suite}/{rel}", self.mirror.base());
            let mut urls = vec![plain];
            if release.acquire_by_hash {
                let by_hash = format!(
                    "{}/dists/{suite}/{dir}/by-hash/SHA256/{}",
                    self.mirror.base(),
                    hex::encode(expected.sha256)
                );
                urls.insert(0, by_hash);
            }
            progress(&format!(
                "fetching {suite} {} ({} MiB)",
                format.file_name(),
                expected.size.div_ceil(1 << 20)
            ));
            for url in urls {
                let bytes = match fetch::read_verified(self.fetch, &url, expected) {
                    Err(e) if e.is_not_found() => continue,
                    other => other?,
                };
                let text = index::decompress(&bytes, format, &url)?;
                return Ok((format, url, text));
            }
        }
        Err(DebianError::IndexMissing {
            suite: suite.to_owned(),
            component: self.mirror.component.clone(),
            arch: self.mirror.arch.clone(),
        })
    }

    /// Downloads `package` into `dest_dir`, verified against the size and
    /// SHA-256 its signed index gave, and returns the file's path.
    pub fn download_deb(&self, package: &Package, dest_dir: &Path) -> Result<PathBuf, DebianError> {
        let file_name =
            safe_pool_path(&package.filename).ok_or_else(|| DebianError::UnsafeFilename {
                package: package.name.clone(),
                filename: package.filename.clone(),
            })?;
        let url = format!("{}/{}", self.mirror.base(), package.filename);
        let dest = dest_dir.join(file_name);
        fetch::download_verified(self.fetch, &url, &package.expected(), &dest)?;
        Ok(dest)
    }
}

/// The file name of a pool path when the path is a plain relative one made
/// of ordinary characters; `None` for anything that could address something
/// else (`..`, absolute, query strings).
fn safe_pool_path(filename: &str) -> Option<&str> {
    let ok_chars = filename
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-._~/:".contains(&b));
    let path = Path::new(filename);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok_chars || !plain || filename.contains("//") || !filename.ends_with(".deb") {
        return None;
    }
    path.file_name()?.to_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_paths_must_be_plain_relative_deb_paths() {
        assert_eq!(
            safe_pool_path(
                "pool/main/l/linux/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb"
            ),
            Some("linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb")
        );
        for bad in [
            "../x.deb",
            "/etc/x.deb",
            "pool/../../x.deb",
            "pool/x.deb?y=1",
            "pool//x.deb",
            "pool/x.tar",
            "./pool/x.deb",
        ] {
            assert_eq!(safe_pool_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_join_the_base_without_double_slashes() {
        let m = DebianMirror {
            base_url: "http://m/debian/".into(),
            ..DebianMirror::default()
        };
        assert_eq!(
            m.inrelease_url("bookworm"),
            "http://m/debian/dists/bookworm/InRelease"
        );
        assert_eq!(m.describe(), "debian bookworm");
    }
}
