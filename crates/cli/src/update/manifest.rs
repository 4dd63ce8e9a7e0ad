//! The signed release manifest (`manifest.json` beside `manifest.json.sig`
//! at the install's release URL): which releases exist and, for each, the
//! three programs' URLs, sizes and sha256. The signature is ed25519 over
//! the manifest's exact bytes, by the key pinned in this binary; nothing in
//! an unverified manifest is read.

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

use super::UpdateError;

/// The release signing key's public half (raw ed25519, base64).
pub const RELEASE_KEY: &str = "TZDs0+ZNByK5Djin1GTZyKFDEuLkzZH9JURnlm4JV1w=";

/// Caps on what is read from the release server before it is verified.
pub const MAX_MANIFEST: u64 = 1024 * 1024;
pub const MAX_SIGNATURE: u64 = 1024;
/// No banger program is anywhere near this; a bigger size in a manifest is
/// refused before anything is downloaded.
pub const MAX_PROGRAM: u64 = 512 * 1024 * 1024;

/// The programs a release carries, by their installed names.
pub const PROGRAMS: [&str; 3] = ["banger", "bangerd", "banger-agent"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    /// The version `banger update` installs without `--to`.
    pub latest: String,
    pub releases: Vec<Release>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    pub commit: String,
    pub built: String,
    pub files: Files,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub banger: FileEntry,
    pub bangerd: FileEntry,
    #[serde(rename = "banger-agent")]
    pub banger_agent: FileEntry,
}

impl Files {
    pub fn by_name(&self, name: &str) -> &FileEntry {
        match name {
            "banger" => &self.banger,
            "bangerd" => &self.bangerd,
            _ => &self.banger_agent,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Absolute, or relative to the manifest's URL.
    pub url: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl FileEntry {
    pub fn expected(&self) -> Result<banger_image::debian::Expected, UpdateError> {
        let bad = |why: &str| UpdateError::Manifest(format!("{}: {why}", self.url));
        if self.size == 0 || self.size > MAX_PROGRAM {
            return Err(bad("size is 0 or over 512 MiB"));
        }
        let raw = hex::decode(&self.sha256).map_err(|_| bad("sha256 is not hex"))?;
        let sha256: [u8; 32] = raw.try_into().map_err(|_| bad("sha256 is not 32 bytes"))?;
        Ok(banger_image::debian::Expected {
            size: self.size,
            sha256,
        })
    }
}

/// The verifying key: the pinned one, or (tests only, through a hidden
/// flag) another.
pub fn key(override_b64: Option<&str>) -> Result<VerifyingKey, UpdateError> {
    let text = override_b64.unwrap_or(RELEASE_KEY);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| UpdateError::Key(e.to_string()))?;
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| UpdateError::Key("not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| UpdateError::Key(e.to_string()))
}

/// Checks `signature` (base64 text) over `bytes`, then parses them.
pub fn verify(bytes: &[u8], signature: &[u8], key: &VerifyingKey) -> Result<Manifest, UpdateError> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| UpdateError::Signature("the signature file is not text".into()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| UpdateError::Signature(format!("not base64: {e}")))?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|_| UpdateError::Signature("not 64 bytes".into()))?;
    key.verify_strict(bytes, &Signature::from_bytes(&raw))
        .map_err(|_| {
            UpdateError::Signature("it does not match the manifest: refusing to read it".into())
        })?;
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| UpdateError::Manifest(format!("not a manifest: {e}")))?;
    if manifest.schema != 1 {
        return Err(UpdateError::Manifest(format!(
            "schema {} is newer than this banger understands; update by hand",
            manifest.schema
        )));
    }
    Ok(manifest)
}

impl Manifest {
    /// `--to V`, else the latest.
    pub fn select(&self, to: Option<&str>) -> Result<&Release, UpdateError> {
        let want = to.unwrap_or(&self.latest);
        self.releases
            .iter()
            .find(|r| r.version == want)
            .ok_or_else(|| {
                let known: Vec<&str> = self.releases.iter().map(|r| r.version.as_str()).collect();
                UpdateError::Manifest(format!(
                    "no release {want} (the manifest has {})",
                    known.join(", ")
                ))
            })
    }
}

/// `url` resolved against the manifest's URL when relative. Only a plain
/// file name is accepted as relative: no `..`, no sub-path tricks.
pub fn resolve_url(manifest_url: &str, url: &str) -> Result<String, UpdateError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(url.to_owned());
    }
    if url.is_empty()
        || url.contains('/')
        || url.contains("..")
        || !url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
    {
        return Err(UpdateError::Manifest(format!(
            "{url:?} is not a file name or an http(s) URL"
        )));
    }
    let base = manifest_url
        .rsplit_once('/')
        .map_or(manifest_url, |(b, _)| b);
    Ok(format!("{base}/{url}"))
}

#[cfg(test)]
mod tests;
