//! Both simulators side by side, each on its own port, plus the admin route that seeds one
//! population of people across both (`POST /__sandbox/people/seed`, served by both servers so
//! a demo can call whichever address it has). A sandbox can be snapshotted and started again
//! from a snapshot (see [`crate::snapshot`]).

use std::net::SocketAddr;
use std::path::Path;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::hubspot::{HubSpotConfig, HubSpotSim, HubSpotState};
use crate::mailerlite::{self, MailerLite, MailerLiteConfig, MailerLiteSim};
use crate::people_seed::{PeopleSeed, PeopleSeedError, PeopleSeedSummary, PeopleSeeder};
use crate::snapshot::{SNAPSHOT_FORMAT_VERSION, SandboxGeneration, SandboxHandle, SandboxSnapshot, SnapshotError};

/// The cross-side seeding route, on both simulators' servers.
pub const PEOPLE_SEED_PATH: &str = "/__sandbox/people/seed";

/// Both simulators' settings (JSON with defaults: `{"hubspot":{…},"mailerlite":{…}}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub hubspot: HubSpotConfig,
    pub mailerlite: MailerLiteConfig,
}

impl SandboxConfig {
    /// Sets both simulators' `time_scale`.
    pub fn with_time_scale(mut self, scale: f64) -> Self {
        self.hubspot.time_scale = scale;
        self.mailerlite.time_scale = scale;
        self
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot serve the {service} simulator on {addr}: {source} (is the port in use? choose another)")]
    Bind { service: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// The HubSpot and MailerLite simulators running together. Dropping it stops both servers.
pub struct Sandbox {
    hubspot: HubSpotSim,
    mailerlite: MailerLiteSim,
}

impl Sandbox {
    /// Binds both addresses (tests use `127.0.0.1:0`) and serves each simulator, with
    /// [`PEOPLE_SEED_PATH`] on both.
    pub async fn start(
        config: SandboxConfig,
        hubspot_addr: SocketAddr,
        mailerlite_addr: SocketAddr,
    ) -> Result<Sandbox, SandboxError> {
        Self::start_with(config, hubspot_addr, mailerlite_addr, None).await
    }

    /// Like [`Sandbox::start`], with the data of a snapshot (see [`crate::snapshot`]): the same
    /// records, ids, tokens and secrets, so a client that stored ids or credentials carries on.
    /// `config` supplies the operational settings (rate limits, time scale, …); the identity
    /// (tokens, portal/app/account ids, client secret, seeds) is the snapshot's. A snapshot of
    /// another format version is refused.
    pub async fn start_restored(
        config: SandboxConfig,
        hubspot_addr: SocketAddr,
        mailerlite_addr: SocketAddr,
        snapshot: SandboxSnapshot,
    ) -> Result<Sandbox, SandboxError> {
        if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::Version {
                path: Default::default(),
                found: Some(snapshot.format_version),
                expected: SNAPSHOT_FORMAT_VERSION,
            }
            .into());
        }
        Self::start_with(config, hubspot_addr, mailerlite_addr, Some(snapshot)).await
    }

    async fn start_with(
        config: SandboxConfig,
        hubspot_addr: SocketAddr,
        mailerlite_addr: SocketAddr,
        snapshot: Option<SandboxSnapshot>,
    ) -> Result<Sandbox, SandboxError> {
        let (hs_listener, _) = bind("HubSpot", hubspot_addr).await?;
        let (ml_listener, ml_addr) = bind("MailerLite", mailerlite_addr).await?;
        let ml_base = format!("http://{ml_addr}/api");
        let (hs_state, account) = match snapshot {
            None => (HubSpotState::new(config.hubspot), MailerLite::new(config.mailerlite, ml_base)),
            Some(s) => (
                HubSpotState::restored(config.hubspot, s.hubspot),
                MailerLite::restored(config.mailerlite, ml_base, s.mailerlite),
            ),
        };
        let routes = people_routes(PeopleSeeder { hubspot: hs_state.clone(), mailerlite: account.clone() });
        let hubspot = HubSpotSim::serve(hs_state, hs_listener, routes.clone())
            .map_err(|source| SandboxError::Bind { service: "HubSpot", addr: hubspot_addr, source })?;
        let mailerlite = MailerLiteSim::serve(account, ml_listener, routes).map_err(|source| SandboxError::Bind {
            service: "MailerLite",
            addr: mailerlite_addr,
            source,
        })?;
        Ok(Sandbox { hubspot, mailerlite })
    }

    pub fn hubspot(&self) -> &HubSpotSim {
        &self.hubspot
    }

    pub fn mailerlite(&self) -> &MailerLiteSim {
        &self.mailerlite
    }

    /// HubSpot's API root, e.g. `http://127.0.0.1:8010` (paths start with `/crm/…`).
    pub fn hubspot_url(&self) -> String {
        self.hubspot.base_url()
    }

    /// MailerLite's API root, e.g. `http://127.0.0.1:8020/api`.
    pub fn mailerlite_url(&self) -> String {
        self.mailerlite.base_url().to_string()
    }

    /// Both sides' state, for seeding from another task.
    pub fn seeder(&self) -> PeopleSeeder {
        PeopleSeeder { hubspot: self.hubspot.state().clone(), mailerlite: self.mailerlite.account().clone() }
    }

    /// Both sides' state as a cheap, `'static` handle: snapshots from another task or thread.
    pub fn handle(&self) -> SandboxHandle {
        SandboxHandle { hubspot: self.hubspot.state().clone(), mailerlite: self.mailerlite.account().clone() }
    }

    /// The data of both simulators now (see [`crate::snapshot`]).
    pub fn snapshot(&self) -> SandboxSnapshot {
        self.handle().snapshot()
    }

    /// A value that changes whenever the data may have changed (see [`SandboxGeneration`]).
    pub fn generation(&self) -> SandboxGeneration {
        self.handle().generation()
    }

    /// Takes a snapshot and writes it to `path` atomically (see [`SandboxSnapshot::save`]).
    /// Blocking: from async code with much data prefer `spawn_blocking`.
    pub fn save_snapshot(&self, path: &Path) -> Result<(), SnapshotError> {
        self.snapshot().save(path)
    }

    /// Reads a snapshot file for [`Sandbox::start_restored`] (see [`SandboxSnapshot::load`]).
    pub fn load_snapshot(path: &Path) -> Result<SandboxSnapshot, SnapshotError> {
        SandboxSnapshot::load(path)
    }

    /// Seeds one population across both sides (see [`PeopleSeed`]). Blocking: from async code
    /// with many people prefer `seeder().seed_blocking_task(…)`.
    pub fn seed_people(&self, seed: &PeopleSeed) -> Result<PeopleSeedSummary, PeopleSeedError> {
        self.seeder().seed(seed)
    }

    /// Sets both simulators' time scale at runtime, as each one's rate-limit admin route does:
    /// the rate-limit windows restart empty at the new scale, HubSpot's OAuth token lifetime and
    /// MailerLite's import delay follow it, and MailerLite's webhook retry delays go back to its
    /// schedule (10 s, 100 s, 1000 s) at the new scale. A scale that is not a positive number
    /// means real time.
    pub fn set_time_scale(&self, scale: f64) {
        let mut hs = self.hubspot.rate_limits();
        hs.time_scale = scale;
        self.hubspot.set_rate_limits(hs);
        let ml = self.mailerlite.config();
        self.mailerlite.set_rate_limits(ml.limit_per_minute, ml.imports_per_minute, scale);
        let dispatcher = self.mailerlite.dispatcher();
        let mut delivery = dispatcher.options();
        delivery.retry_delays_ms = mailerlite::default_delivery(scale).retry_delays_ms;
        dispatcher.set_options(delivery);
    }
}

async fn bind(service: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), SandboxError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| SandboxError::Bind { service, addr, source })?;
    let local = listener.local_addr().map_err(|source| SandboxError::Bind { service, addr, source })?;
    Ok((listener, local))
}

/// `POST /__sandbox/people/seed` over both simulators' state (no auth, never counted or faulted).
pub fn people_routes(seeder: PeopleSeeder) -> Router {
    Router::new().route(PEOPLE_SEED_PATH, post(seed_people_route)).with_state(seeder)
}

async fn seed_people_route(State(seeder): State<PeopleSeeder>, Json(seed): Json<PeopleSeed>) -> Response {
    match seeder.seed_blocking_task(seed).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => {
            let (status, field) = match &e {
                PeopleSeedError::Invalid { field, .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some(*field)),
                PeopleSeedError::HubSpot(h) => (h.status, None),
                PeopleSeedError::MailerLite(m) => (m.status(), None),
                PeopleSeedError::Interrupted => (StatusCode::SERVICE_UNAVAILABLE, None),
            };
            (status, Json(serde_json::json!({ "message": e.to_string(), "field": field }))).into_response()
        }
    }
}
