//! Part E: cold start of each Lambda function binary (release build): from process start to
//! its answer to the first event, against a local Lambda Runtime API (`hmsync-lambda-local`, the
//! same one the Lambda-shaped end-to-end tests run the functions on).
//!
//! Each function gets a first event that its own code answers without a call to AWS (so the
//! figure is the start-up cost, not DynamoDB's latency), except `scheduled-scan`, whose every
//! event lists the connections in DynamoDB, and `config-api`, which reads its admin token from
//! Secrets Manager before its first event: those two are measured only when a local moto server
//! is given, against an empty table and a generated admin-token secret created there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hmsync_lambda_local::apigw::{Route, http_event as apigw_event};
use hmsync_lambda_local::function::Logs;
use hmsync_lambda_local::{Answer, FunctionSpec, Instance, Outcome};
use serde_json::{Value, json};

use super::report::{ColdStart, FunctionStart};

/// How long a function may take to answer its first event before the run counts as failed.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

/// An API Gateway HTTP API (payload 2.0) request, as `lambda_http` receives it.
pub fn http_event(method: &str, path: &str, body: &str) -> Value {
    let route = Route::new("ANY", "/{proxy+}", "bench");
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, http::HeaderValue::from_static("bench.execute-api.us-east-1.amazonaws.com"));
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static("hmsync-bench"));
    let params = [("proxy".to_string(), path.trim_start_matches('/').to_string())].into_iter().collect();
    let method: http::Method = method.parse().unwrap_or(http::Method::GET);
    apigw_event(&route, &params, &method, path, "", &headers, body.as_bytes(), "127.0.0.1")
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

/// The deployment's settings for a function. No variable of the calling environment leaks in
/// (no real credentials, no real endpoints); Lambda's own variables are set by the runtime API.
fn environment(aws: Option<&AwsResources>) -> Vec<(String, String)> {
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
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
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

/// How the first answer is reported: `response`, `response (HTTP 404)`, `error: <type>` or
/// `init error: <type>`.
fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Response(body) => {
            let status =
                serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("statusCode").and_then(Value::as_u64));
            status.map_or_else(|| "response".to_string(), |code| format!("response (HTTP {code})"))
        }
        Answer::Error { error_type, init: false, .. } => format!("error: {error_type}"),
        Answer::Error { error_type, init: true, .. } => format!("init error: {error_type}"),
    }
}

/// Starts `binary` against a fresh local runtime API and times its first event.
pub async fn cold_start_once(
    binary: &Path,
    name: &str,
    event: &Value,
    aws: Option<&AwsResources>,
) -> anyhow::Result<Run> {
    let spec = FunctionSpec {
        name: name.to_string(),
        binary: binary.to_path_buf(),
        env: environment(aws),
        timeout: ANSWER_LIMIT,
        memory_mb: 256,
    };
    let logs = Logs::default();
    let instance = Instance::start(&spec, &logs).await?;
    let invocation = instance.invoke(event).await;
    let first_poll = instance.api.first_poll();
    instance.stop().await;
    let ms = |t: tokio::time::Instant| t.duration_since(instance.started).as_secs_f64() * 1000.0;
    match invocation.outcome {
        Outcome::Answered(answer) => {
            let first_event_ms = ms(invocation.answered_at);
            Ok(Run { init_ms: first_poll.map_or(first_event_ms, ms), first_event_ms, outcome: describe(&answer) })
        }
        other => anyhow::bail!(
            "{name} did not answer its first event ({other:?}); its output: {}",
            logs.lines().join("\n").trim()
        ),
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

    #[tokio::test]
    async fn a_process_that_never_asks_for_an_event_is_reported_with_its_output() {
        let err = cold_start_once(Path::new("/bin/sh"), "sh", &json!({}), None).await;
        // `/bin/sh` with no input exits at once without calling the runtime API.
        assert!(err.unwrap_err().to_string().contains("did not answer its first event"));
    }

    #[test]
    fn every_function_has_a_first_event_and_the_environment_has_no_outside_variable() {
        let names: Vec<&str> = functions().iter().map(|f| f.name).collect();
        assert_eq!(names, ["hubspot-webhook", "mailerlite-webhook", "config-api", "scheduled-scan", "contact-sync"]);
        let env = environment(None);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert!(get("HMSYNC_QUEUE_URL").unwrap().ends_with(".fifo"), "the functions refuse a queue that is not FIFO");
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:9"));
        let event: aws_lambda_events_v2::Request =
            serde_json::from_value(http_event("GET", "/openapi.json", "")).unwrap();
        assert_eq!(event.raw_path.as_deref(), Some("/openapi.json"));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    /// The payload 2.0 fields the HTTP functions read.
    mod aws_lambda_events_v2 {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Request {
            pub raw_path: Option<String>,
        }
    }
}
