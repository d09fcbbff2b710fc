//! contact-sync's partial batch responses, on the embedded store: which messages of an SQS
//! FIFO batch come back, and when.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use hmsync_engine::{ConnectionState, Lifecycle, Pause};
use hmsync_runtime::contact_sync::{self, Redelivery};
use hmsync_store::StoreError;
use serde_json::{Value, json};

use common::{connection, fixture, local};
use hmsync_http::now_ms;

/// Records every visibility change (receipt → delay).
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, Duration)>>,
}

impl Recorder {
    fn calls(&self) -> BTreeMap<String, Duration> {
        let calls = self.calls.lock().unwrap();
        let map: BTreeMap<String, Duration> = calls.iter().cloned().collect();
        assert_eq!(map.len(), calls.len(), "a receipt was changed twice: {calls:?}");
        map
    }
}

#[async_trait]
impl Redelivery for Recorder {
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push((receipt.to_string(), delay));
        Ok(())
    }
}

/// SQS refuses every visibility change.
struct Refusing;

#[async_trait]
impl Redelivery for Refusing {
    async fn redeliver_after(&self, _receipt: &str, _delay: Duration) -> Result<(), StoreError> {
        Err(StoreError::Unavailable { message: "ChangeMessageVisibility timed out".into() })
    }
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
}

fn batch() -> SqsEvent {
    serde_json::from_str(&fixture("sqs-fifo-batch.json")).expect("SQS event fixture")
}

fn body_of(event: &SqsEvent, message_id: &str) -> Value {
    let record = event.records.iter().find(|r| r.message_id.as_deref() == Some(message_id)).expect("record");
    serde_json::from_str(record.body.as_deref().expect("body")).expect("JSON body")
}

/// The fixture's connections: `conn-paused` parks what it receives (so a handled message leaves
/// a trace), `conn-draft` accepts and ignores work, `conn-waiting` waits an hour for an API limit
/// to reset (and parks its work until then), and `conn-deleted` does not exist.
async fn fixture_connections(local: &common::Local) -> i64 {
    let paused = ConnectionState { lifecycle: Lifecycle::Continuous, pause: Some(Pause::User), ..Default::default() };
    connection(&*local.store, "conn-paused", &paused).await;
    connection(&*local.store, "conn-draft", &ConnectionState::default()).await;
    let until = now_ms() + 3_600_000;
    let waiting =
        ConnectionState { lifecycle: Lifecycle::Continuous, wait_until_ms: Some(until), ..Default::default() };
    connection(&*local.store, "conn-waiting", &waiting).await;
    until
}

#[tokio::test]
async fn a_failed_message_fails_the_rest_of_its_connection_and_no_other_connection() {
    let local = local();
    fixture_connections(&local).await;
    let event = batch();
    let first_parked = body_of(&event, "m-a1");
    let recorder = Recorder::default();

    let response = contact_sync::handle(&local.engine, &recorder, event).await;

    // m-a2 is not a sync message and m-g1's connection is gone (both permanent); m-a3 comes after
    // m-a2 in conn-paused. conn-waiting keeps m-c1 and m-c2 for when its API limit resets, and
    // every message of conn-draft succeeds.
    assert_eq!(failed_ids(&response), ["m-a2", "m-g1", "m-a3"]);
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": "m-a2"}, {"itemIdentifier": "m-g1"}, {"itemIdentifier": "m-a3"}
        ]})
    );

    // m-a1 was handled (parked by the paused connection); m-a3 was not tried.
    let (paused, _) = local.engine.state("conn-paused").await.unwrap();
    assert_eq!(paused.parked, vec![first_parked]);
    let (waiting, _) = local.engine.state("conn-waiting").await.unwrap();
    assert_eq!(waiting.parked, vec![body_of(&batch(), "m-c1"), body_of(&batch(), "m-c2")], "in order");

    // Permanent failures come back at once (to reach the dead-letter queue quickly), with the
    // rest of their group.
    let calls = recorder.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for receipt in ["AQEBm-a2-receipt", "AQEBm-g1-receipt", "AQEBm-a3-receipt"] {
        assert_eq!(calls[receipt], Duration::ZERO, "{receipt}");
    }
}

#[tokio::test]
async fn records_without_a_group_attribute_are_grouped_by_their_connection() {
    let local = local();
    fixture_connections(&local).await;
    let mut raw: Value = serde_json::from_str(&fixture("sqs-fifo-batch.json")).unwrap();
    for record in raw["Records"].as_array_mut().unwrap() {
        record["attributes"].as_object_mut().unwrap().remove("MessageGroupId");
    }
    let event: SqsEvent = serde_json::from_value(raw).unwrap();

    let response = contact_sync::handle(&local.engine, &Recorder::default(), event).await;

    // The same answer: m-a2's body is not a message, but it still names its connection.
    assert_eq!(failed_ids(&response), ["m-a2", "m-g1", "m-a3"]);
}

#[tokio::test]
async fn near_the_deadline_no_message_is_started_and_all_come_back_at_once() {
    let local = local();
    fixture_connections(&local).await;
    let recorder = Recorder::default();

    let response = contact_sync::handle_until(&local.engine, &recorder, batch(), Some(Instant::now())).await;

    assert_eq!(failed_ids(&response), ["m-a1", "m-b1", "m-a2", "m-g1", "m-b2", "m-a3", "m-c1", "m-b3", "m-c2"]);
    let (paused, _) = local.engine.state("conn-paused").await.unwrap();
    assert!(paused.parked.is_empty(), "nothing may be started: {:?}", paused.parked);
    let calls = recorder.calls();
    assert_eq!(calls.len(), 9);
    assert!(calls.values().all(|d| d.is_zero()), "{calls:?}");
}

#[tokio::test]
async fn failures_are_reported_even_when_the_visibility_cannot_be_changed() {
    let local = local();
    fixture_connections(&local).await;

    let response = contact_sync::handle(&local.engine, &Refusing, batch()).await;

    assert_eq!(failed_ids(&response), ["m-a2", "m-g1", "m-a3"]);
}

#[test]
fn the_last_start_keeps_the_reserve_free_before_the_deadline_but_at_most_a_third() {
    let reserve = Duration::from_secs(90);
    let before = Instant::now();
    let stop = contact_sync::stop_starting_at(SystemTime::now() + Duration::from_secs(300), reserve);
    let after = Instant::now();
    assert!(stop >= before + Duration::from_secs(209) && stop <= after + Duration::from_secs(210), "{stop:?}");

    // A short timeout keeps two thirds of its time for work.
    let before = Instant::now();
    let short = contact_sync::stop_starting_at(SystemTime::now() + Duration::from_secs(30), reserve);
    let after = Instant::now();
    assert!(short >= before + Duration::from_secs(19) && short <= after + Duration::from_secs(20), "{short:?}");

    let past = contact_sync::stop_starting_at(SystemTime::now() - Duration::from_secs(5), reserve);
    assert!(past <= Instant::now());
}
