//! Connections: create, list, read, update (optimistic, validated against the stored schemas),
//! delete; both apps' field schemas; the preview (dry run).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmsync_core::{ConnectionConfig, FieldMapping, FieldSchemas, suggest_mappings, validate_config};
use hmsync_engine::Lifecycle;
use hmsync_engine::views::{CredentialsStatus, Preview};
use hmsync_store::{Connection, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::body::{JsonBody, OptionalJsonBody};
use crate::credentials::require_credentials;
use crate::error::{ErrorBody, FieldProblem, HttpError, config_problems};

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, update_connection, delete_connection))
        .routes(routes!(refresh_fields))
        .routes(routes!(get_fields))
        .routes(routes!(check_config))
        .routes(routes!(preview))
}

/// The stored connection, or 404.
pub(crate) async fn connection(api: &Api, id: &str) -> Result<Connection, HttpError> {
    api.engine.store.get_connection(id).await?.ok_or_else(|| HttpError::connection_not_found(id))
}

/// A new connection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// 1–64 letters, digits, `-` or `_`; generated when absent (or `null`). It appears in the
    /// MailerLite webhook URL (`/webhooks/mailerlite/{id}`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: Option<String>,
    pub config: ConnectionConfig,
}

/// A config change. The whole config is replaced; `version` is the version you read.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUpdate {
    #[schema(maximum = 18446744073709551615u64)]
    pub version: u64,
    pub config: ConnectionConfig,
}

/// A connection as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct ConnectionDetail {
    pub id: String,
    /// Send it back with a change (PATCH) to detect concurrent edits.
    pub version: u64,
    pub config: ConnectionConfig,
    pub lifecycle: Lifecycle,
    /// Whether both apps' field schemas have been read ("refresh fields"); mappings are only
    /// checked against the apps once they have.
    pub schemas_loaded: bool,
    /// Which credentials are stored (never their values).
    pub credentials: CredentialsStatus,
    /// What is wrong with the config (empty: ready to activate).
    pub problems: Vec<FieldProblem>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One connection in the list.
#[derive(Serialize, ToSchema)]
pub struct ConnectionSummary {
    pub id: String,
    pub name: String,
    pub version: u64,
    pub lifecycle: Lifecycle,
    pub paused: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionSummary>,
}

/// Both apps' field schemas and the config's problems against them.
#[derive(Serialize, ToSchema)]
pub struct Fields {
    /// `null` until the fields have been refreshed once.
    pub schemas: Option<FieldSchemas>,
    pub problems: Vec<FieldProblem>,
    /// The mappings a new connection starts with: the default pairs both apps have (first and
    /// last name, company, city, country, phone, state, ZIP) and MailerLite fields named like a
    /// HubSpot contact property, where the types convert; read-only properties flow HubSpot →
    /// MailerLite. Empty until the fields have been read.
    pub suggested_mappings: Vec<FieldMapping>,
}

impl Fields {
    fn of(schemas: Option<FieldSchemas>, problems: Vec<FieldProblem>) -> Self {
        let suggested_mappings = schemas.as_ref().map(suggest_mappings).unwrap_or_default();
        Self { schemas, problems, suggested_mappings }
    }
}

/// A config to check without saving it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigCheckRequest {
    pub config: ConnectionConfig,
}

/// A config that saving would accept.
#[derive(Serialize, ToSchema)]
pub struct ConfigCheck {
    /// Always empty here: a config with problems is a 422 naming each.
    pub problems: Vec<FieldProblem>,
    /// Whether the mappings were also checked against the apps' fields (after "refresh
    /// fields"); before, only what the config says on its own.
    pub schemas_loaded: bool,
}

/// What to preview.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// A config to preview instead of the stored one (the preview of a change).
    #[serde(default)]
    pub config: Option<ConnectionConfig>,
    /// Records read from each app (1–1000, default 200).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Contacts listed with their field-level changes (0–100, default 20).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub samples: Option<usize>,
}

pub const PREVIEW_LIMIT: (usize, usize) = (200, 1000);
pub const PREVIEW_SAMPLES: (usize, usize) = (20, 100);

fn id_problem(id: &str) -> Option<FieldProblem> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!ok).then(|| {
        FieldProblem::new(
            "id",
            "A connection id is 1 to 64 letters, digits, '-' or '_'.",
            "Choose another id, or leave it out to get a generated one.",
        )
    })
}

