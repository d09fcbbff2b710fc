//! Rate limits: every authenticated `/api` request counts against a sliding window of
//! `limit_per_minute` per 60 s; group imports and batches made only of `POST api/subscribers`
//! count against the import window (`imports_per_minute`) as well ("in addition to the global
//! API rate limit", <https://developers.mailerlite.com/docs/batching.html>). Windows are divided by
//! `time_scale`. A refused request gets 429, `Retry-After` in whole real seconds (rounded up, at
//! least 1) and, sandbox-only, `X-Sandbox-Retry-After-Ms` with the exact wait in milliseconds so
//! a client under a `time_scale` can honour it precisely. Only the configured token is valid, so
//! "per token" and "per account" coincide.

use std::time::Duration;

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::json::json_response;
use crate::common::{Admission, Flavor, SlidingWindowLimiter, TimeScale};

/// The stats bucket counting accepted `/api` requests sent without a `User-Agent`.
pub const WITHOUT_USER_AGENT: &str = "without_user_agent";

/// The sandbox-only header with the exact `Retry-After` in milliseconds.
pub const RETRY_AFTER_MS_HEADER: &str = "x-sandbox-retry-after-ms";

pub(crate) struct Limits {
    pub requests: SlidingWindowLimiter,
    pub imports: SlidingWindowLimiter,
}

impl Limits {
    pub fn new(limit_per_minute: u32, imports_per_minute: u32, scale: TimeScale) -> Self {
        let window = scale.scale(Duration::from_secs(60));
        Self {
            requests: SlidingWindowLimiter::new(limit_per_minute.max(1), window),
            imports: SlidingWindowLimiter::new(imports_per_minute.max(1), window),
        }
    }
}

pub(crate) trait CheckOnly {
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

pub(crate) fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
}

/// 429 with `Retry-After` in whole seconds (rounded up, at least 1) and the exact wait in ms.
pub(crate) fn too_many(retry_after: Duration, message: &str, limit: u32, remaining: u32) -> Response {
    let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &serde_json::json!({ "message": message }));
    let ms = retry_after.as_millis().max(1) as u64;
    let secs = ms.div_ceil(1000).max(1);
    r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    r.headers_mut().insert(RETRY_AFTER_MS_HEADER, HeaderValue::from(ms));
    set_rate_headers(r.headers_mut(), limit, remaining);
    r
}

pub(crate) fn unauthenticated() -> Response {
    json_response(StatusCode::UNAUTHORIZED, &serde_json::json!({ "message": "Unauthenticated." }))
}

/// How injected faults look: a MailerLite-style 5xx body, and 429 like the real limiter
/// (`Retry-After: 1`, scaled in the sandbox header).
pub(crate) struct MailerLiteFlavor {
    pub time_scale: f64,
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
