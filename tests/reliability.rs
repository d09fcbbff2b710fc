//! Reliability: a crash at every failpoint between an external write and the store update that
//! records it converges after a restart; poison messages reach the dead letters; an exhausted
//! daily limit and revoked credentials pause and resume without losing work; hostile webhook
//! bodies never panic and never enqueue; no secret is stored with the data.

use std::collections::HashMap;
use std::time::Duration;

use hmsync_core::{ConnectionConfig, FieldMapping, HubSpotRule};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::adapters::{Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::failpoint::{self, AFTER_MAILERLITE_WRITES, AFTER_MERGE_REKEYED};
use hmsync_engine::webhook::{HubSpotDelivery, WebhookError};
use hmsync_engine::{EngineSettings, Pause, WebhookTarget};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::{SeedListMembership, SeedRequest};
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use hmsync_store::QueueMessage;
use proptest::prelude::*;
use serde_json::json;

fn config() -> ConnectionConfig {
    let mut c = ConnectionConfig::new("reliability");
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    c
}

/// Runs the harness's own worker until the armed failpoint stopped it.
async fn run_until_crash(h: &Harness, name: &str) {
    for _ in 0..500 {
        let _ = h.worker.run_once().await;
        if h.failpoints.fired().contains(&name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("failpoint {name} never fired");
}

/// Both sides hold every person exactly once, linked once, with equal mapped fields.
async fn assert_converged(h: &Harness, people: usize) {
    let hs: HashMap<String, _> = h
        .all_contacts(&["email", "firstname", "city"])
        .await
        .into_iter()
        .map(|c| (c.email().unwrap().to_string(), c))
        .collect();
    let subscribers = h.all_subscribers().await;
    let ml: HashMap<String, _> = subscribers.iter().map(|s| (s.email.clone(), s)).collect();
    assert_eq!(subscribers.len(), ml.len(), "no email twice in MailerLite");
    assert_eq!((hs.len(), ml.len()), (people, people), "every person once on each side");
    assert_eq!(h.store.count_links("c1").await.unwrap(), people as u64, "each person linked once");
    for (email, c) in &hs {
        let s = ml[email];
        assert_eq!(s.field_text("name").as_deref(), c.prop("firstname"), "{email}");
        assert_eq!(s.field_text("city").as_deref(), c.prop("city"), "{email}");
    }
    let (engine, _) = h.restarted(hmsync_e2e::engine_settings());
    let mut after = None;
    loop {
        let page = engine.store.list_links("c1", after.as_deref(), 100).await.unwrap();
        for l in &page.items {
            assert!(l.is_complete(), "link {} completed: {l:?}", l.id);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(h.dead_letters().await, 0, "no message lost to the dead letters");
}

async fn seeded() -> Harness {
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 30, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 30, start_index: 15, conflict_rate: 0.5, ..Default::default() }).unwrap();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_failpoint_of_the_initial_sync_converges_after_a_restart() {
    // What a run without a crash bills: a crash must not make a contact count less (or twice).
    let clean = seeded().await;
    let id = clean.connect("c1", config()).await;
    clean.activate(&id).await;
    let billed = clean.engine.status(&id).await.unwrap().unique_contacts_this_month;
    assert!(billed > 0);
    for name in [
        failpoint::AFTER_MAILERLITE_WRITES,
        failpoint::AFTER_HUBSPOT_CREATES,
        failpoint::AFTER_HUBSPOT_UPDATES,
        failpoint::AFTER_FIRST_LINK_STORED,
        failpoint::AFTER_SCAN_PAGE_SYNCED,
    ] {
        let h = seeded().await;
        let id = h.connect("c1", config()).await;
        h.failpoints.arm(name);
        h.start_activation(&id).await;
        run_until_crash(&h, name).await;
        // A new process on the same store and queue picks the work up again.
        let (engine, worker) = h.restarted(hmsync_e2e::engine_settings());
        h.settle_with(&worker).await;
        assert_converged(&h, 45).await;
        let status = engine.status(&id).await.unwrap();
        assert_eq!(status.unique_contacts_this_month, billed, "the meter after a crash at {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_merge_rekeyed_the_links_converges_after_a_restart() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let a = h.hubspot.contact_by_email(&person(16).email).unwrap()["id"].as_str().unwrap().parse::<u64>().unwrap();
    let b = h.hubspot.contact_by_email(&person(17).email).unwrap()["id"].as_str().unwrap().parse::<u64>().unwrap();
    h.failpoints.arm(AFTER_MERGE_REKEYED);
    let survivor = h.hubspot.user_merge_contacts(a, b, 7).unwrap();
    h.hubspot.dispatcher().wait_idle().await;
    run_until_crash(&h, AFTER_MERGE_REKEYED).await;
    let (engine, worker) = h.restarted(hmsync_e2e::engine_settings());
    h.settle_with(&worker).await;
    let link = engine.store.link_by_hubspot_id("c1", &survivor.to_string()).await.unwrap().expect("survivor linked");
    assert_eq!(link.email, person(16).email);
    assert_eq!(h.all_subscribers().await.len(), 45, "no subscriber created or deleted");
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_group_removal_before_the_scope_flag_is_stored_converges() {
    let h = Harness::start(Options::default()).await;
    let list = h.hubspot.create_list("Newsletter", "MANUAL", None).unwrap();
    let list_id: u64 =
        list["listId"].as_str().map(|s| s.parse().unwrap()).unwrap_or_else(|| list["listId"].as_u64().unwrap());
    let seeded = h
        .hubspot
        .seed(&SeedRequest { count: 5, lists: vec![SeedListMembership { list_id, rate: 1.0 }], ..Default::default() })
        .unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    h.mailerlite.create_field("industry", hmsync_sandbox::mailerlite::FieldType::Text).unwrap();
    let mut c = config();
    c.target_group = Some(group.clone());
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec![list_id.to_string()] };
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    h.hubspot.change_list_members(list_id, &[], &[seeded.ids[2]]).unwrap();
    h.failpoints.arm(AFTER_MAILERLITE_WRITES);
    h.engine.sync_now(&id).await.unwrap();
    run_until_crash(&h, AFTER_MAILERLITE_WRITES).await;
    let (engine, worker) = h.restarted(hmsync_e2e::engine_settings());
    h.settle_with(&worker).await;
    let s = h.mailerlite.subscriber(&person(2).email).unwrap();
    assert!(!s.groups.unwrap_or_default().iter().any(|g| g.id == group), "left the target group");
    assert_eq!(s.status, "active", "never unsubscribed");
    let link = engine.store.link_by_email("c1", &person(2).email).await.unwrap().unwrap();
    assert!(!link.hs_in_scope && !link.in_target_group, "the scope flag caught up: {link:?}");
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_succeed_goes_to_the_dead_letters_at_once_with_its_error() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    h.queue
        .send_batch(&[QueueMessage {
            group_id: id.clone(),
            dedup_id: "poison".into(),
            body: "{\"type\":\"nonsense\"}".into(),
        }])
        .await
        .unwrap();
    // A change queued behind it in the same connection's group.
    let mut props = serde_json::Map::new();
    props.insert("city".into(), json!("Quito"));
    let contact = h.hubspot.contact_by_email(&person(3).email).unwrap()["id"].as_str().unwrap().parse().unwrap();
    h.hubspot.user_edit_contact(contact, &props, 7).unwrap();
    h.settle().await;

    let dead = h.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].group_id, id);
    assert_eq!(dead[0].receive_count, 1, "set aside on its first receive, not after using up the receive limit");
    let error = dead[0].last_error.as_deref().expect("its last error");
    assert!(error.contains("not a sync message"), "{error}");
    // The change behind it went through.
    assert_eq!(h.mailerlite.subscriber(&person(3).email).unwrap().fields.get("city"), Some(&json!("Quito")));

    // The status counts it; the connection's dead letters list it with its error (the body stays
    // in the queue).
    let get = |path: String| {
        let request = reqwest::Client::new().get(format!("{}{path}", h.api_url)).bearer_auth(&h.admin_token);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    assert_eq!(get(format!("/connections/{id}/status")).await["dead_letters"], 1);
    let letters = get(format!("/connections/{id}/dead-letters")).await;
    let listed = &letters["dead_letters"][0];
    assert_eq!(listed["message_id"], json!(dead[0].message_id));
    assert_eq!(listed["kind"], "unreadable");
    assert_eq!(listed["last_error"], json!(error));
    assert!(listed.get("body").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_daily_limit_makes_the_connection_wait_and_resume_by_itself() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let (engine, worker) =
        h.restarted(EngineSettings { daily_limit_probe: Duration::from_millis(300), ..hmsync_e2e::engine_settings() });
    h.hubspot.set_daily_limit_exhausted(true);
    let edit = UserEdit { fields: [("city".to_string(), json!("Accra"))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&person(20).email, &edit).unwrap();
    h.mailerlite.dispatcher().wait_idle().await;
    for _ in 0..5 {
        let _ = worker.run_once().await;
    }
    let status = engine.status(&id).await.unwrap();
    assert!(status.parked_messages >= 1, "the work waits parked, not bouncing through the queue");
    let problem = status.problem.expect("the status says why it waits");
    assert!(problem.message.contains("daily"), "{problem:?}");
    assert!(problem.action.contains("resumes by itself"), "{problem:?}");
    h.hubspot.set_daily_limit_exhausted(false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The schedule's tick releases waits that are over.
    engine.schedule_tick().await.unwrap();
    h.settle_with(&worker).await;
    let c = h.hubspot.contact_by_email(&person(20).email).unwrap();
    assert_eq!(c["properties"]["city"], json!("Accra"), "the change arrived after the reset");
    assert!(engine.status(&id).await.unwrap().problem.is_none(), "the problem cleared by itself");
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elapsed_daily_limit_wait_is_ended_by_the_next_message_without_the_schedule() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let (engine, worker) =
        h.restarted(EngineSettings { daily_limit_probe: Duration::from_millis(300), ..EngineSettings::default() });
    h.hubspot.set_daily_limit_exhausted(true);
    let edit = |city: &str| UserEdit {
        fields: [("city".to_string(), json!(city))].into_iter().collect(),
        ..Default::default()
    };
    h.mailerlite.user_edit(&person(20).email, &edit("Accra")).unwrap();
    h.mailerlite.dispatcher().wait_idle().await;
    for _ in 0..5 {
        let _ = worker.run_once().await;
    }
    let status = engine.status(&id).await.unwrap();
    assert!(status.parked_messages >= 1 && status.waiting_until_ms.is_some(), "waits parked: {status:?}");
    h.hubspot.set_daily_limit_exhausted(false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // No tick: the next change's message finds the wait over, goes ahead and brings the parked
    // work back with it.
    h.mailerlite.user_edit(&person(21).email, &edit("Lagos")).unwrap();
    h.settle_with(&worker).await;
    for (p, city) in [(20, "Accra"), (21, "Lagos")] {
        let c = h.hubspot.contact_by_email(&person(p).email).unwrap();
        assert_eq!(c["properties"]["city"], json!(city), "person {p}");
    }
    let status = engine.status(&id).await.unwrap();
    assert_eq!((status.parked_messages, status.waiting_until_ms), (0, None));
    assert!(status.problem.is_none(), "the problem cleared by itself: {:?}", status.problem);
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_pause_the_connection_and_new_ones_resume_it_without_losing_work() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let good = h.hubspot.config().token.clone();
    let mut creds = h.engine.credentials(&id).await.unwrap();
    creds.hubspot = Some(HubSpotAuth::Token { access_token: "pat-na1-revoked".into() });
    save_credentials(&*h.engine.secrets, &id, &creds).await.unwrap();
    h.engine.apis.forget(&id);
    let edit = UserEdit { fields: [("name".to_string(), json!("Kept"))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&person(21).email, &edit).unwrap();
    h.settle().await;
    let status = h.engine.status(&id).await.unwrap();
    assert!(matches!(status.pause, Some(Pause::Credentials { .. })), "{:?}", status.pause);
    assert!(status.problem.as_ref().is_some_and(|p| p.action.contains("Reconnect HubSpot")), "{:?}", status.problem);
    assert!(status.parked_messages >= 1, "the work is parked, not lost");
    let settings = hmsync_engine::adapters::ApiSettings {
        hubspot_base_url: h.hubspot.base_url().to_string(),
        mailerlite_base_url: h.mailerlite.base_url().to_string(),
        time_scale: h.hubspot.config().time_scale,
        hubspot_burst_limit: 100,
        fast_retries: true,
    };
    let target = WebhookTarget::Public(h.api_url.clone());
    let refused = h
        .engine
        .set_credentials(
            &id,
            Credentials {
                hubspot: Some(HubSpotAuth::Token { access_token: "still-wrong".into() }),
                ..Default::default()
            },
            &settings,
            &target,
        )
        .await
        .unwrap();
    assert!(refused.is_err(), "a wrong token is refused before it is saved");
    h.engine
        .set_credentials(
            &id,
            Credentials { hubspot: Some(HubSpotAuth::Token { access_token: good }), ..Default::default() },
            &settings,
            &target,
        )
        .await
        .unwrap()
        .expect("the right token is accepted");
    h.settle().await;
    assert!(h.engine.status(&id).await.unwrap().pause.is_none());
    let c = h.hubspot.contact_by_email(&person(21).email).unwrap();
    assert_eq!(c["properties"]["firstname"], json!("Kept"), "the parked change arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_with_the_data() {
    let h = seeded().await;
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    let creds = h.engine.credentials(&id).await.unwrap();
    let secrets = [
        h.hubspot.config().token.clone(),
        h.hubspot.config().client_secret.clone(),
        h.mailerlite.config().token.clone(),
        creds.mailerlite_webhook_secret.clone().unwrap(),
        creds.mailerlite_batched_webhook_secret.clone().unwrap(),
    ];
    for file in ["store.db", "store.db-wal", "queue.db", "queue.db-wal"] {
        let path = h.dir.path().join(file);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{file} contains a secret");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any body, any headers: a 400/401/404 answer, never a panic, never anything enqueued.
    #[test]
    fn hostile_webhook_bodies_are_refused_without_panicking(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            "\\PC{0,300}".prop_map(|s| s.into_bytes()),
            Just(br#"[{"portalId":62515,"subscriptionType":"contact.creation","objectId":1,"occurredAt":1}]"#.to_vec()),
            Just(br#"{"events":[{"type":"campaign.open","subscriber":{"id":"1"}}]}"#.to_vec()),
        ],
        signature in "\\PC{0,100}",
        timestamp in prop_oneof![Just("".to_string()), "[0-9]{1,15}", "\\PC{0,20}"],
    ) {
        runtime().block_on(async {
            let h = fuzz_harness().await;
            let hs = h.engine.hubspot_webhook(HubSpotDelivery {
                method: "POST",
                uri: "http://127.0.0.1/webhooks/hubspot",
                body: &body,
                signature_v3: Some(&signature),
                timestamp: Some(&timestamp),
            }).await;
            prop_assert!(hs.is_err(), "an unsigned HubSpot body was accepted");
            let ml = h.engine.mailerlite_webhook("c1", &body, Some(&signature)).await;
            prop_assert!(ml.is_err(), "an unsigned MailerLite body was accepted");
            prop_assert!(h.queue.receive(10, Duration::from_secs(1)).await.unwrap().is_empty(), "nothing enqueued");
            Ok(())
        })?;
    }
}

/// One runtime for every fuzz case: the shared harness's servers run on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// One connected harness shared by the fuzz cases (starting one per case would be slow).
async fn fuzz_harness() -> &'static Harness {
    static CELL: tokio::sync::OnceCell<Harness> = tokio::sync::OnceCell::const_new();
    CELL.get_or_init(|| async {
        let h = Harness::start(Options::default()).await;
        let id = h.connect("c1", config()).await;
        h.store.add_route(h.hubspot.config().portal_id, &id).await.unwrap();
        h
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_receivers_limit_is_refused_before_parsing() {
    let h = Harness::start(Options::default()).await;
    let id = h.connect("c1", config()).await;
    let client = reqwest::Client::new();
    let limits = [
        (format!("{}/webhooks/hubspot", h.api_url), 1024 * 1024),
        (format!("{}/webhooks/mailerlite/{id}", h.api_url), 6 * 1024 * 1024),
    ];
    for (url, limit) in limits {
        let r = client.post(&url).body(vec![b'['; limit + 1]).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 413, "{url}");
    }
}

/// Any JSON value, a few levels deep: what a broken or hostile sender could put anywhere.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,14}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A real event with some of its fields replaced by anything.
fn mutated(template: serde_json::Value, keep: &'static [&'static str]) -> impl Strategy<Value = serde_json::Value> {
    let keys: Vec<String> =
        template.as_object().unwrap().keys().filter(|k| !keep.contains(&k.as_str())).cloned().collect();
    let n = keys.len();
    prop::collection::vec((0..n, any_json(), any::<bool>()), 0..4).prop_map(move |edits| {
        let mut event = template.clone();
        for (i, value, remove) in edits {
            let map = event.as_object_mut().unwrap();
            if remove {
                map.remove(&keys[i]);
            } else {
                map.insert(keys[i].clone(), value);
            }
        }
        event
    })
}

/// One activated connection for the signed fuzz cases, apart from [`fuzz_harness`] (whose
/// cases assert that nothing is enqueued, while signed well-formed events are).
async fn signed_fuzz_harness() -> &'static (Harness, String) {
    static CELL: tokio::sync::OnceCell<(Harness, String)> = tokio::sync::OnceCell::const_new();
    CELL.get_or_init(|| async {
        let h = seeded().await;
        let id = h.connect("c1", config()).await;
        h.store.add_route(h.hubspot.config().portal_id, &id).await.unwrap();
        h.activate(&id).await;
        let ml_secret = hmsync_engine::adapters::load_credentials(&*h.secrets, &id)
            .await
            .unwrap()
            .mailerlite_webhook_secret
            .expect("the MailerLite webhook secret saved at registration");
        (h, ml_secret)
    })
    .await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Correctly signed bodies reach the parsers and the event handling: whatever their shape, the
    /// answer is an acceptance or a 400 (a 401 only when the body names no connected portal),
    /// never a panic and never a 5xx.
    #[test]
    fn signed_hostile_webhook_bodies_are_parsed_or_refused_with_400(
        hubspot_body in prop_oneof![
            any_json(),
            prop::collection::vec(
                mutated(
                    json!({"eventId": 1, "subscriptionId": 2, "portalId": 0, "appId": 3, "occurredAt": 1_700_000_000_000_i64,
                        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 1,
                        "propertyName": "firstname", "propertyValue": "Ann", "changeSource": "CRM_UI"}),
                    &["portalId"],
                ),
                0..4,
            ).prop_map(serde_json::Value::Array),
        ],
        mailerlite_body in prop_oneof![
            any_json(),
            mutated(
                json!({"id": "1", "email": "a@example.com", "status": "unsubscribed", "fields": {"name": "A"},
                    "event": "subscriber.unsubscribed", "account_id": 1, "created_at": "2026-08-27T15:06:41.000000Z"}),
                &[],
            ),
            prop::collection::vec(
                mutated(
                    json!({"type": "campaign.open", "subscriber": {"id": "1", "email": "a@example.com", "status": "active"},
                        "campaign": {"id": "9", "name": "Spring"}, "created_at": "2026-08-27T15:06:41.000000Z"}),
                    &[],
                ),
                0..4,
            ).prop_map(|events| json!({"events": events})),
        ],
    ) {
        runtime().block_on(async {
            let (h, ml_secret) = signed_fuzz_harness().await;
            let portal = h.hubspot.config().portal_id;
            let names_portal = hubspot_body.as_array().is_some_and(|events| {
                !events.is_empty() && events.iter().all(|e| e.get("portalId").is_some())
            });
            let mut hubspot_body = hubspot_body;
            if let Some(events) = hubspot_body.as_array_mut() {
                for e in events.iter_mut().filter_map(|e| e.as_object_mut()) {
                    if e.contains_key("portalId") {
                        e.insert("portalId".into(), json!(portal));
                    }
                }
            }
            let body = serde_json::to_vec(&hubspot_body).unwrap();
            let uri = "http://127.0.0.1/webhooks/hubspot";
            let now = hmsync_http::now_ms().to_string();
            let signature = hmsync_hubspot::webhooks::sign_v3(&h.hubspot.config().client_secret, "POST", uri, &body, &now);
            let hs = h.engine.hubspot_webhook(HubSpotDelivery {
                method: "POST",
                uri,
                body: &body,
                signature_v3: Some(&signature),
                timestamp: Some(&now),
            }).await;
            match &hs {
                Ok(_) | Err(WebhookError::BadRequest(_)) => {}
                Err(WebhookError::Unauthorized(_)) if !names_portal => {}
                Err(e) => prop_assert!(false, "HubSpot body {hubspot_body}: {e:?}"),
            }

            let body = serde_json::to_vec(&mailerlite_body).unwrap();
            let signature = hmsync_sandbox::mailerlite::sign_webhook(ml_secret, &body);
            let ml = h.engine.mailerlite_webhook("c1", &body, Some(&signature)).await;
            prop_assert!(
                matches!(ml, Ok(_) | Err(WebhookError::BadRequest(_))),
                "MailerLite body {mailerlite_body}: {ml:?}"
            );
            Ok(())
        })?;
    }
}
