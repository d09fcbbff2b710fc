//! Engagement sync through the sandbox: a simulated MailerLite campaign's opens, clicks,
//! unsubscribes, bounces and spam reports recorded on the HubSpot contacts.

use std::collections::HashMap;

use hmsync_core::{ConnectionConfig, FieldMapping, MailerLiteRule, engagement};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::PeopleSeed;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::common::webhooks::DeliveryOptions;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{CampaignSpec, Recipients, SeedSpec};
use serde_json::{Value, json};

fn config() -> ConnectionConfig {
    let mut c = ConnectionConfig::new("engagement");
    c.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")];
    c
}

/// 10 people, on both sides, synced; returns HubSpot contact ids by email.
async fn synced(c: ConnectionConfig) -> (Harness, HashMap<String, u64>) {
    let h = Harness::start(Options::default()).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 10, ..Default::default() }).unwrap();
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let ids = seeded.ids.iter().enumerate().map(|(i, id)| (person(i as u64).email, *id)).collect();
    (h, ids)
}

fn props(h: &Harness, id: u64) -> Value {
    h.hubspot.contact(id).unwrap()["properties"].clone()
}

fn ml_ids(h: &Harness, people: std::ops::Range<u64>) -> Vec<String> {
    people.map(|i| h.mailerlite.subscriber(&person(i).email).unwrap().id).collect()
}

