//! The config API over real HTTP, against the harness's server and both simulators: every route,
//! the admin token, validation (422 naming each field), not found, conflicts, oversized and
//! malformed bodies, credentials checked before saving and never shown, the HubSpot OAuth
//! install through the sandbox, the preview writing nothing, the lifecycle with status, errors,
//! retry and contact history, the OpenAPI document, and no secret in any answer or log line.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use hmsync_e2e::{ADMIN_TOKEN, Harness, Options};
use hmsync_http::now_ms;
use hmsync_sandbox::common::people::{INDUSTRY_OPTIONS, conflicting, person};
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use reqwest::Method;
use serde_json::{Value, json};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Every route of the config API that needs the admin token.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/connections"),
    ("POST", "/connections"),
    ("GET", "/connections/{id}"),
    ("PATCH", "/connections/{id}"),
    ("DELETE", "/connections/{id}"),
    ("GET", "/connections/{id}/credentials"),
    ("PUT", "/connections/{id}/credentials"),
    ("GET", "/connections/{id}/oauth/hubspot/start"),
    ("POST", "/connections/{id}/fields/refresh"),
    ("GET", "/connections/{id}/fields"),
    ("POST", "/connections/{id}/preview"),
    ("POST", "/connections/{id}/activate"),
    ("POST", "/connections/{id}/pause"),
    ("POST", "/connections/{id}/resume"),
    ("POST", "/connections/{id}/sync-now"),
    ("POST", "/connections/{id}/approve"),
    ("GET", "/connections/{id}/status"),
    ("GET", "/connections/{id}/errors"),
    ("POST", "/connections/{id}/errors/retry"),
    ("GET", "/connections/{id}/contacts/{email}"),
    ("DELETE", "/connections/{id}/contacts/{email}"),
    ("GET", "/connections/{id}/contacts/{email}/export"),
    ("DELETE", "/connections/{id}/contacts/{email}/erasure"),
    ("POST", "/dead-letters/requeue"),
    ("GET", "/connections/{id}/accounts"),
    ("GET", "/connections/{id}/hubspot/lists"),
    ("GET", "/connections/{id}/mailerlite/groups"),
    ("POST", "/connections/{id}/mailerlite/groups"),
    ("GET", "/connections/{id}/mailerlite/segments"),
    ("POST", "/connections/{id}/fields/options"),
    ("GET", "/connections/{id}/activity"),
    ("GET", "/connections/{id}/dead-letters"),
    ("POST", "/connections/{id}/config/check"),
    ("GET", "/connections/{id}/doctor"),
];

/// The public routes.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/status"),
    ("GET", "/openapi.json"),
    ("GET", "/oauth/hubspot/callback"),
    ("POST", "/webhooks/hubspot"),
    ("POST", "/webhooks/mailerlite/{connection_id}"),
];

// --- log capture ---------------------------------------------------------------------------------

#[derive(Clone)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of this test process at debug level (tracing events, span
/// creation with its fields, and `log` records), from the first test that asks on.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedBuffer(buffer.clone());
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG);
        tracing_subscriber::registry().with(layer).try_init().expect("the log capture is the only subscriber");
        buffer
    })
    .clone()
}

// --- HTTP client ---------------------------------------------------------------------------------

/// An answer, read whole.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    fn problem_fields(&self) -> Vec<String> {
        let body = self.json();
        body["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {body}"))
            .iter()
            .map(|p| p["field"].as_str().expect("field").to_string())
            .collect()
    }

    #[track_caller]
    fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
    Admin,
    None,
    Bearer(&'a str),
    Raw(&'a str),
}

/// The test's HTTP client: records every answer (status line, headers and body) for the
/// secrets check.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    answers: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn new(h: &Harness) -> Client {
        Client {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            base: h.api_url.clone(),
            answers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn raw(&self, method: Method, url: &str, auth: Auth<'_>, body: Option<(&str, Vec<u8>)>) -> Answer {
        let url = if url.starts_with("http") { url.to_string() } else { format!("{}{url}", self.base) };
        let mut req = self.http.request(method, &url);
        req = match auth {
            Auth::Admin => req.bearer_auth(ADMIN_TOKEN),
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Raw(v) => req.header("authorization", v),
        };
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let mut record = format!("{status}\n");
        for (k, v) in &headers {
            record.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or_default()));
        }
        record.push_str(&text);
        self.answers.lock().expect("answers").push(record);
        Answer { status, headers, text }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).expect("json")));
        self.raw(method, path, Auth::Admin, body).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Answer {
        self.send(Method::POST, path, body).await
    }
}

fn sync_config(name: &str) -> Value {
    json!({
        "name": name,
        "mappings": [
            {"hubspot_property": "firstname", "mailerlite_field": "name"},
            {"hubspot_property": "lastname", "mailerlite_field": "last_name"},
            {"hubspot_property": "city", "mailerlite_field": "city"},
            {"hubspot_property": "industry_segment", "mailerlite_field": "industry"}
        ]
    })
}

const ML_WEBHOOK_SECRET: &str = "ml-webhook-secret-never-shown";

/// The sandbox's real credentials as a PUT body.
fn sandbox_credentials(h: &Harness) -> Value {
    let hs = h.hubspot.config();
    json!({
        "hubspot": {"type": "token", "access_token": hs.token},
        "hubspot_app_id": hs.app_id,
        "hubspot_client_secret": hs.client_secret,
        "mailerlite_api_key": h.mailerlite.config().token,
        "mailerlite_webhook_secret": ML_WEBHOOK_SECRET,
    })
}

/// Creates a connection and stores working credentials, through the API.
async fn connect(c: &Client, h: &Harness, id: &str, name: &str) {
    c.post("/connections", Some(json!({"id": id, "config": sync_config(name)}))).await.expect(201);
    c.send(Method::PUT, &format!("/connections/{id}/credentials"), Some(sandbox_credentials(h))).await.expect(200);
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "c1").replace("{email}", "person1@example.com").replace("{connection_id}", "c1")
}

/// A body that passes the shape check of each route that reads one.
fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("POST", "/connections") => Some(json!({"id": "other", "config": {"name": "Other"}})),
        ("PATCH", _) => Some(json!({"version": 1, "config": {"name": "Renamed"}})),
        ("PUT", _) => Some(json!({"mailerlite_api_key": "not-checked-before-auth"})),
        ("POST", "/connections/{id}/mailerlite/groups") => Some(json!({"name": "Newsletter"})),
        ("POST", "/connections/{id}/config/check") => Some(json!({"config": {"name": "Checked"}})),
        ("POST", "/connections/{id}/fields/options") => {
            Some(json!({"mapping": {"hubspot_property": "industry_segment", "mailerlite_field": "industry"}}))
        }
        _ => None,
    }
}

