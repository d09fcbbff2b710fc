//! The contract suite against the embedded adapters (SQLite store and queue in a temp dir,
//! memory and file secrets), plus what only a local, file-backed queue can show.

#[macro_use]
mod contract;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use contract::{Fixture, QUEUE_MAX_RECEIVES, unique};
use hmsync_store::{
    ConnectionStore, FileSecrets, HistoryEntry, HistoryStore, LinkStore, MemorySecrets, QueueMessage, SecretStore,
    SqliteQueue, SqliteQueueConfig, SqliteStore, Store, SyncQueue, WorkQueue,
};

async fn sqlite_store() -> Fixture<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("hmsync.db")).unwrap();
    Fixture::new(Box::new(store) as Box<dyn Store>).keeping(dir)
}

fn queue_config() -> SqliteQueueConfig {
    SqliteQueueConfig { max_receives: QUEUE_MAX_RECEIVES, ..SqliteQueueConfig::default() }
}

async fn sqlite_queue() -> Fixture<dyn WorkQueue> {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open_with(dir.path().join("queue.db"), queue_config()).unwrap();
    Fixture::new(Box::new(queue) as Box<dyn WorkQueue>).keeping(dir)
}

async fn memory_secrets() -> Fixture<dyn SecretStore> {
    Fixture::new(Box::new(MemorySecrets::new()) as Box<dyn SecretStore>)
}

async fn file_secrets() -> Fixture<dyn SecretStore> {
    let dir = tempfile::tempdir().unwrap();
    let secrets = FileSecrets::new(dir.path().join("secrets.json"));
    Fixture::new(Box::new(secrets) as Box<dyn SecretStore>).keeping(dir)
}

mod store {
    store_contract!(super::sqlite_store);
}

mod queue {
    queue_contract!(super::sqlite_queue);
}

mod memory {
    secrets_contract!(super::memory_secrets);
}

mod file {
    secrets_contract!(super::file_secrets);
}

fn message(group: &str, n: usize) -> QueueMessage {
    QueueMessage { group_id: group.to_string(), dedup_id: format!("{group}-{n}"), body: format!("{group}:{n}") }
}

#[tokio::test]
async fn history_items_store_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hmsync.db");
    let store = SqliteStore::open(&path).unwrap();
    let ttl = Duration::from_secs(90 * 86_400);
    let entry = HistoryEntry {
        link_id: "l1".into(),
        at_ms: 1,
        email: "a@example.com".into(),
        target: hmsync_core::Side::HubSpot,
        field: "firstname".into(),
        before: None,
        after: Some("Ada".into()),
        reason: "changed in MailerLite".into(),
        source: "scan".into(),
    };
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    store.append_history("c1", &[entry], ttl).await.unwrap();
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    let raw = rusqlite::Connection::open(&path).unwrap();
    let expires: u64 = raw.query_row("SELECT expires_at FROM history WHERE conn = 'c1'", [], |r| r.get(0)).unwrap();
    assert!((before + ttl.as_secs()..=after + ttl.as_secs()).contains(&expires), "{expires}");
}

#[tokio::test]
async fn stored_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hmsync.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_connection("c1", &hmsync_core::ConnectionConfig::new("x")).await.unwrap();
        store.put_link("c1", &contract::link("l1", Some("1"), None, "a@example.com"), None).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_connection("c1").await.unwrap().unwrap().version, 1);
    assert_eq!(store.link_by_hubspot_id("c1", "1").await.unwrap().unwrap().id, "l1");
}

