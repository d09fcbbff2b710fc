//! The engine: the use cases over the ports. Every Lambda function and the local runner build
//! one [`Engine`] and call into it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmsync_store::{Connection, QueueMessage, SecretStore, Store, StoreError, SyncQueue};

use crate::api::{ApiError, HubSpotApi, MailerLiteApi};
use crate::delivery::DeliveryPolicy;
use crate::failpoint::Failpoints;
use crate::message::SyncMessage;
use crate::state::ConnectionState;

/// The wall clock, behind a port so tests can move time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        hmsync_http::now_ms()
    }
}

/// Builds (and caches) the API clients of a connection from its stored credentials. Secrets
/// stay inside the factory: the engine never sees them.
#[async_trait]
pub trait ApiFactory: Send + Sync {
    async fn hubspot(&self, connection: &Connection) -> Result<Arc<dyn HubSpotApi>, EngineError>;
    async fn mailerlite(&self, connection: &Connection) -> Result<Arc<dyn MailerLiteApi>, EngineError>;
    /// Forgets cached clients of a connection, and its cached credentials (after its credentials
    /// changed, here or in another process).
    fn forget(&self, connection_id: &str);
    /// The secrets that sign the connection's webhooks (the only secrets the engine handles,
    /// and only to check signatures).
    async fn webhook_keys(&self, connection_id: &str) -> Result<crate::adapters::WebhookKeys, EngineError>;
    /// Requests the connection's clients sent so far (HubSpot, MailerLite), 0 for a client not
    /// built yet; a client rebuilt after new credentials starts again from 0. No I/O.
    fn requests_sent(&self, connection_id: &str) -> (u64, u64);
    /// Each app's request limit per hour as the clients pace it (HubSpot's burst limit,
    /// MailerLite's per-minute limit; shrunk windows count as they run).
    fn limits_per_hour(&self) -> (u64, u64);
}

/// Tunables; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long per-contact history is kept.
    pub history_ttl: Duration,
    /// HubSpot search is eventually consistent: incremental scans start this much before the
    /// previous scan's start.
    pub search_lag: Duration,
    /// A scan with no page processed for this long is considered dead and may be restarted.
    pub scan_stale_after: Duration,
    /// Contacts per `Contacts` message (webhooks coalesce into messages of at most this many).
    pub refs_per_message: usize,
    /// How long an approval of the safety valve holds.
    pub approval_window: Duration,
    /// Engagement event keys are remembered this long (duplicate deliveries are ignored).
    pub event_key_ttl: Duration,
    /// How long the hourly counters (the status page's charts) are kept.
    pub hourly_ttl: Duration,
    /// How often the schedule scans (the deployment's schedule; shown as "next scan").
    pub scan_interval: Duration,
    /// After HubSpot's daily limit is used up, work is tried again this often (HubSpot resets
    /// the limit at midnight in the account's time zone, which the API does not tell).
    pub daily_limit_probe: Duration,
    /// When failed queue messages come back and when they are given up.
    pub delivery: DeliveryPolicy,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            history_ttl: Duration::from_secs(90 * 24 * 3600),
            search_lag: Duration::from_secs(60),
            scan_stale_after: Duration::from_secs(3600),
            refs_per_message: 200,
            approval_window: Duration::from_secs(24 * 3600),
            event_key_ttl: Duration::from_secs(30 * 24 * 3600),
            hourly_ttl: Duration::from_secs(35 * 24 * 3600),
            scan_interval: Duration::from_secs(2 * 3600),
            daily_limit_probe: Duration::from_secs(15 * 60),
            delivery: DeliveryPolicy::default(),
        }
    }
}

/// What went wrong handling a message, and whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Try again later (a lost race, a rate limit, an outage).
    #[error("{message}; retrying later")]
    Retry { message: String, after: Option<Duration> },
    /// The message can never succeed (malformed, or for a connection that no longer exists).
    #[error("{0}")]
    Permanent(String),
    /// A test failpoint stopped the worker here.
    #[error("stopped at failpoint {0}")]
    Crashed(&'static str),
}

