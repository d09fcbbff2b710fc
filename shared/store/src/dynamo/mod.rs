//! DynamoDB adapter: every storage port over ONE table (`pk`, `sk` strings, on-demand), laid
//! out as in docs/architecture.md. Every item of a connection lives under `pk = CONN#<id>`:
//!
//! | `sk`                                   | holds                                                   |
//! |----------------------------------------|---------------------------------------------------------|
//! | `CONFIG`                               | the [`Connection`](crate::Connection) (`version` for optimistic locking) |
//! | `STATE`                                | the engine's state document (`doc`, JSON) + `version`   |
//! | `COUNTERS`                             | one number attribute `c#<name>` per counter (`ADD`)     |
//! | `STATS`                                | `links` and `errors` counts, kept in the same transactions as the items |
//! | `LINK#<link id>`                       | a [`Link`](hmsync_core::Link)                           |
//! | `HS#<id>`, `ML#<id>`, `EMAIL#<email>`  | index entries: `link_id`, written with the link         |
//! | `ERR#<key>`                            | the contact's current [`ContactError`](crate::ContactError) |
//! | `LOG#<link>#<at ms, 15 digits>#<batch uuid v7>#<n>` | a [`HistoryEntry`](crate::HistoryEntry) + `expires_at` |
//! | `HOUR#<hour start ms, 15 digits>`      | one number attribute `c#<name>` per hourly counter (`ADD`) + `expires_at` |
//! | `METER#<yyyy-mm>`                      | `count` of unique contacts of the month                 |
//! | `METER#<yyyy-mm>#<link>`               | the link was counted that month                         |
//! | `SEEN#<event key>`                     | an engagement event seen (+ `expires_at`); keys over 512 bytes as `SEEN#sha256:<hex>` |
//! | `PENDING#<email>#<uuid v7>#<n>`        | an event of a contact not linked yet (`event`, JSON, + `expires_at`) |
//! | `ROUTE#<portal id>`                    | back-reference to the routing entry, so deleting the connection removes it |
//!
//! Outside the connection's partition: `pk = CONNECTIONS, sk = CONN#<id>` lists the connections,
//! and `pk = PORTAL#<portal id>, sk = CONN#<id>` routes a HubSpot portal's webhooks.
//! `expires_at` (epoch seconds) is the table's TTL attribute; DynamoDB deletes expired items
//! lazily, so reads filter them as well.

mod hourly;
mod links;
mod records;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, WriteRequest,
};
use hmsync_http::RetryPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aws_error::map_sdk_error;
use crate::error::{Result, StoreError};
use crate::model::LinkKey;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The TTL attribute of every expiring item (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// DynamoDB's limits per call.
const BATCH_GET_MAX: usize = 100;
/// moto accepts 26 items; DynamoDB rejects more than 25.
const BATCH_WRITE_MAX: usize = 25;
const TRANSACTION_MAX: usize = 100;

/// The storage ports over one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Backoff for unprocessed batch items and transaction conflicts.
    retry: RetryPolicy,
}

impl DynamoStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retry: RetryPolicy {
                max_attempts: 8,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(2),
            },
        }
    }

    /// Replaces the backoff used for unprocessed batch items and transaction conflicts.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates this store's table if it does not exist (see [`create_table_if_missing`]).
    pub async fn create_table_if_missing(&self) -> Result<()> {
        create_table_if_missing(&self.client, &self.table).await
    }

    fn op(&self, operation: &str) -> String {
        format!("DynamoDB {operation} on table {}", self.table)
    }

    fn err<E, R>(&self, operation: &str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        map_sdk_error(&self.op(operation), err)
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem", e))?;
        Ok(out.item)
    }

    /// Strongly consistent BatchGetItem of any number of keys (deduplicated, ≤ 100 per call),
    /// retrying unprocessed keys with backoff. Returns the items found, in no particular order.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut seen = HashSet::new();
        let keys: Vec<Item> = keys
            .into_iter()
            .filter(|k| seen.insert((str_attr(k, "pk").map(str::to_string), str_attr(k, "sk").map(str::to_string))))
            .collect();
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 1;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.err("BatchGetItem", e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
                if !pending.is_empty() {
                    self.backoff(&mut attempt, "BatchGetItem left keys unprocessed").await?;
                }
            }
        }
        Ok(found)
    }

    /// BatchWriteItem in chunks of 25, retrying unprocessed items with backoff.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 1;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| self.err("BatchWriteItem", e))?;
                pending = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if !pending.is_empty() {
                    self.backoff(&mut attempt, "BatchWriteItem left items unprocessed").await?;
                }
            }
        }
        Ok(())
    }

    /// Sleeps before the next attempt, or fails as throttled once the attempts are used up.
    async fn backoff(&self, attempt: &mut u32, what: &str) -> Result<()> {
        if !self.retry.should_retry(*attempt) {
            return Err(StoreError::Throttled { message: format!("{} after {attempt} attempts", self.op(what)) });
        }
        tokio::time::sleep(self.retry.delay(*attempt)).await;
        *attempt += 1;
        Ok(())
    }

    /// Runs a transaction, retrying it while it is cancelled only by conflicts with concurrent
    /// transactions (e.g. two new links both counting themselves in `STATS`). Any other
    /// cancellation is returned with its reason codes, aligned with `items`.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<TransactOutcome> {
        debug_assert!(items.len() <= TRANSACTION_MAX);
        let mut attempt = 1;
        loop {
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(TransactOutcome::Committed),
                Err(err) => err,
            };
            let reasons: Vec<CancelReason> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
                    .cancellation_reasons()
                    .iter()
                    .map(|r| CancelReason { code: r.code().unwrap_or("None").to_string(), item: r.item().cloned() })
                    .collect(),
                _ => return Err(self.err("TransactWriteItems", err)),
            };
            let only_conflicts = reasons.iter().all(|r| r.code == "None" || r.code == "TransactionConflict")
                && reasons.iter().any(|r| r.code == "TransactionConflict");
            let throttled = reasons.iter().any(|r| r.code == "ThrottlingError" || r.code.contains("Throughput"));
            if only_conflicts || throttled {
                self.backoff(&mut attempt, "TransactWriteItems was cancelled by concurrent writes").await?;
                continue;
            }
            if reasons.is_empty() {
                return Err(self.err("TransactWriteItems", err));
            }
            return Ok(TransactOutcome::Cancelled(reasons));
        }
    }

    /// Queries one partition for sort keys in `range`, newest-first when `!forward`, until
    /// `limit` items pass `keep` or the range is exhausted. `keys_only` fetches `pk`/`sk` only.
    async fn query(
        &self,
        pk: &str,
        range: SkRange<'_>,
        forward: bool,
        limit: usize,
        keys_only: bool,
        mut keep: impl FnMut(&Item) -> bool + Send,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let remaining = limit.saturating_sub(items.len());
            if remaining == 0 {
                return Ok(items);
            }
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .scan_index_forward(forward)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take())
                .limit(remaining.clamp(1, 1000) as i32);
            request = match range {
                SkRange::Prefix(prefix) => request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                SkRange::Between(from, to) => request
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", s(from))
                    .expression_attribute_values(":to", s(to)),
                SkRange::All => request.key_condition_expression("pk = :pk"),
            };
            if keys_only {
                request = request.projection_expression("pk, sk");
            }
            let out = request.send().await.map_err(|e| self.err("Query", e))?;
            for item in out.items.unwrap_or_default() {
                if keep(&item) {
                    items.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn put_conditional(&self, item: Item, condition: &str, values: Vec<(&str, AttributeValue)>) -> Result<bool> {
        let mut request =
            self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(self.err("PutItem", err)),
        }
    }
}

