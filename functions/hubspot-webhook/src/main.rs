//! hubspot-webhook: `POST /webhooks/hubspot` (the template routes only this path here).
//! Checks HubSpot's v3 signature over the raw body, routes the events by portal to their
//! connections and queues the work before answering, well inside HubSpot's 5 s.

use hmsync_runtime::http::HttpApp;
use hmsync_runtime::{Settings, aws_ports, http_state, init_tracing, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    // Once per cold start: warm invocations reuse the clients and the secrets cache.
    let ports = aws_ports(&settings, &sdk_config().await);
    // No admin token: this function serves only its webhook route.
    let state = http_state(&ports, &settings, None);
    lambda_http::run(HttpApp::new(state, settings.public_base_url.clone(), hmsync_api::webhook_routes)).await
}
