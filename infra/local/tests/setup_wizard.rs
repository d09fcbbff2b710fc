//! The first connection set up in the browser, as a newcomer would: `hmsync demo --setup`
//! (simulators seeded, no connection) and headless Chromium over WebDriver. The walk connects
//! both apps with the credentials the demo prints, picks a HubSpot list and a MailerLite group,
//! maps fields (an option field with its unmatched values, a read-only property, a problem shown
//! under its row before anything is saved), previews, activates, waits for the initial sync,
//! edits a contact in the HubSpot simulator and finds the change in the contact's timeline.
//! A second walk edits a mapping of an active connection through the preview, meeting a
//! concurrent change on the way. Every screen passes axe-core without a serious or critical
//! violation; the screenshots land in `docs/screenshots/` (shown in the README).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Demo;
use hmsync_e2e::webdriver::{Browser, ChromeDriver, POLL_EVERY, POLLS};
use hmsync_sandbox::common::people::person;
use serde_json::{Value, json};

const TOKEN: &str = "setup-wizard-admin-token";
/// Only there so that a broken build fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(300);

/// What `hmsync demo --setup` printed.
struct Printed {
    page: String,
    api: String,
    hubspot_url: String,
    hubspot_token: String,
    app_id: String,
    client_secret: String,
    mailerlite_key: String,
}

fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("the demo printed no {label:?}:\n{text}"))
        .trim()
}

