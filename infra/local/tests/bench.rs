//! The bench's parts on tiny populations, with the engine in its own process as in a real run:
//! exact request counts and correct results are checked; times are only printed by the bench.

use std::path::PathBuf;

use hmsync::bench::initial::{initial_sync, problems};
use hmsync::bench::per_record::per_record;
use hmsync::bench::setup::Engines;
use hmsync::bench::steady::{SteadyPlan, steady};

fn engines(dir: &tempfile::TempDir) -> Engines {
    Engines { exe: PathBuf::from(env!("CARGO_BIN_EXE_hmsync")), work_dir: dir.path().to_path_buf() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_sync_in_the_engine_process_and_the_per_record_loop_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, synced) = initial_sync(&engines(&dir), 100, 20.0).await.unwrap();
    assert_eq!(a.unique_contacts, 150);
    assert_eq!(problems(&a), Vec::<String>::new(), "everyone linked once, no errors, no dead letters");
    assert_eq!(a.links, 150);
    assert_eq!(a.hubspot.total, a.hubspot.endpoints.values().sum::<u64>());
    assert_eq!(a.mailerlite.total, a.mailerlite.endpoints.values().sum::<u64>());
    assert_eq!(a.hubspot.rate_limited + a.mailerlite.rate_limited, 0, "the pacers kept under the limits");
    assert_eq!(a.bound.binding, "MailerLite 120/min", "MailerLite's budget binds: {:?}", a.bound);
    assert!(a.engine.peak_rss_mib > 0.0 && a.engine.cpu_seconds() > 0.0, "{:?}", a.engine);
    synced.engine.stop().await.unwrap();

    // Per record: one lookup and one write per record of each side, plus one list page each.
    let c = per_record(100, 100, &a).await.unwrap();
    assert!(!c.extrapolated);
    assert_eq!((c.hubspot_requests, c.mailerlite_requests), (201, 201));
    let lookups = c.sample_hubspot.endpoints.iter().filter(|(k, _)| k.starts_with("GET ") && k.ends_with("}"));
    assert_eq!(lookups.map(|(_, n)| n).sum::<u64>(), 100, "{:?}", c.sample_hubspot.endpoints);
    assert_eq!(c.request_ratio, 402.0 / (a.hubspot.total + a.mailerlite.total) as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_changes_reach_the_other_side_and_their_echoes_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = SteadyPlan { changes_per_direction: 3, rate_per_direction: 5.0, added_latency_ms: 10, echo_sample: 2 };
    let (b, problems) = steady(&engines(&dir), plan).await.unwrap();
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!((b.hubspot_to_mailerlite.changes, b.hubspot_to_mailerlite.delivered), (3, 3));
    assert_eq!((b.mailerlite_to_hubspot.changes, b.mailerlite_to_hubspot.delivered), (3, 3));
    assert!(b.hubspot_to_mailerlite.p50_ms <= b.hubspot_to_mailerlite.p95_ms);
    assert_eq!(b.echo_checks.len(), 2);
    for e in &b.echo_checks {
        assert_eq!(e.changes, 2);
        assert_eq!(e.echo_requests, 0, "{e:?}");
    }
    // Each write to the destination comes back as a webhook. MailerLite sends one per write on a
    // non-batched webhook, or one envelope for both when the subscriber events are on a batched
    // webhook (one batch a minute); the changes of one batched delivery are then synced together,
    // with one HubSpot write whose webhook carries both echoes.
    let (to_ml, to_hs) = (&b.echo_checks[0], &b.echo_checks[1]);
    let mailerlite_batched = match to_ml.echo_deliveries {
        2 => false,
        1 => true,
        n => panic!("{n} MailerLite echo deliveries for 2 writes: {to_ml:?}"),
    };
    // Two non-batched deliveries that arrive together are coalesced by the worker into one run,
    // so the number of HubSpot writes (one echo delivery each) is 1 or 2 then; a batched
    // delivery always makes one.
    let hubspot_writes = to_hs.echo_deliveries;
    assert!(hubspot_writes == 1 || (hubspot_writes == 2 && !mailerlite_batched), "{to_hs:?}");
    // A HubSpot change costs a HubSpot read, a MailerLite read and a MailerLite write; a
    // MailerLite change a MailerLite read, a HubSpot read and a HubSpot write (the changes of
    // one run share them).
    assert_eq!((to_ml.hubspot_requests, to_ml.mailerlite_requests), (2, 4));
    assert_eq!((to_hs.hubspot_requests, to_hs.mailerlite_requests), (2 * hubspot_writes, hubspot_writes));
    assert_eq!(b.echo_requests, 0);
}
