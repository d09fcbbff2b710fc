//! Shared test setup: the engine on the embedded store and local queue (what the functions
//! run against, minus AWS), fixtures, and connections in a chosen state.

#![allow(dead_code)] // each test binary uses part of it

pub mod tick;

use std::sync::Arc;

use hmsync_core::ConnectionConfig;
use hmsync_engine::adapters::{ApiSettings, CredentialApis};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::{ConnectionState, Engine, EngineSettings, SystemClock};
use hmsync_store::{ConnectionStore, MemorySecrets, ParkedStore, SqliteQueue, SqliteStore, StateStore};

pub struct Local {
    pub engine: Arc<Engine>,
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub secrets: Arc<MemorySecrets>,
    _dir: tempfile::TempDir,
}

/// API clients aim at a closed loopback port: none of these tests may call an API, and a bug
/// that did would fail here instead of reaching the internet.
pub fn unreachable_apis() -> ApiSettings {
    ApiSettings {
        hubspot_base_url: "http://127.0.0.1:9".into(),
        mailerlite_base_url: "http://127.0.0.1:9".into(),
        fast_retries: true,
        ..ApiSettings::default()
    }
}

pub fn local() -> Local {
    local_with(unreachable_apis())
}

/// [`local`] with the APIs somewhere else.
pub fn local_with(apis: ApiSettings) -> Local {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store"));
    let queue = Arc::new(SqliteQueue::open(dir.path().join("queue.db")).expect("queue"));
    let secrets = Arc::new(MemorySecrets::new());
    let engine = Arc::new(Engine {
        store: store.clone(),
        queue: queue.clone(),
        secrets: secrets.clone(),
        apis: Arc::new(CredentialApis::new(secrets.clone(), apis)),
        clock: Arc::new(SystemClock),
        settings: EngineSettings::default(),
        failpoints: Failpoints::default(),
    });
    Local { engine, store, queue, secrets, _dir: dir }
}

/// Creates a connection and stores its state.
pub async fn connection<S: ConnectionStore + StateStore + ?Sized>(store: &S, id: &str, state: &ConnectionState) {
    store.create_connection(id, &ConnectionConfig::new(id)).await.expect("create connection");
    store.put_state(id, &serde_json::to_value(state).expect("state"), None).await.expect("state");
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The connection's parked messages, oldest first, as JSON.
pub async fn parked<S: ParkedStore + ?Sized>(store: &S, conn: &str) -> Vec<serde_json::Value> {
    let page = store.list_parked(conn, None, 10_000).await.expect("parked messages");
    page.items.iter().map(|m| serde_json::from_str(&m.body).expect("JSON body")).collect()
}
