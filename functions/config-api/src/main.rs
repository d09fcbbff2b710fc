//! config-api: the whole HTTP API router (the template sends it every route but the two
//! webhook paths, which have their own functions). The same router serves the local runner.

use hmsync_runtime::http::HttpApp;
use hmsync_runtime::{Settings, admin_token, aws_ports, http_state, init_tracing, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    // Once per cold start: warm invocations reuse the clients and the secrets cache.
    let config = sdk_config().await;
    let ports = aws_ports(&settings, &config);
    // Read once per cold start: a rotated token takes effect with the next cold start.
    let token = admin_token(&settings, &config).await?;
    let state = http_state(&ports, &settings, Some(token));
    lambda_http::run(HttpApp::new(state, settings.public_base_url.clone(), hmsync_api::router)).await
}