#[tokio::test]
async fn an_unacked_message_returns_to_a_new_queue_instance_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let first = SqliteQueue::open(&path).unwrap();
    first.send_batch(&[message("c1", 0), message("c1", 1)]).await.unwrap();
    let taken = first.receive(1, Duration::from_millis(300)).await.unwrap();
    assert_eq!(taken[0].body, "c1:0");
    // The worker dies between receive and ack.
    drop(first);

    let second = SqliteQueue::open(&path).unwrap();
    assert!(second.receive(10, Duration::from_secs(60)).await.unwrap().is_empty(), "still in flight");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let back = second.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["c1:0", "c1:1"]);
    assert_eq!(back[0].receive_count, 2);
    assert_eq!(back[0].message_id, taken[0].message_id);
    // The dead worker's receipt no longer acks anything.
    assert!(matches!(second.ack(&taken[0].receipt).await, Err(hmsync_store::StoreError::NotFound { .. })));
    for m in back {
        second.ack(&m.receipt).await.unwrap();
    }
    assert!(second.is_empty().await.unwrap());
}

#[tokio::test]
async fn a_released_message_does_not_count_the_delivery_it_was_not_tried_in() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open_with(dir.path().join("queue.db"), queue_config()).unwrap();
    queue.send_batch(&[message("c1", 0), message("c1", 1)]).await.unwrap();
    // The first message keeps failing; the one behind it is given back untried every time.
    for attempt in 1..=QUEUE_MAX_RECEIVES {
        let got = queue.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            got.iter().map(|m| (m.body.as_str(), m.receive_count)).collect::<Vec<_>>(),
            vec![("c1:0", attempt), ("c1:1", 1)]
        );
        queue.release(&got[1].receipt).await.unwrap();
        queue.retry_later(&got[0].receipt, Duration::ZERO).await.unwrap();
    }
    let next = queue.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(next.iter().map(|m| (m.body.as_str(), m.receive_count)).collect::<Vec<_>>(), vec![("c1:1", 1)]);
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1, "only the failing message is a dead letter");
    // A released delivery's receipt is void.
    queue.release(&next[0].receipt).await.unwrap();
    assert!(matches!(queue.release(&next[0].receipt).await, Err(hmsync_store::StoreError::NotFound { .. })));
    assert!(matches!(queue.ack(&next[0].receipt).await, Err(hmsync_store::StoreError::NotFound { .. })));
}

#[tokio::test]
async fn the_first_message_of_a_group_set_aside_as_a_dead_letter_makes_way_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open_with(dir.path().join("queue.db"), queue_config()).unwrap();
    queue.send_batch(&[message("c1", 0), message("c1", 1), message("c2", 0)]).await.unwrap();
    for _ in 0..QUEUE_MAX_RECEIVES {
        let got = queue.receive_heads(1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got[0].body, "c1:0");
        queue.retry_later(&got[0].receipt, Duration::ZERO).await.unwrap();
    }
    let mut heads = queue.receive_heads(10, Duration::from_secs(60)).await.unwrap();
    heads.sort_by(|x, y| x.body.cmp(&y.body));
    assert_eq!(
        heads.iter().map(|m| (m.body.as_str(), m.receive_count)).collect::<Vec<_>>(),
        vec![("c1:1", 1), ("c2:0", 1)]
    );
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);
}

#[test]
fn the_local_queue_dead_letters_after_as_many_receives_as_the_template() {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    let expected = format!("maxReceiveCount: {}", SqliteQueueConfig::default().max_receives);
    assert!(template.contains(&expected), "template.yaml has no `{expected}`");
}

