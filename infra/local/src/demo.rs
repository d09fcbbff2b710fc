//! `hmsync demo`: the sandbox with generated contacts on both sides, the local runtime, and a
//! demo connection that is activated at once; a progress bar until the initial sync is done.
//!
//! Restarting on the same data directory resumes. The store (links, state, queued work) is on
//! disk anyway; the sandbox lives in memory, so its data is kept beside the store in
//! [`SANDBOX_SNAPSHOT_FILE`]: saved right after seeding or restoring, every
//! [`SAVE_INTERVAL`] while it changes, and when the demo stops (Ctrl-C, or the end of
//! `--until-synced`). A data directory whose store holds the demo connection is resumed from
//! that file, never seeded again (a fresh sandbox would hand out the ids the store's links
//! name to other people). See `docs/demo-resume.md`.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{FutureExt, TryStreamExt};
use hmsync_core::{ConnectionConfig, FieldMapping, Side};
use hmsync_engine::adapters::{ApiSettings, Credentials, HubSpotAuth, save_credentials};
use hmsync_engine::worker::WorkerSettings;
use hmsync_engine::{ContactRef, Lifecycle, LifecycleError, Origin, SyncMessage};
use hmsync_sandbox::hubspot::WebhookSettings;
use hmsync_sandbox::mailerlite::UserEdit;
use hmsync_sandbox::{
    MembershipSeed, PeopleSeed, PeopleSeedSummary, Sandbox, SandboxConfig, SandboxGeneration, SandboxHandle,
    SnapshotError,
};
use hmsync_store::{ConnectionStore, ErrorStore, LinkStore, SqliteStore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runtime::{Runtime, RuntimeOptions, STORE_FILE};

/// The demo connection's id.
pub const DEMO_CONNECTION: &str = "demo";

/// Subscribers seeded with an industry HubSpot has no option for: the demo's expected errors.
const BAD_OPTION_SUBSCRIBERS: u64 = 3;

/// The sandbox's data in the data directory (see the module docs).
pub const SANDBOX_SNAPSHOT_FILE: &str = "sandbox.json";

/// How often the sandbox's data is saved while it changes: the most a crash (no Ctrl-C) loses.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// The snapshot attachment holding [`DemoSeed`].
const SEED_ATTACHMENT: &str = "hmsync_demo_seed";

/// What the demo seeded, kept with the sandbox's data: a resumed demo's summary counts against
/// it, and it is what a resumed demo is (its `--contacts` may differ).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoSeed {
    pub people: PeopleSeed,
    pub seeded: PeopleSeedSummary,
}

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
    /// Seed the simulators but create no connection: print the page's URL, the admin token and
    /// the simulators' credentials, and set the first connection up in the browser.
    #[arg(long, conflicts_with = "until_synced")]
    pub setup: bool,
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
        "expected_unique_contacts": seeded.expected_unique_contacts,
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

/// Whether the data directory's store already holds the demo connection (then the demo
/// resumes); with `--setup`, any connection set up in the browser. Opens the store only if it
/// exists, and closes it again before the runtime opens it.
async fn holds_demo_connection(data_dir: &Path, setup: bool) -> anyhow::Result<bool> {
    let path = data_dir.join(STORE_FILE);
    if !path.exists() {
        return Ok(false);
    }
    let store = SqliteStore::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
    if setup {
        return Ok(!store.list_connections().await?.is_empty());
    }
    Ok(store.get_connection(DEMO_CONNECTION).await?.is_some())
}

/// A fresh sandbox with the demo's people, and a few subscribers with an industry HubSpot has
/// no option for (the status page's errors).
async fn seeded_sandbox(
    args: &DemoArgs,
    config: SandboxConfig,
    hubspot: SocketAddr,
    mailerlite: SocketAddr,
) -> anyhow::Result<(Sandbox, DemoSeed)> {
    let sandbox = start_error(Sandbox::start(config, hubspot, mailerlite).await)?;
    let seeder = sandbox.seeder();
    let people = seed(args);
    let spec = people.clone();
    let seeded = tokio::task::spawn_blocking(move || seeder.seed(&spec)).await??;
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
    if args.setup {
        // A calculated HubSpot property has a MailerLite field of its name: the setup screens
        // suggest it, one way (HubSpot calculates it).
        sandbox
            .mailerlite()
            .create_field(SETUP_READ_ONLY_FIELD, hmsync_sandbox::mailerlite::FieldType::Number)
            .map_err(|e| anyhow::anyhow!("creating the {SETUP_READ_ONLY_FIELD} field: {e:?}"))?;
    }
    Ok((sandbox, DemoSeed { people, seeded }))
}

