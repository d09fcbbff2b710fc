//! The bench's figures (written as JSON) and their rendering as markdown tables, with every
//! target of the issue printed next to its figure and marked met or missed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hmsync_sandbox::common::StatsSnapshot;
use serde::{Deserialize, Serialize};

use super::bound::Bound;
use super::usage::{Machine, ProcessUsage};

/// Requests one simulator counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideRequests {
    pub total: u64,
    /// Per endpoint key (`"METHOD /route"`).
    pub endpoints: BTreeMap<String, u64>,
    /// Per rate-limit bucket (what the bound is computed from).
    pub buckets: BTreeMap<String, u64>,
    /// Answers 429 (the pacers should keep this at 0).
    pub rate_limited: u64,
}

impl SideRequests {
    pub fn of(s: &StatsSnapshot) -> SideRequests {
        SideRequests {
            total: s.total_requests,
            endpoints: s.endpoints.iter().map(|(k, v)| (k.clone(), v.requests)).collect(),
            buckets: s.buckets.clone(),
            rate_limited: s.rate_limited,
        }
    }

    /// Requests that read or create schemas and account details (HubSpot properties and
    /// property groups, account details, MailerLite fields): made once when a connection is
    /// activated, whatever its number of contacts.
    pub fn setup_requests(&self) -> u64 {
        self.endpoints
            .iter()
            .filter(|(k, _)| k.contains("/properties") || k.contains("/account-info") || k.ends_with("/api/fields"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Requests per unique contact, and the same without the one-time setup requests if any.
fn per_contact(side: &SideRequests, unique: u64) -> String {
    let unique = unique.max(1) as f64;
    let setup = side.setup_requests();
    let all = format!("{:.4}", side.total as f64 / unique);
    let without = format!("{:.4}", (side.total - setup) as f64 / unique);
    match setup {
        _ if without == all => all,
        1 => format!("{all} ({without} without its one-time setup request)"),
        n => format!("{all} ({without} without its {n} one-time setup requests)"),
    }
}

/// Part A: one initial sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitialSync {
    pub per_side: u64,
    /// Distinct emails over both sides: what the sync links.
    pub unique_contacts: u64,
    pub time_scale: f64,
    pub hubspot: SideRequests,
    pub mailerlite: SideRequests,
    pub hubspot_per_contact: f64,
    pub mailerlite_per_contact: f64,
    pub bound: Bound,
    /// From the activation to the end of the initial sync, in real seconds (wall × time scale).
    pub measured_seconds: f64,
    pub wall_seconds: f64,
    /// measured ÷ bound.
    pub ratio: f64,
    /// The engine process (its own process: the sandbox is not in it).
    pub engine: ProcessUsage,
    pub links: u64,
    pub errors: u64,
    pub dead_letters: usize,
    /// Part C for the same population.
    pub per_record: Option<PerRecord>,
}

/// Part C: the same initial sync done record by record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerRecord {
    /// Records per side the loop ran over (all of them, or a sample).
    pub sample_per_side: u64,
    /// The sample's requests were scaled to every record (`sample_per_side < per_side`).
    pub extrapolated: bool,
    pub sample_hubspot: SideRequests,
    pub sample_mailerlite: SideRequests,
    /// For the whole population.
    pub hubspot_requests: u64,
    pub mailerlite_requests: u64,
    pub bound: Bound,
    /// Per-record requests ÷ hmsync's (both sides together).
    pub request_ratio: f64,
    /// Per-record bound ÷ hmsync's bound.
    pub bound_ratio: f64,
}

/// Change-to-write latencies of one direction, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub changes: u64,
    /// Changes whose write reached the other side.
    pub delivered: u64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

/// Part B's echo accounting for one direction: changes made with the destination's webhooks
/// held, then the held echoes released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EchoCheck {
    pub direction: String,
    pub changes: u64,
    /// Requests the changes themselves took.
    pub hubspot_requests: u64,
    pub mailerlite_requests: u64,
    /// Webhook deliveries of our own writes that were held and then delivered.
    pub echo_deliveries: u64,
    /// Requests after the echoes were released (must be 0).
    pub echo_requests: u64,
}

/// Part B: steady state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Steady {
    pub population_per_side: u64,
    pub changes_per_direction: u64,
    /// Changes per second per direction (the two directions interleave).
    pub rate_per_direction: f64,
    pub added_latency_ms: u64,
    pub hubspot_to_mailerlite: Latencies,
    pub mailerlite_to_hubspot: Latencies,
    /// Everything the mixed stream cost (echoes included, as they arrived).
    pub hubspot: SideRequests,
    pub mailerlite: SideRequests,
    pub requests_per_change: f64,
    pub echo_checks: Vec<EchoCheck>,
    pub echo_requests: u64,
    pub engine: ProcessUsage,
}

