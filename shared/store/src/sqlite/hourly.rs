//! Hourly counters in SQLite: one row per connection, hour and counter, each with its expiry.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

use super::store::SqliteStore;
use crate::clock::{expires_at, now_secs};
use crate::error::Result;
use crate::model::{HourCounters, check_hour};
use crate::ports::HourlyStore;

#[async_trait]
impl HourlyStore for SqliteStore {
    async fn add_hourly(&self, conn: &str, hour_ms: u64, deltas: &[(&str, i64)], ttl: Duration) -> Result<()> {
        check_hour(hour_ms)?;
        if deltas.is_empty() {
            return Ok(());
        }
        let conn = conn.to_string();
        let deltas: Vec<(String, i64)> = deltas.iter().map(|(n, d)| (n.to_string(), *d)).collect();
        let expires = expires_at(ttl);
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute("DELETE FROM hourly WHERE expires_at <= ?1", params![now_secs()])?;
                for (name, delta) in deltas {
                    tx.execute(
                        "INSERT INTO hourly (conn, hour_ms, name, value, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (conn, hour_ms, name)
                         DO UPDATE SET value = value + excluded.value, expires_at = excluded.expires_at",
                        params![conn, hour_ms as i64, name, delta, expires],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn read_hourly(&self, conn: &str, from_ms: u64, to_ms: u64) -> Result<Vec<HourCounters>> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let mut stmt = db.prepare(
                    "SELECT hour_ms, name, value FROM hourly
                     WHERE conn = ?1 AND hour_ms >= ?2 AND hour_ms <= ?3 AND expires_at > ?4
                     ORDER BY hour_ms, name",
                )?;
                let rows = stmt.query_map(
                    params![conn, from_ms.min(i64::MAX as u64) as i64, to_ms.min(i64::MAX as u64) as i64, now_secs()],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
                )?;
                let mut hours: BTreeMap<u64, BTreeMap<String, i64>> = BTreeMap::new();
                for row in rows {
                    let (hour, name, value) = row?;
                    hours.entry(hour).or_default().insert(name, value);
                }
                Ok(hours.into_iter().map(|(hour_ms, counters)| HourCounters { hour_ms, counters }).collect())
            })
            .await
    }
}
