//! JSON request bodies: at most [`MAX_BODY_BYTES`] (413 above), syntactically valid JSON (400
//! otherwise), and of the right shape (422 naming each bad field by its JSON path). Error
//! messages never quote the submitted strings: a misplaced token must not come back in an answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::error::{FieldProblem, HttpError};

/// The largest body the config API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many shape problems one answer lists at most.
const MAX_SHAPE_PROBLEMS: usize = 50;

/// A required JSON body.
pub struct JsonBody<T>(pub T);

/// An optional JSON body: an empty body is `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        match read(req, state).await? {
            Some(bytes) => parse(&bytes).map(JsonBody),
            None => Err(HttpError::bad_request("the request has no body; it needs a JSON object")),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        match read(req, state).await? {
            Some(bytes) => parse(&bytes).map(OptionalJsonBody),
            None => Ok(OptionalJsonBody(T::default())),
        }
    }
}

/// The body's bytes (`None` when empty), within the size limit and declared as JSON.
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Option<Bytes>, HttpError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes"))
                .with_action("Send a smaller body.")
        } else {
            HttpError::bad_request(format!("the body could not be read: {rejection}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    });
    if !is_json {
        return Err(HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be JSON")
            .with_action("Send it with `Content-Type: application/json`."));
    }
    Ok(Some(bytes))
}

/// Parses a JSON body into `T`, naming every field of the wrong shape.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // Syntax errors say where (line, column), never what was there.
        HttpError::bad_request(format!("the body is not valid JSON ({e})"))
    })?;
    from_value(value).map_err(HttpError::invalid)
}

/// Deserializes `value` into `T`. On failure, the bad value is taken out and deserialization is
/// tried again, so that one answer names every bad optional field rather than the first. A
/// missing field, or a bad required one, ends the search: the object cannot be read past it.
pub fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, Vec<FieldProblem>> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    while problems.len() < MAX_SHAPE_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) if problems.is_empty() => return Ok(v),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let message = redact(&err.inner().to_string());
        let missing = missing_field(&message);
        let field = match &missing {
            Some(name) => join(&segments, Some(name)),
            None => join(&segments, None),
        };
        if problems.iter().any(|p| p.field == field) {
            // Taking the value out made it a missing field: already reported.
            return Err(problems);
        }
        let fix = if missing.is_some() {
            "Add this field; GET /openapi.json describes every body."
        } else if message.starts_with("unknown field") {
            "Remove this field or correct its name; GET /openapi.json lists the fields."
        } else {
            "Send a value of the type GET /openapi.json gives for this field."
        };
        problems.push(FieldProblem::new(field, message, fix));
        if missing.is_some() || !remove(&mut value, &segments) {
            return Err(problems);
        }
    }
    Err(problems)
}

/// `missing field `name`` → `name`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_string)
}

/// The JSON path of the segments (plus a missing child), like `config.mappings[0].direction`;
/// `(body)` for the body itself.
fn join(segments: &[Segment], child: Option<&str>) -> String {
    let mut path = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    if let Some(c) = child {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(c);
    }
    if path.is_empty() { "(body)".to_string() } else { path }
}

/// Removes the value at `segments` from its parent object; false when it cannot be removed
/// (the body itself, an array element whose removal would shift the others, or a path that
/// does not resolve).
fn remove(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut current = value;
    for s in parents {
        current = match (s, current) {
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, current) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        _ => false,
    }
}

/// Serde's messages quote the offending string (`invalid type: string "…"`, ``unknown variant
/// `…` ``); a secret sent in the wrong place must not be echoed, so quoted input is dropped.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let string_at = rest.find("string \"");
        let variant_at = rest.find("variant `");
        let (at, prefix, close) = match (string_at, variant_at) {
            (Some(s), Some(v)) if v < s => (v, "variant `", '`'),
            (Some(s), _) => (s, "string \"", '"'),
            (None, Some(v)) => (v, "variant `", '`'),
            (None, None) => {
                out.push_str(rest);
                return out;
            }
        };
        out.push_str(&rest[..at]);
        out.push_str(if close == '"' { "string" } else { "variant" });
        let quoted = &rest[at + prefix.len()..];
        // Skip to the closing quote (Debug-escaped strings escape inner quotes with `\`).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == close && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => rest = &quoted[i + close.len_utf8()..],
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Mapping {
        #[serde(default)]
        direction: Direction,
        property: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Direction {
        #[default]
        TwoWay,
        OneWay,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        name: Option<String>,
        mappings: Vec<Mapping>,
    }

    #[test]
    fn every_bad_field_is_named() {
        let body = serde_json::json!({
            "limit": "many",
            "name": 7,
            "mappings": [{"property": "a", "direction": "sideways"}, {"property": "b", "direction": 3}]
        });
        let problems = from_value::<Body>(body).unwrap_err();
        let mut fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["limit", "mappings[0].direction", "mappings[1].direction", "name"]);
    }

    #[test]
    fn a_bad_required_field_ends_the_search() {
        // Without a value for `property` the mapping cannot be read past it.
        let problems = from_value::<Body>(serde_json::json!({"mappings": [{"property": 5}]})).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["mappings[0].property"]);
    }

    #[test]
    fn a_missing_field_is_named_and_ends_the_search() {
        let problems = from_value::<Body>(serde_json::json!({"limit": -1})).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["limit", "mappings"]);
        assert!(problems[1].message.contains("missing field"), "{problems:?}");
    }

    #[test]
    fn submitted_strings_are_never_echoed() {
        let body = serde_json::json!({"mappings": [{"property": "a", "direction": "pat-na1-secret\"x"}], "limit": "also-secret"});
        let problems = from_value::<Body>(body).unwrap_err();
        for p in &problems {
            assert!(!p.message.contains("secret"), "{p:?}");
        }
        let message = |field: &str| problems.iter().find(|p| p.field == field).unwrap().message.clone();
        assert!(message("limit").starts_with("invalid type: string, expected"), "{problems:?}");
        assert!(message("mappings[0].direction").starts_with("unknown variant, expected"), "{problems:?}");
    }

    #[test]
    fn syntax_errors_are_400() {
        let e = parse::<Body>(b"{\"mappings\": [").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse::<Body>(b"{}").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.problems[0].field, "mappings");
    }
}
