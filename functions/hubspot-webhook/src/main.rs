//! hubspot-webhook: `POST /webhooks/hubspot` (the template routes only this path here).
//! Checks HubSpot's v3 signature over the raw body, routes the events by portal to their
//! connections and queues the work before answering, well inside HubSpot's 5 s.

use hmsync_runtime::http::HttpApp;
use hmsync_runtime::{Settings, aws_engine, init_tracing, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    // Once per cold start: warm invocations reuse the clients and the secrets cache.
    let engine = aws_engine(&settings, &sdk_config().await);
    lambda_http::run(HttpApp::new(engine, settings.public_base_url, hmsync_api::webhook_routes)).await
}
