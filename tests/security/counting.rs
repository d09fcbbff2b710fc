//! A store that counts every call before passing it on: a test asks how many lookups a request
//! made, not how long it took.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{ConnectionConfig, Link};
use hmsync_store::{
    Connection, ConnectionStore, ContactError, ErrorStore, EventStore, HistoryEntry, HistoryStore, HourCounters,
    HourlyStore, LinkKey, LinkStore, MeterStore, Page, ParkedMessage, ParkedStore, Person, PrivacyStore, Result,
    RoutingStore, StateStore, Store, StoredItem, Tombstone, Versioned,
};
use serde_json::Value;

pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, calls: AtomicU64::new(0) }
    }

    /// Store calls so far, of any kind.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn count(&self) -> &dyn Store {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &*self.inner
    }
}

#[async_trait]
impl ConnectionStore for CountingStore {
    async fn create_connection(&self, id: &str, config: &ConnectionConfig) -> Result<Connection> {
        self.count().create_connection(id, config).await
    }
    async fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        self.count().get_connection(id).await
    }
    async fn list_connections(&self) -> Result<Vec<Connection>> {
        self.count().list_connections().await
    }
    async fn update_connection(&self, connection: &Connection) -> Result<Connection> {
        self.count().update_connection(connection).await
    }
    async fn delete_connection(&self, id: &str) -> Result<bool> {
        self.count().delete_connection(id).await
    }
}

