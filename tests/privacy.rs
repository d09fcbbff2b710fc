//! Privacy: a HubSpot privacy deletion erases the person from the connection (only a tombstone
//! stays) and, when the connection says so, MailerLite forgets the subscriber; no scan or late
//! webhook brings them back. Erase, export and lifting an erasure through the config API.
//! Everything goes through the apps' APIs and UIs, their webhooks and the config API.

use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_e2e::{Harness, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::SeedRequest;
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use hmsync_store::StoredItem;
use reqwest::Method;
use serde_json::{Value, json};

fn config(forget: bool) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("privacy");
    c.mappings = vec![FieldMapping::new("firstname", "name"), FieldMapping::new("city", "city")];
    c.privacy.forget_in_mailerlite = forget;
    c
}

/// People 0–5 in HubSpot, 3–8 in MailerLite: 3, 4 and 5 are on both sides.
async fn synced(forget: bool) -> (Harness, String) {
    let h = Harness::start(Options::default()).await;
    h.hubspot.seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    h.mailerlite.seed(&SeedSpec { count: 6, start_index: 3, ..Default::default() }).unwrap();
    let id = h.connect("p1", config(forget)).await;
    h.activate(&id).await;
    (h, id)
}

fn hubspot_id(h: &Harness, email: &str) -> u64 {
    h.hubspot.contact_by_email(email).expect("HubSpot contact")["id"].as_str().unwrap().parse().unwrap()
}

/// Whether a stored item names the person (email or a record id).
fn names(item: &StoredItem, marks: &[String]) -> bool {
    // Whole tokens only: a short record id must not match inside a timestamp or a counter.
    let token = |c: char| c.is_alphanumeric() || "@.-_+".contains(c);
    let tokens = |t: &str| t.split(|c: char| !token(c)).map(str::to_string).collect::<Vec<_>>();
    let mut all = tokens(&item.key);
    all.extend(tokens(&item.text));
    marks.iter().any(|m| all.iter().any(|t| t == m || t.trim_matches('.') == m))
}

fn forget_set(s: &hmsync_sandbox::mailerlite::SubscriberOut) -> bool {
    s.forget_at.as_ref().is_some_and(|v| !v.is_null())
}

