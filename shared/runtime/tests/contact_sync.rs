//! contact-sync's answers to SQS FIFO batches, on the embedded store: which messages come back
//! and when, which go to the dead-letter queue with which error, and the time budget.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use hmsync_engine::adapters::{ApiSettings, Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::{ConnectionState, Lifecycle, Pause};
use hmsync_runtime::contact_sync::{self, BatchQueue, FINISH_RESERVE, MIN_MESSAGE_BUDGET};
use hmsync_store::{ReceivedMessage, StoreError};
use serde_json::{Value, json};

use common::{connection, fixture, local, local_with, unreachable_apis};
use hmsync_http::now_ms;

/// Records every visibility change (receipt → delay) and every dead-letter move.
#[derive(Default)]
struct Recorder {
    redelivered: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<(String, String)>>,
    /// SQS refuses every call.
    refuse: bool,
}

impl Recorder {
    fn refusing() -> Self {
        Recorder { refuse: true, ..Recorder::default() }
    }

    fn redelivered(&self) -> Vec<(String, Duration)> {
        self.redelivered.lock().unwrap().clone()
    }

    /// (message id, error) of each message moved to the dead-letter queue.
    fn dead(&self) -> Vec<(String, String)> {
        self.dead.lock().unwrap().clone()
    }
}

#[async_trait]
impl BatchQueue for Recorder {
    async fn redeliver_after(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        if self.refuse {
            return Err(StoreError::Unavailable { message: "ChangeMessageVisibility timed out".into() });
        }
        self.redelivered.lock().unwrap().push((receipt.to_string(), delay));
        Ok(())
    }

    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> Result<(), StoreError> {
        if self.refuse {
            return Err(StoreError::Unavailable { message: "SendMessage timed out".into() });
        }
        self.dead.lock().unwrap().push((message.message_id.clone(), error.to_string()));
        Ok(())
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

/// An SQS FIFO record as the event source mapping delivers it.
fn record(id: &str, group: &str, receive_count: u32, body: &Value) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("AQEB{id}-receipt"),
        "body": body.to_string(),
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "MessageGroupId": group,
            "MessageDeduplicationId": id,
            "SequenceNumber": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1767225600000"
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:hmsync-sync.fifo",
        "awsRegion": "us-east-1"
    })
}

fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("SQS event")
}

fn contacts(connection: &str, hubspot_id: &str) -> Value {
    json!({"type": "contacts", "connection_id": connection, "refs": [{"side": "hubspot", "id": hubspot_id, "structural": true}], "origin": "webhook"})
}

/// The fixture's connections: `conn-paused` parks what it receives (so a handled message leaves
/// a trace), `conn-draft` accepts and ignores work, `conn-waiting` waits an hour for an API limit
/// to reset (and parks its work until then), and `conn-deleted` does not exist.
async fn fixture_connections(local: &common::Local) {
    let paused = ConnectionState { lifecycle: Lifecycle::Continuous, pause: Some(Pause::User), ..Default::default() };
    connection(&*local.store, "conn-paused", &paused).await;
    connection(&*local.store, "conn-draft", &ConnectionState::default()).await;
    let waiting = ConnectionState {
        lifecycle: Lifecycle::Continuous,
        wait_until_ms: Some(now_ms() + 3_600_000),
        ..Default::default()
    };
    connection(&*local.store, "conn-waiting", &waiting).await;
}

/// A running connection with credentials whose APIs do not answer as they should (the local's
/// API settings say where they are): its work fails transiently.
async fn flaky_connection(local: &common::Local, id: &str) {
    let running = ConnectionState { lifecycle: Lifecycle::Continuous, ..Default::default() };
    connection(&*local.store, id, &running).await;
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: "pat-test".into() }),
        mailerlite_api_key: Some("ml-test".into()),
        ..Credentials::default()
    };
    save_credentials(&*local.secrets, id, &credentials).await.unwrap();
}

