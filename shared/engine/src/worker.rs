//! The queue consumer of the local runner (on AWS, the SQS event source mapping plays this
//! part and `contact-sync` reports partial batch failures). Messages of one connection are
//! handled in order, one at a time: the worker receives only the first message of each
//! connection ([`WorkQueue::receive_heads`]), so that no message waits in its hands untried and
//! counts a delivery it was not attempted in — neither when the one before it fails, nor when
//! the worker is killed while handling it (the connection's queue group waits for its message
//! in flight, so order is kept). Failed messages come back after a delay; a message that keeps
//! failing ends in the dead-letter queue, where the status page shows it.

use std::sync::Arc;
use std::time::Duration;

use hmsync_store::{ReceivedMessage, WorkQueue};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};
use crate::message::SyncMessage;

/// How the worker polls and backs off.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a received message stays invisible (longer than handling it may take).
    pub visibility: Duration,
    /// Messages per receive (one per connection).
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
        let messages = self.queue.receive_heads(self.settings.batch, self.settings.visibility).await?;
        let mut round = Round { received: messages.len(), ..Round::default() };
        let results = futures::future::join_all(messages.into_iter().map(|m| self.handle(m))).await;
        for r in results {
            let (done, retried) = r?;
            round.done += done;
            round.retried += retried;
        }
        Ok(round)
    }

    /// Handles a connection's next message.
    async fn handle(&self, m: ReceivedMessage) -> Result<(usize, usize), EngineError> {
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
    pub async fn run(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
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
                    _ = shutdown.cancelled() => {}
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
