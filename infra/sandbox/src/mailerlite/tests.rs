//! HTTP-level tests of the simulator (the client crate's tests cover the rest end to end).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;

mod fidelity;

async fn sim(config: MailerLiteConfig) -> MailerLiteSim {
    MailerLiteSim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

struct Http {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Http {
    fn new(sim: &MailerLiteSim) -> Self {
        Http { base: sim.base_url().to_string(), token: sim.config().token, client: reqwest::Client::new() }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = format!("{}{}", self.base, path);
        let mut rb = self
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

/// A local webhook receiver that records (headers, body).
async fn receiver() -> (String, Arc<Mutex<Vec<(http::HeaderMap, String)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn every_route_requires_the_token_and_every_response_has_rate_headers() {
    let s = sim(MailerLiteConfig::default()).await;
    let mut h = Http::new(&s);
    h.token = "wrong".into();
    let (status, headers, body) = h.call("GET", "/subscribers", None).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"message": "Unauthenticated."}));
    assert_eq!(headers["x-ratelimit-limit"], "120");
    let h = Http::new(&s);
    let (status, headers, body) = h.call("GET", "/campaigns/list", None).await;
    assert_eq!((status, body), (404, json!({"message": "The route api/campaigns/list could not be found."})));
    assert_eq!(headers["x-ratelimit-remaining"], "119");
    let (status, _, body) = h.call("GET", "/subscribers/nobody@example.com", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "No query results for model [App\\Models\\Subscriber\\Subscriber].");
    assert_eq!(s.stats().buckets["requests"], 2, "the unauthenticated request is not counted");
}

#[tokio::test]
async fn subscribers_page_by_id_descending_and_count() {
    let s = sim(MailerLiteConfig::default()).await;
    s.seed(&SeedSpec { count: 30, unsubscribed_rate: 0.3, ..Default::default() }).unwrap();
    let h = Http::new(&s);
    let (_, _, count) = h.call("GET", "/subscribers?limit=0", None).await;
    assert_eq!(count, json!({"total": 30}));
    let mut seen = Vec::new();
    let mut path = "/subscribers?limit=7".to_string();
    loop {
        let (status, _, page) = h.call("GET", &path, None).await;
        assert_eq!(status, 200);
        assert!(page["data"][0].get("groups").is_none(), "list items omit groups");
        seen.extend(page["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().parse::<u64>().unwrap()));
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => path = format!("/subscribers?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "descending ids");
    let (_, _, active) = h.call("GET", "/subscribers?limit=0&filter[status]=active", None).await;
    let (_, _, page) = h.call("GET", "/subscribers?filter[status]=active&limit=100", None).await;
    assert_eq!(page["data"].as_array().unwrap().len() as u64, active["total"].as_u64().unwrap());
    let (status, _, err) = h.call("GET", "/subscribers?limit=101", None).await;
    assert_eq!(status, 422);
    assert_eq!(err["errors"]["limit"][0], "The limit field must not be greater than 100.");
}

#[tokio::test]
async fn upsert_put_and_the_reactivation_rule() {
    let s = sim(MailerLiteConfig::default()).await;
    let h = Http::new(&s);
    let g1 = s.create_group("One");
    let g2 = s.create_group("Two");
    let (status, _, created) = h
        .call(
            "POST",
            "/subscribers",
            Some(json!({"email": "Ada@Example.com", "fields": {"name": "Ada", "nope": 1}, "groups": [g1]})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["data"]["email"], "ada@example.com");
    assert_eq!(created["data"]["groups"][0]["id"], json!(g1));
    assert!(created["data"]["fields"].get("nope").is_none());
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let (status, _, again) =
        h.call("POST", "/subscribers", Some(json!({"email": "ada@example.com", "fields": {"city": "Oslo"}}))).await;
    assert_eq!(status, 200);
    assert_eq!(again["data"]["fields"]["name"], "Ada", "omitted fields are kept");
    let (_, _, put) =
        h.call("PUT", &format!("/subscribers/{id}"), Some(json!({"groups": [g2], "fields": {"name": null}}))).await;
    let groups: Vec<&str> =
        put["data"]["groups"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(groups, [g2.as_str()], "PUT groups replaces membership");
    assert_eq!(put["data"]["fields"]["name"], Value::Null, "null clears");
    h.call("PUT", &format!("/subscribers/{id}"), Some(json!({"status": "unsubscribed"}))).await;
    let (status, _, refused) = h.call("PUT", &format!("/subscribers/{id}"), Some(json!({"status": "active"}))).await;
    assert_eq!(status, 422);
    assert_eq!(refused, json!({"message": "This subscriber is unsubscribed and cannot be imported"}));
    let (status, _, bad) = h.call("POST", "/subscribers", Some(json!({"email": "nope", "status": "weird"}))).await;
    assert_eq!(status, 422);
    assert_eq!(bad["message"], "The email must be a valid email address. (and 1 more error)");
    let (status, _, _) = h.call("DELETE", &format!("/subscribers/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(h.call("GET", &format!("/subscribers/{id}"), None).await.0, 404);
    let (status, _, back) = h.call("POST", "/subscribers", Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!((status, back["data"]["id"].as_str()), (201, Some(id.as_str())), "re-created with its id");
}

#[tokio::test]
async fn the_global_window_refuses_with_retry_after() {
    let s = sim(MailerLiteConfig { limit_per_minute: 3, time_scale: 600.0, ..Default::default() }).await;
    let h = Http::new(&s);
    for _ in 0..3 {
        assert_eq!(h.call("GET", "/groups", None).await.0, 200);
    }
    let (status, headers, body) = h.call("GET", "/groups", None).await;
    assert_eq!(status, 429);
    assert_eq!(body, json!({"message": "Too Many Attempts."}));
    assert_eq!(headers["retry-after"], "1");
    let ms: u64 = headers[RETRY_AFTER_MS_HEADER].to_str().unwrap().parse().unwrap();
    assert!(ms <= 100, "60 s / 600 = 100 ms, got {ms}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    tokio::time::sleep(std::time::Duration::from_millis(ms + 5)).await;
    assert_eq!(h.call("GET", "/groups", None).await.0, 200);
}

#[tokio::test]
async fn upsert_only_batches_use_the_import_window() {
    let s = sim(MailerLiteConfig { imports_per_minute: 2, ..Default::default() }).await;
    let h = Http::new(&s);
    let upserts = json!({"requests": [
        {"method": "POST", "path": "api/subscribers", "body": {"email": "a@example.com"}},
        {"method": "POST", "path": "/api/subscribers", "body": {"email": "b@example.com"}}]});
    assert_eq!(h.call("POST", "/batch", Some(upserts.clone())).await.0, 200);
    assert_eq!(h.call("POST", "/batch", Some(upserts.clone())).await.0, 200);
    let (status, _, body) = h.call("POST", "/batch", Some(upserts)).await;
    assert_eq!((status, body), (429, json!({"message": "You're being rate limited on import creation."})));
    let mixed = json!({"requests": [
        {"method": "POST", "path": "api/subscribers", "body": {"email": "c@example.com"}},
        {"method": "GET", "path": "api/subscribers/c@example.com"},
        {"method": "GET", "path": "api/webhooks"},
        {"method": "GET", "path": "api/subscribers/list"}]});
    let (status, _, body) = h.call("POST", "/batch", Some(mixed)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["total"].clone(), body["successful"].clone(), body["failed"].clone()),
        (json!(4), json!(2), json!(2))
    );
    assert_eq!(body["responses"][0]["code"], 201);
    assert_eq!(body["responses"][1]["body"]["data"]["email"], "c@example.com");
    assert_eq!(
        body["responses"][2],
        json!({"code": 404, "body": {"message": "The route api/webhooks could not be found."}})
    );
    assert_eq!(
        body["responses"][3]["body"]["message"],
        "No query results for model [App\\Models\\Subscriber\\Subscriber]."
    );
    let stats = s.stats();
    assert_eq!(stats.buckets["imports"], 2);
    assert_eq!(stats.buckets["requests"], 3);
    let too_many: Vec<Value> =
        (0..51).map(|i| json!({"method": "GET", "path": format!("api/subscribers/{i}")})).collect();
    let (status, _, body) = h.call("POST", "/batch", Some(json!({ "requests": too_many }))).await;
    assert_eq!(status, 422);
    assert!(body["errors"]["requests"][0].as_str().unwrap().contains("50"));
}

#[tokio::test]
async fn a_campaign_updates_counts_logs_and_reports() {
    let s = sim(MailerLiteConfig::default()).await;
    let g = s.create_group("Newsletter");
    s.seed(&SeedSpec { count: 20, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    let summary = s
        .simulate_campaign(&CampaignSpec {
            name: "November".into(),
            recipients: Recipients { group_id: Some(g.clone()), ..Default::default() },
            opens: Some(10),
            clicks: Some(4),
            unsubscribes: Some(2),
            hard_bounces: Some(1),
            spam_reports: Some(1),
            urls: vec!["https://example.com/a".into()],
            seed: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (
            summary.recipients.len(),
            summary.opened.len(),
            summary.clicked.len(),
            summary.unsubscribed.len(),
            summary.bounced.len(),
            summary.spam_reported.len()
        ),
        (20, 10, 4, 2, 1, 1)
    );
    let h = Http::new(&s);
    let (_, _, list) = h.call("GET", "/campaigns?filter[status]=sent", None).await;
    assert_eq!(list["data"][0]["stats"]["unique_opens_count"], 10);
    let cid = &summary.campaign_id;
    let (_, _, report) = h
        .call(
            "POST",
            &format!("/campaigns/{cid}/reports/subscriber-activity"),
            Some(json!({"filter": {"type": "clicked"}, "include": "subscriber", "limit": 10})),
        )
        .await;
    assert_eq!(report["data"].as_array().unwrap().len(), 4);
    assert!(report["data"][0]["subscriber"]["email"].is_string());
    assert_eq!(report["meta"]["aggregations"]["hardbounced"], 1);
    let (status, _, bad) = h.call("GET", &format!("/campaigns/{cid}/reports/subscriber-activity?limit=20"), None).await;
    assert_eq!((status, bad["message"].as_str()), (422, Some("The limit must be one of following: 10, 25, 50, 100")));
    let clicker = &summary.clicked[0];
    let log = s.activity(clicker);
    let names: Vec<&str> = log.iter().map(|e| e.log_name).collect();
    assert!(names.contains(&"campaign_send") && names.contains(&"email_open") && names.contains(&"link_click"));
    assert_eq!(s.subscriber(&summary.bounced[0]).unwrap().status, "bounced");
    assert_eq!(s.subscriber(&summary.spam_reported[0]).unwrap().status, "junk");
    let group = s.groups().into_iter().find(|x| x.id == g).unwrap();
    assert_eq!((group.sent_count, group.opens_count, group.active_count, group.unsubscribed_count), (20, 10, 16, 2));
}

#[tokio::test]
async fn group_members_default_to_active_and_imports_report_progress() {
    let s = sim(MailerLiteConfig { import_delay_ms: 30, ..Default::default() }).await;
    let g = s.create_group("G");
    s.seed(&SeedSpec { count: 10, unsubscribed_rate: 0.5, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    let h = Http::new(&s);
    let (_, _, active) = h.call("GET", &format!("/groups/{g}/subscribers"), None).await;
    assert!(active["data"].as_array().unwrap().iter().all(|x| x["status"] == "active"));
    let (_, _, unsub) = h.call("GET", &format!("/groups/{g}/subscribers?filter[status]=unsubscribed"), None).await;
    assert_eq!(active["data"].as_array().unwrap().len() + unsub["data"].as_array().unwrap().len(), 10);
    let unsub_email = unsub["data"][0]["email"].as_str().unwrap().to_string();
    let (status, _, started) = h
        .call(
            "POST",
            &format!("/groups/{g}/import-subscribers"),
            Some(json!({"subscribers": [{"email": "new@example.com", "fields": {"name": "N"}}, {"email": unsub_email}, {"email": "bad"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let url = started["import_progress_url"].as_str().unwrap();
    let path = url.strip_prefix(s.base_url()).unwrap();
    let (_, _, first) = h.call("GET", path, None).await;
    assert_eq!(first["data"]["done"], false);
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    let (_, _, done) = h.call("GET", path, None).await;
    assert_eq!(done["data"]["done"], true);
    assert_eq!(
        (
            done["data"]["imported"].clone(),
            done["data"]["unsubscribed_count"].clone(),
            done["data"]["invalid_count"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(s.stats().buckets["imports"], 1);
}

#[tokio::test]
async fn injected_faults_look_like_mailerlite_and_keep_the_rate_headers() {
    let s = sim(MailerLiteConfig { time_scale: 10.0, ..Default::default() }).await;
    let h = Http::new(&s);
    s.set_faults(&FaultSettings {
        faults: vec![crate::common::FaultSpec { error_rate: 1.0, ..crate::common::FaultSpec::everywhere() }],
        seed: 1,
    });
    let (status, headers, body) = h.call("GET", "/groups", None).await;
    assert!((500..=503).contains(&status));
    assert!(body["message"].is_string());
    assert_eq!(headers["x-ratelimit-limit"], "120");
    s.set_faults(&FaultSettings {
        faults: vec![crate::common::FaultSpec {
            rate_limit_rate: 1.0,
            rate_limit_burst: 1,
            ..crate::common::FaultSpec::everywhere()
        }],
        seed: 1,
    });
    let (status, headers, body) = h.call("GET", "/groups", None).await;
    assert_eq!((status, body), (429, json!({"message": "Too Many Attempts."})));
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers[RETRY_AFTER_MS_HEADER], "100");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    s.set_faults(&FaultSettings::default());
    assert_eq!(h.call("GET", "/groups", None).await.0, 200);
    let stats = s.stats();
    assert_eq!(stats.buckets["requests"], 1, "faulted requests never reached the limiter");
}
