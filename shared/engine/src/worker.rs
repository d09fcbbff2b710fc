//! The queue consumer of the local runner (on AWS, the SQS event source mapping plays this
//! part and `contact-sync` reports partial batch failures). Messages of one connection are
//! handled in order, one run at a time: of what the worker receives for a connection, it keeps
//! the first message — with the `Contacts` and `Engagement` messages right behind it, merged
//! ([`Engine::run_length`]: a MailerLite webhook that is not batched brings one event per
//! delivery) — and gives the rest back at once ([`WorkQueue::release`]), so that no
//! message waits in its hands untried and counts a delivery it was not attempted in — neither
//! when the one before it fails, nor when the worker is killed while handling it (the
//! connection's queue group waits for its messages in flight, so order is kept). The run is
//! handled by [`Engine::handle_delivery`], the path contact-sync uses too: failed messages come
//! back after the delay it decides, and messages that cannot succeed go to the dead letters at
//! once with their error, where the status page shows them.

use std::sync::Arc;
use std::time::Duration;

use hmsync_store::{ReceivedMessage, WorkQueue};
use tokio_util::sync::CancellationToken;

use crate::delivery::Disposition;
use crate::engine::{Engine, EngineError};

/// How the worker polls. When failed messages come back is the engine's
/// [`crate::DeliveryPolicy`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a received message stays invisible (longer than `budget`, so that another
    /// worker does not receive a message still being handled).
    pub visibility: Duration,
    /// The time budget of each run: one that takes longer is stopped and comes back.
    pub budget: Duration,
    /// Messages per receive. The first run of each connection is handled and the rest given
    /// back, so this bounds how many queued changes of a connection are handled together.
    pub batch: usize,
    /// Wait between polls of an empty queue.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(300),
            budget: Duration::from_secs(240),
            batch: 100,
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

    /// Receives and handles what is visible now: one run per connection.
    pub async fn run_once(&self) -> Result<Round, EngineError> {
        let messages = self.queue.receive(self.settings.batch, self.settings.visibility).await?;
        let mut groups: Vec<Vec<ReceivedMessage>> = Vec::new();
        for m in messages {
            match groups.iter_mut().find(|g| g[0].group_id == m.group_id) {
                Some(g) => g.push(m),
                None => groups.push(vec![m]),
            }
        }
        let mut runs = Vec::with_capacity(groups.len());
        for mut group in groups {
            let bodies: Vec<&str> = group.iter().map(|m| m.body.as_str()).collect();
            let rest = group.split_off(self.engine.run_length(&bodies));
            for m in rest {
                self.queue.release(&m.receipt).await?;
            }
            runs.push(group);
        }
        let mut round = Round { received: runs.iter().map(Vec::len).sum(), ..Round::default() };
        let results = futures::future::join_all(runs.into_iter().map(|run| self.handle(run))).await;
        for r in results {
            round.add(r?);
        }
        Ok(round)
    }

    /// Handles a run of one connection's messages as one.
    async fn handle(&self, held: Vec<ReceivedMessage>) -> Result<Round, EngineError> {
        let bodies: Vec<&str> = held.iter().map(|m| m.body.as_str()).collect();
        let receive_count = held.iter().map(|m| m.receive_count).max().unwrap_or(1);
        let group = held.first().map(|m| m.group_id.clone()).unwrap_or_default();
        match self.engine.handle_delivery(&bodies, receive_count, self.settings.budget).await {
            Disposition::Done(_) => {
                for m in &held {
                    self.queue.ack(&m.receipt).await?;
                }
                Ok(Round { done: held.len(), ..Round::default() })
            }
            Disposition::Retry { after, error } => {
                tracing::warn!(%group, messages = held.len(), receive_count, %error, ?after, "message failed; it comes back later");
                for m in &held {
                    self.queue.retry_later(&m.receipt, after).await?;
                }
                Ok(Round { retried: held.len(), ..Round::default() })
            }
            Disposition::DeadLetter { error } => {
                tracing::error!(%group, messages = held.len(), receive_count, %error, "message set aside as a dead letter");
                for m in &held {
                    self.queue.dead_letter(m, &error).await?;
                }
                Ok(Round { dead_lettered: held.len(), ..Round::default() })
            }
        }
    }

    /// Runs until `shutdown` is cancelled.
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
