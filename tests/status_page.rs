//! The status page in a real browser: headless Chromium driven over WebDriver (ChromeDriver)
//! against the harness's server after an activation. The admin token is typed in once, the
//! connection's name, counts, status and errors are shown (contact data as text, never as
//! markup), "Sync now" really runs a scan, and a screenshot lands in `target/status-page.png`.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::webdriver::{Browser, ChromeDriver, POLL_EVERY, POLLS, target_dir};
use hmsync_e2e::{ADMIN_TOKEN, Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use serde_json::{Value, json};

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
    browser.assert_accessible("the sign-in screen").await;
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
    browser.wait_for(&format!("{card} [data-chart=\"written\"] svg")).await;
    browser.assert_accessible("the status view").await;
    let text = browser.script("return document.body.innerText", json!([])).await;
    assert!(!text.as_str().unwrap().contains('⟦'), "a text is missing from the catalogue: {text}");
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
