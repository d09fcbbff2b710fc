//! The recording proxy between the functions and moto. Every AWS call of every function goes
//! through it unchanged (moto checks the signature over the same bytes and host) and is recorded
//! as (role, IAM action, resource ARN, answer). The calls are then checked against the
//! template's statements with IAM's rules where moto cannot check them: resources of DynamoDB,
//! Secrets Manager and CloudWatch Logs, and the actions a batch or transaction request needs
//! (`SendMessageBatch` needs `sqs:SendMessage`, a `TransactWriteItems` needs the action of each
//! of its items).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;

use super::template::Statement;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// One AWS call as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// The role whose credentials signed it.
    pub role: String,
    /// `dynamodb:GetItem`, `sqs:SendMessage`, … (a batch or transaction is several).
    pub actions: Vec<String>,
    pub resource: String,
    /// moto's status code.
    pub status: u16,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    /// Access key id → role.
    roles: Mutex<HashMap<String, String>>,
    calls: Mutex<Vec<Call>>,
}

/// The proxy on a loopback port.
pub struct Proxy {
    pub url: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            roles: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { url: format!("http://{addr}"), inner, server }
    }

    /// Calls signed with `access_key_id` are recorded as `role`'s.
    pub fn register(&self, access_key_id: &str, role: &str) {
        self.inner.roles.lock().unwrap().insert(access_key_id.to_string(), role.to_string());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }
}

async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let url = format!("{}{}", inner.upstream, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut upstream = inner.http.request(parts.method.clone(), &url).body(body.clone());
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_LENGTH
            && name != http::header::TRANSFER_ENCODING
            && name != http::header::CONNECTION
        {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await;
    let (status, headers, bytes) = match answer {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            (status, headers, r.bytes().await.unwrap_or_default())
        }
        Err(e) => {
            let mut r = Response::new(Body::from(format!("proxy: {e}")));
            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    if let Some(call) = describe(&inner, &parts.headers, &body, status.as_u16()) {
        inner.calls.lock().unwrap().push(call);
    }
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    for (name, value) in &headers {
        if name != http::header::CONTENT_LENGTH
            && name != http::header::TRANSFER_ENCODING
            && name != http::header::CONNECTION
        {
            r.headers_mut().append(name, value.clone());
        }
    }
    r
}

/// The access key id and service of a SigV4 `Authorization` header.
fn credential(headers: &http::HeaderMap) -> Option<(String, String)> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    Some((parts.first()?.to_string(), parts.get(3)?.to_string()))
}

fn describe(inner: &Inner, headers: &http::HeaderMap, body: &[u8], status: u16) -> Option<Call> {
    let (key, service) = credential(headers)?;
    let role = inner.roles.lock().unwrap().get(&key).cloned()?;
    let operation = match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(target) => target.rsplit('.').next()?.to_string(),
        None => url::form_urlencoded::parse(body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned())?,
    };
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (actions, resource) = iam_view(&service, &operation, &json);
    Some(Call { role, actions, resource, status })
}

fn arn(service: &str, rest: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}")
}

/// The IAM actions a request needs and the resource it is about.
pub fn iam_view(service: &str, operation: &str, body: &Value) -> (Vec<String>, String) {
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match service {
        "dynamodb" => {
            let table = if !s("TableName").is_empty() {
                s("TableName")
            } else if let Some(items) = body.get("RequestItems").and_then(Value::as_object) {
                items.keys().next().cloned().unwrap_or_default()
            } else {
                body.pointer("/TransactItems/0")
                    .and_then(Value::as_object)
                    .and_then(|item| item.values().next())
                    .and_then(|v| v.get("TableName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let actions: BTreeSet<String> = match operation {
                // A transaction needs the action of each item.
                "TransactWriteItems" => body
                    .get("TransactItems")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_object()?.keys().next().cloned())
                    .map(|kind| match kind.as_str() {
                        "Put" => "dynamodb:PutItem".to_string(),
                        "Update" => "dynamodb:UpdateItem".to_string(),
                        "Delete" => "dynamodb:DeleteItem".to_string(),
                        "ConditionCheck" => "dynamodb:ConditionCheckItem".to_string(),
                        other => format!("dynamodb:{other}"),
                    })
                    .collect(),
                "TransactGetItems" => ["dynamodb:GetItem".to_string()].into(),
                op => [format!("dynamodb:{op}")].into(),
            };
            (actions.into_iter().collect(), arn("dynamodb", &format!("table/{table}")))
        }
        "sqs" => {
            let queue = s("QueueUrl").rsplit('/').next().unwrap_or_default().to_string();
            let action = operation.strip_suffix("Batch").unwrap_or(operation);
            (vec![format!("sqs:{action}")], arn("sqs", &queue))
        }
        "secretsmanager" => {
            let id = if s("SecretId").is_empty() { s("Name") } else { s("SecretId") };
            let resource = if id.starts_with("arn:") { id } else { arn("secretsmanager", &format!("secret:{id}")) };
            (vec![format!("secretsmanager:{operation}")], resource)
        }
        "logs" => (
            vec![format!("logs:{operation}")],
            arn("logs", &format!("log-group:{}:log-stream:{}", s("logGroupName"), s("logStreamName"))),
        ),
        other => (vec![format!("{other}:{operation}")], "*".to_string()),
    }
}

/// IAM's wildcard match (`*` any run, `?` one character); actions compare without case.
pub fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &value.chars().collect::<Vec<_>>())
}

