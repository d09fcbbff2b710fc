//! scheduled-scan: on each tick of the EventBridge schedule (`ScanSchedule`, every 2 hours by
//! default), enqueues a scan for every active connection without one running. The scan is the
//! safety net for webhooks that never arrived.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hmsync_runtime::{Settings, aws_engine, init_tracing, scheduled_scan, sdk_config};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let engine = aws_engine(&settings, &sdk_config().await);
    let engine = &engine;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| async move {
        scheduled_scan::handle(engine, event.payload).await.map_err(Error::from)
    }))
    .await
}
