//! Pacing, retries and rate-limit handling against the sandbox. Windows are shrunk with the same
//! `time_scale` on both sides, so the requests-per-window shape is real and the tests are fast.

mod common;

use std::collections::HashSet;

use common::{client, config_for, props, sim_with};
use futures::TryStreamExt;
use hmsync_http::RetryPolicy;
use hmsync_hubspot::{Auth, ContactUpsert, HubSpotClient, HubSpotError, ListOptions};
use hmsync_sandbox::common::FaultSpec;
use hmsync_sandbox::hubspot::{HubSpotConfig as SimConfig, SeedRequest};

#[tokio::test]
async fn pages_10000_contacts_with_10_percent_injected_5xx_and_gets_every_record_exactly_once() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    s.seed(&SeedRequest { count: 10_000, ..Default::default() }).unwrap();
    s.instrumentation().faults.set(vec![FaultSpec { error_rate: 0.1, ..FaultSpec::everywhere() }], 7);
    let c = HubSpotClient::new(
        Auth::StaticToken(s.config().token),
        hmsync_hubspot::HubSpotConfig { retry: RetryPolicy::fast(10), ..config_for(&s) },
    );
    let all: Vec<_> = c
        .list_contacts(ListOptions { properties: vec!["email".into()], ..Default::default() })
        .try_collect()
        .await
        .unwrap();
    let ids: HashSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(all.len(), 10_000);
    assert_eq!(ids.len(), 10_000, "no record twice");
    let stats = s.stats();
    let injected = s.instrumentation().faults.counts().server_errors;
    assert!(injected > 0);
    assert_eq!(
        s.endpoint_requests("GET /crm/v3/objects/contacts"),
        100 + injected,
        "100 pages plus one retry per fault"
    );
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn pushes_5000_upserts_through_the_pacer_at_the_default_limits_without_a_429() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    let c = client(&s);
    let upserts: Vec<ContactUpsert> = (0..5000)
        .map(|i| ContactUpsert { email: format!("bulk{i}@example.com"), properties: props(&[("firstname", "Bulk")]) })
        .collect();
    let out = c.batch_upsert_contacts(&upserts).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors.first());
    assert_eq!(out.results.len(), 5000);
    let stats = s.stats();
    assert_eq!(s.endpoint_requests("POST /crm/v3/objects/contacts/batch/upsert"), 50);
    assert_eq!(stats.buckets["burst"], 50);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn paces_more_requests_than_one_window_allows_without_a_429() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    for _ in 0..250 {
        c.get_contact(&id, &["email"]).await.unwrap();
    }
    let stats = s.stats();
    assert_eq!(stats.buckets["burst"], 250);
    assert_eq!(stats.rate_limited, 0, "2.5 windows' worth of requests, none refused");
}

#[tokio::test]
async fn an_injected_429_burst_is_waited_out_and_the_call_succeeds() {
    let s = sim_with(SimConfig { time_scale: 20.0, ..Default::default() }).await;
    let c = client(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0].to_string();
    // Seeded: bursts of three 429s start at about every other fresh request.
    s.instrumentation().faults.set(
        vec![FaultSpec {
            endpoint: "GET /crm/objects/2026-03/contacts/{id}".into(),
            rate_limit_rate: 0.5,
            rate_limit_burst: 3,
            ..Default::default()
        }],
        3,
    );
    for _ in 0..5 {
        c.get_contact(&id, &[]).await.unwrap();
    }
    let stats = s.stats();
    assert!(stats.rate_limited >= 3, "{stats:?}");
    assert_eq!(stats.status_count(200), 5);
}

