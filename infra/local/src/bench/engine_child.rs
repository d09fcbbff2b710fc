//! The sync engine in a child process (`hmsync bench engine-child`), so that its peak memory and
//! CPU time are its own and not the sandbox's. The child runs the local runtime (`Runtime`:
//! SQLite store, durable local queue, file secrets, webhook receivers, worker, schedule) exactly
//! as `hmsync serve` does, and is driven over its stdin/stdout with one JSON object per line: the
//! first line it reads is an [`EngineSetup`], then [`Request`]s, each answered by one [`Reply`].
//! Closing its stdin stops it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use hmsync_core::ConnectionConfig;
use hmsync_engine::adapters::{ApiSettings, Credentials, save_credentials};
use hmsync_engine::state::ScanSummary;
use hmsync_engine::worker::WorkerSettings;
use hmsync_engine::{Lifecycle, LifecycleError};
use hmsync_sandbox::common::now_ms;
use hmsync_store::{ConnectionStore, LinkStore, StateStore, WorkQueue};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::usage::{ProcessUsage, own_usage};
use crate::runtime::{Runtime, RuntimeOptions};

/// What the child runs: one connection against the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSetup {
    pub connection_id: String,
    pub config: ConnectionConfig,
    pub credentials: Credentials,
    pub hubspot_url: String,
    pub mailerlite_url: String,
    /// The sandbox's time scale (the clients' pacers shrink their windows by it).
    pub time_scale: f64,
    /// Port of the webhook receivers on 127.0.0.1 (0: any free port).
    pub api_port: u16,
    /// The data directory holds the connection already (a restart): only start the runtime.
    pub resume: bool,
}

/// A command to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Activate the connection (starts the initial sync).
    Activate,
    /// The connection's lifecycle, scan progress and queue length.
    Progress,
    /// A scheduled scan, as the schedule's tick starts it.
    ScheduledScan,
    /// Counts for checking the result: links, errors, dead letters, counters.
    Summary,
    /// The child's peak memory and CPU time so far.
    Usage,
}

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub lifecycle: Lifecycle,
    /// Records the initial sync has read so far, and how many it expects once known.
    pub initial_done: i64,
    pub initial_expected: Option<u64>,
    pub initial_started_at_ms: Option<i64>,
    pub initial_finished_at_ms: Option<i64>,
    pub scan_running: bool,
    pub last_scan: Option<ScanSummary>,
    /// Messages in the local queue (visible or in flight).
    pub queue_len: u64,
    /// Why the connection cannot work, if it cannot (a pause or a connection-level problem).
    pub blocked: Option<String>,
}

/// Counts for checking a run's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub links: u64,
    pub errors: u64,
    pub dead_letters: usize,
    pub counters: std::collections::BTreeMap<String, i64>,
}

/// The child's answer to one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Ready { api_url: String },
    Activated { at_ms: i64 },
    Progress(Box<Progress>),
    ScanStarted { scans: usize, at_ms: i64 },
    Summary(Summary),
    Usage(ProcessUsage),
    Failed { message: String },
}

fn say(reply: &Reply) {
    // One line per reply; stdout is line-buffered, so the parent sees it at once.
    println!("{}", serde_json::to_string(reply).expect("replies serialize"));
}

/// The child's side: `hmsync bench engine-child --data-dir DIR`.
pub async fn run_child(data_dir: &Path) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let setup: EngineSetup = match lines.next_line().await? {
        Some(line) => serde_json::from_str(&line).context("the first line must be the engine setup")?,
        None => return Ok(()),
    };
    let rt = match start(&setup, data_dir).await {
        Ok(rt) => rt,
        Err(e) => {
            say(&Reply::Failed { message: format!("{e:#}") });
            return Err(e);
        }
    };
    say(&Reply::Ready { api_url: rt.api_url.clone() });
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(&rt, &setup.connection_id, request).await,
            Err(e) => Reply::Failed { message: format!("not a request ({e}): {line}") },
        };
        say(&reply);
    }
    rt.stop().await;
    Ok(())
}

