//! contact-sync: the SQS FIFO consumer. Each message is handled by
//! [`Engine::handle_delivery`] (the path the local worker uses too) within a time budget taken
//! from what is left of the invocation, and its [`Disposition`] is carried out here:
//!
//! - **done**: not reported, so the event source mapping deletes it;
//! - **retry after d**: reported failed and made visible again after `d` (`ChangeMessageVisibility`),
//!   the `Retry-After` the API gave or the engine's backoff of seconds — never the queue's
//!   31-minute visibility timeout;
//! - **dead letter**: moved to the dead-letter queue by our own hand with its last error as a
//!   message attribute (`WorkQueue::dead_letter`) and reported as done, so it neither burns
//!   its remaining receives nor holds back its connection's later messages.
//!
//! **Batches.** The template's event source mapping has `BatchSize: 1`. SQS counts a receive for
//! every message of a batch, and a FIFO group's messages behind a failed one must come back
//! unhandled to keep their order, so with larger batches a failing message would charge every
//! message behind it in its group a receive it was never tried in (up to the queue's
//! `maxReceiveCount`, and then into the dead-letter queue for nothing). SQS cannot take a
//! receive back (`ChangeMessageVisibility` only makes a message visible again), and re-sending
//! the untried messages would put them behind newer ones of their connection. One message per
//! invocation costs an invocation per message (each handles up to 200 contacts or a scan page,
//! so the overhead is small next to the API calls) and keeps every receive a real attempt; the
//! connections still run side by side, one invocation per message group.
//!
//! The handler still takes any batch, as a larger `BatchSize` would send it: groups run side
//! by side, each in order; after a message of a group fails, the rest of that group is
//! reported failed untried and comes back with it (those untried receives count: the cost
//! described above). A message whose budget would be too short to start is treated the same.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use hmsync_engine::{Disposition, Engine};
use hmsync_store::{ReceivedMessage, StoreError, WorkQueue};

/// Time kept free at the end of an invocation for carrying out the last disposition (a
/// visibility change, a dead-letter move) and answering: no message's budget reaches into it.
pub const FINISH_RESERVE: Duration = Duration::from_secs(10);

/// A message is not started with less than this much budget left (it comes back at once).
pub const MIN_MESSAGE_BUDGET: Duration = Duration::from_secs(5);

/// What contact-sync does to received messages besides letting the event source mapping delete
/// the done ones.
#[async_trait]
pub trait BatchQueue: Send + Sync {
    /// Makes a received message visible again after `delay` (SQS `ChangeMessageVisibility`).
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError>;
    /// Moves a received message to the dead-letter queue with its last error.
    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: WorkQueue + ?Sized> BatchQueue for T {
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.retry_later(receipt, delay).await
    }

    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<(), StoreError> {
        WorkQueue::dead_letter(self, message, error).await
    }
}

/// One record of the batch, with what the handler needs from it.
struct Record {
    /// Position in the batch (failures are reported in batch order).
    index: usize,
    message: ReceivedMessage,
}

impl Record {
    fn new(index: usize, m: SqsMessage) -> Record {
        let body = m.body.unwrap_or_default();
        // FIFO records carry their group; without it, fall back on the body's connection (the
        // group hmsync sends with, readable even when the rest of the body is not a message),
        // and failing that, treat the record as a group of its own.
        let group_id = m
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
            message: ReceivedMessage {
                // An empty identifier makes Lambda retry the whole batch: the safe side when SQS
                // sent a record without an id.
                message_id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                group_id,
                body,
                receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            },
        }
    }
}

/// The instant of an invocation's deadline (Lambda gives it as wall-clock time).
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    Instant::now() + deadline.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The budget of a message started now: what is left before `deadline` minus [`FINISH_RESERVE`].
pub fn message_budget(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).saturating_sub(FINISH_RESERVE)
}

/// Handles a batch and answers which messages failed (in batch order). `deadline` is the
/// invocation's; `None` gives every message the budget of a fresh 300 s invocation (tests).
pub async fn handle(
    engine: &Engine,
    queue: &dyn BatchQueue,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(300));
    let mut groups: Vec<(String, Vec<Record>)> = Vec::new();
    for (index, message) in event.records.into_iter().enumerate() {
        let record = Record::new(index, message);
        match groups.iter_mut().find(|(g, _)| *g == record.message.group_id) {
            Some((_, records)) => records.push(record),
            None => groups.push((record.message.group_id.clone(), vec![record])),
        }
    }
    let outcomes = futures::future::join_all(
        groups.into_iter().map(|(_, records)| handle_group(engine, queue, records, deadline)),
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

/// Handles one group's records in order; returns the failed ones as (batch index, message id).
async fn handle_group(
    engine: &Engine,
    queue: &dyn BatchQueue,
    records: Vec<Record>,
    deadline: Instant,
) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    // Set once a message of the group comes back: the rest follow it, untried, at the same time.
    let mut blocked: Option<Duration> = None;
    for Record { index, message: m } in records {
        let budget = message_budget(deadline);
        if blocked.is_none() && budget < MIN_MESSAGE_BUDGET {
            tracing::warn!(
                message_id = %m.message_id,
                group = %m.group_id,
                "too little of the invocation is left to start this message; it and the rest of its group come back at once"
            );
            blocked = Some(Duration::ZERO);
        }
        if let Some(after) = blocked {
            // Not tried: it must not overtake the failed message of its group.
            redeliver(queue, &m, after).await;
            failed.push((index, m.message_id));
            continue;
        }
        match engine.handle_delivery(&[m.body.as_str()], m.receive_count, budget).await {
            Disposition::Done(report) => tracing::info!(
                message_id = %m.message_id,
                group = %m.group_id,
                contacts = report.contacts,
                written = report.written,
                errors = report.errors,
                parked = report.parked,
                enqueued = report.enqueued,
                "message handled"
            ),
            Disposition::Retry { after, error } => {
                tracing::warn!(
                    message_id = %m.message_id,
                    group = %m.group_id,
                    receive_count = m.receive_count,
                    %error,
                    ?after,
                    "message failed; it and the rest of its group come back later"
                );
                redeliver(queue, &m, after).await;
                blocked = Some(after);
                failed.push((index, m.message_id));
            }
            Disposition::DeadLetter { error } => match queue.dead_letter(&m, &error).await {
                Ok(()) => tracing::error!(
                    message_id = %m.message_id,
                    group = %m.group_id,
                    receive_count = m.receive_count,
                    %error,
                    "message moved to the dead-letter queue; the status page lists it"
                ),
                Err(e) => {
                    // It comes back and is set aside again on a later receive (or by the
                    // queue's redrive policy after its last one).
                    tracing::error!(
                        message_id = %m.message_id,
                        group = %m.group_id,
                        %error,
                        move_error = %e,
                        "message cannot succeed but could not be moved to the dead-letter queue; it comes back"
                    );
                    redeliver(queue, &m, Duration::ZERO).await;
                    blocked = Some(Duration::ZERO);
                    failed.push((index, m.message_id));
                }
            },
        }
    }
    failed
}

/// Best effort: if the visibility cannot be changed, the message still comes back after the
/// queue's visibility timeout.
async fn redeliver(queue: &dyn BatchQueue, m: &ReceivedMessage, delay: Duration) {
    if m.receipt.is_empty() {
        return;
    }
    if let Err(e) = queue.redeliver_after(&m.receipt, delay).await {
        tracing::warn!(
            message_id = %m.message_id,
            error = %e,
            ?delay,
            "could not change the message's visibility; it comes back after the visibility timeout"
        );
    }
}
