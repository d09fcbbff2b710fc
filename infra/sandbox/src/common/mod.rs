//! Machinery both simulators share: rate-limit windows, seeded fault injection, request
//! accounting, and outbound webhook delivery.

pub mod faults;
pub mod journal;
pub mod limiter;
pub mod people;
pub mod stats;
pub mod time_fmt;
pub mod webhooks;

pub use faults::{FaultAction, FaultInjector, FaultSpec};
pub use journal::{ChangeJournal, ChangedBy, JournalEntry};
pub use limiter::{Admission, SlidingWindowLimiter, TimeScale};
pub use stats::{EndpointStats, Stats, StatsSnapshot};
pub use webhooks::{
    AttemptObserver, Delivery, DeliveryOptions, Dispatcher, DispatcherStats, RecordedDelivery, Reservation,
};

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;

/// Milliseconds since the Unix epoch on the sandbox clock (the wall clock: both simulators
/// stamp changes and writes with it, so latencies between them are comparable). The simulators
/// share no code with hmsync itself, so they read the clock here rather than through `hmsync-http`.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How a simulator words the failures the fault injector produces, so that an injected 429 or
/// 5xx looks exactly like the real service's.
pub trait Flavor: Send + Sync + 'static {
    fn server_error(&self, status: StatusCode) -> Response;
    fn rate_limited(&self) -> Response;
}

/// Per-simulator instrumentation: counts every request per endpoint and applies injected faults.
pub struct Instrumentation {
    pub stats: Stats,
    pub faults: FaultInjector,
    flavor: Box<dyn Flavor>,
}

impl Instrumentation {
    pub fn new(seed: u64, flavor: impl Flavor) -> Arc<Self> {
        Arc::new(Self { stats: Stats::default(), faults: FaultInjector::new(seed), flavor: Box::new(flavor) })
    }
}

/// The endpoint key used by stats and fault rules: `"METHOD /route/template"`, e.g.
/// `"POST /crm/v3/objects/contacts/batch/update"` or `"GET /api/subscribers/{id}"`.
pub fn endpoint_key(method: &http::Method, matched: Option<&str>, path: &str) -> String {
    format!("{} {}", method, matched.unwrap_or(path))
}

/// axum middleware: requests under `/__sandbox/` (the admin API) are neither counted nor faulted;
/// every other request is counted under its endpoint key, may be delayed, failed with a 5xx or a
/// 429 before it reaches the handler, or answered late (a hang after the write was applied).
pub async fn instrument(State(inst): State<Arc<Instrumentation>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__sandbox") {
        return next.run(req).await;
    }
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let key = endpoint_key(req.method(), matched.as_deref(), &path);
    let decision = inst.faults.decide(&key);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let response = match decision.action {
        FaultAction::ServerError(code) => {
            inst.flavor.server_error(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        FaultAction::RateLimited => inst.flavor.rate_limited(),
        FaultAction::HangAfterWrite(hang) => {
            let response = next.run(req).await;
            tokio::time::sleep(hang).await;
            response
        }
        FaultAction::None => next.run(req).await,
    };
    inst.stats.record(&key, response.status().as_u16());
    response
}
