//! Reading requests: bodies as Laravel reads them, numeric path ids, and GET bodies as query
//! parameters.

use http::Uri;
use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON body as an object; empty, `null` or malformed bodies read as `{}` (Laravel's input).
pub fn object(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice::<Value>(bytes).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
}

/// A numeric resource id from the path; anything else is not a route at all (ids are
/// constrained to digits, so `api/campaigns/list` is "route not found").
pub fn numeric(raw: &str, uri: &Uri) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| ApiError::RouteNotFound(uri.path().trim_start_matches('/').to_string()))
}

/// Flattens a GET item's `body` into bracketed query parameters (`{"filter":{"name":"x"}}` →
/// `filter[name]=x`), as Laravel merges body input into a GET's input.
pub fn flatten_query(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}[{k}]") };
                flatten_query(&key, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten_query(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_bodies_become_bracketed_query_parameters() {
        let mut out = Vec::new();
        flatten_query("", &serde_json::json!({"filter": {"name": "nodejs"}, "limit": 5}), &mut out);
        assert_eq!(
            out,
            vec![("filter[name]".to_string(), "nodejs".to_string()), ("limit".to_string(), "5".to_string())]
        );
    }
}
