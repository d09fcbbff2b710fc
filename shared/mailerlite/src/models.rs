//! Response models. Parsing is lenient where the API is inconsistent: 18-digit ids as strings
//! (numbers accepted), REST (`YYYY-MM-DD HH:MM:SS`) and ISO (`…T…000000Z`) timestamps, rates as
//! percent numbers or `{"float","string"}` objects, `per_page` as a number or a string, and
//! unknown keys ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// A subscriber's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Unsubscribed,
    Unconfirmed,
    Bounced,
    Junk,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::Active, Status::Unsubscribed, Status::Unconfirmed, Status::Bounced, Status::Junk];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Unsubscribed => "unsubscribed",
            Status::Unconfirmed => "unconfirmed",
            Status::Bounced => "bounced",
            Status::Junk => "junk",
        }
    }

    /// Unsubscribed, bounced and junk subscribers cannot be made active through the API.
    pub fn is_suppressed(self) -> bool {
        matches!(self, Status::Unsubscribed | Status::Bounced | Status::Junk)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in time from either of the API's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    /// Parses `YYYY-MM-DD HH:MM:SS` (REST, UTC), ISO-8601/RFC 3339 with any fraction
    /// (`2024-12-04T12:26:44.000000Z`), or a bare date (midnight UTC).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if let Ok(p) = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        {
            return Some(Timestamp(p.assume_utc()));
        }
        if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
            return Some(Timestamp(t));
        }
        if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
            return Some(Timestamp(d.midnight().assume_utc()));
        }
        None
    }

    /// The REST format the API accepts in requests (`subscribed_at`, …).
    pub fn to_rest(&self) -> String {
        self.0.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unrecognised timestamp {s:?}")))
    }
}

/// A rate in percent (`77.78`), from a percent number (subscribers) or a
/// `{"float": 0.7778, "string": "77.78%"}` object (groups, segments, campaigns).
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let pct = match &v {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::Object(o) => match (o.get("float").and_then(Value::as_f64), o.get("string").and_then(Value::as_str))
            {
                (Some(f), _) => f * 100.0,
                (None, Some(s)) => s.trim_end_matches('%').trim().parse().unwrap_or(0.0),
                _ => 0.0,
            },
            Value::String(s) => s.trim_end_matches('%').trim().parse().unwrap_or(0.0),
            _ => 0.0,
        };
        Ok(Percent(pct))
    }
}

/// Ids: strings of digits (numbers accepted, never parsed as floats).
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected an id, got {other}"))),
    }
}

/// Counts: numbers or numeric strings; null is 0.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscriber {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub email: String,
    pub status: Status,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "count")]
    pub sent: u64,
    #[serde(default, deserialize_with = "count")]
    pub opens_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub clicks_count: u64,
    #[serde(default)]
    pub open_rate: Percent,
    #[serde(default)]
    pub click_rate: Percent,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub subscribed_at: Option<Timestamp>,
    #[serde(default)]
    pub unsubscribed_at: Option<Timestamp>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub deleted_at: Option<Timestamp>,
    #[serde(default)]
    pub forget_at: Option<Timestamp>,
    /// Every account field by key; `null` when empty.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Present on single-subscriber responses, segment members and `include=groups` lists.
    #[serde(default)]
    pub groups: Option<Vec<Group>>,
    #[serde(default)]
    pub opted_in_at: Option<Timestamp>,
    #[serde(default)]
    pub optin_ip: Option<String>,
}

