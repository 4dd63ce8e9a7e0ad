//! What an image is built from, and the hash that says whether an existing
//! image was built from the same thing.

use std::fmt;
use std::path::Path;

use banger_api::model::ByteSize;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::guest_files;
use super::mise::{MISE, MisePin};
pub use super::variant::Variant;
use crate::images::error::ImageError;
use crate::images::name::ImageName;

pub const DEFAULT_IMAGE: &str = "debian-bookworm";
pub const MINIMAL_IMAGE: &str = "debian-bookworm-minimal";
pub const DEFAULT_SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// SPEC §9.3's package set, plus `systemd-sysv` (it provides
/// `/sbin/init`; minbase has no init at all).
pub const FULL_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "iproute2",
    "git",
    "jq",
    "curl",
    "ca-certificates",
    "docker.io",
    // modprobe for the kernel's modules disk (and the kernel's own module
    // requests); nft for the guest's firewall and Docker's rules.
    "kmod",
    "nftables",
    // apparmor_parser: the Debian kernel enables AppArmor, and Docker
    // refuses to start containers when it cannot load its profile.
    "apparmor",
    "tmux",
    "sudo",
    "build-essential",
];

/// No systemd: the agent is PID 1 ("guest-init" mode).
pub const MINIMAL_PACKAGES: &[&str] = &[
    "openssh-server",
    "iproute2",
    "ca-certificates",
    "git",
    "kmod",
];

/// dpkg path filters applied while bootstrapping, and kept in the image
/// (mmdebstrap writes them to `/etc/dpkg/dpkg.cfg.d/`) so later installs in
/// the guest stay small too. Copyright files stay: they are the licences.
pub const DPKG_OPTIONS: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
];

/// apt options while bootstrapping: no translated package descriptions.
pub const APT_OPTIONS: &[&str] = &["Acquire::Languages \"none\""];

/// Changes whenever the build itself changes in a way neither the recipe
/// nor the injected files show (filesystem options, tree clean-up), so
/// images built by an older banger are rebuilt.
pub const BUILD_FORMAT: u32 = 2;