/// Creates a table laid out for [`DynamoStore`] (pk/sk strings, on-demand, TTL on
/// `expires_at`) unless it exists, and waits until it is active. Used by tests, the local
/// runner and the docs; the SAM template creates the table in AWS.
pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<()> {
    let what = |op: &str| format!("DynamoDB {op} on table {table}");
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().map_err(build_err)?,
        )
        .key_schema(
            KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().map_err(build_err)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(err) => return Err(map_sdk_error(&what("CreateTable"), err)),
    }
    // An on-demand table is usually active within seconds.
    let mut active = false;
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| map_sdk_error(&what("DescribeTable"), e))?;
        if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        return Err(StoreError::Unavailable {
            message: format!("table {table} did not become active within a minute"),
        });
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| map_sdk_error(&what("DescribeTimeToLive"), e))?;
    let status = ttl.time_to_live_description.and_then(|d| d.time_to_live_status);
    if !matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(|e| map_sdk_error(&what("UpdateTimeToLive"), e))?;
    }
    Ok(())
}

pub(crate) enum TransactOutcome {
    Committed,
    /// One reason per transaction item, in order (`code` "None" for the items that passed).
    Cancelled(Vec<CancelReason>),
}

pub(crate) struct CancelReason {
    pub code: String,
    /// The item as it was, for conditions with `ReturnValuesOnConditionCheckFailure::AllOld`.
    pub item: Option<Item>,
}

impl CancelReason {
    pub fn failed_condition(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

#[derive(Clone, Copy)]
pub(crate) enum SkRange<'a> {
    All,
    Prefix(&'a str),
    /// Inclusive on both ends.
    Between(&'a str, &'a str),
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(crate) fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) fn num_attr<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// Serializes `value` into an item stored at `pk`/`sk`.
pub(crate) fn to_item<T: Serialize>(value: &T, pk: &str, sk: &str) -> Result<Item> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::backend(format!("could not encode item {sk}: {e}")))?;
    item.insert("pk".to_string(), s(pk));
    item.insert("sk".to_string(), s(sk));
    Ok(item)
}

pub(crate) fn from_item<T: DeserializeOwned>(what: &str, item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::corrupt(what, e))
}

pub(crate) fn build_err(err: BuildError) -> StoreError {
    StoreError::backend(format!("could not build a DynamoDB request: {err}"))
}

pub(crate) fn conn_pk(conn: &str) -> String {
    format!("CONN#{conn}")
}

pub(crate) const CONNECTIONS_PK: &str = "CONNECTIONS";
pub(crate) const CONFIG_SK: &str = "CONFIG";
pub(crate) const STATE_SK: &str = "STATE";
pub(crate) const COUNTERS_SK: &str = "COUNTERS";
pub(crate) const STATS_SK: &str = "STATS";

pub(crate) fn link_sk(link_id: &str) -> String {
    format!("LINK#{link_id}")
}

pub(crate) fn index_sk(key: &LinkKey) -> String {
    key.index_key()
}

/// Whether an item has not expired yet (items without `expires_at` never do).
pub(crate) fn is_live(item: &Item, now_secs: u64) -> bool {
    num_attr::<u64>(item, TTL_ATTRIBUTE).is_none_or(|at| now_secs < at)
}
