//! The functions' configuration, read once per cold start from the environment the SAM
//! template sets. AWS endpoints, region and credentials are the SDK's business
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, …): nothing here duplicates them.

/// The DynamoDB table (its items: docs/architecture.md, "Storage").
pub const TABLE: &str = "HMSYNC_TABLE";
/// The URL of the SQS FIFO sync queue.
pub const QUEUE_URL: &str = "HMSYNC_QUEUE_URL";
/// The URL of the queue's dead-letter queue (only the status page reads it).
pub const DLQ_URL: &str = "HMSYNC_DLQ_URL";
/// Prefix of every Secrets Manager secret holding connection credentials.
pub const SECRET_PREFIX: &str = "HMSYNC_SECRET_PREFIX";
/// The public base URL of the HTTP API, as HubSpot calls it.
pub const PUBLIC_BASE_URL: &str = "HMSYNC_PUBLIC_BASE_URL";
/// The Secrets Manager id (name or ARN) of the admin token secret.
pub const ADMIN_TOKEN_SECRET: &str = "HMSYNC_ADMIN_TOKEN_SECRET";
/// Overrides of the API base URLs (a sandbox, a proxy).
pub const HUBSPOT_API_URL: &str = "HUBSPOT_API_URL";
pub const MAILERLITE_API_URL: &str = "MAILERLITE_API_URL";
/// How often work is tried again after HubSpot's daily limit was used up, in seconds (optional;
/// the engine's default otherwise).
pub const DAILY_LIMIT_PROBE_SECONDS: &str = "HMSYNC_DAILY_LIMIT_PROBE_SECONDS";

/// The default of [`SECRET_PREFIX`].
pub const DEFAULT_SECRET_PREFIX: &str = "hmsync/";

/// A variable is missing or unusable. The message names the variable and what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the environment variable {0} is not set; the SAM template sets it (see docs/deploy.md)")]
    Missing(&'static str),
    #[error("the environment variable {name} is not usable ({value:?}): {reason}")]
    Invalid { name: &'static str, value: String, reason: &'static str },
}

/// Everything the functions read from their environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub table: String,
    pub queue_url: String,
    pub dlq_url: Option<String>,
    pub secret_prefix: String,
    /// `None`: each HTTP request's own scheme and host are used (see [`crate::http`]). The
    /// template cannot pass the HTTP API's URL to the functions it routes to (that would be a
    /// circular dependency), and the host API Gateway received is the URL HubSpot signed.
    pub public_base_url: Option<String>,
    /// Only the config API reads the admin token.
    pub admin_token_secret: Option<String>,
    pub hubspot_api_url: Option<String>,
    pub mailerlite_api_url: Option<String>,
    pub daily_limit_probe: Option<std::time::Duration>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (tests pass a map). An empty value counts as unset:
    /// CloudFormation passes empty strings for optional parameters.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(SettingsError::Missing(name));
        let url = |name: &'static str| -> Result<Option<String>, SettingsError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.starts_with("https://") || v.starts_with("http://") => {
                    Ok(Some(v.trim_end_matches('/').to_string()))
                }
                Some(v) => Err(SettingsError::Invalid { name, value: v, reason: "expected an http(s):// URL" }),
            }
        };
        let queue_url = required(QUEUE_URL)?;
        if !queue_url.ends_with(".fifo") {
            return Err(SettingsError::Invalid {
                name: QUEUE_URL,
                value: queue_url,
                reason: "the sync queue must be a FIFO queue (its URL ends in .fifo)",
            });
        }
        let daily_limit_probe = match get(DAILY_LIMIT_PROBE_SECONDS) {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if secs > 0 => Some(std::time::Duration::from_secs(secs)),
                _ => {
                    return Err(SettingsError::Invalid {
                        name: DAILY_LIMIT_PROBE_SECONDS,
                        value: v,
                        reason: "expected a whole number of seconds above 0",
                    });
                }
            },
        };
        Ok(Settings {
            daily_limit_probe,
            table: required(TABLE)?,
            queue_url,
            dlq_url: get(DLQ_URL),
            secret_prefix: get(SECRET_PREFIX).unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_string()),
            public_base_url: url(PUBLIC_BASE_URL)?,
            admin_token_secret: get(ADMIN_TOKEN_SECRET),
            hubspot_api_url: url(HUBSPOT_API_URL)?,
            mailerlite_api_url: url(MAILERLITE_API_URL)?,
        })
    }
}
