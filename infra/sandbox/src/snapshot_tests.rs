//! Snapshots end to end: a seeded and edited sandbox, snapshot → JSON → restore, and both APIs
//! answer the same; derived indexes come back identical; new writes get fresh ids.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::common::people::person;
use crate::hubspot::WebhookSettings;
use crate::mailerlite::{CampaignSpec, Recipients, SegmentRule, UserEdit};
use crate::snapshot::{SNAPSHOT_FORMAT_VERSION, SandboxSnapshot, SnapshotError};
use crate::{MembershipSeed, PeopleSeed, Sandbox, SandboxConfig, SandboxError};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Short windows so that the many requests of a test do not wait on rate limits.
fn config() -> SandboxConfig {
    SandboxConfig::default().with_time_scale(20.0)
}

fn people() -> PeopleSeed {
    PeopleSeed {
        per_side: 120,
        overlap: 0.5,
        conflict_rate: 0.2,
        hubspot_opted_out_rate: 0.1,
        mailerlite_unsubscribed_rate: 0.1,
        mailerlite_bounced_rate: 0.05,
        no_email_rate: 0.05,
        hubspot_list: Some(MembershipSeed { name: "Newsletter".into(), member_rate: 0.5 }),
        mailerlite_group: Some(MembershipSeed { name: "From HubSpot".into(), member_rate: 0.3 }),
        with_companies: true,
        seed: 7,
    }
}

/// One simulator's API, by the token a client would use.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn hubspot(s: &Sandbox) -> Self {
        Self { base: s.hubspot_url(), token: s.hubspot().config().token, http: reqwest::Client::new() }
    }

    fn mailerlite(s: &Sandbox) -> Self {
        let base = s.mailerlite_url().trim_end_matches("/api").to_string();
        Self { base, token: s.mailerlite().config().token, http: reqwest::Client::new() }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        // Links in bodies name the server's address, which differs between two sandboxes.
        let text = text.replace(&self.base, "BASE");
        let mut body = serde_json::from_str(&text).unwrap_or(Value::Null);
        strip_response_times(&mut body);
        (status, body)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }
}

/// Drops what some responses stamp per request (times, correlation ids): not state.
fn strip_response_times(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in ["startedAt", "completedAt", "requestedAt", "correlationId"] {
                o.remove(k);
            }
            o.values_mut().for_each(strip_response_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_response_times),
        _ => {}
    }
}

fn hs_id(s: &Sandbox, email: &str) -> u64 {
    s.hubspot().contact_by_email(email).unwrap()["id"].as_str().unwrap().parse().unwrap()
}

fn ml_id(s: &Sandbox, email: &str) -> String {
    s.mailerlite().subscriber(email).unwrap().id
}

