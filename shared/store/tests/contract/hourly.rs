//! The contract of the hourly counters (the status page's charts).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use hmsync_core::ConnectionConfig;
use hmsync_store::{HOUR_MS, Store, StoreError};

use super::{DAY, unique};

/// A whole hour, well in the past (the counters are about when work happened, not when stored).
const HOUR: u64 = 1_764_000_000_000 / HOUR_MS * HOUR_MS;

fn counters(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

pub async fn hourly_counters_add_up_per_hour_are_read_in_range_and_expire(store: &dyn Store) {
    let (conn, other) = (unique("conn"), unique("conn"));
    // Concurrent writers of one hour never lose an increment.
    join_all((0..10).map(|_| store.add_hourly(&conn, HOUR, &[("written_hubspot", 2), ("requests_hubspot", 3)], DAY)))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, StoreError>>()
        .unwrap();
    // A name twice in one call counts twice; a call without deltas is a no-op.
    store.add_hourly(&conn, HOUR, &[("errors", 1), ("errors", 1)], DAY).await.unwrap();
    store.add_hourly(&conn, HOUR, &[], DAY).await.unwrap();
    store.add_hourly(&conn, HOUR + 2 * HOUR_MS, &[("written_mailerlite", 7)], DAY).await.unwrap();
    store.add_hourly(&conn, HOUR + 5 * HOUR_MS, &[("errors", 1)], DAY).await.unwrap();
    store.add_hourly(&other, HOUR, &[("errors", 100)], DAY).await.unwrap();

    let read = store.read_hourly(&conn, HOUR, HOUR + 4 * HOUR_MS).await.unwrap();
    let hours: Vec<u64> = read.iter().map(|h| h.hour_ms).collect();
    assert_eq!(hours, vec![HOUR, HOUR + 2 * HOUR_MS], "oldest first, within the range, only hours with counters");
    assert_eq!(read[0].counters, counters(&[("errors", 2), ("requests_hubspot", 30), ("written_hubspot", 20)]));
    assert_eq!(read[1].counters, counters(&[("written_mailerlite", 7)]));
    // Both ends are inclusive; the other connection keeps its own.
    assert_eq!(store.read_hourly(&conn, HOUR + 5 * HOUR_MS, HOUR + 5 * HOUR_MS).await.unwrap().len(), 1);
    assert_eq!(store.read_hourly(&other, 0, u64::MAX / 2).await.unwrap()[0].counters, counters(&[("errors", 100)]));
    assert!(store.read_hourly(&conn, HOUR + HOUR_MS, HOUR + HOUR_MS).await.unwrap().is_empty());

    // Expired hours are never returned, even before the backend deletes them.
    let gone = unique("conn");
    store.add_hourly(&gone, HOUR, &[("errors", 1)], Duration::ZERO).await.unwrap();
    assert!(store.read_hourly(&gone, HOUR, HOUR).await.unwrap().is_empty());

    // Only whole hours are counters' keys: anything else is a caller's bug, and nothing is written.
    let err = store.add_hourly(&conn, HOUR + 1, &[("errors", 1)], DAY).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert_eq!(store.read_hourly(&conn, HOUR, HOUR).await.unwrap()[0].counters["errors"], 2);

    // Deleting the connection removes its hours.
    store.create_connection(&conn, &ConnectionConfig::new("x")).await.unwrap();
    assert!(store.delete_connection(&conn).await.unwrap());
    assert!(store.read_hourly(&conn, 0, u64::MAX / 2).await.unwrap().is_empty());
    assert_eq!(store.read_hourly(&other, HOUR, HOUR).await.unwrap().len(), 1);
}
