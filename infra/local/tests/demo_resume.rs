//! `hmsync demo` resumes on the same data directory: the sandbox's data is saved beside the
//! store, so an interrupted initial sync continues against the same records, and ends with every
//! contact linked once and nothing created twice. Also: a saved sandbox older than the store (a
//! crash between two saves) is reconciled with it.

mod common;

use common::Demo;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use hmsync::demo::{DEMO_CONNECTION, SANDBOX_SNAPSHOT_FILE, demo_config, recheck_missing_records};
use hmsync::runtime::{Runtime, STORE_FILE};
use hmsync_engine::adapters::{Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::{ContactRef, Lifecycle, Origin, SyncMessage};
use hmsync_sandbox::{PeopleSeed, Sandbox, SandboxConfig};
use hmsync_store::{ConnectionStore, LinkStore};
use serde_json::Value;

/// Generous: only there so that a broken build fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(600);

/// `hmsync demo` of 3,000 contacts per side on `dir`, on free ports.
fn start_demo(dir: &Path, until_synced: bool) -> Demo {
    let mut args = vec!["--contacts", "3000"];
    if until_synced {
        args.push("--until-synced");
    }
    Demo::start(dir, "t", &args, &[])
}

/// The demo connection's lifecycle and link count, read from the store read-only while the demo
/// runs (`None` until the connection exists).
fn progress(dir: &Path) -> Option<(String, u64)> {
    use rusqlite::{Connection, OpenFlags};
    let db = Connection::open_with_flags(dir.join(STORE_FILE), OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    db.busy_timeout(Duration::from_secs(5)).ok()?;
    let state: String = db.query_row("SELECT doc FROM state WHERE conn = ?1", [DEMO_CONNECTION], |r| r.get(0)).ok()?;
    let lifecycle = serde_json::from_str::<Value>(&state).ok()?["lifecycle"].as_str()?.to_string();
    let links: u64 =
        db.query_row("SELECT count(*) FROM links WHERE conn = ?1", [DEMO_CONNECTION], |r| r.get(0)).ok()?;
    Some((lifecycle, links))
}

/// Every link of the demo connection: link id → (HubSpot id, MailerLite id).
fn links(dir: &Path) -> BTreeMap<String, (Value, Value)> {
    let db = rusqlite::Connection::open_with_flags(dir.join(STORE_FILE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut query = db.prepare("SELECT id, doc FROM links WHERE conn = ?1").unwrap();
    query
        .query_map([DEMO_CONNECTION], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, doc) = row.unwrap();
            let doc: Value = serde_json::from_str(&doc).unwrap();
            (id, (doc["hubspot_id"].clone(), doc["mailerlite_id"].clone()))
        })
        .collect()
}

#[test]
fn a_demo_interrupted_with_ctrl_c_resumes_its_initial_sync_without_recreating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + DEADLINE;

    // First run: interrupt the initial sync once it has done some of the work.
    let mut first = start_demo(dir.path(), false);
    loop {
        if let Some(status) = first.exited() {
            panic!("the first run exited on its own ({status})\n{}", first.output());
        }
        assert!(Instant::now() < deadline, "the initial sync did not start\n{}", first.output());
        match progress(dir.path()) {
            Some((lifecycle, _)) if lifecycle == "continuous" => {
                panic!("the initial sync finished before the test could interrupt it\n{}", first.output())
            }
            Some((_, links)) if links >= 500 => break,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let signal = Command::new("kill").args(["-INT", &first.child.id().to_string()]).status().unwrap();
    assert!(signal.success());
    let status = first.wait(deadline);
    assert!(status.success(), "Ctrl-C stops the demo cleanly ({status})\n{}", first.output());
    assert!(first.output().contains("Run the same command to resume"), "{}", first.output());
    assert!(dir.path().join(SANDBOX_SNAPSHOT_FILE).exists(), "the sandbox was saved");
    let (lifecycle, linked_before) = progress(dir.path()).unwrap();
    assert_eq!(lifecycle, "initial_sync", "interrupted before the initial sync finished");
    let before = links(dir.path());
    assert_eq!(before.len() as u64, linked_before);

    // Second run on the same directory: it resumes and finishes.
    let mut second = start_demo(dir.path(), true);
    let status = second.wait(deadline);
    assert!(status.success(), "the resumed demo finishes ({status})\n{}", second.output());
    let output = second.output();
    assert!(output.contains("Restored the sandbox from"), "resumed from the saved sandbox, not seeded again\n{output}");
    assert!(!output.contains("missing from the saved sandbox"), "a clean stop leaves no link dangling\n{output}");
    let line = second.stdout.lock().unwrap().lines().last().unwrap_or_default().to_string();
    let summary: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: no summary line\n{output}"));
    let expected = summary["expected_unique_contacts"].as_u64().unwrap();
    assert!(expected > linked_before, "the first run had not done all of the work");
    assert_eq!(summary["resumed"], true, "{summary}");
    assert_eq!(summary["all_linked"], true, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert_eq!(summary["errors"], summary["expected_errors"], "only the seeded bad options fail: {summary}");
    assert_eq!(summary["linked"], expected, "{summary}");
    assert_eq!(summary["unique_emails"], expected, "{summary}");
    // Nothing the first run created was created again: one record per person on each side
    // (HubSpot also keeps the contacts seeded without an email, which the sync excludes).
    assert_eq!(summary["mailerlite_subscribers"], expected, "{summary}");
    assert_eq!(
        summary["hubspot_contacts"].as_u64(),
        Some(expected + summary["excluded_no_email"].as_u64().unwrap()),
        "{summary}"
    );
    // Nothing synced was forgotten: every link of the first run is still there, on the same records.
    let after = links(dir.path());
    for (id, ids) in &before {
        assert_eq!(after.get(id), Some(ids), "link {id} changed");
    }

    // Without its saved sandbox the directory cannot be resumed, and is not seeded over either.
    std::fs::remove_file(dir.path().join(SANDBOX_SNAPSHOT_FILE)).unwrap();
    let mut third = start_demo(dir.path(), true);
    let status = third.wait(deadline);
    let output = third.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("belongs to a demo whose sandbox state was lost"), "{output}");
    assert!(output.contains("pick another --data-dir"), "{output}");
    assert!(!dir.path().join(SANDBOX_SNAPSHOT_FILE).exists(), "nothing was seeded");
}

async fn links_now(rt: &Runtime) -> u64 {
    rt.store.count_links(DEMO_CONNECTION).await.unwrap()
}

/// A crash between two saves: the store knows records (created by the sync) that the saved
/// sandbox lacks. After the restore the missing ones are looked at again and, the initial sync
/// being under way, created again; no id is handed out twice, so no link ends up on another
/// person's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_sandbox_older_than_the_store_is_reconciled_with_it() {
    let time_scale = 4.0;
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let config = SandboxConfig::default().with_time_scale(time_scale);
    let first = Sandbox::start(config.clone(), localhost, localhost).await.unwrap();
    let seeded = first
        .seed_people(&PeopleSeed { per_side: 800, overlap: 0.5, conflict_rate: 0.2, ..PeopleSeed::default() })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::start(common::options(dir.path(), &first, time_scale, "stale-snapshot-test")).await.unwrap();
    rt.store.create_connection(DEMO_CONNECTION, &demo_config(None)).await.unwrap();
    let hs = first.hubspot().config();
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(first.mailerlite().config().token),
        mailerlite_webhook_secret: None,
        mailerlite_batched_webhook_secret: None,
    };
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await.unwrap();
    rt.engine.activate(DEMO_CONNECTION, &rt.webhook_target).await.unwrap();

    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut stale = None;
    loop {
        let status = rt.engine.status(DEMO_CONNECTION).await.unwrap();
        assert_eq!(status.lifecycle, Lifecycle::InitialSync, "stopped too late to test a resume");
        assert!(tokio::time::Instant::now() < deadline);
        let links = links_now(&rt).await;
        match &stale {
            None if links >= 150 => stale = Some((first.snapshot(), links)),
            Some((_, at)) if links >= at + 300 => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rt.stop().await;
    drop(first);

    // The sandbox comes back as it was at the older save; the store stays as it is.
    let (snapshot, _) = stale.unwrap();
    let sandbox = Sandbox::start_restored(config, localhost, localhost, snapshot).await.unwrap();
    // People are added on both sides before the sync resumes. Were ids handed out again, these
    // would get the ids of lost records that links in the store still name.
    let added = ["added.in.hubspot@example.com", "added.in.mailerlite@example.com"];
    let properties = serde_json::Map::from_iter([("email".to_string(), Value::from(added[0]))]);
    let added_hs = sandbox.hubspot().user_create_contact(&properties, 7).unwrap();
    let mut config =
        hmsync_mailerlite::Config::new(sandbox.mailerlite().config().token).with_base_url(sandbox.mailerlite_url());
    config.time_scale = time_scale;
    let ml_client = hmsync_mailerlite::Client::new(config).unwrap();
    let added_ml = ml_client.upsert_subscriber(&hmsync_mailerlite::SubscriberUpsert::new(added[1])).await.unwrap();
    let rt = Runtime::start(common::options(dir.path(), &sandbox, time_scale, "stale-snapshot-test")).await.unwrap();
    // What their webhooks would say (the scan may have passed where they are listed).
    rt.engine
        .enqueue(&[SyncMessage::Contacts {
            connection_id: DEMO_CONNECTION.into(),
            refs: vec![ContactRef::hubspot(&added_hs.to_string()), ContactRef::mailerlite(&added_ml.subscriber.id)],
            origin: Origin::Webhook,
        }])
        .await
        .unwrap();
    let mut credentials = credentials;
    credentials.mailerlite_api_key = Some(sandbox.mailerlite().config().token);
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await.unwrap();
    let missing = recheck_missing_records(&rt, &sandbox).await.unwrap();
    assert!(missing > 0, "the sync created records after the older save");
    loop {
        let status = rt.engine.status(DEMO_CONNECTION).await.unwrap();
        if status.lifecycle == Lifecycle::Continuous && recheck_missing_records(&rt, &sandbox).await.unwrap() == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the resumed sync did not finish: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every person linked once, to records of that person on both sides, and no duplicates.
    let unique = seeded.expected_unique_contacts + added.len() as u64;
    assert_eq!(links_now(&rt).await, unique);
    let subscribers: Vec<_> = ml_client.subscribers(hmsync_mailerlite::Statuses::All).try_collect().await.unwrap();
    assert_eq!(subscribers.len() as u64, unique, "no duplicate subscribers");
    let hs_client = hmsync_hubspot::HubSpotClient::new(
        hmsync_hubspot::Auth::StaticToken(hs.token.clone()),
        hmsync_hubspot::HubSpotConfig { base_url: sandbox.hubspot_url(), time_scale, ..Default::default() },
    );
    let contacts: Vec<_> = hs_client
        .list_contacts(hmsync_hubspot::ListOptions { properties: vec!["email".into()], ..Default::default() })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(contacts.len() as u64, unique, "no duplicate contacts");
    let hs_email: HashMap<String, String> =
        contacts.iter().map(|c| (c.id.clone(), c.email().unwrap_or_default().to_lowercase())).collect();
    let ml_email: HashMap<String, String> =
        subscribers.iter().map(|s| (s.id.clone(), s.email.to_lowercase())).collect();
    let mut cursor: Option<String> = None;
    loop {
        let page = rt.store.list_links(DEMO_CONNECTION, cursor.as_deref(), 500).await.unwrap();
        for link in &page.items {
            assert!(!link.hs_deleted && !link.ml_deleted, "{link:?}");
            let hs_id = link.hubspot_id.as_ref().unwrap();
            let ml_id = link.mailerlite_id.as_ref().unwrap();
            assert_eq!(hs_email.get(hs_id), Some(&link.email), "the HubSpot record is this person's: {link:?}");
            assert_eq!(ml_email.get(ml_id), Some(&link.email), "the MailerLite record is this person's: {link:?}");
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    rt.stop().await;
}
