//! A moto server that enforces IAM, one per test process: started with
//! `INITIAL_NO_AUTH_ACTION_COUNT=3`, so the first three requests (creating an administrator user,
//! its policy and its access key) pass unchecked and every later one must be signed with the
//! keys of an IAM user moto knows and be allowed by that user's policies.
//!
//! What moto checks (moto 5.2, `moto/core/authorization.py`, `moto/iam/access_control.py`, and
//! the probe in `moto_evaluates_actions_and_sqs_resources_only`): the SigV4 signature, the
//! action (`service:Operation`, wildcards allowed), and the resource only for SQS (the queue's
//! ARN); every DynamoDB, Secrets Manager and CloudWatch Logs request is checked against the
//! resource `*`, so a statement scoped to a table or a secret prefix never matches there. moto
//! also names batch and transaction requests after themselves (`sqs:SendMessageBatch`,
//! `dynamodb:TransactWriteItems`), where IAM checks the actions they contain. What moto cannot
//! evaluate, the recording proxy (`proxy.rs`) does, against the template's statements.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::sync::OnceCell;

/// An IAM user's access key.
#[derive(Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct Moto {
    pub endpoint: String,
    pub admin: Keys,
}

static MOTO: OnceCell<Moto> = OnceCell::const_new();

/// The moto server of this test process, started on first use.
pub async fn moto() -> &'static Moto {
    MOTO.get_or_init(start).await
}

/// `HMSYNC_MOTO_SERVER`, or the `moto_server` `./scripts/test` installs into `.venv-tools/`.
fn moto_server_binary() -> PathBuf {
    let path = std::env::var_os("HMSYNC_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/moto_server"));
    assert!(
        path.is_file(),
        "no moto server at {}: run ./scripts/test once (it installs moto into .venv-tools/) or set HMSYNC_MOTO_SERVER",
        path.display()
    );
    path
}

async fn start() -> Moto {
    let binary = moto_server_binary();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The server lives as long as this test process: it is started from a thread that never
    // ends, and the kernel stops it when that thread (the process) goes (PR_SET_PDEATHSIG).
    let (started, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(&binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn();
        let _ = started.send(child.as_ref().map(|c| c.id()).map_err(|e| e.to_string()));
        let _child = child;
        loop {
            std::thread::park();
        }
    });
    result.recv().unwrap().unwrap_or_else(|e| panic!("starting moto: {e}"));
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{endpoint}/moto-api/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The three unchecked requests: an administrator and its key.
    let nobody = Keys { access_key_id: "AKIABOOTSTRAPEXAMPLE".into(), secret_access_key: "bootstrap".into() };
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    iam(&endpoint, &nobody, &[("Action", "CreateUser"), ("UserName", "hmsync-e2e-admin")]).await.expect("CreateUser");
    iam(
        &endpoint,
        &nobody,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "hmsync-e2e-admin"),
            ("PolicyName", "all"),
            ("PolicyDocument", all),
        ],
    )
    .await
    .expect("PutUserPolicy");
    let admin = create_access_key(&endpoint, &nobody, "hmsync-e2e-admin").await;
    Moto { endpoint, admin }
}

/// Signs and sends an IAM query-protocol request; returns the XML answer.
pub async fn iam(endpoint: &str, keys: &Keys, params: &[(&str, &str)]) -> anyhow::Result<String> {
    let body = std::iter::once(("Version", "2010-05-08"))
        .chain(params.iter().copied())
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    signed(endpoint, keys, "iam", &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")], body).await
}

/// Signs and sends an AWS JSON-protocol request (`X-Amz-Target`); returns the answer.
pub async fn json_call(
    endpoint: &str,
    keys: &Keys,
    service: &str,
    target: &str,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)];
    signed(endpoint, keys, service, &headers, body.to_string()).await
}

/// Signs a POST to `endpoint` for `service` with SigV4 and sends it.
async fn signed(
    endpoint: &str,
    keys: &Keys,
    service: &str,
    headers: &[(&str, &str)],
    body: String,
) -> anyhow::Result<String> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut headers: Vec<(&str, &str)> = headers.to_vec();
    headers.push(("host", host.as_str()));
    let identity = Credentials::new(&keys.access_key_id, &keys.secret_access_key, None, None, "hmsync-e2e").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let signable =
        SignableRequest::new("POST", url.as_str(), headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut request = reqwest::Client::new().post(&url).body(body.clone());
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        request = request.header(k, v);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    anyhow::ensure!(status.is_success(), "{service} request refused: HTTP {status}: {text}");
    Ok(text)
}

/// Form encoding as Python's `urlencode` does it (moto checks the signature over the form it
/// parsed and encodes again that way): `_.-~` and alphanumerics kept, space as `+`.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn between<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

async fn create_access_key(endpoint: &str, keys: &Keys, user: &str) -> Keys {
    let xml = iam(endpoint, keys, &[("Action", "CreateAccessKey"), ("UserName", user)]).await.expect("CreateAccessKey");
    Keys {
        access_key_id: between(&xml, "AccessKeyId").expect("AccessKeyId").to_string(),
        secret_access_key: between(&xml, "SecretAccessKey").expect("SecretAccessKey").to_string(),
    }
}

/// An IAM user carrying exactly `policy` (one inline policy), and its access key.
pub async fn user_with_policy(moto: &Moto, user: &str, policy: &serde_json::Value) -> Keys {
    iam(&moto.endpoint, &moto.admin, &[("Action", "CreateUser"), ("UserName", user)]).await.expect("CreateUser");
    let document = policy.to_string();
    iam(
        &moto.endpoint,
        &moto.admin,
        &[("Action", "PutUserPolicy"), ("UserName", user), ("PolicyName", "template"), ("PolicyDocument", &document)],
    )
    .await
    .expect("PutUserPolicy");
    create_access_key(&moto.endpoint, &moto.admin, user).await
}

/// An SDK config that signs with `keys` and talks to `endpoint`.
pub async fn sdk_config(endpoint: &str, keys: &Keys) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(Credentials::new(&keys.access_key_id, &keys.secret_access_key, None, None, "hmsync-e2e"))
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}
