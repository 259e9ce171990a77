//! SCIM `dateTime` values (RFC 7643 §2.3.5, xsd:dateTime / RFC 3339).
//!
//! The server writes every timestamp in one fixed-width UTC form with microseconds
//! (`2026-11-23T03:21:24.123456Z`) so that text order equals time order, in SQLite as
//! in memory; client-supplied values are converted to that form before comparing.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The current time in canonical form.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// `days` from now, in canonical form: when something made now with that lifetime expires.
pub fn in_days(days: i64) -> String {
    format(OffsetDateTime::now_utc() + time::Duration::days(days))
}

/// `t` in canonical form.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("a UTC date between years 0 and 9999 always formats")
}

/// Parses an RFC 3339 date-time with any offset and any number of fraction digits.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// `s` converted to canonical form, if it is a valid date-time.
pub fn canonical(s: &str) -> Option<String> {
    parse(s).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_orders_as_text() {
        assert_eq!(
            canonical("2015-10-10T14:38:21.8617979-07:00").unwrap(),
            "2015-10-10T21:38:21.861797Z"
        );
        assert_eq!(
            canonical("2026-01-02T03:04:05Z").unwrap(),
            "2026-01-02T03:04:05.000000Z"
        );
        assert!(canonical("yesterday").is_none());
        assert!(
            canonical("2026-01-02T03:04:05.000001Z").unwrap()
                > canonical("2026-01-02T03:04:05Z").unwrap()
        );
    }
}
