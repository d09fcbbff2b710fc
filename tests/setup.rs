//! The config API's setup routes over real HTTP against both simulators: the accounts behind the
//! credentials (HubSpot portal and scopes, MailerLite account), HubSpot lists with sizes,
//! MailerLite groups and segments (and a new target group), the suggested mappings, the option
//! values with the MailerLite values that match no option, the activity per hour, the dead
//! letters, and one contact with links into both apps.

use hmsync_e2e::{ADMIN_TOKEN, Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, SegmentRule, UserEdit};
use reqwest::Method;
use serde_json::{Value, json};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(h: &Harness) -> Self {
        Self { http: reqwest::Client::new(), base: h.api_url.clone() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>, expected: u16) -> Value {
        let (status, json) = self.call(method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {json}");
        json
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None, 200).await
    }
}

fn names<'a>(items: &'a Value, key: &str) -> Vec<&'a str> {
    items[key].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_screens_read_accounts_lists_groups_segments_and_fields_live() {
    let h = Harness::start(Options::default()).await;
    let api = Api::new(&h);
    h.hubspot.seed(&SeedRequest { count: 12, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 10, start_index: 5, ..Default::default() }).unwrap();
    let hs = h.hubspot.config();
    api.ok(Method::POST, "/connections", Some(json!({"id": "c1", "config": {"name": "Setup"}})), 201).await;

    // Nothing stored yet: no account to show, and the apps are not asked.
    assert_eq!(api.get("/connections/c1/accounts").await, json!({"hubspot": null, "mailerlite": null}));
    for path in
        ["/connections/c1/hubspot/lists", "/connections/c1/mailerlite/groups", "/connections/c1/mailerlite/segments"]
    {
        let refused = api.ok(Method::GET, path, None, 409).await;
        assert!(refused["action"].as_str().unwrap().contains("credentials"), "{refused}");
    }

    // HubSpot's private-app token: the portal and every scope the sync needs.
    let token = json!({"hubspot": {"type": "token", "access_token": hs.token}, "hubspot_app_id": hs.app_id,
                       "hubspot_client_secret": hs.client_secret});
    api.ok(Method::PUT, "/connections/c1/credentials", Some(token), 200).await;
    let accounts = api.get("/connections/c1/accounts").await;
    assert_eq!(accounts["hubspot"]["portal_id"], hs.portal_id, "{accounts}");
    assert_eq!(accounts["hubspot"]["missing_scopes"], json!([]), "{accounts}");
    assert_eq!(accounts["hubspot"]["missing_optional_scopes"], json!([]), "{accounts}");
    assert!(accounts["hubspot"]["scopes"].as_array().unwrap().contains(&json!("crm.lists.read")));
    assert_eq!(accounts["mailerlite"], Value::Null, "{accounts}");

    // An OAuth install (through the sandbox's authorize page and our callback): the portal's
    // domain and the scopes granted, from HubSpot's token introspection.
    api.ok(Method::POST, "/connections", Some(json!({"id": "c2", "config": {"name": "OAuth"}})), 201).await;
    let oauth = json!({"hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret}});
    api.ok(Method::PUT, "/connections/c2/credentials", Some(oauth), 200).await;
    assert_eq!(api.get("/connections/c2/accounts").await["hubspot"], Value::Null, "not installed yet");
    // A page that calls the API with the token asks for the URL and navigates itself; the
    // callback's page leads back to the setup screens.
    let start = api.get("/connections/c2/oauth/hubspot/start?redirect=false").await;
    let authorize = start["authorize_url"].as_str().unwrap();
    let page = api.http.get(authorize).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("HubSpot is connected"), "{page}");
    assert!(page.contains(&format!("href=\"{}/status#/setup/c2/hubspot\"", api.base)), "{page}");
    api.ok(Method::GET, "/connections/c2/oauth/hubspot/start?redirect=maybe", None, 422).await;
    let accounts = api.get("/connections/c2/accounts").await;
    assert_eq!(accounts["hubspot"]["portal_id"], hs.portal_id, "{accounts}");
    assert_eq!(accounts["hubspot"]["domain"], "hmsync-sandbox.example.com", "{accounts}");
    assert_eq!(accounts["hubspot"]["missing_scopes"], json!([]), "{accounts}");
    assert!(accounts["hubspot"]["scopes"].as_array().unwrap().contains(&json!("oauth")), "{accounts}");

    // Lists with their sizes, by name.
    let list = h.hubspot.create_list("Newsletter", "MANUAL", None).unwrap();
    let list_id: u64 = list["listId"].as_str().map(|s| s.parse().unwrap()).or(list["listId"].as_u64()).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|i| h.hubspot.contact_by_email(&person(i).email).unwrap()["id"].as_str().unwrap().parse().unwrap())
        .collect();
    h.hubspot.change_list_members(list_id, &ids, &[]).unwrap();
    h.hubspot.create_list("Customers", "MANUAL", None).unwrap();
    let lists = api.get("/connections/c1/hubspot/lists").await;
    assert_eq!(names(&lists, "lists"), ["Customers", "Newsletter"], "{lists}");
    let newsletter = &lists["lists"][1];
    assert_eq!((newsletter["id"].as_str(), newsletter["size"].as_u64()), (Some(list_id.to_string().as_str()), Some(3)));
    assert_eq!(newsletter["processing_type"], "MANUAL");

    // MailerLite's key: the account's name and its subscribers.
    api.ok(
        Method::PUT,
        "/connections/c1/credentials",
        Some(json!({"mailerlite_api_key": h.mailerlite.config().token})),
        200,
    )
    .await;
    let accounts = api.get("/connections/c1/accounts").await;
    assert_eq!(accounts["mailerlite"], json!({"name": "MailerLite sandbox", "subscribers": 10}), "{accounts}");

    // Groups with their counts; a new target group; segments with their active members.
    let members = h.mailerlite.create_group("Members");
    h.mailerlite
        .seed(&SeedSpec { count: 2, start_index: 40, group_ids: vec![members.clone()], ..Default::default() })
        .unwrap();
    let created =
        api.ok(Method::POST, "/connections/c1/mailerlite/groups", Some(json!({"name": "  From HubSpot "})), 201).await;
    assert_eq!((created["name"].as_str(), created["total"].as_u64()), (Some("From HubSpot"), Some(0)), "{created}");
    let groups = api.get("/connections/c1/mailerlite/groups").await;
    assert_eq!(names(&groups, "groups"), ["From HubSpot", "Members"], "{groups}");
    assert_eq!((groups["groups"][1]["active"].as_u64(), groups["groups"][1]["total"].as_u64()), (Some(2), Some(2)));
    for bad in [json!({"name": "  "}), json!({"name": "x".repeat(256)})] {
        let refused = api.ok(Method::POST, "/connections/c1/mailerlite/groups", Some(bad), 422).await;
        assert_eq!(refused["problems"][0]["field"], "name", "{refused}");
    }
    h.mailerlite.create_segment("In Members", SegmentRule::InGroup { group_id: members.clone() });
    let segments = api.get("/connections/c1/mailerlite/segments").await;
    assert_eq!(names(&segments, "segments"), ["In Members"], "{segments}");
    assert_eq!(segments["segments"][0]["active"], 2, "{segments}");

    // Option values need the fields read first.
    let industry = json!({"mapping": {"hubspot_property": "industry_segment", "mailerlite_field": "industry"}});
    let early = api.ok(Method::POST, "/connections/c1/fields/options", Some(industry.clone()), 409).await;
    assert!(early["action"].as_str().unwrap().contains("fields/refresh"), "{early}");

    // The fields, with the mappings a new connection starts with.
    let fields = api.ok(Method::POST, "/connections/c1/fields/refresh", None, 200).await;
    let suggested: Vec<(&str, &str, &str)> = fields["suggested_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["hubspot_property"].as_str().unwrap(),
                m["mailerlite_field"].as_str().unwrap(),
                m["direction"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("firstname", "name", "two_way"),
        ("lastname", "last_name", "two_way"),
        ("company", "company", "two_way"),
        ("city", "city", "two_way"),
        ("phone", "phone", "two_way"),
        ("employees", "employees", "two_way"),
        ("interests", "interests", "two_way"),
        ("signup_date", "signup_date", "two_way"),
    ] {
        assert!(suggested.contains(&expected), "{expected:?} not in {suggested:?}");
    }
    assert!(!suggested.iter().any(|(p, _, _)| *p == "email"), "{suggested:?}");
    assert_eq!(api.get("/connections/c1/fields").await["suggested_mappings"], fields["suggested_mappings"]);

    // A config is checked against the fields read, without saving it or asking the apps.
    let conn = api.get("/connections/c1").await;
    h.hubspot.instrumentation().stats.reset();
    let config = json!({"name": "Setup", "mappings": [
        {"hubspot_property": "firstname", "mailerlite_field": "nmae"},
        {"hubspot_property": "lead_score", "mailerlite_field": "employees", "direction": "two_way"}]});
    let checked = api.ok(Method::POST, "/connections/c1/config/check", Some(json!({"config": config})), 422).await;
    let fields_named: Vec<&str> =
        checked["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields_named, ["config.mappings[0].mailerlite_field", "config.mappings[1].direction"], "{checked}");
    let fine = json!({"config": {"name": "Setup", "mappings": fields["suggested_mappings"]}});
    let fine = api.ok(Method::POST, "/connections/c1/config/check", Some(fine), 200).await;
    assert_eq!((fine["problems"].clone(), fine["schemas_loaded"].clone()), (json!([]), json!(true)));
    assert_eq!(api.get("/connections/c1").await["version"], conn["version"], "nothing saved");
    assert_eq!(h.hubspot.stats().total_requests, 0, "no app asked");

    // An option property: each option and what MailerLite gets, and the values MailerLite holds
    // that match no option.
    let odd = person(7).email;
    let edit =
        UserEdit { fields: [("industry".to_string(), json!("Aerospace"))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&odd, &edit).unwrap();
    let options = api.ok(Method::POST, "/connections/c1/fields/options", Some(industry), 200).await;
    assert!(!options["options"].as_array().unwrap().is_empty(), "{options}");
    for o in options["options"].as_array().unwrap() {
        assert_eq!(o["mailerlite_value"], o["label"], "HubSpot's labels go to MailerLite: {o}");
    }
    assert_eq!(options["unmatched"], json!(["Aerospace"]), "{options}");
    let aerospace =
        options["mailerlite_values"].as_array().unwrap().iter().find(|v| v["value"] == "Aerospace").unwrap();
    assert_eq!((aerospace["subscribers"].as_u64(), &aerospace["hubspot_value"]), (Some(1), &Value::Null));
    // One-way from HubSpot: MailerLite's values cannot reach the property, and are not read.
    let one_way = json!({"mapping": {"hubspot_property": "industry_segment", "mailerlite_field": "industry",
                                      "direction": "hubspot_to_mailerlite"}});
    let options = api.ok(Method::POST, "/connections/c1/fields/options", Some(one_way), 200).await;
    assert_eq!((options["mailerlite_values"].clone(), options["unmatched"].clone()), (json!([]), json!([])));
    // Not an option property, or nothing of that name: 422 naming the field.
    for (mapping, field) in [
        (json!({"hubspot_property": "firstname", "mailerlite_field": "name"}), "mapping.hubspot_property"),
        (json!({"hubspot_property": "no_such", "mailerlite_field": "industry"}), "mapping.hubspot_property"),
        (json!({"hubspot_property": "industry_segment", "mailerlite_field": "no_such"}), "mapping.mailerlite_field"),
    ] {
        let refused =
            api.ok(Method::POST, "/connections/c1/fields/options", Some(json!({"mapping": mapping})), 422).await;
        assert_eq!(refused["problems"][0]["field"], field, "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_dead_letters_and_a_contact_with_links_into_both_apps() {
    let h = Harness::start(Options::default()).await;
    let api = Api::new(&h);
    h.hubspot.seed(&SeedRequest { count: 5, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 5, start_index: 3, ..Default::default() }).unwrap();
    let mut config = hmsync_core::ConnectionConfig::new("Links");
    config.mappings =
        vec![hmsync_core::FieldMapping::new("firstname", "name"), hmsync_core::FieldMapping::new("city", "city")];
    config.engagement.enabled = false;
    let id = h.connect("c1", config).await;
    h.activate(&id).await;

    let activity = api.get("/connections/c1/activity").await;
    let hours = activity["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 48, "48 hours by default");
    let sum = |key: &str| hours.iter().map(|h| h[key].as_u64().unwrap()).sum::<u64>();
    // People 0..5 in HubSpot, 3..8 in MailerLite: 3 created on each side.
    assert_eq!((sum("written_hubspot"), sum("written_mailerlite")), (3, 3), "{activity}");
    assert!(activity["limits"]["hubspot_per_hour"].as_u64().unwrap() > 0);
    assert_eq!(api.get("/connections/c1/activity?hours=3").await["hours"].as_array().unwrap().len(), 3);
    for bad in ["0", "337", "x"] {
        let refused = api.ok(Method::GET, &format!("/connections/c1/activity?hours={bad}"), None, 422).await;
        assert_eq!(refused["problems"][0]["field"], "hours");
    }
    assert_eq!(api.get("/connections/c1/dead-letters").await, json!({"dead_letters": []}));

    let email = person(4).email;
    let contact = api.get(&format!("/connections/c1/contacts/{}", email.to_uppercase())).await;
    let link = &contact["link"];
    let portal = h.hubspot.config().portal_id;
    assert_eq!(
        contact["hubspot_url"],
        format!("{}/contacts/{portal}/record/0-1/{}", h.hubspot.base_url(), link["hubspot_id"].as_str().unwrap())
    );
    assert_eq!(
        contact["mailerlite_url"],
        format!("https://dashboard.mailerlite.com/subscribers/{}", link["mailerlite_id"].as_str().unwrap())
    );
    let fields = contact["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0]["hubspot_property"], "firstname");
    assert_eq!(fields[0]["hubspot"], person(4).first_name, "{contact}");
    assert_eq!(fields[0]["mailerlite"], person(4).first_name, "{contact}");
    assert!(link["hs_in_scope"] == true && link["ml_in_scope"] == true, "{contact}");
}
