//! Which Firecracker we talk to: `firecracker --version` prints
//! `Firecracker v1.7.0` (and more lines), the API's `GET /` reports
//! `vmm_version` as `1.7.0`. Versions before 1.5 lack API fields banger
//! sends, so they are refused up front rather than failing mid-launch.

use std::fmt;

/// A Firecracker release, `major.minor.patch` (pre-release suffixes such as
/// `-dev` are ignored: a 1.17.0-dev speaks the 1.17 API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FirecrackerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl FirecrackerVersion {
    /// The oldest release banger drives.
    pub const MINIMUM: FirecrackerVersion = FirecrackerVersion {
        major: 1,
        minor: 5,
        patch: 0,
    };

    /// Parses `1.7.0`, `v1.7.0` or `1.17.0-dev`.
    pub fn parse(text: &str) -> Option<FirecrackerVersion> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut number = || parts.next()?.parse::<u32>().ok();
        let version = FirecrackerVersion {
            major: number()?,
            minor: number()?,
            patch: number()?,
        };
        parts.next().is_none().then_some(version)
    }

    /// Finds the `Firecracker vX.Y.Z` line of `firecracker --version`.
    pub fn parse_cli_output(output: &str) -> Option<FirecrackerVersion> {
        output.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("Firecracker ")?;
            FirecrackerVersion::parse(rest.split_whitespace().next()?)
        })
    }

    pub fn is_supported(&self) -> bool {
        *self >= FirecrackerVersion::MINIMUM
    }
}

impl fmt::Display for FirecrackerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> FirecrackerVersion {
        FirecrackerVersion {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn parses_cli_output_with_trailing_lines() {
        let out = "Firecracker v1.7.0\n\nSupported snapshot data format versions: v1.0.0\n";
        assert_eq!(FirecrackerVersion::parse_cli_output(out), Some(v(1, 7, 0)));
        assert_eq!(
            FirecrackerVersion::parse_cli_output("Firecracker v1.17.0-dev\n"),
            Some(v(1, 17, 0))
        );
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in [
            "",
            "firecracker 1.7.0",
            "Firecracker vX.7.0",
            "Firecracker v1.7",
            "Firecracker v1.7.0.1",
            "qemu 8.2.0",
        ] {
            assert_eq!(FirecrackerVersion::parse_cli_output(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn api_version_strings_parse() {
        assert_eq!(FirecrackerVersion::parse("1.5.0"), Some(v(1, 5, 0)));
        assert_eq!(FirecrackerVersion::parse("v1.10.1"), Some(v(1, 10, 1)));
        assert_eq!(FirecrackerVersion::parse("1.x.0"), None);
    }

    #[test]
    fn minimum_is_1_5_and_ordering_is_numeric() {
        assert!(!v(1, 4, 9).is_supported());
        assert!(!v(0, 25, 0).is_supported());
        assert!(v(1, 5, 0).is_supported());
        // 1.10 is newer than 1.9 (numeric, not lexical, comparison).
        assert!(v(1, 10, 0) > v(1, 9, 3));
        assert_eq!(v(1, 17, 0).to_string(), "1.17.0");
    }
}
