//! `hmsync demo`: the sandbox with generated contacts on both sides, the local runtime, and a
//! demo connection that is activated at once; a progress bar until the initial sync is done.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::TryStreamExt;
use hmsync_core::{ConnectionConfig, FieldMapping, Side};
use hmsync_engine::adapters::{ApiSettings, Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::worker::WorkerSettings;
use hmsync_engine::{Lifecycle, LifecycleError};
use hmsync_sandbox::hubspot::WebhookSettings;
use hmsync_sandbox::mailerlite::UserEdit;
use hmsync_sandbox::{MembershipSeed, PeopleSeed, PeopleSeedSummary, Sandbox, SandboxConfig};
use hmsync_store::{ConnectionStore, ErrorStore, LinkStore};
use serde_json::json;

use crate::runtime::{Runtime, RuntimeOptions};

/// The demo connection's id.
pub const DEMO_CONNECTION: &str = "demo";

/// Subscribers seeded with an industry HubSpot has no option for: the demo's expected errors.
const BAD_OPTION_SUBSCRIBERS: u64 = 3;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// People generated on each side (half of them on both).
    #[arg(long, default_value_t = 2000)]
    pub contacts: u64,
    /// Port of the config API and status page on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    #[arg(long, default_value_t = 8010)]
    pub hubspot_port: u16,
    #[arg(long, default_value_t = 8020)]
    pub mailerlite_port: u16,
    /// Where the store, queue and secrets live; an existing directory is resumed.
    #[arg(long, default_value = ".hmsync/demo")]
    pub data_dir: PathBuf,
    /// The admin token of the config API (generated and kept in the data directory if absent).
    #[arg(long, env = "HMSYNC_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Exit after the initial sync with a one-line JSON summary on stdout.
    #[arg(long)]
    pub until_synced: bool,
    /// Shrinks the sandbox's rate-limit windows (the request shape stays real); 1 is real time.
    #[arg(long, default_value_t = 10.0)]
    pub time_scale: f64,
}

/// The demo connection: two-way, every contact, HubSpot wins conflicts, eight mapped fields of
/// every kind, and a target group.
pub fn demo_config(target_group: Option<String>) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("Demo: HubSpot ↔ MailerLite");
    c.target_group = target_group;
    c.conflict_winner = Side::HubSpot;
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("company", "company"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
        FieldMapping::new("interests", "interests"),
        FieldMapping::new("employees", "employees"),
        FieldMapping::new("signup_date", "signup_date"),
    ];
    c
}

fn seed(args: &DemoArgs) -> PeopleSeed {
    PeopleSeed {
        per_side: args.contacts,
        overlap: 0.5,
        conflict_rate: 0.2,
        hubspot_opted_out_rate: 0.05,
        mailerlite_unsubscribed_rate: 0.05,
        mailerlite_bounced_rate: 0.02,
        no_email_rate: 0.01,
        hubspot_list: Some(MembershipSeed { name: "Newsletter".into(), member_rate: 0.6 }),
        mailerlite_group: Some(MembershipSeed { name: "From HubSpot".into(), member_rate: 0.1 }),
        with_companies: true,
        seed: 1,
    }
}

/// Points the sandbox HubSpot app's webhooks at the runtime (a real app declares them).
fn hubspot_webhooks(sandbox: &Sandbox, public_url: &str) {
    sandbox.hubspot().set_webhook_settings(Some(WebhookSettings::for_sync(format!("{public_url}/webhooks/hubspot"))));
}

