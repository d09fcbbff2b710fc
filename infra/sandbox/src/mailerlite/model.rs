//! The records the simulator keeps and the JSON shapes it answers with (as documented and as
//! recorded in `shared/mailerlite/tests/fixtures/recordings/`).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{OrderedMap, Rate, percent, rate};
use crate::common::time_fmt::{iso, rest};

/// A subscriber's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The statuses the API refuses to turn back into `active`/`unconfirmed` ("abuse prevention").
    pub fn is_suppressed(self) -> bool {
        matches!(self, Status::Unsubscribed | Status::Bounced | Status::Junk)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscriber {
    pub id: u64,
    pub email: String,
    pub status: Status,
    pub source: String,
    pub sent: u64,
    pub opens_count: u64,
    pub clicks_count: u64,
    pub ip_address: Option<String>,
    pub subscribed_at: Option<i64>,
    pub unsubscribed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Values by field key; a cleared or never-set field is absent.
    pub fields: HashMap<String, Value>,
    pub groups: BTreeSet<u64>,
    pub opted_in_at: Option<i64>,
    pub optin_ip: Option<String>,
    /// Set by DELETE (soft delete) and by forget.
    pub deleted_at: Option<i64>,
    /// Set by forget: the GDPR purge date (deleted_at + 30 days).
    pub forget_at: Option<i64>,
}

impl Subscriber {
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub created_at: i64,
    /// Subscriber ids, deleted ones included (they are skipped when listing).
    pub members: BTreeSet<u64>,
    /// Live members by status (index = `Status::index`). Derived: rebuilt on restore.
    #[serde(skip)]
    pub counts: [u64; 5],
    pub sent_count: u64,
    pub opens_count: u64,
    pub clicks_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub fn parse(s: &str) -> Option<FieldType> {
        match s {
            "text" => Some(FieldType::Text),
            "number" => Some(FieldType::Number),
            "date" => Some(FieldType::Date),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldDef {
    pub id: u64,
    pub name: String,
    pub key: String,
    pub kind: FieldType,
    pub is_default: bool,
}

/// The rule a sandbox segment selects its members by (segments are rule-based in MailerLite and
/// their rules cannot be written through the API, so the admin API defines them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SegmentRule {
    /// The field `key` holds exactly `value` (text compared case-insensitively).
    FieldEquals { key: String, value: Value },
    /// Member of the group.
    InGroup { group_id: String },
    /// The number field `key` is greater than `value`.
    NumberGreaterThan { key: String, value: f64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    pub id: u64,
    pub name: String,
    pub rule: SegmentRule,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: u64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub batchable: bool,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_fired_at: Option<i64>,
    /// The status of the last delivery attempt (see `health`).
    #[serde(default)]
    pub response_code: Option<u16>,
    /// When the current run of failed attempts began (milliseconds); `None` after a success.
    #[serde(default)]
    pub failing_since_ms: Option<i64>,
    #[serde(default)]
    pub blocked: bool,
}

/// One recipient of a simulated campaign (a row of the subscriber-activity report).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActivityRow {
    pub id: u64,
    pub subscriber_id: u64,
    pub opens_count: u64,
    pub clicks_count: u64,
    pub opened: bool,
    pub clicked: bool,
    pub unsubscribed: bool,
    pub hardbounced: bool,
    pub junk: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u64,
    pub email_id: u64,
    pub name: String,
    pub subject: String,
    pub created_at: i64,
    pub finished_at: i64,
    pub group_ids: Vec<u64>,
    pub rows: Vec<ActivityRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportSample {
    pub id: Option<u64>,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Import {
    pub id: u64,
    pub total: u64,
    pub imported: u64,
    pub updated: u64,
    pub errored: u64,
    pub invalid: Vec<ImportSample>,
    pub changed: Vec<ImportSample>,
    pub unchanged: Vec<ImportSample>,
    pub unsubscribed: Vec<ImportSample>,
    pub duplicate: Vec<ImportSample>,
    pub created_at: i64,
    /// The import reports `done` from this moment on (a short, scaled processing delay).
    /// Snapshots keep the time left.
    #[serde(with = "crate::snapshot::std_instant", rename = "done_in_ms")]
    pub done_at: std::time::Instant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: u64,
    #[serde(deserialize_with = "crate::snapshot::interned")]
    pub log_name: crate::snapshot::StaticStr,
    pub subject_id: u64,
    #[serde(deserialize_with = "crate::snapshot::interned")]
    pub subject_type: crate::snapshot::StaticStr,
    pub properties: Value,
    pub created_at: i64,
}

// ---------------------------------------------------------------------------------------------
// Output shapes. Field order follows the recordings.

#[derive(Debug, Clone, Serialize)]
pub struct GroupOut {
    pub id: String,
    pub name: String,
    pub active_count: u64,
    pub sent_count: u64,
    pub opens_count: u64,
    pub open_rate: Rate,
    pub clicks_count: u64,
    pub click_rate: Rate,
    pub unsubscribed_count: u64,
    pub unconfirmed_count: u64,
    pub bounced_count: u64,
    pub junk_count: u64,
    pub created_at: String,
}

impl Group {
    pub fn out(&self) -> GroupOut {
        GroupOut {
            id: self.id.to_string(),
            name: self.name.clone(),
            active_count: self.counts[Status::Active.index()],
            sent_count: self.sent_count,
            opens_count: self.opens_count,
            open_rate: rate(self.opens_count, self.sent_count),
            clicks_count: self.clicks_count,
            click_rate: rate(self.clicks_count, self.sent_count),
            unsubscribed_count: self.counts[Status::Unsubscribed.index()],
            unconfirmed_count: self.counts[Status::Unconfirmed.index()],
            bounced_count: self.counts[Status::Bounced.index()],
            junk_count: self.counts[Status::Junk.index()],
            created_at: rest(self.created_at),
        }
    }
}

/// The REST subscriber object (<https://developers.mailerlite.com/docs/subscribers.html>).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberOut {
    pub id: String,
    pub email: String,
    pub status: &'static str,
    pub source: String,
    pub sent: u64,
    pub opens_count: u64,
    pub clicks_count: u64,
    pub open_rate: Value,
    pub click_rate: Value,
    pub ip_address: Option<String>,
    pub subscribed_at: Option<String>,
    pub unsubscribed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget_at: Option<Value>,
    pub fields: OrderedMap<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Value>,
    pub opted_in_at: Option<String>,
    pub optin_ip: Option<String>,
}

/// The subscriber as webhook payloads carry it: ISO timestamps, `deleted_at`/`forget_at`
/// always present, `location`, no `groups`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSubscriber {
    pub id: String,
    pub email: String,
    pub status: &'static str,
    pub source: String,
    pub sent: u64,
    pub opens_count: u64,
    pub clicks_count: u64,
    pub open_rate: Value,
    pub click_rate: Value,
    pub ip_address: Option<String>,
    pub subscribed_at: Option<String>,
    pub unsubscribed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub forget_at: Option<String>,
    pub fields: OrderedMap<Value>,
    pub opted_in_at: Option<String>,
    pub optin_ip: Option<String>,
    pub location: Option<Value>,
}

/// Every account field, in field order, with the subscriber's value or `null`.
pub fn fields_out(fields: &[FieldDef], values: &HashMap<String, Value>) -> OrderedMap<Value> {
    OrderedMap(fields.iter().map(|f| (f.key.clone(), values.get(&f.key).cloned().unwrap_or(Value::Null))).collect())
}

impl Subscriber {
    pub fn out(&self, fields: &[FieldDef], groups: Option<Vec<GroupOut>>) -> SubscriberOut {
        SubscriberOut {
            id: self.id.to_string(),
            email: self.email.clone(),
            status: self.status.as_str(),
            source: self.source.clone(),
            sent: self.sent,
            opens_count: self.opens_count,
            clicks_count: self.clicks_count,
            open_rate: percent(self.opens_count, self.sent),
            click_rate: percent(self.clicks_count, self.sent),
            ip_address: self.ip_address.clone(),
            subscribed_at: self.subscribed_at.map(rest),
            unsubscribed_at: self.unsubscribed_at.map(rest),
            created_at: rest(self.created_at),
            updated_at: rest(self.updated_at),
            deleted_at: None,
            forget_at: None,
            fields: fields_out(fields, &self.fields),
            groups,
            location: None,
            opted_in_at: self.opted_in_at.map(rest),
            optin_ip: self.optin_ip.clone(),
        }
    }

    pub fn webhook_out(&self, fields: &[FieldDef]) -> WebhookSubscriber {
        WebhookSubscriber {
            id: self.id.to_string(),
            email: self.email.clone(),
            status: self.status.as_str(),
            source: self.source.clone(),
            sent: self.sent,
            opens_count: self.opens_count,
            clicks_count: self.clicks_count,
            open_rate: percent(self.opens_count, self.sent),
            click_rate: percent(self.clicks_count, self.sent),
            ip_address: self.ip_address.clone(),
            subscribed_at: self.subscribed_at.map(iso),
            unsubscribed_at: self.unsubscribed_at.map(iso),
            created_at: iso(self.created_at),
            updated_at: iso(self.updated_at),
            deleted_at: self.deleted_at.map(iso),
            forget_at: self.forget_at.map(iso),
            fields: fields_out(fields, &self.fields),
            opted_in_at: self.opted_in_at.map(iso),
            optin_ip: self.optin_ip.clone(),
            location: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldOut {
    pub id: String,
    pub name: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub is_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_in_automations: Option<bool>,
}

impl FieldDef {
    /// `list` adds `used_in_automations`, which single-field responses omit (recordings).
    pub fn out(&self, list: bool) -> FieldOut {
        FieldOut {
            id: self.id.to_string(),
            name: self.name.clone(),
            key: self.key.clone(),
            kind: self.kind.as_str(),
            is_default: self.is_default,
            used_in_automations: list.then_some(false),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentOut {
    pub id: String,
    pub name: String,
    pub total: u64,
    pub open_rate: Rate,
    pub click_rate: Rate,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automations_using_segment_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookOut {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub is_blocked: bool,
    pub secret: String,
    pub created_at: String,
    pub updated_at: String,
    pub batchable: bool,
    pub version: &'static str,
    pub last_fired_at: Option<String>,
    pub response_code: Option<u16>,
}

impl Webhook {
    pub fn out(&self) -> WebhookOut {
        WebhookOut {
            id: self.id.to_string(),
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            enabled: self.enabled,
            is_blocked: self.blocked,
            secret: self.secret.clone(),
            created_at: rest(self.created_at),
            updated_at: rest(self.updated_at),
            batchable: self.batchable,
            version: "2022-01",
            last_fired_at: self.last_fired_at.map(rest),
            response_code: self.response_code,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleOut {
    pub id: Option<String>,
    pub email: String,
}

fn samples(v: &[ImportSample]) -> Vec<SampleOut> {
    // "The response shows a maximum of 5 sample subscribers in arrays."
    v.iter().take(5).map(|s| SampleOut { id: s.id.map(|i| i.to_string()), email: s.email.clone() }).collect()
}

/// The import progress object (python recording `subscribers-get-import.yml`).
#[derive(Debug, Clone, Serialize)]
pub struct ImportOut {
    pub id: String,
    pub account_id: String,
    pub total: u64,
    pub processed: u64,
    pub imported: u64,
    pub updated: u64,
    pub errored: u64,
    pub percent: u64,
    pub done: bool,
    pub invalid: Vec<SampleOut>,
    pub invalid_count: u64,
    pub mistyped: Vec<SampleOut>,
    pub mistyped_count: u64,
    pub changed: Vec<SampleOut>,
    pub changed_count: u64,
    pub unchanged: Vec<SampleOut>,
    pub unchanged_count: u64,
    pub unsubscribed: Vec<SampleOut>,
    pub unsubscribed_count: u64,
    pub role_based: Vec<SampleOut>,
    pub role_based_count: u64,
    pub suspicious_format: Vec<SampleOut>,
    pub suspicious_format_count: u64,
    pub duplicate: Vec<SampleOut>,
    pub duplicate_count: u64,
    pub banned_import_emails_count: u64,
    pub updated_at: String,
    pub undone_at: Option<String>,
    pub stopped_at: Option<String>,
    pub undo_started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Import {
    pub fn out(&self, account_id: u64, now: std::time::Instant) -> ImportOut {
        let done = now >= self.done_at;
        // Before it is done the import reports nothing processed yet; its effects on the
        // subscribers were applied when it was created (the sandbox does not model a half-done
        // import).
        let (processed, imported, updated, errored) =
            if done { (self.total, self.imported, self.updated, self.errored) } else { (0, 0, 0, 0) };
        let pick = |v: &Vec<ImportSample>| if done { samples(v) } else { Vec::new() };
        let count = |v: &Vec<ImportSample>| if done { v.len() as u64 } else { 0 };
        ImportOut {
            id: self.id.to_string(),
            account_id: account_id.to_string(),
            total: self.total,
            processed,
            imported,
            updated,
            errored,
            percent: if self.total == 0 || done { if done { 100 } else { 0 } } else { processed * 100 / self.total },
            done,
            invalid: pick(&self.invalid),
            invalid_count: count(&self.invalid),
            mistyped: Vec::new(),
            mistyped_count: 0,
            changed: pick(&self.changed),
            changed_count: count(&self.changed),
            unchanged: pick(&self.unchanged),
            unchanged_count: count(&self.unchanged),
            unsubscribed: pick(&self.unsubscribed),
            unsubscribed_count: count(&self.unsubscribed),
            role_based: Vec::new(),
            role_based_count: 0,
            suspicious_format: Vec::new(),
            suspicious_format_count: 0,
            duplicate: pick(&self.duplicate),
            duplicate_count: count(&self.duplicate),
            banned_import_emails_count: 0,
            updated_at: iso(self.created_at),
            undone_at: None,
            stopped_at: None,
            undo_started_at: None,
            finished_at: done.then(|| iso(self.created_at)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntryOut {
    pub id: String,
    pub log_name: &'static str,
    pub subject_id: String,
    pub subject_type: &'static str,
    pub properties: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl LogEntry {
    pub fn out(&self) -> LogEntryOut {
        LogEntryOut {
            id: self.id.to_string(),
            log_name: self.log_name,
            subject_id: self.subject_id.to_string(),
            subject_type: self.subject_type,
            properties: self.properties.clone(),
            created_at: rest(self.created_at),
            updated_at: rest(self.created_at),
        }
    }
}

/// The field key MailerLite derives from a field name, once, at creation: words are split on
/// whitespace, `_` and `-` (other punctuation is dropped), every upper-case letter inside a word
/// starts a new snake part (`ZIP` → `z_i_p`, `MailerLite` → `mailer_lite`), and the parts are
/// joined with `_` in lower case (`Test field nodejs 348710` → `test_field_nodejs_348710`).
pub fn field_key(name: &str) -> String {
    let cleaned: String =
        name.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '_' || *c == '-').collect();
    let mut parts = Vec::new();
    for word in cleaned.split(|c: char| c.is_whitespace() || c == '_' || c == '-').filter(|w| !w.is_empty()) {
        let mut part = String::new();
        for (i, c) in word.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                part.push('_');
            }
            part.extend(c.to_lowercase());
        }
        parts.push(part);
    }
    parts.join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys_follow_the_reference() {
        assert_eq!(field_key("ZIP"), "z_i_p");
        assert_eq!(field_key("Zip"), "zip");
        assert_eq!(field_key("Test field nodejs 348710"), "test_field_nodejs_348710");
        assert_eq!(field_key("My Field"), "my_field");
        assert_eq!(field_key("test_field_name"), "test_field_name");
        assert_eq!(field_key("Last name"), "last_name");
        assert_eq!(field_key("date field"), "date_field");
    }
}
