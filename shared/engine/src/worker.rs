//! The queue consumer of the local runner (on AWS, the SQS event source mapping plays this
//! part and `contact-sync` reports partial batch failures). Messages of one connection are
//! handled in order, one at a time: of each connection's messages in a receive, the first is
//! handled and the rest are released at once, untried, so that they never count a delivery they
//! were not attempted in — neither when the first fails, nor when the worker is killed while
//! handling it (their connection's queue group waits for the first meanwhile, so order is
//! kept). Failed messages come back after a delay; a message that keeps failing ends in the
//! dead-letter queue, where the status page shows it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hmsync_store::{ReceivedMessage, WorkQueue};
use tokio::sync::watch;

use crate::engine::{Engine, EngineError};
use crate::message::SyncMessage;

/// How the worker polls and backs off.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a received message stays invisible (longer than handling it may take).
    pub visibility: Duration,
    /// Messages per receive.
    pub batch: usize,
    /// Wait between polls of an empty queue.
    pub idle_poll: Duration,
    /// First retry delay of a failed message (doubles per receive, capped by `max_retry_delay`).
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(300),
            batch: 10,
            idle_poll: Duration::from_millis(200),
            retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(300),
        }
    }
}

/// What one round of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub received: usize,
    pub done: usize,
    pub retried: usize,
}

pub struct Worker {
    engine: Arc<Engine>,
    queue: Arc<dyn WorkQueue>,
    settings: WorkerSettings,
}

impl Worker {
    pub fn new(engine: Arc<Engine>, queue: Arc<dyn WorkQueue>, settings: WorkerSettings) -> Self {
        Self { engine, queue, settings }
    }

    fn delay(&self, receive_count: u32, wanted: Option<Duration>) -> Duration {
        let backoff = self
            .settings
            .retry_delay
            .saturating_mul(1 << receive_count.saturating_sub(1).min(10))
            .min(self.settings.max_retry_delay);
        wanted.unwrap_or(backoff)
    }

    /// Receives and handles what is visible now.
    pub async fn run_once(&self) -> Result<Round, EngineError> {
        let messages = self.queue.receive(self.settings.batch, self.settings.visibility).await?;
        let mut round = Round { received: messages.len(), ..Round::default() };
        let mut groups: BTreeMap<String, Vec<ReceivedMessage>> = BTreeMap::new();
        for m in messages {
            groups.entry(m.group_id.clone()).or_default().push(m);
        }
        let results = futures::future::join_all(groups.into_values().map(|msgs| self.handle_group(msgs))).await;
        for r in results {
            let (done, retried) = r?;
            round.done += done;
            round.retried += retried;
        }
        Ok(round)
    }

    /// Handles the first of one connection's messages; the rest go back untried (uncounted), to
    /// be received again once the first is done or, if it failed, due again.
    async fn handle_group(&self, messages: Vec<ReceivedMessage>) -> Result<(usize, usize), EngineError> {
        let mut messages = messages.into_iter();
        let Some(m) = messages.next() else { return Ok((0, 0)) };
        for untried in messages {
            self.queue.release(&untried.receipt).await?;
        }
        let outcome = match SyncMessage::from_body(&m.body) {
            Ok(msg) => self.engine.handle_with_recovery(&msg).await,
            Err(e) => Err(EngineError::Permanent(format!("not a sync message: {e}"))),
        };
        match outcome {
            Ok(_) => {
                self.queue.ack(&m.receipt).await?;
                Ok((1, 0))
            }
            Err(e) => {
                let delay = match e.retry_after() {
                    Some(wanted) => self.delay(m.receive_count, wanted),
                    // Permanent: come back at once, so it reaches the dead letters quickly.
                    None => Duration::ZERO,
                };
                tracing::warn!(group = %m.group_id, receive_count = m.receive_count, error = %e, ?delay, "message failed; it comes back later");
                self.queue.retry_later(&m.receipt, delay).await?;
                Ok((0, 1))
            }
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let idle = match self.run_once().await {
                Ok(r) => r.received == 0,
                Err(e) => {
                    tracing::error!(error = %e, "worker round failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Handles messages until the queue stays empty for `quiet` (tests and `--until-synced`).
    /// Returns the rounds' totals.
    pub async fn drain(&self, quiet: Duration) -> Result<Round, EngineError> {
        let mut total = Round::default();
        let mut idle_since = tokio::time::Instant::now();
        loop {
            let r = self.run_once().await?;
            total.received += r.received;
            total.done += r.done;
            total.retried += r.retried;
            if r.received > 0 {
                idle_since = tokio::time::Instant::now();
            } else if idle_since.elapsed() >= quiet {
                return Ok(total);
            } else {
                tokio::time::sleep(self.settings.idle_poll.min(quiet)).await;
            }
        }
    }
}
