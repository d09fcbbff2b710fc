//! A person's data: erase them from a connection (purge and tombstone, optionally forwarded to
//! the apps), export what hmsync holds about them, and lift an erasure so a new sign-up with
//! that email syncs again.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use hmsync_core::normalize_email;
use hmsync_engine::privacy::ERASED_BY_API;
use hmsync_engine::{Erasure, Export, Forward, Who};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::connections::connection;
use crate::error::{ErrorBody, FieldProblem, HttpError};

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(erase)).routes(routes!(export)).routes(routes!(lift_erasure))
}

fn email_of(raw: &str) -> Result<String, HttpError> {
    normalize_email(raw).ok_or_else(|| {
        HttpError::invalid(vec![FieldProblem::new(
            "email",
            "is not an email address",
            "Send the person's email, e.g. /contacts/ada@example.com.",
        )])
    })
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, HttpError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(HttpError::invalid(vec![FieldProblem::new(
            name,
            "must be true or false",
            format!("Send {name}=true to forward the erasure, or leave it out."),
        )])),
    }
}

/// Erases a person from the connection: their link, index entries, last synced values,
/// history, errors, waiting engagement events and meter marks, keeping only a tombstone (keyed
/// digests of the email and both record ids) so no later sync, scan or webhook brings them
/// back. Optionally forwarded: `forward_to_mailerlite=true` asks MailerLite to forget the
/// subscriber, `forward_to_hubspot=true` deletes the contact with HubSpot's GDPR delete.
#[utoipa::path(
    delete,
    path = "/connections/{id}/contacts/{email}",
    tag = "privacy",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("email" = String, Path, description = "The person's email (any case)", format = Email),
        ("forward_to_mailerlite" = Option<bool>, Query, description = "Also ask MailerLite to forget the linked subscriber (default false)"),
        ("forward_to_hubspot" = Option<bool>, Query, description = "Also delete the linked HubSpot contact with HubSpot's GDPR delete (default false)"),
    ),
    responses(
        (status = 200, description = "What was erased (the tombstone is kept even when nothing was stored)", body = Erasure),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Not an email address, or a forwarding flag that is not true or false", body = ErrorBody),
        (status = 502, description = "An app refused the forwarded erasure (hmsync's own data is erased)", body = ErrorBody),
        (status = 503, description = "Storage or an app is unavailable; try again", body = ErrorBody),
    )
)]
async fn erase(
    State(api): State<Api>,
    Path((id, email)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Erasure>, HttpError> {
    connection(&api, &id).await?;
    let email = email_of(&email)?;
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let forward = Forward { mailerlite: flag(&q, "forward_to_mailerlite")?, hubspot: flag(&q, "forward_to_hubspot")? };
    Ok(Json(api.engine.erase(&id, &Who::Email(email), ERASED_BY_API, forward).await?))
}

/// Everything hmsync holds about a person in this connection, as JSON: the link with the last
/// synced value of every mapped field, current errors, the change history, and whether they
/// are erased.
#[utoipa::path(
    get,
    path = "/connections/{id}/contacts/{email}/export",
    tag = "privacy",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("email" = String, Path, description = "The person's email (any case)", format = Email),
    ),
    responses(
        (status = 200, body = Export),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Not an email address", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn export(State(api): State<Api>, Path((id, email)): Path<(String, String)>) -> Result<Json<Export>, HttpError> {
    connection(&api, &id).await?;
    let email = email_of(&email)?;
    Ok(Json(api.engine.export(&id, &email).await?))
}

/// Lifts the erasure of this email: a person who signs up again with it is synced as a new
/// contact from the next webhook or scan on (204), or 404 when no erasure holds the email.
#[utoipa::path(
    delete,
    path = "/connections/{id}/contacts/{email}/erasure",
    tag = "privacy",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("email" = String, Path, description = "The person's email (any case)", format = Email),
    ),
    responses(
        (status = 204, description = "The erasure is lifted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection, or no erasure holds this email", body = ErrorBody),
        (status = 422, description = "Not an email address", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn lift_erasure(
    State(api): State<Api>,
    Path((id, email)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    connection(&api, &id).await?;
    let email = email_of(&email)?;
    if api.engine.lift_erasure(&id, &email).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HttpError::not_found(format!("no erasure holds {email} in connection {id}")))
    }
}
