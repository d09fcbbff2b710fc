//! One test per documented HubSpot behaviour of `docs/api-fidelity.md` (the "HubSpot" table
//! names each test): merges with new ids, whole-batch refusals, scopes of static tokens, the
//! portal's search limit, 477, route-level 404s and the rate-limit headers of each app kind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;

async fn sim(config: HubSpotConfig) -> HubSpotSim {
    HubSpotSim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(s: &HubSpotSim) -> Self {
        Self { base: s.base_url(), token: s.config().token, http: reqwest::Client::new() }
    }
    fn with_token(s: &HubSpotSim, token: &str) -> Self {
        Self { token: token.to_string(), ..Self::new(s) }
    }
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, http::HeaderMap, Value) {
        let mut req =
            self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// An OAuth access token of the sandbox's app, granted `scopes`.
async fn oauth_token(s: &HubSpotSim, scopes: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let c = s.config();
    let resp = http
        .get(format!(
            "{}/oauth/authorize?client_id={}&scope={scopes}&redirect_uri=http://localhost/cb",
            s.base_url(),
            c.client_id
        ))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("redirect_uri", "http://localhost/cb"),
        ("code", code.as_str()),
    ];
    let tokens: Value =
        http.post(format!("{}/oauth/v3/token", s.base_url())).form(&form).send().await.unwrap().json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_string()
}

/// A webhook receiver that keeps every event it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let r = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let r = r.clone();
            async move {
                let events: Vec<Value> = serde_json::from_str(&body).unwrap();
                r.lock().unwrap().extend(events);
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn props(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

#[tokio::test]
async fn a_merge_creates_a_new_record_that_both_old_ids_read_as_with_the_primarys_values() {
    let (url, received) = receiver().await;
    let s = sim(HubSpotConfig::default()).await;
    s.set_webhook_settings(Some(WebhookSettings::for_sync(url)));
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids;
    s.user_edit_contact(ids[0], &props(&[("city", "Oslo"), ("jobtitle", "")]), 1).unwrap();
    // The secondary changes last: with the new merges, the primary's value still wins.
    s.user_edit_contact(ids[1], &props(&[("city", "Riga"), ("jobtitle", "Buyer")]), 1).unwrap();
    s.dispatcher().wait_idle().await;
    received.lock().unwrap().clear();
    let (status, _, merged) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts/merge",
            Some(json!({"primaryObjectId": ids[0].to_string(), "objectIdToMerge": ids[1].to_string()})),
        )
        .await;
    assert_eq!(status, 200);
    let new_id = merged["id"].as_str().unwrap().to_string();
    assert!(new_id != ids[0].to_string() && new_id != ids[1].to_string(), "a new record id: {new_id}");
    assert_eq!(merged["properties"]["email"], "person0@example.com", "the primary's email");
    assert_eq!(merged["properties"]["city"], "Oslo", "the primary's value wins");
    assert_eq!(merged["properties"]["jobtitle"], "Buyer", "the secondary fills the primary's gaps");
    assert_eq!(merged["properties"]["hs_merged_object_ids"], format!("{};{}", ids[0], ids[1]));
    for old in &ids {
        let (status, _, got) = api.call("GET", &format!("/crm/objects/2026-03/contacts/{old}"), None).await;
        assert_eq!((status, got["id"].as_str()), (200, Some(new_id.as_str())), "reading {old}");
    }
    let inputs = json!({"inputs":[{"id": ids[0].to_string()},{"id": ids[1].to_string()}],"properties":["email"]});
    let (status, _, read) = api.call("POST", "/crm/v3/objects/contacts/batch/read", Some(inputs)).await;
    assert_eq!(status, 200);
    let results = read["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["id"] == new_id.as_str()) && !results.is_empty(), "{read}");
    s.dispatcher().wait_idle().await;
    let events = received.lock().unwrap().clone();
    let merge = events.iter().find(|e| e["subscriptionType"] == "contact.merge").expect("a merge event");
    assert_eq!(merge["primaryObjectId"], ids[0]);
    assert_eq!(merge["mergedObjectIds"], json!([ids[1]]));
    assert_eq!(merge["newObjectId"].to_string(), new_id);
}

#[tokio::test]
async fn batch_update_fails_as_a_whole_on_one_invalid_value_traced_or_not() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap().ids;
    for traced in [false, true] {
        let mut inputs: Vec<Value> = vec![
            json!({"id": ids[0].to_string(), "properties": {"city": "Tartu"}}),
            json!({"id": ids[1].to_string(), "properties": {"city": "Tartu", "industry_segment": "Aerospace"}}),
            json!({"id": ids[2].to_string(), "properties": {"employees": "many"}}),
        ];
        if traced {
            for (i, input) in inputs.iter_mut().enumerate() {
                input["objectWriteTraceId"] = json!(i.to_string());
            }
        }
        let (status, _, body) =
            api.call("POST", "/crm/v3/objects/contacts/batch/update", Some(json!({"inputs": inputs}))).await;
        assert_eq!(status, 400, "traced: {traced}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
        let codes: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["INVALID_OPTION", "INVALID_INTEGER"], "every invalid value of the batch is listed");
        assert!(body["message"].as_str().unwrap().contains("Aerospace was not one of the allowed options"));
        assert_ne!(s.contact(ids[0]).unwrap()["properties"]["city"], "Tartu", "nothing was applied");
    }
}

#[tokio::test]
async fn batch_upsert_fails_as_a_whole_on_one_invalid_value() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap();
    let inputs = json!([
        {"id":"person0@example.com","idProperty":"email","properties":{"city":"Tartu"},"objectWriteTraceId":"0"},
        {"id":"new@example.com","idProperty":"email","properties":{"industry_segment":"Aerospace"},"objectWriteTraceId":"1"}
    ]);
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/upsert", Some(json!({"inputs": inputs}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "INVALID_OPTION");
    assert!(s.contact_by_email("new@example.com").is_none());
    assert_ne!(s.contact_by_email("person0@example.com").unwrap()["properties"]["city"], "Tartu");
}

