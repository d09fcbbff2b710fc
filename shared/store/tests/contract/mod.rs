//! The contract of the ports, written once and run against every adapter (`tests/sqlite.rs`,
//! `tests/aws.rs`): what the engine may rely on, whichever backend it runs on.

#![allow(dead_code)] // Each test crate uses the part of the suite it instantiates.

mod hourly;
mod privacy;

pub use hourly::*;
pub use privacy::*;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use hmsync_core::{
    ConnectionConfig, Direction, FieldBase, FieldMapping, FieldSchemas, HsProperty, HsType, Link, MailerLiteRule,
    MlField, MlStatus, MlType, Side,
};
use hmsync_store::{
    ContactError, ContactProblem, HistoryEntry, LinkKey, QueueMessage, ReceivedMessage, SecretStore, Store, StoreError,
    WorkQueue,
};
use serde_json::json;

/// Lists every store contract test, for `store_contract!`.
#[macro_export]
macro_rules! store_contract {
    ($fixture:path) => {
        $crate::store_contract!(@each $fixture;
            connections_round_trip_and_are_listed,
            connection_updates_are_optimistic,
            delete_connection_removes_everything,
            links_are_found_by_both_ids_and_email,
            a_changed_email_moves_the_email_index,
            two_writers_of_one_link_version_conflict,
            an_index_conflict_writes_nothing,
            links_are_found_in_batches,
            links_are_listed_in_pages_and_counted,
            deleting_a_link_frees_its_keys,
            state_is_versioned,
            concurrent_counter_increments_are_all_counted,
            counters_are_added_and_set_in_one_write,
            errors_are_set_cleared_paged_and_counted,
            history_is_read_newest_first_and_expires,
            hourly_counters_add_up_per_hour_are_read_in_range_and_expire,
            meter_counts_each_link_once_per_month,
            routes_map_portals_to_connections,
            events_are_seen_once,
            pending_events_are_taken_once,
            parked_messages_keep_their_order_their_cap_and_are_replaced_and_removed,
            five_thousand_parked_messages_are_kept_and_replayed,
            tombstones_are_found_by_any_digest_merged_and_lifted,
            a_purged_person_leaves_only_their_tombstone,
            meter_items_expire_after_their_month,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture().await;
                $crate::contract::$name(&*fixture.subject).await;
            }
        )*
    };
}

/// Lists every queue contract test, for `queue_contract!`. The fixture's queue moves a
/// message to the dead letters after `QUEUE_MAX_RECEIVES` receives.
#[macro_export]
macro_rules! queue_contract {
    ($fixture:path) => {
        $crate::queue_contract!(@each $fixture;
            queue_keeps_order_within_each_group,
            queue_blocks_a_group_while_a_message_is_in_flight,
            queue_drops_duplicates_by_dedup_id,
            queue_redelivers_after_the_visibility_timeout,
            queue_retry_later_delays_redelivery,
            queue_dead_letters_after_max_receives_and_requeues,
            queue_release_gives_an_untried_message_back_at_once,
            queue_receive_heads_gives_the_first_message_of_each_group,
            queue_dead_letter_sets_a_message_aside_with_its_last_error,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture().await;
                $crate::contract::$name(&*fixture.subject).await;
            }
        )*
    };
}

/// Lists every secret store contract test, for `secrets_contract!`.
#[macro_export]
macro_rules! secrets_contract {
    ($fixture:path) => {
        $crate::secrets_contract!(@each $fixture;
            secrets_are_put_overwritten_and_deleted,
            cached_secrets_read_the_store_once_per_ttl,
            a_secret_is_updated_only_while_it_exists,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture().await;
                $crate::contract::$name(fixture.subject).await;
            }
        )*
    };
}

/// What a fixture hands to a contract test, plus what must live as long (a temp dir).
pub struct Fixture<T: ?Sized> {
    pub subject: Box<T>,
    pub keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl<T: ?Sized> Fixture<T> {
    pub fn new(subject: Box<T>) -> Self {
        Self { subject, keep: Vec::new() }
    }

    pub fn keeping(mut self, value: impl std::any::Any + Send + Sync) -> Self {
        self.keep.push(Box::new(value));
        self
    }
}

pub const QUEUE_MAX_RECEIVES: u32 = 2;
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

pub fn link(id: &str, hubspot_id: Option<&str>, mailerlite_id: Option<&str>, email: &str) -> Link {
    let mut link = Link::new(id, email);
    link.hubspot_id = hubspot_id.map(str::to_string);
    link.mailerlite_id = mailerlite_id.map(str::to_string);
    link
}

fn rich_config() -> ConnectionConfig {
    let mut config = ConnectionConfig::new("Sales ↔ Newsletter");
    config.direction = Direction::TwoWay;
    config.mailerlite_rule = MailerLiteRule::Groups { group_ids: vec!["111".into(), "222".into()] };
    config.target_group = Some("111".into());
    config.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("industry", "company").company(),
        FieldMapping::new("lifecyclestage", "stage").with_direction(Direction::HubSpotToMailerLite),
    ];
    config.conflict_winner = Side::MailerLite;
    config.engagement.legal_basis = Some("LEGITIMATE_INTEREST_CLIENT".into());
    config
}

fn rich_link(id: &str) -> Link {
    let mut l = link(id, Some("501"), Some("9001"), "ada@example.com");
    l.hs_in_scope = true;
    l.ml_status = Some(MlStatus::Unsubscribed);
    l.hs_last_modified = Some("2026-11-20T10:00:00.000Z".into());
    l.ml_updated_at = Some("2026-11-20 10:00:01".into());
    l.bases.insert("contact.firstname=name".into(), FieldBase { hubspot: Some("Ada".into()), mailerlite: None });
    l.bases.insert("contact.industry=company".into(), FieldBase::default());
    l
}

pub(crate) fn problem(message: &str) -> ContactProblem {
    ContactProblem {
        side: Side::MailerLite,
        field: Some("company".into()),
        message: message.into(),
        action: "Shorten the value in HubSpot".into(),
        api_message: Some("The company may not be greater than 255 characters.".into()),
        refused: BTreeMap::from([("company".into(), "x".repeat(300))]),
    }
}