// --- tests ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_refuses_a_missing_or_wrong_admin_token() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    c.post("/connections", Some(json!({"id": "c1", "config": {"name": "Kept"}}))).await.expect(201);
    for (method, path) in PROTECTED {
        let url = concrete(path);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = valid_body(method.as_str(), path).map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        for (what, auth) in [
            ("no token", Auth::None),
            ("wrong token", Auth::Bearer("test-admin-tokeN")),
            ("token as basic auth", Auth::Raw("Basic dGVzdC1hZG1pbi10b2tlbg==")),
            ("empty bearer", Auth::Raw("Bearer ")),
        ] {
            let a = c.raw(method.clone(), &url, auth, body.clone()).await;
            assert_eq!(a.status, 401, "{method} {path} with {what}: {}", a.text);
            assert!(a.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {}", a.text);
            assert_eq!(a.header("www-authenticate").as_deref(), Some("Bearer realm=\"hmsync\""));
        }
    }
    // Nothing happened: the connection is unchanged and alone.
    let list = c.get("/connections").await.expect(200).json();
    assert_eq!(list["connections"].as_array().unwrap().len(), 1, "{list}");
    let conn = c.get("/connections/c1").await.expect(200).json();
    assert_eq!(conn["config"]["name"], "Kept");
    assert_eq!(conn["version"], 1);
    assert_eq!(c.get("/connections/c1/credentials").await.expect(200).json()["mailerlite_api_key"], false);
    // The public routes answer without a token.
    assert_eq!(c.raw(Method::GET, "/health", Auth::None, None).await.expect(200).json()["status"], "ok");
    let page = c.raw(Method::GET, "/status", Auth::None, None).await.expect(200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.header("content-security-policy").unwrap().contains("script-src 'sha256-"));
    c.raw(Method::GET, "/openapi.json", Auth::None, None).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_connections_are_404_on_every_route() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    for (method, path) in PROTECTED.iter().filter(|(_, p)| p.contains("{id}")) {
        let url = path.replace("{id}", "nope").replace("{email}", "person1@example.com");
        let body = valid_body(method, path);
        let a = c.send(Method::from_bytes(method.as_bytes()).unwrap(), &url, body).await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.text);
        assert!(a.json()["error"].as_str().unwrap().contains("nope"), "{}", a.text);
    }
    // The MailerLite webhook of an unknown connection is refused too (its route stays public),
    // with the 401 an unsigned delivery gets anywhere: the answer does not tell that `nope` is
    // unknown (tests/security: the signature is checked before the connection is looked up).
    let a =
        c.raw(Method::POST, "/webhooks/mailerlite/nope", Auth::None, Some(("application/json", b"{}".to_vec()))).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(!a.text.contains("nope"), "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_created_listed_updated_with_versions_and_deleted() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    // Create with an id: 201, Location, a draft without schemas or credentials.
    let created = c.post("/connections", Some(json!({"id": "c1", "config": sync_config("Sales")}))).await.expect(201);
    assert_eq!(created.header("location").as_deref(), Some("/connections/c1"));
    let body = created.json();
    assert_eq!(body["id"], "c1");
    assert_eq!(body["version"], 1);
    assert_eq!(body["lifecycle"], "draft");
    assert_eq!(body["schemas_loaded"], false);
    assert_eq!(body["problems"], json!([]));
    assert_eq!(body["credentials"]["mailerlite_api_key"], false);
    assert_eq!(body["config"]["mappings"].as_array().unwrap().len(), 4);
    // The same id again: 409. Without an id: one is generated.
    let taken = c.post("/connections", Some(json!({"id": "c1", "config": {"name": "Again"}}))).await.expect(409);
    assert!(taken.json()["error"].as_str().unwrap().contains("already exists"));
    let generated = c.post("/connections", Some(json!({"config": {"name": "Generated"}}))).await.expect(201).json();
    let gid = generated["id"].as_str().unwrap().to_string();
    assert_eq!(gid.len(), 32, "{generated}");
    let list = c.get("/connections").await.expect(200).json();
    let names: BTreeSet<&str> =
        list["connections"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["Sales", "Generated"]));
    assert!(list["connections"].as_array().unwrap().iter().all(|x| x["lifecycle"] == "draft" && x["paused"] == false));

    // Invalid config: 422 naming each field; nothing created.
    let invalid = c
        .post(
            "/connections",
            Some(json!({"id": "bad id!", "config": {
                "name": " ",
                "hubspot_rule": {"type": "lists", "list_ids": []},
                "mappings": [
                    {"hubspot_property": "email", "mailerlite_field": "email"},
                    {"hubspot_property": "city", "mailerlite_field": "city", "direction": "hubspot_to_mailerlite", "conflict_winner": "mailerlite"}
                ]
            }})),
        )
        .await
        .expect(422);
    assert_eq!(
        invalid.problem_fields(),
        [
            "id",
            "config.name",
            "config.hubspot_rule.list_ids",
            "config.mappings[0].hubspot_property",
            "config.mappings[1].conflict_winner"
        ]
    );
    for p in invalid.json()["problems"].as_array().unwrap() {
        assert!(!p["message"].as_str().unwrap().is_empty() && !p["fix"].as_str().unwrap().is_empty(), "{p}");
    }
    // JSON of the wrong shape: 422 naming each field. Malformed JSON: 400. Not JSON: 415.
    let shape = c
        .post(
            "/connections",
            Some(json!({"config": {"name": 5, "direction": "sideways", "conflict_winner": 1}, "colour": "red"})),
        )
        .await
        .expect(422);
    let mut fields = shape.problem_fields();
    fields.sort();
    assert_eq!(fields, ["colour", "config.conflict_winner", "config.direction", "config.name"], "{}", shape.text);
    assert!(shape.text.contains("unknown field"), "{}", shape.text);
    assert!(!shape.text.contains("sideways"), "submitted strings are not echoed: {}", shape.text);
    let malformed =
        c.raw(Method::POST, "/connections", Auth::Admin, Some(("application/json", b"{\"config\": {".to_vec()))).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert!(malformed.json()["error"].as_str().unwrap().contains("not valid JSON"));
    let not_json = c.raw(Method::POST, "/connections", Auth::Admin, Some(("text/plain", b"{}".to_vec()))).await;
    assert_eq!(not_json.status, 415, "{}", not_json.text);
    let empty = c.raw(Method::POST, "/connections", Auth::Admin, None).await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    // Over 1 MiB: 413, on a route that reads a body and on an optional body.
    let mut big = serde_json::to_vec(&json!({"config": {"name": "x".repeat(hmsync_api::MAX_BODY_BYTES)}})).unwrap();
    big.truncate(hmsync_api::MAX_BODY_BYTES + 10);
    for url in ["/connections", "/connections/c1/preview", "/connections/c1/errors/retry"] {
        let a = c.raw(Method::POST, url, Auth::Admin, Some(("application/json", big.clone()))).await;
        assert_eq!(a.status, 413, "{url}: {}", a.text);
        assert!(a.json()["error"].as_str().unwrap().contains("larger than"), "{}", a.text);
    }
    assert_eq!(c.get("/connections").await.json()["connections"].as_array().unwrap().len(), 2);

    // Update: the version guards concurrent edits.
    let mut config = sync_config("Sales and newsletter");
    config["direction"] = json!("hubspot_to_mailerlite");
    let updated =
        c.send(Method::PATCH, "/connections/c1", Some(json!({"version": 1, "config": config}))).await.expect(200);
    assert_eq!(updated.json()["version"], 2);
    assert_eq!(updated.json()["config"]["direction"], "hubspot_to_mailerlite");
    let stale = c
        .send(Method::PATCH, "/connections/c1", Some(json!({"version": 1, "config": sync_config("Lost update")})))
        .await
        .expect(409);
    assert!(stale.json()["error"].as_str().unwrap().contains("version 1"), "{}", stale.text);
    assert!(stale.json()["action"].as_str().is_some());
    let bad = c
        .send(
            Method::PATCH,
            "/connections/c1",
            Some(json!({"version": 2, "config": {"name": "", "target_group": " ", "engagement": {"legal_basis": "BECAUSE"}}})),
        )
        .await
        .expect(422);
    assert_eq!(bad.problem_fields(), ["config.name", "config.target_group", "config.engagement.legal_basis"]);
    let missing_version =
        c.send(Method::PATCH, "/connections/c1", Some(json!({"config": sync_config("x")}))).await.expect(422);
    assert_eq!(missing_version.problem_fields(), ["version"]);
    let conn = c.get("/connections/c1").await.expect(200).json();
    assert_eq!((conn["version"].as_u64(), conn["config"]["name"].as_str()), (Some(2), Some("Sales and newsletter")));

    // Fields before any refresh: no schemas, the config's problems (none without schemas).
    let fields = c.get("/connections/c1/fields").await.expect(200).json();
    assert_eq!(fields, json!({"schemas": null, "problems": [], "suggested_mappings": []}));

    // Delete: 204, then 404.
    c.send(Method::DELETE, &format!("/connections/{gid}"), None).await.expect(204);
    c.get(&format!("/connections/{gid}")).await.expect(404);
    c.send(Method::DELETE, &format!("/connections/{gid}"), None).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_before_saving_and_never_shown() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    c.post("/connections", Some(json!({"id": "c1", "config": sync_config("Sales")}))).await.expect(201);
    let hs = h.hubspot.config();
    // A wrong MailerLite key and a wrong HubSpot token: refused, each named, nothing saved.
    let refused = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(json!({
                "hubspot": {"type": "token", "access_token": "pat-na1-wrong-token"},
                "mailerlite_api_key": "wrong-mailerlite-key",
                "mailerlite_webhook_secret": ML_WEBHOOK_SECRET,
            })),
        )
        .await
        .expect(422);
    assert_eq!(refused.problem_fields(), ["hubspot.access_token", "mailerlite_api_key"]);
    let body = refused.json();
    for p in body["problems"].as_array().unwrap() {
        assert!(p["message"].as_str().unwrap().contains("refused"), "{p}");
        assert!(!p["fix"].as_str().unwrap().is_empty(), "{p}");
    }
    let status = c.get("/connections/c1/credentials").await.expect(200).json();
    assert_eq!(
        status,
        json!({"hubspot": null, "hubspot_app_id": null, "hubspot_client_secret": false, "mailerlite_api_key": false,
               "mailerlite_webhook_secret": false, "mailerlite_batched_webhook_secret": false})
    );
    // Only the MailerLite key wrong: the HubSpot token is fine but nothing is saved either.
    let one = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(json!({"hubspot": {"type": "token", "access_token": hs.token}, "mailerlite_api_key": "wrong-mailerlite-key"})),
        )
        .await
        .expect(422);
    assert_eq!(one.problem_fields(), ["mailerlite_api_key"]);
    assert_eq!(c.get("/connections/c1/credentials").await.json()["hubspot"], Value::Null);
    // Empty values, an empty request, an unknown field, a wrong type: 422 naming them.
    let empty = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(
                json!({"hubspot": {"type": "oauth", "client_id": "", "client_secret": "s"}, "mailerlite_api_key": " "}),
            ),
        )
        .await
        .expect(422);
    assert_eq!(empty.problem_fields(), ["hubspot.client_id", "mailerlite_api_key"]);
    assert_eq!(
        c.send(Method::PUT, "/connections/c1/credentials", Some(json!({}))).await.expect(422).problem_fields(),
        ["(body)"]
    );
    // Tokens and keys go into a header: spaces and other than printable ASCII are refused unsent.
    let unprintable = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(json!({"hubspot": {"type": "token", "access_token": "pat na1"}, "mailerlite_api_key": "kéy"})),
        )
        .await
        .expect(422);
    assert_eq!(unprintable.problem_fields(), ["hubspot.access_token", "mailerlite_api_key"]);
    let typo =
        c.send(Method::PUT, "/connections/c1/credentials", Some(json!({"mailerlite_key": "k"}))).await.expect(422);
    assert_eq!(typo.problem_fields(), ["mailerlite_key"]);
    // `null` is not "left out": refused, naming each field.
    let nulls = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(json!({"hubspot": null, "hubspot_app_id": null, "mailerlite_api_key": null})),
        )
        .await
        .expect(422);
    assert_eq!(nulls.problem_fields(), ["hubspot", "hubspot_app_id", "mailerlite_api_key"]);
    let wrong_type = c
        .send(
            Method::PUT,
            "/connections/c1/credentials",
            Some(json!({"hubspot": "pat-na1-in-the-wrong-place", "hubspot_app_id": "x"})),
        )
        .await
        .expect(422);
    assert!(!wrong_type.text.contains("pat-na1-in-the-wrong-place"), "{}", wrong_type.text);

    // The right ones: saved; the answer and the GET say which are set, never their values.
    let saved = c.send(Method::PUT, "/connections/c1/credentials", Some(sandbox_credentials(&h))).await.expect(200);
    let expected = json!({
        "hubspot": "token",
        "hubspot_app_id": hs.app_id,
        "hubspot_client_secret": true,
        "mailerlite_api_key": true,
        "mailerlite_webhook_secret": true,
        "mailerlite_batched_webhook_secret": false,
    });
    assert_eq!(saved.json(), expected);
    assert_eq!(c.get("/connections/c1/credentials").await.expect(200).json(), expected);
    assert_eq!(c.get("/connections/c1").await.json()["credentials"], expected);
    // A later update of one credential keeps the others.
    let partial =
        c.send(Method::PUT, "/connections/c1/credentials", Some(json!({"mailerlite_webhook_secret": "rotated"}))).await;
    assert_eq!(partial.expect(200).json(), expected);
    for secret in [
        hs.token.as_str(),
        hs.client_secret.as_str(),
        &h.mailerlite.config().token,
        ML_WEBHOOK_SECRET,
        "rotated",
        "wrong-mailerlite-key",
        "pat-na1-wrong-token",
    ] {
        for answer in c.answers.lock().unwrap().iter() {
            assert!(!answer.contains(secret), "an answer shows {secret}: {answer}");
        }
    }
}

