//! The functions' AWS wiring against moto (DynamoDB, SQS FIFO, Secrets Manager on 127.0.0.1;
//! `./scripts/test` starts it and sets `HMSYNC_MOTO_ENDPOINT`): settings from the environment's
//! variable names, the engine of `aws_ports`, and real SQS receipts in contact-sync.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use hmac::{Hmac, KeyInit, Mac};
use hmsync_api::AppState;
use hmsync_engine::adapters::ApiSettings;
use hmsync_engine::adapters::{Credentials, mailerlite_signing_secret_name, save_credentials};
use hmsync_engine::{ConnectionState, ContactRef, Lifecycle, Origin, ScanKind, SyncMessage};
use hmsync_runtime::http::HttpApp;
use hmsync_runtime::{AdminTokenError, AwsPorts, Settings, admin_token, aws_ports, contact_sync, scheduled_scan};
use hmsync_store::testing::{create_fifo_queue_pair, moto_endpoint, moto_sdk_config, unique_name};
use hmsync_store::{DynamoStore, QueueMessage, ReceivedMessage, SyncQueue, WorkQueue};
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt;

use common::{connection, fixture};
use hmsync_http::now_ms;

struct Aws {
    config: SdkConfig,
    settings: Settings,
    ports: AwsPorts,
}

/// A fresh table, FIFO queue pair and secret prefix (moto's state is shared by every test), and
/// the settings a function would read for them.
async fn aws() -> Aws {
    let config = moto_sdk_config(&moto_endpoint()).await;
    let table = unique_name("hmsync-runtime");
    DynamoStore::new(&config, table.clone()).create_table_if_missing().await.expect("table");
    let (queue_url, dlq_url) =
        create_fifo_queue_pair(&config, &unique_name("hmsync-runtime"), 5).await.expect("queues");
    let vars: HashMap<&str, String> = HashMap::from([
        ("HMSYNC_TABLE", table),
        ("HMSYNC_QUEUE_URL", queue_url),
        ("HMSYNC_DLQ_URL", dlq_url),
        ("HMSYNC_SECRET_PREFIX", format!("hmsync/{}/", unique_name("stack"))),
        ("HUBSPOT_API_URL", "http://127.0.0.1:9".to_string()),
        ("MAILERLITE_API_URL", "http://127.0.0.1:9".to_string()),
    ]);
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("settings");
    let ports = aws_ports(&settings, &config);
    Aws { config, settings, ports }
}

fn message(m: &SyncMessage) -> QueueMessage {
    QueueMessage { group_id: m.connection_id().to_string(), dedup_id: m.content_dedup_id(), body: m.to_body() }
}

fn contacts(connection_id: &str, hubspot_id: &str) -> SyncMessage {
    SyncMessage::Contacts {
        connection_id: connection_id.into(),
        refs: vec![ContactRef::hubspot(hubspot_id)],
        origin: Origin::Webhook,
    }
}

/// Receives until `n` messages are in hand or a receive comes back empty.
async fn receive(queue: &dyn WorkQueue, n: usize) -> Vec<ReceivedMessage> {
    let mut received = Vec::new();
    while received.len() < n {
        let got = queue.receive(n - received.len(), Duration::from_secs(120)).await.expect("receive");
        if got.is_empty() {
            break;
        }
        received.extend(got);
    }
    received
}

/// The event Lambda's SQS event source would deliver for these messages.
fn sqs_event(messages: &[ReceivedMessage]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "MessageGroupId": m.group_id,
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:hmsync-runtime.fifo",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("SQS event")
}

#[tokio::test]
async fn a_message_that_cannot_succeed_moves_to_the_dead_letter_queue_with_its_error_and_its_group_goes_on() {
    let aws = aws().await;
    let engine = &aws.ports.engine;
    connection(&*engine.store, "conn-draft", &ConnectionState::default()).await;
    let waiting = ConnectionState {
        lifecycle: Lifecycle::Continuous,
        wait_until_ms: Some(now_ms() + 3_600_000),
        ..Default::default()
    };
    connection(&*engine.store, "conn-waiting", &waiting).await;
    let not_a_message = QueueMessage {
        group_id: "conn-draft".into(),
        dedup_id: "not-a-message".into(),
        body: r#"{"type":"resync_everything","connection_id":"conn-draft"}"#.into(),
    };
    aws.ports
        .queue
        .send_batch(&[
            message(&contacts("conn-draft", "1")),
            not_a_message,
            message(&contacts("conn-draft", "2")),
            message(&contacts("conn-waiting", "3")),
        ])
        .await
        .expect("send");
    let received = receive(&*aws.ports.queue, 4).await;
    assert_eq!(received.len(), 4, "{received:?}");
    let bad = received.iter().find(|m| m.body.contains("resync_everything")).expect("the bad message").clone();

    let response = contact_sync::handle(engine, &*aws.ports.queue, sqs_event(&received), None).await;

    // Nothing comes back: the bad message was moved by our own hand (reported done, so it
    // burns no further receives) and the message behind it was handled.
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    // A connection waiting for an API limit parks its work (replayed when the limit resets), so
    // the message is done and cannot reach the dead-letter queue by waiting.
    let parked = common::parked(&*engine.store, "conn-waiting").await;
    assert_eq!(parked.len(), 1, "the waiting connection's message is parked");
    assert!(parked[0].to_string().contains(r#""3""#), "{parked:?}");

    // The event source mapping deletes what succeeded; the bad one is gone already.
    for m in received.iter().filter(|m| m.message_id != bad.message_id) {
        aws.ports.queue.ack(&m.receipt).await.expect("delete the handled message");
    }
    assert!(receive(&*aws.ports.queue, 4).await.is_empty(), "nothing comes back");
    let dead = aws.ports.queue.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].message_id.as_str(), dead[0].group_id.as_str()), (bad.message_id.as_str(), "conn-draft"));
    assert_eq!(dead[0].body, bad.body);
    assert_eq!(dead[0].receive_count, 1);
    let error = dead[0].last_error.as_deref().expect("its last error");
    assert!(error.contains("not a sync message"), "{error}");
}

