//! `hmsync doctor` as a user runs it: the binary over the data dir of a running local runtime
//! (exit 0, a line per finding), and over credentials given as flags before any connection
//! exists (a refused token is an error: exit 1), with `--json`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Output};

use hmsync::demo::{DEMO_CONNECTION, demo_config};
use hmsync::runtime::Runtime;
use hmsync_engine::adapters::{Credentials, HubSpotAuth, save_credentials};
use hmsync_sandbox::{PeopleSeed, Sandbox, SandboxConfig};
use hmsync_store::ConnectionStore;

const TIME_SCALE: f64 = 4.0;

/// `hmsync doctor <args>` against the sandbox's two APIs, without credentials from the
/// environment.
async fn doctor(sandbox: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmsync"));
    cmd.arg("doctor")
        .args(["--hubspot-api-url", &sandbox.hubspot_url(), "--mailerlite-api-url", &sandbox.mailerlite_url()])
        .args(["--time-scale", &TIME_SCALE.to_string()])
        .args(args)
        .env_remove("HMSYNC_HUBSPOT_TOKEN")
        .env_remove("HMSYNC_MAILERLITE_API_KEY")
        .env_remove("HMSYNC_PUBLIC_URL");
    tokio::task::spawn_blocking(move || cmd.output().expect("run hmsync doctor")).await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_checks_a_data_dir_and_credentials_given_as_flags() {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sandbox =
        Sandbox::start(SandboxConfig::default().with_time_scale(TIME_SCALE), localhost, localhost).await.unwrap();
    sandbox.seed_people(&PeopleSeed { per_side: 30, ..PeopleSeed::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::start(common::options(dir.path(), &sandbox, TIME_SCALE, "doctor-test-token")).await.unwrap();
    rt.store.create_connection(DEMO_CONNECTION, &demo_config(None)).await.unwrap();
    let hs = sandbox.hubspot().config();
    let ml_key = sandbox.mailerlite().config().token;
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(ml_key.clone()),
        mailerlite_webhook_secret: None,
        mailerlite_batched_webhook_secret: None,
    };
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await.unwrap();
    rt.engine.activate(DEMO_CONNECTION, &rt.webhook_target).await.unwrap();

    // The data dir of the running runtime: its public URL is where the webhooks were registered.
    let data_dir = dir.path().to_str().unwrap();
    let output = doctor(&sandbox, &["--data-dir", data_dir]).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.starts_with(&format!("hmsync doctor: connection {DEMO_CONNECTION} ")), "{text}");
    assert!(text.contains(&format!("✓ HubSpot token: Valid: portal {}", hs.portal_id)), "{text}");
    assert!(text.contains("✓ MailerLite webhooks: The webhook for subscriber changes is at"), "{text}");
    assert!(text.contains(&format!("✓ Public URL: {}/health answered 200", rt.api_url)), "{text}");
    assert!(text.contains("? HubSpot webhooks: hmsync cannot read"), "{text}");

    // Before any connection: a MailerLite key that works and a HubSpot token that does not.
    let output = doctor(&sandbox, &["--hubspot-token", "not-a-token", "--mailerlite-api-key", &ml_key, "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON reports");
    let findings = reports[0]["findings"].as_array().unwrap();
    let of = |check: &str| findings.iter().filter(|f| f["check"] == check).collect::<Vec<_>>();
    assert_eq!(of("hubspot_token")[0]["severity"], "error", "{reports:#}");
    assert_eq!(of("mailerlite_key")[0]["severity"], "ok", "{reports:#}");
    assert!(!stdout(&output).contains("not-a-token") && !stdout(&output).contains(&ml_key), "no credential printed");

    // A data dir without hmsync's store is refused with what to pass.
    let empty = tempfile::tempdir().unwrap();
    let output = doctor(&sandbox, &["--data-dir", empty.path().to_str().unwrap()]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass the --data-dir that hmsync serve uses"));
    rt.stop().await;
}
