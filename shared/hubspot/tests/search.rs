//! Search against the sandbox: filters, the 10,000 cap, the incremental scan, the 5/s limit.

mod common;

use std::collections::HashSet;

use common::{client, sim_with};
use hmsync_hubspot::{Filter, HubSpotError, IncrementalScan, SearchRequest};
use hmsync_sandbox::hubspot::{HubSpotConfig as SimConfig, SeedRequest};

#[tokio::test]
async fn filters_are_anded_in_a_group_and_ored_across_groups() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    let c = client(&s);
    s.seed(&SeedRequest { count: 200, ..Default::default() }).unwrap();
    let oslo_saas = SearchRequest::new()
        .group([Filter::eq("city", "oslo"), Filter::eq("industry_segment", "saas")])
        .properties(&["city", "industry_segment"]);
    let page = c.search_contacts(&oslo_saas).await.unwrap();
    assert!(page.total > 0);
    assert!(page.results.iter().all(|r| r.prop("city") == Some("Oslo") && r.prop("industry_segment") == Some("saas")));
    let either =
        SearchRequest::new().group([Filter::eq("city", "Oslo")]).group([Filter::eq("city", "Lisbon")]).limit(1);
    let page = c.search_contacts(&either).await.unwrap();
    let oslo = c.search_contacts(&SearchRequest::new().group([Filter::eq("city", "Oslo")])).await.unwrap().total;
    let lisbon =
        c.search_contacts(&SearchRequest::new().group([Filter::is_in_text("city", ["Lisbon"])])).await.unwrap().total;
    assert_eq!(page.total, oslo + lisbon);
    assert_eq!(page.next_after.as_deref(), Some("1"));
    let exact = c
        .search_contacts(
            &SearchRequest::new().group([Filter::contains_token("email", "person17@*")]).properties(&["email"]),
        )
        .await
        .unwrap();
    assert_eq!(exact.results.len(), 1);
    assert_eq!(exact.results[0].email(), Some("person17@example.com"));
}

#[tokio::test]
async fn paging_past_ten_thousand_is_refused_but_the_incremental_scan_gets_everything_once() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    let c = client(&s);
    // One seed call stamps every record with the same lastmodifieddate: the worst case for
    // keyset paging on lastmodifieddate (ties are broken on hs_object_id).
    s.seed(&SeedRequest { count: 10_300, ..Default::default() }).unwrap();
    let req = SearchRequest::new()
        .group([Filter::gte("lastmodifieddate", "0")])
        .sort_ascending("lastmodifieddate")
        .after("10000");
    let err = c.search_contacts(&req).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Validation { .. }), "{err:?}");

    let mut scan = IncrementalScan::new(0, None, &["email"]);
    let mut seen = HashSet::new();
    let mut pages = 0;
    while let Some(batch) = scan.next_page(&c).await.unwrap() {
        pages += 1;
        for contact in batch {
            assert!(seen.insert(contact.id.clone()), "contact {} returned twice", contact.id);
        }
    }
    assert_eq!(seen.len(), 10_300);
    // One page at the watermark (all one timestamp), the tie run walked by id (52 pages of 200,
    // the last partial), and one query after the run that finds nothing newer.
    assert_eq!(pages, 1 + 52 + 1);

    // Later changes are picked up from the stored cursor, and only those.
    let ids: Vec<u64> = seen.iter().take(3).map(|i| i.parse().unwrap()).collect();
    for id in &ids {
        s.user_edit_contact(*id, serde_json::json!({"city":"Kuressaare"}).as_object().unwrap(), 1).unwrap();
    }
    let mut again = IncrementalScan::resume(scan.cursor.clone(), None, &["email"]);
    again.cursor.done = false;
    let mut changed = Vec::new();
    while let Some(batch) = again.next_page(&c).await.unwrap() {
        changed.extend(batch.into_iter().map(|b| b.id.parse::<u64>().unwrap()));
    }
    changed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(changed, expected);
}

#[tokio::test]
async fn searches_are_paced_under_the_portals_five_per_second_and_never_rate_limited() {
    let s = sim_with(SimConfig { time_scale: 10.0, ..Default::default() }).await;
    let c = client(&s);
    c.set_portal_id(s.config().portal_id);
    for _ in 0..16 {
        c.search_contacts(&SearchRequest::new()).await.unwrap();
    }
    let stats = s.stats();
    assert_eq!(stats.buckets["search"], 16);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.buckets.get("burst"), None, "search does not count in the 10-second bucket");
}

#[tokio::test]
async fn a_search_429_is_waited_out() {
    let s = sim_with(SimConfig { time_scale: 10.0, ..Default::default() }).await;
    let mut config = common::config_for(&s);
    // A client that believes it may search 50 times per second hits the server's 5/s.
    config.search_per_second = 50;
    let c = hmsync_hubspot::HubSpotClient::new(hmsync_hubspot::Auth::StaticToken(s.config().token), config);
    for _ in 0..12 {
        c.search_contacts(&SearchRequest::new()).await.unwrap();
    }
    let stats = s.stats();
    assert_eq!(stats.buckets["search"], 12);
    assert!(stats.rate_limited > 0, "the server refused some and the client retried them");
}

#[tokio::test]
async fn companies_are_searchable_by_name() {
    let s = sim_with(SimConfig::default()).await;
    let c = client(&s);
    s.seed(&SeedRequest { count: 40, with_companies: true, ..Default::default() }).unwrap();
    let page = c
        .search_companies(&SearchRequest::new().group([Filter::eq("name", "acme")]).properties(&["name", "domain"]))
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.results[0].prop("domain"), Some("acme.example.com"));
}