/// Writes of every kind on both sides, through the APIs and as users in the apps would.
async fn edit(s: &Sandbox) {
    let hs = Api::hubspot(s);
    // HubSpot has people 0..120 (a few of them seeded without an email).
    let hs_people: Vec<String> =
        (0..120).map(|i| person(i).email).filter(|e| s.hubspot().contact_by_email(e).is_some()).take(10).collect();
    hs.ok(
        "POST",
        "/crm/v3/properties/contacts",
        Some(json!({"name":"snap_score","label":"Snap score","type":"number","fieldType":"number","groupName":"contactinformation"})),
    )
    .await;
    hs.ok(
        "POST",
        "/crm/v3/objects/contacts",
        Some(json!({"properties":{"email":"snap.new@example.com","firstname":"Snap","snap_score":"7"}})),
    )
    .await;
    let a = hs_id(s, &hs_people[0]);
    hs.ok("PATCH", &format!("/crm/v3/objects/contacts/{a}"), Some(json!({"properties":{"city":"Reykjavik"}}))).await;
    let (b, c) = (hs_id(s, &hs_people[1]), hs_id(s, &hs_people[2]));
    hs.ok(
        "POST",
        "/crm/v3/objects/contacts/merge",
        Some(json!({"primaryObjectId":b.to_string(),"objectIdToMerge":c.to_string()})),
    )
    .await;
    hs.ok("POST", &format!("/communication-preferences/v4/statuses/{}/unsubscribe-all", hs_people[3]), None).await;
    hs.ok(
        "POST",
        &format!("/communication-preferences/v4/statuses/{}", hs_people[4]),
        Some(
            json!({"subscriptionId":"39644612","statusState":"UNSUBSCRIBED","legalBasis":"LEGITIMATE_INTEREST_OTHER"}),
        ),
    )
    .await;
    let d = hs_id(s, &hs_people[5]);
    hs.ok("DELETE", &format!("/crm/v3/objects/contacts/{d}"), None).await;
    hs.ok(
        "POST",
        "/crm/v3/objects/companies",
        Some(json!({"properties":{"name":"Snapshot Inc","domain":"snap.example"}})),
    )
    .await;
    let mut opt_out = serde_json::Map::new();
    opt_out.insert("hs_email_optout".into(), json!("true"));
    s.hubspot().user_edit_contact(hs_id(s, &hs_people[6]), &opt_out, 42).unwrap();
    let list = s.hubspot().create_list("Snap list", "MANUAL", None).unwrap();
    let list_id: u64 = list["listId"].as_str().unwrap().parse().unwrap();
    s.hubspot().change_list_members(list_id, &[a, b], &[]).unwrap();

    let ml = Api::mailerlite(s);
    let group = ml.ok("POST", "/api/groups", Some(json!({"name":"Snap group"}))).await;
    let gid = group["data"]["id"].as_str().unwrap().to_string();
    ml.ok("POST", "/api/fields", Some(json!({"name":"Snap score","type":"number"}))).await;
    ml.ok(
        "POST",
        "/api/subscribers",
        Some(
            json!({"email":"snap.ml@example.com","fields":{"name":"Snap","city":"Oslo","snap_score":3},"groups":[gid]}),
        ),
    )
    .await;
    // MailerLite has people 60..180; 120.. are on MailerLite only.
    let ml_people: Vec<String> = (120..130).map(|i| person(i).email).collect();
    let e = ml_id(s, &ml_people[0]);
    ml.ok("PUT", &format!("/api/subscribers/{e}"), Some(json!({"fields":{"company":"Snapshot AS"}}))).await;
    let f = ml_id(s, &ml_people[1]);
    ml.ok("PUT", &format!("/api/subscribers/{f}"), Some(json!({"status":"unsubscribed"}))).await;
    let g = ml_id(s, &ml_people[2]);
    ml.ok("DELETE", &format!("/api/subscribers/{g}"), None).await;
    let h = ml_id(s, &ml_people[3]);
    ml.ok("POST", &format!("/api/subscribers/{h}/forget"), None).await;
    let i = ml_id(s, &ml_people[4]);
    ml.ok("POST", &format!("/api/subscribers/{i}/groups/{gid}"), None).await;
    ml.ok(
        "POST",
        "/api/webhooks",
        Some(json!({"name":"hook","url":"http://127.0.0.1:9/hook","events":["subscriber.created"],"enabled":false})),
    )
    .await;
    ml.ok(
        "POST",
        &format!("/api/groups/{gid}/import-subscribers"),
        Some(json!({"subscribers":[{"email":"imported@example.com","fields":{"name":"Imported"}},{"email":ml_people[5]}]})),
    )
    .await;
    let account = s.mailerlite();
    account.create_segment("Snap segment", SegmentRule::InGroup { group_id: gid.clone() });
    let mut fields = serde_json::Map::new();
    fields.insert("city".into(), json!("Bergen"));
    account.user_edit(&ml_people[6], &UserEdit { fields, ..Default::default() }).unwrap();
    account
        .simulate_campaign(&CampaignSpec {
            name: "Snap campaign".into(),
            recipients: Recipients { group_id: Some(gid), ..Default::default() },
            opens: Some(2),
            clicks: Some(1),
            urls: vec!["https://example.com".into()],
            ..Default::default()
        })
        .unwrap();
    // Set last so that no delivery to this dead address is attempted.
    s.hubspot().set_webhook_settings(Some(WebhookSettings::for_sync("http://127.0.0.1:9/hubspot")));
}

