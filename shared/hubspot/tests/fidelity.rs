//! The client against the documented HubSpot behaviours of `docs/api-fidelity.md`: whole-batch
//! refusals handled without splitting, requests counted from the simulator's stats; 477; route
//! 404s; static-token scopes; the portal's search pace; the burst limit from the headers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, config_for, props, sim, sim_with};
use hmsync_hubspot::{Auth, ContactUpdate, Filter, HubSpotClient, HubSpotError, SearchRequest};
use hmsync_sandbox::hubspot::{HubSpotConfig as SimConfig, SeedRequest, Tier};

const UPDATE: &str = "POST /crm/v3/objects/contacts/batch/update";

#[tokio::test]
async fn one_refused_value_in_a_batch_of_100_costs_two_update_requests() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 100, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let mut updates: Vec<ContactUpdate> =
        ids.iter().map(|id| ContactUpdate { id: id.clone(), properties: props(&[("city", "Tartu")]) }).collect();
    updates[37].properties.insert("industry_segment".into(), "Aerospace".into());
    let out = c.batch_update_contacts(&updates).await;
    assert_eq!(s.endpoint_requests(UPDATE), 2, "the whole-batch 400, then the rest once");
    assert_eq!(out.results.len(), 100, "the refused input's other values are written too");
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].index, Some(37));
    let HubSpotError::Validation { errors, .. } = &out.errors[0].error else { panic!("{:?}", out.errors[0]) };
    assert_eq!((errors[0].property.as_str(), errors[0].value.as_deref()), ("industry_segment", Some("Aerospace")));
    assert!(ids.iter().all(|id| s.contact(id.parse().unwrap()).unwrap()["properties"]["city"] == "Tartu"));
}

#[tokio::test]
async fn several_refused_values_are_all_named_by_the_one_error() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 10, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let mut updates: Vec<ContactUpdate> =
        ids.iter().map(|id| ContactUpdate { id: id.clone(), properties: props(&[("city", "Tartu")]) }).collect();
    updates[2].properties.insert("industry_segment".into(), "Aerospace".into());
    updates[7].properties.insert("employees".into(), "many".into());
    updates[8].properties = props(&[("industry_segment", "Mining")]);
    let out = c.batch_update_contacts(&updates).await;
    assert_eq!(s.endpoint_requests(UPDATE), 2);
    let mut failed: Vec<usize> = out.errors.iter().filter_map(|e| e.index).collect();
    failed.sort();
    assert_eq!(failed, vec![2, 7, 8]);
    assert_eq!(out.results.len(), 9, "input 8 sent nothing else");
}

#[tokio::test]
async fn inputs_the_error_cannot_tell_apart_are_sent_alone() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    c.update_contact(&ids[0], &props(&[("lifecyclestage", "customer")])).await.unwrap();
    let updates = vec![
        // Moving backward is refused; HubSpot's error does not quote the value.
        ContactUpdate { id: ids[0].clone(), properties: props(&[("lifecyclestage", "lead"), ("city", "Tartu")]) },
        ContactUpdate { id: ids[1].clone(), properties: props(&[("lifecyclestage", "lead"), ("city", "Tartu")]) },
        ContactUpdate { id: ids[2].clone(), properties: props(&[("city", "Tartu")]) },
    ];
    let out = c.batch_update_contacts(&updates).await;
    assert_eq!(out.errors.iter().filter_map(|e| e.index).collect::<Vec<_>>(), vec![0]);
    assert_eq!(s.contact(ids[1].parse().unwrap()).unwrap()["properties"]["lifecyclestage"], "lead");
    assert_eq!(s.contact(ids[0].parse().unwrap()).unwrap()["properties"]["city"], "Tartu");
    assert_eq!(s.endpoint_requests(UPDATE), 4, "the refusal, the rest, then the two candidates alone");
}

#[tokio::test]
async fn an_email_another_contact_has_is_pinned_by_reading_that_contact() {
    let s = sim().await;
    let c = client(&s);
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 4, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let updates = vec![
        ContactUpdate { id: ids[0].clone(), properties: props(&[("email", "fresh@example.com")]) },
        ContactUpdate { id: ids[1].clone(), properties: props(&[("email", "person3@example.com"), ("city", "Tartu")]) },
        ContactUpdate { id: ids[2].clone(), properties: props(&[("email", "fresh2@example.com")]) },
    ];
    let out = c.batch_update_contacts(&updates).await;
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].index, Some(1));
    assert!(matches!(&out.errors[0].error, HubSpotError::Conflict { existing_id: Some(id), .. } if *id == ids[3]));
    assert_eq!(s.contact(ids[0].parse().unwrap()).unwrap()["properties"]["email"], "fresh@example.com");
    assert_eq!(s.contact(ids[1].parse().unwrap()).unwrap()["properties"]["city"], "Tartu");
    assert_eq!(s.endpoint_requests(UPDATE), 2);
    assert_eq!(s.endpoint_requests("GET /crm/v3/objects/contacts/{id}"), 1, "one read of the holder");
}

