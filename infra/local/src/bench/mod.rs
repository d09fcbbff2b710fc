//! `hmsync bench`: the benchmark. It runs hmsync against the sandbox at the real rate-limit
//! sizes, with every window shrunk by a time scale (so the request shape is real and the run
//! is short), and writes the figures as a markdown table (`bench.md`) and JSON (`bench.json`):
//!
//! - A. initial syncs of 1,000 / 10,000 / 100,000 contacts per side: requests per side and per
//!   endpoint, per unique contact, the bound the rate limits give for them, the measured time,
//!   and the engine process's peak memory and CPU time;
//! - B. steady state: change-to-write latency both ways with added API latency, requests per
//!   change, and the requests echoes cause;
//! - C. the same initial syncs done record by record, for comparison with A;
//! - D. a scheduled scan after 0.1% of the contacts changed without webhooks;
//! - E. cold start and size of each Lambda function binary.
//!
//! The engine runs in a child process of its own (`hmsync bench engine-child`), so its memory
//! and CPU figures are not the simulators'. Targets are printed next to the figures; a missed
//! target is reported, not an error. The run fails only when the bench cannot measure, or when
//! the sync's result is wrong (links missing, changes not delivered, errors).

pub mod bound;
pub mod cold_start;
pub mod engine_child;
pub mod initial;
pub mod per_record;
pub mod report;
pub mod scan;
pub mod setup;
pub mod steady;
pub mod usage;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use report::{BenchReport, evaluate, render_markdown};
use setup::Engines;
use usage::{Machine, load_average, own_usage};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub internal: Option<Internal>,
    #[command(flatten)]
    pub options: BenchOptions,
}

/// Processes the bench starts itself.
#[derive(Debug, clap::Subcommand)]
pub enum Internal {
    /// The sync engine of one run, driven by the bench over stdin/stdout.
    #[command(hide = true)]
    EngineChild {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Initial syncs.
    A,
    /// Steady state.
    B,
    /// The per-record way, next to A.
    C,
    /// A scheduled scan on A's largest population.
    D,
    /// Lambda cold starts.
    E,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// A smoke run: 1,000 and 10,000 contacts per side only, 20 steady-state changes each way,
    /// smaller samples.
    #[arg(long)]
    pub quick: bool,
    /// Contacts per side of the initial syncs [default: 1000,10000,100000; --quick: 1000,10000].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<u64>,
    /// Parts to run (C and D need A).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "a,b,c,d,e")]
    pub parts: Vec<Part>,
    /// Divides every rate-limit window during the initial syncs (figures are scaled
    /// back to real seconds) [default: 1 up to 1,000 contacts per side, 2 up to 10,000, 3 above;
    /// --quick: 10].
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Divides every rate-limit window during the scheduled scan (part D).
    #[arg(long, default_value_t = 10.0)]
    pub scan_time_scale: f64,
    /// Steady-state changes per direction [default: 1000; --quick: 20].
    #[arg(long)]
    pub steady_changes: Option<u64>,
    /// Steady-state changes per second per direction (the directions interleave).
    #[arg(long, default_value_t = 0.5)]
    pub steady_rate: f64,
    /// Changes per direction made with the echoes held back, to count what echoes cost
    /// [default: 100; --quick: 5].
    #[arg(long)]
    pub echo_sample: Option<u64>,
    /// Milliseconds added to every API call during the steady state.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// Records per side the per-record loop runs over before its counts are scaled to the whole
    /// population [default: 1000; --quick: 500].
    #[arg(long)]
    pub per_record_sample: Option<u64>,
    /// Where the Lambda function binaries are (a release build).
    #[arg(long, default_value = "target/release")]
    pub lambda_dir: PathBuf,
    /// Cold starts per function [default: 5; --quick: 3].
    #[arg(long)]
    pub cold_starts: Option<usize>,
    /// A local DynamoDB/SQS endpoint (a moto server) for the function whose first event needs
    /// DynamoDB (`scheduled-scan`).
    #[arg(long, env = "HMSYNC_MOTO_ENDPOINT")]
    pub aws_endpoint: Option<String>,
    /// Where `bench.md` and `bench.json` are written (and scratch data, removed afterwards).
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// Measure nothing: print the tables of an earlier run's `bench.json`.
    #[arg(long, value_name = "BENCH_JSON")]
    pub render: Option<PathBuf>,
}

impl BenchOptions {
    fn sizes(&self) -> Vec<u64> {
        if !self.sizes.is_empty() {
            return self.sizes.clone();
        }
        if self.quick { vec![1_000, 10_000] } else { vec![1_000, 10_000, 100_000] }
    }

