//! Outbound webhooks: which payload each event becomes, batching, and signing.
//! Documented at <https://developers.mailerlite.com/docs/webhooks.html>.
//!
//! - A webhook with `batchable: false` gets one request per event: the flat shape (a) — the
//!   subscriber at the root plus `event`, `account_id` (integer) and `api_version` — or, for
//!   group events, shape (b) with `type`, `subscriber`, `group`.
//! - A webhook with `batchable: true` gets every event of one flush (one API call or admin
//!   action) in one envelope `{"events":[…],"total":n}` (shape (e)). UNCONFIRMED choice: every
//!   item uses the nested form `{"type", "subscriber", …}`; `campaign.*` items add `campaign`, and
//!   `campaign.click` items also the clicked `url` (the real key is UNCONFIRMED).
//! - `Signature` = lowercase hex HMAC-SHA256 of the exact body bytes keyed with the secret.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::model::WebhookSubscriber;
use super::snapshot::StoreGuard;
use super::store::{PendingEvent, Store};
use super::time_fmt::{iso, now};
use crate::common::Delivery;

/// The `api_version` webhook payloads carry (2025+ captures).
pub const API_VERSION: &str = "2025-05";

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Serialize)]
struct Flat<'a> {
    #[serde(flatten)]
    subscriber: &'a WebhookSubscriber,
    event: &'a str,
    account_id: u64,
    api_version: &'static str,
}

#[derive(Serialize)]
struct GroupRef {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct CampaignRef {
    id: String,
    name: String,
    total_recipients: u64,
    preview_url: String,
    date: String,
}

#[derive(Serialize)]
struct Nested<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    subscriber: &'a WebhookSubscriber,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<CampaignRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    events: Vec<Nested<'a>>,
    total: usize,
}

fn campaign_ref(store: &Store, id: Option<u64>) -> Option<CampaignRef> {
    id.and_then(|id| store.campaigns.get(&id)).map(|c| CampaignRef {
        id: c.id.to_string(),
        name: c.name.clone(),
        total_recipients: c.rows.len() as u64,
        preview_url: format!("https://preview.mailerlite.io/preview/{}/emails/{}", store.account_id, c.email_id),
        date: iso(c.finished_at),
    })
}

/// The nested item form; `standalone` adds `account_id`/`api_version` (a non-batched shape (b)).
fn nested<'a>(store: &Store, e: &'a PendingEvent, sub: &'a WebhookSubscriber, standalone: bool) -> Nested<'a> {
    Nested {
        kind: e.kind,
        subscriber: sub,
        group: e.group.as_ref().map(|(id, name)| GroupRef { id: id.to_string(), name: name.clone() }),
        campaign: campaign_ref(store, e.campaign_id),
        url: e.url.clone(),
        account_id: standalone.then_some(store.account_id),
        api_version: standalone.then_some(API_VERSION),
    }
}

/// Turns the store's pending events into signed deliveries and marks the webhooks as fired.
/// Called with the store locked, once per API call or admin action. Looks before it takes, so
/// that a call that queued nothing does not mark the account changed (see
/// `super::snapshot::StoreGuard`).
pub fn take_deliveries(store: &mut StoreGuard<'_>) -> Vec<Delivery> {
    if store.pending.is_empty() {
        return Vec::new();
    }
    take_pending_deliveries(store)
}

fn take_pending_deliveries(store: &mut Store) -> Vec<Delivery> {
    let events: Vec<PendingEvent> = std::mem::take(&mut store.pending);
    if events.is_empty() || store.webhooks.is_empty() {
        return Vec::new();
    }
    let subs: std::collections::HashMap<u64, WebhookSubscriber> = events
        .iter()
        .filter_map(|e| store.subscribers.get(&e.subscriber_id).map(|s| (s.id, s.webhook_out(&store.fields))))
        .collect();
    let mut deliveries = Vec::new();
    let mut fired = Vec::new();
    for hook in store.webhooks.values().filter(|w| w.enabled) {
        let mine: Vec<&PendingEvent> = events.iter().filter(|e| hook.events.iter().any(|k| k == e.kind)).collect();
        if mine.is_empty() {
            continue;
        }
        fired.push(hook.id);
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        if hook.batchable {
            let items: Vec<Nested> =
                mine.iter().filter_map(|e| subs.get(&e.subscriber_id).map(|s| nested(store, e, s, false))).collect();
            let total = items.len();
            bodies.push(serde_json::to_vec(&Envelope { events: items, total }).unwrap_or_default());
        } else {
            for e in mine {
                let Some(sub) = subs.get(&e.subscriber_id) else { continue };
                let body = if e.group.is_some() || e.campaign_id.is_some() {
                    serde_json::to_vec(&nested(store, e, sub, true))
                } else {
                    serde_json::to_vec(&Flat {
                        subscriber: sub,
                        event: e.kind,
                        account_id: store.account_id,
                        api_version: API_VERSION,
                    })
                };
                bodies.push(body.unwrap_or_default());
            }
        }
        for body in bodies {
            let signature = sign(&hook.secret, &body);
            let headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Signature".to_string(), signature),
            ];
            deliveries
                .push(Delivery { url: hook.url.clone(), build: Arc::new(move |_| (headers.clone(), body.clone())) });
        }
    }
    let at = now();
    for id in fired {
        if let Some(w) = store.webhooks.get_mut(&id) {
            w.last_fired_at = Some(at);
        }
    }
    deliveries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
