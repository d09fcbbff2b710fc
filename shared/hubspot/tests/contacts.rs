//! Contacts against the sandbox: single calls, typed errors, batches with per-input outcomes, merges.

mod common;

use common::{client, props, sim};
use hmsync_hubspot::{Auth, ContactInput, ContactUpdate, ContactUpsert, HubSpotClient, HubSpotError, ListOptions};
use hmsync_sandbox::hubspot::SeedRequest;

#[tokio::test]
async fn a_wrong_token_is_unauthorized_with_a_reconnect_hint() {
    let s = sim().await;
    let c = HubSpotClient::new(Auth::StaticToken("pat-na1-wrong".into()), common::config_for(&s));
    let err = c.get_contact("1", &[]).await.unwrap_err();
    assert!(
        matches!(&err, HubSpotError::Unauthorized { reason } if reason.starts_with("INVALID_AUTHENTICATION: Authentication credentials not found."))
    );
    assert!(err.to_string().contains("Reconnect the HubSpot app"));
    assert!(!err.is_transient());
    assert_eq!(s.stats().total_requests, 1, "a 401 on a static token is not retried");
}

#[tokio::test]
async fn creates_reads_updates_clears_and_archives_a_contact() {
    let s = sim().await;
    let c = client(&s);
    let created = c
        .create_contact(&ContactInput {
            properties: props(&[("email", "ada@example.com"), ("firstname", "Ada"), ("city", "London")]),
            associations: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(created.prop("hs_object_id"), Some(created.id.as_str()));
    let by_email = c.find_contact_by_email("ADA@example.com", &["city"]).await.unwrap().unwrap();
    assert_eq!(by_email.id, created.id);
    assert_eq!(by_email.prop("city"), Some("London"));
    assert!(c.find_contact_by_email("nobody@example.com", &[]).await.unwrap().is_none());
    let updated = c.update_contact(&created.id, &props(&[("city", ""), ("employees", "12")])).await.unwrap();
    assert_eq!(updated.prop("city"), None, "\"\" clears a value");
    assert_eq!(updated.prop("employees"), Some("12"));
    assert!(
        updated.updated_at > created.updated_at || updated.prop("lastmodifieddate") >= created.prop("lastmodifieddate")
    );
    c.archive_contact(&created.id).await.unwrap();
    let err = c.get_contact(&created.id, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_second_contact_with_the_same_email_is_a_conflict_naming_the_existing_id() {
    let s = sim().await;
    let c = client(&s);
    let ids = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids;
    let err = c
        .create_contact(&ContactInput { properties: props(&[("email", "Person0@Example.com")]), associations: vec![] })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        HubSpotError::Conflict {
            existing_id: Some(ids[0].to_string()),
            message: format!("Contact already exists. Existing ID: {}", ids[0])
        }
    );
    assert!(err.to_string().contains(&ids[0].to_string()));
}

#[tokio::test]
async fn an_invalid_option_fails_the_whole_write_and_names_the_allowed_options() {
    let s = sim().await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    let before = s.contact(id.parse().unwrap()).unwrap();
    let err = c.update_contact(&id, &props(&[("city", "Riga"), ("industry_segment", "Retail")])).await.unwrap_err();
    let HubSpotError::Validation { errors, .. } = &err else { panic!("{err:?}") };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].property, "industry_segment");
    assert_eq!(errors[0].code, "INVALID_OPTION");
    assert_eq!(errors[0].value.as_deref(), Some("Retail"));
    assert_eq!(errors[0].allowed_options, vec!["saas", "retail", "manufacturing", "healthcare", "finance"]);
    assert!(err.to_string().contains("`industry_segment`"));
    assert_eq!(s.contact(id.parse().unwrap()).unwrap(), before, "no property of the rejected write was applied");
}

#[tokio::test]
async fn unknown_read_only_and_malformed_values_are_rejected() {
    let s = sim().await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    let code = |e: HubSpotError| match e {
        HubSpotError::Validation { errors, .. } => (errors[0].property.clone(), errors[0].code.clone()),
        other => panic!("{other:?}"),
    };
    let e = c.update_contact(&id, &props(&[("favourite_food", "burger")])).await.unwrap_err();
    assert_eq!(code(e), ("favourite_food".into(), "PROPERTY_DOESNT_EXIST".into()));
    let e = c.update_contact(&id, &props(&[("hs_email_optout", "true")])).await.unwrap_err();
    assert_eq!(code(e), ("hs_email_optout".into(), "READ_ONLY_VALUE".into()));
    let e = c.update_contact(&id, &props(&[("employees", "1,000")])).await.unwrap_err();
    assert_eq!(code(e), ("employees".into(), "INVALID_INTEGER".into()));
    let e = c.update_contact(&id, &props(&[("signup_date", "1430438400001")])).await.unwrap_err();
    assert_eq!(code(e), ("signup_date".into(), "INVALID_DATE".into()));
    let e = c.update_contact(&id, &props(&[("email", "not an email")])).await.unwrap_err();
    assert_eq!(code(e), ("email".into(), "INVALID_EMAIL".into()));
    let ok = c
        .update_contact(&id, &props(&[("interests", ";events"), ("vip", "true"), ("signup_date", "1430438400000")]))
        .await
        .unwrap();
    assert!(ok.prop("interests").unwrap().ends_with("events"));
    assert_eq!(ok.prop("signup_date"), Some("2015-05-01"));
}

#[tokio::test]
async fn batch_update_drops_the_refused_input_and_sends_the_rest_once() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let updates = vec![
        ContactUpdate { id: ids[0].clone(), properties: props(&[("city", "Riga")]) },
        ContactUpdate { id: "999999".into(), properties: props(&[("city", "Riga")]) },
        ContactUpdate { id: ids[1].clone(), properties: props(&[("industry_segment", "nope")]) },
        ContactUpdate { id: ids[2].clone(), properties: props(&[("city", "Pärnu")]) },
    ];
    let out = c.batch_update_contacts(&updates).await;
    assert_eq!(out.results.len(), 2);
    let mut failed: Vec<(Option<usize>, String)> = out
        .errors
        .iter()
        .map(|e| {
            (
                e.index,
                match &e.error {
                    HubSpotError::NotFound { .. } => "not found".into(),
                    HubSpotError::Validation { errors, .. } => errors[0].code.clone(),
                    o => format!("{o:?}"),
                },
            )
        })
        .collect();
    failed.sort();
    assert_eq!(failed, vec![(Some(1), "not found".to_string()), (Some(2), "INVALID_OPTION".to_string())]);
    // The whole-batch 400, then the rest once (its 207 names the missing id): no splitting.
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/update"), 2);
    assert_eq!(s.contact(ids[2].parse().unwrap()).unwrap()["properties"]["city"], "Pärnu");
}

