//! What `manifest.json` records about an installed kernel, and the rules
//! for kernel names.

use serde::{Deserialize, Serialize};

use super::error::KernelError;

/// The manifest of one installed kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelManifest {
    pub name: String,
    /// `debian` for a pull; `imported` for `kernel import`.
    pub distro: String,
    /// Debian architecture name (`amd64`, `arm64`).
    pub arch: String,
    /// Kernel release (`6.1.0-50-cloud-amd64`), `unknown` if nothing said.
    pub version: String,
    /// SHA-256 of `vmlinux`.
    pub sha256: String,
    /// Where it came from, e.g. `debian bookworm
    /// linux-image-6.1.0-50-cloud-amd64 6.1.176-1 (sha256 efe1…)`.
    pub source: String,
    /// RFC 3339, UTC.
    pub imported_at: String,
    pub sizes: KernelSizes,
    /// The modules the initramfs loads, in order (empty without one, or
    /// for an imported initrd).
    #[serde(default)]
    pub initramfs_modules: Vec<String>,
}

/// File sizes in bytes; absent files are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSizes {
    pub vmlinux: u64,
    pub bzimage: Option<u64>,
    pub initrd: Option<u64>,
    /// Total of the `modules/` tree.
    pub modules: Option<u64>,
}

/// Checks a kernel name: 1–64 of `[a-z0-9._-]`, starting with a letter or
/// digit, so it is always a single safe path component.
pub fn validate_name(name: &str) -> Result<(), KernelError> {
    let invalid = |reason| {
        Err(KernelError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 64 {
        return invalid("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return invalid("it contains a character outside a-z, 0-9, '.', '_' and '-'");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("it must start with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_path_components() {
        for good in ["debian-cloud-amd64", "6.1.0", "a", "x_y.z", &"a".repeat(64)] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "Debian",
            "a b",
            "ä",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(validate_name(bad), Err(KernelError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn manifests_round_trip_through_json() {
        let m = KernelManifest {
            name: "k".into(),
            distro: "debian".into(),
            arch: "amd64".into(),
            version: "6.1.0-50-cloud-amd64".into(),
            sha256: "00".repeat(32),
            source: "debian bookworm".into(),
            imported_at: "2026-01-01T00:00:00Z".into(),
            sizes: KernelSizes {
                vmlinux: 1,
                bzimage: Some(2),
                initrd: None,
                modules: None,
            },
            initramfs_modules: vec!["virtio".into()],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"bzimage\":2"), "{json}");
        assert_eq!(serde_json::from_str::<KernelManifest>(&json).unwrap(), m);
    }
}
