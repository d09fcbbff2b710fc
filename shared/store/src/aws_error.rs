//! Mapping of AWS SDK errors (DynamoDB, SQS, Secrets Manager share the same error machinery)
//! to [`StoreError`], so callers can decide on retries with `is_transient()`.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::StoreError;

/// Error codes that mean "slow down" in any of the three services.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// Error codes of a service-side outage.
const UNAVAILABLE_CODES: &[&str] =
    &["InternalServerError", "InternalFailure", "InternalServiceError", "InternalError", "ServiceUnavailable"];

/// Maps an SDK error of operation `what` (e.g. "DynamoDB PutItem on table t"). The message is
/// the SDK's error chain: it names the operation and error code, never request payloads.
pub(crate) fn map_sdk_error<E, R>(what: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable { message }
        }
        _ => match err.code() {
            Some(code) if THROTTLING_CODES.contains(&code) => StoreError::Throttled { message },
            Some(code) if UNAVAILABLE_CODES.contains(&code) => StoreError::Unavailable { message },
            _ => StoreError::Backend { message },
        },
    }
}
