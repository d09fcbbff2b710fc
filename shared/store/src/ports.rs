//! The ports: one small trait per concern (a function depends only on what it uses, which
//! mirrors its least-privilege IAM policy), all object-safe, `Send + Sync`, and scoped by
//! connection id. [`Store`] combines the storage ones.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{ConnectionConfig, Link};
use serde_json::Value;

use crate::error::Result;
use crate::model::{
    Connection, ContactError, DeadLetter, Erased, HistoryEntry, HourCounters, LinkKey, Page, ParkedMessage, Person,
    QueueMessage, ReceivedMessage, StoredItem, Tombstone, Versioned,
};

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection at version 1; `AlreadyExists` if the id is taken.
    async fn create_connection(&self, id: &str, config: &ConnectionConfig) -> Result<Connection>;

    async fn get_connection(&self, id: &str) -> Result<Option<Connection>>;

    /// Every connection of the deployment, by id.
    async fn list_connections(&self) -> Result<Vec<Connection>>;

    /// Stores `connection.config` and `.schemas` if the stored version still equals
    /// `connection.version` (the version the caller read), else `VersionConflict`. Returns the
    /// stored connection, at version + 1.
    async fn update_connection(&self, connection: &Connection) -> Result<Connection>;

    /// Removes the connection and every item of it (links, indexes, state, counters, errors,
    /// history, hourly counters, meter, routing entries, events). Idempotent; true if the connection existed.
    async fn delete_connection(&self, id: &str) -> Result<bool>;
}

#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Strongly consistent read by link id.
    async fn get_link(&self, conn: &str, link_id: &str) -> Result<Option<Link>>;

    /// Strongly consistent read by HubSpot id, MailerLite id or email.
    async fn find_link(&self, conn: &str, key: &LinkKey) -> Result<Option<Link>>;

    /// Batch lookup: the keys that are linked, each with its link (keys without a link are
    /// left out; several keys may share one link).
    async fn find_links(&self, conn: &str, keys: &[LinkKey]) -> Result<Vec<(LinkKey, Link)>>;

    /// Writes `link` and its index entries atomically. `previous` is the link as the caller read
    /// it: `None` means the link must not exist yet; otherwise the stored version must equal
    /// `previous.version` (`VersionConflict`). Index entries of `previous` that no longer apply
    /// are removed in the same write; a key held by another link is an `IndexConflict` and
    /// nothing is written. Returns the stored link, at `previous.version + 1` (1 when new).
    async fn put_link(&self, conn: &str, link: &Link, previous: Option<&Link>) -> Result<Link>;

    /// Removes a link and its index entries; true if it existed.
    async fn delete_link(&self, conn: &str, link_id: &str) -> Result<bool>;

    /// Links ordered by id, starting after the cursor `after` (`limit` 0 counts as 1).
    async fn list_links(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<Link>>;

    async fn count_links(&self, conn: &str) -> Result<u64>;

    async fn link_by_hubspot_id(&self, conn: &str, id: &str) -> Result<Option<Link>> {
        self.find_link(conn, &LinkKey::HubSpot(id.to_string())).await
    }

    async fn link_by_mailerlite_id(&self, conn: &str, id: &str) -> Result<Option<Link>> {
        self.find_link(conn, &LinkKey::MailerLite(id.to_string())).await
    }

    async fn link_by_email(&self, conn: &str, email: &str) -> Result<Option<Link>> {
        self.find_link(conn, &LinkKey::Email(email.to_string())).await
    }
}

/// The connection's state document (owned by the engine, opaque here) and its counters.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn get_state(&self, conn: &str) -> Result<Option<Versioned<Value>>>;

    /// Stores the state if the stored version equals `expected_version` (`None`: it must not
    /// exist yet), else `VersionConflict`. Returns the new version.
    async fn put_state(&self, conn: &str, state: &Value, expected_version: Option<u64>) -> Result<u64>;

    /// Adds each delta atomically (concurrent callers never lose an increment).
    async fn add_counters(&self, conn: &str, deltas: &[(&str, i64)]) -> Result<()> {
        self.add_and_set_counters(conn, deltas, &[]).await
    }

    /// Adds `deltas` and sets `values` (the last write wins; a name in both is set) in one
    /// write: e.g. a webhook delivery's event count and the time it arrived.
    async fn add_and_set_counters(&self, conn: &str, deltas: &[(&str, i64)], values: &[(&str, i64)]) -> Result<()>;

    async fn get_counters(&self, conn: &str) -> Result<BTreeMap<String, i64>>;
}

/// The current error of each contact that failed to sync.
#[async_trait]
pub trait ErrorStore: Send + Sync {
    /// Records (or replaces) the contact's current error. The store sets the timings: the first
    /// `first_seen_ms` is kept, `last_seen_ms` is now, and `attempts` grows by one per call.
    async fn set_error(&self, conn: &str, error: &ContactError) -> Result<ContactError>;