impl EngineError {
    /// Whether the message should come back (and when).
    pub fn retry_after(&self) -> Option<Option<Duration>> {
        match self {
            EngineError::Api(e) if e.is_transient() => Some(e.retry_after()),
            EngineError::Api(_) => Some(None),
            EngineError::Store(e) if e.is_transient() => Some(None),
            EngineError::Store(StoreError::VersionConflict { .. }) => Some(None),
            EngineError::Store(_) => Some(None),
            EngineError::Retry { after, .. } => Some(*after),
            EngineError::Crashed(_) => Some(None),
            EngineError::Permanent(_) => None,
        }
    }
}

/// What handling a message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Contacts planned.
    pub contacts: usize,
    /// Contacts that were written to at least one app.
    pub written: usize,
    /// Records written in each app (a contact written to both counts in both).
    pub written_hubspot: usize,
    pub written_mailerlite: usize,
    /// Records an initial sync's scan page read (its progress).
    pub initial_records: u64,
    /// References dropped as echoes of our own writes (without calling an API).
    pub echoes: usize,
    /// Contacts skipped because nothing changed since they were last synced.
    pub unchanged: usize,
    /// Contacts recorded with an error.
    pub errors: usize,
    /// Records without a usable email (excluded, not errors).
    pub excluded: usize,
    /// The message was set aside because the connection is paused.
    pub parked: bool,
    /// Messages this one led to (next scan pages, retries).
    pub enqueued: usize,
}

/// The engine and its ports.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn SyncQueue>,
    pub secrets: Arc<dyn SecretStore>,
    pub apis: Arc<dyn ApiFactory>,
    pub clock: Arc<dyn Clock>,
    pub settings: EngineSettings,
    pub failpoints: Failpoints,
}

impl Engine {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Handles one queue message.
    pub async fn handle(&self, message: &SyncMessage) -> Result<Report, EngineError> {
        match message {
            SyncMessage::Contacts { connection_id, refs, origin } => {
                self.sync_contacts(connection_id, refs.clone(), *origin, crate::sync::Preloaded::default(), message)
                    .await
            }
            SyncMessage::ScanStart { connection_id, kind } => self.start_scan(connection_id, *kind).await,
            SyncMessage::ScanPage { connection_id, run_id, part, cursor } => {
                self.scan_page(connection_id, run_id, part, cursor.as_deref(), message).await
            }
            SyncMessage::HubSpotMerge { connection_id, survivor_id, merged_ids } => {
                self.merge(connection_id, survivor_id, merged_ids, message).await
            }
            SyncMessage::CompanyChanged { connection_id, company_id } => {
                self.company_changed(connection_id, company_id, message).await
            }
            SyncMessage::Engagement { connection_id, events } => {
                self.record_engagement(connection_id, events, message).await
            }
            SyncMessage::PrivacyDeletion { connection_id, hubspot_id } => {
                self.privacy_deletion(connection_id, hubspot_id).await.map(|()| Report::default())
            }
        }
    }

    /// Sends messages the engine made itself (scan starts and pages) to the queue: one group
    /// per connection, dedup ids from their content (the same scan page sent twice is one).
    pub async fn enqueue(&self, messages: &[SyncMessage]) -> Result<(), EngineError> {
        self.send(messages, |m| m.content_dedup_id()).await
    }

    /// Sends the messages one webhook delivery became. Their dedup ids come from the delivery
    /// (`delivery_key`: its event ids, or its raw bytes), not from the messages alone: a
    /// redelivery of the same events is deduplicated, but two real edits of one record that read
    /// the same as messages (two `company.propertyChange` of one company within the queue's
    /// 5-minute dedup window) stay two messages, and neither edit is lost.
    pub async fn enqueue_delivery(&self, messages: &[SyncMessage], delivery_key: &str) -> Result<(), EngineError> {
        self.send(messages, |m| crate::message::delivery_dedup_id(delivery_key, m)).await
    }

    async fn send(
        &self,
        messages: &[SyncMessage],
        dedup_id: impl Fn(&SyncMessage) -> String,
    ) -> Result<(), EngineError> {
        if messages.is_empty() {
            return Ok(());
        }
        let batch: Vec<QueueMessage> = messages
            .iter()
            .map(|m| QueueMessage { group_id: m.connection_id().to_string(), dedup_id: dedup_id(m), body: m.to_body() })
            .collect();
        self.queue.send_batch(&batch).await?;
        Ok(())
    }

