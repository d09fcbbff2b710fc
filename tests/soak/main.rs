//! hmsync's chaos soak: a bounded run of random edits on both apps under API faults, hostile
//! webhook delivery and worker kills, then an independent convergence check.
//!
//! ```text
//! cargo run -p hmsync-e2e --bin soak -- --minutes 1 [--seed S] [--contacts C] [--json path]
//! ```
//!
//! 1. Both simulators are seeded (overlapping people, conflicts, opted-out contacts, unsubscribed,
//!    bounced, junk and unconfirmed subscribers) and a connection is activated: HubSpot rule = one
//!    static list, MailerLite rule = two groups, a target group, two-way fields (one an option
//!    field), a one-way field each way. HubSpot drops one option of that field right after
//!    activation, which hmsync's stored schema still has: MailerLite values of it are refused by
//!    HubSpot in whole batch updates.
//!    Merges make a new record, as HubSpot's do.
//! 2. While the clock runs, people edit both apps at a steady rate (`load`), both APIs fail (10%
//!    5xx, 429 bursts, hangs past the client timeout, 200 ms latency in every third 5-second
//!    window), webhooks are duplicated, reordered and dropped, the worker is killed at random
//!    moments and crashes at the engine's failpoints, and "sync now" runs now and then (`chaos`).
//! 3. Then the load and the chaos stop, the queue drains, one "sync now" scans both apps (the
//!    safety net for dropped webhooks), the queue drains again, and the checker
//!    (`hmsync_e2e::checker`) reads both apps through their APIs and the links from the store.
//! 4. Finally every webhook delivered during the run is delivered again and one more scan runs:
//!    neither may cause a single write (`echo`).
//!
//! The figures go to stdout (and to `--json`); the exit code is non-zero on any violation.

mod chaos;
mod echo;
mod load;
mod proxy;

#[cfg(test)]
mod findings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hmsync_core::{ConnectionConfig, Direction, FieldMapping, HubSpotRule, MailerLiteRule};
use hmsync_e2e::checker::{self, CheckReport, CheckResult, Expectations};
use hmsync_e2e::{Harness, Options};
use hmsync_engine::ConnectionState;
use hmsync_engine::adapters::ApiSettings;
use hmsync_engine::failpoint;
use hmsync_http::now_ms;
use hmsync_sandbox::common::DispatcherStats;
use hmsync_sandbox::common::faults::FaultCounts;
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::hubspot::properties::PropertyOption;
use hmsync_sandbox::hubspot::{ObjectType, SeedListMembership, SeedRequest};
use hmsync_sandbox::mailerlite::{SeedGroupMembership, SeedSpec};
use hmsync_store::SqliteQueue;
use serde::Serialize;
use tokio::sync::watch;

const CONNECTION: &str = "soak";

/// The `industry_segment` option HubSpot has at activation and drops right after (hmsync's stored
/// schema keeps it, so its label stays a valid value for hmsync); MailerLite users type it.
const DROPPED_OPTION: &str = "aerospace";
const DROPPED_LABEL: &str = "Aerospace";

/// Changes the options of HubSpot's `industry_segment` property, as a user in the settings would.
fn industry_options(h: &Harness, change: impl FnOnce(&mut Vec<PropertyOption>)) -> Result<(), String> {
    let mut db = h.hubspot.db();
    let property = db
        .schemas
        .get_mut(&ObjectType::Contacts)
        .and_then(|s| s.properties.get_mut("industry_segment"))
        .ok_or("the HubSpot schema has no industry_segment")?;
    change(&mut property.options);
    Ok(())
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "soak",
    about = "hmsync chaos soak: random edits, API faults, hostile webhooks and worker kills, then a convergence check"
)]
struct Args {
    /// How long the load and the chaos run.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Seeds the people, the edits, the faults and the webhook chaos.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// People seeded on each side (half of them on both).
    #[arg(long, default_value_t = 200)]
    contacts: u64,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Edits per second across both apps.
    #[arg(long, default_value_t = 4.0)]
    edits_per_second: f64,
    /// Divides every rate-limit window of both simulators and clients.
    #[arg(long, default_value_t = 20.0)]
    time_scale: f64,
    /// The worker is killed every this many seconds on average.
    #[arg(long, default_value_t = 6.0)]
    kill_every_secs: f64,
    /// "Sync now" runs every this many seconds during the load (0: never).
    #[arg(long, default_value_t = 45.0)]
    scan_every_secs: f64,
    /// How long the queue may take to drain once the load stops.
    #[arg(long, default_value_t = 600)]
    settle_timeout_secs: u64,
}

