//! Every client endpoint against the sandbox, and each MailerLite quirk the sync depends on.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use common::*;
use futures::TryStreamExt;
use hmsync_mailerlite::*;
use hmsync_sandbox::mailerlite::{
    CampaignSpec, MailerLiteConfig, Recipients, SeedSpec, SegmentRule, Status as SimStatus, UserEdit,
};
use serde_json::json;

#[tokio::test]
async fn subscriber_lifecycle_and_quirks() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let up = c
        .upsert_subscriber(
            &SubscriberUpsert::new("Ada@Example.COM")
                .field("name", "Ada")
                .field("city", "Oslo")
                .field("no_such_key", "x"),
        )
        .await
        .unwrap();
    assert!(up.created);
    assert_eq!(up.subscriber.email, "ada@example.com", "emails are lowercased");
    assert!(!up.subscriber.fields.contains_key("no_such_key"), "unknown field keys are ignored");
    let id = up.subscriber.id.clone();
    assert_eq!(id.len(), 18);

    // Non-destructive upsert; explicit null clears.
    let again = c.upsert_subscriber(&SubscriberUpsert::new("ada@example.com").clear("city")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.subscriber.field_text("name").as_deref(), Some("Ada"));
    assert_eq!(again.subscriber.field_text("city"), None);

    let by_email = c.get_subscriber("ADA@example.com").await.unwrap().unwrap();
    assert_eq!(by_email.id, id);
    assert!(by_email.groups.is_some(), "single GETs include groups");
    assert_eq!(c.get_subscriber("nobody@example.com").await.unwrap(), None);

    let updated = c.update_subscriber(&id, &SubscriberUpdate::new().field("last_name", "Lovelace")).await.unwrap();
    assert_eq!(updated.field_text("last_name").as_deref(), Some("Lovelace"));
    assert_eq!(c.count_subscribers(Statuses::All).await.unwrap(), 1);

    assert!(c.delete_subscriber(&id).await.unwrap());
    assert_eq!(c.get_subscriber(&id).await.unwrap(), None, "deleted subscribers are 404");
    assert!(!c.delete_subscriber(&id).await.unwrap(), "a second delete reports it was already gone");
    assert_eq!(c.count_subscribers(Statuses::All).await.unwrap(), 0);

    let back = c.upsert_subscriber(&SubscriberUpsert::new("ada@example.com")).await.unwrap();
    assert!(back.created, "a deleted subscriber is re-created by POST");
    assert_eq!(back.subscriber.id, id, "with its id (sandbox choice)");

    let forgotten = c.forget_subscriber(&id).await.unwrap();
    assert!(forgotten.deleted_at.is_some() && forgotten.forget_at.is_some());
    let fresh = c.upsert_subscriber(&SubscriberUpsert::new("ada@example.com")).await.unwrap();
    assert!(fresh.created);
    assert_ne!(fresh.subscriber.id, id, "a forgotten subscriber comes back as a new one");
    assert!(sim.subscriber(&id).unwrap().forget_at.is_some());
}

#[tokio::test]
async fn put_replaces_groups_only_when_asked() {
    let (_sim, c) = setup(MailerLiteConfig::default()).await;
    let a = c.create_group("A").await.unwrap();
    let b = c.create_group("B").await.unwrap();
    let s = c.upsert_subscriber(&SubscriberUpsert::new("g@example.com").add_to_group(&a.id)).await.unwrap().subscriber;
    let kept = c.update_subscriber(&s.id, &SubscriberUpdate::new().field("name", "G")).await.unwrap();
    assert_eq!(kept.groups.unwrap().iter().map(|g| g.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&a.id));
    let replaced =
        c.update_subscriber(&s.id, &SubscriberUpdate::new().replace_groups_with(vec![b.id.clone()])).await.unwrap();
    assert_eq!(replaced.groups.unwrap().iter().map(|g| g.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&b.id));
    let upserted = c.upsert_subscriber(&SubscriberUpsert::new("g@example.com").add_to_group(&a.id)).await.unwrap();
    let ids: BTreeSet<String> = upserted.subscriber.groups.unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(ids, BTreeSet::from([a.id, b.id]), "POST only adds groups");
}

