//! MailerLite's error bodies (Laravel style), byte-for-byte where the documentation or the
//! recordings show them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use super::json::{OrderedMap, json_response};

/// An error a handler answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 422 `{"message": "<first error> (and N more errors)", "errors": {"<field>": ["…"]}}`.
    Validation(Vec<(String, String)>),
    /// 422 with a message of its own and the errors map (the reactivation refusal, "Field name
    /// must be unique").
    Rejected { message: String, errors: Vec<(String, String)> },
    /// 404 `{"message":"No query results for model [App\\Models\\…]…"}`.
    NotFound(Model, String),
    /// 404 `{"message":"The route api/… could not be found."}` (path without the leading slash).
    RouteNotFound(String),
    /// Any other status with `{"message": …}`.
    Message(StatusCode, String),
}

/// The Eloquent models whose "No query results" 404 bodies the API returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Subscriber,
    Group,
    Field,
    Segment,
    Webhook,
    Campaign,
    Import,
}

impl Model {
    fn class(self) -> &'static str {
        match self {
            Model::Subscriber => "App\\Models\\Subscriber\\Subscriber",
            Model::Group => "App\\Models\\Group\\Group",
            Model::Field => "App\\Models\\Field",
            Model::Segment => "App\\Models\\Segment",
            Model::Webhook => "App\\Models\\Webhook",
            Model::Campaign => "App\\Models\\Campaign\\Campaign",
            Model::Import => "App\\Models\\Import\\Import",
        }
    }
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![(field.into(), message.into())])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(..) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Message(s, _) => *s,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Validation(errors) => validation_message(errors),
            ApiError::Rejected { message, .. } => message.clone(),
            // The subscriber 404 names no id (it is looked up by id or email); the others do.
            ApiError::NotFound(Model::Subscriber, _) => {
                format!("No query results for model [{}].", Model::Subscriber.class())
            }
            ApiError::NotFound(model, id) => format!("No query results for model [{}] {id}", model.class()),
            ApiError::RouteNotFound(path) => format!("The route {path} could not be found."),
            ApiError::Message(_, m) => m.clone(),
        }
    }
}

/// Laravel's summary: the first message, then "(and N more error[s])" over all messages.
pub fn validation_message(errors: &[(String, String)]) -> String {
    let Some((_, first)) = errors.first() else { return "The given data was invalid.".into() };
    match errors.len() - 1 {
        0 => first.clone(),
        1 => format!("{first} (and 1 more error)"),
        n => format!("{first} (and {n} more errors)"),
    }
}

/// Groups `(field, message)` pairs into Laravel's `errors` map, keeping first-seen field order.
pub fn errors_map(errors: &[(String, String)]) -> OrderedMap<Vec<String>> {
    let mut map: Vec<(String, Vec<String>)> = Vec::new();
    for (k, m) in errors {
        match map.iter_mut().find(|(key, _)| key == k) {
            Some((_, v)) => v.push(m.clone()),
            None => map.push((k.clone(), vec![m.clone()])),
        }
    }
    OrderedMap(map)
}

#[derive(Serialize)]
struct MessageBody {
    message: String,
}

#[derive(Serialize)]
struct ValidationBody {
    message: String,
    errors: OrderedMap<Vec<String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Validation(errors) | ApiError::Rejected { errors, .. } => {
                json_response(status, &ValidationBody { message: self.message(), errors: errors_map(errors) })
            }
            _ => json_response(status, &MessageBody { message: self.message() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_the_other_errors() {
        let one = vec![("email".to_string(), "The email must be a valid email address.".to_string())];
        assert_eq!(validation_message(&one), "The email must be a valid email address.");
        let two = vec![("a".into(), "A.".into()), ("b".into(), "B.".into())];
        assert_eq!(validation_message(&two), "A. (and 1 more error)");
        let three = vec![("a".into(), "A.".into()), ("b".into(), "B.".into()), ("a".into(), "C.".into())];
        assert_eq!(validation_message(&three), "A. (and 2 more errors)");
        assert_eq!(serde_json::to_string(&errors_map(&three)).unwrap(), r#"{"a":["A.","C."],"b":["B."]}"#);
    }

    #[test]
    fn not_found_bodies_match_the_recordings() {
        assert_eq!(
            ApiError::NotFound(Model::Subscriber, "123123".into()).message(),
            "No query results for model [App\\Models\\Subscriber\\Subscriber]."
        );
        assert_eq!(
            ApiError::NotFound(Model::Group, "121212".into()).message(),
            "No query results for model [App\\Models\\Group\\Group] 121212"
        );
        assert_eq!(
            ApiError::RouteNotFound("api/campaigns/list".into()).message(),
            "The route api/campaigns/list could not be found."
        );
    }
}
