//! Storage, queue and secrets for hmsync: ports (traits) and their adapters.
//!
//! - AWS: [`DynamoStore`] (one table, docs/architecture.md), [`SqsQueue`] (FIFO, one message group per
//!   connection), [`SecretsManagerSecrets`].
//! - Local: [`SqliteStore`] and [`SqliteQueue`] (one durable file; the queue behaves like SQS
//!   FIFO), [`FileSecrets`], and [`MemorySecrets`] for tests.
//!
//! Every adapter passes the same contract suite (`tests/contract`).

mod aws_error;
mod clock;
pub mod dynamo;
mod error;
mod model;
mod ports;
mod secrets;
pub mod sqlite;
mod sqs;
#[cfg(feature = "testing")]
pub mod testing;

pub use dynamo::{DynamoStore, create_table_if_missing};
pub use error::{Result, StoreError};
pub use model::{
    Connection, ContactError, ContactProblem, DeadLetter, Erased, HOUR_MS, HistoryEntry, HourCounters,
    LAST_ERROR_MAX_BYTES, LinkKey, METER_MARGIN_DAYS, Page, ParkedMessage, Person, QueueMessage, ReceivedMessage,
    StoredItem, Tombstone, Versioned, meter_expires_at,
};
pub use ports::{
    ConnectionStore, ErrorStore, EventStore, HistoryStore, HourlyStore, LinkStore, MeterStore, ParkedStore,
    PrivacyStore, RoutingStore, SecretStore, StateStore, Store, SyncQueue, WorkQueue,
};
pub use secrets::{CachedSecrets, FileSecrets, MemorySecrets, SecretsManagerSecrets};
pub use sqlite::{SqliteQueue, SqliteQueueConfig, SqliteStore};
pub use sqs::{SqsQueue, fifo_dedup_id};
