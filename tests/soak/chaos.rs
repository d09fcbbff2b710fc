//! The hostile environment: API faults on both simulators, duplicated, reordered and dropped
//! webhooks (MailerLite's also with unknown and broken items), and a worker that is killed at random moments (mid-message included) and replaced,
//! as a crashed Lambda or process would be.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hmsync_e2e::Harness;
use hmsync_engine::Engine;
use hmsync_engine::worker::{Worker, WorkerSettings};
use hmsync_sandbox::common::{DeliveryOptions, FaultSpec};
use hmsync_sandbox::mailerlite::WebhookFaults;
use hmsync_store::{DeadLetter, QueueMessage, ReceivedMessage, SyncQueue, WorkQueue};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the soak's client timeouts are (the engine's clients in `fast_retries` mode): a hang
/// must outlast it, so the client gives up not knowing whether its write happened.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The faults of the brief: 10% 5xx, 429 bursts and hangs past the client timeout on a small
/// share of the calls, all the time; 200 ms of latency on every call while `slow` (the chaos
/// loop turns that on for every third short window, so a share of the calls is slow).
pub fn fault_specs(slow: bool) -> Vec<FaultSpec> {
    let mut specs = vec![FaultSpec {
        error_rate: 0.10,
        rate_limit_rate: 0.02,
        rate_limit_burst: 3,
        hang_rate: 0.005,
        hang_ms: CLIENT_TIMEOUT.as_millis() as u64 + 1_000,
        ..FaultSpec::everywhere()
    }];
    if slow {
        specs.push(FaultSpec { latency_ms: 200, ..FaultSpec::everywhere() });
    }
    specs
}

/// Sets the faults of both simulators for one window (each window reseeds the injectors).
pub fn faults_on(h: &Harness, seed: u64, window: u64, slow: bool) {
    let seed = seed.wrapping_mul(1_000_003).wrapping_add(window.wrapping_mul(2));
    h.hubspot.instrumentation().faults.set(fault_specs(slow), seed);
    h.mailerlite.instrumentation().faults.set(fault_specs(slow), seed.wrapping_add(1));
}

pub fn faults_off(h: &Harness) {
    h.hubspot.instrumentation().faults.set(Vec::new(), 0);
    h.mailerlite.instrumentation().faults.set(Vec::new(), 0);
}

/// Duplicates, reordering and loss on both dispatchers (their retry schedules are kept), and
/// MailerLite items of undocumented event types and broken items next to the real ones.
pub fn hostile_webhooks_on(h: &Harness, seed: u64) {
    h.mailerlite.set_webhook_faults(WebhookFaults {
        unknown_event_rate: 0.05,
        malformed_item_rate: 0.02,
        seed: seed.wrapping_add(203),
    });
    for (d, salt) in [(h.hubspot.dispatcher(), 201u64), (h.mailerlite.dispatcher(), 202)] {
        d.set_options(DeliveryOptions {
            duplicate_rate: 0.15,
            drop_rate: 0.05,
            reorder_max_delay_ms: 400,
            seed: seed.wrapping_add(salt),
            ..d.options()
        });
    }
}

pub fn hostile_webhooks_off(h: &Harness) {
    h.mailerlite.set_webhook_faults(WebhookFaults::default());
    for d in [h.hubspot.dispatcher(), h.mailerlite.dispatcher()] {
        d.set_options(DeliveryOptions { duplicate_rate: 0.0, drop_rate: 0.0, reorder_max_delay_ms: 0, ..d.options() });
    }
}

/// What the worker side of the queue saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueFigures {
    pub received: u64,
    /// Deliveries with a receive count above 1: after a failure or after a killed worker.
    pub redelivered: u64,
    pub acked: u64,
    /// Messages the worker gave back after a failure (retry later).
    pub retried: u64,
}

/// The queue as the workers use it, counting what they do with it.
pub struct CountingQueue {
    inner: Arc<dyn WorkQueue>,
    received: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
}

