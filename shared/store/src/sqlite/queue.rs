//! A durable local queue with the semantics of SQS FIFO that the sync relies on: order within
//! a message group, a group waits while one of its messages is in flight, content dedup by
//! dedup id for a window, visibility timeouts (a message received and never acked comes back,
//! also to another queue instance or process on the same file), receive counts, and a
//! dead-letter table after `max_receives` deliveries.
//!
//! Every operation is one immediate SQLite transaction, so tasks and queue instances on the
//! same file never receive the same delivery twice.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

use super::Db;
use crate::clock::now_ms;
use crate::error::{Result, StoreError};
use crate::model::{DeadLetter, QueueMessage, ReceivedMessage, last_error_text};
use crate::ports::{SyncQueue, WorkQueue};
use crate::sqs::check_messages;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    group_id TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    -- Received messages are invisible (in flight) until this time.
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    -- The handle of the latest delivery; acks with an older one do nothing.
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_by_group ON queue_messages (group_id, seq);
CREATE INDEX IF NOT EXISTS queue_messages_by_receipt ON queue_messages (receipt);
CREATE INDEX IF NOT EXISTS queue_messages_by_visibility ON queue_messages (visible_at_ms);
CREATE TABLE IF NOT EXISTS queue_dedup (
    dedup_id TEXT PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at_ms INTEGER NOT NULL,
    -- Why the consumer gave up on it; NULL when it was moved after its receive limit.
    last_error TEXT
);
";

/// Databases created before dead letters kept their last error get the column.
fn add_last_error_column(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has: bool =
        db.prepare("SELECT 1 FROM pragma_table_info('queue_dead_letters') WHERE name = 'last_error'")?.exists([])?;
    if !has {
        db.execute_batch("ALTER TABLE queue_dead_letters ADD COLUMN last_error TEXT")?;
    }
    Ok(())
}

/// Behaviour of the local queue (the deployed queue's redrive policy and SQS's FIFO dedup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteQueueConfig {
    /// Deliveries before a message is moved to the dead letters instead (SQS `maxReceiveCount`).
    /// The default, 10, is `template.yaml`'s `maxReceiveCount`, so a message dies locally when it
    /// would die on AWS: the local worker gives back messages it never attempted uncounted
    /// ([`WorkQueue::release`]), but a worker killed mid-batch cannot, and on SQS every receive
    /// counts (a FIFO batch that fails hands back the messages behind the failure too), so the
    /// limit leaves room for deliveries that were never attempted.
    pub max_receives: u32,
    /// A message whose dedup id was sent within this window is accepted and dropped.
    pub dedup_window: Duration,
}

impl Default for SqliteQueueConfig {
    fn default() -> Self {
        Self { max_receives: 10, dedup_window: Duration::from_secs(5 * 60) }
    }
}

