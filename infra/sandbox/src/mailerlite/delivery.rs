//! When webhooks go out. A webhook with `batchable: false` gets each event at once, one request
//! per event. A `batchable: true` webhook collects items and gets one envelope about once a
//! minute ("We send events in batches every minute", support.mailerlite.com/en/articles/6722796):
//! the account's clock ticks every `webhook_batch_interval_ms` (divided by `time_scale`), and
//! each tick sends every waiting webhook its envelope. Retries of a failed request (10 s, 100 s,
//! 1000 s, scaled) are the dispatcher's. Injected webhook faults (`super::outbox::WebhookFaults`)
//! add items of unknown event types and malformed items next to the real ones.

use std::sync::Arc;
use std::time::Duration;

use super::account::MailerLite;
use super::hooks;
use super::model::WebhookSubscriber;
use super::outbox::WebhookFaults;
use super::store::{PendingEvent, Store};
use crate::common::time_fmt::now;
use crate::common::{ChangedBy, Delivery, TimeScale};

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
    /// Sends (or queues for the next batch) the webhooks the last API call or admin action
    /// produced, and journals its subscriber changes. Looks before it takes, so that a call
    /// that queued nothing does not mark the account changed (see `super::account::StoreGuard`).
    pub(crate) fn flush_webhooks(&self, by: ChangedBy) {
        let outgoing = {
            let mut store = self.store();
            if store.pending.is_empty() {
                return;
            }
            let changes = store.pending.iter().filter(|e| e.kind.starts_with("subscriber."));
            self.change_journal().record_now(changes.map(|e| (e.subscriber_id, e.kind)), by);
            route(&mut store)
        };
        self.send(outgoing);
    }

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