impl Variant {
    pub fn default_packages(self) -> &'static [&'static str] {
        match self {
            Variant::Full => FULL_PACKAGES,
            Variant::Minimal => MINIMAL_PACKAGES,
        }
    }

    /// Packages the variant cannot work without.
    fn required_packages(self) -> &'static [&'static str] {
        match self {
            // sshd: banger reaches guests by ssh; systemd-sysv: /sbin/init.
            Variant::Full => &["openssh-server", "systemd-sysv"],
            Variant::Minimal => &["openssh-server"],
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub name: ImageName,
    pub suite: String,
    pub mirror: String,
    pub variant: Variant,
    /// Installed on top of the minbase variant (`--include`).
    pub packages: Vec<String>,
    /// The rootfs size; `None`: content × 1.5, at least 1 GiB.
    pub size: Option<ByteSize>,
    /// mise's release, installed at `/usr/local/bin/mise`; the full
    /// variant has [`MISE`], the minimal one none.
    pub mise: Option<MisePin>,
}

impl Recipe {
    /// The Debian bookworm recipe of `variant` from the default mirror.
    pub fn bookworm(name: ImageName, variant: Variant) -> Self {
        Self {
            name,
            suite: DEFAULT_SUITE.to_owned(),
            mirror: DEFAULT_MIRROR.to_owned(),
            variant,
            packages: variant
                .default_packages()
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            size: None,
            mise: (variant == Variant::Full).then_some(MISE),
        }
    }

    /// The recipe of a buildable image name (`image build [NAME]`).
    pub fn for_name(name: &str) -> Result<Self, ImageError> {
        let variant = match name {
            DEFAULT_IMAGE => Variant::Full,
            MINIMAL_IMAGE => Variant::Minimal,
            _ => {
                return Err(ImageError::UnknownRecipe {
                    name: name.to_owned(),
                    known: format!("{DEFAULT_IMAGE}, {MINIMAL_IMAGE}"),
                });
            }
        };
        Ok(Self::bookworm(ImageName::new(name)?, variant))
    }

    /// Refuses what mmdebstrap would misread (every value becomes one
    /// argv element; a comma would split a package list) and recipes that
    /// cannot boot.
    pub fn validate(&self) -> Result<(), ImageError> {
        let invalid = |field, value: &str, problem| ImageError::InvalidRecipe {
            field,
            value: value.to_owned(),
            problem,
        };
        let suite_ok = !self.suite.is_empty()
            && self
                .suite
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !suite_ok {
            return Err(invalid(
                "suite",
                &self.suite,
                "use a Debian suite or codename such as bookworm",
            ));
        }
        let mirror_ok = (self.mirror.starts_with("http://") || self.mirror.starts_with("https://"))
            && self
                .mirror
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',');
        if !mirror_ok {
            return Err(invalid(
                "mirror",
                &self.mirror,
                "use an http:// or https:// URL without spaces or commas",
            ));
        }
        for package in &self.packages {
            if !is_package_name(package) {
                return Err(invalid(
                    "package",
                    package,
                    "Debian package names are 2+ characters of a-z, 0-9, '+', '-', '.', starting with a letter or digit",
                ));
            }
        }
        for required in self.variant.required_packages() {
            if !self.packages.iter().any(|p| p == required) {
                return Err(invalid(
                    "packages",
                    &self.packages.join(","),
                    match *required {
                        "openssh-server" => {
                            "must include openssh-server: banger reaches guests by ssh"
                        }
                        _ => {
                            "must include systemd-sysv: the full variant boots systemd as /sbin/init"
                        }
                    },
                ));
            }
        }
        Ok(())
    }

    /// The packages sorted and without duplicates: what the bootstrap
    /// installs, independent of the order they were written in.
    pub fn package_set(&self) -> Vec<String> {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        packages
    }

    /// sha256 (hex) over everything the image content is made of: this
    /// recipe (not its name; mise's pin included), the agent binary at
    /// `agent_bin`, the files injected for the variant, the bootstrap
    /// options and [`BUILD_FORMAT`].
    pub fn recipe_hash(&self, agent_bin: &Path) -> Result<String, ImageError> {
        Ok(self.hash_with_agent(&file_sha256(agent_bin)?))
    }

    pub(crate) fn hash_with_agent(&self, agent_sha256: &str) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            build_format: u32,
            suite: &'a str,
            mirror: &'a str,
            variant: Variant,
            packages: Vec<String>,
            size_bytes: Option<u64>,
            dpkg_options: &'a [&'a str],
            apt_options: &'a [&'a str],
            guest_files_sha256: String,
            agent_sha256: &'a str,
            // Absent rather than null without mise, so images without it
            // keep the hash they had before mise was added.
            #[serde(skip_serializing_if = "Option::is_none")]
            mise: Option<CanonicalMise<'a>>,
        }
        #[derive(Serialize)]
        struct CanonicalMise<'a> {
            package: &'a str,
            version: &'a str,
            size: u64,
            sha256: String,
        }
        let canonical = Canonical {
            build_format: BUILD_FORMAT,
            suite: &self.suite,
            mirror: &self.mirror,
            variant: self.variant,
            packages: self.package_set(),
            size_bytes: self.size.map(ByteSize::bytes),
            dpkg_options: DPKG_OPTIONS,
            apt_options: APT_OPTIONS,
            guest_files_sha256: hex::encode(Sha256::digest(guest_files::fingerprint(self.variant))),
            agent_sha256,
            mise: self.mise.as_ref().map(|pin| CanonicalMise {
                package: pin.package,
                version: pin.version,
                size: pin.tarball.size,
                sha256: pin.sha256_hex(),
            }),
        };
        let json = serde_json::to_vec(&canonical).expect("the canonical recipe serialises");
        hex::encode(Sha256::digest(json))
    }
}

