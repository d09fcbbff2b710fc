//! The Lambda Runtime API on 127.0.0.1: what a function's runtime client (`lambda_runtime`)
//! polls for events and answers to (`GET /2018-06-01/runtime/invocation/next`,
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error`, `POST …/init/error`).
//! One API serves one execution environment (one process), which handles one invocation at a
//! time, as on Lambda.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// The runtime API version path every Lambda runtime client uses.
pub const API: &str = "/2018-06-01/runtime";

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `POST …/response`: the function's result, as it sent it.
    Response(Bytes),
    /// `POST …/error` (the handler failed) or `POST …/init/error` (it could not start).
    Error { error_type: String, message: String, init: bool },
}

struct Pending {
    request_id: String,
    event: Bytes,
    deadline_ms: i64,
    answer: oneshot::Sender<(Answer, Instant)>,
}

struct Inner {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<(Answer, Instant)>>>,
    first_poll: Mutex<Option<Instant>>,
    polled: Notify,
    init_error: Mutex<Option<Answer>>,
}

/// A loopback Runtime API for one execution environment.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    sender: mpsc::UnboundedSender<Pending>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl RuntimeApi {
    /// Listens on a free loopback port for the function `function` (its name goes into the
    /// invoked function's ARN).
    pub async fn start(function: &str) -> std::io::Result<RuntimeApi> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            polled: Notify::new(),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi { addr, inner, sender, server })
    }

    /// Hands `event` to the function's next poll; the receiver gets its answer and when it came.
    /// `timeout` sets the invocation's deadline the function sees.
    pub fn invoke(&self, event: &Value, timeout: Duration) -> oneshot::Receiver<(Answer, Instant)> {
        let (answer, receiver) = oneshot::channel();
        let pending = Pending {
            request_id: uuid::Uuid::new_v4().to_string(),
            event: Bytes::from(event.to_string()),
            deadline_ms: now_ms() + timeout.as_millis() as i64,
            answer,
        };
        if let Err(mpsc::error::SendError(p)) = self.sender.send(pending) {
            let _ = p.answer.send((init_failed("the runtime API stopped"), Instant::now()));
        }
        receiver
    }

    /// When the function first asked for an event (its initialisation was done then).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.inner.first_poll.lock().expect("first poll lock")
    }

    /// Waits for the first poll, at most `limit`.
    pub async fn wait_for_first_poll(&self, limit: Duration) -> Option<Instant> {
        let wait = async {
            loop {
                let notified = self.inner.polled.notified();
                if let Some(at) = self.first_poll() {
                    return at;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.ok()
    }

    /// The error the function reported at start-up (`POST …/init/error`), if any.
    pub fn init_error(&self) -> Option<Answer> {
        self.inner.init_error.lock().expect("init error lock").clone()
    }
}

fn init_failed(message: &str) -> Answer {
    Answer::Error { error_type: "Runtime.Unavailable".into(), message: message.into(), init: true }
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    {
        let mut first = inner.first_poll.lock().expect("first poll lock");
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    inner.polled.notify_waiters();
    let pending = {
        let mut queue = inner.queue.lock().await;
        queue.recv().await
    };
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    inner.in_flight.lock().expect("in-flight lock").insert(p.request_id.clone(), p.answer);
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    headers.insert("Lambda-Runtime-Aws-Request-Id", header(&p.request_id));
    headers.insert("Lambda-Runtime-Deadline-Ms", HeaderValue::from(p.deadline_ms));
    headers.insert("Lambda-Runtime-Invoked-Function-Arn", header(&inner.function_arn));
    headers.insert(
        "Lambda-Runtime-Trace-Id",
        HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"),
    );
    headers.insert("Content-Type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, p.event).into_response()
}

fn complete(inner: &Inner, id: &str, answer: Answer) -> StatusCode {
    match inner.in_flight.lock().expect("in-flight lock").remove(id) {
        Some(sender) => {
            let _ = sender.send((answer, Instant::now()));
            StatusCode::ACCEPTED
        }
        // Lambda answers an unknown or already answered request id with 400.
        None => StatusCode::BAD_REQUEST,
    }
}

fn error_of(body: &Bytes, init: bool) -> Answer {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("unknown").to_string();
    Answer::Error { error_type: field("errorType"), message: field("errorMessage"), init }
}

async fn response(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    complete(&inner, &id, Answer::Response(body))
}

async fn error(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    complete(&inner, &id, error_of(&body, false))
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let answer = error_of(&body, true);
    *inner.init_error.lock().expect("init error lock") = Some(answer.clone());
    // Nothing more will be answered by this environment.
    let senders: Vec<_> = inner.in_flight.lock().expect("in-flight lock").drain().map(|(_, s)| s).collect();
    for s in senders {
        let _ = s.send((answer.clone(), Instant::now()));
    }
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a Lambda runtime client does, by hand: poll for the event, answer it.
    async fn act_as_runtime(addr: SocketAddr, answer: &str, body: Value) -> (StatusCode, Value, HeaderMap) {
        let http = reqwest::Client::new();
        let next = http.get(format!("http://{addr}{API}/invocation/next")).send().await.unwrap();
        let status = next.status();
        let headers = next.headers().clone();
        let event: Value = next.json().await.unwrap();
        let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();
        let r = http.post(format!("http://{addr}{API}/invocation/{id}/{answer}")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        (status, event, headers)
    }

    #[tokio::test]
    async fn hands_out_each_event_with_the_invocation_headers_and_returns_the_answer() {
        let api = RuntimeApi::start("contact-sync").await.unwrap();
        for n in 0..2 {
            let event = json!({"Records": [], "n": n});
            let answer = api.invoke(&event, Duration::from_secs(30));
            let (status, got, headers) =
                act_as_runtime(api.addr, "response", json!({"statusCode": 404, "body": "not found"})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(got, event);
            let deadline: i64 = headers["lambda-runtime-deadline-ms"].to_str().unwrap().parse().unwrap();
            assert!(deadline > now_ms() + 20_000);
            assert_eq!(
                headers["lambda-runtime-invoked-function-arn"],
                "arn:aws:lambda:us-east-1:123456789012:function:contact-sync"
            );
            assert!(headers.contains_key("lambda-runtime-trace-id"));
            let (answer, _) = answer.await.unwrap();
            assert_eq!(answer, Answer::Response(Bytes::from(r#"{"body":"not found","statusCode":404}"#)));
        }
        assert!(api.first_poll().is_some());
    }

    #[tokio::test]
    async fn an_error_answer_keeps_its_type() {
        let api = RuntimeApi::start("scheduled-scan").await.unwrap();
        let answer = api.invoke(&json!({}), Duration::from_secs(30));
        act_as_runtime(api.addr, "error", json!({"errorType": "ResourceNotFound", "errorMessage": "no table"})).await;
        let (answer, _) = answer.await.unwrap();
        assert_eq!(
            answer,
            Answer::Error { error_type: "ResourceNotFound".into(), message: "no table".into(), init: false }
        );
    }

    #[tokio::test]
    async fn a_poll_without_an_event_waits() {
        let api = RuntimeApi::start("contact-sync").await.unwrap();
        let http = reqwest::Client::new();
        let poll = http.get(format!("http://{}{API}/invocation/next", api.addr)).send();
        assert!(tokio::time::timeout(Duration::from_millis(300), poll).await.is_err(), "no event to hand out");
        assert!(api.wait_for_first_poll(Duration::from_secs(1)).await.is_some());
    }

    #[tokio::test]
    async fn an_answer_to_an_unknown_request_is_refused() {
        let api = RuntimeApi::start("config-api").await.unwrap();
        let r = reqwest::Client::new()
            .post(format!("http://{}{API}/invocation/nope/response", api.addr))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