pub(crate) fn history(link_id: &str, at_ms: u64, field: &str) -> HistoryEntry {
    HistoryEntry {
        link_id: link_id.into(),
        at_ms,
        email: "ada@example.com".into(),
        target: Side::MailerLite,
        field: field.into(),
        before: Some("old".into()),
        after: None,
        reason: "changed in HubSpot".into(),
        source: "webhook".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

pub async fn connections_round_trip_and_are_listed(store: &dyn Store) {
    let (a, b) = (unique("conn-a"), unique("conn-b"));
    let created = store.create_connection(&a, &rich_config()).await.unwrap();
    assert_eq!((created.id.as_str(), created.version), (a.as_str(), 1));
    assert_eq!(created.config, rich_config());
    assert!(created.created_at_ms > 0 && created.updated_at_ms == created.created_at_ms);
    store.create_connection(&b, &ConnectionConfig::new("B")).await.unwrap();

    let again = store.create_connection(&a, &ConnectionConfig::new("other")).await.unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists { .. }), "{again:?}");
    assert_eq!(store.get_connection(&a).await.unwrap().unwrap(), created);
    assert_eq!(store.get_connection(&unique("missing")).await.unwrap(), None);

    let listed: Vec<String> = store.list_connections().await.unwrap().into_iter().map(|c| c.id).collect();
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);

    // Schemas are stored with the config.
    let mut with_schemas = created.clone();
    with_schemas.schemas = Some(FieldSchemas {
        hubspot_contact: vec![
            HsProperty::new("firstname", HsType::String, "text"),
            HsProperty::new("hs_object_source", HsType::Other("object_coordinates".into()), "text").read_only(),
            HsProperty::new("segment", HsType::Enumeration, "select").with_options(&[("a", "A"), ("b", "B")]),
        ],
        hubspot_company: vec![],
        mailerlite: vec![MlField::new("name", MlType::Text), MlField::new("score", MlType::Number)],
    });
    let updated = store.update_connection(&with_schemas).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(store.get_connection(&a).await.unwrap().unwrap(), updated);
}

pub async fn connection_updates_are_optimistic(store: &dyn Store) {
    let id = unique("conn");
    let read = store.create_connection(&id, &ConnectionConfig::new("v1")).await.unwrap();
    let mut first = read.clone();
    first.config.name = "writer one".into();
    let mut second = read.clone();
    second.config.name = "writer two".into();

    let results = join_all([store.update_connection(&first), store.update_connection(&second)]).await;
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1, "{results:?}");
    assert_eq!(wins[0].version, 2);
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(matches!(loser, StoreError::VersionConflict { current: Some(2), .. }), "{loser:?}");
    assert!(!loser.is_transient());
    assert_eq!(store.get_connection(&id).await.unwrap().unwrap().config.name, wins[0].config.name);

    // Re-read and retry: accepted at the next version.
    let mut fresh = store.get_connection(&id).await.unwrap().unwrap();
    fresh.config.name = "after re-read".into();
    assert_eq!(store.update_connection(&fresh).await.unwrap().version, 3);
}

pub async fn delete_connection_removes_everything(store: &dyn Store) {
    let (conn, other) = (unique("conn"), unique("conn"));
    let portal = fastrand_portal();
    for c in [&conn, &other] {
        store.create_connection(c, &ConnectionConfig::new("x")).await.unwrap();
        let l = store.put_link(c, &link("l1", Some("1"), Some("2"), "a@example.com"), None).await.unwrap();
        store.put_state(c, &json!({"phase": "initial"}), None).await.unwrap();
        store.add_counters(c, &[("synced", 3)]).await.unwrap();
        store.set_error(c, &ContactError::new("l1", vec![problem("bad")])).await.unwrap();
        store.append_history(c, &[history("l1", 1, "name")], DAY).await.unwrap();
        store.record_synced(c, "2026-11", std::slice::from_ref(&l.id)).await.unwrap();
        store.add_route(portal, c).await.unwrap();
        store.mark_events_seen(c, &["open:1".into()], DAY).await.unwrap();
        store.put_pending_events(c, "b@example.com", &[json!({"type": "open"})], DAY).await.unwrap();
        store.park(c, "parked work", 10).await.unwrap();
        store
            .put_tombstone(c, &hmsync_store::Tombstone { digests: vec!["d1".into()], at_ms: 1, reason: "r".into() })
            .await
            .unwrap();
    }

    assert!(store.delete_connection(&conn).await.unwrap());
    assert!(!store.delete_connection(&conn).await.unwrap(), "deleting again is a no-op");

    assert_eq!(store.get_connection(&conn).await.unwrap(), None);
    assert!(!store.list_connections().await.unwrap().iter().any(|c| c.id == conn));
    assert_eq!(store.get_link(&conn, "l1").await.unwrap(), None);
    assert_eq!(store.link_by_hubspot_id(&conn, "1").await.unwrap(), None);
    assert_eq!(store.link_by_mailerlite_id(&conn, "2").await.unwrap(), None);
    assert_eq!(store.link_by_email(&conn, "a@example.com").await.unwrap(), None);
    assert_eq!(store.count_links(&conn).await.unwrap(), 0);
    assert_eq!(store.get_state(&conn).await.unwrap(), None);
    assert!(store.get_counters(&conn).await.unwrap().is_empty());
    assert_eq!(store.get_error(&conn, "l1").await.unwrap(), None);
    assert_eq!(store.count_errors(&conn).await.unwrap(), 0);
    assert!(store.read_history(&conn, "l1", 10).await.unwrap().is_empty());
    assert_eq!(store.unique_contacts(&conn, "2026-11").await.unwrap(), 0);
    assert_eq!(store.connections_for_portal(portal).await.unwrap(), vec![other.clone()]);
    assert_eq!(store.mark_events_seen(&conn, &["open:1".into()], DAY).await.unwrap(), vec![true]);
    assert!(store.take_pending_events(&conn, "b@example.com").await.unwrap().is_empty());
    assert_eq!(store.count_parked(&conn).await.unwrap(), 0);
    assert!(store.list_parked(&conn, None, 10).await.unwrap().items.is_empty());
    assert!(!store.has_tombstones(&conn).await.unwrap());
    let left = store.inventory(&conn).await.unwrap();
    assert!(left.iter().all(|i| i.key.contains("open:1")), "only the seen marker just set: {left:?}");

    // The other connection is untouched.
    assert!(store.link_by_email(&other, "a@example.com").await.unwrap().is_some());
    assert_eq!(store.count_links(&other).await.unwrap(), 1);
    assert_eq!(store.count_errors(&other).await.unwrap(), 1);
    assert_eq!(store.unique_contacts(&other, "2026-11").await.unwrap(), 1);
    assert_eq!(store.read_history(&other, "l1", 10).await.unwrap().len(), 1);
    assert_eq!(store.take_pending_events(&other, "b@example.com").await.unwrap().len(), 1);
    assert_eq!(store.count_parked(&other).await.unwrap(), 1);
    assert!(store.has_tombstones(&other).await.unwrap());
}

pub(crate) fn fastrand_portal() -> u64 {
    // Routing is global across connections: each test needs its own portal id.
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) >> 12
}

// ---------------------------------------------------------------------------------------------
// Links

