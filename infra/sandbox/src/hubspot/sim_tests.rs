//! Router-level tests of the simulator over HTTP on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;
use crate::common::FaultSpec;

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

#[tokio::test]
async fn auth_errors_carry_the_recorded_body_and_a_correlation_id() {
    let s = sim(HubSpotConfig::default()).await;
    let mut api = Api::new(&s);
    api.token = "wrong".into();
    let (status, headers, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["message"].as_str().unwrap().starts_with("Authentication credentials not found."));
    assert_eq!(headers["x-hubspot-correlation-id"].to_str().unwrap(), body["correlationId"].as_str().unwrap());
    assert_eq!(s.stats().buckets.get("burst"), None, "an unauthenticated request is not counted");
}

#[tokio::test]
async fn both_spellings_serve_the_same_records_with_rate_limit_headers() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let (status, _, created) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties":{"email":"Ada@Example.com","firstname":"Ada"}})),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["properties"]["hs_object_id"], id.as_str());
    let (status, headers, got) = api.call("GET", &format!("/crm/objects/2026-03/contacts/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["properties"]["firstname"], "Ada");
    assert_eq!(got["properties"]["lastname"], Value::Null, "default properties come back as null when empty");
    assert_eq!(headers["x-hubspot-ratelimit-max"], "100");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "98");
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "250000");
    let (status, _, by_email) =
        api.call("GET", "/crm/v3/objects/contacts/ada@example.com?idProperty=email&properties=email,city", None).await;
    assert_eq!(status, 200);
    assert_eq!(by_email["id"], id.as_str());
    assert_eq!(by_email["properties"].as_object().unwrap().len(), 2);
    assert_eq!(s.endpoint_requests("GET /crm/v3/objects/contacts/{id}"), 2);
    assert_eq!(s.stats().buckets["burst"], 3);
    assert_eq!(s.stats().buckets["daily"], 3);
}

#[tokio::test]
async fn one_invalid_option_fails_the_whole_write() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let (status, _, body) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties":{"email":"x@example.com","city":"Oslo","industry_segment":"Retail"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "INVALID_OPTION");
    assert!(s.contact_by_email("x@example.com").is_none());
    let (status, _, body) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties":{"email":"y@example.com","hs_object_id":"5"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "READ_ONLY_VALUE");
}

#[tokio::test]
async fn batch_create_conflicts_fail_the_batch_unless_traced() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let existing = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0];
    let inputs = json!([{"properties":{"email":"new@example.com"}},{"properties":{"email":"PERSON0@example.com"}}]);
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/create", Some(json!({"inputs": inputs}))).await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], format!("Contact already exists. Existing ID: {existing}"));
    assert!(s.contact_by_email("new@example.com").is_none());
    let traced = json!([{"properties":{"email":"new@example.com"},"objectWriteTraceId":"a"},{"properties":{"email":"person0@example.com"},"objectWriteTraceId":"b"}]);
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/create", Some(json!({"inputs": traced}))).await;
    assert_eq!(status, 207);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"][0], "b");
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn merged_ids_resolve_on_get_and_patch_but_not_batch_update() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids;
    let (status, _, merged) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts/merge",
            Some(json!({"primaryObjectId": ids[0].to_string(), "objectIdToMerge": ids[1].to_string()})),
        )
        .await;
    assert_eq!(status, 200);
    let new_id = merged["id"].as_str().unwrap().to_string();
    assert_eq!(merged["properties"]["hs_merged_object_ids"], format!("{};{}", ids[0], ids[1]));
    assert_eq!(merged["properties"]["hs_additional_emails"], "person1@example.com");
    let (status, _, got) = api.call("GET", &format!("/crm/v3/objects/contacts/{}", ids[1]), None).await;
    assert_eq!((status, got["id"].as_str()), (200, Some(new_id.as_str())));
    let (status, _, _) = api
        .call("PATCH", &format!("/crm/v3/objects/contacts/{}", ids[1]), Some(json!({"properties":{"city":"Riga"}})))
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts/batch/update",
            Some(json!({"inputs":[{"id": ids[1].to_string(), "properties":{"city":"Oslo"}}]})),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["errors"][0]["context"]["ids"][0], ids[1].to_string());
    let (status, _, _) =
        api.call("POST", "/crm/v3/objects/contacts", Some(json!({"properties":{"email":"PERSON1@example.com"}}))).await;
    assert_eq!(status, 409, "additional emails stay unique");
}

