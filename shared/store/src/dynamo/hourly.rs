//! Hourly counters in DynamoDB: one item per connection and hour (`HOUR#<start ms, 15 digits>`)
//! with one number attribute `c#<name>` per counter, added to with `ADD` (one UpdateItem per
//! call, so concurrent callers never lose an increment), and the table's TTL attribute.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{DynamoStore, SkRange, TTL_ATTRIBUTE, conn_pk, is_live, key, n, num_attr, str_attr};
use crate::clock::{expires_at, now_secs};
use crate::error::Result;
use crate::model::{HourCounters, check_hour};
use crate::ports::HourlyStore;

fn hour_sk(hour_ms: u64) -> String {
    format!("HOUR#{hour_ms:015}")
}

#[async_trait]
impl HourlyStore for DynamoStore {
    async fn add_hourly(&self, conn: &str, hour_ms: u64, deltas: &[(&str, i64)], ttl: Duration) -> Result<()> {
        check_hour(hour_ms)?;
        // One document path may appear only once per update expression.
        let mut merged: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, delta) in deltas {
            *merged.entry(name).or_default() += delta;
        }
        if merged.is_empty() {
            return Ok(());
        }
        let mut request =
            self.client.update_item().table_name(&self.table).set_key(Some(key(&conn_pk(conn), &hour_sk(hour_ms))));
        let mut parts = Vec::with_capacity(merged.len());
        for (i, (name, delta)) in merged.into_iter().enumerate() {
            parts.push(format!("#c{i} :v{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), format!("c#{name}"))
                .expression_attribute_values(format!(":v{i}"), n(delta));
        }
        request
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ttl", n(expires_at(ttl)))
            .update_expression(format!("ADD {} SET #ttl = :ttl", parts.join(", ")))
            .send()
            .await
            .map_err(|e| self.err("UpdateItem", e))?;
        Ok(())
    }

    async fn read_hourly(&self, conn: &str, from_ms: u64, to_ms: u64) -> Result<Vec<HourCounters>> {
        if from_ms > to_ms {
            return Ok(Vec::new());
        }
        let now = now_secs();
        let (from, to) = (hour_sk(from_ms), hour_sk(to_ms));
        let items = self
            .query(&conn_pk(conn), SkRange::Between(&from, &to), true, usize::MAX, false, |i| is_live(i, now))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let hour_ms = str_attr(item, "sk")?.strip_prefix("HOUR#")?.parse().ok()?;
                let counters = item
                    .keys()
                    .filter_map(|name| Some((name.strip_prefix("c#")?.to_string(), num_attr(item, name)?)))
                    .collect();
                Some(HourCounters { hour_ms, counters })
            })
            .collect())
    }
}
