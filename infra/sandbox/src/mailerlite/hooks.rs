//! Outbound webhook payloads (<https://developers.mailerlite.com/docs/webhooks.html>): which
//! body each event becomes, and signing. When they are sent is `super::delivery`'s business.
//!
//! - A webhook with `batchable: false` gets one request per event, at once: the flat shape (a)
//!   — the subscriber at the root plus `event`, `account_id` (integer) and `api_version`, REST
//!   field keys (`z_i_p`) and `null` for empty fields, as captured from a live account — or, for
//!   group events, shape (b) with `type`, `subscriber`, `group`.
//! - A webhook with `batchable: true` collects items and gets them about once a minute in one
//!   envelope `{"events":[…],"total":n}` (shape (e)). Items are the nested form
//!   `{"type", "subscriber", …}` with the documented example's subscriber: the `zip` key where
//!   REST says `z_i_p`, `""` for empty fields, and `opens_count`/`clicks_count` 0 inside
//!   `campaign.*` items. `campaign.*` items add `campaign`; `campaign.click` items also the clicked
//!   `url` (the real key is not documented).
//! - `Signature` = lowercase hex HMAC-SHA256 of the exact body bytes keyed with the secret.

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::json::OrderedMap;
use super::model::WebhookSubscriber;
use super::store::{PendingEvent, Store};
use crate::common::time_fmt::iso;

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

/// The subscriber as the documented batched example shows it: `zip` for the REST key `z_i_p`,
/// `""` for empty fields, no `location`, and (inside `campaign.*` items) zero counters.
fn batched_subscriber(sub: &WebhookSubscriber, campaign_item: bool) -> WebhookSubscriber {
    let mut out = sub.clone();
    out.fields = OrderedMap(
        sub.fields
            .0
            .iter()
            .map(|(k, v)| {
                let key = if k == "z_i_p" { "zip".to_string() } else { k.clone() };
                (key, if v.is_null() { Value::String(String::new()) } else { v.clone() })
            })
            .collect(),
    );
    out.location = None;
    if campaign_item {
        out.opens_count = 0;
        out.clicks_count = 0;
        out.open_rate = Value::from(0);
        out.click_rate = Value::from(0);
    }
    out
}

/// The body of a non-batched delivery of `e`.
pub fn single_body(store: &Store, e: &PendingEvent, sub: &WebhookSubscriber) -> Vec<u8> {
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
    body.unwrap_or_default()
}

/// One item of a batched envelope, as JSON text.
pub fn batched_item(store: &Store, e: &PendingEvent, sub: &WebhookSubscriber) -> String {
    let sub = batched_subscriber(sub, e.kind.starts_with("campaign."));
    serde_json::to_string(&nested(store, e, &sub, false)).unwrap_or_default()
}

/// `{"events":[…],"total":n}` from items that are JSON text.
pub fn envelope(items: &[String]) -> Vec<u8> {
    let mut out = String::from(r#"{"events":["#);
    out.push_str(&items.join(","));
    out.push_str(&format!(r#"],"total":{}}}"#, items.len()));
    out.into_bytes()
}

/// The headers of a delivery of `body` signed with `secret`.
pub fn headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![("Content-Type".to_string(), "application/json".to_string()), ("Signature".to_string(), sign(secret, body))]
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

    #[test]
    fn envelopes_count_their_items() {
        let body = envelope(&[r#"{"type":"a"}"#.to_string(), r#"{"type":"b"}"#.to_string()]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["events"][1]["type"], "b");
    }
}
