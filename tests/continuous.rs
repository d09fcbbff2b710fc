//! Continuous sync through the sandbox: signed webhooks both ways, the scan as the safety net,
//! clears, list removal, merges, email changes, no echo, hostile deliveries, and faults.

use std::collections::HashMap;

use hmsync_core::{ConnectionConfig, FieldMapping, HubSpotRule};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::common::faults::FaultSpec;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::common::webhooks::DeliveryOptions;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use serde_json::{Map, Value, json};

fn config(target_group: Option<String>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("e2e");
    c.target_group = target_group;
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    c
}

fn props(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// 10 people on each side, 5 shared, synced.
async fn synced(target_group: bool) -> (Harness, Vec<u64>) {
    let h = Harness::start(Options::default()).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 10, start_index: 5, ..Default::default() }).unwrap();
    let group = target_group.then(|| h.mailerlite.create_group("From HubSpot"));
    let id = h.connect("c1", config(group)).await;
    h.activate(&id).await;
    (h, seeded.ids)
}

fn hs_requests(h: &Harness) -> u64 {
    h.hubspot.stats().total_requests
}

fn ml_requests(h: &Harness) -> u64 {
    h.mailerlite.stats().total_requests
}

fn reset_stats(h: &Harness) {
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_property_change_through_a_signed_webhook_reaches_mailerlite_at_minimal_cost() {
    let (h, ids) = synced(false).await;
    reset_stats(&h);
    h.hubspot.user_edit_contact(ids[2], &props(&[("firstname", "Augusta")]), 7).unwrap();
    h.settle().await;
    let s = h.mailerlite.subscriber(&person(2).email).unwrap();
    assert_eq!(s.fields.get("name"), Some(&json!("Augusta")));
    // One HubSpot read, one MailerLite read and one MailerLite write (each a batch request);
    // the echo of our MailerLite write costs nothing.
    assert_eq!(hs_requests(&h), 1, "{:?}", h.hubspot.stats().endpoints);
    assert_eq!(ml_requests(&h), 2, "{:?}", h.mailerlite.stats().endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailerlite_change_through_a_signed_webhook_reaches_hubspot_and_its_echo_is_dropped() {
    let (h, ids) = synced(false).await;
    reset_stats(&h);
    let edit = UserEdit { fields: fields(&[("city", json!("Reykjavik"))]), ..Default::default() };
    h.mailerlite.user_edit(&person(7).email, &edit).unwrap();
    h.settle().await;
    let c = h.hubspot.contact(ids[7]).unwrap();
    assert_eq!(c["properties"]["city"], json!("Reykjavik"));
    assert_eq!(ml_requests(&h), 1, "one MailerLite read: {:?}", h.mailerlite.stats().endpoints);
    assert_eq!(hs_requests(&h), 2, "one HubSpot read and one write: {:?}", h.hubspot.stats().endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailerlite_change_whose_webhook_was_lost_is_found_by_the_scan() {
    let (h, ids) = synced(false).await;
    h.mailerlite.dispatcher().set_options(DeliveryOptions { drop_rate: 1.0, ..h.mailerlite.dispatcher().options() });
    let edit = UserEdit { fields: fields(&[("last_name", json!("Byron"))]), ..Default::default() };
    h.mailerlite.user_edit(&person(8).email, &edit).unwrap();
    h.settle().await;
    assert_ne!(h.hubspot.contact(ids[8]).unwrap()["properties"]["lastname"], json!("Byron"), "no webhook, not yet");
    h.engine.sync_now("c1").await.unwrap();
    h.settle().await;
    assert_eq!(h.hubspot.contact(ids[8]).unwrap()["properties"]["lastname"], json!("Byron"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_field_propagates_both_ways() {
    let (h, ids) = synced(false).await;
    h.hubspot.user_edit_contact(ids[6], &props(&[("firstname", "")]), 7).unwrap();
    let edit = UserEdit { fields: fields(&[("city", Value::Null)]), ..Default::default() };
    h.mailerlite.user_edit(&person(7).email, &edit).unwrap();
    h.settle().await;
    assert_eq!(h.mailerlite.subscriber(&person(6).email).unwrap().fields.get("name"), Some(&Value::Null));
    let c = h.hubspot.contact(ids[7]).unwrap();
    assert!(c["properties"].get("city").is_none_or(|v| v.is_null() || v == ""), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_removed_from_the_hubspot_list_leaves_the_target_group_and_stays_subscribed() {
    let h = Harness::start(Options::default()).await;
    let list = h.hubspot.create_list("Newsletter", "MANUAL", None).unwrap();
    let list_id: u64 =
        list["listId"].as_str().map(|s| s.parse().unwrap()).unwrap_or_else(|| list["listId"].as_u64().unwrap());
    let seeded = h
        .hubspot
        .seed(&SeedRequest {
            count: 6,
            lists: vec![hmsync_sandbox::hubspot::SeedListMembership { list_id, rate: 1.0 }],
            ..Default::default()
        })
        .unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    h.mailerlite.create_field("industry", hmsync_sandbox::mailerlite::FieldType::Text).unwrap();
    let mut c = config(Some(group.clone()));
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec![list_id.to_string()] };
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let email = person(3).email;
    let in_group =
        |h: &Harness| h.mailerlite.subscriber(&email).unwrap().groups.unwrap_or_default().iter().any(|g| g.id == group);
    assert!(in_group(&h));
    h.hubspot.change_list_members(list_id, &[], &[seeded.ids[3]]).unwrap();
    // List memberships have no webhooks: the scan notices.
    h.engine.sync_now("c1").await.unwrap();
    h.settle().await;
    assert!(!in_group(&h), "removed from the target group");
    let s = h.mailerlite.subscriber(&email).unwrap();
    assert_eq!(s.status, "active", "never unsubscribed");
    let link = h.store.link_by_mailerlite_id("c1", &s.id).await.unwrap().unwrap();
    assert!(!link.hs_in_scope && !link.in_target_group);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_merge_rekeys_the_link_and_makes_no_duplicate() {
    let (h, ids) = synced(false).await;
    let before = h.all_subscribers().await.len();
    // Contacts 1 and 2 are both linked; merge 2 into 1.
    let survivor = h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    h.settle().await;
    let link = h.store.link_by_hubspot_id("c1", &survivor.to_string()).await.unwrap().expect("survivor linked");
    assert_eq!(link.email, person(1).email);
    assert_eq!(h.all_subscribers().await.len(), before, "no subscriber created or deleted");
    let retired = h.store.link_by_email("c1", &person(2).email).await.unwrap().unwrap();
    // Retired: marked deleted (docs/sync-rules.md, a contact gone from HubSpot), never holding the
    // survivor. It still names the merged-away contact, so that a merge replayed after a crash
    // finds it again.
    assert!(retired.hs_deleted && retired.hubspot_id.as_deref() != Some(survivor.to_string().as_str()));
    assert_eq!(h.store.link_by_hubspot_id("c1", &ids[2].to_string()).await.unwrap().map(|l| l.id), Some(retired.id));
    // The survivor keeps syncing.
    h.hubspot.user_edit_contact(survivor, &props(&[("city", "Kyoto")]), 7).unwrap();
    h.settle().await;
    assert_eq!(h.mailerlite.subscriber(&person(1).email).unwrap().fields.get("city"), Some(&json!("Kyoto")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_follows_the_link_in_both_directions_without_duplicates() {
    let (h, ids) = synced(false).await;
    let before_ml = h.all_subscribers().await.len();
    let before_hs = h.all_contacts(&["email"]).await.len();
    let old = h.mailerlite.subscriber(&person(6).email).unwrap();
    h.hubspot.user_edit_contact(ids[6], &props(&[("email", "ada.new@example.org")]), 7).unwrap();
    h.settle().await;
    let moved = h.mailerlite.subscriber("ada.new@example.org").expect("email followed");
    assert_eq!(moved.id, old.id, "the same subscriber");
    let edit = UserEdit { email: Some("grace.new@example.org".into()), ..Default::default() };
    h.mailerlite.user_edit(&person(7).email, &edit).unwrap();
    h.settle().await;
    assert_eq!(h.hubspot.contact(ids[7]).unwrap()["properties"]["email"], json!("grace.new@example.org"));
    assert_eq!(h.all_subscribers().await.len(), before_ml);
    assert_eq!(h.all_contacts(&["email"]).await.len(), before_hs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_email_is_not_sent_again_until_it_changes_or_the_contact_is_retried() {
    let h = Harness::start(Options::default()).await;
    let ids = h.hubspot.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap().ids;
    let group = h.mailerlite.create_group("Newsletter");
    h.mailerlite.seed(&SeedSpec { count: 3, group_ids: vec![group.clone()], ..Default::default() }).unwrap();
    // Person 10 is only in MailerLite, outside the rule's group: not synced, but has the email.
    h.mailerlite.seed(&SeedSpec { count: 1, start_index: 10, ..Default::default() }).unwrap();
    let taken_by = h.mailerlite.subscriber(&person(10).email).unwrap().id;
    let mut c = config(None);
    c.mailerlite_rule = hmsync_core::MailerLiteRule::Groups { group_ids: vec![group] };
    let conn = h.connect("c1", c).await;
    h.activate(&conn).await;
    let error = async |h: &Harness| {
        let errors = h.store.list_errors(&conn, None, 10).await.unwrap().items;
        assert!(errors.len() <= 1, "{errors:#?}");
        errors.into_iter().next()
    };

    h.hubspot.user_edit_contact(ids[1], &props(&[("email", &person(10).email)]), 7).unwrap();
    h.settle().await;
    let first = error(&h).await.expect("the refused email is recorded");
    let problem = &first.problems[0];
    assert_eq!(problem.field.as_deref(), Some("email"));
    assert!(problem.message.contains(&taken_by), "names the subscriber that has the email: {problem:?}");
    assert!(problem.action.contains("merge") && problem.action.contains(&person(1).email), "{problem:?}");
    assert_eq!(problem.refused.get("email"), Some(&person(10).email));

    // Later changes of the contact sync; the refused email is not sent again (the error stands
    // as it was recorded, not refused a second time).
    h.hubspot.user_edit_contact(ids[1], &props(&[("firstname", "Zed")]), 7).unwrap();
    h.settle().await;
    assert_eq!(h.mailerlite.subscriber(&person(1).email).unwrap().fields.get("name"), Some(&json!("Zed")));
    assert_eq!(error(&h).await.map(|e| e.attempts), Some(1), "not sent again");
    h.engine.sync_now(&conn).await.unwrap();
    h.settle().await;
    assert_eq!(error(&h).await.map(|e| e.attempts), Some(1), "not sent again by the scan");

    // Asked to retry, the sync sends it again (it is still taken).
    h.engine.retry_errors(&conn, None).await.unwrap();
    h.settle().await;
    assert_eq!(error(&h).await.map(|e| e.attempts), Some(2), "sent again on retry");

    // Once the email changes, the new one is sent, and the error is gone.
    h.hubspot.user_edit_contact(ids[1], &props(&[("email", "person1.new@example.org")]), 7).unwrap();
    h.settle().await;
    assert!(h.mailerlite.subscriber("person1.new@example.org").is_some(), "the new email followed the link");
    assert_eq!(error(&h).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_webhooks_our_writes_caused_writes_nothing() {
    let (h, ids) = synced(true).await;
    h.hubspot.user_edit_contact(ids[3], &props(&[("firstname", "Echo")]), 7).unwrap();
    let edit = UserEdit { fields: fields(&[("city", json!("Lima"))]), ..Default::default() };
    h.mailerlite.user_edit(&person(8).email, &edit).unwrap();
    h.settle().await;
    let client = reqwest_client();
    let deliveries: Vec<_> = h.hubspot.dispatcher().log().into_iter().chain(h.mailerlite.dispatcher().log()).collect();
    assert!(deliveries.len() >= 4, "the initial sync and the edits caused webhooks");
    reset_stats(&h);
    for d in deliveries.iter().filter(|d| d.status == Some(200)) {
        let mut req = client.post(&d.url).body(d.body.clone());
        for (k, v) in &d.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert_eq!(status, 200, "replayed delivery accepted");
    }
    h.settle().await;
    let writes = |endpoints: &std::collections::BTreeMap<String, hmsync_sandbox::common::EndpointStats>| -> u64 {
        endpoints.iter().filter(|(k, _)| !k.starts_with("GET")).map(|(_, v)| v.requests).sum()
    };
    assert_eq!(h.hubspot.stats().total_requests, 0, "{:?}", h.hubspot.stats().endpoints);
    assert_eq!(writes(&h.mailerlite.stats().endpoints), 0, "{:?}", h.mailerlite.stats().endpoints);
    assert_eq!(h.mailerlite.stats().total_requests, 0, "echoes cost no request at all");
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_or_a_stale_timestamp_is_refused_and_nothing_is_enqueued() {
    let (h, _) = synced(false).await;
    let body = json!([{"eventId": 1, "subscriptionId": 1, "portalId": h.hubspot.config().portal_id, "appId": 1,
        "occurredAt": 1, "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 1,
        "propertyName": "firstname", "propertyValue": "X", "changeSource": "CRM_UI"}])
    .to_string();
    let url = format!("{}/webhooks/hubspot", h.api_url);
    let now = hmsync_http::now_ms();
    let secret = h.hubspot.config().client_secret.clone();
    let good_sig = hmsync_hubspot::webhooks::sign_v3(&secret, "POST", &url, body.as_bytes(), &now.to_string());
    let stale = (now - 6 * 60 * 1000).to_string();
    let stale_sig = hmsync_hubspot::webhooks::sign_v3(&secret, "POST", &url, body.as_bytes(), &stale);
    let cases = [
        ("bad signature", now.to_string(), "bm90IGEgc2lnbmF0dXJl".to_string()),
        ("stale timestamp", stale.clone(), stale_sig),
        (
            "wrong secret",
            now.to_string(),
            hmsync_hubspot::webhooks::sign_v3("nope", "POST", &url, body.as_bytes(), &now.to_string()),
        ),
    ];
    for (what, ts, sig) in cases {
        let r = reqwest_client()
            .post(&url)
            .body(body.clone())
            .header("content-type", "application/json")
            .header("x-hubspot-request-timestamp", ts.as_str())
            .header("x-hubspot-signature-v3", sig.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{what}");
    }
    let ml_url = format!("{}/webhooks/mailerlite/c1", h.api_url);
    let r =
        reqwest_client().post(&ml_url).body(r#"{"events":[]}"#).header("signature", "deadbeef").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "MailerLite bad signature");
    assert!(h.queue.receive(10, std::time::Duration::from_secs(1)).await.unwrap().is_empty(), "nothing enqueued");
    // The same body correctly signed is accepted.
    let r = reqwest_client()
        .post(&url)
        .body(body.clone())
        .header("x-hubspot-request-timestamp", now.to_string())
        .header("x-hubspot-signature-v3", good_sig.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_webhooks_and_faults_on_both_apis_still_converge() {
    let (h, ids) = synced(true).await;
    let chaos = DeliveryOptions { duplicate_rate: 0.5, reorder_max_delay_ms: 150, ..h.hubspot.dispatcher().options() };
    h.hubspot.dispatcher().set_options(chaos.clone());
    h.mailerlite.dispatcher().set_options(DeliveryOptions { seed: 7, ..chaos });
    let faults =
        vec![FaultSpec { error_rate: 0.1, rate_limit_rate: 0.05, rate_limit_burst: 2, ..FaultSpec::everywhere() }];
    h.hubspot.instrumentation().faults.set(faults.clone(), 11);
    h.mailerlite.instrumentation().faults.set(faults, 12);
    for (n, id) in ids.iter().enumerate() {
        h.hubspot.user_edit_contact(*id, &props(&[("firstname", &format!("Hs{n}"))]), 7).unwrap();
    }
    for i in 5..15u64 {
        let edit = UserEdit { fields: fields(&[("city", json!(format!("City{i}")))]), ..Default::default() };
        h.mailerlite.user_edit(&person(i).email, &edit).unwrap();
    }
    h.mailerlite.unsubscribe_as_person(&person(12).email).unwrap();
    h.settle().await;
    // The scan is the safety net for anything a fault made us miss.
    h.engine.sync_now("c1").await.unwrap();
    h.settle().await;
    h.hubspot.instrumentation().faults.set(Vec::new(), 0);
    h.mailerlite.instrumentation().faults.set(Vec::new(), 0);
    let hs: HashMap<String, _> = h
        .all_contacts(&["email", "firstname", "city"])
        .await
        .into_iter()
        .map(|c| (c.email().unwrap().to_string(), c))
        .collect();
    let ml: HashMap<String, _> = h.all_subscribers().await.into_iter().map(|s| (s.email.clone(), s)).collect();
    assert_eq!(hs.len(), 15, "no duplicate contact");
    assert_eq!(ml.len(), 15, "no duplicate subscriber");
    assert_eq!(h.store.count_links("c1").await.unwrap(), 15, "each linked exactly once");
    for (email, c) in &hs {
        let s = &ml[email];
        assert_eq!(s.field_text("name").as_deref(), c.prop("firstname"), "{email}");
        assert_eq!(s.field_text("city").as_deref(), c.prop("city"), "{email}");
    }
    for n in 0..10u64 {
        assert_eq!(hs[&person(n).email].prop("firstname"), Some(format!("Hs{n}").as_str()));
    }
    for i in 10..15u64 {
        assert_eq!(hs[&person(i).email].prop("city"), Some(format!("City{i}").as_str()));
    }
    assert_eq!(ml[&person(12).email].status.as_str(), "unsubscribed", "nobody resubscribed");
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_change_reaches_the_subscribers_of_its_contacts() {
    let h = Harness::start(Options::default()).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 12, with_companies: true, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 0, ..Default::default() }).unwrap();
    let mut c = config(None);
    c.mappings.push(FieldMapping::new("name", "company").company());
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let contact = h.hubspot.contact(seeded.ids[0]).unwrap();
    let company: u64 = contact["properties"]["associatedcompanyid"].as_str().unwrap().parse().unwrap();
    let old_name = h.mailerlite.subscriber(&person(0).email).unwrap().fields.get("company").cloned();
    assert!(old_name.as_ref().is_some_and(|v| v.is_string()), "the company name synced: {old_name:?}");
    h.hubspot.user_edit_company(company, &props(&[("name", "Renamed Inc")]), 7).unwrap();
    h.settle().await;
    let members: Vec<u64> = (0..12u64)
        .filter(|i| {
            h.hubspot.contact(seeded.ids[*i as usize]).unwrap()["properties"]["associatedcompanyid"]
                .as_str()
                .is_some_and(|c| c == company.to_string())
        })
        .collect();
    assert!(!members.is_empty());
    for i in members {
        assert_eq!(
            h.mailerlite.subscriber(&person(i).email).unwrap().fields.get("company"),
            Some(&json!("Renamed Inc")),
            "person {i}"
        );
    }
}
