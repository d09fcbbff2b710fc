//! Connections, state, counters, errors, history, meter, routing and engagement events.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, Put, PutRequest, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use hmsync_core::ConnectionConfig;
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    CONFIG_SK, CONNECTIONS_PK, COUNTERS_SK, CancelReason, DynamoStore, Item, STATE_SK, STATS_SK, SkRange,
    TTL_ATTRIBUTE, TransactOutcome, build_err, conn_pk, from_item, is_live, key, n, num_attr, s, str_attr, to_item,
};
use crate::clock::{expires_at, now_ms, now_secs};
use crate::error::{Result, StoreError};
use crate::model::{Connection, ContactError, HistoryEntry, Page, Versioned, check_id};
use crate::ports::{ConnectionStore, ErrorStore, EventStore, HistoryStore, MeterStore, RoutingStore, StateStore};

/// Concurrent single-item requests per call (conditional puts, read-and-delete).
const CONCURRENCY: usize = 16;
/// Conditional writes of a set-or-update race (e.g. an error cleared meanwhile) are tried this often.
const RACE_ATTEMPTS: usize = 5;
/// Longest event key stored verbatim; longer ones are hashed (a sort key holds ≤ 1024 bytes).
const MAX_EVENT_KEY: usize = 512;

fn error_sk(key: &str) -> String {
    format!("ERR#{key}")
}

fn connection_sk(conn: &str) -> String {
    format!("CONN#{conn}")
}

fn portal_pk(portal_id: u64) -> String {
    format!("PORTAL#{portal_id}")
}

fn route_sk(portal_id: u64) -> String {
    format!("ROUTE#{portal_id}")
}

fn meter_count_sk(month: &str) -> String {
    format!("METER#{month}")
}

fn meter_sk(month: &str, link_id: &str) -> String {
    format!("METER#{month}#{link_id}")
}

fn seen_sk(event_key: &str) -> String {
    if event_key.len() <= MAX_EVENT_KEY {
        format!("SEEN#{event_key}")
    } else {
        format!("SEEN#sha256:{}", hex::encode(Sha256::digest(event_key.as_bytes())))
    }
}

fn pending_prefix(email: &str) -> String {
    format!("PENDING#{email}#")
}

fn log_prefix(link_id: &str) -> String {
    format!("LOG#{link_id}#")
}

