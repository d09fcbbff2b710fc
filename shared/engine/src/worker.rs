//! The queue consumer of the local runner (on AWS, the SQS event source mapping plays this
//! part and `contact-sync` reports partial batch failures). Messages of one connection are
//! handled in order, one run at a time: of what the worker receives for a connection, it keeps
//! the first message — with the `Contacts` and `Engagement` messages right behind it, merged
//! ([`crate::message::coalesce`]: a MailerLite webhook that is not batched brings one event per
//! delivery) — and gives the rest back at once ([`WorkQueue::release`]), so that no
//! message waits in its hands untried and counts a delivery it was not attempted in — neither
//! when the one before it fails, nor when the worker is killed while handling it (the
//! connection's queue group waits for its messages in flight, so order is kept). Failed
//! messages come back after a delay; a message that keeps failing ends in the dead-letter
//! queue, where the status page shows it.

use std::sync::Arc;
use std::time::Duration;

use hmsync_store::{ReceivedMessage, WorkQueue};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};
use crate::message::{SyncMessage, coalesce};

/// The messages to handle in order (or why they cannot be) and the received messages they
/// stand for.
type Run = (Result<Vec<SyncMessage>, EngineError>, Vec<ReceivedMessage>);

/// How the worker polls and backs off.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a received message stays invisible (longer than handling it may take).
    pub visibility: Duration,
    /// Messages per receive. The first run of each connection is handled and the rest given
    /// back, so this bounds how many queued changes of a connection are handled together.
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
            batch: 100,
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
        let mut runs: Vec<Run> = Vec::with_capacity(groups.len());
        for group in groups {
            let (run, rest) = self.first_run(group);
            for m in rest {
                self.queue.release(&m.receipt).await?;
            }
            runs.push(run);
        }
        let mut round = Round { received: runs.iter().map(|(_, held)| held.len()).sum(), ..Round::default() };
        let results = futures::future::join_all(runs.into_iter().map(|(msg, held)| self.handle(msg, held))).await;
        for r in results {
            let (done, retried) = r?;
            round.done += done;
            round.retried += retried;
        }
        Ok(round)
    }

    /// The connection's first message, merged with the ones right behind it that can be handled
    /// with it (and the received messages it holds); and the messages that come after, to give
    /// back untried.
    fn first_run(&self, mut group: Vec<ReceivedMessage>) -> (Run, Vec<ReceivedMessage>) {
        let mut parsed = Vec::new();
        for m in &group {
            match SyncMessage::from_body(&m.body) {
                Ok(msg) => parsed.push(msg),
                Err(e) if parsed.is_empty() => {
                    let rest = group.split_off(1);
                    return ((Err(EngineError::Permanent(format!("not a sync message: {e}"))), group), rest);
                }
                Err(_) => break,
            }
        }
        let (merged, range) =
            coalesce(&parsed, self.engine.settings.refs_per_message).into_iter().next().expect("a group has a message");
        let rest = group.split_off(range.end);
        ((Ok(merged), group), rest)
    }

    /// Handles a run of one connection's messages as one.
    async fn handle(
        &self,
        message: Result<Vec<SyncMessage>, EngineError>,
        held: Vec<ReceivedMessage>,
    ) -> Result<(usize, usize), EngineError> {
        let outcome = match message {
            Ok(messages) => {
                let mut outcome = Ok(());
                for msg in &messages {
                    if let Err(e) = self.engine.handle_with_recovery(msg).await {
                        outcome = Err(e);
                        break;
                    }
                }
                outcome
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => {
                for m in &held {
                    self.queue.ack(&m.receipt).await?;
                }
                Ok((held.len(), 0))
            }
            Err(e) => {
                let receive_count = held.iter().map(|m| m.receive_count).max().unwrap_or(1);
                let delay = match e.retry_after() {
                    Some(wanted) => self.delay(receive_count, wanted),
                    // Permanent: come back at once, so it reaches the dead letters quickly.
                    None => Duration::ZERO,
                };
                tracing::warn!(group = %held[0].group_id, messages = held.len(), receive_count, error = %e, ?delay, "message failed; it comes back later");
                for m in &held {
                    self.queue.retry_later(&m.receipt, delay).await?;
                }
                Ok((0, held.len()))
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
