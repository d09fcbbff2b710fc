//! `GET /connections/{id}/doctor` over real HTTP, against the harness's server and both
//! simulators: a clean setup answers with no error and no warning, each problem injected into
//! an app (a rotated token or key, a missing scope, a MailerLite webhook disabled, deleted,
//! moved or stripped of events, no HubSpot delivery, no client secret, a mapped property
//! deleted, an option removed, a used-up daily limit, a public URL that does not answer) is a
//! finding that says what it disables and what to do, and the doctor only reads: the
//! simulators' request stats show nothing but GETs (and HubSpot's token introspection, a POST
//! that reads).

use std::collections::BTreeMap;

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::doctor::{Check, DoctorOptions, Severity};
use hmsync_sandbox::common::stats::StatsSnapshot;
use hmsync_sandbox::hubspot::{ALL_SCOPES, HubSpotConfig, ObjectType, SeedRequest};
use hmsync_sandbox::mailerlite::SeedSpec;
use reqwest::Method;
use serde_json::{Map, Value, json};

const CONNECTION: &str = "c1";

/// HubSpot's token introspection: a POST by HubSpot's design, and a read.
const TOKEN_INFO: &str = "POST /oauth/v2/private-apps/get/access-token-info";

fn config(mappings: Vec<FieldMapping>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("doctor");
    c.mappings = mappings;
    c
}

fn plain() -> ConnectionConfig {
    config(vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")])
}

/// 20 people per side and a connection set up through the config API (not activated).
async fn connected(options: Options, config: ConnectionConfig) -> Harness {
    let h = Harness::start(options).await;
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, ..Default::default() }).unwrap();
    h.connect(CONNECTION, config).await;
    h
}

/// Set up and activated, with one HubSpot edit delivered to our receiver.
async fn active(config: ConnectionConfig) -> Harness {
    let h = connected(Options::default(), config).await;
    h.activate(CONNECTION).await;
    let id = h.hubspot.contact_by_email("person1@example.com").unwrap()["id"].as_str().unwrap().parse().unwrap();
    let props: Map<String, Value> = [("city".to_string(), json!("Doctorville"))].into_iter().collect();
    h.hubspot.user_edit_contact(id, &props, 7).unwrap();
    h.settle().await;
    h
}

