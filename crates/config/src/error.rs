//! The config crate's error type. Every error about the file names the file
//! and, where the TOML parser tells us, the line and the key, because the
//! person reading it has to go and fix one line in one file.

use std::fmt;
use std::path::PathBuf;

/// Where in a config file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based; `None` only when the parser could not point anywhere.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML, or an error the parser could not tie to a key.
    #[error("{location}: {message}")]
    Syntax { location: Location, message: String },
    #[error("{location}: unknown key {key:?} ({expected})")]
    UnknownKey {
        location: Location,
        /// Dotted path, e.g. `vm_defaults.cpus`.
        key: String,
        /// What serde would have accepted, e.g. "expected one of `vcpu`, ...".
        expected: String,
    },
    #[error("{location}: key {key:?}: {message}")]
    InvalidValue {
        location: Location,
        /// Dotted path, e.g. `file_sync.mode`.
        key: String,
        message: String,
    },
    /// A bad value in an environment variable that overrides the file.
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
}

impl ConfigError {
    /// The file position of the error, when it is about the file's contents.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Syntax { location, .. }
            | Self::UnknownKey { location, .. }
            | Self::InvalidValue { location, .. } => Some(location),
            Self::Read { .. } | Self::Env { .. } => None,
        }
    }

    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        self.location().and_then(|l| l.line)
    }

    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. } | Self::InvalidValue { key, .. } => Some(key),
            _ => None,
        }
    }
}
