//! contact-sync: the SQS FIFO consumer, the only function that syncs contacts through the
//! HubSpot and MailerLite APIs. Answers with partial batch failures (the event source mapping
//! has `ReportBatchItemFailures`), so only failed messages, and the later ones of their
//! connection, come back.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use hmsync_runtime::contact_sync::{self, DEADLINE_RESERVE};
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
        let stop = contact_sync::stop_starting_at(event.context.deadline(), DEADLINE_RESERVE);
        let response = contact_sync::handle_until(&ports.engine, &*ports.queue, event.payload, Some(stop)).await;
        Ok::<SqsBatchResponse, Error>(response)
    }))
    .await
}
