//! The `hmsync-sandbox` command: both simulators on local ports until Ctrl-C, optionally seeded
//! with one population of people. It lives in the library so the `hmsync` binary can offer the
//! same command (`hmsync sandbox`) by embedding [`Args`] and calling [`run`].

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use clap::Parser;

use crate::combined::{PEOPLE_SEED_PATH, Sandbox, SandboxConfig, SandboxError};
use crate::hubspot::HubSpotConfig;
use crate::mailerlite::MailerLiteConfig;
use crate::people_seed::{DEFAULT_OVERLAP, MembershipSeed, PeopleSeed, PeopleSeedError, PeopleSeedSummary};

/// Runs simulated HubSpot and MailerLite APIs on 127.0.0.1 until Ctrl-C.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "hmsync-sandbox", version)]
pub struct Args {
    /// Port of the HubSpot simulator (on 127.0.0.1; 0 picks a free one).
    #[arg(long, default_value_t = 8010)]
    pub hubspot_port: u16,
    /// Port of the MailerLite simulator (on 127.0.0.1; 0 picks a free one).
    #[arg(long, default_value_t = 8020)]
    pub mailerlite_port: u16,
    /// The bearer token the HubSpot simulator accepts (its static private-app token).
    #[arg(long, default_value_t = HubSpotConfig::default().token)]
    pub hubspot_token: String,
    /// The bearer token the MailerLite simulator accepts.
    #[arg(long, default_value_t = MailerLiteConfig::default().token)]
    pub mailerlite_token: String,
    /// Divides every rate-limit window and delay on both sides (e.g. 60: a minute lasts a second).
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    pub time_scale: f64,
    #[command(flatten)]
    pub people: PeopleArgs,
}

/// Seeding at start (see `POST /__sandbox/people/seed` for the same after start).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct PeopleArgs {
    /// People to seed on each side at start (0: start empty).
    #[arg(long = "seed-per-side", default_value_t = 0)]
    pub per_side: u64,
    /// Share of each side's people that exist on both sides.
    #[arg(long, default_value_t = DEFAULT_OVERLAP)]
    pub overlap: f64,
    /// Share of the shared people whose MailerLite copy has another first name and city.
    #[arg(long, default_value_t = 0.0)]
    pub conflict_rate: f64,
    /// Share of HubSpot contacts opted out of all email.
    #[arg(long, default_value_t = 0.0)]
    pub hubspot_opted_out_rate: f64,
    /// Share of MailerLite subscribers seeded unsubscribed.
    #[arg(long, default_value_t = 0.0)]
    pub mailerlite_unsubscribed_rate: f64,
    /// Share of MailerLite subscribers seeded bounced.
    #[arg(long, default_value_t = 0.0)]
    pub mailerlite_bounced_rate: f64,
    /// Share of HubSpot contacts without an email (taken from the HubSpot-only people).
    #[arg(long, default_value_t = 0.0)]
    pub no_email_rate: f64,
    /// A MANUAL HubSpot list that a share of the contacts joins.
    #[arg(long)]
    pub hubspot_list: Option<String>,
    /// Share of HubSpot contacts in `--hubspot-list`.
    #[arg(long, default_value_t = 1.0, requires = "hubspot_list")]
    pub hubspot_list_rate: f64,
    /// A MailerLite group that a share of the subscribers joins.
    #[arg(long)]
    pub mailerlite_group: Option<String>,
    /// Share of MailerLite subscribers in `--mailerlite-group`.
    #[arg(long, default_value_t = 1.0, requires = "mailerlite_group")]
    pub mailerlite_group_rate: f64,
    /// Associate each HubSpot contact with a company.
    #[arg(long)]
    pub with_companies: bool,
    /// Varies which people get each trait.
    #[arg(long = "seed", default_value_t = 0)]
    pub seed: u64,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got {s}")),
    }
}

