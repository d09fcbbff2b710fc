//! The time a piece of work may still take, and how long a client may wait inside it.
//!
//! A queue message is handled within a time budget (on Lambda, derived from what is left of the
//! invocation). The budget is set once around the work ([`within`]) and read by the clients'
//! retry loops wherever they are ([`time_left`]): a request never gets a timeout longer than the
//! time left, and a wait (a `Retry-After`, a paused rate-limit bucket, a backoff) that does not
//! fit is not slept but handed back to the caller, whose message then comes back after that
//! wait. Without a budget (a test, a CLI call) only the in-process cap applies.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait a client sleeps through in-process. Anything longer (MailerLite's 429s of up
/// to a minute, HubSpot's `Retry-After` of up to 24 hours on a 477) ends the work with a retry
/// delay instead: the queue is a better place to wait than a running Lambda invocation.
pub const MAX_IN_PROCESS_WAIT: Duration = Duration::from_secs(20);

/// Time kept back for the request that follows a wait: a wait is only worth sleeping if a
/// request can still be made after it.
pub const REQUEST_RESERVE: Duration = Duration::from_secs(2);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with a deadline every client call inside it respects.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The time left before the deadline of the current work; `None` outside of [`within`].
pub fn time_left() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// How long a client may sleep now: at most `cap`, and within a budget only as long as leaves
/// [`REQUEST_RESERVE`] for the request after the wait.
pub fn wait_allowance(cap: Duration) -> Duration {
    match time_left() {
        Some(left) => cap.min(left.saturating_sub(REQUEST_RESERVE)),
        None => cap,
    }
}

/// What to do about a wait a server (or a backoff) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Sleep this long, then try again.
    Sleep(Duration),
    /// Do not sleep: give up now and let the caller try again after this long.
    GiveUp(Duration),
}

/// Sleeps through `wait` only if it fits the allowance ([`wait_allowance`] of `cap`).
pub fn plan(wait: Duration, cap: Duration) -> Wait {
    if wait <= wait_allowance(cap) { Wait::Sleep(wait) } else { Wait::GiveUp(wait) }
}

/// A request's timeout: `configured`, shortened to the time left of the budget (never below
/// `floor`, so a request is not started only to be cut at once — the budget's own end stops
/// the work then).
pub fn request_timeout(configured: Duration, floor: Duration) -> Duration {
    match time_left() {
        Some(left) => configured.min(left.max(floor)),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outside_a_budget_only_the_cap_applies() {
        assert_eq!(time_left(), None);
        assert_eq!(plan(Duration::from_secs(19), MAX_IN_PROCESS_WAIT), Wait::Sleep(Duration::from_secs(19)));
        assert_eq!(plan(Duration::from_secs(60), MAX_IN_PROCESS_WAIT), Wait::GiveUp(Duration::from_secs(60)));
        assert_eq!(request_timeout(Duration::from_secs(30), Duration::from_secs(1)), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn inside_a_budget_a_wait_must_leave_room_for_a_request() {
        let deadline = Instant::now() + Duration::from_secs(10);
        within(deadline, async {
            assert_eq!(time_left(), Some(Duration::from_secs(10)));
            assert_eq!(plan(Duration::from_secs(8), MAX_IN_PROCESS_WAIT), Wait::Sleep(Duration::from_secs(8)));
            assert_eq!(plan(Duration::from_secs(9), MAX_IN_PROCESS_WAIT), Wait::GiveUp(Duration::from_secs(9)));
            assert_eq!(request_timeout(Duration::from_secs(30), Duration::from_secs(1)), Duration::from_secs(10));
            tokio::time::sleep(Duration::from_secs(12)).await;
            assert_eq!(time_left(), Some(Duration::ZERO));
            assert_eq!(plan(Duration::ZERO, MAX_IN_PROCESS_WAIT), Wait::Sleep(Duration::ZERO));
            assert_eq!(plan(Duration::from_millis(1), MAX_IN_PROCESS_WAIT), Wait::GiveUp(Duration::from_millis(1)));
            assert_eq!(request_timeout(Duration::from_secs(30), Duration::from_secs(1)), Duration::from_secs(1));
        })
        .await;
        assert_eq!(time_left(), None, "the budget ends with its work");
    }
}
