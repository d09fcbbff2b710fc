//! Incoming MailerLite webhooks (<https://developers.mailerlite.com/docs/webhooks.html>): signature verification
//! and typed events.
//!
//! Shapes handled: (a) flat subscriber events — the subscriber at the root with `event`;
//! (b) group events — `type`, `subscriber`, `group`; (c) automation events; (d) `campaign.sent`
//! (flat, `event`); (e) the batched envelope `{"events":[…],"total":n}` whose items may use
//! either form. Timestamps in either format, `account_id` as a number or a string, unknown keys
//! ignored, unknown events kept as [`WebhookEvent::Other`].
//!
//! One item that does not decode never costs the others: it is left out and its event type
//! listed in [`WebhookDelivery::skipped`] (a receiver that refused the whole delivery would get
//! it again and again, and MailerLite disables a webhook after 3 days of errors). Webhook
//! subscribers are normalised to the REST form: the documented batched example names the ZIP
//! field `zip` (REST: `z_i_p`) and sends `""` for empty fields (REST: `null`).

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::models::{Subscriber, Timestamp, count, id};

/// Checks the `Signature` header: lowercase hex HMAC-SHA256 of the raw body keyed with the
/// webhook's secret, compared in constant time. Verify the exact received bytes.
pub fn verify_signature(secret: &str, raw_body: &[u8], signature_header: &str) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(raw_body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let given = signature_header.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// A group named in a group event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupRef {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The campaign named in a campaign event. `date` is the send date, not the event time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CampaignRef {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "count")]
    pub total_recipients: u64,
    #[serde(default)]
    pub date: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AutomationRef {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// Subscriber-level event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberEventKind {
    Created,
    Updated,
    Unsubscribed,
    Bounced,
    SpamReported,
    Active,
    Deleted,
}

impl SubscriberEventKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "subscriber.created" => Self::Created,
            "subscriber.updated" => Self::Updated,
            "subscriber.unsubscribed" => Self::Unsubscribed,
            "subscriber.bounced" => Self::Bounced,
            "subscriber.spam_reported" => Self::SpamReported,
            "subscriber.active" => Self::Active,
            "subscriber.deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// One event from a webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    Subscriber {
        kind: SubscriberEventKind,
        subscriber: Box<Subscriber>,
    },
    AddedToGroup {
        subscriber: Box<Subscriber>,
        group: GroupRef,
    },
    RemovedFromGroup {
        subscriber: Box<Subscriber>,
        group: GroupRef,
    },
    /// `url` is the clicked link of a `campaign.click` when the payload names one (the key is
    /// not documented; `url` and `link.url` are read).
    CampaignOpen {
        subscriber: Box<Subscriber>,
        campaign: CampaignRef,
    },
    CampaignClick {
        subscriber: Box<Subscriber>,
        campaign: CampaignRef,
        url: Option<String>,
    },
    CampaignSent {
        campaign: CampaignRef,
    },
    Automation {
        kind: String,
        subscriber: Box<Subscriber>,
        automation: AutomationRef,
    },
    /// An event this client does not model, kept whole (`kind` is `"(none)"` when the item's
    /// type is not a plausible event name).
    Other {
        kind: String,
        payload: Value,
    },
}

impl WebhookEvent {
    /// The event name (`subscriber.created`, `campaign.open`, …).
    pub fn name(&self) -> String {
        match self {
            WebhookEvent::Subscriber { kind, .. } => match kind {
                SubscriberEventKind::Created => "subscriber.created",
                SubscriberEventKind::Updated => "subscriber.updated",
                SubscriberEventKind::Unsubscribed => "subscriber.unsubscribed",
                SubscriberEventKind::Bounced => "subscriber.bounced",
                SubscriberEventKind::SpamReported => "subscriber.spam_reported",
                SubscriberEventKind::Active => "subscriber.active",
                SubscriberEventKind::Deleted => "subscriber.deleted",
            }
            .to_string(),
            WebhookEvent::AddedToGroup { .. } => "subscriber.added_to_group".into(),
            WebhookEvent::RemovedFromGroup { .. } => "subscriber.removed_from_group".into(),
            WebhookEvent::CampaignOpen { .. } => "campaign.open".into(),
            WebhookEvent::CampaignClick { .. } => "campaign.click".into(),
            WebhookEvent::CampaignSent { .. } => "campaign.sent".into(),
            WebhookEvent::Automation { kind, .. } | WebhookEvent::Other { kind, .. } => kind.clone(),
        }
    }