    /// True if there was an error to clear.
    async fn clear_error(&self, conn: &str, key: &str) -> Result<bool>;

    async fn get_error(&self, conn: &str, key: &str) -> Result<Option<ContactError>>;

    /// Errors ordered by key, starting after the cursor `after` (`limit` 0 counts as 1).
    async fn list_errors(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ContactError>>;

    async fn count_errors(&self, conn: &str) -> Result<u64>;
}

/// Per-contact change history, kept for a time to live.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    async fn append_history(&self, conn: &str, entries: &[HistoryEntry], ttl: Duration) -> Result<()>;

    /// The contact's latest entries, newest first; expired entries are never returned.
    async fn read_history(&self, conn: &str, link_id: &str, limit: usize) -> Result<Vec<HistoryEntry>>;
}

/// Per-hour counters of a connection (records written, errors, API requests): what the status
/// page draws over time. The engine adds to them once per handled message, so a counter update
/// costs one write however many contacts the message carried.
#[async_trait]
pub trait HourlyStore: Send + Sync {
    /// Adds each delta to the counters of the hour starting at `hour_ms` (epoch milliseconds, a
    /// whole hour: anything else is `Invalid`), atomically: concurrent callers never lose an
    /// increment. The hour is kept for `ttl` from this write.
    async fn add_hourly(&self, conn: &str, hour_ms: u64, deltas: &[(&str, i64)], ttl: Duration) -> Result<()>;

    /// The hours starting from `from_ms` up to and including `to_ms` that have counters, oldest
    /// first; expired hours are never returned.
    async fn read_hourly(&self, conn: &str, from_ms: u64, to_ms: u64) -> Result<Vec<HourCounters>>;
}

/// Monthly unique synced contacts. The month's count and its marks expire
/// [`crate::METER_MARGIN_DAYS`] after the month ends ([`crate::meter_expires_at`]).
#[async_trait]
pub trait MeterStore: Send + Sync {
    /// Counts each link once per month (`month` like `"2026-11"`); returns how many of
    /// `link_ids` were new this month.
    async fn record_synced(&self, conn: &str, month: &str, link_ids: &[String]) -> Result<u64>;

    async fn unique_contacts(&self, conn: &str, month: &str) -> Result<u64>;
}

/// Which connections a HubSpot portal's webhooks go to.
#[async_trait]
pub trait RoutingStore: Send + Sync {
    /// `NotFound` if the connection does not exist.
    async fn add_route(&self, portal_id: u64, conn: &str) -> Result<()>;

    async fn remove_route(&self, portal_id: u64, conn: &str) -> Result<()>;

    /// Connection ids, sorted.
    async fn connections_for_portal(&self, portal_id: u64) -> Result<Vec<String>>;
}

/// Engagement event bookkeeping: duplicate deliveries, and events of contacts not linked yet.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// For each key, true if it was not seen (within its time to live) before; a key repeated
    /// within one call counts once.
    async fn mark_events_seen(&self, conn: &str, keys: &[String], ttl: Duration) -> Result<Vec<bool>>;

    async fn put_pending_events(&self, conn: &str, email: &str, events: &[Value], ttl: Duration) -> Result<()>;

    /// Returns the email's pending events in the order they were put, and removes them: each
    /// event is taken once, also by concurrent callers.
    async fn take_pending_events(&self, conn: &str, email: &str) -> Result<Vec<Value>>;
}

/// Work that arrived while a connection was paused or waiting for an API limit: one item per
/// message, beside the connection's state (never in it), so a long pause keeps thousands of
/// messages without any item growing and without personal data in the state.
#[async_trait]
pub trait ParkedStore: Send + Sync {
    /// Sets a queue message body aside, after the ones parked before. False when `cap` messages
    /// are parked already (nothing is written).
    async fn park(&self, conn: &str, body: &str, cap: u64) -> Result<bool>;

    /// Parked messages, oldest first, starting after the cursor `after` (`limit` 0 counts as 1).
    async fn list_parked(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ParkedMessage>>;

    /// Removes parked messages (once they are back in the queue); ids not parked are ignored.
    async fn remove_parked(&self, conn: &str, ids: &[String]) -> Result<()>;

    /// Replaces the body of one parked message, keeping its place; `None` removes it.
    async fn replace_parked(&self, conn: &str, id: &str, body: Option<&str>) -> Result<()>;

    async fn count_parked(&self, conn: &str) -> Result<u64>;
}

/// Erasing a person: their purge, the tombstones that keep them from coming back, and the
/// inventory that shows what a connection stores.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Stores a tombstone under each of its digests. Tombstones already holding one of them are
    /// merged into it (one person, one tombstone): its digests are all of theirs and its own,
    /// with its time and reason. Returns the tombstone as stored.
    async fn put_tombstone(&self, conn: &str, tombstone: &Tombstone) -> Result<Tombstone>;

