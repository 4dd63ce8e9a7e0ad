//! Image names: `[a-z0-9][a-z0-9._-]{0,63}`. A name is a directory under
//! `images_dir`, so it can never be `.`/`..`, contain `/`, or start with
//! the `.` that marks banger's own staging and lock entries there.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::ImageError;
pub use super::name_rule::NameProblem;
pub(crate) use super::name_rule::check;

/// A validated image (or kernel reference) name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName(String);

impl ImageName {
    pub fn new(name: impl Into<String>) -> Result<Self, ImageError> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(problem) => Err(ImageError::InvalidName { name, problem }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(problem) => Err(format!("invalid name {name:?}: {problem}")),
        }
    }
}

impl From<ImageName> for String {
    fn from(name: ImageName) -> String {
        name.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ImageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str) -> Option<NameProblem> {
        match ImageName::new(name) {
            Ok(_) => None,
            Err(ImageError::InvalidName { name: n, problem }) => {
                assert_eq!(n, name);
                Some(problem)
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn accepted_names() {
        for name in ["debian-bookworm", "a", "0", "x.y_z-1", &"a".repeat(64)] {
            assert_eq!(ImageName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refused_names_say_why() {
        assert_eq!(problem(""), Some(NameProblem::Empty));
        assert_eq!(problem(&"a".repeat(65)), Some(NameProblem::TooLong));
        for name in [".hidden", "..", "-x", "_x", "Debian"] {
            assert_eq!(problem(name), Some(NameProblem::BadFirst), "{name}");
        }
        assert_eq!(problem("a/b"), Some(NameProblem::BadChar('/')));
        assert_eq!(problem("a b"), Some(NameProblem::BadChar(' ')));
        assert_eq!(problem("aB"), Some(NameProblem::BadChar('B')));
        assert_eq!(problem("a@b"), Some(NameProblem::BadChar('@')));
        assert_eq!(problem("é"), Some(NameProblem::BadFirst));
        assert_eq!(problem("aé"), Some(NameProblem::BadChar('é')));
    }

    #[test]
    fn serde_validates() {
        let name: ImageName = serde_json::from_str("\"ok-1\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"ok-1\"");
        let err = serde_json::from_str::<ImageName>("\"../etc\"").unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
    }
}
