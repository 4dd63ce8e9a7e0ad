//! Names of the kernel objects banger creates: bridges, taps and
//! device-mapper devices. Each type accepts only banger's own naming scheme,
//! so a privileged call can never be pointed at `eth0`, `docker0` or another
//! program's device.

use serde::{Deserialize, Serialize};

use super::{ValidationError, string_newtype};

/// Longest interface name Linux accepts (`IFNAMSIZ` minus the NUL).
const IFNAME_MAX: usize = 15;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// A bridge banger manages: `br-fc` or `br-fc-<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BridgeName(String);

impl BridgeName {
    /// The default bridge (SPEC §8).
    pub const DEFAULT: &'static str = "br-fc";

    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        let ok = name.len() <= IFNAME_MAX
            && match name.strip_prefix(Self::DEFAULT) {
                Some("") => true,
                Some(rest) => rest
                    .strip_prefix('-')
                    .is_some_and(|s| !s.is_empty() && s.bytes().all(is_name_byte)),
                None => false,
            };
        if ok {
            Ok(Self(name))
        } else {
            Err(ValidationError::BridgeName { name })
        }
    }
}

string_newtype!(BridgeName);

/// One of banger's taps: `fctap<N>`, N being 1 to 10 decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TapName(String);

impl TapName {
    pub const PREFIX: &'static str = "fctap";

    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        let ok = name
            .strip_prefix(Self::PREFIX)
            .is_some_and(|n| (1..=10).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Self(name))
        } else {
            Err(ValidationError::TapName { name })
        }
    }

    /// `fctap<n>`; always valid, as a `u32` has at most 10 digits.
    pub fn numbered(n: u32) -> Self {
        Self(format!("{}{n}", Self::PREFIX))
    }

    /// The number in the name. Names made by [`TapName::numbered`] round-trip
    /// exactly; a 10-digit name above `u32::MAX` (never made by banger, but
    /// valid) saturates to `u32::MAX`.
    pub fn number(&self) -> u32 {
        let digits = &self.0[Self::PREFIX.len()..];
        // At most 10 digits always fit a u64.
        digits
            .parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

string_newtype!(TapName);

/// A device-mapper device banger manages: `banger-<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DmName(String);

impl DmName {
    pub const PREFIX: &'static str = "banger-";

    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        let ok = name
            .strip_prefix(Self::PREFIX)
            .is_some_and(|s| (1..=64).contains(&s.len()) && s.bytes().all(is_name_byte));
        if ok {
            Ok(Self(name))
        } else {
            Err(ValidationError::DmName { name })
        }
    }
}

