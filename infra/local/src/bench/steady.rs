//! Part B: steady state. After an initial sync, user changes arrive on both sides at a steady
//! rate (the two directions interleaved) with extra latency on every API call, and each change
//! is timed from its stamp at the source to hmsync's write at the destination, both from the
//! sandbox's change journals (millisecond stamps on one clock).
//!
//! This part runs at time scale 1 (real time): its figures are latencies, and the fixed costs
//! in them (API latency, the worker's poll interval) do not shrink with a time scale while the
//! rate-limit windows would. The stream starts once the initial sync's requests have left
//! MailerLite's one-minute window, as in a steady state long after the initial sync.
//!
//! Echoes: the webhooks of hmsync's own writes arrive like any other during the stream. To count
//! exactly what they cost, a further sample of changes is made per direction with the
//! destination's webhooks held; once the changes are written and everything is quiet, the held
//! echoes are released and every request after that is one they caused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hmsync_sandbox::Sandbox;
use hmsync_sandbox::common::people::{INDUSTRY_OPTIONS, person};
use hmsync_sandbox::common::{ChangedBy, DeliveryOptions, Dispatcher, FaultSpec, JournalEntry, now_ms};
use hmsync_sandbox::mailerlite::UserEdit;
use serde_json::{Map, Value, json};

use super::engine_child::EngineProcess;
use super::initial::wait_until_synced;
use super::report::{EchoCheck, Latencies, SideRequests, Steady, thousands};
use super::setup::{self, Engines};

/// MailerLite's window (60 s) as the client paces it, and a margin.
const MAILERLITE_WINDOW: Duration = Duration::from_secs(62);

/// What part B does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteadyPlan {
    pub changes_per_direction: u64,
    /// Changes per second per direction.
    pub rate_per_direction: f64,
    pub added_latency_ms: u64,
    /// Changes per direction made with the echoes held back.
    pub echo_sample: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    HubSpotToMailerLite,
    MailerLiteToHubSpot,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::HubSpotToMailerLite => "HubSpot → MailerLite",
            Direction::MailerLiteToHubSpot => "MailerLite → HubSpot",
        }
    }
}

/// One change: a person's record at the source, its counterpart at the destination, and the
/// value the destination must end up with.
#[derive(Debug, Clone)]
struct Change {
    direction: Direction,
    source_id: u64,
    destination_id: u64,
    /// The field edited at the source and its new value.
    source_field: &'static str,
    source_value: String,
    /// The destination field and the value it must get.
    destination_field: &'static str,
    destination_value: String,
}

fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

fn hubspot_id(sandbox: &Sandbox, email: &str) -> anyhow::Result<u64> {
    let c = sandbox.hubspot().contact_by_email(email).with_context(|| format!("no HubSpot contact {email}"))?;
    c["id"].as_str().and_then(|s| s.parse().ok()).context("HubSpot contact id")
}

fn mailerlite_id(sandbox: &Sandbox, email: &str) -> anyhow::Result<u64> {
    let s = sandbox.mailerlite().subscriber(email).with_context(|| format!("no MailerLite subscriber {email}"))?;
    Ok(s.id.parse()?)
}

/// The `k`-th change of a direction on person `index`: each mapped field in turn, the option
/// field with another option than the person's.
fn plan_change(sandbox: &Sandbox, direction: Direction, index: u64, k: u64) -> anyhow::Result<Change> {
    let p = person(index);
    let (hs, ml) = (hubspot_id(sandbox, &p.email)?, mailerlite_id(sandbox, &p.email)?);
    let other = INDUSTRY_OPTIONS[(p.industry + 1 + (k as usize % 3)) % INDUSTRY_OPTIONS.len()];
    Ok(match direction {
        Direction::HubSpotToMailerLite => {
            let (source_field, source_value, destination_field, destination_value) = match k % 3 {
                0 => ("city", format!("Steady City {k}"), "city", format!("Steady City {k}")),
                1 => ("firstname", format!("Steady{k}"), "name", format!("Steady{k}")),
                _ => ("industry_segment", other.0.to_string(), "industry", other.1.to_string()),
            };
            Change {
                direction,
                source_id: hs,
                destination_id: ml,
                source_field,
                source_value,
                destination_field,
                destination_value,
            }
        }
        Direction::MailerLiteToHubSpot => {
            let (source_field, source_value, destination_field, destination_value) = match k % 3 {
                0 => ("city", format!("Listed City {k}"), "city", format!("Listed City {k}")),
                1 => ("last_name", format!("Listed{k}"), "lastname", format!("Listed{k}")),
                _ => ("industry", other.1.to_string(), "industry_segment", other.0.to_string()),
            };
            Change {
                direction,
                source_id: ml,
                destination_id: hs,
                source_field,
                source_value,
                destination_field,
                destination_value,
            }
        }
    })
}

