//! The initial (historical) sync through the sandbox: linking, creating, conflicts, options,
//! statuses, the target group, and the rules on each side.

use std::collections::{BTreeMap, HashMap};

use hmsync_core::{ConnectionConfig, Direction, FieldMapping, HubSpotRule, MailerLiteRule, Side};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::common::people::{INDUSTRY_OPTIONS, person};
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::SeedSpec;

fn config(target_group: Option<String>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("e2e");
    c.target_group = target_group;
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
        FieldMapping::new("employees", "employees"),
    ];
    c
}

fn by_email<T>(items: Vec<T>, email: impl Fn(&T) -> Option<String>) -> HashMap<String, T> {
    items.into_iter().filter_map(|i| email(&i).map(|e| (e.to_lowercase(), i))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_two_way_links_creates_resolves_conflicts_and_keeps_statuses() {
    let h = Harness::start(Options::default()).await;
    // HubSpot: people 0..100, 10% opted out. MailerLite: people 50..150 (50 shared), a third
    // of them with conflicting names and cities, some unsubscribed and bounced.
    h.hubspot.seed(&SeedRequest { count: 100, opted_out_rate: 0.1, ..Default::default() }).unwrap();
    h.mailerlite
        .seed(&SeedSpec {
            count: 100,
            start_index: 50,
            conflict_rate: 0.35,
            unsubscribed_rate: 0.1,
            bounced_rate: 0.05,
            ..Default::default()
        })
        .unwrap();
    // A shared person deleted in MailerLite before the sync: re-created (active).
    let deleted = person(60).email;
    h.mailerlite.delete_as_user(&deleted).unwrap();
    let target = h.mailerlite.create_group("From HubSpot");
    let id = h.connect("c1", config(Some(target.clone()))).await;
    h.activate(&id).await;

    let contacts = h
        .all_contacts(&["email", "firstname", "city", "industry_segment", "hs_email_optout", "mailerlite_status"])
        .await;
    let subscribers = h.all_subscribers().await;
    // Every person on both sides, exactly once.
    assert_eq!(contacts.len(), 150, "HubSpot contacts");
    assert_eq!(subscribers.len(), 150, "MailerLite subscribers");
    let hs = by_email(contacts, |c| c.email().map(str::to_string));
    let ml = by_email(subscribers, |s| Some(s.email.clone()));
    assert_eq!(hs.len(), 150, "no duplicate emails in HubSpot");
    assert_eq!(ml.len(), 150, "no duplicate emails in MailerLite");
    assert_eq!(h.store.count_links("c1").await.unwrap(), 150);

    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for (email, c) in &hs {
        let s = &ml[email];
        // HubSpot is the conflict winner: both sides hold HubSpot's name and city.
        assert_eq!(s.field_text("name").as_deref(), c.prop("firstname"), "{email}");
        assert_eq!(s.field_text("city").as_deref(), c.prop("city"), "{email}");
        // Options: MailerLite holds the label of HubSpot's option value.
        if let Some(v) = c.prop("industry_segment") {
            let label = INDUSTRY_OPTIONS.iter().find(|(val, _)| *val == v).unwrap().1;
            assert_eq!(s.field_text("industry").as_deref(), Some(label), "{email}");
        }
        // An opted-out HubSpot contact is never active in MailerLite.
        if c.prop("hs_email_optout") == Some("true") {
            assert_ne!(s.status.as_str(), "active", "{email}");
        }
        assert_eq!(c.prop("mailerlite_status"), Some(s.status.as_str()), "status recorded on {email}");
        *statuses.entry(s.status.as_str()).or_default() += 1;
        // Contacts from HubSpot are in the target group.
        let index: u64 = email.trim_start_matches("person").split('@').next().unwrap().parse().unwrap();
        if index < 100 {
            let groups = h.mailerlite.subscriber(email).unwrap().groups.unwrap_or_default();
            assert!(groups.iter().any(|g| g.id == target), "{email} not in the target group");
        }
    }
    // MailerLite's own unsubscribed/bounced subscribers kept their status.
    let seeded_suppressed = (50..150u64)
        .filter(|i| {
            let s = &ml[&person(*i).email];
            matches!(s.status.as_str(), "unsubscribed" | "bounced")
        })
        .count();
    assert!(seeded_suppressed >= 10, "{statuses:?}");
    let recreated = &ml[&deleted];
    let opted_out = hs[&deleted].prop("hs_email_optout") == Some("true");
    assert_eq!(recreated.status.as_str(), if opted_out { "unsubscribed" } else { "active" });
    assert_eq!(h.store.count_errors("c1").await.unwrap(), 0, "no errors expected");
    assert_eq!(h.dead_letters().await, 0);
    let _ = Side::HubSpot;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_hubspot_to_mailerlite_never_writes_hubspot() {
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 10, conflict_rate: 1.0, ..Default::default() }).unwrap();
    let mut c = config(None);
    c.direction = Direction::HubSpotToMailerLite;
    c.engagement.enabled = false;
    let id = h.connect("c1", c).await;
    h.hubspot.instrumentation().stats.reset();
    h.activate(&id).await;
    let stats = h.hubspot.stats();
    let writes: u64 = stats
        .endpoints
        .iter()
        .filter(|(k, _)| {
            k.starts_with("POST") && (k.contains("batch/create") || k.contains("batch/update"))
                || k.starts_with("PATCH")
        })
        .map(|(_, v)| v.requests)
        .sum();
    assert_eq!(writes, 0, "no HubSpot write in a HubSpot → MailerLite connection: {:?}", stats.endpoints.keys());
    assert_eq!(h.all_contacts(&["email"]).await.len(), 20);
    let ml = by_email(h.all_subscribers().await, |s| Some(s.email.clone()));
    assert_eq!(ml.len(), 30, "10 new subscribers from HubSpot");
    for c in h.all_contacts(&["email", "firstname"]).await {
        assert_eq!(ml[c.email().unwrap()].field_text("name").as_deref(), c.prop("firstname"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_mailerlite_to_hubspot_never_writes_mailerlite() {
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 10, conflict_rate: 1.0, ..Default::default() }).unwrap();
    let mut c = config(Some(h.mailerlite.create_group("never used")));
    c.direction = Direction::MailerLiteToHubSpot;
    let id = h.connect("c1", c).await;
    h.mailerlite.reset_stats();
    h.activate(&id).await;
    let stats = h.mailerlite.stats();
    let subscribers = h.all_subscribers().await;
    assert_eq!(subscribers.len(), 20, "no subscriber created");
    assert!(stats.endpoints.keys().all(|k| !k.starts_with("PUT")), "{:?}", stats.endpoints.keys());
    let hs = by_email(h.all_contacts(&["email", "firstname"]).await, |c| c.email().map(str::to_string));
    assert_eq!(hs.len(), 30, "10 new contacts from MailerLite");
    for s in subscribers {
        assert_eq!(
            hs[&s.email].prop("firstname").map(str::to_string),
            s.field_text("name"),
            "MailerLite wins the one-way mapping"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_list_rule_and_mailerlite_group_rule_limit_who_syncs() {
    let h = Harness::start(Options::default()).await;
    let list = h.hubspot.create_list("Newsletter", "MANUAL", None).unwrap();
    let list_id = list["listId"].as_str().map(str::to_string).unwrap_or_else(|| list["listId"].to_string());
    let seeded = h
        .hubspot
        .seed(&SeedRequest {
            count: 40,
            lists: vec![hmsync_sandbox::hubspot::SeedListMembership { list_id: list_id.parse().unwrap(), rate: 0.5 }],
            ..Default::default()
        })
        .unwrap();
    let group = h.mailerlite.create_group("Customers");
    h.mailerlite
        .seed(&SeedSpec { count: 20, start_index: 100, group_ids: vec![group.clone()], ..Default::default() })
        .unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 200, ..Default::default() }).unwrap();
    let mut c = config(None);
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec![list_id.clone()] };
    c.mailerlite_rule = MailerLiteRule::Groups { group_ids: vec![group] };
    let id = h.connect("c1", c).await;
    h.activate(&id).await;
    let members = h.hubspot.list_members(list_id.parse().unwrap()).unwrap();
    let in_list = members.len();
    assert!(in_list > 5 && in_list < 35, "{in_list}");
    let ml = by_email(h.all_subscribers().await, |s| Some(s.email.clone()));
    // List members reached MailerLite; non-members did not.
    for (i, cid) in seeded.ids.iter().enumerate() {
        let email = person(i as u64).email;
        assert_eq!(ml.contains_key(&email), members.contains(cid), "{email}");
    }
    // Group members reached HubSpot; other subscribers did not.
    let hs = by_email(h.all_contacts(&["email"]).await, |c| c.email().map(str::to_string));
    for i in 100..120u64 {
        assert!(hs.contains_key(&person(i).email));
    }
    for i in 200..220u64 {
        assert!(!hs.contains_key(&person(i).email));
    }
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_counters_hold_each_app_s_writes_and_every_request_the_sync_made() {
    let h = Harness::start(Options::default()).await;
    // HubSpot: people 0..20; MailerLite: people 10..30 with the same values (nothing to update).
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 10, ..Default::default() }).unwrap();
    let mut c = ConnectionConfig::new("hourly");
    c.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("lastname", "last_name")];
    c.engagement.enabled = false;
    let id = h.connect("c1", c).await;
    h.start_activation(&id).await;
    // Only what the worker does from here on: the initial sync and the echoes of its writes.
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();
    h.settle().await;

    let activity = h.engine.activity(&id, 3).await.unwrap();
    assert_eq!(activity.hours.len(), 3, "{activity:?}");
    let sum = |f: fn(&hmsync_engine::hourly::HourActivity) -> u64| activity.hours.iter().map(f).sum::<u64>();
    assert_eq!(sum(|a| a.written_hubspot), 10, "the MailerLite-only people were created in HubSpot: {activity:?}");
    assert_eq!(sum(|a| a.written_mailerlite), 10, "the HubSpot-only people were created in MailerLite: {activity:?}");
    assert_eq!(sum(|a| a.errors) + sum(|a| a.failed_messages), 0, "{activity:?}");
    // The initial sync's progress: 20 subscribers, then 30 contacts (the HubSpot part reads the
    // 10 the MailerLite part created), as the status counts them.
    assert_eq!(sum(|a| a.initial_records), 50, "{activity:?}");
    assert_eq!(h.engine.status(&id).await.unwrap().initial_sync.done, 50);
    // Every request the sync made is counted, against the apps' own counts.
    assert_eq!(sum(|a| a.requests_hubspot), h.hubspot.stats().total_requests, "{activity:?}");
    assert_eq!(sum(|a| a.requests_mailerlite), h.mailerlite.stats().total_requests, "{activity:?}");
    assert!(sum(|a| a.requests_hubspot) > 0 && sum(|a| a.requests_mailerlite) > 0);
    // The limits to read them against: HubSpot's 100 per 10 s and MailerLite's 120 per minute,
    // in windows shrunk by the harness's time scale.
    let scale = Options::default().time_scale;
    assert_eq!(activity.limits.hubspot_per_hour, (36_000.0 * scale) as u64, "{:?}", activity.limits);
    assert_eq!(activity.limits.mailerlite_per_hour, (7_200.0 * scale) as u64, "{:?}", activity.limits);
}
