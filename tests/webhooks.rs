//! The MailerLite webhooks a connection gets: registered by activation (two, each with its own
//! secret), found again instead of made twice, checked and repaired by every scan, moved by a
//! new API key, and shown in the status with the HubSpot side's last delivery. Everything goes
//! through the config API, the apps' APIs and their webhooks.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::WebhookTarget;
use hmsync_engine::adapters::{load_credentials, save_credentials};
use hmsync_engine::ml_webhooks::{BATCHED_EVENTS, INSTANT_EVENTS};
use hmsync_sandbox::common::{FaultSpec, people::person};
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{FaultSettings, MailerLiteConfig, SeedSpec, UserEdit};
use serde_json::{Value, json};

fn config() -> ConnectionConfig {
    let mut c = ConnectionConfig::new("webhooks");
    c.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")];
    c
}

async fn seeded(options: Options) -> Harness {
    let h = Harness::start(options).await;
    h.hubspot.seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 6, start_index: 3, ..Default::default() }).unwrap();
    h
}

/// The account's webhooks at our URL for `id`, as MailerLite lists them.
async fn our_webhooks(h: &Harness, id: &str) -> Vec<hmsync_mailerlite::Webhook> {
    let url = format!("{}/webhooks/mailerlite/{id}", h.api_url);
    h.ml_client().webhooks().await.unwrap().into_iter().filter(|w| w.url == url).collect()
}

fn sorted(events: &[String]) -> Vec<String> {
    let mut e = events.to_vec();
    e.sort();
    e
}

fn expected(events: &[&str]) -> Vec<String> {
    sorted(&events.iter().map(|e| e.to_string()).collect::<Vec<_>>())
}