/// One scan of part D.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRun {
    pub hubspot: SideRequests,
    pub mailerlite: SideRequests,
    pub bound: Bound,
    /// Real seconds (wall × time scale), from the schedule's tick to the end of the scan.
    pub measured_seconds: f64,
    pub wall_seconds: f64,
    /// Records the scan read.
    pub records: u64,
}

/// Part D: a scheduled scan after a share of the contacts changed without webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub per_side: u64,
    pub time_scale: f64,
    pub changed_hubspot: u64,
    pub changed_mailerlite: u64,
    /// Changes found on the other side after the scan.
    pub propagated: u64,
    /// The first scheduled scan after the initial sync (it re-reads what the initial sync wrote).
    pub first_scan: ScanRun,
    /// The scan after the changes.
    pub scan: ScanRun,
}

/// Part E: one Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionStart {
    pub name: String,
    pub binary: String,
    pub size_bytes: u64,
    pub event: String,
    pub runs: usize,
    /// Process start to its first `GET …/invocation/next` (initialisation done), median.
    pub init_ms: f64,
    /// Process start to its answer to the first event, median and worst.
    pub first_event_ms: f64,
    pub first_event_max_ms: f64,
    /// `response` or `error: <errorType>`.
    pub outcome: String,
}

/// Part E.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    /// Where the binaries were taken from (a release build's `target/release` for the figures
    /// that count).
    pub dir: String,
    pub functions: Vec<FunctionStart>,
    /// Functions whose binary was not found (with where it was looked for).
    pub missing: Vec<String>,
    pub notes: Vec<String>,
}

/// One target of the issue and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub part: String,
    pub target: String,
    pub figure: String,
    pub met: bool,
}

/// Everything one `hmsync bench` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// UTC, RFC 3339.
    pub date: String,
    pub machine: Machine,
    /// `release` or `debug`.
    pub build: String,
    pub command: String,
    pub quick: bool,
    pub wall_seconds: f64,
    /// Load averages (1, 5, 15 min) when the run started and ended.
    pub load_at_start: String,
    pub load_at_end: String,
    pub initial: Vec<InitialSync>,
    pub steady: Option<Steady>,
    pub scan: Option<Scan>,
    pub cold_start: Option<ColdStart>,
    /// The bench process itself (the simulators and the per-record loop run in it).
    pub bench_process: ProcessUsage,
    pub targets: Vec<Target>,
}

/// Memory target of part A, for the 100,000 + 100,000 run.
pub const MEMORY_TARGET_MIB: f64 = 256.0;
const MEMORY_TARGET_SIZE: u64 = 100_000;

fn target(part: &str, target: String, figure: String, met: bool) -> Target {
    Target { part: part.into(), target, figure, met }
}

