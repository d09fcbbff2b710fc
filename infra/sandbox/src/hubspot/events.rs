//! Outbound app webhooks: the events a change causes, filtered by the app's subscriptions,
//! sent as JSON arrays of at most 100 events, signed v1 and v3.
//! Documented at <https://developers.hubspot.com/docs/api/webhooks>
//! and <https://developers.hubspot.com/docs/api/webhooks/validating-requests>.

use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Delivery, Dispatcher, now_ms};

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Creation,
    Deletion,
    PropertyChange {
        name: String,
        value: String,
    },
    /// A merge: `primary` and `merged` became the new record `new_id`.
    Merge {
        primary: u64,
        merged: Vec<u64>,
        new_id: u64,
        moved: u32,
    },
    Restore,
    PrivacyDeletion,
    /// A company's property changed (the object id is the company's).
    CompanyPropertyChange {
        name: String,
        value: String,
    },
}

impl EventKind {
    pub fn subscription_type(&self) -> &'static str {
        match self {
            Self::Creation => "contact.creation",
            Self::Deletion => "contact.deletion",
            Self::PropertyChange { .. } => "contact.propertyChange",
            Self::Merge { .. } => "contact.merge",
            Self::Restore => "contact.restore",
            Self::PrivacyDeletion => "contact.privacyDeletion",
            Self::CompanyPropertyChange { .. } => "company.propertyChange",
        }
    }
}

/// One change to one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub object_id: u64,
    pub occurred_at: i64,
}

impl Event {
    pub fn new(kind: EventKind, object_id: u64, occurred_at: i64) -> Self {
        Self { kind, object_id, occurred_at }
    }
}

/// Who made a change: our API client (`INTEGRATION` + app id) or a user in the CRM UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Integration,
    User(u64),
}

/// One subscription of the app (`propertyName` only for `contact.propertyChange`; `"*"` = all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscription {
    #[serde(default)]
    pub id: u64,
    pub event_type: String,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// The app's webhook settings: one target URL and its subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSettings {
    pub target_url: String,
    #[serde(default)]
    pub subscriptions: Vec<WebhookSubscription>,
}

impl WebhookSettings {
    /// The subscriptions a contact sync wants (what an app declares in its webhooks config):
    /// contact creation, deletion, merge, restore, privacy deletion, every contact property
    /// change and every company property change.
    pub fn for_sync(target_url: impl Into<String>) -> Self {
        let plain =
            ["contact.creation", "contact.deletion", "contact.merge", "contact.restore", "contact.privacyDeletion"];
        let properties = ["contact.propertyChange", "company.propertyChange"];
        let subscriptions = plain
            .iter()
            .map(|t| WebhookSubscription { id: 0, event_type: t.to_string(), property_name: None, active: true })
            .chain(properties.iter().map(|t| WebhookSubscription {
                id: 0,
                event_type: t.to_string(),
                property_name: Some("*".into()),
                active: true,
            }))
            .collect();
        WebhookSettings { target_url: target_url.into(), subscriptions }.with_ids()
    }

    /// Gives every subscription an id (kept if set).
    pub fn with_ids(mut self) -> Self {
        for (i, s) in self.subscriptions.iter_mut().enumerate() {
            if s.id == 0 {
                s.id = 686_627 + i as u64;
            }
        }
        self
    }

    fn subscription_for(&self, kind: &EventKind) -> Option<&WebhookSubscription> {
        self.subscriptions.iter().filter(|s| s.active && s.event_type == kind.subscription_type()).find(
            |s| match kind {
                EventKind::PropertyChange { name, .. } | EventKind::CompanyPropertyChange { name, .. } => {
                    s.property_name.as_deref().is_some_and(|p| p == "*" || p == name)
                }
                _ => true,
            },
        )
    }
}

/// The identity stamped on every event.
#[derive(Debug, Clone)]
pub struct WebhookSource {
    pub portal_id: u64,
    pub app_id: u64,
    pub client_secret: String,
}

