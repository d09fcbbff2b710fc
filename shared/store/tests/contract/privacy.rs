//! The contract of parked work, tombstones, the purge of one person and the meter's expiry.

use std::collections::{BTreeMap, BTreeSet};

use hmsync_core::{ConnectionConfig, FieldBase};
use hmsync_store::{ContactError, LinkKey, Person, Store, StoredItem, Tombstone};
use serde_json::json;

use super::{DAY, fastrand_portal, history, link, problem, unique};

fn body(n: usize) -> String {
    json!({"type": "contacts", "connection_id": "c", "refs": [{"side": "hubspot", "id": n.to_string()}]}).to_string()
}

async fn all_parked(store: &dyn Store, conn: &str, page: usize) -> Vec<hmsync_store::ParkedMessage> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = store.list_parked(conn, after.as_deref(), page).await.unwrap();
        out.extend(p.items);
        match p.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub async fn parked_messages_keep_their_order_their_cap_and_are_replaced_and_removed(store: &dyn Store) {
    let (conn, other) = (unique("conn"), unique("conn"));
    for n in 0..5 {
        assert!(store.park(&conn, &body(n), 6).await.unwrap());
    }
    store.park(&other, &body(99), 6).await.unwrap();
    // The same body twice is kept twice (each was work that arrived).
    assert!(store.park(&conn, &body(0), 6).await.unwrap());
    assert!(!store.park(&conn, &body(7), 6).await.unwrap(), "full at the cap: nothing written");
    assert_eq!(store.count_parked(&conn).await.unwrap(), 6);

    let parked = all_parked(store, &conn, 4).await;
    let bodies: Vec<&str> = parked.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        [body(0), body(1), body(2), body(3), body(4), body(0)].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(parked.iter().map(|m| &m.id).collect::<BTreeSet<_>>().len(), 6, "ids are distinct");

    // Replaced in place, or removed.
    store.replace_parked(&conn, &parked[1].id, Some(&body(11))).await.unwrap();
    store.replace_parked(&conn, &parked[2].id, None).await.unwrap();
    store.remove_parked(&conn, &[parked[0].id.clone(), parked[3].id.clone(), "gone".into()]).await.unwrap();
    store.remove_parked(&conn, &[parked[3].id.clone()]).await.unwrap();
    let left: Vec<String> = all_parked(store, &conn, 10).await.into_iter().map(|m| m.body).collect();
    assert_eq!(left, [body(11), body(4), body(0)]);
    assert_eq!(store.count_parked(&conn).await.unwrap(), 3);
    assert!(store.park(&conn, &body(8), 6).await.unwrap(), "room again");
    assert_eq!(all_parked(store, &other, 10).await.len(), 1, "another connection's stay");
}

/// 5,000 messages parked over a long pause: each in its own item (no item near DynamoDB's
/// 400 KB), all listed in order and removed.
pub async fn five_thousand_parked_messages_are_kept_and_replayed(store: &dyn Store) {
    let conn = unique("conn");
    let long = |n: usize| format!("{}{}", body(n), " ".repeat(1_000));
    // One writer per connection parks them, one after the other.
    for n in 0..5_000 {
        assert!(store.park(&conn, &long(n), 10_000).await.unwrap());
    }
    assert_eq!(store.count_parked(&conn).await.unwrap(), 5_000);
    let parked = all_parked(store, &conn, 1_000).await;
    assert_eq!(parked.len(), 5_000);
    let bodies: BTreeSet<&str> = parked.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), 5_000);
    let largest = store.inventory(&conn).await.unwrap().iter().map(|i| i.text.len()).max().unwrap();
    assert!(largest < 4_000, "the largest item is {largest} bytes");
    let ids: Vec<String> = parked.iter().map(|m| m.id.clone()).collect();
    store.remove_parked(&conn, &ids).await.unwrap();
    assert_eq!(store.count_parked(&conn).await.unwrap(), 0);
    assert!(store.list_parked(&conn, None, 10).await.unwrap().items.is_empty());
}

fn tomb(digests: &[&str], reason: &str) -> Tombstone {
    Tombstone { digests: digests.iter().map(|d| d.to_string()).collect(), at_ms: 7, reason: reason.into() }
}