/// One figure per app.
#[derive(Debug, Clone, Serialize)]
struct SideFigures<T> {
    hubspot: T,
    mailerlite: T,
}

/// What the chaos did besides the API faults and the webhook delivery.
#[derive(Debug, Clone, Default, Serialize)]
struct ChaosFigures {
    /// Workers aborted wherever they were and replaced.
    worker_kills: u64,
    /// Crashes at the engine's failpoints (between an API write and the store update).
    failpoint_crashes: u64,
    failpoints_fired: BTreeMap<String, u64>,
    /// "Sync now" requests while the load ran.
    scans_during_load: u64,
    /// Windows of the load (of `LATENCY_WINDOW`) in which every API call was 200 ms slower:
    /// every `SLOW_EVERY`th, starting with the first, so a short run has them too.
    slow_windows: u64,
    windows: u64,
}

/// The length of a fault window: each draws whether the APIs are slow in it.
const LATENCY_WINDOW: Duration = Duration::from_secs(5);

/// One window in this many is slow.
const SLOW_EVERY: u64 = 3;

/// The echo check: the replay and the writes that followed it.
#[derive(Debug, Clone, Serialize)]
struct EchoFigures {
    replay: echo::ReplayFigures,
    /// HubSpot write requests by endpoint (the sandbox's count) while the deliveries were
    /// replayed and one more scan ran.
    hubspot_writes: BTreeMap<String, u64>,
    /// The same writes with the contacts they name (the engine's requests, seen by its proxy).
    hubspot_write_requests: BTreeMap<String, u64>,
    /// MailerLite write requests in the same window (batch items counted one by one), by
    /// method and path.
    mailerlite_write_requests: BTreeMap<String, u64>,
}

/// Everything the soak prints, and writes with `--json`.
#[derive(Debug, Clone, Serialize)]
struct Report {
    seed: u64,
    minutes: f64,
    contacts_per_side: u64,
    edits_per_second: f64,
    time_scale: f64,
    load_seconds: f64,
    /// From the end of the load until the queue was empty after the final scan.
    settle_seconds: f64,
    /// "Sync now" requests after the load (one, unless a scan still ran).
    final_scans: u64,
    edits_total: u64,
    edits_applied: u64,
    edits: BTreeMap<&'static str, load::EditCount>,
    faults: SideFigures<FaultCounts>,
    webhooks: SideFigures<DispatcherStats>,
    chaos: ChaosFigures,
    queue: chaos::QueueFigures,
    /// Messages set aside after too many receives: id, receives, body (shortened).
    dead_letters: Vec<String>,
    /// Requests each simulator served from the start of the load to the end of the check
    /// (engine, load and checker).
    api_requests: SideFigures<u64>,
    /// The engine's traffic (MailerLite batches opened up).
    engine_traffic: SideFigures<proxy::TrafficFigures>,
    /// HubSpot batch updates and upserts refused as a whole (400/409: a value HubSpot refused,
    /// most of them of the dropped option), and merges that made a new record.
    hubspot_whole_batch_refusals: u64,
    hubspot_merges_to_new_records: u64,
    /// The connection's counters in the store (synced, echoes skipped, …).
    engine_counters: BTreeMap<String, i64>,
    check: CheckReport,
    echo: EchoFigures,
    /// Every check, the checker's and the soak's own (settling, pauses, echoes).
    results: Vec<CheckResult>,
    passed: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(soak(args.clone())) {
        Ok(report) => {
            print(&report);
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&report).expect("report serializes");
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("soak: could not write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("soak: could not run: {e}");
            ExitCode::from(2)
        }
    }
}

