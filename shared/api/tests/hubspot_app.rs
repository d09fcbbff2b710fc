//! The HubSpot project app in `hubspot-app/` is what users upload: it must ask for exactly the
//! scopes the config API's OAuth install asks for, and subscribe to every webhook event type the
//! webhook handler acts on (else a change would wait for the scheduled scan).

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

#[test]
fn the_app_asks_for_the_scopes_of_the_oauth_install() {
    let app = read("src/app/app-hsmeta.json");
    let auth = &app["config"]["auth"];
    // `oauth` is added to every app by HubSpot; it is not declared.
    let required: BTreeSet<String> =
        hmsync_api::REQUIRED_SCOPES.iter().filter(|s| **s != "oauth").map(|s| s.to_string()).collect();
    assert_eq!(strings(&auth["requiredScopes"]), required);
    let optional: BTreeSet<String> = hmsync_api::OPTIONAL_SCOPES.iter().map(|s| s.to_string()).collect();
    assert_eq!(strings(&auth["optionalScopes"]), optional);
    assert_eq!(app["type"], "app");
    assert_eq!(read("hsproject.json")["srcDir"], "src");
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
