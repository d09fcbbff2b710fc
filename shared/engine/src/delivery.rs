//! How one delivery of a queue message (or of a run of them, merged) is handled and what becomes
//! of it: the one path the local worker and the Lambda consumer (contact-sync) share. The bodies
//! are parsed, handled within a time budget (connection-level failures turned into state by
//! [`Engine::handle_with_recovery`]), and the outcome decided: done, try again after a delay,
//! or set aside as a dead letter with the reason.

use std::time::Duration;

use crate::engine::{Engine, EngineError, Report};
use crate::message::{SyncMessage, coalesce};

/// When failed deliveries come back and when they are given up; the queue's redrive policy
/// (`template.yaml`'s `maxReceiveCount`, the local queue's `max_receives`) must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// A message that still fails on this receive goes to the dead letters with its error.
    pub max_receives: u32,
    /// The delay after the first failed receive that did not say when to try again; it doubles
    /// with every receive, up to `max_retry_delay`.
    pub first_retry_delay: Duration,
    pub max_retry_delay: Duration,
}

/// The deployed queue's `maxReceiveCount` (`template.yaml`), which a test holds equal.
pub const MAX_RECEIVES: u32 = 10;

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_receives: MAX_RECEIVES,
            first_retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(300),
        }
    }
}

impl DeliveryPolicy {
    /// The one backoff of failed messages: `first_retry_delay × 2^(receive_count − 1)`, capped.
    /// A throttled store or a lost race comes back after seconds, not after the queue's
    /// visibility timeout.
    pub fn backoff(&self, receive_count: u32) -> Duration {
        self.first_retry_delay.saturating_mul(1 << receive_count.saturating_sub(1).min(16)).min(self.max_retry_delay)
    }
}

/// What becomes of a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled (or set aside in the connection's state, e.g. while it is paused): delete it.
    Done(Report),
    /// Not done: deliver it again after `after` (its group waits until then).
    Retry { after: Duration, error: String },
    /// It can never succeed, or it failed on its last allowed receive: move it to the dead
    /// letters with `error` (so it neither uses up receives nor holds back its group).
    DeadLetter { error: String },
}

impl Engine {
    /// How many of a connection's received messages (their bodies, in queue order) are handled
    /// together: the first, and the `Contacts` and `Engagement` messages right behind it that
    /// [`coalesce`] merges with it (a MailerLite webhook that is not batched brings one event per
    /// delivery). An unreadable message is a run of its own.
    pub fn run_length(&self, bodies: &[&str]) -> usize {
        let parsed: Vec<SyncMessage> = bodies.iter().map_while(|b| SyncMessage::from_body(b).ok()).collect();
        match coalesce(&parsed, self.settings.refs_per_message).into_iter().next() {
            Some((_, range)) => range.end.max(1),
            None => bodies.len().min(1),
        }
    }

    /// Handles one delivery of a run of a connection's queue messages (one message on Lambda;
    /// see [`Engine::run_length`]) within `budget`, and says what becomes of them.
    /// `receive_count` is the highest of theirs (1 on a first delivery).
    pub async fn handle_delivery(&self, bodies: &[&str], receive_count: u32, budget: Duration) -> Disposition {
        let mut parsed = Vec::with_capacity(bodies.len());
        for body in bodies {
            match SyncMessage::from_body(body) {
                Ok(m) => parsed.push(m),
                Err(e) => return Disposition::DeadLetter { error: format!("the message is not a sync message ({e})") },
            }
        }
        let messages: Vec<SyncMessage> =
            coalesce(&parsed, self.settings.refs_per_message).into_iter().flat_map(|(merged, _)| merged).collect();
        let Some(first) = messages.first() else {
            return Disposition::Done(Report::default());
        };
        let (kind, connection) = (first.kind(), first.connection_id().to_string());
        let deadline = tokio::time::Instant::now() + budget;
        let work = hmsync_http::budget::within(deadline, async {
            let mut report = Report::default();
            for m in &messages {
                let r = self.handle_with_recovery(m).await?;
                report.contacts += r.contacts;
                report.written += r.written;
                report.echoes += r.echoes;
                report.unchanged += r.unchanged;
                report.errors += r.errors;
                report.excluded += r.excluded;
                report.parked |= r.parked;
                report.enqueued += r.enqueued;
            }
            Ok(report)
        });
        let outcome = match tokio::time::timeout_at(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(EngineError::Retry {
                message: format!(
                    "handling the {kind} message of connection {connection} took longer than its time budget of {} s",
                    budget.as_secs()
                ),
                after: None,
            }),
        };
        self.decide(outcome, receive_count)
    }

    fn decide(&self, outcome: Result<Report, EngineError>, receive_count: u32) -> Disposition {
        let policy = &self.settings.delivery;
        match outcome {
            Ok(report) => Disposition::Done(report),
            Err(error) => match error.retry_after() {
                None => Disposition::DeadLetter { error: error.to_string() },
                Some(_) if receive_count >= policy.max_receives => {
                    Disposition::DeadLetter { error: format!("{error} (gave up after {receive_count} attempts)") }
                }
                Some(wanted) => Disposition::Retry {
                    after: wanted.unwrap_or_else(|| policy.backoff(receive_count)),
                    error: error.to_string(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_per_receive_up_to_its_cap() {
        let p = DeliveryPolicy::default();
        let delays: Vec<u64> = (1..=10).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.backoff(0), Duration::from_secs(2));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn a_throttled_store_and_a_version_conflict_come_back_after_the_backoff_not_the_visibility_timeout() {
        use hmsync_store::StoreError;
        let throttled = EngineError::Store(StoreError::Throttled { message: "ProvisionedThroughputExceeded".into() });
        let conflict = EngineError::Store(StoreError::VersionConflict { entity: "state".into(), current: Some(3) });
        for error in [throttled, conflict] {
            // Retryable, without a delay of its own: the backoff of seconds applies.
            assert_eq!(error.retry_after(), Some(None), "{error}");
        }
        assert_eq!(DeliveryPolicy::default().backoff(1), Duration::from_secs(2));
    }
}
