//! What waits to go out: batched webhook items until the next tick of the account's batch
//! clock, the injected webhook faults, and how deliveries are retried. When things are sent is
//! `super::delivery`'s business.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::common::{DeliveryOptions, Reservation, TimeScale};

/// Webhook delivery defaults: retries after 10 s, 100 s and 1000 s (scaled), 3 s timeout (as
/// documented).
pub fn default_delivery(time_scale: f64) -> DeliveryOptions {
    let scale = TimeScale(time_scale);
    DeliveryOptions {
        retry_delays_ms: [10u64, 100, 1000]
            .iter()
            .map(|s| scale.scale(Duration::from_secs(*s)).as_millis().max(1) as u64)
            .collect(),
        timeout_ms: 3_000,
        ..DeliveryOptions::default()
    }
}

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

pub(crate) struct Waiting {
    /// Items per webhook id, as JSON text, in order of the events.
    pub items: BTreeMap<u64, Vec<String>>,
    /// Keeps the dispatcher busy (so `wait_idle` waits) until the tick sends the items.
    pub reservation: Option<Reservation>,
    /// A task is sleeping until the next tick.
    pub scheduled: bool,
}

pub(crate) struct Outbox {
    /// The batch clock's origin: ticks fall on whole intervals after it.
    epoch: Instant,
    pub waiting: Mutex<Waiting>,
    pub faults: Mutex<(WebhookFaults, fastrand::Rng)>,
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
    pub fn until_next_tick(&self, interval: Duration) -> Duration {
        if interval.is_zero() {
            return Duration::ZERO;
        }
        let elapsed = self.epoch.elapsed().as_nanos();
        let step = interval.as_nanos();
        let next = elapsed.div_ceil(step) * step;
        Duration::from_nanos((next - elapsed).min(u64::MAX as u128) as u64)
    }
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
    pub fn with_faults(&self, items: Vec<String>) -> Vec<String> {
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
