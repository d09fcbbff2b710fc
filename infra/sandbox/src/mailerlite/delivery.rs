//! When webhooks go out. A webhook with `batchable: false` gets each event at once, one request
//! per event. A `batchable: true` webhook collects items and gets one envelope about once a
//! minute ("We send events in batches every minute", support.mailerlite.com/en/articles/6722796):
//! the account's clock ticks every `webhook_batch_interval_ms` (divided by `time_scale`), and
//! each tick sends every waiting webhook its envelope. Retries of a failed request (10 s, 100 s,
//! 1000 s, scaled) are the dispatcher's. Injected webhook faults ([`WebhookFaults`]) add items
//! of unknown event types and malformed items next to the real ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::MailerLite;
use super::hooks;
use super::model::WebhookSubscriber;
use super::store::{PendingEvent, Store};
use super::time_fmt::now;
use crate::common::{Delivery, Reservation, TimeScale};

/// Unknown and malformed webhook items, for testing how a receiver copes with what the docs do
/// not promise. Both kinds are sent in addition to the real items, so no real event is lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// Chance per envelope (or per non-batched request) of an extra item of an event type the
    /// docs do not list.
    pub unknown_event_rate: f64,
    /// Chance per real item of an extra, broken copy of it (no `campaign`, a `null` id, a
    /// subscriber that is not an object, a subscriber without email and status).
    pub malformed_item_rate: f64,
    pub seed: u64,
}

/// Event names MailerLite could send that the current docs do not list: one from the older
/// docs, one from the official CLI's event list.
const UNKNOWN_EVENTS: [&str; 2] = ["subscriber.added_through_form", "campaign.draft_created"];

struct Waiting {
    /// Items per webhook id, as JSON text, in order of the events.
    items: BTreeMap<u64, Vec<String>>,
    /// Keeps the dispatcher busy (so `wait_idle` waits) until the tick sends the items.
    reservation: Option<Reservation>,
    /// A task is sleeping until the next tick.
    scheduled: bool,
}

pub(crate) struct Outbox {
    /// The batch clock's origin: ticks fall on whole intervals after it.
    epoch: Instant,
    waiting: Mutex<Waiting>,
    faults: Mutex<(WebhookFaults, fastrand::Rng)>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            epoch: Instant::now(),
            waiting: Mutex::new(Waiting { items: BTreeMap::new(), reservation: None, scheduled: false }),
            faults: Mutex::new((WebhookFaults::default(), fastrand::Rng::with_seed(0))),
        }
    }

    /// How long until the next tick of an `interval` clock.
    fn until_next_tick(&self, interval: Duration) -> Duration {
        if interval.is_zero() {
            return Duration::ZERO;
        }
        let elapsed = self.epoch.elapsed().as_nanos();
        let step = interval.as_nanos();
        let next = elapsed.div_ceil(step) * step;
        Duration::from_nanos((next - elapsed).min(u64::MAX as u128) as u64)
    }
}

/// What one API call or admin action sends: requests for non-batchable webhooks now, items for
/// batchable ones later.
pub(crate) struct Outgoing {
    /// `(url, secret, body)` of each non-batched request.
    pub now: Vec<(String, String, String)>,
    /// `(webhook id, item)` of each batched item.
    pub batched: Vec<(u64, String)>,
}

fn delivery(url: &str, secret: &str, body: Vec<u8>) -> Delivery {
    let headers = hooks::headers(secret, &body);
    Delivery { url: url.to_string(), build: Arc::new(move |_| (headers.clone(), body.clone())) }
}

