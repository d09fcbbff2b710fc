//! The HTTP core: headers, pacing against both rate-limit buckets, `Retry-After`, bounded
//! retries of transient failures, and the mapping of error bodies to [`Error`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmsync_http::budget::{self, Wait};
use hmsync_http::{Bucket, LastReading, Pacer, RateLimitReading, RetryPolicy, now_ms, parse_retry_after};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// The production API root.
pub const DEFAULT_BASE_URL: &str = "https://connect.mailerlite.com/api";

/// The API version this client was written against, sent as `X-Version` so later API changes
/// do not alter behaviour underneath it (<https://developers.mailerlite.com/docs/>).
pub const API_VERSION: &str = "2026-11-01";

/// Sent with every request: every official SDK names itself, and the API sits behind Cloudflare.
pub const USER_AGENT: &str = concat!("hmsync/", env!("CARGO_PKG_VERSION"), " (MailerLite client)");

/// Rate-limit bucket names in the [`Pacer`].
pub const REQUESTS_BUCKET: &str = "requests";
pub const IMPORTS_BUCKET: &str = "imports";

/// The sandbox's exact `Retry-After` in milliseconds (the real service never sends it; when
/// present it is preferred because whole seconds are too coarse under a `time_scale`).
pub const RETRY_AFTER_MS_HEADER: &str = "x-sandbox-retry-after-ms";

/// The pacer's windows are this much longer than the server's, so latency differences between
/// when we count a request and when the server does never push a window over the limit: a
/// share of the window plus a fixed allowance for network and scheduling jitter (which does
/// not shrink when a sandbox's `time_scale` shrinks the window).
const WINDOW_MARGIN: f64 = 1.02;
const JITTER_ALLOWANCE: Duration = Duration::from_millis(200);

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// API root, e.g. [`DEFAULT_BASE_URL`] or a sandbox's `http://127.0.0.1:PORT/api`.
    pub base_url: String,
    pub token: String,
    /// Divides the pacer's windows (match the sandbox's `time_scale`); 1.0 for the real API.
    pub time_scale: f64,
    pub requests_per_minute: u32,
    pub imports_per_minute: u32,
    /// Retries of 5xx, timeouts and connection failures.
    pub retry: RetryPolicy,
    /// How many 429s one call waits out before giving up with a rate-limit error.
    pub max_rate_limit_retries: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The longest wait (a 429's `Retry-After`, a backoff) slept through in-process; a longer
    /// one, or one past the work's time budget, ends the call with an error that carries the
    /// wait (see `hmsync_http::budget`).
    pub max_wait: Duration,
}

impl Config {
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            token: token.into(),
            time_scale: 1.0,
            requests_per_minute: 120,
            imports_per_minute: 5,
            retry: RetryPolicy::default(),
            max_rate_limit_retries: 10,
            timeout: Duration::from_secs(30),
            max_wait: budget::MAX_IN_PROCESS_WAIT,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_string();
        self
    }

    fn window(&self) -> Duration {
        let scale = if self.time_scale.is_finite() && self.time_scale > 0.0 { self.time_scale } else { 1.0 };
        Duration::from_secs(60).mul_f64(WINDOW_MARGIN / scale) + JITTER_ALLOWANCE
    }
}

/// A MailerLite account's client. Cheap to clone; clones share the pacer (one per account).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) config: Config,
    pacer: Pacer,
    /// MailerLite refused [`crate::SEGMENT_PAGE`] as a segment page size once: ask for the
    /// default size from then on.
    pub(crate) segment_limit_refused: std::sync::atomic::AtomicBool,
    /// The rate-limit headers of the last answer that had them.
    rate_limits: LastReading,
}

/// What a call is about, for error messages (`subscriber ada@example.com`).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub kind: &'static str,
    pub id: String,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        Target { kind, id: id.into() }
    }
}

/// Which failures a call sends again. A 429 is always waited out and sent again: the API
/// refused the request without doing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// 5xx, timeouts and connection failures too (reads, and writes that are safe to repeat).
    Transient,
    /// Nothing else: the caller finds out what happened (e.g. lists what exists) before trying again.
    OnlyRateLimited,
}

/// A successful reply.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Path segment encoding: emails keep `@` and `.` but `+`, `/`, `%`, … are escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'@').remove(b'.').remove(b'-').remove(b'_');

pub(crate) fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

