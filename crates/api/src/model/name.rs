//! VM names: DNS labels, because every VM is reachable as `<name>.vm`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated VM name: 1–63 characters of `[a-z0-9-]`, not starting or ending
/// with `-`. Input is never normalised: `Dev` is rejected, not lower-cased, so
/// the name a user typed is the name they get.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VmName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("VM name is empty: give 1 to 63 characters of a-z, 0-9 and '-'")]
    Empty,
    #[error("VM name {name:?} is {len} characters long; the limit is 63 (it must be a DNS label)")]
    TooLong { name: String, len: usize },
    #[error(
        "VM name {name:?} contains {ch:?}; only lower-case a-z, digits and '-' are allowed (it must be a DNS label)"
    )]
    BadChar { name: String, ch: char },
    #[error("VM name {name:?} must not start or end with '-'")]
    EdgeHyphen { name: String },
}

impl VmName {
    pub const MAX_LEN: usize = 63;

    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let len = name.chars().count();
        if len > Self::MAX_LEN {
            return Err(NameError::TooLong { name, len });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(NameError::BadChar { name, ch });
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(NameError::EdgeHyphen { name });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VmName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for VmName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<VmName> for String {
    fn from(n: VmName) -> String {
        n.0
    }
}

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "brisk", "calm", "clever", "cosy", "crisp", "daring", "eager", "fancy",
    "fuzzy", "gentle", "glad", "golden", "happy", "hardy", "jolly", "keen", "lively", "lucky",
    "mellow", "merry", "misty", "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid",
    "rosy", "rustic", "shiny", "silent", "silver", "sleepy", "snowy", "sunny", "swift", "tidy",
    "vivid", "warm", "wild", "witty", "zesty",
];

const NOUNS: &[&str] = &[
    "badger", "beacon", "birch", "canyon", "cedar", "comet", "coral", "delta", "ember", "falcon",
    "fern", "fjord", "gecko", "glacier", "harbor", "heron", "island", "lagoon", "lark", "lynx",
    "maple", "meadow", "meteor", "nebula", "otter", "panda", "pebble", "pine", "puffin", "quartz",
    "raven", "reef", "river", "saddle", "sparrow", "spruce", "summit", "thistle", "tundra",
    "valley", "walrus", "willow", "yak", "zephyr",
];

/// An adjective-noun name for a VM created without `--name`, such as
/// `brisk-otter`. `taken` says whether a candidate is already in use; after a
/// few collisions a numeric suffix keeps the search bounded.
pub fn generate_name(mut taken: impl FnMut(&VmName) -> bool) -> VmName {
    let pick = |list: &[&'static str]| list[fastrand::usize(..list.len())];
    for attempt in 0u32.. {
        let base = format!("{}-{}", pick(ADJECTIVES), pick(NOUNS));
        let candidate = if attempt < 16 {
            base
        } else {
            format!("{base}-{}", fastrand::u32(1000..10000))
        };
        let name = VmName::new(candidate).expect("word lists hold DNS-label-safe words");
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the attempt counter is unbounded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "dev", "web-1", "0abc", &"x".repeat(63)] {
            assert_eq!(VmName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_with_the_reason() {
        assert_eq!(VmName::new(""), Err(NameError::Empty));
        assert!(matches!(
            VmName::new("x".repeat(64)),
            Err(NameError::TooLong { len: 64, .. })
        ));
        assert!(matches!(
            VmName::new("Dev"),
            Err(NameError::BadChar { ch: 'D', .. })
        ));
        assert!(matches!(
            VmName::new("a_b"),
            Err(NameError::BadChar { ch: '_', .. })
        ));
        assert!(matches!(
            VmName::new("a.vm"),
            Err(NameError::BadChar { ch: '.', .. })
        ));
        assert!(matches!(
            VmName::new("-a"),
            Err(NameError::EdgeHyphen { .. })
        ));
        assert!(matches!(
            VmName::new("a-"),
            Err(NameError::EdgeHyphen { .. })
        ));
        assert!(matches!(VmName::new("é"), Err(NameError::BadChar { .. })));
    }

    #[test]
    fn never_normalises() {
        let err = VmName::new(" dev").unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<VmName>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<VmName>("\"Bad\"").is_err());
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate_name(|_| false);
        assert!(first.as_str().contains('-'));
        let mut seen = 0;
        let second = generate_name(|n| {
            seen += 1;
            seen <= 20 || n == &first
        });
        assert!(
            second.as_str().split('-').count() == 3,
            "suffix after collisions: {second}"
        );
    }

    #[test]
    fn word_lists_are_labels() {
        for w in ADJECTIVES.iter().chain(NOUNS) {
            VmName::new(*w).unwrap();
        }
    }

    proptest! {
        #[test]
        fn validator_agrees_with_the_rule(s in "\\PC{0,70}") {
            let ok = !s.is_empty()
                && s.chars().count() <= 63
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-') && !s.ends_with('-');
            prop_assert_eq!(VmName::new(s.clone()).is_ok(), ok);
        }

        #[test]
        fn valid_labels_round_trip(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            prop_assert_eq!(VmName::new(s.clone()).unwrap().to_string(), s);
        }
    }
}
