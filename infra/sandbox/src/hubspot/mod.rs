//! The simulated HubSpot API (each behaviour and its source: docs/api-fidelity.md).
//!
//! [`HubSpotSim::start`] binds a port and serves every route in both spellings (`/crm/v3/…` and
//! the date-versioned `/crm/objects/2026-03/…`), with HubSpot's auth, rate limits and headers,
//! error bodies and webhooks. [`router`] builds the same service for mounting elsewhere. The
//! admin API lives under `/__sandbox/hubspot/` (see `infra/sandbox/README.md`).

mod admin;
mod api;
mod auth;
pub mod contacts;
pub mod errors;
pub mod events;
pub mod lists;
pub mod model;
pub mod properties;
pub mod search;
mod seed;
mod snapshot;
// One module holds both simulators' timestamp formats; the modules above reach it as `super::time_fmt`.
pub use crate::common::time_fmt;

#[cfg(test)]
mod fidelity_tests;
#[cfg(test)]
mod sim_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::common::{
    ChangeJournal, ChangedBy, Dispatcher, Flavor, Instrumentation, SlidingWindowLimiter, StatsSnapshot, TimeScale,
};

pub use auth::{ALL_SCOPES, AuthState, OAuthGrant, SEARCH_BODY_LIMIT};
pub use errors::{HsError, HsResult};
pub use events::{Actor, Event, EventKind, WebhookSettings, WebhookSubscription};
pub use model::{Db, ObjectType, PropSelection, Record};
pub use seed::{SeedListMembership, SeedRequest, SeedResult};
pub use snapshot::{DbGuard, HubSpotGeneration, HubSpotSnapshot, RESTORE_ID_GAP, RESTORE_LIST_ID_GAP};

/// The simulator's configuration; every field has HubSpot's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubSpotConfig {
    /// The static (private app / service key) token.
    pub token: String,
    pub portal_id: u64,
    /// API writes made with `token` (or an OAuth token of this app) are attributed to this app.
    pub app_id: u64,
    pub client_id: String,
    /// OAuth client secret and the webhook signing secret.
    pub client_secret: String,
    /// The static-token app's burst limit per `burst_window_ms`: 100 on Free and Starter
    /// portals, 190 on Professional and Enterprise ([`HubSpotConfig::tier`]).
    pub burst_limit: u32,
    pub burst_window_ms: u64,
    /// The burst limit of OAuth tokens (per installing portal): 110.
    pub oauth_burst_limit: u32,
    /// Search requests per second for the whole portal, whatever the token.
    pub search_per_second: u32,
    pub daily_limit: u64,
    /// Divides every window (burst, search second, day, OAuth token lifetime).
    pub time_scale: f64,
    pub seed: u64,
    /// Records modified less than this ago are not yet visible to search.
    pub search_lag_ms: u64,
    pub access_token_ttl_secs: u64,
    /// The scopes the static token's app was granted (checked like OAuth scopes). Default: every
    /// scope the simulator knows ([`auth::ALL_SCOPES`]).
    pub static_token_scopes: Vec<String>,
}

/// A portal's subscription tier, for [`HubSpotConfig::tier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    FreeOrStarter,
    Professional,
    Enterprise,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            token: "hs-sandbox-token".into(),
            portal_id: 62515,
            app_id: 54321,
            client_id: "hs-sandbox-client-id".into(),
            client_secret: "hs-sandbox-client-secret".into(),
            burst_limit: 100,
            burst_window_ms: 10_000,
            search_per_second: 5,
            daily_limit: 250_000,
            time_scale: 1.0,
            seed: 1,
            search_lag_ms: 0,
            access_token_ttl_secs: 1800,
            oauth_burst_limit: 110,
            static_token_scopes: auth::ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl HubSpotConfig {
    /// The limits of an app on a portal of this tier (usage guidelines: 100 per 10 s and
    /// 250,000 a day on Free and Starter; 190 and 625,000 on Professional; 190 and 1,000,000 on
    /// Enterprise; OAuth tokens 110 per 10 s on any tier).
    pub fn tier(mut self, tier: Tier) -> Self {
        (self.burst_limit, self.daily_limit) = match tier {
            Tier::FreeOrStarter => (100, 250_000),
            Tier::Professional => (190, 625_000),
            Tier::Enterprise => (190, 1_000_000),
        };
        self
    }

    pub fn scale(&self) -> TimeScale {
        TimeScale(self.time_scale)
    }
    pub fn burst_window(&self) -> Duration {
        self.scale().scale(Duration::from_millis(self.burst_window_ms))
    }
    pub fn search_window(&self) -> Duration {
        self.scale().scale(Duration::from_secs(1))
    }
    pub fn daily_window(&self) -> Duration {
        self.scale().scale(Duration::from_secs(86_400))
    }
    pub fn access_token_ttl(&self) -> Duration {
        self.scale().scale(Duration::from_secs(self.access_token_ttl_secs))
    }
}

