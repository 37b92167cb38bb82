//! Timestamps in the form Python's `datetime.isoformat()` writes them, in UTC.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A timestamp that could not be read as RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("timestamp is not RFC 3339 (e.g. 2026-11-22T10:01:02.123Z): {0}")]
pub struct TimestampError(#[from] time::error::Parse);

/// The current time in UTC, truncated to microseconds as Python's datetime is.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now)
}

/// Formats as `2026-11-22T10:01:02.123456+00:00`, or `2026-11-22T10:01:02+00:00` when
/// the microseconds are zero, converting to UTC first.
pub fn format(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    // Written digit by digit: this runs for every event.
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
    }
    let mut out = String::with_capacity(32);
    let year = at.year();
    if year < 0 {
        out.push('-');
    }
    digits(&mut out, year.unsigned_abs(), 4);
    out.push('-');
    digits(&mut out, u32::from(u8::from(at.month())), 2);
    out.push('-');
    digits(&mut out, u32::from(at.day()), 2);
    out.push('T');
    digits(&mut out, u32::from(at.hour()), 2);
    out.push(':');
    digits(&mut out, u32::from(at.minute()), 2);
    out.push(':');
    digits(&mut out, u32::from(at.second()), 2);
    let micros = at.nanosecond() / 1000;
    if micros != 0 {
        out.push('.');
        digits(&mut out, micros, 6);
    }
    out.push_str("+00:00");
    out
}

/// Reads an RFC 3339 timestamp (`Z` or any offset, any fraction length).
pub fn parse(text: &str) -> Result<OffsetDateTime, TimestampError> {
    let at = OffsetDateTime::parse(text, &Rfc3339)?;
    Ok(at.replace_nanosecond(at.nanosecond() / 1000 * 1000).unwrap_or(at))
}

/// Rewrites an RFC 3339 timestamp in the Python form of [`format`].
pub fn normalize(text: &str) -> Result<String, TimestampError> {
    parse(text).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn python_isoformat() {
        assert_eq!(format(datetime!(2026-11-22 10:01:02.123456 UTC)), "2026-11-22T10:01:02.123456+00:00");
        assert_eq!(format(datetime!(2026-11-22 10:01:02 UTC)), "2026-11-22T10:01:02+00:00");
        assert_eq!(format(datetime!(2026-11-22 10:01:02.000001 UTC)), "2026-11-22T10:01:02.000001+00:00");
        assert_eq!(format(datetime!(2026-11-22 12:01:02.5 +02:00)), "2026-11-22T10:01:02.500000+00:00");
        assert_eq!(format(datetime!(0999-01-02 03:04:05 UTC)), "0999-01-02T03:04:05+00:00");
    }

    #[test]
    fn normalizes_browser_timestamps() {
        assert_eq!(normalize("2026-11-22T10:01:02.123Z").unwrap(), "2026-11-22T10:01:02.123000+00:00");
        assert_eq!(normalize("2026-11-22T10:01:02Z").unwrap(), "2026-11-22T10:01:02+00:00");
        assert_eq!(normalize("2026-11-22T10:01:02.1234567+00:00").unwrap(), "2026-11-22T10:01:02.123456+00:00");
        assert!(normalize("yesterday").is_err());
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().nanosecond() % 1000, 0);
    }
}
