//! The security review's findings on what an attacker without the admin token or the apps'
//! secrets can make hmsync do, each as a test that failed before its fix: bounded
//! unauthenticated work, deduplication that never merges distinct edits, and tenancy.

mod counting;
mod dedup;
mod tenancy;

use std::sync::Arc;

use counting::CountingStore;
use hmsync_core::ConnectionConfig;
use hmsync_engine::Engine;
use hmsync_engine::adapters::{ApiSettings, Credentials, save_credentials};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::webhook::{HubSpotDelivery, MAX_HUBSPOT_EVENTS, MAX_HUBSPOT_PORTALS, WebhookError};
use hmsync_store::{ConnectionStore, MemorySecrets, RoutingStore, SqliteQueue, SqliteStore, Store, WorkQueue};
use serde_json::{Value, json};

/// The engine on a counting store, an embedded queue and in-memory secrets (no app is called).
struct Counted {
    store: Arc<CountingStore>,
    queue: Arc<dyn WorkQueue>,
    secrets: Arc<MemorySecrets>,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

fn counted() -> Counted {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store"));
    let store = Arc::new(CountingStore::new(inner));
    let queue: Arc<dyn WorkQueue> = Arc::new(SqliteQueue::open(dir.path().join("queue.db")).expect("queue"));
    let secrets = Arc::new(MemorySecrets::new());
    let settings = ApiSettings {
        hubspot_base_url: "http://127.0.0.1:9".into(),
        mailerlite_base_url: "http://127.0.0.1:9".into(),
        time_scale: 1.0,
        hubspot_burst_limit: 100,
        fast_retries: true,
    };
    let engine = hmsync_e2e::engine(store.clone(), queue.clone(), secrets.clone(), settings, Failpoints::default());
    Counted { store, queue, secrets, engine, _dir: dir }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn events(count: usize, portals: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..count)
        .map(|i| {
            json!({"eventId": i + 1, "portalId": 1000 + (i % portals.max(1)), "occurredAt": 1,
                   "subscriptionType": "contact.propertyChange", "objectId": i + 1,
                   "propertyName": "city", "propertyValue": "x"})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// An unsigned HubSpot delivery: a signature header that is not HubSpot's and a fresh timestamp
/// (what the review's attacker sent).
async fn unsigned_hubspot(engine: &Engine, body: &[u8]) -> Result<hmsync_engine::webhook::Accepted, WebhookError> {
    let now = now_ms().to_string();
    engine
        .hubspot_webhook(HubSpotDelivery {
            method: "POST",
            uri: "https://hmsync.example/webhooks/hubspot",
            body,
            signature_v3: Some("c2lnbmF0dXJl"),
            timestamp: Some(&now),
        })
        .await
}

#[tokio::test]
async fn an_unsigned_hubspot_delivery_of_too_many_events_or_portals_is_refused_before_any_lookup() {
    let t = counted();
    t.store.create_connection("c1", &ConnectionConfig::new("Routed")).await.unwrap();
    for portal in 1000..1000 + MAX_HUBSPOT_PORTALS as u64 {
        t.store.add_route(portal, "c1").await.unwrap();
    }
    // The review's request: thousands of events, each with its own invented portal.
    for (what, body, needle) in [
        ("4,000 events of 4,000 portals", events(4000, 4000), "4000 events"),
        ("101 events of one portal", events(MAX_HUBSPOT_EVENTS + 1, 1), "at most 100 per request"),
        ("100 events of 11 portals", events(MAX_HUBSPOT_EVENTS, MAX_HUBSPOT_PORTALS + 1), "11 HubSpot portals"),
    ] {
        let before = t.store.calls();
        let refused = unsigned_hubspot(&t.engine, &body).await.expect_err(what);
        assert!(matches!(refused, WebhookError::BadRequest(_)), "{what}: {refused:?}");
        assert!(refused.to_string().contains(needle), "{what}: {refused}");
        assert_eq!(t.store.calls(), before, "{what}: no store call before the refusal");
    }
    // Within the bounds the lookups are bounded too: one per portal, then 401.
    let before = t.store.calls();
    let refused = unsigned_hubspot(&t.engine, &events(MAX_HUBSPOT_EVENTS, MAX_HUBSPOT_PORTALS)).await.unwrap_err();
    assert!(matches!(refused, WebhookError::Unauthorized(_)), "{refused:?}");
    assert_eq!(t.store.calls() - before, MAX_HUBSPOT_PORTALS as u64, "one route lookup per portal");
    assert!(t.queue.receive(10, std::time::Duration::from_millis(50)).await.unwrap().is_empty());
}

fn ml_signature(secret: &str, body: &[u8]) -> String {
    hmsync_sandbox::mailerlite::sign_webhook(secret, body)
}

#[tokio::test]
async fn the_mailerlite_receiver_checks_the_signature_before_telling_whether_a_connection_exists() {
    let t = counted();
    t.store.create_connection("known", &ConnectionConfig::new("Known")).await.unwrap();
    t.store.create_connection("no-secret", &ConnectionConfig::new("No secret yet")).await.unwrap();
    let credentials = Credentials { mailerlite_webhook_secret: Some("ml-secret".into()), ..Credentials::default() };
    save_credentials(&*t.secrets, "known", &credentials).await.unwrap();
    let body = json!({"events": []}).to_string();
    let wrong = ml_signature("not-the-secret", body.as_bytes());
    let mut answers = Vec::new();
    for conn in ["known", "no-secret", "unknown", "../not-an-id"] {
        let before = t.store.calls();
        let refused = t.engine.mailerlite_webhook(conn, body.as_bytes(), Some(&wrong)).await.unwrap_err();
        assert!(matches!(refused, WebhookError::Unauthorized(_)), "{conn}: {refused:?}");
        assert_eq!(t.store.calls(), before, "{conn}: no store lookup for an unsigned delivery");
        answers.push(refused.to_string());
        let missing = t.engine.mailerlite_webhook(conn, body.as_bytes(), None).await.unwrap_err();
        answers.push(missing.to_string());
    }
    // An unknown id, a connection without a secret and a wrong signature read the same.
    let distinct: std::collections::BTreeSet<&String> = answers.iter().step_by(2).collect();
    assert_eq!(distinct.len(), 1, "{answers:?}");
    let distinct: std::collections::BTreeSet<&String> = answers.iter().skip(1).step_by(2).collect();
    assert_eq!(distinct.len(), 1, "{answers:?}");
    // The signed delivery of the known connection is accepted (a draft records the delivery).
    let signed = ml_signature("ml-secret", body.as_bytes());
    let accepted = t.engine.mailerlite_webhook("known", body.as_bytes(), Some(&signed)).await.unwrap();
    assert_eq!(accepted.connections, 1);
}
