//! What the setup screens ask the apps through the config API before anything is saved: the
//! accounts behind the stored credentials (with the HubSpot scopes missing), HubSpot's lists,
//! MailerLite's groups and segments (and a new target group), and how an option property's
//! values map between the apps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hmsync_core::{Direction, FieldMapping, OptionMapping, Side, writes_hubspot};
use hmsync_engine::api::{HubSpotListInfo, MailerLiteAccount, MailerLiteGroupInfo, MailerLiteSegmentInfo};
use hmsync_engine::catalog::OptionValuesError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::body::JsonBody;
use crate::connections::connection;
use crate::credentials::require_apps;
use crate::error::{ErrorBody, FieldProblem, HttpError};
use crate::oauth::{OPTIONAL_SCOPES, REQUIRED_SCOPES};

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(accounts))
        .routes(routes!(hubspot_lists))
        .routes(routes!(mailerlite_groups, create_mailerlite_group))
        .routes(routes!(mailerlite_segments))
        .routes(routes!(option_values))
}

/// The HubSpot portal behind the stored credentials.
#[derive(Serialize, ToSchema)]
pub struct HubSpotPortal {
    pub portal_id: u64,
    /// The portal's domain, when HubSpot tells it (OAuth installs); otherwise `null`.
    pub domain: Option<String>,
    /// The scopes granted; `null` when HubSpot does not describe the token.
    pub scopes: Option<Vec<String>>,
    /// Scopes the sync needs that were not granted (empty when `scopes` is unknown).
    pub missing_scopes: Vec<String>,
    /// Optional scopes not granted: `communication_preferences.read_write` records MailerLite
    /// unsubscribes as HubSpot opt-outs.
    pub missing_optional_scopes: Vec<String>,
}

/// The accounts behind a connection's stored credentials, asked live (`null`: not stored yet).
#[derive(Serialize, ToSchema)]
pub struct AccountsView {
    pub hubspot: Option<HubSpotPortal>,
    pub mailerlite: Option<MailerLiteAccount>,
}

#[derive(Serialize, ToSchema)]
pub struct HubSpotLists {
    pub lists: Vec<HubSpotListInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct MailerLiteGroups {
    pub groups: Vec<MailerLiteGroupInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct MailerLiteSegments {
    pub segments: Vec<MailerLiteSegmentInfo>,
}

/// A MailerLite group to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// 1–255 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
}

/// The mapping whose option values to show.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionValuesRequest {
    pub mapping: FieldMapping,
    /// The connection's direction; the stored config's when absent.
    #[serde(default)]
    pub direction: Option<Direction>,
}

/// The scopes of `wanted` not granted. `oauth` only marks an OAuth app: a static token never
/// has it, and does not need it.
fn missing(granted: &[String], wanted: &[&str]) -> Vec<String> {
    wanted.iter().filter(|s| **s != "oauth" && !granted.iter().any(|g| g == *s)).map(|s| s.to_string()).collect()
}

