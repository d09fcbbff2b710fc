//! Helpers for tests of the AWS adapters against a local moto server (started by
//! `./scripts/test`, which exports `HMSYNC_MOTO_ENDPOINT`). They never fall back to real AWS:
//! the SDK config always has fake credentials and a loopback endpoint.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws_error::map_sdk_error;
use crate::error::{Result, StoreError};

/// The variable `./scripts/test` sets to moto's URL.
pub const MOTO_ENDPOINT_VAR: &str = "HMSYNC_MOTO_ENDPOINT";

/// moto's URL from `HMSYNC_MOTO_ENDPOINT`. Panics when it is unset or not a loopback URL, so an
/// AWS test can neither skip silently nor reach a real AWS endpoint.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var(MOTO_ENDPOINT_VAR).unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "{MOTO_ENDPOINT_VAR} is not set: the AWS adapter tests need a moto server. Run ./scripts/test, which starts \
         moto and sets it"
    );
    assert!(
        is_loopback_url(&endpoint),
        "{MOTO_ENDPOINT_VAR}={endpoint} is not a loopback URL; tests only talk to 127.0.0.1"
    );
    endpoint
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or_default();
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// An SDK config for moto: fake static credentials `test`/`test`, us-east-1, `endpoint`.
pub async fn moto_sdk_config(endpoint: &str) -> SdkConfig {
    assert!(is_loopback_url(endpoint), "{endpoint} is not a loopback URL; tests only talk to 127.0.0.1");
    aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "hmsync-tests"))
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// `prefix` plus a random suffix: moto's state is global, so every test needs its own names.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a FIFO queue `<name>.fifo` whose redrive policy moves a message to the dead-letter
/// FIFO queue `<name>-dlq.fifo` after `max_receives` receives. Returns (queue URL, DLQ URL).
pub async fn create_fifo_queue_pair(config: &SdkConfig, name: &str, max_receives: u32) -> Result<(String, String)> {
    let client = aws_sdk_sqs::Client::new(config);
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| map_sdk_error("SQS CreateQueue", e))?
        .queue_url
        .ok_or_else(|| StoreError::backend("CreateQueue returned no URL"))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| map_sdk_error("SQS GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| StoreError::backend("GetQueueAttributes returned no QueueArn"))?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string() });
    let queue = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| map_sdk_error("SQS CreateQueue", e))?
        .queue_url
        .ok_or_else(|| StoreError::backend("CreateQueue returned no URL"))?;
    Ok((queue, dlq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        assert!(is_loopback_url("http://127.0.0.1:5000"));
        assert!(is_loopback_url("http://localhost:5000/"));
        assert!(is_loopback_url("http://[::1]:5000"));
        assert!(!is_loopback_url("https://dynamodb.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("http://10.0.0.5:5000"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com:5000"));
    }
}
