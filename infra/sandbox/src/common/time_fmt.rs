//! The timestamp formats of both APIs, as `time` format descriptions.
//!
//! - HubSpot: ISO-8601 UTC with milliseconds on the way out; ISO or epoch-millisecond strings on
//!   the way in; date properties as `YYYY-MM-DD` or epoch ms at midnight UTC.
//! - MailerLite: REST bodies use `YYYY-MM-DD HH:MM:SS` (UTC); webhook payloads and import objects
//!   use ISO-8601 with microseconds (`…T12:26:44.000000Z`).

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");
const HUBSPOT_INSTANT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const MAILERLITE_REST: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const MAILERLITE_ISO: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000000Z");

// --- HubSpot ---------------------------------------------------------------------------------

/// `2022-06-01T14:31:48.469Z`.
pub fn iso_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(HUBSPOT_INSTANT).unwrap_or_default()
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
        let d = Date::parse(s, DATE).ok()?;
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
    d.format(DATE).unwrap_or_default()
}

/// Epoch ms of midnight UTC of a `YYYY-MM-DD` date (for search comparisons).
pub fn date_ms(s: &str) -> Option<i64> {
    let d = parse_date(s)?;
    let d = Date::parse(&d, DATE).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

// --- MailerLite ------------------------------------------------------------------------------

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn at(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-08-13 09:49:51`
pub fn rest(ts: i64) -> String {
    at(ts).format(MAILERLITE_REST).unwrap_or_default()
}

/// `2024-12-04T12:26:44.000000Z`
pub fn iso(ts: i64) -> String {
    at(ts).format(MAILERLITE_ISO).unwrap_or_default()
}

/// Parses the request format `yyyy-MM-dd HH:mm:ss` (the only one the API accepts for
/// `subscribed_at`, `opted_in_at` and `unsubscribed_at`).
pub fn parse_rest(s: &str) -> Option<i64> {
    PrimitiveDateTime::parse(s, MAILERLITE_REST).ok().map(|p| p.assume_utc().unix_timestamp())
}

/// Whether `s` is a calendar date `YYYY-MM-DD` (the value format of date fields).
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && Date::parse(s, DATE).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_formats_round_trip() {
        assert_eq!(iso_ms(1654093908469), "2022-06-01T14:31:48.469Z");
        assert_eq!(iso_ms(1654093908000), "2022-06-01T14:31:48.000Z");
        assert_eq!(parse_instant_ms("2022-06-01T14:31:48.469Z"), Some(1654093908469));
        assert_eq!(parse_instant_ms("1654093908469"), Some(1654093908469));
        assert_eq!(parse_date("2015-05-01").as_deref(), Some("2015-05-01"));
        assert_eq!(parse_date("1430438400000").as_deref(), Some("2015-05-01"));
        assert_eq!(parse_date("1430438400001"), None);
        assert_eq!(parse_date("2015-13-01"), None);
        assert_eq!(date_ms("2015-05-01"), Some(1430438400000));
    }

    #[test]
    fn mailerlite_formats_round_trip() {
        let ts = parse_rest("2024-12-04 12:26:44").unwrap();
        assert_eq!(rest(ts), "2024-12-04 12:26:44");
        assert_eq!(iso(ts), "2024-12-04T12:26:44.000000Z");
        assert!(parse_rest("2024-12-04T12:26:44").is_none());
        assert!(is_date("2023-01-31"));
        assert!(!is_date("2023-02-31"));
        assert!(!is_date("31.01.2023"));
    }
}
