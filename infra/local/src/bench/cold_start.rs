//! Part E: cold start of each Lambda function binary (release build): from process start to
//! its answer to the first event, against a local Lambda Runtime API (the loopback server
//! below implements what `lambda_runtime` calls: `GET /2018-06-01/runtime/invocation/next`,
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error`, `POST …/init/error`).
//!
//! Each function gets a first event that its own code answers without a call to AWS (so the
//! figure is the start-up cost, not DynamoDB's latency), except `scheduled-scan`, whose every
//! event lists the connections in DynamoDB, and `config-api`, which reads its admin token from
//! Secrets Manager before its first event: those two are measured only when a local moto server
//! is given, against an empty table and a generated admin-token secret created there.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use super::report::{ColdStart, FunctionStart};

/// The runtime API version path every Lambda runtime client uses.
const API: &str = "/2018-06-01/runtime";

/// How long a function may take to answer its first event before the run counts as failed.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

/// What the local runtime API saw of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The first `GET …/invocation/next` (the function finished initialising).
    pub next_at: Option<Instant>,
    /// The answer to the first event.
    pub answered_at: Option<Instant>,
    /// `response`, `response (HTTP 404)`, `error: <type>` or `init error: <type>`.
    pub outcome: Option<String>,
    pub answer_body: Option<String>,
}

struct Inner {
    event: String,
    function_arn: String,
    observed: Mutex<Observed>,
    answered: Notify,
}

/// A loopback Lambda Runtime API that hands out one event and records the answer.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start(function: &str, event: &Value) -> anyhow::Result<RuntimeApi> {
        let inner = Arc::new(Inner {
            event: event.to_string(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
            observed: Mutex::new(Observed::default()),
            answered: Notify::new(),
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
        Ok(RuntimeApi { addr, inner, server })
    }

    /// Waits until the first event is answered (or `limit` passes) and returns what was seen.
    pub async fn wait_for_answer(&self, limit: Duration) -> Observed {
        let wait = async {
            loop {
                let notified = self.inner.answered.notified();
                if self.observed().answered_at.is_some() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.observed()
    }

    pub fn observed(&self) -> Observed {
        self.inner.observed.lock().expect("observed lock").clone()
    }
}

/// The first call gets the event; later calls wait forever (the process is stopped first).
async fn next(State(inner): State<Arc<Inner>>) -> axum::response::Response {
    let first = {
        let mut o = inner.observed.lock().expect("observed lock");
        let first = o.next_at.is_none();
        if first {
            o.next_at = Some(Instant::now());
        }
        first
    };
    if !first {
        std::future::pending::<()>().await;
    }
    let deadline_ms = hmsync_sandbox::common::now_ms() + 30_000;
    let mut headers = HeaderMap::new();
    headers.insert("Lambda-Runtime-Aws-Request-Id", HeaderValue::from_static("bench-invocation-1"));
    headers.insert("Lambda-Runtime-Deadline-Ms", HeaderValue::from(deadline_ms));
    if let Ok(arn) = HeaderValue::from_str(&inner.function_arn) {
        headers.insert("Lambda-Runtime-Invoked-Function-Arn", arn);
    }
    headers.insert(
        "Lambda-Runtime-Trace-Id",
        HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"),
    );
    headers.insert("Content-Type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, inner.event.clone()).into_response()
}

fn record(inner: &Inner, outcome: String, body: &Bytes) {
    let mut o = inner.observed.lock().expect("observed lock");
    if o.answered_at.is_none() {
        o.answered_at = Some(Instant::now());
        o.outcome = Some(outcome);
        o.answer_body = Some(String::from_utf8_lossy(body).into_owned());
    }
    drop(o);
    inner.answered.notify_waiters();
}

fn error_type(body: &Bytes) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errorType").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

async fn response(State(inner): State<Arc<Inner>>, UrlPath(_id): UrlPath<String>, body: Bytes) -> StatusCode {
    let status = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("statusCode").and_then(Value::as_u64));
    let outcome = match status {
        Some(code) => format!("response (HTTP {code})"),
        None => "response".to_string(),
    };
    record(&inner, outcome, &body);
    StatusCode::ACCEPTED
}

async fn error(State(inner): State<Arc<Inner>>, UrlPath(_id): UrlPath<String>, body: Bytes) -> StatusCode {
    record(&inner, format!("error: {}", error_type(&body)), &body);
    StatusCode::ACCEPTED
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    record(&inner, format!("init error: {}", error_type(&body)), &body);
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload 2.0) request, as `lambda_http` receives it.
pub fn http_event(method: &str, path: &str, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "bench.execute-api.us-east-1.amazonaws.com",
            "user-agent": "hmsync-bench"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "hmsync-bench"
            },
            "requestId": "bench-request-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// One function of the deployment and the first event it gets.
#[derive(Debug, Clone)]
pub struct LambdaFunction {
    pub name: &'static str,
    pub event_label: &'static str,
    pub event: Value,
    /// It reads DynamoDB or Secrets Manager before it answers its first event.
    pub needs_aws: bool,
}

/// The five functions and their first events.
pub fn functions() -> Vec<LambdaFunction> {
    vec![
        LambdaFunction {
            name: "hubspot-webhook",
            event_label: "POST /webhooks/hubspot with an empty event array",
            event: http_event("POST", "/webhooks/hubspot", "[]"),
            needs_aws: false,
        },
        LambdaFunction {
            name: "mailerlite-webhook",
            event_label: "GET /webhooks/mailerlite/{id} (a method the route refuses)",
            event: http_event("GET", "/webhooks/mailerlite/bench", ""),
            needs_aws: false,
        },
        LambdaFunction {
            name: "config-api",
            event_label: "GET /openapi.json",
            event: http_event("GET", "/openapi.json", ""),
            needs_aws: true,
        },
        LambdaFunction {
            name: "scheduled-scan",
            event_label: "EventBridge scheduled event, empty table",
            event: json!({
                "version": "0",
                "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": "2026-01-01T00:00:00Z",
                "region": "us-east-1",
                "resources": ["arn:aws:events:us-east-1:123456789012:rule/hmsync-scan"],
                "detail": {}
            }),
            needs_aws: true,
        },
        LambdaFunction {
            name: "contact-sync",
            event_label: "SQS batch without records",
            event: json!({ "Records": [] }),
            needs_aws: false,
        },
    ]
}

/// Where the AWS calls of the functions go.
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub endpoint: String,
    pub table: String,
    pub queue_url: String,
    pub admin_token_secret: String,
}

/// The environment Lambda gives a function, plus the deployment's own settings. No variable of
/// the calling environment leaks in (no real credentials, no real endpoints).
fn environment(name: &str, runtime_api: SocketAddr, aws: Option<&AwsResources>) -> Vec<(String, String)> {
    let (endpoint, table, queue_url, admin_token_secret) = match aws {
        Some(a) => (a.endpoint.clone(), a.table.clone(), a.queue_url.clone(), a.admin_token_secret.clone()),
        // Nothing listens on the discard port: a call that should not happen fails at once.
        None => (
            "http://127.0.0.1:9".to_string(),
            "hmsync-bench".to_string(),
            "http://127.0.0.1:9/123456789012/hmsync-bench.fifo".to_string(),
            "hmsync-bench/admin-token".to_string(),
        ),
    };
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("HMSYNC_TABLE", table),
        ("HMSYNC_QUEUE_URL", queue_url),
        ("HMSYNC_ADMIN_TOKEN_SECRET", admin_token_secret),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One cold start: a fresh process, one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub init_ms: f64,
    pub first_event_ms: f64,
    pub outcome: String,
}

/// Starts `binary` against a fresh local runtime API and times its first event.
pub async fn cold_start_once(
    binary: &Path,
    name: &str,
    event: &Value,
    aws: Option<&AwsResources>,
) -> anyhow::Result<Run> {
    let api = RuntimeApi::start(name, event).await?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(environment(name, api.addr, aws))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut stderr = child.stderr.take().context("the function's stderr")?;
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    // A process that exits before answering is a failed start; no need to wait for the limit.
    tokio::select! {
        _ = api.wait_for_answer(ANSWER_LIMIT) => {}
        _ = child.wait() => {}
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    let stderr = stderr.await.unwrap_or_default();
    let seen = api.observed();
    let ms = |t: Option<Instant>| t.map(|t| t.duration_since(started).as_secs_f64() * 1000.0);
    match (ms(seen.answered_at), seen.outcome) {
        (Some(first_event_ms), Some(outcome)) => {
            Ok(Run { init_ms: ms(seen.next_at).unwrap_or(first_event_ms), first_event_ms, outcome })
        }
        _ => anyhow::bail!("{name} did not answer its first event; its stderr: {}", stderr.trim()),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Creates an empty table, a FIFO queue and the config API's admin-token secret for the
/// functions in a local DynamoDB/SQS/Secrets Manager (moto).
pub async fn local_aws(endpoint: &str) -> anyhow::Result<AwsResources> {
    use hmsync_store::SecretStore;
    let sdk = hmsync_store::testing::moto_sdk_config(endpoint).await;
    let table = hmsync_store::testing::unique_name("bench");
    hmsync_store::DynamoStore::new(&sdk, table.clone()).create_table_if_missing().await?;
    let name = hmsync_store::testing::unique_name("bench");
    let (queue_url, _dlq) = hmsync_store::testing::create_fifo_queue_pair(&sdk, &name, 5).await?;
    let admin_token_secret = format!("{}/admin-token", hmsync_store::testing::unique_name("bench"));
    hmsync_store::SecretsManagerSecrets::new(&sdk, "")
        .put_secret(&admin_token_secret, &uuid::Uuid::new_v4().simple().to_string())
        .await?;
    Ok(AwsResources { endpoint: endpoint.to_string(), table, queue_url, admin_token_secret })
}

/// Measures every function found in `dir`, `runs` cold starts each.
pub async fn cold_start(dir: &Path, runs: usize, aws_endpoint: Option<&str>) -> anyhow::Result<ColdStart> {
    let mut result = ColdStart { dir: dir.display().to_string(), ..ColdStart::default() };
    let aws = match aws_endpoint {
        Some(e) => Some(local_aws(e).await.with_context(|| format!("creating a table and a queue at {e}"))?),
        None => None,
    };
    for f in functions() {
        let binary: PathBuf = dir.join(f.name);
        if !binary.is_file() {
            result.missing.push(format!(
                "{} (no {}; build it with `cargo build --release -p {}`)",
                f.name,
                binary.display(),
                f.name
            ));
            continue;
        }
        if f.needs_aws && aws.is_none() {
            result.missing.push(format!(
                "{} (it reads DynamoDB or Secrets Manager before answering: give `--aws-endpoint` a local moto server to measure it)",
                f.name
            ));
            continue;
        }
        let size_bytes = std::fs::metadata(&binary)?.len();
        let mut measured = Vec::new();
        for _ in 0..runs.max(1) {
            measured.push(cold_start_once(&binary, f.name, &f.event, aws.as_ref()).await?);
        }
        let outcome = measured[0].outcome.clone();
        if let Some(other) = measured.iter().find(|r| r.outcome != outcome) {
            anyhow::bail!("{}: the same event got different answers ({outcome}, {})", f.name, other.outcome);
        }
        let start = FunctionStart {
            name: f.name.to_string(),
            binary: binary.display().to_string(),
            size_bytes,
            event: f.event_label.to_string(),
            runs: measured.len(),
            init_ms: median(measured.iter().map(|r| r.init_ms).collect()),
            first_event_ms: median(measured.iter().map(|r| r.first_event_ms).collect()),
            first_event_max_ms: measured.iter().map(|r| r.first_event_ms).fold(0.0, f64::max),
            outcome,
        };
        eprintln!(
            "E {}: {:.1} ms to the first answer ({}), {:.1} MiB",
            start.name,
            start.first_event_ms,
            start.outcome,
            start.size_bytes as f64 / (1024.0 * 1024.0)
        );
        result.functions.push(start);
    }
    if aws.is_some() {
        result.notes.push(
            "scheduled-scan's figure includes its DynamoDB scan of an empty table, config-api's its Secrets Manager read of the admin token, both on the local moto server".into(),
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn hands_out_the_event_with_the_invocation_headers_and_records_the_response() {
        let event = json!({"Records": []});
        let api = RuntimeApi::start("contact-sync", &event).await.unwrap();
        let (status, got, headers) =
            act_as_runtime(api.addr, "response", json!({"statusCode": 404, "body": "not found"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, event);
        assert!(headers["lambda-runtime-deadline-ms"].to_str().unwrap().parse::<i64>().unwrap() > 0);
        assert_eq!(
            headers["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:contact-sync"
        );
        assert!(headers.contains_key("lambda-runtime-trace-id"));
        let seen = api.wait_for_answer(Duration::from_secs(5)).await;
        assert_eq!(seen.outcome.as_deref(), Some("response (HTTP 404)"));
        assert!(seen.next_at.unwrap() <= seen.answered_at.unwrap());
    }

    #[tokio::test]
    async fn records_an_error_answer_with_its_type() {
        let api = RuntimeApi::start("scheduled-scan", &json!({})).await.unwrap();
        act_as_runtime(api.addr, "error", json!({"errorType": "ResourceNotFound", "errorMessage": "no table"})).await;
        let seen = api.wait_for_answer(Duration::from_secs(5)).await;
        assert_eq!(seen.outcome.as_deref(), Some("error: ResourceNotFound"));
    }

    #[tokio::test]
    async fn a_second_poll_for_an_event_waits() {
        let api = RuntimeApi::start("contact-sync", &json!({})).await.unwrap();
        act_as_runtime(api.addr, "response", json!({})).await;
        let http = reqwest::Client::new();
        let second = http.get(format!("http://{}{API}/invocation/next", api.addr)).send();
        assert!(tokio::time::timeout(Duration::from_millis(300), second).await.is_err(), "no second event");
    }

    #[tokio::test]
    async fn a_process_that_never_asks_for_an_event_is_reported_with_its_stderr() {
        let err = cold_start_once(Path::new("/bin/sh"), "sh", &json!({}), None).await;
        // `/bin/sh` with no input exits at once without calling the runtime API.
        assert!(err.unwrap_err().to_string().contains("did not answer its first event"));
    }

    #[test]
    fn every_function_has_a_first_event_and_the_environment_names_the_runtime_api() {
        let names: Vec<&str> = functions().iter().map(|f| f.name).collect();
        assert_eq!(names, ["hubspot-webhook", "mailerlite-webhook", "config-api", "scheduled-scan", "contact-sync"]);
        let env = environment("contact-sync", "127.0.0.1:9001".parse().unwrap(), None);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME"), Some("contact-sync"));
        assert!(get("HMSYNC_QUEUE_URL").unwrap().ends_with(".fifo"), "the functions refuse a queue that is not FIFO");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
