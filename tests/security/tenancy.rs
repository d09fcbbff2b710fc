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
