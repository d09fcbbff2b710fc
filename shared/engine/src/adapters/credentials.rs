//! How a connection's credentials are stored: in four secrets, one per writer, so that no writer
//! ever reads the whole set from a cache and writes it back over someone else's change, and so
//! that the public webhook functions read the signing secrets without the API keys.
//!
//! | part | holds | written by |
//! |---|---|---|
//! | `hmsync/connections/{id}/credentials` | HubSpot token or OAuth client and install, MailerLite API key | saving credentials, the OAuth install |
//! | `hmsync/connections/{id}/hubspot-tokens` | OAuth tokens renewed by a refresh | the refresh (update only) |
//! | `hmsync/signing/{id}/hubspot` | the HubSpot app's id and client secret | saving credentials |
//! | `hmsync/signing/{id}/mailerlite` | the MailerLite webhooks' secrets | registration and repair (update only), saving credentials |
//!
//! Updates by workers never create a secret: a deleted connection's credentials stay deleted.

use hmsync_store::SecretStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Credentials, HubSpotAuth};
use crate::engine::EngineError;

/// The secret with the connection's API keys (and the OAuth install's tokens).
pub fn credentials_secret_name(connection_id: &str) -> String {
    format!("hmsync/connections/{connection_id}/credentials")
}

/// The secret with the OAuth tokens a refresh renewed.
pub fn hubspot_tokens_secret_name(connection_id: &str) -> String {
    format!("hmsync/connections/{connection_id}/hubspot-tokens")
}

/// The secret with what checks HubSpot's webhook signatures (and drops our own echoes).
pub fn hubspot_signing_secret_name(connection_id: &str) -> String {
    format!("hmsync/signing/{connection_id}/hubspot")
}

/// The secret with what checks MailerLite's webhook signatures.
pub fn mailerlite_signing_secret_name(connection_id: &str) -> String {
    format!("hmsync/signing/{connection_id}/mailerlite")
}

/// Every secret a connection has.
pub fn connection_secret_names(connection_id: &str) -> [String; 4] {
    [
        credentials_secret_name(connection_id),
        hubspot_tokens_secret_name(connection_id),
        hubspot_signing_secret_name(connection_id),
        mailerlite_signing_secret_name(connection_id),
    ]
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct ApiKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<HubSpotAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_api_key: Option<String>,
}

/// Tokens renewed by a refresh, valid for the OAuth client they were issued to.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct HubSpotTokens {
    pub client_id: String,
    pub refresh_token: String,
    pub access_token: String,
    pub expires_at_ms: i64,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HubSpotSigning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_app_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_client_secret: Option<String>,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MailerLiteSigning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_batched_webhook_secret: Option<String>,
}

/// Reads one part; `fresh` skips any cache (for a writer that merges into it).
pub(crate) async fn read_part<T: DeserializeOwned>(
    secrets: &dyn SecretStore,
    connection_id: &str,
    name: &str,
    fresh: bool,
) -> Result<Option<T>, EngineError> {
    if fresh {
        secrets.forget_cached(name);
    }
    match secrets.get_secret(name).await? {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json).map(Some).map_err(|_| {
            EngineError::Permanent(format!(
                "the stored credentials of connection {connection_id} are unreadable; save them again"
            ))
        }),
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("credentials serialize")
}

/// Creates or replaces one part (the config API's writes).
pub(crate) async fn put_part(secrets: &dyn SecretStore, name: &str, value: &impl Serialize) -> Result<(), EngineError> {
    secrets.put_secret(name, &json(value)).await?;
    Ok(())
}

/// Replaces one part only while it exists (the workers' writes); false when it does not.
pub(crate) async fn update_part(
    secrets: &dyn SecretStore,
    name: &str,
    value: &impl Serialize,
) -> Result<bool, EngineError> {
    Ok(secrets.update_secret(name, &json(value)).await?)
}

/// The API keys, with the tokens of the latest refresh when they belong to the stored client.
pub(crate) async fn load_api_keys(secrets: &dyn SecretStore, connection_id: &str) -> Result<ApiKeys, EngineError> {
    Ok(read_api_keys(secrets, connection_id, false).await?.unwrap_or_default())
}

async fn read_api_keys(
    secrets: &dyn SecretStore,
    connection_id: &str,
    fresh: bool,
) -> Result<Option<ApiKeys>, EngineError> {
    let Some(mut keys) =
        read_part::<ApiKeys>(secrets, connection_id, &credentials_secret_name(connection_id), fresh).await?
    else {
        return Ok(None);
    };
    if let Some(HubSpotAuth::OAuth { client_id, refresh_token, access_token, expires_at_ms, .. }) = &mut keys.hubspot
        && !refresh_token.is_empty()
        && let Some(tokens) =
            read_part::<HubSpotTokens>(secrets, connection_id, &hubspot_tokens_secret_name(connection_id), fresh)
                .await?
        && tokens.client_id == *client_id
    {
        *refresh_token = tokens.refresh_token;
        *access_token = Some(tokens.access_token);
        *expires_at_ms = Some(tokens.expires_at_ms);
    }
    Ok(Some(keys))
}

/// Every part read past any cache, and which parts exist: what a writer merges into.
pub(crate) struct FreshCredentials {
    pub credentials: Credentials,
    pub has_keys: bool,
    pub has_hubspot_signing: bool,
    pub has_mailerlite_signing: bool,
}