#[tokio::test]
async fn batch_create_answers_per_input_when_traced() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let inputs = json!([
        {"properties":{"email":"a@example.com"},"objectWriteTraceId":"a"},
        {"properties":{"email":"b@example.com","industry_segment":"Aerospace"},"objectWriteTraceId":"b"}
    ]);
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/create", Some(json!({"inputs": inputs}))).await;
    assert_eq!(status, 207);
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"][0], "b");
    assert!(s.contact_by_email("a@example.com").is_some());
}

#[tokio::test]
async fn batch_update_answers_missing_ids_with_a_207_and_applies_the_rest() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0];
    let inputs = json!([{"id": id.to_string(), "properties": {"city": "Tartu"}}, {"id": "999999", "properties": {}}]);
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/update", Some(json!({"inputs": inputs}))).await;
    assert_eq!(status, 207);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"][0], "999999");
    assert_eq!(s.contact(id).unwrap()["properties"]["city"], "Tartu");
}

#[tokio::test]
async fn static_tokens_are_held_to_their_apps_scopes() {
    let scopes = ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"];
    let s = sim(HubSpotConfig {
        static_token_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let api = Api::new(&s);
    s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap();
    let (status, _, _) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, 200);
    let (status, _, body) =
        api.call("POST", "/communication-preferences/2026-03/statuses/person0@example.com/unsubscribe-all", None).await;
    assert_eq!((status, body["category"].as_str()), (403, Some("MISSING_SCOPES")));
    let required = &body["errors"][0]["context"]["requiredGranularScopes"];
    assert!(required.as_array().unwrap().iter().any(|s| s == "communication_preferences.read_write"), "{body}");
    assert_eq!(s.contact_by_email("person0@example.com").unwrap()["properties"]["hs_email_optout"], Value::Null);
}

#[tokio::test]
async fn a_static_tokens_info_lists_the_scopes_it_is_held_to() {
    let scopes = ["oauth", "crm.objects.contacts.read", "crm.lists.read"];
    let s = sim(HubSpotConfig {
        static_token_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let api = Api::new(&s);
    let token = s.config().token;
    let (status, _, body) =
        api.call("POST", "/oauth/v2/private-apps/get/access-token-info", Some(json!({"tokenKey": token}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["scopes"], json!(scopes));
    assert_eq!((body["hubId"].as_u64(), body["appId"].as_u64()), (Some(s.config().portal_id), Some(s.config().app_id)));
}

#[tokio::test]
async fn a_rotated_static_token_is_refused_at_once() {
    let s = sim(HubSpotConfig::default()).await;
    let old = Api::new(&s);
    assert_eq!(old.call("GET", "/crm/v3/objects/contacts", None).await.0, 200);
    s.rotate_token("hs-rotated-token");
    let (status, _, body) = old.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!((status, body["category"].as_str()), (401, Some("INVALID_AUTHENTICATION")), "{body}");
    assert_eq!(Api::with_token(&s, "hs-rotated-token").call("GET", "/crm/v3/objects/contacts", None).await.0, 200);
}

#[tokio::test]
async fn search_is_limited_per_portal_across_every_token() {
    let s = sim(HubSpotConfig::default()).await;
    let token = oauth_token(&s, "crm.objects.contacts.read").await;
    let (static_api, oauth_api) = (Api::new(&s), Api::with_token(&s, &token));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let api = if i % 2 == 0 { &static_api } else { &oauth_api };
        statuses.push(api.call("POST", "/crm/v3/objects/contacts/search", Some(json!({}))).await);
    }
    assert_eq!(statuses.iter().filter(|(s, ..)| *s == 200).count(), 5, "five per second for the portal");
    let (_, _, body) = statuses.iter().find(|(s, ..)| *s == 429).unwrap();
    assert_eq!(body["message"], "You have reached your secondly limit.");
}

#[tokio::test]
async fn a_search_body_over_3000_characters_is_refused() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let long: Vec<String> = (0..300).map(|i| format!("property_{i:04}")).collect();
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/search", Some(json!({"properties": long, "limit": 1}))).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
    let (status, _, _) =
        api.call("POST", "/crm/v3/objects/contacts/search", Some(json!({"properties": ["email"], "limit": 1}))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_portal_being_migrated_answers_477_with_a_long_retry_after() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    s.set_migration_in_progress(Some(Duration::from_secs(86_400)));
    let (status, headers, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, 477);
    assert_eq!(headers["retry-after"], "86400");
    assert!(body.get("retryAfterSeconds").is_none(), "the wait is in the header only");
    s.set_migration_in_progress(None);
    assert_eq!(api.call("GET", "/crm/v3/objects/contacts", None).await.0, 200);
}

#[tokio::test]
async fn an_unknown_route_is_a_404_without_context_id() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let (status, _, body) = api.call("POST", "/crm/v3/objects/contacts/batch/reed", Some(json!({"inputs":[]}))).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "resource not found");
    assert!(body.get("context").is_none(), "{body}");
    let (status, _, body) = api.call("GET", "/crm/v3/objects/contacts/424242", None).await;
    assert_eq!((status, body["context"]["id"][0].as_str()), (404, Some("424242")), "a missing record names itself");
}

#[tokio::test]
async fn rate_limit_headers_show_the_limit_of_the_apps_kind() {
    let s = sim(HubSpotConfig::default().tier(Tier::Professional)).await;
    let (_, headers, _) = Api::new(&s).call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
    assert_eq!(headers["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "625000");
    let token = oauth_token(&s, "crm.objects.contacts.read").await;
    let (_, headers, _) = Api::with_token(&s, &token).call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(headers["x-hubspot-ratelimit-max"], "110");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "109");
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none());
}

#[tokio::test]
async fn in_filters_compare_enumeration_values_exactly_and_strings_in_lowercase() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids;
    s.user_edit_contact(ids[0], &props(&[("industry_segment", "saas"), ("city", "Oslo")]), 1).unwrap();
    let total = |property: &str, value: &str| json!({"filterGroups":[{"filters":[{"propertyName": property, "operator":"IN", "values":[value]}]}]});
    let (_, _, exact) =
        api.call("POST", "/crm/v3/objects/contacts/search", Some(total("industry_segment", "saas"))).await;
    let (_, _, cased) =
        api.call("POST", "/crm/v3/objects/contacts/search", Some(total("industry_segment", "SAAS"))).await;
    let (_, _, text) = api.call("POST", "/crm/v3/objects/contacts/search", Some(total("city", "oslo"))).await;
    assert_eq!((exact["total"].as_u64(), cased["total"].as_u64(), text["total"].as_u64()), (Some(1), Some(0), Some(1)));
}
