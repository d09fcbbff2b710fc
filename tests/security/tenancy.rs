//! Tenancy: what one connection does never leaks into, or hides from, another.

use hmsync_core::ConnectionConfig;
use hmsync_engine::Lifecycle;
use hmsync_engine::adapters::{Credentials, save_credentials};
use hmsync_engine::webhook::HubSpotDelivery;
use hmsync_store::{ConnectionStore, RoutingStore};
use serde_json::json;

use super::{counted, now_ms};

/// Two connections on one portal with one HubSpot app (e.g. one portal synced to two MailerLite
/// accounts): a change connection A writes comes back from the app, and it is a real change
/// for connection B. Only a connection that is the app's one user on the portal drops it as its
/// own echo.
#[tokio::test]
async fn an_app_id_echo_never_hides_one_connection_s_writes_from_another_on_the_same_portal() {
    let t = counted();
    let secret = "shared-app-secret";
    for (conn, portal) in [("a", 1000), ("b", 1000), ("alone", 2000)] {
        t.store.create_connection(conn, &ConnectionConfig::new(conn)).await.unwrap();
        t.store.add_route(portal, conn).await.unwrap();
        let credentials = Credentials {
            hubspot_client_secret: Some(secret.into()),
            hubspot_app_id: Some(77),
            ..Credentials::default()
        };
        save_credentials(&*t.secrets, conn, &credentials).await.unwrap();
        t.engine.update_state(conn, |s| s.lifecycle = Lifecycle::Continuous).await.unwrap();
    }
    let uri = "https://hmsync.example/webhooks/hubspot";
    let from_app = |portal: u64| {
        json!([{"eventId": portal, "portalId": portal, "occurredAt": 1, "subscriptionType": "contact.propertyChange",
                "objectId": 5, "propertyName": "city", "propertyValue": "Lyon",
                "changeSource": "INTEGRATION", "sourceId": "77"}])
        .to_string()
    };
    let deliver = |body: String| {
        let engine = t.engine.clone();
        async move {
            let now = now_ms().to_string();
            let signature = hmsync_hubspot::webhooks::sign_v3(secret, "POST", uri, body.as_bytes(), &now);
            engine
                .hubspot_webhook(HubSpotDelivery {
                    method: "POST",
                    uri,
                    body: body.as_bytes(),
                    signature_v3: Some(&signature),
                    timestamp: Some(&now),
                })
                .await
                .unwrap()
        }
    };
    let shared = deliver(from_app(1000)).await;
    assert_eq!((shared.connections, shared.echoes, shared.messages), (2, 0, 2), "{shared:?}");
    let alone = deliver(from_app(2000)).await;
    assert_eq!((alone.connections, alone.echoes, alone.messages), (1, 1, 0), "{alone:?}");
}

/// Through the config API, as an admin sets a connection up: the first HubSpot credentials pin
/// the connection to their portal and route its webhooks; a token or an OAuth install of another
/// portal is refused, naming both portals, and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_pinned_to_its_first_portal_and_credentials_of_another_are_refused() {
    use hmsync_e2e::{Harness, Options};
    use reqwest::Method;
    let h = Harness::start(Options::default()).await;
    let hs = h.hubspot.config();
    let portal = hs.portal_id;
    // First credentials: pinned and routed.
    let id = h.connect("first", ConnectionConfig::new("First")).await;
    assert_eq!(h.engine.state(&id).await.unwrap().0.portal_id, Some(portal));
    assert!(h.store.connections_for_portal(portal).await.unwrap().contains(&id));
    // A connection whose first credentials were for another portal (the sandbox serves one
    // portal, so the pin is set the way those credentials would have set it).
    let other = portal + 1;
    let created = h
        .config_api(Method::POST, "/connections", json!({"id": "other", "config": ConnectionConfig::new("Other")}))
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    h.engine.pin_portal("other", other).await.unwrap();
    let token = json!({"hubspot": {"type": "token", "access_token": hs.token}});
    let (status, body) = h.config_api(Method::PUT, "/connections/other/credentials", token).await;
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(text.contains(&format!("portal {portal}")) && text.contains(&format!("portal {other}")), "{text}");
    let (_, status_body) = h.config_api(Method::GET, "/connections/other/credentials", serde_json::Value::Null).await;
    assert_eq!(status_body["hubspot"], serde_json::Value::Null, "nothing was saved: {status_body}");
    assert!(!h.store.connections_for_portal(portal).await.unwrap().contains(&"other".to_string()));

    // An OAuth install in another portal than the pinned one: refused on the callback page.
    let oauth = json!({"hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret}});
    let (status, body) = h.config_api(Method::PUT, "/connections/other/credentials", oauth).await;
    assert_eq!(status, 200, "{body}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = http
        .get(format!("{}/connections/other/oauth/hubspot/start", h.api_url))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let cookies: Vec<String> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let authorized = http.get(&authorize).send().await.unwrap();
    let callback = authorized.headers()["location"].to_str().unwrap().to_string();
    let mut req = http.get(&callback);
    if !cookies.is_empty() {
        req = req.header("cookie", cookies.join("; "));
    }
    let page = req.send().await.unwrap();
    assert_eq!(page.status(), 409);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("portal {portal}")) && html.contains(&format!("portal {other}")), "{html}");
    let (_, status_body) = h.config_api(Method::GET, "/connections/other/credentials", serde_json::Value::Null).await;
    assert_eq!(status_body["hubspot"], "oauth (not connected)", "no tokens stored: {status_body}");
}
