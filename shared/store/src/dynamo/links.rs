//! Links and their index entries: one transaction per write, so a lookup by either id or by
//! email is as consistent as a lookup by link id.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use hmsync_core::Link;

use super::{
    CancelReason, DynamoStore, STATS_SK, SkRange, TransactOutcome, build_err, conn_pk, from_item, index_sk, key,
    link_sk, n, num_attr, s, str_attr, to_item,
};
use crate::error::{Result, StoreError};
use crate::model::{LinkKey, Page, check_id};
use crate::ports::LinkStore;

/// Reads of an index entry and then its link are two calls; a link rewritten in between is
/// read again this many times.
const LOOKUP_ATTEMPTS: usize = 3;

impl DynamoStore {
    /// The link an index entry points to, if the link still claims the key.
    async fn lookup_once(&self, conn: &str, key: &LinkKey) -> Result<Lookup> {
        let pk = conn_pk(conn);
        let Some(entry) = self.get_item(&pk, &index_sk(key)).await? else {
            return Ok(Lookup::Missing);
        };
        let link_id = str_attr(&entry, "link_id")
            .ok_or_else(|| StoreError::corrupt("link index entry", format!("{key} has no link_id")))?;
        match self.get_link(conn, link_id).await? {
            Some(link) if key.matches(&link) => Ok(Lookup::Found(Box::new(link))),
            _ => Ok(Lookup::Stale),
        }
    }

    pub(super) fn index_put(&self, pk: &str, key: &LinkKey, link_id: &str) -> Result<TransactWriteItem> {
        let mut item = super::key(pk, &index_sk(key));
        item.insert("link_id".to_string(), s(link_id));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR link_id = :id")
            .expression_attribute_values(":id", s(link_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn index_delete(&self, pk: &str, key: &LinkKey, link_id: &str) -> Result<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(super::key(pk, &index_sk(key))))
            .condition_expression("attribute_not_exists(pk) OR link_id = :id")
            .expression_attribute_values(":id", s(link_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(super) fn stats_add(&self, pk: &str, attribute: &str, delta: i64) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, STATS_SK)))
            .update_expression("ADD #a :d")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The stored version of a link, after a failed version condition.
    async fn current_link_version(&self, conn: &str, link_id: &str) -> Result<Option<u64>> {
        Ok(self.get_link(conn, link_id).await?.map(|l| l.version))
    }

    /// Which link holds an index entry, from a cancelled transaction (or a fresh read).
    async fn index_owner(&self, pk: &str, key: &LinkKey, reason: &CancelReason) -> Result<String> {
        if let Some(id) = reason.item.as_ref().and_then(|i| str_attr(i, "link_id")) {
            return Ok(id.to_string());
        }
        let entry = self.get_item(pk, &index_sk(key)).await?;
        Ok(entry.as_ref().and_then(|i| str_attr(i, "link_id")).unwrap_or("(unknown)").to_string())
    }
}

enum Lookup {
    Found(Box<Link>),
    Missing,
    /// The entry pointed to a link that no longer claims the key: it was rewritten between the
    /// two reads.
    Stale,
}

#[async_trait]
impl LinkStore for DynamoStore {
    async fn get_link(&self, conn: &str, link_id: &str) -> Result<Option<Link>> {
        match self.get_item(&conn_pk(conn), &link_sk(link_id)).await? {
            Some(item) => Ok(Some(from_item("link", item)?)),
            None => Ok(None),
        }
    }

    async fn find_link(&self, conn: &str, key: &LinkKey) -> Result<Option<Link>> {
        for _ in 0..LOOKUP_ATTEMPTS {
            match self.lookup_once(conn, key).await? {
                Lookup::Found(link) => return Ok(Some(*link)),
                Lookup::Missing => return Ok(None),
                Lookup::Stale => continue,
            }
        }
        Ok(None)
    }

    async fn find_links(&self, conn: &str, keys: &[LinkKey]) -> Result<Vec<(LinkKey, Link)>> {
        let pk = conn_pk(conn);
        let mut unique: Vec<&LinkKey> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        let entries = self.batch_get(unique.iter().map(|k| key(&pk, &index_sk(k))).collect()).await?;
        let by_sk: HashMap<String, String> = entries
            .iter()
            .filter_map(|e| Some((str_attr(e, "sk")?.to_string(), str_attr(e, "link_id")?.to_string())))
            .collect();
        let link_ids: Vec<&String> = by_sk.values().collect();
        let links = self.batch_get(link_ids.iter().map(|id| key(&pk, &link_sk(id))).collect()).await?;
        let mut links_by_id: HashMap<String, Link> = HashMap::with_capacity(links.len());
        for item in links {
            let link: Link = from_item("link", item)?;
            links_by_id.insert(link.id.clone(), link);
        }
        let mut found = Vec::new();
        for k in unique {
            let Some(link_id) = by_sk.get(&index_sk(k)) else { continue };
            match links_by_id.get(link_id) {
                Some(link) if k.matches(link) => found.push((k.clone(), link.clone())),
                // Rewritten between the two batch reads: look this one up on its own.
                _ => {
                    if let Some(link) = self.find_link(conn, k).await? {
                        found.push((k.clone(), link));
                    }
                }
            }
        }
        Ok(found)
    }

