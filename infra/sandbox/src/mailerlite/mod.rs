//! The simulated MailerLite API (`connect.mailerlite.com/api`), faithful to
//! `shared/reference/mailerlite-api.md` and the recordings next to it.
//!
//! - [`MailerLiteSim::start`] binds a port and serves the API under `/api` and the admin API
//!   under `/__sandbox/mailerlite/` (see `infra/sandbox/README.md`, "MailerLite").
//! - [`MailerLite`] is the account itself: [`MailerLite::router`] mounts it anywhere, and its
//!   methods are the state helpers the admin routes call (seed, user edits, campaigns, …).
//!
//! Rate limits: every authenticated `/api` request counts against a sliding window of
//! `limit_per_minute` per 60 s; group imports and batches made only of `POST api/subscribers`
//! count against the import window (`imports_per_minute`) as well ("in addition to the global
//! API rate limit", reference §6). Windows are divided by `time_scale`. A refused request gets
//! 429, `Retry-After` in whole real seconds (rounded up, at least 1) and, sandbox-only,
//! `X-Sandbox-Retry-After-Ms` with the exact wait in milliseconds so a client under a
//! `time_scale` can honour it precisely. Only the configured token is valid, so "per token" and
//! "per account" coincide.

mod admin;
mod api;
mod campaigns;
mod delivery;
mod error;
mod hooks;
mod json;
mod model;
mod paging;
mod snapshot;
mod store;
mod time_fmt;

pub use admin::{
    DeliverySettings, FaultSettings, RateLimitSettings, SeedGroupMembership, SeedSpec, SeedSummary, UserEdit,
};
pub use campaigns::{CampaignSpec, CampaignSummary, Recipients};
pub use delivery::WebhookFaults;
pub use error::ApiError;
pub use hooks::sign as sign_webhook;
pub use model::{FieldType, GroupOut, LogEntryOut, SegmentOut, SegmentRule, Status, SubscriberOut};
pub use paging::{decode_cursor, encode_cursor};
pub use snapshot::{MailerLiteSnapshot, RESTORE_FIELD_ID_GAP, RESTORE_ID_GAP};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::common::{
    Admission, ChangeJournal, ChangedBy, DeliveryOptions, Dispatcher, Flavor, Instrumentation, SlidingWindowLimiter,
    StatsSnapshot, TimeScale, instrument,
};
use json::json_response;
use store::Store;

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
            webhook_batch_interval_ms: 60_000,
            segment_max_limit: 1000,
        }
    }
}

impl MailerLiteConfig {
    fn scale(&self) -> TimeScale {
        TimeScale(self.time_scale)
    }
}

/// The stats bucket counting accepted `/api` requests sent without a `User-Agent`.
pub const WITHOUT_USER_AGENT: &str = "without_user_agent";

/// The sandbox-only header with the exact `Retry-After` in milliseconds.
pub const RETRY_AFTER_MS_HEADER: &str = "x-sandbox-retry-after-ms";

struct Limits {
    requests: SlidingWindowLimiter,
    imports: SlidingWindowLimiter,
}

impl Limits {
    fn new(c: &MailerLiteConfig) -> Self {
        let window = c.scale().scale(Duration::from_secs(60));
        Self {
            requests: SlidingWindowLimiter::new(c.limit_per_minute.max(1), window),
            imports: SlidingWindowLimiter::new(c.imports_per_minute.max(1), window),
        }
    }
}

pub(crate) struct Shared {
    config: RwLock<MailerLiteConfig>,
    store: Mutex<Store>,
    limits: Mutex<Limits>,
    instrumentation: Arc<Instrumentation>,
    dispatcher: Dispatcher,
    outbox: delivery::Outbox,
    journal: ChangeJournal,
    base_url: String,
    /// The API routes without auth, limits or instrumentation: what `/api/batch` sub-requests
    /// run through.
    inner: OnceLock<Router>,
}

/// One simulated MailerLite account. Cheap to clone.
#[derive(Clone)]
pub struct MailerLite {
    shared: Arc<Shared>,
}

/// Webhook delivery defaults: retries after 10 s, 100 s and 1000 s (scaled), 3 s timeout (§7.3).
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

