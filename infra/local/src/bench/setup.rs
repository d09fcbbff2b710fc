//! What every part of the bench starts from: a sandbox at the real rate limits with a time
//! scale, a generated population, the connection the issue describes (two-way, four mapped
//! fields including an option field, a target group), and the engine child pointed at both.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hmsync_core::{ConnectionConfig, FieldMapping};
use hmsync_engine::adapters::{Credentials, HubSpotAuth};
use hmsync_sandbox::hubspot::{WebhookSettings, WebhookSubscription};
use hmsync_sandbox::{MembershipSeed, PeopleSeed, PeopleSeedSummary, Sandbox, SandboxConfig};

use super::engine_child::{EngineProcess, EngineSetup};

/// The bench connection's id.
pub const CONNECTION: &str = "bench";

/// Both simulators on free local ports, every rate-limit window divided by `time_scale`.
pub async fn sandbox(time_scale: f64) -> anyhow::Result<Sandbox> {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    Ok(Sandbox::start(SandboxConfig::default().with_time_scale(time_scale), any, any).await?)
}

/// `per_side` people on each side, half of them on both (30% of those with a conflicting first
/// name and city), 5% opted out in HubSpot and 5% unsubscribed in MailerLite, and an empty
/// MailerLite group to be the target group.
pub fn population(per_side: u64) -> PeopleSeed {
    PeopleSeed {
        per_side,
        overlap: 0.5,
        conflict_rate: 0.3,
        hubspot_opted_out_rate: 0.05,
        mailerlite_unsubscribed_rate: 0.05,
        mailerlite_group: Some(MembershipSeed { name: "From HubSpot".into(), member_rate: 0.0 }),
        ..PeopleSeed::default()
    }
}

/// Seeds on tokio's blocking pool (100,000 people per side take seconds).
pub async fn seed(sandbox: &Sandbox, seed: PeopleSeed) -> anyhow::Result<PeopleSeedSummary> {
    Ok(sandbox.seeder().seed_blocking_task(seed).await?)
}

/// Two-way, every contact, four mapped fields (one an option field: HubSpot's
/// `industry_segment` select ↔ MailerLite's `industry` text) and the target group.
pub fn connection_config(target_group: Option<String>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("Benchmark");
    c.target_group = target_group;
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
    ];
    c
}

/// The sandbox apps' credentials, as a user would save them.
pub fn credentials(sandbox: &Sandbox) -> Credentials {
    let hs = sandbox.hubspot().config();
    Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(sandbox.mailerlite().config().token),
        mailerlite_webhook_secret: None,
        mailerlite_batched_webhook_secret: None,
    }
}

/// Points the sandbox HubSpot app's webhooks at the engine (a real app declares them).
pub fn hubspot_webhooks(sandbox: &Sandbox, api_url: &str) {
    let subscriptions =
        ["contact.creation", "contact.deletion", "contact.merge", "contact.restore", "contact.privacyDeletion"]
            .iter()
            .map(|t| WebhookSubscription { id: 0, event_type: t.to_string(), property_name: None, active: true })
            .chain(std::iter::once(WebhookSubscription {
                id: 0,
                event_type: "contact.propertyChange".into(),
                property_name: Some("*".into()),
                active: true,
            }))
            .collect();
    sandbox.hubspot().set_webhook_settings(Some(WebhookSettings {
        target_url: format!("{api_url}/webhooks/hubspot"),
        subscriptions,
    }));
}

/// How the engine child is found and where it keeps its data.
#[derive(Debug, Clone)]
pub struct Engines {
    /// The `hmsync` binary that runs `bench engine-child`.
    pub exe: PathBuf,
    /// Data directories are made under here and removed after each part.
    pub work_dir: PathBuf,
}

impl Engines {
    pub fn data_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work_dir.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Starts an engine child for the bench connection on `sandbox` and points HubSpot's
    /// webhooks at it.
    pub async fn start(
        &self,
        sandbox: &Sandbox,
        data_dir: &Path,
        target_group: Option<String>,
        api_port: u16,
        resume: bool,
    ) -> anyhow::Result<EngineProcess> {
        let setup = EngineSetup {
            connection_id: CONNECTION.into(),
            config: connection_config(target_group),
            credentials: credentials(sandbox),
            hubspot_url: sandbox.hubspot_url(),
            mailerlite_url: sandbox.mailerlite_url(),
            time_scale: sandbox.mailerlite().config().time_scale,
            api_port,
            resume,
        };
        let engine = EngineProcess::spawn(&self.exe, data_dir, &setup).await?;
        hubspot_webhooks(sandbox, &engine.api_url);
        Ok(engine)
    }

    /// Stops `engine` and starts it again on the same data directory and webhook address (so
    /// the webhooks registered with both apps keep reaching it), with its clients paced at the
    /// sandbox's current time scale. The connection resumes as it was.
    pub async fn restart(
        &self,
        sandbox: &Sandbox,
        engine: EngineProcess,
        target_group: Option<String>,
    ) -> anyhow::Result<EngineProcess> {
        let port = engine.api_port()?;
        let data_dir = engine.data_dir.clone();
        engine.stop().await?;
        self.start(sandbox, &data_dir, target_group, port, true).await
    }
}

/// Resets both simulators' request counts.
pub fn reset_stats(sandbox: &Sandbox) {
    sandbox.hubspot().instrumentation().stats.reset();
    sandbox.mailerlite().instrumentation().stats.reset();
}

fn total_requests(sandbox: &Sandbox) -> u64 {
    sandbox.hubspot().stats().total_requests + sandbox.mailerlite().stats().total_requests
}

/// Waits until nothing moves: both webhook dispatchers idle, the engine's queue empty, and no
/// request reached either simulator for `quiet`. Fails after `limit`.
pub async fn settle(
    sandbox: &Sandbox,
    engine: &mut EngineProcess,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = (total_requests(sandbox), Instant::now());
    loop {
        sandbox.hubspot().dispatcher().wait_idle().await;
        sandbox.mailerlite().dispatcher().wait_idle().await;
        let progress = engine.progress().await?;
        let now = total_requests(sandbox);
        if now != last.0 || progress.queue_len > 0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "the sync did not settle within {limit:?} ({} messages queued, requests still arriving: {})",
                progress.queue_len,
                last.1.elapsed() < quiet
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