/// A MailerLite user edit of `person(n)`'s city.
fn edit_city(h: &Harness, n: u64, city: &str) {
    let edit = UserEdit { fields: [("city".to_string(), json!(city))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&person(n).email, &edit).unwrap();
}

fn hubspot_city(h: &Harness, n: u64) -> Value {
    h.hubspot.contact_by_email(&person(n).email).unwrap()["properties"]["city"].clone()
}

/// Both webhooks exist once, as they should be, and the stored secrets are theirs.
async fn assert_registered(h: &Harness, id: &str) -> Vec<hmsync_mailerlite::Webhook> {
    let hooks = our_webhooks(h, id).await;
    assert_eq!(hooks.len(), 2, "exactly two webhooks: {hooks:?}");
    let instant = hooks.iter().find(|w| !w.batchable).expect("the subscriber-changes webhook");
    let batched = hooks.iter().find(|w| w.batchable).expect("the batched webhook");
    assert_eq!(sorted(&instant.events), expected(&INSTANT_EVENTS));
    assert_eq!(sorted(&batched.events), expected(&BATCHED_EVENTS));
    assert!(instant.enabled && batched.enabled && !instant.is_blocked && !batched.is_blocked);
    let credentials = load_credentials(&*h.secrets, id).await.unwrap();
    assert_eq!(credentials.mailerlite_webhook_secret.as_deref(), Some(instant.secret.as_str()));
    assert_eq!(credentials.mailerlite_batched_webhook_secret.as_deref(), Some(batched.secret.as_str()));
    hooks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_registers_two_webhooks_once_and_the_status_shows_both_apps() {
    let h = seeded(Options::default()).await;
    let id = h.connect("c1", config()).await;
    assert_eq!(h.status(&id).await["webhooks"]["mailerlite"]["state"], "not_registered");
    h.activate(&id).await;
    let hooks = assert_registered(&h, &id).await;
    let status = h.status(&id).await;
    let ml = &status["webhooks"]["mailerlite"];
    assert_eq!(ml["state"], "registered", "{ml}");
    assert_eq!(ml["url"], json!(format!("{}/webhooks/mailerlite/{id}", h.api_url)));
    assert_eq!(ml["hooks"].as_array().unwrap().len(), 2);
    assert_eq!(ml["problem"], Value::Null);
    assert!(!status.to_string().contains(&hooks[0].secret), "no secret in the status");

    // A change each way arrives by webhook; the status says when each app last delivered.
    let contact = h.hubspot.contact_by_email(&person(4).email).unwrap()["id"].as_str().unwrap().parse::<u64>().unwrap();
    let mut props = serde_json::Map::new();
    props.insert("firstname".into(), json!("Hooked"));
    h.hubspot.user_edit_contact(contact, &props, 7).unwrap();
    edit_city(&h, 5, "Nairobi");
    h.settle().await;
    assert_eq!(hubspot_city(&h, 5), json!("Nairobi"));
    let status = h.status(&id).await;
    for app in ["hubspot", "mailerlite"] {
        let at = status["webhooks"][app]["last_delivery_at_ms"].as_i64();
        assert!(at.is_some_and(|t| t > 0), "{app}: {}", status["webhooks"]);
    }

    // A scan (sync now) finds them as they are: no new webhook, no new secret, nothing repaired.
    h.mailerlite.instrumentation().stats.reset();
    h.sync_now(&id).await;
    h.settle().await;
    let stats = h.mailerlite.stats();
    assert_eq!(stats.requests("GET /api/webhooks"), 1, "one listing per scan when all is well");
    assert_eq!(stats.requests_matching("POST /api/webhooks") + stats.requests_matching("PUT /api/webhooks"), 0);
    let again = assert_registered(&h, &id).await;
    assert_eq!(
        again.iter().map(|w| (&w.id, &w.secret)).collect::<Vec<_>>(),
        hooks.iter().map(|w| (&w.id, &w.secret)).collect::<Vec<_>>()
    );
    assert_eq!(h.status(&id).await["webhooks"]["mailerlite"]["repairs"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_timed_out_is_found_by_listing_and_never_made_twice() {
    let h = seeded(Options::default()).await;
    let id = h.connect("c1", config()).await;
    // MailerLite makes the webhook, but the answer comes after the client gave up (5 s).
    h.mailerlite.set_faults(&FaultSettings {
        faults: vec![FaultSpec {
            endpoint: "POST /api/webhooks".into(),
            hang_rate: 1.0,
            hang_ms: 6_000,
            ..Default::default()
        }],
        seed: 3,
    });
    h.activate(&id).await;
    // Each create was made, and its answer never came: the listing after it found the webhook.
    assert_eq!(h.mailerlite.instrumentation().faults.counts().hangs, 2, "one create per webhook, none sent again");
    h.mailerlite.set_faults(&FaultSettings::default());
    assert_registered(&h, &id).await;
    assert_eq!(h.status(&id).await["webhooks"]["mailerlite"]["state"], "registered");
    edit_city(&h, 5, "Kigali");
    h.settle().await;
    assert_eq!(hubspot_city(&h, 5), json!("Kigali"), "deliveries are signed with the stored secrets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scan_repairs_a_deleted_a_disabled_and_a_blocked_webhook() {
    let h = seeded(Options::default()).await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let hooks = assert_registered(&h, &id).await;
    let instant = hooks.iter().find(|w| !w.batchable).unwrap();
    let batched = hooks.iter().find(|w| w.batchable).unwrap();
    // A user deletes one in MailerLite and switches the other off.
    let ml = h.ml_client();
    ml.delete_webhook(&instant.id).await.unwrap();
    let off = hmsync_mailerlite::WebhookUpdate { enabled: Some(false), ..Default::default() };
    ml.update_webhook(&batched.id, &off).await.unwrap();
    edit_city(&h, 5, "Lost");
    h.settle().await;
    assert_ne!(hubspot_city(&h, 5), json!("Lost"), "no webhook: the change waits for the scan");

    h.sync_now(&id).await;
    h.settle().await;
    let repaired = assert_registered(&h, &id).await;
    assert!(repaired.iter().any(|w| w.id == batched.id), "the disabled one is enabled again, not replaced");
    assert!(!repaired.iter().any(|w| w.id == instant.id));
    assert_eq!(hubspot_city(&h, 5), json!("Lost"), "the scan found the change");
    let status = h.status(&id).await;
    assert_eq!(status["webhooks"]["mailerlite"]["state"], "registered");
    assert_eq!(status["webhooks"]["mailerlite"]["repairs"], 1);
    edit_city(&h, 5, "Found");
    h.settle().await;
    assert_eq!(hubspot_city(&h, 5), json!("Found"), "the re-created webhook delivers, signed with its stored secret");

    // A blocked webhook is replaced by a new one.
    let new_instant = repaired.iter().find(|w| !w.batchable).unwrap().id.clone();
    assert!(h.mailerlite.set_webhook_blocked(&new_instant, true));
    h.sync_now(&id).await;
    h.settle().await;
    let replaced = assert_registered(&h, &id).await;
    assert!(!replaced.iter().any(|w| w.id == new_instant), "the blocked webhook is gone");
    assert_eq!(h.status(&id).await["webhooks"]["mailerlite"]["repairs"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_mailerlite_disabled_after_failing_deliveries_is_enabled_again_by_the_scan() {
    let options = Options {
        // MailerLite's 3 days of errors, shrunk so the first failed delivery disables it.
        mailerlite: MailerLiteConfig { webhook_disable_after_ms: 1, ..MailerLiteConfig::default() },
        ..Options::default()
    };
    let h = seeded(options).await;
    h.mailerlite.dispatcher().set_options(hmsync_sandbox::common::DeliveryOptions {
        retry_delays_ms: vec![1, 1, 1],
        ..h.mailerlite.dispatcher().options()
    });
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    // The receiver refuses MailerLite's deliveries (its stored secrets were lost).
    let mut credentials = load_credentials(&*h.secrets, &id).await.unwrap();
    credentials.mailerlite_webhook_secret = Some("lost".into());
    credentials.mailerlite_batched_webhook_secret = None;
    save_credentials(&*h.secrets, &id, &credentials).await.unwrap();
    edit_city(&h, 5, "Refused");
    h.settle().await;
    let hooks = our_webhooks(&h, &id).await;
    let instant = hooks.iter().find(|w| !w.batchable).unwrap();
    assert!(!instant.enabled, "MailerLite set it inactive: {instant:?}");
    assert_eq!(instant.response_code, Some(401));

    h.sync_now(&id).await;
    h.settle().await;
    assert_registered(&h, &id).await;
    assert_eq!(hubspot_city(&h, 5), json!("Refused"), "the scan found the change");
    edit_city(&h, 5, "Delivered");
    h.settle().await;
    assert_eq!(hubspot_city(&h, 5), json!("Delivered"));
    let status = h.status(&id).await;
    let hook = status["webhooks"]["mailerlite"]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["role"] == "subscriber_changes")
        .unwrap()
        .clone();
    assert_eq!(hook["enabled"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_mailerlite_can_reach_the_status_says_changes_wait_for_the_scan() {
    let h = seeded(Options::default()).await;
    let id = h.connect("c1", config()).await;
    let why = "this deployment has no public URL, so MailerLite cannot send webhooks".to_string();
    h.engine.activate(&id, &WebhookTarget::Unreachable(why.clone())).await.unwrap();
    h.settle().await;
    assert!(our_webhooks(&h, &id).await.is_empty());
    let status = h.status(&id).await;
    let ml = &status["webhooks"]["mailerlite"];
    assert_eq!(ml["state"], "no_public_url", "{ml}");
    assert_eq!(ml["problem"], json!(why));
    // Once the deployment has a URL, "sync now" registers them there.
    h.sync_now(&id).await;
    h.settle().await;
    assert_registered(&h, &id).await;
    assert_eq!(h.status(&id).await["webhooks"]["mailerlite"]["state"], "registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_api_key_of_the_same_account_keeps_the_webhooks_and_deleting_the_connection_removes_them() {
    let h = seeded(Options::default()).await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let hooks = assert_registered(&h, &id).await;
    // The key is rotated in MailerLite: the old one stops working, the new one is saved.
    h.mailerlite.set_token("ml-rotated-key");
    let (status, body) = h
        .config_api(
            reqwest::Method::PUT,
            &format!("/connections/{id}/credentials"),
            json!({"mailerlite_api_key": "ml-rotated-key"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let kept = our_webhooks(&h, &id).await;
    assert_eq!(
        kept.iter().map(|w| &w.id).collect::<Vec<_>>(),
        hooks.iter().map(|w| &w.id).collect::<Vec<_>>(),
        "the same account: found, not made again"
    );
    edit_city(&h, 5, "Rotated");
    h.settle().await;
    assert_eq!(hubspot_city(&h, 5), json!("Rotated"));

    let (status, _) = h.config_api(reqwest::Method::DELETE, &format!("/connections/{id}"), Value::Null).await;
    assert_eq!(status, 204);
    assert!(our_webhooks(&h, &id).await.is_empty(), "MailerLite stops calling a deleted connection");
}
