//! Credentials: checked against the apps before they are saved, stored through the engine (in
//! the secrets port), and never returned or logged — reading them shows which are set.

use axum::Json;
use axum::extract::{Path, State};
use hmsync_core::Side;
use hmsync_engine::adapters::{Credentials, HubSpotAuth};
use hmsync_engine::views::{CredentialProblem, CredentialsStatus};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::body::JsonBody;
use crate::connections::connection;
use crate::error::{ErrorBody, FieldProblem, HttpError};

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(get_credentials, put_credentials))
}

/// Credentials to store; fields left out keep their stored value (`null` is not "left out": it
/// is refused). At least one field (`minProperties`, set by `openapi::finish`). No `Debug`:
/// values must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsUpdate {
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub hubspot: Option<HubSpotCredentials>,
    /// The HubSpot app's id: webhooks caused by the app's own writes carry it and are dropped.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, maximum = 18446744073709551615u64)]
    pub hubspot_app_id: Option<u64>,
    /// The HubSpot app's client secret, which signs its webhooks. With OAuth credentials it
    /// defaults to the OAuth client secret (the same app's).
    #[serde(default, deserialize_with = "present")]
    #[schema(format = Password, write_only, nullable = false, min_length = 1, pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]")]
    pub hubspot_client_secret: Option<String>,
    /// Printable ASCII without spaces, as every MailerLite key is (it is sent in a header).
    #[serde(default, deserialize_with = "present")]
    #[schema(format = Password, write_only, nullable = false, min_length = 1, pattern = "^[!-~]+$")]
    pub mailerlite_api_key: Option<String>,
    /// The secret MailerLite signs this connection's webhook with (shown when the webhook is created).
    #[serde(default, deserialize_with = "present")]
    #[schema(format = Password, write_only, nullable = false, min_length = 1, pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]")]
    pub mailerlite_webhook_secret: Option<String>,
}

/// How hmsync reaches HubSpot.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubSpotCredentials {
    /// A project app's static access token (or a legacy private app's).
    Token {
        /// Printable ASCII without spaces, as every HubSpot token is (it is sent in a header).
        #[schema(format = Password, write_only, min_length = 1, pattern = "^[!-~]+$")]
        access_token: String,
    },
    /// An OAuth app. Without `refresh_token`, install it with
    /// `GET /connections/{id}/oauth/hubspot/start` (a stored installation of the same client id
    /// is kept).
    #[serde(rename = "oauth")]
    OAuth {
        #[schema(
            min_length = 1,
            pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        )]
        client_id: String,
        #[schema(format = Password, write_only, min_length = 1, pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]")]
        client_secret: String,
        #[serde(default, deserialize_with = "present")]
        #[schema(format = Password, write_only, nullable = false, min_length = 1, pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]")]
        refresh_token: Option<String>,
    },
}

/// A field that may be left out but not sent as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Which credentials a connection has.
#[utoipa::path(
    get,
    path = "/connections/{id}/credentials",
    tag = "credentials",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "Which credentials are set (never their values)", body = CredentialsStatus),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn get_credentials(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<CredentialsStatus>, HttpError> {
    connection(&api, &id).await?;
    Ok(Json(api.engine.credentials_status(&id).await?))
}

/// Checks new credentials against HubSpot and MailerLite and stores them; a refused key or
/// token is not saved. Lifts a pause caused by refused credentials. A new MailerLite API key of
/// an active connection moves its MailerLite webhooks to the key's account (deleted from the
/// old account while the old key still works).
#[utoipa::path(
    put,
    path = "/connections/{id}/credentials",
    tag = "credentials",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body = CredentialsUpdate,
    responses(
        (status = 200, description = "Saved; which credentials are now set", body = CredentialsStatus),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Each field of the wrong shape, or credential the app refused, by field; nothing was saved", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn put_credentials(
    State(api): State<Api>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CredentialsUpdate>,
) -> Result<Json<CredentialsStatus>, HttpError> {
    connection(&api, &id).await?;
    let problems = shape_problems(&body);
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems));
    }
    let stored = api.engine.credentials(&id).await?;
    let update = merge(body, &stored);
    let saved = describe(&update);
    match api.engine.set_credentials(&id, update, &api.api_settings, &api.mailerlite_webhook_target()).await? {
        Ok(status) => {
            tracing::info!(connection = %id, saved = %saved, "credentials saved");
            Ok(Json(status))
        }
        Err(refused) => {
            tracing::info!(connection = %id, refused = refused.len(), "credentials refused by the apps; nothing saved");
            Err(HttpError::invalid(refused.into_iter().map(|p| refusal(&id, p)).collect())
                .with_action("Nothing was saved. Fix the named credentials and send them again."))
        }
    }
}

