//! Every storage port in one SQLite file, with the conflict semantics of the DynamoDB adapter
//! (each multi-row write is one immediate transaction).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{ConnectionConfig, Link};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::{Db, from_json, to_json};
use crate::clock::{expires_at, now_ms, now_secs};
use crate::error::{Result, StoreError};
use crate::model::{Connection, ContactError, HistoryEntry, LinkKey, Page, Versioned, check_id, meter_expires_at};
use crate::ports::{
    ConnectionStore, ErrorStore, EventStore, HistoryStore, LinkStore, MeterStore, RoutingStore, StateStore,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS links (
    conn TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (conn, id)
) WITHOUT ROWID;
-- HS#<id>, ML#<id>, EMAIL#<email> -> link id, written in the link's transaction.
CREATE TABLE IF NOT EXISTS link_index (
    conn TEXT NOT NULL,
    key TEXT NOT NULL,
    link_id TEXT NOT NULL,
    PRIMARY KEY (conn, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    conn TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    conn TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (conn, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS errors (
    conn TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (conn, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conn TEXT NOT NULL,
    link_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_link ON history (conn, link_id, at_ms, seq);
CREATE INDEX IF NOT EXISTS history_by_expiry ON history (expires_at);
CREATE TABLE IF NOT EXISTS hourly (
    conn TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (conn, hour_ms, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hourly_by_expiry ON hourly (expires_at);
CREATE TABLE IF NOT EXISTS meter (
    conn TEXT NOT NULL,
    month TEXT NOT NULL,
    link_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conn, month, link_id)
) WITHOUT ROWID;
-- The month's count of unique contacts: it stays when a person's mark is purged.
CREATE TABLE IF NOT EXISTS meter_counts (
    conn TEXT NOT NULL,
    month TEXT NOT NULL,
    count INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (conn, month)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routes (
    portal INTEGER NOT NULL,
    conn TEXT NOT NULL,
    PRIMARY KEY (portal, conn)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS routes_by_conn ON routes (conn);
CREATE TABLE IF NOT EXISTS events_seen (
    conn TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (conn, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_seen_by_expiry ON events_seen (expires_at);
CREATE TABLE IF NOT EXISTS pending_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conn TEXT NOT NULL,
    email TEXT NOT NULL,
    event TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_email ON pending_events (conn, email, seq);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending_events (expires_at);
-- Messages parked while the connection is paused or waiting, oldest first (seq).
CREATE TABLE IF NOT EXISTS parked (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conn TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_by_conn ON parked (conn, seq);
-- One row per digest of an erased person; `doc` is the whole tombstone.
CREATE TABLE IF NOT EXISTS tombstones (
    conn TEXT NOT NULL,
    digest TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (conn, digest)
) WITHOUT ROWID;
";

/// Tables holding rows of a connection (`conn` column), cleared by `delete_connection`.
pub(super) const CONNECTION_TABLES: &[&str] = &[
    "links",
    "link_index",
    "state",
    "counters",
    "errors",
    "history",
    "hourly",
    "meter",
    "meter_counts",
    "routes",
    "events_seen",
    "pending_events",
    "parked",
    "tombstones",
];

/// The storage ports in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) db: Db,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.db.path()).finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its tables.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Db::open(path.as_ref(), SCHEMA)?;
        db.migrate_with(migrate_meter_expiry)?;
        Ok(Self { db })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

/// Meter marks of stores made before they expired get the expiry of their month, and each
/// month its count.
fn migrate_meter_expiry(db: &mut rusqlite::Connection) -> Result<()> {
    let has_expiry: bool =
        db.prepare("SELECT 1 FROM pragma_table_info('meter') WHERE name = 'expires_at'")?.exists([])?;
    if has_expiry {
        return Ok(());
    }
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("ALTER TABLE meter ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0", [])?;
    let months: Vec<String> = {
        let mut stmt = tx.prepare("SELECT DISTINCT month FROM meter")?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    for month in months {
        // A month that is no month (never written by this store) expires at once.
        let at = meter_expires_at(&month).unwrap_or(0);
        tx.execute("UPDATE meter SET expires_at = ?1 WHERE month = ?2", params![at, month])?;
    }
    tx.execute(
        "INSERT OR IGNORE INTO meter_counts (conn, month, count, expires_at)
         SELECT conn, month, COUNT(*), MAX(expires_at) FROM meter GROUP BY conn, month",
        [],
    )?;
    tx.commit()?;
    Ok(())
}

fn read_link(tx: &rusqlite::Connection, conn: &str, link_id: &str) -> Result<Option<Link>> {
    let doc: Option<String> = tx
        .query_row("SELECT doc FROM links WHERE conn = ?1 AND id = ?2", params![conn, link_id], |r| r.get(0))
        .optional()?;
    doc.map(|d| from_json("link", &d)).transpose()
}

fn index_owner(tx: &rusqlite::Connection, conn: &str, key: &LinkKey) -> Result<Option<String>> {
    Ok(tx
        .query_row("SELECT link_id FROM link_index WHERE conn = ?1 AND key = ?2", params![conn, key.index_key()], |r| {
            r.get(0)
        })
        .optional()?)
}

fn find_link_in(tx: &rusqlite::Connection, conn: &str, key: &LinkKey) -> Result<Option<Link>> {
    let Some(link_id) = index_owner(tx, conn, key)? else { return Ok(None) };
    Ok(read_link(tx, conn, &link_id)?.filter(|l| key.matches(l)))
}

fn read_error(tx: &rusqlite::Connection, conn: &str, key: &str) -> Result<Option<ContactError>> {
    let doc: Option<String> = tx
        .query_row("SELECT doc FROM errors WHERE conn = ?1 AND key = ?2", params![conn, key], |r| r.get(0))
        .optional()?;
    doc.map(|d| from_json("contact error", &d)).transpose()
}

fn read_connection(tx: &rusqlite::Connection, id: &str) -> Result<Option<Connection>> {
    let doc: Option<String> =
        tx.query_row("SELECT doc FROM connections WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
    doc.map(|d| from_json("connection", &d)).transpose()
}

fn page<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConnectionStore for SqliteStore {
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
        let doc = to_json("connection", &connection)?;
        let id = id.to_string();
        self.db
            .call(move |db| {
                let inserted = db.execute(
                    "INSERT INTO connections (id, doc, version) VALUES (?1, ?2, 1) ON CONFLICT (id) DO NOTHING",
                    params![id, doc],
                )?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists { entity: format!("connection {id}") });
                }
                Ok(connection)
            })
            .await
    }

    async fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        let id = id.to_string();
        self.db.call(move |db| read_connection(db, &id)).await
    }

    async fn list_connections(&self) -> Result<Vec<Connection>> {
        self.db
            .call(|db| {
                let mut stmt = db.prepare("SELECT doc FROM connections ORDER BY id")?;
                let docs = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
                docs.iter().map(|d| from_json("connection", d)).collect()
            })
            .await
    }

    async fn update_connection(&self, connection: &Connection) -> Result<Connection> {
        let mut stored = connection.clone();
        stored.version = connection.version + 1;
        stored.updated_at_ms = now_ms();
        let doc = to_json("connection", &stored)?;
        let expected = connection.version;
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let updated = tx.execute(
                    "UPDATE connections SET doc = ?1, version = ?2 WHERE id = ?3 AND version = ?4",
                    params![doc, stored.version, stored.id, expected],
                )?;
                if updated == 0 {
                    let current: Option<u64> = tx
                        .query_row("SELECT version FROM connections WHERE id = ?1", params![stored.id], |r| r.get(0))
                        .optional()?;
                    return Err(StoreError::VersionConflict { entity: format!("connection {}", stored.id), current });
                }
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn delete_connection(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for table in CONNECTION_TABLES {
                    tx.execute(&format!("DELETE FROM {table} WHERE conn = ?1"), params![id])?;
                }
                let existed = tx.execute("DELETE FROM connections WHERE id = ?1", params![id])? > 0;
                tx.commit()?;
                Ok(existed)
            })
            .await
    }
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn get_link(&self, conn: &str, link_id: &str) -> Result<Option<Link>> {
        let (conn, link_id) = (conn.to_string(), link_id.to_string());
        self.db.call(move |db| read_link(db, &conn, &link_id)).await
    }

    async fn find_link(&self, conn: &str, key: &LinkKey) -> Result<Option<Link>> {
        let (conn, key) = (conn.to_string(), key.clone());
        self.db.call(move |db| find_link_in(db, &conn, &key)).await
    }

    async fn find_links(&self, conn: &str, keys: &[LinkKey]) -> Result<Vec<(LinkKey, Link)>> {
        let (conn, keys) = (conn.to_string(), keys.to_vec());
        self.db
            .call(move |db| {
                let tx = db.transaction()?;
                let mut seen = HashSet::new();
                let mut found = Vec::new();
                for key in keys {
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    if let Some(link) = find_link_in(&tx, &conn, &key)? {
                        found.push((key, link));
                    }
                }
                Ok(found)
            })
            .await
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
        let mut stored = link.clone();
        stored.version = previous.map_or(1, |p| p.version + 1);
        let doc = to_json("link", &stored)?;
        let new_keys = LinkKey::of(link);
        let old_keys: Vec<LinkKey> =
            previous.map(LinkKey::of).unwrap_or_default().into_iter().filter(|k| !new_keys.contains(k)).collect();
        let expected = previous.map(|p| p.version);
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let current: Option<u64> = tx
                    .query_row("SELECT version FROM links WHERE conn = ?1 AND id = ?2", params![conn, stored.id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if current != expected {
                    return Err(StoreError::VersionConflict { entity: format!("link {}", stored.id), current });
                }
                for key in new_keys.iter().chain(&old_keys) {
                    if let Some(owner) = index_owner(&tx, &conn, key)?
                        && owner != stored.id
                    {
                        return Err(StoreError::IndexConflict { key: key.clone(), existing_link_id: owner });
                    }
                }
                for key in &old_keys {
                    tx.execute("DELETE FROM link_index WHERE conn = ?1 AND key = ?2", params![conn, key.index_key()])?;
                }
                for key in &new_keys {
                    tx.execute(
                        "INSERT OR REPLACE INTO link_index (conn, key, link_id) VALUES (?1, ?2, ?3)",
                        params![conn, key.index_key(), stored.id],
                    )?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO links (conn, id, doc, version) VALUES (?1, ?2, ?3, ?4)",
                    params![conn, stored.id, doc, stored.version],
                )?;
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn delete_link(&self, conn: &str, link_id: &str) -> Result<bool> {
        let (conn, link_id) = (conn.to_string(), link_id.to_string());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute("DELETE FROM link_index WHERE conn = ?1 AND link_id = ?2", params![conn, link_id])?;
                let existed = tx.execute("DELETE FROM links WHERE conn = ?1 AND id = ?2", params![conn, link_id])? > 0;
                tx.commit()?;
                Ok(existed)
            })
            .await
    }

    async fn list_links(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<Link>> {
        let limit = limit.max(1);
        let (conn, after) = (conn.to_string(), after.unwrap_or_default().to_string());
        let links = self
            .db
            .call(move |db| {
                let mut stmt = db.prepare("SELECT doc FROM links WHERE conn = ?1 AND id > ?2 ORDER BY id LIMIT ?3")?;
                let docs = stmt
                    .query_map(params![conn, after, sql_limit(limit)], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                docs.iter().map(|d| from_json::<Link>("link", d)).collect::<Result<Vec<_>>>()
            })
            .await?;
        Ok(page(links, limit, |l| l.id.clone()))
    }

    async fn count_links(&self, conn: &str) -> Result<u64> {
        let conn = conn.to_string();
        self.db
            .call(
                move |db| Ok(db.query_row("SELECT COUNT(*) FROM links WHERE conn = ?1", params![conn], |r| r.get(0))?),
            )
            .await
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn get_state(&self, conn: &str) -> Result<Option<Versioned<Value>>> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let row: Option<(String, u64)> = db
                    .query_row("SELECT doc, version FROM state WHERE conn = ?1", params![conn], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                row.map(|(doc, version)| Ok(Versioned { value: from_json("state", &doc)?, version })).transpose()
            })
            .await
    }

    async fn put_state(&self, conn: &str, state: &Value, expected_version: Option<u64>) -> Result<u64> {
        let doc = to_json("state", state)?;
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let current: Option<u64> = tx
                    .query_row("SELECT version FROM state WHERE conn = ?1", params![conn], |r| r.get(0))
                    .optional()?;
                if current != expected_version {
                    return Err(StoreError::VersionConflict { entity: format!("state of connection {conn}"), current });
                }
                let version = expected_version.map_or(1, |v| v + 1);
                tx.execute(
                    "INSERT OR REPLACE INTO state (conn, doc, version) VALUES (?1, ?2, ?3)",
                    params![conn, doc, version],
                )?;
                tx.commit()?;
                Ok(version)
            })
            .await
    }

    async fn add_and_set_counters(&self, conn: &str, deltas: &[(&str, i64)], values: &[(&str, i64)]) -> Result<()> {
        let conn = conn.to_string();
        let deltas: Vec<(String, i64)> = deltas.iter().map(|(n, d)| (n.to_string(), *d)).collect();
        let values: Vec<(String, i64)> = values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for (name, delta) in deltas {
                    tx.execute(
                        "INSERT INTO counters (conn, name, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (conn, name) DO UPDATE SET value = value + excluded.value",
                        params![conn, name, delta],
                    )?;
                }
                for (name, value) in values {
                    tx.execute(
                        "INSERT INTO counters (conn, name, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (conn, name) DO UPDATE SET value = excluded.value",
                        params![conn, name, value],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn get_counters(&self, conn: &str) -> Result<BTreeMap<String, i64>> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let mut stmt = db.prepare("SELECT name, value FROM counters WHERE conn = ?1")?;
                let rows = stmt.query_map(params![conn], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<BTreeMap<String, i64>>>()?)
            })
            .await
    }
}

#[async_trait]
impl ErrorStore for SqliteStore {
    async fn set_error(&self, conn: &str, error: &ContactError) -> Result<ContactError> {
        let (conn, mut error) = (conn.to_string(), error.clone());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                match read_error(&tx, &conn, &error.key)? {
                    Some(existing) => {
                        error.first_seen_ms = existing.first_seen_ms;
                        error.attempts = existing.attempts.saturating_add(1);
                    }
                    None => {
                        error.first_seen_ms = now;
                        error.attempts = 1;
                    }
                }
                error.last_seen_ms = now;
                tx.execute(
                    "INSERT OR REPLACE INTO errors (conn, key, doc) VALUES (?1, ?2, ?3)",
                    params![conn, error.key, to_json("contact error", &error)?],
                )?;
                tx.commit()?;
                Ok(error)
            })
            .await
    }

    async fn clear_error(&self, conn: &str, key: &str) -> Result<bool> {
        let (conn, key) = (conn.to_string(), key.to_string());
        self.db
            .call(move |db| Ok(db.execute("DELETE FROM errors WHERE conn = ?1 AND key = ?2", params![conn, key])? > 0))
            .await
    }

    async fn get_error(&self, conn: &str, key: &str) -> Result<Option<ContactError>> {
        let (conn, key) = (conn.to_string(), key.to_string());
        self.db.call(move |db| read_error(db, &conn, &key)).await
    }

    async fn list_errors(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ContactError>> {
        let limit = limit.max(1);
        let (conn, after) = (conn.to_string(), after.unwrap_or_default().to_string());
        let errors = self
            .db
            .call(move |db| {
                let mut stmt =
                    db.prepare("SELECT doc FROM errors WHERE conn = ?1 AND key > ?2 ORDER BY key LIMIT ?3")?;
                let docs = stmt
                    .query_map(params![conn, after, sql_limit(limit)], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                docs.iter().map(|d| from_json::<ContactError>("contact error", d)).collect::<Result<Vec<_>>>()
            })
            .await?;
        Ok(page(errors, limit, |e| e.key.clone()))
    }

    async fn count_errors(&self, conn: &str) -> Result<u64> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                Ok(db.query_row("SELECT COUNT(*) FROM errors WHERE conn = ?1", params![conn], |r| r.get(0))?)
            })
            .await
    }
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn append_history(&self, conn: &str, entries: &[HistoryEntry], ttl: Duration) -> Result<()> {
        let conn = conn.to_string();
        let expires = expires_at(ttl);
        let rows = entries
            .iter()
            .map(|e| {
                check_id("history link id", &e.link_id)?;
                Ok((e.link_id.clone(), e.at_ms, to_json("history entry", e)?))
            })
            .collect::<Result<Vec<_>>>()?;
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // SQLite has no TTL: expired entries go when new ones come.
                tx.execute("DELETE FROM history WHERE expires_at <= ?1", params![now_secs()])?;
                for (link_id, at_ms, doc) in rows {
                    tx.execute(
                        "INSERT INTO history (conn, link_id, at_ms, doc, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![conn, link_id, at_ms, doc, expires],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn read_history(&self, conn: &str, link_id: &str, limit: usize) -> Result<Vec<HistoryEntry>> {
        let (conn, link_id) = (conn.to_string(), link_id.to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |db| {
                let mut stmt = db.prepare(
                    "SELECT doc FROM history WHERE conn = ?1 AND link_id = ?2 AND expires_at > ?3
                     ORDER BY at_ms DESC, seq DESC LIMIT ?4",
                )?;
                let docs = stmt
                    .query_map(params![conn, link_id, now_secs(), limit], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                docs.iter().map(|d| from_json("history entry", d)).collect()
            })
            .await
    }
}

#[async_trait]
impl MeterStore for SqliteStore {
    async fn record_synced(&self, conn: &str, month: &str, link_ids: &[String]) -> Result<u64> {
        check_id("month", month)?;
        for id in link_ids {
            check_id("link id", id)?;
        }
        let expires = meter_expires_at(month)?;
        let (conn, month, link_ids) = (conn.to_string(), month.to_string(), link_ids.to_vec());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // SQLite has no TTL: the marks and counts of months long gone go when new ones come.
                tx.execute("DELETE FROM meter WHERE expires_at <= ?1", params![now_secs()])?;
                tx.execute("DELETE FROM meter_counts WHERE expires_at <= ?1", params![now_secs()])?;
                let mut added = 0u64;
                for id in link_ids {
                    added += tx.execute(
                        "INSERT OR IGNORE INTO meter (conn, month, link_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![conn, month, id, expires],
                    )? as u64;
                }
                tx.execute(
                    "INSERT INTO meter_counts (conn, month, count, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (conn, month) DO UPDATE SET count = count + excluded.count",
                    params![conn, month, added, expires],
                )?;
                tx.commit()?;
                Ok(added)
            })
            .await
    }

    async fn unique_contacts(&self, conn: &str, month: &str) -> Result<u64> {
        let (conn, month) = (conn.to_string(), month.to_string());
        self.db
            .call(move |db| {
                Ok(db
                    .query_row(
                        "SELECT count FROM meter_counts WHERE conn = ?1 AND month = ?2 AND expires_at > ?3",
                        params![conn, month, now_secs()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0))
            })
            .await
    }
}

#[async_trait]
impl RoutingStore for SqliteStore {
    async fn add_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if read_connection(&tx, &conn)?.is_none() {
                    return Err(StoreError::NotFound { entity: format!("connection {conn}") });
                }
                tx.execute("INSERT OR IGNORE INTO routes (portal, conn) VALUES (?1, ?2)", params![portal_id, conn])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn remove_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        let conn = conn.to_string();
        self.db
            .call(move |db| {
                db.execute("DELETE FROM routes WHERE portal = ?1 AND conn = ?2", params![portal_id, conn])?;
                Ok(())
            })
            .await
    }

    async fn connections_for_portal(&self, portal_id: u64) -> Result<Vec<String>> {
        self.db
            .call(move |db| {
                let mut stmt = db.prepare("SELECT conn FROM routes WHERE portal = ?1 ORDER BY conn")?;
                let rows = stmt.query_map(params![portal_id], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn mark_events_seen(&self, conn: &str, keys: &[String], ttl: Duration) -> Result<Vec<bool>> {
        let (conn, keys) = (conn.to_string(), keys.to_vec());
        let expires = expires_at(ttl);
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_secs();
                tx.execute("DELETE FROM events_seen WHERE expires_at <= ?1", params![now])?;
                let mut first = Vec::with_capacity(keys.len());
                for key in keys {
                    // Expired markers were just removed, so an existing row means "seen".
                    let inserted = tx.execute(
                        "INSERT OR IGNORE INTO events_seen (conn, key, expires_at) VALUES (?1, ?2, ?3)",
                        params![conn, key, expires],
                    )?;
                    first.push(inserted > 0);
                }
                tx.commit()?;
                Ok(first)
            })
            .await
    }

    async fn put_pending_events(&self, conn: &str, email: &str, events: &[Value], ttl: Duration) -> Result<()> {
        let (conn, email) = (conn.to_string(), email.to_string());
        let events = events.iter().map(|e| to_json("pending event", e)).collect::<Result<Vec<_>>>()?;
        let expires = expires_at(ttl);
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute("DELETE FROM pending_events WHERE expires_at <= ?1", params![now_secs()])?;
                for event in events {
                    tx.execute(
                        "INSERT INTO pending_events (conn, email, event, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![conn, email, event, expires],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn take_pending_events(&self, conn: &str, email: &str) -> Result<Vec<Value>> {
        let (conn, email) = (conn.to_string(), email.to_string());
        self.db
            .call(move |db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let docs = {
                    let mut stmt = tx.prepare(
                        "SELECT event FROM pending_events WHERE conn = ?1 AND email = ?2 AND expires_at > ?3 ORDER BY seq",
                    )?;
                    stmt.query_map(params![conn, email, now_secs()], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                };
                tx.execute("DELETE FROM pending_events WHERE conn = ?1 AND email = ?2", params![conn, email])?;
                tx.commit()?;
                docs.iter().map(|d| from_json("pending event", d)).collect()
            })
            .await
    }
}
