//! `POST /webhooks/hubspot` and `POST /webhooks/mailerlite/{connection_id}`: signed, bounded,
//! answered as soon as the work is queued.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmsync_engine::webhook::{Accepted, HubSpotDelivery, MAX_BODY_BYTES, WebhookError};
use serde_json::json;

use crate::AppState;

/// The webhook routes (public: the signature is the authentication).
pub fn webhook_routes(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/hubspot", post(hubspot))
        .route("/webhooks/mailerlite/{connection_id}", post(mailerlite))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What a webhook receiver answers when the delivery is queued.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAccepted {
    accepted: bool,
    /// Events in the delivery.
    events: usize,
    /// Events dropped as echoes of hmsync's own writes.
    echoes: usize,
    /// Queue messages sent.
    messages: usize,
}

fn answer(result: Result<Accepted, WebhookError>) -> Response {
    match result {
        Ok(a) => (
            StatusCode::OK,
            axum::Json(WebhookAccepted { accepted: true, events: a.events, echoes: a.echoes, messages: a.messages }),
        )
            .into_response(),
        Err(e) => {
            let status = match &e {
                WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
                WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                WebhookError::NotFound(_) => StatusCode::NOT_FOUND,
                WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            if status.is_server_error() {
                tracing::error!(error = %e, "webhook not recorded; the sender will retry");
            } else {
                tracing::info!(status = status.as_u16(), error = %e, "webhook refused");
            }
            (status, axum::Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A HubSpot webhook delivery (a JSON array of at most 100 events), signed v3 over the full
/// URL, body and timestamp with the app's client secret. Public: the signature authenticates.
#[utoipa::path(
    post,
    path = "/webhooks/hubspot",
    tag = "webhooks",
    params(
        ("X-HubSpot-Signature-v3" = String, Header, description = "base64 HMAC-SHA256 of method + URL + body + timestamp"),
        ("X-HubSpot-Request-Timestamp" = String, Header, description = "Epoch ms; older than 5 minutes is refused"),
    ),
    request_body(content = Vec<serde_json::Value>, description = "HubSpot's event array", content_type = "application/json"),
    responses(
        (status = 200, description = "Queued", body = WebhookAccepted),
        (status = 400, description = "Malformed or oversized body", body = crate::ErrorBody),
        (status = 401, description = "Bad signature or stale timestamp", body = crate::ErrorBody),
        (status = 404, description = "No connection for the portal", body = crate::ErrorBody),
        (status = 503, description = "Not queued; HubSpot retries", body = crate::ErrorBody),
    )
)]
pub(crate) async fn hubspot(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/webhooks/hubspot");
    let full = format!("{}{}", state.public_base_url.trim_end_matches('/'), path_and_query);
    let delivery = HubSpotDelivery {
        method: "POST",
        uri: &full,
        body: &body,
        signature_v3: header(&headers, "x-hubspot-signature-v3"),
        timestamp: header(&headers, "x-hubspot-request-timestamp"),
    };
    answer(state.engine.hubspot_webhook(delivery).await)
}

/// A MailerLite webhook delivery (one event, or `{"events": [...]}` when batched), signed with
/// the connection's webhook secret. Public: the signature authenticates.
#[utoipa::path(
    post,
    path = "/webhooks/mailerlite/{connection_id}",
    tag = "webhooks",
    params(
        ("connection_id" = String, Path, description = "The connection the webhook was created for"),
        ("Signature" = String, Header, description = "hex HMAC-SHA256 of the raw body with the webhook's secret"),
    ),
    request_body(content = serde_json::Value, description = "MailerLite's event or batch", content_type = "application/json"),
    responses(
        (status = 200, description = "Queued", body = WebhookAccepted),
        (status = 400, description = "Malformed or oversized body", body = crate::ErrorBody),
        (status = 401, description = "Bad signature", body = crate::ErrorBody),
        (status = 404, description = "No such connection", body = crate::ErrorBody),
        (status = 503, description = "Not queued; MailerLite retries", body = crate::ErrorBody),
    )
)]
pub(crate) async fn mailerlite(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state.engine.mailerlite_webhook(&connection_id, &body, header(&headers, "signature")).await)
}
