//! Running a connection: the lifecycle actions, its status, its errored contacts and their
//! retry, one contact's history, the dead letters, and the liveness probe.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use hmsync_core::{HubSpotObject, normalize_email};
use hmsync_engine::views::{ContactView, Status};
use hmsync_store::{ContactError, LinkKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::body::OptionalJsonBody;
use crate::connections::connection;
use crate::credentials::require_credentials;
use crate::error::{ErrorBody, FieldProblem, HttpError};

/// How many of the oldest dead letters the status reads to count a connection's (each status
/// read peeks at the queue; SQS returns 10 per call).
pub const DEAD_LETTER_PEEK: usize = 100;
pub const ERRORS_LIMIT: (usize, usize) = (50, 500);

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(activate))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(sync_now))
        .routes(routes!(approve))
        .routes(routes!(status))
        .routes(routes!(list_errors))
        .routes(routes!(retry_errors))
        .routes(routes!(contact))
        .routes(routes!(requeue_dead_letters))
}

pub fn public_routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(health))
}

/// The status page's view of a connection.
#[derive(Serialize, ToSchema)]
pub struct StatusView {
    #[serde(flatten)]
    pub status: Status,
    /// The connection's messages among the 100 oldest of the dead-letter queue; absent where
    /// this API cannot read the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<usize>,
}

/// One page of errored contacts.
#[derive(Serialize, ToSchema)]
pub struct ErrorPage {
    /// Each contact's current error: who (email, ids), and per problem the app, the field,
    /// what happened, the app's own message and what to do.
    pub errors: Vec<ContactError>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Errored contacts in total.
    pub total: u64,
}

/// Which errored contacts to sync again.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Error keys (the `key` of each error); absent: every errored contact.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct RetryResult {
    /// Contacts queued to sync again.
    pub queued: usize,
    /// Listed keys without a current error (already fixed, or never errored).
    pub unknown_keys: Vec<String>,
}

/// Dead letters moved back to the queue.
#[derive(Serialize, ToSchema)]
pub struct RequeueResult {
    pub requeued: usize,
}

/// One contact as the contact lookup shows it.
#[derive(Serialize, ToSchema)]
pub struct ContactPage {
    #[serde(flatten)]
    pub contact: ContactView,
    /// The contact's record in HubSpot, once the portal is known.
    pub hubspot_url: Option<String>,
    /// The subscriber's page in MailerLite.
    pub mailerlite_url: Option<String>,
    /// Every mapped field of the current config with the value last synced on each side
    /// (`null`: blank, or not synced yet).
    pub fields: Vec<ContactField>,
}

/// A mapped field of one contact.
#[derive(Serialize, ToSchema)]
pub struct ContactField {
    pub hubspot_object: HubSpotObject,
    pub hubspot_property: String,
    pub mailerlite_field: String,
    pub hubspot: Option<String>,
    pub mailerlite: Option<String>,
}

/// Where MailerLite shows a subscriber.
pub const MAILERLITE_DASHBOARD: &str = "https://dashboard.mailerlite.com";

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the API answers.
    pub status: String,
}

async fn view(api: &Api, id: &str) -> Result<StatusView, HttpError> {
    let status = api.engine.status(id).await?;
    let dead_letters = match &api.work_queue {
        Some(queue) => Some(queue.dead_letters(DEAD_LETTER_PEEK).await?.iter().filter(|d| d.group_id == id).count()),
        None => None,
    };
    Ok(StatusView { status, dead_letters })
}

/// Validates the connection, registers its MailerLite webhooks and starts the initial sync
/// (202); the status then shows its progress and the webhooks' state.
#[utoipa::path(
    post,
    path = "/connections/{id}/activate",
    tag = "lifecycle",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 202, description = "The initial sync started", body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Already active, or the credentials of an app are not stored yet", body = ErrorBody),
        (status = 422, description = "Every problem of the config against fresh schemas", body = ErrorBody),
        (status = 424, description = "An app refused the stored credentials", body = ErrorBody),
        (status = 502, description = "An app rejected a request hmsync made (unexpected)", body = ErrorBody),
        (status = 503, description = "An app is unavailable or rate-limited, or storage is throttled; try again", body = ErrorBody),
    )
)]
async fn activate(State(api): State<Api>, Path(id): Path<String>) -> Result<(StatusCode, Json<StatusView>), HttpError> {
    connection(&api, &id).await?;
    require_credentials(&api, &id).await?;
    api.engine.activate(&id, &api.mailerlite_webhook_target()).await?;
    tracing::info!(connection = %id, "activated; initial sync queued");
    Ok((StatusCode::ACCEPTED, Json(view(&api, &id).await?)))
}

