//! The initial sync and both webhook paths on the AWS adapters (DynamoDB, SQS FIFO) against the
//! moto server `./scripts/test` starts.

use std::collections::HashMap;

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Backend, Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use serde_json::json;

fn config(target_group: String) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("aws");
    c.target_group = Some(target_group);
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    c
}

async fn aws_harness() -> Harness {
    Harness::start(Options { backend: Backend::Aws, ..Options::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_on_dynamodb_and_sqs() {
    let h = aws_harness().await;
    h.hubspot.seed(&SeedRequest { count: 30, opted_out_rate: 0.2, ..Default::default() }).unwrap();
    h.mailerlite
        .seed(&SeedSpec {
            count: 30,
            start_index: 15,
            conflict_rate: 0.5,
            unsubscribed_rate: 0.2,
            ..Default::default()
        })
        .unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    let id = h.connect("aws1", config(group)).await;
    h.activate(&id).await;
    let hs: HashMap<String, _> = h
        .all_contacts(&["email", "firstname", "city"])
        .await
        .into_iter()
        .map(|c| (c.email().unwrap().to_string(), c))
        .collect();
    let ml: HashMap<String, _> = h.all_subscribers().await.into_iter().map(|s| (s.email.clone(), s)).collect();
    assert_eq!((hs.len(), ml.len()), (45, 45), "every person once on each side");
    assert_eq!(h.store.count_links(&id).await.unwrap(), 45);
    for (email, c) in &hs {
        assert_eq!(ml[email].field_text("name").as_deref(), c.prop("firstname"), "{email}");
        assert_eq!(ml[email].field_text("city").as_deref(), c.prop("city"), "{email}");
    }
    assert_eq!(h.dead_letters().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_both_ways_on_dynamodb_and_sqs() {
    let h = aws_harness().await;
    let seeded = h.hubspot.seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 6, start_index: 3, ..Default::default() }).unwrap();
    let group = h.mailerlite.create_group("From HubSpot");
    let id = h.connect("aws2", config(group)).await;
    h.activate(&id).await;
    let mut props = serde_json::Map::new();
    props.insert("firstname".into(), json!("Webhooked"));
    h.hubspot.user_edit_contact(seeded.ids[4], &props, 7).unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("city".into(), json!("Nairobi"));
    h.mailerlite.user_edit(&person(5).email, &UserEdit { fields, ..Default::default() }).unwrap();
    h.settle().await;
    assert_eq!(h.mailerlite.subscriber(&person(4).email).unwrap().fields.get("name"), Some(&json!("Webhooked")));
    assert_eq!(h.hubspot.contact(seeded.ids[5]).unwrap()["properties"]["city"], json!("Nairobi"));
    assert_eq!(h.dead_letters().await, 0);
}