/// The connection under test: list rule, group rule, target group, two-way fields (one of them
/// an option field) and a one-way field in each direction.
fn connection_config(list_id: u64, rule_group: &str, target_group: &str) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("Chaos soak");
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec![list_id.to_string()] };
    c.mailerlite_rule = MailerLiteRule::Groups { group_ids: vec![rule_group.to_string(), target_group.to_string()] };
    c.target_group = Some(target_group.to_string());
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
        FieldMapping::new("company", "company").with_direction(Direction::HubSpotToMailerLite),
        FieldMapping::new("interests", "interests").with_direction(Direction::MailerLiteToHubSpot),
    ];
    c
}

/// The seeded, activated connection the load works on.
struct Scene {
    h: Arc<Harness>,
    list_id: u64,
    rule_group: String,
    other_group: String,
    /// Emails of the people seeded in MailerLite.
    mailerlite_emails: Vec<String>,
    /// Subscribers that are unsubscribed, bounced or junk after the initial sync.
    suppressed: BTreeMap<String, String>,
}

/// Seeds both simulators and activates the connection (the initial sync runs without chaos).
async fn setup(args: &Args) -> Result<Scene, String> {
    let started = Instant::now();
    let h = Arc::new(Harness::start(Options { time_scale: args.time_scale, ..Options::default() }).await);
    let list = h.hubspot.create_list("Soak newsletter", "MANUAL", None).map_err(|e| format!("HubSpot list: {e:?}"))?;
    let list_id: u64 = list["listId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| list["listId"].as_u64())
        .ok_or("the HubSpot list has no id")?;
    let rule_group = h.mailerlite.create_group("Soak newsletter");
    let other_group = h.mailerlite.create_group("Soak other");
    let target_group = h.mailerlite.create_group("From HubSpot");
    h.hubspot
        .seed(&SeedRequest {
            count: args.contacts,
            conflict_rate: 0.2,
            opted_out_rate: 0.05,
            no_email_rate: 0.02,
            lists: vec![SeedListMembership { list_id, rate: 0.7 }],
            seed: args.seed,
            ..SeedRequest::default()
        })
        .map_err(|e| format!("HubSpot seed: {e:?}"))?;
    let ml_start = args.contacts / 2;
    h.mailerlite
        .seed(&SeedSpec {
            count: args.contacts,
            start_index: ml_start,
            conflict_rate: 0.2,
            unsubscribed_rate: 0.05,
            bounced_rate: 0.03,
            junk_rate: 0.02,
            unconfirmed_rate: 0.03,
            group_memberships: vec![
                SeedGroupMembership { group_id: rule_group.clone(), rate: 0.6 },
                SeedGroupMembership { group_id: other_group.clone(), rate: 0.3 },
            ],
            seed: args.seed,
            ..SeedSpec::default()
        })
        .map_err(|e| format!("MailerLite seed: {e:?}"))?;
    // The option is there when hmsync reads the schema at activation, and a HubSpot user removes
    // it right after: MailerLite values of it pass hmsync's own check and HubSpot refuses them,
    // failing whole batch updates (400).
    industry_options(&h, |options| {
        options.push(PropertyOption {
            label: DROPPED_LABEL.into(),
            value: DROPPED_OPTION.into(),
            description: String::new(),
            display_order: 99,
            hidden: false,
        })
    })?;
    h.connect(CONNECTION, connection_config(list_id, &rule_group, &target_group)).await;
    h.activate(CONNECTION).await;
    eprintln!("soak: initial sync done in {:.1} s", started.elapsed().as_secs_f64());
    industry_options(&h, |options| options.retain(|o| o.value != DROPPED_OPTION))?;
    let suppressed = h
        .all_subscribers()
        .await
        .into_iter()
        .filter(|s| matches!(s.status.as_str(), "unsubscribed" | "bounced" | "junk"))
        .map(|s| (s.id.clone(), s.status.as_str().to_string()))
        .collect();
    Ok(Scene {
        h,
        list_id,
        rule_group,
        other_group,
        mailerlite_emails: (ml_start..ml_start + args.contacts).map(|i| person(i).email).collect(),
        suppressed,
    })
}

async fn soak(args: Args) -> Result<Report, String> {
    // 1. Seed and activate.
    let scene = setup(&args).await?;
    let h = scene.h.clone();
    let suppressed = Arc::new(Mutex::new(scene.suppressed.clone()));

    // 2. The engine's workers from here on: MailerLite through the counting proxy, a short
    //    visibility timeout, killed and replaced at random.
    let (hs_url, hs_traffic) =
        proxy::start(proxy::App::HubSpot, h.hubspot.base_url()).await.map_err(|e| format!("HubSpot proxy: {e}"))?;
    let (ml_origin, ml_traffic) = proxy::start(proxy::App::MailerLite, format!("http://{}", h.mailerlite.addr()))
        .await
        .map_err(|e| format!("MailerLite proxy: {e}"))?;
    let settings = ApiSettings {
        hubspot_base_url: hs_url,
        mailerlite_base_url: format!("{ml_origin}/api"),
        time_scale: args.time_scale,
        hubspot_burst_limit: h.hubspot.config().burst_limit,
        fast_retries: true,
    };
    let engine =
        hmsync_e2e::engine(h.store.clone(), h.queue.clone(), h.secrets.clone(), settings, h.failpoints.clone());
    let counting = Arc::new(chaos::CountingQueue::new(h.queue.clone()));
    let workers = chaos::Workers::start(engine, counting.clone());
    let depth = SqliteQueue::open(h.dir.path().join("queue.db")).map_err(|e| format!("queue: {e}"))?;

    // 3. The load under chaos.
    h.hubspot.instrumentation().stats.reset();
    h.mailerlite.instrumentation().stats.reset();
    chaos::faults_on(&h, args.seed, 0, false);
    chaos::hostile_webhooks_on(&h, args.seed);
    let load_started_ms = now_ms();
    let load_clock = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup = load::Setup {
        seed: args.seed,
        edits_per_second: args.edits_per_second,
        list_id: scene.list_id,
        rule_group: scene.rule_group.clone(),
        other_group: scene.other_group.clone(),
        mailerlite_emails: scene.mailerlite_emails.clone(),
    };
    let load_task = tokio::spawn(load::Load::new(h.clone(), setup, suppressed.clone()).run(stop_rx.clone()));
    let chaos_task = tokio::spawn(chaos_loop(h.clone(), workers.clone(), args.clone(), stop_rx));
    let duration = Duration::from_secs_f64(args.minutes.max(0.0) * 60.0);
    let mut progress = tokio::time::interval(Duration::from_secs(15));
    progress.tick().await;
    while load_clock.elapsed() < duration {
        tokio::select! {
            _ = progress.tick() => {
                let q = counting.figures();
                eprintln!(
                    "soak: {:>4.0} s  queue {:>4}  handled {:>6}  retried {:>5}  worker kills {:>3}",
                    load_clock.elapsed().as_secs_f64(),
                    depth.len().await.unwrap_or(0),
                    q.acked,
                    q.retried,
                    workers.kills()
                );
            }
            _ = tokio::time::sleep(duration.saturating_sub(load_clock.elapsed())) => {}
        }
    }
    let _ = stop_tx.send(true);
    let load = load_task.await.map_err(|e| format!("the load task failed: {e}"))?;
    let chaos_figures = chaos_task.await.map_err(|e| format!("the chaos task failed: {e}"))?;
    let load_seconds = load_clock.elapsed().as_secs_f64();

    // 4. Quiet: drain, scan, drain; check.
    chaos::faults_off(&h);
    chaos::hostile_webhooks_off(&h);
    eprintln!("soak: load stopped after {load_seconds:.0} s; draining");
    let settle_clock = Instant::now();
    let timeout = Duration::from_secs(args.settle_timeout_secs);
    let (settled, final_scans) = converge(&h, &depth, timeout).await?;
    let settle_seconds = settle_clock.elapsed().as_secs_f64();
    eprintln!("soak: settled in {settle_seconds:.1} s; checking");
    let expectations = Expectations { suppressed: suppressed.lock().expect("suppressed lock").clone() };
    let check = checker::check(&h, CONNECTION, &expectations).await.map_err(|e| format!("checker: {e}"))?;
    let dead = h.queue.dead_letters(1000).await.map_err(|e| format!("dead letters: {e}"))?;
    let (state, _) = h.engine.state(CONNECTION).await.map_err(|e| format!("state: {e}"))?;
    let faults = SideFigures {
        hubspot: h.hubspot.instrumentation().faults.counts(),
        mailerlite: h.mailerlite.instrumentation().faults.counts(),
    };
    let webhooks =
        SideFigures { hubspot: h.hubspot.dispatcher().stats(), mailerlite: h.mailerlite.dispatcher().stats() };
    let api_requests =
        SideFigures { hubspot: h.hubspot.stats().total_requests, mailerlite: h.mailerlite.stats().total_requests };
    let engine_traffic = SideFigures { hubspot: hs_traffic.figures(), mailerlite: ml_traffic.figures() };
    let hubspot_whole_batch_refusals: u64 = h
        .hubspot
        .stats()
        .endpoints
        .iter()
        .filter(|(k, _)| k.ends_with("/batch/update") || k.ends_with("/batch/upsert"))
        .map(|(_, e)| e.by_status.get(&400).copied().unwrap_or(0) + e.by_status.get(&409).copied().unwrap_or(0))
        .sum();
    let hubspot_merges_to_new_records = load.edits.get("hubspot_merge").map_or(0, |c| c.applied);

    // 5. Echoes.
    let traffic = SideFigures { hubspot: hs_traffic, mailerlite: ml_traffic };
    let (echo, echo_settled) = echo_window(&h, &traffic, &depth, load_started_ms, timeout).await?;
    workers.stop().await;

    let mut results = check.checks.clone();
    results.extend(own_results(settled, echo_settled, &state, &echo, &check));
    let passed = results.iter().all(CheckResult::passed);
    let fired = h.failpoints.fired();
    let mut failpoints_fired: BTreeMap<String, u64> = BTreeMap::new();
    for f in &fired {
        *failpoints_fired.entry(f.to_string()).or_default() += 1;
    }
    Ok(Report {
        seed: args.seed,
        minutes: args.minutes,
        contacts_per_side: args.contacts,
        edits_per_second: args.edits_per_second,
        time_scale: args.time_scale,
        load_seconds,
        settle_seconds,
        final_scans,
        edits_total: load.edits.values().map(|c| c.applied + c.not_applied).sum(),
        edits_applied: load.edits.values().map(|c| c.applied).sum(),
        edits: load.edits.clone(),
        faults,
        webhooks,
        chaos: ChaosFigures {
            worker_kills: workers.kills(),
            failpoint_crashes: fired.len() as u64,
            failpoints_fired,
            ..chaos_figures
        },
        queue: counting.figures(),
        dead_letters: dead
            .iter()
            .map(|d| {
                let error = d.last_error.as_deref().unwrap_or("none recorded");
                format!("{} (received {}×, last error: {error:.200}): {:.160}", d.message_id, d.receive_count, d.body)
            })
            .collect(),
        api_requests,
        engine_traffic,
        hubspot_whole_batch_refusals,
        hubspot_merges_to_new_records,
        engine_counters: h.store.get_counters(CONNECTION).await.unwrap_or_default(),
        check,
        echo,
        results,
        passed,
    })
}

/// Drains, asks for one scan and drains again. "Sync now" is skipped while a scan runs; once
/// the queue is empty none does, but should one have been left behind, the scan is asked for
/// again (at most three times). Returns whether it settled in time and how many scans it asked for.
async fn converge(h: &Harness, depth: &SqliteQueue, timeout: Duration) -> Result<(Result<(), String>, u64), String> {
    let deadline = Instant::now() + timeout;
    let mut settled = settle(h, depth, deadline).await;
    let mut scans = 0u64;
    while settled.is_ok() && scans < 3 {
        let asked_ms = now_ms();
        h.engine.sync_now(CONNECTION).await.map_err(|e| format!("sync now: {e}"))?;
        scans += 1;
        settled = settle(h, depth, deadline).await;
        let (state, _) = h.engine.state(CONNECTION).await.map_err(|e| format!("state: {e}"))?;
        if state.last_scan.as_ref().is_some_and(|s| s.started_at_ms >= asked_ms) {
            break;
        }
    }
    Ok((settled, scans))
}

/// Delivers every webhook of the run again, then scans once more, counting the writes both
/// cause (there must be none).
async fn echo_window(
    h: &Harness,
    traffic: &SideFigures<Arc<proxy::Traffic>>,
    depth: &SqliteQueue,
    since_ms: i64,
    timeout: Duration,
) -> Result<(EchoFigures, Result<(), String>), String> {
    eprintln!("soak: replaying the run's webhooks");
    h.hubspot.instrumentation().stats.reset();
    traffic.hubspot.note_writes();
    traffic.mailerlite.note_writes();
    let replay = echo::replay(h, since_ms).await;
    let mut settled = settle(h, depth, Instant::now() + timeout).await;
    if settled.is_ok() {
        h.engine.sync_now(CONNECTION).await.map_err(|e| format!("sync now: {e}"))?;
        settled = settle(h, depth, Instant::now() + timeout).await;
    }
    let echo = EchoFigures {
        replay,
        hubspot_writes: checker::hubspot_writes(&h.hubspot.stats()),
        hubspot_write_requests: traffic.hubspot.noted_writes(),
        mailerlite_write_requests: traffic.mailerlite.noted_writes(),
    };
    Ok((echo, settled))
}

/// The soak's own checks, beside the checker's.
fn own_results(
    settled: Result<(), String>,
    echo_settled: Result<(), String>,
    state: &ConnectionState,
    echo: &EchoFigures,
    check: &CheckReport,
) -> Vec<CheckResult> {
    // A write to a record the state checks flagged, or to one with a recorded error, is that
    // record's unfinished business coming back rather than an echo; it still counts, but says so.
    let note = |request: &str| {
        let mentions = |set: &BTreeSet<String>| {
            request.split(|c: char| !c.is_ascii_alphanumeric()).any(|token| set.contains(token))
        };
        if mentions(&check.flagged_records) {
            " (a record the checks above flagged)"
        } else if mentions(&check.errored_records) {
            " (a record with a recorded error, written again)"
        } else {
            ""
        }
    };
    let mut echo_violations: Vec<String> = Vec::new();
    for (side, writes) in [("HubSpot", &echo.hubspot_write_requests), ("MailerLite", &echo.mailerlite_write_requests)] {
        echo_violations
            .extend(writes.iter().map(|(request, n)| format!("{n} {side} write(s): {request}{}", note(request))));
    }
    let counted: u64 = echo.hubspot_writes.values().sum();
    let noted: u64 = echo.hubspot_write_requests.values().sum();
    if counted > noted {
        echo_violations.push(format!(
            "{} HubSpot write(s) not made by the engine: {:?}",
            counted - noted,
            echo.hubspot_writes
        ));
    }
    if echo.replay.refused > 0 {
        echo_violations.push(format!("{} replayed deliveries were refused", echo.replay.refused));
    }
    vec![
        CheckResult {
            name: "settled",
            rule: "once the load stops, the queue drains and a final scan completes",
            checked: 2,
            violations: [settled.err(), echo_settled.err()].into_iter().flatten().collect(),
        },
        CheckResult {
            name: "not_paused",
            rule: "chaos alone never pauses the connection (safety valve, credentials)",
            checked: 1,
            violations: state.pause.iter().map(|p| format!("the connection is paused: {p:?}")).collect(),
        },
        CheckResult {
            name: "no_echo_writes",
            rule: "no write is caused only by an echo: replaying every delivery of the run and scanning again \
                   writes nothing",
            checked: echo.replay.hubspot_deliveries + echo.replay.mailerlite_deliveries + 1,
            violations: echo_violations,
        },
    ]
}

/// Kills the worker, arms failpoints, slows the APIs down and runs "sync now" at random moments
/// until `stop`.
async fn chaos_loop(
    h: Arc<Harness>,
    workers: Arc<chaos::Workers>,
    args: Args,
    mut stop: watch::Receiver<bool>,
) -> ChaosFigures {
    let mut rng = fastrand::Rng::with_seed(args.seed.wrapping_add(301));
    let mut figures = ChaosFigures::default();
    let mean_kill = args.kill_every_secs.max(0.5);
    let mut next_kill = Instant::now() + Duration::from_secs_f64(mean_kill * (0.5 + rng.f64()));
    let mut next_failpoint = Instant::now() + Duration::from_secs_f64(mean_kill * (0.5 + rng.f64()));
    let mut next_scan = (args.scan_every_secs > 0.0)
        .then(|| Instant::now() + Duration::from_secs_f64(args.scan_every_secs * (0.5 + rng.f64())));
    let mut armed = 0usize;
    let mut next_window = Instant::now() + LATENCY_WINDOW;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return figures;
        }
        let now = Instant::now();
        if now >= next_window {
            figures.windows += 1;
            let slow = figures.windows % SLOW_EVERY == 1;
            figures.slow_windows += u64::from(slow);
            chaos::faults_on(&h, args.seed, figures.windows, slow);
            next_window = now + LATENCY_WINDOW;
        }
        if now >= next_kill {
            workers.kill_and_replace();
            next_kill = now + Duration::from_secs_f64(mean_kill * (0.5 + rng.f64()));
        }
        // One failpoint armed at a time, so at most one is left armed when the chaos stops.
        if now >= next_failpoint && h.failpoints.fired().len() >= armed {
            h.failpoints.arm(failpoint::ALL[rng.usize(0..failpoint::ALL.len())]);
            armed += 1;
            next_failpoint = now + Duration::from_secs_f64(mean_kill * (0.5 + rng.f64()));
        }
        if let Some(at) = next_scan
            && now >= at
        {
            if h.engine.sync_now(CONNECTION).await.is_ok() {
                figures.scans_during_load += 1;
            }
            next_scan = Some(now + Duration::from_secs_f64(args.scan_every_secs * (0.5 + rng.f64())));
        }
    }
}

