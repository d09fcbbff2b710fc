//! SQS FIFO adapter of the sync queue: one message group per connection (one writer per
//! connection at a time), deduplication ids for duplicate webhook deliveries, and the
//! dead-letter queue of the queue's redrive policy for the status page.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use hmsync_http::RetryPolicy;
use sha2::{Digest, Sha256};

use crate::aws_error::map_sdk_error;
use crate::error::{Result, StoreError};
use crate::model::{DeadLetter, QueueMessage, ReceivedMessage, last_error_text};
use crate::ports::{SyncQueue, WorkQueue};

/// SQS limits: entries per batch call, bytes per message and per batch (since 2025), the
/// longest visibility timeout.
const BATCH_MAX: usize = 10;
pub(crate) const MESSAGE_MAX_BYTES: usize = 1024 * 1024;
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// How long peeked dead letters stay hidden before they are released again.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// The message attributes a dead letter set aside by the consumer carries: why its last attempt
/// failed, how often it had been received, and its id in the sync queue (the one its logs name).
pub const LAST_ERROR_ATTRIBUTE: &str = "hmsync-last-error";
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "hmsync-receive-count";
pub const MESSAGE_ID_ATTRIBUTE: &str = "hmsync-message-id";

/// The SQS FIFO queue (and its dead-letter queue, if the status page should see it).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: Option<String>,
    /// Backoff for entries of a batch that SQS failed for a transient reason.
    retry: RetryPolicy,
    /// Long polling of `receive` (0 = short polling).
    receive_wait: Duration,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        Self::from_client(Client::new(config), queue_url, dead_letter_url)
    }

    pub fn from_client(client: Client, queue_url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
            receive_wait: Duration::from_secs(1),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Long-polling wait of `receive` (whole seconds, at most 20).
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = wait.min(Duration::from_secs(20));
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn err<E, R>(&self, operation: &str, url: &str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        map_sdk_error(&format!("SQS {operation} on {url}"), err)
    }

    /// Sends one batch call's worth of messages, retrying the entries SQS failed transiently.
    async fn send_chunk(&self, url: &str, chunk: &[(usize, &QueueMessage)]) -> std::result::Result<(), ChunkFailure> {
        let mut pending: Vec<(usize, &QueueMessage)> = chunk.to_vec();
        let mut attempt = 1;
        loop {
            let mut entries = Vec::with_capacity(pending.len());
            for (i, message) in &pending {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body)
                    .message_group_id(&message.group_id)
                    .message_deduplication_id(fifo_dedup_id(&message.dedup_id))
                    .build()
                    .map_err(|e| ChunkFailure { failed: pending.len(), message: e.to_string(), transient: false })?;
                entries.push(entry);
            }
            let out = self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await.map_err(
                |e| {
                    let err = self.err("SendMessageBatch", url, e);
                    ChunkFailure { failed: pending.len(), transient: err.is_transient(), message: err.to_string() }
                },
            )?;
            let failed = out.failed;
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(permanent) = failed.iter().find(|f| f.sender_fault) {
                return Err(ChunkFailure {
                    failed: failed.len(),
                    message: format!("{}: {}", permanent.code, permanent.message.as_deref().unwrap_or_default()),
                    transient: false,
                });
            }
            if !self.retry.should_retry(attempt) {
                let first = &failed[0];
                return Err(ChunkFailure {
                    failed: failed.len(),
                    message: format!(
                        "{}: {} (after {attempt} attempts)",
                        first.code,
                        first.message.as_deref().unwrap_or_default()
                    ),
                    transient: true,
                });
            }
            pending.retain(|(i, _)| failed.iter().any(|f| f.id == i.to_string()));
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn receive_from(&self, url: &str, max: usize, visibility_secs: i32, wait: Duration) -> Result<Vec<Message>> {
        let mut received = Vec::new();
        while received.len() < max {
            let want = (max - received.len()).min(BATCH_MAX);
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(want as i32)
                .visibility_timeout(visibility_secs)
                .wait_time_seconds(wait.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| self.err("ReceiveMessage", url, e))?;
            let messages = out.messages.unwrap_or_default();
            let got = messages.len();
            received.extend(messages);
            if got < want {
                break;
            }
        }
        Ok(received)
    }

    fn dead_letter_url(&self) -> Option<&str> {
        self.dead_letter_url.as_deref()
    }
}

struct ChunkFailure {
    failed: usize,
    message: String,
    transient: bool,
}

/// A FIFO `MessageDeduplicationId` for any dedup id: kept as it is when SQS accepts it
/// (1–128 characters, alphanumeric or punctuation), else its SHA-256 in hex.
pub fn fifo_dedup_id(id: &str) -> String {
    if is_fifo_token(id) { id.to_string() } else { hex::encode(Sha256::digest(id.as_bytes())) }
}

/// SQS's rule for `MessageGroupId` and `MessageDeduplicationId`.
fn is_fifo_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation())
}

