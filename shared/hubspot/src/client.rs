//! The HTTP core: authentication (static token or OAuth with refresh), pacing under HubSpot's
//! rate limits, 429 handling by policy, bounded retries of transient failures, typed errors.

use std::sync::Arc;
use std::time::Duration;

use hmsync_http::budget::{self, Wait};
use hmsync_http::{Bucket, LastReading, Pacer, RateLimitReading, RetryPolicy, now_ms, parse_retry_after};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::error::{HubSpotError, from_response};
use crate::model::TokenInfo;
use crate::search_pace::{SearchPace, search_pace};

pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
pub const DEFAULT_APP_URL: &str = "https://app.hubspot.com";

const BURST: &str = "burst";

/// After this long without a `SECONDLY` 429, the portal's search pace comes back one step.
const SEARCH_CALM: Duration = Duration::from_secs(30);

/// Client settings; the defaults are HubSpot's documented limits for a private app.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotConfig {
    pub base_url: String,
    /// Requests per `burst_window` until HubSpot's first answer says the app's own limit
    /// (`X-HubSpot-RateLimit-Max` per `-Interval-Milliseconds`: 100 per 10 s on Free and
    /// Starter portals, 190 on Professional and Enterprise, 110 for OAuth apps), which then
    /// replaces it, up or down.
    pub burst_limit: u32,
    pub burst_window: Duration,
    /// Searches per second for the portal, shared by every client of the process that reaches
    /// it (HubSpot allows 5 per portal for every integration together).
    pub search_per_second: u32,
    /// Divides the pacer windows like the sandbox's `time_scale` (1.0 = real time).
    pub time_scale: f64,
    /// Added (unscaled) to every pacer window: the client counts a request when it sends it,
    /// HubSpot when it arrives, so network jitter must not push request 101 into the window.
    pub pacing_margin: Duration,
    pub retry: RetryPolicy,
    /// 429 answers retried (after waiting) before giving up with `RateLimited`.
    pub max_rate_limit_retries: u32,
    pub request_timeout: Duration,
    /// The longest wait (a `Retry-After`, a paused bucket, a backoff) slept through in-process;
    /// a longer one, or one past the work's time budget, ends the call with an error that
    /// carries the wait (see `hmsync_http::budget`).
    pub max_wait: Duration,
    /// Refresh an OAuth access token this long before it expires (at most half its lifetime).
    pub refresh_margin: Duration,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            burst_limit: 100,
            burst_window: Duration::from_secs(10),
            search_per_second: 4,
            time_scale: 1.0,
            pacing_margin: Duration::from_millis(250),
            retry: RetryPolicy::default(),
            max_rate_limit_retries: 10,
            request_timeout: Duration::from_secs(30),
            max_wait: budget::MAX_IN_PROCESS_WAIT,
            refresh_margin: Duration::from_secs(300),
        }
    }
}

impl HubSpotConfig {
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        if self.time_scale > 0.0 && self.time_scale.is_finite() { d.div_f64(self.time_scale) } else { d }
    }
    pub fn scaled_burst_window(&self) -> Duration {
        self.scaled(self.burst_window)
    }
    pub fn scaled_search_window(&self) -> Duration {
        self.scaled(Duration::from_secs(1))
    }
}

/// OAuth tokens as HubSpot issued them; persist them when the client reports an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    /// Epoch ms when the access token expires.
    pub expires_at_ms: i64,
    /// Seconds the access token was issued for.
    pub expires_in: u64,
    #[serde(default)]
    pub hub_id: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Called with every new token set (so it can be stored, e.g. in Secrets Manager).
pub type TokenCallback = Arc<dyn Fn(&TokenSet) + Send + Sync>;

/// How the client authenticates.
#[derive(Clone)]
pub enum Auth {
    /// A private-app / project-app static token or a service key (no expiry).
    StaticToken(String),
    /// An OAuth app installation: refreshed before expiry and once after a 401.
    OAuth {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        /// A still valid access token, if one is known.
        access_token: Option<String>,
        expires_at_ms: Option<i64>,
        on_update: Option<TokenCallback>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Auth::StaticToken(_) => f.write_str("Auth::StaticToken(..)"),
            Auth::OAuth { client_id, .. } => write!(f, "Auth::OAuth {{ client_id: {client_id}, .. }}"),
        }
    }
}

