//! Every refusal of the config API: a status code and a JSON body `{"error", "action"?,
//! "problems"?}` that says what happened and what to do. Engine, lifecycle and store errors map
//! onto statuses here, in one place.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmsync_core::ConfigProblem;
use hmsync_engine::{ApiError, EngineError, LifecycleError};
use hmsync_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do about it, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Every bad field of the request (422), each with its JSON path in the request or resource.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// One bad field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// JSON path of the field, e.g. `config.mappings[2].direction` or `mailerlite_api_key`.
    pub field: String,
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), fix: fix.into() }
    }

    /// A config problem, with its path made absolute (`config.` + the path inside the config).
    pub fn of_config(p: ConfigProblem) -> Self {
        Self { field: format!("config.{}", p.field), message: p.message, fix: p.fix }
    }
}

/// The config problems of a connection, as field problems of the connection resource.
pub fn config_problems(problems: Vec<ConfigProblem>) -> Vec<FieldProblem> {
    problems.into_iter().map(FieldProblem::of_config).collect()
}

/// An error answer.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorBody,
    retry_after: Option<Duration>,
}

impl HttpError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self { status, body: ErrorBody { error: error.into(), action: None, problems: Vec::new() }, retry_after: None }
    }

    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.body.action = Some(action.into());
        self
    }

    pub fn unauthorized(error: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, error)
            .with_action("Send the deployment's admin token as `Authorization: Bearer <token>`.")
    }

    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    pub fn connection_not_found(id: &str) -> Self {
        Self::not_found(format!("there is no connection {id:?}"))
            .with_action("List the connections with GET /connections, or create one with POST /connections.")
    }

    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// 422 naming every bad field.
    pub fn invalid(problems: Vec<FieldProblem>) -> Self {
        let error = match problems.len() {
            1 => format!("{} is invalid: {}", problems[0].field, problems[0].message),
            n => format!(
                "{n} fields are invalid: {}",
                problems.iter().map(|p| p.field.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, error);
        e.body.problems = problems;
        e
    }

    fn unavailable(error: impl Into<String>, retry_after: Option<Duration>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, error).with_action("Try again in a moment.");
        e.retry_after = retry_after;
        e
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.body.error, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), "request refused");
        }
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hmsync\""));
        }
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            // The connection's stored credentials are refused: the request cannot succeed until
            // the user replaces them (424: it depends on a failed request to the app).
            ApiError::Unauthorized { side, message, action } | ApiError::Forbidden { side, message, action } => {
                HttpError::new(
                    StatusCode::FAILED_DEPENDENCY,
                    format!("{side} refused the connection's credentials: {message}"),
                )
                .with_action(action)
            }
            ApiError::Transient { side, message, retry_after } => {
                HttpError::unavailable(format!("{side} is unavailable right now ({message})"), retry_after)
            }
            ApiError::DailyLimit { retry_after } => HttpError::unavailable(
                "HubSpot's daily API limit is used up; it resets at midnight in the portal's time zone",
                Some(retry_after),
            ),
            // Something the config names is not in the app (where it is not already a problem
            // of the config, e.g. in the preview).
            e @ ApiError::NotFound { .. } => HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                .with_action("Check the connection's rules (PATCH /connections/{id})."),
            ApiError::Rejected { side, message } => {
                HttpError::new(StatusCode::BAD_GATEWAY, format!("{side} rejected a request hmsync made: {message}"))
                    .with_action("This is unexpected: report it with the message above.")
            }
        }
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => HttpError::not_found(message),
            StoreError::AlreadyExists { .. }
            | StoreError::VersionConflict { .. }
            | StoreError::IndexConflict { .. } => HttpError::conflict(message),
            StoreError::Invalid { .. } => HttpError::bad_request(message),
            e if e.is_transient() => HttpError::unavailable(message, None),
            _ => HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

impl From<EngineError> for HttpError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Api(e) => e.into(),
            EngineError::Store(e) => e.into(),
            EngineError::Retry { message, after } => HttpError::unavailable(message, after),
            e @ (EngineError::Permanent(_) | EngineError::Crashed(_)) => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<LifecycleError> for HttpError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::InvalidConfig(problems) => {
                let mut e = HttpError::invalid(config_problems(problems));
                e.body.action = Some("Fix the config (PATCH /connections/{id}), then try again.".into());
                e
            }
            LifecycleError::NotAllowed(message) => HttpError::conflict(message),
            LifecycleError::Engine(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_every_field() {
        let e = HttpError::invalid(vec![
            FieldProblem::new("config.name", "The connection has no name.", "Give it a name."),
            FieldProblem::new("limit", "must be between 1 and 1000", "Send a smaller limit."),
        ]);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.error, "2 fields are invalid: config.name, limit");
        let body = serde_json::to_value(&e.body).unwrap();
        assert_eq!(body["problems"][1]["field"], "limit");
    }

    #[test]
    fn engine_errors_map_to_statuses() {
        let status = |e: EngineError| HttpError::from(e).status;
        assert_eq!(
            status(EngineError::Api(ApiError::Unauthorized {
                side: hmsync_core::Side::MailerLite,
                message: "Unauthenticated.".into(),
                action: "Save a new key.".into()
            })),
            StatusCode::FAILED_DEPENDENCY
        );
        assert_eq!(
            status(EngineError::Api(ApiError::Transient {
                side: hmsync_core::Side::HubSpot,
                message: "502".into(),
                retry_after: Some(Duration::from_secs(3))
            })),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(EngineError::Store(StoreError::VersionConflict { entity: "connection c".into(), current: Some(3) })),
            StatusCode::CONFLICT
        );
        assert_eq!(HttpError::from(LifecycleError::NotAllowed("already active".into())).status, StatusCode::CONFLICT);
        let invalid = HttpError::from(LifecycleError::InvalidConfig(vec![ConfigProblem {
            field: "mappings[0].direction".into(),
            message: "m".into(),
            fix: "f".into(),
        }]));
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(invalid.body.problems[0].field, "config.mappings[0].direction");
    }

    #[test]
    fn retry_after_and_www_authenticate_headers() {
        let r = HttpError::from(ApiError::DailyLimit { retry_after: Duration::from_secs(90) }).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "90");
        let r = HttpError::unauthorized("missing token").into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