#[tokio::test]
async fn messages_that_cannot_succeed_go_to_the_dead_letter_queue_with_their_error_and_their_group_goes_on() {
    let local = local();
    fixture_connections(&local).await;
    let event = batch();
    let parked = vec![body_of(&event, "m-a1"), body_of(&event, "m-a3")];
    let recorder = Recorder::default();

    let response = contact_sync::handle(&local.engine, &recorder, event, None).await;

    // m-a2 is not a sync message and m-g1's connection is gone: both are moved by our own hand
    // and reported done, so neither uses up receives; m-a3 behind m-a2 is handled.
    assert_eq!(failed_ids(&response), Vec::<&str>::new());
    assert_eq!(serde_json::to_value(&response).unwrap(), json!({"batchItemFailures": []}));
    let mut dead = recorder.dead();
    dead.sort();
    assert_eq!(dead.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["m-a2", "m-g1"], "{dead:?}");
    assert!(dead[0].1.contains("not a sync message"), "{}", dead[0].1);
    assert!(dead[1].1.contains("conn-deleted does not exist"), "{}", dead[1].1);
    assert!(recorder.redelivered().is_empty());

    assert_eq!(common::parked(&*local.store, "conn-paused").await, parked, "m-a1 and m-a3, in order");
    assert_eq!(
        common::parked(&*local.store, "conn-waiting").await,
        vec![body_of(&batch(), "m-c1"), body_of(&batch(), "m-c2")],
        "in order"
    );
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
    let recorder = Recorder::default();

    let response = contact_sync::handle(&local.engine, &recorder, event, None).await;

    assert_eq!(failed_ids(&response), Vec::<&str>::new());
    // m-a2's body is not a message, but it still names its connection.
    let mut dead = recorder.dead();
    dead.sort();
    assert_eq!(dead.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["m-a2", "m-g1"]);
}

#[tokio::test]
async fn a_transient_failure_comes_back_after_seconds_with_the_rest_of_its_group_and_no_other() {
    let local = local();
    fixture_connections(&local).await;
    flaky_connection(&local, "conn-flaky").await;
    let paused = contacts("conn-paused", "7");
    let batch = event(vec![
        record("f1", "conn-flaky", 1, &contacts("conn-flaky", "1")),
        record("p1", "conn-paused", 1, &paused),
        record("f2", "conn-flaky", 1, &contacts("conn-flaky", "2")),
    ]);
    let recorder = Recorder::default();

    let response = contact_sync::handle(&local.engine, &recorder, batch, None).await;

    assert_eq!(failed_ids(&response), ["f1", "f2"]);
    // The engine's backoff after a first receive (2 s), not the queue's visibility timeout; f2
    // was not tried and follows f1.
    assert_eq!(
        recorder.redelivered(),
        [
            ("AQEBf1-receipt".to_string(), Duration::from_secs(2)),
            ("AQEBf2-receipt".to_string(), Duration::from_secs(2))
        ]
    );
    assert!(recorder.dead().is_empty());
    assert_eq!(
        common::parked(&*local.store, "conn-paused").await,
        vec![paused],
        "the other connection's message was handled"
    );
}

#[tokio::test]
async fn on_its_last_allowed_receive_a_failing_message_goes_to_the_dead_letters_with_its_error() {
    let local = local();
    flaky_connection(&local, "conn-flaky").await;
    let batch = event(vec![
        record("f1", "conn-flaky", 10, &contacts("conn-flaky", "1")),
        record("f2", "conn-flaky", 1, &contacts("conn-flaky", "2")),
    ]);
    let recorder = Recorder::default();

    let response = contact_sync::handle(&local.engine, &recorder, batch, None).await;

    let dead = recorder.dead();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "f1");
    assert!(
        dead[0].1.contains("HubSpot is unavailable") && dead[0].1.contains("gave up after 10 attempts"),
        "{}",
        dead[0].1
    );
    // f2 was tried in its own right (and failed on its first receive).
    assert_eq!(failed_ids(&response), ["f2"]);
    assert_eq!(recorder.redelivered(), [("AQEBf2-receipt".to_string(), Duration::from_secs(2))]);
}

