//! Getting bytes from a mirror. [`Fetch`] is the boundary (HTTP in
//! production, a directory in tests); everything above it enforces the size
//! caps and hashes, so a fake fetcher exercises the same checks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::error::DebianError;

/// How long to wait for a mirror to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one read may stall before the download is abandoned; generous
/// because mirrors throttle, but a hung connection must not hang `banger`.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The host's CA bundle (Debian's ca-certificates, plus any CA added with
/// `update-ca-certificates`), trusted for https as curl, apt and npm trust
/// it: a host whose TLS passes through a CA of its own reaches https URLs
/// too. Without it, ureq's built-in roots.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where archive files come from.
pub trait Fetch: Send + Sync {
    /// Opens `url` for reading. A missing file is [`DebianError::NotFound`].
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, DebianError>;

    /// Checks cheaply (HTTP `HEAD`) that `url` answers, without reading it.
    fn probe(&self, url: &str) -> Result<(), DebianError>;
}

/// [`Fetch`] over HTTP(S) with timeouts and banger's User-Agent.
#[derive(Clone)]
pub struct HttpFetch {
    agent: ureq::Agent,
}

impl HttpFetch {
    pub fn new() -> Self {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls_config(Path::new(SYSTEM_CA_BUNDLE)) {
            builder = builder.tls_config(tls);
        }
        Self {
            agent: builder.build(),
        }
    }
}

/// A TLS client trusting the certificates of the PEM `bundle`; `None` if
/// it is missing or holds none, and ureq's own roots are used instead.
fn tls_config(bundle: &Path) -> Option<Arc<rustls::ClientConfig>> {
    let certs = CertificateDer::pem_file_iter(bundle).ok()?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs.filter_map(Result::ok));
    if added == 0 {
        return None;
    }
    tracing::debug!(bundle = %bundle.display(), added, ignored, "trusting the host's CA bundle");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

impl Default for HttpFetch {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetch for HttpFetch {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, DebianError> {
        let response = self.agent.get(url).call().map_err(|e| http_error(url, e))?;
        Ok(Box::new(response.into_reader()))
    }

    fn probe(&self, url: &str) -> Result<(), DebianError> {
        self.agent
            .head(url)
            .call()
            .map(drop)
            .map_err(|e| http_error(url, e))
    }
}

fn http_error(url: &str, err: ureq::Error) -> DebianError {
    match err {
        ureq::Error::Status(status @ (404 | 410), _) => DebianError::NotFound {
            url: url.to_owned(),
            status,
        },
        ureq::Error::Status(status, _) => DebianError::Http {
            url: url.to_owned(),
            status,
        },
        ureq::Error::Transport(t) => DebianError::Transport {
            url: url.to_owned(),
            source: io::Error::other(t),
        },
    }
}

/// What a signed index promises about a file: its exact size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Reads all of `url` into memory, failing past `limit` bytes. Used only for
/// files whose integrity is checked another way (the signed `InRelease`).
pub fn read_capped(fetch: &dyn Fetch, url: &str, limit: u64) -> Result<Vec<u8>, DebianError> {
    let mut out = Vec::new();
    copy_hashed(fetch.open(url)?, &mut out, url, limit)?;
    Ok(out)
}

/// Reads all of `url` into memory, checking it against `expected`.
pub(crate) fn read_verified(
    fetch: &dyn Fetch,
    url: &str,
    expected: &Expected,
) -> Result<Vec<u8>, DebianError> {
    let mut out = Vec::new();
    let (size, sha) = copy_hashed(fetch.open(url)?, &mut out, url, expected.size)?;
    check(url, expected, size, sha)?;
    Ok(out)
}

/// Downloads `url` to `dest`, checked against `expected`. The bytes go to a
/// hidden temporary file beside `dest` and are renamed into place only once
/// size and hash match, so `dest` never holds a partial or unverified file.
pub fn download_verified(
    fetch: &dyn Fetch,
    url: &str,
    expected: &Expected,
    dest: &Path,
) -> Result<(), DebianError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut staged = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(parent)
        .map_err(|e| DebianError::io("create a temporary file in", parent, e))?;
    let (size, sha) = copy_hashed(fetch.open(url)?, staged.as_file_mut(), url, expected.size)?;
    check(url, expected, size, sha)?;
    staged
        .as_file()
        .sync_all()
        .map_err(|e| DebianError::io("flush", staged.path(), e))?;
    staged
        .persist(dest)
        .map_err(|e| DebianError::io("move the download to", dest, e.error))?;
    Ok(())
}

