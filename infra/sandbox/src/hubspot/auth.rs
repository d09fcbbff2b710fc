//! Authentication (static token, OAuth 2.0 codes and tokens, scopes) and the rate limits: a
//! rolling burst window per credential owner, the search window per account, the daily
//! allowance per account, and HubSpot's rate-limit headers.
//! Documented at <https://developers.hubspot.com/docs/api/working-with-oauth>
//! and <https://developers.hubspot.com/docs/api/usage-details>.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::errors::HsError;
use super::{HubSpotState, Limits};
use crate::common::{Admission, SlidingWindowLimiter};

/// What an authorization code or refresh token grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthGrant {
    pub scopes: Vec<String>,
    pub redirect_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessToken {
    scopes: Vec<String>,
    /// Snapshots keep the time left, so a restored token expires when it would have.
    #[serde(with = "crate::snapshot::tokio_instant", rename = "expires_in_ms")]
    expires_at: Instant,
}

/// Issued OAuth codes and tokens (all of it is kept in sandbox snapshots).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AuthState {
    codes: HashMap<String, OAuthGrant>,
    refresh: HashMap<String, OAuthGrant>,
    access: HashMap<String, AccessToken>,
    counter: u64,
}

impl AuthState {
    /// Changes whenever a code or token is issued, exchanged or revoked (a snapshot saver's
    /// change check; an `expire_all` alone does not count).
    pub(crate) fn generation(&self) -> (u64, usize, usize) {
        (self.counter, self.codes.len(), self.refresh.len())
    }

    fn token(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let a = fastrand::u64(..);
        let b = fastrand::u64(..);
        format!("{prefix}-{:04x}-{a:016x}{b:016x}-{:x}", a >> 48, self.counter)
    }

    /// Revokes a refresh token; issued access tokens keep working until they expire (as in v1).
    pub fn revoke(&mut self, refresh_token: &str) -> bool {
        self.refresh.remove(refresh_token).is_some()
    }

    /// Expires every access token now.
    pub fn expire_all(&mut self) -> usize {
        let now = Instant::now();
        for t in self.access.values_mut() {
            t.expires_at = now;
        }
        self.access.len()
    }
}

/// Who a request authenticated as, with the scopes its app was granted.
#[derive(Debug, Clone, PartialEq)]
enum Identity {
    Static { scopes: Vec<String> },
    OAuth { scopes: Vec<String> },
}

impl Identity {
    fn scopes(&self) -> &[String] {
        match self {
            Identity::Static { scopes } | Identity::OAuth { scopes } => scopes,
        }
    }
    fn is_static(&self) -> bool {
        matches!(self, Identity::Static { .. })
    }
}

fn identify(st: &HubSpotState, req: &Request) -> Result<Identity, HsError> {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(HsError::unauthorized)?;
    let c = st.config();
    if token == c.token {
        return Ok(Identity::Static { scopes: c.static_token_scopes });
    }
    let auth = st.auth.lock().expect("auth lock");
    match auth.access.get(token) {
        Some(t) if t.expires_at > Instant::now() => Ok(Identity::OAuth { scopes: t.scopes.clone() }),
        Some(_) => Err(HsError::expired()),
        None => Err(HsError::unauthorized()),
    }
}

/// Every scope the simulator checks: a static token has all of them unless the config says
/// otherwise (`HubSpotConfig::static_token_scopes`). `oauth` is added to every app by HubSpot.
pub const ALL_SCOPES: [&str; 17] = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.notes.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.lists.read",
    "crm.lists.write",
    "communication_preferences.read",
    "communication_preferences.write",
    "communication_preferences.read_write",
    "communication_preferences.statuses.batch.read",
    "communication_preferences.statuses.batch.write",
];