pub async fn links_are_found_by_both_ids_and_email(store: &dyn Store) {
    let conn = unique("conn");
    let id = uuid::Uuid::now_v7().to_string();
    let stored = store.put_link(&conn, &rich_link(&id), None).await.unwrap();
    assert_eq!(stored.version, 1);
    let mut expected = rich_link(&id);
    expected.version = 1;
    assert_eq!(stored, expected);

    assert_eq!(store.get_link(&conn, &id).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.link_by_hubspot_id(&conn, "501").await.unwrap(), Some(expected.clone()));
    assert_eq!(store.link_by_mailerlite_id(&conn, "9001").await.unwrap(), Some(expected.clone()));
    assert_eq!(store.link_by_email(&conn, "ada@example.com").await.unwrap(), Some(expected.clone()));
    assert_eq!(store.find_link(&conn, &LinkKey::HubSpot("502".into())).await.unwrap(), None);
    assert_eq!(store.link_by_email(&conn, "ADA@example.com").await.unwrap(), None, "emails are stored as given");
    // Scoped by connection.
    assert_eq!(store.link_by_hubspot_id(&unique("conn"), "501").await.unwrap(), None);

    // A link known on one side only is indexed by what it has.
    let half = store.put_link(&conn, &link("half", None, Some("9002"), "bob@example.com"), None).await.unwrap();
    assert_eq!(store.link_by_mailerlite_id(&conn, "9002").await.unwrap(), Some(half.clone()));
    assert_eq!(store.link_by_email(&conn, "bob@example.com").await.unwrap(), Some(half.clone()));

    // Linking the other side later adds its index entry.
    let mut completed = half.clone();
    completed.hubspot_id = Some("777".into());
    let completed = store.put_link(&conn, &completed, Some(&half)).await.unwrap();
    assert_eq!(completed.version, 2);
    assert_eq!(store.link_by_hubspot_id(&conn, "777").await.unwrap(), Some(completed));
}

pub async fn a_changed_email_moves_the_email_index(store: &dyn Store) {
    let conn = unique("conn");
    let v1 = store.put_link(&conn, &link("l1", Some("1"), Some("2"), "old@example.com"), None).await.unwrap();
    let mut changed = v1.clone();
    changed.email = "new@example.com".into();
    let v2 = store.put_link(&conn, &changed, Some(&v1)).await.unwrap();
    assert_eq!(v2.version, 2);

    assert_eq!(store.link_by_hubspot_id(&conn, "1").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.link_by_mailerlite_id(&conn, "2").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.link_by_email(&conn, "new@example.com").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.link_by_email(&conn, "old@example.com").await.unwrap(), None);

    // The old email is free for another contact now.
    let other = store.put_link(&conn, &link("l2", Some("3"), None, "old@example.com"), None).await.unwrap();
    assert_eq!(store.link_by_email(&conn, "old@example.com").await.unwrap(), Some(other));

    // A MailerLite id that changes (subscriber re-created) moves as well.
    let mut moved = v2.clone();
    moved.mailerlite_id = Some("20".into());
    let v3 = store.put_link(&conn, &moved, Some(&v2)).await.unwrap();
    assert_eq!(store.link_by_mailerlite_id(&conn, "20").await.unwrap(), Some(v3));
    assert_eq!(store.link_by_mailerlite_id(&conn, "2").await.unwrap(), None);
}

pub async fn two_writers_of_one_link_version_conflict(store: &dyn Store) {
    let conn = unique("conn");
    let v1 = store.put_link(&conn, &link("l1", Some("1"), None, "a@example.com"), None).await.unwrap();
    let mut one = v1.clone();
    one.hs_in_scope = true;
    let mut two = v1.clone();
    two.email = "b@example.com".into();

    let results = join_all([store.put_link(&conn, &one, Some(&v1)), store.put_link(&conn, &two, Some(&v1))]).await;
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1, "{results:?}");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(matches!(loser, StoreError::VersionConflict { current: Some(2), .. }), "{loser:?}");
    assert_eq!(store.get_link(&conn, "l1").await.unwrap().as_ref(), Some(wins[0]));
    // The loser's email change left no index entry behind (or the winner's is the only one).
    let by_email_a = store.link_by_email(&conn, "a@example.com").await.unwrap();
    let by_email_b = store.link_by_email(&conn, "b@example.com").await.unwrap();
    assert_eq!(by_email_a.is_some() as u8 + by_email_b.is_some() as u8, 1);

    // Creating a link that exists is a conflict too.
    let again = store.put_link(&conn, &link("l1", Some("1"), None, "a@example.com"), None).await.unwrap_err();
    assert!(matches!(again, StoreError::VersionConflict { current: Some(2), .. }), "{again:?}");
    // So is updating one that does not exist.
    let ghost = link("ghost", None, None, "g@example.com");
    let mut ghost_prev = ghost.clone();
    ghost_prev.version = 4;
    let missing = store.put_link(&conn, &ghost, Some(&ghost_prev)).await.unwrap_err();
    assert!(matches!(missing, StoreError::VersionConflict { current: None, .. }), "{missing:?}");
}

