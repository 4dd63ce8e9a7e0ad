//! `[[file_sync]]` entries: host files copied into every new VM (dotfiles,
//! credentials). The host side is confined to the owner's home so a config
//! line cannot make the daemon ship, say, `/etc/shadow` into a guest; the
//! guest side is confined to `/root` so it cannot overwrite the guest's OS.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;

pub(crate) const DEFAULT_MODE: u32 = 0o600;
const MAX_MODE: u32 = 0o777;

/// Where a host file is, as written in config. Relative and `~/` paths are
/// relative to the owner's home; absolute ones must lie inside it, which can
/// only be checked once the home is known ([`FileSync::host_path`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SyncHost {
    /// Relative to the owner's home; never empty, never contains `..`.
    InHome(PathBuf),
    /// Absolute as written; never contains `..`.
    Absolute(PathBuf),
}

impl SyncHost {
    /// The absolute host path for the owner whose home is `home`, or `None`
    /// when an absolute path lies outside it. The check is lexical: the file
    /// need not exist yet, and `..` was refused when parsing.
    pub fn resolve(&self, home: &Path) -> Option<PathBuf> {
        match self {
            Self::InHome(rel) => Some(home.join(rel)),
            Self::Absolute(abs) => {
                let rest = abs.strip_prefix(home).ok()?;
                (rest.components().next().is_some()).then(|| abs.clone())
            }
        }
    }
}

impl fmt::Display for SyncHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InHome(rel) => write!(f, "~/{}", rel.display()),
            Self::Absolute(abs) => write!(f, "{}", abs.display()),
        }
    }
}

impl Serialize for SyncHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl TryFrom<String> for SyncHost {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.contains('\0') {
            return Err(format!("host path {s:?} contains a NUL byte"));
        }
        let host = if let Some(rel) = s.strip_prefix("~/") {
            Self::InHome(PathBuf::from(rel))
        } else if s.starts_with('~') {
            return Err(format!(
                "host path {s:?}: only \"~/\" (the owner's home) is supported"
            ));
        } else if Path::new(&s).is_absolute() {
            Self::Absolute(PathBuf::from(&s))
        } else {
            Self::InHome(PathBuf::from(&s))
        };
        let path = match &host {
            Self::InHome(p) | Self::Absolute(p) => p,
        };
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(format!("host path {s:?} must not contain \"..\""));
        }
        let names_nothing = match &host {
            Self::InHome(rel) => !rel.components().any(|c| matches!(c, Component::Normal(_))),
            Self::Absolute(_) => false,
        };
        if names_nothing {
            return Err(format!(
                "host path {s:?} must name a file inside the owner's home, not the home itself"
            ));
        }
        Ok(host)
    }
}

/// An absolute path under `/root/` in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct GuestPath(pub(crate) PathBuf);

impl TryFrom<String> for GuestPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let path = PathBuf::from(&s);
        let comps: Vec<Component<'_>> = path.components().collect();
        if comps.contains(&Component::ParentDir) {
            return Err(format!("guest path {s:?} must not contain \"..\""));
        }
        let under_root = matches!(
            comps.as_slice(),
            [Component::RootDir, Component::Normal(r), _, ..] if *r == "root"
        );
        if s.contains('\0') || !under_root {
            return Err(format!(
                "guest path {s:?} must be an absolute path under /root/ (e.g. \"/root/.gitconfig\")"
            ));
        }
        Ok(Self(path))
    }
}

/// A permission mode written as an octal string ("0600" or "600"). A TOML
/// integer is refused: `600` would be read as decimal, a classic mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileMode(pub(crate) u32);

impl FileMode {
    fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "mode {s:?} is not an octal number (digits 0-7, e.g. \"0600\")"
            ));
        }
        match u32::from_str_radix(s, 8) {
            Ok(mode) if mode <= MAX_MODE => Ok(Self(mode)),
            _ => Err(format!(
                "mode {s:?} is above 0777; setuid, setgid and sticky bits are not allowed"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ModeVisitor;
        impl Visitor<'_> for ModeVisitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string such as \"0600\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FileMode, E> {
                FileMode::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(ModeVisitor)
    }
}

/// `mode` is shown the way it is written, e.g. "0600".
fn serialize_mode<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{mode:04o}"))
}