/// Pauses a connection: work that arrives meanwhile is kept and replayed on resume.
#[utoipa::path(
    post,
    path = "/connections/{id}/pause",
    tag = "lifecycle",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn pause(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<StatusView>, HttpError> {
    connection(&api, &id).await?;
    api.engine.pause(&id).await?;
    tracing::info!(connection = %id, "paused");
    Ok(Json(view(&api, &id).await?))
}

/// Resumes a connection paused by the user or by refused credentials and replays the held
/// work. A safety-valve pause needs `approve`.
#[utoipa::path(
    post,
    path = "/connections/{id}/resume",
    tag = "lifecycle",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The safety valve holds it: approve instead", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn resume(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<StatusView>, HttpError> {
    connection(&api, &id).await?;
    api.engine.resume(&id).await?;
    tracing::info!(connection = %id, "resumed");
    Ok(Json(view(&api, &id).await?))
}

/// Scans both apps now (202). The scan checks and repairs the MailerLite webhooks; when they
/// point at another URL than this API's (or nowhere), they are registered here first.
#[utoipa::path(
    post,
    path = "/connections/{id}/sync-now",
    tag = "lifecycle",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 202, description = "A scan is queued", body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Not activated yet", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn sync_now(State(api): State<Api>, Path(id): Path<String>) -> Result<(StatusCode, Json<StatusView>), HttpError> {
    connection(&api, &id).await?;
    api.engine.follow_webhook_target(&id, &api.mailerlite_webhook_target()).await?;
    api.engine.sync_now(&id).await?;
    tracing::info!(connection = %id, "scan queued (sync now)");
    Ok((StatusCode::ACCEPTED, Json(view(&api, &id).await?)))
}

/// Approves the destructive changes the safety valve held and lets them through.
#[utoipa::path(
    post,
    path = "/connections/{id}/approve",
    tag = "lifecycle",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Nothing waits for approval", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn approve(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<StatusView>, HttpError> {
    connection(&api, &id).await?;
    api.engine.approve(&id).await?;
    tracing::info!(connection = %id, "held changes approved");
    Ok(Json(view(&api, &id).await?))
}

/// Lifecycle, pause, progress of the initial sync with its ETA, counts, last and next scan,
/// the connection-level problem, unique contacts this month and the dead letters.
#[utoipa::path(
    get,
    path = "/connections/{id}/status",
    tag = "health",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn status(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<StatusView>, HttpError> {
    connection(&api, &id).await?;
    Ok(Json(view(&api, &id).await?))
}

/// The errored contacts, a page at a time, ordered by key.
#[utoipa::path(
    get,
    path = "/connections/{id}/errors",
    tag = "health",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
        ("limit" = Option<usize>, Query, description = "Errors per page (1–500, default 50)", minimum = 1, maximum = 500),
    ),
    responses(
        (status = 200, body = ErrorPage),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "A bad `limit`", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn list_errors(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ErrorPage>, HttpError> {
    connection(&api, &id).await?;
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let limit = match q.get("limit") {
        None => ERRORS_LIMIT.0,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=ERRORS_LIMIT.1).contains(&n) => n,
            _ => {
                return Err(HttpError::invalid(vec![FieldProblem::new(
                    "limit",
                    format!("limit must be a whole number from 1 to {}", ERRORS_LIMIT.1),
                    "Send a limit in range, or leave it out for 50.",
                )]));
            }
        },
    };
    let after = q.get("after").filter(|a| !a.is_empty()).map(String::as_str);
    let page = api.engine.store.list_errors(&id, after, limit).await?;
    let total = api.engine.store.count_errors(&id).await?;
    Ok(Json(ErrorPage { errors: page.items, next: page.next, total }))
}