    /// Loads the connection or fails permanently (its work is moot once it is deleted).
    pub async fn connection(&self, id: &str) -> Result<Connection, EngineError> {
        self.store.get_connection(id).await?.ok_or_else(|| {
            EngineError::Permanent(format!("connection {id} does not exist (deleted?); its work is dropped"))
        })
    }

    /// The state document and its version (a fresh default when none is stored yet).
    pub async fn state(&self, id: &str) -> Result<(ConnectionState, Option<u64>), EngineError> {
        match self.store.get_state(id).await? {
            Some(v) => {
                let state = serde_json::from_value(v.value)
                    .map_err(|e| EngineError::Permanent(format!("state of connection {id} is unreadable: {e}")))?;
                Ok((state, Some(v.version)))
            }
            None => Ok((ConnectionState::default(), None)),
        }
    }

    /// Stores the state if nobody wrote it since it was read.
    pub async fn save_state(
        &self,
        id: &str,
        state: &ConnectionState,
        version: Option<u64>,
    ) -> Result<u64, EngineError> {
        let value = serde_json::to_value(state).expect("state serializes");
        Ok(self.store.put_state(id, &value, version).await?)
    }

    /// Reads, changes and stores the state, retrying when another writer got there first.
    pub async fn update_state<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut ConnectionState) -> T,
    ) -> Result<(ConnectionState, T), EngineError> {
        let mut races = ConflictRetry::new(format!("the state of connection {id}"));
        loop {
            let (mut state, version) = self.state(id).await?;
            let out = change(&mut state);
            match self.save_state(id, &state, version).await {
                Ok(_) => return Ok((state, out)),
                Err(e) => races.after(e)?,
            }
        }
    }
}

/// How many lost races a read-change-write survives before the contention is reported.
const CONFLICT_ATTEMPTS: usize = 10;

/// The one retry rule of every read-change-write in the engine: a write that lost a race
/// (another writer stored first) starts again from the read; after [`CONFLICT_ATTEMPTS`] lost
/// races the contention is reported as a retryable error naming what was contended, so a change
/// is never dropped in silence. (A loop with this guard rather than a closure runner: the
/// futures of async closures that borrow the engine are not `Send` for axum's handlers.)
pub(crate) struct ConflictRetry {
    what: String,
    lost: usize,
}

impl ConflictRetry {
    pub(crate) fn new(what: String) -> Self {
        ConflictRetry { what, lost: 0 }
    }

    /// Ok when the failed write should be tried again from the read; the error to return
    /// otherwise (any other error unchanged, or the contention once the races are used up).
    pub(crate) fn after(&mut self, error: EngineError) -> Result<(), EngineError> {
        if !matches!(error, EngineError::Store(StoreError::VersionConflict { .. })) {
            return Err(error);
        }
        self.lost += 1;
        if self.lost < CONFLICT_ATTEMPTS {
            return Ok(());
        }
        Err(EngineError::Retry {
            message: format!(
                "{} was changed by {CONFLICT_ATTEMPTS} other writers in a row; nothing was saved",
                self.what
            ),
            after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> EngineError {
        EngineError::Store(StoreError::VersionConflict { entity: "connection c".into(), current: Some(2) })
    }

    #[test]
    fn a_lost_race_starts_again_from_the_read() {
        let mut races = ConflictRetry::new("connection c".into());
        for _ in 1..CONFLICT_ATTEMPTS {
            assert!(races.after(conflict()).is_ok());
        }
    }

    #[test]
    fn a_write_that_keeps_losing_fails_loudly() {
        let mut races = ConflictRetry::new("connection c".into());
        let err = (0..CONFLICT_ATTEMPTS).find_map(|_| races.after(conflict()).err()).unwrap();
        assert!(err.retry_after().is_some(), "contention is worth another try later");
        assert!(err.to_string().contains("connection c was changed by 10 other writers"), "{err}");
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut races = ConflictRetry::new("connection c".into());
        assert!(matches!(races.after(EngineError::Permanent("gone".into())), Err(EngineError::Permanent(_))));
    }
}
