//! The SQS event source mapping: pollers receive up to `BatchSize` messages, invoke the function
//! with them as an SQS event, and delete what succeeded — everything when the invocation
//! succeeded, or, with `ReportBatchItemFailures`, every message not listed in the answer's
//! `batchItemFailures` (an answer Lambda cannot read, or that names an unknown or empty id, fails
//! the whole batch). A failed invocation deletes nothing: its messages come back after the
//! queue's visibility timeout. The mapping makes its SQS calls with the function's own
//! credentials, as Lambda does with the execution role.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::Invoke;
use crate::function::Outcome;

/// The mapping's settings (the template's `Events: … Type: SQS`).
#[derive(Debug, Clone)]
pub struct QueueSource {
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub function: String,
    pub batch_size: usize,
    pub report_batch_item_failures: bool,
}

/// What the mapping did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MappingStats {
    pub batches: u64,
    pub messages: u64,
    pub deleted: u64,
    /// Messages the function reported failed (they stay in the queue).
    pub reported_failed: u64,
    /// Invocations that failed as a whole (an error, a timeout, an unreadable answer).
    pub failed_invocations: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    deleted: AtomicU64,
    reported_failed: AtomicU64,
    failed_invocations: AtomicU64,
    /// Batches being handled (received, not yet answered and deleted).
    in_flight: AtomicU64,
}

/// A running event source mapping.
pub struct EventSourceMapping {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// `Enabled: false` (UpdateEventSourceMapping): the pollers stop receiving.
    disabled: Arc<AtomicBool>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    /// The queue's attributes as read when the mapping started.
    pub queue_attributes: std::collections::HashMap<String, String>,
}

impl Drop for EventSourceMapping {
    fn drop(&mut self) {
        for p in &self.pollers {
            p.abort();
        }
    }
}

impl EventSourceMapping {
    /// Reads the queue's attributes (as Lambda does when a mapping is created) and starts
    /// `pollers` pollers.
    pub async fn start(
        client: Client,
        source: QueueSource,
        functions: Arc<dyn Invoke>,
        pollers: usize,
    ) -> anyhow::Result<EventSourceMapping> {
        let attributes = client
            .get_queue_attributes()
            .queue_url(&source.queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "GetQueueAttributes on {}: {}",
                    source.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let queue_attributes: std::collections::HashMap<String, String> =
            attributes.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let disabled = Arc::new(AtomicBool::new(false));
        let source = Arc::new(source);
        let pollers = (0..pollers.max(1))
            .map(|_| {
                let (client, source, functions, counters, stop, disabled) = (
                    client.clone(),
                    source.clone(),
                    functions.clone(),
                    counters.clone(),
                    stop.clone(),
                    disabled.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if disabled.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        if let Err(e) = poll_once(&client, &source, &*functions, &counters).await {
                            tracing::warn!(error = %e, "SQS poll failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                })
            })
            .collect();
        Ok(EventSourceMapping { counters, stop, disabled, pollers, queue_attributes })
    }

    pub fn stats(&self) -> MappingStats {
        let c = &self.counters;
        MappingStats {
            batches: c.batches.load(Ordering::SeqCst),
            messages: c.messages.load(Ordering::SeqCst),
            deleted: c.deleted.load(Ordering::SeqCst),
            reported_failed: c.reported_failed.load(Ordering::SeqCst),
            failed_invocations: c.failed_invocations.load(Ordering::SeqCst),
        }
    }

    /// Enables or disables the mapping (UpdateEventSourceMapping's `Enabled`); disabling waits
    /// until no batch is being handled (a receive already under way may still bring one).
    pub async fn set_enabled(&self, enabled: bool) {
        self.disabled.store(!enabled, Ordering::SeqCst);
        if !enabled {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            while self.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Batches being handled (received, not yet answered and deleted).
    pub fn in_flight(&self) -> u64 {
        self.counters.in_flight.load(Ordering::SeqCst)
    }

    /// Stops polling (a batch being handled is finished first).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for p in std::mem::take(&mut self.pollers) {
            let _ = p.await;
        }
    }
}

async fn poll_once(
    client: &Client,
    source: &QueueSource,
    functions: &dyn Invoke,
    counters: &Counters,
) -> anyhow::Result<()> {
    let received = client
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size.clamp(1, 10) as i32)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(());
    }
    counters.in_flight.fetch_add(1, Ordering::SeqCst);
    let result = invoke_and_delete(client, source, functions, counters, &messages).await;
    counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn invoke_and_delete(
    client: &Client,
    source: &QueueSource,
    functions: &dyn Invoke,
    counters: &Counters,
    messages: &[Message],
) -> anyhow::Result<()> {
    counters.batches.fetch_add(1, Ordering::SeqCst);
    counters.messages.fetch_add(messages.len() as u64, Ordering::SeqCst);
    let event = sqs_event(messages, source);
    let outcome = functions.invoke(&source.function, event).await;
    let done: Vec<&Message> = match done_messages(&outcome, messages, source.report_batch_item_failures) {
        Ok(done) => done,
        Err(why) => {
            counters.failed_invocations.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(function = %source.function, %why, "the batch failed as a whole; its messages come back after the visibility timeout");
            return Ok(());
        }
    };
    counters.reported_failed.fetch_add((messages.len() - done.len()) as u64, Ordering::SeqCst);
    for chunk in done.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.as_deref()?)
                    .build()
                    .ok()
            })
            .collect();
        let out = client
            .delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteMessageBatch: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        counters.deleted.fetch_add(out.successful.len() as u64, Ordering::SeqCst);
    }
    Ok(())
}

