//! hmsync against the documented HubSpot behaviours of `docs/api-fidelity.md`, through the
//! sandbox as users and the apps reach it: merges that make a new record, whole-batch refusals
//! (requests counted from the simulator), static-token scopes, association-change webhooks.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::checker::{self, Expectations};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::webhook::HubSpotDelivery;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::common::webhooks::DeliveryOptions;
use hmsync_sandbox::hubspot::{ALL_SCOPES, HubSpotConfig, ObjectType, SeedRequest, endpoint_requests};
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use serde_json::{Map, Value, json};

const CONNECTION: &str = "c1";
const UPDATE: &str = "POST /crm/v3/objects/contacts/batch/update";

fn config(group: Option<String>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("fidelity");
    c.target_group = group;
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    c
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// `n` people on both sides, rule "all", a target group; synced.
async fn synced(n: u64, options: Options) -> (Harness, Vec<u64>, String) {
    let h = Harness::start(options).await;
    let ids = h.hubspot.seed(&SeedRequest { count: n, ..Default::default() }).unwrap().ids;
    h.mailerlite.seed(&SeedSpec { count: n, ..Default::default() }).unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    h.connect(CONNECTION, config(Some(group.clone()))).await;
    h.activate(CONNECTION).await;
    (h, ids, group)
}

fn in_group(h: &Harness, email: &str, group: &str) -> bool {
    h.mailerlite.subscriber(email).unwrap().groups.unwrap_or_default().iter().any(|g| g.id == group)
}

/// Whether the link's history shows its subscriber taken out of the target group.
async fn left_group(h: &Harness, link_id: &str, group: &str) -> bool {
    let history = h.store.read_history(CONNECTION, link_id, 200).await.unwrap();
    history.iter().any(|e| e.field == format!("group:{group}") && e.after.is_none())
}

async fn assert_checks_pass(h: &Harness) {
    let report = checker::check(h, CONNECTION, &Expectations::default()).await.unwrap();
    assert!(report.passed(), "{:#?}", report.checks.iter().filter(|c| !c.passed()).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_into_a_new_record_keeps_the_link_and_its_subscriber_in_the_target_group() {
    let (h, ids, group) = synced(4, Options::default()).await;
    let kept_before = h.store.link_by_email(CONNECTION, &person(1).email).await.unwrap().unwrap();
    let survivor = h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    assert!(!ids.contains(&survivor), "HubSpot made a new record");
    h.settle().await;

    let kept = h.store.link_by_email(CONNECTION, &person(1).email).await.unwrap().unwrap();
    assert_eq!(kept.id, kept_before.id, "the same link");
    assert_eq!(kept.hubspot_id, Some(survivor.to_string()), "now on the new record");
    assert!(!kept.hs_deleted);
    assert!(!left_group(&h, &kept.id, &group).await, "its subscriber never left the target group");
    assert!(in_group(&h, &person(1).email, &group));
    assert!(!in_group(&h, &person(2).email, &group), "the absorbed contact's subscriber left it");
    assert_checks_pass(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_away_id_read_before_the_merge_webhook_is_followed_to_the_new_record() {
    let (h, ids, group) = synced(4, Options::default()).await;
    // The merge webhook is held back; meanwhile the subscriber of the primary changes, which
    // makes the sync read the contact by its old id.
    h.hubspot.dispatcher().set_options(DeliveryOptions { paused: true, ..h.hubspot.dispatcher().options() });
    let survivor = h.hubspot.user_merge_contacts(ids[1], ids[2], 7).unwrap();
    let edit = UserEdit { fields: fields(&[("city", json!("Quito"))]), ..Default::default() };
    h.mailerlite.user_edit(&person(1).email, &edit).unwrap();
    h.mailerlite.dispatcher().wait_idle().await;
    h.settle().await;
    let kept = h.store.link_by_email(CONNECTION, &person(1).email).await.unwrap().unwrap();
    assert_eq!(kept.hubspot_id, Some(survivor.to_string()), "re-keyed from the read, before any webhook");
    assert_eq!(h.hubspot.contact(survivor).unwrap()["properties"]["city"], "Quito");

    h.hubspot.dispatcher().set_options(DeliveryOptions { paused: false, ..h.hubspot.dispatcher().options() });
    h.hubspot.dispatcher().resume();
    h.hubspot.dispatcher().wait_idle().await;
    h.settle().await;
    let kept = h.store.link_by_email(CONNECTION, &person(1).email).await.unwrap().unwrap();
    assert_eq!(kept.hubspot_id, Some(survivor.to_string()));
    assert!(!left_group(&h, &kept.id, &group).await, "no remove and re-add of the subscriber");
    assert!(in_group(&h, &person(1).email, &group));
    assert_checks_pass(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_value_hubspot_refuses_among_100_contacts_costs_at_most_two_update_requests() {
    let (h, ids, _) = synced(100, Options::default()).await;
    // HubSpot drops an option after hmsync stored the schema: the planner cannot tell.
    {
        let mut db = h.hubspot.db();
        let schema = db.schemas.get_mut(&ObjectType::Contacts).unwrap();
        schema.properties.get_mut("industry_segment").unwrap().options.retain(|o| o.value != "retail");
    }
    h.mailerlite.dispatcher().set_options(DeliveryOptions { drop_rate: 1.0, ..h.mailerlite.dispatcher().options() });
    for i in 0..100 {
        let mut pairs = vec![("city", json!(format!("City {i}")))];
        if i == 42 {
            pairs.push(("industry", json!("Retail")));
        }
        let edit = UserEdit { fields: fields(&pairs), ..Default::default() };
        h.mailerlite.user_edit(&person(i).email, &edit).unwrap();
    }
    h.mailerlite.dispatcher().wait_idle().await;
    h.mailerlite.dispatcher().set_options(DeliveryOptions { drop_rate: 0.0, ..h.mailerlite.dispatcher().options() });
    let before = endpoint_requests(&h.hubspot.stats(), UPDATE);
    h.engine.sync_now(CONNECTION).await.unwrap();
    h.settle().await;

    let updates = endpoint_requests(&h.hubspot.stats(), UPDATE) - before;
    assert!(updates <= 2, "{updates} batch updates for one refused value among 100 contacts");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(h.hubspot.contact(*id).unwrap()["properties"]["city"], format!("City {i}"), "contact {i}");
    }
    let errors = h.store.list_errors(CONNECTION, None, 10).await.unwrap().items;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].email.as_deref(), Some(person(42).email.as_str()));
    let text = format!("{:?}", errors[0].problems);
    assert!(text.contains("industry_segment") && text.contains("retail"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_app_without_the_opt_out_scope_records_the_unsubscribe_and_says_what_to_do() {
    let scopes = ALL_SCOPES.iter().filter(|s| !s.starts_with("communication_preferences")).map(|s| s.to_string());
    let options = Options {
        hubspot: HubSpotConfig { static_token_scopes: scopes.collect(), ..HubSpotConfig::default() },
        ..Options::default()
    };
    let h = Harness::start(options).await;
    let ids = h.hubspot.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids;
    h.mailerlite.seed(&SeedSpec { count: 2, ..Default::default() }).unwrap();
    let mut c = config(None);
    c.engagement.unsubscribe_in_hubspot = true;
    h.connect(CONNECTION, c).await;
    h.activate(CONNECTION).await;
    h.mailerlite.unsubscribe_as_person(&person(1).email).unwrap();
    h.settle().await;

    let contact = h.hubspot.contact(ids[1]).unwrap();
    assert_eq!(contact["properties"]["mailerlite_status"], "unsubscribed", "the status is still recorded");
    assert_eq!(contact["properties"]["hs_email_optout"], Value::Null, "HubSpot refused the opt-out");
    let errors = h.store.list_errors(CONNECTION, None, 10).await.unwrap().items;
    let text = format!("{:?}", errors.iter().find(|e| e.email.as_deref() == Some(person(1).email.as_str())));
    assert!(text.contains("communication_preferences"), "the error names the missing scope: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_change_is_routed_to_the_contact_it_names() {
    let (h, ids, _) = synced(2, Options::default()).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let body = json!([{"eventId": 9, "subscriptionId": 1, "portalId": h.hubspot.config().portal_id, "appId": 1,
        "occurredAt": now, "subscriptionType": "contact.associationChange", "attemptNumber": 0,
        "associationType": "CONTACT_TO_COMPANY", "fromObjectId": ids[1], "toObjectId": 5000001,
        "associationRemoved": false, "isPrimaryAssociation": true, "changeSource": "CRM_UI"}])
    .to_string();
    let uri = format!("{}/webhooks/hubspot", h.api_url);
    let ts = now.to_string();
    let signature =
        hmsync_hubspot::webhooks::sign_v3(&h.hubspot.config().client_secret, "POST", &uri, body.as_bytes(), &ts);
    let accepted = h
        .engine
        .hubspot_webhook(HubSpotDelivery {
            method: "POST",
            uri: &uri,
            body: body.as_bytes(),
            signature_v3: Some(&signature),
            timestamp: Some(&ts),
        })
        .await
        .unwrap();
    assert_eq!(accepted.messages, 1);
    let queued = h.queue.receive(10, std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(queued.len(), 1);
    let message: Value = serde_json::from_str(&queued[0].body).unwrap();
    assert!(message.to_string().contains(&format!("\"{}\"", ids[1])), "the contact of fromObjectId: {message}");
}
