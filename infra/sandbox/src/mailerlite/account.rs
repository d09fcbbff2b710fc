//! One simulated MailerLite account: its settings, its data, its rate-limit windows, its
//! counters and its outbound webhooks, behind one cheap-to-clone handle. The routes that serve
//! it are in `super::server`, the handlers in `super::api` and `super::admin`.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use axum::Router;
use axum::response::Response;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::health::DISABLE_AFTER_MS;
use super::limits::{CheckOnly, Limits, MailerLiteFlavor, too_many};
use super::outbox::{Outbox, default_delivery};
use super::store::Store;
use crate::common::{Admission, ChangeJournal, Dispatcher, Instrumentation, StatsSnapshot, TimeScale};

/// The simulator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailerLiteConfig {
    /// The one API token accepted as `Authorization: Bearer <token>`.
    pub token: String,
    /// The account id (a string in REST bodies, an integer in webhook payloads).
    pub account_id: u64,
    /// The global window: requests per 60 s.
    pub limit_per_minute: u32,
    /// The import window: group imports and all-upsert batches per 60 s.
    pub imports_per_minute: u32,
    /// Divides every window (rate limits, webhook retry delays, import processing).
    pub time_scale: f64,
    /// Seeds ids, secrets, fault injection and campaign simulations.
    pub seed: u64,
    /// How long a group import reports `done: false` before it is done (real milliseconds,
    /// divided by `time_scale`). 0: done at once.
    pub import_delay_ms: u64,
    /// How long a webhook's deliveries may keep failing before it is set inactive (real
    /// milliseconds, divided by `time_scale`; MailerLite: 3 days).
    pub webhook_disable_after_ms: u64,
    /// How often batchable webhooks get their envelope (real milliseconds, divided by
    /// `time_scale`): a minute, as MailerLite documents. 0: at the end of each API call.
    pub webhook_batch_interval_ms: u64,
    /// The largest `limit` of `GET /segments/{id}/subscribers` (no maximum is documented; the
    /// groups' documented 1000 is assumed).
    pub segment_max_limit: usize,
}

impl Default for MailerLiteConfig {
    fn default() -> Self {
        Self {
            token: "ml-sandbox-token".into(),
            account_id: 252151,
            limit_per_minute: 120,
            imports_per_minute: 5,
            time_scale: 1.0,
            seed: 1,
            import_delay_ms: 0,
            webhook_disable_after_ms: DISABLE_AFTER_MS,
            webhook_batch_interval_ms: 60_000,
            segment_max_limit: 1000,
        }
    }
}

impl MailerLiteConfig {
    pub(super) fn scale(&self) -> TimeScale {
        TimeScale(self.time_scale)
    }
}

pub(crate) struct Shared {
    pub(super) config: RwLock<MailerLiteConfig>,
    pub(super) store: Mutex<Store>,
    pub(super) limits: Mutex<Limits>,
    pub(super) instrumentation: Arc<Instrumentation>,
    pub(super) dispatcher: Dispatcher,
    pub(super) outbox: Outbox,
    pub(super) journal: ChangeJournal,
    pub(super) base_url: String,
    /// The API routes without auth, limits or instrumentation: what `/api/batch` sub-requests
    /// run through.
    pub(super) inner: OnceLock<Router>,
}

/// One simulated MailerLite account. Cheap to clone.
#[derive(Clone)]
pub struct MailerLite {
    pub(super) shared: Arc<Shared>,
}

/// The account's data, locked. Every mutable access bumps the store's generation, which is how
/// a snapshot saver notices a change without comparing whole accounts: all writes go through
/// [`MailerLite::store`], so none can slip past.
pub(crate) struct StoreGuard<'a>(MutexGuard<'a, Store>);

impl Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.0
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        let store = &mut *self.0;
        store.generation = store.generation.wrapping_add(1);
        store
    }
}