async fn detail(api: &Api, conn: Connection) -> Result<ConnectionDetail, HttpError> {
    let (state, _) = api.engine.state(&conn.id).await?;
    let credentials = api.engine.credentials_status(&conn.id).await?;
    let problems = config_problems(validate_config(&conn.config, conn.schemas.as_ref()));
    Ok(ConnectionDetail {
        id: conn.id,
        version: conn.version,
        config: conn.config,
        lifecycle: state.lifecycle,
        schemas_loaded: conn.schemas.is_some(),
        credentials,
        problems,
        created_at_ms: conn.created_at_ms,
        updated_at_ms: conn.updated_at_ms,
    })
}

/// Every connection of the deployment.
#[utoipa::path(
    get,
    path = "/connections",
    tag = "connections",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ConnectionList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn list_connections(State(api): State<Api>) -> Result<Json<ConnectionList>, HttpError> {
    let mut connections = Vec::new();
    for conn in api.engine.store.list_connections().await? {
        let (state, _) = api.engine.state(&conn.id).await?;
        connections.push(ConnectionSummary {
            name: conn.config.name.clone(),
            id: conn.id,
            version: conn.version,
            lifecycle: state.lifecycle,
            paused: state.pause.is_some(),
        });
    }
    Ok(Json(ConnectionList { connections }))
}

/// Creates a connection (a draft: nothing syncs until it is activated).
#[utoipa::path(
    post,
    path = "/connections",
    tag = "connections",
    security(("admin_token" = [])),
    request_body = NewConnection,
    responses(
        (status = 201, body = ConnectionDetail, headers(("Location" = String, description = "The new connection's URL"))),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Every bad field: of the wrong shape, or a problem of the config", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn create_connection(
    State(api): State<Api>,
    JsonBody(body): JsonBody<NewConnection>,
) -> Result<Response, HttpError> {
    let id = body.id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut problems: Vec<FieldProblem> = id_problem(&id).into_iter().collect();
    problems.extend(config_problems(validate_config(&body.config, None)));
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems));
    }
    let conn = match api.engine.store.create_connection(&id, &body.config).await {
        Ok(c) => c,
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(HttpError::conflict(format!("a connection with id {id:?} already exists"))
                .with_action("Choose another id, or leave it out to get a generated one."));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(connection = %conn.id, "connection created");
    let location = HeaderValue::from_str(&format!("/connections/{}", conn.id)).expect("ids are URL-safe");
    let detail = detail(&api, conn).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(detail)).into_response())
}

/// A connection: config, version, lifecycle, stored credentials (which, not their values) and
/// the config's problems.
#[utoipa::path(
    get,
    path = "/connections/{id}",
    tag = "connections",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = ConnectionDetail),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn get_connection(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<ConnectionDetail>, HttpError> {
    let conn = connection(&api, &id).await?;
    Ok(Json(detail(&api, conn).await?))
}

/// Replaces the config if `version` is still the stored version. The config is checked against
/// the stored field schemas: every problem is listed.
#[utoipa::path(
    patch,
    path = "/connections/{id}",
    tag = "connections",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body = ConnectionUpdate,
    responses(
        (status = 200, body = ConnectionDetail),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Changed by someone else since `version`", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Every bad field: of the wrong shape, or a problem of the config (also against the field schemas last read)", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn update_connection(
    State(api): State<Api>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConnectionUpdate>,
) -> Result<Json<ConnectionDetail>, HttpError> {
    let conn = connection(&api, &id).await?;
    let problems = config_problems(validate_config(&body.config, conn.schemas.as_ref()));
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems));
    }
    if body.version >= i64::MAX as u64 {
        // Versions start at 1, grow by one a write and are stored as 64-bit signed integers:
        // none is this large (and the next one could not be stored).
        return Err(version_conflict(&id, body.version, Some(conn.version)));
    }
    // The store compares `version` with the stored one in the same write.
    let next = Connection { config: body.config, version: body.version, ..conn };
    match api.engine.store.update_connection(&next).await {
        Ok(saved) => {
            tracing::info!(connection = %id, version = saved.version, "config updated");
            Ok(Json(detail(&api, saved).await?))
        }
        Err(StoreError::VersionConflict { current, .. }) => Err(version_conflict(&id, body.version, current)),
        Err(e) => Err(e.into()),
    }
}

fn version_conflict(id: &str, sent: u64, current: Option<u64>) -> HttpError {
    HttpError::conflict(format!(
        "connection {id} changed since version {sent} (it is at version {})",
        current.map_or_else(|| "?".to_string(), |v| v.to_string())
    ))
    .with_action("GET the connection again, apply your change to it and send its version.")
}