    /// The digests among `digests` that are held by a tombstone (in no particular order).
    async fn tombstoned(&self, conn: &str, digests: &[String]) -> Result<Vec<String>>;

    async fn get_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>>;

    /// Removes the tombstone holding `digest`, under every one of its digests; returns it.
    async fn lift_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>>;

    /// Whether the connection holds any tombstone (none: nothing to look up while syncing).
    async fn has_tombstones(&self, conn: &str) -> Result<bool>;

    /// Removes everything stored under the person's keys: links with their index entries,
    /// history and meter marks; the index entries of `person.keys` that no other link holds;
    /// errors; pending engagement events. Counters and the month's count stay. Idempotent.
    async fn purge_person(&self, conn: &str, person: &Person) -> Result<Erased>;

    /// Every item stored for the connection (including its routing entries), each with its key
    /// and its whole content as text.
    async fn inventory(&self, conn: &str) -> Result<Vec<StoredItem>>;
}

/// Every storage port at once.
pub trait Store:
    ConnectionStore
    + LinkStore
    + StateStore
    + ErrorStore
    + HistoryStore
    + HourlyStore
    + MeterStore
    + RoutingStore
    + EventStore
    + ParkedStore
    + PrivacyStore
{
}

impl<T> Store for T where
    T: ConnectionStore
        + LinkStore
        + StateStore
        + ErrorStore
        + HistoryStore
        + HourlyStore
        + MeterStore
        + RoutingStore
        + EventStore
        + ParkedStore
        + PrivacyStore
{
}

/// Enqueues sync work (webhooks, schedules, the config API).
#[async_trait]
pub trait SyncQueue: Send + Sync {
    /// Sends every message or fails with `SendFailed`: none is dropped silently.
    async fn send_batch(&self, messages: &[QueueMessage]) -> Result<()>;
}

/// The consuming side of the queue (the local runner, the status page).
#[async_trait]
pub trait WorkQueue: SyncQueue {
    /// Up to `max` messages, in order within each group; a group with a message in flight
    /// delivers nothing. Received messages stay invisible for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>>;

    /// Done: removes the message.
    async fn ack(&self, receipt: &str) -> Result<()>;

    /// Not done: the message is delivered again after `delay` (its group waits until then).
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()>;

    /// Not attempted: the message is visible again at once (first in its group, which still
    /// waits for any of its messages in flight), and where the queue can, this delivery does not
    /// count towards the dead-letter limit — a message nobody tried must not die of the failures
    /// of the messages before it. SQS cannot take a receive back: there this is a visibility
    /// change to 0 and the receive still counts (the template's `maxReceiveCount` of 10 leaves
    /// room for that).
    async fn release(&self, receipt: &str) -> Result<()>;

    /// Like [`WorkQueue::receive`], but at most one message per group, its first: for a consumer
    /// that handles a group's messages one at a time, so that none waits in its hands untried
    /// (counting a receive for nothing if the consumer fails or dies). The default receives and
    /// releases the rest.
    async fn receive_heads(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>> {
        let mut groups = std::collections::BTreeSet::new();
        let mut heads = Vec::new();
        for m in self.receive(max, visibility).await? {
            if groups.insert(m.group_id.clone()) {
                heads.push(m);
            } else {
                self.release(&m.receipt).await?;
            }
        }
        Ok(heads)
    }

    /// Gives up on a received message: it moves to the dead letters with `error` as its last
    /// error (and leaves the queue), so it neither uses up further receives nor holds back the
    /// later messages of its group. For a message that can never succeed, or that failed on its
    /// last allowed receive.
    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<()>;

    /// The oldest dead letters, without removing them.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Moves up to `limit` dead letters back to the queue; returns how many moved.
    async fn requeue_dead_letters(&self, limit: usize) -> Result<usize>;
}

/// Credentials and other secret strings. Implementations never print values.
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get_secret(&self, name: &str) -> Result<Option<String>>;

    /// Creates or overwrites.
    async fn put_secret(&self, name: &str, value: &str) -> Result<()>;

    /// Overwrites `name` only while it exists; never creates it (so a worker holding stale
    /// state cannot bring back the secret of a deleted connection). False when it does not
    /// exist (or is scheduled for deletion).
    async fn update_secret(&self, name: &str, value: &str) -> Result<bool>;

    /// Idempotent.
    async fn delete_secret(&self, name: &str) -> Result<()>;

    /// Drops what a cache in front of the store holds of `name`, so the next read sees a value
    /// another process wrote meanwhile. A store without a cache has nothing to drop.
    fn forget_cached(&self, _name: &str) {}
}