/// Starts the setup demo and reads what it prints for the newcomer.
fn start(dir: &Path) -> (Demo, Printed) {
    let demo = Demo::start(dir, TOKEN, &["--setup", "--contacts", "150", "--time-scale", "20"], &[]);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = demo.stdout.lock().unwrap().clone();
        if out.contains("Ctrl-C stops") {
            let page = after(&out, "Page:").to_string();
            let hubspot_line = after(&out, "HubSpot (simulated portal");
            let private = after(&out, "Private app:");
            let word_after = |line: &str, label: &str| -> String {
                line.split(label).nth(1).unwrap().split_whitespace().next().unwrap().to_string()
            };
            let printed = Printed {
                api: page.trim_end_matches("/status").to_string(),
                page,
                hubspot_url: hubspot_line.rsplit(" at ").next().unwrap().to_string(),
                hubspot_token: word_after(private, "access token"),
                app_id: word_after(private, "app id"),
                client_secret: word_after(private, "client secret"),
                mailerlite_key: after(&out, "API key:").to_string(),
            };
            assert_eq!(after(&out, "Admin token:"), TOKEN);
            assert!(out.contains("No connection yet"), "{out}");
            return (demo, printed);
        }
        assert!(Instant::now() < deadline, "the setup demo did not start:\n{}", demo.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

async fn api(p: &Printed, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", p.api)).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signs in with the keyboard: the token, then Enter.
async fn sign_in(browser: &Browser, p: &Printed) {
    browser.goto(&p.page).await;
    browser.wait_for("#login #token").await;
    browser.assert_accessible("the sign-in screen").await;
    browser.type_into("#token", &format!("{TOKEN}\u{E007}")).await;
    browser.wait_for("#nav:not([hidden])").await;
}

/// The id of the checkbox or radio whose label starts with `text`.
async fn control_labelled(browser: &Browser, scope: &str, text: &str) -> String {
    let id = browser
        .script(
            "const l = [...document.querySelectorAll(arguments[0] + ' label')].find((l) => l.textContent.trim().startsWith(arguments[1]));
             return l ? l.getAttribute('for') : null;",
            json!([scope, text]),
        )
        .await;
    id.as_str().unwrap_or_else(|| panic!("no control labelled {text:?} in {scope}")).to_string()
}

async fn next_step(browser: &Browser, step: &str) {
    browser.click("form.step button.next").await;
    browser.wait_for(&format!("form.step[data-step=\"{step}\"]")).await;
    // The step's heading takes the focus, so a screen reader announces where the user is.
    assert_eq!(browser.focused().await, "h2", "the heading of {step} has the focus");
}

/// Runs `walk`, printing ChromeDriver's log and the demo's output when it fails.
async fn with_browser<F>(demo: &Demo, walk: impl FnOnce(Browser) -> F)
where
    F: std::future::Future<Output = Browser>,
{
    let driver = ChromeDriver::start();
    let browser = Browser::open(&driver).await;
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(walk(browser))).await;
    match outcome {
        Ok(browser) => browser.close().await,
        Err(panic) => {
            driver.print_log();
            eprintln!("--- hmsync demo ---\n{}", demo.output());
            std::panic::resume_unwind(panic);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_sets_up_the_first_connection_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, p) = start(dir.path());
    with_browser(&demo, |browser| async move {
        walk_the_wizard(&browser, &p).await;
        browser
    })
    .await;
}

async fn walk_the_wizard(browser: &Browser, p: &Printed) {
    let started = Instant::now();
    sign_in(browser, p).await;
    browser.wait_text("#view .empty", "no connection yet", |t| t.contains("No connections yet")).await;
    browser.assert_accessible("the empty status view").await;

    // A new connection, named and created with the keyboard (Enter in the name field).
    browser.click("#nav a[href=\"#/new\"]").await;
    browser.replace_text("#new-name", "Newsletter sync\u{E007}").await;
    browser.wait_for("form.step[data-step=\"hubspot\"]").await;

    // HubSpot: the private app's token, app id and client secret, checked live.
    browser.assert_accessible("Connect HubSpot").await;
    browser.type_into("#hubspot-token", "pat-not-a-real-token").await;
    browser.type_into("#hubspot-app-id", &p.app_id).await;
    browser.type_into("#hubspot-client-secret", &p.client_secret).await;
    browser.click("#hubspot-save").await;
    let refused = browser.wait_text("#hubspot-token-problem", "the refusal", |t| t.contains("HubSpot")).await;
    assert!(refused.contains("access token"), "the refusal says what to do: {refused}");
    assert_eq!(browser.attribute("#hubspot-token", "aria-invalid").await.as_deref(), Some("true"));
    browser.replace_text("#hubspot-token", &p.hubspot_token).await;
    browser.click("#hubspot-save").await;
    browser.wait_for("#hubspot-account.connected[data-portal-id=\"62515\"]").await;
    let account = browser.text("#hubspot-account").await.unwrap();
    assert!(account.contains("62515") && account.contains("crm.lists.read"), "{account}");
    assert!(!account.contains("lacks"), "no scope is missing: {account}");
    browser.screenshot(&screenshots().join("setup-1-hubspot.png")).await;
    next_step(browser, "mailerlite").await;

    // MailerLite: the API key, checked live, with the hint about IP addresses.
    assert!(browser.text(".ip-hint").await.unwrap().contains("allow all IP addresses"));
    browser.type_into("#mailerlite-key", &p.mailerlite_key).await;
    browser.click("#mailerlite-save").await;
    let account = browser.wait_text("#mailerlite-account", "the account", |t| t.contains("Connected")).await;
    assert!(account.contains("MailerLite sandbox") && account.contains("subscribers"), "{account}");
    browser.assert_accessible("Connect MailerLite").await;
    next_step(browser, "direction").await;

    // Direction: two-way, one sentence each; HubSpot wins conflicts.
    let sentences = browser.text("#direction").await.unwrap();
    assert!(sentences.contains("Changes in either app reach the other"), "{sentences}");
    browser.assert_accessible("Direction").await;
    next_step(browser, "rules").await;

    // Who syncs: the HubSpot list "Newsletter" and the MailerLite group "From HubSpot" (with
    // their sizes), which is also the target group.
    browser.wait_for("#hubspot-rule-lists").await;
    browser.click("#hubspot-rule-lists").await;
    let list = control_labelled(browser, "#hubspot-lists", "Newsletter").await;
    let list_label = browser.text(&format!("label[for=\"{list}\"]")).await.unwrap();
    assert!(list_label.contains("contacts"), "the list shows its size: {list_label}");
    browser.click(&format!("#{list}")).await;
    browser.click("#mailerlite-rule-groups").await;
    let group = control_labelled(browser, "#mailerlite-groups", "From HubSpot").await;
    assert!(browser.text(&format!("label[for=\"{group}\"]")).await.unwrap().contains("active"));
    browser.click(&format!("#{group}")).await;
    let group_id = group.trim_start_matches("mailerlite-groups-").to_string();
    browser.select("#target-group", &group_id).await;
    assert!(browser.text("#mailerlite-rule").await.unwrap().contains("active subscribers only"));
    browser.assert_accessible("Who syncs").await;
    browser.screenshot(&screenshots().join("setup-2-rules.png")).await;
    next_step(browser, "fields").await;

    // Fields: the obvious pairs and same-named fields are filled in.
    browser.wait_for("tr.mapping[data-property=\"firstname\"][data-field=\"name\"]").await;
    for (property, field) in [("lastname", "last_name"), ("city", "city"), ("employees", "employees")] {
        browser.wait_for(&format!("tr.mapping[data-property=\"{property}\"][data-field=\"{field}\"]")).await;
    }
    // A read-only property (HubSpot calculates lead_score): only HubSpot → MailerLite, greyed
    // with the reason.
    let lead = "tr.mapping[data-property=\"lead_score\"]";
    browser.wait_for(lead).await;
    assert_eq!(
        browser.script("return document.querySelector(arguments[0] + ' select').value", json!([lead])).await,
        "hubspot_to_mailerlite"
    );
    let disabled = browser
        .script("return [...document.querySelectorAll(arguments[0] + ' .direction option')].filter((o) => o.disabled).map((o) => o.value)", json!([lead]))
        .await;
    assert_eq!(disabled, json!(["two_way", "mailerlite_to_hubspot"]));
    assert!(browser.text(&format!("{lead} .limit")).await.unwrap().contains("Read-only in HubSpot"));

    // A problem shows under its row as the API names it, before anything is saved: a second
    // mapping into MailerLite's "name".
    add_mapping(browser, "jobtitle", "contact:jobtitle", "name", "name").await;
    let problem = browser
        .wait_text("tr.row-problems:not([hidden])", "the row's problem", |t| t.contains("written by mappings"))
        .await;
    assert!(problem.contains("\"name\""), "{problem}");
    browser.click("tr.mapping[data-property=\"jobtitle\"] button.remove").await;
    browser.wait_gone("tr.mapping[data-property=\"jobtitle\"]").await;
    browser.wait_text("#mapping-summary", "no problem left", |t| t.contains("No problems")).await;

    // An option field from the searchable lists; its values: each option and what MailerLite
    // gets, and the MailerLite values that match no option (the demo's "Aerospace").
    add_mapping(browser, "industry", "contact:industry_segment", "industry", "industry").await;
    let industry = "tr.mapping[data-property=\"industry_segment\"]";
    browser.click(&format!("{industry} button.show-values")).await;
    let unmatched = browser.wait_text(".unmatched-summary", "the unmatched values", |t| t.contains("Aerospace")).await;
    assert!(unmatched.contains("match no option") || unmatched.contains("matches no option"), "{unmatched}");
    assert!(browser.text("table.option-values").await.unwrap().contains("Retail"));
    browser.assert_accessible("Fields").await;
    browser.screenshot(&screenshots().join("setup-3-fields.png")).await;
    next_step(browser, "options").await;

    // Safety valve and engagement, with their defaults explained.
    assert_eq!(
        browser.script("return document.querySelector('#safety-max_field_clears').value", json!([])).await,
        "500"
    );
    assert!(browser.text("fieldset").await.unwrap().contains("Default 100"));
    browser.assert_accessible("Safety and engagement").await;
    next_step(browser, "preview").await;

    // Preview: counts per side and sample contacts with field-level before/after.
    browser.wait_for("#preview-result .preview-counts").await;
    let creates = browser.text("tr[data-count=\"creates\"] td[data-side=\"mailerlite\"]").await.unwrap();
    assert_ne!(creates.trim(), "0", "the preview finds HubSpot list members to create in MailerLite");
    browser.wait_for("details.sample").await;
    browser.click("details.sample summary").await;
    assert!(browser.text("details.sample").await.unwrap().contains("Before"));
    browser.assert_accessible("Preview").await;
    browser.screenshot(&screenshots().join("setup-4-preview.png")).await;

    // Activate: the status view with the initial sync, until it is done.
    browser.click("#activate").await;
    let card = "article.connection";
    browser.wait_for(card).await;
    assert!(browser.text("#message").await.unwrap_or_default().contains("Activated"));
    let wizard_seconds = started.elapsed().as_secs_f64();
    for _ in 0..POLLS * 4 {
        if browser.attribute(&format!("{card} .lifecycle"), "data-lifecycle").await.as_deref() == Some("continuous") {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert_eq!(browser.attribute(&format!("{card} .lifecycle"), "data-lifecycle").await.as_deref(), Some("continuous"));
    let id = browser.attribute(card, "data-connection-id").await.unwrap();
    let (_, status) = api(p, reqwest::Method::GET, &format!("/connections/{id}/status"), None).await;
    assert!(status["counts"]["links"]["complete"].as_u64().unwrap() > 0, "{status}");
    browser.wait_for(&format!("{card} [data-chart=\"written\"] svg")).await;
    browser.assert_accessible("the status view with charts").await;
    browser.screenshot(&screenshots().join("status.png")).await;
    eprintln!(
        "wizard walked in {wizard_seconds:.1} s (sign-in to Activate), initial sync done after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A contact edited in HubSpot shows in its timeline.
    let (email, hubspot_id) = linked_contact(p, &id).await;
    let edited = reqwest::Client::new()
        .patch(format!("{}/__sandbox/hubspot/contacts/{hubspot_id}", p.hubspot_url))
        .json(&json!({"properties": {"city": "Timbuktu"}}))
        .send()
        .await
        .unwrap();
    assert!(edited.status().is_success(), "{}", edited.text().await.unwrap());
    browser.click(&format!("{card} a.contacts")).await;
    browser.type_into("#contact-email", &email).await;
    let change = "ol.timeline li[data-field=\"city\"][data-target=\"mailerlite\"]";
    for _ in 0..POLLS {
        browser.click("#contact-search button[type=submit]").await;
        browser.wait_for("#contact-result article.contact, #contact-result .not-found").await;
        if browser.text(change).await.is_some_and(|t| t.contains("Timbuktu")) {
            break;
        }
        tokio::time::sleep(POLL_EVERY * 4).await;
    }
    let entry = browser.text(change).await.unwrap_or_default();
    assert!(entry.contains("Timbuktu") && entry.contains("changed in HubSpot"), "the timeline shows the edit: {entry}");
    let record = browser.attribute("a.open-hubspot", "href").await.unwrap();
    assert!(record.ends_with(&format!("/contacts/62515/record/0-1/{hubspot_id}")), "{record}");
    assert!(browser.text("table.contact-fields").await.unwrap().contains("Timbuktu"));
    browser.assert_accessible("the contact lookup").await;
    browser.screenshot(&screenshots().join("contact.png")).await;
}

/// Adds a mapping from the two searchable field lists.
async fn add_mapping(browser: &Browser, hs_search: &str, hs_value: &str, ml_search: &str, ml_value: &str) {
    browser.replace_text("#add-hubspot-search", hs_search).await;
    browser.select("#add-hubspot", hs_value).await;
    browser.replace_text("#add-mailerlite-search", ml_search).await;
    browser.select("#add-mailerlite", ml_value).await;
    browser.click("#add-mapping").await;
    let property = hs_value.split(':').nth(1).unwrap();
    browser.wait_for(&format!("tr.mapping[data-property=\"{property}\"][data-field=\"{ml_value}\"]")).await;
}

/// A contact the initial sync linked with a HubSpot record, found through the config API.
async fn linked_contact(p: &Printed, id: &str) -> (String, String) {
    for i in 0..150 {
        let email = person(i).email;
        let (status, contact) =
            api(p, reqwest::Method::GET, &format!("/connections/{id}/contacts/{email}"), None).await;
        if status == 200
            && contact["link"]["hs_in_scope"] == true
            && let (Some(hs), Some(_)) =
                (contact["link"]["hubspot_id"].as_str(), contact["link"]["mailerlite_id"].as_str())
        {
            return (email, hs.to_string());
        }
    }
    panic!("no linked contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_of_an_active_connection_is_edited_through_the_preview() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, p) = start(dir.path());
    // An active connection, set up through the config API.
    let config = json!({"name": "Active", "mappings": [
        {"hubspot_property": "firstname", "mailerlite_field": "name"},
        {"hubspot_property": "city", "mailerlite_field": "city"}]});
    let (status, _) =
        api(&p, reqwest::Method::POST, "/connections", Some(json!({"id": "active", "config": config}))).await;
    assert_eq!(status, 201);
    let credentials = json!({"hubspot": {"type": "token", "access_token": p.hubspot_token},
        "hubspot_app_id": p.app_id.parse::<u64>().unwrap(), "hubspot_client_secret": p.client_secret,
        "mailerlite_api_key": p.mailerlite_key});
    assert_eq!(api(&p, reqwest::Method::PUT, "/connections/active/credentials", Some(credentials)).await.0, 200);
    assert_eq!(api(&p, reqwest::Method::POST, "/connections/active/activate", None).await.0, 202);
    with_browser(&demo, |browser| async move {
        edit_through_the_preview(&browser, &p).await;
        browser
    })
    .await;
}

async fn edit_through_the_preview(browser: &Browser, p: &Printed) {
    sign_in(browser, p).await;
    let card = "article.connection[data-connection-id=\"active\"]";
    browser.click(&format!("{card} a.edit")).await;
    browser.wait_for("form.step[data-step=\"direction\"]").await;
    browser.click("nav a[href$=\"/fields\"]").await;
    let city = "tr.mapping[data-property=\"city\"]";
    browser.wait_for(city).await;
    // The edit: a cleared city in HubSpot no longer clears MailerLite's.
    browser.click(&format!("{city} td.blank input")).await;
    browser.click("nav a[href$=\"/preview\"]").await;
    browser.wait_for("#preview-result .preview-counts").await;
    assert!(browser.text("#preview-result").await.unwrap().contains("Sample contacts"));

    // Meanwhile someone renames the connection through the API: saving meets a conflict, which
    // is explained, and the edit is kept.
    let (_, conn) = api(p, reqwest::Method::GET, "/connections/active", None).await;
    let mut renamed = conn["config"].clone();
    renamed["name"] = json!("Renamed elsewhere");
    let (status, _) = api(
        p,
        reqwest::Method::PATCH,
        "/connections/active",
        Some(json!({"version": conn["version"], "config": renamed})),
    )
    .await;
    assert_eq!(status, 200);
    browser.click("#save-change").await;
    let banner = browser.wait_text(".conflict", "the conflict", |t| t.contains("Someone else changed")).await;
    assert!(banner.contains("your edits are still here"), "{banner}");
    browser.assert_accessible("a conflict on saving").await;
    browser.screenshot(&screenshots().join("edit-conflict.png")).await;
    browser.click(".conflict button.keep-mine").await;
    browser.wait_for("#preview-result .preview-counts").await;
    browser.click("#save-change").await;
    browser.wait_for(card).await;
    assert!(browser.text("#message").await.unwrap_or_default().contains("Saved"));
    let (_, saved) = api(p, reqwest::Method::GET, "/connections/active", None).await;
    assert_eq!(saved["config"]["mappings"][1]["never_overwrite_with_blank"], true, "{saved}");
    assert_eq!(saved["version"].as_u64(), conn["version"].as_u64().map(|v| v + 2), "saved over the rename: {saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_is_connected_with_the_oauth_button() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, p) = start(dir.path());
    let client = (after(&demo.stdout.lock().unwrap(), "OAuth app:").to_string(), p.client_secret.clone());
    with_browser(&demo, |browser| async move {
        sign_in(&browser, &p).await;
        browser.click("#nav a[href=\"#/new\"]").await;
        browser.replace_text("#new-name", "OAuth\u{E007}").await;
        browser.wait_for("form.step[data-step=\"hubspot\"]").await;
        browser.click("#hubspot-auth-oauth").await;
        let client_id = client.0.split("client id").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        browser.type_into("#hubspot-client-id", &client_id).await;
        browser.type_into("#hubspot-oauth-secret", &client.1).await;
        browser.type_into("#hubspot-oauth-app-id", &p.app_id).await;
        browser.assert_accessible("Connect HubSpot by OAuth").await;
        // To HubSpot's consent screen (the simulator approves at once), back to hmsync's
        // callback page, and from its link back to the setup screens.
        browser.click("#hubspot-install").await;
        let page = browser.wait_text("body", "the callback page", |t| t.contains("HubSpot is connected")).await;
        assert!(page.contains("portal 62515"), "{page}");
        browser.click("a[href*=\"/status#/setup/\"]").await;
        browser.wait_for("#hubspot-account.connected[data-portal-id=\"62515\"]").await;
        let account = browser.text("#hubspot-account").await.unwrap();
        assert!(account.contains("hmsync-sandbox.example.com") && account.contains("oauth"), "{account}");
        browser
    })
    .await;
}
