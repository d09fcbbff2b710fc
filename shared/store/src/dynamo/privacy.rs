//! Parked messages (`PARK#<uuid v7>`, counted in `STATS`), tombstones (`TOMB#<digest>`), the
//! purge of one person's items and the inventory of a connection's partition.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::records::{connection_sk, log_prefix, meter_sk, pending_prefix};
use super::{
    CONNECTIONS_PK, DynamoStore, Item, STATS_SK, SkRange, build_err, conn_pk, from_item, index_sk, key, link_sk, n, s,
    str_attr,
};
use crate::error::{Result, StoreError};
use crate::model::{Erased, LinkKey, Page, ParkedMessage, Person, StoredItem, Tombstone};
use crate::ports::{ErrorStore, LinkStore, ParkedStore, PrivacyStore};

const PARK_PREFIX: &str = "PARK#";
const TOMB_PREFIX: &str = "TOMB#";
/// Meter marks are looked for this many months back when a person is purged (marks expire
/// after their month and a margin; older stores kept them without expiry).
const METER_MONTHS_BACK: i32 = 24;

fn park_sk(id: &str) -> String {
    format!("{PARK_PREFIX}{id}")
}

fn tomb_sk(digest: &str) -> String {
    format!("{TOMB_PREFIX}{digest}")
}

fn delete_request(pk: &str, sk: &str) -> Result<WriteRequest> {
    let request = DeleteRequest::builder().set_key(Some(key(pk, sk))).build().map_err(build_err)?;
    Ok(WriteRequest::builder().delete_request(request).build())
}

/// `yyyy-mm` of this month and the `back` months before it.
fn recent_months(back: i32) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let mut year = now.year();
    let mut month = i32::from(u8::from(now.month()));
    let mut out = Vec::with_capacity(back as usize + 1);
    for _ in 0..=back {
        out.push(format!("{year:04}-{month:02}"));
        month -= 1;
        if month == 0 {
            month = 12;
            year -= 1;
        }
    }
    out
}

impl DynamoStore {
    /// Adds `delta` to the parked count; with `cap`, only while the count is below it (false
    /// when it is not).
    async fn parked_count_add(&self, pk: &str, delta: i64, cap: Option<u64>) -> Result<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, STATS_SK)))
            .update_expression("ADD #p :d")
            .expression_attribute_names("#p", "parked")
            .expression_attribute_values(":d", n(delta));
        if let Some(cap) = cap {
            update = update
                .condition_expression("attribute_not_exists(#p) OR #p < :cap")
                .expression_attribute_values(":cap", n(cap));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(self.err("UpdateItem", err)),
        }
    }

    /// Deletes one parked message; whether it was there.
    async fn delete_parked(&self, pk: &str, id: &str) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, &park_sk(id))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.err("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn read_tombstone(&self, pk: &str, digest: &str) -> Result<Option<Tombstone>> {
        match self.get_item(pk, &tomb_sk(digest)).await? {
            Some(item) => Ok(Some(from_item("tombstone", item)?)),
            None => Ok(None),
        }
    }

    /// Deletes the items of a query (keys only), returning how many there were.
    async fn delete_all(&self, pk: &str, prefix: &str) -> Result<u64> {
        let found = self.query(pk, SkRange::Prefix(prefix), true, usize::MAX, true, |_| true).await?;
        let deletes = found
            .iter()
            .filter_map(|i| str_attr(i, "sk"))
            .map(|sk| delete_request(pk, sk))
            .collect::<Result<Vec<_>>>()?;
        let count = deletes.len() as u64;
        self.batch_write(deletes).await?;
        Ok(count)
    }
}

