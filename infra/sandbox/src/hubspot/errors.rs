//! HubSpot error bodies: every error is JSON with `status:"error"`, a `message`, a
//! `correlationId` that equals the `X-HubSpot-Correlation-Id` header, and a `category`.
//! Documented at <https://developers.hubspot.com/docs/api/error-handling>.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

pub const CORRELATION_HEADER: &str = "x-hubspot-correlation-id";

/// A random UUID-shaped correlation id (v4 layout).
pub fn correlation_id() -> String {
    let a = fastrand::u128(..);
    let a = (a & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{a:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// One invalid property value of a write (an entry of the `"Property values were not valid"` list).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyProblem {
    pub name: String,
    /// `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, `INVALID_INTEGER`, `INVALID_EMAIL`, …
    pub code: &'static str,
    pub message: String,
}

/// An error response: status and body; the correlation id is part of the body.
#[derive(Debug, Clone)]
pub struct HsError {
    pub status: StatusCode,
    pub body: Value,
}

impl HsError {
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"status":"error","message":message.into(),"correlationId":correlation_id(),"category":category}),
        }
    }

    /// Adds a top-level field to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found(id: &str) -> Self {
        // Two spaces after the first sentence, as HubSpot sends it.
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
            .with("context", json!({"id":[id]}))
    }

    pub fn resource_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "resource not found")
    }

    pub fn conflict(existing_id: u64) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", format!("Contact already exists. Existing ID: {existing_id}"))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    /// UNCONFIRMED wording: HubSpot documents only the category `EXPIRED_AUTHENTICATION`.
    pub fn expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired. Refresh the access token and try again.",
        )
    }

    pub fn missing_scopes(required: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        )
        .with(
            "errors",
            json!([{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":required}}]),
        )
        .with("links", json!({"scopes":"https://developers.hubspot.com/scopes"}))
    }

    pub fn bad_json(err: &serde_json::Error) -> Self {
        Self::validation(format!("Invalid input JSON on line {}, column {}: {err}", err.line(), err.column()))
    }

    /// 400 for one or more invalid property values: the exact body shape of the error-handling page.
    pub fn properties(problems: &[PropertyProblem], portal_id: u64) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", property_problems_message(problems, portal_id))
            .with("errors", property_problems_errors(problems))
    }

    /// The one error of a batch that several inputs made fail: their invalid values in one
    /// `"Property values were not valid"` list (assumed: HubSpot names the properties and
    /// values, not the inputs), or the first error when one is of another kind (a conflict).
    pub fn whole_batch(errors: Vec<HsError>, portal_id: u64) -> Self {
        const PREFIX: &str = "Property values were not valid: ";
        let listed = |e: &HsError| -> Option<Vec<Value>> {
            let list = e.body.get("message").and_then(Value::as_str)?.strip_prefix(PREFIX)?;
            serde_json::from_str::<Vec<Value>>(list).ok()
        };
        if errors.len() == 1 || errors.iter().any(|e| listed(e).is_none()) {
            let first = errors.iter().position(|e| listed(e).is_none()).unwrap_or(0);
            return errors.into_iter().nth(first).expect("at least one error");
        }
        let mut problems = Vec::new();
        for e in &errors {
            for item in listed(e).unwrap_or_default() {
                let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                problems.push((s("name"), s("error"), s("message")));
            }
        }
        let owned: Vec<PropertyProblem> = problems
            .into_iter()
            .map(|(name, code, message)| PropertyProblem { name, code: static_code(&code), message })
            .collect();
        Self::properties(&owned, portal_id)
    }

    pub fn server_error(status: StatusCode) -> Self {
        Self::new(status, "INTERNAL_ERROR", "internal error")
    }

    /// The burst 429 (<https://developers.hubspot.com/docs/api/usage-details>).
    pub fn ten_secondly(app_id: u64, portal_id: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({
                "status":"error",
                "message":"You have reached your ten_secondly_rolling limit.",
                "errorType":"RATE_LIMIT",
                "correlationId":correlation_id(),
                "policyName":"TEN_SECONDLY_ROLLING",
                "groupName":format!("publicapi:private_app-api-calls-ten-secondly:{app_id}:{portal_id}"),
                "requestId":correlation_id(),
            }),
        }
    }

    pub fn daily() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({
                "status":"error",
                "message":"You have reached your daily limit.",
                "errorType":"RATE_LIMIT",
                "correlationId":correlation_id(),
                "policyName":"DAILY",
                "requestId":correlation_id(),
            }),
        }
    }

    /// 477 "Migration in Progress" (error-handling guide: the portal is moving between
    /// data-hosting locations; `Retry-After` says how many seconds to wait, up to 24 hours).
    /// UNCONFIRMED body: the guide documents only the status and the header.
    pub fn migration_in_progress(retry_after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::from_u16(477).expect("valid status"),
            "MIGRATION_IN_PROGRESS",
            "This HubSpot account is being migrated between data hosting locations. Retry after the time in the Retry-After header.",
        )
        .with("retryAfterSeconds", json!(retry_after.as_secs()))
    }

    /// The search 429 as recorded: no `policyName`, no `Retry-After`.
    pub fn search_secondly() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", "You have reached your secondly limit.")
    }

    /// The body as a `StandardError` inside a batch response (`status`, `category`, `message`, `context`, `errors`).
    pub fn standard_error(&self) -> Value {
        let mut v = self.body.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("correlationId");
            o.entry("context").or_insert_with(|| json!({}));
            o.entry("errors").or_insert_with(|| json!([]));
        }
        v
    }
}

