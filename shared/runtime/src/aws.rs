//! The engine on AWS: DynamoDB, SQS FIFO and Secrets Manager, built once per cold start
//! (outside the handler) so every invocation of a warm function reuses the clients, their
//! connection pools, the secrets cache and the per-connection API rate limiters.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use hmsync_api::AppState;
use hmsync_engine::adapters::{ApiSettings, CredentialApis};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::{Engine, EngineSettings, SystemClock};
use hmsync_store::{CachedSecrets, DynamoStore, SecretsManagerSecrets, SqsQueue, WorkQueue};

use crate::settings::{ADMIN_TOKEN_SECRET, Settings};

/// How long a read secret is reused. Credentials saved through the config API show in the other
/// functions after at most this long; Secrets Manager is billed per call.
pub const SECRETS_CACHE_TTL: Duration = Duration::from_secs(60);

/// The engine and the queue it sends to (contact-sync also changes the visibility of the
/// messages it received from that queue).
#[derive(Clone)]
pub struct AwsPorts {
    pub engine: Arc<Engine>,
    pub queue: Arc<SqsQueue>,
}

/// The SDK configuration from the Lambda environment (region, role credentials, and
/// `AWS_ENDPOINT_URL` if set).
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// Builds the engine on DynamoDB, SQS, cached Secrets Manager and the real APIs (or the
/// overrides of the settings).
pub fn aws_ports(settings: &Settings, config: &SdkConfig) -> AwsPorts {
    let store = Arc::new(DynamoStore::new(config, settings.table.clone()));
    let queue = Arc::new(SqsQueue::new(config, settings.queue_url.clone(), settings.dlq_url.clone()));
    let secrets = Arc::new(CachedSecrets::new(
        SecretsManagerSecrets::new(config, settings.secret_prefix.clone()),
        SECRETS_CACHE_TTL,
    ));
    let apis = Arc::new(CredentialApis::new(secrets.clone(), api_settings(settings)));
    let engine = Arc::new(Engine {
        store,
        queue: queue.clone(),
        secrets,
        apis,
        clock: Arc::new(SystemClock),
        settings: engine_settings(settings),
        failpoints: Failpoints::default(),
    });
    AwsPorts { engine, queue }
}

/// The engine's tunables: the defaults, with what the environment overrides.
fn engine_settings(settings: &Settings) -> EngineSettings {
    let mut engine = EngineSettings::default();
    if let Some(probe) = settings.daily_limit_probe {
        engine.daily_limit_probe = probe;
    }
    engine
}

/// The real APIs, or the overrides of the settings.
pub fn api_settings(settings: &Settings) -> ApiSettings {
    let mut api = ApiSettings::default();
    if let Some(url) = &settings.hubspot_api_url {
        api.hubspot_base_url = url.clone();
    }
    if let Some(url) = &settings.mailerlite_api_url {
        api.mailerlite_base_url = url.clone();
    }
    api
}

/// The HTTP functions' state: the webhook functions get no admin token (the protected routes
/// stay shut), the config API its token and the queue whose dead letters the status page shows.
pub fn http_state(ports: &AwsPorts, settings: &Settings, admin_token: Option<String>) -> AppState {
    let mut state = AppState::new(ports.engine.clone(), String::new(), api_settings(settings));
    // A HubSpot stand-in (the sandbox) serves the OAuth install pages and token endpoint too, as
    // `hmsync serve --hubspot-api-url` assumes.
    if let Some(url) = &settings.hubspot_api_url {
        state.hubspot_oauth = hmsync_api::HubSpotOAuth { app_url: url.clone(), api_url: url.clone() };
    }
    match admin_token {
        Some(token) => state.with_admin(token, Some(ports.queue.clone() as Arc<dyn WorkQueue>)),
        None => state,
    }
}

/// [`aws_ports`] for the functions that only need the engine.
pub fn aws_engine(settings: &Settings, config: &SdkConfig) -> Arc<Engine> {
    aws_ports(settings, config).engine
}

/// Why the admin token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("the environment variable {ADMIN_TOKEN_SECRET} is not set; the config API needs the admin token secret")]
    NotConfigured,
    #[error("the admin token secret {secret} could not be read: {message}")]
    Unreadable { secret: String, message: String },
    #[error("the admin token secret {secret} has no string value; set one (see docs/deploy.md)")]
    Empty { secret: String },
}

/// Reads the admin token (the config API's bearer token) from the secret the template
/// generated. The value is never logged; errors name only the secret.
pub async fn admin_token(settings: &Settings, config: &SdkConfig) -> Result<String, AdminTokenError> {
    let secret = settings.admin_token_secret.clone().ok_or(AdminTokenError::NotConfigured)?;
    let out = aws_sdk_secretsmanager::Client::new(config).get_secret_value().secret_id(&secret).send().await.map_err(
        |e| AdminTokenError::Unreadable {
            secret: secret.clone(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        },
    )?;
    match out.secret_string {
        Some(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => Err(AdminTokenError::Empty { secret }),
    }
}