/// 409 unless the connection has credentials for both apps: the apps are only asked with stored
/// credentials, and without them nothing was refused (424 is for credentials the apps refuse).
pub(crate) async fn require_credentials(api: &Api, id: &str) -> Result<(), HttpError> {
    require_apps(api, id, &[Side::HubSpot, Side::MailerLite]).await
}

/// 409 unless the connection has credentials for each of `sides`.
pub(crate) async fn require_apps(api: &Api, id: &str, sides: &[Side]) -> Result<(), HttpError> {
    let stored = api.engine.credentials(id).await?;
    let mut missing = Vec::new();
    if sides.contains(&Side::HubSpot) {
        match &stored.hubspot {
            None => missing.push("no HubSpot token or OAuth app"),
            Some(HubSpotAuth::OAuth { refresh_token, .. }) if refresh_token.is_empty() => {
                missing.push("the HubSpot OAuth app is not installed yet")
            }
            Some(_) => {}
        }
    }
    if sides.contains(&Side::MailerLite) && stored.mailerlite_api_key.is_none() {
        missing.push("no MailerLite API key");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(HttpError::conflict(format!("connection {id} cannot reach the apps: {}", missing.join("; "))).with_action(
        "Store the credentials first (PUT /connections/{id}/credentials); install an OAuth app with GET /connections/{id}/oauth/hubspot/start.",
    ))
}

/// Empty values and empty requests.
fn shape_problems(body: &CredentialsUpdate) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut header_problems = Vec::new();
    let mut non_empty = |field: &str, value: Option<&String>| {
        if value.is_some_and(|v| v.trim().is_empty()) {
            problems.push(FieldProblem::new(
                field,
                "is empty",
                "Send the value, or leave the field out to keep the stored one.",
            ));
        }
    };
    // Tokens and keys travel in an `Authorization` header: anything else could never be one.
    let mut header_safe = |field: &str, value: Option<&String>| {
        if value.is_some_and(|v| !v.trim().is_empty() && !v.bytes().all(|b| b.is_ascii_graphic())) {
            header_problems.push(FieldProblem::new(
                field,
                "holds a space or a character other than printable ASCII",
                "Copy the value again, without spaces or line breaks.",
            ));
        }
    };
    if let Some(HubSpotCredentials::Token { access_token }) = &body.hubspot {
        header_safe("hubspot.access_token", Some(access_token));
    }
    header_safe("mailerlite_api_key", body.mailerlite_api_key.as_ref());
    match &body.hubspot {
        Some(HubSpotCredentials::Token { access_token }) => non_empty("hubspot.access_token", Some(access_token)),
        Some(HubSpotCredentials::OAuth { client_id, client_secret, refresh_token }) => {
            non_empty("hubspot.client_id", Some(client_id));
            non_empty("hubspot.client_secret", Some(client_secret));
            non_empty("hubspot.refresh_token", refresh_token.as_ref());
        }
        None => {}
    }
    non_empty("hubspot_client_secret", body.hubspot_client_secret.as_ref());
    non_empty("mailerlite_api_key", body.mailerlite_api_key.as_ref());
    non_empty("mailerlite_webhook_secret", body.mailerlite_webhook_secret.as_ref());
    problems.append(&mut header_problems);
    let nothing = body.hubspot.is_none()
        && body.hubspot_app_id.is_none()
        && body.hubspot_client_secret.is_none()
        && body.mailerlite_api_key.is_none()
        && body.mailerlite_webhook_secret.is_none();
    if nothing {
        problems.push(FieldProblem::new(
            "(body)",
            "names no credential",
            "Send at least one of hubspot, hubspot_app_id, hubspot_client_secret, mailerlite_api_key, mailerlite_webhook_secret.",
        ));
    }
    problems
}

/// The engine's update: what the request names. OAuth client credentials without a refresh
/// token keep a stored installation of the same client id.
fn merge(body: CredentialsUpdate, stored: &Credentials) -> Credentials {
    let mut hubspot_client_secret = body.hubspot_client_secret;
    let hubspot = body.hubspot.map(|h| match h {
        HubSpotCredentials::Token { access_token } => HubSpotAuth::Token { access_token },
        HubSpotCredentials::OAuth { client_id, client_secret, refresh_token } => {
            if hubspot_client_secret.is_none() {
                hubspot_client_secret = Some(client_secret.clone());
            }
            let installed = match &stored.hubspot {
                Some(HubSpotAuth::OAuth { client_id: c, refresh_token, access_token, expires_at_ms, .. })
                    if *c == client_id && !refresh_token.is_empty() =>
                {
                    Some((refresh_token.clone(), access_token.clone(), *expires_at_ms))
                }
                _ => None,
            };
            match (refresh_token, installed) {
                (Some(refresh_token), _) => HubSpotAuth::OAuth {
                    client_id,
                    client_secret,
                    refresh_token,
                    access_token: None,
                    expires_at_ms: None,
                },
                (None, Some((refresh_token, access_token, expires_at_ms))) => {
                    HubSpotAuth::OAuth { client_id, client_secret, refresh_token, access_token, expires_at_ms }
                }
                (None, None) => HubSpotAuth::OAuth {
                    client_id,
                    client_secret,
                    refresh_token: String::new(),
                    access_token: None,
                    expires_at_ms: None,
                },
            }
        }
    });
    Credentials {
        hubspot,
        hubspot_app_id: body.hubspot_app_id,
        hubspot_client_secret,
        mailerlite_api_key: body.mailerlite_api_key,
        mailerlite_webhook_secret: body.mailerlite_webhook_secret,
        mailerlite_batched_webhook_secret: None,
    }
}