fn cancelled(what: &str, reasons: &[CancelReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
    StoreError::backend(format!("{what} was cancelled: {}", codes.join(", ")))
}

fn encode_json(what: &str, value: &Value) -> Result<AttributeValue> {
    serde_json::to_string(value).map(s).map_err(|e| StoreError::backend(format!("could not encode {what}: {e}")))
}

fn decode_json(what: &str, item: &Item, attribute: &str) -> Result<Value> {
    let text = str_attr(item, attribute).ok_or_else(|| StoreError::corrupt(what, format!("no {attribute}")))?;
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}

fn to_attr<T: serde::Serialize>(what: &str, value: &T) -> Result<AttributeValue> {
    to_attribute_value(value).map_err(|e| StoreError::backend(format!("could not encode {what}: {e}")))
}

impl DynamoStore {
    fn list_page<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        items: Vec<Item>,
        limit: usize,
        cursor: impl Fn(&T) -> String,
    ) -> Result<Page<T>> {
        let mut items = items.into_iter().map(|item| from_item::<T>(what, item)).collect::<Result<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn stat(&self, conn: &str, attribute: &str) -> Result<u64> {
        let stats = self.get_item(&conn_pk(conn), STATS_SK).await?;
        Ok(stats.as_ref().and_then(|i| num_attr::<i64>(i, attribute)).unwrap_or(0).max(0) as u64)
    }

    /// Updates an existing error in place: keeps `first_seen_ms`, counts the attempt. `None`
    /// if it does not exist (any more).
    async fn update_existing_error(&self, conn: &str, error: &ContactError, now: u64) -> Result<Option<ContactError>> {
        let mut sets = vec!["#problems = :problems".to_string(), "#last = :now".to_string()];
        let mut removes = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&conn_pk(conn), &error_sk(&error.key))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#problems", "problems")
            .expression_attribute_names("#last", "last_seen_ms")
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_values(":problems", to_attr("problems", &error.problems)?)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        // Optional attributes are set when present and removed when absent (never NULL).
        let optional =
            [("email", &error.email), ("hubspot_id", &error.hubspot_id), ("mailerlite_id", &error.mailerlite_id)];
        for (i, (attribute, value)) in optional.into_iter().enumerate() {
            request = request.expression_attribute_names(format!("#o{i}"), attribute);
            match value {
                Some(v) => {
                    sets.push(format!("#o{i} = :o{i}"));
                    request = request.expression_attribute_values(format!(":o{i}"), s(v));
                }
                None => removes.push(format!("#o{i}")),
            }
        }
        let mut expression = format!("SET {} ADD #attempts :one", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match request.update_expression(expression).send().await {
            Ok(out) => Ok(Some(from_item("contact error", out.attributes.unwrap_or_default())?)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(None),
            Err(err) => Err(self.err("UpdateItem", err)),
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn create_connection(&self, id: &str, config: &ConnectionConfig) -> Result<Connection> {
        check_id("connection id", id)?;
        let now = now_ms();
        let connection = Connection {
            id: id.to_string(),
            config: config.clone(),
            version: 1,
            schemas: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let pk = conn_pk(id);
        let config_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&connection, &pk, CONFIG_SK)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let mut listing = key(CONNECTIONS_PK, &connection_sk(id));
        listing.insert("id".to_string(), s(id));
        let listing_put = Put::builder().table_name(&self.table).set_item(Some(listing)).build().map_err(build_err)?;
        let items = vec![
            TransactWriteItem::builder().put(config_put).build(),
            TransactWriteItem::builder().put(listing_put).build(),
        ];
        match self.transact(items).await? {
            TransactOutcome::Committed => Ok(connection),
            TransactOutcome::Cancelled(r) if r.first().is_some_and(CancelReason::failed_condition) => {
                Err(StoreError::AlreadyExists { entity: format!("connection {id}") })
            }
            TransactOutcome::Cancelled(r) => Err(cancelled(&format!("creating connection {id}"), &r)),
        }
    }

    async fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        match self.get_item(&conn_pk(id), CONFIG_SK).await? {
            Some(item) => Ok(Some(from_item("connection", item)?)),
            None => Ok(None),
        }
    }

    async fn list_connections(&self) -> Result<Vec<Connection>> {
        let listing = self.query(CONNECTIONS_PK, SkRange::All, true, usize::MAX, true, |_| true).await?;
        let keys = listing
            .iter()
            .filter_map(|i| str_attr(i, "sk")?.strip_prefix("CONN#"))
            .map(|id| key(&conn_pk(id), CONFIG_SK))
            .collect();
        let mut connections = self
            .batch_get(keys)
            .await?
            .into_iter()
            .map(|item| from_item::<Connection>("connection", item))
            .collect::<Result<Vec<_>>>()?;
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(connections)
    }

    async fn update_connection(&self, connection: &Connection) -> Result<Connection> {
        let mut stored = connection.clone();
        stored.version = connection.version + 1;
        stored.updated_at_ms = now_ms();
        let pk = conn_pk(&connection.id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&stored, &pk, CONFIG_SK)?))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(connection.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(stored),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::VersionConflict {
                    entity: format!("connection {}", connection.id),
                    current: self.get_connection(&connection.id).await?.map(|c| c.version),
                })
            }
            Err(err) => Err(self.err("PutItem", err)),
        }
    }

    async fn delete_connection(&self, id: &str) -> Result<bool> {
        let pk = conn_pk(id);
        let all = self.query(&pk, SkRange::All, true, usize::MAX, true, |_| true).await?;
        let mut existed = false;
        let mut deletes = Vec::with_capacity(all.len() + 1);
        let delete = |pk: &str, sk: &str| -> Result<WriteRequest> {
            let request = DeleteRequest::builder().set_key(Some(key(pk, sk))).build().map_err(build_err)?;
            Ok(WriteRequest::builder().delete_request(request).build())
        };
        for item in &all {
            let Some(sk) = str_attr(item, "sk") else { continue };
            if sk == CONFIG_SK {
                existed = true;
                continue;
            }
            if let Some(portal) = sk.strip_prefix("ROUTE#") {
                deletes.push(delete(&format!("PORTAL#{portal}"), &connection_sk(id))?);
            }
            deletes.push(delete(&pk, sk)?);
        }
        // The connection itself goes last: if this is interrupted, it is still listed and the
        // delete can be repeated.
        self.batch_write(deletes).await?;
        self.batch_write(vec![delete(&pk, CONFIG_SK)?, delete(CONNECTIONS_PK, &connection_sk(id))?]).await?;
        Ok(existed)
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get_state(&self, conn: &str) -> Result<Option<Versioned<Value>>> {
        let Some(item) = self.get_item(&conn_pk(conn), STATE_SK).await? else {
            return Ok(None);
        };
        let version = num_attr(&item, "version").ok_or_else(|| StoreError::corrupt("state", "no version"))?;
        Ok(Some(Versioned { value: decode_json("state", &item, "doc")?, version }))
    }

    async fn put_state(&self, conn: &str, state: &Value, expected_version: Option<u64>) -> Result<u64> {
        let version = expected_version.map_or(1, |v| v + 1);
        let mut item = key(&conn_pk(conn), STATE_SK);
        item.insert("doc".to_string(), encode_json("state", state)?);
        item.insert("version".to_string(), n(version));
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        request = match expected_version {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(v)),
        };
        match request.send().await {
            Ok(_) => Ok(version),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::VersionConflict {
                    entity: format!("state of connection {conn}"),
                    current: self.get_state(conn).await?.map(|s| s.version),
                })
            }
            Err(err) => Err(self.err("PutItem", err)),
        }
    }

    async fn add_and_set_counters(&self, conn: &str, deltas: &[(&str, i64)], values: &[(&str, i64)]) -> Result<()> {
        // One document path may appear only once per update expression.
        let sets: BTreeMap<&str, i64> = values.iter().map(|(name, value)| (*name, *value)).collect();
        let mut merged: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, delta) in deltas.iter().filter(|(name, _)| !sets.contains_key(name)) {
            *merged.entry(name).or_default() += delta;
        }
        if merged.is_empty() && sets.is_empty() {
            return Ok(());
        }
        let mut request =
            self.client.update_item().table_name(&self.table).set_key(Some(key(&conn_pk(conn), COUNTERS_SK)));
        let mut adds = Vec::with_capacity(merged.len());
        for (i, (name, delta)) in merged.into_iter().enumerate() {
            adds.push(format!("#c{i} :v{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), format!("c#{name}"))
                .expression_attribute_values(format!(":v{i}"), n(delta));
        }
        let mut assignments = Vec::with_capacity(sets.len());
        for (i, (name, value)) in sets.into_iter().enumerate() {
            assignments.push(format!("#s{i} = :s{i}"));
            request = request
                .expression_attribute_names(format!("#s{i}"), format!("c#{name}"))
                .expression_attribute_values(format!(":s{i}"), n(value));
        }
        let mut expression = Vec::new();
        if !adds.is_empty() {
            expression.push(format!("ADD {}", adds.join(", ")));
        }
        if !assignments.is_empty() {
            expression.push(format!("SET {}", assignments.join(", ")));
        }
        request.update_expression(expression.join(" ")).send().await.map_err(|e| self.err("UpdateItem", e))?;
        Ok(())
    }

    async fn get_counters(&self, conn: &str) -> Result<BTreeMap<String, i64>> {
        let item = self.get_item(&conn_pk(conn), COUNTERS_SK).await?.unwrap_or_default();
        Ok(item
            .iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("c#")?.to_string(), value.as_n().ok()?.parse().ok()?)))
            .collect())
    }
}

