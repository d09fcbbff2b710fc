//! HubSpot's timestamp encodings: ISO-8601 UTC with milliseconds on the way out; ISO or
//! epoch-millisecond strings on the way in.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

/// `2022-06-01T14:31:48.469Z`.
pub fn iso_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Epoch ms from an ISO-8601 instant or an epoch-ms string.
pub fn parse_instant_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?.to_offset(UtcOffset::UTC);
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A date property value: `YYYY-MM-DD`, or epoch ms at midnight UTC; returns the date string.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = Date::parse(s, &fmt).ok()?;
        return Some(date_string(d));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = s.parse().ok()?;
        if ms % 86_400_000 != 0 {
            return None;
        }
        let t = OffsetDateTime::from_unix_timestamp(ms / 1000).ok()?;
        return Some(date_string(t.date()));
    }
    None
}

fn date_string(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Epoch ms of midnight UTC of a `YYYY-MM-DD` date (for search comparisons).
pub fn date_ms(s: &str) -> Option<i64> {
    let d = parse_date(s)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = Date::parse(&d, &fmt).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(iso_ms(1654093908469), "2022-06-01T14:31:48.469Z");
        assert_eq!(parse_instant_ms("2022-06-01T14:31:48.469Z"), Some(1654093908469));
        assert_eq!(parse_instant_ms("1654093908469"), Some(1654093908469));
        assert_eq!(parse_date("2015-05-01").as_deref(), Some("2015-05-01"));
        assert_eq!(parse_date("1430438400000").as_deref(), Some("2015-05-01"));
        assert_eq!(parse_date("1430438400001"), None);
        assert_eq!(parse_date("2015-13-01"), None);
        assert_eq!(date_ms("2015-05-01"), Some(1430438400000));
    }
}
