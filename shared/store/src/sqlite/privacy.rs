//! Erasing a person: tombstones, the purge of everything stored under their keys (one
//! transaction), and the inventory of a connection's rows.

use std::collections::BTreeSet;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::store::CONNECTION_TABLES;
use super::{SqliteStore, from_json, to_json};
use crate::error::Result;
use crate::model::{Erased, Person, StoredItem, Tombstone};
use crate::ports::PrivacyStore;

fn read_tombstone(tx: &rusqlite::Connection, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
    let doc: Option<String> = tx
        .query_row("SELECT doc FROM tombstones WHERE conn = ?1 AND digest = ?2", params![conn, digest], |r| r.get(0))
        .optional()?;
    doc.map(|d| from_json("tombstone", &d)).transpose()
}

fn text_of(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "null".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// Every row of `table` for the connection: its key is the table and its primary key (without
/// the connection), its text every column.
fn rows_of(db: &rusqlite::Connection, table: &str, conn_column: &str, conn: &str) -> Result<Vec<StoredItem>> {
    let columns: Vec<(String, i64)> = {
        let mut stmt = db.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        stmt.query_map(params![table], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    let mut stmt = db.prepare(&format!("SELECT * FROM {table} WHERE {conn_column} = ?1"))?;
    let rows = stmt.query_map(params![conn], |row| {
        let mut key = Vec::new();
        let mut text = Vec::new();
        for (i, (name, pk)) in columns.iter().enumerate() {
            let value = text_of(row.get_ref(i)?);
            if *pk > 0 && name != conn_column {
                key.push(value.clone());
            }
            text.push(format!("{name}={value}"));
        }
        Ok(StoredItem { key: format!("{table}:{}", key.join("#")), text: text.join(" ") })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn put_tombstone(&self, conn: &str, tombstone: &Tombstone) -> Result<Tombstone> {
        let (conn, tombstone) = (conn.to_string(), tombstone.clone());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut others = Vec::new();
                for d in &tombstone.digests {
                    others.extend(read_tombstone(&tx, &conn, d)?);
                }
                let merged = tombstone.merged(others);
                let doc = to_json("tombstone", &merged)?;
                for d in &merged.digests {
                    tx.execute(
                        "INSERT OR REPLACE INTO tombstones (conn, digest, doc) VALUES (?1, ?2, ?3)",
                        params![conn, d, doc],
                    )?;
                }
                tx.commit()?;
                Ok(merged)
            })
            .await
    }

    async fn tombstoned(&self, conn: &str, digests: &[String]) -> Result<Vec<String>> {
        let (conn, digests) = (conn.to_string(), digests.to_vec());
        self.db
            .call(move |db| {
                let mut stmt = db.prepare("SELECT 1 FROM tombstones WHERE conn = ?1 AND digest = ?2")?;
                let mut found = BTreeSet::new();
                for d in digests {
                    if stmt.exists(params![conn, d])? {
                        found.insert(d);
                    }
                }
                Ok(found.into_iter().collect())
            })
            .await
    }

    async fn get_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        let (conn, digest) = (conn.to_string(), digest.to_string());
        self.db.call(move |db| read_tombstone(db, &conn, &digest)).await
    }

    async fn lift_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        let (conn, digest) = (conn.to_string(), digest.to_string());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(tombstone) = read_tombstone(&tx, &conn, &digest)? else { return Ok(None) };
                for d in &tombstone.digests {
                    tx.execute("DELETE FROM tombstones WHERE conn = ?1 AND digest = ?2", params![conn, d])?;
                }
                tx.commit()?;
                Ok(Some(tombstone))
            })
            .await
    }

    async fn has_tombstones(&self, conn: &str) -> Result<bool> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                Ok(db.prepare("SELECT 1 FROM tombstones WHERE conn = ?1 LIMIT 1")?.exists(params![conn])?)
            })
            .await
    }

    async fn purge_person(&self, conn: &str, person: &Person) -> Result<Erased> {
        let (conn, person) = (conn.to_string(), person.clone());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut erased = Erased::default();
                for link in &person.link_ids {
                    erased.index_entries += tx
                        .execute("DELETE FROM link_index WHERE conn = ?1 AND link_id = ?2", params![conn, link])?
                        as u64;
                    erased.links +=
                        tx.execute("DELETE FROM links WHERE conn = ?1 AND id = ?2", params![conn, link])? as u64;
                    erased.history_entries +=
                        tx.execute("DELETE FROM history WHERE conn = ?1 AND link_id = ?2", params![conn, link])? as u64;
                    erased.meter_marks +=
                        tx.execute("DELETE FROM meter WHERE conn = ?1 AND link_id = ?2", params![conn, link])? as u64;
                }
                // Entries under the person's keys that point to none of the live links of
                // someone else: theirs, or left over.
                for key in &person.keys {
                    erased.index_entries += tx.execute(
                        "DELETE FROM link_index WHERE conn = ?1 AND key = ?2
                         AND link_id NOT IN (SELECT id FROM links WHERE conn = ?1)",
                        params![conn, key.index_key()],
                    )? as u64;
                }
                for key in &person.error_keys {
                    erased.errors +=
                        tx.execute("DELETE FROM errors WHERE conn = ?1 AND key = ?2", params![conn, key])? as u64;
                }
                for email in &person.emails {
                    erased.pending_events += tx
                        .execute("DELETE FROM pending_events WHERE conn = ?1 AND email = ?2", params![conn, email])?
                        as u64;
                }
                tx.commit()?;
                Ok(erased)
            })
            .await
    }

    async fn inventory(&self, conn: &str) -> Result<Vec<StoredItem>> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let mut items = rows_of(db, "connections", "id", &conn)?;
                for table in CONNECTION_TABLES {
                    items.extend(rows_of(db, table, "conn", &conn)?);
                }
                Ok(items)
            })
            .await
    }
}