/// The MailerLite field `--setup` adds for HubSpot's calculated `lead_score`.
pub const SETUP_READ_ONLY_FIELD: &str = "Lead score";

/// The sandbox of an earlier run on this data directory, from its snapshot.
async fn restored_sandbox(
    args: &DemoArgs,
    path: &Path,
    config: SandboxConfig,
    hubspot: SocketAddr,
    mailerlite: SocketAddr,
) -> anyhow::Result<(Sandbox, DemoSeed)> {
    let dir = args.data_dir.display();
    if !path.exists() {
        anyhow::bail!(
            "{dir} belongs to a demo whose sandbox state was lost: its store holds the demo connection, but {} \
             is missing, so the links in the store would point at records that no longer exist. Delete {dir} to \
             start a fresh demo, or pick another --data-dir.",
            path.display()
        );
    }
    let snapshot = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || Sandbox::load_snapshot(&path)
    })
    .await?
    .map_err(|e| match e {
        SnapshotError::Version { .. } => {
            anyhow::anyhow!("{e}. Delete {dir} to start a fresh demo, or pick another --data-dir.")
        }
        e => anyhow::anyhow!("{e}"),
    })?;
    let Some(demo) = snapshot.attachment::<DemoSeed>(SEED_ATTACHMENT) else {
        anyhow::bail!(
            "{} does not say what the demo seeded (it was not written by `hmsync demo`). Delete {dir} to start a \
             fresh demo, or pick another --data-dir.",
            path.display()
        );
    };
    if demo.people.per_side != args.contacts {
        eprintln!(
            "This data directory holds a demo of {} contacts per side; --contacts {} does not apply to it.",
            demo.people.per_side, args.contacts
        );
    }
    let age = (hmsync_sandbox::common::now_ms() - snapshot.taken_at_ms).max(0) as f64 / 1000.0;
    let sandbox = start_error(Sandbox::start_restored(config, hubspot, mailerlite, snapshot).await)?;
    eprintln!("Restored the sandbox from {} (saved {age:.0} s ago).", path.display());
    Ok((sandbox, demo))
}

fn start_error(started: Result<Sandbox, hmsync_sandbox::SandboxError>) -> anyhow::Result<Sandbox> {
    started.context("starting the sandbox (are the ports free? pick others with --hubspot-port/--mailerlite-port)")
}

/// Saves the sandbox's data to one file: at once on request, every interval while it changes,
/// and a last time when finished. The saves run on a blocking thread (a copy of the data is
/// serialized), one at a time.
struct Autosave {
    handle: SandboxHandle,
    path: PathBuf,
    attachments: BTreeMap<String, serde_json::Value>,
    stop: CancellationToken,
    task: TaskTracker,
}

impl Autosave {
    fn new(handle: SandboxHandle, path: PathBuf, seed: &DemoSeed) -> Self {
        let mut attachments = BTreeMap::new();
        attachments.insert(SEED_ATTACHMENT.to_string(), serde_json::to_value(seed).expect("the seed serializes"));
        Self { handle, path, attachments, stop: CancellationToken::new(), task: TaskTracker::new() }
    }

    /// Saves now; returns the generation saved.
    async fn save(&self) -> Result<SandboxGeneration, SnapshotError> {
        save(self.handle.clone(), self.path.clone(), self.attachments.clone()).await
    }