struct OAuthState {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    access_token: Option<String>,
    expires_at_ms: i64,
    lifetime: Duration,
    on_update: Option<TokenCallback>,
}

enum AuthState {
    Static(String),
    OAuth(Box<OAuthState>),
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Burst,
    Search,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) config: HubSpotConfig,
    pub(crate) pacer: Pacer,
    auth: Mutex<AuthState>,
    /// The portal behind the credentials, once known (an OAuth token says it; a static token's
    /// is read from the account details before the first search).
    portal_id: std::sync::OnceLock<u64>,
    /// The portal's search pace, shared with every client of the process ([`search_pace`]).
    search: tokio::sync::OnceCell<Arc<SearchPace>>,
    /// The rate-limit headers of the last answer that had them.
    rate_limits: LastReading,
}

/// The HubSpot API client. Cheap to clone; clones share the pacer and the tokens.
#[derive(Clone)]
pub struct HubSpotClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotClient").field("base_url", &self.inner.config.base_url).finish_non_exhaustive()
    }
}

/// Where a static (private or project app) token is described.
pub const PRIVATE_APP_TOKEN_INFO: &str = "/oauth/v2/private-apps/get/access-token-info";
/// Where an OAuth token is described.
pub const INTROSPECT: &str = "/oauth/2026-03/token/introspect";

/// The answer of [`PRIVATE_APP_TOKEN_INFO`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrivateAppTokenInfo {
    #[serde(default)]
    hub_id: Option<u64>,
    #[serde(default)]
    app_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// The form response of the token endpoint.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: u64,
    #[serde(default)]
    hub_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
}

fn http_client(config: &HubSpotConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .user_agent(concat!("hmsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("reqwest client with rustls")
}

/// The URL that asks a HubSpot user to install the app (<https://developers.hubspot.com/docs/api/working-with-oauth>):
/// scopes space-separated.
pub fn authorize_url(
    app_url: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[&str],
    optional_scopes: &[&str],
    state: Option<&str>,
) -> String {
    let mut url =
        url::Url::parse(&format!("{}/oauth/authorize", app_url.trim_end_matches('/'))).expect("valid app url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id);
        q.append_pair("scope", &scopes.join(" "));
        if !optional_scopes.is_empty() {
            q.append_pair("optional_scope", &optional_scopes.join(" "));
        }
        q.append_pair("redirect_uri", redirect_uri);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    // form encoding writes spaces as `+`; HubSpot documents `%20` for the scope list.
    url.to_string().replace('+', "%20")
}

async fn token_request(
    http: &reqwest::Client,
    base_url: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse, HubSpotError> {
    let resp = http
        .post(format!("{}/oauth/v3/token", base_url.trim_end_matches('/')))
        .form(form)
        .send()
        .await
        .map_err(|e| HubSpotError::Transport(e.to_string()))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| HubSpotError::Transport(e.to_string()))?;
    if status == 200 {
        return serde_json::from_str(&text).map_err(|e| HubSpotError::Decode(format!("token response: {e}")));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == 400 || status == 401 {
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        return Err(HubSpotError::Unauthorized {
            reason: format!("{} {}: {}", field("error"), field("status"), field("message")).trim().to_string(),
        });
    }
    Err(from_response(status, &body, None))
}

/// Exchanges an authorization code for tokens (`authorization_code` grant, v3 endpoint).
pub async fn exchange_code(
    base_url: &str,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    code: &str,
) -> Result<TokenSet, HubSpotError> {
    let http = http_client(&HubSpotConfig::default());
    let t = token_request(
        &http,
        base_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("redirect_uri", redirect_uri),
            ("code", code),
        ],
    )
    .await?;
    let refresh_token =
        t.refresh_token.ok_or_else(|| HubSpotError::Decode("token response without refresh_token".into()))?;
    Ok(TokenSet {
        expires_at_ms: now_ms() + (t.expires_in as i64) * 1000,
        access_token: t.access_token,
        refresh_token,
        expires_in: t.expires_in,
        hub_id: t.hub_id,
        scopes: t.scopes,
    })
}

/// A request before it is sent.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub body: Option<&'a Value>,
    pub limit: Limit,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str) -> Self {
        Self { method: Method::GET, path, query: Vec::new(), body: None, limit: Limit::Burst }
    }
    pub fn post(path: &'a str, body: &'a Value) -> Self {
        Self { method: Method::POST, path, query: Vec::new(), body: Some(body), limit: Limit::Burst }
    }
    pub fn with_method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }
    pub fn search(mut self) -> Self {
        self.limit = Limit::Search;
        self
    }
}