impl MailerLite {
    /// An account whose API root (as links in responses show it) is `base_url`, e.g.
    /// `http://127.0.0.1:8080/api`.
    pub fn new(config: MailerLiteConfig, base_url: impl Into<String>) -> Self {
        let flavor = MailerLiteFlavor { time_scale: config.time_scale };
        let instrumentation = Instrumentation::new(config.seed, flavor);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.account_id, config.seed)),
            limits: Mutex::new(Limits::new(config.limit_per_minute, config.imports_per_minute, config.scale())),
            dispatcher: Dispatcher::new(default_delivery(config.time_scale)),
            outbox: Outbox::new(),
            journal: ChangeJournal::default(),
            config: RwLock::new(config),
            instrumentation,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            inner: OnceLock::new(),
        });
        let ml = MailerLite { shared };
        let account = Arc::downgrade(&ml.shared);
        ml.shared.dispatcher.observe_attempts(Arc::new(move |attempt| {
            if let Some(shared) = account.upgrade() {
                MailerLite { shared }.record_attempt(attempt);
            }
        }));
        ml
    }

    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn config(&self) -> MailerLiteConfig {
        self.shared.config.read().expect("config lock").clone()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.instrumentation.stats.snapshot()
    }

    /// Counters and fault injection (`instrumentation().faults.set(...)`).
    pub fn instrumentation(&self) -> &Arc<Instrumentation> {
        &self.shared.instrumentation
    }

    /// The outbound webhook dispatcher (options, log of every attempt, `wait_idle`).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }

    /// Every subscriber change with its millisecond stamp and who made it, while started (the
    /// benchmark's change latencies; the API's own timestamps have whole seconds).
    pub fn change_journal(&self) -> &ChangeJournal {
        &self.shared.journal
    }

    /// The account's data; writing through the guard marks it changed for snapshot savers.
    pub(crate) fn store(&self) -> StoreGuard<'_> {
        StoreGuard(self.shared.store.lock().expect("store lock"))
    }

    /// The API routes without auth, limits or instrumentation (what `/api/batch` sub-requests
    /// run through), built by `build` on first use.
    pub(crate) fn inner_router(&self, build: impl FnOnce() -> Router) -> Router {
        self.shared.inner.get_or_init(build).clone()
    }

    /// Replaces the one accepted API token: a key rotated in MailerLite (the old one stops
    /// working at once).
    pub fn set_token(&self, token: impl Into<String>) {
        self.shared.config.write().expect("config lock").token = token.into();
    }

    /// Replaces the rate-limit settings (and the windows' time scale) at runtime; the windows
    /// start empty.
    pub fn set_rate_limits(&self, limit_per_minute: u32, imports_per_minute: u32, time_scale: f64) {
        let mut c = self.shared.config.write().expect("config lock");
        c.limit_per_minute = limit_per_minute;
        c.imports_per_minute = imports_per_minute;
        c.time_scale = time_scale;
        *self.shared.limits.lock().expect("limits lock") =
            Limits::new(c.limit_per_minute, c.imports_per_minute, c.scale());
    }

    pub(super) fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = self.shared.config.read().expect("config lock").token.clone();
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == token)
    }

    pub(super) fn remaining(&self) -> u32 {
        self.shared.limits.lock().expect("limits lock").requests.remaining(Instant::now())
    }

    pub(super) fn limit(&self) -> u32 {
        self.shared.config.read().expect("config lock").limit_per_minute
    }

    /// Counts a request in its windows, or says which refused it.
    pub(super) fn admit(&self, import: bool) -> Result<u32, Box<Response>> {
        let mut limits = self.shared.limits.lock().expect("limits lock");
        let now = Instant::now();
        if let Admission::Limited { retry_after } = limits.requests.check_only(now) {
            return Err(Box::new(too_many(retry_after, "Too Many Attempts.", self.limit(), 0)));
        }
        if import && let Admission::Limited { retry_after } = limits.imports.check_only(now) {
            let remaining = limits.requests.remaining(now);
            return Err(Box::new(too_many(
                retry_after,
                "You're being rate limited on import creation.",
                self.limit(),
                remaining,
            )));
        }
        let remaining = match limits.requests.check(now) {
            Admission::Allowed { remaining } => remaining,
            Admission::Limited { retry_after } => {
                return Err(Box::new(too_many(retry_after, "Too Many Attempts.", self.limit(), 0)));
            }
        };
        let stats = &self.shared.instrumentation.stats;
        stats.count_bucket("requests");
        if import {
            limits.imports.check(now);
            stats.count_bucket("imports");
        }
        Ok(remaining)
    }
}