    /// Saves every `interval` while the data changes. A failed save is reported and tried again
    /// at the next tick.
    fn start(&self, interval: Duration, mut saved: SandboxGeneration) {
        let (handle, path, attachments) = (self.handle.clone(), self.path.clone(), self.attachments.clone());
        let stop = self.stop.clone();
        self.task.spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
                if handle.generation() == saved {
                    continue;
                }
                match save(handle.clone(), path.clone(), attachments.clone()).await {
                    Ok(generation) => {
                        saved = generation;
                        failing = false;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "could not save the sandbox's data; trying again");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Stops the periodic saves and saves a last time.
    async fn finish(self) -> Result<(), SnapshotError> {
        self.stop.cancel();
        self.task.close();
        self.task.wait().await;
        self.save().await.map(|_| ())
    }
}

async fn save(
    handle: SandboxHandle,
    path: PathBuf,
    attachments: BTreeMap<String, serde_json::Value>,
) -> Result<SandboxGeneration, SnapshotError> {
    tokio::task::spawn_blocking(move || {
        // Read before copying: a change made while the copy is taken shows at the next check.
        let generation = handle.generation();
        let mut snapshot = handle.snapshot();
        snapshot.attachments = attachments;
        snapshot.save(&path).map(|_| generation)
    })
    .await
    .expect("the snapshot save does not panic")
}

/// Turns Ctrl-C into a flag the demo checks between steps, so that it can stop the sync and
/// save the sandbox before exiting. The handler is installed before this returns (a Ctrl-C
/// from then on is caught); a second Ctrl-C exits at once.
fn catch_ctrl_c() -> CancellationToken {
    let interrupted = CancellationToken::new();
    let on_ctrl_c = interrupted.clone();
    let mut first = Box::pin(tokio::signal::ctrl_c());
    // The first poll installs the handler.
    let caught = match (&mut first).now_or_never() {
        None => false,
        Some(Ok(())) => true,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot catch Ctrl-C; it will stop the demo without saving the sandbox");
            return interrupted;
        }
    };
    tokio::spawn(async move {
        if !caught && first.await.is_err() {
            return;
        }
        on_ctrl_c.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Interrupted again: exiting without saving the sandbox.");
            std::process::exit(130);
        }
    });
    interrupted
}

