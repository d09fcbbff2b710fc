//! `POST /webhooks/hubspot` and `POST /webhooks/mailerlite/{connection_id}`: signed, bounded,
//! answered as soon as the work is queued.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmsync_engine::webhook::{Accepted, HubSpotDelivery, MAILERLITE_MAX_BODY_BYTES, MAX_BODY_BYTES, WebhookError};
use serde_json::json;

use crate::AppState;

/// The webhook routes (public: the signature is the authentication).
pub fn webhook_routes(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/hubspot", post(hubspot).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route(
            "/webhooks/mailerlite/{connection_id}",
            post(mailerlite).layer(DefaultBodyLimit::max(MAILERLITE_MAX_BODY_BYTES)),
        )
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
    /// MailerLite items that could not be read: left out, counted, the rest accepted.
    skipped: usize,
    /// Queue messages sent.
    messages: usize,
}

/// One HubSpot webhook event, as far as hmsync reads it (other fields are ignored). Only for the
/// document: the engine parses the events (`hmsync_hubspot::WebhookEvent`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct HubSpotEvent {
    pub portal_id: u64,
    /// Epoch ms.
    pub occurred_at: i64,
    /// E.g. `contact.propertyChange`, `contact.creation`, `contact.merge`, `company.propertyChange`,
    /// or a generic `object.*` event with `objectTypeId` `0-1` (contacts) or `0-2` (companies).
    pub subscription_type: String,
    #[schema(required = false)]
    pub event_id: u64,
    #[schema(required = false)]
    pub subscription_id: u64,
    #[schema(required = false)]
    pub app_id: u64,
    #[schema(required = false)]
    pub attempt_number: u32,
    /// The contact's or company's id (a number, or a string of digits).
    #[schema(value_type = Option<serde_json::Value>)]
    pub object_id: Option<u64>,
    pub object_type_id: Option<String>,
    pub change_source: Option<String>,
    pub source_id: Option<String>,
    pub change_flag: Option<String>,
    pub property_name: Option<String>,
    pub property_value: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub primary_object_id: Option<u64>,
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    pub merged_object_ids: Option<Vec<u64>>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub new_object_id: Option<u64>,
    pub number_of_properties_moved: Option<u64>,
}

/// A HubSpot delivery: 1 to 100 events (the document's name for the array, with its bound).
pub(crate) struct HubSpotEvents;

impl utoipa::PartialSchema for HubSpotEvents {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("HubSpotEvent"))
            .min_items(Some(1))
            .description(Some("A HubSpot delivery: 1 to 100 events."))
            .into()
    }
}

impl utoipa::ToSchema for HubSpotEvents {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((HubSpotEvent::name().into_owned(), HubSpotEvent::schema()));
        HubSpotEvent::schemas(schemas);
    }
}

/// The refusal of a body that could not be read: 413 over the receiver's limit (as JSON, like
/// every refusal).
fn unreadable(rejection: BytesRejection, limit: usize) -> Response {
    let status = rejection.status();
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is larger than {limit} bytes")
    } else {
        format!("the body could not be read: {rejection}")
    };
    tracing::info!(status = status.as_u16(), "webhook refused");
    (status, axum::Json(json!({"error": error}))).into_response()
}

fn answer(result: Result<Accepted, WebhookError>) -> Response {
    match result {
        Ok(a) => (
            StatusCode::OK,
            axum::Json(WebhookAccepted {
                accepted: true,
                events: a.events,
                echoes: a.echoes,
                skipped: a.skipped,
                messages: a.messages,
            }),
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

/// A HubSpot webhook delivery (a JSON array of 1 to 100 events), signed v3 over the full URL,
/// body and timestamp with the app's client secret. Public: the signature authenticates. A
/// request without a signature, with an empty one, or with a timestamp more than 5 minutes
/// away is refused (401) before the body is parsed or any connection is looked up.
#[utoipa::path(
    post,
    path = "/webhooks/hubspot",
    tag = "webhooks",
    params(
        ("X-HubSpot-Signature-v3" = String, Header, description = "base64 HMAC-SHA256 of method + URL + body + timestamp with the app's client secret", min_length = 1),
        ("X-HubSpot-Request-Timestamp" = String, Header, description = "Epoch ms; more than 5 minutes from now is refused"),
    ),
    request_body(content = HubSpotEvents, description = "HubSpot's event array", content_type = "application/json"),
    responses(
        (status = 200, description = "Queued", body = WebhookAccepted),
        (status = 400, description = "Not an event array, no events, more than 100 events or events of more than 10 portals (refused before any lookup)", body = crate::ErrorBody),
        (status = 401, description = "No or empty signature, stale timestamp, or a delivery no connection verifies (including a portal without a connection)", body = crate::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = crate::ErrorBody),
        (status = 503, description = "Not queued; HubSpot retries", body = crate::ErrorBody),
    )
)]
pub(crate) async fn hubspot(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(rejection, MAX_BODY_BYTES),
    };
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
/// the connection's webhook secret. Public: the signature authenticates. Items that cannot be
/// read are skipped and counted, and the rest is accepted (200): refusing a whole delivery
/// would make MailerLite resend it and finally disable the webhook.
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
        (status = 400, description = "Signed, but not a JSON object", body = crate::ErrorBody),
        (status = 401, description = "No, empty or wrong signature; the same answer for an unknown connection or one without a webhook secret (checked before the connection is looked up)", body = crate::ErrorBody),
        (status = 404, description = "Signed, but the connection was deleted since", body = crate::ErrorBody),
        (status = 413, description = "Body over 6 MiB (a synchronous Lambda invocation's payload limit)", body = crate::ErrorBody),
        (status = 503, description = "Not queued; MailerLite retries", body = crate::ErrorBody),
    )
)]
pub(crate) async fn mailerlite(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(rejection, MAILERLITE_MAX_BODY_BYTES),
    };
    answer(state.engine.mailerlite_webhook(&connection_id, &body, header(&headers, "signature")).await)
}