#[async_trait]
impl ErrorStore for DynamoStore {
    async fn set_error(&self, conn: &str, error: &ContactError) -> Result<ContactError> {
        let pk = conn_pk(conn);
        for _ in 0..RACE_ATTEMPTS {
            let now = now_ms();
            let mut fresh = error.clone();
            fresh.first_seen_ms = now;
            fresh.last_seen_ms = now;
            fresh.attempts = 1;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&fresh, &pk, &error_sk(&error.key))?))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            let items = vec![TransactWriteItem::builder().put(put).build(), self.stats_add(&pk, "errors", 1)?];
            match self.transact(items).await? {
                TransactOutcome::Committed => return Ok(fresh),
                TransactOutcome::Cancelled(r) if r.first().is_some_and(CancelReason::failed_condition) => {}
                TransactOutcome::Cancelled(r) => return Err(cancelled(&format!("recording error {}", error.key), &r)),
            }
            if let Some(updated) = self.update_existing_error(conn, error, now).await? {
                return Ok(updated);
            }
        }
        Err(StoreError::Throttled {
            message: format!("error {} of connection {conn} kept being set and cleared concurrently", error.key),
        })
    }

    async fn clear_error(&self, conn: &str, key: &str) -> Result<bool> {
        let pk = conn_pk(conn);
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(super::key(&pk, &error_sk(key))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_err)?;
        let items = vec![TransactWriteItem::builder().delete(delete).build(), self.stats_add(&pk, "errors", -1)?];
        match self.transact(items).await? {
            TransactOutcome::Committed => Ok(true),
            TransactOutcome::Cancelled(r) if r.first().is_some_and(CancelReason::failed_condition) => Ok(false),
            TransactOutcome::Cancelled(r) => Err(cancelled(&format!("clearing error {key}"), &r)),
        }
    }

    async fn get_error(&self, conn: &str, key: &str) -> Result<Option<ContactError>> {
        match self.get_item(&conn_pk(conn), &error_sk(key)).await? {
            Some(item) => Ok(Some(from_item("contact error", item)?)),
            None => Ok(None),
        }
    }

    async fn list_errors(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ContactError>> {
        let limit = limit.max(1);
        let from = error_sk(after.unwrap_or_default());
        let result = self
            .query(&conn_pk(conn), SkRange::Between(&from, "ERR$"), true, limit.saturating_add(1), false, |item| {
                str_attr(item, "sk") != Some(from.as_str())
            })
            .await?;
        self.list_page("contact error", result, limit, |e: &ContactError| e.key.clone())
    }

    async fn count_errors(&self, conn: &str) -> Result<u64> {
        self.stat(conn, "errors").await
    }
}