pub async fn an_index_conflict_writes_nothing(store: &dyn Store) {
    let conn = unique("conn");
    let ada = store.put_link(&conn, &link("ada", Some("1"), Some("2"), "ada@example.com"), None).await.unwrap();

    let err = store.put_link(&conn, &link("dup", Some("10"), Some("20"), "ada@example.com"), None).await.unwrap_err();
    match &err {
        StoreError::IndexConflict { key, existing_link_id } => {
            assert_eq!(key, &LinkKey::Email("ada@example.com".into()));
            assert_eq!(existing_link_id, "ada");
        }
        other => panic!("expected an index conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("ada@example.com"), "{err}");
    assert_eq!(store.get_link(&conn, "dup").await.unwrap(), None);
    assert_eq!(store.link_by_hubspot_id(&conn, "10").await.unwrap(), None);
    assert_eq!(store.link_by_mailerlite_id(&conn, "20").await.unwrap(), None);
    assert_eq!(store.link_by_email(&conn, "ada@example.com").await.unwrap(), Some(ada.clone()));
    assert_eq!(store.count_links(&conn).await.unwrap(), 1);

    // An update that would take another link's HubSpot id fails the same way and keeps the
    // link as it was.
    let bob = store.put_link(&conn, &link("bob", Some("5"), None, "bob@example.com"), None).await.unwrap();
    let mut steal = bob.clone();
    steal.hubspot_id = Some("1".into());
    steal.email = "bob2@example.com".into();
    let err = store.put_link(&conn, &steal, Some(&bob)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::IndexConflict { key: LinkKey::HubSpot(id), existing_link_id } if id == "1" && existing_link_id == "ada"),
        "{err:?}"
    );
    assert_eq!(store.get_link(&conn, "bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(store.link_by_email(&conn, "bob@example.com").await.unwrap(), Some(bob));
    assert_eq!(store.link_by_email(&conn, "bob2@example.com").await.unwrap(), None);
    assert_eq!(store.link_by_hubspot_id(&conn, "1").await.unwrap(), Some(ada));
}

pub async fn links_are_found_in_batches(store: &dyn Store) {
    let conn = unique("conn");
    // More than one BatchGetItem's worth of keys (100).
    let mut keys = Vec::new();
    for i in 0..60 {
        let hs = (i % 2 == 0).then(|| format!("hs{i}"));
        let l = link(&format!("l{i:03}"), hs.as_deref(), Some(&format!("ml{i}")), &format!("p{i}@example.com"));
        store.put_link(&conn, &l, None).await.unwrap();
        keys.push(LinkKey::MailerLite(format!("ml{i}")));
        keys.push(LinkKey::Email(format!("p{i}@example.com")));
        if let Some(hs) = hs {
            keys.push(LinkKey::HubSpot(hs));
        }
    }
    keys.push(LinkKey::HubSpot("hs1".into()));
    keys.push(LinkKey::Email("nobody@example.com".into()));
    keys.push(LinkKey::Email("p0@example.com".into()));

    let found = store.find_links(&conn, &keys).await.unwrap();
    assert_eq!(found.len(), 60 + 60 + 30, "every linked key once, unknown keys left out");
    let distinct: HashSet<&LinkKey> = found.iter().map(|(k, _)| k).collect();
    assert_eq!(distinct.len(), found.len());
    for (key, l) in &found {
        assert!(key.matches(l), "{key} -> {l:?}");
        let n: usize = l.id[1..].parse().unwrap();
        assert_eq!(l.mailerlite_id.as_deref(), Some(format!("ml{n}").as_str()));
    }
    assert!(store.find_links(&conn, &[]).await.unwrap().is_empty());
}

pub async fn links_are_listed_in_pages_and_counted(store: &dyn Store) {
    let conn = unique("conn");
    let ids: Vec<String> = (0..23).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        store.put_link(&conn, &link(id, Some(&i.to_string()), None, &format!("p{i}@example.com")), None).await.unwrap();
    }
    // Links of another connection never show up.
    store.put_link(&unique("conn"), &link("elsewhere", None, None, "x@example.com"), None).await.unwrap();

    let mut listed = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_links(&conn, after.as_deref(), 10).await.unwrap();
        pages.push(page.items.len());
        listed.extend(page.items.into_iter().map(|l| l.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, vec![10, 10, 3]);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(store.count_links(&conn).await.unwrap(), 23);

    // An exact multiple of the page size ends without an empty page.
    let page = store.list_links(&conn, Some(&sorted[2]), 20).await.unwrap();
    assert_eq!((page.items.len(), page.next), (20, None));
}

pub async fn deleting_a_link_frees_its_keys(store: &dyn Store) {
    let conn = unique("conn");
    let v1 = store.put_link(&conn, &link("l1", Some("1"), Some("2"), "a@example.com"), None).await.unwrap();
    let mut v2 = v1.clone();
    v2.hs_deleted = true;
    store.put_link(&conn, &v2, Some(&v1)).await.unwrap();

    assert!(store.delete_link(&conn, "l1").await.unwrap());
    assert!(!store.delete_link(&conn, "l1").await.unwrap());
    assert_eq!(store.get_link(&conn, "l1").await.unwrap(), None);
    assert_eq!(store.link_by_hubspot_id(&conn, "1").await.unwrap(), None);
    assert_eq!(store.count_links(&conn).await.unwrap(), 0);
    // The keys can be linked again.
    store.put_link(&conn, &link("l2", Some("1"), Some("2"), "a@example.com"), None).await.unwrap();
    assert_eq!(store.link_by_email(&conn, "a@example.com").await.unwrap().unwrap().id, "l2");
}

// ---------------------------------------------------------------------------------------------
// State and counters

pub async fn state_is_versioned(store: &dyn Store) {
    let conn = unique("conn");
    assert_eq!(store.get_state(&conn).await.unwrap(), None);
    let doc =
        json!({"phase": "initial", "cursor": {"after": "abc", "n": 12345678901234_u64}, "rate": 0.25, "none": null});
    assert_eq!(store.put_state(&conn, &doc, None).await.unwrap(), 1);
    let read = store.get_state(&conn).await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (doc.clone(), 1));

    let again = store.put_state(&conn, &json!({}), None).await.unwrap_err();
    assert!(matches!(again, StoreError::VersionConflict { current: Some(1), .. }), "{again:?}");
    let next = json!({"phase": "continuous"});
    let results = join_all([store.put_state(&conn, &next, Some(1)), store.put_state(&conn, &doc, Some(1))]).await;
    assert_eq!(results.iter().filter(|r| r.as_ref().is_ok_and(|v| *v == 2)).count(), 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(r, Err(StoreError::VersionConflict { current: Some(2), .. }))));
    let stale = store.put_state(&conn, &next, Some(7)).await.unwrap_err();
    assert!(matches!(stale, StoreError::VersionConflict { current: Some(2), .. }), "{stale:?}");
    let missing = store.put_state(&unique("conn"), &next, Some(1)).await.unwrap_err();
    assert!(matches!(missing, StoreError::VersionConflict { current: None, .. }), "{missing:?}");
}

pub async fn concurrent_counter_increments_are_all_counted(store: &dyn Store) {
    let conn = unique("conn");
    assert!(store.get_counters(&conn).await.unwrap().is_empty());
    let results = join_all((0..20).map(|_| store.add_counters(&conn, &[("synced", 1), ("api calls", 2)]))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    store.add_counters(&conn, &[("errors", -3), ("errors", 1), ("synced", 0)]).await.unwrap();
    store.add_counters(&conn, &[]).await.unwrap();
    assert_eq!(
        store.get_counters(&conn).await.unwrap(),
        BTreeMap::from([("api calls".to_string(), 40), ("errors".to_string(), -2), ("synced".to_string(), 20)])
    );
}

pub async fn counters_are_added_and_set_in_one_write(store: &dyn Store) {
    let conn = unique("conn");
    store.add_and_set_counters(&conn, &[("events", 3)], &[("received_at", 1_000)]).await.unwrap();
    store.add_and_set_counters(&conn, &[("events", 2)], &[("received_at", 900)]).await.unwrap();
    store.add_and_set_counters(&conn, &[], &[("other_at", 5), ("other_at", 7)]).await.unwrap();
    // A name in both is set.
    store.add_and_set_counters(&conn, &[("both", 40)], &[("both", 2)]).await.unwrap();
    store.add_and_set_counters(&conn, &[], &[]).await.unwrap();
    assert_eq!(
        store.get_counters(&conn).await.unwrap(),
        BTreeMap::from([
            ("both".to_string(), 2),
            ("events".to_string(), 5),
            ("other_at".to_string(), 7),
            ("received_at".to_string(), 900),
        ]),
        "the last write of a set value wins; additions add up"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

pub async fn errors_are_set_cleared_paged_and_counted(store: &dyn Store) {
    let conn = unique("conn");
    let mut first = ContactError::new("hubspot:42", vec![problem("company is too long")]);
    first.hubspot_id = Some("42".into());
    first.email = Some("a@example.com".into());
    let stored = store.set_error(&conn, &first).await.unwrap();
    assert_eq!(stored.attempts, 1);
    assert!(stored.first_seen_ms > 0 && stored.first_seen_ms == stored.last_seen_ms);
    assert_eq!(stored.problems, first.problems);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut again = first.clone();
    again.problems = vec![problem("still too long"), problem("and a bad date")];
    again.email = None;
    again.mailerlite_id = Some("9".into());
    let updated = store.set_error(&conn, &again).await.unwrap();
    assert_eq!(updated.attempts, 2);
    assert_eq!(updated.first_seen_ms, stored.first_seen_ms);
    assert!(updated.last_seen_ms > stored.last_seen_ms);
    assert_eq!(updated.problems, again.problems);
    assert_eq!((updated.email.as_deref(), updated.mailerlite_id.as_deref()), (None, Some("9")));
    assert_eq!(store.get_error(&conn, "hubspot:42").await.unwrap(), Some(updated));
    assert_eq!(store.count_errors(&conn).await.unwrap(), 1);

    assert!(store.clear_error(&conn, "hubspot:42").await.unwrap());
    assert!(!store.clear_error(&conn, "hubspot:42").await.unwrap());
    assert_eq!(store.get_error(&conn, "hubspot:42").await.unwrap(), None);
    assert_eq!(store.count_errors(&conn).await.unwrap(), 0);
    // Failing again after a clear starts over.
    assert_eq!(store.set_error(&conn, &first).await.unwrap().attempts, 1);
    store.clear_error(&conn, "hubspot:42").await.unwrap();

    for i in 0..25 {
        store.set_error(&conn, &ContactError::new(&format!("link-{i:02}"), vec![problem("x")])).await.unwrap();
    }
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_errors(&conn, after.as_deref(), 10).await.unwrap();
        sizes.push(page.items.len());
        keys.extend(page.items.into_iter().map(|e| e.key));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    let expected: Vec<String> = (0..25).map(|i| format!("link-{i:02}")).collect();
    assert_eq!(keys, expected, "stable order, no duplicates");
    assert_eq!(store.count_errors(&conn).await.unwrap(), 25);
}

// ---------------------------------------------------------------------------------------------
// History

pub async fn history_is_read_newest_first_and_expires(store: &dyn Store) {
    let conn = unique("conn");
    let entries: Vec<HistoryEntry> =
        (0..30).map(|i| history("l1", 1_700_000_000_000 + (i / 2) * 1000, &format!("field{i}"))).collect();
    store.append_history(&conn, &entries, DAY).await.unwrap();
    store.append_history(&conn, &[history("l2", 1_800_000_000_000, "other contact")], DAY).await.unwrap();
    store.append_history(&conn, &[history("l1", 1_700_000_999_000, "latest")], DAY).await.unwrap();

    let read = store.read_history(&conn, "l1", 5).await.unwrap();
    let fields: Vec<&str> = read.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["latest", "field29", "field28", "field27", "field26"]);
    assert_eq!(read[1], entries[29]);
    let all = store.read_history(&conn, "l1", 100).await.unwrap();
    assert_eq!(all.len(), 31);
    assert!(all.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    assert_eq!(store.read_history(&conn, "l2", 100).await.unwrap().len(), 1);

    // Expired entries are never returned, even before the backend deletes them.
    store.append_history(&conn, &[history("l3", 1_700_000_000_000, "expired")], Duration::ZERO).await.unwrap();
    assert!(store.read_history(&conn, "l3", 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Meter

pub async fn meter_counts_each_link_once_per_month(store: &dyn Store) {
    let conn = unique("conn");
    let ids = |range: std::ops::Range<u32>| range.map(|i| format!("l{i}")).collect::<Vec<_>>();
    assert_eq!(store.record_synced(&conn, "2026-11", &ids(0..150)).await.unwrap(), 150);
    assert_eq!(store.record_synced(&conn, "2026-11", &ids(100..200)).await.unwrap(), 50);
    let mut repeated = ids(0..3);
    repeated.extend(ids(200..202));
    repeated.extend(ids(200..202));
    assert_eq!(store.record_synced(&conn, "2026-11", &repeated).await.unwrap(), 2);
    assert_eq!(store.record_synced(&conn, "2026-11", &[]).await.unwrap(), 0);
    assert_eq!(store.unique_contacts(&conn, "2026-11").await.unwrap(), 202);
    assert_eq!(store.record_synced(&conn, "2026-12", &ids(0..10)).await.unwrap(), 10);
    assert_eq!(store.unique_contacts(&conn, "2026-12").await.unwrap(), 10);
    assert_eq!(store.unique_contacts(&conn, "2027-01").await.unwrap(), 0);

    // Concurrent recorders of overlapping links count each once.
    let conn = &conn;
    let results = join_all((0..4).map(|k| {
        let batch = ids(300 + k * 5..320 + k * 5);
        async move { store.record_synced(conn, "2027-02", &batch).await }
    }))
    .await;
    let added: u64 = results.into_iter().map(Result::unwrap).sum();
    assert_eq!(added, 35);
    assert_eq!(store.unique_contacts(conn, "2027-02").await.unwrap(), 35);
}

// ---------------------------------------------------------------------------------------------
// Routing

pub async fn routes_map_portals_to_connections(store: &dyn Store) {
    let (a, b) = (unique("conn-a"), unique("conn-b"));
    let (portal, other_portal) = (fastrand_portal(), fastrand_portal());
    for c in [&a, &b] {
        store.create_connection(c, &ConnectionConfig::new("x")).await.unwrap();
    }
    assert!(store.connections_for_portal(portal).await.unwrap().is_empty());
    store.add_route(portal, &b).await.unwrap();
    store.add_route(portal, &a).await.unwrap();
    store.add_route(portal, &a).await.unwrap();
    store.add_route(other_portal, &a).await.unwrap();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(store.connections_for_portal(portal).await.unwrap(), both);

    store.remove_route(portal, &a).await.unwrap();
    store.remove_route(portal, &a).await.unwrap();
    assert_eq!(store.connections_for_portal(portal).await.unwrap(), vec![b.clone()]);
    assert_eq!(store.connections_for_portal(other_portal).await.unwrap(), vec![a.clone()]);

    let missing = store.add_route(portal, &unique("missing")).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");
}

// ---------------------------------------------------------------------------------------------
// Engagement events

pub async fn events_are_seen_once(store: &dyn Store) {
    let conn = unique("conn");
    let keys: Vec<String> = ["open:1:a", "click:1:a", "open:1:a", "open:2:b"].map(String::from).to_vec();
    assert_eq!(store.mark_events_seen(&conn, &keys, DAY).await.unwrap(), vec![true, true, false, true]);
    let again: Vec<String> = ["open:2:b", "open:3:c"].map(String::from).to_vec();
    assert_eq!(store.mark_events_seen(&conn, &again, DAY).await.unwrap(), vec![false, true]);
    // Scoped by connection.
    assert_eq!(store.mark_events_seen(&unique("conn"), &again, DAY).await.unwrap(), vec![true, true]);
    // A very long key works (stored hashed where the backend needs it).
    let long = vec!["x".repeat(2000)];
    assert_eq!(store.mark_events_seen(&conn, &long, DAY).await.unwrap(), vec![true]);
    assert_eq!(store.mark_events_seen(&conn, &long, DAY).await.unwrap(), vec![false]);
    // Concurrent deliveries of one event: exactly one caller sees it first.
    let dup = vec!["open:9:z".to_string()];
    let results = join_all((0..5).map(|_| store.mark_events_seen(&conn, &dup, DAY))).await;
    let firsts = results.into_iter().map(|r| r.unwrap()[0]).filter(|first| *first).count();
    assert_eq!(firsts, 1);
    // A marker past its time to live no longer counts.
    let short = vec!["open:10:y".to_string()];
    assert_eq!(store.mark_events_seen(&conn, &short, Duration::ZERO).await.unwrap(), vec![true]);
    assert_eq!(store.mark_events_seen(&conn, &short, DAY).await.unwrap(), vec![true]);
    assert_eq!(store.mark_events_seen(&conn, &short, DAY).await.unwrap(), vec![false]);
}

pub async fn pending_events_are_taken_once(store: &dyn Store) {
    let conn = unique("conn");
    let events: Vec<serde_json::Value> = (0..30).map(|i| json!({"type": "open", "n": i, "at": "2026-11-20"})).collect();
    store.put_pending_events(&conn, "a@example.com", &events[..20], DAY).await.unwrap();
    store.put_pending_events(&conn, "a@example.com", &events[20..], DAY).await.unwrap();
    store.put_pending_events(&conn, "b@example.com", &[json!({"type": "click"})], DAY).await.unwrap();
    store.put_pending_events(&conn, "a@example.com", &[json!({"type": "expired"})], Duration::ZERO).await.unwrap();

    let results = join_all((0..3).map(|_| store.take_pending_events(&conn, "a@example.com"))).await;
    let taken: Vec<Vec<serde_json::Value>> = results.into_iter().map(Result::unwrap).collect();
    let all: Vec<&serde_json::Value> = taken.iter().flatten().collect();
    assert_eq!(all.len(), 30, "every event once across concurrent takers, expired ones never");
    let ns: BTreeSet<i64> = all.iter().map(|e| e["n"].as_i64().unwrap()).collect();
    assert_eq!(ns.len(), 30);
    for batch in &taken {
        let order: Vec<i64> = batch.iter().map(|e| e["n"].as_i64().unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in the order they were put: {order:?}");
    }
    assert!(store.take_pending_events(&conn, "a@example.com").await.unwrap().is_empty());
    assert_eq!(store.take_pending_events(&conn, "b@example.com").await.unwrap(), vec![json!({"type": "click"})]);
}

// ---------------------------------------------------------------------------------------------
// Queue

fn msg(group: &str, dedup: &str, body: &str) -> QueueMessage {
    QueueMessage { group_id: group.into(), dedup_id: dedup.into(), body: body.into() }
}

const LONG: Duration = Duration::from_secs(60);

/// Receives until something arrives (a message whose visibility ended shows up within about a
/// second of it; SQS counts in whole seconds), bounded so a broken queue fails the test.
async fn receive_eventually(queue: &dyn WorkQueue, max: usize) -> Vec<ReceivedMessage> {
    for _ in 0..100 {
        let got = queue.receive(max, LONG).await.unwrap();
        if !got.is_empty() {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message became visible again");
}

pub async fn queue_keeps_order_within_each_group(queue: &dyn WorkQueue) {
    let groups = [unique("g1"), unique("g2"), unique("g3")];
    let mut batch = Vec::new();
    for i in 0..5 {
        for g in &groups {
            batch.push(msg(g, &format!("{g}-{i}"), &format!("{g}:{i}")));
        }
    }
    queue.send_batch(&batch).await.unwrap();

    let mut bodies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut received = 0;
    for _ in 0..100 {
        if received == 15 {
            break;
        }
        for m in queue.receive(10, LONG).await.unwrap() {
            assert!(groups.contains(&m.group_id), "{m:?}");
            assert_eq!(m.receive_count, 1);
            bodies.entry(m.group_id.clone()).or_default().push(m.body.clone());
            queue.ack(&m.receipt).await.unwrap();
            received += 1;
        }
    }
    for g in &groups {
        let expected: Vec<String> = (0..5).map(|i| format!("{g}:{i}")).collect();
        assert_eq!(bodies[g], expected);
    }
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_blocks_a_group_while_a_message_is_in_flight(queue: &dyn WorkQueue) {
    let (a, b) = (unique("a"), unique("b"));
    queue.send_batch(&[msg(&a, "a1", "a1"), msg(&a, "a2", "a2"), msg(&b, "b1", "b1")]).await.unwrap();
    let first = queue.receive(1, LONG).await.unwrap();
    assert_eq!(first.len(), 1);
    let (held, other) = if first[0].group_id == a { (&a, &b) } else { (&b, &a) };
    assert_eq!(first[0].body, format!("{}1", if held == &a { "a" } else { "b" }));

    // While it is in flight, its group delivers nothing; the other group still does.
    let during = queue.receive(10, LONG).await.unwrap();
    assert!(during.iter().all(|m| &m.group_id == other), "{during:?}");
    for m in &during {
        queue.ack(&m.receipt).await.unwrap();
    }
    if held == &a {
        assert_eq!(during.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["b1"]);
        assert!(queue.receive(10, LONG).await.unwrap().is_empty(), "a2 waits for a1");
        queue.ack(&first[0].receipt).await.unwrap();
        let next = queue.receive(10, LONG).await.unwrap();
        assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["a2"]);
        queue.ack(&next[0].receipt).await.unwrap();
    } else {
        assert_eq!(during.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["a1", "a2"]);
        queue.ack(&first[0].receipt).await.unwrap();
    }
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_drops_duplicates_by_dedup_id(queue: &dyn WorkQueue) {
    let g = unique("g");
    let long_dedup = format!("hubspot:{}:with spaces and ünïcode", "x".repeat(200));
    queue.send_batch(&[msg(&g, "event-1", "first"), msg(&g, &long_dedup, "long")]).await.unwrap();
    queue.send_batch(&[msg(&g, "event-1", "duplicate"), msg(&g, "event-2", "second")]).await.unwrap();
    queue.send_batch(&[msg(&g, &long_dedup, "long duplicate")]).await.unwrap();

    let mut bodies = Vec::new();
    for _ in 0..10 {
        let got = queue.receive(10, LONG).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            bodies.push(m.body.clone());
            queue.ack(&m.receipt).await.unwrap();
        }
    }
    assert_eq!(bodies, vec!["first", "long", "second"]);
    // SQS also drops a re-send of an id that was delivered and deleted within the 5 minutes;
    // moto only compares with messages still queued, so that part is checked for the local
    // queue only (tests/sqlite.rs).
}

pub async fn queue_redelivers_after_the_visibility_timeout(queue: &dyn WorkQueue) {
    let g = unique("g");
    queue.send_batch(&[msg(&g, "m1", "work")]).await.unwrap();
    let first = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(queue.receive(10, LONG).await.unwrap().is_empty(), "invisible while in flight");

    // Never acked (the worker crashed): it comes back.
    let again = receive_eventually(queue, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].message_id.as_str(), again[0].body.as_str()), (first[0].message_id.as_str(), "work"));
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt, first[0].receipt);
    queue.ack(&again[0].receipt).await.unwrap();
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_retry_later_delays_redelivery(queue: &dyn WorkQueue) {
    // Each message is received at most QUEUE_MAX_RECEIVES (2) times here.
    let g = unique("g");
    queue.send_batch(&[msg(&g, "m1", "one"), msg(&g, "m2", "two")]).await.unwrap();
    let first = queue.receive(1, LONG).await.unwrap();
    assert_eq!(first[0].body, "one");

    // At once: visible again right away, still first in its group.
    queue.retry_later(&first[0].receipt, Duration::ZERO).await.unwrap();
    let again = queue.receive(1, LONG).await.unwrap();
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("one", 2));
    queue.ack(&again[0].receipt).await.unwrap();

    // Later (e.g. rate limited): the group waits, then gets the same message first.
    let second = queue.receive(1, LONG).await.unwrap();
    assert_eq!(second[0].body, "two");
    queue.retry_later(&second[0].receipt, Duration::from_secs(1)).await.unwrap();
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
    let later = receive_eventually(queue, 10).await;
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].body.as_str(), later[0].receive_count), ("two", 2));
    queue.ack(&later[0].receipt).await.unwrap();
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_dead_letters_after_max_receives_and_requeues(queue: &dyn WorkQueue) {
    let g = unique("g");
    queue.send_batch(&[msg(&g, "poison", "poison"), msg(&g, "fine", "fine")]).await.unwrap();
    for attempt in 1..=QUEUE_MAX_RECEIVES {
        let got = queue.receive(1, LONG).await.unwrap();
        assert_eq!((got[0].body.as_str(), got[0].receive_count), ("poison", attempt));
        queue.retry_later(&got[0].receipt, Duration::ZERO).await.unwrap();
    }
    // Received too often: set aside, and the group moves on.
    let next = queue.receive(10, LONG).await.unwrap();
    assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["fine"]);
    queue.ack(&next[0].receipt).await.unwrap();

    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].group_id.as_str(), dead[0].body.as_str()), (g.as_str(), "poison"));
    assert!(dead[0].receive_count >= QUEUE_MAX_RECEIVES, "{dead:?}");
    assert_eq!(dead[0].last_error, None, "moved by the receive limit, not by the consumer");
    // Looking does not remove.
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);

    assert_eq!(queue.requeue_dead_letters(10).await.unwrap(), 1);
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
    let back = queue.receive(10, LONG).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].group_id.as_str(), back[0].body.as_str(), back[0].receive_count), (g.as_str(), "poison", 1));
    queue.ack(&back[0].receipt).await.unwrap();
}

