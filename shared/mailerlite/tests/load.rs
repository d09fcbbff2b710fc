//! Paging, pacing and rate-limit handling at volume, with injected faults. `time_scale` shrinks
//! every window on both sides so these run in seconds with the real requests-per-window shape;
//! assertions are on exact request counts from the sandbox, never on wall-clock time.

mod common;

use std::collections::BTreeSet;

use common::*;
use futures::TryStreamExt;
use hmsync_mailerlite::*;
use hmsync_sandbox::common::FaultSpec;
use hmsync_sandbox::mailerlite::{FaultSettings, MailerLiteConfig, SeedSpec};

#[tokio::test]
async fn pages_10000_subscribers_with_10_percent_injected_5xx_on_every_endpoint_and_gets_every_record_exactly_once() {
    let (sim, c) = setup(MailerLiteConfig { time_scale: 30.0, ..Default::default() }).await;
    sim.seed(&SeedSpec { count: 10_000, unsubscribed_rate: 0.1, bounced_rate: 0.05, ..Default::default() }).unwrap();
    sim.set_faults(&FaultSettings { faults: vec![FaultSpec { error_rate: 0.1, ..FaultSpec::everywhere() }], seed: 7 });
    let all: Vec<Subscriber> = c.subscribers(Statuses::All).try_collect().await.unwrap();
    assert_eq!(all.len(), 10_000);
    let ids: BTreeSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 10_000, "every record exactly once");
    let emails: BTreeSet<&str> = all.iter().map(|s| s.email.as_str()).collect();
    assert_eq!(emails.len(), 10_000);
    let stats = sim.stats();
    let faults = sim.instrumentation().faults.counts();
    assert!(faults.server_errors > 0, "faults were injected");
    assert_eq!(
        stats.requests("GET /api/subscribers"),
        100 + faults.server_errors,
        "100 pages plus one retry per fault"
    );
    assert_eq!(stats.status_count(429), 0);
}

#[tokio::test]
async fn pushes_5000_updates_in_batches_of_50_through_the_pacer_without_a_single_429() {
    let (sim, c) = setup(MailerLiteConfig { time_scale: 30.0, ..Default::default() }).await;
    sim.seed(&SeedSpec { count: 5_000, ..Default::default() }).unwrap();
    // Reading the ids spends 50 requests of the same window first.
    let ids: Vec<String> = c.subscribers(Statuses::All).map_ok(|s| s.id).try_collect().await.unwrap();
    assert_eq!(ids.len(), 5_000);
    sim.reset_stats();
    let updates: Vec<BatchRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| BatchRequest::Update {
            subscriber_id: id.clone(),
            update: SubscriberUpdate::new().field("company", format!("Company {i}")),
        })
        .collect();
    let out = c.batch(&updates, BatchOptions::default()).await;
    assert_eq!(out.len(), 5_000);
    assert!(out.iter().all(|o| matches!(o, Ok(BatchOutcome::Subscriber { created: false, .. }))));
    let stats = sim.stats();
    assert_eq!(stats.requests("POST /api/batch"), 100, "5,000 updates in 100 batch requests");
    assert_eq!(stats.total_requests, 100);
    assert_eq!(stats.status_count(429), 0, "the pacer kept every window under 120");
    assert_eq!(stats.buckets["requests"], 100);
    assert_eq!(
        sim.subscriber(&ids[4_999]).unwrap().fields.0.iter().find(|(k, _)| k == "company").unwrap().1,
        "Company 4999"
    );
}

#[tokio::test]
async fn injected_429s_are_waited_out_with_retry_after() {
    let (sim, c) = setup(MailerLiteConfig { time_scale: 100.0, ..Default::default() }).await;
    sim.set_faults(&FaultSettings {
        faults: vec![FaultSpec {
            endpoint: "GET /api/groups".into(),
            rate_limit_rate: 0.3,
            rate_limit_burst: 3,
            ..Default::default()
        }],
        seed: 11,
    });
    for _ in 0..20 {
        c.groups().await.unwrap();
    }
    let stats = sim.stats();
    assert!(stats.status_count(429) > 0, "bursts were injected");
    assert_eq!(stats.status_count(200), 20, "every call succeeded in the end");
    assert_eq!(stats.requests("GET /api/groups"), 20 + stats.status_count(429));
}

fn overconfident_client(sim: &hmsync_sandbox::mailerlite::MailerLiteSim) -> Client {
    let mut config = Config::new("ml-sandbox-token").with_base_url(sim.base_url());
    config.time_scale = sim.config().time_scale;
    config.requests_per_minute = 1_000;
    Client::new(config).unwrap()
}

#[tokio::test]
async fn the_servers_remaining_count_keeps_an_overconfident_client_under_the_limit() {
    let sim = sandbox(MailerLiteConfig { time_scale: 60.0, limit_per_minute: 10, ..Default::default() }).await;
    let a = overconfident_client(&sim);
    for _ in 0..30 {
        a.count_subscribers(Statuses::All).await.unwrap();
    }
    let stats = sim.stats();
    assert_eq!(stats.status_count(429), 0, "X-RateLimit-Remaining was adopted");
    assert_eq!(stats.buckets["requests"], 30);
}

#[tokio::test]
async fn the_servers_429_is_honoured_when_another_client_spent_the_budget() {
    let sim = sandbox(MailerLiteConfig { time_scale: 60.0, limit_per_minute: 10, ..Default::default() }).await;
    let (a, b) = (overconfident_client(&sim), overconfident_client(&sim));
    for _ in 0..5 {
        a.count_subscribers(Statuses::All).await.unwrap();
    }
    for _ in 0..5 {
        b.count_subscribers(Statuses::All).await.unwrap();
    }
    // `a` last saw 5 requests left, which `b` has spent since: the server refuses, `a` waits
    // for Retry-After and succeeds.
    a.count_subscribers(Statuses::All).await.unwrap();
    let stats = sim.stats();
    assert_eq!(stats.status_count(429), 1);
    assert_eq!(stats.status_count(200), 11);
    assert_eq!(stats.buckets["requests"], 11);
}

#[tokio::test]
async fn a_persistent_outage_ends_in_a_transient_error_after_bounded_retries() {
    let (sim, c) = setup(MailerLiteConfig::default()).await;
    sim.set_faults(&FaultSettings { faults: vec![FaultSpec { error_rate: 1.0, ..FaultSpec::everywhere() }], seed: 1 });
    let err = c.get_subscriber("a@example.com").await.unwrap_err();
    assert!(matches!(err, Error::Transient { status: Some(500..=503), .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(sim.stats().total_requests, 6, "RetryPolicy::fast(6): six attempts, then the error");
    // A batch whose envelope keeps failing reports the error for every request in it.
    let reqs: Vec<BatchRequest> =
        (0..3).map(|i| BatchRequest::Get { id_or_email: format!("x{i}@example.com") }).collect();
    let out = c.batch(&reqs, BatchOptions::default()).await;
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| matches!(o, Err(e) if e.is_transient())));
}
