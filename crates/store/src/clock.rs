//! Timestamps as the store writes them: RFC 3339, UTC, whole seconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    // Sub-second digits only add noise to `vm list` and the logs.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339)
        .expect("the current UTC time always has an RFC 3339 form (year 0..=9999, no offset)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339_whole_seconds() {
        let s = now_rfc3339();
        let parsed = OffsetDateTime::parse(&s, &Rfc3339).unwrap();
        assert_eq!(parsed.nanosecond(), 0, "{s}");
        assert!(s.ends_with('Z'), "{s}");
    }
}
