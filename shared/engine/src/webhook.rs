//! Incoming webhooks: verify the signature over the raw body, parse, route, drop our own
//! echoes, coalesce per contact and enqueue — fast (HubSpot waits 5 s, MailerLite 3 s) and only
//! after the work is safely queued. Never enqueue anything on a bad signature.

use std::collections::BTreeMap;

use hmsync_core::{EngagementEvent, EventKind};
use hmsync_hubspot as hs;
use hmsync_mailerlite as ml;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::engine::{Engine, EngineError};
use crate::message::{ContactRef, Origin, SyncMessage};
use crate::state::{Lifecycle, counters};

/// HubSpot bodies larger than this are refused before parsing (a delivery holds at most 100
/// events of a few hundred bytes each).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// MailerLite bodies larger than this are refused before parsing. A batched delivery carries a
/// full subscriber (and campaign) per item and its size is not documented, so the limit is the
/// platform's own: a synchronous Lambda invocation takes at most 6 MB of request payload
/// (API Gateway's HTTP API allows 10 MB, so Lambda's limit is the one that binds). Anything
/// larger could not reach the deployed function anyway.
pub const MAILERLITE_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// HubSpot sends at most 100 events per request; more is not HubSpot, and is refused before any
/// connection is looked up (an unsigned caller must not buy a store query per invented event).
pub const MAX_HUBSPOT_EVENTS: usize = 100;

/// The most distinct portals one HubSpot delivery may name. Every portal costs one route lookup
/// before the signature can be checked, so this bounds what an unsigned request can make us do.
/// A deployment's connected portals share a delivery only when they installed the same app.
pub const MAX_HUBSPOT_PORTALS: usize = 10;

/// What an unsigned MailerLite delivery is told, whatever the reason (an unknown connection, one
/// without a webhook secret, or a wrong signature), so the answer reveals no connection ids.
const UNSIGNED_MAILERLITE: &str = "the signature does not match the body for this webhook URL (a connection's \
     webhooks and their secrets are registered when it is activated)";

/// The key an unknown connection's delivery is checked against, so it costs what a known one does.
const UNKNOWN_CONNECTION_SECRET: &str = "no connection has this webhook URL";

/// A connection id as the config API makes them (1 to 64 letters, digits, '-' or '_'); anything
/// else cannot be a connection and is not looked up.
fn is_connection_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A HubSpot webhook request as received.
#[derive(Debug, Clone, Copy)]
pub struct HubSpotDelivery<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called (`https://host/path?query`), as signed.
    pub uri: &'a str,
    pub body: &'a [u8],
    pub signature_v3: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

/// What a webhook delivery led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub connections: usize,
    pub events: usize,
    /// MailerLite items that could not be read (left out; the rest was accepted).
    pub skipped: usize,
    /// HubSpot events written by our own app (dropped).
    pub echoes: usize,
    pub messages: usize,
}

/// Why a delivery was refused; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 400: not a webhook body.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the signature or its timestamp does not check out.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such connection (or no connection for the portal).
    #[error("{0}")]
    NotFound(String),
    /// 503: the work could not be queued; the sender retries.
    #[error("{0}")]
    Unavailable(String),
}

impl From<EngineError> for WebhookError {
    fn from(e: EngineError) -> Self {
        WebhookError::Unavailable(format!("the webhook could not be recorded ({e}); please retry"))
    }
}

