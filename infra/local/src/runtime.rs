//! The local runtime: every function of the AWS deployment in one process, on the embedded
//! store (SQLite), the durable local queue and file-backed secrets under one data directory.
//! Restarting on the same directory resumes: links, state and queued work are all on disk.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hmsync_engine::adapters::{ApiSettings, CredentialApis};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::worker::{Worker, WorkerSettings};
use hmsync_engine::{DeliveryPolicy, Engine, EngineSettings, SystemClock, WebhookTarget};
use hmsync_store::{FileSecrets, SecretStore, SqliteQueue, SqliteStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The secret under which the local admin token is kept when none is given.
pub const ADMIN_TOKEN_SECRET: &str = "hmsync/admin-token";

/// The store's database file in the data directory.
pub const STORE_FILE: &str = "store.db";

/// How the runtime starts.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub data_dir: PathBuf,
    /// Port of the config API, status page and webhook receivers on 127.0.0.1 (0: any free port).
    pub api_port: u16,
    /// The admin token; generated once and kept in the data directory when absent.
    pub admin_token: Option<String>,
    /// The URL HubSpot and MailerLite call (webhooks); the local address when absent.
    pub public_url: Option<String>,
    pub apis: ApiSettings,
    /// Where HubSpot's OAuth install pages are (the sandbox serves them in the demo).
    pub hubspot_oauth: hmsync_api::HubSpotOAuth,
    /// How often every active connection is scanned.
    pub scan_interval: Duration,
    pub worker: WorkerSettings,
    /// When failed messages come back and when they are given up.
    pub delivery: DeliveryPolicy,
}

/// A running local deployment.
pub struct Runtime {
    pub engine: Arc<Engine>,
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub api_url: String,
    pub public_url: String,
    /// Where MailerLite sends webhooks: `public_url`, unless MailerLite cannot reach it (a local
    /// address with the real MailerLite), and then why.
    pub webhook_target: WebhookTarget,
    pub admin_token: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

async fn admin_token(secrets: &dyn SecretStore, given: Option<String>) -> anyhow::Result<String> {
    if let Some(t) = given.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    if let Some(t) = secrets.get_secret(ADMIN_TOKEN_SECRET).await? {
        return Ok(t);
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    secrets.put_secret(ADMIN_TOKEN_SECRET, &token).await?;
    Ok(token)
}

impl Runtime {
    pub async fn start(options: RuntimeOptions) -> anyhow::Result<Runtime> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("cannot create the data directory {}", options.data_dir.display()))?;
        let store = Arc::new(SqliteStore::open(options.data_dir.join(STORE_FILE)).context("opening the store")?);
        let queue = Arc::new(SqliteQueue::open(options.data_dir.join("queue.db")).context("opening the queue")?);
        // This process is the queue's only consumer: what it held when it stopped runs again now
        // instead of after the visibility timeout.
        let released = queue.release_in_flight().await.context("releasing the queue's in-flight messages")?;
        if released > 0 {
            tracing::info!(released, "messages in flight when the runtime stopped are queued again");
        }
        let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::new(options.data_dir.join("secrets.json")));
        let admin_token = admin_token(&*secrets, options.admin_token.clone()).await?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.api_port)))
            .await
            .with_context(|| {
            format!("cannot listen on 127.0.0.1:{} (is it in use? pick another with --api-port)", options.api_port)
        })?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let public_url = options.public_url.clone().unwrap_or_else(|| api_url.clone());
        let webhook_target = WebhookTarget::for_mailerlite(&public_url, &options.apis.mailerlite_base_url);
        let engine = Arc::new(Engine {
            store: store.clone(),
            queue: queue.clone(),
            secrets: secrets.clone(),
            apis: Arc::new(CredentialApis::new(secrets.clone(), options.apis.clone())),
            clock: Arc::new(SystemClock),
            settings: EngineSettings {
                scan_interval: options.scan_interval,
                delivery: options.delivery.clone(),
                ..EngineSettings::default()
            },
            failpoints: Failpoints::default(),
        });
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();

        let state = hmsync_api::AppState {
            hubspot_oauth: options.hubspot_oauth.clone(),
            ..hmsync_api::AppState::new(engine.clone(), public_url.clone(), options.apis.clone())
        }
        .with_admin(admin_token.clone(), Some(queue.clone() as Arc<dyn hmsync_store::WorkQueue>));
        let app = hmsync_api::router(state);
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tasks.spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });

        let worker = Worker::new(engine.clone(), queue.clone(), options.worker.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move { worker.run(stop).await });

        let scheduler_engine = engine.clone();
        let stop = shutdown.clone();
        let interval = options.scan_interval;
        tasks.spawn(async move {
            // A scan right away catches what changed while the process was down.
            loop {
                match scheduler_engine.schedule_tick().await {
                    Ok(tick) if tick.failures > 0 => tracing::error!(
                        failures = tick.failures,
                        scans_enqueued = tick.scans_enqueued,
                        "the scheduled scan of some connections could not start (each is logged); tried at the next tick"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "the scheduled scan could not start; it is tried at the next tick"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });

        // Waits for API limits end between scans too.
        let waits_engine = engine.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.cancelled() => return,
                }
                if let Err(e) = waits_engine.release_waits().await {
                    tracing::error!(error = %e, "could not release waiting work; tried again in a minute");
                }
            }
        });
        tasks.close();

        Ok(Runtime { engine, store, queue, api_url, public_url, webhook_target, admin_token, shutdown, tasks })
    }

    /// Stops the server, the worker and the scheduler (a message in flight finishes or comes
    /// back from the queue after its visibility timeout).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.wait().await;
    }
}