#[tokio::test]
async fn a_schedule_tick_reads_dynamodb_and_enqueues_onto_sqs() {
    let aws = aws().await;
    let engine = &aws.ports.engine;
    let active = ConnectionState { lifecycle: Lifecycle::Continuous, ..Default::default() };
    connection(&*engine.store, "conn-active", &active).await;
    connection(&*engine.store, "conn-draft", &ConnectionState::default()).await;
    let event: EventBridgeEvent = serde_json::from_str(&fixture("eventbridge-scheduled-event.json")).unwrap();

    let tick = scheduled_scan::handle(engine, event).await.expect("tick");

    assert_eq!(tick.scans_enqueued, 1);
    let queued = receive(&*aws.ports.queue, 2).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].group_id, "conn-active");
    assert_eq!(
        SyncMessage::from_body(&queued[0].body).unwrap(),
        SyncMessage::ScanStart { connection_id: "conn-active".into(), kind: ScanKind::Scheduled }
    );
}

#[tokio::test]
async fn a_failing_connection_does_not_stop_the_others_scans_on_dynamodb() {
    let aws = aws().await;
    common::tick::a_failing_connection_does_not_stop_the_others_scans(&aws.ports.engine, &*aws.ports.queue).await;
}

#[tokio::test]
async fn a_tick_ends_an_elapsed_wait_and_replays_the_parked_work_on_dynamodb() {
    let aws = aws().await;
    common::tick::a_tick_ends_an_elapsed_wait_and_replays_the_parked_work(&aws.ports.engine, &*aws.ports.queue).await;
}

#[tokio::test]
async fn the_next_message_ends_an_elapsed_wait_without_a_tick_on_dynamodb() {
    let aws = aws().await;
    common::tick::the_next_message_ends_an_elapsed_wait_without_a_tick(&aws.ports.engine, &*aws.ports.queue).await;
}

#[tokio::test]
async fn a_signed_webhook_is_checked_with_secrets_manager_and_queued_on_sqs() {
    let aws = aws().await;
    let engine = &aws.ports.engine;
    let active = ConnectionState { lifecycle: Lifecycle::Continuous, ..Default::default() };
    connection(&*engine.store, "conn-1", &active).await;
    let secret = "ml-webhook-secret-on-moto";
    let credentials = Credentials { mailerlite_webhook_secret: Some(secret.into()), ..Credentials::default() };
    save_credentials(&*engine.secrets, "conn-1", &credentials).await.expect("credentials");
    // The signing secrets live under the prefix the template's IAM policies name, in their own secret.
    let stored = aws_sdk_secretsmanager::Client::new(&aws.config)
        .get_secret_value()
        .secret_id(format!("{}{}", aws.settings.secret_prefix, mailerlite_signing_secret_name("conn-1")))
        .send()
        .await
        .expect("the credentials secret under the prefix");
    assert!(stored.secret_string.unwrap().contains(secret));

    let mut raw: Value = serde_json::from_str(&fixture("apigw-v2-mailerlite-webhook.json")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(raw["body"].as_str().unwrap().as_bytes());
    raw["headers"]["signature"] = Value::from(hex::encode(mac.finalize().into_bytes()));
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let app = HttpApp::new(state(engine), None, hmsync_api::webhook_routes);

    let response = app.oneshot(request).await.expect("infallible");

    assert_eq!(response.status(), 200);
    let queued = receive(&*aws.ports.queue, 1).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].group_id, "conn-1");
    let SyncMessage::Contacts { refs, .. } = SyncMessage::from_body(&queued[0].body).unwrap() else {
        panic!("{}", queued[0].body)
    };
    assert_eq!(refs.iter().map(ContactRef::id).collect::<Vec<_>>(), ["112375610569918142"]);
}

#[tokio::test]
async fn the_admin_token_is_read_from_its_secret() {
    let aws = aws().await;
    let name = format!("hmsync-admin-token/{}", unique_name("stack"));
    aws_sdk_secretsmanager::Client::new(&aws.config)
        .create_secret()
        .name(&name)
        .secret_string("generated-admin-token\n")
        .send()
        .await
        .expect("create the admin token secret");

    let configured = Settings { admin_token_secret: Some(name.clone()), ..aws.settings.clone() };
    assert_eq!(admin_token(&configured, &aws.config).await.expect("token"), "generated-admin-token");

    let missing = Settings { admin_token_secret: Some(format!("{name}-missing")), ..aws.settings.clone() };
    let err = admin_token(&missing, &aws.config).await.unwrap_err();
    assert!(
        matches!(&err, AdminTokenError::Unreadable { secret, .. } if *secret == format!("{name}-missing")),
        "{err}"
    );

    let err = admin_token(&aws.settings, &aws.config).await.unwrap_err();
    assert!(matches!(err, AdminTokenError::NotConfigured));
    assert!(err.to_string().contains("HMSYNC_ADMIN_TOKEN_SECRET"), "{err}");
}

/// The webhook functions' state (no admin token; the base URL comes from each request).
fn state(engine: &std::sync::Arc<hmsync_engine::Engine>) -> AppState {
    AppState::new(engine.clone(), "", ApiSettings::default())
}
