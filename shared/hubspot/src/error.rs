//! Typed HubSpot errors. Each says what happened and what to do about it, so the sync can
//! show it to a user as is.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// One rejected property value of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    pub property: String,
    /// `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, `INVALID_INTEGER`, `INVALID_EMAIL`, `READ_ONLY_VALUE`, …
    pub code: String,
    /// The rejected value, when HubSpot's message names it.
    pub value: Option<String>,
    /// For `INVALID_OPTION`: the option values HubSpot accepts.
    pub allowed_options: Vec<String>,
    pub message: String,
}

impl fmt::Display for PropertyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code.as_str() {
            "INVALID_OPTION" => write!(
                f,
                "property `{}`: value `{}` is not one of the allowed options [{}]; use one of them or add the option to the property in HubSpot",
                self.property,
                self.value.as_deref().unwrap_or("?"),
                self.allowed_options.join(", ")
            ),
            "PROPERTY_DOESNT_EXIST" => write!(
                f,
                "property `{}` does not exist in this HubSpot account; create it or remove it from the field mapping",
                self.property
            ),
            "READ_ONLY_VALUE" => write!(
                f,
                "property `{}` is read-only in HubSpot and cannot be written; map it HubSpot → MailerLite only",
                self.property
            ),
            _ => write!(f, "property `{}`: {} ({})", self.property, self.message, self.code),
        }
    }
}

/// Everything a HubSpot call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HubSpotError {
    #[error(
        "HubSpot rejected the credentials ({reason}). Reconnect the HubSpot app: the token is wrong, or the app was uninstalled or its refresh token revoked."
    )]
    Unauthorized { reason: String },
    #[error(
        "The HubSpot app is missing the scopes {scopes:?} for this call. Reinstall or re-authorize the app with these scopes."
    )]
    MissingScopes { scopes: Vec<String>, message: String },
    #[error("HubSpot has no {what} (it may have been deleted or merged): {message}")]
    NotFound { what: String, message: String },
    #[error(
        "HubSpot already has a contact with this email{}; link to that contact instead of creating another.",
        existing_id.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default()
    )]
    Conflict { existing_id: Option<String>, message: String },
    #[error("HubSpot rejected the write: {}", summary(errors, message))]
    Validation { errors: Vec<PropertyError>, message: String },
    #[error(
        "HubSpot rate limit {policy} reached{}; the request was not applied, try again later.",
        retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default()
    )]
    RateLimited { policy: String, retry_after: Option<Duration> },
    #[error(
        "The HubSpot account has used its daily API allowance; syncing resumes when it resets (midnight in the account's time zone)."
    )]
    DailyLimit,
    #[error("HubSpot is temporarily failing (HTTP {status}): {message}; the request will be retried later.")]
    Transient {
        status: u16,
        message: String,
        correlation_id: Option<String>,
        /// HubSpot's `Retry-After` (a 477 "Migration in Progress" sends up to 24 hours).
        retry_after: Option<Duration>,
    },
    /// A 404 that names no record (`context.id`): the request's route does not exist, which no
    /// record being missing can explain.
    #[error(
        "HubSpot has no such API route ({message}); the request went to the wrong address or the API version was retired. Update hmsync."
    )]
    RouteNotFound { message: String },
    #[error("Could not reach HubSpot: {0}; the request will be retried later.")]
    Transport(String),
    #[error("Unexpected response from HubSpot: {0}")]
    Decode(String),
    #[error("HubSpot refused the request (HTTP {status}, {category}): {message}")]
    Api { status: u16, category: String, message: String },
}