pub async fn queue_release_gives_an_untried_message_back_at_once(queue: &dyn WorkQueue) {
    let g = unique("g");
    queue.send_batch(&[msg(&g, "m1", "one"), msg(&g, "m2", "two")]).await.unwrap();
    let got = queue.receive(10, LONG).await.unwrap();
    assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["one", "two"]);

    // "two" was never tried: it goes back at once, but its group still waits for "one".
    queue.release(&got[1].receipt).await.unwrap();
    assert!(queue.receive(10, LONG).await.unwrap().is_empty(), "the group waits for the message in flight");

    // Released too, "one" is visible at once and still first in its group.
    queue.release(&got[0].receipt).await.unwrap();
    let back = receive_eventually(queue, 10).await;
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["one", "two"]);
    assert_eq!(back[0].message_id, got[0].message_id);
    for m in &back {
        // The local queue takes the receive back; SQS cannot (it counts every receive).
        assert!((1..=2).contains(&m.receive_count), "{back:?}");
        queue.ack(&m.receipt).await.unwrap();
    }
    assert!(queue.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_receive_heads_gives_the_first_message_of_each_group(queue: &dyn WorkQueue) {
    let (a, b) = (unique("a"), unique("b"));
    queue.send_batch(&[msg(&a, "a1", "a1"), msg(&a, "a2", "a2"), msg(&b, "b1", "b1")]).await.unwrap();
    let mut heads = queue.receive_heads(10, LONG).await.unwrap();
    heads.sort_by(|x, y| x.body.cmp(&y.body));
    assert_eq!(heads.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["a1", "b1"]);
    assert!(heads.iter().all(|m| m.receive_count == 1), "{heads:?}");
    assert!(queue.receive_heads(10, LONG).await.unwrap().is_empty(), "both groups wait for their message in flight");
    for m in &heads {
        queue.ack(&m.receipt).await.unwrap();
    }
    let next = receive_eventually_heads(queue).await;
    assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["a2"]);
    // The local queue never received it before; SQS received and released it once.
    assert!((1..=2).contains(&next[0].receive_count), "{next:?}");
    queue.ack(&next[0].receipt).await.unwrap();
    assert!(queue.receive_heads(10, LONG).await.unwrap().is_empty());
}