/// Every page of a cursor- or `after`-paged listing.
async fn pages(api: &Api, path: &str, hubspot: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match (&next, hubspot) {
            (None, _) => path.to_string(),
            (Some(n), true) => format!("{path}{sep}after={n}"),
            (Some(n), false) => format!("{path}{sep}cursor={n}"),
        };
        let page = api.ok("GET", &url, None).await;
        let (items, n) = if hubspot {
            (page["results"].clone(), page["paging"]["next"]["after"].as_str().map(String::from))
        } else {
            (page["data"].clone(), page["meta"]["next_cursor"].as_str().map(String::from))
        };
        out.extend(items.as_array().unwrap().iter().cloned());
        match n {
            Some(n) => next = Some(n),
            None => return out,
        }
    }
}

/// What the two APIs say about everything the edits touched, keyed by what was asked.
async fn view(s: &Sandbox) -> BTreeMap<String, Value> {
    let mut v = BTreeMap::new();
    let hs = Api::hubspot(s);
    let definitions = hs.ok("GET", "/crm/v3/properties/contacts", None).await;
    let names: Vec<&str> =
        definitions["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let props = names.join(",");
    for archived in [false, true] {
        let path =
            format!("/crm/v3/objects/contacts?limit=100&archived={archived}&associations=companies&properties={props}");
        v.insert(format!("hubspot contacts archived={archived}"), Value::Array(pages(&hs, &path, true).await));
    }
    v.insert("hubspot contact properties".into(), definitions.clone());
    for path in [
        "/crm/v3/properties/contacts/groups",
        "/crm/v3/properties/companies",
        "/crm/v3/objects/companies?limit=100&properties=name,domain",
        "/communication-preferences/v4/definitions",
    ] {
        v.insert(format!("hubspot {path}"), hs.ok("GET", path, None).await);
    }
    let lists = hs.ok("POST", "/crm/v3/lists/search", Some(json!({"count":100}))).await;
    for list in lists["lists"].as_array().unwrap() {
        let id = list["listId"].as_str().unwrap();
        let path = format!("/crm/v3/lists/{id}/memberships/join-order?limit=250");
        v.insert(format!("hubspot list {id} members"), Value::Array(pages(&hs, &path, true).await));
    }
    v.insert("hubspot lists".into(), lists);
    for i in 0..12 {
        let email = person(i).email;
        for path in [
            format!("/communication-preferences/v4/statuses/{email}"),
            format!("/communication-preferences/v4/statuses/{email}/unsubscribe-all"),
            format!("/crm/v3/objects/contacts/{email}?idProperty=email&properties=email,city,hs_additional_emails"),
        ] {
            v.insert(format!("hubspot {path}"), json!(hs.call("GET", &path, None).await));
        }
    }

    let ml = Api::mailerlite(s);
    let subscribers = pages(&ml, "/api/subscribers?limit=100&include=groups", false).await;
    // The campaign's recipients (the "Snap group") have activity.
    let in_snap_group = |sub: &&Value| sub["groups"].as_array().unwrap().iter().any(|g| g["name"] == "Snap group");
    let recipients: Vec<&Value> = subscribers.iter().filter(in_snap_group).collect();
    assert!(recipients.len() >= 3, "the edits put a few subscribers in the Snap group");
    for sub in recipients {
        let id = sub["id"].as_str().unwrap();
        let path = format!("/api/subscribers/{id}/activity-log");
        v.insert(format!("mailerlite {path}"), ml.ok("GET", &path, None).await);
    }
    v.insert("mailerlite subscribers".into(), Value::Array(subscribers));
    for path in [
        "/api/groups?limit=100",
        "/api/fields?limit=100",
        "/api/segments",
        "/api/webhooks",
        "/api/campaigns?filter[status]=sent",
        "/api/subscribers/import",
    ] {
        v.insert(format!("mailerlite {path}"), json!(ml.call("GET", path, None).await));
    }
    for i in 120..130 {
        let path = format!("/api/subscribers/{}", person(i).email);
        v.insert(format!("mailerlite {path}"), json!(ml.call("GET", &path, None).await));
    }
    v
}

fn assert_same(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) {
    assert_eq!(old.keys().collect::<Vec<_>>(), new.keys().collect::<Vec<_>>());
    for (k, a) in old {
        assert_eq!(a, &new[k], "{k} differs after the restore");
    }
}

async fn seeded_and_edited() -> Sandbox {
    let s = Sandbox::start(config(), any_port(), any_port()).await.unwrap();
    s.seed_people(&people()).unwrap();
    edit(&s).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_sandbox_answers_like_the_original_and_hands_out_fresh_ids() {
    let old = seeded_and_edited().await;
    // A client holding OAuth tokens (they must keep working after the restore).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let c = old.hubspot().config();
    let resp = http
        .get(format!(
            "{}/oauth/authorize?client_id={}&scope=crm.objects.contacts.read&redirect_uri=http://localhost/cb",
            old.hubspot_url(),
            c.client_id
        ))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("redirect_uri", "http://localhost/cb"),
        ("code", code.as_str()),
    ];
    let tokens: Value = http
        .post(format!("{}/oauth/v1/token", old.hubspot_url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let before = view(&old).await;
    let json = serde_json::to_vec(&old.snapshot()).unwrap();
    let snapshot = SandboxSnapshot::from_json(&json).unwrap();
    let new = Sandbox::start_restored(config(), any_port(), any_port(), snapshot.clone()).await.unwrap();
    assert_ne!(new.hubspot_url(), old.hubspot_url());
    assert_same(&before, &view(&new).await);

    // Derived indexes are rebuilt exactly as the writes maintained them.
    assert_eq!(old.hubspot().db().email_index, new.hubspot().db().email_index);
    assert_eq!(old.mailerlite().store().derived(), new.mailerlite().store().derived());
    assert_eq!(old.hubspot().config().token, new.hubspot().config().token);
    assert_eq!(old.mailerlite().config().token, new.mailerlite().config().token);

    // OAuth: the access token still works, the refresh token still refreshes.
    let (status, _) = Api {
        base: new.hubspot_url(),
        token: tokens["access_token"].as_str().unwrap().into(),
        http: reqwest::Client::new(),
    }
    .call("GET", "/crm/v3/objects/contacts?limit=1", None)
    .await;
    assert_eq!(status, 200);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let resp = http.post(format!("{}/oauth/v1/token", new.hubspot_url())).form(&refresh).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // The original keeps running and hands out ids after the snapshot; the restored one must
    // never hand out the same ids (a client may hold them) nor collide with existing records.
    let max_hs = *old.hubspot().db().contacts.keys().max().unwrap();
    let max_ml: u64 = old.mailerlite().store().subscribers.keys().copied().max().unwrap();
    let body = |email: &str| Some(json!({"properties":{"email":email}}));
    let after_old = Api::hubspot(&old).ok("POST", "/crm/v3/objects/contacts", body("after.old@example.com")).await;
    let after_new = Api::hubspot(&new).ok("POST", "/crm/v3/objects/contacts", body("after.new@example.com")).await;
    let (id_old, id_new): (u64, u64) =
        (after_old["id"].as_str().unwrap().parse().unwrap(), after_new["id"].as_str().unwrap().parse().unwrap());
    assert!(id_old > max_hs && id_new > max_hs);
    assert_ne!(id_old, id_new);
    assert_eq!(Api::hubspot(&new).call("GET", &format!("/crm/v3/objects/contacts/{id_old}"), None).await.0, 404);
    let sub = |email: &str| Some(json!({"email": email}));
    let ml_old = Api::mailerlite(&old).ok("POST", "/api/subscribers", sub("after.old@example.com")).await;
    let ml_new = Api::mailerlite(&new).ok("POST", "/api/subscribers", sub("after.new@example.com")).await;
    let (sid_old, sid_new): (u64, u64) = (
        ml_old["data"]["id"].as_str().unwrap().parse().unwrap(),
        ml_new["data"]["id"].as_str().unwrap().parse().unwrap(),
    );
    assert!(sid_old > max_ml && sid_new > max_ml);
    assert_ne!(sid_old, sid_new);
    assert_eq!(Api::mailerlite(&new).call("GET", &format!("/api/subscribers/{sid_old}"), None).await.0, 404);
    let group = Api::mailerlite(&new).ok("POST", "/api/groups", Some(json!({"name":"After"}))).await;
    assert!(group["data"]["id"].as_str().unwrap().parse::<u64>().unwrap() > sid_new);

    // Restoring is deterministic: the same snapshot hands out the same next ids.
    let again = Sandbox::start_restored(config(), any_port(), any_port(), snapshot).await.unwrap();
    let hs_again = Api::hubspot(&again).ok("POST", "/crm/v3/objects/contacts", body("after.new@example.com")).await;
    assert_eq!(hs_again["id"], after_new["id"]);
    let ml_again = Api::mailerlite(&again).ok("POST", "/api/subscribers", sub("after.new@example.com")).await;
    assert_eq!(ml_again["data"]["id"], ml_new["data"]["id"]);
}

#[tokio::test]
async fn snapshot_files_are_replaced_atomically_and_other_versions_are_refused() {
    let s = Sandbox::start(config(), any_port(), any_port()).await.unwrap();
    s.seed_people(&PeopleSeed { per_side: 20, ..PeopleSeed::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox.json");
    s.save_snapshot(&path).unwrap();
    s.hubspot()
        .user_create_contact(&serde_json::Map::from_iter([("email".into(), json!("x@example.com"))]), 1)
        .unwrap();
    s.save_snapshot(&path).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["sandbox.json".to_string()], "no temporary file is left behind");
    let loaded = Sandbox::load_snapshot(&path).unwrap();
    assert_eq!(loaded.format_version, SNAPSHOT_FORMAT_VERSION);
    assert_eq!(loaded.hubspot.db.contacts.len(), 21);
    assert_eq!(loaded.mailerlite.subscriber_count(), 20);

    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["format_version"] = json!(SNAPSHOT_FORMAT_VERSION + 1);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = Sandbox::load_snapshot(&path).unwrap_err();
    assert!(matches!(err, SnapshotError::Version { found: Some(v), .. } if v == SNAPSHOT_FORMAT_VERSION + 1));
    let message = err.to_string();
    assert!(message.contains("sandbox.json") && message.contains("format version"), "{message}");
    doc.as_object_mut().unwrap().remove("format_version");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    assert!(matches!(Sandbox::load_snapshot(&path), Err(SnapshotError::Version { found: None, .. })));
    std::fs::write(&path, b"{\"format_version\":1,").unwrap();
    assert!(matches!(Sandbox::load_snapshot(&path), Err(SnapshotError::Format { .. })));

    let mut snapshot = s.snapshot();
    snapshot.format_version += 1;
    let refused = Sandbox::start_restored(config(), any_port(), any_port(), snapshot).await;
    assert!(matches!(refused, Err(SandboxError::Snapshot(SnapshotError::Version { .. }))));
}

#[tokio::test]
async fn the_generation_changes_with_writes_and_not_with_reads() {
    let s = Sandbox::start(config(), any_port(), any_port()).await.unwrap();
    s.seed_people(&PeopleSeed { per_side: 20, ..PeopleSeed::default() }).unwrap();
    let g0 = s.generation();
    let hs = Api::hubspot(&s);
    let ml = Api::mailerlite(&s);
    hs.ok("GET", "/crm/v3/objects/contacts?limit=5", None).await;
    hs.ok("GET", "/crm/v3/properties/contacts", None).await;
    ml.ok("GET", "/api/subscribers?limit=5", None).await;
    ml.ok("GET", "/api/groups", None).await;
    let _ = s.snapshot();
    assert_eq!(s.generation(), g0, "reads and snapshots change nothing");
    hs.ok("POST", "/crm/v3/objects/contacts", Some(json!({"properties":{"email":"gen@example.com"}}))).await;
    let g1 = s.generation();
    assert_ne!(g1, g0);
    ml.ok("POST", "/api/subscribers", Some(json!({"email":"gen@example.com"}))).await;
    let g2 = s.generation();
    assert_ne!(g2, g1);
    s.hubspot().set_webhook_settings(Some(WebhookSettings::for_sync("http://127.0.0.1:9/x")));
    assert_ne!(s.generation(), g2);

    // The demo keeps its own data with the state.
    let mut snapshot = s.snapshot();
    snapshot.attachments.insert("demo".into(), json!({"contacts": 20}));
    let back = SandboxSnapshot::from_json(&serde_json::to_vec(&snapshot).unwrap()).unwrap();
    assert_eq!(back.attachment::<Value>("demo"), Some(json!({"contacts": 20})));
    assert_eq!(back.attachment::<Value>("other"), None);
}