    async fn put_link(&self, conn: &str, link: &Link, previous: Option<&Link>) -> Result<Link> {
        check_id("link id", &link.id)?;
        if let Some(prev) = previous
            && prev.id != link.id
        {
            return Err(StoreError::invalid(format!(
                "link {} was passed with the previous version of another link ({})",
                link.id, prev.id
            )));
        }
        let pk = conn_pk(conn);
        let mut stored = link.clone();
        stored.version = previous.map_or(1, |p| p.version + 1);

        let item = to_item(&stored, &pk, &link_sk(&link.id))?;
        let new_keys = LinkKey::of(link);
        let old_keys = previous.map(LinkKey::of).unwrap_or_default();
        let added: Vec<&LinkKey> = new_keys.iter().filter(|k| !old_keys.contains(k)).collect();
        let removed: Vec<&LinkKey> = old_keys.iter().filter(|k| !new_keys.contains(k)).collect();

        if let Some(prev) = previous
            && added.is_empty()
            && removed.is_empty()
        {
            // Same keys as the version read, whose index entries were written with it: the
            // common update (new bases, scope flags) is one conditional put, not a transaction.
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(prev.version))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(stored),
                Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                    Err(StoreError::VersionConflict {
                        entity: format!("link {}", link.id),
                        current: self.current_link_version(conn, &link.id).await?,
                    })
                }
                Err(err) => Err(self.err("PutItem", err)),
            };
        }

        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(prev) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(prev.version)),
        };
        let mut items = vec![TransactWriteItem::builder().put(put.build().map_err(build_err)?).build()];
        // Item i + 1 of the transaction guards ops[i].
        let mut ops: Vec<LinkKey> = Vec::new();
        for k in added {
            items.push(self.index_put(&pk, k, &link.id)?);
            ops.push(k.clone());
        }
        for k in removed {
            items.push(self.index_delete(&pk, k, &link.id)?);
            ops.push(k.clone());
        }
        if previous.is_none() {
            items.push(self.stats_add(&pk, "links", 1)?);
        }

        let reasons = match self.transact(items).await? {
            TransactOutcome::Committed => return Ok(stored),
            TransactOutcome::Cancelled(reasons) => reasons,
        };
        if reasons.first().is_some_and(CancelReason::failed_condition) {
            return Err(StoreError::VersionConflict {
                entity: format!("link {}", link.id),
                current: self.current_link_version(conn, &link.id).await?,
            });
        }
        for (k, reason) in ops.iter().zip(reasons.iter().skip(1)) {
            if reason.failed_condition() {
                return Err(StoreError::IndexConflict {
                    key: k.clone(),
                    existing_link_id: self.index_owner(&pk, k, reason).await?,
                });
            }
        }
        let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        Err(StoreError::backend(format!("writing link {} was cancelled: {}", link.id, codes.join(", "))))
    }

    async fn delete_link(&self, conn: &str, link_id: &str) -> Result<bool> {
        let pk = conn_pk(conn);
        for _ in 0..LOOKUP_ATTEMPTS {
            let Some(link) = self.get_link(conn, link_id).await? else {
                return Ok(false);
            };
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(&pk, &link_sk(link_id))))
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(link.version))
                .build()
                .map_err(build_err)?;
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            for k in LinkKey::of(&link) {
                items.push(self.index_delete(&pk, &k, link_id)?);
            }
            items.push(self.stats_add(&pk, "links", -1)?);
            match self.transact(items).await? {
                TransactOutcome::Committed => return Ok(true),
                // Rewritten meanwhile: read it again.
                TransactOutcome::Cancelled(reasons) if reasons.first().is_some_and(CancelReason::failed_condition) => {
                    continue;
                }
                TransactOutcome::Cancelled(reasons) => {
                    let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
                    return Err(StoreError::backend(format!(
                        "deleting link {link_id} was cancelled: {}",
                        codes.join(", ")
                    )));
                }
            }
        }
        Err(StoreError::VersionConflict {
            entity: format!("link {link_id}"),
            current: self.current_link_version(conn, link_id).await?,
        })
    }

    async fn list_links(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<Link>> {
        let limit = limit.max(1);
        let from = link_sk(after.unwrap_or_default());
        let result = self
            .query(&conn_pk(conn), SkRange::Between(&from, "LINK$"), true, limit.saturating_add(1), false, |item| {
                str_attr(item, "sk") != Some(from.as_str())
            })
            .await?;
        let mut items = result.into_iter().map(|item| from_item::<Link>("link", item)).collect::<Result<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|l| l.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn count_links(&self, conn: &str) -> Result<u64> {
        let stats = self.get_item(&conn_pk(conn), STATS_SK).await?;
        Ok(stats.as_ref().and_then(|i| num_attr::<i64>(i, "links")).unwrap_or(0).max(0) as u64)
    }
}
