//! SCIM `dateTime` values (RFC 7643 §2.3.5, xsd:dateTime / RFC 3339).
//!
//! The server writes every timestamp in one fixed-width UTC form with microseconds
//! (`2026-11-23T03:21:24.123456Z`) so that text order equals time order, in SQLite as
//! in memory; client-supplied values are converted to that form before comparing.

use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The current time in canonical form, never earlier than a time it answered before in
/// this process: a wall clock stepped back (NTP correcting a fast clock) would otherwise
/// stamp a change before one a client has already seen, and `meta.lastModified gt W`
/// (or the apps' `updated_since`) would miss it.
pub fn now() -> String {
    format(STAMPS.after_the_last(OffsetDateTime::now_utc()))
}

/// The times [`now`] has answered.
static STAMPS: Stamps = Stamps(AtomicI64::new(i64::MIN));

/// The newest time answered, in microseconds since the epoch.
struct Stamps(AtomicI64);

impl Stamps {
    /// `t`, or the newest time answered before when `t` is earlier.
    fn after_the_last(&self, t: OffsetDateTime) -> OffsetDateTime {
        let micros = i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
        let last = self.0.fetch_max(micros, Ordering::Relaxed);
        if last <= micros {
            return t;
        }
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(last) * 1000).unwrap_or(t)
    }
}

/// `days` from now, in canonical form: when something made now with that lifetime expires.
pub fn in_days(days: i64) -> String {
    format(OffsetDateTime::now_utc() + time::Duration::days(days))
}

/// `t` in canonical form. Written digit by digit: `time`'s formatter walks a format
/// description for every call, and a write stamps several rows (a twentieth of a
/// `PATCH /Users` in the writer). Years are 0 to 9999, all RFC 3339 can say.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for digit in out[at..at + width].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, u8::from(t.month()).into());
    put(8, 2, t.day().into());
    put(11, 2, t.hour().into());
    put(14, 2, t.minute().into());
    put(17, 2, t.second().into());
    put(20, 6, t.microsecond());
    out.iter().map(|&b| char::from(b)).collect()
}

/// Parses an RFC 3339 date-time with any offset and any number of fraction digits.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// `s` converted to canonical form, if it is a valid date-time.
pub fn canonical(s: &str) -> Option<String> {
    parse(s).map(format)
}

/// Whether date-time `s` names an instant between two microseconds: a digit other than 0
/// past the sixth of its fraction of a second (read from the text, since a parse keeps
/// nine digits at most).
pub fn finer_than_a_microsecond(s: &str) -> bool {
    s.split_once('.').is_some_and(|(_, fraction)| {
        fraction
            .chars()
            .take_while(char::is_ascii_digit)
            .skip(6)
            .any(|d| d != '0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_finer_than_a_microsecond_is_told_by_its_digits() {
        assert!(!finer_than_a_microsecond("2026-12-07T15:20:25Z"));
        assert!(!finer_than_a_microsecond("2026-12-07T15:20:25.812696Z"));
        assert!(!finer_than_a_microsecond(
            "2026-12-07T15:20:25.812696000+01:00"
        ));
        assert!(finer_than_a_microsecond("2026-12-07T15:20:25.8126965Z"));
        assert!(finer_than_a_microsecond("2026-12-07T15:20:25.8126960001Z"));
    }

    #[test]
    fn a_clock_stepped_back_stamps_no_earlier_than_before() {
        let stamps = Stamps(AtomicI64::new(i64::MIN));
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(stamps.after_the_last(t), t);
        let back = t - time::Duration::seconds(30);
        assert_eq!(stamps.after_the_last(back), t, "held at the newest");
        let on = t + time::Duration::microseconds(1);
        assert_eq!(stamps.after_the_last(on), on, "and moves on with the clock");
    }

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

    /// The digits written by hand are what `time`'s own formatter writes, from the first
    /// second of year 0 to the last microsecond of 9999.
    #[test]
    fn format_writes_what_times_formatter_writes() {
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let first = OffsetDateTime::parse("0000-01-01T00:00:00Z", &Rfc3339).unwrap();
        let last = OffsetDateTime::parse("9999-12-31T23:59:59.999999Z", &Rfc3339).unwrap();
        let span = (last - first).whole_microseconds();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut instants = vec![first, last, OffsetDateTime::now_utc()];
        for _ in 0..20_000 {
            // xorshift: spread over the whole range, reproducibly.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = i128::from(x) % span;
            instants.push(first + time::Duration::microseconds(micros as i64));
        }
        for t in instants {
            assert_eq!(format(t), t.format(&fmt).unwrap(), "{t}");
        }
        // Another offset is written in UTC.
        let t = OffsetDateTime::parse("2026-01-02T03:04:05.5+02:00", &Rfc3339).unwrap();
        assert_eq!(format(t), "2026-01-02T01:04:05.500000Z");
    }
}
