use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// One rate-limit bucket: at most `limit` requests in any sliding `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub limit: u32,
    pub window: Duration,
}

impl Bucket {
    pub fn new(name: impl Into<String>, limit: u32, window: Duration) -> Self {
        Self { name: name.into(), limit, window }
    }
}

#[derive(Debug)]
struct BucketState {
    bucket: Bucket,
    /// Send times of the requests still inside the window (oldest first).
    sent: VecDeque<Instant>,
    /// No request may start before this instant (set from `Retry-After` or a 429).
    paused_until: Option<Instant>,
}

impl BucketState {
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.sent.front() {
            if now.duration_since(t) >= self.bucket.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long a request must wait before it fits in this bucket.
    fn wait(&mut self, now: Instant) -> Duration {
        self.prune(now);
        let mut wait = Duration::ZERO;
        if let Some(until) = self.paused_until {
            if until > now {
                wait = until - now;
            } else {
                self.paused_until = None;
            }
        }
        if self.sent.len() as u32 >= self.bucket.limit.max(1) {
            let idx = self.sent.len() - self.bucket.limit.max(1) as usize;
            let free_at = self.sent[idx] + self.bucket.window;
            wait = wait.max(free_at.saturating_duration_since(now));
        }
        wait
    }
}

fn max_wait(buckets: &mut HashMap<String, BucketState>, names: &[&str], now: Instant) -> Duration {
    let mut wait = Duration::ZERO;
    for n in names {
        if let Some(b) = buckets.get_mut(*n) {
            wait = wait.max(b.wait(now));
        }
    }
    wait
}

/// Keeps one account under each of its rate-limit buckets.
///
/// A request names the buckets it counts against; [`Pacer::acquire`] waits until every one of
/// them has room, then records the request in all of them at once. The pacer is cooperative:
/// it assumes the process is the only writer, and [`Pacer::observe_remaining`] corrects that
/// assumption from the server's own count.
#[derive(Debug)]
pub struct Pacer {
    buckets: Mutex<HashMap<String, BucketState>>,
    /// Requests let through since the pacer was made (the status page's requests per hour).
    sent: AtomicU64,
}

impl Pacer {
    pub fn new(buckets: impl IntoIterator<Item = Bucket>) -> Self {
        let buckets = buckets
            .into_iter()
            .map(|b| (b.name.clone(), BucketState { bucket: b, sent: VecDeque::new(), paused_until: None }))
            .collect();
        Self { buckets: Mutex::new(buckets), sent: AtomicU64::new(0) }
    }

    /// How many requests [`Pacer::acquire`] and [`Pacer::acquire_within`] let through so far
    /// (retries included: each is a request the account's limit counts).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until a request counted against `names` fits every bucket, then records it and
    /// returns the time it was recorded at (for [`Pacer::settle`]). Unknown bucket names are ignored.
    pub async fn acquire(&self, names: &[&str]) -> Instant {
        match self.acquire_within(names, Duration::MAX).await {
            Ok(sent) => sent,
            Err(_) => unreachable!("no wait is longer than Duration::MAX"),
        }
    }

