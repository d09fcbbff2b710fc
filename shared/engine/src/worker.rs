//! The queue consumer of the local runner (on AWS, the SQS event source mapping plays this
//! part and `contact-sync` reports partial batch failures). Messages of one connection are
//! handled in order, one at a time: the worker receives only the first message of each
//! connection ([`WorkQueue::receive_heads`]), so that no message waits in its hands untried and
//! counts a delivery it was not attempted in — neither when the one before it fails, nor when
//! the worker is killed while handling it (the connection's queue group waits for its message
//! in flight, so order is kept). Each message is handled by [`Engine::handle_delivery`], the
//! path contact-sync uses too: failed messages come back after the delay it decides, and one
//! that cannot succeed goes to the dead letters at once with its error, where the status page
//! shows it.

use std::sync::Arc;
use std::time::Duration;

use hmsync_store::{ReceivedMessage, WorkQueue};
use tokio::sync::watch;

use crate::delivery::Disposition;
use crate::engine::{Engine, EngineError};

/// How the worker polls. When failed messages come back is the engine's
/// [`crate::DeliveryPolicy`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a received message stays invisible (longer than `budget`, so that another
    /// worker does not receive a message still being handled).
    pub visibility: Duration,
    /// The time budget of each message: one that takes longer is stopped and comes back.
    pub budget: Duration,
    /// Messages per receive (one per connection).
    pub batch: usize,
    /// Wait between polls of an empty queue.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(300),
            budget: Duration::from_secs(240),
            batch: 10,
            idle_poll: Duration::from_millis(200),
        }
    }
}

/// What one round of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub received: usize,
    pub done: usize,
    pub retried: usize,
    /// Messages set aside as dead letters.
    pub dead_lettered: usize,
}

impl Round {
    fn add(&mut self, other: Round) {
        self.received += other.received;
        self.done += other.done;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
    }
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

    /// Receives and handles what is visible now.
    pub async fn run_once(&self) -> Result<Round, EngineError> {
        let messages = self.queue.receive_heads(self.settings.batch, self.settings.visibility).await?;
        let mut round = Round { received: messages.len(), ..Round::default() };
        let results = futures::future::join_all(messages.into_iter().map(|m| self.handle(m))).await;
        for r in results {
            round.add(r?);
        }
        Ok(round)
    }

    /// Handles a connection's next message.
    async fn handle(&self, m: ReceivedMessage) -> Result<Round, EngineError> {
        match self.engine.handle_delivery(&m.body, m.receive_count, self.settings.budget).await {
            Disposition::Done(_) => {
                self.queue.ack(&m.receipt).await?;
                Ok(Round { done: 1, ..Round::default() })
            }
            Disposition::Retry { after, error } => {
                tracing::warn!(group = %m.group_id, receive_count = m.receive_count, %error, ?after, "message failed; it comes back later");
                self.queue.retry_later(&m.receipt, after).await?;
                Ok(Round { retried: 1, ..Round::default() })
            }
            Disposition::DeadLetter { error } => {
                tracing::error!(group = %m.group_id, message_id = %m.message_id, receive_count = m.receive_count, %error, "message set aside as a dead letter");
                self.queue.dead_letter(&m, &error).await?;
                Ok(Round { dead_lettered: 1, ..Round::default() })
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
            total.add(r);
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
