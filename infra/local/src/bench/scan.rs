//! Part D: a scheduled scan (the safety net for lost webhooks) after 0.1% of the contacts of
//! each side changed with their webhooks lost, on the population part A synced.
//!
//! The first scheduled scan after an initial sync re-reads every HubSpot contact the initial
//! sync wrote (they were modified after the watermark); it is measured too, but the figure of
//! interest is the scan after it, which only meets the changes. Incremental HubSpot scans start
//! the engine's search lag (60 s, not scaled) before the previous scan's start, so the first
//! scan starts at least that long after the initial sync ended: otherwise the measured scan
//! would still see the initial sync's last writes.

use std::time::Duration;

use anyhow::{Context, bail};
use hmsync_engine::message::ScanKind;
use hmsync_sandbox::Sandbox;
use hmsync_sandbox::common::now_ms;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::mailerlite::UserEdit;
use serde_json::{Map, Value, json};

use super::bound::bound;
use super::engine_child::EngineProcess;
use super::initial::Synced;
use super::report::{Scan, ScanRun, SideRequests, thousands};
use super::setup::{self, Engines};

/// The engine's HubSpot search lag (`EngineSettings::search_lag`), plus a margin.
const SEARCH_LAG: Duration = Duration::from_secs(62);

/// Runs a scheduled scan (the schedule's tick) and measures it.
async fn scheduled_scan(sandbox: &Sandbox, engine: &mut EngineProcess, time_scale: f64) -> anyhow::Result<ScanRun> {
    setup::reset_stats(sandbox);
    let asked_at_ms = engine.scheduled_scan().await?;
    measure_scan(sandbox, engine, time_scale, asked_at_ms).await
}