/// Rate-limit runtime settings the admin API may change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitSettings {
    pub burst_limit: u32,
    pub burst_window_ms: u64,
    #[serde(default = "oauth_burst_default")]
    pub oauth_burst_limit: u32,
    pub search_per_second: u32,
    pub daily_limit: u64,
    pub time_scale: f64,
}

fn oauth_burst_default() -> u32 {
    110
}

/// Server-side rate-limit state.
pub struct Limits {
    /// Per credential owner (the static token, or the OAuth app).
    pub burst: HashMap<String, SlidingWindowLimiter>,
    pub search: SlidingWindowLimiter,
    pub daily_used: u64,
    pub daily_started: Instant,
    /// Admin switch: the account is over its daily limit.
    pub daily_exhausted: bool,
    /// Admin switch (fault injection): the portal is being moved between data-hosting
    /// locations; every API call answers 477 with this `Retry-After`.
    pub migration: Option<Duration>,
}

impl Limits {
    fn new(c: &HubSpotConfig) -> Self {
        Self {
            burst: HashMap::new(),
            search: SlidingWindowLimiter::new(c.search_per_second.max(1), c.search_window()),
            daily_used: 0,
            daily_started: Instant::now(),
            daily_exhausted: false,
            migration: None,
        }
    }
}

/// Everything the simulated portal holds; shared by the router and the test helpers.
pub struct HubSpotState {
    config: Mutex<HubSpotConfig>,
    db: Mutex<Db>,
    pub(crate) limits: Mutex<Limits>,
    pub(crate) auth: Mutex<AuthState>,
    webhooks: Mutex<Option<WebhookSettings>>,
    instrumentation: Arc<Instrumentation>,
    dispatcher: Dispatcher,
    base_url: Mutex<String>,
    next_event_id: AtomicU64,
    journal: ChangeJournal,
}

/// Words injected faults like HubSpot.
struct HubSpotFlavor {
    app_id: u64,
    portal_id: u64,
}

impl Flavor for HubSpotFlavor {
    fn server_error(&self, status: StatusCode) -> Response {
        let message = match status.as_u16() {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "internal error",
        };
        HsError::new(status, "INTERNAL_ERROR", message).into_response()
    }
    fn rate_limited(&self) -> Response {
        HsError::ten_secondly(self.app_id, self.portal_id).into_response()
    }
}

impl HubSpotState {
    pub fn new(config: HubSpotConfig) -> Arc<Self> {
        let instrumentation =
            Instrumentation::new(config.seed, HubSpotFlavor { app_id: config.app_id, portal_id: config.portal_id });
        Arc::new(Self {
            limits: Mutex::new(Limits::new(&config)),
            db: Mutex::new(Db::new(crate::common::now_ms())),
            auth: Mutex::new(AuthState::default()),
            webhooks: Mutex::new(None),
            instrumentation,
            dispatcher: Dispatcher::default(),
            base_url: Mutex::new("https://api.hubapi.com".into()),
            next_event_id: AtomicU64::new(3_029_365_631),
            journal: ChangeJournal::default(),
            config: Mutex::new(config),
        })
    }