fn email_of(h: &Harness, ml_id: &str) -> String {
    h.mailerlite.subscriber(ml_id).unwrap().email
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_records_counts_last_times_statuses_in_hubspot() {
    let (h, hs_ids) = synced(config()).await;
    let sent = h
        .mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Spring newsletter".into(),
            recipients: Recipients { subscriber_ids: ml_ids(&h, 0..10), group_id: None },
            opens: Some(6),
            clicks: Some(2),
            unsubscribes: Some(1),
            spam_reports: Some(1),
            hard_bounces: Some(1),
            urls: vec!["https://example.com/spring".into()],
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    for s in &sent.opened {
        let p = props(&h, hs_ids[&email_of(&h, s)]);
        assert_eq!(p[engagement::OPENS_COUNT], json!("1"), "{p}");
        assert!(p[engagement::LAST_OPEN_AT].as_str().is_some_and(|t| t.ends_with('Z')), "{p}");
        assert_eq!(p[engagement::LAST_CAMPAIGN], json!("Spring newsletter"));
    }
    for s in &sent.clicked {
        let p = props(&h, hs_ids[&email_of(&h, s)]);
        assert_eq!(p[engagement::CLICKS_COUNT], json!("1"));
        assert_eq!(p[engagement::LAST_CLICKED_URL], json!("https://example.com/spring"));
        assert!(p[engagement::LAST_CLICK_AT].is_string());
    }
    let unsub = props(&h, hs_ids[&email_of(&h, &sent.unsubscribed[0])]);
    assert!(unsub[engagement::UNSUBSCRIBED_AT].is_string(), "{unsub}");
    assert_eq!(unsub[engagement::STATUS], json!("unsubscribed"));
    let bounced = props(&h, hs_ids[&email_of(&h, &sent.bounced[0])]);
    assert!(bounced[engagement::BOUNCED_AT].is_string(), "{bounced}");
    assert_eq!(bounced[engagement::STATUS], json!("bounced"));
    let spam = props(&h, hs_ids[&email_of(&h, &sent.spam_reported[0])]);
    assert!(spam[engagement::SPAM_REPORTED_AT].is_string(), "{spam}");
    assert_eq!(spam[engagement::STATUS], json!("junk"));
    let status = h.engine.status("c1").await.unwrap();
    assert_eq!(status.engagement_events_total, 6 + 2 + 1 + 1 + 1);
    assert_eq!(status.engagement_events_today, status.engagement_events_total);
    for id in hs_ids.values() {
        assert!(h.hubspot.notes_of(*id).is_empty(), "no notes unless the connection asks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_are_counted_once_and_notes_are_made_once() {
    let mut c = config();
    c.engagement.notes = true;
    let (h, hs_ids) = synced(c).await;
    h.mailerlite
        .dispatcher()
        .set_options(DeliveryOptions { duplicate_rate: 1.0, ..h.mailerlite.dispatcher().options() });
    let sent = h
        .mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Webinar invite".into(),
            recipients: Recipients { subscriber_ids: ml_ids(&h, 0..10), group_id: None },
            opens: Some(4),
            clicks: Some(1),
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    for s in &sent.opened {
        let id = hs_ids[&email_of(&h, s)];
        assert_eq!(props(&h, id)[engagement::OPENS_COUNT], json!("1"), "one open, delivered twice");
        let notes = h.hubspot.notes_of(id);
        let clicked = sent.clicked.contains(s);
        assert_eq!(notes.len(), if clicked { 2 } else { 1 }, "{notes:?}");
        assert!(notes.iter().any(|n| n.to_string().contains("Opened \u{201c}Webinar invite\u{201d}")), "{notes:?}");
    }
    assert_eq!(h.engine.status("c1").await.unwrap().engagement_events_total, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_webhook_is_recovered_by_the_scan() {
    let (h, hs_ids) = synced(config()).await;
    h.mailerlite.dispatcher().set_options(DeliveryOptions { drop_rate: 1.0, ..h.mailerlite.dispatcher().options() });
    let sent = h
        .mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Lost in transit".into(),
            recipients: Recipients { subscriber_ids: ml_ids(&h, 0..10), group_id: None },
            opens: Some(3),
            clicks: Some(1),
            urls: vec!["https://example.com/x".into()],
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    let opener = hs_ids[&email_of(&h, &sent.opened[0])];
    assert!(props(&h, opener)[engagement::OPENS_COUNT].is_null(), "the webhooks were lost");
    h.engine.sync_now("c1").await.unwrap();
    h.settle().await;
    for s in &sent.opened {
        let p = props(&h, hs_ids[&email_of(&h, s)]);
        assert_eq!(p[engagement::OPENS_COUNT], json!("1"), "{p}");
        assert_eq!(p[engagement::LAST_CAMPAIGN], json!("Lost in transit"));
        assert!(p[engagement::LAST_OPEN_AT].is_string(), "the activity log gives the time: {p}");
    }
    let clicker = props(&h, hs_ids[&email_of(&h, &sent.clicked[0])]);
    assert_eq!(clicker[engagement::LAST_CLICKED_URL], json!("https://example.com/x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_in_mailerlite_shows_in_hubspot_and_is_never_undone_by_the_contact_sync() {
    let mut c = config();
    c.engagement.unsubscribe_in_hubspot = true;
    let (h, hs_ids) = synced(c).await;
    let sent = h
        .mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Goodbye".into(),
            recipients: Recipients { subscriber_ids: ml_ids(&h, 0..10), group_id: None },
            opens: Some(2),
            unsubscribes: Some(1),
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    let email = email_of(&h, &sent.unsubscribed[0]);
    let id = hs_ids[&email];
    let p = props(&h, id);
    assert_eq!(p[engagement::STATUS], json!("unsubscribed"));
    assert!(p[engagement::UNSUBSCRIBED_AT].is_string());
    assert_eq!(p["hs_email_optout"], json!("true"), "opted out in HubSpot too, as configured");
    // Later edits on both sides never resubscribe the person.
    let mut edit = serde_json::Map::new();
    edit.insert("firstname".into(), json!("Still here"));
    h.hubspot.user_edit_contact(id, &edit, 7).unwrap();
    h.settle().await;
    h.engine.sync_now("c1").await.unwrap();
    h.settle().await;
    let s = h.mailerlite.subscriber(&email).unwrap();
    assert_eq!(s.status, "unsubscribed");
    assert_eq!(s.fields.get("name"), Some(&json!("Still here")), "the rest still syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_contact_linked_later_are_recorded_once_it_is_linked() {
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 3, ..Default::default() }).unwrap();
    let group = h.mailerlite.create_group("Customers");
    let mut c = config();
    c.mailerlite_rule = MailerLiteRule::Groups { group_ids: vec![group.clone()] };
    c.hubspot_rule = hmsync_core::HubSpotRule::Lists { list_ids: vec!["999999".into()] };
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let late = h.mailerlite.subscriber(&person(1).email).unwrap().id;
    h.mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Early bird".into(),
            recipients: Recipients { subscriber_ids: vec![late.clone()], group_id: None },
            opens: Some(1),
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    let contact = h.hubspot.contact_by_email(&person(1).email).unwrap();
    assert!(contact["properties"][engagement::OPENS_COUNT].is_null(), "not linked yet: nothing recorded");
    // Joining the group brings the subscriber into the rule: linked, and the open follows.
    h.ml_client().assign_to_group(&late, &group).await.unwrap();
    h.settle().await;
    let contact = h.hubspot.contact_by_email(&person(1).email).unwrap();
    assert_eq!(contact["properties"][engagement::OPENS_COUNT], json!("1"), "{contact}");
    assert_eq!(contact["properties"][engagement::LAST_CAMPAIGN], json!("Early bird"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_thousand_opens_for_a_thousand_linked_contacts_takes_at_most_fifteen_hubspot_requests() {
    let h = Harness::start(Options { time_scale: 100.0, ..Options::default() }).await;
    hmsync_sandbox::seed_people(
        h.hubspot.state(),
        &h.mailerlite,
        &PeopleSeed { per_side: 1000, overlap: 1.0, ..PeopleSeed::default() },
    )
    .unwrap();
    let id = h.connect("c1", config()).await;
    h.activate(&id).await;
    h.hubspot.instrumentation().stats.reset();
    let everyone: Vec<String> = h.all_subscribers().await.into_iter().map(|s| s.id).collect();
    assert_eq!(everyone.len(), 1000);
    h.mailerlite
        .simulate_campaign(&CampaignSpec {
            name: "Big send".into(),
            recipients: Recipients { subscriber_ids: everyone, group_id: None },
            opens: Some(1000),
            ..Default::default()
        })
        .unwrap();
    h.settle().await;
    let stats = h.hubspot.stats();
    println!("HubSpot requests for 1,000 opens: {} {:?}", stats.total_requests, stats.endpoints);
    assert!(stats.total_requests <= 15, "{} HubSpot requests: {:?}", stats.total_requests, stats.endpoints);
    assert_eq!(h.engine.status("c1").await.unwrap().engagement_events_total, 1000);
}