async fn start(setup: &EngineSetup, data_dir: &Path) -> anyhow::Result<Runtime> {
    let rt = Runtime::start(RuntimeOptions {
        data_dir: data_dir.to_path_buf(),
        api_port: setup.api_port,
        admin_token: None,
        public_url: None,
        apis: ApiSettings {
            hubspot_base_url: setup.hubspot_url.clone(),
            mailerlite_base_url: setup.mailerlite_url.clone(),
            time_scale: setup.time_scale,
            hubspot_burst_limit: 100,
            fast_retries: false,
        },
        // The bench starts every scan itself (`Request::ScheduledScan`), as the schedule would.
        scan_interval: Duration::from_secs(365 * 24 * 3600),
        worker: WorkerSettings::default(),
        delivery: hmsync_engine::DeliveryPolicy::default(),
        hubspot_oauth: hmsync_api::HubSpotOAuth {
            app_url: setup.hubspot_url.clone(),
            api_url: setup.hubspot_url.clone(),
        },
    })
    .await?;
    if !setup.resume {
        let id = &setup.connection_id;
        rt.store.create_connection(id, &setup.config).await.context("creating the connection")?;
        save_credentials(&*rt.engine.secrets, id, &setup.credentials).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        rt.engine.credentials_changed(id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(rt)
}

async fn answer(rt: &Runtime, conn: &str, request: Request) -> Reply {
    match respond(rt, conn, request).await {
        Ok(r) => r,
        Err(e) => Reply::Failed { message: format!("{e:#}") },
    }
}

async fn respond(rt: &Runtime, conn: &str, request: Request) -> anyhow::Result<Reply> {
    let engine = &rt.engine;
    Ok(match request {
        Request::Activate => {
            let at_ms = now_ms();
            // Activation registers the MailerLite webhooks, as for a user.
            match engine.activate(conn, &rt.webhook_target).await {
                Ok(_) => Reply::Activated { at_ms },
                Err(LifecycleError::InvalidConfig(problems)) => {
                    bail!("the connection's config is invalid: {problems:?}")
                }
                Err(e) => bail!("activating: {e}"),
            }
        }
        Request::Progress => {
            let (state, _) = engine.state(conn).await?;
            let counters = rt.store.get_counters(conn).await?;
            let blocked = match (&state.pause, &state.problem) {
                (Some(p), _) => Some(format!("paused: {p:?}")),
                (None, Some(p)) => Some(format!("{}: {}", p.message, p.action)),
                (None, None) => None,
            };
            Reply::Progress(Box::new(Progress {
                lifecycle: state.lifecycle,
                initial_done: counters.get(hmsync_engine::state::counters::INITIAL_DONE).copied().unwrap_or(0),
                initial_expected: state.scan.as_ref().and_then(|s| s.expected),
                initial_started_at_ms: state.initial_started_at_ms,
                initial_finished_at_ms: state.initial_finished_at_ms,
                scan_running: state.scan.is_some(),
                last_scan: state.last_scan,
                queue_len: rt.queue.len().await?,
                blocked,
            }))
        }
        Request::ScheduledScan => {
            let at_ms = now_ms();
            let tick = engine.schedule_tick().await?;
            if tick.failures > 0 {
                bail!("the schedule tick failed for {} connections (see the log)", tick.failures);
            }
            Reply::ScanStarted { scans: tick.scans_enqueued, at_ms }
        }
        Request::Summary => {
            let status = engine.status(conn).await?;
            Reply::Summary(Summary {
                links: rt.store.count_links(conn).await?,
                errors: status.counts.errored,
                dead_letters: rt.queue.dead_letters(1000).await?.len(),
                counters: status.counters,
            })
        }
        Request::Usage => Reply::Usage(own_usage()),
    })
}

/// The parent's handle on a running engine child.
pub struct EngineProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The child's webhook receivers (`{api_url}/webhooks/hubspot`, `…/webhooks/mailerlite/{id}`).
    pub api_url: String,
    pub data_dir: PathBuf,
}

impl EngineProcess {
    /// Starts `exe bench engine-child` on `data_dir` and waits until it is ready.
    pub async fn spawn(exe: &Path, data_dir: &Path, setup: &EngineSetup) -> anyhow::Result<EngineProcess> {
        let mut child = tokio::process::Command::new(exe)
            .args(["bench", "engine-child", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the engine process {}", exe.display()))?;
        let stdin = child.stdin.take().context("the child's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the child's stdout")?).lines();
        let mut process =
            EngineProcess { child, stdin, stdout, api_url: String::new(), data_dir: data_dir.to_path_buf() };
        process.send_line(&serde_json::to_string(setup)?).await?;
        match process.read_reply().await? {
            Reply::Ready { api_url } => process.api_url = api_url,
            other => bail!("the engine process did not start: {other:?}"),
        }
        Ok(process)
    }

    /// The port of the webhook receivers (`api_url` is `http://127.0.0.1:PORT`).
    pub fn api_port(&self) -> anyhow::Result<u16> {
        self.api_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in the engine's address {}", self.api_url))
    }

    async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let line = self.stdout.next_line().await?.context("the engine process exited (see its errors above)")?;
        serde_json::from_str(&line).with_context(|| format!("not a reply from the engine process: {line}"))
    }

    /// Sends a request and reads its reply; `Failed` becomes an error.
    pub async fn call(&mut self, request: Request) -> anyhow::Result<Reply> {
        self.send_line(&serde_json::to_string(&request)?).await?;
        match self.read_reply().await? {
            Reply::Failed { message } => bail!("{request:?} failed in the engine process: {message}"),
            reply => Ok(reply),
        }
    }

    /// Activates the connection; returns when it did (engine clock, ms).
    pub async fn activate(&mut self) -> anyhow::Result<i64> {
        match self.call(Request::Activate).await? {
            Reply::Activated { at_ms } => Ok(at_ms),
            other => bail!("unexpected answer to Activate: {other:?}"),
        }
    }

    pub async fn progress(&mut self) -> anyhow::Result<Progress> {
        match self.call(Request::Progress).await? {
            Reply::Progress(p) => Ok(*p),
            other => bail!("unexpected answer to Progress: {other:?}"),
        }
    }

    /// Starts a scheduled scan; returns when it was asked for (ms).
    pub async fn scheduled_scan(&mut self) -> anyhow::Result<i64> {
        match self.call(Request::ScheduledScan).await? {
            Reply::ScanStarted { scans: 1, at_ms } => Ok(at_ms),
            Reply::ScanStarted { scans, .. } => bail!("the schedule started {scans} scans instead of one"),
            other => bail!("unexpected answer to ScheduledScan: {other:?}"),
        }
    }

    pub async fn summary(&mut self) -> anyhow::Result<Summary> {
        match self.call(Request::Summary).await? {
            Reply::Summary(s) => Ok(s),
            other => bail!("unexpected answer to Summary: {other:?}"),
        }
    }

    pub async fn usage(&mut self) -> anyhow::Result<ProcessUsage> {
        match self.call(Request::Usage).await? {
            Reply::Usage(u) => Ok(u),
            other => bail!("unexpected answer to Usage: {other:?}"),
        }
    }

    /// Closes the child's stdin (it stops its runtime and exits) and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let EngineProcess { mut child, stdin, .. } = self;
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .context("the engine process did not stop within 60 s")??;
        if !status.success() {
            bail!("the engine process ended with {status}");
        }
        Ok(())
    }
}