/// The local queue; open several on the same file (or in several processes) to share it.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    config: SqliteQueueConfig,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue").field("path", &self.db.path()).field("config", &self.config).finish()
    }
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue tables in `path`, which may be the store's file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteQueueConfig::default())
    }

    pub fn open_with(path: impl AsRef<Path>, config: SqliteQueueConfig) -> Result<Self> {
        if config.max_receives == 0 {
            return Err(StoreError::invalid("max_receives must be at least 1"));
        }
        let db = Db::open(path.as_ref(), SCHEMA)?;
        db.migrate(add_last_error_column)?;
        Ok(Self { db, config })
    }

    /// Messages waiting or in flight (for the status page).
    pub async fn len(&self) -> Result<u64> {
        self.db.call(|db| Ok(db.query_row("SELECT COUNT(*) FROM queue_messages", [], |r| r.get(0))?)).await
    }

    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Makes every received or delayed message visible now. Only for a process that is the
    /// queue's sole consumer, when it starts: a message it held when it stopped (or crashed)
    /// would otherwise wait out its visibility timeout. Returns how many were released.
    pub async fn release_in_flight(&self) -> Result<u64> {
        self.db
            .call(|db| {
                let now = now_ms();
                let n = db.execute(
                    "UPDATE queue_messages SET visible_at_ms = ?1, receipt = NULL WHERE visible_at_ms > ?1",
                    params![now],
                )?;
                Ok(n as u64)
            })
            .await
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn in_flight_receipt() -> StoreError {
    StoreError::NotFound {
        entity: "an in-flight message for this receipt (it was acked, or its visibility timeout ended and it was \
                 received again)"
            .to_string(),
    }
}

#[async_trait]
impl SyncQueue for SqliteQueue {
    async fn send_batch(&self, messages: &[QueueMessage]) -> Result<()> {
        check_messages(messages)?;
        let messages = messages.to_vec();
        let window = millis(self.config.dedup_window);
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                tx.execute("DELETE FROM queue_dedup WHERE expires_at_ms <= ?1", params![now])?;
                for m in messages {
                    // Like SQS: a duplicate within the window is accepted and not delivered again.
                    let fresh = tx.execute(
                        "INSERT OR IGNORE INTO queue_dedup (dedup_id, expires_at_ms) VALUES (?1, ?2)",
                        params![m.dedup_id, now + window],
                    )? > 0;
                    if !fresh {
                        continue;
                    }
                    tx.execute(
                        "INSERT INTO queue_messages
                         (message_id, group_id, dedup_id, body, sent_at_ms, visible_at_ms, receive_count, receipt)
                         VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, NULL)",
                        params![uuid::Uuid::now_v7().to_string(), m.group_id, m.dedup_id, m.body, now],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

impl SqliteQueue {
    /// Receives up to `max` messages; with `heads`, only the first message of each group.
    async fn receive_with(&self, max: usize, visibility: Duration, heads: bool) -> Result<Vec<ReceivedMessage>> {
        let visibility = millis(visibility);
        let max_receives = self.config.max_receives;
        // Room for some dead letters to be moved aside on the way; the rest wait for the next call.
        let candidate_limit = i64::try_from(max.saturating_add(32)).unwrap_or(i64::MAX);
        // Visible messages of groups without a message in flight, oldest first: each group yields
        // a prefix of its messages, in order (with `heads`, its first message only).
        let query = if heads {
            "SELECT seq, message_id, group_id, dedup_id, body, receive_count FROM queue_messages m
             WHERE visible_at_ms <= ?1
               AND NOT EXISTS (SELECT 1 FROM queue_messages f
                               WHERE f.group_id = m.group_id AND f.visible_at_ms > ?1)
               AND NOT EXISTS (SELECT 1 FROM queue_messages e WHERE e.group_id = m.group_id AND e.seq < m.seq)
             ORDER BY seq LIMIT ?2"
        } else {
            "SELECT seq, message_id, group_id, dedup_id, body, receive_count FROM queue_messages m
             WHERE visible_at_ms <= ?1
               AND NOT EXISTS (SELECT 1 FROM queue_messages f
                               WHERE f.group_id = m.group_id AND f.visible_at_ms > ?1)
             ORDER BY seq LIMIT ?2"
        };
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                let mut received = Vec::new();
                loop {
                    let candidates: Vec<(i64, String, String, String, String, u32)> = {
                        let mut stmt = tx.prepare(query)?;
                        stmt.query_map(params![now, candidate_limit], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                    };
                    let mut moved = false;
                    for (seq, message_id, group_id, dedup_id, body, receive_count) in candidates {
                        if received.len() >= max {
                            break;
                        }
                        if receive_count >= max_receives {
                            tx.execute(
                                "INSERT INTO queue_dead_letters
                                 (message_id, group_id, dedup_id, body, receive_count, dead_at_ms)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                params![message_id, group_id, dedup_id, body, receive_count, now],
                            )?;
                            tx.execute("DELETE FROM queue_messages WHERE seq = ?1", params![seq])?;
                            moved = true;
                            continue;
                        }
                        let receipt = uuid::Uuid::new_v4().simple().to_string();
                        tx.execute(
                            "UPDATE queue_messages
                             SET visible_at_ms = ?1, receive_count = receive_count + 1, receipt = ?2
                             WHERE seq = ?3",
                            params![now + visibility, receipt, seq],
                        )?;
                        received.push(ReceivedMessage {
                            message_id,
                            receipt,
                            group_id,
                            body,
                            receive_count: receive_count + 1,
                        });
                    }
                    // A group whose first message was set aside has a new first message.
                    if !heads || !moved || received.len() >= max {
                        break;
                    }
                }
                tx.commit()?;
                Ok(received)
            })
            .await
    }
}

#[async_trait]
impl WorkQueue for SqliteQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>> {
        self.receive_with(max, visibility, false).await
    }

    /// One query: the first message of each group (no receive to give back).
    async fn receive_heads(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>> {
        self.receive_with(max, visibility, true).await
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        let receipt = receipt.to_string();
        self.db
            .call(move |db| {
                let deleted = db.execute("DELETE FROM queue_messages WHERE receipt = ?1", params![receipt])?;
                if deleted == 0 {
                    return Err(in_flight_receipt());
                }
                Ok(())
            })
            .await
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()> {
        let receipt = receipt.to_string();
        let delay = millis(delay);
        self.db
            .call(move |db| {
                let updated = db.execute(
                    "UPDATE queue_messages SET visible_at_ms = ?1 WHERE receipt = ?2",
                    params![now_ms() + delay, receipt],
                )?;
                if updated == 0 {
                    return Err(in_flight_receipt());
                }
                Ok(())
            })
            .await
    }

    async fn release(&self, receipt: &str) -> Result<()> {
        let receipt = receipt.to_string();
        self.db
            .call(move |db| {
                // The delivery is taken back: visible now, its receive uncounted, its receipt void.
                let updated = db.execute(
                    "UPDATE queue_messages
                     SET visible_at_ms = ?1, receive_count = MAX(receive_count - 1, 0), receipt = NULL
                     WHERE receipt = ?2",
                    params![now_ms(), receipt],
                )?;
                if updated == 0 {
                    return Err(in_flight_receipt());
                }
                Ok(())
            })
            .await
    }

    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<()> {
        let receipt = message.receipt.clone();
        let error = last_error_text(error).to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let moved = tx.execute(
                    "INSERT INTO queue_dead_letters
                     (message_id, group_id, dedup_id, body, receive_count, dead_at_ms, last_error)
                     SELECT message_id, group_id, dedup_id, body, receive_count, ?1, ?2
                     FROM queue_messages WHERE receipt = ?3",
                    params![now_ms(), error, receipt],
                )?;
                if moved == 0 {
                    return Err(in_flight_receipt());
                }
                tx.execute("DELETE FROM queue_messages WHERE receipt = ?1", params![receipt])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |db| {
                let mut stmt = db.prepare(
                    "SELECT message_id, group_id, body, receive_count, last_error FROM queue_dead_letters
                     ORDER BY seq LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], |r| {
                    Ok(DeadLetter {
                        message_id: r.get(0)?,
                        group_id: r.get(1)?,
                        body: r.get(2)?,
                        receive_count: r.get(3)?,
                        last_error: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn requeue_dead_letters(&self, limit: usize) -> Result<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let letters: Vec<(i64, String, String, String)> = {
                    let mut stmt = tx.prepare(
                        "SELECT seq, message_id, group_id, body FROM queue_dead_letters ORDER BY seq LIMIT ?1",
                    )?;
                    stmt.query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                };
                let now = now_ms();
                for (seq, message_id, group_id, body) in &letters {
                    tx.execute(
                        "INSERT INTO queue_messages
                         (message_id, group_id, dedup_id, body, sent_at_ms, visible_at_ms, receive_count, receipt)
                         VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, NULL)",
                        params![uuid::Uuid::now_v7().to_string(), group_id, format!("requeue:{message_id}"), body, now],
                    )?;
                    tx.execute("DELETE FROM queue_dead_letters WHERE seq = ?1", params![seq])?;
                }
                tx.commit()?;
                Ok(letters.len())
            })
            .await
    }
}