/// Makes the change as a user in the source app.
fn apply(sandbox: &Sandbox, c: &Change) -> anyhow::Result<()> {
    let edit = fields(&[(c.source_field, &c.source_value)]);
    match c.direction {
        Direction::HubSpotToMailerLite => {
            sandbox.hubspot().user_edit_contact(c.source_id, &edit, 7).map(|_| ()).map_err(|e| anyhow::anyhow!("{e:?}"))
        }
        Direction::MailerLiteToHubSpot => sandbox
            .mailerlite()
            .user_edit(&c.source_id.to_string(), &UserEdit { fields: edit, ..UserEdit::default() })
            .map_err(|e| anyhow::anyhow!("{e:?}")),
    }
}

/// The destination holds the change's value.
fn arrived(sandbox: &Sandbox, c: &Change) -> bool {
    match c.direction {
        Direction::HubSpotToMailerLite => {
            sandbox.mailerlite().subscriber(&c.destination_id.to_string()).is_some_and(|s| {
                s.fields.get(c.destination_field).and_then(Value::as_str) == Some(c.destination_value.as_str())
            })
        }
        Direction::MailerLiteToHubSpot => sandbox
            .hubspot()
            .contact(c.destination_id)
            .is_some_and(|v| v["properties"][c.destination_field].as_str() == Some(c.destination_value.as_str())),
    }
}

/// One side's journal entries by record id, oldest first.
type ByRecord = HashMap<u64, Vec<JournalEntry>>;

/// Both journals so far.
struct Journals {
    hubspot: ByRecord,
    mailerlite: ByRecord,
}

impl Journals {
    fn read(sandbox: &Sandbox) -> Journals {
        fn by_record(entries: Vec<JournalEntry>) -> ByRecord {
            let mut m = ByRecord::new();
            for e in entries {
                m.entry(e.record_id).or_default().push(e);
            }
            m
        }
        Journals {
            hubspot: by_record(sandbox.hubspot().change_journal().entries()),
            mailerlite: by_record(sandbox.mailerlite().change_journal().entries()),
        }
    }

    /// The source's and the destination's journal.
    fn sides(&self, d: Direction) -> (&ByRecord, &ByRecord) {
        match d {
            Direction::HubSpotToMailerLite => (&self.hubspot, &self.mailerlite),
            Direction::MailerLiteToHubSpot => (&self.mailerlite, &self.hubspot),
        }
    }

