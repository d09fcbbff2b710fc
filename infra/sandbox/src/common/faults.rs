use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault rule. Rules apply to every request whose endpoint key equals `endpoint`, or to
/// every request when `endpoint` is `"*"`. Probabilities are in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSpec {
    pub endpoint: String,
    /// Chance that a request fails with a 500/502/503 before it reaches the handler.
    pub error_rate: f64,
    /// Chance that a 429 burst starts at this request.
    pub rate_limit_rate: f64,
    /// How many consecutive matching requests a burst refuses (at least 1).
    pub rate_limit_burst: u32,
    /// Added to every matching request.
    pub latency_ms: u64,
    /// Chance that the response is held back for `hang_ms` *after* the handler applied the
    /// request (a client that times out does not know whether its write happened).
    pub hang_rate: f64,
    pub hang_ms: u64,
}

impl FaultSpec {
    pub fn everywhere() -> Self {
        Self { endpoint: "*".into(), ..Default::default() }
    }
}

/// What the injector decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    None,
    ServerError(u16),
    RateLimited,
    HangAfterWrite(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDecision {
    pub latency: Duration,
    pub action: FaultAction,
}

/// Counts of injected faults, for the figures a chaos run prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub server_errors: u64,
    pub rate_limited: u64,
    pub hangs: u64,
    pub delayed: u64,
}

#[derive(Debug)]
struct Inner {
    specs: Vec<FaultSpec>,
    rng: fastrand::Rng,
    bursts: HashMap<String, u32>,
    counts: FaultCounts,
}

/// Seeded, deterministic fault injection: the same seed and the same request sequence give the
/// same faults.
#[derive(Debug)]
pub struct FaultInjector {
    inner: Mutex<Inner>,
}

impl FaultInjector {
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                specs: Vec::new(),
                rng: fastrand::Rng::with_seed(seed),
                bursts: HashMap::new(),
                counts: FaultCounts::default(),
            }),
        }
    }

    /// Replaces every rule (an empty list turns faults off) and reseeds.
    pub fn set(&self, specs: Vec<FaultSpec>, seed: u64) {
        let mut inner = self.inner.lock().expect("faults lock");
        inner.specs = specs;
        inner.rng = fastrand::Rng::with_seed(seed);
        inner.bursts.clear();
    }

    pub fn specs(&self) -> Vec<FaultSpec> {
        self.inner.lock().expect("faults lock").specs.clone()
    }

    pub fn counts(&self) -> FaultCounts {
        self.inner.lock().expect("faults lock").counts.clone()
    }

    pub fn decide(&self, endpoint: &str) -> FaultDecision {
        let mut inner = self.inner.lock().expect("faults lock");
        let mut decision = FaultDecision { latency: Duration::ZERO, action: FaultAction::None };
        if inner.specs.is_empty() {
            return decision;
        }
        let specs: Vec<FaultSpec> =
            inner.specs.iter().filter(|s| s.endpoint == "*" || s.endpoint == endpoint).cloned().collect();
        for spec in specs {
            decision.latency += Duration::from_millis(spec.latency_ms);
            if decision.action != FaultAction::None {
                continue;
            }
            let burst_key = format!("{}|{}", spec.endpoint, endpoint);
            if let Some(left) = inner.bursts.get_mut(&burst_key)
                && *left > 0
            {
                *left -= 1;
                decision.action = FaultAction::RateLimited;
                continue;
            }
            if spec.rate_limit_rate > 0.0 && inner.rng.f64() < spec.rate_limit_rate {
                inner.bursts.insert(burst_key, spec.rate_limit_burst.max(1) - 1);
                decision.action = FaultAction::RateLimited;
            } else if spec.error_rate > 0.0 && inner.rng.f64() < spec.error_rate {
                let code = [500, 502, 503][inner.rng.usize(0..3)];
                decision.action = FaultAction::ServerError(code);
            } else if spec.hang_rate > 0.0 && inner.rng.f64() < spec.hang_rate {
                decision.action = FaultAction::HangAfterWrite(Duration::from_millis(spec.hang_ms.max(1)));
            }
        }
        match decision.action {
            FaultAction::ServerError(_) => inner.counts.server_errors += 1,
            FaultAction::RateLimited => inner.counts.rate_limited += 1,
            FaultAction::HangAfterWrite(_) => inner.counts.hangs += 1,
            FaultAction::None => {}
        }
        if !decision.latency.is_zero() {
            inner.counts.delayed += 1;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, spec: FaultSpec, n: usize) -> Vec<FaultAction> {
        let f = FaultInjector::new(seed);
        f.set(vec![spec], seed);
        (0..n).map(|_| f.decide("GET /x").action).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        let spec = FaultSpec { error_rate: 0.3, ..FaultSpec::everywhere() };
        assert_eq!(run(7, spec.clone(), 200), run(7, spec.clone(), 200));
        assert_ne!(run(7, spec.clone(), 200), run(8, spec, 200));
    }

    #[test]
    fn error_rate_is_roughly_honoured() {
        let spec = FaultSpec { error_rate: 0.1, ..FaultSpec::everywhere() };
        let errors = run(1, spec, 10_000).iter().filter(|a| matches!(a, FaultAction::ServerError(_))).count();
        assert!((800..1200).contains(&errors), "{errors}");
    }

    #[test]
    fn a_burst_refuses_consecutive_requests() {
        let spec = FaultSpec { rate_limit_rate: 1.0, rate_limit_burst: 3, ..FaultSpec::everywhere() };
        let f = FaultInjector::new(1);
        f.set(vec![spec], 1);
        assert!((0..3).all(|_| f.decide("GET /x").action == FaultAction::RateLimited));
        assert_eq!(f.counts().rate_limited, 3);
    }

    #[test]
    fn rules_match_their_endpoint_only() {
        let f = FaultInjector::new(1);
        f.set(vec![FaultSpec { endpoint: "GET /a".into(), error_rate: 1.0, ..Default::default() }], 1);
        assert!(matches!(f.decide("GET /a").action, FaultAction::ServerError(_)));
        assert_eq!(f.decide("GET /b").action, FaultAction::None);
    }
}
