//! The HTTP functions: API Gateway v2 events (fixtures) through `lambda_http`'s request
//! conversion and the service the functions hand to `lambda_http::run`.

mod common;

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use hmsync_api::AppState;
use hmsync_engine::adapters::{ApiSettings, Credentials, save_credentials};
use hmsync_engine::{ConnectionState, ContactRef, Lifecycle, Origin, SyncMessage};
use hmsync_runtime::http::{HttpApp, base_url};
use hmsync_store::{RoutingStore, WorkQueue};
use lambda_http::http::{StatusCode, Uri};
use serde_json::Value;
use sha2::Sha256;
use tower::ServiceExt;

use common::{Local, connection, fixture, local};
use hmsync_http::now_ms;

const API_HOST_URL: &str = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com";
const HUBSPOT_CLIENT_SECRET: &str = "hs-client-secret-for-tests";
const MAILERLITE_WEBHOOK_SECRET: &str = "ml-webhook-secret-for-tests";
const PORTAL_ID: u64 = 62515;

/// `conn-1`: active, routed from the fixture's portal, with both signing secrets stored.
async fn setup() -> Local {
    let local = local();
    let active = ConnectionState { lifecycle: Lifecycle::Continuous, portal_id: Some(PORTAL_ID), ..Default::default() };
    connection(&*local.store, "conn-1", &active).await;
    local.store.add_route(PORTAL_ID, "conn-1").await.expect("route");
    let credentials = Credentials {
        hubspot_client_secret: Some(HUBSPOT_CLIENT_SECRET.into()),
        mailerlite_webhook_secret: Some(MAILERLITE_WEBHOOK_SECRET.into()),
        ..Credentials::default()
    };
    save_credentials(&*local.secrets, "conn-1", &credentials).await.expect("credentials");
    local
}

/// The HubSpot fixture with a fresh timestamp (HubSpot's are at most 5 minutes old) and, if
/// given, a signature computed for `signed_url`.
fn hubspot_request(signed_url: Option<&str>) -> lambda_http::Request {
    let mut raw: Value = serde_json::from_str(&fixture("apigw-v2-hubspot-webhook.json")).unwrap();
    let timestamp = now_ms().to_string();
    raw["headers"]["x-hubspot-request-timestamp"] = Value::from(timestamp.clone());
    if let Some(url) = signed_url {
        let body = raw["body"].as_str().unwrap();
        let signature =
            hmsync_hubspot::webhooks::sign_v3(HUBSPOT_CLIENT_SECRET, "POST", url, body.as_bytes(), &timestamp);
        raw["headers"]["x-hubspot-signature-v3"] = Value::from(signature);
    }
    lambda_http::request::from_str(&raw.to_string()).expect("API Gateway v2 request")
}

/// The MailerLite fixture, signed with `secret` when given (else its own wrong signature).
fn mailerlite_request(secret: Option<&str>) -> lambda_http::Request {
    let mut raw: Value = serde_json::from_str(&fixture("apigw-v2-mailerlite-webhook.json")).unwrap();
    if let Some(secret) = secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(raw["body"].as_str().unwrap().as_bytes());
        raw["headers"]["signature"] = Value::from(hex::encode(mac.finalize().into_bytes()));
    }
    lambda_http::request::from_str(&raw.to_string()).expect("API Gateway v2 request")
}

async fn call(app: &HttpApp, request: lambda_http::Request) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn queued(local: &Local) -> Vec<SyncMessage> {
    let received = local.queue.receive(10, Duration::from_secs(30)).await.expect("receive");
    received.iter().map(|m| SyncMessage::from_body(&m.body).expect("a sync message")).collect()
}

#[test]
fn the_base_url_is_the_scheme_and_host_of_the_request() {
    let uri: Uri = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/webhooks/hubspot?x=1".parse().unwrap();
    assert_eq!(base_url(&uri), API_HOST_URL);
    assert_eq!(base_url(&"/webhooks/hubspot".parse().unwrap()), "");
    let request = hubspot_request(None);
    assert_eq!(base_url(request.uri()), API_HOST_URL, "lambda_http builds the URI from the Host header");
}

#[tokio::test]
async fn a_hubspot_webhook_with_a_bad_signature_is_refused_with_401_and_queues_nothing() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), None, hmsync_api::webhook_routes);

    let (status, body) = call(&app, hubspot_request(None)).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("signature does not match"), "{body}");
    assert!(queued(&local).await.is_empty());
}

#[tokio::test]
async fn a_hubspot_webhook_signed_for_the_api_url_is_queued() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), None, hmsync_api::webhook_routes);

    let (status, body) = call(&app, hubspot_request(Some(&format!("{API_HOST_URL}/webhooks/hubspot")))).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], 1);
    assert_eq!(
        queued(&local).await,
        [SyncMessage::Contacts {
            connection_id: "conn-1".into(),
            refs: vec![ContactRef::HubSpot {
                id: "101".into(),
                changes: vec![("firstname".into(), "Ada".into())],
                structural: false,
            }],
            origin: Origin::Webhook,
        }]
    );
}

#[tokio::test]
async fn a_configured_public_base_url_is_the_url_the_signature_must_cover() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), Some("https://sync.example.com".into()), hmsync_api::webhook_routes);

    let (status, body) = call(&app, hubspot_request(Some(&format!("{API_HOST_URL}/webhooks/hubspot")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = call(&app, hubspot_request(Some("https://sync.example.com/webhooks/hubspot"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_mailerlite_webhook_with_a_bad_signature_is_refused_with_401_and_queues_nothing() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), None, hmsync_api::webhook_routes);

    let (status, body) = call(&app, mailerlite_request(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = call(&app, mailerlite_request(Some("another-secret"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(queued(&local).await.is_empty());
}

#[tokio::test]
async fn a_signed_mailerlite_webhook_is_queued_for_the_connection_in_its_path() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), None, hmsync_api::webhook_routes);

    let (status, body) = call(&app, mailerlite_request(Some(MAILERLITE_WEBHOOK_SECRET))).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    // The fixture is an unsubscribe: the subscriber's change and the engagement event to record
    // on the HubSpot contact.
    let messages = queued(&local).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let SyncMessage::Contacts { connection_id, refs, origin } = &messages[0] else { panic!("{messages:?}") };
    assert_eq!((connection_id.as_str(), *origin), ("conn-1", Origin::Webhook));
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].id(), "112375610569918142");
    let SyncMessage::Engagement { connection_id, events } = &messages[1] else { panic!("{messages:?}") };
    assert_eq!(connection_id, "conn-1");
    assert_eq!(events.iter().map(|e| e.subscriber_id.as_str()).collect::<Vec<_>>(), ["112375610569918142"]);
}

#[tokio::test]
async fn the_config_api_router_serves_the_webhooks_too_and_404_elsewhere() {
    let local = setup().await;
    let app = HttpApp::new(state(&local.engine), None, hmsync_api::router);

    let (status, body) = call(&app, mailerlite_request(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let mut raw: Value = serde_json::from_str(&fixture("apigw-v2-mailerlite-webhook.json")).unwrap();
    raw["rawPath"] = Value::from("/no-such-route");
    raw["requestContext"]["http"]["path"] = Value::from("/no-such-route");
    let (status, _) = call(&app, lambda_http::request::from_str(&raw.to_string()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The webhook functions' state (no admin token; the base URL comes from each request).
fn state(engine: &std::sync::Arc<hmsync_engine::Engine>) -> AppState {
    AppState::new(engine.clone(), "", ApiSettings::default())
}