pub(crate) async fn load_fresh(
    secrets: &dyn SecretStore,
    connection_id: &str,
) -> Result<FreshCredentials, EngineError> {
    let keys = read_api_keys(secrets, connection_id, true).await?;
    let hubspot: Option<HubSpotSigning> =
        read_part(secrets, connection_id, &hubspot_signing_secret_name(connection_id), true).await?;
    let mailerlite: Option<MailerLiteSigning> =
        read_part(secrets, connection_id, &mailerlite_signing_secret_name(connection_id), true).await?;
    let (has_keys, has_hubspot_signing, has_mailerlite_signing) =
        (keys.is_some(), hubspot.is_some(), mailerlite.is_some());
    Ok(FreshCredentials {
        credentials: compose(keys.unwrap_or_default(), hubspot.unwrap_or_default(), mailerlite.unwrap_or_default()),
        has_keys,
        has_hubspot_signing,
        has_mailerlite_signing,
    })
}

fn compose(keys: ApiKeys, hubspot: HubSpotSigning, mailerlite: MailerLiteSigning) -> Credentials {
    Credentials {
        hubspot: keys.hubspot,
        mailerlite_api_key: keys.mailerlite_api_key,
        hubspot_app_id: hubspot.hubspot_app_id,
        hubspot_client_secret: hubspot.hubspot_client_secret,
        mailerlite_webhook_secret: mailerlite.mailerlite_webhook_secret,
        mailerlite_batched_webhook_secret: mailerlite.mailerlite_batched_webhook_secret,
    }
}

/// Reads a connection's credentials, every part.
pub async fn load_credentials(secrets: &dyn SecretStore, connection_id: &str) -> Result<Credentials, EngineError> {
    let keys = load_api_keys(secrets, connection_id).await?;
    let (hubspot, mailerlite) = load_signing(secrets, connection_id).await?;
    Ok(compose(keys, hubspot, mailerlite))
}

/// The signing parts only: what the webhook functions may read.
pub(crate) async fn load_signing(
    secrets: &dyn SecretStore,
    connection_id: &str,
) -> Result<(HubSpotSigning, MailerLiteSigning), EngineError> {
    let hubspot = read_part(secrets, connection_id, &hubspot_signing_secret_name(connection_id), false)
        .await?
        .unwrap_or_default();
    let mailerlite = read_part(secrets, connection_id, &mailerlite_signing_secret_name(connection_id), false)
        .await?
        .unwrap_or_default();
    Ok((hubspot, mailerlite))
}

/// Stores a connection's credentials whole, creating every part (setting a connection up:
/// the demo, the benchmark, tests). The config API saves only the parts a request changes.
pub async fn save_credentials(
    secrets: &dyn SecretStore,
    connection_id: &str,
    credentials: &Credentials,
) -> Result<(), EngineError> {
    put_part(secrets, &credentials_secret_name(connection_id), &ApiKeys::of(credentials)).await?;
    if let Some(tokens) = install_tokens(credentials.hubspot.as_ref()) {
        put_part(secrets, &hubspot_tokens_secret_name(connection_id), &tokens).await?;
    }
    put_part(secrets, &hubspot_signing_secret_name(connection_id), &HubSpotSigning::of(credentials)).await?;
    put_part(secrets, &mailerlite_signing_secret_name(connection_id), &MailerLiteSigning::of(credentials)).await?;
    Ok(())
}

/// The tokens part that goes with an OAuth install (nothing for a static token, or an OAuth
/// client without an install yet).
pub(crate) fn install_tokens(auth: Option<&HubSpotAuth>) -> Option<HubSpotTokens> {
    match auth? {
        HubSpotAuth::OAuth { client_id, refresh_token, access_token, expires_at_ms, .. }
            if !refresh_token.is_empty() =>
        {
            Some(HubSpotTokens {
                client_id: client_id.clone(),
                refresh_token: refresh_token.clone(),
                access_token: access_token.clone().unwrap_or_default(),
                expires_at_ms: expires_at_ms.unwrap_or(0),
            })
        }
        _ => None,
    }
}

impl ApiKeys {
    pub(crate) fn of(c: &Credentials) -> Self {
        Self { hubspot: c.hubspot.clone(), mailerlite_api_key: c.mailerlite_api_key.clone() }
    }
}

impl HubSpotSigning {
    pub(crate) fn of(c: &Credentials) -> Self {
        Self { hubspot_app_id: c.hubspot_app_id, hubspot_client_secret: c.hubspot_client_secret.clone() }
    }
}

impl MailerLiteSigning {
    pub(crate) fn of(c: &Credentials) -> Self {
        Self {
            mailerlite_webhook_secret: c.mailerlite_webhook_secret.clone(),
            mailerlite_batched_webhook_secret: c.mailerlite_batched_webhook_secret.clone(),
        }
    }
}

/// Writes refreshed OAuth tokens, and only them, when the connection still has its tokens
/// part (never re-creating a deleted connection's secret). Tokens of a client the connection
/// no longer uses are not written.
pub(crate) async fn store_refreshed_tokens(
    secrets: &dyn SecretStore,
    connection_id: &str,
    tokens: HubSpotTokens,
) -> Result<bool, EngineError> {
    let name = hubspot_tokens_secret_name(connection_id);
    let current: Option<HubSpotTokens> = read_part(secrets, connection_id, &name, true).await?;
    if current.is_none_or(|c| c.client_id != tokens.client_id) {
        return Ok(false);
    }
    update_part(secrets, &name, &tokens).await
}
