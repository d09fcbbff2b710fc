//! Parked messages: one row each, ordered by an autoincrement sequence (the message id is the
//! sequence, zero-padded so ids sort as they were parked).

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::model::{Page, ParkedMessage};
use crate::ports::ParkedStore;

fn id_of(seq: i64) -> String {
    format!("{seq:020}")
}

fn seq_of(id: &str) -> Result<i64> {
    id.parse().map_err(|_| StoreError::invalid(format!("{id:?} is not the id of a parked message")))
}

/// Ids this store never gave out name no parked message: nothing to remove or replace.
fn known_seq(id: &str) -> Option<i64> {
    id.parse().ok()
}

#[async_trait]
impl ParkedStore for SqliteStore {
    async fn park(&self, conn: &str, body: &str, cap: u64) -> Result<bool> {
        let (conn, body) = (conn.to_string(), body.to_string());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let parked: u64 =
                    tx.query_row("SELECT COUNT(*) FROM parked WHERE conn = ?1", params![conn], |r| r.get(0))?;
                if parked >= cap {
                    return Ok(false);
                }
                tx.execute("INSERT INTO parked (conn, body) VALUES (?1, ?2)", params![conn, body])?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn list_parked(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ParkedMessage>> {
        let limit = limit.max(1);
        let after = after.map(seq_of).transpose()?.unwrap_or(0);
        let conn = conn.to_string();
        let mut items = self
            .db
            .call(move |db| {
                let mut stmt =
                    db.prepare("SELECT seq, body FROM parked WHERE conn = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
                let rows = stmt.query_map(params![conn, after, limit as i64 + 1], |r| {
                    Ok(ParkedMessage { id: id_of(r.get(0)?), body: r.get(1)? })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|m| m.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn remove_parked(&self, conn: &str, ids: &[String]) -> Result<()> {
        let seqs: Vec<i64> = ids.iter().filter_map(|id| known_seq(id)).collect();
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for seq in seqs {
                    tx.execute("DELETE FROM parked WHERE conn = ?1 AND seq = ?2", params![conn, seq])?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn replace_parked(&self, conn: &str, id: &str, body: Option<&str>) -> Result<()> {
        let Some(seq) = known_seq(id) else { return Ok(()) };
        let (conn, body) = (conn.to_string(), body.map(str::to_string));
        self.db
            .call(move |db| {
                match body {
                    Some(body) => db.execute(
                        "UPDATE parked SET body = ?1 WHERE conn = ?2 AND seq = ?3",
                        params![body, conn, seq],
                    )?,
                    None => db.execute("DELETE FROM parked WHERE conn = ?1 AND seq = ?2", params![conn, seq])?,
                };
                Ok(())
            })
            .await
    }

    async fn count_parked(&self, conn: &str) -> Result<u64> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                Ok(db.query_row("SELECT COUNT(*) FROM parked WHERE conn = ?1", params![conn], |r| r.get(0))?)
            })
            .await
    }
}