/// Waits for the scheduled scan started at or after `asked_at_ms` to finish, then for what it
/// set off to settle, and measures it (requests since the stats were last reset).
async fn measure_scan(
    sandbox: &Sandbox,
    engine: &mut EngineProcess,
    time_scale: f64,
    asked_at_ms: i64,
) -> anyhow::Result<ScanRun> {
    let summary = loop {
        let p = engine.progress().await?;
        if let Some(s) = p.last_scan.filter(|s| s.started_at_ms >= asked_at_ms && !p.scan_running) {
            break s;
        }
        if let Some(why) = p.blocked {
            bail!("the scheduled scan is blocked: {why}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if summary.kind != ScanKind::Scheduled {
        bail!("expected a scheduled scan, the engine ran a {:?} scan", summary.kind);
    }
    setup::settle(sandbox, engine, Duration::from_secs(1), Duration::from_secs(300)).await?;
    let hubspot = SideRequests::of(&sandbox.hubspot().stats());
    let mailerlite = SideRequests::of(&sandbox.mailerlite().stats());
    let wall_seconds = (summary.finished_at_ms - asked_at_ms) as f64 / 1000.0;
    Ok(ScanRun {
        bound: bound(&hubspot.buckets, &mailerlite.buckets),
        hubspot,
        mailerlite,
        measured_seconds: wall_seconds * time_scale,
        wall_seconds,
        records: summary.records,
    })
}

fn text(pairs: &[(&str, String)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

/// Changes `per_side / 1000` contacts on each side with every webhook dropped, scans, and checks
/// that the scan carried each change to the other side. Runs at `time_scale` (the engine is
/// restarted at that scale if the initial sync ran at another one).
pub async fn scan_after_changes(run: Synced, engines: &Engines, time_scale: f64) -> anyhow::Result<(Scan, Synced)> {
    let mut run = run;
    let per_side = run.seeded.hubspot.contacts;
    let label = format!("D {}/side", thousands(per_side));
    let wait_until = run.finished_at_ms + SEARCH_LAG.as_millis() as i64;
    let wait = (wait_until - now_ms()).max(0);
    if wait > 0 {
        eprintln!(
            "{label}: waiting {:.0} s (the engine's search lag) before the first scheduled scan",
            wait as f64 / 1000.0
        );
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let first_scan = if run.sandbox.mailerlite().config().time_scale != time_scale {
        // The runtime's schedule scans as soon as it starts (to catch up with what changed while
        // it was down): at the new scale, that is the first scheduled scan.
        eprintln!("{label}: engine restarted at time scale {time_scale}; its first scheduled scan");
        run.sandbox.set_time_scale(time_scale);
        setup::reset_stats(&run.sandbox);
        let asked_at_ms = now_ms();
        let group = run.seeded.mailerlite.group_id.clone();
        run.engine = engines.restart(&run.sandbox, run.engine, group).await?;
        measure_scan(&run.sandbox, &mut run.engine, time_scale, asked_at_ms).await?
    } else {
        eprintln!("{label}: first scheduled scan after the initial sync");
        scheduled_scan(&run.sandbox, &mut run.engine, time_scale).await?
    };

    let changes = (per_side / 1000).max(1);
    let hs = &run.seeded.hubspot;
    let ml = &run.seeded.mailerlite;
    let stride = (per_side / changes).max(1);
    let sandbox = &run.sandbox;
    let dispatchers = [sandbox.hubspot().dispatcher(), sandbox.mailerlite().dispatcher()];
    let before: Vec<_> = dispatchers.iter().map(|d| d.options()).collect();
    for (d, o) in dispatchers.iter().zip(&before) {
        d.set_options(hmsync_sandbox::common::DeliveryOptions { drop_rate: 1.0, ..o.clone() });
    }
    let mut expected: Vec<(String, &'static str, String)> = Vec::new();
    for k in 0..changes {
        let p = person(hs.first_index + k * stride + 1);
        let contact =
            sandbox.hubspot().contact_by_email(&p.email).with_context(|| format!("no contact {}", p.email))?;
        let id: u64 = contact["id"].as_str().and_then(|s| s.parse().ok()).context("contact id")?;
        let city = format!("Scan City {k}");
        sandbox
            .hubspot()
            .user_edit_contact(id, &text(&[("city", city.clone())]), 7)
            .map_err(|e| anyhow::anyhow!("editing contact {id}: {e:?}"))?;
        expected.push((p.email, "mailerlite:city", city));
    }
    for k in 0..changes {
        let p = person(ml.first_index + k * stride + 2);
        let last_name = format!("Scanned{k}");
        let edit = UserEdit { fields: text(&[("last_name", last_name.clone())]), ..UserEdit::default() };
        sandbox.mailerlite().user_edit(&p.email, &edit).map_err(|e| anyhow::anyhow!("editing {}: {e:?}", p.email))?;
        expected.push((p.email, "hubspot:lastname", last_name));
    }
    for (d, o) in dispatchers.iter().zip(before) {
        d.set_options(o);
    }
    eprintln!("{label}: {changes} changes on each side without webhooks; scheduled scan");
    let scan = scheduled_scan(sandbox, &mut run.engine, time_scale).await?;

    let propagated = expected
        .iter()
        .filter(|(email, target, value)| match *target {
            "mailerlite:city" => sandbox
                .mailerlite()
                .subscriber(email)
                .is_some_and(|s| s.fields.get("city").and_then(Value::as_str) == Some(value.as_str())),
            _ => sandbox
                .hubspot()
                .contact_by_email(email)
                .is_some_and(|c| c["properties"]["lastname"].as_str() == Some(value.as_str())),
        })
        .count() as u64;
    eprintln!(
        "{label}: the scan read {} records with {} HubSpot + {} MailerLite requests, {:.0} s (bound {:.0} s); {propagated}/{} changes synced",
        thousands(scan.records),
        thousands(scan.hubspot.total),
        thousands(scan.mailerlite.total),
        scan.measured_seconds,
        scan.bound.seconds,
        expected.len()
    );
    let result = Scan {
        per_side,
        time_scale,
        changed_hubspot: changes,
        changed_mailerlite: changes,
        propagated,
        first_scan,
        scan,
    };
    Ok((result, run))
}