#[tokio::test]
async fn search_pages_stop_at_ten_thousand_and_skip_the_burst_bucket() {
    let s = sim(HubSpotConfig { search_per_second: 1000, ..Default::default() }).await;
    let api = Api::new(&s);
    s.seed(&SeedRequest { count: 10_050, ..Default::default() }).unwrap();
    let q = |after: &str| json!({"filterGroups":[{"filters":[{"propertyName":"email","operator":"HAS_PROPERTY"}]}],"sorts":[{"propertyName":"hs_object_id","direction":"ASCENDING"}],"limit":200,"after":after,"properties":["email"]});
    let (status, headers, body) = api.call("POST", "/crm/v3/objects/contacts/search", Some(q("9800"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 10_050);
    assert_eq!(body["results"].as_array().unwrap().len(), 200);
    assert_eq!(body["paging"]["next"]["after"], "10000");
    assert!(headers.get("x-hubspot-ratelimit-remaining").is_none());
    let (status, _, _) = api.call("POST", "/crm/v3/objects/contacts/search", Some(q("10000"))).await;
    assert_eq!(status, 400);
    assert_eq!(s.stats().buckets.get("burst"), None);
    assert_eq!(s.stats().buckets["search"], 2, "a refused page is still a counted request");
}

#[tokio::test]
async fn search_has_its_own_secondly_bucket() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.call("POST", "/crm/v3/objects/contacts/search", Some(json!({}))).await);
    }
    assert_eq!(statuses.iter().filter(|(s, ..)| *s == 200).count(), 5);
    let (_, _, body) = statuses.iter().find(|(s, ..)| *s == 429).unwrap();
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert_eq!(body["category"], "RATE_LIMITS");
}

#[tokio::test]
async fn the_burst_window_refuses_and_the_refused_request_does_nothing() {
    let s = sim(HubSpotConfig { burst_limit: 2, ..Default::default() }).await;
    let api = Api::new(&s);
    for _ in 0..2 {
        api.call("GET", "/crm/v3/objects/contacts", None).await;
    }
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts", Some(json!({"properties":{"email":"z@example.com"}}))).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(s.contact_by_email("z@example.com").is_none());
    s.set_daily_limit_exhausted(true);
    s.set_rate_limits(RateLimitSettings { burst_limit: 100, ..s.rate_limits() });
    let (status, _, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!((status, body["policyName"].as_str()), (429, Some("DAILY")));
}

#[tokio::test]
async fn dynamic_lists_follow_changes_and_refuse_manual_edits() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap().ids;
    let branch = json!({"filterBranchType":"OR","filters":[],"filterBranches":[{"filterBranchType":"AND","filterBranches":[],"filters":[{"filterType":"PROPERTY","property":"city","operation":{"operationType":"MULTISTRING","operator":"IS_EQUAL_TO","values":["Atlantis"]}}]}]});
    let (status, _, list) = api
        .call(
            "POST",
            "/crm/v3/lists",
            Some(json!({"name":"Atlantis","objectTypeId":"0-1","processingType":"DYNAMIC","filterBranch":branch})),
        )
        .await;
    assert_eq!(status, 200);
    let list_id = list["list"]["listId"].as_str().unwrap().to_string();
    assert_eq!(list["list"]["size"], 0);
    api.call("PATCH", &format!("/crm/v3/objects/contacts/{}", ids[3]), Some(json!({"properties":{"city":"Atlantis"}})))
        .await;
    let (_, _, members) = api.call("GET", &format!("/crm/lists/2026-03/{list_id}/memberships"), None).await;
    assert_eq!(members["results"][0]["recordId"], ids[3].to_string());
    let (status, _, _) =
        api.call("PUT", &format!("/crm/v3/lists/{list_id}/memberships/add"), Some(json!([ids[4].to_string()]))).await;
    assert_eq!(status, 400);
    s.user_edit_contact(ids[3], json!({"city":"Oslo"}).as_object().unwrap(), 1).unwrap();
    assert_eq!(s.list_members(list_id.parse().unwrap()).unwrap(), Vec::<u64>::new());
}

