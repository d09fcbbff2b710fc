//! A newcomer's path, as the README and docs/api.md tell it: `hmsync serve` (the binary) against
//! the two simulators, set up only through the config API (create, credentials, preview,
//! activate) and the HubSpot app's webhook settings. Then a MailerLite edit, a cleared field and
//! a new group member reach HubSpot by webhook: no scan and no "sync now" runs. The latency of
//! each is printed (measured, not asserted).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::{SeedRequest, WebhookSettings};
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use hmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const TOKEN: &str = "newcomer-admin-token";
/// Real time: the latencies printed are the ones a user would see against the sandbox.
const TIME_SCALE: f64 = 1.0;

/// `hmsync serve` as a child process; its stderr is collected as it comes.
struct Serve {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(dir: &std::path::Path, sandbox: &Sandbox) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hmsync"))
            .args(["serve", "--api-port", "0", "--admin-token", TOKEN, "--data-dir"])
            .arg(dir)
            .args(["--hubspot-api-url", &sandbox.hubspot_url(), "--mailerlite-api-url", &sandbox.mailerlite_url()])
            .args(["--time-scale", &TIME_SCALE.to_string()])
            .env_remove("HMSYNC_ADMIN_TOKEN")
            .env_remove("HMSYNC_PUBLIC_URL")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hmsync serve starts");
        let mut from = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let to = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                to.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Serve { child, stderr }
    }

    /// The config API's URL, from the banner `hmsync serve` prints.
    async fn url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.stderr.lock().unwrap().clone();
            if let Some(rest) = out.split("hmsync is serving on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "hmsync serve did not start:\n{out}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct ConfigApi {
    base: String,
    http: reqwest::Client,
}

impl ConfigApi {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("config API");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Waits until `done` holds, and says how long that took.
async fn time_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not reach HubSpot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_sets_up_through_the_config_api_and_mailerlite_changes_reach_hubspot_by_webhook() {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sandbox =
        Sandbox::start(SandboxConfig::default().with_time_scale(TIME_SCALE), localhost, localhost).await.unwrap();
    let ml = sandbox.mailerlite();
    let group = ml.create_group("Newsletter");
    sandbox.hubspot().seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    ml.seed(&SeedSpec { count: 6, start_index: 3, group_ids: vec![group.clone()], ..Default::default() }).unwrap();
    // Someone not in the group yet: out of the rule, not synced.
    ml.seed(&SeedSpec { count: 1, start_index: 20, ..Default::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &sandbox);
    let api = ConfigApi { base: serve.url().await, http: reqwest::Client::new() };

    // What the README's first connection does, step by step.
    let config = json!({
        "name": "Sales ↔ Newsletter",
        "direction": "two_way",
        "conflict_winner": "hubspot",
        "hubspot_rule": {"type": "all"},
        "mailerlite_rule": {"type": "groups", "group_ids": [group]},
        "mappings": [
            {"hubspot_property": "firstname", "mailerlite_field": "name"},
            {"hubspot_property": "city", "mailerlite_field": "city"}
        ]
    });
    let (status, body) =
        api.call(reqwest::Method::POST, "/connections", Some(json!({"id": "sales", "config": config}))).await;
    assert_eq!(status, 201, "{body}");
    let hs = sandbox.hubspot().config();
    let credentials = json!({
        "hubspot": {"type": "token", "access_token": hs.token},
        "hubspot_app_id": hs.app_id,
        "hubspot_client_secret": hs.client_secret,
        "mailerlite_api_key": ml.config().token,
    });
    let (status, body) = api.call(reqwest::Method::PUT, "/connections/sales/credentials", Some(credentials)).await;
    assert_eq!(status, 200, "{body}");
    // The HubSpot app's webhook target, set in the app by the user (README, "Setting up the HubSpot app").
    sandbox.hubspot().set_webhook_settings(Some(WebhookSettings::for_sync(format!("{}/webhooks/hubspot", api.base))));
    let (status, body) = api.call(reqwest::Method::POST, "/connections/sales/preview", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.call(reqwest::Method::POST, "/connections/sales/activate", None).await;
    assert_eq!(status, 202, "{body}");

    let deadline = Instant::now() + Duration::from_secs(120);
    let initial = loop {
        let (_, s) = api.call(reqwest::Method::GET, "/connections/sales/status", None).await;
        if s["lifecycle"] == "continuous" && s["scan"].is_null() {
            break s;
        }
        assert!(Instant::now() < deadline, "the initial sync did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(initial["webhooks"]["mailerlite"]["state"], "registered", "{}", initial["webhooks"]);
    let initial_run = initial["last_scan"]["run_id"].clone();

    let city = |email: &str| {
        sandbox.hubspot().contact_by_email(email).map(|c| c["properties"]["city"].clone()).unwrap_or(Value::Null)
    };
    let edit = |email: &str, value: Value| {
        let fields = [("city".to_string(), value)].into_iter().collect();
        ml.user_edit(email, &UserEdit { fields, ..Default::default() }).unwrap();
    };

    let edited = person(4).email;
    edit(&edited, json!("Porto"));
    let edit_latency = time_until("the edit", || city(&edited) == json!("Porto")).await;

    let cleared = person(5).email;
    assert!(!city(&cleared).is_null() && city(&cleared) != json!(""), "person 5 has a city to clear");
    edit(&cleared, Value::Null);
    let clear_latency =
        time_until("the clear", || matches!(city(&cleared), Value::Null) || city(&cleared) == json!("")).await;

    let joining = person(20).email;
    assert!(sandbox.hubspot().contact_by_email(&joining).is_none(), "not synced while outside the group");
    let subscriber = ml.subscriber(&joining).unwrap().id;
    let client = {
        let mut c = hmsync_mailerlite::Config::new(ml.config().token).with_base_url(sandbox.mailerlite_url());
        c.time_scale = TIME_SCALE;
        hmsync_mailerlite::Client::new(c).unwrap()
    };
    let joined = Instant::now();
    client.assign_to_group(&subscriber, &group).await.unwrap();
    let join_wait = time_until("the new group member", || sandbox.hubspot().contact_by_email(&joining).is_some()).await;
    let join_latency = joined.elapsed().max(join_wait);

    // By webhook: the only scan that ever ran is the initial sync, and none runs now.
    let (_, after) = api.call(reqwest::Method::GET, "/connections/sales/status", None).await;
    assert_eq!(after["last_scan"]["run_id"], initial_run, "no scan ran: {}", after["last_scan"]);
    assert!(after["scan"].is_null(), "no scan is running");
    assert!(after["webhooks"]["mailerlite"]["last_delivery_at_ms"].as_i64().is_some());
    println!(
        "MailerLite → HubSpot by webhook (hmsync serve, sandbox at time scale {TIME_SCALE}): edit {} ms, clear {} ms, new group member {} ms",
        edit_latency.as_millis(),
        clear_latency.as_millis(),
        join_latency.as_millis()
    );
}