impl Engine {
    /// A HubSpot webhook delivery (an array of events, possibly for several portals).
    pub async fn hubspot_webhook(&self, d: HubSpotDelivery<'_>) -> Result<Accepted, WebhookError> {
        if d.body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::BadRequest("the body is larger than 1 MB".into()));
        }
        // A request without a usable signature (none, empty, or a timestamp outside the 5-minute
        // window) is refused before the body is parsed or any connection is looked up.
        let now = self.now_ms();
        hs::check_v3_headers(d.timestamp, d.signature_v3, now)
            .map_err(|e| WebhookError::Unauthorized(format!("signature refused: {e}")))?;
        let events = hs::parse_events(d.body)
            .map_err(|e| WebhookError::BadRequest(format!("not a HubSpot webhook event array: {e}")))?;
        if events.is_empty() {
            return Err(WebhookError::BadRequest("the delivery has no events (HubSpot sends 1 to 100)".into()));
        }
        if events.len() > MAX_HUBSPOT_EVENTS {
            return Err(WebhookError::BadRequest(format!(
                "the delivery has {} events; HubSpot sends at most {MAX_HUBSPOT_EVENTS} per request",
                events.len()
            )));
        }
        let mut portals: Vec<u64> = events.iter().map(|e| e.portal_id).collect();
        portals.sort_unstable();
        portals.dedup();
        if portals.len() > MAX_HUBSPOT_PORTALS {
            return Err(WebhookError::BadRequest(format!(
                "the delivery names {} HubSpot portals; hmsync accepts at most {MAX_HUBSPOT_PORTALS} per request",
                portals.len()
            )));
        }
        let mut candidates: Vec<(u64, String)> = Vec::new();
        for p in &portals {
            for c in self.store.connections_for_portal(*p).await.map_err(EngineError::from)? {
                candidates.push((*p, c));
            }
        }
        // No connection can check the signature: refused like a bad signature, so the answer
        // does not tell a caller which portals are connected.
        if candidates.is_empty() {
            return Err(WebhookError::Unauthorized(
                "signature refused: no connection of this deployment can verify this delivery".into(),
            ));
        }
        let mut keyed = Vec::with_capacity(candidates.len());
        for (portal, conn_id) in candidates {
            let keys = self.apis.webhook_keys(&conn_id).await?;
            keyed.push((portal, conn_id, keys));
        }
        // An event our app wrote is the echo of one connection's write only if no other
        // connection of the portal writes with the same app: with two, one connection's write is
        // a real change for the other, and only the value check (against each link's base
        // values) can tell an echo.
        let app_users = |portal: u64, app: u64| {
            keyed.iter().filter(|(p, _, k)| *p == portal && k.hubspot_app_id == Some(app)).count()
        };
        let mut accepted = Accepted::default();
        let mut messages: Vec<SyncMessage> = Vec::new();
        let mut last_refusal = String::from("no connection has the HubSpot app's client secret to check the signature");
        for (portal, conn_id, keys) in &keyed {
            let (portal, conn_id) = (*portal, conn_id.clone());
            let own_app = keys.hubspot_app_id.filter(|app| app_users(portal, *app) == 1);
            let Some(secret) = keys.hubspot_client_secret.as_deref() else { continue };
            if let Err(e) = hs::verify_v3(secret, d.method, d.uri, d.body, d.timestamp, d.signature_v3, now) {
                last_refusal = format!("signature refused: {e}");
                continue;
            }
            accepted.connections += 1;
            let (state, _) = self.state(&conn_id).await?;
            // A route left from before the connection was pinned: its portal is not the
            // connection's, and its events are not the connection's business.
            if state.portal_id.is_some_and(|pinned| pinned != portal) {
                tracing::warn!(connection = %conn_id, portal, "HubSpot events of a portal the connection is not pinned to ignored");
                continue;
            }
            if state.lifecycle == Lifecycle::Draft {
                self.store
                    .add_and_set_counters(&conn_id, &[], &[(counters::HUBSPOT_DELIVERY_AT, now)])
                    .await
                    .map_err(EngineError::from)?;
                continue;
            }
            let company_properties: std::collections::BTreeSet<String> =
                match self.store.get_connection(&conn_id).await.map_err(EngineError::from)? {
                    Some(c) => c
                        .config
                        .mappings
                        .iter()
                        .filter(|m| m.hubspot_object == hmsync_core::HubSpotObject::Company)
                        .map(|m| m.hubspot_property.clone())
                        .collect(),
                    None => Default::default(),
                };
            let mut refs: Vec<ContactRef> = Vec::new();
            for e in events.iter().filter(|e| e.portal_id == portal) {
                accepted.events += 1;
                if own_app.is_some_and(|app| e.is_from_app(app)) {
                    accepted.echoes += 1;
                    continue;
                }
                if e.subscription_type == hs::SubscriptionType::ContactAssociationChange {
                    // Documented with `fromObjectId`/`toObjectId`, not `objectId`.
                    refs.extend(e.association_contacts().iter().map(|id| ContactRef::hubspot(&id.to_string())));
                    continue;
                }
                let Some(id) = e.object_id.map(|i| i.to_string()) else { continue };
                match &e.subscription_type {
                    hs::SubscriptionType::ContactPropertyChange => refs.push(ContactRef::HubSpot {
                        id,
                        changes: e
                            .property_name
                            .clone()
                            .map(|p| vec![(p, e.property_value.clone().unwrap_or_default())])
                            .unwrap_or_default(),
                        structural: e.property_name.is_none(),
                    }),
                    hs::SubscriptionType::ContactCreation
                    | hs::SubscriptionType::ContactDeletion
                    | hs::SubscriptionType::ContactRestore => refs.push(ContactRef::hubspot(&id)),
                    hs::SubscriptionType::ContactPrivacyDeletion => {
                        messages.push(SyncMessage::PrivacyDeletion { connection_id: conn_id.clone(), hubspot_id: id })
                    }
                    hs::SubscriptionType::ContactMerge => {
                        let survivor = e.merge_survivor().map(|s| s.to_string()).unwrap_or(id);
                        let mut merged: Vec<String> = e.merged_object_ids.iter().map(u64::to_string).collect();
                        if let Some(p) = e.primary_object_id.map(|p| p.to_string()).filter(|p| *p != survivor) {
                            merged.push(p);
                        }
                        messages.push(SyncMessage::HubSpotMerge {
                            connection_id: conn_id.clone(),
                            survivor_id: survivor,
                            merged_ids: merged,
                        });
                    }
                    hs::SubscriptionType::CompanyPropertyChange => {
                        if e.property_name.as_deref().is_some_and(|p| company_properties.contains(p)) {
                            messages
                                .push(SyncMessage::CompanyChanged { connection_id: conn_id.clone(), company_id: id });
                        }
                    }
                    other => {
                        tracing::debug!(connection = %conn_id, event = other.as_str(), "HubSpot event not used by the sync")
                    }
                }
            }
            for chunk in refs.chunks(self.settings.refs_per_message.max(1)) {
                messages.push(SyncMessage::Contacts {
                    connection_id: conn_id.clone(),
                    refs: chunk.to_vec(),
                    origin: Origin::Webhook,
                });
            }
            // One write per delivery and connection: the events it brought and when.
            self.store
                .add_and_set_counters(
                    &conn_id,
                    &[(counters::WEBHOOK_EVENTS, accepted.events as i64)],
                    &[(counters::HUBSPOT_DELIVERY_AT, now)],
                )
                .await
                .map_err(EngineError::from)?;
        }
        if accepted.connections == 0 {
            return Err(WebhookError::Unauthorized(last_refusal));
        }
        accepted.messages = messages.len();
        self.enqueue_delivery(&messages, &hubspot_delivery_key(&events, d.body)).await?;
        Ok(accepted)
    }

    /// A MailerLite webhook delivery for one connection (single-event or batched shape).
    pub async fn mailerlite_webhook(
        &self,
        conn_id: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Accepted, WebhookError> {
        if body.len() > MAILERLITE_MAX_BODY_BYTES {
            return Err(WebhookError::BadRequest("the body is larger than 6 MiB".into()));
        }
        // The signature is checked before anything says whether the connection exists: an
        // unknown id, a connection without a webhook secret and a wrong signature get the same
        // answer, so an unsigned caller cannot probe for connection ids.
        let Some(signature) = signature.filter(|s| !s.trim().is_empty()) else {
            return Err(WebhookError::Unauthorized("the Signature header is missing".into()));
        };
        let secrets = if is_connection_id(conn_id) {
            self.apis.webhook_keys(conn_id).await?.mailerlite_webhook_secrets
        } else {
            Vec::new()
        };
        // Each of the connection's webhooks has its own secret. Every one is checked (no early
        // exit), and a connection without one is checked against a placeholder, so the time
        // taken does not tell which matched, nor whether there was any.
        let signed = if secrets.is_empty() {
            std::hint::black_box(ml::verify_signature(UNKNOWN_CONNECTION_SECRET, body, signature));
            false
        } else {
            secrets.iter().fold(false, |signed, secret| signed | ml::verify_signature(secret, body, signature))
        };
        if !signed {
            tracing::info!(
                connection = conn_id,
                secrets = secrets.len(),
                "MailerLite delivery refused (unknown connection, no webhook secret, or a wrong signature)"
            );
            return Err(WebhookError::Unauthorized(UNSIGNED_MAILERLITE.into()));
        }
        if self.store.get_connection(conn_id).await.map_err(EngineError::from)?.is_none() {
            return Err(WebhookError::NotFound(format!("no connection {conn_id}")));
        }
        let delivery = ml::parse_webhook(body)
            .map_err(|e| WebhookError::BadRequest(format!("not a MailerLite webhook body: {e}")))?;
        // Items that do not decode are left out, counted and named by type only (their content
        // may hold personal data); the rest is accepted. Refusing the delivery would make
        // MailerLite send it again and again, then disable the webhook after 3 days of errors.
        if !delivery.skipped.is_empty() {
            let mut types = delivery.skipped.clone();
            types.sort();
            types.dedup();
            tracing::warn!(
                connection = conn_id,
                skipped = delivery.skipped.len(),
                types = %types.join(","),
                "MailerLite webhook items that could not be read were skipped"
            );
        }
        let skipped = [(counters::WEBHOOK_ITEMS_SKIPPED, delivery.skipped.len() as i64)];
        let skipped: &[(&str, i64)] = if delivery.skipped.is_empty() { &[] } else { &skipped };
        let mut accepted = Accepted {
            connections: 1,
            events: delivery.events.len(),
            skipped: delivery.skipped.len(),
            ..Accepted::default()
        };
        let now = self.now_ms();
        let (state, _) = self.state(conn_id).await?;
        if state.lifecycle == Lifecycle::Draft {
            self.store
                .add_and_set_counters(conn_id, skipped, &[(counters::MAILERLITE_DELIVERY_AT, now)])
                .await
                .map_err(EngineError::from)?;
            return Ok(accepted);
        }
        let mut refs: Vec<ContactRef> = Vec::new();
        let mut engagement: Vec<EngagementEvent> = Vec::new();
        for event in &delivery.events {
            if let Some(e) = engagement_event(event, now) {
                engagement.push(e);
            }
            match event {
                ml::WebhookEvent::Subscriber { kind, subscriber } => refs.push(ContactRef::MailerLite {
                    id: subscriber.id.clone(),
                    snapshot: (*kind != ml::SubscriberEventKind::Deleted).then(|| snapshot(subscriber)),
                    member: None,
                    group: None,
                    // A deletion must always be looked at; a creation that matches its link is
                    // the echo of our own create.
                    structural: *kind == ml::SubscriberEventKind::Deleted,
                }),
                ml::WebhookEvent::AddedToGroup { subscriber, group } => refs.push(ContactRef::MailerLite {
                    id: subscriber.id.clone(),
                    snapshot: None,
                    member: None,
                    group: Some((group.id.clone(), true)),
                    structural: false,
                }),
                ml::WebhookEvent::RemovedFromGroup { subscriber, group } => refs.push(ContactRef::MailerLite {
                    id: subscriber.id.clone(),
                    snapshot: None,
                    member: None,
                    group: Some((group.id.clone(), false)),
                    structural: false,
                }),
                other => {
                    tracing::debug!(connection = conn_id, event = %other.name(), "MailerLite event not used by the contact sync")
                }
            }
        }
        let mut messages: Vec<SyncMessage> = refs
            .chunks(self.settings.refs_per_message.max(1))
            .map(|c| SyncMessage::Contacts {
                connection_id: conn_id.to_string(),
                refs: c.to_vec(),
                origin: Origin::Webhook,
            })
            .collect();
        for chunk in engagement.chunks(self.settings.refs_per_message.max(1)) {
            messages.push(SyncMessage::Engagement { connection_id: conn_id.to_string(), events: chunk.to_vec() });
        }
        accepted.messages = messages.len();
        self.store
            .add_and_set_counters(
                conn_id,
                &[&[(counters::WEBHOOK_EVENTS, accepted.events as i64)], skipped].concat(),
                &[(counters::MAILERLITE_DELIVERY_AT, now)],
            )
            .await
            .map_err(EngineError::from)?;
        // MailerLite resends a delivery as it was: its bytes are its identity (its items carry
        // no event id).
        self.enqueue_delivery(&messages, &format!("mailerlite:{}", hex::encode(Sha256::digest(body)))).await?;
        Ok(accepted)
    }
}