#[tokio::test]
async fn a_migration_in_progress_returns_at_once_with_its_retry_after() {
    let s = sim().await;
    let c = client(&s);
    s.set_migration_in_progress(Some(Duration::from_secs(86_400)));
    let err = c.get_contact("101", &[]).await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(err, HubSpotError::Transient { status: 477, retry_after: Some(d), .. } if d == Duration::from_secs(86_400))
    );
    assert_eq!(s.stats().total_requests, 1, "no retry inside the call");
}

#[tokio::test]
async fn a_missing_route_fails_a_batch_read_instead_of_making_its_records_missing() {
    let s = sim().await;
    let ids: Vec<String> =
        s.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap().ids.iter().map(u64::to_string).collect();
    let c = HubSpotClient::new(
        Auth::StaticToken(s.config().token),
        hmsync_hubspot::HubSpotConfig { base_url: format!("{}/retired", s.base_url()), ..config_for(&s) },
    );
    let out = c.batch_read_contacts(&ids, &["email"]).await;
    assert_eq!(out.errors.len(), 3);
    assert!(out.errors.iter().all(|e| matches!(e.error, HubSpotError::RouteNotFound { .. })), "{:?}", out.errors);
}

#[tokio::test]
async fn a_static_token_without_the_preferences_scope_cannot_opt_out() {
    let scopes = ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"];
    let s = sim_with(SimConfig {
        static_token_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap();
    let err = client(&s).unsubscribe_all("person0@example.com").await.unwrap_err();
    assert!(
        matches!(&err, HubSpotError::MissingScopes { scopes, .. } if scopes.iter().any(|s| s == "communication_preferences.read_write")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_burst_limit_follows_the_rate_limit_headers_up_and_down() {
    let s = sim_with(SimConfig::default().tier(Tier::Professional)).await;
    let c = HubSpotClient::new(
        Auth::StaticToken(s.config().token),
        hmsync_hubspot::HubSpotConfig { burst_limit: 100, ..config_for(&s) },
    );
    assert_eq!(c.pacer().buckets()[0].limit, 100, "the documented default until HubSpot says otherwise");
    c.get_contact_with_companies("101", &[]).await.ok();
    assert_eq!(c.pacer().buckets()[0].limit, 190, "a Professional portal's app");
    let s = sim_with(SimConfig { burst_limit: 40, ..Default::default() }).await;
    let c = client(&s);
    c.account_details().await.unwrap();
    assert_eq!(c.pacer().buckets()[0].limit, 40);
}

#[tokio::test]
async fn the_clients_of_one_portal_share_one_search_pace() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    s.seed(&SeedRequest { count: 5, ..Default::default() }).unwrap();
    let (a, b) = (client(&s), client(&s));
    let pace_a = a.search_pace().await.unwrap();
    assert!(Arc::ptr_eq(&pace_a, &b.search_pace().await.unwrap()), "one pace for the portal");
    assert_eq!(pace_a.limit(), 4, "at most 4 per second, room for the portal's other integrations");
    let req = SearchRequest::new().group([Filter::has_property("email")]).properties(&["email"]);
    let searches = (0..12).map(|i| {
        let (c, req) = (if i % 2 == 0 { a.clone() } else { b.clone() }, req.clone());
        tokio::spawn(async move { c.search_contacts(&req).await.map(|p| p.total) })
    });
    for s in searches {
        assert_eq!(s.await.unwrap().unwrap(), 5);
    }
    assert_eq!(s.stats().status_count(429), 0, "two clients together never exceed the portal's 5 per second");
    assert_eq!(s.endpoint_requests("GET /account-info/v3/details"), 2, "each client reads its portal id once");
    assert_eq!(
        a.pacer().requests_sent() + b.pacer().requests_sent(),
        s.stats().total_requests,
        "each search counts once as its client's request (the status page's requests per hour)"
    );
}

#[tokio::test]
async fn a_search_body_over_3000_characters_is_never_sent() {
    let s = sim().await;
    let c = client(&s);
    c.set_portal_id(s.config().portal_id);
    let many: Vec<String> = (0..300).map(|i| format!("custom_property_{i:04}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let req = SearchRequest::new().properties(&names);
    assert!(!req.fits());
    let err = c.search_contacts(&req).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Api { status: 400, .. }), "{err:?}");
    assert_eq!(s.stats().total_requests, 0);
}