pub async fn tombstones_are_found_by_any_digest_merged_and_lifted(store: &dyn Store) {
    let conn = unique("conn");
    assert!(!store.has_tombstones(&conn).await.unwrap());
    store.put_tombstone(&conn, &tomb(&["e1", "h1"], "erased_by_api")).await.unwrap();
    store.put_tombstone(&unique("conn"), &tomb(&["x9"], "erased_by_api")).await.unwrap();
    assert!(store.has_tombstones(&conn).await.unwrap());
    let held = store.tombstoned(&conn, &["h1".into(), "zz".into(), "e1".into(), "x9".into()]).await.unwrap();
    assert_eq!(held.into_iter().collect::<BTreeSet<_>>(), BTreeSet::from(["e1".to_string(), "h1".to_string()]));
    assert!(store.tombstoned(&conn, &[]).await.unwrap().is_empty());

    // The same person erased again with another id: one tombstone holding all of them.
    let merged = store.put_tombstone(&conn, &tomb(&["m1", "e1"], "hubspot_privacy_deletion")).await.unwrap();
    assert_eq!(merged.digests, ["e1", "h1", "m1"]);
    assert_eq!(merged.reason, "hubspot_privacy_deletion");
    assert_eq!(store.get_tombstone(&conn, "h1").await.unwrap(), Some(merged.clone()));
    store.put_tombstone(&conn, &tomb(&["e2"], "erased_by_api")).await.unwrap();

    // Lifted by any digest: every digest of that person goes, others stay.
    assert_eq!(store.lift_tombstone(&conn, "m1").await.unwrap(), Some(merged));
    assert!(store.tombstoned(&conn, &["e1".into(), "h1".into(), "m1".into()]).await.unwrap().is_empty());
    assert_eq!(store.lift_tombstone(&conn, "m1").await.unwrap(), None);
    assert_eq!(store.tombstoned(&conn, &["e2".into()]).await.unwrap(), ["e2"]);
}

/// Whether an item names the person (by email, either record id, or the link id).
fn names(item: &StoredItem, marks: &[&str]) -> bool {
    marks.iter().any(|m| item.key.contains(m) || item.text.contains(m))
}