impl MailerLite {
    /// An account whose API root (as links in responses show it) is `base_url`, e.g.
    /// `http://127.0.0.1:8080/api`.
    pub fn new(config: MailerLiteConfig, base_url: impl Into<String>) -> Self {
        let flavor = MailerLiteFlavor { time_scale: config.time_scale };
        let instrumentation = Instrumentation::new(config.seed, flavor);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.account_id, config.seed)),
            limits: Mutex::new(Limits::new(&config)),
            dispatcher: Dispatcher::new(default_delivery(config.time_scale)),
            outbox: delivery::Outbox::new(),
            journal: ChangeJournal::default(),
            config: RwLock::new(config),
            instrumentation,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            inner: OnceLock::new(),
        });
        let ml = MailerLite { shared };
        let inner = api::routes().fallback(api::route_not_found).with_state(ml.clone());
        let _ = ml.shared.inner.set(inner);
        ml
    }

    /// The full router: `/api/*` (auth, limits, instrumentation) and `/__sandbox/mailerlite/*`.
    pub fn router(&self) -> Router {
        let api = api::routes()
            .route_layer(from_fn_with_state(self.clone(), gate))
            .route_layer(from_fn_with_state(self.shared.instrumentation.clone(), instrument))
            .route_layer(from_fn_with_state(self.clone(), fill_rate_headers))
            .fallback(gated_route_not_found)
            .with_state(self.clone());
        api.merge(admin::routes().with_state(self.clone()))
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
    pub(crate) fn store(&self) -> snapshot::StoreGuard<'_> {
        snapshot::StoreGuard(self.shared.store.lock().expect("store lock"))
    }

    pub(crate) fn inner_router(&self) -> Router {
        self.shared.inner.get().expect("inner router set at construction").clone()
    }

    /// Sends (or queues for the next batch) the webhooks the last API call or admin action
    /// produced, and journals its subscriber changes. Looks before it takes, so that a call
    /// that queued nothing does not mark the account changed (see `snapshot::StoreGuard`).
    pub(crate) fn flush_webhooks(&self, by: ChangedBy) {
        let outgoing = {
            let mut store = self.store();
            if store.pending.is_empty() {
                return;
            }
            let changes = store.pending.iter().filter(|e| e.kind.starts_with("subscriber."));
            self.shared.journal.record_now(changes.map(|e| (e.subscriber_id, e.kind)), by);
            delivery::route(&mut store)
        };
        self.send(outgoing);
    }

    /// Replaces the rate-limit settings (and the windows' time scale) at runtime; the windows
    /// start empty.
    pub fn set_rate_limits(&self, limit_per_minute: u32, imports_per_minute: u32, time_scale: f64) {
        let mut c = self.shared.config.write().expect("config lock");
        c.limit_per_minute = limit_per_minute;
        c.imports_per_minute = imports_per_minute;
        c.time_scale = time_scale;
        *self.shared.limits.lock().expect("limits lock") = Limits::new(&c);
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = self.shared.config.read().expect("config lock").token.clone();
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == token)
    }

    fn remaining(&self) -> u32 {
        self.shared.limits.lock().expect("limits lock").requests.remaining(Instant::now())
    }

    fn limit(&self) -> u32 {
        self.shared.config.read().expect("config lock").limit_per_minute
    }

    /// Counts a request in its windows, or says which refused it.
    fn admit(&self, import: bool) -> Result<u32, Box<Response>> {
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

trait CheckOnly {
    fn check_only(&mut self, now: Instant) -> Admission;
}

impl CheckOnly for SlidingWindowLimiter {
    /// Whether a request would fit, without counting it.
    fn check_only(&mut self, now: Instant) -> Admission {
        if self.remaining(now) > 0 {
            return Admission::Allowed { remaining: self.remaining(now) };
        }
        // Full: `check` refuses without counting and says when the oldest request leaves.
        self.check(now)
    }
}

fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
}

/// 429 with `Retry-After` in whole seconds (rounded up, at least 1) and the exact wait in ms.
fn too_many(retry_after: Duration, message: &str, limit: u32, remaining: u32) -> Response {
    let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &serde_json::json!({ "message": message }));
    let ms = retry_after.as_millis().max(1) as u64;
    let secs = ms.div_ceil(1000).max(1);
    r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    r.headers_mut().insert(RETRY_AFTER_MS_HEADER, HeaderValue::from(ms));
    set_rate_headers(r.headers_mut(), limit, remaining);
    r
}

fn unauthenticated() -> Response {
    json_response(StatusCode::UNAUTHORIZED, &serde_json::json!({ "message": "Unauthenticated." }))
}