#[async_trait]
impl HistoryStore for DynamoStore {
    async fn append_history(&self, conn: &str, entries: &[HistoryEntry], ttl: Duration) -> Result<()> {
        let pk = conn_pk(conn);
        let batch = uuid::Uuid::now_v7().simple().to_string();
        let expires = expires_at(ttl);
        let mut requests = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            check_id("history link id", &entry.link_id)?;
            let sk = format!("{}{:015}#{batch}#{i:05}", log_prefix(&entry.link_id), entry.at_ms);
            let mut item = to_item(entry, &pk, &sk)?;
            item.insert(TTL_ATTRIBUTE.to_string(), n(expires));
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(requests).await
    }

    async fn read_history(&self, conn: &str, link_id: &str, limit: usize) -> Result<Vec<HistoryEntry>> {
        let now = now_secs();
        let prefix = log_prefix(link_id);
        let result =
            self.query(&conn_pk(conn), SkRange::Prefix(&prefix), false, limit, false, |i| is_live(i, now)).await?;
        result.into_iter().map(|item| from_item("history entry", item)).collect()
    }
}

#[async_trait]
impl MeterStore for DynamoStore {
    async fn record_synced(&self, conn: &str, month: &str, link_ids: &[String]) -> Result<u64> {
        check_id("month", month)?;
        let pk = conn_pk(conn);
        let mut unique: Vec<&str> = Vec::with_capacity(link_ids.len());
        for id in link_ids {
            check_id("link id", id)?;
            if !unique.contains(&id.as_str()) {
                unique.push(id);
            }
        }
        // Skip the links already counted (cheap reads), then count the rest exactly: each
        // transaction marks its links and adds their number, or nothing.
        let seen = self.batch_get(unique.iter().map(|id| key(&pk, &meter_sk(month, id))).collect()).await?;
        let seen: Vec<&str> = seen.iter().filter_map(|i| str_attr(i, "sk")).collect();
        let mut candidates: Vec<&str> =
            unique.into_iter().filter(|id| !seen.contains(&meter_sk(month, id).as_str())).collect();
        let mut added = 0u64;
        while !candidates.is_empty() {
            let take = candidates.len().min(super::TRANSACTION_MAX - 1);
            let mut chunk: Vec<&str> = candidates.drain(..take).collect();
            for _ in 0..RACE_ATTEMPTS {
                if chunk.is_empty() {
                    break;
                }
                let mut items = Vec::with_capacity(chunk.len() + 1);
                for id in &chunk {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(key(&pk, &meter_sk(month, id))))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_err)?;
                    items.push(TransactWriteItem::builder().put(put).build());
                }
                let count = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&pk, &meter_count_sk(month))))
                    .update_expression("ADD #c :n")
                    .expression_attribute_names("#c", "count")
                    .expression_attribute_values(":n", n(chunk.len()))
                    .build()
                    .map_err(build_err)?;
                items.push(TransactWriteItem::builder().update(count).build());
                match self.transact(items).await? {
                    TransactOutcome::Committed => {
                        added += chunk.len() as u64;
                        chunk.clear();
                    }
                    TransactOutcome::Cancelled(reasons) => {
                        // Counted meanwhile by another writer: drop those and try the rest.
                        let before = chunk.len();
                        let mut reasons = reasons.iter();
                        chunk.retain(|_| !reasons.next().is_some_and(CancelReason::failed_condition));
                        if chunk.len() == before {
                            return Err(StoreError::backend(format!(
                                "counting synced contacts of {month} for connection {conn} was cancelled"
                            )));
                        }
                    }
                }
            }
            if !chunk.is_empty() {
                return Err(StoreError::Throttled {
                    message: format!("counting synced contacts of {month} for connection {conn} kept conflicting"),
                });
            }
        }
        Ok(added)
    }

    async fn unique_contacts(&self, conn: &str, month: &str) -> Result<u64> {
        let item = self.get_item(&conn_pk(conn), &meter_count_sk(month)).await?;
        Ok(item.as_ref().and_then(|i| num_attr(i, "count")).unwrap_or(0))
    }
}

