//! The one long operation the root helper performs: building an image
//! (`mmdebstrap --mode=root` must run as root) into the owner's image store.
//! The request carries only validated values: the store and cache as
//! managed paths (revalidated by the helper), names of a fixed alphabet, a
//! variant, a plain http(s) mirror URL. What runs is banger's own build
//! code, injected by the helper's composition root ([`ImageBuilder`]):
//! this crate does not depend on the image crate (that one depends on it).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validate::ManagedPath;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuildRequest {
    /// The owner's image store.
    pub images_dir: ManagedPath,
    /// Where verified downloads (mise's tarball) are kept between builds.
    pub cache_dir: ManagedPath,
    pub name: BuildName,
    pub variant: BuildVariant,
    pub mirror: MirrorUrl,
    /// The kernel the image's manifest names.
    pub kernel_ref: BuildName,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildVariant {
    Full,
    Minimal,
}

/// An image or kernel name: 1-63 of `[a-z0-9._-]`, starting with a letter
/// or digit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuildName(String);

impl TryFrom<String> for BuildName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(BuildName(s))
        } else {
            Err(format!("{s:?} is not a name of 1-63 of [a-z0-9._-]"))
        }
    }
}

impl From<BuildName> for String {
    fn from(n: BuildName) -> String {
        n.0
    }
}

impl BuildName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Debian mirror: `http://` or `https://`, printable ASCII without
/// spaces or quotes, at most 2 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MirrorUrl(String);

impl TryFrom<String> for MirrorUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let scheme = s.starts_with("http://") || s.starts_with("https://");
        let clean = s
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'`'));
        if scheme && clean && s.len() <= 2048 {
            Ok(MirrorUrl(s))
        } else {
            Err(format!("{s:?} is not an http(s) mirror URL"))
        }
    }
}

impl From<MirrorUrl> for String {
    fn from(m: MirrorUrl) -> String {
        m.0
    }
}

impl MirrorUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Builds the image a request names; `Ok(true)` when it built one,
/// `Ok(false)` when it was already up to date. Errors are the message the
/// owner sees.
pub trait ImageBuilder: Send + Sync {
    fn build(&self, request: &ImageBuildRequest, owner_uid: u32) -> Result<bool, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_mirrors_are_checked_when_they_arrive() {
        let name = |s: &str| serde_json::from_value::<BuildName>(serde_json::json!(s));
        assert!(name("debian-bookworm").is_ok());
        for bad in ["", "-x", "../etc", "a/b", "A", "x y", &"a".repeat(64)] {
            assert!(name(bad).is_err(), "{bad}");
        }
        let url = |s: &str| serde_json::from_value::<MirrorUrl>(serde_json::json!(s));
        assert!(url("http://deb.example.invalid/debian").is_ok());
        for bad in ["file:///etc", "http://x y", "http://x\"; rm", "ftp://x"] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }
}
