//! The one error type of the Debian archive client. Every variant names the
//! URL, file or package involved and says what to do about it.

use std::io;
use std::path::PathBuf;

use banger_sys::ProcessError;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error(
        "{url} does not exist (HTTP {status}); check the mirror (or release) URL and the suite"
    )]
    NotFound { url: String, status: u16 },

    #[error(
        "{url} answered HTTP {status}; the server may be down, try again later or use another mirror"
    )]
    Http { url: String, status: u16 },

    #[error("cannot fetch {url}; check the network and the URL")]
    Transport {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "{url} is larger than the {limit} bytes banger accepts for it; the server is sending something unexpected"
    )]
    TooLarge { url: String, limit: u64 },

    #[error(
        "{url} is {actual} bytes but its signed listing says {expected}; the server may be mid-update, try again"
    )]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "{url} has sha256 {actual} but its signed listing says {expected}; the download is corrupt or tampered with, try again"
    )]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the Debian archive keyring {} does not exist; install the debian-archive-keyring package or set the keyring path", keyring.display())]
    KeyringMissing { keyring: PathBuf },

    #[error("the signature of {url} did not verify against {}; the file is tampered with or the keyring is outdated (update debian-archive-keyring)", keyring.display())]
    BadSignature {
        url: String,
        keyring: PathBuf,
        #[source]
        source: ProcessError,
    },

    #[error("gpgv reported no good signature on {url} with {}: {detail}; update debian-archive-keyring", keyring.display())]
    NoGoodSignature {
        url: String,
        keyring: PathBuf,
        detail: String,
    },

    #[error(
        "{url} is not a clear-signed file (it must start with the PGP signed-message header); the mirror is not a Debian archive"
    )]
    NotClearSigned { url: String },

    #[error(
        "{url} is the release file of {found:?}, not of {expected:?}; the mirror serves the wrong suite"
    )]
    WrongSuite {
        url: String,
        expected: String,
        found: String,
    },

    #[error(
        "{url} expired on {valid_until}; the mirror is stale (or the host clock is wrong), use another mirror"
    )]
    Expired { url: String, valid_until: String },

    #[error("{what} line {line}: {detail}")]
    Malformed {
        what: String,
        line: usize,
        detail: String,
    },

    #[error(
        "the release file of {suite} lists no {component}/binary-{arch}/Packages index (.xz or .gz); check the suite and architecture"
    )]
    IndexMissing {
        suite: String,
        component: String,
        arch: String,
    },

    #[error("cannot decompress {what} ({format})")]
    Decompress {
        what: String,
        format: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("package {package} is not in {suites}; check its name and the configured suites")]
    PackageNotFound { package: String, suites: String },

    #[error("package {package} has an unsafe file name {filename:?}; refusing to download it")]
    UnsafeFilename { package: String, filename: String },

    #[error("{} is not a Debian package: {detail}", path.display())]
    BadDeb { path: PathBuf, detail: String },

    #[error("{} holds an entry {entry:?} that {reason}; refusing to extract it", path.display())]
    UnsafeEntry {
        path: PathBuf,
        entry: String,
        reason: &'static str,
    },

    #[error("cannot read {} as a tar archive", path.display())]
    Tar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DebianError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DebianError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when the server said the file does not exist, so a caller can try
    /// an alternative (e.g. `Packages.gz` after `Packages.xz`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DebianError::NotFound { .. })
    }
}