/// Follows the install: our start → the sandbox's authorize page → our callback.
async fn install(c: &Client, id: &str) -> (Answer, String) {
    let start = c.get(&format!("/connections/{id}/oauth/hubspot/start")).await.expect(302);
    let authorize = start.header("location").expect("Location");
    let authorized = c.raw(Method::GET, &authorize, Auth::None, None).await.expect(302);
    let callback = authorized.header("location").expect("Location");
    (c.raw(Method::GET, &callback, Auth::None, None).await, callback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubspot_oauth_install_runs_through_the_sandbox() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    let hs = h.hubspot.config();
    // The MailerLite fields the config maps exist once subscribers with custom fields do.
    h.mailerlite.seed(&SeedSpec { count: 1, ..Default::default() }).unwrap();
    c.post("/connections", Some(json!({"id": "c1", "config": sync_config("OAuth")}))).await.expect(201);
    // Without an OAuth client: 409 saying what to store.
    let early = c.get("/connections/c1/oauth/hubspot/start").await.expect(409);
    assert!(early.json()["action"].as_str().unwrap().contains("client_id"));
    c.send(
        Method::PUT,
        "/connections/c1/credentials",
        Some(json!({
            "hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret},
            "mailerlite_api_key": h.mailerlite.config().token,
        })),
    )
    .await
    .expect(200);
    let status = c.get("/connections/c1/credentials").await.json();
    assert_eq!(status["hubspot"], "oauth (not connected)");
    assert_eq!(status["hubspot_client_secret"], true, "the OAuth client secret signs the app's webhooks");

    // Start: 302 to the authorize page with the scopes, the redirect URI and a signed state.
    let start = c.get("/connections/c1/oauth/hubspot/start").await.expect(302);
    let location = start.header("location").unwrap();
    assert_eq!(start.json()["authorize_url"], location);
    let url = url::Url::parse(&location).unwrap();
    assert_eq!(url.path(), "/oauth/authorize");
    assert_eq!(format!("{}://{}", url.scheme(), url.authority()), h.hubspot.base_url());
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], hs.client_id);
    assert_eq!(q["redirect_uri"], format!("{}/oauth/hubspot/callback", h.api_url));
    let scopes: BTreeSet<&str> = q["scope"].split(' ').collect();
    assert_eq!(scopes, hmsync_api::REQUIRED_SCOPES.into_iter().collect::<BTreeSet<_>>());
    assert_eq!(q["optional_scope"], "communication_preferences.read_write");
    assert!(location.contains("scope=crm.objects.contacts.read%20"), "spaces are %20: {location}");
    assert!(!q["state"].is_empty());

    // Through the sandbox's authorize page and back: the tokens are stored.
    let (done, callback) = install(&c, "c1").await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("HubSpot is connected") && done.text.contains("OAuth"), "{}", done.text);
    assert!(done.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(c.get("/connections/c1/credentials").await.json()["hubspot"], "oauth");
    // The stored tokens work: fields refresh reads HubSpot with them.
    let fields = c.post("/connections/c1/fields/refresh", None).await.expect(200).json();
    assert!(fields["schemas"]["hubspot_contact"].as_array().unwrap().iter().any(|p| p["name"] == "industry_segment"));
    assert_eq!(fields["problems"], json!([]));

    // The same callback again: the state is single-use.
    let replay = c.raw(Method::GET, &callback, Auth::None, None).await.expect(400);
    assert!(replay.text.contains("already used"), "{}", replay.text);
    // A tampered state, none, a declined install: 400 pages.
    let mut tampered = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = tampered.query_pairs().into_owned().collect();
    tampered.query_pairs_mut().clear();
    for (k, v) in &pairs {
        let v = if k == "state" { format!("x{v}") } else { v.clone() };
        tampered.query_pairs_mut().append_pair(k, &v);
    }
    let a = c.raw(Method::GET, tampered.as_str(), Auth::None, None).await.expect(400);
    assert!(a.text.contains("not issued by this hmsync"), "{}", a.text);
    c.raw(Method::GET, "/oauth/hubspot/callback?code=abc", Auth::None, None).await.expect(400);
    let fresh = c.get("/connections/c1/oauth/hubspot/start").await.expect(302).header("location").unwrap();
    let state: String =
        url::Url::parse(&fresh).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let declined = c
        .raw(
            Method::GET,
            &format!("/oauth/hubspot/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state={state}"),
            Auth::None,
            None,
        )
        .await
        .expect(400);
    assert!(
        declined.text.contains("access_denied") && declined.text.contains("&lt;b&gt;no&lt;/b&gt;"),
        "escaped: {}",
        declined.text
    );

    // A wrong client secret is only found out at the code exchange: a 502 page, nothing stored.
    c.post("/connections", Some(json!({"id": "c2", "config": sync_config("Wrong secret")}))).await.expect(201);
    c.send(
        Method::PUT,
        "/connections/c2/credentials",
        Some(json!({"hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": "not-the-secret"}})),
    )
    .await
    .expect(200);
    let (failed, _) = install(&c, "c2").await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    assert!(failed.text.contains("HubSpot refused the authorization code"), "{}", failed.text);
    assert_eq!(c.get("/connections/c2/credentials").await.json()["hubspot"], "oauth (not connected)");
}

