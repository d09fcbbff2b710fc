//! Lists, properties, companies, notes, communication preferences and account info against the sandbox.

mod common;

use common::{client, props, sim};
use futures::TryStreamExt;
use hmsync_hubspot::{ContactInput, HubSpotError, NoteInput, PropertyCreate, PropertyGroup, PropertyOption};
use hmsync_sandbox::hubspot::{SeedListMembership, SeedRequest};
use serde_json::json;

fn city_is(city: &str) -> serde_json::Value {
    json!({"filterBranchType":"OR","filters":[],"filterBranches":[{"filterBranchType":"AND","filterBranches":[],"filters":[
        {"filterType":"PROPERTY","property":"city","operation":{"operationType":"MULTISTRING","operator":"IS_EQUAL_TO","values":[city]}}]}]})
}

#[tokio::test]
async fn dynamic_lists_follow_contact_changes_and_refuse_membership_edits() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let list = c.create_list("Hiiumaa", "DYNAMIC", Some(city_is("Kärdla"))).await.unwrap();
    assert!(!list.is_static());
    c.update_contact(&ids[2], &props(&[("city", "Kärdla")])).await.unwrap();
    c.update_contact(&ids[7], &props(&[("city", "Kärdla")])).await.unwrap();
    let members: Vec<String> = c.list_memberships(&list.list_id).map_ok(|m| m.record_id).try_collect().await.unwrap();
    assert_eq!(members, vec![ids[2].clone(), ids[7].clone()]);
    c.update_contact(&ids[2], &props(&[("city", "Oslo")])).await.unwrap();
    let members: Vec<String> = c.list_memberships(&list.list_id).map_ok(|m| m.record_id).try_collect().await.unwrap();
    assert_eq!(members, vec![ids[7].clone()]);
    let err = c.add_to_list(&list.list_id, &[ids[0].clone()]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Validation { .. }), "{err:?}");
    let by_name = c.get_list_by_name("hiiumaa").await.unwrap().unwrap();
    assert_eq!(by_name.list_id, list.list_id);
    assert!(c.get_list_by_name("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn manual_lists_page_memberships_and_accept_edits() {
    let s = sim().await;
    let c = client(&s);
    let list = c.create_list("Newsletter", "MANUAL", None).await.unwrap();
    let list_id: u64 = list.list_id.parse().unwrap();
    let ids: Vec<String> = s
        .seed(&SeedRequest { count: 600, lists: vec![SeedListMembership { list_id, rate: 1.0 }], ..Default::default() })
        .unwrap()
        .ids
        .iter()
        .map(u64::to_string)
        .collect();
    let members: Vec<String> = c.list_memberships(&list.list_id).map_ok(|m| m.record_id).try_collect().await.unwrap();
    assert_eq!(members, ids);
    assert_eq!(s.endpoint_requests("GET /crm/v3/lists/{list_id}/memberships"), 3, "250 per page");
    let removed = c.remove_from_list(&list.list_id, &[ids[0].clone(), "777".into()]).await.unwrap();
    assert_eq!(removed.removed, vec![ids[0].clone()]);
    assert_eq!(removed.missing, vec!["777".to_string()]);
    let added = c.add_to_list(&list.list_id, &[ids[0].clone()]).await.unwrap();
    assert_eq!(added.added, vec![ids[0].clone()]);
    let lists = c.search_lists("news", &["MANUAL"]).await.unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].additional_properties.get("hs_list_size").cloned().flatten().as_deref(), Some("600"));
    let memberships = c.contact_list_memberships(&ids[..3]).await.unwrap();
    assert_eq!(memberships[&ids[1]][0].list_id, list.list_id);
    assert_eq!(c.get_list(&list.list_id).await.unwrap().size, Some(600));
}

#[tokio::test]
async fn property_and_group_ensure_are_idempotent() {
    let s = sim().await;
    let c = client(&s);
    let group = PropertyGroup { name: "mailerlite".into(), label: "MailerLite".into(), display_order: None };
    c.ensure_property_group("contacts", &group).await.unwrap();
    c.ensure_property_group("contacts", &group).await.unwrap();
    let prop = PropertyCreate {
        name: "ml_last_open_at".into(),
        label: "MailerLite last open".into(),
        kind: "datetime".into(),
        field_type: "date".into(),
        group_name: "mailerlite".into(),
        options: vec![],
        description: String::new(),
    };
    let first = c.ensure_property("contacts", &prop).await.unwrap();
    let second = c.ensure_property("contacts", &prop).await.unwrap();
    assert_eq!(first.name, second.name);
    assert_eq!(s.endpoint_requests("POST /crm/v3/properties/{object_type}"), 1);
    let clash = PropertyCreate { kind: "string".into(), field_type: "text".into(), ..prop.clone() };
    assert!(
        c.ensure_property("contacts", &clash)
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists with type datetime")
    );
    let all = c.list_properties("contacts").await.unwrap();
    let interests = all.iter().find(|p| p.name == "interests").unwrap();
    assert_eq!((interests.kind.as_str(), interests.field_type.as_str()), ("enumeration", "checkbox"));
    assert!(all.iter().find(|p| p.name == "hs_email_optout").unwrap().is_read_only());
    assert!(all.iter().find(|p| p.name == "lead_score").unwrap().is_read_only());
    let select = PropertyCreate {
        name: "ml_status".into(),
        label: "MailerLite status".into(),
        kind: "enumeration".into(),
        field_type: "select".into(),
        group_name: "mailerlite".into(),
        options: vec![PropertyOption {
            label: "Active".into(),
            value: "active".into(),
            description: None,
            display_order: Some(0),
            hidden: false,
        }],
        description: String::new(),
    };
    assert_eq!(c.ensure_property("contacts", &select).await.unwrap().options[0].value, "active");

    // Several at once: one read of the schema, a create for each missing one only.
    let reads = s.endpoint_requests("GET /crm/v3/properties/{object_type}");
    let creates = s.endpoint_requests("POST /crm/v3/properties/{object_type}");
    let count =
        PropertyCreate { name: "ml_opens".into(), kind: "number".into(), field_type: "number".into(), ..prop.clone() };
    let ensured = c.ensure_properties("contacts", &[prop.clone(), select.clone(), count.clone()]).await.unwrap();
    assert_eq!(
        ensured.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["ml_last_open_at", "ml_status", "ml_opens"]
    );
    assert_eq!(s.endpoint_requests("GET /crm/v3/properties/{object_type}"), reads + 1);
    assert_eq!(s.endpoint_requests("POST /crm/v3/properties/{object_type}"), creates + 1, "only ml_opens was missing");
    c.ensure_properties("contacts", &[prop.clone(), select.clone(), count]).await.unwrap();
    assert_eq!(s.endpoint_requests("GET /crm/v3/properties/{object_type}"), reads + 2);
    assert_eq!(s.endpoint_requests("POST /crm/v3/properties/{object_type}"), creates + 1, "all in place: no create");
    assert!(
        c.ensure_properties("contacts", &[clash])
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists with type datetime")
    );
    let companies = c.list_properties("companies").await.unwrap();
    assert!(companies.iter().any(|p| p.name == "domain" && p.has_unique_value));
}

