//! OAuth against the sandbox: authorize → code exchange → refresh on expiry and after a 401 →
//! a revoked refresh token becomes `Unauthorized`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config_for, sim_with};
use hmsync_hubspot::{Auth, HubSpotClient, HubSpotError, TokenSet, authorize_url, exchange_code};
use hmsync_sandbox::hubspot::{HubSpotConfig as SimConfig, HubSpotSim};

const REDIRECT: &str = "http://localhost:3000/oauth/callback";

/// Follows the authorize URL like a browser would and returns the code from the redirect.
async fn authorize(sim: &HubSpotSim, scopes: &[&str]) -> String {
    let c = sim.config();
    let url = authorize_url(&sim.base_url(), &c.client_id, REDIRECT, scopes, &[], Some("csrf-1"));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let q: std::collections::HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "csrf-1");
    q["code"].clone()
}

fn oauth_client(sim: &HubSpotSim, tokens: &TokenSet, updates: Arc<Mutex<Vec<TokenSet>>>) -> HubSpotClient {
    let c = sim.config();
    HubSpotClient::new(
        Auth::OAuth {
            client_id: c.client_id,
            client_secret: c.client_secret,
            refresh_token: tokens.refresh_token.clone(),
            access_token: Some(tokens.access_token.clone()),
            expires_at_ms: Some(tokens.expires_at_ms),
            on_update: Some(Arc::new(move |t: &TokenSet| updates.lock().unwrap().push(t.clone()))),
        },
        config_for(sim),
    )
}

const SCOPES: [&str; 3] = ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"];

#[tokio::test]
async fn code_exchange_then_refresh_after_a_401_and_reporting_new_tokens() {
    let s = sim_with(SimConfig::default()).await;
    let code = authorize(&s, &SCOPES).await;
    let c = s.config();
    let tokens = exchange_code(&s.base_url(), &c.client_id, &c.client_secret, REDIRECT, &code).await.unwrap();
    assert_eq!(tokens.expires_in, 1800);
    assert_eq!(tokens.hub_id, Some(62515));
    assert!(tokens.scopes.contains(&"crm.objects.contacts.write".to_string()));
    let err = exchange_code(&s.base_url(), &c.client_id, &c.client_secret, REDIRECT, &code).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Unauthorized { .. }), "a code works once: {err:?}");

    let updates = Arc::new(Mutex::new(Vec::new()));
    let client = oauth_client(&s, &tokens, updates.clone());
    client.get_contact("1", &[]).await.unwrap_err();
    assert!(updates.lock().unwrap().is_empty(), "a fresh token is used as is");
    s.expire_access_tokens();
    let err = client.get_contact("1", &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::NotFound { .. }), "refreshed after the 401 and retried: {err:?}");
    let got = updates.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_ne!(got[0].access_token, tokens.access_token);
    assert_eq!(got[0].refresh_token, tokens.refresh_token);
    assert_eq!(s.endpoint_requests("POST /oauth/v3/token"), 3, "exchange, refused second exchange, refresh");
    let missing = client.search_lists("", &[]).await.unwrap_err();
    assert!(
        matches!(&missing, HubSpotError::MissingScopes { scopes, .. } if scopes == &["crm.lists.read"]),
        "{missing:?}"
    );
}

#[tokio::test]
async fn access_tokens_are_refreshed_before_they_expire() {
    let s = sim_with(SimConfig { access_token_ttl_secs: 1, ..Default::default() }).await;
    let code = authorize(&s, &SCOPES).await;
    let c = s.config();
    let tokens = exchange_code(&s.base_url(), &c.client_id, &c.client_secret, REDIRECT, &code).await.unwrap();
    let updates = Arc::new(Mutex::new(Vec::new()));
    let client = oauth_client(&s, &tokens, updates.clone());
    // The margin is half the 1 s lifetime: after 600 ms the client refreshes before sending.
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.account_details().await.unwrap();
    assert_eq!(updates.lock().unwrap().len(), 1);
    assert_eq!(s.stats().status_count(401), 0, "no request went out with the expiring token");
}

#[tokio::test]
async fn a_revoked_refresh_token_is_unauthorized_with_a_reconnect_hint() {
    let s = sim_with(SimConfig::default()).await;
    let code = authorize(&s, &SCOPES).await;
    let c = s.config();
    let tokens = exchange_code(&s.base_url(), &c.client_id, &c.client_secret, REDIRECT, &code).await.unwrap();
    let client = oauth_client(&s, &tokens, Arc::default());
    assert!(s.revoke_refresh_token(&tokens.refresh_token));
    client.account_details().await.unwrap();
    s.expire_access_tokens();
    let err = client.account_details().await.unwrap_err();
    let HubSpotError::Unauthorized { reason } = &err else { panic!("{err:?}") };
    assert!(reason.contains("BAD_REFRESH_TOKEN"), "{reason}");
    assert!(err.to_string().contains("Reconnect the HubSpot app"));
}

#[tokio::test]
async fn an_unknown_client_id_is_refused_on_the_authorize_page() {
    let s = sim_with(SimConfig::default()).await;
    let url = authorize_url(&s.base_url(), "someone-else", REDIRECT, &SCOPES, &[], None);
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 400);
}