    pub fn config(&self) -> HubSpotConfig {
        self.config.lock().expect("config lock").clone()
    }

    /// The portal's data (for tests that need to look deeper than the helpers). Writing through
    /// the guard marks the portal changed for snapshot savers (see [`DbGuard`]).
    pub fn db(&self) -> DbGuard<'_> {
        let guard: MutexGuard<'_, Db> = self.db.lock().expect("db lock");
        DbGuard(guard)
    }

    pub fn instrumentation(&self) -> &Arc<Instrumentation> {
        &self.instrumentation
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Every contact change with its millisecond stamp and who made it, while started (the
    /// benchmark's change latencies).
    pub fn change_journal(&self) -> &ChangeJournal {
        &self.journal
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().expect("base url lock").clone()
    }

    /// Sets the base URL used in `paging.next.link` (the address the router is served at).
    pub fn set_base_url(&self, url: impl Into<String>) {
        *self.base_url.lock().expect("base url lock") = url.into();
    }

    pub fn webhook_settings(&self) -> Option<WebhookSettings> {
        self.webhooks.lock().expect("webhooks lock").clone()
    }

    /// Registers the app's webhook target and subscriptions (replacing earlier ones).
    pub fn set_webhook_settings(&self, settings: Option<WebhookSettings>) {
        *self.webhooks.lock().expect("webhooks lock") = settings.map(WebhookSettings::with_ids);
    }

    pub fn rate_limits(&self) -> RateLimitSettings {
        let c = self.config();
        RateLimitSettings {
            burst_limit: c.burst_limit,
            burst_window_ms: c.burst_window_ms,
            oauth_burst_limit: c.oauth_burst_limit,
            search_per_second: c.search_per_second,
            daily_limit: c.daily_limit,
            time_scale: c.time_scale,
        }
    }

    /// Changes the rate limits at runtime; the windows start empty.
    pub fn set_rate_limits(&self, s: RateLimitSettings) {
        let mut c = self.config.lock().expect("config lock");
        c.burst_limit = s.burst_limit;
        c.burst_window_ms = s.burst_window_ms;
        c.oauth_burst_limit = s.oauth_burst_limit;
        c.search_per_second = s.search_per_second;
        c.daily_limit = s.daily_limit;
        c.time_scale = s.time_scale;
        let mut limits = self.limits.lock().expect("limits lock");
        let (exhausted, migration) = (limits.daily_exhausted, limits.migration);
        *limits = Limits::new(&c);
        limits.daily_exhausted = exhausted;
        limits.migration = migration;
    }

    /// Starts (`Some(retry_after)`) or ends a data-hosting migration of the portal: meanwhile
    /// every API call answers 477 "Migration in Progress" with that `Retry-After`.
    pub fn set_migration_in_progress(&self, retry_after: Option<Duration>) {
        self.limits.lock().expect("limits lock").migration = retry_after;
    }

    pub(crate) fn migration_retry_after(&self) -> Option<Duration> {
        self.limits.lock().expect("limits lock").migration
    }

    /// Puts the account over (or back under) its daily limit.
    pub fn set_daily_limit_exhausted(&self, exhausted: bool) {
        self.limits.lock().expect("limits lock").daily_exhausted = exhausted;
    }

    /// Sends the webhooks for `events` (one delivery per ≤100 subscribed events).
    pub fn emit(&self, events: &[Event], actor: Actor) {
        if events.is_empty() {
            return;
        }
        if self.journal.is_on() {
            let by = match actor {
                Actor::Integration => ChangedBy::Api,
                Actor::User(_) => ChangedBy::User,
            };
            // Contact changes only: the journal is keyed by contact id.
            for e in events.iter().filter(|e| e.kind.subscription_type().starts_with("contact.")) {
                self.journal.record(e.object_id, e.occurred_at, by, e.kind.subscription_type());
            }
        }
        let Some(settings) = self.webhook_settings() else { return };
        let c = self.config();
        let source = events::WebhookSource { portal_id: c.portal_id, app_id: c.app_id, client_secret: c.client_secret };
        let payloads = events::event_payloads(&settings, &source, events, actor, &mut || {
            self.next_event_id.fetch_add(1, Ordering::SeqCst)
        });
        if !payloads.is_empty() {
            events::deliver(&self.dispatcher, &settings, &source.client_secret, payloads);
        }
    }

    // ---- direct state helpers (the same functions the admin routes call) -----------------

    /// Seeds generated contacts without webhooks or rate-limit accounting.
    pub fn seed(&self, req: &SeedRequest) -> Result<SeedResult, HsError> {
        seed::seed(self, req)
    }

    /// A contact by id (archived included, merged ids resolved), rendered with every set property.
    pub fn contact(&self, id: u64) -> Option<Value> {
        let db = self.db();
        let id = db.resolve_contact(id);
        db.contacts.get(&id).map(|r| db.render(ObjectType::Contacts, r, &PropSelection::AllSet))
    }

    /// A live contact by primary or additional email.
    pub fn contact_by_email(&self, email: &str) -> Option<Value> {
        let db = self.db();
        let id = db.contact_by_email(email)?;
        db.contacts.get(&id).map(|r| db.render(ObjectType::Contacts, r, &PropSelection::AllSet))
    }

    /// A user creates a contact in the CRM UI (webhooks as `CRM_UI`).
    pub fn user_create_contact(&self, properties: &serde_json::Map<String, Value>, user_id: u64) -> HsResult<u64> {
        let portal = self.config().portal_id;
        let (id, events) = {
            let mut db = self.db();
            let changes = db.prepare_contact_create(properties, false, portal)?;
            let now = db.stamp();
            db.insert_contact(changes, &[], now)
        };
        self.emit(&events, Actor::User(user_id));
        Ok(id)
    }

    /// A user edits a contact in the CRM UI (webhooks as `CRM_UI`). Read-only properties such as
    /// `hs_email_optout` may be set this way (a user opting someone out).
    pub fn user_edit_contact(
        &self,
        id: u64,
        properties: &serde_json::Map<String, Value>,
        user_id: u64,
    ) -> HsResult<Vec<Event>> {
        let portal = self.config().portal_id;
        let events = {
            let mut db = self.db();
            let id = db.live_contact(id, true).ok_or_else(|| HsError::not_found(&id.to_string()))?;
            let changes = db.prepare_contact_update(id, properties, true, portal)?;
            let now = db.stamp();
            db.apply_contact_update(id, changes, now)
        };
        self.emit(&events, Actor::User(user_id));
        Ok(events)
    }

    /// A user deletes (archives) a contact.
    pub fn user_delete_contact(&self, id: u64, user_id: u64) -> HsResult<()> {
        let events = {
            let mut db = self.db();
            let id = db.live_contact(id, true).ok_or_else(|| HsError::not_found(&id.to_string()))?;
            let now = db.stamp();
            db.archive_contact(id, now)
        };
        self.emit(&events, Actor::User(user_id));
        Ok(())
    }

    /// A user permanently deletes a contact for privacy (GDPR delete in the HubSpot app): gone,
    /// its emails blocklisted, `contact.privacyDeletion` and `contact.deletion` sent.
    pub fn user_gdpr_delete_contact(&self, id: u64, user_id: u64) -> HsResult<()> {
        let events = {
            let mut db = self.db();
            let id = db.live_contact(id, true).ok_or_else(|| HsError::not_found(&id.to_string()))?;
            let now = db.stamp();
            db.gdpr_delete(id, now)
        };
        for e in &events {
            self.emit(std::slice::from_ref(e), Actor::User(user_id));
        }
        Ok(())
    }

    /// A user restores an archived contact from the recycle bin.
    pub fn user_restore_contact(&self, id: u64, user_id: u64) -> HsResult<()> {
        let events = {
            let mut db = self.db();
            let now = db.stamp();
            db.restore_contact(id, now)?
        };
        self.emit(&events, Actor::User(user_id));
        Ok(())
    }

    /// A user merges two contacts; returns the survivor's id.
    pub fn user_merge_contacts(&self, primary: u64, secondary: u64, user_id: u64) -> HsResult<u64> {
        let (id, events) = {
            let mut db = self.db();
            let now = db.stamp();
            db.merge_contacts(primary, secondary, now)?
        };
        self.emit(&events, Actor::User(user_id));
        Ok(id)
    }

    /// Creates a list (any processing type) as a user would in the UI.
    pub fn create_list(&self, name: &str, processing_type: &str, filter_branch: Option<Value>) -> HsResult<Value> {
        api::create_list_in(self, name, processing_type, filter_branch)
    }

    /// Changes the membership of a MANUAL or SNAPSHOT list (as a user or a workflow would).
    pub fn change_list_members(&self, list_id: u64, add: &[u64], remove: &[u64]) -> HsResult<Value> {
        api::change_members(self, list_id, add, remove)
    }

    /// The ids of a list's members, ascending.
    pub fn list_members(&self, list_id: u64) -> Option<Vec<u64>> {
        self.db().lists.get(&list_id).map(|l| l.members.keys().copied().collect())
    }

    /// Notes associated with a contact, rendered with every set property.
    pub fn notes_of(&self, contact_id: u64) -> Vec<Value> {
        let db = self.db();
        db.notes
            .values()
            .filter(|n| n.assoc.contains(&contact_id))
            .map(|n| {
                let mut v = db.render(ObjectType::Notes, n, &PropSelection::AllSet);
                v["associations"] = serde_json::json!({"contacts":{"results":n.assoc.iter().map(|c| serde_json::json!({"id":c.to_string(),"type":"note_to_contact"})).collect::<Vec<_>>()}});
                v
            })
            .collect()
    }

    /// Creates a company directly (no limits, no webhooks).
    pub fn create_company(&self, properties: &serde_json::Map<String, Value>) -> HsResult<u64> {
        api::create_company_in(self, properties)
    }

    /// A user edits a company in the CRM UI: `company.propertyChange` webhooks (as `CRM_UI`).
    pub fn user_edit_company(
        &self,
        id: u64,
        properties: &serde_json::Map<String, Value>,
        user_id: u64,
    ) -> HsResult<()> {
        let events = api::edit_company_in(self, id, properties)?;
        self.emit(&events, Actor::User(user_id));
        Ok(())
    }

    /// Rotates the static token ("Rotate and expire this token now" in the app's Auth settings):
    /// the old token is refused at once with a 401, the new one has the same scopes.
    pub fn rotate_token(&self, token: impl Into<String>) {
        self.config.lock().expect("config lock").token = token.into();
    }

    /// Revokes an OAuth refresh token (already issued access tokens keep working until they expire).
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        self.auth.lock().expect("auth lock").revoke(refresh_token)
    }

    /// Makes every issued OAuth access token expired.
    pub fn expire_access_tokens(&self) -> usize {
        self.auth.lock().expect("auth lock").expire_all()
    }
}

