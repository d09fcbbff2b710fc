//! Wall-clock helpers: stored timestamps are epoch milliseconds, TTL attributes epoch seconds
//! (DynamoDB's TTL format). They read the one wall clock, `hmsync_http::now_ms`, directly and not
//! through the engine's `Clock` port: queue visibility and expiry are real time, as they are in
//! SQS and DynamoDB.

use std::time::Duration;

/// The wall clock as the store keeps it (unsigned milliseconds).
pub(crate) fn now_ms() -> u64 {
    hmsync_http::now_ms().max(0) as u64
}

pub(crate) fn now_secs() -> u64 {
    now_ms() / 1000
}

/// The epoch second at which something stored now with `ttl` expires. An item is live while
/// `now_secs() < expires_at`, so a zero TTL is expired at once.
pub(crate) fn expires_at(ttl: Duration) -> u64 {
    (now_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)) / 1000
}