#[tokio::test]
async fn webhooks_are_signed_batched_and_attributed() {
    let received: Arc<Mutex<Vec<(http::HeaderMap, String)>>> = Arc::default();
    let r = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: http::HeaderMap, body: String| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push((headers, body));
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = sim(HubSpotConfig::default()).await;
    s.set_webhook_settings(Some(WebhookSettings {
        target_url: url.clone(),
        subscriptions: vec![
            WebhookSubscription { id: 0, event_type: "contact.creation".into(), property_name: None, active: true },
            WebhookSubscription {
                id: 0,
                event_type: "contact.propertyChange".into(),
                property_name: Some("*".into()),
                active: true,
            },
        ],
    }));
    let api = Api::new(&s);
    let (_, _, c) = api
        .call("POST", "/crm/v3/objects/contacts", Some(json!({"properties":{"email":"w@example.com","firstname":"W"}})))
        .await;
    s.dispatcher().wait_idle().await;
    let id: u64 = c["id"].as_str().unwrap().parse().unwrap();
    s.user_edit_contact(id, json!({"firstname":"Q"}).as_object().unwrap(), 77).unwrap();
    s.dispatcher().wait_idle().await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (headers, body) = &got[0];
    let events: Vec<Value> = serde_json::from_str(body).unwrap();
    assert_eq!(events.len(), 3, "creation + email + firstname in one request");
    assert!(events.iter().all(|e| e["changeSource"] == "INTEGRATION" && e["sourceId"] == "54321"));
    let ts = headers["x-hubspot-request-timestamp"].to_str().unwrap();
    let secret = s.config().client_secret;
    assert_eq!(headers["x-hubspot-signature-v3"], events::sign_v3(&secret, "POST", &url, body.as_bytes(), ts).as_str());
    assert_eq!(headers["x-hubspot-signature"], events::sign_v1(&secret, body.as_bytes()).as_str());
    let edit: Vec<Value> = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(edit[0]["changeSource"], "CRM_UI");
    assert_eq!(edit[0]["sourceId"], "userId:77");
    assert_eq!(edit[0]["propertyValue"], "Q");
}

