//! The end-to-end harness: both simulators, the engine on the embedded store and local queue,
//! the HTTP webhook receivers on 127.0.0.1, and a worker that drains the queue. Tests drive it
//! like a user would (seed data, edit records in the apps, activate a connection) and check the
//! result through the APIs.

pub mod checker;
pub mod webdriver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use hmsync_core::ConnectionConfig;
use hmsync_engine::adapters::{ApiSettings, CredentialApis};
use hmsync_engine::failpoint::Failpoints;
use hmsync_engine::worker::{Worker, WorkerSettings};
use hmsync_engine::{Engine, EngineSettings, SystemClock};
use hmsync_sandbox::hubspot::{HubSpotConfig, HubSpotSim, WebhookSettings};
use hmsync_sandbox::mailerlite::{MailerLiteConfig, MailerLiteSim};
use hmsync_store::{DynamoStore, MemorySecrets, SqliteQueue, SqliteStore, SqsQueue, Store, WorkQueue};
use serde_json::{Value, json};

/// Which adapters the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store and durable local queue (the local default).
    Sqlite,
    /// DynamoDB and SQS FIFO, on the moto server `./scripts/test` starts.
    Aws,
}

/// How a harness starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Divides every rate-limit window of both simulators and clients.
    pub time_scale: f64,
    pub hubspot: HubSpotConfig,
    pub mailerlite: MailerLiteConfig,
    pub backend: Backend,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            time_scale: 20.0,
            hubspot: HubSpotConfig::default(),
            mailerlite: MailerLiteConfig::default(),
            backend: Backend::Sqlite,
        }
    }
}

pub struct Harness {
    pub hubspot: HubSpotSim,
    pub mailerlite: MailerLiteSim,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn WorkQueue>,
    pub secrets: Arc<MemorySecrets>,
    pub engine: Arc<Engine>,
    pub worker: Worker,
    pub failpoints: Failpoints,
    /// Where our HTTP API (the webhook receivers, the config API, the status page) listens.
    pub api_url: String,
    /// The config API's admin token ([`ADMIN_TOKEN`]).
    pub admin_token: String,
    pub dir: tempfile::TempDir,
}

/// The admin token of the harness's config API.
pub const ADMIN_TOKEN: &str = "test-admin-token";

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// The engine over the given ports, as the local runner builds it.
pub fn engine(
    store: Arc<dyn Store>,
    queue: Arc<dyn WorkQueue>,
    secrets: Arc<MemorySecrets>,
    settings: ApiSettings,
    failpoints: Failpoints,
) -> Arc<Engine> {
    let apis = Arc::new(CredentialApis::new(secrets.clone(), settings));
    Arc::new(Engine {
        store,
        queue,
        secrets,
        apis,
        clock: Arc::new(SystemClock),
        settings: engine_settings(),
        failpoints,
    })
}

pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        visibility: Duration::from_secs(30),
        budget: Duration::from_secs(24),
        batch: 100,
        idle_poll: Duration::from_millis(20),
    }
}