    /// Milliseconds from the user's change at the source to hmsync's first write of the
    /// counterpart after it, if both happened.
    fn latency(&self, c: &Change) -> Option<i64> {
        let (source, destination) = self.sides(c.direction);
        let changed = source.get(&c.source_id)?.iter().find(|e| e.by == ChangedBy::User)?.at_ms;
        let written =
            destination.get(&c.destination_id)?.iter().find(|e| e.by == ChangedBy::Api && e.at_ms >= changed)?;
        Some(written.at_ms - changed)
    }
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latencies(journals: &Journals, changes: &[&Change]) -> Latencies {
    let mut ms: Vec<i64> = changes.iter().filter_map(|c| journals.latency(c)).collect();
    ms.sort_unstable();
    Latencies {
        changes: changes.len() as u64,
        delivered: ms.len() as u64,
        p50_ms: percentile(&ms, 50.0),
        p95_ms: percentile(&ms, 95.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0),
    }
}

/// Waits until every change has its destination write journaled (or `limit` passes).
async fn wait_for_writes(sandbox: &Sandbox, changes: &[Change], limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let journals = Journals::read(sandbox);
        let missing = changes.iter().filter(|c| journals.latency(c).is_none()).count();
        if missing == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{missing} of {} changes were not written to the other side within {limit:?}", changes.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn total(sandbox: &Sandbox) -> (u64, u64) {
    (sandbox.hubspot().stats().total_requests, sandbox.mailerlite().stats().total_requests)
}

fn pause(d: &Dispatcher, paused: bool) {
    d.set_options(DeliveryOptions { paused, ..d.options() });
}

/// Makes `changes` with the destination's webhooks held, then releases the echoes of hmsync's
/// writes and counts the requests they cause.
async fn echo_check(
    sandbox: &Sandbox,
    engine: &mut EngineProcess,
    direction: Direction,
    changes: &[Change],
) -> anyhow::Result<EchoCheck> {
    let destination = match direction {
        Direction::HubSpotToMailerLite => sandbox.mailerlite().dispatcher(),
        Direction::MailerLiteToHubSpot => sandbox.hubspot().dispatcher(),
    };
    pause(destination, true);
    setup::reset_stats(sandbox);
    for c in changes {
        apply(sandbox, c)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_writes(sandbox, changes, Duration::from_secs(120)).await?;
    setup::settle(sandbox, engine, Duration::from_secs(2), Duration::from_secs(120)).await?;
    let (hubspot_requests, mailerlite_requests) = total(sandbox);
    let echo_deliveries = destination.held() as u64;
    setup::reset_stats(sandbox);
    pause(destination, false);
    setup::settle(sandbox, engine, Duration::from_secs(3), Duration::from_secs(120)).await?;
    let (hs, ml) = total(sandbox);
    Ok(EchoCheck {
        direction: direction.name().to_string(),
        changes: changes.len() as u64,
        hubspot_requests,
        mailerlite_requests,
        echo_deliveries,
        echo_requests: hs + ml,
    })
}

/// Runs part B.
pub async fn steady(engines: &Engines, plan: SteadyPlan) -> anyhow::Result<(Steady, Vec<String>)> {
    let label = "B";
    // HubSpot-only people [0, half) and MailerLite-only people [per_side, per_side + half) are
    // the changed ones: each person is changed on one side only.
    let half = plan.changes_per_direction + plan.echo_sample;
    let per_side = 2 * half;
    eprintln!("{label}: seeding {}/side and syncing them", thousands(per_side));
    let sandbox = setup::sandbox(1.0).await?;
    let seeded = setup::seed(&sandbox, setup::population(per_side)).await?;
    let group = seeded.mailerlite.group_id.clone();
    let data_dir = engines.data_dir("steady")?;
    let mut engine = engines.start(&sandbox, &data_dir, group, 0, false).await?;
    setup::reset_stats(&sandbox);
    engine.activate().await?;
    let synced = wait_until_synced(&mut engine, label).await?;
    setup::settle(&sandbox, &mut engine, Duration::from_secs(1), Duration::from_secs(300)).await?;
    // More than a tenth of MailerLite's window still in use would slow the first changes down.
    if sandbox.mailerlite().stats().total_requests > 12 {
        let finished = synced.initial_finished_at_ms.unwrap_or_else(now_ms);
        let wait = (finished + MAILERLITE_WINDOW.as_millis() as i64 - now_ms()).max(0);
        eprintln!(
            "{label}: waiting {:.0} s for the initial sync's requests to leave MailerLite's window",
            wait as f64 / 1000.0
        );
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let latency = FaultSpec { latency_ms: plan.added_latency_ms, ..FaultSpec::everywhere() };
    sandbox.hubspot().instrumentation().faults.set(vec![latency.clone()], 1);
    sandbox.mailerlite().instrumentation().faults.set(vec![latency], 1);

    let hs_first = seeded.hubspot.first_index;
    let ml_only_first = seeded.hubspot.end_index;
    let mut stream = Vec::new();
    let mut samples = (Vec::new(), Vec::new());
    for k in 0..half {
        let to_ml = plan_change(&sandbox, Direction::HubSpotToMailerLite, hs_first + k, k)?;
        let to_hs = plan_change(&sandbox, Direction::MailerLiteToHubSpot, ml_only_first + k, k)?;
        if k < plan.changes_per_direction {
            stream.push(to_ml);
            stream.push(to_hs);
        } else {
            samples.0.push(to_ml);
            samples.1.push(to_hs);
        }
    }

    eprintln!(
        "{label}: {} changes each way at {}/s each way, +{} ms on every API call ({:.0} s)",
        plan.changes_per_direction,
        plan.rate_per_direction,
        plan.added_latency_ms,
        stream.len() as f64 / (2.0 * plan.rate_per_direction)
    );
    setup::reset_stats(&sandbox);
    sandbox.hubspot().change_journal().start();
    sandbox.mailerlite().change_journal().start();
    let interval = Duration::from_secs_f64(1.0 / (2.0 * plan.rate_per_direction));
    let started = tokio::time::Instant::now();
    for (i, c) in stream.iter().enumerate() {
        tokio::time::sleep_until(started + interval * i as u32).await;
        apply(&sandbox, c)?;
        if i > 0 && i % 200 == 0 {
            eprintln!("  {label}: {i}/{} changes made", stream.len());
        }
    }
    wait_for_writes(&sandbox, &stream, Duration::from_secs(300)).await?;
    setup::settle(&sandbox, &mut engine, Duration::from_secs(2), Duration::from_secs(300)).await?;
    let hubspot = SideRequests::of(&sandbox.hubspot().stats());
    let mailerlite = SideRequests::of(&sandbox.mailerlite().stats());
    let journals = Journals::read(&sandbox);
    let to_ml: Vec<&Change> = stream.iter().filter(|c| c.direction == Direction::HubSpotToMailerLite).collect();
    let to_hs: Vec<&Change> = stream.iter().filter(|c| c.direction == Direction::MailerLiteToHubSpot).collect();
    let (hubspot_to_mailerlite, mailerlite_to_hubspot) = (latencies(&journals, &to_ml), latencies(&journals, &to_hs));
    let mut problems: Vec<String> = Vec::new();
    let wrong = stream.iter().filter(|c| !arrived(&sandbox, c)).count();
    if wrong > 0 {
        problems
            .push(format!("B: {wrong} of {} changes do not hold the changed value at the destination", stream.len()));
    }

    eprintln!("{label}: echo checks ({} changes each way with the echoes held back)", plan.echo_sample);
    let mut echo_checks = Vec::new();
    for (direction, sample) in
        [(Direction::HubSpotToMailerLite, &samples.0), (Direction::MailerLiteToHubSpot, &samples.1)]
    {
        if !sample.is_empty() {
            echo_checks.push(echo_check(&sandbox, &mut engine, direction, sample).await?);
        }
    }
    sandbox.hubspot().change_journal().stop();
    sandbox.mailerlite().change_journal().stop();
    let usage = engine.usage().await?;
    let summary = engine.summary().await?;
    if summary.errors > 0 || summary.dead_letters > 0 {
        problems.push(format!("B: {} contacts with errors, {} dead letters", summary.errors, summary.dead_letters));
    }
    engine.stop().await?;
    let changes = stream.len() as u64;
    let result = Steady {
        population_per_side: per_side,
        changes_per_direction: plan.changes_per_direction,
        rate_per_direction: plan.rate_per_direction,
        added_latency_ms: plan.added_latency_ms,
        hubspot_to_mailerlite,
        mailerlite_to_hubspot,
        requests_per_change: (hubspot.total + mailerlite.total) as f64 / changes.max(1) as f64,
        hubspot,
        mailerlite,
        echo_requests: echo_checks.iter().map(|e| e.echo_requests).sum(),
        echo_checks,
        engine: usage,
    };
    eprintln!(
        "{label}: p95 {} ms HubSpot → MailerLite, {} ms MailerLite → HubSpot; {:.2} requests per change; {} echo requests",
        result.hubspot_to_mailerlite.p95_ms,
        result.mailerlite_to_hubspot.p95_ms,
        result.requests_per_change,
        result.echo_requests
    );
    Ok((result, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2, 3], 0.0), 1);
    }
}
