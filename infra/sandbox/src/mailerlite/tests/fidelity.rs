//! One test per documented (or deliberately assumed) MailerLite behaviour the review of the
//! simulator against the docs named; `docs/api-fidelity.md` lists each with its source.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// A webhook receiver that answers 500 to the first `fail_first` requests.
async fn failing_receiver(fail_first: u32) -> (String, Arc<Mutex<Vec<(http::HeaderMap, String)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU32::new(0));
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: http::HeaderMap, body: String| {
            let (g, hits) = (g.clone(), hits.clone());
            async move {
                g.lock().unwrap().push((headers, body));
                if hits.fetch_add(1, Ordering::SeqCst) < fail_first {
                    http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn hook(h: &Http, url: &str, events: &[&str], batchable: bool) -> String {
    let (status, _, created) =
        h.call("POST", "/webhooks", Some(json!({"url": url, "events": events, "batchable": batchable}))).await;
    assert_eq!(status, 201, "{created}");
    created["data"]["secret"].as_str().unwrap().to_string()
}

fn bodies(got: &Arc<Mutex<Vec<(http::HeaderMap, String)>>>) -> Vec<Value> {
    got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect()
}

/// Waits (bounded) until `got` holds `n` requests; deliveries run on their own tasks.
async fn until_received(got: &Arc<Mutex<Vec<(http::HeaderMap, String)>>>, n: usize) {
    for _ in 0..500 {
        if got.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} of {n} deliveries arrived", got.lock().unwrap().len());
}

#[tokio::test]
async fn batchable_webhooks_get_one_envelope_per_tick_and_the_others_each_event_at_once() {
    // A tick far away: the test sends it by hand, so the grouping does not depend on timing.
    let s = sim(MailerLiteConfig { webhook_batch_interval_ms: 3_600_000, ..Default::default() }).await;
    let h = Http::new(&s);
    let (single_url, single) = receiver().await;
    let (batch_url, batched) = receiver().await;
    let single_secret = hook(&h, &single_url, &["subscriber.created"], false).await;
    let batch_secret = hook(&h, &batch_url, &["subscriber.created", "subscriber.deleted"], true).await;
    h.call("POST", "/subscribers", Some(json!({"email": "a@example.com"}))).await;
    h.call("POST", "/subscribers", Some(json!({"email": "b@example.com"}))).await;
    until_received(&single, 2).await;
    assert_eq!(s.batched_items_waiting(), 2, "the batchable webhook waits for the tick");
    assert!(batched.lock().unwrap().is_empty());
    s.flush_batches();
    s.dispatcher().wait_idle().await;
    let envelopes = bodies(&batched);
    assert_eq!(envelopes.len(), 1, "one request for both events");
    assert_eq!(envelopes[0]["total"], 2);
    let emails: Vec<&str> =
        envelopes[0]["events"].as_array().unwrap().iter().map(|e| e["subscriber"]["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    for (headers, body) in batched.lock().unwrap().iter() {
        assert_eq!(headers["signature"].to_str().unwrap(), sign_webhook(&batch_secret, body.as_bytes()));
    }
    for (headers, body) in single.lock().unwrap().iter() {
        assert_eq!(headers["signature"].to_str().unwrap(), sign_webhook(&single_secret, body.as_bytes()));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!((v["event"].as_str(), v["account_id"].as_u64()), (Some("subscriber.created"), Some(252151)));
    }
}

#[tokio::test]
async fn the_batch_clock_ticks_by_itself_at_the_time_scale() {
    // 60 s ÷ 600 = 100 ms.
    let s = sim(MailerLiteConfig { time_scale: 600.0, ..Default::default() }).await;
    let h = Http::new(&s);
    let (url, got) = receiver().await;
    hook(&h, &url, &["subscriber.created"], true).await;
    h.call("POST", "/subscribers", Some(json!({"email": "a@example.com"}))).await;
    s.dispatcher().wait_idle().await;
    assert_eq!(s.batched_items_waiting(), 0);
    let envelopes = bodies(&got);
    assert_eq!(envelopes.len(), 1);
    assert_eq!(envelopes[0]["events"][0]["type"], "subscriber.created");
}

#[tokio::test]
async fn batched_items_use_the_documented_shapes_and_single_events_the_captured_ones() {
    let s = sim(MailerLiteConfig { time_scale: 600.0, ..Default::default() }).await;
    let h = Http::new(&s);
    let (single_url, single) = receiver().await;
    let (batch_url, batched) = receiver().await;
    hook(&h, &single_url, &["subscriber.created", "subscriber.added_to_group"], false).await;
    hook(&h, &batch_url, &["campaign.open", "subscriber.created"], true).await;
    let g = s.create_group("News");
    let (_, _, created) = h
        .call(
            "POST",
            "/subscribers",
            Some(json!({"email": "a@example.com", "fields": {"name": "Ada", "z_i_p": "0150"}})),
        )
        .await;
    let id = created["data"]["id"].as_str().unwrap().to_string();
    h.call("POST", &format!("/subscribers/{id}/groups/{g}"), None).await;
    let summary = s
        .simulate_campaign(&CampaignSpec {
            name: "May".into(),
            recipients: Recipients { subscriber_ids: vec![id.clone()], ..Default::default() },
            opens: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(summary.opened, std::slice::from_ref(&id));
    s.dispatcher().wait_idle().await;

    // Non-batched: the flat capture (REST keys, null for empty) and the group shape (b).
    let singles = bodies(&single);
    let flat = singles.iter().find(|v| v["event"] == "subscriber.created").unwrap();
    assert_eq!(flat["fields"]["z_i_p"], "0150");
    assert_eq!(flat["fields"]["company"], Value::Null);
    assert_eq!(flat["api_version"], "2025-05");
    let group = singles.iter().find(|v| v["type"] == "subscriber.added_to_group").unwrap();
    assert_eq!(
        (group["group"]["id"].as_str(), group["subscriber"]["id"].as_str()),
        (Some(g.as_str()), Some(id.as_str()))
    );

    // Batched: `zip`, "" for empty fields, and zero counters inside the open item although the
    // subscriber's REST record counts the open.
    let items: Vec<Value> = bodies(&batched).iter().flat_map(|e| e["events"].as_array().unwrap().clone()).collect();
    let open = items.iter().find(|i| i["type"] == "campaign.open").unwrap();
    assert_eq!(open["subscriber"]["fields"]["zip"], "0150");
    assert!(open["subscriber"]["fields"].get("z_i_p").is_none());
    assert_eq!(open["subscriber"]["fields"]["company"], "");
    assert_eq!(open["subscriber"]["opens_count"], 0);
    assert_eq!(open["campaign"]["name"], "May");
    assert!(open.get("account_id").is_none());
    assert_eq!(s.subscriber(&id).unwrap().opens_count, 1);
    let created_item = items.iter().find(|i| i["type"] == "subscriber.created").unwrap();
    assert_eq!(created_item["subscriber"]["fields"]["name"], "Ada");
}

#[tokio::test]
async fn failed_deliveries_are_retried_after_10_100_and_1000_seconds_scaled() {
    assert_eq!(default_delivery(1.0).retry_delays_ms, [10_000, 100_000, 1_000_000]);
    assert_eq!(default_delivery(600.0).retry_delays_ms, [16, 166, 1666]);
    let s = sim(MailerLiteConfig { time_scale: 600.0, ..Default::default() }).await;
    let h = Http::new(&s);
    let (url, got) = failing_receiver(2).await;
    hook(&h, &url, &["subscriber.created"], false).await;
    h.call("POST", "/subscribers", Some(json!({"email": "a@example.com"}))).await;
    s.dispatcher().wait_idle().await;
    assert_eq!(got.lock().unwrap().len(), 3);
    let attempts: Vec<(u32, Option<u16>)> = s.dispatcher().log().iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(attempts, [(0, Some(500)), (1, Some(500)), (2, Some(200))]);
    let (url, got) = failing_receiver(100).await;
    s.dispatcher().clear_log();
    let (_, _, list) = h.call("GET", "/webhooks", None).await;
    let first = list["data"][0]["id"].as_str().unwrap().to_string();
    h.call("PUT", &format!("/webhooks/{first}"), Some(json!({"url": url}))).await;
    h.call("POST", "/subscribers", Some(json!({"email": "b@example.com"}))).await;
    s.dispatcher().wait_idle().await;
    assert_eq!(got.lock().unwrap().len(), 4, "the first attempt and three retries, then it gives up");
    assert_eq!(s.dispatcher().stats().failed, 1);
}

#[tokio::test]
async fn injected_webhook_faults_add_unknown_and_malformed_items_next_to_the_real_ones() {
    let s = sim(MailerLiteConfig { time_scale: 600.0, ..Default::default() }).await;
    let h = Http::new(&s);
    let (single_url, single) = receiver().await;
    let (batch_url, batched) = receiver().await;
    hook(&h, &single_url, &["subscriber.created"], false).await;
    hook(&h, &batch_url, &["subscriber.created"], true).await;
    s.set_webhook_faults(WebhookFaults { unknown_event_rate: 1.0, malformed_item_rate: 1.0, seed: 7 });
    h.call("POST", "/subscribers", Some(json!({"email": "a@example.com"}))).await;
    s.dispatcher().wait_idle().await;
    let envelope = &bodies(&batched)[0];
    let items = envelope["events"].as_array().unwrap();
    assert_eq!((items.len(), envelope["total"].as_u64()), (3, Some(3)));
    assert_eq!(items[0]["type"], "subscriber.created");
    assert_eq!(items[0]["subscriber"]["email"], "a@example.com");
    assert_ne!(items[1], items[0], "a broken copy");
    assert!(["subscriber.added_through_form", "campaign.draft_created"].contains(&items[2]["type"].as_str().unwrap()));
    let singles = bodies(&single);
    assert_eq!(singles.len(), 3, "the real request, a broken one and an unknown event");
    assert_eq!(
        singles
            .iter()
            .filter(|v| v["event"] == "subscriber.created"
                && v["email"] == "a@example.com"
                && v["id"].is_string()
                && v["status"] == "active")
            .count(),
        1
    );
    assert_eq!(s.webhook_faults().seed, 7);
}

#[tokio::test]
async fn assigning_a_missing_subscriber_is_422_errors_id_and_removing_a_non_member_404() {
    let s = sim(MailerLiteConfig::default()).await;
    let h = Http::new(&s);
    let g = s.create_group("G");
    let (status, _, body) = h.call("POST", &format!("/subscribers/123456789/groups/{g}"), None).await;
    assert_eq!(
        (status, body),
        (422, json!({"message": "The given data was invalid.", "errors": {"id": ["The selected id is invalid."]}}))
    );
    let (_, _, created) = h.call("POST", "/subscribers", Some(json!({"email": "a@example.com"}))).await;
    let id = created["data"]["id"].as_str().unwrap().to_string();
    h.call("DELETE", &format!("/subscribers/{id}"), None).await;
    assert_eq!(h.call("POST", &format!("/subscribers/{id}/groups/{g}"), None).await.0, 422, "a deleted subscriber too");
    let (_, _, created) = h.call("POST", "/subscribers", Some(json!({"email": "b@example.com"}))).await;
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let (status, _, body) = h.call("DELETE", &format!("/subscribers/{id}/groups/{g}"), None).await;
    assert_eq!((status, body), (404, json!({"message": ""})));
    assert_eq!(h.call("POST", &format!("/subscribers/{id}/groups/{g}"), None).await.0, 200);
    assert_eq!(h.call("DELETE", &format!("/subscribers/{id}/groups/{g}"), None).await.0, 204);
}

#[tokio::test]
async fn segment_pages_can_be_short_or_empty_and_still_have_a_next_cursor() {
    let s = sim(MailerLiteConfig { segment_max_limit: 20, ..Default::default() }).await;
    let g = s.create_group("Few");
    s.seed(&SeedSpec { count: 60, ..Default::default() }).unwrap();
    s.seed(&SeedSpec { count: 3, start_index: 60, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    s.seed(&SeedSpec { count: 30, start_index: 63, ..Default::default() }).unwrap();
    let seg = s.create_segment("In Few", SegmentRule::InGroup { group_id: g });
    let h = Http::new(&s);
    let (status, _, too_big) = h.call("GET", &format!("/segments/{seg}/subscribers?limit=21"), None).await;
    assert_eq!(status, 422);
    assert!(too_big["errors"]["limit"].is_array());
    let mut cursor: Option<String> = None;
    let (mut members, mut short_with_cursor, mut empty_with_cursor) = (0, 0, 0);
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/segments/{seg}/subscribers?limit=20&cursor={c}"),
            None => format!("/segments/{seg}/subscribers?limit=20"),
        };
        let (_, _, page) = h.call("GET", &path, None).await;
        let n = page["data"].as_array().unwrap().len();
        members += n;
        cursor = page["meta"]["next_cursor"].as_str().map(str::to_string);
        if cursor.is_some() {
            short_with_cursor += usize::from(n < 20);
            empty_with_cursor += usize::from(n == 0);
        } else {
            break;
        }
    }
    assert_eq!(members, 3);
    assert!(cursor.is_none(), "the walk ends");
    assert!(short_with_cursor >= 1 && empty_with_cursor >= 1, "{short_with_cursor} short, {empty_with_cursor} empty");
}

#[tokio::test]
async fn the_activity_log_has_no_page_meta_and_lists_oldest_first() {
    let s = sim(MailerLiteConfig::default()).await;
    let g = s.create_group("G");
    s.seed(&SeedSpec { count: 1, group_ids: vec![g.clone()], ..Default::default() }).unwrap();
    let id = s.subscriber("person0@example.com").unwrap().id;
    for name in ["One", "Two"] {
        s.simulate_campaign(&CampaignSpec {
            name: name.into(),
            recipients: Recipients { subscriber_ids: vec![id.clone()], ..Default::default() },
            opens: Some(1),
            ..Default::default()
        })
        .unwrap();
    }
    let h = Http::new(&s);
    let (status, _, log) = h.call("GET", &format!("/subscribers/{id}/activity-log?limit=2"), None).await;
    assert_eq!(status, 200);
    assert_eq!(log.as_object().unwrap().keys().collect::<Vec<_>>(), ["data"], "no links, no meta");
    let (_, _, all) = h.call("GET", &format!("/subscribers/{id}/activity-log"), None).await;
    let ids: Vec<u64> =
        all["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    let (_, _, second) = h.call("GET", &format!("/subscribers/{id}/activity-log?limit=2&page=2"), None).await;
    assert_eq!(second["data"][0]["id"], all["data"][2]["id"]);
}

#[tokio::test]
async fn requests_without_a_user_agent_are_counted() {
    let s = sim(MailerLiteConfig::default()).await;
    let h = Http::new(&s);
    h.call("GET", "/groups", None).await;
    assert_eq!(s.stats().buckets.get(WITHOUT_USER_AGENT).copied().unwrap_or(0), 1, "reqwest sends none by default");
    h.client
        .get(format!("{}/groups", s.base_url()))
        .bearer_auth(&h.token)
        .header("User-Agent", "hmsync-test")
        .send()
        .await
        .unwrap();
    assert_eq!(s.stats().buckets[WITHOUT_USER_AGENT], 1);
    assert_eq!(s.stats().buckets["requests"], 2);
}
