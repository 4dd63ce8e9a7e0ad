//! Sizes as users write them: `8G`, `512M`, or a bare number of MiB.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// A size in bytes, always a positive whole number of MiB (disks and memory
/// are sized in MiB everywhere below this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size is empty: write e.g. 8G, 512M, or a number of MiB")]
    Empty,
    #[error(
        "invalid size {input:?}: expected a number followed by M, G or T (e.g. 8G, 512M); a bare number means MiB"
    )]
    Malformed { input: String },
    #[error(
        "invalid size {input:?}: unknown unit {unit:?}; use M, G or T (e.g. 8G, 512M); a bare number means MiB"
    )]
    UnknownUnit { input: String, unit: String },
    #[error("invalid size {input:?}: must be greater than zero")]
    Zero { input: String },
    #[error("invalid size {input:?}: too large")]
    TooLarge { input: String },
    #[error("invalid size {input:?}: not a whole number of MiB")]
    NotWholeMib { input: String },
}

impl ByteSize {
    /// A constant size of `gib` GiB (at least one).
    pub const fn from_gib_const(gib: u64) -> Self {
        assert!(
            gib > 0 && gib < (1 << 24),
            "a size between 1 GiB and 16 PiB"
        );
        Self(gib * GIB)
    }

    pub fn from_mib(mib: u64) -> Option<Self> {
        (mib > 0).then(|| mib.checked_mul(MIB).map(Self)).flatten()
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn mib(self) -> u64 {
        self.0 / MIB
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(input: &str) -> Result<Self, SizeError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(SizeError::Empty);
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            return Err(SizeError::Malformed {
                input: input.to_owned(),
            });
        }
        let multiplier = match unit.to_ascii_uppercase().as_str() {
            "" | "M" | "MB" | "MIB" => MIB,
            "K" | "KB" | "KIB" => KIB,
            "G" | "GB" | "GIB" => GIB,
            "T" | "TB" | "TIB" => TIB,
            _ => {
                return Err(SizeError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        let too_large = || SizeError::TooLarge {
            input: input.to_owned(),
        };
        let n: u64 = digits.parse().map_err(|_| too_large())?;
        if n == 0 {
            return Err(SizeError::Zero {
                input: input.to_owned(),
            });
        }
        let bytes = n.checked_mul(multiplier).ok_or_else(too_large)?;
        if bytes % MIB != 0 {
            return Err(SizeError::NotWholeMib {
                input: input.to_owned(),
            });
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The shortest exact form: `8G`, `1536M`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in [("T", TIB), ("G", GIB)] {
            if self.0 % m == 0 {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}M", self.0 / MIB)
    }
}

impl TryFrom<String> for ByteSize {
    type Error = SizeError;
    fn try_from(s: String) -> Result<Self, SizeError> {
        s.parse()
    }
}

impl From<ByteSize> for String {
    fn from(s: ByteSize) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("8G".parse::<ByteSize>().unwrap().bytes(), 8 * GIB);
        assert_eq!("512M".parse::<ByteSize>().unwrap().mib(), 512);
        assert_eq!("1024".parse::<ByteSize>().unwrap().mib(), 1024);
        assert_eq!("2g".parse::<ByteSize>().unwrap().bytes(), 2 * GIB);
        assert_eq!("1GiB".parse::<ByteSize>().unwrap().bytes(), GIB);
        assert_eq!("1T".parse::<ByteSize>().unwrap().bytes(), TIB);
        assert_eq!("2048K".parse::<ByteSize>().unwrap().mib(), 2);
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = |s: &str| s.parse::<ByteSize>().unwrap_err();
        assert_eq!(e(""), SizeError::Empty);
        assert!(matches!(e("8X"), SizeError::UnknownUnit { ref unit, .. } if unit == "X"));
        assert!(e("8X").to_string().contains("use M, G or T"));
        assert!(matches!(e("G"), SizeError::Malformed { .. }));
        assert!(matches!(e("-1G"), SizeError::Malformed { .. }));
        assert!(matches!(e("1.5G"), SizeError::UnknownUnit { .. }));
        assert!(matches!(e("0"), SizeError::Zero { .. }));
        assert!(matches!(e("0G"), SizeError::Zero { .. }));
        assert!(matches!(
            e("99999999999999999999"),
            SizeError::TooLarge { .. }
        ));
        assert!(matches!(e("99999999999T"), SizeError::TooLarge { .. }));
        assert!(matches!(e("1K"), SizeError::NotWholeMib { .. }));
    }

    #[test]
    fn displays_shortest_exact_form() {
        assert_eq!(ByteSize::from_mib(8192).unwrap().to_string(), "8G");
        assert_eq!(ByteSize::from_mib(1536).unwrap().to_string(), "1536M");
        assert_eq!(ByteSize::from_mib(0), None);
    }

    proptest! {
        #[test]
        fn display_round_trips(mib in 1u64..(1 << 30)) {
            let s = ByteSize::from_mib(mib).unwrap();
            prop_assert_eq!(s.to_string().parse::<ByteSize>().unwrap(), s);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<ByteSize>();
        }
    }
}