pub async fn queue_dead_letter_sets_a_message_aside_with_its_last_error(queue: &dyn WorkQueue) {
    let g = unique("g");
    queue.send_batch(&[msg(&g, "poison", "poison"), msg(&g, "fine", "fine")]).await.unwrap();
    let got = queue.receive(1, LONG).await.unwrap();
    assert_eq!(got[0].body, "poison");
    let error = "HubSpot refused the request (HTTP 400): no such property; fix the mapping";
    queue.dead_letter(&got[0], error).await.unwrap();

    // Its group is not held back, and the next message has not used up a receive.
    let next = receive_eventually(queue, 10).await;
    assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["fine"]);
    assert_eq!(next[0].receive_count, 1);
    queue.ack(&next[0].receipt).await.unwrap();

    let dead: Vec<_> = queue.dead_letters(100).await.unwrap().into_iter().filter(|d| d.group_id == g).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].message_id, got[0].message_id);
    assert_eq!(dead[0].receive_count, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some(error));
    // A peek keeps it (and its error) where it is.
    let again: Vec<_> = queue.dead_letters(100).await.unwrap().into_iter().filter(|d| d.group_id == g).collect();
    assert_eq!(again[0].last_error.as_deref(), Some(error));

    // A very long error is kept cut, not refused.
    queue.send_batch(&[msg(&g, "long", "long")]).await.unwrap();
    let long = receive_eventually(queue, 10).await;
    queue.dead_letter(&long[0], &"é".repeat(5000)).await.unwrap();
    let dead: Vec<_> = queue.dead_letters(100).await.unwrap().into_iter().filter(|d| d.body == "long").collect();
    let kept = dead[0].last_error.as_deref().unwrap();
    assert!(kept.len() <= hmsync_store::LAST_ERROR_MAX_BYTES && kept.len() > 4000, "{}", kept.len());
    assert!(kept.chars().all(|c| c == 'é'));

    // Requeued, it is an ordinary message again.
    assert_eq!(queue.requeue_dead_letters(100).await.unwrap(), 2);
    let back = receive_eventually(queue, 10).await;
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["poison", "long"]);
    for m in &back {
        queue.ack(&m.receipt).await.unwrap();
    }
}

