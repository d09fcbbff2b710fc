//! Credentials written by several processes at once: the config API saving credentials while a
//! worker (another Lambda container, with its own 60-second cache of the secrets) refreshes the
//! HubSpot OAuth tokens. Each writer touches only its own part; a deleted connection's secrets
//! are never written back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::ApiFactory;
use hmsync_engine::adapters::{
    ApiSettings, CredentialApis, HubSpotAuth, connection_secret_names, hubspot_tokens_secret_name, load_credentials,
};
use hmsync_store::{CachedSecrets, MemorySecrets, SecretStore};
use reqwest::Method;
use serde_json::json;

/// The harness's secrets as another process sees them: through its own cache, with every call
/// that reaches the store recorded.
struct OtherProcess {
    shared: Arc<MemorySecrets>,
    calls: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl SecretStore for OtherProcess {
    async fn get_secret(&self, name: &str) -> hmsync_store::Result<Option<String>> {
        self.calls.lock().unwrap().push(format!("get {name}"));
        self.shared.get_secret(name).await
    }

    async fn put_secret(&self, name: &str, value: &str) -> hmsync_store::Result<()> {
        self.calls.lock().unwrap().push(format!("put {name}"));
        self.shared.put_secret(name, value).await
    }

    async fn update_secret(&self, name: &str, value: &str) -> hmsync_store::Result<bool> {
        self.calls.lock().unwrap().push(format!("update {name}"));
        self.shared.update_secret(name, value).await
    }

    async fn delete_secret(&self, name: &str) -> hmsync_store::Result<()> {
        self.shared.delete_secret(name).await
    }
}

/// The HubSpot OAuth install as a user clicks through it.
async fn install_hubspot_app(h: &Harness, id: &str) {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = no_redirects
        .get(format!("{}/connections/{id}/oauth/hubspot/start", h.api_url))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302, "{}", start.text().await.unwrap_or_default());
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let authorized = no_redirects.get(&authorize).send().await.unwrap();
    assert_eq!(authorized.status(), 302);
    let callback = authorized.headers()["location"].to_str().unwrap().to_string();
    let done = no_redirects.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap_or_default());
}

fn access_token(auth: Option<&HubSpotAuth>) -> String {
    match auth {
        Some(HubSpotAuth::OAuth { access_token, .. }) => access_token.clone().expect("an access token"),
        other => panic!("OAuth credentials expected, found {:?}", other.map(|_| "a token")),
    }
}

/// Waits until the worker's refresh callback reached the store (it runs in the background).
async fn wait_for_calls(calls: &Mutex<Vec<String>>, after: usize, name: &str) {
    for _ in 0..200 {
        if calls.lock().unwrap()[after..].iter().any(|c| c.ends_with(name)) {
            // The callback's write follows its read at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the refreshed tokens never reached the store: {:?}", &calls.lock().unwrap()[after..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refresh_and_saved_credentials_race_and_neither_loses_the_others_part() {
    let h = Harness::start(Options::default()).await;
    let id = "agency";
    let mut config = ConnectionConfig::new(id);
    config.mappings = vec![FieldMapping::new("firstname", "name")];
    assert_eq!(h.config_api(Method::POST, "/connections", json!({"id": id, "config": config})).await.0, 201);
    let hs = h.hubspot.config();
    let oauth = json!({
        "hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret},
        "hubspot_app_id": hs.app_id,
        "hubspot_client_secret": hs.client_secret,
        "mailerlite_api_key": h.mailerlite.config().token,
    });
    let saved = h.config_api(Method::PUT, &format!("/connections/{id}/credentials"), oauth).await;
    assert_eq!(saved.0, 200, "{}", saved.1);
    install_hubspot_app(&h, id).await;
    let installed = load_credentials(&*h.secrets, id).await.unwrap();

    // A worker in another container reads the credentials into its 60-second cache.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let worker_secrets = Arc::new(CachedSecrets::new(
        OtherProcess { shared: h.secrets.clone(), calls: calls.clone() },
        Duration::from_secs(60),
    ));
    let settings = ApiSettings {
        hubspot_base_url: h.hubspot.base_url().to_string(),
        mailerlite_base_url: h.mailerlite.base_url().to_string(),
        fast_retries: true,
        ..ApiSettings::default()
    };
    let worker = CredentialApis::new(worker_secrets.clone(), settings);
    let conn = h.store.get_connection(id).await.unwrap().unwrap();
    let client = worker.hubspot(&conn).await.unwrap();
    client.account().await.unwrap();
    load_credentials(&*worker_secrets, id).await.unwrap();

    // Meanwhile the user rotates the app's client secret and sets a MailerLite webhook secret.
    let rotation =
        json!({"hubspot_client_secret": "rotated-client-secret", "mailerlite_webhook_secret": "rotated-hook"});
    let saved = h.config_api(Method::PUT, &format!("/connections/{id}/credentials"), rotation).await;
    assert_eq!(saved.0, 200, "{}", saved.1);

    // The worker's access token expires: it refreshes and stores the new tokens.
    let before = calls.lock().unwrap().len();
    assert!(h.hubspot.expire_access_tokens() >= 1);
    client.account().await.unwrap();
    wait_for_calls(&calls, before, &hubspot_tokens_secret_name(id)).await;

    let stored = load_credentials(&*h.secrets, id).await.unwrap();
    assert_eq!(stored.hubspot_client_secret.as_deref(), Some("rotated-client-secret"), "the rotation is kept");
    assert_eq!(stored.mailerlite_webhook_secret.as_deref(), Some("rotated-hook"), "the webhook secret is kept");
    let refreshed = access_token(stored.hubspot.as_ref());
    assert_ne!(refreshed, access_token(installed.hubspot.as_ref()), "the refreshed tokens are kept");

    // Another save of the app id leaves the refreshed tokens alone.
    let saved =
        h.config_api(Method::PUT, &format!("/connections/{id}/credentials"), json!({"hubspot_app_id": 42})).await;
    assert_eq!(saved.0, 200, "{}", saved.1);
    let stored = load_credentials(&*h.secrets, id).await.unwrap();
    assert_eq!(access_token(stored.hubspot.as_ref()), refreshed);
    assert_eq!(stored.hubspot_app_id, Some(42));
    assert_eq!(stored.hubspot_client_secret.as_deref(), Some("rotated-client-secret"));

    // The connection is deleted; the worker still holds a client and refreshes once more: the
    // deleted connection's secrets are not written back.
    assert_eq!(h.config_api(Method::DELETE, &format!("/connections/{id}"), serde_json::Value::Null).await.0, 204);
    let before = calls.lock().unwrap().len();
    assert!(h.hubspot.expire_access_tokens() >= 1);
    client.account().await.unwrap();
    wait_for_calls(&calls, before, &hubspot_tokens_secret_name(id)).await;
    for name in connection_secret_names(id) {
        assert_eq!(h.secrets.get_secret(&name).await.unwrap(), None, "{name} stays deleted");
    }
    assert!(
        !calls.lock().unwrap().iter().any(|c| c.starts_with("put ")),
        "a worker never creates a secret: {:?}",
        calls.lock().unwrap()
    );
}
