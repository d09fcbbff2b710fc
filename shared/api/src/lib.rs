//! The HTTP API of hmsync: one axum router, served by the Lambda functions (through
//! `lambda_http`) and by the local runner.
//!
//! - Webhook routes are public but signed.
//! - The config API needs `Authorization: Bearer <admin token>`.
//! - `/health`, the status page shell `/status` (its data calls need the token), the OpenAPI
//!   document and the HubSpot OAuth callback (protected by its signed `state`) are public.

mod activity;
mod auth;
mod body;
mod connections;
mod credentials;
mod doctor;
mod error;
mod oauth;
mod openapi;
mod operations;
mod privacy;
mod setup;
mod status_page;
mod webhooks;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use hmsync_engine::Engine;
use hmsync_engine::adapters::ApiSettings;
use hmsync_store::WorkQueue;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use body::MAX_BODY_BYTES;
pub use error::{ErrorBody, FieldProblem};
pub use oauth::{OPTIONAL_SCOPES, REQUIRED_SCOPES, STATE_TTL};
pub use webhooks::webhook_routes;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The public base URL of this API (e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`):
    /// HubSpot signs the full webhook URL, so the receiver rebuilds it from this, and the OAuth
    /// redirect URI is `public_base_url + /oauth/hubspot/callback`.
    pub public_base_url: String,
    /// The deployment's admin token (a Secrets Manager secret generated at deploy).
    pub admin_token: String,
    /// Where the apps are, for checking new credentials before they are saved.
    pub api_settings: ApiSettings,
    pub hubspot_oauth: HubSpotOAuth,
    /// The consuming side of the queue, for the dead-letter count and requeue; `None` where the
    /// function can only send (the Lambda functions that enqueue).
    pub work_queue: Option<Arc<dyn WorkQueue>>,
}

/// Where HubSpot's OAuth pages and endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotOAuth {
    /// The authorize page's host (`https://app.hubspot.com`).
    pub app_url: String,
    /// The token endpoint's host (`https://api.hubapi.com`).
    pub api_url: String,
}

impl Default for HubSpotOAuth {
    fn default() -> Self {
        Self { app_url: hmsync_hubspot::DEFAULT_APP_URL.into(), api_url: hmsync_hubspot::DEFAULT_BASE_URL.into() }
    }
}

impl AppState {
    /// The state of a function that serves only the webhooks: no admin token (so no protected
    /// route opens), the real HubSpot OAuth hosts, no consuming queue.
    pub fn new(engine: Arc<Engine>, public_base_url: impl Into<String>, api_settings: ApiSettings) -> Self {
        Self {
            engine,
            public_base_url: public_base_url.into(),
            admin_token: String::new(),
            api_settings,
            hubspot_oauth: HubSpotOAuth::default(),
            work_queue: None,
        }
    }

    /// The config API's state: the admin token and the queue whose dead letters it shows.
    pub fn with_admin(mut self, admin_token: impl Into<String>, work_queue: Option<Arc<dyn WorkQueue>>) -> Self {
        self.admin_token = admin_token.into();
        self.work_queue = work_queue;
        self
    }

    /// Where MailerLite sends the connections' webhooks: this API's public URL, unless
    /// MailerLite cannot reach it (a local address while the MailerLite API is not local).
    pub fn mailerlite_webhook_target(&self) -> hmsync_engine::WebhookTarget {
        hmsync_engine::WebhookTarget::for_mailerlite(&self.public_base_url, &self.api_settings.mailerlite_base_url)
    }

    /// Where HubSpot sends the browser back after the user approved the install.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/oauth/hubspot/callback", self.public_base_url.trim_end_matches('/'))
    }
}

/// The handlers' state: the app state plus what is derived from it once.
#[derive(Clone)]
pub(crate) struct Api(Arc<ApiInner>);

pub(crate) struct ApiInner {
    pub app: AppState,
    pub admin: auth::AdminToken,
    pub states: auth::StateSigner,
}

impl Deref for Api {
    type Target = ApiInner;

    fn deref(&self) -> &ApiInner {
        &self.0
    }
}

impl Deref for ApiInner {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// The config API's routes, with their OpenAPI descriptions (shared by [`router`] and [`openapi`]).
fn config_api(api: Option<Api>) -> OpenApiRouter<Api> {
    let protected = OpenApiRouter::new()
        .merge(connections::routes())
        .merge(credentials::routes())
        .merge(oauth::protected_routes())
        .merge(operations::routes())
        .merge(privacy::routes())
        .merge(setup::routes())
        .merge(activity::routes())
        .merge(doctor::routes());
    let protected = match api {
        Some(api) => protected.route_layer(axum::middleware::from_fn_with_state(api, auth::require_admin)),
        None => protected,
    };
    OpenApiRouter::with_openapi(openapi::base())
        .merge(protected)
        .merge(oauth::public_routes())
        .merge(operations::public_routes())
        .merge(status_page::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(config_api(None).into_openapi())
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let api = Api(Arc::new(ApiInner {
        admin: auth::AdminToken::new(&state.admin_token),
        states: auth::StateSigner::new(&state.admin_token),
        app: state.clone(),
    }));
    let (routes, document) = config_api(Some(api.clone())).split_for_parts();
    let document = Arc::new(openapi::finish(document));
    routes
        .with_state(api)
        .merge(openapi::document_route(document))
        .merge(webhook_routes(state))
        // One span per request with the route template only: query strings (OAuth codes and
        // states) and headers (the admin token) never reach a log line.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
            tracing::debug_span!("http", method = %req.method(), route)
        }))
}
