//! Part A: the initial sync of a generated population, counted by the sandbox and timed against
//! the bound the rate limits give for the requests it needed.

use std::time::{Duration, Instant};

use anyhow::bail;
use hmsync_engine::Lifecycle;
use hmsync_sandbox::{PeopleSeedSummary, Sandbox};

use super::bound::bound;
use super::engine_child::{EngineProcess, Progress};
use super::report::{InitialSync, SideRequests, thousands};
use super::setup::{self, Engines};

/// A finished initial sync whose sandbox and engine are still running (part D continues on it).
pub struct Synced {
    pub sandbox: Sandbox,
    pub engine: EngineProcess,
    pub seeded: PeopleSeedSummary,
    /// When the initial sync ended (engine clock, ms).
    pub finished_at_ms: i64,
}

/// How long the initial sync may read no new record before the bench gives up on it.
const STALL_LIMIT: Duration = Duration::from_secs(300);

/// Polls the engine until the initial sync is over, printing progress now and then.
pub async fn wait_until_synced(engine: &mut EngineProcess, label: &str) -> anyhow::Result<Progress> {
    let started = Instant::now();
    let mut last_done = (-1i64, Instant::now());
    let mut last_print = Instant::now();
    loop {
        let p = engine.progress().await?;
        if p.lifecycle == Lifecycle::Continuous {
            return Ok(p);
        }
        if let Some(why) = &p.blocked {
            bail!("{label}: the initial sync is blocked: {why}");
        }
        if p.initial_done != last_done.0 {
            last_done = (p.initial_done, Instant::now());
        } else if last_done.1.elapsed() > STALL_LIMIT {
            bail!("{label}: the initial sync read no record for {STALL_LIMIT:?} (stuck at {})", p.initial_done);
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            let total = p.initial_expected.map(|t| format!("/{}", thousands(t))).unwrap_or_default();
            eprintln!(
                "  {label}: {}{total} records read, {:.0} s",
                thousands(p.initial_done.max(0) as u64),
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Seeds `per_side` people per side, runs the initial sync in a fresh engine process and
/// measures it.
pub async fn initial_sync(engines: &Engines, per_side: u64, time_scale: f64) -> anyhow::Result<(InitialSync, Synced)> {
    let label = format!("A {}/side", thousands(per_side));
    eprintln!("{label}: seeding");
    let sandbox = setup::sandbox(time_scale).await?;
    let seeded = setup::seed(&sandbox, setup::population(per_side)).await?;
    let data_dir = engines.data_dir(&format!("initial-{per_side}"))?;
    let mut engine = engines.start(&sandbox, &data_dir, seeded.mailerlite.group_id.clone(), 0, false).await?;
    setup::reset_stats(&sandbox);
    eprintln!("{label}: initial sync at time scale {time_scale}");
    let activated_at_ms = engine.activate().await?;
    let progress = wait_until_synced(&mut engine, &label).await?;
    let finished_at_ms = progress.initial_finished_at_ms.unwrap_or_else(hmsync_sandbox::common::now_ms);
    // The webhooks our writes caused (echoes) arrive after the last page: their cost, if any,
    // belongs to the initial sync.
    setup::settle(&sandbox, &mut engine, Duration::from_secs(1), Duration::from_secs(300)).await?;
    let usage = engine.usage().await?;
    let summary = engine.summary().await?;
    let hubspot = SideRequests::of(&sandbox.hubspot().stats());
    let mailerlite = SideRequests::of(&sandbox.mailerlite().stats());
    let unique = seeded.expected_unique_contacts;
    let bound = bound(&hubspot.buckets, &mailerlite.buckets);
    let wall_seconds = (finished_at_ms - activated_at_ms) as f64 / 1000.0;
    let measured_seconds = wall_seconds * time_scale;
    let result = InitialSync {
        per_side,
        unique_contacts: unique,
        time_scale,
        hubspot_per_contact: hubspot.total as f64 / unique as f64,
        mailerlite_per_contact: mailerlite.total as f64 / unique as f64,
        ratio: if bound.seconds > 0.0 { measured_seconds / bound.seconds } else { 0.0 },
        bound,
        measured_seconds,
        wall_seconds,
        engine: usage,
        links: summary.links,
        errors: summary.errors,
        dead_letters: summary.dead_letters,
        per_record: None,
        hubspot,
        mailerlite,
    };
    eprintln!(
        "{label}: {} HubSpot + {} MailerLite requests, {:.0} s (bound {:.0} s), engine {:.0} MiB, {:.1} s CPU",
        thousands(result.hubspot.total),
        thousands(result.mailerlite.total),
        result.measured_seconds,
        result.bound.seconds,
        result.engine.peak_rss_mib,
        result.engine.cpu_seconds()
    );
    Ok((result, Synced { sandbox, engine, seeded, finished_at_ms }))
}

/// What is wrong with a finished initial sync (nothing, if it linked everyone once and cleanly).
pub fn problems(a: &InitialSync) -> Vec<String> {
    let mut p = Vec::new();
    let n = thousands(a.per_side);
    if a.links != a.unique_contacts {
        p.push(format!("A {n}/side: {} links for {} unique contacts", a.links, a.unique_contacts));
    }
    if a.errors > 0 {
        p.push(format!("A {n}/side: {} contacts with errors", a.errors));
    }
    if a.dead_letters > 0 {
        p.push(format!("A {n}/side: {} dead letters", a.dead_letters));
    }
    p
}