/// The event objects (without `attemptNumber`) for the subscribed events among `events`.
pub fn event_payloads(
    settings: &WebhookSettings,
    source: &WebhookSource,
    events: &[Event],
    actor: Actor,
    next_event_id: &mut dyn FnMut() -> u64,
) -> Vec<Value> {
    let (change_source, source_id) = match actor {
        Actor::Integration => ("INTEGRATION", source.app_id.to_string()),
        Actor::User(id) => ("CRM_UI", format!("userId:{id}")),
    };
    let mut out = Vec::new();
    for e in events {
        let Some(sub) = settings.subscription_for(&e.kind) else { continue };
        let mut v = json!({
            "eventId": next_event_id(),
            "subscriptionId": sub.id,
            "portalId": source.portal_id,
            "appId": source.app_id,
            "occurredAt": e.occurred_at,
            "subscriptionType": e.kind.subscription_type(),
            "objectId": e.object_id,
            "changeSource": change_source,
            "sourceId": source_id,
        });
        match &e.kind {
            EventKind::Creation => v["changeFlag"] = json!("CREATED"),
            EventKind::PropertyChange { name, value } | EventKind::CompanyPropertyChange { name, value } => {
                v["propertyName"] = json!(name);
                v["propertyValue"] = json!(value);
            }
            EventKind::Merge { primary, merged, new_id, moved } => {
                v["primaryObjectId"] = json!(primary);
                v["mergedObjectIds"] = json!(merged);
                v["newObjectId"] = json!(new_id);
                v["numberOfPropertiesMoved"] = json!(moved);
            }
            _ => {}
        }
        out.push(v);
    }
    out
}

/// The URI form HubSpot signs in v3 (step 2 of the v3 check).
pub fn decode_signed_uri(uri: &str) -> String {
    const ESCAPES: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_string();
    for (from, to) in ESCAPES {
        out = out.replace(from, to).replace(&from.to_lowercase(), to);
    }
    out
}

pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

pub fn sign_v3(client_secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).expect("any key length");
    mac.update(method.as_bytes());
    mac.update(decode_signed_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Queues `payloads` as requests of at most 100 events each.
pub fn deliver(dispatcher: &Dispatcher, settings: &WebhookSettings, secret: &str, payloads: Vec<Value>) {
    for chunk in payloads.chunks(100) {
        let events: Arc<Vec<Value>> = Arc::new(chunk.to_vec());
        let url = settings.target_url.clone();
        let secret = secret.to_string();
        let sign_url = url.clone();
        let build = Arc::new(move |attempt: u32| {
            let arr: Vec<Value> = events
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e["attemptNumber"] = json!(attempt);
                    e
                })
                .collect();
            let body = serde_json::to_vec(&arr).expect("events serialize");
            let ts = now_ms().to_string();
            let headers = vec![
                ("content-type".to_string(), "application/json".to_string()),
                (
                    "user-agent".to_string(),
                    "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client) - WebhooksExecutorDaemon-executor".to_string(),
                ),
                ("x-hubspot-request-timestamp".to_string(), ts.clone()),
                ("x-hubspot-signature".to_string(), sign_v1(&secret, &body)),
                ("x-hubspot-signature-version".to_string(), "v1".to_string()),
                ("x-hubspot-signature-v3".to_string(), sign_v3(&secret, "POST", &sign_url, &body, &ts)),
                ("x-hubspot-timeout-millis".to_string(), "10000".to_string()),
            ];
            (headers, body)
        });
        dispatcher.send(Delivery { url, build });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_documented_vectors() {
        let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
        let body = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        assert_eq!(
            sign_v1(secret, body.as_bytes()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            sign_v3(
                secret,
                "POST",
                "https://www.example.com/webhook_uri",
                br#"{"example_field":"example_value"}"#,
                "1700000000000"
            ),
            "rQEKkaNUiu+1qGF//O/pw4BCzstSqO1PyUnGICmf+7o="
        );
        assert_eq!(
            sign_v3(secret, "POST", "https://hooks.example.com/hubspot?portal=62515", body.as_bytes(), "1700000000000"),
            "TG5LEza+56rSdOP+q+2jN7hh5c2Jo3oxNA/X3MYsmIg="
        );
    }

    #[test]
    fn subscriptions_filter_events() {
        let settings = WebhookSettings {
            target_url: "http://x".into(),
            subscriptions: vec![
                WebhookSubscription { id: 0, event_type: "contact.creation".into(), property_name: None, active: true },
                WebhookSubscription {
                    id: 0,
                    event_type: "contact.propertyChange".into(),
                    property_name: Some("email".into()),
                    active: true,
                },
            ],
        }
        .with_ids();
        let source = WebhookSource { portal_id: 1, app_id: 2, client_secret: "s".into() };
        let events = vec![
            Event::new(EventKind::Creation, 5, 10),
            Event::new(EventKind::PropertyChange { name: "email".into(), value: "a@b.co".into() }, 5, 10),
            Event::new(EventKind::PropertyChange { name: "city".into(), value: "Oslo".into() }, 5, 10),
        ];
        let mut n = 0;
        let p = event_payloads(&settings, &source, &events, Actor::User(7), &mut || {
            n += 1;
            n
        });
        assert_eq!(p.len(), 2);
        assert_eq!(p[0]["changeFlag"], "CREATED");
        assert_eq!(p[1]["sourceId"], "userId:7");
        assert_eq!(p[1]["changeSource"], "CRM_UI");
        assert_eq!(p[1]["subscriptionId"], 686_628);
    }
}