/// After a restore, the store may name records the sandbox does not have: a crash (no Ctrl-C)
/// loses the sandbox changes of the last [`SAVE_INTERVAL`], records the sync created among
/// them. Asks the sync to look at each such contact again, so the existing rules apply at once
/// rather than whenever the contact next changes: a linked record that is gone counts as
/// deleted on its side; during the initial sync it is created again, afterwards it is not
/// (deletions are observed, never propagated). Returns how many records were missing. Ids are
/// not reused meanwhile (a restored sandbox moves its id counters ahead).
pub async fn recheck_missing_records(rt: &Runtime, sandbox: &Sandbox) -> anyhow::Result<usize> {
    let mut refs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = rt.store.list_links(DEMO_CONNECTION, cursor.as_deref(), 500).await?;
        for link in &page.items {
            if let Some(id) = link.hubspot_id.as_deref().filter(|_| !link.hs_deleted)
                && id.parse::<u64>().ok().and_then(|n| sandbox.hubspot().contact(n)).is_none()
            {
                refs.push(ContactRef::hubspot(id));
            }
            if let Some(id) = link.mailerlite_id.as_deref().filter(|_| !link.ml_deleted)
                && sandbox.mailerlite().subscriber(id).is_none()
            {
                refs.push(ContactRef::mailerlite(id));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let messages: Vec<SyncMessage> = refs
        .chunks(50)
        .map(|chunk| SyncMessage::Contacts {
            connection_id: DEMO_CONNECTION.to_string(),
            refs: chunk.to_vec(),
            origin: Origin::Retry,
        })
        .collect();
    rt.engine.enqueue(&messages).await?;
    Ok(refs.len())
}

/// Removes the MailerLite webhooks of earlier runs: a restored sandbox still has them, pointing
/// at the old run's address (the port may differ now). The current run registers its own.
/// Deletes the demo connection's webhooks that point at an earlier run's address (another
/// port): the restored sandbox kept them, and nothing listens there any more.
async fn remove_stale_mailerlite_webhooks(sandbox: &Sandbox, current: Option<&str>) -> anyhow::Result<()> {
    let mut config =
        hmsync_mailerlite::Config::new(sandbox.mailerlite().config().token).with_base_url(sandbox.mailerlite_url());
    config.time_scale = sandbox.mailerlite().config().time_scale;
    let client = hmsync_mailerlite::Client::new(config)?;
    let ours = format!("/webhooks/mailerlite/{DEMO_CONNECTION}");
    for hook in client.webhooks().await? {
        if hook.url.ends_with(&ours) && Some(hook.url.as_str()) != current {
            client.delete_webhook(&hook.id).await?;
        }
    }
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = SandboxConfig::default().with_time_scale(args.time_scale);
    let hubspot_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.hubspot_port));
    let mailerlite_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.mailerlite_port));
    let snapshot_path = args.data_dir.join(SANDBOX_SNAPSHOT_FILE);
    let resumed = holds_demo_connection(&args.data_dir, args.setup).await?;
    let (sandbox, demo) = if resumed {
        restored_sandbox(&args, &snapshot_path, config, hubspot_addr, mailerlite_addr).await?
    } else {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
        seeded_sandbox(&args, config, hubspot_addr, mailerlite_addr).await?
    };
    // Saved before the store can name any record (the demo connection is created below), and
    // after a restore too, so that its moved id counters are what the next restore starts from.
    let autosave = Autosave::new(sandbox.handle(), snapshot_path.clone(), &demo);
    let saved = autosave.save().await.context("saving the sandbox's data")?;
    autosave.start(SAVE_INTERVAL, saved);
    let interrupted = catch_ctrl_c();

    let rt = match Runtime::start(RuntimeOptions {
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
        delivery: hmsync_engine::DeliveryPolicy::default(),
    })
    .await
    {
        Ok(rt) => rt,
        Err(e) => {
            autosave.finish().await?;
            return Err(e);
        }
    };
    let result = drive(&args, &sandbox, &rt, &demo, resumed, started, &interrupted).await;
    // Whatever happened, the sync stops writing before the sandbox's data is saved a last
    // time, so the saved sandbox holds everything the store knows about.
    rt.stop().await;
    let saved =
        autosave.finish().await.with_context(|| format!("saving the sandbox's data to {}", snapshot_path.display()));
    match (&result, &saved) {
        (Ok(Stop::Interrupted), Ok(())) => {
            eprintln!("Stopped; the sandbox is saved in {}. Run the same command to resume.", snapshot_path.display())
        }
        (Err(_), Ok(())) => eprintln!("The sandbox is saved in {}.", snapshot_path.display()),
        _ => {}
    }
    result?;
    saved
}

/// How the demo ended.
enum Stop {
    Done,
    Interrupted,
}

