//! Wall-clock helpers: stored timestamps are epoch milliseconds, TTL attributes epoch seconds
//! (DynamoDB's TTL format).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn now_secs() -> u64 {
    now_ms() / 1000
}

/// The epoch second at which something stored now with `ttl` expires. An item is live while
/// `now_secs() < expires_at`, so a zero TTL is expired at once.
pub(crate) fn expires_at(ttl: Duration) -> u64 {
    (now_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)) / 1000
}
