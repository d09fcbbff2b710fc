//! Helpers every route module shares: query strings, bodies, batch envelopes, paging links.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::hubspot::HubSpotState;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::model::ObjectType;
use crate::hubspot::time_fmt::iso_ms;

/// Every handler takes the portal this way.
pub(super) type St = State<Arc<HubSpotState>>;

/// The batch limit of every CRM object batch endpoint (100 inputs).
pub(super) const BATCH_LIMIT: usize = 100;

pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<String>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }
    pub(super) fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    pub(super) fn one(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub(super) fn flag(&self, key: &str) -> bool {
        self.one(key) == Some("true")
    }
    pub(super) fn number(&self, key: &str, default: usize, max: usize) -> HsResult<usize> {
        match self.one(key) {
            None | Some("") => Ok(default),
            Some(v) => {
                let n: usize =
                    v.parse().map_err(|_| HsError::validation(format!("{key} must be a number, got {v}")))?;
                if n > max {
                    // UNCONFIRMED: HubSpot's behaviour above the maximum; the sandbox refuses it.
                    return Err(HsError::validation(format!("{key} must be at most {max}, got {n}")));
                }
                Ok(n.max(1))
            }
        }
    }
}

pub(super) fn parse_body(body: &Bytes) -> HsResult<Value> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| HsError::bad_json(&e))
}

pub(super) fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(super) fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub(super) fn props_of(v: &Value) -> HsResult<Map<String, Value>> {
    match v.get("properties") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(HsError::validation("properties must be an object of property name to value")),
    }
}

pub(super) fn parse_id(s: &str) -> HsResult<u64> {
    s.trim().parse::<u64>().map_err(|_| HsError::not_found(s))
}

pub(super) fn inputs(body: &Value) -> HsResult<Vec<Value>> {
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    if inputs.len() > BATCH_LIMIT {
        // The batch limit of every CRM object batch endpoint (100 inputs).
        return Err(HsError::validation(format!(
            "Batch input size {} exceeds the limit of {BATCH_LIMIT} inputs",
            inputs.len()
        )));
    }
    Ok(inputs)
}

pub(super) fn input_id(v: &Value) -> Option<String> {
    match v.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn trace_id(v: &Value) -> Option<String> {
    v.get("objectWriteTraceId").and_then(Value::as_str).map(String::from)
}

/// The batch envelope: 200/201 when everything succeeded, 207 with `numErrors`/`errors` otherwise.
pub(super) fn batch_response(success: StatusCode, results: Vec<Value>, errors: Vec<Value>, started: i64) -> Response {
    let mut v = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(crate::common::now_ms()),
    });
    if errors.is_empty() {
        return (success, axum::Json(v)).into_response();
    }
    v["numErrors"] = json!(errors.len());
    v["errors"] = Value::Array(errors);
    (StatusCode::MULTI_STATUS, axum::Json(v)).into_response()
}

pub(super) fn with_trace(err: &HsError, trace: &str) -> Value {
    let mut e = err.standard_error();
    e["context"]["objectWriteTraceId"] = json!([trace]);
    e
}

pub(super) fn not_found_error(t: ObjectType, ids: &[String]) -> Value {
    json!({
        "status":"error",
        "category":"OBJECT_NOT_FOUND",
        "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", t.upper_name()),
        "context":{"ids": ids},
        "errors":[],
    })
}

pub(super) fn portal(st: &HubSpotState) -> u64 {
    st.config().portal_id
}

pub(super) fn page_link(st: &HubSpotState, path: &str, limit: usize, after: &str) -> String {
    format!("{}{path}?limit={limit}&after={after}", st.base_url())
}