#[async_trait]
impl RoutingStore for DynamoStore {
    async fn add_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        let pk = conn_pk(conn);
        let exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(&pk, CONFIG_SK)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_err)?;
        let mut route = key(&portal_pk(portal_id), &connection_sk(conn));
        route.insert("connection_id".to_string(), s(conn));
        let mut back = key(&pk, &route_sk(portal_id));
        back.insert("portal_id".to_string(), n(portal_id));
        let items = vec![
            TransactWriteItem::builder().condition_check(exists).build(),
            TransactWriteItem::builder()
                .put(Put::builder().table_name(&self.table).set_item(Some(route)).build().map_err(build_err)?)
                .build(),
            TransactWriteItem::builder()
                .put(Put::builder().table_name(&self.table).set_item(Some(back)).build().map_err(build_err)?)
                .build(),
        ];
        match self.transact(items).await? {
            TransactOutcome::Committed => Ok(()),
            TransactOutcome::Cancelled(r) if r.first().is_some_and(CancelReason::failed_condition) => {
                Err(StoreError::NotFound { entity: format!("connection {conn}") })
            }
            TransactOutcome::Cancelled(r) => Err(cancelled(&format!("routing portal {portal_id} to {conn}"), &r)),
        }
    }

    async fn remove_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        let mut requests = Vec::with_capacity(2);
        for (pk, sk) in [(portal_pk(portal_id), connection_sk(conn)), (conn_pk(conn), route_sk(portal_id))] {
            let delete = DeleteRequest::builder().set_key(Some(key(&pk, &sk))).build().map_err(build_err)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.batch_write(requests).await
    }

    async fn connections_for_portal(&self, portal_id: u64) -> Result<Vec<String>> {
        let routes = self.query(&portal_pk(portal_id), SkRange::All, true, usize::MAX, true, |_| true).await?;
        Ok(routes.iter().filter_map(|i| Some(str_attr(i, "sk")?.strip_prefix("CONN#")?.to_string())).collect())
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn mark_events_seen(&self, conn: &str, keys: &[String], ttl: Duration) -> Result<Vec<bool>> {
        let pk = conn_pk(conn);
        let expires = expires_at(ttl);
        let now = now_secs();
        let mut first_index: HashMap<&str, usize> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            first_index.entry(k.as_str()).or_insert(i);
        }
        let mut unique: Vec<(usize, String)> = first_index.iter().map(|(k, i)| (*i, seen_sk(k))).collect();
        unique.sort();
        let outcomes: Vec<(usize, bool)> = stream::iter(unique)
            .map(|(i, sk): (usize, String)| {
                let mut item = key(&pk, &sk);
                item.insert(TTL_ATTRIBUTE.to_string(), n(expires));
                async move {
                    // An expired marker that DynamoDB has not deleted yet counts as unseen.
                    let new = self
                        .put_conditional(item, "attribute_not_exists(pk) OR expires_at <= :now", vec![(":now", n(now))])
                        .await?;
                    Ok::<_, StoreError>((i, new))
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut seen = vec![false; keys.len()];
        for (i, new) in outcomes {
            seen[i] = new;
        }
        Ok(seen)
    }

    async fn put_pending_events(&self, conn: &str, email: &str, events: &[Value], ttl: Duration) -> Result<()> {
        let pk = conn_pk(conn);
        let batch = uuid::Uuid::now_v7().simple().to_string();
        let expires = expires_at(ttl);
        let mut requests = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let mut item = key(&pk, &format!("{}{batch}#{i:05}", pending_prefix(email)));
            item.insert("event".to_string(), encode_json("pending event", event)?);
            item.insert(TTL_ATTRIBUTE.to_string(), n(expires));
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(requests).await
    }

    async fn take_pending_events(&self, conn: &str, email: &str) -> Result<Vec<Value>> {
        let pk = conn_pk(conn);
        let prefix = pending_prefix(email);
        let listed = self.query(&pk, SkRange::Prefix(&prefix), true, usize::MAX, true, |_| true).await?;
        let now = now_secs();
        // Each event belongs to whoever deletes it: concurrent takers never both get it.
        let taken: Vec<Option<Item>> = stream::iter(listed)
            .map(|listed| {
                let pk = pk.clone();
                async move {
                    let sk = str_attr(&listed, "sk").unwrap_or_default().to_string();
                    let out = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key(&pk, &sk)))
                        .return_values(ReturnValue::AllOld)
                        .send()
                        .await
                        .map_err(|e| self.err("DeleteItem", e))?;
                    Ok::<_, StoreError>(out.attributes.filter(|a| !a.is_empty()))
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        taken
            .into_iter()
            .flatten()
            .filter(|item| is_live(item, now))
            .map(|item| decode_json("pending event", &item, "event"))
            .collect()
    }
}