#[tokio::test]
async fn primary_companies_resolve_for_many_contacts() {
    let s = sim().await;
    let c = client(&s);
    let seeded = s.seed(&SeedRequest { count: 30, with_companies: true, ..Default::default() }).unwrap();
    let mut ids: Vec<String> = seeded.ids.iter().map(u64::to_string).collect();
    let loner = c
        .create_contact(&ContactInput { properties: props(&[("email", "solo@example.com")]), associations: vec![] })
        .await
        .unwrap();
    ids.push(loner.id.clone());
    let primary = c.primary_companies(&ids).await.unwrap();
    assert_eq!(primary.len(), 30);
    assert!(!primary.contains_key(&loner.id));
    let one = c.get_contact_with_companies(&ids[0], &["associatedcompanyid"]).await.unwrap();
    assert_eq!(one.company_ids(), vec![primary[&ids[0]].clone()]);
    assert_eq!(one.prop("associatedcompanyid"), Some(primary[&ids[0]].as_str()));
    let company_ids: Vec<String> = seeded.company_ids.iter().map(u64::to_string).collect();
    let companies = c.batch_read_companies(&company_ids, &["name", "domain"]).await;
    assert_eq!(companies.results.len(), company_ids.len());
    assert!(companies.results.iter().all(|co| co.prop("domain").is_some_and(|d| d.ends_with(".example.com"))));
    let with_company = c
        .create_contact(&ContactInput {
            properties: props(&[("email", "worker@example.com")]),
            associations: vec![hmsync_hubspot::AssociationSpec::primary_company(company_ids[0].clone())],
        })
        .await
        .unwrap();
    assert_eq!(
        c.primary_companies(std::slice::from_ref(&with_company.id)).await.unwrap()[&with_company.id],
        company_ids[0]
    );
}

#[tokio::test]
async fn notes_are_created_on_their_contacts_in_batches() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let notes: Vec<NoteInput> = (0..150)
        .map(|i| NoteInput {
            contact_id: ids[i % 2].clone(),
            timestamp: "2026-05-01T10:00:00.000Z".into(),
            body: format!("Opened “Spring newsletter” #{i}"),
        })
        .collect();
    let out = c.create_notes(&notes).await;
    assert_eq!(out.results.len(), 150);
    assert!(out.errors.is_empty());
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/notes/batch/create"), 2);
    let on_first = s.notes_of(ids[0].parse().unwrap());
    assert_eq!(on_first.len(), 75);
    assert_eq!(on_first[0]["properties"]["hs_timestamp"], "2026-05-01T10:00:00.000Z");
    assert_eq!(on_first[0]["associations"]["contacts"]["results"][0]["id"], ids[0].as_str());
}

#[tokio::test]
async fn unsubscribe_all_opts_out_and_statuses_read_back() {
    let s = sim().await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    let defs = c.subscription_definitions().await.unwrap();
    assert!(defs.iter().any(|d| d.is_default));
    assert!(!c.unsubscribe_all_status("person0@example.com").await.unwrap().unwrap().is_unsubscribed());
    c.set_subscription_status(
        "person0@example.com",
        &defs[0].id,
        "SUBSCRIBED",
        Some("CONSENT_WITH_NOTICE"),
        Some("signed up"),
    )
    .await
    .unwrap();
    let statuses = c.subscription_statuses("person0@example.com").await.unwrap();
    assert_eq!(statuses.iter().find(|st| st.subscription_id == defs[0].id).unwrap().status, "SUBSCRIBED");
    c.unsubscribe_all("person0@example.com").await.unwrap();
    assert!(c.unsubscribe_all_status("person0@example.com").await.unwrap().unwrap().is_unsubscribed());
    assert_eq!(c.get_contact(&id, &["hs_email_optout"]).await.unwrap().prop("hs_email_optout"), Some("true"));
    assert!(c.subscription_statuses("person0@example.com").await.unwrap().iter().all(|st| st.status == "UNSUBSCRIBED"));
}

#[tokio::test]
async fn account_details_name_the_portal() {
    let s = sim().await;
    let c = client(&s);
    let a = c.account_details().await.unwrap();
    assert_eq!(a.portal_id, 62515);
    assert_eq!(a.account_type.as_deref(), Some("STANDARD"));
}
