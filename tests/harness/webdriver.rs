//! A small W3C WebDriver client for the page tests: headless Chromium through ChromeDriver on
//! 127.0.0.1, the commands the tests need, screenshots, and an accessibility check of the
//! current screen with axe-core (vendored under `tests/fixtures/axe-core`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How often to look again for something the page is expected to show (each look waits
/// [`POLL_EVERY`]); generous, so a slow machine does not fail the test.
pub const POLLS: usize = 600;
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process on 127.0.0.1 (in its own process group, so Chromium goes with it).
pub struct ChromeDriver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the status page test drives headless Chromium. Install it with \
                 `apt-get install -y chromium chromium-driver` (Debian package {package})."
            );
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).expect("log file");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!("--log-path={}", profile.path().join("chromedriver-verbose.log").display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        ChromeDriver { child, url: format!("http://127.0.0.1:{port}"), profile }
    }

    /// ChromeDriver's own output, to explain a failure.
    pub fn print_log(&self) {
        if let Ok(log) = std::fs::read_to_string(self.profile.path().join("chromedriver.log")) {
            eprintln!("--- chromedriver output ---\n{log}");
        }
    }

    fn chromium_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1400",
            "--lang=en-US",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", self.profile.path().join("chromium").display()));
        args
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log();
        }
        // The whole group: ChromeDriver and any Chromium it started.
        let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.child.id())).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal W3C WebDriver client (the commands this test needs).
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl Browser {
    pub async fn open(driver: &ChromeDriver) -> Browser {
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..POLLS {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        assert!(ready, "ChromeDriver did not answer on {}", driver.url);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": driver.chromium_args()},
        }}});
        let resp: Value =
            http.post(format!("{}/session", driver.url)).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start a session: {resp}"))
            .to_string();
        Browser { http, session: format!("{}/session/{session}", driver.url) }
    }

    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.expect("WebDriver request").json().await.expect("WebDriver JSON");
        match resp["value"].get("error").and_then(Value::as_str) {
            Some(error) => Err(WebDriverError {
                error: error.to_string(),
                message: resp["value"]["message"].as_str().unwrap_or_default().to_string(),
            }),
            None => Ok(resp["value"].clone()),
        }
    }

    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await {
            panic!("navigate to {url}: {e}");
        }
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, source: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": source, "args": args})))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub async fn find(&self, css: &str) -> Result<String, WebDriverError> {
        let v = self
            .command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await?;
        Ok(v[ELEMENT].as_str().expect("element id").to_string())
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str) -> String {
        for _ in 0..POLLS {
            if let Ok(id) = self.find(css).await {
                return id;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("the page never showed {css}");
    }

    /// The text of the first element matching `css` (read in one step, so a refresh of the
    /// page's data cannot leave a stale reference), or None.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))
            .await
            .as_str()
            .map(str::to_string)
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            json!([css, name]),
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// Whether the first element matching `css` is rendered (not `display: none` itself or
    /// through an ancestor).
    pub async fn visible(&self, css: &str) -> bool {
        self.script(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            json!([css]),
        )
        .await
            == true
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        for _ in 0..POLLS {
            last = self.text(css).await;
            if let Some(t) = &last
                && ok(t)
            {
                return t.clone();
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("{css} never showed {what}; last: {last:?}");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css).await;
        if let Err(e) =
            self.command(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await
        {
            panic!("type into {css}: {e}");
        }
    }

    /// Clicks like a user (a real pointer click); the page re-renders its data every few
    /// seconds, so a reference that went stale is looked up again.
    pub async fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.wait_for(css).await;
            match self.command(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await {
                Ok(_) => return,
                Err(e) if e.error == "stale element reference" => continue,
                Err(e) => panic!("click on {css}: {e}"),
            }
        }
        panic!("{css} kept going stale");
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = match self.command(reqwest::Method::GET, "/screenshot", None).await {
            Ok(png) => png,
            Err(e) => panic!("screenshot: {e}"),
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("PNG");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("target dir");
        std::fs::write(path, bytes).expect("screenshot written");
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }

    /// Runs an asynchronous script (its last argument is the callback) and returns its value.
    pub async fn script_async(&self, source: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/async", Some(json!({"script": source, "args": args})))
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}"))
    }

    /// The serious and critical accessibility violations of the current screen, as axe-core
    /// finds them: each rule with its help text and the elements it found.
    pub async fn accessibility_violations(&self) -> Vec<Value> {
        let loaded = self.script("return typeof window.axe === 'object'", json!([])).await;
        if loaded != true {
            self.script(&format!("{AXE}\n;return true;"), json!([])).await;
        }
        let result = self
            .script_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document)
                   .then((r) => done({ passes: r.passes.length, violations: r.violations
                     .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) })) }))
                   .catch((e) => done({ error: String(e) }));",
                json!([]),
            )
            .await;
        // Rules that passed prove the check looked at the page at all.
        match (result["passes"].as_u64(), result["violations"].as_array()) {
            (Some(passes), Some(v)) if passes > 0 => v.clone(),
            _ => panic!("axe-core did not run: {result}"),
        }
    }

    /// Fails with the violations when the current screen has any serious or critical one.
    pub async fn assert_accessible(&self, screen: &str) {
        let violations = self.accessibility_violations().await;
        assert!(
            violations.is_empty(),
            "accessibility of {screen}: {}",
            serde_json::to_string_pretty(&violations).unwrap()
        );
    }

    /// Sets a form control's value as a user would: cleared, then typed.
    pub async fn replace_text(&self, css: &str, text: &str) {
        let id = self.wait_for(css).await;
        if let Err(e) = self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await {
            panic!("clear {css}: {e}");
        }
        self.type_into(css, text).await;
    }

    /// Picks the option with `value` of a `<select>` (a click on it, as a user would).
    pub async fn select(&self, select_css: &str, value: &str) {
        self.click(&format!("{select_css} option[value=\"{value}\"]")).await;
    }

    /// Waits until `css` matches nothing any more.
    pub async fn wait_gone(&self, css: &str) {
        for _ in 0..POLLS {
            if self.find(css).await.is_err() {
                return;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("{css} never went away");
    }

    /// Sends keys to whatever has the focus (e.g. Tab, Enter: keyboard use).
    pub async fn keys(&self, text: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions":
            text.chars().flat_map(|c| [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]).collect::<Vec<_>>()}]});
        if let Err(e) = self.command(reqwest::Method::POST, "/actions", Some(actions)).await {
            panic!("keys: {e}");
        }
    }

    /// The `id` (or tag) of the focused element.
    pub async fn focused(&self) -> String {
        self.script("const e = document.activeElement; return e ? (e.id || e.tagName.toLowerCase()) : '';", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// axe-core 4.14.1, vendored (see tests/fixtures/axe-core/README.md).
pub const AXE: &str = include_str!("../fixtures/axe-core/axe.min.js");

/// The integrity hash axe-core publishes for this version (its `sri-history.json`).
pub const AXE_SHA256: &str = "KTSJmUUM3yhJqOcLeRL8LahahJ2jnA0NU5T1HUqe2Vw=";

/// Where the tests write their screenshots and other output.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn the_vendored_axe_core_is_the_published_file() {
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(super::AXE.as_bytes()));
        assert_eq!(digest, super::AXE_SHA256);
    }

    use base64::Engine as _;
}
