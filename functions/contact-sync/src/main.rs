//! contact-sync: the SQS FIFO consumer, the only function that syncs contacts through the
//! HubSpot and MailerLite APIs. Each message is handled within a budget taken from the
//! invocation's remaining time; the answer reports failed messages (`ReportBatchItemFailures`),
//! which come back after the delay the engine chose, and messages that cannot succeed are moved
//! to the dead-letter queue with their error and reported done.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use hmsync_runtime::contact_sync;
use hmsync_runtime::{Settings, aws_ports, init_tracing, sdk_config};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    // Once per cold start: each connection's API rate limiter must outlive one invocation.
    let ports = aws_ports(&settings, &sdk_config().await);
    let ports = &ports;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = contact_sync::deadline_instant(event.context.deadline());
        let response = contact_sync::handle(&ports.engine, &*ports.queue, event.payload, Some(deadline)).await;
        Ok::<SqsBatchResponse, Error>(response)
    }))
    .await
}
