//! The status page in a real browser: headless Chromium driven over WebDriver (ChromeDriver)
//! against the harness's server after an activation. The admin token is typed in once, the
//! connection's name, counts, status and errors are shown (contact data as text, never as
//! markup), "Sync now" really runs a scan, and a screenshot lands in `target/status-page.png`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{ADMIN_TOKEN, Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How often to look again for something the page is expected to show (each look waits
/// [`POLL_EVERY`]); generous, so a slow machine does not fail the test.
const POLLS: usize = 600;
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process on 127.0.0.1 (in its own process group, so Chromium goes with it).
struct ChromeDriver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
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
    fn print_log(&self) {
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
struct Browser {
    http: reqwest::Client,
    session: String,
}

struct WebDriverError {
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl Browser {
    async fn open(driver: &ChromeDriver) -> Browser {
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

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
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

    async fn goto(&self, url: &str) {
        if let Err(e) = self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await {
            panic!("navigate to {url}: {e}");
        }
    }

    /// Runs a script in the page and returns its value.
    async fn script(&self, source: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": source, "args": args})))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    async fn find(&self, css: &str) -> Result<String, WebDriverError> {
        let v = self
            .command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await?;
        Ok(v[ELEMENT].as_str().expect("element id").to_string())
    }

    /// Waits until `css` matches an element.
    async fn wait_for(&self, css: &str) -> String {
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
    async fn text(&self, css: &str) -> Option<String> {
        self.script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))
            .await
            .as_str()
            .map(str::to_string)
    }

    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
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
    async fn visible(&self, css: &str) -> bool {
        self.script(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            json!([css]),
        )
        .await
            == true
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
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

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css).await;
        if let Err(e) =
            self.command(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await
        {
            panic!("type into {css}: {e}");
        }
    }

    /// Clicks like a user (a real pointer click); the page re-renders its data every few
    /// seconds, so a reference that went stale is looked up again.
    async fn click(&self, css: &str) {
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

    async fn screenshot(&self, path: &Path) {
        let png = match self.command(reqwest::Method::GET, "/screenshot", None).await {
            Ok(png) => png,
            Err(e) => panic!("screenshot: {e}"),
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("PNG");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("target dir");
        std::fs::write(path, bytes).expect("screenshot written");
    }

    async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

async fn api_status(h: &Harness, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/connections/{id}/status", h.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A markup-laden connection name and contact value: the page must show them as text.
const NAME: &str = "Sales <b>&amp;</b> Newsletter";
const HOSTILE: &str = "<img src=x onerror=\"document.title='pwned'\">";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_connection_and_runs_sync_now() {
    // Check for the browser first: a missing Chromium fails here with the install command.
    let driver = ChromeDriver::start();
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 20, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 20, start_index: 10, ..Default::default() }).unwrap();
    let hostile_email = person(25).email;
    let edit = UserEdit {
        fields: [("industry".to_string(), json!(HOSTILE))].into_iter().collect(),
        email: None,
        status: None,
    };
    h.mailerlite.user_edit(&hostile_email, &edit).unwrap();
    let mut config = ConnectionConfig::new(NAME);
    config.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    let id = h.connect("c1", config).await;
    h.activate(&id).await;
    let before = api_status(&h, &id).await;
    assert_eq!(before["counts"]["links"]["complete"], 30, "{before}");
    assert_eq!(before["counts"]["errored"], 1, "{before}");

    let browser = Browser::open(&driver).await;
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(drive(&browser, &h, &id, &before))).await;
    browser.close().await;
    if outcome.is_err() {
        driver.print_log();
    }
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn drive(browser: &Browser, h: &Harness, id: &str, before: &Value) {
    let page = format!("{}/status", h.api_url);
    browser.goto(&page).await;
    // Asked for the token; a wrong one is refused and asked for again.
    browser.wait_for("#login:not([hidden]) #token").await;
    assert!(browser.visible("#token").await, "the token field is shown");
    assert!(!browser.visible("#refresh").await, "nothing else before the token");
    browser.type_into("#token", "not-the-token").await;
    browser.click("#login-submit").await;
    browser.wait_text("#login-error", "the refusal", |t| t.contains("refused")).await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#login-submit").await;

    // The connection: its name as text, its lifecycle, its counts and the last scan.
    let card = format!("article.connection[data-connection-id=\"{id}\"]");
    browser.wait_for(&card).await;
    assert!(!browser.visible("#login").await, "the login form is gone once signed in");
    assert_eq!(browser.text(&format!("{card} .name")).await.as_deref(), Some(NAME));
    assert_eq!(browser.attribute(&format!("{card} .lifecycle"), "data-lifecycle").await.as_deref(), Some("continuous"));
    assert_eq!(browser.text(&format!("{card} .lifecycle")).await.as_deref(), Some("Continuous sync"));
    for (count, expected) in [
        ("linked", "30"),
        ("hubspot-in-scope", "30"),
        ("mailerlite-in-scope", "30"),
        ("errored", "1"),
        ("excluded", "0"),
    ] {
        assert_eq!(
            browser.text(&format!("{card} [data-count=\"{count}\"]")).await.as_deref(),
            Some(expected),
            "count {count}"
        );
    }
    assert_eq!(browser.text(&format!("{card} [data-count=\"dead-letters\"]")).await.as_deref(), Some("0"));
    let run = before["last_scan"]["run_id"].as_str().unwrap();
    assert_eq!(browser.attribute(&format!("{card} .last-scan"), "data-run-id").await.as_deref(), Some(run));
    let progress = browser.text(&format!("{card} .progress")).await.unwrap_or_default();
    assert!(progress.starts_with("Initial sync finished"), "{progress}");
    assert_eq!(
        browser.attribute(&format!("{card} .webhooks-mailerlite"), "data-state").await.as_deref(),
        Some("registered"),
        "activation registered the MailerLite webhooks"
    );

    // The errored contact: who, which app and field, the value as text (no markup ran).
    let row = format!("{card} tr[data-error-key]");
    let row_text = browser.text(&row).await.expect("an error row");
    assert!(row_text.contains(&person(25).email) && row_text.contains("HubSpot"), "{row_text}");
    assert!(row_text.contains("industry_segment") && row_text.contains(HOSTILE), "{row_text}");
    let injected =
        browser.script("return document.querySelectorAll('#connections img, #connections b').length", json!([])).await;
    assert_eq!(injected, 0, "contact data became markup");
    assert_eq!(browser.script("return document.title", json!([])).await, "hmsync · status");
    assert!(
        browser.text(&format!("{card} .retry")).await.is_some()
            && browser.text(&format!("{card} .retry-all")).await.is_some()
    );

    // The token is kept for the tab: a reload shows the data without asking again.
    assert_eq!(browser.script("return sessionStorage.getItem('hmsync-admin-token')", json!([])).await, ADMIN_TOKEN);
    browser.goto(&page).await;
    browser.wait_for(&card).await;
    assert!(!browser.visible("#login").await, "the login form stays hidden");

    // Sync now: the scan is queued, the worker runs it, and the page shows the new last scan.
    browser.click(&format!("{card} button.sync-now")).await;
    browser.wait_text("#message", "the confirmation", |t| t.contains("A scan is queued")).await;
    h.settle().await;
    let after = api_status(h, id).await;
    let new_run = after["last_scan"]["run_id"].as_str().unwrap().to_string();
    assert_ne!(new_run, run, "the scan ran: {after}");
    assert_eq!(after["last_scan"]["kind"], "manual");
    browser.click("#refresh").await;
    for _ in 0..POLLS {
        if browser.attribute(&format!("{card} .last-scan"), "data-run-id").await.as_deref() == Some(new_run.as_str()) {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert_eq!(
        browser.attribute(&format!("{card} .last-scan"), "data-run-id").await.as_deref(),
        Some(new_run.as_str())
    );
    let last_scan = browser.text(&format!("{card} .last-scan")).await.unwrap();
    assert!(last_scan.contains("Sync now, finished"), "{last_scan}");

    // The safety valve: with no field clears allowed, a user clearing a city in HubSpot holds
    // the connection; the page shows why and approving lets the clear through.
    let http = reqwest::Client::new();
    let conn: Value = http
        .get(format!("{}/connections/{id}", h.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut config = conn["config"].clone();
    config["safety_valve"]["max_field_clears"] = json!(0);
    let patched = http
        .patch(format!("{}/connections/{id}", h.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"version": conn["version"], "config": config}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let cleared = person(3).email;
    let contact_id: u64 = h.hubspot.contact_by_email(&cleared).unwrap()["id"].as_str().unwrap().parse().unwrap();
    let city = [("city".to_string(), json!(""))].into_iter().collect();
    h.hubspot.user_edit_contact(contact_id, &city, 7).unwrap();
    h.settle().await;
    assert_eq!(api_status(h, id).await["pause"]["reason"], "safety_valve");
    browser.click("#refresh").await;
    let banner = browser
        .wait_text(&format!("{card} .banner.approval"), "the approval banner", |t| t.contains("safety valve"))
        .await;
    assert!(banner.contains("would clear 1 field value (limit 0)"), "{banner}");
    assert_eq!(browser.text(&format!("{card} .pause-reason")).await.as_deref(), Some("Held for approval"));

    let path = target_dir().join("status-page.png");
    browser.screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot at {}", path.display());

    browser.click(&format!("{card} button.approve")).await;
    browser.wait_text("#message", "the approval", |t| t.contains("Changes approved")).await;
    h.settle().await;
    assert_eq!(api_status(h, id).await["pause"], Value::Null);
    let subscriber = serde_json::to_value(h.mailerlite.subscriber(&cleared).unwrap()).unwrap();
    assert_eq!(subscriber["fields"]["city"], Value::Null, "the approved clear reached MailerLite: {subscriber}");
    browser.click("#refresh").await;
    for _ in 0..POLLS {
        if browser.text(&format!("{card} .banner.approval")).await.is_none() {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert_eq!(browser.text(&format!("{card} .banner.approval")).await, None, "the banner is gone once approved");
}