impl Client {
    pub fn new(config: Config) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Transport(format!("building the HTTP client: {e}")))?;
        let window = config.window();
        let pacer = Pacer::new([
            Bucket::new(REQUESTS_BUCKET, config.requests_per_minute.max(1), window),
            Bucket::new(IMPORTS_BUCKET, config.imports_per_minute.max(1), window),
        ]);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                pacer,
                segment_limit_refused: Default::default(),
                rate_limits: LastReading::default(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The account's pacer (for planning and reports).
    pub fn pacer(&self) -> &Pacer {
        &self.inner.pacer
    }

    /// What MailerLite's `X-RateLimit-Limit` and `X-RateLimit-Remaining` said on the last answer
    /// that carried them (per minute).
    pub fn rate_limit_reading(&self) -> Option<RateLimitReading> {
        self.inner.rate_limits.get()
    }

    /// Sends one request: paced, with `Retry-After` honoured and transient failures retried.
    /// `import` counts it against the import bucket too.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        import: bool,
        target: &Target,
    ) -> Result<Reply, Error> {
        self.call_with(method, path, query, body, import, target, Resend::Transient).await
    }

    /// Like [`Client::call`], with a say in what is sent again: a create that timed out or got
    /// a 5xx may have happened, so sending it again could make a second one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        import: bool,
        target: &Target,
        resend: Resend,
    ) -> Result<Reply, Error> {
        let cfg = &self.inner.config;
        let url = format!("{}{}", cfg.base_url, path);
        let buckets: &[&str] = if import { &[REQUESTS_BUCKET, IMPORTS_BUCKET] } else { &[REQUESTS_BUCKET] };
        let mut attempt = 0u32;
        let mut limited = 0u32;
        loop {
            attempt += 1;
            // A pause a 429 asked for that is longer than this call may sleep, or pacing past the
            // time budget: the work comes back when there is room.
            let paused = self.inner.pacer.paused_for(buckets);
            let sent = if paused > budget::wait_allowance(cfg.max_wait) {
                Err(paused)
            } else {
                self.inner.pacer.acquire_within(buckets, budget::wait_allowance(Duration::MAX)).await
            };
            let sent = match sent {
                Ok(sent) => sent,
                Err(retry_after) if import => return Err(Error::ImportRateLimited { retry_after }),
                Err(retry_after) => return Err(Error::RateLimited { retry_after }),
            };
            let mut rb = self
                .inner
                .http
                .request(method.clone(), &url)
                .timeout(budget::request_timeout(cfg.timeout, MIN_REQUEST_TIMEOUT))
                .bearer_auth(&cfg.token)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Version", API_VERSION);
            if !query.is_empty() {
                rb = rb.query(query);
            }
            if let Some(b) = body {
                rb = rb.body(serde_json::to_vec(b).unwrap_or_default());
            }
            let response = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = if e.is_timeout() {
                        Error::Transient { status: None, message: format!("no answer within {:?}", cfg.timeout) }
                    } else {
                        Error::Transport(e.to_string())
                    };
                    if resend == Resend::Transient
                        && cfg.retry.should_retry(attempt)
                        && let Wait::Sleep(d) = budget::plan(cfg.retry.delay(attempt), cfg.max_wait)
                    {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            self.inner.pacer.settle(buckets, sent);
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let number =
                |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            let remaining = number("x-ratelimit-remaining");
            if let Some(remaining) = remaining {
                self.inner.pacer.observe_remaining(REQUESTS_BUCKET, remaining.min(u64::from(u32::MAX)) as u32);
            }
            self.inner.rate_limits.record(RateLimitReading {
                limit: number("x-ratelimit-limit"),
                remaining,
                window: Some(Duration::from_secs(60)),
                at_ms: now_ms(),
                ..RateLimitReading::default()
            });
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if resend == Resend::Transient
                        && cfg.retry.should_retry(attempt)
                        && let Wait::Sleep(d) = budget::plan(cfg.retry.delay(attempt), cfg.max_wait)
                    {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(Error::Transport(format!("reading the response: {e}")));
                }
            };
            match status {
                200..=299 => return Ok(Reply { status, body }),
                429 => {
                    let wait = retry_after(&headers).unwrap_or_else(|| cfg.retry.delay(limited + 1));
                    let import_limit = String::from_utf8_lossy(&body).contains("import creation");
                    let bucket = if import_limit { IMPORTS_BUCKET } else { REQUESTS_BUCKET };
                    // Every call of this account holds back; the next round hands the wait to the
                    // caller if it is longer than this call may sleep.
                    self.inner.pacer.pause(bucket, wait);
                    limited += 1;
                    // A 429 is not a failed attempt: it only says "later".
                    attempt -= 1;
                    if limited > cfg.max_rate_limit_retries {
                        return Err(if import_limit {
                            Error::ImportRateLimited { retry_after: wait }
                        } else {
                            Error::RateLimited { retry_after: wait }
                        });
                    }
                    tracing::debug!(?wait, bucket, "MailerLite 429, waiting");
                }
                408 | 500..=599 => {
                    let err = Error::Transient { status: Some(status), message: message_of(&body) };
                    if resend == Resend::Transient
                        && cfg.retry.should_retry(attempt)
                        && let Wait::Sleep(d) = budget::plan(cfg.retry.delay(attempt), cfg.max_wait)
                    {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
                _ => return Err(error_from(status, &body, target)),
            }
        }
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
        target: &Target,
    ) -> Result<T, Error> {
        let reply = self.call(Method::GET, path, query, None, false, target).await?;
        decode(&reply.body, path)
    }
}

/// The shortest timeout a request gets, even when the time budget is nearly spent (the
/// budget's own end stops the work then).
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// `X-Sandbox-Retry-After-Ms` when present, else `Retry-After`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        headers.get(RETRY_AFTER_MS_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after)
}

pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], context: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Decode { context: context.to_string(), message: e.to_string() })
}

/// The `message` of an error body (or the body itself when it is a bare string).
pub(crate) fn message_of(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
        Ok(Value::String(s)) => s,
        _ => String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// Maps a non-2xx answer (direct or inside a batch) to an [`Error`].
pub(crate) fn error_from(status: u16, body: &[u8], target: &Target) -> Error {
    let message = message_of(body);
    match status {
        401 => Error::Unauthorized,
        404 => Error::NotFound { what: format!("{} {}", target.kind, target.id), message },
        422 => {
            let errors: BTreeMap<String, Vec<String>> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("errors").cloned())
                .and_then(|e| serde_json::from_value(e).ok())
                .unwrap_or_default();
            Error::Validation { message, errors }
        }
        429 => Error::RateLimited { retry_after: Duration::from_secs(1) },
        408 | 500..=599 => Error::Transient { status: Some(status), message },
        _ => Error::Api { status, message },
    }
}

/// The refusal of a write that asked for `active` or `unconfirmed`: a 422 that names no field
/// but `status` (the only known refusal is a bare message, mailerlite-nodejs issue #37) is
/// MailerLite declining to reactivate the subscriber. Recognised by status code and field, not
/// by the message's wording. Anything else passes through.
pub(crate) fn reactivation_refusal(error: Error, subscriber: &str) -> Error {
    match error {
        Error::Validation { message, errors } if errors.keys().all(|k| k == "status") => {
            Error::ReactivationRefused { subscriber: subscriber.to_string(), message }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_by_status_and_body() {
        let t = Target::new("subscriber", "a@b.co");
        let e =
            error_from(422, br#"{"message":"x (and 1 more error)","errors":{"email":["bad"],"fields.n":["nan"]}}"#, &t);
        assert_eq!(e.field_errors("fields.n"), ["nan"]);
        assert!(e.to_string().contains("email: bad"));
        let bare = error_from(422, br#"{"message":"Whatever the wording"}"#, &t);
        assert!(matches!(reactivation_refusal(bare, "a@b.co"), Error::ReactivationRefused { .. }));
        let on_status = error_from(422, br#"{"message":"x","errors":{"status":["no"]}}"#, &t);
        let r = reactivation_refusal(on_status, "a@b.co");
        assert!(matches!(r, Error::ReactivationRefused { .. }));
        assert!(!r.is_transient());
        let on_email = error_from(422, br#"{"message":"x","errors":{"email":["taken"]}}"#, &t);
        assert!(matches!(reactivation_refusal(on_email, "a@b.co"), Error::Validation { .. }));
        let wording_alone = error_from(422, br#"{"message":"cannot be imported","errors":{"email":["x"]}}"#, &t);
        assert!(matches!(wording_alone, Error::Validation { .. }), "the wording decides nothing");
        assert_eq!(error_from(401, br#"{"message":"Unauthenticated."}"#, &t), Error::Unauthorized);
        assert!(matches!(error_from(422, br#""Campaign settings missing""#, &t), Error::Validation { .. }));
        assert!(error_from(503, b"", &t).is_transient());
    }

    #[test]
    fn emails_in_paths_escape_plus() {
        assert_eq!(segment("a+b@example.com"), "a%2Bb@example.com");
    }
}
