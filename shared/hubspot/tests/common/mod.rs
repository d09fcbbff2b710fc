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

/// One scripted answer of [`Scripted`]: a status, headers and a JSON body, or no answer at all.
#[derive(Clone)]
pub enum Answer {
    Reply(u16, Vec<(&'static str, String)>, serde_json::Value),
    Hang,
}

/// A server that answers every request with the next scripted answer (the last one repeats),
/// for the answers the sandbox does not produce (a 477, a Retry-After of hours, a hang).
pub struct Scripted {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

pub async fn scripted(answers: Vec<Answer>) -> Scripted {
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let answers = std::sync::Arc::new(answers);
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let answer = answers[n.min(answers.len() - 1)].clone();
        async move {
            match answer {
                Answer::Hang => std::future::pending::<axum::response::Response>().await,
                Answer::Reply(status, headers, body) => {
                    let mut response = (http::StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
                    for (k, v) in headers {
                        response.headers_mut().insert(k, v.parse().unwrap());
                    }
                    response
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Scripted { url, requests }
}