/// Deletes a connection with its links, history, errors, state and credentials. Nothing is
/// deleted in HubSpot or MailerLite.
#[utoipa::path(
    delete,
    path = "/connections/{id}",
    tag = "connections",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn delete_connection(State(api): State<Api>, Path(id): Path<String>) -> Result<StatusCode, HttpError> {
    connection(&api, &id).await?;
    if !api.engine.delete_connection(&id).await? {
        return Err(HttpError::connection_not_found(&id));
    }
    tracing::info!(connection = %id, "connection deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Re-reads both apps' schemas (HubSpot contact and company properties, MailerLite fields) and
/// checks the config against them.
#[utoipa::path(
    post,
    path = "/connections/{id}/fields/refresh",
    tag = "fields",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = Fields),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The credentials of an app are not stored yet", body = ErrorBody),
        (status = 424, description = "An app refused the stored credentials", body = ErrorBody),
        (status = 502, description = "An app rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "An app is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn refresh_fields(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Fields>, HttpError> {
    connection(&api, &id).await?;
    require_credentials(&api, &id).await?;
    let (conn, problems) = api.engine.refresh_fields(&id).await?;
    Ok(Json(Fields::of(conn.schemas, config_problems(problems))))
}

/// Both apps' schemas as last read, and the config's problems against them.
#[utoipa::path(
    get,
    path = "/connections/{id}/fields",
    tag = "fields",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = Fields),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn get_fields(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Fields>, HttpError> {
    let conn = connection(&api, &id).await?;
    let problems = config_problems(validate_config(&conn.config, conn.schemas.as_ref()));
    Ok(Json(Fields::of(conn.schemas, problems)))
}

/// Checks a config as `PATCH` would (against the fields last read) without saving it, and
/// without asking either app: 200 when saving would accept it, else 422 naming every problem
/// (`config.…`), exactly as `PATCH` would.
#[utoipa::path(
    post,
    path = "/connections/{id}/config/check",
    tag = "fields",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body = ConfigCheckRequest,
    responses(
        (status = 200, body = ConfigCheck),
        (status = 400, description = "Malformed JSON, or no body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Every bad field: of the wrong shape, or a problem of the config (also against the field schemas last read)", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn check_config(
    State(api): State<Api>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConfigCheckRequest>,
) -> Result<Json<ConfigCheck>, HttpError> {
    let conn = connection(&api, &id).await?;
    let problems = config_problems(validate_config(&body.config, conn.schemas.as_ref()));
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems));
    }
    Ok(Json(ConfigCheck { problems, schemas_loaded: conn.schemas.is_some() }))
}

/// A dry run: checks the config against both apps' current fields (every problem activation
/// would refuse), reads the first records of each app and reports what the sync would create,
/// update and clear, and which conflicts it would resolve. Writes nothing.
#[utoipa::path(
    post,
    path = "/connections/{id}/preview",
    tag = "fields",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body(content = Option<PreviewRequest>, description = "Optional: no body (or `null`) previews the stored config"),
    responses(
        (status = 200, body = Preview),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The credentials of an app are not stored yet", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Every bad field: of the wrong shape or a problem of the config (checked before either app is asked), then every problem of the previewed config against both apps' current fields, as activation would refuse it", body = ErrorBody),
        (status = 424, description = "An app refused the stored credentials", body = ErrorBody),
        (status = 502, description = "An app rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "An app is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn preview(
    State(api): State<Api>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<PreviewRequest>,
) -> Result<Json<Preview>, HttpError> {
    let conn = connection(&api, &id).await?;
    let mut problems = Vec::new();
    let limit = body.limit.unwrap_or(PREVIEW_LIMIT.0);
    if limit == 0 || limit > PREVIEW_LIMIT.1 {
        problems.push(FieldProblem::new(
            "limit",
            format!("limit must be between 1 and {}", PREVIEW_LIMIT.1),
            "Send a limit in range, or leave it out for 200.",
        ));
    }
    let samples = body.samples.unwrap_or(PREVIEW_SAMPLES.0);
    if samples > PREVIEW_SAMPLES.1 {
        problems.push(FieldProblem::new(
            "samples",
            format!("samples must be at most {}", PREVIEW_SAMPLES.1),
            "Send fewer samples, or leave it out for 20.",
        ));
    }
    if let Some(config) = &body.config {
        problems.extend(config_problems(validate_config(config, conn.schemas.as_ref())));
    }
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems));
    }
    require_credentials(&api, &id).await?;
    Ok(Json(api.engine.preview(&id, body.config, limit, samples).await?))
}