impl CountingQueue {
    pub fn new(inner: Arc<dyn WorkQueue>) -> Self {
        Self {
            inner,
            received: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

    pub fn figures(&self) -> QueueFigures {
        QueueFigures {
            received: self.received.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl SyncQueue for CountingQueue {
    async fn send_batch(&self, messages: &[QueueMessage]) -> hmsync_store::Result<()> {
        self.inner.send_batch(messages).await
    }
}

#[async_trait]
impl WorkQueue for CountingQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> hmsync_store::Result<Vec<ReceivedMessage>> {
        let got = self.inner.receive(max, visibility).await?;
        self.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        self.redelivered.fetch_add(got.iter().filter(|m| m.receive_count > 1).count() as u64, Ordering::Relaxed);
        Ok(got)
    }

    async fn receive_heads(&self, max: usize, visibility: Duration) -> hmsync_store::Result<Vec<ReceivedMessage>> {
        let got = self.inner.receive_heads(max, visibility).await?;
        self.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        self.redelivered.fetch_add(got.iter().filter(|m| m.receive_count > 1).count() as u64, Ordering::Relaxed);
        Ok(got)
    }

    async fn ack(&self, receipt: &str) -> hmsync_store::Result<()> {
        self.inner.ack(receipt).await?;
        self.acked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> hmsync_store::Result<()> {
        self.inner.retry_later(receipt, delay).await?;
        self.retried.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn release(&self, receipt: &str) -> hmsync_store::Result<()> {
        self.inner.release(receipt).await
    }

    async fn dead_letter(&self, message: &ReceivedMessage, error: &str) -> hmsync_store::Result<()> {
        self.inner.dead_letter(message, error).await
    }

    async fn dead_letters(&self, limit: usize) -> hmsync_store::Result<Vec<DeadLetter>> {
        self.inner.dead_letters(limit).await
    }

    async fn requeue_dead_letters(&self, limit: usize) -> hmsync_store::Result<usize> {
        self.inner.requeue_dead_letters(limit).await
    }
}

/// The soak's workers: a short visibility timeout, so a message a killed worker held comes back
/// within seconds instead of stalling the connection's queue group. One worker runs at a time,
/// so a message may take longer than that (a merge through 200 ms of injected latency per
/// request does) without being received twice.
pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        visibility: Duration::from_secs(2),
        budget: Duration::from_secs(60),
        batch: 10,
        idle_poll: Duration::from_millis(20),
    }
}

struct Running {
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

/// One worker at a time; [`Workers::kill_and_replace`] aborts it wherever it is (between an API
/// write and the link update included) and starts a fresh one on the same engine and queue.
pub struct Workers {
    engine: Arc<Engine>,
    queue: Arc<CountingQueue>,
    current: Mutex<Option<Running>>,
    kills: AtomicU64,
}

impl Workers {
    pub fn start(engine: Arc<Engine>, queue: Arc<CountingQueue>) -> Arc<Workers> {
        let w = Arc::new(Workers { engine, queue, current: Mutex::new(None), kills: AtomicU64::new(0) });
        w.spawn();
        w
    }

    fn spawn(&self) {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let worker = Worker::new(self.engine.clone(), self.queue.clone(), worker_settings());
        let task = tokio::spawn(async move { worker.run(stop).await });
        let previous = self.current.lock().expect("workers lock").replace(Running { task, shutdown });
        if let Some(p) = previous {
            p.task.abort();
        }
    }

    /// Kills the running worker mid-flight and starts another.
    pub fn kill_and_replace(&self) {
        if let Some(r) = self.current.lock().expect("workers lock").take() {
            r.task.abort();
        }
        self.kills.fetch_add(1, Ordering::Relaxed);
        self.spawn();
    }

    pub fn kills(&self) -> u64 {
        self.kills.load(Ordering::Relaxed)
    }

    /// Stops the worker after its current round.
    pub async fn stop(&self) {
        let running = self.current.lock().expect("workers lock").take();
        if let Some(r) = running {
            r.shutdown.cancel();
            let _ = r.task.await;
        }
    }
}
