//! What the ports store and return, next to the domain types of `hmsync-core`.

use std::fmt;

use hmsync_core::{ConnectionConfig, FieldSchemas, Side};
use serde::{Deserialize, Serialize};

/// A configured HubSpot ↔ MailerLite connection, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub config: ConnectionConfig,
    /// Optimistic-locking version: 1 when created, +1 per update.
    pub version: u64,
    /// The apps' field schemas as last read by "refresh fields".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<FieldSchemas>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A value with the version it was stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// One page of a listing; `next` is the cursor to pass as `after` for the following page
/// (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// What a link can be looked up by besides its own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum LinkKey {
    #[serde(rename = "hubspot")]
    HubSpot(String),
    #[serde(rename = "mailerlite")]
    MailerLite(String),
    Email(String),
}

impl LinkKey {
    /// The keys a link is indexed under (an empty email is not indexed).
    pub fn of(link: &hmsync_core::Link) -> Vec<LinkKey> {
        let mut keys = Vec::with_capacity(3);
        if let Some(id) = &link.hubspot_id {
            keys.push(LinkKey::HubSpot(id.clone()));
        }
        if let Some(id) = &link.mailerlite_id {
            keys.push(LinkKey::MailerLite(id.clone()));
        }
        if !link.email.is_empty() {
            keys.push(LinkKey::Email(link.email.clone()));
        }
        keys
    }

    /// Whether `link` currently claims this key (an index entry may be a moment stale).
    pub fn matches(&self, link: &hmsync_core::Link) -> bool {
        match self {
            LinkKey::HubSpot(id) => link.hubspot_id.as_deref() == Some(id.as_str()),
            LinkKey::MailerLite(id) => link.mailerlite_id.as_deref() == Some(id.as_str()),
            LinkKey::Email(email) => link.email == *email,
        }
    }

    /// The key of the index entry (`HS#<id>`, `ML#<id>`, `EMAIL#<email>`), the same in every
    /// adapter.
    pub(crate) fn index_key(&self) -> String {
        match self {
            LinkKey::HubSpot(id) => format!("HS#{id}"),
            LinkKey::MailerLite(id) => format!("ML#{id}"),
            LinkKey::Email(email) => format!("EMAIL#{email}"),
        }
    }

    pub fn value(&self) -> &str {
        match self {
            LinkKey::HubSpot(v) | LinkKey::MailerLite(v) | LinkKey::Email(v) => v,
        }
    }
}

impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKey::HubSpot(id) => write!(f, "HubSpot contact {id}"),
            LinkKey::MailerLite(id) => write!(f, "MailerLite subscriber {id}"),
            LinkKey::Email(email) => write!(f, "email {email}"),
        }
    }
}

/// One thing wrong with a contact, worded for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactProblem {
    /// The app that refused or holds the bad value.
    pub side: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// The app's own error message, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_message: Option<String>,
    /// The values the app refused, by property or field (`email` for the email), as sent (JSON
    /// text for MailerLite values that are not strings). While this problem stands they are
    /// not sent again unless they change, or the contact is retried: the rest of the contact
    /// syncs without them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub refused: std::collections::BTreeMap<String, String>,
}

/// The current error of one contact (cleared when the contact syncs again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactError {
    /// The link id, or `hubspot:<id>` / `mailerlite:<id>` before a link exists.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_id: Option<String>,
    pub problems: Vec<ContactProblem>,
    /// Set by the store: when this error was first recorded (kept across repeats).
    #[serde(default)]
    pub first_seen_ms: u64,
    /// Set by the store: the latest `set_error`.
    #[serde(default)]
    pub last_seen_ms: u64,
    /// Set by the store: how many times in a row the contact failed.
    #[serde(default)]
    pub attempts: u32,
}

impl ContactError {
    pub fn new(key: &str, problems: Vec<ContactProblem>) -> Self {
        Self {
            key: key.to_string(),
            email: None,
            hubspot_id: None,
            mailerlite_id: None,
            problems,
            first_seen_ms: 0,
            last_seen_ms: 0,
            attempts: 0,
        }
    }
}

/// One field change the sync made, for the contact's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub link_id: String,
    pub at_ms: u64,
    pub email: String,
    /// The app that was written.
    pub target: Side,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Why (e.g. "changed in HubSpot", "conflict: HubSpot wins").
    pub reason: String,
    /// What triggered it (e.g. "webhook", "scan", "initial sync").
    pub source: String,
}

/// The counters of one hour of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HourCounters {
    /// When the hour starts (epoch milliseconds).
    pub hour_ms: u64,
    /// Each counter's total for the hour, by name.
    pub counters: std::collections::BTreeMap<String, i64>,
}

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;

/// How long after the end of the month it counts a meter item is kept: the status page shows
/// this month's figure, and last month's stays readable through the next month.
pub const METER_MARGIN_DAYS: i64 = 35;

/// When the meter items of `month` (`"2026-11"`) expire (epoch seconds): the end of that month
/// plus [`METER_MARGIN_DAYS`]. `Invalid` for anything that is not a month.
pub fn meter_expires_at(month: &str) -> crate::Result<u64> {
    let invalid = || crate::StoreError::invalid(format!("{month:?} is not a month (expected yyyy-mm)"));
    let (year, mon) = month.split_once('-').ok_or_else(invalid)?;
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let mon: u8 = mon.parse().map_err(|_| invalid())?;
    let month = time::Month::try_from(mon).map_err(|_| invalid())?;
    let first = time::Date::from_calendar_date(year, month, 1).map_err(|_| invalid())?;
    let end = first.checked_add(time::Duration::days(i64::from(first.month().length(year)))).ok_or_else(invalid)?;
    let at = end.midnight().assume_utc().unix_timestamp() + METER_MARGIN_DAYS * 86_400;
    Ok(at.max(0) as u64)
}