/// The one-line result of `--until-synced`.
pub async fn summary(
    rt: &Runtime,
    sandbox: &Sandbox,
    seeded: &PeopleSeedSummary,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let hs_client = hmsync_hubspot::HubSpotClient::new(
        hmsync_hubspot::Auth::StaticToken(sandbox.hubspot().config().token.clone()),
        hmsync_hubspot::HubSpotConfig {
            base_url: sandbox.hubspot_url(),
            time_scale: sandbox.hubspot().config().time_scale,
            ..Default::default()
        },
    );
    let options = hmsync_hubspot::ListOptions { properties: vec!["email".into()], ..Default::default() };
    let contacts: Vec<hmsync_hubspot::Contact> = hs_client.list_contacts(options).try_collect().await?;
    let mut ml_config =
        hmsync_mailerlite::Config::new(sandbox.mailerlite().config().token).with_base_url(sandbox.mailerlite_url());
    ml_config.time_scale = sandbox.mailerlite().config().time_scale;
    let subscribers: Vec<hmsync_mailerlite::Subscriber> =
        hmsync_mailerlite::Client::new(ml_config)?.subscribers(hmsync_mailerlite::Statuses::All).try_collect().await?;
    let mut hs_emails: HashMap<String, usize> = HashMap::new();
    for c in &contacts {
        if let Some(e) = c.email().and_then(hmsync_core::normalize_email) {
            *hs_emails.entry(e).or_default() += 1;
        }
    }
    let mut ml_emails: HashMap<String, usize> = HashMap::new();
    for s in &subscribers {
        *ml_emails.entry(s.email.to_lowercase()).or_default() += 1;
    }
    let duplicates = hs_emails.values().chain(ml_emails.values()).filter(|n| **n > 1).count();
    let mut unique: Vec<&String> = hs_emails.keys().chain(ml_emails.keys()).collect();
    unique.sort();
    unique.dedup();
    let linked = rt.store.count_links(DEMO_CONNECTION).await?;
    let status = rt.engine.status(DEMO_CONNECTION).await?;
    let errors = rt.store.count_errors(DEMO_CONNECTION).await?;
    let both = unique.iter().filter(|e| hs_emails.contains_key(**e) && ml_emails.contains_key(**e)).count();
    Ok(json!({
        "linked": linked,
        "unique_emails": unique.len(),
        "on_both_sides": both,
        "all_linked": linked as usize == unique.len() && both == unique.len(),
        "hubspot_contacts": contacts.len(),
        "mailerlite_subscribers": subscribers.len(),
        "duplicates": duplicates,
        "errors": errors,
        "expected_errors": BAD_OPTION_SUBSCRIBERS,
        "excluded_no_email": seeded.hubspot.without_email,
        "unique_contacts_this_month": status.unique_contacts_this_month,
        "seconds": (seconds * 10.0).round() / 10.0,
    }))
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let sandbox = Sandbox::start(
        SandboxConfig::default().with_time_scale(args.time_scale),
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.hubspot_port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.mailerlite_port)),
    )
    .await
    .context("starting the sandbox (are the ports free? pick others with --hubspot-port/--mailerlite-port)")?;
    let seeder = sandbox.seeder();
    let spec = seed(&args);
    let seeded = tokio::task::spawn_blocking(move || seeder.seed(&spec)).await??;
    // A few subscribers with an industry HubSpot has no option for: the status page's errors.
    let total_ml = seeded.mailerlite.end_index;
    for i in 0..BAD_OPTION_SUBSCRIBERS {
        let email = hmsync_sandbox::common::people::person(total_ml - 1 - i).email;
        let mut fields = serde_json::Map::new();
        fields.insert("industry".into(), json!("Aerospace"));
        sandbox
            .mailerlite()
            .user_edit(&email, &UserEdit { fields, ..Default::default() })
            .map_err(|e| anyhow::anyhow!("seeding a subscriber with a bad option: {e:?}"))?;
    }

    let rt = Runtime::start(RuntimeOptions {
        data_dir: args.data_dir.clone(),
        api_port: args.api_port,
        admin_token: args.admin_token.clone(),
        public_url: None,
        apis: ApiSettings {
            hubspot_base_url: sandbox.hubspot_url(),
            mailerlite_base_url: sandbox.mailerlite_url(),
            time_scale: args.time_scale,
            hubspot_burst_limit: sandbox.hubspot().config().burst_limit,
            fast_retries: false,
        },
        // The sandbox serves HubSpot's authorize page and token endpoint on its API host.
        hubspot_oauth: hmsync_api::HubSpotOAuth { app_url: sandbox.hubspot_url(), api_url: sandbox.hubspot_url() },
        scan_interval: Duration::from_secs_f64((2.0 * 3600.0 / args.time_scale).max(60.0)),
        worker: WorkerSettings::default(),
    })
    .await?;
    hubspot_webhooks(&sandbox, &rt.public_url);

    let hs = sandbox.hubspot().config();
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(sandbox.mailerlite().config().token),
        mailerlite_webhook_secret: None,
    };
    if rt.store.get_connection(DEMO_CONNECTION).await?.is_none() {
        rt.store.create_connection(DEMO_CONNECTION, &demo_config(seeded.mailerlite.group_id.clone())).await?;
    }
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await?;
    rt.engine.credentials_changed(DEMO_CONNECTION).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    rt.engine.register_mailerlite_webhook(DEMO_CONNECTION, &rt.public_url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    match rt.engine.activate(DEMO_CONNECTION).await {
        Ok(_) => {}
        Err(LifecycleError::NotAllowed(_)) => {
            eprintln!("Resuming the demo connection from {}", args.data_dir.display())
        }
        Err(e) => return Err(anyhow::anyhow!("activating the demo connection: {e}")),
    }

    let bar = if args.until_synced {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
            "Initial sync {bar:40} {pos}/{len} records, {per_sec}, ETA {eta}",
        )?)
    };
    loop {
        let status = rt.engine.status(DEMO_CONNECTION).await?;
        if let Some(total) = status.initial_sync.total {
            bar.set_length(total);
        }
        bar.set_position(status.initial_sync.done);
        if status.lifecycle == Lifecycle::Continuous {
            bar.finish_and_clear();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if args.until_synced {
        // Let the webhooks our writes caused arrive and be recognised as echoes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let line = summary(&rt, &sandbox, &seeded, started.elapsed().as_secs_f64()).await?;
        println!("{line}");
        rt.stop().await;
        return Ok(());
    }
    let status = rt.engine.status(DEMO_CONNECTION).await?;
    eprintln!(
        "Initial sync done: {} contacts linked ({} errors to look at).\n\n  Status page:  {}/status\n  Admin token:  {}\n  HubSpot sandbox:     {} (token {})\n  MailerLite sandbox:  {} (token {})\n\nEdit contacts through the sandbox APIs and watch them sync. Ctrl-C stops.",
        status.counts.links.total,
        status.counts.errored,
        rt.api_url,
        rt.admin_token,
        sandbox.hubspot_url(),
        hs.token,
        sandbox.mailerlite_url(),
        sandbox.mailerlite().config().token,
    );
    tokio::signal::ctrl_c().await?;
    rt.stop().await;
    Ok(())
}
