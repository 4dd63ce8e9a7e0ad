//! Durations as people write them in config: `10s`, `30m`, `2h`, `1d`, or a
//! combination such as `1h30m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

/// A whole number of seconds written with units. Sub-second precision is not
/// offered: nothing banger schedules from config needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty: write e.g. 10s, 30m, 2h or 1d")]
    Empty,
    #[error("invalid duration {input:?}: {number} has no unit; write e.g. 10s, 30m, 2h or 1d")]
    MissingUnit { input: String, number: String },
    #[error("invalid duration {input:?}: unknown unit {unit:?}; use s, m, h or d")]
    UnknownUnit { input: String, unit: String },
    #[error(
        "invalid duration {input:?}: expected a number followed by s, m, h or d (e.g. 30m, 1h30m)"
    )]
    Malformed { input: String },
    #[error("invalid duration {input:?}: too large")]
    TooLarge { input: String },
}

impl HumanDuration {
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, DurationError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        // A bare zero needs no unit: every unit gives the same answer.
        if s.bytes().all(|b| b == b'0') {
            return Ok(Self::from_secs(0));
        }
        let too_large = || DurationError::TooLarge {
            input: input.to_owned(),
        };
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (digits, after) = rest.split_at(split);
            if digits.is_empty() {
                return Err(DurationError::Malformed {
                    input: input.to_owned(),
                });
            }
            // The unit runs up to the next number, so "5min" reports "min"
            // rather than accepting "5m" and tripping over "in".
            let unit_len = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            if unit.is_empty() {
                return Err(DurationError::MissingUnit {
                    input: input.to_owned(),
                    number: digits.to_owned(),
                });
            }
            let Some(&(_, secs_per_unit)) = UNITS.iter().find(|(u, _)| *u == unit) else {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            };
            let n: u64 = digits.parse().map_err(|_| too_large())?;
            let secs = n.checked_mul(secs_per_unit).ok_or_else(too_large)?;
            total = total.checked_add(secs).ok_or_else(too_large)?;
            rest = next;
        }
        Ok(Self::from_secs(total))
    }
}

impl fmt::Display for HumanDuration {
    /// The canonical form, largest units first: `1h30m`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, DurationError> {
        s.parse()
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: &str) -> u64 {
        s.parse::<HumanDuration>().unwrap().get().as_secs()
    }

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(secs("10s"), 10);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("2h"), 7_200);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs(" 5m "), 300);
        assert_eq!(secs("0"), 0);
        assert_eq!(secs("0s"), 0);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| s.parse::<HumanDuration>().unwrap_err();
        assert_eq!(e(""), DurationError::Empty);
        assert!(matches!(e("30"), DurationError::MissingUnit { ref number, .. } if number == "30"));
        assert!(
            matches!(e("1h30"), DurationError::MissingUnit { ref number, .. } if number == "30")
        );
        assert!(matches!(e("5x"), DurationError::UnknownUnit { ref unit, .. } if unit == "x"));
        assert!(matches!(e("5min"), DurationError::UnknownUnit { ref unit, .. } if unit == "min"));
        assert!(matches!(e("m"), DurationError::Malformed { .. }));
        assert!(matches!(e("-5m"), DurationError::Malformed { .. }));
        assert!(matches!(e("1.5h"), DurationError::UnknownUnit { ref unit, .. } if unit == "."));
        assert!(matches!(
            e("99999999999999999999s"),
            DurationError::TooLarge { .. }
        ));
        assert!(matches!(
            e("999999999999999999d"),
            DurationError::TooLarge { .. }
        ));
        assert!(e("5x").to_string().contains("use s, m, h or d"));
    }

    #[test]
    fn displays_canonical_form() {
        assert_eq!(HumanDuration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(HumanDuration::from_secs(90_061).to_string(), "1d1h1m1s");
        assert_eq!(HumanDuration::from_secs(0).to_string(), "0s");
    }

    proptest! {
        #[test]
        fn display_round_trips(s in 0u64..(1 << 40)) {
            let d = HumanDuration::from_secs(s);
            prop_assert_eq!(d.to_string().parse::<HumanDuration>().unwrap(), d);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<HumanDuration>();
        }
    }
}
