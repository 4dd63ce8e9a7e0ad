//! The contents of a suite's signed `InRelease`: which suite it describes,
//! whether it is still valid, and the size and SHA-256 of every index file.
//! Only text that gpgv has already verified is parsed here.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::deb822::{self, value_lines};
use super::error::DebianError;
use super::fetch::Expected;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    /// Index files may be fetched as `by-hash/SHA256/<hash>`, which cannot
    /// change under us while the mirror updates.
    pub acquire_by_hash: bool,
    pub valid_until: Option<String>,
    /// Path relative to `dists/<suite>/` → size and SHA-256.
    pub files: BTreeMap<String, Expected>,
}

impl Release {
    /// Parses the signed text; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, DebianError> {
        let malformed = |line, detail: String| DebianError::Malformed {
            what: what.to_owned(),
            line,
            detail,
        };
        let mut stanzas = deb822::stanzas(text);
        let stanza = match stanzas.next() {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(malformed(e.line, e.detail)),
            None => return Err(malformed(1, "the release file is empty".into())),
        };
        let sha_field = stanza
            .get("SHA256")
            .ok_or_else(|| malformed(stanza.line, "no SHA256 field".into()))?;
        let mut files = BTreeMap::new();
        for entry in value_lines(sha_field) {
            let bad = || malformed(stanza.line, format!("bad SHA256 entry {entry:?}"));
            let mut parts = entry.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let sha256 = hex::FromHex::from_hex(hash).map_err(|_| bad())?;
            let size = size.parse().map_err(|_| bad())?;
            files.insert(path.to_owned(), Expected { size, sha256 });
        }
        Ok(Self {
            suite: stanza.get("Suite").map(str::to_owned),
            codename: stanza.get("Codename").map(str::to_owned),
            acquire_by_hash: stanza
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            valid_until: stanza.get("Valid-Until").map(str::to_owned),
            files,
        })
    }

    /// Refuses a release file of another suite (an attacker replaying a
    /// validly signed but different suite) or one past its `Valid-Until`
    /// (a mirror frozen on old, vulnerable packages).
    pub fn check(&self, suite: &str, url: &str, now: OffsetDateTime) -> Result<(), DebianError> {
        if self.codename.as_deref() != Some(suite) && self.suite.as_deref() != Some(suite) {
            return Err(DebianError::WrongSuite {
                url: url.to_owned(),
                expected: suite.to_owned(),
                found: self
                    .codename
                    .clone()
                    .or_else(|| self.suite.clone())
                    .unwrap_or_default(),
            });
        }
        if let Some(valid_until) = &self.valid_until {
            let parsed = parse_date(valid_until).ok_or_else(|| DebianError::Malformed {
                what: url.to_owned(),
                line: 1,
                detail: format!("cannot read the Valid-Until date {valid_until:?}"),
            })?;
            if parsed < now {
                return Err(DebianError::Expired {
                    url: url.to_owned(),
                    valid_until: valid_until.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Release dates look like `Sat, 11 Jul 2026 10:16:37 UTC` (RFC 2822 with a
/// zone name, which `time`'s RFC 2822 parser does not take).
fn parse_date(text: &str) -> Option<OffsetDateTime> {
    const FORMAT: &[FormatItem<'static>] = format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second]"
    );
    let text = text.trim();
    let stamp = ["UTC", "GMT", "+0000", "Z"]
        .iter()
        .find_map(|zone| text.strip_suffix(zone))?
        .trim_end();
    time::PrimitiveDateTime::parse(stamp, FORMAT)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Origin: Debian\nSuite: oldstable\nCodename: bookworm\n\
        Date: Sat, 11 Jul 2026 10:16:37 UTC\nAcquire-By-Hash: yes\nMD5Sum:\n \
        0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all\nSHA256:\n \
        515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages\n \
        9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz\n";

    #[test]
    fn the_sha256_section_is_read_and_md5_ignored() {
        let r = Release::parse(SAMPLE, "InRelease").unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert!(r.acquire_by_hash);
        assert_eq!(r.files.len(), 2);
        let xz = &r.files["main/binary-amd64/Packages.xz"];
        assert_eq!(xz.size, 8_790_396);
        assert_eq!(
            hex::encode(xz.sha256),
            "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5"
        );
        assert!(!r.files.contains_key("contrib/Contents-all"));
    }

    #[test]
    fn a_bad_sha256_line_or_missing_section_is_an_error() {
        let bad = SAMPLE.replace("9e0b5aab", "zz0b5aab");
        assert!(matches!(
            Release::parse(&bad, "x"),
            Err(DebianError::Malformed { .. })
        ));
        let none = "Suite: stable\nCodename: bookworm\n";
        let err = Release::parse(none, "x").unwrap_err();
        assert!(err.to_string().contains("SHA256"), "{err}");
    }

    #[test]
    fn another_suite_or_an_expired_release_is_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let r = Release::parse(SAMPLE, "x").unwrap();
        r.check("bookworm", "u", now).unwrap();
        r.check("oldstable", "u", now).unwrap();
        assert!(matches!(
            r.check("trixie", "u", now),
            Err(DebianError::WrongSuite { .. })
        ));

        let dated = SAMPLE.replace(
            "Acquire",
            "Valid-Until: Sat, 9 Jan 2027 10:00:00 UTC\nAcquire",
        );
        let r = Release::parse(&dated, "x").unwrap();
        let before = OffsetDateTime::from_unix_timestamp(1_799_000_000).unwrap(); // Jan 2027
        let after = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        r.check("bookworm", "u", before).unwrap();
        assert!(matches!(
            r.check("bookworm", "u", after),
            Err(DebianError::Expired { .. })
        ));
    }

    #[test]
    fn release_dates_parse() {
        let t = parse_date("Sat, 11 Jul 2026 10:16:37 UTC").unwrap();
        assert_eq!(t.unix_timestamp(), 1_783_764_997);
        assert!(parse_date("11 Jul 2026").is_none());
    }
}
