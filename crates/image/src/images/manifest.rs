//! `manifest.json`: what banger knows about one image.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ImageError;
use super::name::ImageName;

/// Largest manifest banger reads: a manifest may come from a downloaded
/// bundle, and a real one is a few hundred bytes.
const MANIFEST_LIMIT: u64 = 1024 * 1024;

/// Where an image's rootfs lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// `rootfs.ext4` inside the image directory, read-only, owned by banger.
    Managed,
    /// A registered file elsewhere on the host; banger only records it.
    Unmanaged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub name: ImageName,
    /// `debian-bookworm` for built images; unknown for registered ones.
    pub distro: Option<String>,
    /// In the kernel's spelling (`x86_64`).
    pub arch: String,
    pub kind: ImageKind,
    /// The rootfs file. For managed images the store always reports the
    /// file inside the image directory, whatever the stored value says.
    pub rootfs: PathBuf,
    /// The kernel to boot it with; `None` means the configured default.
    pub kernel_ref: Option<String>,
    /// Apparent size of the rootfs file.
    pub size_bytes: u64,
    /// For built images: what [`super::Recipe::recipe_hash`] was when it
    /// was built, so an unchanged recipe is not rebuilt.
    pub recipe_hash: Option<String>,
    /// Where the image came from, for people.
    pub source: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The packages the recipe asked for (empty when unknown).
    #[serde(default)]
    pub packages: Vec<String>,
    /// The init command the VMM layer passes on the kernel command line
    /// (`banger.init=`); `None`: the image's own `/sbin/init` (systemd).
    #[serde(default)]
    pub init: Option<String>,
}

/// The current time as the manifests write it.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current UTC time is always representable in RFC 3339")
}

/// Reads the manifest of the image directory named `name`.
pub(crate) fn read(path: &Path, name: &ImageName) -> Result<ImageManifest, ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io("open the image manifest", path, e))?;
    let mut text = String::new();
    file.take(MANIFEST_LIMIT + 1)
        .read_to_string(&mut text)
        .map_err(|e| ImageError::io("read the image manifest", path, e))?;
    let bad = |detail: String| ImageError::BadManifest {
        path: path.to_owned(),
        detail,
    };
    if text.len() as u64 > MANIFEST_LIMIT {
        return Err(bad(format!("it is larger than {MANIFEST_LIMIT} bytes")));
    }
    let manifest: ImageManifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    if &manifest.name != name {
        return Err(bad(format!(
            "it names the image {:?} but lives in the directory of {name:?}",
            manifest.name.as_str()
        )));
    }
    Ok(manifest)
}

/// Writes a manifest into a new file (staging directories only) and makes
/// it durable before the directory is renamed into place.
pub(crate) fn write(path: &Path, manifest: &ImageManifest) -> Result<(), ImageError> {
    let mut json = serde_json::to_vec_pretty(manifest)
        .expect("a manifest has only string keys and serialisable values");
    json.push(b'\n');
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| ImageError::io("create the image manifest", path, e))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| ImageError::io("write the image manifest", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageManifest {
        ImageManifest {
            name: ImageName::new("debian-bookworm").unwrap(),
            distro: Some("debian-bookworm".into()),
            arch: "x86_64".into(),
            kind: ImageKind::Managed,
            rootfs: PathBuf::from("/var/lib/banger/images/debian-bookworm/rootfs.ext4"),
            kernel_ref: Some("debian-cloud".into()),
            size_bytes: 1 << 30,
            recipe_hash: Some("ab".repeat(32)),
            source: "debian bookworm from http://deb.debian.org/debian".into(),
            created_at: now(),
            packages: vec!["git".into(), "openssh-server".into()],
            init: Some("/usr/local/bin/banger-agent guest-init".into()),
        }
    }

    #[test]
    fn a_manifest_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let manifest = sample();
        write(&path, &manifest).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"kind\": \"managed\""), "{text}");
        assert_eq!(read(&path, &manifest.name).unwrap(), manifest);
        // Never overwritten in place: staging directories get new files.
        assert!(write(&path, &manifest).is_err());
    }

    #[test]
    fn created_at_is_rfc3339_utc() {
        let at = now();
        let parsed =
            time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(parsed.offset(), time::UtcOffset::UTC, "{at}");
    }

    #[test]
    fn optional_fields_may_be_missing_and_unknown_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(
            &path,
            r#"{"name":"x","distro":null,"arch":"x86_64","kind":"unmanaged",
                "rootfs":"/srv/x.ext4","kernel_ref":null,"size_bytes":5,
                "recipe_hash":null,"source":"registered","created_at":"2026-01-01T00:00:00Z",
                "description":"from a newer banger"}"#,
        )
        .unwrap();
        let m = read(&path, &ImageName::new("x").unwrap()).unwrap();
        assert_eq!(m.kind, ImageKind::Unmanaged);
        assert!(m.packages.is_empty() && m.init.is_none());
    }

    #[test]
    fn a_manifest_in_the_wrong_directory_or_too_large_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write(&path, &sample()).unwrap();
        let err = read(&path, &ImageName::new("other").unwrap()).unwrap_err();
        assert!(err.to_string().contains("lives in the directory"), "{err}");

        std::fs::write(&path, vec![b' '; MANIFEST_LIMIT as usize + 1]).unwrap();
        let err = read(&path, &sample().name).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");

        std::fs::write(&path, b"{").unwrap();
        let err = read(&path, &sample().name).unwrap_err();
        assert!(matches!(err, ImageError::BadManifest { .. }), "{err:?}");
    }
}
