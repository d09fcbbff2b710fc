//! `hmsync doctor`: the read-only preflight of the connections in a data dir (the one `hmsync
//! serve` uses) against the real HubSpot and MailerLite accounts, printed as text (a line per
//! finding, marked ✓ ? ! ✗) or as JSON. Exit code 0 when no finding is an error, 1 otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use hmsync_engine::adapters::{ApiSettings, CredentialApis};
use hmsync_engine::doctor::{DoctorOptions, DoctorReport};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::{Engine, EngineSettings, SystemClock};
use hmsync_store::{ConnectionStore, FileSecrets, SecretStore, SqliteQueue, SqliteStore};

use crate::runtime::STORE_FILE;

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The data dir of `hmsync serve` (its store and credentials).
    #[arg(long, default_value = ".hmsync/data")]
    pub data_dir: PathBuf,
    /// Check only this connection (default: every connection in the data dir).
    #[arg(long)]
    pub connection: Option<String>,
    /// The public URL HubSpot and MailerLite call, as given to `hmsync serve`. Without it, the
    /// URL the connection's MailerLite webhooks were registered at.
    #[arg(long, env = "HMSYNC_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "HUBSPOT_API_URL", default_value = hmsync_hubspot::DEFAULT_BASE_URL)]
    pub hubspot_api_url: String,
    #[arg(long, env = "MAILERLITE_API_URL", default_value = hmsync_mailerlite::DEFAULT_BASE_URL)]
    pub mailerlite_api_url: String,
    /// Match a sandbox started with `--time-scale` (1 for the real services).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Print the reports as a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the checks and prints the reports; `Ok(false)` when a finding is an error.
pub async fn run(args: DoctorArgs) -> anyhow::Result<bool> {
    let store_file = args.data_dir.join(STORE_FILE);
    if !store_file.exists() {
        bail!(
            "no hmsync data in {} (no {STORE_FILE}): pass the --data-dir that hmsync serve uses",
            args.data_dir.display()
        );
    }
    let store = Arc::new(SqliteStore::open(&store_file).context("opening the store")?);
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::new(args.data_dir.join("secrets.json")));
    let apis = ApiSettings {
        hubspot_base_url: args.hubspot_api_url.clone(),
        mailerlite_base_url: args.mailerlite_api_url.clone(),
        time_scale: args.time_scale,
        ..ApiSettings::default()
    };
    let engine = Engine {
        store: store.clone(),
        // The doctor enqueues nothing: a queue of its own keeps it off the runtime's.
        queue: Arc::new(SqliteQueue::open(":memory:").context("opening a scratch queue")?),
        secrets: secrets.clone(),
        apis: Arc::new(CredentialApis::new(secrets, apis)),
        clock: Arc::new(SystemClock),
        settings: EngineSettings::default(),
        failpoints: Failpoints::default(),
    };
    let ids: Vec<String> = match &args.connection {
        Some(id) => {
            if store.get_connection(id).await?.is_none() {
                bail!("no connection {id} in {}", args.data_dir.display());
            }
            vec![id.clone()]
        }
        None => store.list_connections().await?.into_iter().map(|c| c.id).collect(),
    };
    if ids.is_empty() {
        bail!("no connection in {}: set one up first (README, \"Setting up a connection\")", args.data_dir.display());
    }
    let options = DoctorOptions {
        public_url: args.public_url.clone(),
        hubspot_api_url: args.hubspot_api_url.clone(),
        mailerlite_api_url: args.mailerlite_api_url.clone(),
    };
    let mut reports: Vec<DoctorReport> = Vec::new();
    for id in &ids {
        reports.push(engine.doctor(id, &options).await.with_context(|| format!("checking connection {id}"))?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let text: Vec<String> = reports.iter().map(DoctorReport::to_text).collect();
        print!("{}", text.join("\n"));
    }
    Ok(reports.iter().all(|r| r.ok))
}
