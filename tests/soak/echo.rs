//! The echo check: once both apps have converged, every webhook the simulators delivered is
//! delivered again (HubSpot signs each attempt with a fresh timestamp, so HubSpot's are re-signed
//! as its own retries would be; MailerLite signs the body only). Whatever they describe is
//! already synced, so none of them may lead to a write.

use hmsync_e2e::Harness;
use hmsync_sandbox::common::RecordedDelivery;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReplayFigures {
    pub hubspot_deliveries: u64,
    pub mailerlite_deliveries: u64,
    /// Answered 2xx by our webhook receivers.
    pub accepted: u64,
    /// Answered otherwise (a receiver refusing a correctly signed delivery is itself a finding).
    pub refused: u64,
}

/// The deliveries our receivers accepted, sent from `since_ms` on, oldest first.
fn accepted_since(log: Vec<RecordedDelivery>, since_ms: i64) -> Vec<RecordedDelivery> {
    log.into_iter().filter(|d| d.sent_at_ms >= since_ms && d.status.is_some_and(|s| (200..300).contains(&s))).collect()
}

/// Replays every accepted delivery of both simulators sent since `since_ms`.
pub async fn replay(h: &Harness, since_ms: i64) -> ReplayFigures {
    let client = reqwest::Client::new();
    let secret = h.hubspot.config().client_secret.clone();
    let hubspot = accepted_since(h.hubspot.dispatcher().log(), since_ms);
    let mailerlite = accepted_since(h.mailerlite.dispatcher().log(), since_ms);
    let mut figures = ReplayFigures {
        hubspot_deliveries: hubspot.len() as u64,
        mailerlite_deliveries: mailerlite.len() as u64,
        ..ReplayFigures::default()
    };
    for (d, resign) in hubspot.iter().map(|d| (d, true)).chain(mailerlite.iter().map(|d| (d, false))) {
        let mut req = client.post(&d.url).body(d.body.clone());
        let now = hmsync_http::now_ms().to_string();
        for (k, v) in &d.headers {
            let value = match k.as_str() {
                "x-hubspot-request-timestamp" if resign => now.clone(),
                "x-hubspot-signature-v3" if resign => {
                    hmsync_hubspot::webhooks::sign_v3(&secret, "POST", &d.url, d.body.as_bytes(), &now)
                }
                _ => v.clone(),
            };
            req = req.header(k.as_str(), value);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => figures.accepted += 1,
            Ok(r) => {
                figures.refused += 1;
                eprintln!("soak: a replayed delivery to {} was answered {}", d.url, r.status());
            }
            Err(e) => {
                figures.refused += 1;
                eprintln!("soak: a replayed delivery to {} failed: {e}", d.url);
            }
        }
    }
    figures
}
