//! `hmsync serve`: the local runtime against real HubSpot and MailerLite (or `hmsync sandbox`):
//! the config API, the status page, the webhook receivers, the worker and the schedule.

use std::path::PathBuf;
use std::time::Duration;

use hmsync_engine::adapters::ApiSettings;
use hmsync_engine::worker::WorkerSettings;

use crate::runtime::{Runtime, RuntimeOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Port of the config API, status page and webhook receivers on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Where the store, queue and secrets live; restarting on it resumes.
    #[arg(long, default_value = ".hmsync/data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "HMSYNC_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// The public URL HubSpot and MailerLite call for webhooks (e.g. your tunnel or proxy).
    /// Without it the local address is used: only a sandbox on this machine can call it, so
    /// against the real MailerLite no webhook is registered (the status says so).
    #[arg(long, env = "HMSYNC_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "HUBSPOT_API_URL", default_value = hmsync_hubspot::DEFAULT_BASE_URL)]
    pub hubspot_api_url: String,
    #[arg(long, env = "MAILERLITE_API_URL", default_value = hmsync_mailerlite::DEFAULT_BASE_URL)]
    pub mailerlite_api_url: String,
    /// Requests per 10 s of the HubSpot app (100; 190 on Professional/Enterprise; 110 for OAuth apps).
    #[arg(long, default_value_t = 100)]
    pub hubspot_burst_limit: u32,
    /// Minutes between scheduled scans of every active connection.
    #[arg(long, default_value_t = 120)]
    pub scan_minutes: u64,
    /// Match a sandbox started with `--time-scale` (1 for the real services).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = Runtime::start(RuntimeOptions {
        data_dir: args.data_dir.clone(),
        api_port: args.api_port,
        admin_token: args.admin_token.clone(),
        public_url: args.public_url.clone(),
        apis: ApiSettings {
            hubspot_base_url: args.hubspot_api_url.clone(),
            mailerlite_base_url: args.mailerlite_api_url.clone(),
            time_scale: args.time_scale,
            hubspot_burst_limit: args.hubspot_burst_limit,
            fast_retries: false,
        },
        hubspot_oauth: oauth_hosts(&args.hubspot_api_url),
        scan_interval: Duration::from_secs(args.scan_minutes.max(1) * 60),
        worker: WorkerSettings::default(),
        delivery: hmsync_engine::DeliveryPolicy::default(),
    })
    .await?;
    let mailerlite = match rt.webhook_target.url("<connection id>") {
        Ok(url) => format!("{url} (registered by each connection's activation)"),
        Err(why) => format!("not registered: {why}; MailerLite changes arrive with the scheduled scan only"),
    };
    eprintln!(
        "hmsync is serving on {} (public URL {}).\n  Status page: {}/status\n  Admin token: {}\n  HubSpot webhooks → {}/webhooks/hubspot\n  MailerLite webhooks → {mailerlite}\nCtrl-C stops.",
        rt.api_url, rt.public_url, rt.api_url, rt.admin_token, rt.public_url
    );
    tokio::signal::ctrl_c().await?;
    rt.stop().await;
    Ok(())
}

/// HubSpot's own authorize page for the real API; a sandbox (any other API URL) serves its
/// authorize page and token endpoint on the API host.
fn oauth_hosts(hubspot_api_url: &str) -> hmsync_api::HubSpotOAuth {
    if hubspot_api_url.trim_end_matches('/') == hmsync_hubspot::DEFAULT_BASE_URL.trim_end_matches('/') {
        hmsync_api::HubSpotOAuth::default()
    } else {
        hmsync_api::HubSpotOAuth { app_url: hubspot_api_url.to_string(), api_url: hubspot_api_url.to_string() }
    }
}