/// Failed messages come back within tenths of a second.
pub fn engine_settings() -> EngineSettings {
    EngineSettings {
        delivery: hmsync_engine::DeliveryPolicy {
            first_retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_millis(400),
            ..hmsync_engine::DeliveryPolicy::default()
        },
        ..EngineSettings::default()
    }
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let mut hs_config = options.hubspot.clone();
        hs_config.time_scale = options.time_scale;
        let mut ml_config = options.mailerlite.clone();
        ml_config.time_scale = options.time_scale;
        let hubspot = HubSpotSim::start(hs_config, localhost()).await.expect("HubSpot sandbox");
        let mailerlite = MailerLiteSim::start(ml_config, localhost()).await.expect("MailerLite sandbox");
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, queue): (Arc<dyn Store>, Arc<dyn WorkQueue>) = match options.backend {
            Backend::Sqlite => (
                Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store")),
                Arc::new(SqliteQueue::open(dir.path().join("queue.db")).expect("queue")),
            ),
            Backend::Aws => {
                let sdk = hmsync_store::testing::moto_sdk_config(&hmsync_store::testing::moto_endpoint()).await;
                let table = hmsync_store::testing::unique_name("e2e");
                let store = DynamoStore::new(&sdk, table);
                store.create_table_if_missing().await.expect("table");
                let name = hmsync_store::testing::unique_name("e2e");
                let (queue_url, dlq_url) =
                    hmsync_store::testing::create_fifo_queue_pair(&sdk, &name, 5).await.expect("queues");
                let queue = SqsQueue::new(&sdk, queue_url, Some(dlq_url)).with_receive_wait(Duration::from_millis(0));
                (Arc::new(store), Arc::new(queue))
            }
        };
        let secrets = Arc::new(MemorySecrets::new());
        let failpoints = Failpoints::default();
        let settings = ApiSettings {
            hubspot_base_url: hubspot.base_url().to_string(),
            mailerlite_base_url: mailerlite.base_url().to_string(),
            time_scale: options.time_scale,
            hubspot_burst_limit: options.hubspot.burst_limit,
            fast_retries: true,
        };
        let engine = engine(store.clone(), queue.clone(), secrets.clone(), settings.clone(), failpoints.clone());
        let listener = tokio::net::TcpListener::bind(localhost()).await.expect("bind");
        let api_url = format!("http://{}", listener.local_addr().expect("addr"));
        let admin_token = ADMIN_TOKEN.to_string();
        let app = hmsync_api::router(hmsync_api::AppState {
            engine: engine.clone(),
            public_base_url: api_url.clone(),
            admin_token: admin_token.clone(),
            api_settings: settings,
            // The sandbox serves HubSpot's authorize page and token endpoint on its API host.
            hubspot_oauth: hmsync_api::HubSpotOAuth {
                app_url: hubspot.base_url().to_string(),
                api_url: hubspot.base_url().to_string(),
            },
            work_queue: Some(queue.clone()),
        });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("API server") });
        let worker = Worker::new(engine.clone(), queue.clone(), worker_settings());
        Harness { hubspot, mailerlite, store, queue, secrets, engine, worker, failpoints, api_url, admin_token, dir }
    }

    /// A MailerLite client on the sandbox (for test setup and the independent checks).
    pub fn ml_client(&self) -> hmsync_mailerlite::Client {
        let mut config = hmsync_mailerlite::Config::new(self.mailerlite.config().token)
            .with_base_url(self.mailerlite.base_url().to_string());
        config.time_scale = self.mailerlite.config().time_scale;
        hmsync_mailerlite::Client::new(config).expect("client")
    }

    /// A HubSpot client on the sandbox (for test setup and the independent checks).
    pub fn hs_client(&self) -> hmsync_hubspot::HubSpotClient {
        let c = self.hubspot.config();
        hmsync_hubspot::HubSpotClient::new(
            hmsync_hubspot::Auth::StaticToken(c.token.clone()),
            hmsync_hubspot::HubSpotConfig {
                base_url: self.hubspot.base_url().to_string(),
                time_scale: c.time_scale,
                ..Default::default()
            },
        )
    }

    /// Sets a connection up the way docs/api.md tells a user, over HTTP: creates it with
    /// `config` and saves the sandbox credentials (both checked by the apps) through the config
    /// API, and points the HubSpot app's webhooks at our receiver (what a user does in the
    /// HubSpot app). The MailerLite webhooks come with [`Harness::activate`].
    pub async fn connect(&self, id: &str, config: ConnectionConfig) -> String {
        let created = self.config_api(reqwest::Method::POST, "/connections", json!({"id": id, "config": config})).await;
        assert_eq!(created.0, 201, "create connection {id}: {}", created.1);
        let hs = self.hubspot.config();
        let credentials = json!({
            "hubspot": {"type": "token", "access_token": hs.token},
            "hubspot_app_id": hs.app_id,
            "hubspot_client_secret": hs.client_secret,
            "mailerlite_api_key": self.mailerlite.config().token,
        });
        let saved = self.config_api(reqwest::Method::PUT, &format!("/connections/{id}/credentials"), credentials).await;
        assert_eq!(saved.0, 200, "credentials of {id}: {}", saved.1);
        self.hubspot
            .set_webhook_settings(Some(WebhookSettings::for_sync(format!("{}/webhooks/hubspot", self.api_url))));
        id.to_string()
    }

    /// Activates a connection through the config API (which registers its MailerLite webhooks
    /// and starts the initial sync) and waits until everything it set off is done.
    pub async fn activate(&self, id: &str) {
        self.start_activation(id).await;
        self.settle().await;
    }

    /// `POST /connections/{id}/activate`, without waiting for the initial sync.
    pub async fn start_activation(&self, id: &str) -> Value {
        let (status, body) =
            self.config_api(reqwest::Method::POST, &format!("/connections/{id}/activate"), Value::Null).await;
        assert_eq!(status, 202, "activate {id}: {body}");
        body
    }

    /// `POST /connections/{id}/sync-now` through the config API.
    pub async fn sync_now(&self, id: &str) {
        let (status, body) =
            self.config_api(reqwest::Method::POST, &format!("/connections/{id}/sync-now"), Value::Null).await;
        assert_eq!(status, 202, "sync now {id}: {body}");
    }

    /// `GET /connections/{id}/status` through the config API.
    pub async fn status(&self, id: &str) -> Value {
        let (status, body) =
            self.config_api(reqwest::Method::GET, &format!("/connections/{id}/status"), Value::Null).await;
        assert_eq!(status, 200, "status of {id}: {body}");
        body
    }

    /// One request to the config API with the admin token; `Value::Null` sends no body.
    pub async fn config_api(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let mut request =
            reqwest::Client::new().request(method, format!("{}{path}", self.api_url)).bearer_auth(&self.admin_token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("config API request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("config API answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Runs the worker and lets webhooks arrive until nothing moves any more.
    pub async fn settle(&self) {
        for _ in 0..200 {
            let round = self.worker.drain(Duration::from_millis(300)).await.expect("worker");
            self.hubspot.dispatcher().wait_idle().await;
            self.mailerlite.dispatcher().wait_idle().await;
            let again = self.worker.drain(Duration::from_millis(300)).await.expect("worker");
            if round.received == 0 && again.received == 0 {
                return;
            }
        }
        panic!("the sync did not settle");
    }

    /// Every subscriber of the MailerLite sandbox, through the API.
    pub async fn all_subscribers(&self) -> Vec<hmsync_mailerlite::Subscriber> {
        self.ml_client().subscribers(hmsync_mailerlite::Statuses::All).try_collect().await.expect("subscribers")
    }

    /// Every contact of the HubSpot sandbox, through the API.
    pub async fn all_contacts(&self, properties: &[&str]) -> Vec<hmsync_hubspot::Contact> {
        let options = hmsync_hubspot::ListOptions {
            properties: properties.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        self.hs_client().list_contacts(options).try_collect().await.expect("contacts")
    }

    /// The dead letters of the local queue (none expected in a healthy run).
    pub async fn dead_letters(&self) -> usize {
        self.queue.dead_letters(100).await.expect("dead letters").len()
    }
}

impl Harness {
    /// A fresh engine and worker on the same store, queue and secrets, as a restarted process
    /// would build them (the SQLite files are opened again; on AWS the same table and queue).
    pub fn restarted(&self, settings: EngineSettings) -> (Arc<Engine>, Worker) {
        let (store, queue): (Arc<dyn Store>, Arc<dyn WorkQueue>) = if self.dir.path().join("store.db").exists() {
            (
                Arc::new(SqliteStore::open(self.dir.path().join("store.db")).expect("store")),
                Arc::new(SqliteQueue::open(self.dir.path().join("queue.db")).expect("queue")),
            )
        } else {
            (self.store.clone(), self.queue.clone())
        };
        let settings_api = ApiSettings {
            hubspot_base_url: self.hubspot.base_url().to_string(),
            mailerlite_base_url: self.mailerlite.base_url().to_string(),
            time_scale: self.hubspot.config().time_scale,
            hubspot_burst_limit: self.hubspot.config().burst_limit,
            fast_retries: true,
        };
        let apis = Arc::new(CredentialApis::new(self.secrets.clone(), settings_api));
        let engine = Arc::new(Engine {
            store,
            queue: queue.clone(),
            secrets: self.secrets.clone(),
            apis,
            clock: Arc::new(SystemClock),
            settings,
            failpoints: Failpoints::default(),
        });
        let worker = Worker::new(engine.clone(), queue, worker_settings());
        (engine, worker)
    }

    /// Like [`Harness::settle`], with another worker (e.g. a restarted one).
    pub async fn settle_with(&self, worker: &Worker) {
        for _ in 0..200 {
            let round = worker.drain(Duration::from_millis(300)).await.expect("worker");
            self.hubspot.dispatcher().wait_idle().await;
            self.mailerlite.dispatcher().wait_idle().await;
            let again = worker.drain(Duration::from_millis(300)).await.expect("worker");
            if round.received == 0 && again.received == 0 {
                return;
            }
        }
        panic!("the sync did not settle");
    }
}