/// A queue message set aside while its connection was paused or waiting for an API limit, in
/// its own item (never in the connection's state) until it is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMessage {
    /// Orders the parked messages of a connection (oldest first) and names one of them.
    pub id: String,
    pub body: String,
}

/// What is left of a person erased from a connection: keyed digests of their email and record
/// ids (never the values), so that no later sync, scan or webhook brings them back, and when
/// and why they were erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Every digest of the person (email and ids), sorted; the tombstone is found by any of them.
    pub digests: Vec<String>,
    pub at_ms: u64,
    /// Why: `hubspot_privacy_deletion`, `hubspot_permanent_deletion` or `erased_by_api`.
    pub reason: String,
}

/// Everything a connection stores about one person, by the keys it is stored under (what
/// [`crate::PrivacyStore::purge_person`] removes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// The person's links: each with its index entries, history and meter marks.
    pub link_ids: Vec<String>,
    /// Index entries to remove when they point to one of `link_ids` or to no link at all.
    pub keys: Vec<LinkKey>,
    /// Their contact errors (the link id, `hubspot:<id>`, `mailerlite:<id>`).
    pub error_keys: Vec<String>,
    /// Emails whose pending engagement events go.
    pub emails: Vec<String>,
}

/// How many stored items a purge removed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erased {
    pub links: u64,
    /// Lookup entries by HubSpot id, MailerLite id and email.
    pub index_entries: u64,
    pub errors: u64,
    pub history_entries: u64,
    /// Engagement events that waited for the person's link.
    pub pending_events: u64,
    /// The marks that counted the person for a month (the month's count stays).
    pub meter_marks: u64,
    /// Queued work set aside while the connection was paused that named the person (taken
    /// out of the parked messages).
    #[serde(default)]
    pub parked_references: u64,
}

impl Tombstone {
    /// This tombstone with the digests of `others` added (sorted, each once).
    pub fn merged(mut self, others: impl IntoIterator<Item = Tombstone>) -> Tombstone {
        for other in others {
            self.digests.extend(other.digests);
        }
        self.digests.sort();
        self.digests.dedup();
        self
    }
}

/// One stored item of a connection, for audits and the tests that compare what is stored: its
/// key (`sk` on DynamoDB, `table:key` on SQLite) and its whole content as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub key: String,
    pub text: String,
}

/// A message for the sync queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The connection id: one group per connection, processed in order, one at a time.
    pub group_id: String,
    /// Messages with the same dedup id within 5 minutes are delivered once.
    pub dedup_id: String,
    pub body: String,
}

/// A message received from a work queue, in flight until acked or its visibility ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Handle for `ack` / `retry_later` of this delivery.
    pub receipt: String,
    pub group_id: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// A message that failed too often, or can never succeed, and was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub group_id: String,
    pub body: String,
    /// How often it was delivered before it was set aside.
    pub receive_count: u32,
    /// Why its last attempt failed, when the consumer set it aside itself; `None` when the queue
    /// moved it after its receive limit (the consumer stopped while handling it: a crash or a
    /// timeout).
    pub last_error: Option<String>,
}

/// The longest last error a dead letter keeps (longer ones are cut, on a character boundary).
pub const LAST_ERROR_MAX_BYTES: usize = 4096;

/// `error` cut to [`LAST_ERROR_MAX_BYTES`].
pub(crate) fn last_error_text(error: &str) -> &str {
    if error.len() <= LAST_ERROR_MAX_BYTES {
        return error;
    }
    let mut end = LAST_ERROR_MAX_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// Ids that become part of a storage key (connection, link, history link) must be non-empty
/// and free of `#`, the key separator, so one id's keys can never be a prefix of another's.
pub(crate) fn check_id(what: &str, id: &str) -> crate::Result<()> {
    if id.is_empty() || id.contains('#') {
        return Err(crate::StoreError::invalid(format!(
            "{what} {id:?} cannot be stored: ids must be non-empty and must not contain '#'"
        )));
    }
    Ok(())
}

/// Hourly counters are kept per whole hour: a start that is not one is a caller's bug.
pub(crate) fn check_hour(hour_ms: u64) -> crate::Result<()> {
    if !hour_ms.is_multiple_of(HOUR_MS) {
        return Err(crate::StoreError::invalid(format!(
            "{hour_ms} is not the start of an hour (epoch milliseconds, a multiple of {HOUR_MS})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_items_expire_after_their_month_and_the_margin() {
        // November 2026 ends on 1 December 2026 00:00 UTC (1796083200); plus 35 days.
        assert_eq!(meter_expires_at("2026-11").unwrap(), 1_796_083_200 + 35 * 86_400);
        // December rolls into the next year; February of a leap year has 29 days.
        assert_eq!(meter_expires_at("2026-12").unwrap(), 1_798_761_600 + 35 * 86_400);
        assert_eq!(meter_expires_at("2028-02").unwrap(), 1_835_481_600 + 35 * 86_400);
        for bad in ["2026", "2026-13", "2026-00", "x-01", ""] {
            assert!(meter_expires_at(bad).is_err(), "{bad}");
        }
    }
}