impl HubSpotClient {
    pub fn new(auth: Auth, config: HubSpotConfig) -> Self {
        let pacer = Pacer::new([Bucket::new(
            BURST,
            config.burst_limit.max(1),
            config.scaled_burst_window() + config.pacing_margin,
        )]);
        let auth = match auth {
            Auth::StaticToken(t) => AuthState::Static(t),
            Auth::OAuth { client_id, client_secret, refresh_token, access_token, expires_at_ms, on_update } => {
                AuthState::OAuth(Box::new(OAuthState {
                    client_id,
                    client_secret,
                    refresh_token,
                    expires_at_ms: if access_token.is_some() { expires_at_ms.unwrap_or(0) } else { 0 },
                    access_token,
                    lifetime: Duration::from_secs(1800),
                    on_update,
                }))
            }
        };
        Self {
            inner: Arc::new(Inner {
                http: http_client(&config),
                config,
                pacer,
                auth: Mutex::new(auth),
                portal_id: std::sync::OnceLock::new(),
                search: tokio::sync::OnceCell::new(),
                rate_limits: LastReading::default(),
            }),
        }
    }

    pub fn config(&self) -> &HubSpotConfig {
        &self.inner.config
    }

    /// The pacer of the burst limit (for reports and the benchmark's bound).
    pub fn pacer(&self) -> &Pacer {
        &self.inner.pacer
    }

    /// What HubSpot's rate-limit headers said on the last answer that carried them (search
    /// answers carry none; the daily pair comes only with static tokens).
    pub fn rate_limit_reading(&self) -> Option<RateLimitReading> {
        self.inner.rate_limits.get()
    }

    /// The portal behind the credentials, if a call has told it yet.
    pub fn known_portal_id(&self) -> Option<u64> {
        self.inner.portal_id.get().copied()
    }

    /// Records the portal behind the credentials (callers that know it save a request).
    pub fn set_portal_id(&self, portal_id: u64) {
        let _ = self.inner.portal_id.set(portal_id);
    }

    /// The search pace of this client's portal, found on first use.
    pub async fn search_pace(&self) -> Result<Arc<SearchPace>, HubSpotError> {
        self.inner
            .search
            .get_or_try_init(|| async {
                let portal = match self.known_portal_id() {
                    Some(p) => p,
                    None => {
                        let p = self.account_details().await?.portal_id;
                        self.set_portal_id(p);
                        p
                    }
                };
                let c = &self.inner.config;
                Ok(search_pace(
                    &c.base_url,
                    portal,
                    c.search_per_second,
                    c.scaled_search_window() + c.pacing_margin,
                    c.scaled(SEARCH_CALM),
                ))
            })
            .await
            .cloned()
    }

