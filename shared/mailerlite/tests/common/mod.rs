//! Test helpers: a sandbox plus a client pointed at it, the recording loader, and the JSON
//! shape comparison used to hold the sandbox to the real recordings.

#![allow(dead_code)]

use std::path::PathBuf;

use hmsync_http::RetryPolicy;
use hmsync_mailerlite::{Client, Config};
use hmsync_sandbox::mailerlite::{MailerLiteConfig, MailerLiteSim};
use serde_json::Value;

pub async fn sandbox(config: MailerLiteConfig) -> MailerLiteSim {
    MailerLiteSim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// A client for `sim` with the same time scale and fast transient retries.
pub fn client_for(sim: &MailerLiteSim) -> Client {
    let c = sim.config();
    let mut config = Config::new(c.token).with_base_url(sim.base_url());
    config.time_scale = c.time_scale;
    config.requests_per_minute = c.limit_per_minute;
    config.imports_per_minute = c.imports_per_minute;
    config.retry = RetryPolicy::fast(6);
    Client::new(config).unwrap()
}

pub async fn setup(config: MailerLiteConfig) -> (MailerLiteSim, Client) {
    let sim = sandbox(config).await;
    let client = client_for(&sim);
    (sim, client)
}

// --- recordings ----------------------------------------------------------------------------------

/// `tests/fixtures/recordings/`: files from MailerLite's official SDKs (their README says which
/// repository, commit and licence each comes from).
pub fn recordings_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings");
    assert!(dir.is_dir(), "recordings not found at {}", dir.display());
    dir
}

/// One recorded request and its answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query after the host, starting with `/api/`.
    pub path: String,
    pub request_body: Option<Value>,
    pub status: u16,
    /// `Value::Null` for an empty body.
    pub body: Value,
}

fn json_or_null(s: &str) -> Value {
    if s.trim().is_empty() { Value::Null } else { serde_json::from_str(s).unwrap_or(Value::String(s.to_string())) }
}

fn api_path(uri: &str) -> String {
    let start = uri.find("/api/").expect("an /api/ uri");
    uri[start..].to_string()
}

/// A python vcrpy cassette (`interactions[].request/response`).
pub fn python(name: &str) -> Vec<Recorded> {
    let path = recordings_dir().join("mailerlite-python/tests/vcr_cassettes").join(name);
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["interactions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|it| {
            let req = &it["request"];
            let res = &it["response"];
            let body = req["body"].as_str().map(json_or_null).filter(|v| !v.is_null());
            Recorded {
                method: req["method"].as_str().unwrap().to_uppercase(),
                path: api_path(req["uri"].as_str().unwrap()),
                request_body: body,
                status: res["status"]["code"].as_u64().unwrap() as u16,
                body: json_or_null(res["body"]["string"].as_str().unwrap_or("")),
            }
        })
        .collect()
}

/// A ruby VCR cassette (`http_interactions[]`).
pub fn ruby(name: &str) -> Vec<Recorded> {
    let path = recordings_dir().join("mailerlite-ruby/fixtures").join(name);
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["http_interactions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|it| {
            let req = &it["request"];
            let res = &it["response"];
            Recorded {
                method: req["method"].as_str().unwrap().to_uppercase(),
                path: api_path(req["uri"].as_str().unwrap()),
                request_body: req["body"]["string"].as_str().map(json_or_null).filter(|v| !v.is_null()),
                status: res["status"]["code"].as_u64().unwrap() as u16,
                body: json_or_null(res["body"]["string"].as_str().unwrap_or("")),
            }
        })
        .collect()
}

/// A node talkback tape (JSON5; `req.body` is base64).
pub fn node(name: &str) -> Recorded {
    use base64::Engine;
    let path = recordings_dir().join("mailerlite-nodejs/tapes").join(name);
    let tape: Value = json5::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tape["req"]["body"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let body = match &tape["res"]["body"] {
        Value::String(s) => json_or_null(s),
        other => other.clone(),
    };
    Recorded {
        method: tape["req"]["method"].as_str().unwrap().to_string(),
        path: tape["req"]["url"].as_str().unwrap().to_string(),
        request_body: Some(json_or_null(&String::from_utf8_lossy(&raw))).filter(|v| !v.is_null()),
        status: tape["res"]["status"].as_u64().unwrap() as u16,
        body,
    }
}

/// A java fixture: responses only, in file order.
pub fn java(name: &str) -> Vec<(u16, Value)> {
    let path = recordings_dir().join("mailerlite-java/src/test/resources/fixtures").join(name);
    let doc: serde_json::Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc.values()
        .map(|v| {
            let body = match &v["body"] {
                Value::String(s) => json_or_null(s),
                other => other.clone(),
            };
            (v["statusCode"].as_u64().unwrap() as u16, body)
        })
        .collect()
}

// --- shapes --------------------------------------------------------------------------------------

/// Object keys whose members are data (account field keys), not shape.
const DATA_MAPS: [&str; 1] = ["fields"];

/// Keys the API added after some recordings were made: the sandbox answers like the newest
/// recording (python, 2025), so an older recording may lack them.
const NEWER_KEYS: [&str; 1] = ["automations_using_segment_count"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences between the shape of a recorded body and the sandbox's: the same keys at every
/// level and the same value types (null matches anything: values may differ; arrays compare
/// their first elements; the keys of `fields` are account data).
pub fn shape_diff(recorded: &Value, sandbox: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("$", recorded, sandbox, &mut out);
    out
}

fn diff(path: &str, r: &Value, s: &Value, out: &mut Vec<String>) {
    match (r, s) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => {
            let data_map = DATA_MAPS.iter().any(|k| path.ends_with(&format!(".{k}")));
            if data_map {
                return;
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    out.push(format!("{path}.{k}: missing in the sandbox"));
                }
            }
            for k in b.keys() {
                if !a.contains_key(k) && !NEWER_KEYS.contains(&k.as_str()) {
                    out.push(format!("{path}.{k}: not in the recording"));
                }
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    diff(&format!("{path}.{k}"), v, w, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                diff(&format!("{path}[0]"), x, y, out);
            }
        }
        _ if kind(r) != kind(s) => {
            out.push(format!("{path}: {} in the recording, {} in the sandbox", kind(r), kind(s)))
        }
        _ => {}
    }
}

pub fn assert_same_shape(what: &str, recorded: &Value, sandbox: &Value) {
    let d = shape_diff(recorded, sandbox);
    assert!(d.is_empty(), "{what}: shapes differ:\n  {}\nrecorded: {recorded}\nsandbox: {sandbox}", d.join("\n  "));
}