/// Who the stored credentials belong to: the HubSpot portal (its id, domain and the scopes
/// granted, with those the sync needs but lacks) and the MailerLite account (its name and
/// subscribers). Each app is asked live; an app without stored credentials is `null`.
#[utoipa::path(
    get,
    path = "/connections/{id}/accounts",
    tag = "setup",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = AccountsView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 424, description = "An app refused the stored credentials", body = ErrorBody),
        (status = 502, description = "An app rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "An app is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn accounts(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<AccountsView>, HttpError> {
    connection(&api, &id).await?;
    let found = api.engine.accounts(&id).await?;
    let hubspot = found.hubspot.map(|h| {
        let granted = h.scopes.clone().unwrap_or_default();
        let known = h.scopes.is_some();
        HubSpotPortal {
            portal_id: h.portal_id,
            domain: h.domain,
            missing_scopes: if known { missing(&granted, &REQUIRED_SCOPES) } else { Vec::new() },
            missing_optional_scopes: if known { missing(&granted, &OPTIONAL_SCOPES) } else { Vec::new() },
            scopes: h.scopes,
        }
    });
    Ok(Json(AccountsView { hubspot, mailerlite: found.mailerlite }))
}

/// Every HubSpot contact list with its size (for a rule of lists).
#[utoipa::path(
    get,
    path = "/connections/{id}/hubspot/lists",
    tag = "setup",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = HubSpotLists),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The HubSpot credentials are not stored yet", body = ErrorBody),
        (status = 424, description = "HubSpot refused the stored credentials", body = ErrorBody),
        (status = 502, description = "HubSpot rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "HubSpot is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn hubspot_lists(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<HubSpotLists>, HttpError> {
    connection(&api, &id).await?;
    require_apps(&api, &id, &[Side::HubSpot]).await?;
    Ok(Json(HubSpotLists { lists: api.engine.hubspot_lists(&id).await? }))
}

/// Every MailerLite group with its member counts (for a rule of groups, or the target group).
#[utoipa::path(
    get,
    path = "/connections/{id}/mailerlite/groups",
    tag = "setup",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = MailerLiteGroups),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The MailerLite API key is not stored yet", body = ErrorBody),
        (status = 424, description = "MailerLite refused the stored API key", body = ErrorBody),
        (status = 502, description = "MailerLite rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "MailerLite is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn mailerlite_groups(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<MailerLiteGroups>, HttpError> {
    connection(&api, &id).await?;
    require_apps(&api, &id, &[Side::MailerLite]).await?;
    Ok(Json(MailerLiteGroups { groups: api.engine.mailerlite_groups(&id).await? }))
}

/// Creates a MailerLite group (e.g. the target group for contacts from HubSpot). MailerLite
/// allows several groups with one name.
#[utoipa::path(
    post,
    path = "/connections/{id}/mailerlite/groups",
    tag = "setup",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body = NewGroup,
    responses(
        (status = 201, description = "The new group", body = MailerLiteGroupInfo),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The MailerLite API key is not stored yet", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "A blank or too long name", body = ErrorBody),
        (status = 424, description = "MailerLite refused the stored API key", body = ErrorBody),
        (status = 502, description = "MailerLite rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "MailerLite is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn create_mailerlite_group(
    State(api): State<Api>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewGroup>,
) -> Result<(StatusCode, Json<MailerLiteGroupInfo>), HttpError> {
    connection(&api, &id).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(HttpError::invalid(vec![FieldProblem::new(
            "name",
            "A group name is 1 to 255 characters, not only spaces.",
            "Send another name.",
        )]));
    }
    require_apps(&api, &id, &[Side::MailerLite]).await?;
    let group = api.engine.create_mailerlite_group(&id, name).await?;
    tracing::info!(connection = %id, group = %group.id, "MailerLite group created");
    Ok((StatusCode::CREATED, Json(group)))
}

/// Every MailerLite segment with its active members (a rule of segments syncs active
/// subscribers only).
#[utoipa::path(
    get,
    path = "/connections/{id}/mailerlite/segments",
    tag = "setup",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = MailerLiteSegments),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The MailerLite API key is not stored yet", body = ErrorBody),
        (status = 424, description = "MailerLite refused the stored API key", body = ErrorBody),
        (status = 502, description = "MailerLite rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "MailerLite is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn mailerlite_segments(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<MailerLiteSegments>, HttpError> {
    connection(&api, &id).await?;
    require_apps(&api, &id, &[Side::MailerLite]).await?;
    Ok(Json(MailerLiteSegments { segments: api.engine.mailerlite_segments(&id).await? }))
}

/// How a mapping's HubSpot option property (dropdown, radio, checkbox) maps to its MailerLite
/// field: each option and what MailerLite receives for it, and, when MailerLite may write the
/// property, the values the first 500 subscribers hold, with those that match no option.
/// Checked against the fields last read ("refresh fields").
#[utoipa::path(
    post,
    path = "/connections/{id}/fields/options",
    tag = "fields",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body = OptionValuesRequest,
    responses(
        (status = 200, body = OptionMapping),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The fields were not read yet, or the MailerLite API key is not stored", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "The property or field does not exist, has no options, or does not convert", body = ErrorBody),
        (status = 424, description = "MailerLite refused the stored API key", body = ErrorBody),
        (status = 502, description = "MailerLite rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "MailerLite is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn option_values(
    State(api): State<Api>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OptionValuesRequest>,
) -> Result<Json<OptionMapping>, HttpError> {
    let conn = connection(&api, &id).await?;
    let direction = body.direction.unwrap_or(conn.config.direction);
    let refresh = "Refresh the fields (POST /connections/{id}/fields/refresh), or pick an existing one.";
    if writes_hubspot(direction, &body.mapping) {
        // MailerLite's values are read only when they can reach the property.
        require_apps(&api, &id, &[Side::MailerLite]).await?;
    }
    match api.engine.option_values(&id, &body.mapping, direction).await {
        Ok(mapping) => Ok(Json(mapping)),
        Err(OptionValuesError::NoSchemas) => Err(HttpError::conflict("the fields of the apps have not been read yet")
            .with_action("Refresh the fields first (POST /connections/{id}/fields/refresh).")),
        Err(e @ OptionValuesError::NoProperty { .. }) => {
            Err(HttpError::invalid(vec![FieldProblem::new("mapping.hubspot_property", e.to_string(), refresh)]))
        }
        Err(e @ OptionValuesError::NoField(_)) => {
            Err(HttpError::invalid(vec![FieldProblem::new("mapping.mailerlite_field", e.to_string(), refresh)]))
        }
        Err(OptionValuesError::Mapping(e)) => Err(HttpError::invalid(vec![FieldProblem::new(
            "mapping.hubspot_property",
            e.to_string(),
            "Option values exist only for dropdown, radio and checkbox properties mapped to a field they convert to.",
        )])),
        Err(OptionValuesError::Engine(e)) => Err(e.into()),
    }
}