/// Auth, rate limits and webhook flushing around every `/api` route.
async fn gate(State(ml): State<MailerLite>, req: Request, next: Next) -> Response {
    if !ml.authorized(req.headers()) {
        let mut r = unauthenticated();
        set_rate_headers(r.headers_mut(), ml.limit(), ml.remaining());
        return r;
    }
    let (req, import) = classify(req).await;
    let remaining = match ml.admit(import) {
        Ok(remaining) => remaining,
        Err(r) => return *r,
    };
    // Every official SDK names itself; the sandbox counts the requests that do not (the real
    // API sits behind Cloudflare, which may treat them as bots).
    if !req.headers().contains_key(http::header::USER_AGENT) {
        ml.shared.instrumentation.stats.count_bucket(WITHOUT_USER_AGENT);
    }
    let mut response = next.run(req).await;
    ml.flush_webhooks(ChangedBy::Api);
    set_rate_headers(response.headers_mut(), ml.limit(), remaining);
    response
}

/// Outermost: responses that never reached [`gate`] (injected faults) still carry the
/// rate-limit headers, as every real response does.
async fn fill_rate_headers(State(ml): State<MailerLite>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if !response.headers().contains_key("x-ratelimit-remaining") {
        set_rate_headers(response.headers_mut(), ml.limit(), ml.remaining());
    }
    response
}

/// Whether a request counts against the import window: group imports, and batches made only of
/// `POST api/subscribers` (the body is read and put back).
async fn classify(req: Request) -> (Request, bool) {
    let path = req.uri().path().to_string();
    if req.method() == Method::POST && path.ends_with("/import-subscribers") {
        return (req, true);
    }
    if !(req.method() == Method::POST && path == "/api/batch") {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let import = api::is_upsert_only_batch(&bytes);
    (Request::from_parts(parts, Body::from(bytes)), import)
}

/// Unknown `/api` routes: still authenticated and counted, then the real 404 body.
async fn gated_route_not_found(State(ml): State<MailerLite>, req: Request) -> Response {
    if !ml.authorized(req.headers()) {
        let mut r = unauthenticated();
        set_rate_headers(r.headers_mut(), ml.limit(), ml.remaining());
        return r;
    }
    let remaining = match ml.admit(false) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let mut r = api::route_not_found(req).await;
    set_rate_headers(r.headers_mut(), ml.limit(), remaining);
    r
}

/// How injected faults look: a MailerLite-style 5xx body, and 429 like the real limiter
/// (`Retry-After: 1`, scaled in the sandbox header).
struct MailerLiteFlavor {
    time_scale: f64,
}

impl Flavor for MailerLiteFlavor {
    fn server_error(&self, status: StatusCode) -> Response {
        let message = match status.as_u16() {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Server Error",
        };
        json_response(status, &serde_json::json!({ "message": message }))
    }

    fn rate_limited(&self) -> Response {
        let wait = TimeScale(self.time_scale).scale(Duration::from_secs(1));
        let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &serde_json::json!({"message": "Too Many Attempts."}));
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(1u64));
        r.headers_mut().insert(RETRY_AFTER_MS_HEADER, HeaderValue::from(wait.as_millis().max(1) as u64));
        r.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from(0u32));
        r
    }
}

/// A running simulator bound to a local port.
pub struct MailerLiteSim {
    account: MailerLite,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::ops::Deref for MailerLiteSim {
    type Target = MailerLite;
    fn deref(&self) -> &MailerLite {
        &self.account
    }
}

impl MailerLiteSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves the API in a spawned task.
    pub async fn start(config: MailerLiteConfig, addr: SocketAddr) -> std::io::Result<MailerLiteSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Self::serve(MailerLite::new(config, format!("http://{addr}/api")), listener, Router::new())
    }

    /// Serves `account` on a bound listener (its base URL must be `http://<listener address>/api`),
    /// with `extra` routes on the same server (the combined sandbox adds its cross-side admin
    /// routes this way).
    pub fn serve(
        account: MailerLite,
        listener: tokio::net::TcpListener,
        extra: Router,
    ) -> std::io::Result<MailerLiteSim> {
        let addr = listener.local_addr()?;
        let app = account.router().merge(extra);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mailerlite sandbox stopped");
            }
        });
        Ok(MailerLiteSim { account, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The account handle (clone it to keep using the state after the sim is dropped).
    pub fn account(&self) -> &MailerLite {
        &self.account
    }
}

impl Drop for MailerLiteSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
