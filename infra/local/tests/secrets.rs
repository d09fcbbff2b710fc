//! No secret leaks: a whole demo runs with every crate logging at debug, the config API is asked
//! everything it can answer, a change crosses over through signed webhooks, and then no token,
//! API key, webhook secret or admin token may appear in a log line, an API response or anything
//! the sync stored. The only places a secret may be are the secrets store itself and the lines
//! of the demo's own output that hand the user the tokens on purpose.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Demo;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-that-must-never-leak-7f3a9c";
const DEADLINE: Duration = Duration::from_secs(600);

/// Every string in the secrets store (each secret is a JSON document of credentials), plus the
/// admin token. Short strings (ids, `token`, `oauth`) are not secrets and would match anywhere.
fn secrets(dir: &Path) -> Vec<String> {
    let raw = std::fs::read_to_string(dir.join("secrets.json")).expect("the secrets store");
    let store: BTreeMap<String, String> = serde_json::from_str(&raw).expect("a JSON object of strings");
    let mut out = vec![ADMIN_TOKEN.to_string()];
    for value in store.values() {
        match serde_json::from_str::<Value>(value) {
            Ok(doc) => strings(&doc, &mut out),
            Err(_) => out.push(value.clone()),
        }
    }
    out.retain(|s| s.len() >= 12);
    out.sort();
    out.dedup();
    out
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn leaks<'a>(secrets: &'a [String], haystack: &str) -> Vec<&'a str> {
    secrets.iter().filter(|s| haystack.contains(s.as_str())).map(String::as_str).collect()
}

/// The URL after `label` on a line of the demo's output (the MailerLite sandbox's ends in `/api`).
fn url_after(output: &str, label: &str) -> Option<String> {
    let line = output.lines().find(|l| l.trim_start().starts_with(label))?;
    line.split_whitespace().find(|w| w.starts_with("http://")).map(|u| u.trim_end_matches("/status").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_a_response_or_the_store_during_a_demo() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo =
        Demo::start(dir.path(), ADMIN_TOKEN, &["--contacts", "300"], &[("RUST_LOG", "debug"), ("NO_COLOR", "1")]);
    let deadline = Instant::now() + DEADLINE;
    let (api, mailerlite, mailerlite_token) = loop {
        let out = demo.stdout.lock().unwrap().clone();
        if out.contains("Initial sync done")
            && let (Some(api), Some(ml)) = (url_after(&out, "Status page:"), url_after(&out, "MailerLite sandbox:"))
        {
            let line = out.lines().find(|l| l.trim_start().starts_with("MailerLite sandbox:")).unwrap();
            let token = line.rsplit("token ").next().unwrap().trim_end_matches(')').to_string();
            break (api, ml, token);
        }
        assert!(demo.exited().is_none(), "the demo stopped\n{}", demo.output());
        assert!(Instant::now() < deadline, "the initial sync did not finish\n{}", demo.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let http = reqwest::Client::new();
    let mut responses = String::new();

    // A change in MailerLite crosses over through its signed webhook.
    let page: Value = http
        .get(format!("{mailerlite}/subscribers?filter[status]=active&limit=1"))
        .bearer_auth(&mailerlite_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscriber = &page["data"][0];
    let (id, email) = (subscriber["id"].as_str(), subscriber["email"].as_str());
    let (id, email) = (id.expect("an active subscriber").to_string(), email.unwrap().to_string());
    let put = http
        .put(format!("{mailerlite}/subscribers/{id}"))
        .bearer_auth(&mailerlite_token)
        .json(&json!({"fields": {"city": "Secretless City"}}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());

    // Everything the config API answers about the demo, with the token and without.
    let gets = [
        "/health",
        "/openapi.json",
        "/status",
        "/connections",
        "/connections/demo",
        "/connections/demo/credentials",
        "/connections/demo/fields",
        "/connections/demo/status",
        "/connections/demo/errors",
    ];
    for path in gets.iter().map(|p| p.to_string()).chain([format!("/connections/demo/contacts/{email}")]) {
        for token in [Some(ADMIN_TOKEN), None, Some("wrong-token")] {
            let mut req = http.get(format!("{api}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            responses.push_str(&format!("{path} {:?}\n{:?}\n{}\n", token.map(|_| "…"), resp.headers().clone(), {
                resp.text().await.unwrap()
            }));
        }
    }
    for path in ["/connections/demo/preview", "/connections/demo/sync-now", "/connections/demo/fields/refresh"] {
        let resp = http.post(format!("{api}{path}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        responses.push_str(&format!("{path}\n{:?}\n{}\n", resp.headers().clone(), resp.text().await.unwrap()));
    }
    // A refused credential change answers with what is wrong, never with the value.
    let resp = http
        .put(format!("{api}/connections/demo/credentials"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"mailerlite_api_key": "refused-key-that-must-not-echo-0000"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let refused = resp.text().await.unwrap();
    assert!(!refused.contains("refused-key-that-must-not-echo-0000"), "{refused}");

    // The change arrived in HubSpot (so the webhook, the sync and their logs really ran).
    let synced = loop {
        let status: Value = http
            .get(format!("{api}/connections/demo/contacts/{email}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status.to_string().contains("Secretless City") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(synced, "the MailerLite change was synced\n{}", demo.output());

    let stopped = Command::new("kill").args(["-INT", &demo.child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    let status = demo.wait(deadline);
    assert!(status.success(), "{status:?}\n{}", demo.output());

    let secrets = secrets(dir.path());
    assert!(secrets.len() >= 4, "admin token, HubSpot token and client secret, MailerLite key and webhook secret");
    let stderr = demo.stderr.lock().unwrap().clone();
    assert!(stderr.lines().count() > 100, "debug logging was on:\n{stderr}");
    for line in stderr.lines() {
        assert!(leaks(&secrets, line).is_empty(), "a log line holds a secret: {line}");
    }
    // The demo hands the user its tokens on purpose, on these lines of its own output only.
    let stdout = demo.stdout.lock().unwrap().clone();
    for line in stdout.lines() {
        let meant = ["Status page:", "Admin token:", "HubSpot sandbox:", "MailerLite sandbox:"];
        if !meant.iter().any(|m| line.trim_start().starts_with(m)) {
            assert!(leaks(&secrets, line).is_empty(), "an output line holds a secret: {line}");
        }
    }
    assert!(leaks(&secrets, &responses).is_empty(), "a response holds {:?}", leaks(&secrets, &responses));
    // Everything stored beside the secrets store: the sync's database and queue. (sandbox.json
    // is the simulators' own data, which of course includes the tokens they accept.)
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "secrets.json" || name == "sandbox.json" || path.is_dir() {
            continue;
        }
        let bytes = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        assert!(leaks(&secrets, &bytes).is_empty(), "{name} holds {:?}", leaks(&secrets, &bytes));
    }
}
