//! Why the default image could not get mise. Every variant names the
//! package, URL or file involved and says what to do about it.

use std::io;
use std::path::PathBuf;

use banger_sys::ProcessError;

use crate::debian::DebianError;

#[derive(Debug, thiserror::Error)]
pub enum MiseError {
    #[error(
        "npm is not installed; the default image gets mise from the npm registry package \
         {package}, whose download URL banger asks `npm view` for: install it \
         (Debian/Ubuntu: `apt-get install npm`), or build the minimal image, which has no mise"
    )]
    NpmMissing { package: &'static str },

    /// `npm view` failed; the source carries argv, status and stderr.
    #[error(
        "cannot resolve the download URL of {spec} with `npm view`; check that npm reaches \
         its registry (`npm view {spec}`)"
    )]
    Resolve {
        spec: String,
        #[source]
        source: ProcessError,
    },

    #[error("`npm view {spec} dist.tarball` answered {answer:?}, not an http(s) URL")]
    BadUrl { spec: String, answer: String },

    #[error("{url} answered HTTP {status}; the npm registry may be down, try again later")]
    Http { url: String, status: u16 },

    #[error("cannot fetch {url}; check the network")]
    Transport {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "{url} is not the {spec} tarball banger pins ({detail}); refusing it: the registry \
         or something between it and this host served other bytes"
    )]
    NotPinned {
        url: String,
        spec: String,
        detail: String,
    },

    #[error("cannot download {url}")]
    Download {
        url: String,
        #[source]
        source: Box<DebianError>,
    },

    #[error("cannot read {} as a gzip tar archive", path.display())]
    Tar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} holds an entry {entry:?} that {reason}; refusing it", path.display())]
    UnsafeEntry {
        path: PathBuf,
        entry: String,
        reason: &'static str,
    },

    #[error(
        "{entry} in {} is {size} bytes, more than the {limit} banger accepts for it",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        entry: &'static str,
        size: u64,
        limit: u64,
    },

    #[error("{} has no {entry}; it is not mise's npm package", path.display())]
    MissingEntry { path: PathBuf, entry: &'static str },
}

impl MiseError {
    /// A failed verified download of `url`, in the words of a pinned npm
    /// tarball rather than of a Debian mirror's signed index.
    pub(crate) fn download(url: &str, spec: &str, err: DebianError) -> crate::images::ImageError {
        let url = url.to_owned();
        let not_pinned = |detail: String| MiseError::NotPinned {
            url: url.clone(),
            spec: spec.to_owned(),
            detail,
        };
        let err = match err {
            DebianError::Io {
                action,
                path,
                source,
            } => {
                return crate::images::ImageError::Io {
                    action,
                    path,
                    source,
                };
            }
            DebianError::NotFound { status, .. } | DebianError::Http { status, .. } => {
                MiseError::Http { url, status }
            }
            DebianError::Transport { source, .. } => MiseError::Transport { url, source },
            DebianError::TooLarge { limit, .. } => not_pinned(format!("larger than {limit} bytes")),
            DebianError::SizeMismatch {
                expected, actual, ..
            } => not_pinned(format!("{actual} bytes, pinned {expected}")),
            DebianError::HashMismatch {
                expected, actual, ..
            } => not_pinned(format!("sha256 {actual}, pinned {expected}")),
            source => MiseError::Download {
                url,
                source: Box::new(source),
            },
        };
        err.into()
    }
}
