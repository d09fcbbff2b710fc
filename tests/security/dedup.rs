//! Queue deduplication keys on the delivery, not on what a message says: two real edits of one
//! company within the queue's 5-minute dedup window are two messages and both land, while a
//! redelivered webhook is still one message. On the local queue and on SQS FIFO (moto).

use std::time::Duration;

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Backend, Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::SeedSpec;
use serde_json::{Map, Value, json};

fn name(value: &str) -> Map<String, Value> {
    [("name".to_string(), json!(value))].into_iter().collect()
}

/// A connection syncing 12 HubSpot contacts with companies, the company name mapped; returns
/// the harness, a company and the people whose contacts belong to it.
async fn synced_with_a_company(backend: Backend) -> (Harness, u64, Vec<u64>) {
    let h = Harness::start(Options { backend, ..Options::default() }).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 12, with_companies: true, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 0, ..Default::default() }).unwrap();
    let mut c = ConnectionConfig::new("Companies");
    c.mappings = vec![FieldMapping::new("firstname", "name")];
    c.mappings.push(FieldMapping::new("name", "company").company());
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let company_of = |i: u64| -> Option<u64> {
        h.hubspot.contact(seeded.ids[i as usize]).unwrap()["properties"]["associatedcompanyid"]
            .as_str()
            .and_then(|c| c.parse().ok())
    };
    let company = company_of(0).expect("person 0 has a company");
    let members: Vec<u64> = (0..12u64).filter(|i| company_of(*i) == Some(company)).collect();
    (h, company, members)
}

fn company_names(h: &Harness, members: &[u64]) -> Vec<Option<Value>> {
    members.iter().map(|i| h.mailerlite.subscriber(&person(*i).email).unwrap().fields.get("company").cloned()).collect()
}

/// Two renames of one company within seconds (well inside the queue's 5-minute dedup window):
/// both `company.propertyChange` deliveries become the same message body. The first message has
/// already run (it read the first name from HubSpot) but is not yet deleted when the second
/// rename's webhook arrives: the second rename must still reach MailerLite. (moto deduplicates
/// only against messages still in the queue, unlike SQS, which remembers deleted ones for the
/// whole window; the first message is acknowledged after the second is sent so that both
/// queues see the duplicate.)
async fn two_edits_of_one_company_both_land(backend: Backend) {
    let (h, company, members) = synced_with_a_company(backend).await;
    h.hubspot.user_edit_company(company, &name("First Rename Inc"), 7).unwrap();
    h.hubspot.dispatcher().wait_idle().await;
    let first = h.queue.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.len(), 1, "one message for the first rename");
    let message = hmsync_engine::message::SyncMessage::from_body(&first[0].body).unwrap();
    assert_eq!(message.kind(), "company_changed");
    h.engine.handle(&message).await.unwrap();
    assert!(company_names(&h, &members).iter().all(|n| n.as_ref() == Some(&json!("First Rename Inc"))));
    h.hubspot.user_edit_company(company, &name("Second Rename Inc"), 7).unwrap();
    h.hubspot.dispatcher().wait_idle().await;
    h.queue.ack(&first[0].receipt).await.unwrap();
    h.settle().await;
    assert_eq!(
        company_names(&h, &members),
        vec![Some(json!("Second Rename Inc")); members.len()],
        "the second edit was not dropped as a duplicate of the first"
    );
}

/// The same HubSpot delivery three times (again as it was, and as HubSpot's retry with a higher
/// `attemptNumber`) is one message, and so is a MailerLite delivery sent twice.
async fn a_redelivered_hubspot_webhook_is_one_message(backend: Backend) {
    let (h, company, _) = synced_with_a_company(backend).await;
    let hs = h.hubspot.config();
    let event = |attempt: u32| {
        json!([{"eventId": 900_001, "subscriptionId": 1, "portalId": hs.portal_id, "appId": hs.app_id + 1,
                "occurredAt": 1, "subscriptionType": "company.propertyChange", "attemptNumber": attempt,
                "objectId": company, "propertyName": "name", "propertyValue": "Renamed", "changeSource": "CRM_UI"}])
        .to_string()
    };
    let url = format!("{}/webhooks/hubspot", h.api_url);
    let http = reqwest::Client::new();
    for body in [event(0), event(0), event(1)] {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis().to_string();
        let signature = hmsync_hubspot::webhooks::sign_v3(&hs.client_secret, "POST", &url, body.as_bytes(), &now);
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", now)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let drained = h.worker.drain(Duration::from_millis(500)).await.unwrap();
    assert_eq!(drained.received, 1, "three deliveries of one event are one message");
    // MailerLite resends a delivery byte for byte.
    let secret = hmsync_engine::adapters::load_credentials(&*h.secrets, "c1")
        .await
        .unwrap()
        .mailerlite_webhook_secret
        .expect("activation registered the MailerLite webhook");
    let subscriber = h.mailerlite.subscriber(&person(0).email).unwrap();
    let body = json!({"event": "subscriber.updated", "id": subscriber.id.to_string(), "email": person(0).email,
                      "status": "active", "fields": {"name": "Redelivered"}})
    .to_string();
    let url = format!("{}/webhooks/mailerlite/c1", h.api_url);
    for _ in 0..2 {
        let signature = hmsync_sandbox::mailerlite::sign_webhook(&secret, body.as_bytes());
        let resp = http.post(&url).header("signature", signature).body(body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let drained = h.worker.drain(Duration::from_millis(500)).await.unwrap();
    assert_eq!(drained.received, 1, "two deliveries of one MailerLite body are one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edits_of_one_company_within_the_dedup_window_both_land_on_the_local_queue() {
    two_edits_of_one_company_both_land(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edits_of_one_company_within_the_dedup_window_both_land_on_sqs_fifo() {
    two_edits_of_one_company_both_land(Backend::Aws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_hubspot_webhook_is_one_message_on_the_local_queue() {
    a_redelivered_hubspot_webhook_is_one_message(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_hubspot_webhook_is_one_message_on_sqs_fifo() {
    a_redelivered_hubspot_webhook_is_one_message(Backend::Aws).await;
}
