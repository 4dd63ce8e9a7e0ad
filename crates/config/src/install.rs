//! `/etc/banger/install.toml` (SPEC §2): who owns a system install and what
//! was installed. Written by `banger system install`, rewritten by
//! `banger update`, read by both, by `doctor` and by the units' setup.
//!
//! Parsed like `config.toml`: unknown keys are refused and every error names
//! the file and the line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::error::ConfigError;
use crate::locate;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallInfo {
    pub owner: InstallOwner,
    pub release: InstalledRelease,
    /// Where `banger update` fetches the signed release manifest from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_url: Option<String>,
}

/// The account the owner daemon runs as, the only one besides root that
/// may use the daemon and the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallOwner {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// What is installed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledRelease {
    pub version: String,
    pub commit: String,
    /// When the binaries were built (RFC 3339).
    pub built: String,
    /// When they were installed (RFC 3339).
    pub installed: String,
}

impl InstallInfo {
    /// Reads and validates `path`; a missing file is an error here, since
    /// callers only read it when they need an install.
    pub fn load(path: &Path) -> Result<InstallInfo, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<InstallInfo, ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| locate::from_parse_error(&e, text, path))?;
        let info = InstallInfo::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| locate::from_de_error(&e, doc.get_ref(), text, path))?;
        info.check(path)?;
        Ok(info)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::InvalidValue {
            location: crate::Location {
                path: path.to_path_buf(),
                line: None,
            },
            key: key.into(),
            message: message.into(),
        };
        if self.owner.uid == 0 {
            return Err(invalid(
                "owner.uid",
                "the owner must not be root: the point of an install is a daemon without root",
            ));
        }
        if !self.owner.home.is_absolute() {
            return Err(invalid("owner.home", "must be an absolute path"));
        }
        if !valid_user_name(&self.owner.user) {
            return Err(invalid("owner.user", "not a valid user name"));
        }
        Ok(())
    }

    /// The file's text, with a header saying who writes it.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("install info always serialises");
        format!("# Written by `banger system install` and `banger update`; edit with care.\n{body}")
    }
}

/// The portable user-name set (POSIX plus the `-` Debian allows), no
/// leading `-`: names end up in unit files and on command lines.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InstallInfo {
        InstallInfo {
            owner: InstallOwner {
                user: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into(),
            },
            release: InstalledRelease {
                version: "0.1.0".into(),
                commit: "abcd1234abcd".into(),
                built: "2026-12-01T00:00:00Z".into(),
                installed: "2026-12-03T00:00:00Z".into(),
            },
            release_url: Some("https://releases.example.invalid/banger".into()),
        }
    }

    #[test]
    fn round_trips() {
        let info = sample();
        let text = info.to_toml();
        assert_eq!(
            InstallInfo::parse(&text, Path::new("install.toml")).unwrap(),
            info
        );
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let text = sample()
            .to_toml()
            .replace("uid = 1000", "uid = 1000\nshell = \"sh\"");
        let err = InstallInfo::parse(&text, Path::new("/etc/banger/install.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/banger/install.toml:"), "{msg}");
        assert!(msg.contains("shell"), "{msg}");
    }

    #[test]
    fn a_root_owner_or_odd_name_is_refused() {
        let mut info = sample();
        info.owner.uid = 0;
        let err = InstallInfo::parse(&info.to_toml(), Path::new("i.toml")).unwrap_err();
        assert!(err.to_string().contains("owner.uid"), "{err}");
        let mut info = sample();
        info.owner.user = "-rf".into();
        assert!(InstallInfo::parse(&info.to_toml(), Path::new("i.toml")).is_err());
        assert!(!valid_user_name("a b"));
        assert!(!valid_user_name("x/y"));
        assert!(valid_user_name("banger-e2e-owner"));
    }
}