/// Sum of one endpoint's requests over both spellings, given its v3 key (e.g.
/// `"POST /crm/v3/objects/contacts/batch/upsert"`).
pub fn endpoint_requests(stats: &StatsSnapshot, v3_key: &str) -> u64 {
    let dated = dated_key(v3_key);
    stats.requests(v3_key) + dated.as_deref().map_or(0, |k| stats.requests(k))
}

/// The date-versioned (`2026-03`) spelling of a v3/v4 endpoint key
/// (<https://developers.hubspot.com/docs/api-reference/latest/overview>).
pub fn dated_key(v3_key: &str) -> Option<String> {
    const MAP: [(&str, &str); 9] = [
        ("/crm/v4/objects/", "/crm/objects/2026-03/"),
        ("/crm/v3/objects/", "/crm/objects/2026-03/"),
        ("/crm/v3/properties/", "/crm/properties/2026-03/"),
        ("/crm/v3/lists", "/crm/lists/2026-03"),
        ("/crm/v4/associations/", "/crm/associations/2026-03/"),
        ("/communication-preferences/v4/", "/communication-preferences/2026-03/"),
        ("/oauth/v3/token", "/oauth/2026-03/token"),
        ("/account-info/v3/", "/account-info/2026-03/"),
        ("/crm/v3/objects", "/crm/objects/2026-03"),
    ];
    MAP.iter().find(|(from, _)| v3_key.contains(from)).map(|(from, to)| v3_key.replacen(from, to, 1))
}