/// The names of the credentials in an update, for the log (never values).
fn describe(c: &Credentials) -> String {
    let mut names = Vec::new();
    match &c.hubspot {
        Some(HubSpotAuth::Token { .. }) => names.push("hubspot token"),
        Some(HubSpotAuth::OAuth { .. }) => names.push("hubspot oauth"),
        None => {}
    }
    if c.hubspot_app_id.is_some() {
        names.push("hubspot app id");
    }
    if c.hubspot_client_secret.is_some() {
        names.push("hubspot client secret");
    }
    if c.mailerlite_api_key.is_some() {
        names.push("mailerlite api key");
    }
    if c.mailerlite_webhook_secret.is_some() {
        names.push("mailerlite webhook secret");
    }
    names.join(", ")
}

fn refusal(connection_id: &str, p: CredentialProblem) -> FieldProblem {
    let fix = match p.field.as_str() {
        "hubspot.access_token" => {
            "Copy the app's access token again in HubSpot (Development → your app → Auth) and save it.".to_string()
        }
        "hubspot.refresh_token" => format!(
            "Install the app again with GET /connections/{connection_id}/oauth/hubspot/start, or send a current refresh token."
        ),
        "mailerlite_api_key" => {
            "Create an API key in MailerLite (Integrations → MailerLite API) and save it.".to_string()
        }
        _ => "Check the value and send it again.".to_string(),
    };
    FieldProblem::new(p.field, p.message, fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CredentialsUpdate {
        crate::body::from_value(json).map_err(|p| format!("{p:?}")).unwrap()
    }

    #[test]
    fn oauth_without_refresh_token_keeps_a_stored_installation_and_signs_webhooks() {
        let stored = Credentials {
            hubspot: Some(HubSpotAuth::OAuth {
                client_id: "cid".into(),
                client_secret: "old".into(),
                refresh_token: "na1-r".into(),
                access_token: Some("a".into()),
                expires_at_ms: Some(5),
            }),
            ..Credentials::default()
        };
        let update = merge(
            body(serde_json::json!({"hubspot": {"type": "oauth", "client_id": "cid", "client_secret": "new"}})),
            &stored,
        );
        match update.hubspot {
            Some(HubSpotAuth::OAuth { refresh_token, client_secret, .. }) => {
                assert_eq!(refresh_token, "na1-r");
                assert_eq!(client_secret, "new");
            }
            _ => panic!("expected OAuth"),
        }
        assert_eq!(update.hubspot_client_secret.as_deref(), Some("new"));
        let other = merge(
            body(serde_json::json!({"hubspot": {"type": "oauth", "client_id": "other", "client_secret": "s"}})),
            &stored,
        );
        assert!(matches!(other.hubspot, Some(HubSpotAuth::OAuth { refresh_token, .. }) if refresh_token.is_empty()));
    }

    #[test]
    fn empty_values_and_empty_requests_are_named() {
        let fields = |json| shape_problems(&body(json)).into_iter().map(|p| p.field).collect::<Vec<_>>();
        assert_eq!(fields(serde_json::json!({})), ["(body)"]);
        assert_eq!(
            fields(serde_json::json!({"hubspot": {"type": "token", "access_token": " "}, "mailerlite_api_key": ""})),
            ["hubspot.access_token", "mailerlite_api_key"]
        );
        assert!(crate::body::from_value::<CredentialsUpdate>(serde_json::json!({"mailerlite_key": "x"})).is_err());
        assert_eq!(
            fields(
                serde_json::json!({"hubspot": {"type": "token", "access_token": "pat na1"}, "mailerlite_api_key": "kéy"})
            ),
            ["hubspot.access_token", "mailerlite_api_key"]
        );
        assert_eq!(fields(serde_json::json!({"mailerlite_api_key": "eyJ0.x-y_z~!"})), Vec::<String>::new());
    }
}