/// What identifies a HubSpot delivery for deduplication: its events' ids (HubSpot resends the
/// same events with a higher `attemptNumber`, so the raw bytes of a retry differ), or its raw
/// bytes when an event carries no id.
fn hubspot_delivery_key(events: &[hs::WebhookEvent], body: &[u8]) -> String {
    if events.iter().any(|e| e.event_id == 0) {
        return format!("hubspot-body:{}", hex::encode(Sha256::digest(body)));
    }
    let mut ids: Vec<(u64, u64)> = events.iter().map(|e| (e.portal_id, e.event_id)).collect();
    ids.sort_unstable();
    let mut digest = Sha256::new();
    for (portal, event) in ids {
        digest.update(format!("{portal}:{event};").as_bytes());
    }
    format!("hubspot-events:{}", hex::encode(digest.finalize()))
}

/// The engagement a MailerLite event reports (webhook items carry no time: the receipt time is
/// used). The subscriber inside an open or click item is a snapshot whose counters need not
/// include the event (the documented `campaign.open` example shows `opens_count` 0), while the
/// subscriber events that may arrive before it carry fresh totals: an open or click is taken as
/// at least one open or click, never as one more on top of totals that may already hold it.
/// Totals only ever rise, and the scan's REST totals correct any that a stale item left low.
fn engagement_event(event: &ml::WebhookEvent, now_ms: i64) -> Option<EngagementEvent> {
    let (kind, subscriber, campaign, url) = match event {
        ml::WebhookEvent::CampaignOpen { subscriber, campaign } => (EventKind::Open, subscriber, Some(campaign), None),
        ml::WebhookEvent::CampaignClick { subscriber, campaign, url } => {
            (EventKind::Click, subscriber, Some(campaign), url.clone())
        }
        ml::WebhookEvent::Subscriber { kind: ml::SubscriberEventKind::Unsubscribed, subscriber } => {
            (EventKind::Unsubscribe, subscriber, None, None)
        }
        ml::WebhookEvent::Subscriber { kind: ml::SubscriberEventKind::Bounced, subscriber } => {
            (EventKind::Bounce, subscriber, None, None)
        }
        ml::WebhookEvent::Subscriber { kind: ml::SubscriberEventKind::SpamReported, subscriber } => {
            (EventKind::SpamReport, subscriber, None, None)
        }
        _ => return None,
    };
    Some(EngagementEvent {
        kind,
        subscriber_id: subscriber.id.clone(),
        email: subscriber.email.clone(),
        at_ms: now_ms,
        campaign_id: campaign.map(|c| c.id.clone()),
        campaign_name: campaign.map(|c| c.name.clone()).filter(|n| !n.is_empty()),
        url,
        opens_count: Some(if kind == EventKind::Open { subscriber.opens_count.max(1) } else { subscriber.opens_count }),
        clicks_count: Some(if kind == EventKind::Click {
            subscriber.clicks_count.max(1)
        } else {
            subscriber.clicks_count
        }),
    })
}

/// What the echo check compares: the subscriber's email, status and fields.
fn snapshot(s: &ml::Subscriber) -> Value {
    let fields: BTreeMap<String, Value> = s.fields.clone();
    json!({"email": s.email, "status": s.status.as_str(), "fields": fields})
}
