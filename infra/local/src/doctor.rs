//! `hmsync doctor`: the read-only preflight of the connections in a data dir (the one `hmsync
//! serve` uses), or of credentials given as flags before any connection exists, against the real
//! HubSpot and MailerLite accounts, printed as text (a line per finding, marked ✓ ? ! ✗) or as
//! JSON. Exit code 0 when no finding is an error, 1 otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use hmsync_core::ConnectionConfig;
use hmsync_engine::adapters::{ApiSettings, CredentialApis, Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::doctor::{DoctorOptions, DoctorReport};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::{Engine, EngineSettings, SystemClock};
use hmsync_store::{ConnectionStore, FileSecrets, MemorySecrets, SecretStore, SqliteQueue, SqliteStore};

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
    /// Check these credentials instead of a data dir's connections (before setting one up): a
    /// HubSpot app's access token. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, env = "HMSYNC_HUBSPOT_TOKEN", hide_env_values = true)]
    pub hubspot_token: Option<String>,
    /// With --hubspot-token: the app's id.
    #[arg(long)]
    pub hubspot_app_id: Option<u64>,
    /// With --hubspot-token: the app's client secret (it signs HubSpot's webhooks).
    #[arg(long, env = "HMSYNC_HUBSPOT_CLIENT_SECRET", hide_env_values = true)]
    pub hubspot_client_secret: Option<String>,
    /// Check this MailerLite API key instead of a data dir's connections.
    #[arg(long, env = "HMSYNC_MAILERLITE_API_KEY", hide_env_values = true)]
    pub mailerlite_api_key: Option<String>,
    /// With the credential flags: the connection's config as JSON (the `config` of `GET
    /// /connections/{id}`), whose mappings, rules and features are checked; default: a new
    /// connection's.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl DoctorArgs {
    fn has_credentials(&self) -> bool {
        self.hubspot_token.is_some() || self.mailerlite_api_key.is_some()
    }
}

/// The connection id the credential flags are checked under.
const FLAGS_CONNECTION: &str = "flags";

/// Runs the checks and prints the reports; `Ok(false)` when a finding is an error.
pub async fn run(args: DoctorArgs) -> anyhow::Result<bool> {
    let apis = ApiSettings {
        hubspot_base_url: args.hubspot_api_url.clone(),
        mailerlite_base_url: args.mailerlite_api_url.clone(),
        time_scale: args.time_scale,
        ..ApiSettings::default()
    };
    // The credential flags are checked as a draft connection in a scratch store that is
    // dropped afterwards. Of a data dir, the doctor writes nothing but a refreshed OAuth token.
    let scratch = tempfile::tempdir().context("making a scratch dir")?;
    let (store, secrets, ids): (Arc<SqliteStore>, Arc<dyn SecretStore>, Vec<String>) = if args.has_credentials() {
        let store = Arc::new(SqliteStore::open(scratch.path().join(STORE_FILE)).context("opening a scratch store")?);
        let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecrets::new());
        let config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str::<ConnectionConfig>(&text)
                    .with_context(|| format!("{} is not a connection config", path.display()))?
            }
            None => ConnectionConfig::new("credentials given as flags"),
        };
        store.create_connection(FLAGS_CONNECTION, &config).await?;
        let credentials = Credentials {
            hubspot: args.hubspot_token.clone().map(|access_token| HubSpotAuth::Token { access_token }),
            hubspot_app_id: args.hubspot_app_id,
            hubspot_client_secret: args.hubspot_client_secret.clone(),
            mailerlite_api_key: args.mailerlite_api_key.clone(),
            ..Credentials::default()
        };
        save_credentials(&*secrets, FLAGS_CONNECTION, &credentials).await?;
        (store, secrets, vec![FLAGS_CONNECTION.to_string()])
    } else {
        let store_file = args.data_dir.join(STORE_FILE);
        if !store_file.exists() {
            bail!(
                "no hmsync data in {} (no {STORE_FILE}): pass the --data-dir that hmsync serve uses, or the credentials to check (--hubspot-token, --mailerlite-api-key)",
                args.data_dir.display()
            );
        }
        let store = Arc::new(SqliteStore::open(&store_file).context("opening the store")?);
        let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::new(args.data_dir.join("secrets.json")));
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
            bail!(
                "no connection in {}: set one up first (README, \"Setting up a connection\")",
                args.data_dir.display()
            );
        }
        (store, secrets, ids)
    };
    let engine = Engine {
        store: store.clone(),
        // The doctor enqueues nothing: a queue of its own keeps it off the runtime's.
        queue: Arc::new(SqliteQueue::open(scratch.path().join("queue.db")).context("opening a scratch queue")?),
        secrets: secrets.clone(),
        apis: Arc::new(CredentialApis::new(secrets, apis)),
        clock: Arc::new(SystemClock),
        settings: EngineSettings::default(),
        failpoints: Failpoints::default(),
    };
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