/// Opens a file for reading, naming it in the error.
pub(crate) fn open_file(path: &Path) -> Result<File, DebianError> {
    File::open(path).map_err(|e| DebianError::io("open", path, e))
}

fn check(url: &str, expected: &Expected, size: u64, sha: [u8; 32]) -> Result<(), DebianError> {
    if size != expected.size {
        return Err(DebianError::SizeMismatch {
            url: url.to_owned(),
            expected: expected.size,
            actual: size,
        });
    }
    if sha != expected.sha256 {
        return Err(DebianError::HashMismatch {
            url: url.to_owned(),
            expected: hex::encode(expected.sha256),
            actual: hex::encode(sha),
        });
    }
    Ok(())
}

/// Copies `reader` to `out`, hashing on the way, and stops with
/// [`DebianError::TooLarge`] as soon as more than `limit` bytes arrive, so a
/// hostile server cannot fill the disk or memory.
fn copy_hashed(
    mut reader: impl Read,
    out: &mut dyn Write,
    url: &str,
    limit: u64,
) -> Result<(u64, [u8; 32]), DebianError> {
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let transport = |source| DebianError::Transport {
        url: url.to_owned(),
        source,
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transport(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(DebianError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(transport)?;
    }
    Ok((total, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::testing::DirFetch;

    fn expected_for(bytes: &[u8]) -> Expected {
        Expected {
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        }
    }

    #[test]
    fn the_host_ca_bundle_is_trusted_when_it_holds_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"no certificates here\n").unwrap();
        assert!(tls_config(&empty).is_none());
        assert!(tls_config(&dir.path().join("missing.pem")).is_none());
        if Path::new(SYSTEM_CA_BUNDLE).is_file() {
            assert!(tls_config(Path::new(SYSTEM_CA_BUNDLE)).is_some());
        }
    }

    #[test]
    fn a_verified_download_lands_whole_and_leaves_no_temporary_file() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("f"), b"hello").unwrap();
        let fetch = DirFetch::new(served.path());
        let dest_dir = tempfile::tempdir().unwrap();
        let dest = dest_dir.path().join("f");
        download_verified(&fetch, &fetch.url("f"), &expected_for(b"hello"), &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dest_dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_tampered_download_is_rejected_and_never_becomes_visible() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("f"), b"hellO").unwrap();
        let fetch = DirFetch::new(served.path());
        let dest_dir = tempfile::tempdir().unwrap();
        let dest = dest_dir.path().join("f");
        let err =
            download_verified(&fetch, &fetch.url("f"), &expected_for(b"hello"), &dest).unwrap_err();
        assert!(matches!(err, DebianError::HashMismatch { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dest_dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_download_longer_than_declared_stops_at_the_cap() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("f"), vec![7u8; 200_000]).unwrap();
        let fetch = DirFetch::new(served.path());
        let err = read_verified(&fetch, &fetch.url("f"), &expected_for(&[7u8; 1000])).unwrap_err();
        assert!(
            matches!(err, DebianError::TooLarge { limit: 1000, .. }),
            "{err}"
        );
        let err = read_capped(&fetch, &fetch.url("f"), 199_999).unwrap_err();
        assert!(matches!(err, DebianError::TooLarge { .. }), "{err}");
        assert_eq!(
            read_capped(&fetch, &fetch.url("f"), 200_000).unwrap().len(),
            200_000
        );
    }

    #[test]
    fn a_short_download_is_a_size_mismatch() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("f"), b"hell").unwrap();
        let fetch = DirFetch::new(served.path());
        let err = read_verified(&fetch, &fetch.url("f"), &expected_for(b"hello")).unwrap_err();
        assert!(
            matches!(
                err,
                DebianError::SizeMismatch {
                    expected: 5,
                    actual: 4,
                    ..
                }
            ),
            "{err}"
        );
    }
}