/// The granular scopes a request needs (<https://developers.hubspot.com/docs/api/scopes>); any one suffices.
fn required_scopes(method: &http::Method, path: &str) -> Vec<&'static str> {
    let read = method == http::Method::GET || path.ends_with("/batch/read") || path.ends_with("/search");
    if path.contains("/properties/") {
        let companies = path.contains("/companies") || path.contains("/0-2");
        return match (companies, read) {
            (false, true) => vec!["crm.schemas.contacts.read", "crm.objects.contacts.read"],
            (false, false) => vec!["crm.schemas.contacts.write"],
            (true, true) => vec!["crm.schemas.companies.read", "crm.objects.companies.read"],
            (true, false) => vec!["crm.schemas.companies.write"],
        };
    }
    if path.contains("/lists") {
        return if read { vec!["crm.lists.read"] } else { vec!["crm.lists.write"] };
    }
    if path.contains("/associations") || (path.contains("/companies") && read) {
        return vec!["crm.objects.companies.read"];
    }
    if path.contains("/companies") {
        return vec!["crm.objects.companies.write"];
    }
    if path.contains("/notes") {
        return if read { vec!["crm.objects.notes.read"] } else { vec!["crm.objects.contacts.write"] };
    }
    if path.starts_with("/communication-preferences") {
        return if read {
            vec!["communication_preferences.read", "communication_preferences.read_write"]
        } else {
            vec!["communication_preferences.write", "communication_preferences.read_write"]
        };
    }
    if path.contains("/contacts") {
        return if read { vec!["crm.objects.contacts.read"] } else { vec!["crm.objects.contacts.write"] };
    }
    vec!["oauth"]
}

/// The search guide: "a request body over 3,000 characters" is refused with a 400.
pub const SEARCH_BODY_LIMIT: u64 = 3_000;

/// Whether a search request's body is over the limit (by its declared length; clients send it).
fn search_body_too_long(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > SEARCH_BODY_LIMIT)
}

fn is_search(method: &http::Method, path: &str) -> bool {
    method == http::Method::POST && path.contains("/objects/") && path.ends_with("/search")
}

fn header(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(name, v);
    }
}

/// The admission of one request, or the refusal to send back.
struct Admitted {
    search: bool,
    identity: Identity,
    burst_remaining: u32,
    daily_remaining: u64,
}

fn admit(st: &HubSpotState, identity: Identity, search: bool) -> Result<Admitted, HsError> {
    let c = st.config();
    let mut limits = st.limits.lock().expect("limits lock");
    let now = Instant::now();
    let Limits { burst, search: search_limiter, daily_used, daily_started, daily_exhausted, .. } = &mut *limits;
    // A fixed window from the start of the sandbox (HubSpot resets at midnight in the account's
    // time zone; a fixed, scalable window keeps benchmarks reproducible).
    if now.duration_since(*daily_started) >= c.daily_window() {
        *daily_started = now;
        *daily_used = 0;
    }
    // The daily allowance applies to static tokens only: OAuth calls have no daily limit.
    let daily_applies = identity.is_static();
    if daily_applies && (*daily_exhausted || *daily_used >= c.daily_limit) {
        return Err(HsError::daily());
    }
    let mut burst_remaining = 0;
    if search {
        if let Admission::Limited { .. } = search_limiter.check(now) {
            return Err(HsError::search_secondly());
        }
        st.instrumentation.stats.count_bucket("search");
    } else {
        // The burst window belongs to the app: one for the static token, one for all OAuth
        // tokens (whose limit differs: 110 per 10 s per installing account).
        let (owner, limit) = match &identity {
            Identity::Static { .. } => (c.token.clone(), c.burst_limit),
            Identity::OAuth { .. } => (format!("oauth:{}", c.client_id), c.oauth_burst_limit),
        };
        let limiter = burst.entry(owner).or_insert_with(|| SlidingWindowLimiter::new(limit.max(1), c.burst_window()));
        match limiter.check(now) {
            Admission::Allowed { remaining } => burst_remaining = remaining,
            Admission::Limited { .. } => return Err(HsError::ten_secondly(c.app_id, c.portal_id)),
        }
        st.instrumentation.stats.count_bucket("burst");
    }
    if daily_applies {
        *daily_used += 1;
        st.instrumentation.stats.count_bucket("daily");
    }
    Ok(Admitted { search, identity, burst_remaining, daily_remaining: c.daily_limit.saturating_sub(*daily_used) })
}

