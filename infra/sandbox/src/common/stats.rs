use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Requests to one endpoint, by response status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
}

/// Request accounting of one simulator: per endpoint (`"METHOD /route"`) and per rate-limit
/// bucket (requests the bucket counted). Counts are exact; tests assert on them.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub total_requests: u64,
    pub endpoints: BTreeMap<String, EndpointStats>,
    pub buckets: BTreeMap<String, u64>,
    pub rate_limited: u64,
}

impl StatsSnapshot {
    /// Requests to endpoints whose key starts with `prefix` (e.g. `"POST "` or `"GET /api/"`).
    pub fn requests_matching(&self, prefix: &str) -> u64 {
        self.endpoints.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.requests).sum()
    }

    /// Requests to exactly this endpoint key.
    pub fn requests(&self, key: &str) -> u64 {
        self.endpoints.get(key).map_or(0, |e| e.requests)
    }

    /// Responses with this status over all endpoints.
    pub fn status_count(&self, status: u16) -> u64 {
        self.endpoints.values().map(|e| e.by_status.get(&status).copied().unwrap_or(0)).sum()
    }
}

impl Stats {
    pub fn record(&self, endpoint: &str, status: u16) {
        let mut s = self.inner.lock().expect("stats lock");
        s.total_requests += 1;
        if status == 429 {
            s.rate_limited += 1;
        }
        let e = s.endpoints.entry(endpoint.to_string()).or_default();
        e.requests += 1;
        *e.by_status.entry(status).or_default() += 1;
    }

    /// A rate-limit bucket counted one request.
    pub fn count_bucket(&self, bucket: &str) {
        *self.inner.lock().expect("stats lock").buckets.entry(bucket.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().expect("stats lock").clone()
    }

    pub fn reset(&self) {
        *self.inner.lock().expect("stats lock") = StatsSnapshot::default();
    }
}