/// Everything between the runtime's start and its stop: the connection, the initial sync, the
/// summary or the wait for Ctrl-C.
async fn drive(
    args: &DemoArgs,
    sandbox: &Sandbox,
    rt: &Runtime,
    demo: &DemoSeed,
    resumed: bool,
    started: Instant,
    interrupted: &CancellationToken,
) -> anyhow::Result<Stop> {
    hubspot_webhooks(sandbox, &rt.public_url);
    if args.setup {
        return setup_only(args, sandbox, rt, resumed, interrupted).await;
    }
    let hs = sandbox.hubspot().config();
    let credentials = Credentials {
        hubspot: Some(HubSpotAuth::Token { access_token: hs.token.clone() }),
        hubspot_app_id: Some(hs.app_id),
        hubspot_client_secret: Some(hs.client_secret.clone()),
        mailerlite_api_key: Some(sandbox.mailerlite().config().token),
        mailerlite_webhook_secret: None,
        mailerlite_batched_webhook_secret: None,
    };
    if rt.store.get_connection(DEMO_CONNECTION).await?.is_none() {
        rt.store.create_connection(DEMO_CONNECTION, &demo_config(demo.seeded.mailerlite.group_id.clone())).await?;
    }
    save_credentials(&*rt.engine.secrets, DEMO_CONNECTION, &credentials).await?;
    rt.engine.credentials_changed(DEMO_CONNECTION).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if resumed {
        let current = rt.webhook_target.url(DEMO_CONNECTION).ok();
        remove_stale_mailerlite_webhooks(sandbox, current.as_deref())
            .await
            .context("removing the previous run's MailerLite webhooks")?;
    }
    // Activation registers the MailerLite webhooks; a resumed connection (already active) has
    // them found again (their secrets were saved over above) or re-created at this run's URL.
    match rt.engine.activate(DEMO_CONNECTION, &rt.webhook_target).await {
        Ok(_) => {}
        Err(LifecycleError::NotAllowed(_)) => {
            eprintln!("Resuming the demo connection from {}", args.data_dir.display());
            rt.engine
                .register_mailerlite_webhooks(DEMO_CONNECTION, &rt.webhook_target)
                .await
                .map_err(|e| anyhow::anyhow!("registering the MailerLite webhooks: {e}"))?;
        }
        Err(e) => return Err(anyhow::anyhow!("activating the demo connection: {e}")),
    }
    if resumed {
        let missing = recheck_missing_records(rt, sandbox).await?;
        if missing > 0 {
            eprintln!(
                "{missing} linked records are missing from the saved sandbox (the last run did not stop with \
                 Ctrl-C); the sync looks at them again."
            );
        }
    }

    if !args.until_synced {
        // The program's own output goes to stdout; stderr carries the progress bar and the logs.
        println!("Status page: {}/status (admin token {})", rt.api_url, rt.admin_token);
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
        tokio::select! {
            _ = interrupted.cancelled() => {
                bar.abandon();
                eprintln!(
                    "Interrupted during the initial sync ({} records done): stopping the sync and saving the sandbox \
                     (Ctrl-C again quits at once).",
                    status.initial_sync.done
                );
                return Ok(Stop::Interrupted);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if args.until_synced {
        // Let the webhooks our writes caused arrive and be recognised as echoes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut line = summary(rt, sandbox, &demo.seeded, started.elapsed().as_secs_f64()).await?;
        line["resumed"] = json!(resumed);
        println!("{line}");
        return Ok(Stop::Done);
    }
    let status = rt.engine.status(DEMO_CONNECTION).await?;
    println!(
        "Initial sync done: {} contacts linked ({} errors to look at).\n\n  Status page:  {}/status\n  Admin token:  {}\n  HubSpot sandbox:     {} (token {})\n  MailerLite sandbox:  {} (token {})\n\nEdit contacts through the sandbox APIs and watch them sync. Ctrl-C stops (the sandbox is saved; run the same command to resume).",
        status.counts.links.total,
        status.counts.errored,
        rt.api_url,
        rt.admin_token,
        sandbox.hubspot_url(),
        hs.token,
        sandbox.mailerlite_url(),
        sandbox.mailerlite().config().token,
    );
    interrupted.cancelled().await;
    Ok(Stop::Interrupted)
}

/// `--setup`: no connection is made here. Prints what a newcomer needs to set one up in the
/// browser (the page, the admin token, both simulators' credentials) and syncs whatever the
/// page activates until Ctrl-C.
async fn setup_only(
    args: &DemoArgs,
    sandbox: &Sandbox,
    rt: &Runtime,
    resumed: bool,
    interrupted: &CancellationToken,
) -> anyhow::Result<Stop> {
    let hs = sandbox.hubspot().config();
    let ml = sandbox.mailerlite().config();
    let state = if resumed {
        format!("Resumed from {}: the connections set up there keep syncing.", args.data_dir.display())
    } else {
        "No connection yet: open the page and set the first one up.".to_string()
    };
    println!(
        "{state}\n\n  Page:         {api}/status\n  Admin token:  {token}\n\n  HubSpot (simulated portal {portal}) at {hs_url}\n    Private app:  access token {hs_token}  app id {app_id}  client secret {secret}\n    OAuth app:    client id {client_id}  client secret {secret}\n  MailerLite (simulated account) at {ml_url}\n    API key:      {ml_token}\n\nCtrl-C stops (the sandbox is saved; run the same command to resume).",
        api = rt.api_url,
        token = rt.admin_token,
        portal = hs.portal_id,
        hs_url = sandbox.hubspot_url(),
        hs_token = hs.token,
        app_id = hs.app_id,
        secret = hs.client_secret,
        client_id = hs.client_id,
        ml_url = sandbox.mailerlite_url(),
        ml_token = ml.token,
    );
    interrupted.cancelled().await;
    Ok(Stop::Interrupted)
}