#[async_trait]
impl LinkStore for CountingStore {
    async fn get_link(&self, conn: &str, link_id: &str) -> Result<Option<Link>> {
        self.count().get_link(conn, link_id).await
    }
    async fn find_link(&self, conn: &str, key: &LinkKey) -> Result<Option<Link>> {
        self.count().find_link(conn, key).await
    }
    async fn find_links(&self, conn: &str, keys: &[LinkKey]) -> Result<Vec<(LinkKey, Link)>> {
        self.count().find_links(conn, keys).await
    }
    async fn put_link(&self, conn: &str, link: &Link, previous: Option<&Link>) -> Result<Link> {
        self.count().put_link(conn, link, previous).await
    }
    async fn delete_link(&self, conn: &str, link_id: &str) -> Result<bool> {
        self.count().delete_link(conn, link_id).await
    }
    async fn list_links(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<Link>> {
        self.count().list_links(conn, after, limit).await
    }
    async fn count_links(&self, conn: &str) -> Result<u64> {
        self.count().count_links(conn).await
    }
}

#[async_trait]
impl StateStore for CountingStore {
    async fn get_state(&self, conn: &str) -> Result<Option<Versioned<Value>>> {
        self.count().get_state(conn).await
    }
    async fn put_state(&self, conn: &str, state: &Value, expected_version: Option<u64>) -> Result<u64> {
        self.count().put_state(conn, state, expected_version).await
    }
    async fn add_and_set_counters(&self, conn: &str, deltas: &[(&str, i64)], values: &[(&str, i64)]) -> Result<()> {
        self.count().add_and_set_counters(conn, deltas, values).await
    }
    async fn get_counters(&self, conn: &str) -> Result<BTreeMap<String, i64>> {
        self.count().get_counters(conn).await
    }
}

#[async_trait]
impl ErrorStore for CountingStore {
    async fn set_error(&self, conn: &str, error: &ContactError) -> Result<ContactError> {
        self.count().set_error(conn, error).await
    }
    async fn clear_error(&self, conn: &str, key: &str) -> Result<bool> {
        self.count().clear_error(conn, key).await
    }
    async fn get_error(&self, conn: &str, key: &str) -> Result<Option<ContactError>> {
        self.count().get_error(conn, key).await
    }
    async fn list_errors(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ContactError>> {
        self.count().list_errors(conn, after, limit).await
    }
    async fn count_errors(&self, conn: &str) -> Result<u64> {
        self.count().count_errors(conn).await
    }
}

#[async_trait]
impl HistoryStore for CountingStore {
    async fn append_history(&self, conn: &str, entries: &[HistoryEntry], ttl: Duration) -> Result<()> {
        self.count().append_history(conn, entries, ttl).await
    }
    async fn read_history(&self, conn: &str, link_id: &str, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.count().read_history(conn, link_id, limit).await
    }
}

#[async_trait]
impl HourlyStore for CountingStore {
    async fn add_hourly(&self, conn: &str, hour_ms: u64, deltas: &[(&str, i64)], ttl: Duration) -> Result<()> {
        self.count().add_hourly(conn, hour_ms, deltas, ttl).await
    }
    async fn read_hourly(&self, conn: &str, from_ms: u64, to_ms: u64) -> Result<Vec<HourCounters>> {
        self.count().read_hourly(conn, from_ms, to_ms).await
    }
}

#[async_trait]
impl MeterStore for CountingStore {
    async fn record_synced(&self, conn: &str, month: &str, link_ids: &[String]) -> Result<u64> {
        self.count().record_synced(conn, month, link_ids).await
    }
    async fn unique_contacts(&self, conn: &str, month: &str) -> Result<u64> {
        self.count().unique_contacts(conn, month).await
    }
}

#[async_trait]
impl RoutingStore for CountingStore {
    async fn add_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        self.count().add_route(portal_id, conn).await
    }
    async fn remove_route(&self, portal_id: u64, conn: &str) -> Result<()> {
        self.count().remove_route(portal_id, conn).await
    }
    async fn connections_for_portal(&self, portal_id: u64) -> Result<Vec<String>> {
        self.count().connections_for_portal(portal_id).await
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn mark_events_seen(&self, conn: &str, keys: &[String], ttl: Duration) -> Result<Vec<bool>> {
        self.count().mark_events_seen(conn, keys, ttl).await
    }
    async fn put_pending_events(&self, conn: &str, email: &str, events: &[Value], ttl: Duration) -> Result<()> {
        self.count().put_pending_events(conn, email, events, ttl).await
    }
    async fn take_pending_events(&self, conn: &str, email: &str) -> Result<Vec<Value>> {
        self.count().take_pending_events(conn, email).await
    }
}

#[async_trait]
impl ParkedStore for CountingStore {
    async fn park(&self, conn: &str, body: &str, cap: u64) -> Result<bool> {
        self.count().park(conn, body, cap).await
    }
    async fn list_parked(&self, conn: &str, after: Option<&str>, limit: usize) -> Result<Page<ParkedMessage>> {
        self.count().list_parked(conn, after, limit).await
    }
    async fn remove_parked(&self, conn: &str, ids: &[String]) -> Result<()> {
        self.count().remove_parked(conn, ids).await
    }
    async fn replace_parked(&self, conn: &str, id: &str, body: Option<&str>) -> Result<()> {
        self.count().replace_parked(conn, id, body).await
    }
    async fn count_parked(&self, conn: &str) -> Result<u64> {
        self.count().count_parked(conn).await
    }
}

#[async_trait]
impl PrivacyStore for CountingStore {
    async fn put_tombstone(&self, conn: &str, tombstone: &Tombstone) -> Result<Tombstone> {
        self.count().put_tombstone(conn, tombstone).await
    }
    async fn tombstoned(&self, conn: &str, digests: &[String]) -> Result<Vec<String>> {
        self.count().tombstoned(conn, digests).await
    }
    async fn get_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        self.count().get_tombstone(conn, digest).await
    }
    async fn lift_tombstone(&self, conn: &str, digest: &str) -> Result<Option<Tombstone>> {
        self.count().lift_tombstone(conn, digest).await
    }
    async fn has_tombstones(&self, conn: &str) -> Result<bool> {
        self.count().has_tombstones(conn).await
    }
    async fn purge_person(&self, conn: &str, person: &Person) -> Result<hmsync_store::Erased> {
        self.count().purge_person(conn, person).await
    }
    async fn inventory(&self, conn: &str) -> Result<Vec<StoredItem>> {
        self.count().inventory(conn).await
    }
}