#[tokio::test]
async fn near_the_deadline_no_message_is_started_and_all_come_back_at_once() {
    let local = local();
    fixture_connections(&local).await;
    let recorder = Recorder::default();
    let deadline = Instant::now() + FINISH_RESERVE + MIN_MESSAGE_BUDGET - Duration::from_millis(100);

    let response = contact_sync::handle(&local.engine, &recorder, batch(), Some(deadline)).await;

    assert_eq!(failed_ids(&response), ["m-a1", "m-b1", "m-a2", "m-g1", "m-b2", "m-a3", "m-c1", "m-b3", "m-c2"]);
    let paused = common::parked(&*local.store, "conn-paused").await;
    assert!(paused.is_empty(), "nothing may be started: {paused:?}");
    let calls = recorder.redelivered();
    assert_eq!(calls.len(), 9);
    assert!(calls.iter().all(|(_, d)| d.is_zero()), "{calls:?}");
    assert!(recorder.dead().is_empty());
}

#[tokio::test]
async fn failures_are_reported_even_when_sqs_refuses_the_visibility_change_and_the_move() {
    let local = local();
    fixture_connections(&local).await;

    let response = contact_sync::handle(&local.engine, &Recorder::refusing(), batch(), None).await;

    // The messages that could not be moved come back (and are moved on a later receive, or by
    // the redrive policy), and m-a3 waits behind m-a2.
    assert_eq!(failed_ids(&response), ["m-a2", "m-g1", "m-a3"]);
}

#[tokio::test]
async fn a_message_that_outlasts_its_budget_is_stopped_and_comes_back_before_the_invocation_ends() {
    // HubSpot accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let local = local_with(ApiSettings { hubspot_base_url: silent, ..unreachable_apis() });
    flaky_connection(&local, "conn-slow").await;
    let batch = event(vec![record("s1", "conn-slow", 1, &contacts("conn-slow", "1"))]);
    let recorder = Recorder::default();
    // The shortest budget a message is started with, and a second.
    let deadline = Instant::now() + FINISH_RESERVE + MIN_MESSAGE_BUDGET + Duration::from_secs(1);

    let response = contact_sync::handle(&local.engine, &recorder, batch, Some(deadline)).await;

    assert!(Instant::now() < deadline, "answered before the invocation's deadline");
    assert_eq!(failed_ids(&response), ["s1"]);
    assert_eq!(recorder.redelivered(), [("AQEBs1-receipt".to_string(), Duration::from_secs(2))]);
}

#[test]
fn a_message_budget_is_what_is_left_of_the_invocation_minus_the_reserve() {
    let deadline = Instant::now() + Duration::from_secs(300);
    let budget = contact_sync::message_budget(deadline);
    assert!(budget <= Duration::from_secs(290) && budget > Duration::from_secs(289), "{budget:?}");
    assert_eq!(contact_sync::message_budget(Instant::now()), Duration::ZERO);
    let later = contact_sync::deadline_instant(std::time::SystemTime::now() + Duration::from_secs(60));
    assert!(later > Instant::now() + Duration::from_secs(59));
}

#[test]
fn the_engine_gives_up_after_as_many_receives_as_the_template_allows() {
    let template = std::fs::read_to_string(format!("{}/../../template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let line = template.lines().find(|l| l.trim_start().starts_with("maxReceiveCount:")).expect("maxReceiveCount");
    let max: u32 = line.split(':').nth(1).unwrap().trim().parse().unwrap();
    assert_eq!(max, hmsync_engine::delivery::MAX_RECEIVES);
    assert_eq!(hmsync_engine::DeliveryPolicy::default().max_receives, max);
    assert_eq!(hmsync_store::SqliteQueueConfig::default().max_receives, max);
}