/// One `[[file_sync]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSync {
    pub(crate) host: Spanned<SyncHost>,
    pub(crate) guest: GuestPath,
    #[serde(default)]
    pub(crate) mode: Option<FileMode>,
}

/// A validated `[[file_sync]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSync {
    host: SyncHost,
    guest: PathBuf,
    #[serde(serialize_with = "serialize_mode")]
    mode: u32,
    /// Line of the `host` key, for errors found once the home is known.
    #[serde(skip)]
    line: usize,
}

impl FileSync {
    pub(crate) fn from_raw(raw: RawFileSync, line: usize) -> Self {
        Self {
            host: raw.host.into_inner(),
            guest: raw.guest.0,
            mode: raw.mode.map_or(DEFAULT_MODE, |m| m.0),
            line,
        }
    }

    pub fn host(&self) -> &SyncHost {
        &self.host
    }

    /// The absolute host path, `None` if it lies outside `home`.
    pub fn host_path(&self, home: &Path) -> Option<PathBuf> {
        self.host.resolve(home)
    }

    pub fn guest(&self) -> &Path {
        &self.guest
    }

    /// Permission bits for the file in the guest, at most 0o777.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The 1-based line of this entry's `host` key in the config file.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// A file_sync entry with its host path made absolute for one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFileSync {
    pub host: PathBuf,
    pub guest: PathBuf,
    #[serde(serialize_with = "serialize_mode")]
    pub mode: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Result<SyncHost, String> {
        SyncHost::try_from(s.to_owned())
    }

    #[test]
    fn host_paths_are_home_relative_or_absolute() {
        assert_eq!(
            host("~/.gitconfig"),
            Ok(SyncHost::InHome(".gitconfig".into()))
        );
        assert_eq!(
            host(".gitconfig"),
            Ok(SyncHost::InHome(".gitconfig".into()))
        );
        assert_eq!(
            host("/home/u/.npmrc"),
            Ok(SyncHost::Absolute("/home/u/.npmrc".into()))
        );
        for bad in [
            "~/../etc/passwd",
            "a/../../b",
            "/home/u/../v/x",
            "~bob/x",
            "~",
            "~/",
            "",
            ".",
        ] {
            assert!(host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn absolute_host_must_be_inside_home() {
        let home = Path::new("/home/u");
        let resolve = |s: &str| host(s).unwrap().resolve(home);
        assert_eq!(resolve("~/.gitconfig"), Some("/home/u/.gitconfig".into()));
        assert_eq!(resolve(".ssh/config"), Some("/home/u/.ssh/config".into()));
        assert_eq!(resolve("/home/u/.npmrc"), Some("/home/u/.npmrc".into()));
        assert_eq!(resolve("/home/u"), None);
        assert_eq!(resolve("/home/uv/.npmrc"), None);
        assert_eq!(resolve("/etc/shadow"), None);
    }

    #[test]
    fn guest_paths_stay_under_root() {
        let ok = |s: &str| GuestPath::try_from(s.to_owned()).is_ok();
        assert!(ok("/root/.gitconfig"));
        assert!(ok("/root/.config/gh/hosts.yml"));
        for bad in [
            "/root",
            "/root/",
            "/etc/passwd",
            "root/x",
            "/root/../etc/x",
            "/rootx/a",
        ] {
            assert!(!ok(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(FileMode::parse("0600"), Ok(FileMode(0o600)));
        assert_eq!(FileMode::parse("644"), Ok(FileMode(0o644)));
        assert_eq!(FileMode::parse("0777"), Ok(FileMode(0o777)));
        assert!(
            FileMode::parse("0999")
                .unwrap_err()
                .contains("not an octal")
        );
        assert!(FileMode::parse("1777").unwrap_err().contains("above 0777"));
        assert!(FileMode::parse("").is_err());
        assert!(FileMode::parse("0o600").is_err());
        assert!(FileMode::parse("77777777777777777777").is_err());
    }
}