/// Rejects messages SQS would refuse, before any is sent.
pub(crate) fn check_messages(messages: &[QueueMessage]) -> Result<()> {
    for m in messages {
        if !is_fifo_token(&m.group_id) {
            return Err(StoreError::invalid(format!(
                "queue group id {:?} is not usable: it must be 1-128 letters, digits or punctuation",
                m.group_id
            )));
        }
        if let Some(c) = m.body.chars().find(|c| !is_sqs_body_char(*c)) {
            return Err(StoreError::invalid(format!(
                "queue message {} for group {} contains the character U+{:04X}, which SQS does not accept",
                m.dedup_id, m.group_id, c as u32
            )));
        }
        if m.body.is_empty() || m.body.len() > MESSAGE_MAX_BYTES {
            return Err(StoreError::invalid(format!(
                "queue message {} for group {} is {} bytes; a message must hold 1 to {MESSAGE_MAX_BYTES} bytes",
                m.dedup_id,
                m.group_id,
                m.body.len()
            )));
        }
    }
    Ok(())
}

/// SQS message bodies: `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`
/// (a Rust `char` is never a surrogate).
fn is_sqs_body_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn visibility_secs(d: Duration) -> i32 {
    let d = d.min(MAX_VISIBILITY);
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)) as i32
}

fn message_attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes.as_ref()?.get(name)?.string_value.as_deref()
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message.attributes.as_ref().and_then(|a| a.get(&name)).map(String::as_str)
}

fn receive_count(message: &Message) -> u32 {
    system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Splits messages into batch calls of at most 10 entries and 1 MiB of bodies.
fn chunks(messages: &[QueueMessage]) -> Vec<Vec<(usize, &QueueMessage)>> {
    let mut chunks: Vec<Vec<(usize, &QueueMessage)>> = Vec::new();
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let full = chunks.last().is_none_or(|c| c.len() == BATCH_MAX || bytes + m.body.len() > MESSAGE_MAX_BYTES);
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += m.body.len();
        chunks.last_mut().expect("a chunk was just pushed").push((i, m));
    }
    chunks
}