#[tokio::test]
async fn batch_create_is_chunked_and_maps_conflicts_to_their_inputs() {
    let s = sim().await;
    let c = client(&s);
    let existing = s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids;
    let mut inputs: Vec<ContactInput> = (0..248)
        .map(|i| ContactInput { properties: props(&[("email", &format!("new{i}@example.com"))]), associations: vec![] })
        .collect();
    inputs.insert(10, ContactInput { properties: props(&[("email", "person0@example.com")]), associations: vec![] });
    inputs.insert(200, ContactInput { properties: props(&[("email", "PERSON1@example.com")]), associations: vec![] });
    let out = c.batch_create_contacts(&inputs).await;
    assert_eq!(out.results.len(), 248);
    let mut conflicts: Vec<(Option<usize>, Option<String>)> = out
        .errors
        .iter()
        .map(|e| match &e.error {
            HubSpotError::Conflict { existing_id, .. } => (e.index, existing_id.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    conflicts.sort();
    assert_eq!(conflicts, vec![(Some(10), Some(existing[0].to_string())), (Some(200), Some(existing[1].to_string()))]);
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/create"), 3, "250 inputs in chunks of 100");
}

#[tokio::test]
async fn batch_upsert_by_email_writes_the_rest_of_a_refused_input_in_the_second_request() {
    let s = sim().await;
    let c = client(&s);
    s.seed(&SeedRequest { count: 4, ..Default::default() }).unwrap();
    let mut upserts: Vec<ContactUpsert> = (0..8)
        .map(|i| ContactUpsert { email: format!("person{i}@example.com"), properties: props(&[("city", "Tartu")]) })
        .collect();
    upserts[5].properties.insert("industry_segment".into(), "Retail".into());
    let out = c.batch_upsert_contacts(&upserts).await;
    assert_eq!(out.results.len(), 8, "person5 is written without the refused value");
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].index, Some(5));
    assert_eq!(out.errors[0].key.as_deref(), Some("person5@example.com"));
    assert!(
        matches!(&out.errors[0].error, HubSpotError::Validation { errors, .. } if errors[0].property == "industry_segment")
    );
    assert_eq!(out.results.iter().filter(|r| r.new == Some(true)).count(), 4, "person4..7 are new");
    let person5 = s.contact_by_email("person5@example.com").unwrap();
    assert_eq!(person5["properties"]["city"], "Tartu");
    assert_eq!(person5["properties"]["industry_segment"], serde_json::Value::Null);
    // One whole-batch 400, then everything else at once.
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/upsert"), 2);
}

#[tokio::test]
async fn batch_reads_by_id_and_email_report_missing_inputs() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 150, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let mut wanted = ids.clone();
    wanted.push("424242".into());
    let out = c.batch_read_contacts(&wanted, &["email", "city"]).await;
    assert_eq!(out.results.len(), 150);
    assert_eq!(out.errors.len(), 1);
    assert_eq!((out.errors[0].index, out.errors[0].key.as_deref()), (Some(150), Some("424242")));
    assert!(matches!(out.errors[0].error, HubSpotError::NotFound { .. }));
    let out =
        c.batch_read_contacts_by_email(&["person3@example.com".into(), "ghost@example.com".into()], &["email"]).await;
    assert_eq!(out.results[0].email(), Some("person3@example.com"));
    assert_eq!(out.errors[0].index, Some(1));
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/read"), 3);
}

