//! config-api: the whole HTTP API router (the template sends it every route but the two
//! webhook paths, which have their own functions). The same router serves the local runner.

use hmsync_runtime::http::HttpApp;
use hmsync_runtime::{Settings, aws_engine, init_tracing, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    // Once per cold start: warm invocations reuse the clients and the secrets cache.
    let engine = aws_engine(&settings, &sdk_config().await);
    lambda_http::run(HttpApp::new(engine, settings.public_base_url, hmsync_api::router)).await
}