#[tokio::test]
async fn reactivation_is_refused_as_a_known_state_and_not_retried() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let s = c.upsert_subscriber(&SubscriberUpsert::new("u@example.com")).await.unwrap().subscriber;
    sim.unsubscribe_as_person(&s.id).unwrap();
    sim.reset_stats();
    let err = c.upsert_subscriber(&SubscriberUpsert::new("u@example.com").status(Status::Active)).await.unwrap_err();
    assert!(matches!(&err, Error::ReactivationRefused { subscriber, .. } if subscriber == "u@example.com"), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("Only the person can resubscribe"));
    let err = c.update_subscriber(&s.id, &SubscriberUpdate::new().status(Status::Active)).await.unwrap_err();
    assert!(matches!(err, Error::ReactivationRefused { .. }));
    let stats = sim.stats();
    assert_eq!(stats.requests("POST /api/subscribers"), 1, "not retried");
    assert_eq!(stats.requests("PUT /api/subscribers/{id}"), 1, "not retried");
    // Fields can still be updated while the status stays.
    let still =
        c.upsert_subscriber(&SubscriberUpsert::new("u@example.com").field("name", "U")).await.unwrap().subscriber;
    assert_eq!(still.status, Status::Unsubscribed);
}

#[tokio::test]
async fn validation_errors_are_field_level() {
    let (_sim, c) = setup(MailerLiteConfig::default()).await;
    let field = c.create_field("Employees", FieldType::Number).await.unwrap();
    assert_eq!(field.key, "employees");
    let err = c.upsert_subscriber(&SubscriberUpsert::new("not-an-email").field("employees", "many")).await.unwrap_err();
    assert_eq!(err.field_errors("email"), ["The email must be a valid email address."]);
    assert_eq!(err.field_errors("fields.employees"), ["The fields.employees must be a number."]);
    assert!(err.to_string().contains("fields.employees"));
    let ok = c.upsert_subscriber(&SubscriberUpsert::new("n@example.com").field("employees", "12")).await.unwrap();
    assert_eq!(ok.subscriber.fields["employees"], json!(12), "numeric strings are stored as numbers");
}

#[tokio::test]
async fn fields_list_and_create() {
    let (_sim, c) = setup(MailerLiteConfig::default()).await;
    let fields = c.fields().await.unwrap();
    let mut defaults: Vec<(String, String)> =
        fields.iter().filter(|f| f.is_default).map(|f| (f.id.clone(), f.key.clone())).collect();
    defaults.sort_by_key(|(id, _)| id.parse::<u32>().unwrap());
    let keys: Vec<&str> = defaults.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["name", "last_name", "company", "country", "city", "phone", "state", "z_i_p"]);
    let zip = c.create_field("ZIP", FieldType::Text).await;
    assert!(matches!(zip, Err(Error::Validation { .. })), "ZIP derives z_i_p, which exists");
    let created = c.create_field("Signup Date", FieldType::Date).await.unwrap();
    assert_eq!((created.key.as_str(), created.kind), ("signup_date", FieldType::Date));
    let dup = c.create_field("Signup Date", FieldType::Date).await.unwrap_err();
    assert_eq!(dup.field_errors("name"), ["Field name must be unique"]);
}