/// axum middleware for every public API route: authenticate, check scopes, admit against the
/// rate limits (a refused request does nothing), then add the rate-limit headers.
pub async fn guard(State(st): State<Arc<HubSpotState>>, req: Request, next: Next) -> Response {
    let identity = match identify(&st, &req) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    // Routes are nested under their version prefix, which nesting strips from the URI.
    let path = req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().path(), |u| u.path()).to_string();
    // Static tokens (private and project apps) are held to their app's scopes like OAuth tokens.
    let needed = required_scopes(req.method(), &path);
    if !needed.iter().any(|n| identity.scopes().iter().any(|s| s == n)) {
        return HsError::missing_scopes(&needed).into_response();
    }
    if let Some(retry_after) = st.migration_retry_after() {
        return HsError::migration_in_progress(retry_after).into_response();
    }
    let search = is_search(req.method(), &path);
    let admitted = match admit(&st, identity, search) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if search && search_body_too_long(&req) {
        // UNCONFIRMED wording; the limit itself is documented.
        return HsError::validation(format!(
            "The search request body is longer than {SEARCH_BODY_LIMIT} characters; request fewer properties or filters"
        ))
        .into_response();
    }
    let mut resp = next.run(req).await;
    // Search responses carry no rate-limit headers (HubSpot's search guide).
    if !admitted.search {
        let c = st.config();
        let window_ms = c.burst_window().as_millis();
        let max = if admitted.identity.is_static() { c.burst_limit } else { c.oauth_burst_limit };
        let secondly = max.div_ceil(10);
        header(&mut resp, "x-hubspot-ratelimit-interval-milliseconds", window_ms);
        header(&mut resp, "x-hubspot-ratelimit-max", max);
        header(&mut resp, "x-hubspot-ratelimit-remaining", admitted.burst_remaining);
        header(&mut resp, "x-hubspot-ratelimit-secondly", secondly);
        header(&mut resp, "x-hubspot-ratelimit-secondly-remaining", secondly.min(admitted.burst_remaining));
        if admitted.identity.is_static() {
            header(&mut resp, "x-hubspot-ratelimit-daily", c.daily_limit);
            header(&mut resp, "x-hubspot-ratelimit-daily-remaining", admitted.daily_remaining);
        }
    }
    resp
}

// ---- OAuth ---------------------------------------------------------------------------------

fn oauth_error(error: &str, status: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error":error,"error_description":message,"status":status,"message":message})),
    )
        .into_response()
}

/// `GET /oauth/authorize`: the sandbox's user approves at once and is redirected with a code.
async fn authorize(
    State(st): State<Arc<HubSpotState>>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let c = st.config();
    if q.get("client_id") != Some(&c.client_id) {
        return (
            StatusCode::BAD_REQUEST,
            axum::response::Html(
                "<h1>Authorization failed</h1><p>The client_id is unknown to this HubSpot portal.</p>",
            ),
        )
            .into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::response::Html("<h1>Authorization failed</h1><p>redirect_uri is required.</p>"),
        )
            .into_response();
    };
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| s.split([' ', '+']).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let optional: Vec<String> = q
        .get("optional_scope")
        .map(|s| s.split([' ', '+']).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let mut all = vec!["oauth".to_string()];
    all.extend(scopes.into_iter().chain(optional).filter(|s| s != "oauth"));
    let code = {
        let mut auth = st.auth.lock().expect("auth lock");
        let code = auth.token("code");
        auth.codes.insert(code.clone(), OAuthGrant { scopes: all, redirect_uri: redirect_uri.clone() });
        code
    };
    let mut target =
        url::Url::parse(redirect_uri).unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("url"));
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = q.get("state") {
        target.query_pairs_mut().append_pair("state", s);
    }
    (StatusCode::FOUND, [(http::header::LOCATION, target.to_string())]).into_response()
}

