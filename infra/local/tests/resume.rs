//! Restarting the local runtime on the same data directory resumes: a half-done initial sync
//! continues, nothing synced is forgotten, and nothing is duplicated.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::TryStreamExt;
use hmsync::demo::{DEMO_CONNECTION, demo_config};
use hmsync::runtime::Runtime;
use hmsync_engine::Lifecycle;
use hmsync_engine::adapters::{Credentials, HubSpotAuth, save_credentials};
use hmsync_sandbox::{PeopleSeed, Sandbox, SandboxConfig};
use hmsync_store::{ConnectionStore, LinkStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_data_dir_finishes_a_half_done_initial_sync_without_duplicates() {
    let time_scale = 4.0;
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sandbox =
        Sandbox::start(SandboxConfig::default().with_time_scale(time_scale), localhost, localhost).await.unwrap();
    let seeded = sandbox
        .seed_people(&PeopleSeed { per_side: 1500, overlap: 0.5, conflict_rate: 0.2, ..PeopleSeed::default() })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let rt = Runtime::start(common::options(dir.path(), &sandbox, time_scale, "resume-test-token")).await.unwrap();
    rt.store.create_connection(DEMO_CONNECTION, &demo_config(None)).await.unwrap();
    let hs = sandbox.hubspot().config();
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(sandbox.mailerlite().config().token),
        mailerlite_webhook_secret: None,
        mailerlite_batched_webhook_secret: None,
    };
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await.unwrap();
    rt.engine.activate(DEMO_CONNECTION, &rt.webhook_target).await.unwrap();
    // Stop in the middle of the initial sync.
    loop {
        let status = rt.engine.status(DEMO_CONNECTION).await.unwrap();
        assert_eq!(status.lifecycle, Lifecycle::InitialSync, "stopped too late to test a resume");
        if status.initial_sync.done >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let linked_before = rt.store.count_links(DEMO_CONNECTION).await.unwrap();
    rt.stop().await;
    assert!(linked_before > 0);

    let rt = Runtime::start(common::options(dir.path(), &sandbox, time_scale, "resume-test-token")).await.unwrap();
    assert_eq!(rt.admin_token, "resume-test-token");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let status = rt.engine.status(DEMO_CONNECTION).await.unwrap();
        if status.lifecycle == Lifecycle::Continuous {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the resumed initial sync did not finish: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give queued echoes a moment, then check both sides through the APIs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let unique = seeded.expected_unique_contacts;
    assert_eq!(rt.store.count_links(DEMO_CONNECTION).await.unwrap(), unique, "every person linked once");
    let mut config =
        hmsync_mailerlite::Config::new(sandbox.mailerlite().config().token).with_base_url(sandbox.mailerlite_url());
    config.time_scale = time_scale;
    let subscribers: Vec<_> = hmsync_mailerlite::Client::new(config)
        .unwrap()
        .subscribers(hmsync_mailerlite::Statuses::All)
        .try_collect()
        .await
        .unwrap();
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
    rt.stop().await;
}
