//! scheduled-scan on the embedded store and local queue: a tick enqueues a scan for each
//! active connection and for nothing else, a failing connection stops only its own scan, and
//! waits for API limits end with the tick or with the connection's next message.

mod common;

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hmsync_engine::{ConnectionState, Lifecycle, Pause, ScanKind, SyncMessage};
use hmsync_runtime::scheduled_scan::{self, Tick};
use hmsync_store::WorkQueue;

use common::{connection, fixture, local};

#[tokio::test]
async fn a_tick_enqueues_a_scan_for_an_active_connection_and_none_for_a_draft_or_paused_one() {
    let local = local();
    let active = ConnectionState { lifecycle: Lifecycle::Continuous, ..Default::default() };
    connection(&*local.store, "conn-active", &active).await;
    connection(&*local.store, "conn-draft", &ConnectionState::default()).await;
    let paused = ConnectionState { lifecycle: Lifecycle::Continuous, pause: Some(Pause::User), ..Default::default() };
    connection(&*local.store, "conn-paused", &paused).await;
    let event: EventBridgeEvent =
        serde_json::from_str(&fixture("eventbridge-scheduled-event.json")).expect("EventBridge fixture");

    let tick = scheduled_scan::handle(&local.engine, event).await.expect("tick");

    assert_eq!(tick, Tick { scans_enqueued: 1, waits_released: 0, failures: 0 });
    assert_eq!(
        serde_json::to_value(tick).unwrap(),
        serde_json::json!({"scans_enqueued": 1, "waits_released": 0, "failures": 0})
    );
    let queued = local.queue.receive(10, Duration::from_secs(30)).await.expect("receive");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].group_id, "conn-active");
    assert_eq!(
        SyncMessage::from_body(&queued[0].body).expect("a sync message"),
        SyncMessage::ScanStart { connection_id: "conn-active".into(), kind: ScanKind::Scheduled }
    );
}

#[tokio::test]
async fn a_failing_connection_does_not_stop_the_others_scans() {
    let local = local();
    common::tick::a_failing_connection_does_not_stop_the_others_scans(&local.engine, &*local.queue).await;
}

#[tokio::test]
async fn a_tick_ends_an_elapsed_wait_and_replays_the_parked_work() {
    let local = local();
    common::tick::a_tick_ends_an_elapsed_wait_and_replays_the_parked_work(&local.engine, &*local.queue).await;
}

#[tokio::test]
async fn the_next_message_ends_an_elapsed_wait_without_a_tick() {
    let local = local();
    common::tick::the_next_message_ends_an_elapsed_wait_without_a_tick(&local.engine, &*local.queue).await;
}
