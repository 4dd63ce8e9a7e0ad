//! Small validated string settings: program paths, directories, image and
//! kernel names, the catalog URL, the stats poll interval.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::duration::HumanDuration;

pub(crate) const DEFAULT_IMAGE_NAME: &str = "debian-bookworm";
pub(crate) const DEFAULT_KERNEL_NAME: &str = "debian-cloud-amd64";

/// A program to run: an absolute path, or a bare name looked up in `PATH`.
/// A relative path with a slash is refused because the daemon's working
/// directory is not the user's, so `./firecracker` would mean nothing useful.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ProgramPath(pub(crate) PathBuf);

impl TryFrom<String> for ProgramPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("program path is empty".to_owned());
        }
        if s.contains('\0') {
            return Err(format!("program path {s:?} contains a NUL byte"));
        }
        if !s.starts_with('/') && s.contains('/') {
            return Err(format!(
                "program path {s:?} is relative; use an absolute path or a bare name found in PATH"
            ));
        }
        Ok(Self(PathBuf::from(s)))
    }
}

/// A path that must be absolute: it is used by a daemon whose working
/// directory and `~` are not the user's shell's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct AbsolutePath(pub(crate) PathBuf);

impl TryFrom<String> for AbsolutePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.contains('\0') {
            return Err(format!("path {s:?} contains a NUL byte"));
        }
        if !Path::new(&s).is_absolute() {
            return Err(format!("path {s:?} must be absolute"));
        }
        Ok(Self(PathBuf::from(s)))
    }
}

/// An image or kernel name. These become directory names under the state
/// directory, so anything that could climb out of it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ArtifactName(pub(crate) String);

impl TryFrom<String> for ArtifactName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let single_component = matches!(
            Path::new(&s).components().collect::<Vec<_>>().as_slice(),
            [Component::Normal(_)]
        );
        if s.is_empty()
            || !single_component
            || s.contains('/')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "name {s:?} must be a single word without '/', spaces or control characters"
            ));
        }
        Ok(Self(s))
    }
}

/// Where image and kernel bundles are listed. Plain http is refused: the
/// catalog says what to download, so it must not be alterable in transit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct CatalogUrl(pub(crate) String);

impl TryFrom<String> for CatalogUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("file://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.chars().any(char::is_whitespace) => Ok(Self(s)),
            Some(_) => Err(format!(
                "catalog URL {s:?} has no location after the scheme"
            )),
            None => Err(format!(
                "catalog URL {s:?} must start with https:// or file://"
            )),
        }
    }
}

/// A Debian mirror: http or https (the archive is verified by its signed
/// Release file, not by the transport).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct MirrorUrl(pub(crate) String);

pub(crate) const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

impl TryFrom<String> for MirrorUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.chars().any(char::is_whitespace) => {
                Ok(Self(s.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!(
                "Debian mirror {s:?} must be an http:// or https:// URL"
            )),
        }
    }
}

/// How often the daemon samples VM stats; zero would be a busy loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HumanDuration")]
pub(crate) struct PollInterval(pub(crate) HumanDuration);

impl TryFrom<HumanDuration> for PollInterval {
    type Error = String;
    fn try_from(d: HumanDuration) -> Result<Self, String> {
        if d.is_zero() {
            return Err("interval must be greater than zero (e.g. 10s)".to_owned());
        }
        Ok(Self(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_paths() {
        let ok = |s: &str| ProgramPath::try_from(s.to_owned()).is_ok();
        assert!(ok("/usr/bin/firecracker"));
        assert!(ok("firecracker"));
        assert!(!ok("./firecracker"));
        assert!(!ok("bin/firecracker"));
        assert!(!ok(""));
        assert!(!ok("fire\0cracker"));
    }

    #[test]
    fn absolute_paths() {
        assert!(AbsolutePath::try_from("/srv/jail".to_owned()).is_ok());
        assert!(AbsolutePath::try_from("~/.ssh/id".to_owned()).is_err());
        assert!(AbsolutePath::try_from("jail".to_owned()).is_err());
    }

    #[test]
    fn artifact_names() {
        let ok = |s: &str| ArtifactName::try_from(s.to_owned()).is_ok();
        assert!(ok("debian-bookworm"));
        assert!(ok("alpine-3.20"));
        for bad in ["", ".", "..", "a/b", "/abs", "has space", "tab\t"] {
            assert!(!ok(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn mirror_urls() {
        assert_eq!(
            MirrorUrl::try_from("https://m.example/debian/".to_owned())
                .unwrap()
                .0,
            "https://m.example/debian"
        );
        assert!(MirrorUrl::try_from("ftp://m.example".to_owned()).is_err());
        assert!(MirrorUrl::try_from("http://".to_owned()).is_err());
    }

    #[test]
    fn catalog_urls() {
        let ok = |s: &str| CatalogUrl::try_from(s.to_owned()).is_ok();
        assert!(ok("https://example.org/catalog.json"));
        assert!(ok("file:///srv/catalog.json"));
        assert!(!ok("http://example.org/catalog.json"));
        assert!(!ok("https://"));
        assert!(!ok("example.org"));
    }

    #[test]
    fn poll_interval_rejects_zero() {
        assert!(PollInterval::try_from(HumanDuration::from_secs(0)).is_err());
        assert!(PollInterval::try_from(HumanDuration::from_secs(10)).is_ok());
    }
}