/// Every target of the issue that this report has a figure for.
pub fn evaluate(r: &BenchReport) -> Vec<Target> {
    let mut t = Vec::new();
    for a in &r.initial {
        let n = thousands(a.per_side);
        t.push(target(
            "A",
            format!("HubSpot requests per unique contact ≤ 0.03 ({n}/side)"),
            per_contact(&a.hubspot, a.unique_contacts),
            a.hubspot_per_contact <= 0.03,
        ));
        t.push(target(
            "A",
            format!("MailerLite requests per unique contact ≤ 0.05 ({n}/side)"),
            per_contact(&a.mailerlite, a.unique_contacts),
            a.mailerlite_per_contact <= 0.05,
        ));
        t.push(target(
            "A",
            format!("measured time ≤ 1.1 × bound ({n}/side)"),
            format!("{:.2} ×", a.ratio),
            a.ratio <= 1.1,
        ));
        if a.per_side == MEMORY_TARGET_SIZE {
            t.push(target(
                "A",
                format!("engine peak memory ≤ {MEMORY_TARGET_MIB} MiB ({n} + {n})"),
                format!("{:.0} MiB", a.engine.peak_rss_mib),
                a.engine.peak_rss_mib <= MEMORY_TARGET_MIB,
            ));
        }
        if let Some(c) = &a.per_record {
            t.push(target(
                "C",
                format!("per-record way needs ≥ 20× the requests ({n}/side)"),
                format!("{:.1} ×", c.request_ratio),
                c.request_ratio >= 20.0,
            ));
        }
    }
    if let Some(b) = &r.steady {
        for (dir, l) in
            [("HubSpot → MailerLite", &b.hubspot_to_mailerlite), ("MailerLite → HubSpot", &b.mailerlite_to_hubspot)]
        {
            t.push(target(
                "B",
                format!("p95 change-to-write < 2 s, {dir} (+{} ms per API call)", b.added_latency_ms),
                format!("{} ms ({}/{} delivered)", l.p95_ms, l.delivered, l.changes),
                l.p95_ms < 2000 && l.delivered == l.changes,
            ));
        }
        t.push(target("B", "requests caused by echoes = 0".into(), b.echo_requests.to_string(), b.echo_requests == 0));
    }
    if let Some(e) = &r.cold_start {
        for f in &e.functions {
            t.push(target(
                "E",
                format!("cold start < 100 ms: {}", f.name),
                format!("{:.1} ms", f.first_event_ms),
                f.first_event_ms < 100.0 && f.outcome.starts_with("response"),
            ));
        }
    }
    t
}

/// `12345` → `12,345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(s: f64) -> String {
    if s >= 100.0 { format!("{s:.0}") } else { format!("{s:.1}") }
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**MISSED**" }
}

fn endpoints(side: &SideRequests) -> String {
    let mut v: Vec<(&String, &u64)> = side.endpoints.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("`{k}` {}", thousands(**n))).collect::<Vec<_>>().join(", ")
}

