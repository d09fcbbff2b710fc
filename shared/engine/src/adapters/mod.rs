//! Real adapters of the engine's API ports, and the factory that builds them from each
//! connection's credentials (kept in the secrets port, never in the store or in logs).

mod credentials;
pub mod hubspot;
pub mod mailerlite;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hmsync_hubspot as hs;
use hmsync_mailerlite as ml;
use hmsync_store::{Connection, SecretStore};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, HubSpotApi, MailerLiteApi};
use crate::engine::{ApiFactory, EngineError};

pub(crate) use credentials::{
    ApiKeys, HubSpotSigning, HubSpotTokens, MailerLiteSigning, install_tokens, load_fresh, put_part, read_part,
    update_part,
};
pub use credentials::{
    connection_secret_names, credentials_secret_name, hubspot_signing_secret_name, hubspot_tokens_secret_name,
    load_credentials, mailerlite_signing_secret_name, save_credentials,
};
pub use hubspot::HubSpotAdapter;
pub use mailerlite::MailerLiteAdapter;

/// How hmsync reaches HubSpot.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubSpotAuth {
    /// A project app's static token, or a legacy private app's token.
    Token { access_token: String },
    /// An OAuth installation: refreshed before expiry; new tokens are stored back.
    #[serde(rename = "oauth")]
    OAuth {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at_ms: Option<i64>,
    },
}

/// Everything secret about one connection. `Debug` never prints a value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<HubSpotAuth>,
    /// The HubSpot app whose own writes come back as webhooks (`sourceId`), to drop them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_app_id: Option<u64>,
    /// The HubSpot app's client secret: it signs the webhooks (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_api_key: Option<String>,
    /// The secret of the MailerLite webhook for subscriber changes: it signs its deliveries
    /// (`Signature`). Kept by the registration (or saved by hand for a webhook made by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_webhook_secret: Option<String>,
    /// The secret of the batched MailerLite webhook (opens, clicks, deletions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_batched_webhook_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "hubspot",
                &self.hubspot.as_ref().map(|a| match a {
                    HubSpotAuth::Token { .. } => "token",
                    HubSpotAuth::OAuth { .. } => "oauth",
                }),
            )
            .field("hubspot_app_id", &self.hubspot_app_id)
            .field("hubspot_client_secret", &self.hubspot_client_secret.as_ref().map(|_| "set"))
            .field("mailerlite_api_key", &self.mailerlite_api_key.as_ref().map(|_| "set"))
            .field("mailerlite_webhook_secret", &self.mailerlite_webhook_secret.as_ref().map(|_| "set"))
            .field("mailerlite_batched_webhook_secret", &self.mailerlite_batched_webhook_secret.as_ref().map(|_| "set"))
            .finish()
    }
}

/// Where the APIs are and how fast they may be called (the real services by default; tests
/// and the demo point them at the sandbox and may shrink the rate-limit windows).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub hubspot_base_url: String,
    pub mailerlite_base_url: String,
    /// Divides every rate-limit window (match the sandbox's `time_scale`).
    pub time_scale: f64,
    /// HubSpot's burst limit until its first answer's rate-limit headers say the app's own (the
    /// client then follows those, up or down).
    pub hubspot_burst_limit: u32,
    /// Tests use fast retries so a failure costs milliseconds.
    pub fast_retries: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            hubspot_base_url: hs::DEFAULT_BASE_URL.to_string(),
            mailerlite_base_url: ml::DEFAULT_BASE_URL.to_string(),
            time_scale: 1.0,
            hubspot_burst_limit: 100,
            fast_retries: false,
        }
    }
}

/// The secrets a webhook receiver needs to check signatures and drop our own echoes.
#[derive(Clone, Default)]
pub struct WebhookKeys {
    pub hubspot_client_secret: Option<String>,
    pub hubspot_app_id: Option<u64>,
    /// Every secret a MailerLite delivery of this connection may be signed with (one per webhook).
    pub mailerlite_webhook_secrets: Vec<String>,
}