/// Syncs errored contacts again: the listed ones, or all (202).
#[utoipa::path(
    post,
    path = "/connections/{id}/errors/retry",
    tag = "health",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    request_body(content = Option<RetryRequest>, description = "Optional: no body (or `null`) retries every errored contact"),
    responses(
        (status = 202, body = RetryResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "Every bad field", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn retry_errors(
    State(api): State<Api>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RetryRequest>,
) -> Result<(StatusCode, Json<RetryResult>), HttpError> {
    connection(&api, &id).await?;
    let mut unknown_keys = Vec::new();
    let queued = match body.keys {
        Some(keys) => {
            let mut known = Vec::new();
            for key in keys {
                if api.engine.store.get_error(&id, &key).await?.is_some() {
                    known.push(key);
                } else {
                    unknown_keys.push(key);
                }
            }
            if known.is_empty() { 0 } else { api.engine.retry_errors(&id, Some(&known)).await? }
        }
        None => api.engine.retry_errors(&id, None).await?,
    };
    tracing::info!(connection = %id, queued, "errored contacts queued again");
    Ok((StatusCode::ACCEPTED, Json(RetryResult { queued, unknown_keys })))
}

/// One contact by email: the link (both ids, scope, status, the last synced value of every
/// mapped field), links to both records, its current error and its change history (newest
/// first).
#[utoipa::path(
    get,
    path = "/connections/{id}/contacts/{email}",
    tag = "health",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("email" = String, Path, description = "The contact's email (any case)", format = Email),
    ),
    responses(
        (status = 200, body = ContactPage),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection, or the email is not linked", body = ErrorBody),
        (status = 422, description = "Not an email address", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn contact(
    State(api): State<Api>,
    Path((id, email)): Path<(String, String)>,
) -> Result<Json<ContactPage>, HttpError> {
    let conn = connection(&api, &id).await?;
    let Some(email) = normalize_email(&email) else {
        return Err(HttpError::invalid(vec![FieldProblem::new(
            "email",
            "is not an email address",
            "Send the contact's email, e.g. /contacts/ada@example.com.",
        )]));
    };
    match api.engine.contact(&id, &LinkKey::Email(email.clone())).await? {
        Some(view) => {
            let (state, _) = api.engine.state(&id).await?;
            let link = &view.link;
            let hubspot_url = state.portal_id.zip(link.hubspot_id.as_ref()).map(|(portal, contact)| {
                format!("{}/contacts/{portal}/record/0-1/{contact}", api.hubspot_oauth.app_url.trim_end_matches('/'))
            });
            let mailerlite_url = link.mailerlite_id.as_ref().map(|s| format!("{MAILERLITE_DASHBOARD}/subscribers/{s}"));
            let fields = conn
                .config
                .mappings
                .iter()
                .map(|m| {
                    let base = link.bases.get(&m.key());
                    ContactField {
                        hubspot_object: m.hubspot_object,
                        hubspot_property: m.hubspot_property.clone(),
                        mailerlite_field: m.mailerlite_field.clone(),
                        hubspot: base.and_then(|b| b.hubspot.clone()),
                        mailerlite: base.and_then(|b| b.mailerlite.clone()),
                    }
                })
                .collect();
            Ok(Json(ContactPage { contact: view, hubspot_url, mailerlite_url, fields }))
        }
        None => Err(HttpError::not_found(format!("no contact with email {email} is linked in connection {id}"))
            .with_action(
                "Contacts are linked by the initial sync and by scans; check the sync rules if it should be.",
            )),
    }
}

/// Moves up to 100 dead letters (messages that failed too often) back to the queue.
#[utoipa::path(
    post,
    path = "/dead-letters/requeue",
    tag = "health",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = RequeueResult),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 501, description = "This deployment's API cannot read the queue", body = ErrorBody),
        (status = 503, description = "The queue is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn requeue_dead_letters(State(api): State<Api>) -> Result<Json<RequeueResult>, HttpError> {
    let Some(queue) = &api.work_queue else {
        return Err(HttpError::new(StatusCode::NOT_IMPLEMENTED, "this API has no access to the dead-letter queue")
            .with_action("Redrive the dead-letter queue from the SQS console (\"Start DLQ redrive\")."));
    };
    let requeued = queue.requeue_dead_letters(100).await?;
    tracing::info!(requeued, "dead letters requeued");
    Ok(Json(RequeueResult { requeued }))
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}