#[tokio::test]
async fn listing_streams_every_contact_once_in_pages() {
    use futures::TryStreamExt;
    let s = sim().await;
    let c = client(&s);
    s.seed(&SeedRequest { count: 250, ..Default::default() }).unwrap();
    let all: Vec<_> = c
        .list_contacts(ListOptions { properties: vec!["email".into()], ..Default::default() })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all[249].email(), Some("person249@example.com"));
    assert_eq!(s.endpoint_requests("GET /crm/v3/objects/contacts"), 3);
}

#[tokio::test]
async fn merges_make_a_new_record_that_old_ids_read_as_except_in_batch_updates() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let survivor = c.merge_contacts(&ids[0], &ids[1]).await.unwrap();
    assert!(!ids.contains(&survivor.id), "a new record id");
    assert_eq!(survivor.merged_ids(), ids.clone());
    assert_eq!(survivor.prop("hs_additional_emails"), Some("person1@example.com"));
    assert_eq!(c.get_contact(&ids[1], &[]).await.unwrap().id, survivor.id);
    let read = c.batch_read_contacts(&ids, &["email"]).await;
    assert!(read.results.iter().all(|r| r.id == survivor.id) && !read.results.is_empty());
    c.update_contact(&ids[1], &props(&[("city", "Narva")])).await.unwrap();
    assert_eq!(s.contact(survivor.id.parse().unwrap()).unwrap()["properties"]["city"], "Narva");
    let out =
        c.batch_update_contacts(&[ContactUpdate { id: ids[1].clone(), properties: props(&[("city", "Tapa")]) }]).await;
    assert!(matches!(out.errors[0].error, HubSpotError::NotFound { .. }));
    assert_eq!(out.errors[0].index, Some(0));
    let err = c
        .create_contact(&ContactInput { properties: props(&[("email", "person1@example.com")]), associations: vec![] })
        .await
        .unwrap_err();
    assert!(
        matches!(err, HubSpotError::Conflict { existing_id: Some(ref id), .. } if *id == survivor.id),
        "additional emails stay taken"
    );
}

#[tokio::test]
async fn gdpr_delete_removes_the_contact_and_blocks_its_email() {
    let s = sim().await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    c.gdpr_delete_contact(&id).await.unwrap();
    assert!(s.contact(id.parse().unwrap()).is_none());
    let err = c
        .create_contact(&ContactInput { properties: props(&[("email", "person0@example.com")]), associations: vec![] })
        .await
        .unwrap_err();
    assert!(matches!(err, HubSpotError::Validation { .. }), "{err:?}");
}

#[tokio::test]
async fn batch_archive_removes_contacts_from_reads_in_chunks() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 120, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    c.batch_archive_contacts(&ids[..110]).await.unwrap();
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/archive"), 2);
    let out = c.batch_read_contacts(&ids, &[]).await;
    assert_eq!(out.results.len(), 10);
    assert_eq!(out.errors.len(), 110);
    assert_eq!(s.contact(ids[0].parse().unwrap()).unwrap()["archived"], true);
}
