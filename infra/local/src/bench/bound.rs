//! The lower bound the rate limits put on a run: for each rate-limit bucket, the requests it
//! counted divided by the rate it allows; the slowest bucket is the bound. No integration that
//! needs those requests can finish sooner (except for the head start a sliding window gives:
//! its first window's worth of requests can go at once, so short runs may beat the bound).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which service a rate limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    HubSpot,
    MailerLite,
}

/// One rate limit: `requests` per `window_secs`, counted by the sandbox under `bucket`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub service: Service,
    /// The sandbox's stats bucket (`hubspot().stats().buckets`, `mailerlite().stats().buckets`).
    pub bucket: &'static str,
    pub requests: u32,
    pub window_secs: f64,
    pub label: &'static str,
}

impl RateLimit {
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.window_secs
    }
}

/// The documented rate limits: HubSpot's burst window (a private/project app on a Free/Starter
/// portal) and its search limit (<https://developers.hubspot.com/docs/api/usage-details>),
/// MailerLite's global limit and its import limit (group imports and batches made only of
/// subscriber upserts, counted on top of the global one; <https://developers.mailerlite.com/docs/>).
pub const RATE_LIMITS: [RateLimit; 4] = [
    RateLimit {
        service: Service::HubSpot,
        bucket: "burst",
        requests: 100,
        window_secs: 10.0,
        label: "HubSpot burst 100/10 s",
    },
    RateLimit {
        service: Service::HubSpot,
        bucket: "search",
        requests: 5,
        window_secs: 1.0,
        label: "HubSpot search 5/s",
    },
    RateLimit {
        service: Service::MailerLite,
        bucket: "requests",
        requests: 120,
        window_secs: 60.0,
        label: "MailerLite 120/min",
    },
    RateLimit {
        service: Service::MailerLite,
        bucket: "imports",
        requests: 5,
        window_secs: 60.0,
        label: "MailerLite imports 5/min",
    },
];

/// One bucket's share of the bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketTime {
    pub limit: String,
    pub requests: u64,
    /// `requests ÷ allowed rate`, in real seconds.
    pub seconds: f64,
}

/// The bound of a run: the largest bucket time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// Real seconds.
    pub seconds: f64,
    /// The limit that gives the bound (empty when no request was counted).
    pub binding: String,
    pub buckets: Vec<BucketTime>,
}

/// The bound for the requests each bucket counted (bucket name → requests, per service).
pub fn bound(hubspot: &BTreeMap<String, u64>, mailerlite: &BTreeMap<String, u64>) -> Bound {
    let buckets: Vec<BucketTime> = RATE_LIMITS
        .iter()
        .map(|limit| {
            let counts = match limit.service {
                Service::HubSpot => hubspot,
                Service::MailerLite => mailerlite,
            };
            let requests = counts.get(limit.bucket).copied().unwrap_or(0);
            BucketTime { limit: limit.label.to_string(), requests, seconds: requests as f64 / limit.per_second() }
        })
        .collect();
    let slowest = buckets.iter().filter(|b| b.requests > 0).max_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Bound {
        seconds: slowest.map_or(0.0, |b| b.seconds),
        binding: slowest.map(|b| b.limit.clone()).unwrap_or_default(),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn each_bucket_is_its_requests_over_its_rate_and_the_slowest_is_the_bound() {
        let b = bound(
            &counts(&[("burst", 345), ("search", 50), ("daily", 395)]),
            &counts(&[("requests", 420), ("imports", 3)]),
        );
        let seconds: Vec<(String, u64, f64)> =
            b.buckets.iter().map(|t| (t.limit.clone(), t.requests, t.seconds)).collect();
        assert_eq!(
            seconds,
            vec![
                ("HubSpot burst 100/10 s".to_string(), 345, 34.5),
                ("HubSpot search 5/s".to_string(), 50, 10.0),
                ("MailerLite 120/min".to_string(), 420, 210.0),
                ("MailerLite imports 5/min".to_string(), 3, 36.0),
            ]
        );
        assert_eq!(b.seconds, 210.0);
        assert_eq!(b.binding, "MailerLite 120/min");
    }

    #[test]
    fn a_few_imports_can_be_the_bound() {
        let b = bound(&counts(&[("burst", 10)]), &counts(&[("requests", 20), ("imports", 2)]));
        assert_eq!((b.seconds, b.binding.as_str()), (24.0, "MailerLite imports 5/min"));
    }

    #[test]
    fn no_requests_no_bound() {
        let b = bound(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!((b.seconds, b.binding.as_str()), (0.0, ""));
        assert_eq!(b.buckets.len(), 4);
    }
}
