//! The request budget of an initial sync, counted by the sandbox (counts, not times): 10,000
//! HubSpot and 10,000 MailerLite contacts with 50% overlap, four mapped fields (one an option
//! field) and a target group, at the real rate-limit sizes with shrunk windows.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::{MembershipSeed, PeopleSeed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_of_ten_thousand_per_side_stays_within_the_request_budget() {
    let h = Harness::start(Options { time_scale: 200.0, ..Options::default() }).await;
    let seed = PeopleSeed {
        per_side: 10_000,
        overlap: 0.5,
        conflict_rate: 0.3,
        hubspot_opted_out_rate: 0.05,
        mailerlite_unsubscribed_rate: 0.05,
        mailerlite_group: Some(MembershipSeed { name: "From HubSpot".into(), member_rate: 0.0 }),
        ..PeopleSeed::default()
    };
    let summary = hmsync_sandbox::seed_people(h.hubspot.state(), &h.mailerlite, &seed).unwrap();
    let unique = summary.expected_unique_contacts;
    assert_eq!(unique, 15_000);
    let mut c = ConnectionConfig::new("budget");
    c.target_group = summary.mailerlite.group_id.clone();
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    let id = h.connect("budget", c).await;
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();
    h.activate(&id).await;

    let hs = h.hubspot.stats();
    let ml = h.mailerlite.stats();
    let hs_per_contact = hs.total_requests as f64 / unique as f64;
    let ml_per_contact = ml.total_requests as f64 / unique as f64;
    println!("HubSpot: {} requests ({hs_per_contact:.4} per unique contact): {:?}", hs.total_requests, hs.endpoints);
    println!("MailerLite: {} requests ({ml_per_contact:.4} per unique contact): {:?}", ml.total_requests, ml.endpoints);
    assert!(hs_per_contact <= 0.03, "HubSpot requests per unique contact: {hs_per_contact}");
    assert!(ml_per_contact <= 0.05, "MailerLite requests per unique contact: {ml_per_contact}");
    assert_eq!(hs.status_count(429) + ml.status_count(429), 0, "the pacers kept both accounts under their limits");
    assert_eq!(h.store.count_links(&id).await.unwrap(), unique);
    assert_eq!(h.all_subscribers().await.len() as u64, unique, "no duplicate subscribers");
    assert_eq!(h.dead_letters().await, 0);
}