async fn receive_eventually_heads(queue: &dyn WorkQueue) -> Vec<ReceivedMessage> {
    for _ in 0..100 {
        let got = queue.receive_heads(10, LONG).await.unwrap();
        if !got.is_empty() {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message became visible again");
}

// ---------------------------------------------------------------------------------------------
// Secrets

pub async fn secrets_are_put_overwritten_and_deleted(secrets: Box<dyn SecretStore>) {
    let name = format!("{}/hubspot", unique("conn"));
    assert_eq!(secrets.get_secret(&name).await.unwrap(), None);
    secrets.put_secret(&name, "pat-na1-first").await.unwrap();
    assert_eq!(secrets.get_secret(&name).await.unwrap().as_deref(), Some("pat-na1-first"));
    secrets.put_secret(&name, "pat-na1-second").await.unwrap();
    assert_eq!(secrets.get_secret(&name).await.unwrap().as_deref(), Some("pat-na1-second"));

    let other = format!("{}/mailerlite", unique("conn"));
    secrets.put_secret(&other, "ml-token").await.unwrap();
    secrets.delete_secret(&name).await.unwrap();
    secrets.delete_secret(&name).await.unwrap();
    assert_eq!(secrets.get_secret(&name).await.unwrap(), None);
    assert_eq!(secrets.get_secret(&other).await.unwrap().as_deref(), Some("ml-token"));

    // A deleted name can be used again.
    secrets.put_secret(&name, "pat-na1-third").await.unwrap();
    assert_eq!(secrets.get_secret(&name).await.unwrap().as_deref(), Some("pat-na1-third"));
}

pub async fn a_secret_is_updated_only_while_it_exists(secrets: Box<dyn SecretStore>) {
    let name = format!("{}/hubspot-tokens", unique("conn"));
    // Never created by an update: a worker's token refresh cannot bring a deleted secret back.
    assert!(!secrets.update_secret(&name, "refreshed").await.unwrap());
    assert_eq!(secrets.get_secret(&name).await.unwrap(), None);
    secrets.put_secret(&name, "installed").await.unwrap();
    assert!(secrets.update_secret(&name, "refreshed").await.unwrap());
    assert_eq!(secrets.get_secret(&name).await.unwrap().as_deref(), Some("refreshed"));
    secrets.delete_secret(&name).await.unwrap();
    assert!(!secrets.update_secret(&name, "refreshed again").await.unwrap());
    assert_eq!(secrets.get_secret(&name).await.unwrap(), None);
}

/// Counts reads that reach the wrapped store.
struct CountingSecrets {
    inner: Box<dyn SecretStore>,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl SecretStore for CountingSecrets {
    async fn get_secret(&self, name: &str) -> hmsync_store::Result<Option<String>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_secret(name).await
    }

    async fn put_secret(&self, name: &str, value: &str) -> hmsync_store::Result<()> {
        self.inner.put_secret(name, value).await
    }

    async fn update_secret(&self, name: &str, value: &str) -> hmsync_store::Result<bool> {
        self.inner.update_secret(name, value).await
    }

    async fn delete_secret(&self, name: &str) -> hmsync_store::Result<()> {
        self.inner.delete_secret(name).await
    }
}

pub async fn cached_secrets_read_the_store_once_per_ttl(secrets: Box<dyn SecretStore>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let ttl = Duration::from_millis(300);
    let cached = hmsync_store::CachedSecrets::new(CountingSecrets { inner: secrets, reads: Arc::clone(&reads) }, ttl);
    let name = format!("{}/hubspot", unique("conn"));
    cached.put_secret(&name, "v1").await.unwrap();
    for _ in 0..5 {
        assert_eq!(cached.get_secret(&name).await.unwrap().as_deref(), Some("v1"));
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);

    // A write through the cache is read back at once.
    cached.put_secret(&name, "v2").await.unwrap();
    assert_eq!(cached.get_secret(&name).await.unwrap().as_deref(), Some("v2"));
    assert_eq!(reads.load(Ordering::SeqCst), 2);

    // A write behind the cache's back shows once the TTL has passed.
    cached.inner().inner.put_secret(&name, "v3").await.unwrap();
    assert_eq!(cached.get_secret(&name).await.unwrap().as_deref(), Some("v2"));
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(cached.get_secret(&name).await.unwrap().as_deref(), Some("v3"));
    assert_eq!(reads.load(Ordering::SeqCst), 3);

    cached.delete_secret(&name).await.unwrap();
    assert_eq!(cached.get_secret(&name).await.unwrap(), None);
    assert_eq!(cached.get_secret(&name).await.unwrap(), None, "absence is cached too");
    assert_eq!(reads.load(Ordering::SeqCst), 4);
}