    /// Like [`Pacer::acquire`], but waits at most `limit`: when the buckets need a longer wait
    /// (a pause after a long `Retry-After`), nothing is recorded and that wait is returned, so
    /// the caller can give the work back instead of sleeping through it.
    pub async fn acquire_within(&self, names: &[&str], limit: Duration) -> Result<Instant, Duration> {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().expect("pacer lock");
                let now = Instant::now();
                let wait = max_wait(&mut buckets, names, now);
                if wait.is_zero() {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    for n in names {
                        if let Some(b) = buckets.get_mut(*n) {
                            b.sent.push_back(now);
                        }
                    }
                    return Ok(now);
                }
                wait
            };
            if wait > limit {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// How long a request counted against `names` is held back by a [`Pacer::pause`] (not by the
    /// buckets' own windows): the part of a wait the server asked for.
    pub fn paused_for(&self, names: &[&str]) -> Duration {
        let buckets = self.buckets.lock().expect("pacer lock");
        let now = Instant::now();
        names
            .iter()
            .filter_map(|n| buckets.get(*n)?.paused_until)
            .map(|until| until.saturating_duration_since(now))
            .max()
            .unwrap_or_default()
    }

    /// Moves the record of a request acquired at `sent` to now, once its answer arrived. The
    /// server counted the request somewhere between the two, so measuring its window from the
    /// answer keeps a sliding-window server from seeing one request too many when the network
    /// (or a busy machine) delays some requests more than others.
    pub fn settle(&self, names: &[&str], sent: Instant) {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        let now = Instant::now();
        for n in names {
            if let Some(b) = buckets.get_mut(*n)
                && let Some(i) = b.sent.iter().rposition(|t| *t == sent)
            {
                b.sent.remove(i);
                let at = b.sent.partition_point(|t| *t <= now);
                b.sent.insert(at, now);
            }
        }
    }

    /// The time a request counted against `names` would wait now (for planning and tests).
    pub fn current_wait(&self, names: &[&str]) -> Duration {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        max_wait(&mut buckets, names, Instant::now())
    }

    /// Adopts the server's view of the remaining budget of `name` when it is smaller than ours
    /// (another client of the same account spent some, or the server's limit is lower): from
    /// now on exactly `remaining` requests fit until a window has passed. Every request we still
    /// count is restamped to now as well: the server's oldest requests are not ours to know, and
    /// one we would see leaving our window may long have left the server's, so its expiry must
    /// not free a slot the server does not have.
    pub fn observe_remaining(&self, name: &str, remaining: u32) {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        let Some(b) = buckets.get_mut(name) else { return };
        let now = Instant::now();
        b.prune(now);
        let ours = b.bucket.limit.saturating_sub(b.sent.len() as u32);
        if remaining < ours {
            let spent = b.bucket.limit - remaining;
            b.sent.clear();
            b.sent.extend(std::iter::repeat_n(now, spent as usize));
        }
    }

    /// Stops every request counted against `name` until `delay` has passed (a 429 with
    /// `Retry-After`, or the policy's own backoff when the server gives none).
    pub fn pause(&self, name: &str, delay: Duration) {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        if let Some(b) = buckets.get_mut(name) {
            let until = Instant::now() + delay;
            b.paused_until = Some(b.paused_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Changes a bucket's limit and window (HubSpot says its limits in response headers, and
    /// they differ by app kind and portal tier). Requests already counted stay counted. Returns
    /// whether anything changed.
    pub fn reconfigure(&self, name: &str, limit: u32, window: Duration) -> bool {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        let Some(b) = buckets.get_mut(name) else { return false };
        if b.bucket.limit == limit.max(1) && b.bucket.window == window {
            return false;
        }
        b.bucket.limit = limit.max(1);
        b.bucket.window = window;
        true
    }

    /// The configured buckets (for reports and the bound computation of the benchmark).
    pub fn buckets(&self) -> Vec<Bucket> {
        let buckets = self.buckets.lock().expect("pacer lock");
        let mut v: Vec<Bucket> = buckets.values().map(|b| b.bucket.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_every_request_it_lets_through() {
        let pacer = Pacer::new([Bucket::new("burst", 2, Duration::from_secs(10))]);
        for _ in 0..5 {
            pacer.acquire(&["burst"]).await;
        }
        assert_eq!(pacer.requests_sent(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_acquire_counts_what_it_lets_through_and_nothing_it_hands_back() {
        let pacer = Pacer::new([Bucket::new("burst", 1, Duration::from_secs(10))]);
        pacer.acquire_within(&["burst"], Duration::ZERO).await.unwrap();
        assert!(pacer.acquire_within(&["burst"], Duration::ZERO).await.is_err());
        pacer.acquire_within(&["burst"], Duration::from_secs(20)).await.unwrap();
        pacer.acquire(&[]).await;
        assert_eq!(
            pacer.requests_sent(),
            3,
            "two bounded acquires and one unbounded; the refused one is not a request"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_lets_more_than_limit_into_any_window() {
        let pacer = Pacer::new([Bucket::new("burst", 3, Duration::from_secs(10))]);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..7 {
            pacer.acquire(&["burst"]).await;
            sent.push(Instant::now() - start);
        }
        for (i, t) in sent.iter().enumerate().skip(3) {
            assert!(*t >= sent[i - 3] + Duration::from_secs(10), "request {i} at {t:?} too early: {sent:?}");
        }
        assert_eq!(sent[6], Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_request_counts_from_its_answer() {
        let pacer = Pacer::new([Bucket::new("burst", 1, Duration::from_secs(10))]);
        let start = Instant::now();
        let sent = pacer.acquire(&["burst"]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        pacer.settle(&["burst"], sent);
        pacer.acquire(&["burst"]).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(13), "the window runs from the answer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_the_fullest_of_its_buckets() {
        let pacer = Pacer::new([
            Bucket::new("burst", 100, Duration::from_secs(10)),
            Bucket::new("search", 1, Duration::from_secs(1)),
        ]);
        pacer.acquire(&["burst", "search"]).await;
        assert_eq!(pacer.current_wait(&["burst"]), Duration::ZERO);
        assert_eq!(pacer.current_wait(&["burst", "search"]), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn server_remaining_lower_than_ours_is_adopted() {
        let pacer = Pacer::new([Bucket::new("burst", 5, Duration::from_secs(10))]);
        pacer.observe_remaining("burst", 0);
        assert_eq!(pacer.current_wait(&["burst"]), Duration::from_secs(10));
        pacer.observe_remaining("burst", 5);
        assert_eq!(
            pacer.current_wait(&["burst"]),
            Duration::from_secs(10),
            "a higher server count never frees budget early"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_adopting_the_server_s_count_an_old_request_leaving_frees_nothing() {
        let pacer = Pacer::new([Bucket::new("burst", 5, Duration::from_secs(10))]);
        pacer.acquire(&["burst"]).await;
        tokio::time::sleep(Duration::from_secs(9)).await;
        pacer.acquire(&["burst"]).await;
        // The server forgot the first request already and counts its own requests: none left.
        pacer.observe_remaining("burst", 0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pacer.current_wait(&["burst"]), Duration::from_secs(9), "nothing frees before a full window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_acquire_hands_back_a_wait_longer_than_its_limit() {
        let pacer = Pacer::new([Bucket::new("burst", 2, Duration::from_secs(10))]);
        pacer.pause("burst", Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(pacer.paused_for(&["burst", "search"]), Duration::from_secs(60));
        assert_eq!(pacer.acquire_within(&["burst"], Duration::from_secs(20)).await, Err(Duration::from_secs(60)));
        assert_eq!(Instant::now(), start, "no time spent");
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert!(pacer.acquire_within(&["burst"], Duration::from_secs(20)).await.is_ok(), "15 s fit the limit");
        assert_eq!(Instant::now() - start, Duration::from_secs(60));
        pacer.acquire_within(&["burst"], Duration::ZERO).await.unwrap();
        assert_eq!(
            pacer.acquire_within(&["burst"], Duration::ZERO).await,
            Err(Duration::from_secs(10)),
            "a full bucket is a wait too"
        );
        assert_eq!(pacer.paused_for(&["burst"]), Duration::ZERO, "but not a pause");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconfigured_bucket_paces_by_its_new_limit() {
        let pacer = Pacer::new([Bucket::new("burst", 2, Duration::from_secs(10))]);
        pacer.acquire(&["burst"]).await;
        pacer.acquire(&["burst"]).await;
        assert_eq!(pacer.current_wait(&["burst"]), Duration::from_secs(10));
        assert!(pacer.reconfigure("burst", 3, Duration::from_secs(10)));
        assert_eq!(pacer.current_wait(&["burst"]), Duration::ZERO, "raised: room for one more");
        assert!(pacer.reconfigure("burst", 1, Duration::from_secs(10)));
        assert_eq!(pacer.current_wait(&["burst"]), Duration::from_secs(10), "lowered: full again");
        assert!(!pacer.reconfigure("burst", 1, Duration::from_secs(10)));
        assert_eq!(pacer.buckets()[0].limit, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_every_request_of_the_bucket() {
        let pacer = Pacer::new([Bucket::new("burst", 100, Duration::from_secs(10))]);
        pacer.pause("burst", Duration::from_secs(7));
        let start = Instant::now();
        pacer.acquire(&["burst"]).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
    }
}