#[async_trait]
impl SyncQueue for SqsQueue {
    async fn send_batch(&self, messages: &[QueueMessage]) -> Result<()> {
        check_messages(messages)?;
        let total = messages.len();
        let mut sent = 0;
        for chunk in chunks(messages) {
            if let Err(failure) = self.send_chunk(&self.queue_url, &chunk).await {
                // Everything not confirmed counts as failed: the caller re-sends the batch, and
                // the dedup ids keep the ones that did arrive from being delivered twice.
                return Err(StoreError::SendFailed {
                    failed: total - sent - chunk.len() + failure.failed,
                    total,
                    message: format!("SQS SendMessageBatch on {}: {}", self.queue_url, failure.message),
                    transient: failure.transient,
                });
            }
            sent += chunk.len();
        }
        Ok(())
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>> {
        let messages = self.receive_from(&self.queue_url, max, visibility_secs(visibility), self.receive_wait).await?;
        Ok(messages
            .into_iter()
            .map(|m| ReceivedMessage {
                receive_count: receive_count(&m),
                group_id: system_attribute(&m, MessageSystemAttributeName::MessageGroupId)
                    .unwrap_or_default()
                    .to_string(),
                message_id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        match self.client.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_receipt_handle_is_invalid()) => {
                Err(StoreError::NotFound { entity: "an in-flight message for this receipt".to_string() })
            }
            Err(err) => Err(self.err("DeleteMessage", &self.queue_url, err)),
        }
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(delay))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_receipt_handle_is_invalid() || e.is_message_not_inflight()) =>
            {
                Err(StoreError::NotFound { entity: "an in-flight message for this receipt".to_string() })
            }
            Err(err) => Err(self.err("ChangeMessageVisibility", &self.queue_url, err)),
        }
    }

    /// SQS cannot take a receive back: the message becomes visible at once and this delivery
    /// still counts towards `maxReceiveCount` (10 in the template, to leave room for this).
    async fn release(&self, receipt: &str) -> Result<()> {
        self.retry_later(receipt, Duration::ZERO).await
    }

    /// Sends the message to the dead-letter queue with its last error and receive count as
    /// message attributes, then deletes it from the sync queue. If the delete fails, the message
    /// comes back and is set aside again; the dead-letter queue's deduplication (by message id,
    /// 5 minutes) keeps the copies to one.
    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<()> {
        let Some(dlq) = self.dead_letter_url() else {
            return Err(StoreError::invalid(
                "no dead-letter queue is configured (HMSYNC_DLQ_URL); the message is left to the queue's redrive policy",
            ));
        };
        let string = |v: String| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| StoreError::backend(e.to_string()))
        };
        let count = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(message.receive_count.to_string())
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))?;
        let error = last_error_text(error);
        // An empty attribute value is refused; a blank error still says something.
        let error = if error.trim().is_empty() { "failed without a message" } else { error };
        let group = if message.group_id.is_empty() { "unknown" } else { message.group_id.as_str() };
        let mut send = self
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(&message.body)
            .message_group_id(group)
            .message_deduplication_id(fifo_dedup_id(&format!("dead:{}", message.message_id)))
            .message_attributes(LAST_ERROR_ATTRIBUTE, string(error.to_string())?)
            .message_attributes(RECEIVE_COUNT_ATTRIBUTE, count);
        if !message.message_id.is_empty() {
            send = send.message_attributes(MESSAGE_ID_ATTRIBUTE, string(message.message_id.clone())?);
        }
        send.send().await.map_err(|e| self.err("SendMessage", dlq, e))?;
        self.ack(&message.receipt).await
    }

    /// Peeks: receives the dead letters briefly and releases them again at once. Their
    /// `receive_count` is SQS's approximate count, which includes earlier peeks.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let Some(url) = self.dead_letter_url() else {
            return Ok(Vec::new());
        };
        // No long polling: the status page should not wait on an empty dead-letter queue.
        let messages = self.receive_from(url, limit, PEEK_VISIBILITY_SECS, Duration::ZERO).await?;
        let mut release = Vec::with_capacity(messages.len());
        let mut letters = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            if let Some(receipt) = &m.receipt_handle {
                release.push(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| StoreError::backend(e.to_string()))?,
                );
            }
            // Set aside by the consumer: its own count; moved by the redrive policy: SQS's count,
            // which includes this peek.
            let count = message_attribute(&m, RECEIVE_COUNT_ATTRIBUTE)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| receive_count(&m).saturating_sub(1));
            letters.push(DeadLetter {
                receive_count: count,
                last_error: message_attribute(&m, LAST_ERROR_ATTRIBUTE).map(str::to_string),
                group_id: system_attribute(&m, MessageSystemAttributeName::MessageGroupId)
                    .unwrap_or_default()
                    .to_string(),
                message_id: message_attribute(&m, MESSAGE_ID_ATTRIBUTE)
                    .map(str::to_string)
                    .or(m.message_id)
                    .unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            });
        }
        for chunk in release.chunks(BATCH_MAX) {
            self.client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.err("ChangeMessageVisibilityBatch", url, e))?;
        }
        Ok(letters)
    }

    async fn requeue_dead_letters(&self, limit: usize) -> Result<usize> {
        let Some(url) = self.dead_letter_url() else {
            return Ok(0);
        };
        let messages = self.receive_from(url, limit, 60, Duration::ZERO).await?;
        let mut moved = 0;
        for chunk in messages.chunks(BATCH_MAX) {
            let resend: Vec<QueueMessage> = chunk
                .iter()
                .map(|m| QueueMessage {
                    group_id: system_attribute(m, MessageSystemAttributeName::MessageGroupId)
                        .unwrap_or_default()
                        .to_string(),
                    // A fresh id, so the original's (still remembered) dedup id cannot swallow it;
                    // derived from the dead letter, so a repeated requeue of it is deduplicated.
                    dedup_id: format!("requeue:{}", m.message_id.as_deref().unwrap_or_default()),
                    body: m.body.clone().unwrap_or_default(),
                })
                .collect();
            self.send_batch(&resend).await?;
            let deletes = chunk
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
            self.client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| self.err("DeleteMessageBatch", url, e))?;
            moved += chunk.len();
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_len: usize) -> QueueMessage {
        QueueMessage { group_id: "c1".into(), dedup_id: "d".into(), body: "x".repeat(body_len) }
    }

    #[test]
    fn dedup_ids_are_kept_when_valid_and_hashed_otherwise() {
        assert_eq!(fifo_dedup_id("hubspot:123:propertyChange:1700000000"), "hubspot:123:propertyChange:1700000000");
        let long = "x".repeat(129);
        for raw in [long.as_str(), "has space", "ünïcode", ""] {
            let id = fifo_dedup_id(raw);
            assert_eq!(id.len(), 64);
            assert!(is_fifo_token(&id));
        }
        assert_ne!(fifo_dedup_id("has space"), fifo_dedup_id("has  space"));
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_one_mebibyte() {
        let small: Vec<QueueMessage> = (0..23).map(|_| message(10)).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);

        let big: Vec<QueueMessage> = (0..3).map(|_| message(400 * 1024)).collect();
        let sizes: Vec<usize> = chunks(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn oversized_or_badly_grouped_messages_are_refused_before_sending() {
        assert!(matches!(check_messages(&[message(MESSAGE_MAX_BYTES + 1)]), Err(StoreError::Invalid { .. })));
        assert!(matches!(check_messages(&[message(0)]), Err(StoreError::Invalid { .. })));
        let mut bad_group = message(1);
        bad_group.group_id = "has space".into();
        assert!(matches!(check_messages(&[bad_group]), Err(StoreError::Invalid { .. })));
        assert!(check_messages(&[message(MESSAGE_MAX_BYTES)]).is_ok());
        let mut control = message(1);
        control.body = "bad \u{1} byte".into();
        assert!(matches!(check_messages(&[control]), Err(StoreError::Invalid { .. })));
        let mut fine = message(1);
        fine.body = "{\"x\": \"tab\t, newline\n, ünïcode, 🙂\"}".into();
        assert!(check_messages(&[fine]).is_ok());
    }

    #[test]
    fn visibility_rounds_up_to_whole_seconds_and_caps_at_twelve_hours() {
        assert_eq!(visibility_secs(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_secs(86_400)), 43_200);
    }
}