/// Parking is two single-item writes, not a transaction: the count is taken first (so the cap
/// holds under concurrent writers), then the message is put. A crash between the two leaves the
/// count one too high until the parked messages are next drained, when it is set to zero again.
#[async_trait]
impl ParkedStore for DynamoStore {
    async fn park(&self, conn: &str, body: &str, cap: u64) -> Result<bool> {
        let pk = conn_pk(conn);
        if !self.parked_count_add(&pk, 1, Some(cap)).await? {
            return Ok(false);
        }
        let mut item = key(&pk, &park_sk(&uuid::Uuid::now_v7().simple().to_string()));
        item.insert("body".to_string(), s(body));
        if let Err(err) = self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await {
            self.parked_count_add(&pk, -1, None).await?;
            return Err(self.err("PutItem", err));
        }
        Ok(true)
    }

    async fn list_parked(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ParkedMessage>> {
        let limit = limit.max(1);
        let from = park_sk(after.unwrap_or_default());
        let found = self
            .query(&conn_pk(conn), SkRange::Between(&from, "PARK$"), true, limit.saturating_add(1), false, |item| {
                str_attr(item, "sk") != Some(from.as_str())
            })
            .await?;
        let mut items = found
            .iter()
            .map(|item| {
                let id = str_attr(item, "sk").and_then(|sk| sk.strip_prefix(PARK_PREFIX));
                let body = str_attr(item, "body");
                match (id, body) {
                    (Some(id), Some(body)) => Ok(ParkedMessage { id: id.to_string(), body: body.to_string() }),
                    _ => Err(StoreError::corrupt("parked message", "no id or body")),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|m| m.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn remove_parked(&self, conn: &str, ids: &[String]) -> Result<()> {
        let pk = conn_pk(conn);
        let unique: Vec<String> = ids.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let removed: Vec<bool> = futures::stream::iter(unique)
            .map(|id| {
                let pk = pk.clone();
                async move { self.delete_parked(&pk, &id).await }
            })
            .buffered(super::records::CONCURRENCY)
            .try_collect()
            .await?;
        let count = removed.iter().filter(|r| **r).count() as i64;
        if count > 0 {
            self.parked_count_add(&pk, -count, None).await?;
        }
        // Drained: the count starts again from zero (whatever a crash left in it).
        let left = self.query(&pk, SkRange::Prefix(PARK_PREFIX), true, 1, true, |_| true).await?;
        if left.is_empty() {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(&pk, STATS_SK)))
                .condition_expression("attribute_exists(pk)")
                .update_expression("SET #p = :z")
                .expression_attribute_names("#p", "parked")
                .expression_attribute_values(":z", n(0))
                .send()
                .await
                .map(|_| ())
                .or_else(|err| match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                    _ => Err(self.err("UpdateItem", err)),
                })?;
        }
        Ok(())
    }

    async fn replace_parked(&self, conn: &str, id: &str, body: Option<&str>) -> Result<()> {
        let Some(body) = body else {
            return self.remove_parked(conn, &[id.to_string()]).await;
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&conn_pk(conn), &park_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET #b = :b")
            .expression_attribute_names("#b", "body")
            .expression_attribute_values(":b", s(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(self.err("UpdateItem", err)),
        }
    }

    async fn count_parked(&self, conn: &str) -> Result<u64> {
        self.stat(conn, "parked").await
    }
}

#[async_trait]
impl PrivacyStore for DynamoStore {
    async fn put_tombstone(&self, conn: &str, tombstone: &Tombstone) -> Result<Tombstone> {
        let pk = conn_pk(conn);
        let found = self.batch_get(tombstone.digests.iter().map(|d| key(&pk, &tomb_sk(d))).collect()).await?;
        let others =
            found.into_iter().map(|item| from_item::<Tombstone>("tombstone", item)).collect::<Result<Vec<_>>>()?;
        let merged = tombstone.clone().merged(others);
        let mut puts = Vec::with_capacity(merged.digests.len());
        for d in &merged.digests {
            let item = super::to_item(&merged, &pk, &tomb_sk(d))?;
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(build_err)?;
            puts.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(puts).await?;
        Ok(merged)
    }

    async fn tombstoned(&self, conn: &str, digests: &[String]) -> Result<Vec<String>> {
        let pk = conn_pk(conn);
        let found = self.batch_get(digests.iter().map(|d| key(&pk, &tomb_sk(d))).collect()).await?;
        let held: BTreeSet<String> = found
            .iter()
            .filter_map(|i| str_attr(i, "sk").and_then(|sk| sk.strip_prefix(TOMB_PREFIX)).map(str::to_string))
            .collect();
        Ok(held.into_iter().collect())
    }

    async fn get_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        self.read_tombstone(&conn_pk(conn), digest).await
    }

    async fn lift_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        let pk = conn_pk(conn);
        let Some(tombstone) = self.read_tombstone(&pk, digest).await? else { return Ok(None) };
        let deletes = tombstone.digests.iter().map(|d| delete_request(&pk, &tomb_sk(d))).collect::<Result<Vec<_>>>()?;
        self.batch_write(deletes).await?;
        Ok(Some(tombstone))
    }

    async fn has_tombstones(&self, conn: &str) -> Result<bool> {
        let found = self.query(&conn_pk(conn), SkRange::Prefix(TOMB_PREFIX), true, 1, true, |_| true).await?;
        Ok(!found.is_empty())
    }

    async fn purge_person(&self, conn: &str, person: &Person) -> Result<Erased> {
        let pk = conn_pk(conn);
        let mut erased = Erased::default();
        for link_id in &person.link_ids {
            if let Some(link) = self.get_link(conn, link_id).await?
                && self.delete_link(conn, link_id).await?
            {
                erased.links += 1;
                erased.index_entries += LinkKey::of(&link).len() as u64;
            }
            erased.history_entries += self.delete_all(&pk, &log_prefix(link_id)).await?;
            let marks: Vec<Item> =
                recent_months(METER_MONTHS_BACK).iter().map(|m| key(&pk, &meter_sk(m, link_id))).collect();
            let found = self.batch_get(marks).await?;
            let deletes = found
                .iter()
                .filter_map(|i| str_attr(i, "sk"))
                .map(|sk| delete_request(&pk, sk))
                .collect::<Result<Vec<_>>>()?;
            erased.meter_marks += deletes.len() as u64;
            self.batch_write(deletes).await?;
        }
        // Entries under the person's keys that point to no live link: theirs, or left over.
        let entries = self.batch_get(person.keys.iter().map(|k| key(&pk, &index_sk(k))).collect()).await?;
        let mut stale = Vec::new();
        for entry in &entries {
            let (Some(sk), Some(link_id)) = (str_attr(entry, "sk"), str_attr(entry, "link_id")) else { continue };
            if self.get_item(&pk, &link_sk(link_id)).await?.is_none() {
                stale.push(delete_request(&pk, sk)?);
            }
        }
        erased.index_entries += stale.len() as u64;
        self.batch_write(stale).await?;
        for key in &person.error_keys {
            if self.clear_error(conn, key).await? {
                erased.errors += 1;
            }
        }
        for email in &person.emails {
            erased.pending_events += self.delete_all(&pk, &pending_prefix(email)).await?;
        }
        Ok(erased)
    }

    async fn inventory(&self, conn: &str) -> Result<Vec<StoredItem>> {
        let pk = conn_pk(conn);
        let mut items = self.query(&pk, SkRange::All, true, usize::MAX, false, |_| true).await?;
        let mut outside = vec![key(CONNECTIONS_PK, &connection_sk(conn))];
        for item in &items {
            if let Some(portal) = str_attr(item, "sk").and_then(|sk| sk.strip_prefix("ROUTE#")) {
                outside.push(key(&format!("PORTAL#{portal}"), &connection_sk(conn)));
            }
        }
        items.extend(self.batch_get(outside).await?);
        items
            .into_iter()
            .map(|item| {
                let at = |name: &str| str_attr(&item, name).unwrap_or_default().to_string();
                let key = if at("pk") == pk { at("sk") } else { format!("{}/{}", at("pk"), at("sk")) };
                let value: serde_json::Value = serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::corrupt("stored item", format!("{key}: {e}")))?;
                Ok(StoredItem { key, text: value.to_string() })
            })
            .collect()
    }
}
