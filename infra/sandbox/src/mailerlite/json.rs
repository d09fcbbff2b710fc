//! JSON output helpers: insertion-ordered maps (so bodies keep the real key order without
//! changing serde_json's features for the whole workspace), numbers printed like PHP prints them,
//! and MailerLite's `{"float","string"}` rate objects.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

/// A JSON object whose keys serialize in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> OrderedMap<V> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A JSON response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, bytes)
}

pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// 204 with an empty body and no `Content-Type` (as recorded, python `subscribers-delete.yml`).
pub fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// A number as PHP's JSON encoder prints it: whole values without a fraction (`100`, not `100.0`).
pub fn num(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Rounds to `places` decimals.
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// A subscriber's rate: a plain percent number (`100`, `7.69`).
pub fn percent(part: u64, whole: u64) -> Value {
    if whole == 0 { Value::from(0) } else { num(round(part as f64 * 100.0 / whole as f64, 2)) }
}

/// A group/segment/campaign rate: `{"float": 0.77777777777778, "string": "77.78%"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub float: Value,
    pub string: String,
}

pub fn rate(part: u64, whole: u64) -> Rate {
    if whole == 0 || part == 0 {
        return Rate { float: Value::from(0), string: "0%".into() };
    }
    let f = part as f64 / whole as f64;
    let pct = round(f * 100.0, 2);
    let pct_str = if pct.fract() == 0.0 { format!("{}", pct as i64) } else { format!("{pct}") };
    Rate { float: num(round(f, 14)), string: format!("{pct_str}%") }
}

#[derive(Serialize)]
pub struct Data<T> {
    pub data: T,
}

/// `200 {"data": …}`.
pub fn ok<T: Serialize>(data: T) -> Response {
    json_response(StatusCode::OK, &Data { data })
}

/// `201 {"data": …}`.
pub fn created<T: Serialize>(data: T) -> Response {
    json_response(StatusCode::CREATED, &Data { data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_like_the_api() {
        assert_eq!(serde_json::to_string(&rate(7, 9)).unwrap(), r#"{"float":0.77777777777778,"string":"77.78%"}"#);
        assert_eq!(serde_json::to_string(&rate(1, 1)).unwrap(), r#"{"float":1,"string":"100%"}"#);
        assert_eq!(serde_json::to_string(&rate(7, 8)).unwrap(), r#"{"float":0.875,"string":"87.5%"}"#);
        assert_eq!(serde_json::to_string(&rate(0, 0)).unwrap(), r#"{"float":0,"string":"0%"}"#);
        assert_eq!(percent(1, 13), serde_json::json!(7.69));
        assert_eq!(percent(3, 3), serde_json::json!(100));
    }

    #[test]
    fn ordered_maps_keep_insertion_order() {
        let m = OrderedMap(vec![("z".to_string(), 1), ("a".to_string(), 2)]);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"z":1,"a":2}"#);
    }
}