async fn export(h: &Harness, id: &str, email: &str) -> Value {
    let (status, body) =
        h.config_api(Method::GET, &format!("/connections/{id}/contacts/{email}/export"), Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_privacy_deletion_leaves_only_a_tombstone_and_nothing_brings_the_person_back() {
    let (h, id) = synced(true).await;
    let email = person(4).email.to_lowercase();
    let hs = hubspot_id(&h, &email);
    let ml = h.mailerlite.subscriber(&email).expect("subscriber").id;
    let marks = vec![email.clone(), hs.to_string(), ml.clone()];
    let before = h.store.inventory(&id).await.unwrap();
    assert!(before.iter().filter(|i| names(i, &marks)).count() >= 3, "linked and indexed: {before:#?}");
    let exported = export(&h, &id, &email).await;
    assert_eq!(exported["link"]["email"], json!(email));
    assert!(!exported["history"].as_array().unwrap().is_empty(), "{exported}");

    h.hubspot.user_gdpr_delete_contact(hs, 7).unwrap();
    h.settle().await;

    let after = h.store.inventory(&id).await.unwrap();
    let left: Vec<&StoredItem> = after.iter().filter(|i| names(i, &marks)).collect();
    assert!(left.is_empty(), "nothing names the person: {left:#?}");
    let before_keys: std::collections::BTreeSet<&str> = before.iter().map(|i| i.key.as_str()).collect();
    let new: Vec<&StoredItem> = after.iter().filter(|i| !before_keys.contains(i.key.as_str())).collect();
    assert!(!new.is_empty() && new.iter().any(|i| i.text.contains("hubspot_privacy_deletion")), "{new:#?}");
    // The connection asked MailerLite to forget the subscriber.
    let forgotten = h.mailerlite.subscriber(&ml);
    assert!(forgotten.as_ref().is_none_or(forget_set), "{forgotten:?}");
    let exported = export(&h, &id, &email).await;
    assert_eq!((exported["link"].clone(), exported["erased"].clone()), (Value::Null, json!(true)), "{exported}");

    // A scan and a late webhook of either app find nothing to do with them.
    h.sync_now(&id).await;
    h.settle().await;
    assert!(h.store.link_by_email(&id, &email).await.unwrap().is_none());
    assert!(h.hubspot.contact_by_email(&email).is_none(), "not created again in HubSpot");
    let still: Vec<StoredItem> =
        h.store.inventory(&id).await.unwrap().into_iter().filter(|i| names(i, &marks)).collect();
    assert!(still.is_empty(), "{still:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_by_api_purges_and_tombstones_export_tells_and_lifting_lets_a_new_sign_up_sync() {
    let (h, id) = synced(false).await;
    let email = person(3).email.to_lowercase();
    let hs = hubspot_id(&h, &email);
    let ml = h.mailerlite.subscriber(&email).expect("subscriber").id;
    let marks = vec![email.clone(), hs.to_string(), ml.clone()];

    // Bad input changes nothing.
    let path = format!("/connections/{id}/contacts/{email}");
    let (status, body) = h.config_api(Method::DELETE, &format!("{path}?forward_to_mailerlite=yes"), Value::Null).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) =
        h.config_api(Method::DELETE, &format!("/connections/{id}/contacts/not-an-email"), Value::Null).await;
    assert_eq!(status, 422);
    let (status, _) = h.config_api(Method::DELETE, &format!("/connections/nope/contacts/{email}"), Value::Null).await;
    assert_eq!(status, 404);
    assert!(h.store.link_by_email(&id, &email).await.unwrap().is_some());

    let (status, erased) = h.config_api(Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["erased"]["links"], json!(1), "{erased}");
    assert_eq!(erased["erased"]["index_entries"], json!(3), "{erased}");
    assert!(erased["erased"]["history_entries"].as_u64().unwrap() >= 1, "{erased}");
    assert_eq!(
        (erased["forgotten_in_mailerlite"].clone(), erased["deleted_in_hubspot"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(erased["tombstone_digests"], json!(3), "email and both ids");
    let left: Vec<StoredItem> =
        h.store.inventory(&id).await.unwrap().into_iter().filter(|i| names(i, &marks)).collect();
    assert!(left.is_empty(), "{left:#?}");
    // Not forwarded: both records stay in the apps.
    assert!(h.hubspot.contact_by_email(&email).is_some());
    let kept = h.mailerlite.subscriber(&email);
    assert!(kept.as_ref().is_some_and(|s| !forget_set(s)), "{kept:?}");

    // Edits on both sides and a scan: the person stays unlinked and unsynced.
    let mut props = serde_json::Map::new();
    props.insert("city".into(), json!("Erased City"));
    h.hubspot.user_edit_contact(hs, &props, 7).unwrap();
    let edit = UserEdit { fields: [("name".to_string(), json!("Late"))].into_iter().collect(), ..Default::default() };
    h.mailerlite.user_edit(&email, &edit).unwrap();
    h.settle().await;
    h.sync_now(&id).await;
    h.settle().await;
    assert!(h.store.link_by_email(&id, &email).await.unwrap().is_none());
    let subscriber = h.mailerlite.subscriber(&email).unwrap();
    assert_ne!(subscriber.fields.get("city"), Some(&json!("Erased City")), "nothing crossed over");
    assert_eq!(export(&h, &id, &email).await["erased"], json!(true));

    // The user says a new sign-up with this email is a new person: the erasure is lifted and
    // the next scan links them again.
    let lift = format!("{path}/erasure");
    let (status, body) = h.config_api(Method::DELETE, &lift, Value::Null).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = h.config_api(Method::DELETE, &lift, Value::Null).await;
    assert_eq!(status, 404, "lifted once");
    h.sync_now(&id).await;
    h.settle().await;
    assert!(h.store.link_by_email(&id, &email).await.unwrap().is_some(), "synced again");
    assert_eq!(export(&h, &id, &email).await["erased"], json!(false));
}