/// Waits until no webhook is in flight, the queue is empty and no scan is running, three
/// times in a row.
async fn settle(h: &Harness, depth: &SqliteQueue, deadline: Instant) -> Result<(), String> {
    let mut quiet = 0;
    loop {
        if Instant::now() > deadline {
            let (state, _) = h.engine.state(CONNECTION).await.map_err(|e| format!("state: {e}"))?;
            return Err(format!(
                "did not settle in time: {} messages left, scan running: {}",
                depth.len().await.unwrap_or(0),
                state.scan.is_some()
            ));
        }
        let hooks_idle = tokio::time::timeout(Duration::from_secs(1), async {
            h.hubspot.dispatcher().wait_idle().await;
            h.mailerlite.dispatcher().wait_idle().await;
        })
        .await
        .is_ok();
        let empty = depth.len().await.map_err(|e| format!("queue: {e}"))? == 0;
        let (state, _) = h.engine.state(CONNECTION).await.map_err(|e| format!("state: {e}"))?;
        if hooks_idle && empty && state.scan.is_none() {
            quiet += 1;
            if quiet >= 3 {
                return Ok(());
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn print(r: &Report) {
    println!(
        "hmsync chaos soak: seed {}, {} min, {} people per side, {} edits/s, time scale {}",
        r.seed, r.minutes, r.contacts_per_side, r.edits_per_second, r.time_scale
    );
    println!("load ({:.0} s): {} edits, {} applied", r.load_seconds, r.edits_total, r.edits_applied);
    for (kind, c) in &r.edits {
        let why = c.last_not_applied.as_deref().map(|w| format!(" (latest: {w:.120})")).unwrap_or_default();
        println!("  {kind:<24} {:>6} applied {:>5} not applied{why}", c.applied, c.not_applied);
    }
    for (side, f) in [("HubSpot", &r.faults.hubspot), ("MailerLite", &r.faults.mailerlite)] {
        println!(
            "faults injected, {side:<10}: {} 5xx, {} 429, {} hangs past the client timeout, {} delayed 200 ms",
            f.server_errors, f.rate_limited, f.hangs, f.delayed
        );
    }
    println!("slow windows: {} of {} ({} s each)", r.chaos.slow_windows, r.chaos.windows, LATENCY_WINDOW.as_secs());
    for (side, w) in [("HubSpot", &r.webhooks.hubspot), ("MailerLite", &r.webhooks.mailerlite)] {
        println!(
            "webhooks, {side:<10}: {} sent, {} duplicated, {} dropped, {} attempts, {} delivered, {} failed for good",
            w.queued, w.duplicated, w.dropped, w.attempts, w.delivered, w.failed
        );
    }
    println!(
        "workers: {} killed mid-run, {} crashes at failpoints {:?}; {} scans during the load, {} final scan(s)",
        r.chaos.worker_kills,
        r.chaos.failpoint_crashes,
        r.chaos.failpoints_fired,
        r.chaos.scans_during_load,
        r.final_scans
    );
    println!(
        "queue: {} received, {} redelivered, {} retried after a failure, {} done; {} dead letters",
        r.queue.received,
        r.queue.redelivered,
        r.queue.retried,
        r.queue.acked,
        r.dead_letters.len()
    );
    for d in r.dead_letters.iter().take(10) {
        println!("  dead letter: {d}");
    }
    println!(
        "requests: HubSpot {}, MailerLite {} (the engine's: HubSpot {} reads, {} writes; MailerLite {} requests, {} \
         reads, {} writes)",
        r.api_requests.hubspot,
        r.api_requests.mailerlite,
        r.engine_traffic.hubspot.reads,
        r.engine_traffic.hubspot.writes,
        r.engine_traffic.mailerlite.requests,
        r.engine_traffic.mailerlite.reads,
        r.engine_traffic.mailerlite.writes
    );
    println!(
        "HubSpot behaviours: {} merges into new records, {} batch updates refused as a whole (option {DROPPED_OPTION:?} \
         dropped after the initial sync)",
        r.hubspot_merges_to_new_records, r.hubspot_whole_batch_refusals
    );
    println!("engine counters: {:?}", r.engine_counters);
    println!("settled {:.1} s after the load stopped", r.settle_seconds);
    let f = &r.check.figures;
    println!(
        "apps: {} HubSpot contacts ({} in scope, {} without email), {} subscribers ({} in scope); {} links, {} complete, {} converged",
        f.hubspot_contacts,
        f.hubspot_in_scope,
        f.hubspot_without_email,
        f.mailerlite_subscribers,
        f.mailerlite_in_scope,
        f.links,
        f.complete_links,
        f.converged
    );
    println!(
        "field values compared: {}, exempted by a recorded error: {}; links whose emails differ under a recorded \
         email error: {}; contacts with a recorded error: {}",
        f.field_values_compared, f.field_values_exempted_by_errors, f.emails_exempted_by_errors, f.recorded_errors
    );
    for e in r.check.errors.iter().take(5) {
        println!("  recorded error: {e}");
    }
    println!(
        "echo: replayed {} HubSpot and {} MailerLite deliveries ({} accepted); writes afterwards: HubSpot {}, \
         MailerLite {}",
        r.echo.replay.hubspot_deliveries,
        r.echo.replay.mailerlite_deliveries,
        r.echo.replay.accepted,
        r.echo.hubspot_writes.values().sum::<u64>(),
        r.echo.mailerlite_write_requests.values().sum::<u64>()
    );
    println!("checks:");
    for c in &r.results {
        let mark = if c.passed() { "pass" } else { "FAIL" };
        println!("  [{mark}] {:<20} {:>6} checked  {}", c.name, c.checked, c.rule);
        for v in c.violations.iter().take(20) {
            println!("         - {v}");
        }
        if c.violations.len() > 20 {
            println!("         … and {} more", c.violations.len() - 20);
        }
    }
    println!("RESULT: {}", if r.passed { "PASS" } else { "FAIL" });
}