/// A broken copy of a real item or body (see [`WebhookFaults::malformed_item_rate`]).
fn malformed(item: &str, rng: &mut fastrand::Rng) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(item) else { return item.to_string() };
    let nested = v.get("subscriber").is_some_and(Value::is_object);
    match (rng.u8(0..4), nested) {
        (0, true) if v.get("campaign").is_some() => {
            v.as_object_mut().map(|o| o.remove("campaign"));
        }
        (0 | 1, true) => v["subscriber"]["id"] = Value::Null,
        (2, true) => v["subscriber"] = Value::String("unavailable".into()),
        (_, true) => {
            let id = v["subscriber"]["id"].clone();
            v["subscriber"] = serde_json::json!({ "id": id });
        }
        (0 | 1, false) => v["id"] = Value::Null,
        (2, false) => v["status"] = Value::from(42),
        (_, false) => {
            v.as_object_mut().map(|o| o.remove("email"));
        }
    }
    v.to_string()
}

/// An item (nested form) or body (flat form) of an event type the docs do not list, about the
/// subscriber of `like`.
fn unknown(like: &str, rng: &mut fastrand::Rng) -> String {
    let kind = UNKNOWN_EVENTS[rng.usize(0..UNKNOWN_EVENTS.len())];
    let Ok(mut v) = serde_json::from_str::<Value>(like) else { return format!(r#"{{"type":"{kind}"}}"#) };
    if let Some(o) = v.as_object_mut() {
        for key in ["group", "campaign", "url"] {
            o.remove(key);
        }
        if o.contains_key("event") {
            o.insert("event".into(), Value::from(kind));
        } else {
            o.insert("type".into(), Value::from(kind));
        }
    }
    v.to_string()
}

impl Outbox {
    /// `items` with the injected unknown and malformed ones added.
    fn with_faults(&self, items: Vec<String>) -> Vec<String> {
        let mut guard = self.faults.lock().expect("faults lock");
        let (faults, rng) = &mut *guard;
        if faults.unknown_event_rate <= 0.0 && faults.malformed_item_rate <= 0.0 {
            return items;
        }
        let mut out = Vec::with_capacity(items.len() + 1);
        for item in &items {
            out.push(item.clone());
            if faults.malformed_item_rate > 0.0 && rng.f64() < faults.malformed_item_rate {
                out.push(malformed(item, rng));
            }
        }
        if faults.unknown_event_rate > 0.0
            && rng.f64() < faults.unknown_event_rate
            && let Some(first) = items.first()
        {
            out.push(unknown(first, rng));
        }
        out
    }
}

/// Turns the store's pending events into requests (non-batchable webhooks) and items
/// (batchable ones). Called with the store locked, once per API call or admin action.
pub(crate) fn route(store: &mut Store) -> Outgoing {
    let events: Vec<PendingEvent> = std::mem::take(&mut store.pending);
    let mut out = Outgoing { now: Vec::new(), batched: Vec::new() };
    if events.is_empty() || store.webhooks.is_empty() {
        return out;
    }
    let subs: std::collections::HashMap<u64, WebhookSubscriber> = events
        .iter()
        .filter_map(|e| store.subscribers.get(&e.subscriber_id).map(|s| (s.id, s.webhook_out(&store.fields))))
        .collect();
    let mut fired = Vec::new();
    for hook in store.webhooks.values().filter(|w| w.enabled) {
        for e in events.iter().filter(|e| hook.events.iter().any(|k| k == e.kind)) {
            let Some(sub) = subs.get(&e.subscriber_id) else { continue };
            if hook.batchable {
                out.batched.push((hook.id, hooks::batched_item(store, e, sub)));
            } else {
                let body = String::from_utf8_lossy(&hooks::single_body(store, e, sub)).into_owned();
                out.now.push((hook.url.clone(), hook.secret.clone(), body));
                fired.push(hook.id);
            }
        }
    }
    let at = now();
    for id in fired {
        if let Some(w) = store.webhooks.get_mut(&id) {
            w.last_fired_at = Some(at);
        }
    }
    out
}

impl MailerLite {
    /// Replaces the webhook fault settings (and reseeds their random choices).
    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        let rng = fastrand::Rng::with_seed(faults.seed);
        *self.shared.outbox.faults.lock().expect("faults lock") = (faults, rng);
    }

    pub fn webhook_faults(&self) -> WebhookFaults {
        self.shared.outbox.faults.lock().expect("faults lock").0.clone()
    }

    /// Items waiting for the next batch tick, over every webhook.
    pub fn batched_items_waiting(&self) -> usize {
        self.shared.outbox.waiting.lock().expect("outbox lock").items.values().map(Vec::len).sum()
    }

    /// Sends what one API call or admin action produced.
    pub(crate) fn send(&self, outgoing: Outgoing) {
        let dispatcher = self.dispatcher();
        for (url, secret, body) in outgoing.now {
            // Injected faults travel as requests of their own next to the real one.
            for body in self.shared.outbox.with_faults(vec![body]) {
                dispatcher.send(delivery(&url, &secret, body.into_bytes()));
            }
        }
        if outgoing.batched.is_empty() {
            return;
        }
        let interval = {
            let c = self.config();
            TimeScale(c.time_scale).scale(Duration::from_millis(c.webhook_batch_interval_ms))
        };
        let start = {
            let mut w = self.shared.outbox.waiting.lock().expect("outbox lock");
            for (hook, item) in outgoing.batched {
                w.items.entry(hook).or_default().push(item);
            }
            if w.reservation.is_none() {
                w.reservation = Some(dispatcher.reserve());
            }
            !std::mem::replace(&mut w.scheduled, true)
        };
        if !start {
            return;
        }
        let wait = self.shared.outbox.until_next_tick(interval);
        if wait.is_zero() {
            self.flush_batches();
            return;
        }
        let ml = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            ml.flush_batches();
        });
    }

    /// The tick: every webhook with waiting items gets one envelope (webhooks deleted or
    /// disabled meanwhile get nothing).
    pub fn flush_batches(&self) {
        let (items, reservation) = {
            let mut w = self.shared.outbox.waiting.lock().expect("outbox lock");
            w.scheduled = false;
            (std::mem::take(&mut w.items), w.reservation.take())
        };
        let mut deliveries = Vec::new();
        {
            let mut store = self.store();
            let at = now();
            for (id, items) in items {
                let Some(hook) = store.webhooks.get_mut(&id).filter(|w| w.enabled) else { continue };
                let items = self.shared.outbox.with_faults(items);
                deliveries.push(delivery(&hook.url, &hook.secret, hooks::envelope(&items)));
                hook.last_fired_at = Some(at);
            }
        }
        for d in deliveries {
            self.dispatcher().send(d);
        }
        drop(reservation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_whole_intervals() {
        let outbox = Outbox::new();
        let interval = Duration::from_secs(3600);
        let wait = outbox.until_next_tick(interval);
        assert!(wait <= interval && wait > Duration::from_secs(3500), "{wait:?}");
        assert_eq!(outbox.until_next_tick(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn faults_add_items_and_keep_the_real_ones() {
        let outbox = Outbox::new();
        *outbox.faults.lock().unwrap() =
            (WebhookFaults { unknown_event_rate: 1.0, malformed_item_rate: 1.0, seed: 3 }, fastrand::Rng::with_seed(3));
        let item = r#"{"type":"campaign.open","subscriber":{"id":"1","email":"a@b.co","status":"active"},"campaign":{"id":"9"}}"#;
        let out = outbox.with_faults(vec![item.to_string()]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], item);
        assert_ne!(out[1], item);
        let unknown: Value = serde_json::from_str(&out[2]).unwrap();
        assert!(UNKNOWN_EVENTS.contains(&unknown["type"].as_str().unwrap()));
        let flat = r#"{"id":"1","email":"a@b.co","status":"active","event":"subscriber.created"}"#;
        for seed in 0..8 {
            let broken: Value = serde_json::from_str(&malformed(flat, &mut fastrand::Rng::with_seed(seed))).unwrap();
            assert!(broken["id"].is_null() || !broken["status"].is_string() || broken.get("email").is_none());
        }
    }
}