fn is_package_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// sha256 (hex) of a file's content.
pub(crate) fn file_sha256(path: &Path) -> Result<String, ImageError> {
    crate::digest::file_sha256(path).map_err(|e| ImageError::io("hash", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "0f0f";

    fn full() -> Recipe {
        Recipe::for_name(DEFAULT_IMAGE).unwrap()
    }

    #[test]
    fn the_buildable_names_have_their_variants_and_defaults() {
        let r = full();
        assert_eq!(r.variant, Variant::Full);
        assert_eq!(
            (r.suite.as_str(), r.mirror.as_str()),
            ("bookworm", DEFAULT_MIRROR)
        );
        for p in [
            "systemd-sysv",
            "docker.io",
            "build-essential",
            "openssh-server",
        ] {
            assert!(r.packages.iter().any(|x| x == p), "{p}");
        }
        assert_eq!(r.mise, Some(MISE));
        let m = Recipe::for_name(MINIMAL_IMAGE).unwrap();
        assert_eq!(m.variant, Variant::Minimal);
        assert_eq!(m.mise, None);
        assert!(!m.packages.iter().any(|p| p.starts_with("systemd")));
        r.validate().unwrap();
        m.validate().unwrap();
        let err = Recipe::for_name("ubuntu").unwrap_err();
        assert!(err.to_string().contains(DEFAULT_IMAGE), "{err}");
    }

    #[test]
    fn the_same_recipe_has_the_same_hash_whatever_the_package_order_or_name() {
        let a = full();
        let mut b = full();
        b.packages.reverse();
        b.packages.push("git".into());
        b.name = ImageName::new("another-name").unwrap();
        assert_eq!(a.hash_with_agent(AGENT), b.hash_with_agent(AGENT));
        assert_eq!(a.hash_with_agent(AGENT).len(), 64);
    }

    #[test]
    fn every_content_change_changes_the_hash() {
        let base = full().hash_with_agent(AGENT);
        let changed = |f: &dyn Fn(&mut Recipe)| {
            let mut r = full();
            f(&mut r);
            r.hash_with_agent(AGENT)
        };
        let variants = [
            changed(&|r| r.packages.push("vim".into())),
            changed(&|r| {
                r.packages.retain(|p| p != "jq");
            }),
            changed(&|r| r.variant = Variant::Minimal),
            changed(&|r| r.suite = "trixie".into()),
            changed(&|r| r.mirror = "http://mirror.example/debian".into()),
            changed(&|r| r.size = ByteSize::from_mib(4096)),
            changed(&|r| r.mise = None),
            changed(&|r| r.mise.as_mut().unwrap().version = "2026.9.16"),
            changed(&|r| r.mise.as_mut().unwrap().tarball.sha256[0] ^= 1),
            changed(&|r| r.mise.as_mut().unwrap().tarball.size += 1),
            full().hash_with_agent("1f0f"),
        ];
        for (i, h) in variants.iter().enumerate() {
            assert_ne!(h, &base, "change {i} kept the hash");
        }
        // Minimal and Full inject different files: the fingerprints differ.
        assert_ne!(
            guest_files::fingerprint(Variant::Full),
            guest_files::fingerprint(Variant::Minimal)
        );
    }

    #[test]
    fn the_agent_binary_is_hashed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("banger-agent");
        std::fs::write(&agent, b"agent v1").unwrap();
        let r = full();
        let h1 = r.recipe_hash(&agent).unwrap();
        assert_eq!(h1, r.recipe_hash(&agent).unwrap());
        std::fs::write(&agent, b"agent v2").unwrap();
        assert_ne!(h1, r.recipe_hash(&agent).unwrap());
        assert_eq!(
            file_sha256(&agent).unwrap(),
            hex::encode(Sha256::digest(b"agent v2"))
        );
        assert!(r.recipe_hash(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn validation_refuses_what_mmdebstrap_would_misread_or_cannot_boot() {
        let bad = |f: &dyn Fn(&mut Recipe)| {
            let mut r = full();
            f(&mut r);
            r.validate().unwrap_err().to_string()
        };
        assert!(bad(&|r| r.packages.push("git,curl".into())).contains("package"));
        assert!(bad(&|r| r.packages.push("--force".into())).contains("package"));
        assert!(bad(&|r| r.packages.push("x".into())).contains("package"));
        assert!(bad(&|r| r.packages.push("Vim".into())).contains("package"));
        assert!(bad(&|r| r.suite = "book worm".into()).contains("suite"));
        assert!(bad(&|r| r.suite = String::new()).contains("suite"));
        assert!(bad(&|r| r.mirror = "ftp://x".into()).contains("mirror"));
        assert!(bad(&|r| r.mirror = "http://a b".into()).contains("mirror"));
        assert!(bad(&|r| r.packages.retain(|p| p != "systemd-sysv")).contains("systemd-sysv"));
        assert!(bad(&|r| r.packages.retain(|p| p != "openssh-server")).contains("ssh"));
        let mut r = full();
        r.packages.push("libstdc++6".into());
        r.packages.push("g++-12".into());
        r.validate().unwrap();
    }
}
