//! `GET /connections/{id}/doctor`: the read-only preflight of a connection against both apps
//! and this deployment (the same checks as `hmsync doctor`).

use axum::Json;
use axum::extract::{Path, State};
use hmsync_engine::doctor::{DoctorOptions, DoctorReport};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::connections::connection;
use crate::error::{ErrorBody, HttpError};

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(doctor))
}

/// Checks the connection against the real accounts and changes nothing: which HubSpot portal
/// and app and which MailerLite account the credentials reach, the HubSpot scopes against those
/// the connection uses, the MailerLite webhooks, the HubSpot app's webhooks (what hmsync can
/// tell), the mapped fields against both apps' current fields, the rate-limit headroom, and
/// whether this API's public URL answers. Each finding has a severity (`ok`, `unknown`,
/// `warning`, `error`), what was found, the feature it affects and what to do. Problems of the
/// apps are findings, not failed requests: a refused credential is an `error` finding in a 200.
#[utoipa::path(
    get,
    path = "/connections/{id}/doctor",
    tag = "health",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = DoctorReport),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 503, description = "Storage is throttled or unavailable; try again", body = ErrorBody),
    )
)]
async fn doctor(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<DoctorReport>, HttpError> {
    connection(&api, &id).await?;
    let options = DoctorOptions {
        public_url: Some(api.public_base_url.clone()),
        hubspot_api_url: api.api_settings.hubspot_base_url.clone(),
        mailerlite_api_url: api.api_settings.mailerlite_base_url.clone(),
    };
    Ok(Json(api.engine.doctor(&id, &options).await?))
}
