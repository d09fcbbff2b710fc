//! The HTTP API of hmsync: one axum router, served by the Lambda functions (through
//! `lambda_http`) and by the local runner. Webhook routes are public but signed; every other
//! route needs the admin token.

mod webhooks;

use std::sync::Arc;

use axum::Router;
use hmsync_engine::Engine;

pub use webhooks::webhook_routes;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The public base URL HubSpot calls (e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`);
    /// HubSpot signs the full URL, so the receiver rebuilds it from this.
    pub public_base_url: String,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    webhook_routes(state)
}
