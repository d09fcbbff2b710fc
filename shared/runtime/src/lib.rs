//! What the hmsync Lambda functions share, so each function's `main` only picks its handler:
//! settings from the environment ([`Settings`]), the engine on DynamoDB, SQS FIFO and Secrets
//! Manager built once per cold start ([`aws_engine`]), JSON logs ([`init_tracing`]), and the
//! event handlers: [`contact_sync`] (SQS partial batch responses), [`scheduled_scan`]
//! (EventBridge) and [`http`] (API Gateway v2 through `lambda_http`).

mod aws;
pub mod contact_sync;
pub mod http;
mod logging;
pub mod scheduled_scan;
mod settings;

pub use aws::{
    AdminTokenError, AwsPorts, SECRETS_CACHE_TTL, admin_token, api_settings, aws_engine, aws_ports, http_state,
    sdk_config,
};
pub use logging::init_tracing;
pub use settings::{Settings, SettingsError};

/// The names of the environment variables [`Settings`] reads.
pub mod env {
    pub use crate::settings::{
        ADMIN_TOKEN_SECRET, DAILY_LIMIT_PROBE_SECONDS, DEFAULT_SECRET_PREFIX, DLQ_URL, HUBSPOT_API_URL,
        MAILERLITE_API_URL, PUBLIC_BASE_URL, QUEUE_URL, SECRET_PREFIX, TABLE,
    };
}
