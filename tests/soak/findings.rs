//! Minimal reproductions of what the soak found, each checked with the soak's own checker.
//! Run with `cargo test -p hmsync-e2e --bin soak`. A test here fails while its finding stands.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::checker::{self, Expectations};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::common::DeliveryOptions;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::SeedSpec;

const CONNECTION: &str = "c1";

/// Four people on both sides, rule "all" on both, a target group; synced.
async fn synced() -> (Harness, Vec<u64>, String) {
    let h = Harness::start(Options::default()).await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 4, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 4, ..Default::default() }).unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    let mut config = ConnectionConfig::new("findings");
    config.target_group = Some(group.clone());
    config.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")];
    h.connect(CONNECTION, config).await;
    h.activate(CONNECTION).await;
    (h, seeded.ids, group)
}

fn in_group(h: &Harness, email: &str, group: &str) -> bool {
    h.mailerlite.subscriber(email).unwrap().groups.unwrap_or_default().iter().any(|g| g.id == group)
}

/// Finding 1: HubSpot merges contact 2 into contact 1 and the merge webhook is lost (HubSpot
/// gives up after its retries, or the receiver was down). The survivor's change is found by the
/// scan, but the link of the merged-away contact is never revisited: it keeps claiming a HubSpot
/// contact that no longer exists, is not marked deleted, and its subscriber stays in the target
/// group. The survivor carries `hs_merged_object_ids`, which the scan could use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_whose_webhook_was_lost_is_repaired_by_the_scan() {
    let (h, ids, group) = synced().await;
    h.hubspot.dispatcher().set_options(DeliveryOptions { drop_rate: 1.0, ..h.hubspot.dispatcher().options() });
    h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    h.settle().await;
    h.hubspot.dispatcher().set_options(DeliveryOptions { drop_rate: 0.0, ..h.hubspot.dispatcher().options() });
    h.engine.sync_now(CONNECTION).await.unwrap();
    h.settle().await;

    let report = checker::check(&h, CONNECTION, &Expectations::default()).await.unwrap();
    let link = h.store.link_by_email(CONNECTION, &person(2).email).await.unwrap().expect("link of person 2");
    assert!(
        link.hs_deleted || link.hubspot_id.as_deref() != Some(ids[2].to_string().as_str()),
        "the link still claims merged-away contact {}: {link:?}",
        ids[2]
    );
    assert!(!in_group(&h, &person(2).email, &group), "the merged-away contact's subscriber left the target group");
    assert!(report.passed(), "{:#?}", report.checks.iter().filter(|c| !c.passed()).collect::<Vec<_>>());
}

/// Finding 2: HubSpot merges contact 2 into contact 1 and the webhook arrives. The link of the
/// merged-away contact is retired (`hs_deleted`), but its subscriber stays in the target group,
/// although a contact deleted in HubSpot leaves it (DESIGN.md §2). The subscriber is only taken
/// out when something else makes the sync look at it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_away_contacts_subscriber_leaves_the_target_group() {
    let (h, ids, group) = synced().await;
    assert!(in_group(&h, &person(2).email, &group));
    h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    h.settle().await;
    h.engine.sync_now(CONNECTION).await.unwrap();
    h.settle().await;

    let retired = h.store.link_by_email(CONNECTION, &person(2).email).await.unwrap().expect("link of person 2");
    assert!(retired.hs_deleted, "the merge retired the link: {retired:?}");
    assert!(!in_group(&h, &person(2).email, &group), "the merged-away contact's subscriber left the target group");
    let report = checker::check(&h, CONNECTION, &Expectations::default()).await.unwrap();
    assert!(report.passed(), "{:#?}", report.checks.iter().filter(|c| !c.passed()).collect::<Vec<_>>());
}

/// Finding 3: contact 1's subscriber is unsubscribed (recorded in HubSpot as
/// `mailerlite_status = unsubscribed`); contact 2's subscriber is active. A user edits contact 2
/// and then merges it into contact 1: HubSpot keeps the newer values, so the survivor now says
/// `mailerlite_status = active`. The sync re-keys the link and plans the survivor, but compares
/// the subscriber's status with the status the link remembers recording (unchanged), not with the
/// survivor's property, so the wrong status stays in HubSpot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_merge_the_survivor_shows_its_own_subscribers_status() {
    let (h, ids, _) = synced().await;
    h.mailerlite.unsubscribe_as_person(&person(1).email).unwrap();
    h.settle().await;
    let status = |h: &Harness, id: u64| h.hubspot.contact(id).unwrap()["properties"]["mailerlite_status"].clone();
    assert_eq!(status(&h, ids[1]), serde_json::json!("unsubscribed"));
    assert_eq!(status(&h, ids[2]), serde_json::json!("active"));
    let edit = serde_json::Map::from_iter([("city".to_string(), serde_json::json!("Lima"))]);
    h.hubspot.user_edit_contact(ids[2], &edit, 7).unwrap();
    h.settle().await;
    let survivor = h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    h.settle().await;
    h.engine.sync_now(CONNECTION).await.unwrap();
    h.settle().await;

    assert_eq!(h.mailerlite.subscriber(&person(1).email).unwrap().status, "unsubscribed");
    assert_eq!(status(&h, survivor), serde_json::json!("unsubscribed"), "the survivor's subscriber is unsubscribed");
}
