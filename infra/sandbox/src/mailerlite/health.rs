//! Webhook health, as the account keeps it: every delivery attempt sets the webhook's
//! `response_code`, and a webhook whose target keeps answering errors is set inactive
//! (`enabled: false`) — "after 3 days of responding with an error" (support article 6722796),
//! divided by `time_scale` like every other window, and configurable for tests
//! (`webhook_disable_after_ms`).
//!
//! An attempt is matched to its webhook by URL and by its `Signature` (each webhook has its
//! own secret), so two webhooks at one URL keep their own health. A timeout has no status:
//! it counts as an error and leaves `response_code` as it was (what the real API records then
//! is not documented). `is_blocked` is never set by deliveries: nothing documents what blocks
//! a webhook; [`MailerLite::set_webhook_blocked`] lets a test set it.

use std::time::Duration;

use super::account::MailerLite;
use super::hooks::sign;
use crate::common::{RecordedDelivery, TimeScale};

/// The real delay before a failing webhook is disabled: 3 days.
pub const DISABLE_AFTER_MS: u64 = 3 * 24 * 3600 * 1000;

impl MailerLite {
    /// Records one delivery attempt in the health of the webhook that sent it.
    pub(crate) fn record_attempt(&self, attempt: &RecordedDelivery) {
        let Some(signature) =
            attempt.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("signature")).map(|(_, v)| v.as_str())
        else {
            return;
        };
        let config = self.config();
        let disable_after = TimeScale(config.time_scale)
            .scale(Duration::from_millis(config.webhook_disable_after_ms))
            .as_millis() as i64;
        let mut store = self.store();
        let hooks = store
            .webhooks
            .values_mut()
            .filter(|w| w.url == attempt.url && sign(&w.secret, attempt.body.as_bytes()) == signature);
        for w in hooks {
            if let Some(code) = attempt.status {
                w.response_code = Some(code);
            }
            if attempt.status.is_some_and(|s| (200..300).contains(&s)) {
                w.failing_since_ms = None;
                continue;
            }
            let since = *w.failing_since_ms.get_or_insert(attempt.sent_at_ms);
            if w.enabled && attempt.sent_at_ms - since >= disable_after {
                w.enabled = false;
                tracing::info!(webhook = w.id, url = %w.url, "MailerLite sandbox: webhook set inactive after its target kept failing");
            }
        }
    }

    /// Sets a webhook's `is_blocked` (for tests: nothing documents what blocks a webhook).
    /// `false` when there is no such webhook.
    pub fn set_webhook_blocked(&self, id: &str, blocked: bool) -> bool {
        let Ok(id) = id.parse::<u64>() else { return false };
        match self.store().webhooks.get_mut(&id) {
            Some(w) => {
                w.blocked = blocked;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};

    use axum::Router;
    use axum::routing::post;
    use serde_json::{Value, json};

    use super::super::{MailerLiteConfig, MailerLiteSim, SeedSpec, UserEdit};
    use crate::common::DeliveryOptions;

    /// A webhook target answering whatever status `answer` holds.
    async fn target(answer: Arc<AtomicU16>) -> String {
        let app = Router::new().route(
            "/hook",
            post(move || {
                let answer = answer.clone();
                async move { http::StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    async fn call(sim: &MailerLiteSim, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut rb = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", sim.base_url()))
            .bearer_auth(sim.config().token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap().json().await.unwrap()
    }

    fn edit(city: &str) -> UserEdit {
        UserEdit { fields: [("city".to_string(), json!(city))].into_iter().collect(), ..Default::default() }
    }

    #[tokio::test]
    async fn a_webhook_whose_target_keeps_failing_is_set_inactive_and_each_webhook_keeps_its_own_health() {
        let sim = MailerLiteSim::start(
            MailerLiteConfig { webhook_disable_after_ms: 1_500, ..Default::default() },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        sim.dispatcher().set_options(DeliveryOptions { retry_delays_ms: vec![1, 1, 1], ..DeliveryOptions::default() });
        sim.seed(&SeedSpec { count: 1, ..Default::default() }).unwrap();
        let answer = Arc::new(AtomicU16::new(500));
        let url = target(answer.clone()).await;
        let changes = call(
            &sim,
            "POST",
            "/webhooks",
            Some(json!({"name": "changes", "url": url, "events": ["subscriber.updated"]})),
        )
        .await["data"]
            .clone();
        let batched = call(
            &sim,
            "POST",
            "/webhooks",
            Some(json!({"name": "opens", "url": url, "events": ["campaign.open"], "batchable": true})),
        )
        .await["data"]
            .clone();
        let email = crate::common::people::person(0).email;
        let health = |sim: &MailerLiteSim, id: &Value| {
            let id = id.as_str().unwrap().parse::<u64>().unwrap();
            let w = sim.store().webhooks[&id].out();
            (w.enabled, w.response_code)
        };

        // Failing, but not for long enough yet: the status is recorded, the webhook stays on.
        sim.user_edit(&email, &edit("Oslo")).unwrap();
        sim.dispatcher().wait_idle().await;
        assert_eq!(health(&sim, &changes["id"]), (true, Some(500)));
        assert_eq!(health(&sim, &batched["id"]), (true, None), "the other webhook at the URL sent nothing");
        // Still failing after the allowed time: set inactive, and it sends nothing more.
        tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
        sim.user_edit(&email, &edit("Bergen")).unwrap();
        sim.dispatcher().wait_idle().await;
        assert_eq!(health(&sim, &changes["id"]), (false, Some(500)));
        let listed = call(&sim, "GET", "/webhooks", None).await;
        let listed = listed["data"].as_array().unwrap().iter().find(|w| w["id"] == changes["id"]).unwrap().clone();
        assert_eq!((listed["enabled"].clone(), listed["response_code"].clone()), (json!(false), json!(500)));
        let attempts = sim.dispatcher().log().len();
        sim.user_edit(&email, &edit("Tromsø")).unwrap();
        sim.dispatcher().wait_idle().await;
        assert_eq!(sim.dispatcher().log().len(), attempts, "an inactive webhook is not sent");

        // Enabled again through the API, with the target answering: delivered, healthy again.
        answer.store(200, Ordering::SeqCst);
        let path = format!("/webhooks/{}", changes["id"].as_str().unwrap());
        let again = call(&sim, "PUT", &path, Some(json!({"enabled": true}))).await;
        assert_eq!(again["data"]["enabled"], json!(true));
        sim.user_edit(&email, &edit("Alta")).unwrap();
        sim.dispatcher().wait_idle().await;
        assert_eq!(health(&sim, &changes["id"]), (true, Some(200)));
        assert!(sim.set_webhook_blocked(batched["id"].as_str().unwrap(), true));
        assert_eq!(call(&sim, "GET", "/webhooks", None).await["data"][0]["is_blocked"], json!(true));
    }
}