impl Args {
    pub fn hubspot_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.hubspot_port))
    }

    pub fn mailerlite_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.mailerlite_port))
    }

    /// The simulators' default settings with this command's tokens and time scale.
    pub fn sandbox_config(&self) -> SandboxConfig {
        let mut config = SandboxConfig::default().with_time_scale(self.time_scale);
        config.hubspot.token = self.hubspot_token.clone();
        config.mailerlite.token = self.mailerlite_token.clone();
        config
    }

    /// What to seed at start, if anything.
    pub fn people_seed(&self) -> Option<PeopleSeed> {
        let p = &self.people;
        (p.per_side > 0).then(|| PeopleSeed {
            per_side: p.per_side,
            overlap: p.overlap,
            conflict_rate: p.conflict_rate,
            hubspot_opted_out_rate: p.hubspot_opted_out_rate,
            mailerlite_unsubscribed_rate: p.mailerlite_unsubscribed_rate,
            mailerlite_bounced_rate: p.mailerlite_bounced_rate,
            no_email_rate: p.no_email_rate,
            hubspot_list: p.hubspot_list.clone().map(|name| MembershipSeed { name, member_rate: p.hubspot_list_rate }),
            mailerlite_group: p
                .mailerlite_group
                .clone()
                .map(|name| MembershipSeed { name, member_rate: p.mailerlite_group_rate }),
            with_companies: p.with_companies,
            seed: p.seed,
        })
    }
}

/// Why the command stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] SandboxError),
    #[error(transparent)]
    Seed(#[from] PeopleSeedError),
    #[error("cannot listen for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// Starts the sandbox and seeds it as `args` say (an invalid seed is refused before anything
/// binds). Returns the running sandbox and the seed summary.
pub async fn start(args: &Args) -> Result<(Sandbox, Option<PeopleSeedSummary>), RunError> {
    let seed = args.people_seed();
    if let Some(seed) = &seed {
        seed.validate()?;
    }
    let sandbox = Sandbox::start(args.sandbox_config(), args.hubspot_addr(), args.mailerlite_addr()).await?;
    let summary = match seed {
        Some(seed) => Some(sandbox.seeder().seed_blocking_task(seed).await?),
        None => None,
    };
    Ok((sandbox, summary))
}

/// Where the sandbox listens and which tokens it accepts, for people to copy.
pub fn banner(sandbox: &Sandbox) -> String {
    let hs = sandbox.hubspot_url();
    let ml = sandbox.mailerlite_url();
    format!(
        "hmsync sandbox\n  HubSpot     {hs}  token {}\n  MailerLite  {ml}  token {}\n  admin       {hs}/__sandbox/hubspot/…, {ml_root}/__sandbox/mailerlite/…, POST {hs}{PEOPLE_SEED_PATH}\n",
        sandbox.hubspot().config().token,
        sandbox.mailerlite().config().token,
        ml_root = ml.trim_end_matches("/api"),
    )
}

/// One line per side on what was seeded.
pub fn seed_report(summary: &PeopleSeedSummary) -> String {
    let hs = &summary.hubspot;
    let ml = &summary.mailerlite;
    let statuses: Vec<String> = ml.by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(
        "  seeded      HubSpot {} contacts ({} without email, {} opted out{}); MailerLite {} subscribers ({}{}); {} on both sides ({} conflicting), {} unique contacts expected\n",
        hs.contacts,
        hs.without_email,
        hs.opted_out,
        hs.list_id.as_ref().map(|id| format!(", list {id}: {} members", hs.list_members)).unwrap_or_default(),
        ml.subscribers,
        statuses.join(", "),
        ml.group_id.as_ref().map(|id| format!(", group {id}: {} members", ml.group_members)).unwrap_or_default(),
        summary.overlap,
        summary.conflicting,
        summary.expected_unique_contacts,
    )
}

/// Runs until `shutdown` completes, printing the banner (and the seed report) to stdout.
pub async fn run_until(args: Args, shutdown: impl Future<Output = std::io::Result<()>>) -> Result<(), RunError> {
    let started = Instant::now();
    let (sandbox, summary) = start(&args).await?;
    print!("{}", banner(&sandbox));
    if let Some(summary) = &summary {
        print!("{}", seed_report(summary));
        println!("  (started and seeded in {:.1} s)", started.elapsed().as_secs_f64());
    }
    println!("Press Ctrl-C to stop.");
    shutdown.await.map_err(RunError::Signal)?;
    drop(sandbox);
    Ok(())
}

/// `hmsync-sandbox` (and `hmsync sandbox`): runs until Ctrl-C.
pub async fn run(args: Args) -> Result<(), RunError> {
    run_until(args, tokio::signal::ctrl_c()).await
}