/// A connection with two people and everything the sync stores about them; the purge of one
/// leaves only their tombstone: every item that named them is gone, nothing else is (counters
/// may change), and no item left names them.
pub async fn a_purged_person_leaves_only_their_tombstone(store: &dyn Store) {
    let conn = unique("conn");
    let portal = fastrand_portal();
    store.create_connection(&conn, &ConnectionConfig::new("privacy")).await.unwrap();
    store.put_state(&conn, &json!({"lifecycle": "continuous"}), None).await.unwrap();
    store.add_route(portal, &conn).await.unwrap();
    store.add_counters(&conn, &[("synced", 2)]).await.unwrap();
    store.park(&conn, &body(1), 100).await.unwrap();
    let month = time_month();
    for (id, hs, ml, email) in [
        ("link-ada-x1", "hs-ada-501", "ml-ada-901", "ada.lovelace@example.com"),
        ("link-bob-x2", "hs-bob-502", "ml-bob-902", "bob.stone@example.com"),
    ] {
        let mut l = link(id, Some(hs), Some(ml), email);
        l.bases.insert(
            "contact.firstname=name".into(),
            FieldBase { hubspot: Some(format!("{id}-first")), mailerlite: None },
        );
        store.put_link(&conn, &l, None).await.unwrap();
        let mut err = ContactError::new(id, vec![problem("too long")]);
        err.email = Some(email.into());
        store.set_error(&conn, &err).await.unwrap();
        store.set_error(&conn, &ContactError::new(&format!("hubspot:{hs}"), vec![problem("refused")])).await.unwrap();
        let mut h = history(id, 1, "name");
        h.email = email.into();
        h.before = Some(format!("{id}-before"));
        store.append_history(&conn, &[h.clone(), h], DAY).await.unwrap();
        store.record_synced(&conn, &month, &[id.to_string()]).await.unwrap();
        store.put_pending_events(&conn, email, &[json!({"type": "open", "email": email})], DAY).await.unwrap();
    }
    let before = store.inventory(&conn).await.unwrap();
    let ada = ["ada.lovelace@example.com", "hs-ada-501", "ml-ada-901", "link-ada-x1"];
    let bob = ["bob.stone@example.com", "hs-bob-502", "ml-bob-902", "link-bob-x2"];
    assert!(before.iter().filter(|i| names(i, &ada)).count() >= 10, "{before:#?}");
    assert!(before.iter().any(|i| i.key.contains("ROUTE") || i.key.starts_with("routes:")), "routing is listed");

    let tombstone = tomb(&["d-email-ada", "d-hs-ada", "d-ml-ada"], "erased_by_api");
    store.put_tombstone(&conn, &tombstone).await.unwrap();
    let person = Person {
        link_ids: vec!["link-ada-x1".into()],
        keys: vec![
            LinkKey::Email("ada.lovelace@example.com".into()),
            LinkKey::HubSpot("hs-ada-501".into()),
            LinkKey::MailerLite("ml-ada-901".into()),
        ],
        error_keys: vec!["link-ada-x1".into(), "hubspot:hs-ada-501".into(), "mailerlite:ml-ada-901".into()],
        emails: vec!["ada.lovelace@example.com".into()],
    };
    let erased = store.purge_person(&conn, &person).await.unwrap();
    assert_eq!((erased.links, erased.index_entries, erased.errors), (1, 3, 2), "{erased:?}");
    assert_eq!((erased.history_entries, erased.pending_events, erased.meter_marks), (2, 1, 1), "{erased:?}");
    assert_eq!(store.purge_person(&conn, &person).await.unwrap(), hmsync_store::Erased::default(), "idempotent");

    let after = store.inventory(&conn).await.unwrap();
    let keys = |items: &[StoredItem]| items.iter().map(|i| i.key.clone()).collect::<BTreeSet<_>>();
    let (before_keys, after_keys) = (keys(&before), keys(&after));
    for item in &after {
        assert!(!names(item, &ada), "still names the person: {item:?}");
    }
    let removed: BTreeSet<&String> = before_keys.difference(&after_keys).collect();
    for item in before.iter().filter(|i| removed.contains(&i.key)) {
        assert!(names(item, &ada), "removed an item that was not the person's: {item:?}");
    }
    for item in before.iter().filter(|i| names(i, &ada)) {
        assert!(!after_keys.contains(&item.key), "kept {item:?}");
    }
    let added: Vec<&StoredItem> = after.iter().filter(|i| !before_keys.contains(&i.key)).collect();
    assert_eq!(added.len(), 3, "one tombstone item per digest: {added:#?}");
    assert!(added.iter().all(|i| i.text.contains("d-email-ada") && i.text.contains("erased_by_api")), "{added:#?}");
    // The other person is untouched.
    let bob_before: BTreeMap<&str, &str> =
        before.iter().filter(|i| names(i, &bob)).map(|i| (i.key.as_str(), i.text.as_str())).collect();
    let bob_after: BTreeMap<&str, &str> =
        after.iter().filter(|i| names(i, &bob)).map(|i| (i.key.as_str(), i.text.as_str())).collect();
    assert_eq!(bob_before, bob_after);
    assert!(store.link_by_email(&conn, "bob.stone@example.com").await.unwrap().is_some());
    assert_eq!(store.count_links(&conn).await.unwrap(), 1);
    assert_eq!(store.count_errors(&conn).await.unwrap(), 2);
    assert_eq!(store.unique_contacts(&conn, &month).await.unwrap(), 2, "the month's count stays");
    assert_eq!(store.get_tombstone(&conn, "d-hs-ada").await.unwrap().map(|t| t.digests.len()), Some(3));
}

fn time_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// A month's count and marks expire after the month and its margin: a month long gone counts
/// nothing, this month counts.
pub async fn meter_items_expire_after_their_month(store: &dyn Store) {
    let conn = unique("conn");
    store.record_synced(&conn, "2020-01", &["l1".into(), "l2".into()]).await.unwrap();
    assert_eq!(store.unique_contacts(&conn, "2020-01").await.unwrap(), 0);
    let month = time_month();
    assert_eq!(store.record_synced(&conn, &month, &["l1".into()]).await.unwrap(), 1);
    assert_eq!(store.unique_contacts(&conn, &month).await.unwrap(), 1);
    assert!(store.record_synced(&conn, "2026-13", &["l1".into()]).await.is_err(), "not a month");
}