fn summary(errors: &[PropertyError], message: &str) -> String {
    if errors.is_empty() {
        message.to_string()
    } else {
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

impl HubSpotError {
    /// Whether the same request may succeed later without any change (rate limits, outages).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::DailyLimit | Self::Transient { .. } | Self::Transport(_))
    }

    /// When HubSpot asked to try again (a `Retry-After`, or a wait the client would not sleep).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The same error, asking to try again after `wait`.
    pub(crate) fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Self::RateLimited { retry_after, .. } | Self::Transient { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// Errors that will fail every further request of the same client too (so a batch stops).
    pub(crate) fn stops_everything(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized { .. }
                | Self::MissingScopes { .. }
                | Self::RateLimited { .. }
                | Self::DailyLimit
                | Self::Transient { .. }
                | Self::Transport(_)
                | Self::RouteNotFound { .. }
        )
    }
}

/// Whether a message says a contact with this email exists already (HubSpot puts `Existing
/// ID: N` in it, whatever the error's category). Other "already exists" answers (a property, a
/// property group) are not about a contact.
pub fn names_existing_record(message: &str) -> bool {
    message.contains("Existing ID") || message.contains("Contact already exists")
}

/// `Existing ID: 12345` in a 409 message.
pub fn parse_existing_id(message: &str) -> Option<String> {
    let rest = &message[message.find("Existing ID:")? + "Existing ID:".len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// `"<v> was not one of the allowed options: [a, b]"` → (v, [a, b]).
pub fn parse_invalid_option(message: &str) -> Option<(String, Vec<String>)> {
    let marker = " was not one of the allowed options: [";
    let at = message.find(marker)?;
    let value = message[..at].to_string();
    let rest = &message[at + marker.len()..];
    let list = &rest[..rest.rfind(']')?];
    let options = list.split(", ").map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    Some((value, options))
}

fn property_error(property: String, code: String, message: String) -> PropertyError {
    let (value, allowed_options) = match code.as_str() {
        "INVALID_OPTION" => parse_invalid_option(&message).map_or((None, Vec::new()), |(v, o)| (Some(v), o)),
        "PROPERTY_DOESNT_EXIST" | "READ_ONLY_VALUE" => (None, Vec::new()),
        // `<value> was not a valid number`, `Email address <value> is invalid`, …; a message
        // that starts with the property's own name names no value.
        _ => (
            message
                .split_once(" was not")
                .or_else(|| message.split_once(" is invalid"))
                .map(|(v, _)| v.trim_start_matches("Email address ").to_string())
                .filter(|v| *v != property),
            Vec::new(),
        ),
    };
    PropertyError { property, code, value, allowed_options, message }
}

/// The property problems of a 400 body: from `errors[]` (`code`, `context.propertyName`), or from
/// the JSON list embedded in `"Property values were not valid: [...]"`.
pub fn parse_property_errors(body: &Value) -> Vec<PropertyError> {
    let mut out = Vec::new();
    for e in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let Some(code) = e.get("code").and_then(Value::as_str) else { continue };
        let property = e.pointer("/context/propertyName/0").and_then(Value::as_str).unwrap_or_default().to_string();
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default().to_string();
        out.push(property_error(property, code.to_string(), message));
    }
    if !out.is_empty() {
        return out;
    }
    let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
    if let Some(list) = message.strip_prefix("Property values were not valid: ")
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(list)
    {
        for i in items {
            let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            out.push(property_error(s("name"), s("error"), s("message")));
        }
    }
    out
}

/// Maps a non-success HubSpot answer to a typed error.
pub fn from_response(status: u16, body: &Value, retry_after: Option<Duration>) -> HubSpotError {
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let message = if s("message").is_empty() { s("error_description") } else { s("message") };
    let category = s("category");
    match status {
        401 => HubSpotError::Unauthorized {
            reason: if category.is_empty() { message } else { format!("{category}: {message}") },
        },
        403 if category == "MISSING_SCOPES" => HubSpotError::MissingScopes {
            scopes: body
                .pointer("/errors/0/context/requiredGranularScopes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default(),
            message,
        },
        404 if message.eq_ignore_ascii_case("resource not found")
            || (category.is_empty() && body.pointer("/context").is_none()) =>
        {
            HubSpotError::RouteNotFound { message }
        }
        404 => HubSpotError::NotFound {
            what: body
                .pointer("/context/id/0")
                .and_then(Value::as_str)
                .map_or_else(|| "such object".to_string(), |id| format!("object {id}")),
            message,
        },
        // "Existing ID" is recognised whatever the category says (a per-input error of a batch
        // may carry another one).
        400 | 409 if category == "CONFLICT" || names_existing_record(&message) => {
            HubSpotError::Conflict { existing_id: parse_existing_id(&message), message }
        }
        400 if category == "VALIDATION_ERROR" || message.starts_with("Property values were not valid") => {
            HubSpotError::Validation { errors: parse_property_errors(body), message }
        }
        429 => {
            let policy = if !s("policyName").is_empty() {
                s("policyName")
            } else if message.contains("secondly") {
                "SECONDLY".to_string()
            } else {
                "UNKNOWN".to_string()
            };
            if policy == "DAILY" { HubSpotError::DailyLimit } else { HubSpotError::RateLimited { policy, retry_after } }
        }
        s if s >= 500 || s == 423 || s == 477 => HubSpotError::Transient {
            status,
            message,
            correlation_id: body.get("correlationId").and_then(Value::as_str).map(String::from),
            retry_after,
        },
        _ => HubSpotError::Api { status, category, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_recorded_bodies() {
        let conflict = json!({"status":"error","message":"Contact already exists. Existing ID: 3401","correlationId":"x","category":"CONFLICT"});
        assert_eq!(
            from_response(409, &conflict, None),
            HubSpotError::Conflict {
                existing_id: Some("3401".into()),
                message: "Contact already exists. Existing ID: 3401".into()
            }
        );
        let invalid = json!({"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"testproperty\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"testproperty\",\"localizedErrorMessage\":\"Property \\\"testproperty\\\" does not exist\",\"portalId\":123}]","correlationId":"8a3f6c3a","category":"VALIDATION_ERROR"});
        let HubSpotError::Validation { errors, .. } = from_response(400, &invalid, None) else { panic!() };
        assert_eq!(errors[0].property, "testproperty");
        assert_eq!(errors[0].code, "PROPERTY_DOESNT_EXIST");
        let option = json!({"category":"VALIDATION_ERROR","message":"…","errors":[{"message":"Retail was not one of the allowed options: [saas, retail]","code":"INVALID_OPTION","context":{"propertyName":["industry_segment"]}}]});
        let HubSpotError::Validation { errors, .. } = from_response(400, &option, None) else { panic!() };
        assert_eq!(errors[0].value.as_deref(), Some("Retail"));
        assert_eq!(errors[0].allowed_options, vec!["saas", "retail"]);
        assert!(errors[0].to_string().contains("`industry_segment`"));
        let daily = json!({"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"});
        assert_eq!(from_response(429, &daily, None), HubSpotError::DailyLimit);
        let search =
            json!({"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"});
        assert!(
            matches!(from_response(429, &search, None), HubSpotError::RateLimited { policy, .. } if policy == "SECONDLY")
        );
        let scopes = json!({"category":"MISSING_SCOPES","message":"m","errors":[{"context":{"requiredGranularScopes":["crm.lists.read"]}}]});
        assert!(
            matches!(from_response(403, &scopes, None), HubSpotError::MissingScopes { scopes, .. } if scopes == ["crm.lists.read"])
        );
        assert!(from_response(502, &json!({}), None).is_transient());
    }

    #[test]
    fn a_migration_is_transient_with_its_retry_after() {
        let e = from_response(477, &json!({"message":"migrating"}), Some(Duration::from_secs(86_400)));
        assert!(e.is_transient());
        assert!(
            matches!(e, HubSpotError::Transient { status: 477, retry_after: Some(d), .. } if d.as_secs() == 86_400)
        );
    }

    #[test]
    fn a_404_that_names_no_record_is_a_missing_route() {
        let route = json!({"status":"error","message":"resource not found","category":"OBJECT_NOT_FOUND"});
        assert!(matches!(from_response(404, &route, None), HubSpotError::RouteNotFound { .. }));
        assert!(matches!(from_response(404, &json!({}), None), HubSpotError::RouteNotFound { .. }));
        let record = json!({"status":"error","message":"Object not found.  objectId are usually numeric.","context":{"id":["7"]},"category":"OBJECT_NOT_FOUND"});
        assert!(matches!(from_response(404, &record, None), HubSpotError::NotFound { what, .. } if what == "object 7"));
        let property = json!({"message":"Property nope does not exist","category":"OBJECT_NOT_FOUND"});
        assert!(matches!(from_response(404, &property, None), HubSpotError::NotFound { .. }));
    }

    #[test]
    fn existing_id_is_recognised_in_any_category() {
        let body = json!({"message":"Contact already exists. Existing ID: 77","category":"VALIDATION_ERROR"});
        assert!(
            matches!(from_response(400, &body, None), HubSpotError::Conflict { existing_id: Some(id), .. } if id == "77")
        );
    }
}