    /// The time scale of an initial sync. Only the rate-limit windows shrink with it, not the
    /// engine's own processing time, which `wall × scale` multiplies too: a run must last long
    /// enough at its scale for that to stay small next to the rate-limit waits.
    fn time_scale(&self, per_side: u64) -> f64 {
        match (self.time_scale, self.quick) {
            (Some(s), _) => s,
            (None, true) => 10.0,
            (None, false) if per_side <= 1_000 => 1.0,
            (None, false) if per_side <= 10_000 => 2.0,
            (None, false) => 3.0,
        }
    }

    fn pick<T>(&self, given: Option<T>, full: T, quick: T) -> T {
        given.unwrap_or(if self.quick { quick } else { full })
    }

    fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }
}

fn write_outputs(out_dir: &Path, report: &BenchReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    std::fs::write(out_dir.join("bench.json"), serde_json::to_string_pretty(report)?)?;
    std::fs::write(out_dir.join("bench.md"), render_markdown(report))?;
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// `hmsync bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(Internal::EngineChild { data_dir }) = args.internal {
        return engine_child::run_child(&data_dir).await;
    }
    let o = args.options;
    if let Some(path) = &o.render {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut report: BenchReport =
            serde_json::from_str(&text).with_context(|| format!("{} is not a bench.json", path.display()))?;
        report.targets = evaluate(&report);
        print!("{}", render_markdown(&report));
        return Ok(());
    }
    if (o.runs(Part::C) || o.runs(Part::D)) && !o.runs(Part::A) {
        bail!("parts C and D compare with and continue on part A's initial syncs: add `a` to --parts");
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !o.time_scale.is_none_or(positive) || !positive(o.scan_time_scale) || !positive(o.steady_rate) {
        bail!("--time-scale, --scan-time-scale and --steady-rate must be positive numbers");
    }
    let started = Instant::now();
    let engines = Engines {
        exe: std::env::current_exe().context("finding the hmsync binary for the engine process")?,
        work_dir: o.out_dir.join("work"),
    };
    let mut report = BenchReport {
        date: now_rfc3339(),
        machine: Machine::this(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
        command: std::iter::once("hmsync".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" "),
        quick: o.quick,
        wall_seconds: 0.0,
        load_at_start: load_average(),
        load_at_end: String::new(),
        initial: Vec::new(),
        steady: None,
        scan: None,
        cold_start: None,
        bench_process: Default::default(),
        targets: Vec::new(),
    };
    let mut problems: Vec<String> = Vec::new();

    if o.runs(Part::A) {
        let sizes = o.sizes();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        for n in sizes {
            let scale = o.time_scale(n);
            let (mut a, mut synced) = initial::initial_sync(&engines, n, scale).await?;
            problems.extend(initial::problems(&a));
            if o.runs(Part::C) {
                a.per_record = Some(per_record::per_record(n, o.pick(o.per_record_sample, 1000, 500), &a).await?);
            }
            if o.runs(Part::D) && n == largest {
                let (d, rest) = scan::scan_after_changes(synced, &engines, o.scan_time_scale).await?;
                synced = rest;
                let changed = d.changed_hubspot + d.changed_mailerlite;
                if d.propagated != changed {
                    problems.push(format!("D: the scan synced {} of {changed} changes", d.propagated));
                }
                report.scan = Some(d);
            }
            synced.engine.stop().await?;
            report.initial.push(a);
            report.wall_seconds = started.elapsed().as_secs_f64();
            report.targets = evaluate(&report);
            write_outputs(&o.out_dir, &report)?;
        }
    }
    if o.runs(Part::B) {
        let plan = steady::SteadyPlan {
            changes_per_direction: o.pick(o.steady_changes, 1000, 20),
            rate_per_direction: o.steady_rate,
            added_latency_ms: o.latency_ms,
            echo_sample: o.pick(o.echo_sample, 100, 5),
        };
        let (b, p) = steady::steady(&engines, plan).await?;
        problems.extend(p);
        report.steady = Some(b);
        report.wall_seconds = started.elapsed().as_secs_f64();
        report.targets = evaluate(&report);
        write_outputs(&o.out_dir, &report)?;
    }
    if o.runs(Part::E) {
        let runs = o.pick(o.cold_starts, 5, 3);
        report.cold_start = Some(cold_start::cold_start(&o.lambda_dir, runs, o.aws_endpoint.as_deref()).await?);
    }
    report.bench_process = own_usage();
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.load_at_end = load_average();
    report.targets = evaluate(&report);
    write_outputs(&o.out_dir, &report)?;
    let _ = std::fs::remove_dir_all(&engines.work_dir);

    println!("{}", render_markdown(&report));
    let missed = report.targets.iter().filter(|t| !t.met).count();
    eprintln!(
        "Bench done in {:.0} s: {} of {} targets met; figures in {} and {}.",
        report.wall_seconds,
        report.targets.len() - missed,
        report.targets.len(),
        o.out_dir.join("bench.md").display(),
        o.out_dir.join("bench.json").display()
    );
    if !problems.is_empty() {
        bail!("the sync's results were wrong:\n  {}", problems.join("\n  "));
    }
    Ok(())
}