/// The statements (by index) that allow `action` on `resource`.
pub fn allowing(statements: &[Statement], action: &str, resource: &str) -> Vec<usize> {
    statements
        .iter()
        .enumerate()
        .filter(|(_, st)| {
            st.actions.iter().any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
                && st.resources.iter().any(|r| glob(r, resource))
        })
        .map(|(i, _)| i)
        .collect()
}

/// What the recorded calls say about one role's statements.
#[derive(Debug, Default)]
pub struct Audit {
    /// Calls (action on resource) no statement allows.
    pub refused: BTreeSet<String>,
    /// Calls moto refused (its own check of signature and action).
    pub denied_by_moto: BTreeSet<String>,
    /// Statement (by `Sid`) → the actions of it some call needed.
    pub used: BTreeMap<String, BTreeSet<String>>,
}

/// Checks every call of `role` against its statements.
pub fn audit(role: &str, statements: &[Statement], calls: &[Call]) -> Audit {
    let mut audit = Audit::default();
    for c in calls.iter().filter(|c| c.role == role) {
        if c.status == 403 {
            audit.denied_by_moto.insert(format!("{} on {}", c.actions.join("+"), c.resource));
        }
        for action in &c.actions {
            let allowed = allowing(statements, action, &c.resource);
            if allowed.is_empty() {
                audit.refused.insert(format!("{action} on {}", c.resource));
            }
            for i in allowed {
                let used = audit.used.entry(statements[i].sid.clone()).or_default();
                for a in &statements[i].actions {
                    if glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()) {
                        used.insert(a.clone());
                    }
                }
            }
        }
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_seen_as_iam_sees_them() {
        let (a, r) = iam_view(
            "dynamodb",
            "TransactWriteItems",
            &json!({"TransactItems": [{"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "t"}}, {"Put": {"TableName": "t"}}]}),
        );
        assert_eq!(a, ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"]);
        assert_eq!(r, "arn:aws:dynamodb:us-east-1:123456789012:table/t");
        let (a, r) = iam_view("dynamodb", "BatchGetItem", &json!({"RequestItems": {"t": {}}}));
        assert_eq!(
            (a, r.as_str()),
            (vec!["dynamodb:BatchGetItem".to_string()], "arn:aws:dynamodb:us-east-1:123456789012:table/t")
        );
        let (a, r) = iam_view("sqs", "SendMessageBatch", &json!({"QueueUrl": "http://x/123456789012/q.fifo"}));
        assert_eq!((a, r.as_str()), (vec!["sqs:SendMessage".to_string()], "arn:aws:sqs:us-east-1:123456789012:q.fifo"));
        let (_, r) = iam_view("secretsmanager", "GetSecretValue", &json!({"SecretId": "hmsync/s/x"}));
        assert_eq!(r, "arn:aws:secretsmanager:us-east-1:123456789012:secret:hmsync/s/x");
    }

    #[test]
    fn wildcards_match_as_in_iam() {
        assert!(glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:hmsync/s/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:hmsync/s/c/credentials"
        ));
        assert!(!glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:hmsync/s/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:hmsync-admin-token/s"
        ));
        assert!(glob("sqs:*", "sqs:sendmessage"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        let statements = vec![Statement {
            sid: "S".into(),
            actions: vec!["dynamodb:GetItem".into()],
            resources: vec!["arn:t".into()],
        }];
        assert_eq!(allowing(&statements, "dynamodb:getitem", "arn:t"), [0]);
        assert!(allowing(&statements, "dynamodb:PutItem", "arn:t").is_empty());
        assert!(allowing(&statements, "dynamodb:GetItem", "arn:u").is_empty());
    }
}