/// Write endpoints of HubSpot among the sandbox's stats keys.
fn hubspot_writes(h: &Harness) -> Vec<String> {
    h.hubspot
        .stats()
        .endpoints
        .into_iter()
        .filter(|(k, _)| {
            let (method, path) = k.split_once(' ').unwrap();
            let read = method == "GET" || path.ends_with("/search") || path.ends_with("/batch/read");
            !read
        })
        .map(|(k, v)| format!("{k} ×{}", v.requests))
        .collect()
}

/// MailerLite requests that are not reads (`POST /api/batch` carries the batched GETs; the
/// data comparison covers what it did).
fn mailerlite_writes(h: &Harness) -> Vec<String> {
    h.mailerlite
        .stats()
        .endpoints
        .into_iter()
        .filter(|(k, _)| !k.starts_with("GET ") && k != "POST /api/batch")
        .map(|(k, v)| format!("{k} ×{}", v.requests))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_reports_creates_and_conflicts_and_writes_nothing() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    // HubSpot: people 0..30; MailerLite: 20..50, every shared person with another first name and city.
    h.hubspot.seed(&SeedRequest { count: 30, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 30, start_index: 20, conflict_rate: 1.0, ..Default::default() }).unwrap();
    connect(&c, &h, "c1", "Preview").await;
    c.post("/connections/c1/fields/refresh", None).await.expect(200);
    let contacts = h.all_contacts(&["email", "firstname", "city", "lastmodifieddate"]).await;
    let subscribers = h.all_subscribers().await;
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();

    let preview = c.post("/connections/c1/preview", None).await.expect(200).json();
    assert_eq!(hubspot_writes(&h), Vec::<String>::new(), "the preview wrote to HubSpot");
    assert_eq!(mailerlite_writes(&h), Vec::<String>::new(), "the preview wrote to MailerLite");
    assert!(h.hubspot.stats().total_requests > 0 && h.mailerlite.stats().total_requests > 0, "it read both apps");
    assert_eq!(preview["sampled_hubspot"], 30);
    assert_eq!(preview["sampled_mailerlite"], 30);
    // 20 HubSpot-only people go to MailerLite, 20 MailerLite-only ones to HubSpot; the 10 shared
    // ones conflict on first name and city, and HubSpot (the winner) wins.
    assert_eq!(preview["mailerlite"]["creates"], 20, "{preview}");
    assert_eq!(preview["hubspot"]["creates"], 20, "{preview}");
    // Each shared person differs in first name and (mostly) city; HubSpot wins every conflict.
    let expected_conflicts: usize = (20..30)
        .map(|i| {
            let (p, q) = (person(i), conflicting(&person(i)));
            usize::from(p.first_name != q.first_name) + usize::from(p.city != q.city)
        })
        .sum();
    assert!(expected_conflicts >= 10);
    assert_eq!(preview["conflicts"]["hubspot"], expected_conflicts, "{preview}");
    assert!(preview["conflicts"].get("mailerlite").is_none(), "{preview}");
    assert_eq!(preview["samples"].as_array().unwrap().len(), 20, "default samples");
    // A preview of another config (MailerLite wins) and smaller limits.
    let mut other = sync_config("Preview");
    other["conflict_winner"] = json!("mailerlite");
    let p2 = c
        .post("/connections/c1/preview", Some(json!({"config": other, "limit": 50, "samples": 3})))
        .await
        .expect(200)
        .json();
    assert_eq!(p2["conflicts"]["mailerlite"], expected_conflicts, "{p2}");
    assert_eq!(p2["samples"].as_array().unwrap().len(), 3);
    // Out-of-range limits and a bad config: 422 naming each.
    let bad = c
        .post("/connections/c1/preview", Some(json!({"limit": 0, "samples": 1000, "config": {"name": ""}})))
        .await
        .expect(422);
    assert_eq!(bad.problem_fields(), ["limit", "samples", "config.name"]);
    assert_eq!(hubspot_writes(&h), Vec::<String>::new());
    assert_eq!(mailerlite_writes(&h), Vec::<String>::new());
    // Both apps hold exactly what they held, and hmsync stored nothing.
    assert_eq!(h.all_contacts(&["email", "firstname", "city", "lastmodifieddate"]).await, contacts);
    assert_eq!(h.all_subscribers().await, subscribers);
    assert_eq!(h.store.count_links("c1").await.unwrap(), 0);
    assert_eq!(c.get("/connections/c1/status").await.json()["lifecycle"], "draft");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_status_errors_retry_history_and_lifecycle() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 10, ..Default::default() }).unwrap();
    // A MailerLite-only subscriber whose industry is no HubSpot option: a per-contact error.
    let broken = person(25).email;
    let edit = |value: &str| UserEdit {
        fields: [("industry".to_string(), json!(value))].into_iter().collect(),
        email: None,
        status: None,
    };
    h.mailerlite.user_edit(&broken, &edit("Basket weaving")).unwrap();
    connect(&c, &h, "c1", "Sales ↔ Newsletter").await;
    c.post("/connections", Some(json!({"id": "draft", "config": {"name": "Draft"}}))).await.expect(201);

    // Activate: 202 with the initial sync under way; a second activation is 409.
    let activated = c.post("/connections/c1/activate", None).await.expect(202).json();
    assert_eq!(activated["lifecycle"], "initial_sync");
    assert!(activated["initial_sync"]["started_at_ms"].as_i64().is_some());
    assert_eq!(activated["initial_sync"]["finished_at_ms"], Value::Null);
    assert_eq!(activated["dead_letters"], 0);
    let again = c.post("/connections/c1/activate", None).await.expect(409);
    assert!(again.json()["error"].as_str().unwrap().contains("already active"));
    h.settle().await;

    // The status after the initial sync: 30 people linked, one errored.
    let status = c.get("/connections/c1/status").await.expect(200).json();
    assert_eq!(status["lifecycle"], "continuous", "{status}");
    assert_eq!(status["name"], "Sales ↔ Newsletter");
    assert!(status["initial_sync"]["finished_at_ms"].as_i64().is_some(), "{status}");
    assert_eq!(status["initial_sync"]["done"], status["last_scan"]["records"], "{status}");
    assert!(status["initial_sync"]["done"].as_u64().unwrap() >= 40, "20 records on each side: {status}");
    assert_eq!(status["initial_sync"]["eta_seconds"], Value::Null);
    assert_eq!(status["counts"]["links"]["complete"], 30, "{status}");
    assert_eq!(status["counts"]["links"]["hubspot_in_scope"], 30, "{status}");
    assert_eq!(status["counts"]["links"]["mailerlite_in_scope"], 30, "{status}");
    assert_eq!(status["counts"]["errored"], 1, "{status}");
    assert_eq!(status["counts"]["excluded_no_email"], 0);
    assert_eq!(status["unique_contacts_this_month"], 30, "{status}");
    assert_eq!(status["last_scan"]["kind"], "initial");
    assert!(status["next_scan_at_ms"].as_i64().unwrap() > status["last_scan"]["finished_at_ms"].as_i64().unwrap());
    assert_eq!(status["problem"], Value::Null);
    assert_eq!(status["dead_letters"], 0);
    let detail = c.get("/connections/c1").await.json();
    assert_eq!((detail["lifecycle"].as_str(), detail["schemas_loaded"].as_bool()), (Some("continuous"), Some(true)));

    // The error: who, where, what HubSpot said, what to do.
    let errors = c.get("/connections/c1/errors").await.expect(200).json();
    assert_eq!(errors["total"], 1, "{errors}");
    let error = &errors["errors"][0];
    assert_eq!(error["email"], broken.as_str(), "{errors}");
    let problem = &error["problems"][0];
    assert_eq!(problem["side"], "hubspot", "{errors}");
    assert_eq!(problem["field"], "industry_segment", "{errors}");
    assert!(problem["message"].as_str().unwrap().contains("Basket weaving"), "{errors}");
    assert!(!problem["action"].as_str().unwrap().is_empty(), "{errors}");
    let key = error["key"].as_str().unwrap().to_string();
    for bad in ["limit=0", "limit=501", "limit=ten"] {
        assert_eq!(c.get(&format!("/connections/c1/errors?{bad}")).await.expect(422).problem_fields(), ["limit"]);
    }
    let paged = c.get("/connections/c1/errors?limit=1").await.expect(200).json();
    assert_eq!(paged["errors"].as_array().unwrap().len(), 1);
    assert_eq!(paged["next"], Value::Null);
    let after = c.get(&format!("/connections/c1/errors?after={key}")).await.expect(200).json();
    assert_eq!(after["errors"], json!([]));

    // Fix the value in MailerLite and retry that contact: the error clears, HubSpot gets the option.
    let (value, label) = INDUSTRY_OPTIONS[1];
    h.mailerlite.user_edit(&broken, &edit(label)).unwrap();
    h.mailerlite.dispatcher().wait_idle().await;
    let retried =
        c.post("/connections/c1/errors/retry", Some(json!({"keys": [key, "no-such-key"]}))).await.expect(202).json();
    assert_eq!(retried, json!({"queued": 1, "unknown_keys": ["no-such-key"]}));
    h.settle().await;
    assert_eq!(c.get("/connections/c1/errors").await.json()["total"], 0);
    let hs_contact = h.hubspot.contact_by_email(&broken).expect("created in HubSpot");
    assert_eq!(hs_contact["properties"]["industry_segment"], value);
    assert_eq!(c.post("/connections/c1/errors/retry", None).await.expect(202).json()["queued"], 0);
    assert_eq!(
        c.post("/connections/c1/errors/retry", Some(json!({"keys": "all"}))).await.expect(422).problem_fields(),
        ["keys"]
    );

    // The contact: its link and what changed, newest first; any case of the email works.
    let contact = c.get(&format!("/connections/c1/contacts/{}", broken.to_uppercase())).await.expect(200).json();
    assert_eq!(contact["link"]["email"], broken.as_str());
    assert!(contact["link"]["hubspot_id"].is_string() && contact["link"]["mailerlite_id"].is_string(), "{contact}");
    assert_eq!(contact["error"], Value::Null);
    let history = contact["history"].as_array().unwrap();
    assert!(
        history.iter().any(|e| e["field"] == "industry_segment" && e["target"] == "hubspot" && e["after"] == value),
        "{contact}"
    );
    let times: Vec<i64> = history.iter().map(|e| e["at_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    c.get("/connections/c1/contacts/nobody@example.com").await.expect(404);
    assert_eq!(c.get("/connections/c1/contacts/not-an-email").await.expect(422).problem_fields(), ["email"]);

    // Sync now: a new scan runs.
    let first_run = status["last_scan"]["run_id"].clone();
    c.post("/connections/c1/sync-now", None).await.expect(202);
    h.settle().await;
    let scanned = c.get("/connections/c1/status").await.json();
    assert_ne!(scanned["last_scan"]["run_id"], first_run);
    assert_eq!(scanned["last_scan"]["kind"], "manual");
    assert_eq!(scanned["counts"]["links"]["complete"], 30);
    let refused = c.post("/connections/draft/sync-now", None).await.expect(409);
    assert!(refused.json()["error"].as_str().unwrap().contains("activate it first"));

    // Pause and resume; nothing waits for approval.
    assert_eq!(c.post("/connections/c1/pause", None).await.expect(200).json()["pause"]["reason"], "user");
    assert_eq!(c.get("/connections").await.json()["connections"][0]["paused"], true);
    assert_eq!(c.post("/connections/c1/resume", None).await.expect(200).json()["pause"], Value::Null);
    let approve = c.post("/connections/c1/approve", None).await.expect(409);
    assert!(approve.json()["error"].as_str().unwrap().contains("nothing is waiting"));

    // The fields as refreshed by the activation, the dead letters, and deletion.
    let fields = c.get("/connections/c1/fields").await.expect(200).json();
    assert!(fields["schemas"]["mailerlite"].as_array().unwrap().iter().any(|f| f["key"] == "industry"));
    assert_eq!(c.post("/dead-letters/requeue", None).await.expect(200).json(), json!({"requeued": 0}));
    c.send(Method::DELETE, "/connections/c1", None).await.expect(204);
    c.get("/connections/c1/status").await.expect(404);
    assert_eq!(h.all_contacts(&["email"]).await.len(), 30, "deleting a connection deletes nothing in the apps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_cannot_be_activated_and_each_problem_is_named() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    h.mailerlite.seed(&SeedSpec { count: 1, ..Default::default() }).unwrap();
    c.post(
        "/connections",
        Some(json!({"id": "c1", "config": {"name": "Mappings", "mappings": [
            {"hubspot_property": "no_such_property", "mailerlite_field": "city"},
            {"hubspot_property": "firstname", "mailerlite_field": "no_such_field"},
            {"hubspot_property": "hs_object_id", "mailerlite_field": "last_name", "direction": "mailerlite_to_hubspot"}
        ]}})),
    )
    .await
    .expect(201);
    c.send(Method::PUT, "/connections/c1/credentials", Some(sandbox_credentials(&h))).await.expect(200);
    let expected =
        ["config.mappings[0].hubspot_property", "config.mappings[1].mailerlite_field", "config.mappings[2].direction"];
    // The preview reports every problem activation would refuse, before any field was read by
    // "refresh fields": it checks the config against the apps' schemas as they are now. Without
    // a body it previews the stored config, with one the config sent.
    let previewed = c.post("/connections/c1/preview", None).await.expect(422);
    assert_eq!(previewed.problem_fields(), expected, "{}", previewed.text);
    let stored = c.get("/connections/c1").await.json();
    assert_eq!(stored["schemas_loaded"], false, "the preview stores nothing");
    let sent = c.post("/connections/c1/preview", Some(json!({"config": stored["config"]}))).await.expect(422);
    assert_eq!(sent.problem_fields(), expected, "{}", sent.text);
    let refused = c.post("/connections/c1/activate", None).await.expect(422);
    assert_eq!(refused.problem_fields(), expected, "{}", refused.text);
    assert_eq!(c.get("/connections/c1/status").await.json()["lifecycle"], "draft");
    // The same problems show on the connection and its fields now that the schemas are known,
    // and a PATCH that keeps them is refused with every one.
    let conn = c.get("/connections/c1").await.json();
    assert_eq!(conn["schemas_loaded"], true);
    assert_eq!(conn["problems"].as_array().unwrap().len(), 3);
    assert_eq!(c.get("/connections/c1/fields").await.json()["problems"], conn["problems"]);
    let patch = c
        .send(Method::PATCH, "/connections/c1", Some(json!({"version": conn["version"], "config": conn["config"]})))
        .await;
    assert_eq!(patch.expect(422).problem_fields().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_with_schemas_and_the_bearer_scheme() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    let doc = c.raw(Method::GET, "/openapi.json", Auth::None, None).await.expect(200).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"],
        json!({
            "type": "http", "scheme": "bearer", "description": "The deployment's admin token (a secret generated at deploy)."
        })
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')), "{method} {path}: no success");
            // Every `{name}` of the path is a declared path parameter.
            for name in path.split('{').skip(1).map(|p| p.split('}').next().unwrap()) {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(declared, "{method} {path}: path parameter {name} is not declared");
            }
            let protected = PROTECTED.contains(&(method.to_uppercase().as_str(), path.as_str()));
            if protected {
                assert_eq!(op["security"], json!([{"admin_token": []}]), "{method} {path}");
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            } else {
                assert!(op.get("security").is_none(), "{method} {path} is public");
            }
            // Every error answer is described, JSON ones with the error schema.
            for (code, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
                assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {code}");
            }
            for (code, response) in responses.iter().filter(|(s, _)| s.starts_with('2')) {
                if code != "204" {
                    assert!(response.get("content").is_some(), "{method} {path} {code} has no schema");
                }
            }
            if matches!(method.as_str(), "put" | "patch") || (method == "post" && path == "/connections") {
                assert!(op["requestBody"]["content"]["application/json"]["schema"].is_object(), "{method} {path}");
                assert_eq!(op["requestBody"]["required"], true, "{method} {path}");
            }
        }
    }
    let expected: BTreeSet<(String, String)> =
        PROTECTED.iter().chain(PUBLIC).map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected);
    // The schemas the bodies name are all defined (no dangling $ref).
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    for name in [
        "ConnectionConfig",
        "FieldMapping",
        "StatusView",
        "Status",
        "Preview",
        "ContactView",
        "CredentialsUpdate",
        "ErrorBody",
        "FieldProblem",
    ] {
        assert!(schemas.contains_key(name), "schema {name} is missing");
    }
    // Secrets are write-only in the credentials body.
    assert_eq!(schemas["CredentialsUpdate"]["properties"]["mailerlite_api_key"]["writeOnly"], true);
}