#[tokio::test]
async fn groups_members_default_to_active_and_assignment() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let g = c.ensure_group("Newsletter").await.unwrap();
    assert_eq!(c.ensure_group("Newsletter").await.unwrap().id, g.id, "ensure finds the existing group");
    sim.seed(&SeedSpec {
        count: 40,
        unsubscribed_rate: 0.3,
        bounced_rate: 0.1,
        group_ids: vec![g.id.clone()],
        ..Default::default()
    })
    .unwrap();
    let active: Vec<Subscriber> = c.group_members(&g.id, Statuses::Only(Status::Active)).try_collect().await.unwrap();
    assert!(active.iter().all(|s| s.status == Status::Active));
    let all: Vec<Subscriber> = c.group_members(&g.id, Statuses::All).try_collect().await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.len() > active.len());
    let group = c.get_group(&g.id).await.unwrap().unwrap();
    assert_eq!(group.active_count as usize, active.len());

    let s = c.upsert_subscriber(&SubscriberUpsert::new("solo@example.com")).await.unwrap().subscriber;
    let other = c.create_group("Other").await.unwrap();
    assert_eq!(c.assign_to_group(&s.id, &other.id).await.unwrap().id, other.id);
    assert_eq!(c.get_group(&other.id).await.unwrap().unwrap().active_count, 1);
    assert!(c.unassign_from_group(&s.id, &other.id).await.unwrap());
    assert_eq!(c.get_group(&other.id).await.unwrap().unwrap().active_count, 0);
    assert_eq!(c.rename_group(&other.id, "Renamed").await.unwrap().name, "Renamed");
    assert_eq!(c.groups().await.unwrap().len(), 2);
    assert!(c.delete_group(&other.id).await.unwrap());
    assert_eq!(c.get_group(&other.id).await.unwrap(), None);
}

#[tokio::test]
async fn segment_members_are_active_only() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    sim.seed(&SeedSpec { count: 60, unsubscribed_rate: 0.25, ..Default::default() }).unwrap();
    let seg =
        sim.create_segment("Big companies", SegmentRule::NumberGreaterThan { key: "employees".into(), value: 2500.0 });
    let segments = c.segments().await.unwrap();
    assert_eq!(segments.len(), 1);
    let members: Vec<Subscriber> = c.segment_members(&seg, Status::Active).try_collect().await.unwrap();
    assert_eq!(members.len() as u64, segments[0].total);
    assert!(members.iter().all(|s| s.status == Status::Active && s.fields["employees"].as_f64().unwrap() > 2500.0));
    assert!(members.iter().all(|s| s.groups.is_some()), "segment members include groups");
    let unsubscribed: Vec<Subscriber> = c.segment_members(&seg, Status::Unsubscribed).try_collect().await.unwrap();
    assert!(unsubscribed.iter().all(|s| s.status == Status::Unsubscribed));
}