/// Builds clients from stored credentials and keeps one per connection (its pacer must outlive
/// a single message: the rate limits are per account, not per request).
pub struct CredentialApis {
    secrets: Arc<dyn SecretStore>,
    settings: ApiSettings,
    /// Clients by connection, with a fingerprint of the credentials they were built from: new
    /// credentials (saved by another process) replace the client on its next use.
    hubspot: Mutex<HashMap<String, (u64, Arc<HubSpotAdapter>)>>,
    mailerlite: Mutex<HashMap<String, (u64, Arc<MailerLiteAdapter>)>>,
}

/// A fingerprint of the parts of a credential that identify it (not of tokens a refresh renews).
fn fingerprint(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl CredentialApis {
    pub fn new(secrets: Arc<dyn SecretStore>, settings: ApiSettings) -> Self {
        Self { secrets, settings, hubspot: Mutex::new(HashMap::new()), mailerlite: Mutex::new(HashMap::new()) }
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    /// The signing secrets of a connection's webhooks.
    pub async fn webhook_keys(&self, connection_id: &str) -> Result<WebhookKeys, EngineError> {
        let (hubspot, mailerlite) = credentials::load_signing(&*self.secrets, connection_id).await?;
        Ok(WebhookKeys {
            hubspot_client_secret: hubspot.hubspot_client_secret,
            hubspot_app_id: hubspot.hubspot_app_id,
            mailerlite_webhook_secrets: mailerlite
                .mailerlite_webhook_secret
                .into_iter()
                .chain(mailerlite.mailerlite_batched_webhook_secret)
                .collect(),
        })
    }

    /// A HubSpot client config for these settings.
    pub fn hubspot_config(&self) -> hs::HubSpotConfig {
        let mut config = hs::HubSpotConfig {
            base_url: self.settings.hubspot_base_url.clone(),
            burst_limit: self.settings.hubspot_burst_limit,
            time_scale: self.settings.time_scale,
            ..hs::HubSpotConfig::default()
        };
        if self.settings.fast_retries {
            config.retry = hmsync_http::RetryPolicy::fast(5);
            config.request_timeout = Duration::from_secs(5);
        }
        config
    }

    /// A MailerLite client config for these settings.
    pub fn mailerlite_config(&self, api_key: &str) -> ml::Config {
        let mut config = ml::Config::new(api_key).with_base_url(self.settings.mailerlite_base_url.clone());
        config.time_scale = self.settings.time_scale;
        if self.settings.fast_retries {
            config.retry = hmsync_http::RetryPolicy::fast(5);
            config.timeout = Duration::from_secs(5);
        }
        config
    }

    fn missing(side: hmsync_core::Side, what: &str) -> EngineError {
        EngineError::Api(ApiError::Unauthorized {
            side,
            message: format!("no {what} is stored for this connection"),
            action: format!("Save the {side} credentials of the connection (PUT /connections/{{id}}/credentials)."),
        })
    }
}

#[async_trait]
impl ApiFactory for CredentialApis {
    async fn hubspot(&self, connection: &Connection) -> Result<Arc<dyn HubSpotApi>, EngineError> {
        let creds = credentials::load_api_keys(&*self.secrets, &connection.id).await?;
        let print = match &creds.hubspot {
            None => 0,
            Some(HubSpotAuth::Token { access_token }) => fingerprint(&["token", access_token]),
            Some(HubSpotAuth::OAuth { client_id, client_secret, refresh_token, .. }) => {
                fingerprint(&["oauth", client_id, client_secret, refresh_token])
            }
        };
        if let Some((p, a)) = self.hubspot.lock().expect("clients lock").get(&connection.id)
            && *p == print
        {
            return Ok(a.clone());
        }
        let auth = match creds.hubspot.clone() {
            None => return Err(Self::missing(hmsync_core::Side::HubSpot, "HubSpot token")),
            Some(HubSpotAuth::Token { access_token }) => hs::Auth::StaticToken(access_token),
            Some(HubSpotAuth::OAuth { client_id, client_secret, refresh_token, access_token, expires_at_ms }) => {
                // New tokens from a refresh are written back, so a restart does not lose them:
                // into their own secret only, so nothing else saved meanwhile is undone.
                let secrets = self.secrets.clone();
                let conn_id = connection.id.clone();
                let client = client_id.clone();
                let on_update: hs::TokenCallback = Arc::new(move |t: &hs::TokenSet| {
                    let secrets = secrets.clone();
                    let conn_id = conn_id.clone();
                    let tokens = HubSpotTokens {
                        client_id: client.clone(),
                        refresh_token: t.refresh_token.clone(),
                        access_token: t.access_token.clone(),
                        expires_at_ms: t.expires_at_ms,
                    };
                    tokio::spawn(async move {
                        match credentials::store_refreshed_tokens(&*secrets, &conn_id, tokens).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::info!(connection = %conn_id, "refreshed HubSpot tokens not stored: the connection's install changed or it was deleted")
                            }
                            Err(e) => {
                                tracing::warn!(connection = %conn_id, error = %e, "could not store refreshed HubSpot tokens")
                            }
                        }
                    });
                });
                hs::Auth::OAuth {
                    client_id,
                    client_secret,
                    refresh_token,
                    access_token,
                    expires_at_ms,
                    on_update: Some(on_update),
                }
            }
        };
        let adapter = Arc::new(HubSpotAdapter::new(hs::HubSpotClient::new(auth, self.hubspot_config())));
        self.hubspot.lock().expect("clients lock").insert(connection.id.clone(), (print, adapter.clone()));
        Ok(adapter)
    }

    async fn mailerlite(&self, connection: &Connection) -> Result<Arc<dyn MailerLiteApi>, EngineError> {
        let creds = credentials::load_api_keys(&*self.secrets, &connection.id).await?;
        let Some(key) = creds.mailerlite_api_key else {
            return Err(Self::missing(hmsync_core::Side::MailerLite, "MailerLite API key"));
        };
        let print = fingerprint(&[&key]);
        if let Some((p, a)) = self.mailerlite.lock().expect("clients lock").get(&connection.id)
            && *p == print
        {
            return Ok(a.clone());
        }
        let client = ml::Client::new(self.mailerlite_config(&key))
            .map_err(|e| EngineError::Permanent(format!("MailerLite client: {e}")))?;
        let adapter = Arc::new(MailerLiteAdapter::new(client));
        self.mailerlite.lock().expect("clients lock").insert(connection.id.clone(), (print, adapter.clone()));
        Ok(adapter)
    }

    fn forget(&self, connection_id: &str) {
        self.hubspot.lock().expect("clients lock").remove(connection_id);
        self.mailerlite.lock().expect("clients lock").remove(connection_id);
        for name in connection_secret_names(connection_id) {
            self.secrets.forget_cached(&name);
        }
    }

    async fn webhook_keys(&self, connection_id: &str) -> Result<WebhookKeys, EngineError> {
        CredentialApis::webhook_keys(self, connection_id).await
    }

    fn requests_sent(&self, connection_id: &str) -> (u64, u64) {
        let hubspot = self.hubspot.lock().expect("clients lock").get(connection_id).map(|(_, a)| a.requests_sent());
        let mailerlite =
            self.mailerlite.lock().expect("clients lock").get(connection_id).map(|(_, a)| a.requests_sent());
        (hubspot.unwrap_or(0), mailerlite.unwrap_or(0))
    }

    fn limits_per_hour(&self) -> (u64, u64) {
        let per_hour = |limit: u32, window: Duration| {
            (f64::from(limit) * 3600.0 / window.as_secs_f64().max(f64::MIN_POSITIVE)).round() as u64
        };
        let hs = self.hubspot_config();
        let ml = self.mailerlite_config("");
        let ml_window = Duration::from_secs_f64(60.0 / ml.time_scale.max(f64::MIN_POSITIVE));
        (per_hour(hs.burst_limit, hs.scaled_burst_window()), per_hour(ml.requests_per_minute, ml_window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print_their_values() {
        let c = Credentials {
            hubspot: Some(HubSpotAuth::Token { access_token: "pat-na1-secret".into() }),
            hubspot_app_id: Some(7),
            hubspot_client_secret: Some("cs-secret".into()),
            mailerlite_api_key: Some("ml-secret".into()),
            mailerlite_webhook_secret: Some("wh-secret".into()),
            mailerlite_batched_webhook_secret: Some("wh-batched".into()),
        };
        let shown = format!("{c:?}");
        for secret in ["pat-na1-secret", "cs-secret", "ml-secret", "wh-secret", "wh-batched"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let back: Credentials = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
