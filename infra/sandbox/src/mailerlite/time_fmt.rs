//! The two timestamp formats of the MailerLite API: REST bodies use `YYYY-MM-DD HH:MM:SS` (UTC);
//! webhook payloads and import objects use ISO-8601 with microseconds (`…T12:26:44.000000Z`).

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn at(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-08-13 09:49:51`
pub fn rest(ts: i64) -> String {
    at(ts).format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_default()
}

/// `2024-12-04T12:26:44.000000Z`
pub fn iso(ts: i64) -> String {
    at(ts).format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000000Z")).unwrap_or_default()
}

/// Parses the request format `yyyy-MM-dd HH:mm:ss` (the only one the API accepts for
/// `subscribed_at`, `opted_in_at` and `unsubscribed_at`).
pub fn parse_rest(s: &str) -> Option<i64> {
    PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        .ok()
        .map(|p| p.assume_utc().unix_timestamp())
}

/// Whether `s` is a calendar date `YYYY-MM-DD` (the value format of date fields).
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && time::Date::parse(s, format_description!("[year]-[month]-[day]")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let ts = parse_rest("2024-12-04 12:26:44").unwrap();
        assert_eq!(rest(ts), "2024-12-04 12:26:44");
        assert_eq!(iso(ts), "2024-12-04T12:26:44.000000Z");
        assert!(parse_rest("2024-12-04T12:26:44").is_none());
        assert!(is_date("2023-01-31"));
        assert!(!is_date("2023-02-31"));
        assert!(!is_date("31.01.2023"));
    }
}
