//! Counting pass-throughs in front of the simulators for the engine's workers, so the echo check
//! can say which writes happened and to which records.
//!
//! - MailerLite reads and writes both travel as `POST /api/batch` (the sandbox counts a batch as
//!   one request, as MailerLite's rate limit does), so the sandbox's stats cannot tell a batch of
//!   GETs from a batch of updates: the proxy opens each batch and counts its items.
//! - HubSpot batch endpoints name the contacts in their `inputs`: the proxy notes their ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

/// Which simulator a proxy stands in front of (their requests read differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    HubSpot,
    MailerLite,
}

/// The engine's requests to one app.
#[derive(Debug)]
pub struct Traffic {
    app: App,
    requests: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    /// While set, each write is also noted with the records it names.
    noting: AtomicBool,
    noted: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficFigures {
    /// HTTP requests (a MailerLite batch counts once).
    pub requests: u64,
    /// Reads: GETs, HubSpot batch reads and searches, GET items of MailerLite batches.
    pub reads: u64,
    /// Writes: everything else, MailerLite batch items counted one by one.
    pub writes: u64,
}

impl Traffic {
    fn new(app: App) -> Self {
        Traffic {
            app,
            requests: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            noting: AtomicBool::new(false),
            noted: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn figures(&self) -> TrafficFigures {
        TrafficFigures {
            requests: self.requests.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    /// Starts noting every write, forgetting earlier notes.
    pub fn note_writes(&self) {
        self.noted.lock().expect("noted lock").clear();
        self.noting.store(true, Ordering::Relaxed);
    }

    /// The writes noted since [`Traffic::note_writes`], as `"METHOD path [records]"` → count.
    pub fn noted_writes(&self) -> BTreeMap<String, u64> {
        self.noted.lock().expect("noted lock").clone()
    }

    fn write(&self, method: &str, path: &str, records: &[String]) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.noting.load(Ordering::Relaxed) {
            let key =
                if records.is_empty() { format!("{method} {path}") } else { format!("{method} {path} {records:?}") };
            *self.noted.lock().expect("noted lock").entry(key).or_default() += 1;
        }
    }

    fn count(&self, method: &Method, path: &str, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let json = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        match self.app {
            App::MailerLite if *method == Method::POST && path == "/api/batch" => {
                let items = json().get("requests").and_then(Value::as_array).cloned().unwrap_or_default();
                for item in items {
                    let item_method = item.get("method").and_then(Value::as_str).unwrap_or("?");
                    if item_method.eq_ignore_ascii_case("GET") {
                        self.reads.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.write(item_method, item.get("path").and_then(Value::as_str).unwrap_or("?"), &[]);
                    }
                }
            }
            App::HubSpot
                if *method == Method::GET
                    || (*method == Method::POST && (path.ends_with("/batch/read") || path.ends_with("/search"))) =>
            {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            App::HubSpot => {
                let ids: Vec<String> = json()
                    .get("inputs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        let id = i.get("id").and_then(Value::as_str)?;
                        // The properties written name the cause of a stray write (soak data is
                        // synthetic, so the values may be shown).
                        let props = i.get("properties").map(|p| p.to_string()).unwrap_or_default();
                        Some(if props.is_empty() { id.to_string() } else { format!("{id} {props}") })
                    })
                    .collect();
                self.write(method.as_str(), path, &ids);
            }
            App::MailerLite if *method == Method::GET => {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            App::MailerLite => self.write(method.as_str(), path, &[]),
        }
    }
}

struct Upstream {
    base: String,
    client: reqwest::Client,
    traffic: Arc<Traffic>,
}

/// Serves a proxy for `app` on 127.0.0.1, forwarding to `upstream_origin`; returns its origin
/// (`http://127.0.0.1:port`).
pub async fn start(app: App, upstream_origin: String) -> std::io::Result<(String, Arc<Traffic>)> {
    let traffic = Arc::new(Traffic::new(app));
    let state = Arc::new(Upstream {
        base: upstream_origin.trim_end_matches('/').to_string(),
        client: reqwest::Client::new(),
        traffic: traffic.clone(),
    });
    let router = Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("soak: the {app:?} proxy stopped: {e}");
        }
    });
    Ok((format!("http://{addr}"), traffic))
}

/// Headers that describe one hop, not the message.
fn hop_by_hop(name: &str) -> bool {
    matches!(name, "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive")
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &format!("soak proxy: unreadable request body: {e}")),
    };
    up.traffic.count(&parts.method, parts.uri.path(), &body);
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if !hop_by_hop(k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let sent = up
        .client
        .request(parts.method.clone(), format!("{}{path_and_query}", up.base))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let reply = match sent {
        Ok(r) => r,
        Err(e) => return failure(StatusCode::BAD_GATEWAY, &format!("soak proxy: sandbox unreachable: {e}")),
    };
    let status = reply.status();
    let reply_headers = reply.headers().clone();
    let bytes = match reply.bytes().await {
        Ok(b) => b,
        Err(e) => return failure(StatusCode::BAD_GATEWAY, &format!("soak proxy: reply body lost: {e}")),
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    for (k, v) in &reply_headers {
        if !hop_by_hop(k.as_str()) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    out
}

fn failure(status: StatusCode, message: &str) -> Response {
    let mut r = Response::new(Body::from(serde_json::json!({ "message": message }).to_string()));
    *r.status_mut() = status;
    r
}