fn buckets(bound: &Bound) -> String {
    bound
        .buckets
        .iter()
        .filter(|b| b.requests > 0)
        .map(|b| format!("{}: {} → {} s", b.limit, thousands(b.requests), secs(b.seconds)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report as markdown: a header, one table per part, the targets.
pub fn render_markdown(r: &BenchReport) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(
        md,
        "Measured {} on {} CPUs ({}), {} MiB memory, Linux {}; {} build; `{}`{}. Load average (1/5/15 min) {} at the start, {} at the end; the run took {:.0} s.\n",
        r.date,
        m.cpus,
        m.cpu_model,
        thousands(m.memory_mib),
        m.kernel,
        r.build,
        r.command,
        if r.quick { " (quick: smaller sizes, fewer steady-state changes)" } else { "" },
        r.load_at_start,
        r.load_at_end,
        r.wall_seconds
    );

    if !r.initial.is_empty() {
        let _ = writeln!(
            md,
            "### A. Initial sync (two-way, 50% overlap, 4 mapped fields incl. an option field, target group)\n"
        );
        let _ = writeln!(
            md,
            "| Contacts per side | Unique contacts | HubSpot requests | MailerLite requests | HubSpot / contact (≤ 0.03) | MailerLite / contact (≤ 0.05) | Bound (s) | Measured (s) | Measured / bound (≤ 1.1) | Engine peak memory | Engine CPU (s) | Time scale |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for a in &r.initial {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} | {:.4} | {} | {} | {:.2} | {:.0} MiB | {:.1} | {} |",
                thousands(a.per_side),
                thousands(a.unique_contacts),
                thousands(a.hubspot.total),
                thousands(a.mailerlite.total),
                a.hubspot_per_contact,
                a.mailerlite_per_contact,
                secs(a.bound.seconds),
                secs(a.measured_seconds),
                a.ratio,
                a.engine.peak_rss_mib,
                a.engine.cpu_seconds(),
                a.time_scale
            );
        }
        let _ = writeln!(md);
        for a in &r.initial {
            let _ = writeln!(
                md,
                "- {}/side ({:.0} s wall at time scale {}): bound per bucket — {} (binding: {}). Linked {} of {}, {} errors, {} dead letters, {} answers 429. HubSpot: {}. MailerLite: {}.",
                thousands(a.per_side),
                a.wall_seconds,
                a.time_scale,
                buckets(&a.bound),
                a.bound.binding,
                thousands(a.links),
                thousands(a.unique_contacts),
                a.errors,
                a.dead_letters,
                a.hubspot.rate_limited + a.mailerlite.rate_limited,
                endpoints(&a.hubspot),
                endpoints(&a.mailerlite)
            );
        }
        let _ = writeln!(md);
    }

    let with_c: Vec<&InitialSync> = r.initial.iter().filter(|a| a.per_record.is_some()).collect();
    if !with_c.is_empty() {
        let _ = writeln!(
            md,
            "### C. The same initial sync, record by record (look up on the other side, then create or update)\n"
        );
        let _ = writeln!(
            md,
            "| Contacts per side | Records run per side | Per-record HubSpot requests | Per-record MailerLite requests | hmsync requests | Requests: per-record ÷ hmsync (≥ 20) | Per-record bound | hmsync bound | Bound: per-record ÷ hmsync |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for a in with_c {
            let c = a.per_record.as_ref().expect("filtered");
            let _ = writeln!(
                md,
                "| {} | {}{} | {} | {} | {} | {:.1} | {} s ({:.1} h) | {} s | {:.1} |",
                thousands(a.per_side),
                thousands(c.sample_per_side),
                if c.extrapolated { " (sample, extrapolated)" } else { "" },
                thousands(c.hubspot_requests),
                thousands(c.mailerlite_requests),
                thousands(a.hubspot.total + a.mailerlite.total),
                c.request_ratio,
                secs(c.bound.seconds),
                c.bound.seconds / 3600.0,
                secs(a.bound.seconds),
                c.bound_ratio
            );
        }
        let _ = writeln!(md);
    }

    if let Some(b) = &r.steady {
        let _ = writeln!(
            md,
            "### B. Steady state ({} changes each way at {} per second each way, +{} ms on every API call, {} contacts per side)\n",
            thousands(b.changes_per_direction),
            b.rate_per_direction,
            b.added_latency_ms,
            thousands(b.population_per_side)
        );
        let _ = writeln!(md, "| Direction | Changes | Delivered | p50 | p95 (< 2 s) | p99 | max |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for (dir, l) in
            [("HubSpot → MailerLite", &b.hubspot_to_mailerlite), ("MailerLite → HubSpot", &b.mailerlite_to_hubspot)]
        {
            let _ = writeln!(
                md,
                "| {dir} | {} | {} | {} ms | {} ms | {} ms | {} ms |",
                thousands(l.changes),
                thousands(l.delivered),
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                l.max_ms
            );
        }
        let _ = writeln!(
            md,
            "\nRequests for the whole stream: HubSpot {}, MailerLite {} ({:.2} per change, echoes included as they arrived). {} answers 429.\n",
            thousands(b.hubspot.total),
            thousands(b.mailerlite.total),
            b.requests_per_change,
            b.hubspot.rate_limited + b.mailerlite.rate_limited
        );
        let _ = writeln!(
            md,
            "| Echo check | Changes | Their HubSpot requests | Their MailerLite requests | Echo deliveries held then released | Requests caused by echoes (= 0) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for e in &b.echo_checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                e.direction, e.changes, e.hubspot_requests, e.mailerlite_requests, e.echo_deliveries, e.echo_requests
            );
        }
        let _ = writeln!(md);
    }

    if let Some(d) = &r.scan {
        let _ = writeln!(
            md,
            "### D. Scheduled scan, {}/side (time scale {}), after {} HubSpot and {} MailerLite changes whose webhooks were lost\n",
            thousands(d.per_side),
            d.time_scale,
            d.changed_hubspot,
            d.changed_mailerlite
        );
        let _ = writeln!(
            md,
            "| Scan | Records read | HubSpot requests | MailerLite requests | Bound (s) | Measured (s) | Wall (s) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, s) in [("first scan after the initial sync", &d.first_scan), ("scan after the changes", &d.scan)] {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                thousands(s.records),
                thousands(s.hubspot.total),
                thousands(s.mailerlite.total),
                secs(s.bound.seconds),
                secs(s.measured_seconds),
                secs(s.wall_seconds)
            );
        }
        let _ = writeln!(
            md,
            "\nChanges found and synced by the scan: {} of {}. Scan after the changes — bound per bucket: {}. HubSpot: {}. MailerLite: {}.\n",
            d.propagated,
            d.changed_hubspot + d.changed_mailerlite,
            buckets(&d.scan.bound),
            endpoints(&d.scan.hubspot),
            endpoints(&d.scan.mailerlite)
        );
    }

    if let Some(e) = &r.cold_start {
        let _ = writeln!(md, "### E. Lambda cold start (binaries from `{}`, local Runtime API)\n", e.dir);
        if !e.functions.is_empty() {
            let _ = writeln!(
                md,
                "| Function | Binary size | First event | Runs | Init (to first `next`) | Cold start (to first answer, < 100 ms) | Worst | Outcome |"
            );
            let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---|");
            for f in &e.functions {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} MiB | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                    f.name,
                    f.size_bytes as f64 / (1024.0 * 1024.0),
                    f.event,
                    f.runs,
                    f.init_ms,
                    f.first_event_ms,
                    f.first_event_max_ms,
                    f.outcome
                );
            }
            let _ = writeln!(md);
        }
        for m in &e.missing {
            let _ = writeln!(md, "- Not measured: {m}");
        }
        for n in &e.notes {
            let _ = writeln!(md, "- {n}");
        }
        let _ = writeln!(md);
    }

    if !r.targets.is_empty() {
        let _ = writeln!(md, "### Targets\n");
        let _ = writeln!(md, "| Part | Target | Figure | |");
        let _ = writeln!(md, "|---|---|---:|---|");
        for t in &r.targets {
            let _ = writeln!(md, "| {} | {} | {} | {} |", t.part, t.target, t.figure, mark(t.met));
        }
        let _ = writeln!(md);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::bound::bound;

    fn side(total: u64, bucket: &str, endpoint: &str) -> SideRequests {
        SideRequests {
            total,
            endpoints: [(endpoint.to_string(), total)].into(),
            buckets: [(bucket.to_string(), total)].into(),
            rate_limited: 0,
        }
    }

    fn report() -> BenchReport {
        let hs = side(3450, "burst", "POST /crm/v3/objects/contacts/batch/create");
        let ml = side(4200, "requests", "POST /api/batch");
        let b = bound(&hs.buckets, &ml.buckets);
        let c_hs = side(201_000, "burst", "GET /crm/v3/objects/contacts/{contactId}");
        let c_ml = side(201_000, "requests", "GET /api/subscribers/{id}");
        let c_bound = bound(&c_hs.buckets, &c_ml.buckets);
        let initial = InitialSync {
            per_side: 100_000,
            unique_contacts: 150_000,
            time_scale: 10.0,
            hubspot_per_contact: 3450.0 / 150_000.0,
            mailerlite_per_contact: 4200.0 / 150_000.0,
            measured_seconds: 2205.0,
            wall_seconds: 220.5,
            ratio: 2205.0 / b.seconds,
            bound: b.clone(),
            engine: ProcessUsage { peak_rss_mib: 300.0, user_cpu_seconds: 40.0, system_cpu_seconds: 2.5 },
            links: 150_000,
            errors: 0,
            dead_letters: 0,
            per_record: Some(PerRecord {
                sample_per_side: 1000,
                extrapolated: true,
                hubspot_requests: 201_000,
                mailerlite_requests: 201_000,
                request_ratio: 402_000.0 / 7650.0,
                bound_ratio: c_bound.seconds / b.seconds,
                bound: c_bound,
                sample_hubspot: c_hs.clone(),
                sample_mailerlite: c_ml.clone(),
            }),
            hubspot: hs,
            mailerlite: ml,
        };
        let mut r = BenchReport {
            date: "2026-01-02T03:04:05Z".into(),
            machine: Machine { cpus: 2, memory_mib: 24_000, cpu_model: "Test CPU".into(), kernel: "6.1".into() },
            build: "release".into(),
            command: "hmsync bench".into(),
            quick: false,
            wall_seconds: 1000.0,
            load_at_start: "0.50 0.40 0.30".into(),
            load_at_end: "1.00 0.80 0.60".into(),
            initial: vec![initial],
            steady: Some(Steady {
                population_per_side: 2200,
                changes_per_direction: 1000,
                rate_per_direction: 0.5,
                added_latency_ms: 100,
                hubspot_to_mailerlite: Latencies {
                    changes: 1000,
                    delivered: 1000,
                    p50_ms: 700,
                    p95_ms: 1200,
                    p99_ms: 1900,
                    max_ms: 2500,
                },
                mailerlite_to_hubspot: Latencies {
                    changes: 1000,
                    delivered: 999,
                    p50_ms: 600,
                    p95_ms: 1100,
                    p99_ms: 1500,
                    max_ms: 1700,
                },
                hubspot: side(3000, "burst", "POST /crm/v3/objects/contacts/batch/read"),
                mailerlite: side(3000, "requests", "POST /api/batch"),
                requests_per_change: 3.0,
                echo_checks: vec![EchoCheck {
                    direction: "HubSpot → MailerLite".into(),
                    changes: 100,
                    hubspot_requests: 100,
                    mailerlite_requests: 200,
                    echo_deliveries: 100,
                    echo_requests: 0,
                }],
                echo_requests: 0,
                engine: ProcessUsage::default(),
            }),
            scan: None,
            cold_start: Some(ColdStart {
                dir: "target/release".into(),
                functions: vec![FunctionStart {
                    name: "contact-sync".into(),
                    binary: "target/release/contact-sync".into(),
                    size_bytes: 8 * 1024 * 1024,
                    event: "SQS, no records".into(),
                    runs: 5,
                    init_ms: 12.0,
                    first_event_ms: 14.5,
                    first_event_max_ms: 20.0,
                    outcome: "response (HTTP 404)".into(),
                }],
                missing: vec!["config-api (no target/release/config-api)".into()],
                notes: Vec::new(),
            }),
            bench_process: ProcessUsage::default(),
            targets: Vec::new(),
        };
        r.targets = evaluate(&r);
        r
    }

    #[test]
    fn every_target_is_evaluated_against_its_figure() {
        let r = report();
        let t: Vec<(&str, &str, bool)> =
            r.targets.iter().map(|t| (t.part.as_str(), t.figure.as_str(), t.met)).collect();
        assert_eq!(
            t,
            vec![
                ("A", "0.0230", true),
                ("A", "0.0280", true),
                ("A", "1.05 ×", true),
                ("A", "300 MiB", false),
                ("C", "52.5 ×", true),
                ("B", "1200 ms (1000/1000 delivered)", true),
                ("B", "1100 ms (999/1000 delivered)", false),
                ("B", "0", true),
                ("E", "14.5 ms", true),
            ]
        );
    }

    #[test]
    fn the_markdown_has_a_row_per_figure_and_flags_misses() {
        let md = render_markdown(&report());
        assert!(md.starts_with("Measured 2026-01-02T03:04:05Z on 2 CPUs (Test CPU), 24,000 MiB memory"), "{md}");
        assert!(
            md.contains(
                "| 100,000 | 150,000 | 3,450 | 4,200 | 0.0230 | 0.0280 | 2100 | 2205 | 1.05 | 300 MiB | 42.5 | 10 |"
            ),
            "{md}"
        );
        assert!(md.contains("MailerLite 120/min: 4,200 → 2100 s"), "{md}");
        assert!(md.contains("| 100,000 | 1,000 (sample, extrapolated) | 201,000 | 201,000 | 7,650 | 52.5 | 100500 s (27.9 h) | 2100 s | 47.9 |"), "{md}");
        assert!(md.contains("| HubSpot → MailerLite | 1,000 | 1,000 | 700 ms | 1200 ms | 1900 ms | 2500 ms |"), "{md}");
        assert!(md.contains("| HubSpot → MailerLite | 100 | 100 | 200 | 100 | 0 |"), "{md}");
        assert!(
            md.contains(
                "| contact-sync | 8.0 MiB | SQS, no records | 5 | 12.0 ms | 14.5 ms | 20.0 ms | response (HTTP 404) |"
            ),
            "{md}"
        );
        assert!(md.contains("### E. Lambda cold start (binaries from `target/release`, local Runtime API)"), "{md}");
        assert!(md.contains("- Not measured: config-api (no target/release/config-api)"), "{md}");
        assert!(md.contains("| A | engine peak memory ≤ 256 MiB (100,000 + 100,000) | 300 MiB | **MISSED** |"), "{md}");
        assert!(md.contains("| B | requests caused by echoes = 0 | 0 | met |"), "{md}");
        assert!(!md.contains("### D."), "no scan figures, no scan section");
    }

    #[test]
    fn the_json_round_trips() {
        let r = report();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<BenchReport>(&json).unwrap(), r);
    }

    #[test]
    fn one_time_setup_requests_are_shown_apart_in_the_per_contact_figure() {
        let mut hs = side(67, "burst", "unused");
        hs.endpoints = [
            ("POST /crm/objects/2026-03/contacts/batch/update", 44),
            ("GET /crm/properties/2026-03/{object_type}/{name}", 10),
            ("POST /crm/properties/2026-03/{object_type}", 10),
            ("GET /crm/properties/2026-03/{object_type}/groups", 2),
            ("GET /account-info/2026-03/details", 1),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
        assert_eq!(hs.setup_requests(), 23);
        assert_eq!(per_contact(&hs, 1500), "0.0447 (0.0293 without its 23 one-time setup requests)");
        let mut ml = side(48, "requests", "unused");
        ml.endpoints = [("GET /api/subscribers".to_string(), 47), ("GET /api/fields".to_string(), 1)].into();
        assert_eq!(
            (ml.setup_requests(), per_contact(&ml, 1500)),
            (1, "0.0320 (0.0313 without its one-time setup request)".into())
        );
        ml.total = 4502;
        assert_eq!(per_contact(&ml, 150_000), "0.0300", "no difference to show");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
