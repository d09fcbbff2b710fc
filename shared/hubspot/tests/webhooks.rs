//! Webhooks from the sandbox, received by a local endpoint that verifies them with the client's
//! own functions, exactly as the webhook Lambda will.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use common::{client, props, sim};
use hmsync_hubspot::{ContactInput, ContactUpsert, SubscriptionType, WebhookEvent, parse_events, verify_v1, verify_v3};
use hmsync_sandbox::common::DeliveryOptions;
use hmsync_sandbox::hubspot::{HubSpotSim, SeedRequest, WebhookSettings, WebhookSubscription};
use serde_json::json;

/// Received requests: (verified v3, verified v1, events).
type Inbox = Arc<Mutex<Vec<(bool, bool, Vec<WebhookEvent>)>>>;

async fn receiver(secret: String) -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/hubspot?portal=62515", listener.local_addr().unwrap());
    let (i, u) = (inbox.clone(), url.clone());
    let app = Router::new().route(
        "/webhooks/hubspot",
        post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let (inbox, url, secret) = (i.clone(), u.clone(), secret.clone());
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
                let now = hmsync_http::now_ms();
                let v3 = verify_v3(
                    &secret,
                    "POST",
                    &url,
                    &body,
                    h("x-hubspot-request-timestamp"),
                    h("x-hubspot-signature-v3"),
                    now,
                )
                .is_ok();
                let v1 = h("x-hubspot-signature-version") == Some("v1")
                    && verify_v1(&secret, &body, h("x-hubspot-signature")).is_ok();
                inbox.lock().unwrap().push((v3, v1, parse_events(&body).unwrap()));
                http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

fn subscribe(s: &HubSpotSim, url: &str, properties: &[&str]) {
    let mut subscriptions = vec![
        WebhookSubscription { id: 0, event_type: "contact.creation".into(), property_name: None, active: true },
        WebhookSubscription { id: 0, event_type: "contact.merge".into(), property_name: None, active: true },
        WebhookSubscription { id: 0, event_type: "contact.deletion".into(), property_name: None, active: true },
    ];
    for p in properties {
        subscriptions.push(WebhookSubscription {
            id: 0,
            event_type: "contact.propertyChange".into(),
            property_name: Some(p.to_string()),
            active: true,
        });
    }
    s.set_webhook_settings(Some(WebhookSettings { target_url: url.into(), subscriptions }));
}

#[tokio::test]
async fn api_writes_and_user_edits_arrive_signed_and_attributed() {
    let s = sim().await;
    let (url, inbox) = receiver(s.config().client_secret).await;
    subscribe(&s, &url, &["firstname", "city"]);
    let c = client(&s);
    let created = c
        .create_contact(&ContactInput {
            properties: props(&[("email", "grace@example.com"), ("firstname", "Grace"), ("lastname", "Hopper")]),
            associations: vec![],
        })
        .await
        .unwrap();
    s.dispatcher().wait_idle().await;
    let id: u64 = created.id.parse().unwrap();
    s.user_edit_contact(id, json!({"city":"Arlington","lastname":"H."}).as_object().unwrap(), 4242).unwrap();
    s.dispatcher().wait_idle().await;

    let got = inbox.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one request per write");
    assert!(got.iter().all(|(v3, v1, _)| *v3 && *v1), "every request verifies with v3 and v1");
    let api = &got[0].2;
    assert_eq!(
        api.iter().map(|e| e.subscription_type.clone()).collect::<Vec<_>>(),
        vec![SubscriptionType::ContactCreation, SubscriptionType::ContactPropertyChange],
        "lastname and email are not subscribed"
    );
    assert!(api.iter().all(|e| e.is_from_app(54321) && e.object_id == Some(id) && e.portal_id == 62515));
    assert_eq!(api[0].change_flag.as_deref(), Some("CREATED"));
    assert_eq!(api[1].property_value.as_deref(), Some("Grace"));
    let user = &got[1].2;
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].change_source.as_deref(), Some("CRM_UI"));
    assert_eq!(user[0].source_id.as_deref(), Some("userId:4242"));
    assert_eq!(
        (user[0].property_name.as_deref(), user[0].property_value.as_deref()),
        (Some("city"), Some("Arlington"))
    );
}

#[tokio::test]
async fn a_batch_of_150_changes_arrives_in_arrays_of_at_most_100() {
    let s = sim().await;
    let (url, inbox) = receiver(s.config().client_secret).await;
    subscribe(&s, &url, &["*"]);
    s.seed(&SeedRequest { count: 150, ..Default::default() }).unwrap();
    assert_eq!(s.dispatcher().stats().queued, 0, "seeding fires no webhooks");
    let c = client(&s);
    let upserts: Vec<ContactUpsert> = (0..150)
        .map(|i| ContactUpsert {
            email: format!("person{i}@example.com"),
            properties: props(&[("jobtitle", "Engineer")]),
        })
        .collect();
    let out = c.batch_upsert_contacts(&upserts).await;
    assert!(out.errors.is_empty());
    s.dispatcher().wait_idle().await;
    let got = inbox.lock().unwrap().clone();
    let sizes: Vec<usize> = got.iter().map(|(_, _, e)| e.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 150);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
}

#[tokio::test]
async fn merges_name_the_survivor_and_duplicates_can_be_switched_on() {
    let s = sim().await;
    let (url, inbox) = receiver(s.config().client_secret).await;
    subscribe(&s, &url, &[]);
    s.dispatcher().set_options(DeliveryOptions { duplicate_rate: 1.0, ..Default::default() });
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let c = client(&s);
    let survivor = c.merge_contacts(&ids[0], &ids[1]).await.unwrap();
    s.dispatcher().wait_idle().await;
    let got = inbox.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "the same delivery twice");
    assert_eq!(got[0].2, got[1].2);
    let merge = &got[0].2[0];
    assert_eq!(merge.subscription_type, SubscriptionType::ContactMerge);
    assert_eq!(merge.merge_survivor(), Some(survivor.id.parse().unwrap()), "the new record (newObjectId)");
    assert_eq!(merge.primary_object_id, Some(ids[0].parse().unwrap()));
    assert_eq!(merge.merged_object_ids, vec![ids[1].parse::<u64>().unwrap()]);
    assert_eq!(s.dispatcher().stats().duplicated, 1);
}
