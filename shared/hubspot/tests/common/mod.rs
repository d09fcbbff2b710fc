//! Shared setup: a HubSpot sandbox on 127.0.0.1 and a client pointed at it.
#![allow(dead_code)]

use std::time::Duration;

use hmsync_http::RetryPolicy;
use hmsync_hubspot::{Auth, HubSpotClient, HubSpotConfig};
use hmsync_sandbox::hubspot::{HubSpotConfig as SimConfig, HubSpotSim};

pub async fn sim_with(config: SimConfig) -> HubSpotSim {
    HubSpotSim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

pub async fn sim() -> HubSpotSim {
    sim_with(SimConfig::default()).await
}

/// Client settings matching the sandbox's burst limit and time scale, with fast retries (the
/// search pace is the client's own: 4 per second, under the portal's 5).
pub fn config_for(sim: &HubSpotSim) -> HubSpotConfig {
    let c = sim.config();
    HubSpotConfig {
        base_url: sim.base_url(),
        burst_limit: c.burst_limit,
        burst_window: Duration::from_millis(c.burst_window_ms),
        time_scale: c.time_scale,
        pacing_margin: Duration::from_millis(25),
        retry: RetryPolicy::fast(6),
        ..HubSpotConfig::default()
    }
}

pub fn client(sim: &HubSpotSim) -> HubSpotClient {
    HubSpotClient::new(Auth::StaticToken(sim.config().token), config_for(sim))
}

pub fn props(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