/// The problem codes the simulator produces, as `'static` strings (problems carry them so).
fn static_code(code: &str) -> &'static str {
    const CODES: [&str; 12] = [
        "PROPERTY_DOESNT_EXIST",
        "INVALID_OPTION",
        "INVALID_INTEGER",
        "INVALID_EMAIL",
        "INVALID_BOOLEAN",
        "INVALID_DATE",
        "INVALID_DATETIME",
        "INVALID_PROPERTY_VALUE",
        "READ_ONLY_VALUE",
        "INVALID_LIFECYCLE_STAGE",
        "INVALID_LONG",
        "INVALID_STRING",
    ];
    CODES.iter().find(|c| **c == code).copied().unwrap_or("INVALID_PROPERTY_VALUE")
}

pub fn property_problems_message(problems: &[PropertyProblem], portal_id: u64) -> String {
    // Built by hand to keep HubSpot's key order (serde_json maps sort their keys).
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let inner: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{{\"isValid\":false,\"message\":{m},\"error\":{c},\"name\":{n},\"localizedErrorMessage\":{m},\"portalId\":{portal_id}}}",
                m = q(&p.message),
                c = q(p.code),
                n = q(&p.name)
            )
        })
        .collect();
    format!("Property values were not valid: [{}]", inner.join(","))
}

pub fn property_problems_errors(problems: &[PropertyProblem]) -> Value {
    Value::Array(
        problems
            .iter()
            .map(|p| json!({"message":p.message,"code":p.code,"context":{"propertyName":[p.name]}}))
            .collect(),
    )
}

impl IntoResponse for HsError {
    fn into_response(mut self) -> Response {
        let id = self.body.get("correlationId").and_then(Value::as_str).map(str::to_string);
        let retry_after = self.body.as_object_mut().and_then(|b| b.remove("retryAfterSeconds"));
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(id) = id.and_then(|i| HeaderValue::from_str(&i).ok()) {
            resp.headers_mut().insert(CORRELATION_HEADER, id);
        }
        if let Some(secs) = retry_after.and_then(|v| v.as_u64())
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type HsResult<T> = Result<T, HsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_error_body_has_the_recorded_shape() {
        let e = HsError::properties(
            &[PropertyProblem {
                name: "testproperty".into(),
                code: "PROPERTY_DOESNT_EXIST",
                message: "Property \"testproperty\" does not exist".into(),
            }],
            123,
        );
        assert_eq!(
            e.body["message"],
            "Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"testproperty\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"testproperty\",\"localizedErrorMessage\":\"Property \\\"testproperty\\\" does not exist\",\"portalId\":123}]"
        );
        assert_eq!(e.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
        assert_eq!(e.body["errors"][0]["context"]["propertyName"][0], "testproperty");
        assert_eq!(e.body["category"], "VALIDATION_ERROR");
    }

    #[test]
    fn correlation_ids_look_like_uuids() {
        let id = correlation_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