#[tokio::test]
async fn oauth_codes_become_tokens_that_expire_and_refresh() {
    let s = sim(HubSpotConfig::default()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let c = s.config();
    let resp = http
        .get(format!(
            "{}/oauth/authorize?client_id={}&scope=crm.objects.contacts.read%20oauth&redirect_uri=http://localhost/cb&state=xyz",
            s.base_url(),
            c.client_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
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
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["hub_id"], 62515);
    let mut api = Api::new(&s);
    api.token = tokens["access_token"].as_str().unwrap().to_string();
    let (status, headers, _) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none(), "no daily headers for OAuth calls");
    let (status, _, body) = api.call("GET", "/crm/v3/lists?listIds=1", None).await;
    assert_eq!((status, body["category"].as_str()), (403, Some("MISSING_SCOPES")));
    s.expire_access_tokens();
    let (status, _, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!((status, body["category"].as_str()), (401, Some("EXPIRED_AUTHENTICATION")));
    assert!(s.revoke_refresh_token(tokens["refresh_token"].as_str().unwrap()));
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let resp = http.post(format!("{}/oauth/v1/token", s.base_url())).form(&refresh).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
}

#[tokio::test]
async fn injected_faults_look_like_hubspot() {
    let s = sim(HubSpotConfig::default()).await;
    s.instrumentation()
        .faults
        .set(vec![FaultSpec { rate_limit_rate: 1.0, rate_limit_burst: 1, ..FaultSpec::everywhere() }], 1);
    let api = Api::new(&s);
    let (status, _, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!((status, body["policyName"].as_str()), (429, Some("TEN_SECONDLY_ROLLING")));
}

#[tokio::test]
async fn unsubscribe_all_opts_the_contact_out() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0];
    let (status, _, _) = api
        .call("POST", "/communication-preferences/v4/statuses/person0@example.com/unsubscribe-all?channel=EMAIL", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.contact(id).unwrap()["properties"]["hs_email_optout"], "true");
    let (_, _, st) =
        api.call("GET", "/communication-preferences/2026-03/statuses/person0@example.com?channel=EMAIL", None).await;
    assert!(st["results"].as_array().unwrap().iter().all(|r| r["status"] == "UNSUBSCRIBED"));
}

#[tokio::test]
async fn search_does_not_see_records_inside_the_index_lag() {
    let s = sim(HubSpotConfig { search_lag_ms: 60_000, ..Default::default() }).await;
    let api = Api::new(&s);
    s.seed(&SeedRequest { count: 3, ..Default::default() }).unwrap();
    let (_, _, body) = api.call("POST", "/crm/v3/objects/contacts/search", Some(json!({}))).await;
    assert_eq!(body["total"], 0, "just written, not yet indexed");
    let (_, _, body) = api.call("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 3, "reads are consistent at once");
}

#[tokio::test]
async fn batches_over_100_inputs_are_refused() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _, body) =
        api.call("POST", "/crm/v3/objects/contacts/batch/read", Some(json!({"inputs": inputs}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let (status, _, body) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts/batch/update",
            Some(json!({"idProperty":"email","inputs":[{"id":"a@b.co","properties":{}}]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Unable to perform update/upsert by non-unique 0-1 property");
}

#[tokio::test]
async fn lifecycle_stages_only_move_forward_unless_cleared() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0];
    let path = format!("/crm/v3/objects/contacts/{id}");
    let (status, _, _) = api.call("PATCH", &path, Some(json!({"properties":{"lifecyclestage":"customer"}}))).await;
    assert_eq!(status, 200);
    let (status, _, body) = api.call("PATCH", &path, Some(json!({"properties":{"lifecyclestage":"lead"}}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["context"]["propertyName"][0], "lifecyclestage");
    api.call("PATCH", &path, Some(json!({"properties":{"lifecyclestage":""}}))).await;
    let (status, _, body) = api.call("PATCH", &path, Some(json!({"properties":{"lifecyclestage":"lead"}}))).await;
    assert_eq!((status, body["properties"]["lifecyclestage"].as_str()), (200, Some("lead")));
}

#[tokio::test]
async fn deletes_restores_and_gdpr_deletes_fire_their_events() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let r = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = sim(HubSpotConfig::default()).await;
    let types = ["contact.deletion", "contact.restore", "contact.privacyDeletion"];
    s.set_webhook_settings(Some(WebhookSettings {
        target_url: url,
        subscriptions: types
            .iter()
            .map(|t| WebhookSubscription { id: 0, event_type: t.to_string(), property_name: None, active: true })
            .collect(),
    }));
    let api = Api::new(&s);
    let ids = s.seed(&SeedRequest { count: 2, ..Default::default() }).unwrap().ids;
    let (status, _, _) = api.call("DELETE", &format!("/crm/v3/objects/contacts/{}", ids[0]), None).await;
    assert_eq!(status, 204);
    let (status, _, _) = api.call("GET", &format!("/crm/v3/objects/contacts/{}", ids[0]), None).await;
    assert_eq!(status, 404);
    let (status, _, body) = api.call("GET", &format!("/crm/v3/objects/contacts/{}?archived=true", ids[0]), None).await;
    assert_eq!((status, body["archived"].as_bool()), (200, Some(true)));
    s.dispatcher().wait_idle().await;
    s.user_restore_contact(ids[0], 5).unwrap();
    s.dispatcher().wait_idle().await;
    let (status, _, _) = api
        .call(
            "POST",
            "/crm/v3/objects/contacts/gdpr-delete",
            Some(json!({"objectId":"person1@example.com","idProperty":"email"})),
        )
        .await;
    assert_eq!(status, 204);
    s.dispatcher().wait_idle().await;
    let got: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|arr| {
            arr.as_array()
                .unwrap()
                .iter()
                .map(|e| e["subscriptionType"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(&got[..2], ["contact.deletion", "contact.restore"]);
    let mut rest = got[2..].to_vec();
    rest.sort();
    assert_eq!(rest, ["contact.deletion", "contact.privacyDeletion"], "two separate requests, any order");
    assert_eq!(received.lock().unwrap().len(), 4);
    assert!(s.contact(ids[1]).is_none());
}

#[tokio::test]
async fn requests_count_under_their_full_route_in_both_spellings() {
    let s = sim(HubSpotConfig::default()).await;
    let api = Api::new(&s);
    let id = s.seed(&SeedRequest { count: 1, ..Default::default() }).unwrap().ids[0];
    for path in [
        "/crm/v3/objects/contacts".to_string(),
        "/crm/objects/2026-03/contacts".to_string(),
        format!("/crm/v4/objects/contacts/{id}/associations/companies"),
        format!("/crm/objects/2026-03/contacts/{id}/associations/companies"),
        "/crm/v3/lists?listIds=1".to_string(),
        "/crm/lists/2026-03?listIds=1".to_string(),
        "/crm/v3/properties/contacts/email".to_string(),
        "/account-info/2026-03/details".to_string(),
    ] {
        assert_eq!(api.call("GET", &path, None).await.0, 200, "{path}");
    }
    let keys: Vec<String> = s.stats().endpoints.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "GET /account-info/2026-03/details",
            "GET /crm/lists/2026-03",
            "GET /crm/objects/2026-03/contacts",
            "GET /crm/objects/2026-03/contacts/{id}/associations/companies",
            "GET /crm/v3/lists",
            "GET /crm/v3/objects/contacts",
            "GET /crm/v3/properties/{object_type}/{name}",
            "GET /crm/v4/objects/contacts/{id}/associations/companies",
        ]
    );
}