    /// The bearer token to use now; refreshes an OAuth token that is (nearly) expired or when `force`.
    async fn bearer(&self, force: bool) -> Result<String, HubSpotError> {
        let mut auth = self.inner.auth.lock().await;
        match &mut *auth {
            AuthState::Static(t) => Ok(t.clone()),
            AuthState::OAuth(o) => {
                let margin = self.inner.config.refresh_margin.min(o.lifetime / 2).as_millis() as i64;
                let fresh = o.access_token.is_some() && o.expires_at_ms - margin > now_ms();
                if fresh && !force {
                    return Ok(o.access_token.clone().unwrap_or_default());
                }
                let t = token_request(
                    &self.inner.http,
                    &self.inner.config.base_url,
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", &o.client_id),
                        ("client_secret", &o.client_secret),
                        ("refresh_token", &o.refresh_token),
                    ],
                )
                .await?;
                o.access_token = Some(t.access_token.clone());
                o.expires_at_ms = now_ms() + (t.expires_in as i64) * 1000;
                if let Some(hub) = t.hub_id {
                    let _ = self.inner.portal_id.set(hub);
                }
                o.lifetime = Duration::from_secs(t.expires_in);
                if let Some(r) = t.refresh_token {
                    o.refresh_token = r;
                }
                if let Some(cb) = &o.on_update {
                    cb(&TokenSet {
                        access_token: t.access_token.clone(),
                        refresh_token: o.refresh_token.clone(),
                        expires_at_ms: o.expires_at_ms,
                        expires_in: t.expires_in,
                        hub_id: t.hub_id,
                        scopes: t.scopes,
                    });
                }
                Ok(t.access_token)
            }
        }
    }

    async fn is_oauth(&self) -> bool {
        matches!(&*self.inner.auth.lock().await, AuthState::OAuth(_))
    }

    /// What HubSpot says about these credentials: the portal, the scopes granted and, for an
    /// OAuth install, the portal's domain. A static token is asked with
    /// `POST /oauth/v2/private-apps/get/access-token-info`, an OAuth access token with the token
    /// introspection endpoint (`POST /oauth/2026-03/token/introspect`); both carry the token in
    /// the body, never in a URL that could reach a log.
    pub async fn token_info(&self) -> Result<TokenInfo, HubSpotError> {
        let token = self.bearer(false).await?;
        let client = {
            let auth = self.inner.auth.lock().await;
            match &*auth {
                AuthState::Static(_) => None,
                AuthState::OAuth(o) => Some((o.client_id.clone(), o.client_secret.clone())),
            }
        };
        let Some((client_id, client_secret)) = client else {
            let body = serde_json::json!({ "tokenKey": token });
            let info: PrivateAppTokenInfo = self.send(Call::post(PRIVATE_APP_TOKEN_INFO, &body)).await?;
            return Ok(TokenInfo { hub_id: info.hub_id, hub_domain: None, app_id: info.app_id, scopes: info.scopes });
        };
        let resp = self
            .inner
            .http
            .post(format!("{}{INTROSPECT}", self.inner.config.base_url.trim_end_matches('/')))
            .form(&[
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.as_str()),
                ("token", token.as_str()),
                ("token_type_hint", "access_token"),
            ])
            .send()
            .await
            .map_err(|e| HubSpotError::Transport(format!("POST {INTROSPECT}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| HubSpotError::Transport(format!("POST {INTROSPECT}: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            return Err(from_response(status, &body, None));
        }
        if body.get("active") == Some(&Value::Bool(false)) {
            return Err(HubSpotError::Unauthorized { reason: "the access token is not active".into() });
        }
        serde_json::from_value(body).map_err(|e| HubSpotError::Decode(format!("token introspection: {e}")))
    }

    /// Sends a call and decodes the JSON answer (`Value::Null` for an empty body).
    pub(crate) async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, HubSpotError> {
        let value = self.send_value(call).await?;
        serde_json::from_value(value).map_err(|e| HubSpotError::Decode(e.to_string()))
    }

    /// Sends a call; a 207 is a success (the caller reads its `errors`). Writes are retried after
    /// 5xx and timeouts too: HubSpot may have applied one, so a retried create can come back as a
    /// 409 conflict naming the record it made, which callers treat as "exists, link it".
    pub(crate) async fn send_value(&self, call: Call<'_>) -> Result<Value, HubSpotError> {
        let config = &self.inner.config;
        let url = format!("{}{}", config.base_url.trim_end_matches('/'), call.path);
        let search = match call.limit {
            Limit::Search => Some(Box::pin(self.search_pace()).await?),
            Limit::Burst => None,
        };
        let buckets: &[&str] = match call.limit {
            Limit::Burst => &[BURST],
            Limit::Search => &[],
        };
        let mut attempt = 0u32;
        let mut rate_limited = 0u32;
        let mut refreshed = false;
        loop {
            let token = match self.bearer(false).await {
                Ok(t) => t,
                // A refresh that failed for a transient reason is retried like any request.
                Err(e) if e.is_transient() && config.retry.should_retry(attempt + 1) => {
                    attempt += 1;
                    match budget::plan(config.retry.delay(attempt), config.max_wait) {
                        Wait::Sleep(d) => tokio::time::sleep(d).await,
                        Wait::GiveUp(_) => return Err(e),
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A pause the server asked for (a 429's Retry-After) longer than this call may
            // sleep, or pacing past the time budget: the work comes back when there is room.
            let policy = if call.limit == Limit::Search { "SECONDLY" } else { "TEN_SECONDLY_ROLLING" };
            let paused = match &search {
                Some(pace) => pace.paused_for(),
                None => self.inner.pacer.paused_for(buckets),
            };
            if paused > budget::wait_allowance(config.max_wait) {
                return Err(HubSpotError::RateLimited { policy: policy.to_string(), retry_after: Some(paused) });
            }
            let allowance = budget::wait_allowance(Duration::MAX);
            let acquired = match &search {
                Some(pace) => {
                    let acquired = pace.acquire_within(allowance).await;
                    if acquired.is_ok() {
                        // Searches are paced per portal, but each one still counts as this
                        // client's request (the status page's requests per hour); no bucket is
                        // named.
                        self.inner.pacer.acquire(&[]).await;
                    }
                    acquired
                }
                None => self.inner.pacer.acquire_within(buckets, allowance).await,
            };
            let sent = match acquired {
                Ok(sent) => sent,
                Err(wait) => {
                    return Err(HubSpotError::RateLimited { policy: policy.to_string(), retry_after: Some(wait) });
                }
            };
            attempt += 1;
            let timeout = budget::request_timeout(config.request_timeout, MIN_REQUEST_TIMEOUT);
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(&token)
                .query(&call.query)
                .timeout(timeout);
            if let Some(b) = call.body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    // Timeouts and connection failures: bounded retries, then a transient error.
                    let err = HubSpotError::Transport(format!("{} {}: {e}", call.method, call.path));
                    if config.retry.should_retry(attempt)
                        && let Wait::Sleep(d) = budget::plan(config.retry.delay(attempt), config.max_wait)
                    {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            match &search {
                Some(pace) => pace.settle(sent),
                None => self.inner.pacer.settle(buckets, sent),
            }
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            self.observe_rate_limit_headers(&headers);
            let text = match resp.text().await {
                Ok(t) => t,
                Err(e) => {
                    let err = HubSpotError::Transport(format!("{} {}: reading the body: {e}", call.method, call.path));
                    if config.retry.should_retry(attempt)
                        && let Wait::Sleep(d) = budget::plan(config.retry.delay(attempt), config.max_wait)
                    {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            if (200..300).contains(&status) {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text)
                    .map_err(|e| HubSpotError::Decode(format!("{} {}: {e}", call.method, call.path)));
            }
            let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({"message": text}));
            let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
            let err = from_response(status, &body, retry_after);
            match &err {
                HubSpotError::Unauthorized { .. } if !refreshed && self.is_oauth().await => {
                    // One refresh after a 401 (an access token revoked or expired early).
                    refreshed = true;
                    self.bearer(true).await?;
                    continue;
                }
                HubSpotError::RateLimited { policy, .. } if rate_limited < config.max_rate_limit_retries => {
                    rate_limited += 1;
                    // TEN_SECONDLY_ROLLING: wait out the burst window; SECONDLY (search's
                    // "secondly limit", or the deprecated per-second policy): one second.
                    let wait = match (policy.as_str(), call.limit) {
                        ("TEN_SECONDLY_ROLLING", _) => config.scaled_burst_window(),
                        ("SECONDLY", _) | (_, Limit::Search) => config.scaled_search_window(),
                        _ => config.scaled_burst_window(),
                    };
                    let wait = retry_after.unwrap_or(wait);
                    tracing::debug!(policy, ?wait, path = call.path, "HubSpot rate limit; waiting");
                    // Every call holds back; the next round hands the wait to the caller if it is
                    // longer than this call may sleep.
                    match &search {
                        // Another integration of the portal searches too: this portal's
                        // searches go slower from now on.
                        Some(pace) => pace.refused(wait),
                        None => self.inner.pacer.pause(BURST, wait),
                    }
                    continue;
                }
                // The portal is moving between data centres for hours: retrying inside this
                // call cannot help; the caller comes back after the Retry-After.
                HubSpotError::Transient { status: 477, .. } => return Err(err),
                HubSpotError::Transient { status, .. } if config.retry.should_retry(attempt) => {
                    let mut wait = config.retry.delay(attempt);
                    if *status == 423 {
                        // Locked: HubSpot asks for at least 2 s.
                        wait = wait.max(self.inner.config.scaled(Duration::from_secs(2)));
                    }
                    if let Some(ra) = retry_after {
                        wait = wait.max(ra);
                    }
                    match budget::plan(wait, config.max_wait) {
                        Wait::Sleep(d) => tokio::time::sleep(d).await,
                        // E.g. a 477 "Migration in Progress" with a Retry-After of hours.
                        Wait::GiveUp(d) => return Err(err.with_retry_after(d)),
                    }
                    continue;
                }
                _ => return Err(err),
            }
        }
    }
}

/// The shortest timeout a request gets, even when the time budget is nearly spent (the
/// budget's own end stops the work then).
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

impl HubSpotClient {
    /// Adopts what HubSpot's rate-limit headers say about this app's burst limit: its size
    /// and window (`X-HubSpot-RateLimit-Max`, `-Interval-Milliseconds`, which differ by app kind
    /// and portal tier), and what is left of it (`-Remaining`, when another client of the app
    /// spent some). Search answers carry none of them.
    fn observe_rate_limit_headers(&self, headers: &reqwest::header::HeaderMap) {
        let number =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(max), Some(interval_ms)) =
            (number("x-hubspot-ratelimit-max"), number("x-hubspot-ratelimit-interval-milliseconds"))
            && max > 0
            && interval_ms > 0
        {
            let window = Duration::from_millis(interval_ms) + self.inner.config.pacing_margin;
            if self.inner.pacer.reconfigure(BURST, max.min(u64::from(u32::MAX)) as u32, window) {
                tracing::debug!(max, interval_ms, "HubSpot burst limit taken from its rate-limit headers");
            }
        }
        if let Some(remaining) = number("x-hubspot-ratelimit-remaining") {
            self.inner.pacer.observe_remaining(BURST, remaining.min(u64::from(u32::MAX)) as u32);
        }
        self.inner.rate_limits.record(RateLimitReading {
            limit: number("x-hubspot-ratelimit-max"),
            remaining: number("x-hubspot-ratelimit-remaining"),
            window: number("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis),
            daily_limit: number("x-hubspot-ratelimit-daily"),
            daily_remaining: number("x-hubspot-ratelimit-daily-remaining"),
            at_ms: now_ms(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_encodes_scopes_with_spaces() {
        let u = authorize_url(
            "https://app.hubspot.com",
            "cid",
            "https://example.com/cb",
            &["oauth", "crm.objects.contacts.read"],
            &[],
            Some("s1"),
        );
        assert_eq!(
            u,
            "https://app.hubspot.com/oauth/authorize?client_id=cid&scope=oauth%20crm.objects.contacts.read&redirect_uri=https%3A%2F%2Fexample.com%2Fcb&state=s1"
        );
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let a = Auth::StaticToken("pat-na1-secret".into());
        assert!(!format!("{a:?}").contains("secret"));
    }
}