/// `GET /connections/{id}/doctor` through the config API.
async fn doctor(h: &Harness) -> Value {
    let (status, body) = h.config_api(Method::GET, &format!("/connections/{CONNECTION}/doctor"), Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn check_name(check: Check) -> String {
    serde_json::to_value(check).unwrap().as_str().unwrap().to_string()
}

fn severity_name(severity: Severity) -> String {
    serde_json::to_value(severity).unwrap().as_str().unwrap().to_string()
}

/// The findings of one check.
fn findings(report: &Value, check: Check) -> Vec<Value> {
    report["findings"].as_array().unwrap().iter().filter(|f| f["check"] == json!(check_name(check))).cloned().collect()
}

/// The one finding of `check` with `severity` whose message contains `text`; it names what it
/// affects (unless all is well) and what to do.
fn finding(report: &Value, check: Check, severity: Severity, text: &str) -> Value {
    let found: Vec<Value> = findings(report, check)
        .into_iter()
        .filter(|f| f["severity"] == json!(severity_name(severity)) && f["message"].as_str().unwrap().contains(text))
        .collect();
    assert_eq!(found.len(), 1, "one {check:?} {severity:?} finding with {text:?} in {report:#}");
    let f = found.into_iter().next().unwrap();
    if severity == Severity::Error || severity == Severity::Warning {
        assert!(f["feature"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
        assert!(f["action"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
    }
    f
}

/// Requests per endpoint made between two snapshots.
fn made(before: &StatsSnapshot, after: &StatsSnapshot) -> BTreeMap<String, u64> {
    after
        .endpoints
        .iter()
        .map(|(k, v)| (k.clone(), v.requests - before.endpoints.get(k).map_or(0, |b| b.requests)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Runs the doctor through the config API and checks that it only read both apps.
async fn doctor_reading_only(h: &Harness) -> Value {
    let (hs, ml) = (h.hubspot.stats(), h.mailerlite.stats());
    let report = doctor(h).await;
    let (hs_made, ml_made) = (made(&hs, &h.hubspot.stats()), made(&ml, &h.mailerlite.stats()));
    for key in hs_made.keys().chain(ml_made.keys()) {
        assert!(key.starts_with("GET ") || key == TOKEN_INFO, "the doctor wrote: {key} ({hs_made:?}, {ml_made:?})");
    }
    assert!(!hs_made.is_empty() && !ml_made.is_empty(), "the doctor asked both apps: {hs_made:?} {ml_made:?}");
    report
}

fn ml_webhooks_url(h: &Harness) -> String {
    format!("{}/webhooks", h.mailerlite.base_url())
}

/// The MailerLite webhooks, as the account's owner sees them through the API.
async fn ml_webhooks(h: &Harness) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .get(ml_webhooks_url(h))
        .bearer_auth(h.mailerlite.config().token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"].as_array().unwrap().clone()
}

/// The connection's webhook for subscriber changes (the one not batched).
async fn subscriber_hook(h: &Harness) -> Value {
    ml_webhooks(h).await.into_iter().find(|w| w["batchable"] == json!(false)).expect("subscriber-changes webhook")
}

/// What the account's owner does to a webhook in MailerLite.
async fn ml_owner(h: &Harness, method: Method, id: &str, body: Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}/{id}", ml_webhooks_url(h)))
        .bearer_auth(h.mailerlite.config().token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_setup_has_no_error_or_warning_and_the_doctor_only_reads() {
    let h = active(plain()).await;
    let report = doctor_reading_only(&h).await;
    assert_eq!(report["ok"], json!(true), "{report:#}");
    assert_eq!(
        (report["counts"]["error"].as_u64(), report["counts"]["warning"].as_u64()),
        (Some(0), Some(0)),
        "{report:#}"
    );
    let portal = h.hubspot.config().portal_id;
    finding(&report, Check::HubspotToken, Severity::Ok, &format!("portal {portal}"));
    finding(&report, Check::HubspotScopes, Severity::Ok, "has all");
    finding(&report, Check::MailerliteKey, Severity::Ok, "20 subscribers");
    finding(&report, Check::MailerliteWebhooks, Severity::Ok, "subscriber changes is at");
    finding(&report, Check::MailerliteWebhooks, Severity::Ok, "opens, clicks, deletions is at");
    finding(&report, Check::HubspotWebhooks, Severity::Ok, "last accepted a signed HubSpot delivery");
    finding(&report, Check::Fields, Severity::Ok, "All 2 mapped fields");
    finding(&report, Check::RateLimits, Severity::Ok, "HubSpot:");
    finding(&report, Check::RateLimits, Severity::Ok, "MailerLite:");
    finding(&report, Check::PublicUrl, Severity::Ok, "answered 200");
    // The one thing the API cannot tell is said, with what to check by hand.
    let subscriptions = finding(&report, Check::HubspotWebhooks, Severity::Unknown, "cannot read");
    assert!(subscriptions["action"].as_str().unwrap().contains("contact.propertyChange for city, email, firstname"));
    // Doctoring twice changes nothing either.
    assert_eq!(doctor_reading_only(&h).await["counts"], report["counts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_hubspot_token_is_an_error_that_says_to_save_a_new_one() {
    let h = active(plain()).await;
    h.hubspot.rotate_token("hs-rotated");
    let report = doctor_reading_only(&h).await;
    assert_eq!(report["ok"], json!(false));
    finding(&report, Check::HubspotToken, Severity::Error, "refused the credentials");
    finding(&report, Check::HubspotScopes, Severity::Unknown, "not checked");
    finding(&report, Check::Fields, Severity::Unknown, "not compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_names_the_feature_it_disables() {
    let scopes: Vec<String> = ALL_SCOPES
        .iter()
        .filter(|s| !matches!(**s, "crm.schemas.contacts.write" | "communication_preferences.read_write"))
        .map(|s| s.to_string())
        .collect();
    let options =
        Options { hubspot: HubSpotConfig { static_token_scopes: scopes, ..Default::default() }, ..Default::default() };
    let mut c = plain();
    c.engagement.unsubscribe_in_hubspot = true;
    let h = connected(options, c).await;
    let report = doctor_reading_only(&h).await;
    let schemas = finding(&report, Check::HubspotScopes, Severity::Error, "crm.schemas.contacts.write");
    assert!(schemas["feature"].as_str().unwrap().contains("engagement properties"), "{schemas}");
    let opt_out = finding(&report, Check::HubspotScopes, Severity::Warning, "communication_preferences.read_write");
    assert!(opt_out["feature"].as_str().unwrap().contains("opt-outs"), "{opt_out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_mailerlite_key_is_an_error() {
    let h = active(plain()).await;
    h.mailerlite.set_token("ml-rotated");
    let report = doctor(&h).await;
    finding(&report, Check::MailerliteKey, Severity::Error, "refused the credentials");
    finding(&report, Check::MailerliteWebhooks, Severity::Unknown, "Not checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_mailerlite_webhook_is_an_error() {
    let h = active(plain()).await;
    let hook = subscriber_hook(&h).await;
    ml_owner(&h, Method::PUT, hook["id"].as_str().unwrap(), json!({"enabled": false})).await;
    let report = doctor_reading_only(&h).await;
    let f = finding(&report, Check::MailerliteWebhooks, Severity::Error, "disabled the webhook for subscriber changes");
    assert!(f["action"].as_str().unwrap().contains("sync now"), "{f}");
    // Read-only: the doctor left it disabled.
    assert_eq!(subscriber_hook(&h).await["enabled"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_mailerlite_webhook_is_an_error() {
    let h = active(plain()).await;
    let hook = subscriber_hook(&h).await;
    ml_owner(&h, Method::DELETE, hook["id"].as_str().unwrap(), Value::Null).await;
    let report = doctor_reading_only(&h).await;
    finding(&report, Check::MailerliteWebhooks, Severity::Error, "subscriber changes is missing");
    finding(&report, Check::MailerliteWebhooks, Severity::Ok, "opens, clicks, deletions is at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailerlite_webhook_pointing_elsewhere_is_an_error() {
    let h = active(plain()).await;
    let hook = subscriber_hook(&h).await;
    ml_owner(&h, Method::PUT, hook["id"].as_str().unwrap(), json!({"url": "https://old.example.com/hook"})).await;
    let report = doctor_reading_only(&h).await;
    finding(&report, Check::MailerliteWebhooks, Severity::Error, "points at https://old.example.com/hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailerlite_webhook_without_an_event_is_a_warning() {
    let h = active(plain()).await;
    let hook = subscriber_hook(&h).await;
    let events = json!(["subscriber.created", "subscriber.updated"]);
    ml_owner(&h, Method::PUT, hook["id"].as_str().unwrap(), json!({"events": events})).await;
    let report = doctor_reading_only(&h).await;
    finding(&report, Check::MailerliteWebhooks, Severity::Warning, "lacks the events subscriber.unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hubspot_delivery_is_a_warning_and_the_subscriptions_to_check_are_listed() {
    let h = connected(Options::default(), plain()).await;
    // The HubSpot app has no webhook target: nothing reaches our receiver.
    h.hubspot.set_webhook_settings(None);
    h.activate(CONNECTION).await;
    let report = doctor_reading_only(&h).await;
    let f = finding(&report, Check::HubspotWebhooks, Severity::Warning, "has not accepted a signed HubSpot delivery");
    assert!(f["action"].as_str().unwrap().contains(&format!("{}/webhooks/hubspot", h.api_url)), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hubspot_client_secret_is_an_error() {
    // Set up without the app's client secret (a PUT cannot remove one once saved).
    let h = Harness::start(Options::default()).await;
    let created = h.config_api(Method::POST, "/connections", json!({"id": CONNECTION, "config": plain()})).await;
    assert_eq!(created.0, 201, "{}", created.1);
    let hs = h.hubspot.config();
    let credentials = json!({
        "hubspot": {"type": "token", "access_token": hs.token},
        "hubspot_app_id": hs.app_id,
        "mailerlite_api_key": h.mailerlite.config().token,
    });
    let (status, body) =
        h.config_api(Method::PUT, &format!("/connections/{CONNECTION}/credentials"), credentials).await;
    assert_eq!(status, 200, "{body}");
    let report = doctor_reading_only(&h).await;
    finding(&report, Check::HubspotWebhooks, Severity::Error, "No HubSpot client secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_property_deleted_in_hubspot_is_an_error() {
    let h = connected(Options::default(), plain()).await;
    h.hubspot.db().schemas.get_mut(&ObjectType::Contacts).unwrap().properties.remove("city");
    let report = doctor_reading_only(&h).await;
    let f = finding(&report, Check::Fields, Severity::Error, "city");
    assert!(f["feature"].as_str().unwrap().contains("city ↔ city"), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_option_removed_in_hubspot_is_a_warning() {
    let h = active(config(vec![FieldMapping::new("industry_segment", "industry")])).await;
    {
        let mut db = h.hubspot.db();
        let schema = db.schemas.get_mut(&ObjectType::Contacts).unwrap();
        schema.properties.get_mut("industry_segment").unwrap().options.retain(|o| o.value != "retail");
    }
    let report = doctor_reading_only(&h).await;
    finding(&report, Check::Fields, Severity::Warning, "were removed since hmsync last read the fields: retail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_used_up_daily_limit_is_a_warning() {
    let h = active(plain()).await;
    // How many HubSpot requests the doctor makes (the same every time).
    let before = h.hubspot.stats();
    doctor(&h).await;
    let per_run: u64 = made(&before, &h.hubspot.stats()).values().sum();
    // Another app of the portal used the day's calls but 5 more than the doctor needs.
    let mut limits = h.hubspot.rate_limits();
    limits.daily_limit = 200;
    h.hubspot.set_rate_limits(limits);
    let other = reqwest::Client::new();
    let mut used = 0;
    while used < 200 - per_run - 5 {
        let url = format!("{}/crm/v3/objects/contacts?limit=1", h.hubspot.base_url());
        let answer = other.get(url).bearer_auth(&h.hubspot.config().token).send().await.unwrap();
        match answer.status().as_u16() {
            200 => used += 1,
            // The burst limit: wait for its (scaled) window.
            429 => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            other => panic!("answered {other}"),
        }
    }
    let report = doctor(&h).await;
    let f = finding(&report, Check::RateLimits, Severity::Warning, " of 200 left today");
    assert!(f["feature"].as_str().unwrap().contains("daily limit"), "{f}");
    let left: u64 =
        f["message"].as_str().unwrap().split("; ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(left <= 6, "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_that_does_not_answer_is_an_error() {
    let h = active(plain()).await;
    // A port nobody listens on: what `hmsync doctor --public-url` checks.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let options = DoctorOptions {
        public_url: Some(format!("http://{closed}")),
        hubspot_api_url: h.hubspot.base_url().to_string(),
        mailerlite_api_url: h.mailerlite.base_url().to_string(),
    };
    let report = serde_json::to_value(h.engine.doctor(CONNECTION, &options).await.unwrap()).unwrap();
    finding(&report, Check::PublicUrl, Severity::Error, "refused the connection");
    // The MailerLite webhooks are at the URL the connection was activated through, not there.
    finding(&report, Check::MailerliteWebhooks, Severity::Error, "subscriber changes points at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_of_an_unknown_connection_is_404() {
    let h = Harness::start(Options::default()).await;
    let (status, body) = h.config_api(Method::GET, "/connections/nope/doctor", Value::Null).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_portal_is_an_error() {
    let h = active(plain()).await;
    // The connection was set up with another portal than the token reaches now (the harness
    // has one simulated portal, so the portal recorded at setup is the one changed).
    let portal = h.hubspot.config().portal_id;
    h.engine.update_state(CONNECTION, |s| s.portal_id = Some(portal + 1)).await.unwrap();
    let report = doctor_reading_only(&h).await;
    let f = finding(&report, Check::HubspotToken, Severity::Error, &format!("reaches portal {portal}"));
    assert!(f["feature"].as_str().unwrap().contains("duplicates"), "{f}");
}
