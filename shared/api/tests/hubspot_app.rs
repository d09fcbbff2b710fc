//! The HubSpot project app in `hubspot-app/` is what users upload: it must ask for the scopes
//! the sync uses in the form HubSpot's developer platform accepts for its kind of auth, and
//! subscribe to every webhook event type the webhook handler acts on (else a change would wait
//! for the scheduled scan).

use std::collections::BTreeSet;
use std::path::PathBuf;

use hmsync_hubspot::webhooks::SubscriptionType;
use serde_json::Value;

fn read(path: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../hubspot-app").join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().expect("an array").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// The static-auth app (one portal): HubSpot's developer platform lets a static-auth app declare
/// required scopes only ("Apps configured with static auth can only define required scopes"),
/// so the scope that turns a MailerLite unsubscribe into a HubSpot opt-out is required: consent
/// crosses every link, and without it every unsubscribe would stay a per-contact error.
#[test]
fn the_static_app_declares_every_scope_as_required() {
    let app = read("src/app/app-hsmeta.json");
    let auth = &app["config"]["auth"];
    assert_eq!(auth["type"], "static");
    // `oauth` is added to every app by HubSpot; a static app does not declare it.
    let mut required: BTreeSet<String> =
        hmsync_api::REQUIRED_SCOPES.iter().filter(|s| **s != "oauth").map(|s| s.to_string()).collect();
    required.extend(set(&hmsync_api::OPTIONAL_SCOPES));
    assert_eq!(strings(&auth["requiredScopes"]), required);
    for kind in ["optionalScopes", "conditionallyRequiredScopes"] {
        assert!(auth[kind].as_array().is_none_or(|a| a.is_empty()), "a static-auth app cannot declare {kind}");
    }
    assert_eq!(app["type"], "app");
    assert_eq!(read("hsproject.json")["srcDir"], "src");
}

/// The OAuth variant (several portals) asks for exactly what the config API's install asks
/// for: `oauth` among the required scopes, as HubSpot's project templates list it, and the
/// opt-out scope as optional (a portal without the tool can still install).
#[test]
fn the_oauth_variant_asks_for_the_scopes_of_the_oauth_install() {
    let app = read("oauth/app-hsmeta.json");
    let auth = &app["config"]["auth"];
    assert_eq!(auth["type"], "oauth");
    assert_eq!(strings(&auth["requiredScopes"]), set(&hmsync_api::REQUIRED_SCOPES));
    assert!(strings(&auth["requiredScopes"]).contains("oauth"));
    assert_eq!(strings(&auth["optionalScopes"]), set(&hmsync_api::OPTIONAL_SCOPES));
    assert_eq!(app["uid"], read("src/app/app-hsmeta.json")["uid"], "the same app, built the other way");
}

#[test]
fn the_app_subscribes_to_every_event_the_webhook_handler_uses() {
    let hooks = read("src/app/webhooks/webhooks-hsmeta.json");
    assert_eq!(hooks["type"], "webhooks");
    let subscriptions = &hooks["config"]["subscriptions"];
    let mut subscribed = BTreeSet::new();
    let mut properties = BTreeSet::new();
    for group in ["legacyCrmObjects", "hubEvents"] {
        for s in subscriptions[group].as_array().into_iter().flatten() {
            assert_eq!(s["active"], true, "{s}");
            let kind = s["subscriptionType"].as_str().unwrap().to_string();
            if let Some(p) = s["propertyName"].as_str() {
                properties.insert(format!("{kind}:{p}"));
            }
            subscribed.insert(kind);
        }
    }
    let handled = [
        SubscriptionType::ContactCreation,
        SubscriptionType::ContactDeletion,
        SubscriptionType::ContactPropertyChange,
        SubscriptionType::ContactMerge,
        SubscriptionType::ContactRestore,
        SubscriptionType::ContactPrivacyDeletion,
        SubscriptionType::CompanyPropertyChange,
    ];
    for kind in handled {
        assert!(subscribed.contains(kind.as_str()), "{} is not subscribed", kind.as_str());
    }
    // The link key and the opt-out must always reach hmsync at once.
    for p in ["contact.propertyChange:email", "contact.propertyChange:hs_email_optout"] {
        assert!(properties.contains(p), "{p} is not subscribed");
    }
}