/// `POST /oauth/{v1,v3,2026-03}/token` (form-encoded).
async fn token(State(st): State<Arc<HubSpotState>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let c = st.config();
    if form.get("client_id") != Some(&c.client_id) || form.get("client_secret") != Some(&c.client_secret) {
        // UNCONFIRMED (third-party report).
        return oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or invalid client id");
    }
    let mut auth = st.auth.lock().expect("auth lock");
    let (grant, refresh_token) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = auth.codes.remove(&code) else {
                // UNCONFIRMED wording.
                return oauth_error("invalid_grant", "BAD_AUTH_CODE", "missing or unknown auth code");
            };
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(
                    "invalid_grant",
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the authorization request",
                );
            }
            let refresh = auth.token("na1");
            auth.refresh.insert(refresh.clone(), grant.clone());
            (grant, refresh)
        }
        Some("refresh_token") => {
            let refresh = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(grant) = auth.refresh.get(&refresh).cloned() else {
                return oauth_error(
                    "invalid_grant",
                    "BAD_REFRESH_TOKEN",
                    "refresh token is invalid, expired or revoked",
                );
            };
            (grant, refresh)
        }
        other => {
            return oauth_error(
                "unsupported_grant_type",
                "BAD_GRANT_TYPE",
                &format!("grant_type {} is not supported", other.unwrap_or("(missing)")),
            );
        }
    };
    let access = auth.token("CJ");
    let ttl = c.access_token_ttl();
    auth.access.insert(access.clone(), AccessToken { scopes: grant.scopes.clone(), expires_at: Instant::now() + ttl });
    let expires_in = ttl.as_secs().max(1);
    axum::Json(json!({
        "token_type": "bearer",
        "refresh_token": refresh_token,
        "access_token": access,
        "hub_id": c.portal_id,
        "scopes": grant.scopes,
        "expires_in": expires_in,
    }))
    .into_response()
}

/// The portal's domain, as token introspection names it.
pub const HUB_DOMAIN: &str = "hmsync-sandbox.example.com";

/// `POST /oauth/v2/private-apps/get/access-token-info` (JSON `{"tokenKey"}`): what a private
/// app's static token is (its portal, app, user and scopes).
async fn private_app_token_info(State(st): State<Arc<HubSpotState>>, body: axum::body::Bytes) -> Response {
    let c = st.config();
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("tokenKey").and_then(|k| k.as_str()).map(str::to_string));
    if key.as_deref() != Some(c.token.as_str()) {
        // UNCONFIRMED: the answer to an unknown token is not documented; a 401 in HubSpot's shape.
        return HsError::unauthorized().into_response();
    }
    // The scopes the app was granted: the same the middleware holds the token to.
    axum::Json(json!({"userId": 1, "hubId": c.portal_id, "appId": c.app_id, "scopes": c.static_token_scopes}))
        .into_response()
}

/// `POST /oauth/{v3,2026-03}/token/introspect` (form-encoded `client_id`, `client_secret`,
/// `token`, `token_type_hint`): an OAuth token's validity and metadata.
async fn introspect(State(st): State<Arc<HubSpotState>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let c = st.config();
    if form.get("client_id") != Some(&c.client_id) || form.get("client_secret") != Some(&c.client_secret) {
        return oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or invalid client id");
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let auth = st.auth.lock().expect("auth lock");
    let now = Instant::now();
    if let Some(t) = auth.access.get(&token).filter(|t| t.expires_at > now) {
        return axum::Json(json!({
            "active": true,
            "token_use": "access_token",
            "token_type": "access",
            "hub_id": c.portal_id,
            "hub_domain": HUB_DOMAIN,
            "app_id": c.app_id,
            "user_id": 1,
            "scopes": t.scopes,
            "expires_in": t.expires_at.saturating_duration_since(now).as_secs(),
        }))
        .into_response();
    }
    if let Some(g) = auth.refresh.get(&token) {
        return axum::Json(json!({
            "active": true,
            "token_use": "refresh_token",
            "hub_id": c.portal_id,
            "hub_domain": HUB_DOMAIN,
            "client_id": c.client_id,
            "scopes": g.scopes,
        }))
        .into_response();
    }
    axum::Json(json!({"active": false})).into_response()
}

pub fn oauth_routes(state: Arc<HubSpotState>) -> Router {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/v1/token", post(token))
        .route("/oauth/v3/token", post(token))
        .route("/oauth/2026-03/token", post(token))
        .route("/oauth/v3/token/introspect", post(introspect))
        .route("/oauth/2026-03/token/introspect", post(introspect))
        .route("/oauth/v2/private-apps/get/access-token-info", post(private_app_token_info))
        .with_state(state)
}
