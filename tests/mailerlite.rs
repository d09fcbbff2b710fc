//! hmsync against MailerLite's documented behaviour where it differs from the obvious reading:
//! unreadable webhook items, the batched payload's field names, a group assignment refused on
//! `id`, removing a non-member, reactivation refusals, an activity log without page metadata or
//! order, and segment pages that are short or empty and still continue.

use std::collections::BTreeMap;

use hmsync_core::{ConnectionConfig, FieldMapping, MailerLiteRule, MlStatus};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::MailerLiteApi;
use hmsync_engine::adapters::mailerlite::MailerLiteAdapter;
use hmsync_engine::api::{ItemErrorKind, MlOp};
use hmsync_engine::state::counters;
use hmsync_sandbox::common::ChangedBy;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{CampaignSpec, Recipients, SeedSpec, SegmentRule, UserEdit, WebhookFaults};
use serde_json::{Map, Value, json};

fn config() -> ConnectionConfig {
    let mut c = ConnectionConfig::new("mailerlite fidelity");
    c.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")];
    c
}

/// 10 people on both sides, linked.
async fn synced(c: ConnectionConfig) -> (Harness, Vec<u64>) {
    let h = Harness::start(Options::default()).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 10, ..Default::default() }).unwrap();
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    (h, seeded.ids)
}

fn ml_requests(h: &Harness) -> u64 {
    h.mailerlite.stats().total_requests
}

fn reset_stats(h: &Harness) {
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();
}