/// A HubSpot webhook request with the given signature and timestamp headers (absent when `None`).
async fn hubspot_webhook(c: &Client, body: &[u8], signature: Option<&str>, timestamp: Option<&str>) -> Answer {
    let mut req = c.http.post(format!("{}/webhooks/hubspot", c.base)).header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("x-hubspot-signature-v3", s);
    }
    if let Some(t) = timestamp {
        req = req.header("x-hubspot-request-timestamp", t);
    }
    let resp = req.body(body.to_vec()).send().await.expect("webhook");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Answer { status, headers, text: resp.text().await.expect("body") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_webhook_without_a_usable_signature_is_401_before_anything_else() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    let portal = h.hubspot.config().portal_id;
    let routed = json!([{"portalId": portal, "occurredAt": 1, "subscriptionType": "contact.creation", "objectId": 1}]);
    let unrouted = json!([{"portalId": 1, "occurredAt": 1, "subscriptionType": "contact.creation", "objectId": 1}]);
    let id = h.connect("c1", hmsync_core::ConnectionConfig::new("Webhooks")).await;
    h.store.add_route(portal, &id).await.unwrap();
    let now = now_ms().to_string();
    let stale = (now_ms() - 6 * 60 * 1000).to_string();
    // No signature, an empty one, no or a stale timestamp: 401 whatever the body (an empty
    // array, a portal without a connection, not JSON at all), so nothing is revealed.
    for body in [json!([]).to_string(), routed.to_string(), unrouted.to_string(), "not json".to_string()] {
        for (what, signature, timestamp) in [
            ("no signature", None, Some(now.as_str())),
            ("an empty signature", Some(""), Some(now.as_str())),
            ("a blank signature", Some("  "), Some(now.as_str())),
            ("no timestamp", Some("c2lnbmF0dXJl"), None),
            ("a stale timestamp", Some("c2lnbmF0dXJl"), Some(stale.as_str())),
        ] {
            let a = hubspot_webhook(&c, body.as_bytes(), signature, timestamp).await;
            assert_eq!(a.status, 401, "{what}, body {body}: {}", a.text);
            assert!(a.json()["error"].as_str().unwrap().contains("signature refused"), "{}", a.text);
        }
    }
    // Signed (not yet verified): an empty array or not an array is 400; a portal without a
    // connection 401 like a signature no connection of the portal verifies (the answer does not
    // tell which portals are connected).
    let signed = |body: Value| {
        let (c, now) = (c.clone(), now.clone());
        async move { hubspot_webhook(&c, body.to_string().as_bytes(), Some("c2ln"), Some(&now)).await }
    };
    let empty = signed(json!([])).await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    assert!(empty.json()["error"].as_str().unwrap().contains("no events"), "{}", empty.text);
    assert_eq!(signed(json!({"portalId": portal})).await.status, 400);
    assert_eq!(signed(unrouted).await.status, 401);
    assert_eq!(signed(routed).await.status, 401);
    // Over each receiver's limit: 413 with the JSON error body (HubSpot 1 MiB; MailerLite 6 MiB,
    // Lambda's synchronous payload limit, since a batch's size is not documented).
    let limits = [
        ("/webhooks/hubspot".to_string(), hmsync_engine::webhook::MAX_BODY_BYTES),
        (format!("/webhooks/mailerlite/{id}"), hmsync_engine::webhook::MAILERLITE_MAX_BODY_BYTES),
    ];
    for (url, limit) in limits {
        let a = c.raw(Method::POST, &url, Auth::None, Some(("application/json", vec![b'['; limit + 1]))).await;
        assert_eq!(a.status, 413, "{url}: {}", a.text);
        assert!(a.json()["error"].as_str().unwrap().contains("larger than"), "{url}: {}", a.text);
    }
    let over_one_mib = vec![b'['; hmsync_api::MAX_BODY_BYTES + 1];
    let ml = format!("/webhooks/mailerlite/{id}");
    let a = c.raw(Method::POST, &ml, Auth::None, Some(("application/json", over_one_mib))).await;
    assert_eq!(a.status, 401, "a MailerLite body over 1 MiB is read (and refused here for its missing signature)");
    // Nothing was queued.
    assert!(h.queue.receive(10, std::time::Duration::from_millis(100)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_bodies_take_null_as_no_body_and_every_body_is_an_object() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    h.mailerlite.seed(&SeedSpec { count: 1, ..Default::default() }).unwrap();
    connect(&c, &h, "c1", "Bodies").await;
    let raw = |method: Method, url: &'static str, body: &'static str| {
        let c = c.clone();
        async move { c.raw(method, url, Auth::Admin, Some(("application/json", body.as_bytes().to_vec()))).await }
    };
    // `null` is no body: retry everything, preview the stored config.
    assert_eq!(raw(Method::POST, "/connections/c1/errors/retry", "null").await.expect(202).json()["queued"], 0);
    let preview = raw(Method::POST, "/connections/c1/preview", " null ").await.expect(200).json();
    assert_eq!(preview["sampled_mailerlite"], 1, "{preview}");
    // Arrays are not objects, at the top or inside (serde would read a struct from its fields in order).
    for (url, body, field) in [
        ("/connections/c1/preview", "[null, null]", "(body)"),
        ("/connections/c1/errors/retry", "[]", "(body)"),
        ("/connections/c1/errors/retry", "[null]", "(body)"),
        ("/connections", r#"[null, {"name": "x"}]"#, "(body)"),
        ("/connections", r#"{"config": ["x"]}"#, "config"),
        ("/connections", r#"{"config": {"name": "x", "safety_valve": []}}"#, "config.safety_valve"),
        ("/connections", r#"{"config": {"name": "x", "mappings": [["a", "b"]]}}"#, "config.mappings[0]"),
    ] {
        let a = raw(Method::POST, url, body).await;
        assert_eq!(a.status, 422, "{url} {body}: {}", a.text);
        assert_eq!(a.problem_fields(), [field], "{url} {body}");
    }
    let put =
        c.raw(Method::PUT, "/connections/c1/credentials", Auth::Admin, Some(("application/json", b"[]".to_vec())));
    assert_eq!(put.await.expect(422).problem_fields(), ["(body)"]);
    // White space is not JSON (no body is no bytes at all).
    let blank = raw(Method::POST, "/connections/c1/errors/retry", "\n").await.expect(400);
    assert!(blank.json()["error"].as_str().unwrap().contains("not valid JSON"), "{}", blank.text);
    // A tag is a variant's name, not its index; a whole float is an integer.
    let tag = raw(Method::POST, "/connections", r#"{"config": {"name": "x", "mailerlite_rule": {"type": 0}}}"#).await;
    assert_eq!(tag.expect(422).problem_fields(), ["config.mailerlite_rule.type"]);
    let whole = raw(Method::POST, "/connections/c1/preview", r#"{"limit": 10.0, "samples": 0.0}"#).await.expect(200);
    assert_eq!(whole.json()["samples"], json!([]));
    // A version no connection can have is a conflict, not a storage failure.
    for version in [i64::MAX as u64, u64::MAX] {
        let body = json!({"version": version, "config": {"name": "Bodies"}});
        let a = c.send(Method::PATCH, "/connections/c1", Some(body)).await.expect(409);
        assert!(a.json()["error"].as_str().unwrap().contains("it is at version 1"), "{}", a.text);
    }
    // A group or segment MailerLite does not have is a problem of the previewed config.
    let missing = json!({"config": {"name": "x", "mailerlite_rule": {"type": "segments", "segment_ids": ["404"]}}});
    let a = c.post("/connections/c1/preview", Some(missing)).await.expect(422);
    assert_eq!(a.problem_fields(), ["config.mailerlite_rule.segment_ids"]);
    assert!(
        a.json()["problems"][0]["message"].as_str().unwrap().contains("MailerLite has no segment 404"),
        "{}",
        a.text
    );
    // Nothing was created or changed.
    assert_eq!(c.get("/connections").await.json()["connections"].as_array().unwrap().len(), 1);
    assert_eq!(c.get("/connections/c1").await.json()["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_are_only_asked_with_stored_credentials_and_after_the_body_is_checked() {
    captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    let hs = h.hubspot.config();
    c.post("/connections", Some(json!({"id": "bare", "config": sync_config("No credentials")}))).await.expect(201);
    // A bad preview body is 422 before anything else (no credentials are needed to say so).
    let bad = c.post("/connections/bare/preview", Some(json!({"limit": 0, "config": {"name": " "}}))).await;
    assert_eq!(bad.expect(422).problem_fields(), ["limit", "config.name"]);
    let arrays = c.raw(
        Method::POST,
        "/connections/bare/preview",
        Auth::Admin,
        Some(("application/json", b"[null, null]".to_vec())),
    );
    assert_eq!(arrays.await.expect(422).problem_fields(), ["(body)"]);
    // Without credentials nothing was refused: 409 naming what to store (not 424), for every
    // route that asks the apps.
    for url in ["/connections/bare/fields/refresh", "/connections/bare/preview", "/connections/bare/activate"] {
        let a = c.post(url, None).await.expect(409);
        let body = a.json();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("no HubSpot token or OAuth app; no MailerLite API key"), "{url}: {error}");
        assert!(body["action"].as_str().unwrap().contains("PUT /connections/{id}/credentials"), "{body}");
    }
    // Only MailerLite's key, then an OAuth app not installed yet: still 409, naming what is missing.
    let ml_key = json!({"mailerlite_api_key": h.mailerlite.config().token});
    c.send(Method::PUT, "/connections/bare/credentials", Some(ml_key)).await.expect(200);
    let a = c.post("/connections/bare/fields/refresh", None).await.expect(409);
    assert!(!a.json()["error"].as_str().unwrap().contains("MailerLite"), "{}", a.text);
    let oauth = json!({"hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret}});
    c.send(Method::PUT, "/connections/bare/credentials", Some(oauth)).await.expect(200);
    let a = c.post("/connections/bare/activate", None).await.expect(409);
    assert!(a.json()["error"].as_str().unwrap().ends_with("the HubSpot OAuth app is not installed yet"), "{}", a.text);
    assert_eq!(h.hubspot.stats().total_requests, 0, "HubSpot was never asked: {:?}", h.hubspot.stats().endpoints);
    assert_eq!(c.get("/connections/bare/status").await.json()["lifecycle"], "draft");
    // With working credentials the same routes go through.
    c.send(Method::PUT, "/connections/bare/credentials", Some(sandbox_credentials(&h))).await.expect(200);
    c.post("/connections/bare/fields/refresh", None).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_and_no_log_line_contains_a_secret() {
    let logs = captured_logs();
    let h = Harness::start(Options::default()).await;
    let c = Client::new(&h);
    let hs = h.hubspot.config();
    h.hubspot.seed(&SeedRequest { count: 8, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 8, start_index: 4, ..Default::default() }).unwrap();
    tracing::debug!("secrets scenario starts");
    // Every kind of credential passes through the API, wrong and right.
    c.post("/connections", Some(json!({"id": "c1", "config": sync_config("Secrets")}))).await.expect(201);
    c.send(
        Method::PUT,
        "/connections/c1/credentials",
        Some(json!({"hubspot": {"type": "token", "access_token": "pat-na1-wrong-secret-token"}, "mailerlite_api_key": "wrong-secret-ml-key"})),
    )
    .await
    .expect(422);
    c.send(
        Method::PUT,
        "/connections/c1/credentials",
        Some(json!({
            "hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret},
            "hubspot_app_id": hs.app_id,
            "mailerlite_api_key": h.mailerlite.config().token,
            "mailerlite_webhook_secret": ML_WEBHOOK_SECRET,
        })),
    )
    .await
    .expect(200);
    let (installed, _) = install(&c, "c1").await;
    installed.expect(200);
    let stored = h.engine.credentials("c1").await.unwrap();
    let Some(hmsync_engine::adapters::HubSpotAuth::OAuth { refresh_token, access_token, .. }) = stored.hubspot else {
        panic!("OAuth tokens stored")
    };
    let access_token = access_token.expect("access token");
    // The whole life of a connection.
    c.post("/connections/c1/fields/refresh", None).await.expect(200);
    c.post("/connections/c1/preview", None).await.expect(200);
    c.post("/connections/c1/activate", None).await.expect(202);
    h.settle().await;
    c.get("/connections/c1/status").await.expect(200);
    c.get("/connections/c1/errors").await.expect(200);
    c.get(&format!("/connections/c1/contacts/{}", person(5).email)).await.expect(200);
    c.get("/connections/c1").await.expect(200);
    c.get("/connections/c1/credentials").await.expect(200);
    c.get("/connections").await.expect(200);
    c.post("/connections/c1/sync-now", None).await.expect(202);
    h.settle().await;
    c.get("/connections/c1/fields").await.expect(200);
    c.raw(Method::GET, "/status", Auth::None, None).await.expect(200);
    c.raw(Method::GET, "/connections", Auth::Bearer("test-admin-token-guess"), None).await.expect(401);
    tracing::debug!("secrets scenario ends");

    let secrets = [
        ADMIN_TOKEN,
        "test-admin-token-guess",
        hs.token.as_str(),
        hs.client_secret.as_str(),
        refresh_token.as_str(),
        access_token.as_str(),
        &h.mailerlite.config().token,
        ML_WEBHOOK_SECRET,
        "pat-na1-wrong-secret-token",
        "wrong-secret-ml-key",
    ];
    let answers = c.answers.lock().unwrap().clone();
    assert!(answers.len() >= 15, "{} answers", answers.len());
    for answer in &answers {
        for secret in secrets {
            assert!(!answer.contains(secret), "an answer contains the secret {secret:?}:\n{answer}");
        }
    }
    let text = String::from_utf8(logs.lock().unwrap().clone()).expect("UTF-8 logs");
    // The capture saw this scenario at debug level (the API's spans, the engine, the clients).
    assert!(text.contains("secrets scenario ends"), "the log capture is not working");
    assert!(text.contains("credentials saved"), "the API's log lines are captured");
    assert!(text.contains("route=\"/connections/{id}/credentials\""), "request spans are captured");
    assert!(text.contains("HubSpot OAuth install finished"));
    for line in text.lines() {
        for secret in secrets {
            assert!(!line.contains(secret), "a log line contains the secret {secret:?}:\n{line}");
        }
    }
}
