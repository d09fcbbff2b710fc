//! The search pacer of a portal, shared by every client of the process.
//!
//! HubSpot limits CRM search to 5 requests per second per portal, whatever the token, and every
//! other integration of the portal draws from the same allowance (search guide, "Limits").
//! Connections of one process that reach the same portal therefore take turns through one
//! pacer, kept in a process-wide registry keyed by the API's address and the portal id. It
//! stays under 4 per second by default (room for the portal's other integrations), and goes one
//! step slower after each `SECONDLY` 429 (someone else is searching too), coming back one step
//! at a time after a calm spell.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hmsync_http::{Bucket, Pacer};
use tokio::time::Instant;

const SEARCH: &str = "search";

/// One portal's search pace.
#[derive(Debug)]
pub struct SearchPace {
    pacer: Pacer,
    /// The most searches per window it allows (the configured pace).
    max: u32,
    window: Duration,
    /// After this long without a 429, the pace comes back one step.
    calm: Duration,
    state: Mutex<PaceState>,
}

#[derive(Debug)]
struct PaceState {
    limit: u32,
    last_change: Option<Instant>,
}

impl SearchPace {
    fn new(per_window: u32, window: Duration, calm: Duration) -> Self {
        let max = per_window.max(1);
        Self {
            pacer: Pacer::new([Bucket::new(SEARCH, max, window)]),
            max,
            window,
            calm,
            state: Mutex::new(PaceState { limit: max, last_change: None }),
        }
    }

    /// Waits for a slot; returns the time it was taken (for [`SearchPace::settle`]).
    pub async fn acquire(&self) -> Instant {
        self.pacer.acquire(&[SEARCH]).await
    }

    /// Like [`SearchPace::acquire`], but hands back a wait longer than `limit` instead of
    /// sleeping through it (see [`Pacer::acquire_within`]).
    pub async fn acquire_within(&self, limit: Duration) -> Result<Instant, Duration> {
        self.pacer.acquire_within(&[SEARCH], limit).await
    }

    /// How long searches are held back by a refusal's wait.
    pub fn paused_for(&self) -> Duration {
        self.pacer.paused_for(&[SEARCH])
    }

    /// Counts the search from its answer, and comes back one step after a calm spell.
    pub fn settle(&self, sent: Instant) {
        self.pacer.settle(&[SEARCH], sent);
        let mut state = self.state.lock().expect("search pace lock");
        if state.limit < self.max && state.last_change.is_none_or(|t| t.elapsed() >= self.calm) {
            state.limit += 1;
            state.last_change = Some(Instant::now());
            self.pacer.reconfigure(SEARCH, state.limit, self.window);
        }
    }

    /// A `SECONDLY` 429: every search of the portal waits `wait`, and the pace slows one step.
    pub fn refused(&self, wait: Duration) {
        let mut state = self.state.lock().expect("search pace lock");
        state.limit = state.limit.saturating_sub(1).max(1);
        state.last_change = Some(Instant::now());
        self.pacer.reconfigure(SEARCH, state.limit, self.window);
        self.pacer.pause(SEARCH, wait);
    }

    /// Searches it allows per window now.
    pub fn limit(&self) -> u32 {
        self.state.lock().expect("search pace lock").limit
    }
}

type Registry = Mutex<HashMap<(String, u64), Arc<SearchPace>>>;

static PACES: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The search pace of portal `portal_id` at `base_url`, made with these settings by the first
/// client of the process that searches it.
pub fn search_pace(
    base_url: &str,
    portal_id: u64,
    per_window: u32,
    window: Duration,
    calm: Duration,
) -> Arc<SearchPace> {
    let key = (base_url.trim_end_matches('/').to_string(), portal_id);
    let mut paces = PACES.lock().expect("search pace registry lock");
    paces.entry(key).or_insert_with(|| Arc::new(SearchPace::new(per_window, window, calm))).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_of_one_portal_share_one_pace() {
        let a = search_pace("https://api.example", 1, 4, Duration::from_secs(1), Duration::from_secs(30));
        let b = search_pace("https://api.example/", 1, 9, Duration::from_secs(1), Duration::from_secs(30));
        let other = search_pace("https://api.example", 2, 4, Duration::from_secs(1), Duration::from_secs(30));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(b.limit(), 4, "the first client's settings hold");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_slows_the_pace_and_a_calm_spell_restores_it() {
        let pace = SearchPace::new(4, Duration::from_secs(1), Duration::from_secs(30));
        pace.refused(Duration::from_secs(1));
        pace.refused(Duration::from_secs(1));
        assert_eq!(pace.limit(), 2);
        let sent = pace.acquire().await;
        pace.settle(sent);
        assert_eq!(pace.limit(), 2, "not calm yet");
        tokio::time::sleep(Duration::from_secs(31)).await;
        let sent = pace.acquire().await;
        pace.settle(sent);
        assert_eq!(pace.limit(), 3, "one step back");
        for _ in 0..10 {
            pace.refused(Duration::ZERO);
        }
        assert_eq!(pace.limit(), 1, "never below one per window");
    }
}