string_newtype!(DmName);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;

    /// The rules again, written independently of the constructors (char by
    /// char rather than by prefix stripping).
    fn lower_digit_dash(s: &str) -> bool {
        s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
    }

    fn bridge_rule(s: &str) -> bool {
        s == "br-fc"
            || (s.len() > 6
                && s.len() <= 15
                && s.starts_with("br-fc-")
                && lower_digit_dash(&s[6..]))
    }

    fn tap_rule(s: &str) -> bool {
        s.len() >= 6
            && s.len() <= 15
            && s.starts_with("fctap")
            && s[5..].chars().all(|c| c.is_ascii_digit())
    }

    fn dm_rule(s: &str) -> bool {
        s.len() >= 8 && s.len() <= 7 + 64 && s.starts_with("banger-") && lower_digit_dash(&s[7..])
    }

    #[test]
    fn host_interfaces_are_neither_taps_nor_bridges() {
        for name in [
            "eth0",
            "docker0",
            "lo",
            "fctap0123456789x",
            "br-fc-abcdefghij",
        ] {
            assert!(TapName::new(name).is_err(), "{name} as tap");
            assert!(BridgeName::new(name).is_err(), "{name} as bridge");
        }
        assert_eq!("fctap0123456789x".len(), 16);
        assert_eq!("br-fc-abcdefghij".len(), 16);
        for name in [
            "fctap",
            "fctap1/2",
            "fctap 1",
            "fctap-1",
            "FCTAP1",
            "fctap12345678901",
        ] {
            assert!(TapName::new(name).is_err(), "{name}");
        }
        for name in [
            "br-fc-", "br-fc_1", "br-fcx", "br-fc-A", "br-fc/1", "br-fc 1",
        ] {
            assert!(BridgeName::new(name).is_err(), "{name}");
        }
        assert!(BridgeName::new("br-fc").is_ok());
        assert!(BridgeName::new("br-fc-123456789").is_ok());
        assert!(TapName::new("fctap1234567890").is_ok());
    }

    #[test]
    fn numbered_taps_round_trip_their_number() {
        for n in [0, 7, 4_294_967_295] {
            let tap = TapName::numbered(n);
            assert_eq!(tap.number(), n);
            assert_eq!(TapName::new(tap.as_str()).unwrap(), tap);
        }
        assert_eq!(TapName::new("fctap9999999999").unwrap().number(), u32::MAX);
        assert_eq!(TapName::new("fctap007").unwrap().number(), 7);
    }

    #[test]
    fn dm_names_have_the_prefix_and_a_bounded_id() {
        assert!(DmName::new("banger-0123abc-def").is_ok());
        assert!(DmName::new(format!("banger-{}", "a".repeat(64))).is_ok());
        assert!(DmName::new(format!("banger-{}", "a".repeat(65))).is_err());
        for name in [
            "banger-",
            "banger",
            "banger-A",
            "banger-a/b",
            "other-a",
            "banger-a b",
        ] {
            assert!(DmName::new(name).is_err(), "{name}");
        }
    }

    #[test]
    fn errors_name_the_value() {
        let msg = TapName::new("eth0").unwrap_err().to_string();
        assert!(msg.contains("\"eth0\"") && msg.contains("fctap"), "{msg}");
        let msg = BridgeName::new("docker0").unwrap_err().to_string();
        assert!(
            msg.contains("\"docker0\"") && msg.contains("br-fc"),
            "{msg}"
        );
    }

    #[test]
    fn serde_rejects_invalid_names() {
        assert!(serde_json::from_str::<TapName>("\"eth0\"").is_err());
        assert!(serde_json::from_str::<BridgeName>("\"lo\"").is_err());
        assert!(serde_json::from_str::<DmName>("\"root\"").is_err());
        let tap: TapName = serde_json::from_str("\"fctap3\"").unwrap();
        assert_eq!(tap.number(), 3);
    }

    /// Strings in the alphabet of the rule with lengths around its limits,
    /// strings with a near miss, and anything at all.
    fn candidates(valid: &'static str, near: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![valid, near, any::<String>()]
    }

    fn check<T>(
        s: &str,
        rule: fn(&str) -> bool,
        new: fn(&str) -> Result<T, ValidationError>,
    ) -> Result<(), TestCaseError>
    where
        T: std::fmt::Display
            + FromStr<Err = ValidationError>
            + Serialize
            + serde::de::DeserializeOwned
            + PartialEq
            + std::fmt::Debug,
    {
        let made = new(s);
        prop_assert_eq!(made.is_ok(), rule(s), "{:?}", s);
        if let Ok(v) = made {
            prop_assert_eq!(v.to_string(), s);
            prop_assert_eq!(&T::from_str(&v.to_string()).unwrap(), &v);
            let json = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), &v);
        } else {
            let json = serde_json::to_string(s).unwrap();
            prop_assert!(serde_json::from_str::<T>(&json).is_err());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn bridge_names_follow_the_rule(s in candidates("br-fc(-[a-z0-9-]{8,11})?", "br-fc[-_]?[a-z0-9_A/ -]{0,11}")) {
            check(&s, bridge_rule, |s| BridgeName::new(s))?;
        }

        #[test]
        fn tap_names_follow_the_rule(s in candidates("fctap[0-9]{0,12}", "f?c?tap[0-9a/ ]{0,12}")) {
            check(&s, tap_rule, |s| TapName::new(s))?;
        }

        #[test]
        fn dm_names_follow_the_rule(s in candidates("banger-([a-z0-9-]{0,3}|[a-z0-9-]{62,66})", "banger[-_]?[a-zA-Z0-9_/-]{0,70}")) {
            check(&s, dm_rule, |s| DmName::new(s))?;
        }

        #[test]
        fn every_u32_makes_a_valid_tap(n in any::<u32>()) {
            let tap = TapName::numbered(n);
            prop_assert!(tap_rule(tap.as_str()));
            prop_assert_eq!(tap.number(), n);
        }
    }
}