    /// The subscriber the event is about, if any.
    pub fn subscriber(&self) -> Option<&Subscriber> {
        match self {
            WebhookEvent::Subscriber { subscriber, .. }
            | WebhookEvent::AddedToGroup { subscriber, .. }
            | WebhookEvent::RemovedFromGroup { subscriber, .. }
            | WebhookEvent::CampaignOpen { subscriber, .. }
            | WebhookEvent::CampaignClick { subscriber, .. }
            | WebhookEvent::Automation { subscriber, .. } => Some(subscriber),
            _ => None,
        }
    }
}

/// A parsed delivery: every event it carries, and the account when the payload names it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub account_id: Option<u64>,
    /// Whether it came in the batched `{"events":[…]}` envelope.
    pub batched: bool,
    pub events: Vec<WebhookEvent>,
    /// The event type of each item that did not decode (left out of `events`); `"(none)"` when
    /// the item names none. Only the type is kept: the content may hold personal data.
    pub skipped: Vec<String>,
}

fn account_of(v: &Value) -> Option<u64> {
    match v.get("account_id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn decode_err(e: serde_json::Error, what: &str) -> Error {
    Error::Decode { context: format!("webhook {what}"), message: e.to_string() }
}

/// The REST form of a webhook subscriber's fields (see the module doc).
fn normalize_fields(fields: &mut std::collections::BTreeMap<String, Value>) {
    if !fields.contains_key("z_i_p")
        && let Some(zip) = fields.remove("zip")
    {
        fields.insert("z_i_p".into(), zip);
    }
    for v in fields.values_mut() {
        if v.as_str() == Some("") {
            *v = Value::Null;
        }
    }
}

fn sub(v: &Value, kind: &str) -> Result<Box<Subscriber>, Error> {
    let mut s = serde_json::from_value::<Subscriber>(v.clone()).map_err(|e| decode_err(e, kind))?;
    normalize_fields(&mut s.fields);
    Ok(Box::new(s))
}

/// The event type an item names, for the list of skipped items: short, and only the characters
/// event names use.
fn kind_label(v: &Value) -> String {
    let kind = v.get("event").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or_default();
    let readable = !kind.is_empty()
        && kind.len() <= 64
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    if readable { kind.to_string() } else { "(none)".to_string() }
}

/// Parses one event in either form (flat with `event`, nested with `type`).
fn parse_event(v: &Value) -> Result<WebhookEvent, Error> {
    if !v.is_object() {
        return Err(Error::Decode { context: "webhook item".into(), message: "not an object".into() });
    }
    let kind = v.get("event").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or_default().to_string();
    // The nested form carries the subscriber under `subscriber`; the flat form is the subscriber.
    let subscriber_value = v.get("subscriber").filter(|s| s.is_object()).unwrap_or(v);
    // `campaign.sent` is the campaign itself (flat); the other campaign events nest it.
    let campaign = |flat: bool| -> Result<CampaignRef, Error> {
        let c = if flat { v.get("campaign").unwrap_or(v) } else { v.get("campaign").unwrap_or(&Value::Null) };
        serde_json::from_value(c.clone()).map_err(|e| decode_err(e, &kind))
    };
    if let Some(k) = SubscriberEventKind::parse(&kind) {
        return Ok(WebhookEvent::Subscriber { kind: k, subscriber: sub(subscriber_value, &kind)? });
    }
    let group = || -> Result<GroupRef, Error> {
        serde_json::from_value(v.get("group").cloned().unwrap_or(Value::Null)).map_err(|e| decode_err(e, &kind))
    };
    Ok(match kind.as_str() {
        "subscriber.added_to_group" => {
            WebhookEvent::AddedToGroup { subscriber: sub(subscriber_value, &kind)?, group: group()? }
        }
        "subscriber.removed_from_group" => {
            WebhookEvent::RemovedFromGroup { subscriber: sub(subscriber_value, &kind)?, group: group()? }
        }
        "campaign.open" => {
            WebhookEvent::CampaignOpen { subscriber: sub(subscriber_value, &kind)?, campaign: campaign(false)? }
        }
        "campaign.click" => {
            let url = v
                .get("url")
                .or_else(|| v.get("link").and_then(|l| l.get("url")))
                .and_then(Value::as_str)
                .map(str::to_string);
            WebhookEvent::CampaignClick { subscriber: sub(subscriber_value, &kind)?, campaign: campaign(false)?, url }
        }
        "campaign.sent" => WebhookEvent::CampaignSent { campaign: campaign(true)? },
        "subscriber.automation_triggered" | "subscriber.automation_completed" => {
            let automation = serde_json::from_value(v.get("automation").cloned().unwrap_or(Value::Null))
                .map_err(|e| decode_err(e, &kind))?;
            WebhookEvent::Automation { kind: kind.clone(), subscriber: sub(subscriber_value, &kind)?, automation }
        }
        // Named by a sanitised label: the name reaches logs.
        _ => WebhookEvent::Other { kind: kind_label(v), payload: v.clone() },
    })
}

/// Parses a delivery body (single event or batched envelope). Verify the signature first. Only
/// a body that is not a JSON object is an error; items that do not decode are listed in
/// [`WebhookDelivery::skipped`].
pub fn parse_webhook(raw_body: &[u8]) -> Result<WebhookDelivery, Error> {
    let v: Value = serde_json::from_slice(raw_body).map_err(|e| decode_err(e, "body"))?;
    if !v.is_object() {
        return Err(Error::Decode { context: "webhook body".into(), message: "not a JSON object".into() });
    }
    let (items, batched): (Vec<&Value>, bool) = match v.get("events").and_then(Value::as_array) {
        Some(items) => (items.iter().collect(), true),
        None => (vec![&v], false),
    };
    let mut delivery = WebhookDelivery {
        account_id: account_of(&v).or_else(|| items.iter().find_map(|i| account_of(i))),
        batched,
        events: Vec::with_capacity(items.len()),
        skipped: Vec::new(),
    };
    for item in items {
        match parse_event(item) {
            Ok(e) => delivery.events.push(e),
            Err(_) => delivery.skipped.push(kind_label(item)),
        }
    }
    Ok(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat `subscriber.unsubscribed` delivery captured from a live account (published as the sample
    /// payload of activepieces' MailerLite trigger).
    const FLAT: &str = r#"{"id":"112375610569918142","email":"subscriber@example.com","status":"unsubscribed","source":"api",
 "sent":0,"opens_count":0,"clicks_count":0,"open_rate":0,"click_rate":0,"ip_address":null,
 "subscribed_at":"2026-08-27T15:06:41.000000Z","unsubscribed_at":"2026-08-27T15:10:00.000000Z",
 "created_at":"2026-08-27T15:06:41.000000Z","updated_at":"2026-08-27T15:06:41.000000Z",
 "deleted_at":null,"forget_at":null,
 "fields":{"name":"Hook","last_name":"Probe","company":null,"country":null,"city":null,"phone":null,
           "state":null,"z_i_p":null,"loyalty_tier":null},
 "opted_in_at":null,"optin_ip":null,"location":null,
 "event":"subscriber.unsubscribed","account_id":2599924,"api_version":"2025-05"}"#;

    /// The batched example of MailerLite's webhook documentation, with ISO timestamps and `zip`.
    const BATCHED: &str = r#"{"events": [
   {"type": "campaign.open",
    "subscriber": {"id":"100000000000000000","email":"john.doe@example.com","status":"active","source":"ecommerce",
                   "sent":5,"opens_count":0,"clicks_count":0,"open_rate":0,"click_rate":0,"ip_address":null,
                   "subscribed_at":"2024-05-08T08:26:04.000000Z","unsubscribed_at":null,
                   "created_at":"2024-05-08T08:26:04.000000Z","updated_at":"2024-05-28T10:30:29.000000Z",
                   "deleted_at":null,"forget_at":null,
                   "fields":{"name":"","last_name":"","company":"","country":"","city":"","phone":"","state":"","zip":""},
                   "opted_in_at":null,"optin_ip":null},
    "campaign": {"id":"100000000000000000","name":"Campaign Example","total_recipients":100,
                 "preview_url":"https://preview_url","date":"2024-05-28T07:11:08.000000Z"}},
   {"type": "subscriber.brand_new_event", "whatever": 1}
 ],
 "total": 2}"#;

    #[test]
    fn parses_the_flat_capture() {
        let d = parse_webhook(FLAT.as_bytes()).unwrap();
        assert_eq!(d.account_id, Some(2599924));
        assert!(!d.batched);
        match &d.events[0] {
            WebhookEvent::Subscriber { kind: SubscriberEventKind::Unsubscribed, subscriber } => {
                assert_eq!(subscriber.email, "subscriber@example.com");
                assert_eq!(subscriber.field_text("name").as_deref(), Some("Hook"));
                assert!(subscriber.unsubscribed_at.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_batched_example_and_keeps_unknown_events() {
        let d = parse_webhook(BATCHED.as_bytes()).unwrap();
        assert!(d.batched);
        assert_eq!(d.events.len(), 2);
        assert!(
            matches!(&d.events[0], WebhookEvent::CampaignOpen { campaign, .. } if campaign.total_recipients == 100)
        );
        assert_eq!(d.events[1].name(), "subscriber.brand_new_event");
    }

    #[test]
    fn items_that_do_not_decode_are_skipped_and_named_by_type_only() {
        let body = r#"{"events":[
            {"type":"campaign.click","subscriber":{"id":"1","email":"a@b.co","status":"active"}},
            {"type":"subscriber.updated","subscriber":{"id":null,"email":"a@b.co","status":"active"}},
            "not an item",
            {"type":"subscriber.updated","subscriber":{"id":"2","email":"b@b.co","status":"active"}},
            {"type":"Secret <b>tag</b>","subscriber":"x"}
        ],"total":5}"#;
        let d = parse_webhook(body.as_bytes()).unwrap();
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[1].name(), "(none)", "an unknown type is kept, under a label safe to log");
        assert_eq!(d.skipped, ["campaign.click", "subscriber.updated", "(none)"]);
        assert!(parse_webhook(b"[1,2]").is_err(), "not an object");
        assert!(parse_webhook(b"{").is_err());
        let flat = parse_webhook(br#"{"event":"subscriber.created","id":"1","status":42}"#).unwrap();
        assert_eq!((flat.events.len(), flat.skipped.as_slice()), (0, ["subscriber.created".to_string()].as_slice()));
    }

    #[test]
    fn webhook_fields_take_the_rest_form() {
        let d = parse_webhook(BATCHED.as_bytes()).unwrap();
        let s = d.events[0].subscriber().unwrap();
        assert_eq!(s.fields.get("z_i_p"), Some(&Value::Null), "`zip` is `z_i_p`, and \"\" is null");
        assert!(!s.fields.contains_key("zip"));
        assert_eq!(s.fields.get("name"), Some(&Value::Null));
        let both = r#"{"event":"subscriber.updated","id":"1","email":"a@b.co","status":"active",
                       "fields":{"z_i_p":"0150","zip":"custom"}}"#;
        let d = parse_webhook(both.as_bytes()).unwrap();
        let s = d.events[0].subscriber().unwrap();
        assert_eq!((s.field_text("z_i_p").as_deref(), s.field_text("zip").as_deref()), (Some("0150"), Some("custom")));
    }

    #[test]
    fn parses_group_events_with_type() {
        let body = r#"{"type":"subscriber.added_to_group","subscriber":{"id":"1","email":"a@b.co","status":"active","created_at":"2022-12-20 11:15:27"},
                     "group":{"id":"196965768156415638","name":"AP Capture Group"},"account_id":"2599924"}"#;
        let d = parse_webhook(body.as_bytes()).unwrap();
        assert_eq!(d.account_id, Some(2599924));
        assert!(matches!(&d.events[0], WebhookEvent::AddedToGroup { group, .. } if group.name == "AP Capture Group"));
    }

    #[test]
    fn signatures_verify_in_constant_time() {
        let body = br#"{"events":[],"total":0}"#;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"N8j0kwRp1w").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(verify_signature("N8j0kwRp1w", body, &sig));
        assert!(verify_signature("N8j0kwRp1w", body, &sig.to_uppercase()));
        assert!(!verify_signature("N8j0kwRp1w", b"{}", &sig));
        assert!(!verify_signature("other", body, &sig));
        assert!(!verify_signature("N8j0kwRp1w", body, ""));
    }
}