#[tokio::test]
async fn segment_reads_continue_through_short_and_empty_pages_while_a_cursor_is_given() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let g = sim.create_group("Few");
    sim.seed(&SeedSpec { count: 600, ..Default::default() }).unwrap();
    sim.seed(&SeedSpec { count: 2, start_index: 600, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    sim.seed(&SeedSpec { count: 600, start_index: 602, ..Default::default() }).unwrap();
    let seg = sim.create_segment("In Few", SegmentRule::InGroup { group_id: g });
    // 1202 subscribers read 500 at a time: a page with the 2 members, two without.
    let first = c.segment_members_page(&seg, Status::Active, None).await.unwrap();
    assert!(first.data.is_empty() && first.meta.next_cursor.is_some(), "an empty page that continues");
    sim.reset_stats();
    let members: Vec<Subscriber> = c.segment_members(&seg, Status::Active).try_collect().await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(sim.stats().requests("GET /api/segments/{id}/subscribers"), 3, "1202 / 500 pages");
}

#[tokio::test]
async fn a_refused_segment_page_size_falls_back_to_the_default_once() {
    let (sim, c) = setup(MailerLiteConfig { segment_max_limit: 100, ..Default::default() }).await;
    let g = sim.create_group("G");
    sim.seed(&SeedSpec { count: 120, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    let seg = sim.create_segment("All of G", SegmentRule::InGroup { group_id: g });
    let members: Vec<Subscriber> = c.segment_members(&seg, Status::Active).try_collect().await.unwrap();
    assert_eq!(members.len(), 120);
    let stats = sim.stats();
    // One refusal (422 on `limit`), then the default 50 per page: 3 pages.
    assert_eq!(stats.requests("GET /api/segments/{id}/subscribers"), 4);
    assert_eq!(stats.status_count(422), 1);
    sim.reset_stats();
    let again: Vec<Subscriber> = c.segment_members(&seg, Status::Active).try_collect().await.unwrap();
    assert_eq!(again.len(), 120);
    assert_eq!(sim.stats().requests("GET /api/segments/{id}/subscribers"), 3, "the refusal is remembered");
}

#[tokio::test]
async fn assigning_a_missing_subscriber_is_a_422_on_id_and_removing_a_non_member_nothing_to_do() {
    let (_sim, c) = setup(MailerLiteConfig::default()).await;
    let g = c.create_group("G").await.unwrap();
    let err = c.assign_to_group("123456789", &g.id).await.unwrap_err();
    assert_eq!(err.field_errors("id"), ["The selected id is invalid."]);
    let s = c.upsert_subscriber(&SubscriberUpsert::new("a@example.com")).await.unwrap().subscriber;
    assert!(!c.unassign_from_group(&s.id, &g.id).await.unwrap(), "not a member: nothing removed");
    let results = c
        .batch(
            &[
                BatchRequest::AssignToGroup { subscriber_id: "123456789".into(), group_id: g.id.clone() },
                BatchRequest::UnassignFromGroup { subscriber_id: s.id.clone(), group_id: g.id.clone() },
            ],
            BatchOptions::default(),
        )
        .await;
    assert_eq!(results[0].as_ref().unwrap_err().field_errors("id"), ["The selected id is invalid."]);
    assert!(matches!(results[1], Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn every_request_names_hmsync_as_its_user_agent() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    c.groups().await.unwrap();
    c.count_subscribers(Statuses::All).await.unwrap();
    c.batch(&[BatchRequest::Get { id_or_email: "x@example.com".into() }], BatchOptions::default()).await;
    let stats = sim.stats();
    assert_eq!(stats.buckets["requests"], 3);
    assert_eq!(stats.buckets.get(hmsync_sandbox::mailerlite::WITHOUT_USER_AGENT), None);
    assert!(USER_AGENT.starts_with("hmsync/"));
}

#[tokio::test]
async fn streams_and_pages_cover_every_subscriber_once() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    sim.seed(&SeedSpec { count: 250, unsubscribed_rate: 0.2, ..Default::default() }).unwrap();
    let all: Vec<Subscriber> = c.subscribers(Statuses::All).try_collect().await.unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>().len(), 250);
    let unsub: Vec<Subscriber> = c.subscribers(Statuses::Only(Status::Unsubscribed)).try_collect().await.unwrap();
    assert_eq!(unsub.len() as u64, c.count_subscribers(Statuses::Only(Status::Unsubscribed)).await.unwrap());
    let page = c.subscribers_page(Statuses::All, None, 10, true).await.unwrap();
    assert_eq!(page.data.len(), 10);
    assert!(page.data[0].groups.is_some());
    // 3 pages of everyone, the unsubscribed pages, one count, one page.
    let expected = 3 + unsub.len().div_ceil(100).max(1) as u64 + 2;
    assert_eq!(sim.stats().requests("GET /api/subscribers"), expected);
}

#[tokio::test]
async fn group_import_reports_progress_and_skips_unsubscribed() {
    let (sim, c) = setup(MailerLiteConfig { import_delay_ms: 20, ..Default::default() }).await;
    let g = c.create_group("Imported").await.unwrap();
    let u = c.upsert_subscriber(&SubscriberUpsert::new("gone@example.com").status(Status::Unsubscribed)).await.unwrap();
    assert_eq!(u.subscriber.status, Status::Unsubscribed);
    let rows: Vec<ImportRow> = ["new1@example.com", "new2@example.com", "gone@example.com"]
        .iter()
        .map(|e| ImportRow { email: e.to_string(), fields: [("name".to_string(), json!("N"))].into() })
        .collect();
    let id = c.import_to_group(&g.id, &rows).await.unwrap();
    let done = c.wait_for_import(&id, std::time::Duration::from_millis(10), 50).await.unwrap();
    assert!(done.done);
    assert_eq!((done.imported, done.unsubscribed_count), (2, 1));
    assert_eq!(done.unsubscribed[0].email, "gone@example.com");
    assert_eq!(sim.stats().buckets["imports"], 1);
    let members: Vec<Subscriber> = c.group_members(&g.id, Statuses::All).try_collect().await.unwrap();
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn batch_returns_one_typed_outcome_per_request_in_order() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let g = c.create_group("B").await.unwrap();
    let existing = c.upsert_subscriber(&SubscriberUpsert::new("e@example.com")).await.unwrap().subscriber;
    let mut reqs = Vec::new();
    for i in 0..60 {
        reqs.push(BatchRequest::Upsert(SubscriberUpsert::new(format!("b{i}@example.com"))));
    }
    reqs.push(BatchRequest::Update {
        subscriber_id: existing.id.clone(),
        update: SubscriberUpdate::new().field("name", "E"),
    });
    reqs.push(BatchRequest::Get { id_or_email: "missing@example.com".into() });
    reqs.push(BatchRequest::AssignToGroup { subscriber_id: existing.id.clone(), group_id: g.id.clone() });
    reqs.push(BatchRequest::Upsert(SubscriberUpsert::new("bad-email")));
    reqs.push(BatchRequest::UnassignFromGroup { subscriber_id: existing.id.clone(), group_id: g.id.clone() });
    reqs.push(BatchRequest::Delete { subscriber_id: existing.id.clone() });
    reqs.push(BatchRequest::Upsert(SubscriberUpsert::new("b0@example.com")));
    let out = c.batch(&reqs, BatchOptions::default()).await;
    assert_eq!(out.len(), reqs.len());
    for (i, o) in out.iter().take(60).enumerate() {
        match o {
            Ok(BatchOutcome::Subscriber { subscriber, created: true }) => {
                assert_eq!(subscriber.email, format!("b{i}@example.com"))
            }
            other => panic!("{i}: {other:?}"),
        }
    }
    assert!(
        matches!(&out[60], Ok(BatchOutcome::Subscriber { subscriber, created: false }) if subscriber.field_text("name").as_deref() == Some("E"))
    );
    assert!(matches!(&out[61], Err(Error::NotFound { .. })));
    assert!(matches!(&out[62], Ok(BatchOutcome::Group(group)) if group.id == g.id));
    assert!(matches!(&out[63], Err(e) if !e.field_errors("email").is_empty()));
    assert!(matches!(&out[64], Ok(BatchOutcome::Done)));
    assert!(matches!(&out[65], Ok(BatchOutcome::Done)));
    assert!(matches!(&out[66], Ok(BatchOutcome::Subscriber { created: false, .. })));
    let stats = sim.stats();
    assert_eq!(stats.requests("POST /api/batch"), 2, "67 requests in two batches");
    assert_eq!(stats.buckets.get("imports"), None, "a mixed batch is not an import");
}

#[tokio::test]
async fn upsert_only_batches_use_the_import_bucket_unless_padded() {
    // 5 imports per (60 s / 600) = 100 ms.
    let (sim, c) = setup(MailerLiteConfig { time_scale: 600.0, ..Default::default() }).await;
    let upserts: Vec<BatchRequest> =
        (0..300).map(|i| BatchRequest::Upsert(SubscriberUpsert::new(format!("i{i}@example.com")))).collect();
    let out = c.batch(&upserts, BatchOptions { avoid_import_path: false }).await;
    assert!(out.iter().all(Result::is_ok));
    let stats = sim.stats();
    assert_eq!(stats.requests("POST /api/batch"), 6);
    assert_eq!(stats.buckets["imports"], 6, "upsert-only batches count as imports");
    assert_eq!(stats.status_count(429), 0, "the pacer kept them under 5 per window");

    sim.reset_stats();
    let out = c.batch(&upserts, BatchOptions::default()).await;
    assert!(out.iter().all(Result::is_ok));
    let stats = sim.stats();
    assert_eq!(stats.requests("POST /api/batch"), 7, "49 upserts + a count per batch");
    assert_eq!(stats.buckets.get("imports"), None);
}

#[tokio::test]
async fn an_import_429_pauses_the_import_bucket_and_succeeds() {
    // At 60× the import window is one second: the four batches are sent well inside it even on a
    // loaded machine (at 600× a slow machine spread them over several windows and met no 429).
    let sim = sandbox(MailerLiteConfig { time_scale: 60.0, imports_per_minute: 2, ..Default::default() }).await;
    // A client that believes the import limit is higher than it is.
    let mut config = Config::new("ml-sandbox-token").with_base_url(sim.base_url());
    config.time_scale = 60.0;
    config.imports_per_minute = 50;
    config.retry = hmsync_http::RetryPolicy::fast(3);
    let c = Client::new(config).unwrap();
    let upserts: Vec<BatchRequest> =
        (0..200).map(|i| BatchRequest::Upsert(SubscriberUpsert::new(format!("j{i}@example.com")))).collect();
    let out = c.batch(&upserts, BatchOptions { avoid_import_path: false }).await;
    assert!(out.iter().all(Result::is_ok), "{:?}", out.iter().find(|o| o.is_err()));
    let stats = sim.stats();
    assert!(stats.status_count(429) > 0);
    assert_eq!(stats.status_count(200), 4);
    assert_eq!(c.count_subscribers(Statuses::All).await.unwrap(), 200);
}

/// Records webhook deliveries.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let sig = headers.get("signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                g.lock().unwrap().push((sig, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn webhooks_are_signed_and_parse_into_typed_events() {
    // Batches every 100 ms instead of every minute.
    let (sim, c) = setup(MailerLiteConfig { webhook_batch_interval_ms: 100, ..Default::default() }).await;
    let (url, got) = receiver().await;
    let refused = c
        .create_webhook(&NewWebhook { url: url.clone(), events: vec!["campaign.open".into()], ..Default::default() })
        .await
        .unwrap_err();
    assert!(!refused.field_errors("batchable").is_empty());
    let flat = c
        .create_webhook(&NewWebhook {
            name: Some("flat".into()),
            url: format!("{url}?kind=flat"),
            events: [
                "subscriber.created",
                "subscriber.updated",
                "subscriber.added_to_group",
                "subscriber.unsubscribed",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let batched = c
        .create_webhook(&NewWebhook {
            name: Some("batched".into()),
            url: format!("{url}?kind=batched"),
            events: ["campaign.open", "campaign.click", "subscriber.deleted"].map(String::from).to_vec(),
            batchable: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.webhooks().await.unwrap().len(), 2);
    assert_eq!(flat.secret.len(), 10);

    let g = c.create_group("Hooked").await.unwrap();
    let s =
        c.upsert_subscriber(&SubscriberUpsert::new("hook@example.com").add_to_group(&g.id)).await.unwrap().subscriber;
    // The echo problem: an API write fires subscriber.updated just like a user edit.
    c.update_subscriber(&s.id, &SubscriberUpdate::new().field("name", "API")).await.unwrap();
    sim.user_edit(
        &s.id,
        &UserEdit { fields: [("name".to_string(), json!("User"))].into_iter().collect(), ..Default::default() },
    )
    .unwrap();
    sim.simulate_campaign(&CampaignSpec {
        recipients: Recipients { subscriber_ids: vec![s.id.clone()], ..Default::default() },
        opens: Some(1),
        clicks: Some(1),
        urls: vec!["https://example.com/pricing".into()],
        ..Default::default()
    })
    .unwrap();
    sim.unsubscribe_as_person(&s.id).unwrap();
    c.delete_subscriber(&s.id).await.unwrap();
    sim.dispatcher().wait_idle().await;

    let got = got.lock().unwrap().clone();
    let mut flat_names = Vec::new();
    let mut batched_names = Vec::new();
    for (sig, body) in &got {
        let delivery = parse_webhook(body).unwrap();
        let secret = if delivery.batched { &batched.secret } else { &flat.secret };
        assert!(verify_signature(secret, body, sig), "signature of {}", String::from_utf8_lossy(body));
        assert!(!verify_signature(if delivery.batched { &flat.secret } else { &batched.secret }, body, sig));
        for e in &delivery.events {
            assert_eq!(e.subscriber().map(|s| s.id.clone()), Some(s.id.clone()));
            if delivery.batched {
                batched_names.push(e.name())
            } else {
                flat_names.push(e.name())
            }
            if let WebhookEvent::CampaignClick { url, .. } = e {
                assert_eq!(url.as_deref(), Some("https://example.com/pricing"));
            }
        }
        if !delivery.batched {
            assert_eq!(delivery.account_id, Some(252151));
        }
    }
    flat_names.sort();
    assert_eq!(
        flat_names,
        [
            "subscriber.added_to_group",
            "subscriber.created",
            "subscriber.unsubscribed",
            "subscriber.updated",
            "subscriber.updated"
        ]
    );
    assert_eq!(batched_names, ["campaign.open", "campaign.click", "subscriber.deleted"]);
    assert!(c.delete_webhook(&flat.id).await.unwrap());
    assert!(!c.delete_webhook(&flat.id).await.unwrap());
}

#[tokio::test]
async fn a_webhook_create_is_sent_once_and_an_update_changes_only_what_it_names() {
    use hmsync_sandbox::common::FaultSpec;
    use hmsync_sandbox::mailerlite::FaultSettings;
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let hook = NewWebhook {
        name: Some("hmsync".into()),
        url: "https://example.com/hook".into(),
        events: vec!["subscriber.updated".into()],
        ..Default::default()
    };
    // A 5xx may come after the webhook was made: the client does not send the create again.
    sim.set_faults(&FaultSettings {
        faults: vec![FaultSpec { endpoint: "POST /api/webhooks".into(), error_rate: 1.0, ..Default::default() }],
        seed: 1,
    });
    let e = c.create_webhook(&hook).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(sim.stats().requests("POST /api/webhooks"), 1);
    sim.set_faults(&FaultSettings::default());

    let created = c.create_webhook(&hook).await.unwrap();
    assert!(created.enabled && !created.batchable);
    assert!(!format!("{created:?}").contains(&created.secret), "Debug hides the secret");
    let off =
        c.update_webhook(&created.id, &WebhookUpdate { enabled: Some(false), ..Default::default() }).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.events, ["subscriber.updated"]);
    assert_eq!(off.secret, created.secret, "an update keeps the secret");
    let fixed = c
        .update_webhook(
            &created.id,
            &WebhookUpdate {
                enabled: Some(true),
                events: Some(vec!["campaign.open".into()]),
                batchable: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(fixed.enabled && fixed.batchable);
    assert_eq!(fixed.events, ["campaign.open"]);
    assert_eq!(fixed.name.as_deref(), Some("hmsync"));
    let listed = c.webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secret, created.secret, "the list returns the secret too");
    assert!(c.update_webhook("999", &WebhookUpdate::default()).await.is_err());
}

#[tokio::test]
async fn campaign_simulation_counts_activity_and_reports() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    let g = c.create_group("Campaign").await.unwrap();
    sim.seed(&SeedSpec { count: 30, group_ids: vec![g.id.clone()], ..Default::default() }).unwrap();
    let summary = sim
        .simulate_campaign(&CampaignSpec {
            name: "Launch".into(),
            recipients: Recipients { group_id: Some(g.id.clone()), ..Default::default() },
            open_rate: Some(0.5),
            clicks: Some(5),
            unsubscribes: Some(2),
            hard_bounces: Some(3),
            spam_reports: Some(1),
            urls: vec!["https://example.com/a".into(), "https://example.com/b".into()],
            seed: Some(9),
            ..Default::default()
        })
        .unwrap();
    let campaigns = c.sent_campaigns().await.unwrap();
    assert_eq!(campaigns.len(), 1);
    let stats = campaigns[0].stats.clone().unwrap();
    assert_eq!((stats.sent, stats.unique_opens_count, stats.unique_clicks_count), (30, 14, 5));
    assert_eq!((stats.unsubscribes_count, stats.hard_bounces_count, stats.spam_count), (2, 3, 1));
    let opened = c
        .campaign_activity(
            &summary.campaign_id,
            ActivityQuery {
                kind: Some(ActivityType::Opened),
                include_subscriber: true,
                limit: ReportLimit::L10,
                page: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(opened.meta.total, 14);
    assert_eq!(opened.data.len(), 10);
    assert_eq!(opened.meta.aggregations["hardbounced"], 3);
    assert!(opened.data.iter().all(|r| r.opens_count == 1 && r.subscriber.is_some()));
    let clicker = &summary.clicked[0];
    let log = c.activity_log(clicker, Some("link_click"), 1).await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].property("url").unwrap().starts_with("https://example.com/"));
    assert_eq!(log[0].property("campaign_id"), Some(summary.campaign_id.as_str()));
    let s = c.get_subscriber(clicker).await.unwrap().unwrap();
    assert_eq!((s.sent, s.opens_count, s.clicks_count), (1, 1, 1));
    assert_eq!(s.open_rate, Percent(100.0));
    let spam = c.get_subscriber(&summary.spam_reported[0]).await.unwrap().unwrap();
    assert_eq!(spam.status, Status::Junk);
    assert_eq!(sim.subscriber(&summary.bounced[0]).unwrap().status, SimStatus::Bounced.as_str());
}

#[tokio::test]
async fn a_revoked_key_is_unauthorized_with_advice() {
    let sim = sandbox(MailerLiteConfig::default()).await;
    let c = Client::new(Config::new("revoked").with_base_url(sim.base_url())).unwrap();
    let err = c.count_subscribers(Statuses::All).await.unwrap_err();
    assert_eq!(err, Error::Unauthorized);
    assert!(err.to_string().contains("Generate a new key"));
    assert!(!err.is_transient());
}

/// Guards against a client that sleeps through a wait it should hand back (the test would hang).
async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), f).await.expect("the call came back without sleeping")
}

#[tokio::test]
async fn a_429_longer_than_the_in_process_cap_is_handed_back_and_holds_back_the_account() {
    // Another integration has used the account's minute: MailerLite answers 429 with the rest
    // of the window, longer than a client sleeps in-process (20 s).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(0usize));
    let seen = requests.clone();
    let app = Router::new().fallback(move || {
        *seen.lock().unwrap() += 1;
        async {
            let mut r = axum::response::IntoResponse::into_response((
                http::StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"message": "Too Many Attempts."})),
            ));
            r.headers_mut().insert("retry-after", "55".parse().unwrap());
            r
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = Client::new(Config::new("token").with_base_url(url)).unwrap();
    let err = soon(c.count_subscribers(Statuses::All)).await.unwrap_err();
    let Error::RateLimited { retry_after } = err else { panic!("{err:?}") };
    assert!(retry_after > std::time::Duration::from_secs(50), "the server's wait: {retry_after:?}");
    let again = soon(c.count_subscribers(Statuses::All)).await.unwrap_err();
    let Error::RateLimited { retry_after } = again else { panic!("{again:?}") };
    assert!(retry_after > std::time::Duration::from_secs(20), "{retry_after:?}");
    assert_eq!(*requests.lock().unwrap(), 1, "the held-back call sent nothing");
}

#[tokio::test]
async fn pacing_that_would_outlast_the_time_budget_hands_the_wait_back() {
    // Real time, one request a minute: after the first, the account has nothing left
    // (X-RateLimit-Remaining: 0) for about a minute, more than the 10 s budget.
    let sim = sandbox(MailerLiteConfig { limit_per_minute: 1, ..Default::default() }).await;
    let c = Client::new(Config::new(sim.config().token).with_base_url(sim.base_url())).unwrap();
    c.count_subscribers(Statuses::All).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let err = soon(hmsync_http::budget::within(deadline, c.count_subscribers(Statuses::All))).await.unwrap_err();
    let Error::RateLimited { retry_after } = err else { panic!("{err:?}") };
    assert!(retry_after > std::time::Duration::from_secs(10), "{retry_after:?}");
    assert_eq!(sim.stats().status_count(429), 0, "nothing was sent to be refused");
}

#[tokio::test]
async fn within_a_time_budget_a_hanging_server_is_cut_at_the_budget_and_not_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(0usize));
    let seen = requests.clone();
    let app = Router::new().fallback(move || {
        *seen.lock().unwrap() += 1;
        std::future::pending::<&'static str>()
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // 30 s timeouts × 5 attempts would take 150 s; the budget leaves 2 s.
    let c = Client::new(Config::new("token").with_base_url(url)).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let err = soon(hmsync_http::budget::within(deadline, c.count_subscribers(Statuses::All))).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(*requests.lock().unwrap(), 1);
}