/// The messages of a batch the mapping deletes after the function's `outcome`; `Err` when the
/// whole batch failed.
pub fn done_messages<'a>(outcome: &Outcome, batch: &'a [Message], partial: bool) -> Result<Vec<&'a Message>, String> {
    let body = outcome.response()?;
    if !partial {
        return Ok(batch.iter().collect());
    }
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?.trim();
    if text.is_empty() || text == "null" {
        return Ok(batch.iter().collect());
    }
    let answer: Value = serde_json::from_str(text).map_err(|e| format!("unreadable answer: {e}"))?;
    let ids: HashSet<&str> = batch.iter().filter_map(|m| m.message_id.as_deref()).collect();
    let mut failed = HashSet::new();
    for f in answer.get("batchItemFailures").and_then(Value::as_array).into_iter().flatten() {
        match f.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if ids.contains(id) => {
                failed.insert(id.to_string());
            }
            other => return Err(format!("batchItemFailures names {other:?}, which is not a message of the batch")),
        }
    }
    Ok(batch.iter().filter(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default())).collect())
}

/// The SQS event Lambda delivers for `messages`.
pub fn sqs_event(messages: &[Message], source: &QueueSource) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> =
                m.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_string(), Value::from(v.as_str()))).collect();
            let message_attributes: Map<String, Value> = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let binary =
                        v.binary_value.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value,
                            "binaryValue": binary,
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type,
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": source.region,
            })
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::Answer;

    fn message(id: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("r-{id}"))
            .body(format!("{{\"id\":\"{id}\"}}"))
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::MessageGroupId, "conn-1")
            .message_attributes(
                "hmsync-last-error",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("boom")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn source() -> QueueSource {
        QueueSource {
            queue_url: "http://127.0.0.1:1/123456789012/q.fifo".into(),
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:q.fifo".into(),
            region: "us-east-1".into(),
            function: "contact-sync".into(),
            batch_size: 1,
            report_batch_item_failures: true,
        }
    }

    fn answered(v: Value) -> Outcome {
        Outcome::Answered(Answer::Response(v.to_string().into()))
    }

    #[test]
    fn the_event_is_what_the_function_reads() {
        let event = sqs_event(&[message("m1"), message("m2")], &source());
        let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.records.len(), 2);
        let r = &parsed.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m1"));
        assert_eq!(r.receipt_handle.as_deref(), Some("r-m1"));
        assert_eq!(r.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(r.attributes["MessageGroupId"], "conn-1");
        assert_eq!(r.message_attributes["hmsync-last-error"].string_value.as_deref(), Some("boom"));
        assert_eq!(r.event_source_arn.as_deref(), Some("arn:aws:sqs:us-east-1:123456789012:q.fifo"));
    }

    #[test]
    fn partial_batch_answers_delete_what_was_not_reported() {
        let batch = [message("m1"), message("m2"), message("m3")];
        let ids = |v: Vec<&Message>| v.iter().map(|m| m.message_id.clone().unwrap()).collect::<Vec<_>>();
        let partial = answered(json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}));
        assert_eq!(ids(done_messages(&partial, &batch, true).unwrap()), ["m1", "m3"]);
        assert_eq!(ids(done_messages(&answered(json!({"batchItemFailures": []})), &batch, true).unwrap()).len(), 3);
        assert_eq!(ids(done_messages(&answered(Value::Null), &batch, true).unwrap()).len(), 3);
        // Unknown or empty ids fail the whole batch, as does an error or a timeout.
        assert!(
            done_messages(&answered(json!({"batchItemFailures": [{"itemIdentifier": "x"}]})), &batch, true).is_err()
        );
        assert!(
            done_messages(&answered(json!({"batchItemFailures": [{"itemIdentifier": ""}]})), &batch, true).is_err()
        );
        assert!(done_messages(&Outcome::TimedOut, &batch, true).is_err());
        let error = Outcome::Answered(Answer::Error { error_type: "E".into(), message: "m".into(), init: false });
        assert!(done_messages(&error, &batch, true).is_err());
        // Without partial responses, any answer deletes the whole batch.
        assert_eq!(ids(done_messages(&partial, &batch, false).unwrap()).len(), 3);
    }
}