/// The whole simulated API: public routes (counted, faulted, authenticated, rate-limited),
/// OAuth routes (counted and faulted) and the admin API.
pub fn router(state: Arc<HubSpotState>) -> Router {
    let (auth_state, instrumentation) = (state.clone(), state.instrumentation.clone());
    let api = api::routes(state.clone(), move |r| {
        r.layer(axum::middleware::from_fn_with_state(auth_state.clone(), auth::guard))
            .layer(axum::middleware::from_fn_with_state(instrumentation.clone(), crate::common::instrument))
    });
    let oauth = auth::oauth_routes(state.clone())
        .layer(axum::middleware::from_fn_with_state(state.instrumentation.clone(), crate::common::instrument));
    Router::new()
        .merge(api)
        .merge(oauth)
        .merge(admin::routes(state))
        .fallback(|| async { HsError::resource_not_found() })
        .layer(axum::middleware::map_response(add_correlation_id))
}

async fn add_correlation_id(mut resp: Response) -> Response {
    if !resp.headers().contains_key(errors::CORRELATION_HEADER)
        && let Ok(v) = HeaderValue::from_str(&errors::correlation_id())
    {
        resp.headers_mut().insert(errors::CORRELATION_HEADER, v);
    }
    resp
}

/// A running simulator.
pub struct HubSpotSim {
    state: Arc<HubSpotState>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl HubSpotSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves the API in a spawned task.
    pub async fn start(config: HubSpotConfig, addr: SocketAddr) -> std::io::Result<HubSpotSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Self::serve(HubSpotState::new(config), listener, Router::new())
    }

    /// Serves `state` on a bound listener, with `extra` routes on the same server (the combined
    /// sandbox adds its cross-side admin routes this way).
    pub fn serve(
        state: Arc<HubSpotState>,
        listener: tokio::net::TcpListener,
        extra: Router,
    ) -> std::io::Result<HubSpotSim> {
        let addr = listener.local_addr()?;
        state.set_base_url(format!("http://{addr}"));
        let app = router(state.clone()).merge(extra);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HubSpot sandbox server stopped");
            }
        });
        Ok(HubSpotSim { state, addr, server })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> HubSpotConfig {
        self.state.config()
    }

    pub fn state(&self) -> &Arc<HubSpotState> {
        &self.state
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.state.instrumentation.stats.snapshot()
    }

    /// Requests to one endpoint over both spellings (see [`endpoint_requests`]).
    pub fn endpoint_requests(&self, v3_key: &str) -> u64 {
        endpoint_requests(&self.stats(), v3_key)
    }

    /// Stats and faults.
    pub fn instrumentation(&self) -> &Arc<Instrumentation> {
        &self.state.instrumentation
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.state.dispatcher
    }
}

impl std::ops::Deref for HubSpotSim {
    type Target = HubSpotState;
    fn deref(&self) -> &HubSpotState {
        &self.state
    }
}

impl Drop for HubSpotSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_keys_follow_the_reference_mapping() {
        assert_eq!(
            dated_key("POST /crm/v3/objects/contacts/batch/upsert").as_deref(),
            Some("POST /crm/objects/2026-03/contacts/batch/upsert")
        );
        assert_eq!(
            dated_key("GET /crm/v4/objects/contacts/{id}/associations/companies").as_deref(),
            Some("GET /crm/objects/2026-03/contacts/{id}/associations/companies")
        );
        assert_eq!(dated_key("POST /crm/v3/lists/search").as_deref(), Some("POST /crm/lists/2026-03/search"));
        assert_eq!(dated_key("POST /oauth/v1/token"), None);
    }
}
