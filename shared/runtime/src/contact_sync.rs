//! contact-sync: the SQS FIFO consumer. One batch may hold messages of several connections
//! (message groups). Each group is handled in order, one message at a time, and the groups run
//! side by side. After the first failed message of a group, that message and every later
//! message of the same group are reported failed without being tried, so the group comes back
//! in its original order; the other groups carry on. Nothing is ever dropped: a message is
//! either handled or reported failed (SQS moves it to the dead-letter queue after the queue's
//! receive limit, and the status page shows it there).

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use hmsync_engine::{Engine, EngineError, SyncMessage};
use hmsync_store::{StoreError, WorkQueue};

/// Time kept free at the end of an invocation (at most a third of the time the invocation has):
/// no message is started later than this before the deadline. A batch that runs out of time is
/// retried whole, so the messages done so far would be redone and the rest could never finish;
/// stopping early reports them failed instead.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(90);

/// Makes a received message visible again after `delay` (SQS `ChangeMessageVisibility`), so a
/// failed message comes back when the API said to try again rather than after the queue's
/// (long) visibility timeout.
#[async_trait]
pub trait Redelivery: Send + Sync {
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: WorkQueue + ?Sized> Redelivery for T {
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.retry_later(receipt, delay).await
    }
}

/// One record of the batch, with what the handler needs from it.
struct Record {
    /// Position in the batch (failures are reported in batch order).
    index: usize,
    message_id: String,
    receipt: Option<String>,
    group: String,
    body: String,
    receive_count: u32,
}

impl Record {
    fn new(index: usize, m: SqsMessage) -> Record {
        let body = m.body.unwrap_or_default();
        // FIFO records carry their group; without it, fall back on the body's connection (the
        // group hmsync sends with, readable even when the rest of the body is not a message),
        // and failing that, treat the record as a group of its own.
        let group = m
            .attributes
            .get("MessageGroupId")
            .cloned()
            .or_else(|| {
                let value: serde_json::Value = serde_json::from_str(&body).ok()?;
                value.get("connection_id")?.as_str().map(str::to_string)
            })
            .unwrap_or_else(|| format!("record-{index}"));
        Record {
            index,
            // An empty identifier makes Lambda retry the whole batch: the safe side when SQS
            // sent a record without an id.
            message_id: m.message_id.unwrap_or_default(),
            receipt: m.receipt_handle,
            group,
            body,
            receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
        }
    }
}

/// Handles a batch to the end; see [`handle_until`].
pub async fn handle(engine: &Engine, redelivery: &dyn Redelivery, event: SqsEvent) -> SqsBatchResponse {
    handle_until(engine, redelivery, event, None).await
}

/// Handles a batch and answers which messages failed (in batch order). No message is started
/// after `stop_starting_at`; those left are reported failed and made visible again at once.
pub async fn handle_until(
    engine: &Engine,
    redelivery: &dyn Redelivery,
    event: SqsEvent,
    stop_starting_at: Option<Instant>,
) -> SqsBatchResponse {
    let mut groups: Vec<(String, Vec<Record>)> = Vec::new();
    for (index, message) in event.records.into_iter().enumerate() {
        let record = Record::new(index, message);
        match groups.iter_mut().find(|(g, _)| *g == record.group) {
            Some((_, records)) => records.push(record),
            None => groups.push((record.group.clone(), vec![record])),
        }
    }
    let outcomes = futures::future::join_all(
        groups.into_iter().map(|(_, records)| handle_group(engine, redelivery, records, stop_starting_at)),
    )
    .await;
    let mut failed: Vec<(usize, String)> = outcomes.into_iter().flatten().collect();
    failed.sort();
    let mut response = SqsBatchResponse::default();
    for (_, message_id) in failed {
        response.add_failure(message_id);
    }
    response
}

/// When the messages of a failed group come back.
#[derive(Debug, Clone, Copy)]
enum Comeback {
    /// After this delay (the error's `Retry-After`, or at once).
    After(Duration),
    /// After the queue's visibility timeout.
    VisibilityTimeout,
}

/// Handles one group's records in order; returns the failed ones as (batch index, message id).
async fn handle_group(
    engine: &Engine,
    redelivery: &dyn Redelivery,
    records: Vec<Record>,
    stop_starting_at: Option<Instant>,
) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    let mut blocked: Option<Comeback> = None;
    for record in records {
        if blocked.is_none() && stop_starting_at.is_some_and(|t| Instant::now() >= t) {
            tracing::warn!(
                message_id = %record.message_id,
                group = %record.group,
                "the invocation is about to time out; this message and the rest of its group come back at once"
            );
            blocked = Some(Comeback::After(Duration::ZERO));
        }
        if let Some(comeback) = blocked {
            // Not tried: it must not overtake the failed message of its group.
            redeliver(redelivery, &record, comeback).await;
            failed.push((record.index, record.message_id));
            continue;
        }
        let outcome = match SyncMessage::from_body(&record.body) {
            Ok(message) => engine.handle_with_recovery(&message).await,
            Err(e) => Err(EngineError::Permanent(format!("the message body is not a sync message ({e})"))),
        };
        match outcome {
            Ok(report) => tracing::info!(
                message_id = %record.message_id,
                group = %record.group,
                contacts = report.contacts,
                written = report.written,
                errors = report.errors,
                parked = report.parked,
                enqueued = report.enqueued,
                "message handled"
            ),
            Err(error) => {
                let comeback = match error.retry_after() {
                    Some(Some(delay)) => Comeback::After(delay),
                    Some(None) => Comeback::VisibilityTimeout,
                    // Permanent: every further receive fails the same way, so let the receives
                    // run out quickly (the message then lands in the dead-letter queue) rather
                    // than hold the connection's later messages for several visibility timeouts.
                    None => Comeback::After(Duration::ZERO),
                };
                if matches!(error, EngineError::Permanent(_)) {
                    tracing::error!(
                        message_id = %record.message_id,
                        group = %record.group,
                        receive_count = record.receive_count,
                        error = %error,
                        "message cannot succeed; after the queue's receive limit it moves to the dead-letter queue"
                    );
                } else {
                    tracing::warn!(
                        message_id = %record.message_id,
                        group = %record.group,
                        receive_count = record.receive_count,
                        error = %error,
                        ?comeback,
                        "message failed; it and the rest of its group come back later"
                    );
                }
                redeliver(redelivery, &record, comeback).await;
                blocked = Some(comeback);
                failed.push((record.index, record.message_id));
            }
        }
    }
    failed
}

/// Best effort: if the visibility cannot be changed, the message still comes back after the
/// queue's visibility timeout.
async fn redeliver(redelivery: &dyn Redelivery, record: &Record, comeback: Comeback) {
    let (Comeback::After(delay), Some(receipt)) = (comeback, record.receipt.as_deref()) else {
        return;
    };
    if let Err(e) = redelivery.redeliver_after(receipt, delay).await {
        tracing::warn!(
            message_id = %record.message_id,
            error = %e,
            ?delay,
            "could not change the message's visibility; it comes back after the visibility timeout"
        );
    }
}

/// The instant after which no message is started: `reserve` before the invocation's deadline,
/// but never more than a third of the time left, so a function with a short timeout still works.
pub fn stop_starting_at(deadline: SystemTime, reserve: Duration) -> Instant {
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + left.saturating_sub(reserve.min(left / 3))
}