#[tokio::test]
async fn a_ten_secondly_429_that_persists_becomes_a_rate_limited_error() {
    let s = sim_with(SimConfig { time_scale: 50.0, ..Default::default() }).await;
    let c = HubSpotClient::new(
        Auth::StaticToken(s.config().token),
        hmsync_hubspot::HubSpotConfig { max_rate_limit_retries: 2, ..config_for(&s) },
    );
    s.instrumentation()
        .faults
        .set(vec![FaultSpec { rate_limit_rate: 1.0, rate_limit_burst: 10, ..FaultSpec::everywhere() }], 1);
    let err = c.account_details().await.unwrap_err();
    assert!(matches!(&err, HubSpotError::RateLimited { policy, .. } if policy == "TEN_SECONDLY_ROLLING"), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(s.stats().total_requests, 3, "first try plus two retries");
}

#[tokio::test]
async fn the_daily_limit_is_returned_at_once_without_retrying() {
    let s = sim_with(SimConfig::default()).await;
    let c = client(&s);
    s.set_daily_limit_exhausted(true);
    let err = c.get_contact("1", &[]).await.unwrap_err();
    assert_eq!(err, HubSpotError::DailyLimit);
    assert!(err.to_string().contains("daily API allowance"));
    assert_eq!(s.stats().total_requests, 1);
    let out = c
        .batch_upsert_contacts(&[
            ContactUpsert { email: "a@example.com".into(), properties: props(&[]) },
            ContactUpsert { email: "b@example.com".into(), properties: props(&[]) },
        ])
        .await;
    assert_eq!(out.errors.len(), 2, "every input gets the outcome");
    assert!(out.errors.iter().all(|e| e.error == HubSpotError::DailyLimit));
    assert_eq!(s.stats().total_requests, 2, "no splitting on a limit");
}

#[tokio::test]
async fn persistent_5xx_becomes_a_transient_error_after_bounded_retries() {
    let s = sim_with(SimConfig::default()).await;
    let c = client(&s);
    s.instrumentation().faults.set(vec![FaultSpec { error_rate: 1.0, ..FaultSpec::everywhere() }], 1);
    let err = c.account_details().await.unwrap_err();
    assert!(matches!(err, HubSpotError::Transient { status: 500 | 502 | 503, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(s.stats().total_requests, 6, "RetryPolicy::fast(6): six attempts in all");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let s = sim_with(SimConfig::default()).await;
    let mut config = config_for(&s);
    drop(s);
    config.retry = RetryPolicy::fast(2);
    let c = HubSpotClient::new(Auth::StaticToken("t".into()), config);
    let err = c.account_details().await.unwrap_err();
    assert!(matches!(err, HubSpotError::Transport(_)), "{err:?}");
}

fn scripted_client(url: &str, retry: RetryPolicy) -> HubSpotClient {
    HubSpotClient::new(
        Auth::StaticToken("pat-test".into()),
        hmsync_hubspot::HubSpotConfig { base_url: url.to_string(), retry, ..Default::default() },
    )
}

/// Guards against a client that sleeps through a wait it should hand back (the test would hang).
async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f).await.expect("the call came back without sleeping")
}

#[tokio::test]
async fn a_477_with_a_retry_after_of_hours_ends_the_call_with_that_delay_instead_of_sleeping() {
    use common::{Answer, scripted};
    let server = scripted(vec![Answer::Reply(
        477,
        vec![("retry-after", "86400".into())],
        serde_json::json!({"status": "error", "message": "Migration in Progress", "category": "MIGRATION_IN_PROGRESS"}),
    )])
    .await;
    let c = scripted_client(&server.url, RetryPolicy::fast(5));
    let err = soon(c.get_contact("1", &["email"])).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Transient { status: 477, .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(86400)));
    assert!(err.is_transient());
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1, "not retried in-process");
}

#[tokio::test]
async fn a_429_with_a_long_retry_after_is_handed_back_and_holds_back_the_next_call_without_a_request() {
    use common::{Answer, scripted};
    let server = scripted(vec![
        Answer::Reply(
            429,
            vec![("retry-after", "60".into())],
            serde_json::json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "policyName": "TEN_SECONDLY_ROLLING"}),
        ),
        Answer::Reply(200, vec![], serde_json::json!({"id": "1", "properties": {}})),
    ])
    .await;
    let c = scripted_client(&server.url, RetryPolicy::fast(5));
    let err = soon(c.get_contact("1", &["email"])).await.unwrap_err();
    let HubSpotError::RateLimited { retry_after: Some(wait), .. } = err else { panic!("{err:?}") };
    assert!(wait > std::time::Duration::from_secs(50) && wait <= std::time::Duration::from_secs(60), "{wait:?}");
    let again = soon(c.get_contact("1", &["email"])).await.unwrap_err();
    assert!(matches!(again, HubSpotError::RateLimited { retry_after: Some(_), .. }), "{again:?}");
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1, "the paused client sends nothing");
}

#[tokio::test]
async fn within_a_time_budget_a_hanging_request_is_cut_at_the_budget_and_not_retried() {
    use common::{Answer, scripted};
    let server = scripted(vec![Answer::Hang]).await;
    // 30 s timeouts × 5 attempts would take 150 s; the budget leaves 2 s.
    let c = scripted_client(&server.url, RetryPolicy::default());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let err = soon(hmsync_http::budget::within(deadline, c.get_contact("1", &["email"]))).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Transport(_)), "{err:?}");
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