impl Subscriber {
    /// A field's value as text (`None` when empty); numbers are printed.
    pub fn field_text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Group {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "count")]
    pub active_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub sent_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub opens_count: u64,
    #[serde(default)]
    pub open_rate: Percent,
    #[serde(default, deserialize_with = "count")]
    pub clicks_count: u64,
    #[serde(default)]
    pub click_rate: Percent,
    #[serde(default, deserialize_with = "count")]
    pub unsubscribed_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub unconfirmed_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub bounced_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub junk_count: u64,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// A field's value type. MailerLite has text, number and date only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Number,
    Date,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Date => "date",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Field {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    /// Derived from the name at creation; never changes on rename.
    pub key: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub used_in_automations: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Segment {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    /// Active members.
    #[serde(default, deserialize_with = "count")]
    pub total: u64,
    #[serde(default)]
    pub open_rate: Percent,
    #[serde(default)]
    pub click_rate: Percent,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// An account the credentials reach (`GET /api/accounts`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Account {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// A webhook as the API returns it. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Webhook {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub is_blocked: bool,
    /// The signing secret (returned on every read).
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub batchable: bool,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub last_fired_at: Option<Timestamp>,
    /// The HTTP status of the last delivery attempt (`null` before the first). Together with
    /// `enabled` and `is_blocked`, the webhook's health.
    #[serde(default)]
    pub response_code: Option<u16>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .field("is_blocked", &self.is_blocked)
            .field("secret", &"(hidden)")
            .field("batchable", &self.batchable)
            .field("last_fired_at", &self.last_fired_at)
            .field("response_code", &self.response_code)
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CampaignStats {
    #[serde(default, deserialize_with = "count")]
    pub sent: u64,
    #[serde(default, deserialize_with = "count")]
    pub opens_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub unique_opens_count: u64,
    #[serde(default)]
    pub open_rate: Percent,
    #[serde(default, deserialize_with = "count")]
    pub clicks_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub unique_clicks_count: u64,
    #[serde(default)]
    pub click_rate: Percent,
    #[serde(default, deserialize_with = "count")]
    pub unsubscribes_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub spam_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub hard_bounces_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub soft_bounces_count: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Campaign {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub stats: Option<CampaignStats>,
}

/// A row of a campaign's subscriber-activity report. `id` is the row's id, not the subscriber's;
/// the subscriber is there only with `include=subscriber`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActivityRow {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "count")]
    pub opens_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub clicks_count: u64,
    #[serde(default)]
    pub subscriber: Option<Subscriber>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ImportSample {
    #[serde(default)]
    pub id: Option<Value>,
    pub email: String,
}

/// A bulk import's progress (`GET /subscribers/import/{id}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Import {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "count")]
    pub total: u64,
    #[serde(default, deserialize_with = "count")]
    pub processed: u64,
    #[serde(default, deserialize_with = "count")]
    pub imported: u64,
    #[serde(default, deserialize_with = "count")]
    pub updated: u64,
    #[serde(default, deserialize_with = "count")]
    pub errored: u64,
    #[serde(default, deserialize_with = "count")]
    pub percent: u64,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub invalid: Vec<ImportSample>,
    #[serde(default, deserialize_with = "count")]
    pub invalid_count: u64,
    #[serde(default)]
    pub unsubscribed: Vec<ImportSample>,
    #[serde(default, deserialize_with = "count")]
    pub unsubscribed_count: u64,
    #[serde(default, deserialize_with = "count")]
    pub duplicate_count: u64,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

/// An activity-log entry (`GET /subscribers/{id}/activity-log`). `properties` is an object (or
/// an empty array for some kinds).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogEntry {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub log_name: String,
    #[serde(default)]
    pub subject_type: Option<String>,
    #[serde(default)]
    pub properties: Value,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

impl LogEntry {
    /// A property as text (`campaign_id`, `url`, `group_name`, …).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }
}

/// The meta of a page-paginated list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PageMeta {
    #[serde(default, deserialize_with = "count")]
    pub current_page: u64,
    #[serde(default, deserialize_with = "count")]
    pub last_page: u64,
    #[serde(default, deserialize_with = "count")]
    pub per_page: u64,
    #[serde(default, deserialize_with = "count")]
    pub total: u64,
    /// Report counts (`all`, `opened`, …); older responses call it `counts`.
    #[serde(default, alias = "counts")]
    pub aggregations: BTreeMap<String, Value>,
}

/// One page of a page-paginated list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub meta: PageMeta,
}

impl<T> Page<T> {
    pub fn has_next(&self) -> bool {
        self.meta.current_page < self.meta.last_page
    }
}

/// The meta of a cursor-paginated list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CursorMeta {
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub prev_cursor: Option<String>,
    #[serde(default, deserialize_with = "opt_count")]
    pub per_page: Option<u64>,
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CursorPage<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub meta: CursorMeta,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Data<T> {
    pub data: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_format() {
        let rest = Timestamp::parse("2024-12-04 12:26:44").unwrap();
        let iso = Timestamp::parse("2024-12-04T12:26:44.000000Z").unwrap();
        assert_eq!(rest, iso);
        assert_eq!(rest.to_rest(), "2024-12-04 12:26:44");
        assert!(Timestamp::parse("2024-12-04").is_some());
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn rates_and_ids_are_lenient() {
        let g: Group = serde_json::from_value(serde_json::json!({
            "id": 129543796681606183u64, "name": "G",
            "open_rate": {"float": 0.77777777777778, "string": "77.78%"}, "click_rate": "50%"
        }))
        .unwrap();
        assert_eq!(g.id, "129543796681606183");
        assert!((g.open_rate.0 - 77.777777777778).abs() < 1e-9);
        assert_eq!(g.click_rate, Percent(50.0));
        let m: CursorMeta = serde_json::from_value(serde_json::json!({"per_page": "3"})).unwrap();
        assert_eq!(m.per_page, Some(3));
    }
}