fn adapter(h: &Harness) -> MailerLiteAdapter {
    MailerLiteAdapter::new(h.ml_client())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_webhook_items_are_skipped_and_counted_and_the_rest_is_synced() {
    let (h, ids) = synced(config()).await;
    h.mailerlite.set_webhook_faults(WebhookFaults { unknown_event_rate: 1.0, malformed_item_rate: 1.0, seed: 5 });
    h.mailerlite.dispatcher().clear_log();
    let edit =
        UserEdit { fields: [("city".to_string(), json!("Tromsø"))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&person(4).email, &edit).unwrap();
    h.settle().await;
    assert_eq!(h.hubspot.contact(ids[4]).unwrap()["properties"]["city"], json!("Tromsø"));
    let log = h.mailerlite.dispatcher().log();
    assert!(!log.is_empty());
    assert!(log.iter().all(|d| d.status == Some(200)), "never a 400 that MailerLite would retry: {log:?}");
    let skipped = h.store.get_counters("c1").await.unwrap().get(counters::WEBHOOK_ITEMS_SKIPPED).copied();
    assert!(skipped.is_some_and(|n| n >= 1), "{skipped:?}");
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_zip_in_a_batched_webhook_is_recognised_as_our_echo_without_a_read() {
    let h = Harness::start(Options::default()).await;
    // HubSpot's postal code property, created the way a HubSpot admin would.
    h.hs_client()
        .create_property(
            "contacts",
            &hmsync_hubspot::PropertyCreate {
                name: "zip".into(),
                label: "Postal code".into(),
                kind: "string".into(),
                field_type: "text".into(),
                group_name: "contactinformation".into(),
                options: Vec::new(),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    let seeded = h.hubspot.seed(&SeedRequest { count: 5, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 5, ..Default::default() }).unwrap();
    let mut c = config();
    c.mappings.push(FieldMapping::new("zip", "z_i_p"));
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    // A connection whose subscriber events come batched, as one registered before they had a
    // webhook of their own (every event on one batched webhook): the batched items name the
    // field `zip` and send "" for empty fields (the documented example).
    let client = reqwest::Client::new();
    for hook in h.ml_client().webhooks().await.unwrap().into_iter().filter(|w| !w.batchable) {
        let url = format!("{}/webhooks/{}", h.mailerlite.base_url(), hook.id);
        let r = client
            .put(url)
            .bearer_auth(h.mailerlite.config().token)
            .json(&json!({"batchable": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    reset_stats(&h);
    let props: Map<String, Value> = [("zip".to_string(), json!("0150"))].into_iter().collect();
    h.hubspot.user_edit_contact(seeded.ids[2], &props, 7).unwrap();
    h.settle().await;
    assert_eq!(h.mailerlite.subscriber(&person(2).email).unwrap().fields.get("z_i_p"), Some(&json!("0150")));
    let batched = h.mailerlite.dispatcher().log().iter().any(|d| d.body.contains(r#""zip":"0150""#));
    assert!(batched, "the echo came in the batched shape");
    // One MailerLite read and one write (each a batch request); the echo costs nothing.
    assert_eq!(ml_requests(&h), 2, "{:?}", h.mailerlite.stats().endpoints);
    assert_eq!(h.hubspot.stats().total_requests, 1, "{:?}", h.hubspot.stats().endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_assignment_refused_on_id_tells_a_gone_subscriber_from_a_deleted_group() {
    let h = Harness::start(Options::default()).await;
    h.mailerlite.seed(&SeedSpec { count: 2, ..Default::default() }).unwrap();
    let kept = h.mailerlite.subscriber(&person(0).email).unwrap().id;
    let gone = h.mailerlite.subscriber(&person(1).email).unwrap().id;
    h.mailerlite.delete_as_user(&gone).unwrap();
    let group = h.mailerlite.create_group("Target");
    let deleted_group = h.mailerlite.create_group("Deleted");
    h.ml_client().delete_group(&deleted_group).await.unwrap();
    reset_stats(&h);
    let results = adapter(&h)
        .apply(&[
            MlOp::AddToGroup { id: gone.clone(), group_id: group.clone() },
            MlOp::AddToGroup { id: kept.clone(), group_id: deleted_group.clone() },
            MlOp::AddToGroup { id: kept.clone(), group_id: group.clone() },
        ])
        .await
        .unwrap();
    let gone_error = results[0].as_ref().unwrap_err();
    assert_eq!(gone_error.kind, ItemErrorKind::NotFound, "retried and re-read, not 'correct the value'");
    let group_error = results[1].as_ref().unwrap_err();
    assert_eq!(group_error.kind, ItemErrorKind::Other);
    assert!(group_error.message.contains(&deleted_group) && group_error.action.contains("target group"));
    assert!(results[2].is_ok());
    // The batch, then one batch read of the two refused subscribers.
    assert_eq!(ml_requests(&h), 2, "{:?}", h.mailerlite.stats().endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_non_member_is_done_and_a_reactivation_refusal_is_a_known_state() {
    let h = Harness::start(Options::default()).await;
    h.mailerlite.seed(&SeedSpec { count: 2, ..Default::default() }).unwrap();
    let member = h.mailerlite.subscriber(&person(0).email).unwrap().id;
    let group = h.mailerlite.create_group("Target");
    h.mailerlite.unsubscribe_as_person(&person(1).email).unwrap();
    let results = adapter(&h)
        .apply(&[
            MlOp::RemoveFromGroup { id: member.clone(), group_id: group.clone() },
            MlOp::Upsert {
                email: person(1).email.clone(),
                fields: BTreeMap::new(),
                status: Some(MlStatus::Active),
                groups: Vec::new(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(results[0], Ok(None), "not a member: nothing to remove (MailerLite answers 404)");
    assert_eq!(results[1].as_ref().unwrap_err().kind, ItemErrorKind::ReactivationRefused);
    assert_eq!(h.mailerlite.subscriber(&person(1).email).unwrap().status, "unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_log_is_read_in_bounded_pages_and_the_newest_engagement_kept() {
    let h = Harness::start(Options::default()).await;
    h.mailerlite.seed(&SeedSpec { count: 1, ..Default::default() }).unwrap();
    let sub = h.mailerlite.subscriber(&person(0).email).unwrap().id;
    // 60 campaigns, each a `campaign_send` and an `email_open`: 120 entries, listed oldest first.
    for i in 0..60 {
        h.mailerlite
            .simulate_campaign(&CampaignSpec {
                name: format!("C{i:02}"),
                recipients: Recipients { subscriber_ids: vec![sub.clone()], ..Default::default() },
                opens: Some(1),
                ..Default::default()
            })
            .unwrap();
    }
    reset_stats(&h);
    let events = adapter(&h).activity(&sub, &person(0).email, 3).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.campaign_name.as_deref().unwrap_or_default()).collect();
    assert_eq!(names, ["C59", "C58", "C57"]);
    assert_eq!(h.mailerlite.stats().requests("GET /api/subscribers/{id}/activity-log"), 2, "100 + 20 entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_whose_pages_are_short_or_empty_is_read_to_its_end() {
    let h = Harness::start(Options::default()).await;
    let few = h.mailerlite.create_group("Few");
    h.mailerlite.seed(&SeedSpec { count: 600, ..Default::default() }).unwrap();
    h.mailerlite
        .seed(&SeedSpec { count: 2, start_index: 600, group_ids: vec![few.clone()], ..Default::default() })
        .unwrap();
    h.mailerlite.seed(&SeedSpec { count: 600, start_index: 602, ..Default::default() }).unwrap();
    let segment = h.mailerlite.create_segment("In Few", SegmentRule::InGroup { group_id: few });
    let mut c = config();
    c.mailerlite_rule = MailerLiteRule::Segments { segment_ids: vec![segment] };
    let id = h.connect("c1", c).await;
    reset_stats(&h);
    h.activate(&id).await;
    let contacts = h.all_contacts(&["email"]).await;
    let mut emails: Vec<String> =
        contacts.iter().filter_map(|c| c.properties.get("email").cloned().flatten()).collect();
    emails.sort();
    assert_eq!(emails, [person(600).email, person(601).email]);
    // 1202 subscribers read 500 at a time: an empty page, the page with both members, the rest.
    assert_eq!(h.mailerlite.stats().requests("GET /api/segments/{id}/subscribers"), 3);
}

/// Milliseconds from each user change at the MailerLite source to hmsync's write of the HubSpot
/// counterpart, from the two simulators' change journals (one clock).
fn mailerlite_to_hubspot_ms(h: &Harness, pairs: &[(u64, u64)]) -> Vec<i64> {
    let ml = h.mailerlite.change_journal().entries();
    let hs = h.hubspot.change_journal().entries();
    let mut out: Vec<i64> = pairs
        .iter()
        .filter_map(|(sub, contact)| {
            let changed = ml.iter().find(|e| e.record_id == *sub && e.by == ChangedBy::User)?.at_ms;
            let written =
                hs.iter().find(|e| e.record_id == *contact && e.by == ChangedBy::Api && e.at_ms >= changed)?;
            Some(written.at_ms - changed)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Subscriber events come on a webhook of their own without batching (MailerLite requires
/// batching only for opens, clicks and deletions), so a MailerLite change crosses over without
/// waiting for the minute. The figures are printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_changes_come_unbatched_and_cross_over_without_the_minute_wait() {
    let h = Harness::start(Options { time_scale: 1.0, ..Options::default() }).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 10, ..Default::default() }).unwrap();
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    h.mailerlite.dispatcher().clear_log();
    h.mailerlite.change_journal().start();
    h.hubspot.change_journal().start();
    let mut pairs = Vec::new();
    for i in 0..10u64 {
        let sub = h.mailerlite.subscriber(&person(i).email).unwrap().id;
        let edit = UserEdit {
            fields: [("city".to_string(), json!(format!("Town {i}")))].into_iter().collect(),
            ..Default::default()
        };
        h.mailerlite.user_edit(&sub, &edit).unwrap();
        pairs.push((sub.parse::<u64>().unwrap(), seeded.ids[i as usize]));
    }
    h.settle().await;
    for i in 0..10 {
        assert_eq!(h.hubspot.contact(seeded.ids[i]).unwrap()["properties"]["city"], json!(format!("Town {i}")));
    }
    let log = h.mailerlite.dispatcher().log();
    assert!(!log.is_empty() && log.iter().all(|d| !d.body.starts_with(r#"{"events""#)), "one request per event");
    let ms = mailerlite_to_hubspot_ms(&h, &pairs);
    assert_eq!(ms.len(), pairs.len());
    eprintln!(
        "MailerLite → HubSpot through the subscriber-changes webhook (time scale 1, {} changes): p50 {} ms, max {} ms",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}