#[tokio::test]
async fn a_restarted_sole_consumer_gets_its_in_flight_messages_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let first = SqliteQueue::open(&path).unwrap();
    first.send_batch(&[message("c1", 0), message("c1", 1)]).await.unwrap();
    let taken = first.receive(1, Duration::from_secs(300)).await.unwrap();
    drop(first);

    let second = SqliteQueue::open(&path).unwrap();
    assert_eq!(second.release_in_flight().await.unwrap(), 1);
    let back = second.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["c1:0", "c1:1"], "in order");
    assert_eq!(back[0].message_id, taken[0].message_id);
    assert!(matches!(second.ack(&taken[0].receipt).await, Err(hmsync_store::StoreError::NotFound { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_instances_on_one_file_deliver_each_message_once_in_group_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // The store may share the file.
    let _store = SqliteStore::open(&path).unwrap();
    let queues: Vec<SqliteQueue> = (0..2).map(|_| SqliteQueue::open(&path).unwrap()).collect();
    let groups: Vec<String> = (0..4).map(|_| unique("g")).collect();

    let mut senders = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let queue = queues[i % 2].clone();
        let group = group.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..25 {
                queue.send_batch(&[message(&group, n)]).await.unwrap();
            }
        }));
    }
    // Ticks taken between receive and ack order the deliveries of a group globally: the next
    // message of a group can only be received after the previous one was acked.
    let ticks = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for worker in 0..4 {
        let queue = queues[worker % 2].clone();
        let ticks = Arc::clone(&ticks);
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut idle = 0;
            while idle < 50 {
                let batch = queue.receive(3, Duration::from_secs(60)).await.unwrap();
                if batch.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                idle = 0;
                for m in batch {
                    got.push((m.group_id.clone(), m.body.clone(), ticks.fetch_add(1, Ordering::SeqCst)));
                    queue.ack(&m.receipt).await.unwrap();
                }
            }
            got
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let mut delivered: Vec<(String, String, usize)> = Vec::new();
    for c in consumers {
        delivered.extend(c.await.unwrap());
    }
    assert_eq!(delivered.len(), 100, "each message once");
    delivered.sort_by_key(|(_, _, tick)| *tick);
    let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, body, _) in delivered {
        per_group.entry(g).or_default().push(body);
    }
    for group in &groups {
        let expected: Vec<String> = (0..25).map(|n| format!("{group}:{n}")).collect();
        assert_eq!(per_group[group], expected);
    }
    assert!(queues[0].is_empty().await.unwrap());
}

#[tokio::test]
async fn the_local_queue_remembers_dedup_ids_for_the_window_even_after_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteQueueConfig { dedup_window: Duration::from_millis(300), ..SqliteQueueConfig::default() };
    let queue = SqliteQueue::open_with(dir.path().join("queue.db"), config).unwrap();
    queue.send_batch(&[message("c1", 0)]).await.unwrap();
    let got = queue.receive(10, Duration::from_secs(60)).await.unwrap();
    queue.ack(&got[0].receipt).await.unwrap();

    // Delivered and acked: a re-send within the window is still a duplicate (as in SQS).
    queue.send_batch(&[message("c1", 0)]).await.unwrap();
    assert!(queue.is_empty().await.unwrap());
    // After the window it is new work again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    queue.send_batch(&[message("c1", 0)]).await.unwrap();
    assert_eq!(queue.receive(10, Duration::from_secs(60)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_queue_database_from_before_last_errors_is_upgraded_and_keeps_its_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        // The dead-letter table as it was created before dead letters kept their last error.
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE queue_dead_letters (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 message_id TEXT NOT NULL,
                 group_id TEXT NOT NULL,
                 dedup_id TEXT NOT NULL,
                 body TEXT NOT NULL,
                 receive_count INTEGER NOT NULL,
                 dead_at_ms INTEGER NOT NULL
             );
             INSERT INTO queue_dead_letters (message_id, group_id, dedup_id, body, receive_count, dead_at_ms)
             VALUES ('old-1', 'conn', 'd', 'old body', 10, 0);",
        )
        .unwrap();
    }
    let queue = SqliteQueue::open(&path).unwrap();
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].message_id.as_str(), dead[0].last_error.as_deref()), ("old-1", None));

    queue.send_batch(&[message("conn", 1)]).await.unwrap();
    let got = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    queue.dead_letter(&got[0], "cannot succeed").await.unwrap();
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.last_error.as_deref()).collect::<Vec<_>>(), vec![None, Some("cannot succeed")]);

    // Opening it again (the column exists now) changes nothing.
    drop(queue);
    assert_eq!(SqliteQueue::open(&path).unwrap().dead_letters(10).await.unwrap().len(), 2);
}
