//! The schedule tick and the end of API-limit waits, as contracts both deployments must keep:
//! run on the embedded store and local queue (`scheduled_scan.rs`) and on DynamoDB and SQS
//! (`aws.rs`).

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hmsync_engine::{ConnectionState, ContactRef, Engine, Lifecycle, Origin, ScanKind, SyncMessage};
use hmsync_runtime::scheduled_scan;
use hmsync_store::WorkQueue;

use hmsync_http::now_ms;

use super::{connection, fixture};

fn tick_event() -> EventBridgeEvent {
    serde_json::from_str(&fixture("eventbridge-scheduled-event.json")).expect("EventBridge fixture")
}

/// Takes `n` messages off the queue, one at a time (a FIFO group gives its next message only
/// once the one before is done), and the sync messages they hold.
pub async fn take(queue: &dyn WorkQueue, n: usize) -> Vec<SyncMessage> {
    let mut taken = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while taken.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} messages arrived: {taken:?}", taken.len());
        for m in queue.receive(n - taken.len(), Duration::from_secs(60)).await.expect("receive") {
            queue.ack(&m.receipt).await.expect("ack");
            taken.push(SyncMessage::from_body(&m.body).expect("a sync message"));
        }
    }
    taken
}

fn parked_change(conn: &str) -> SyncMessage {
    SyncMessage::Contacts {
        connection_id: conn.to_string(),
        refs: vec![ContactRef::hubspot("101")],
        origin: Origin::Webhook,
    }
}

/// A connection waiting for an API limit since `until_ms`, with one change parked.
async fn waiting(engine: &Engine, conn: &str, until_ms: i64) {
    let state = ConnectionState {
        lifecycle: Lifecycle::Continuous,
        wait_until_ms: Some(until_ms),
        parked: vec![serde_json::to_value(parked_change(conn)).expect("message")],
        ..Default::default()
    };
    connection(&*engine.store, conn, &state).await;
}

/// One connection whose state cannot be read (as when its store access fails) costs only its
/// own scan: the others are scanned, and the tick counts the failure.
pub async fn a_failing_connection_does_not_stop_the_others_scans(engine: &Engine, queue: &dyn WorkQueue) {
    let active = ConnectionState { lifecycle: Lifecycle::Continuous, ..Default::default() };
    connection(&*engine.store, "conn-a", &active).await;
    engine.store.create_connection("conn-b", &hmsync_core::ConnectionConfig::new("b")).await.expect("create");
    engine.store.put_state("conn-b", &serde_json::json!({"lifecycle": 42}), None).await.expect("state");
    connection(&*engine.store, "conn-c", &active).await;

    let tick = scheduled_scan::handle(engine, tick_event()).await.expect("the tick itself succeeds");

    assert_eq!((tick.scans_enqueued, tick.failures), (2, 1), "{tick:?}");
    let mut groups: Vec<String> = take(queue, 2).await.iter().map(|m| m.connection_id().to_string()).collect();
    groups.sort();
    assert_eq!(groups, ["conn-a", "conn-c"]);
}

/// The tick ends a wait whose time is up: the parked work comes back, then the scan.
pub async fn a_tick_ends_an_elapsed_wait_and_replays_the_parked_work(engine: &Engine, queue: &dyn WorkQueue) {
    waiting(engine, "conn-w", now_ms() - 1_000).await;

    let tick = scheduled_scan::handle(engine, tick_event()).await.expect("tick");

    assert_eq!((tick.waits_released, tick.scans_enqueued, tick.failures), (1, 1, 0), "{tick:?}");
    let (state, _) = engine.state("conn-w").await.expect("state");
    assert_eq!((state.wait_until_ms, state.parked.len()), (None, 0));
    assert_eq!(
        take(queue, 2).await,
        [parked_change("conn-w"), SyncMessage::ScanStart { connection_id: "conn-w".into(), kind: ScanKind::Scheduled }]
    );
}

/// Without any tick: the connection's next message finds the wait over, goes ahead, and brings
/// the parked work back. A message during the wait is parked.
pub async fn the_next_message_ends_an_elapsed_wait_without_a_tick(engine: &Engine, queue: &dyn WorkQueue) {
    let start = SyncMessage::ScanStart { connection_id: "conn-g".into(), kind: ScanKind::Scheduled };
    waiting(engine, "conn-g", now_ms() + 60_000).await;
    let report = engine.handle(&start).await.expect("handled");
    assert!(report.parked, "during the wait the message is parked: {report:?}");
    let (state, version) = engine.state("conn-g").await.expect("state");
    assert_eq!(state.parked.len(), 2);

    let mut elapsed = state.clone();
    elapsed.wait_until_ms = Some(now_ms() - 1);
    engine.save_state("conn-g", &elapsed, version).await.expect("the wait is over");
    let report = engine.handle(&start).await.expect("handled");

    assert!(!report.parked && report.enqueued == 1, "the scan started: {report:?}");
    let (state, _) = engine.state("conn-g").await.expect("state");
    assert_eq!((state.wait_until_ms, state.parked.len()), (None, 0));
    let taken = take(queue, 3).await;
    assert_eq!(&taken[..2], [parked_change("conn-g"), start.clone()], "the parked work, replayed");
    assert!(matches!(&taken[2], SyncMessage::ScanPage { connection_id, .. } if connection_id == "conn-g"));
}
