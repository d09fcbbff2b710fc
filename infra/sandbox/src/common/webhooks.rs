use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use super::now_ms;

/// Builds the headers and body of attempt `n` (0-based). HubSpot puts `attemptNumber` in the
/// body and signs every attempt with a fresh timestamp, so a delivery is a recipe, not bytes.
pub type BuildAttempt = Arc<dyn Fn(u32) -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>;

/// One outbound webhook request.
#[derive(Clone)]
pub struct Delivery {
    pub url: String,
    pub build: BuildAttempt,
}

/// How deliveries behave; the defaults deliver each webhook once, promptly, in order of sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryOptions {
    /// Delay before each retry after a failed attempt (non-2xx or timeout); its length is the
    /// number of retries. HubSpot: up to 10 over 24 h; MailerLite: 10 s, 100 s, 1000 s.
    pub retry_delays_ms: Vec<u64>,
    /// A target that answers later than this has failed the attempt.
    pub timeout_ms: u64,
    /// Chance that a delivery is sent twice.
    pub duplicate_rate: f64,
    /// Chance that a delivery is lost (never sent; only a scan can find the change).
    pub drop_rate: f64,
    /// Each delivery waits a random time up to this before its first attempt, which reorders them.
    pub reorder_max_delay_ms: u64,
    /// Concurrent requests in flight (HubSpot: 10 per installing account).
    pub max_in_flight: usize,
    /// Hold deliveries until [`Dispatcher::resume`] (a test can then inspect or drop them).
    pub paused: bool,
    pub seed: u64,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            retry_delays_ms: vec![1_000, 5_000, 30_000],
            timeout_ms: 5_000,
            duplicate_rate: 0.0,
            drop_rate: 0.0,
            reorder_max_delay_ms: 0,
            max_in_flight: 10,
            paused: false,
            seed: 1,
        }
    }
}

/// One attempt as it went over the wire, kept so tests can inspect and replay deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDelivery {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub attempt: u32,
    /// Response status; `None` when the request failed or timed out.
    pub status: Option<u16>,
    pub sent_at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatcherStats {
    pub queued: u64,
    pub attempts: u64,
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

/// Told of every attempt as it went over the wire (a simulator keeping its webhooks' health).
pub type AttemptObserver = Arc<dyn Fn(&RecordedDelivery) + Send + Sync>;

struct Inner {
    observer: Mutex<Option<AttemptObserver>>,
    options: Mutex<DeliveryOptions>,
    rng: Mutex<fastrand::Rng>,
    client: reqwest::Client,
    log: Mutex<Vec<RecordedDelivery>>,
    stats: Mutex<DispatcherStats>,
    held: Mutex<Vec<Delivery>>,
    in_flight: AtomicUsize,
    idle: Notify,
    permits: Semaphore,
}

/// Sends webhooks from a simulator to registered targets with retries and optional duplicates,
/// reordering and loss. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// Holds the dispatcher busy while a delivery is known to be coming but not yet sent (a batch
/// waiting for its tick): [`Dispatcher::wait_idle`] waits for it as for one in flight. Dropping
/// it releases the hold.
pub struct Reservation {
    inner: Arc<Inner>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// At most this many recorded attempts are kept (the oldest are forgotten).
const LOG_CAP: usize = 50_000;

impl Default for Dispatcher {
    fn default() -> Self {
        Self::new(DeliveryOptions::default())
    }
}

impl Dispatcher {
    pub fn new(options: DeliveryOptions) -> Self {
        let client = reqwest::Client::builder().build().expect("reqwest client");
        Self {
            inner: Arc::new(Inner {
                observer: Mutex::new(None),
                rng: Mutex::new(fastrand::Rng::with_seed(options.seed)),
                permits: Semaphore::new(options.max_in_flight.max(1)),
                options: Mutex::new(options),
                client,
                log: Mutex::new(Vec::new()),
                stats: Mutex::new(DispatcherStats::default()),
                held: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Calls `observer` after every attempt (replacing an earlier observer).
    pub fn observe_attempts(&self, observer: AttemptObserver) {
        *self.inner.observer.lock().expect("observer lock") = Some(observer);
    }

    pub fn options(&self) -> DeliveryOptions {
        self.inner.options.lock().expect("options lock").clone()
    }

    /// Replaces the options; unpausing releases held deliveries.
    pub fn set_options(&self, options: DeliveryOptions) {
        let unpause = !options.paused;
        *self.inner.rng.lock().expect("rng lock") = fastrand::Rng::with_seed(options.seed);
        *self.inner.options.lock().expect("options lock") = options;
        if unpause {
            self.resume();
        }
    }

    /// Queues a delivery (needs a tokio runtime).
    pub fn send(&self, delivery: Delivery) {
        let options = self.options();
        self.inner.stats.lock().expect("stats lock").queued += 1;
        if options.paused {
            self.inner.held.lock().expect("held lock").push(delivery);
            return;
        }
        let (drop, duplicate, delay) = {
            let mut rng = self.inner.rng.lock().expect("rng lock");
            let drop = options.drop_rate > 0.0 && rng.f64() < options.drop_rate;
            let duplicate = options.duplicate_rate > 0.0 && rng.f64() < options.duplicate_rate;
            let delay = if options.reorder_max_delay_ms > 0 { rng.u64(0..=options.reorder_max_delay_ms) } else { 0 };
            (drop, duplicate, delay)
        };
        if drop {
            self.inner.stats.lock().expect("stats lock").dropped += 1;
            return;
        }
        if duplicate {
            self.inner.stats.lock().expect("stats lock").duplicated += 1;
            self.spawn(delivery.clone(), delay / 2);
        }
        self.spawn(delivery, delay);
    }

    /// Marks a delivery as coming (see [`Reservation`]).
    pub fn reserve(&self) -> Reservation {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        Reservation { inner: self.inner.clone() }
    }

    /// Releases deliveries held while paused, in the order they were sent.
    pub fn resume(&self) {
        let held: Vec<Delivery> = std::mem::take(&mut *self.inner.held.lock().expect("held lock"));
        for d in held {
            self.spawn(d, 0);
        }
    }

    /// Drops every held delivery (a lost batch of webhooks) and returns how many were dropped.
    pub fn discard_held(&self) -> usize {
        let n = std::mem::take(&mut *self.inner.held.lock().expect("held lock")).len();
        self.inner.stats.lock().expect("stats lock").dropped += n as u64;
        n
    }

    /// Deliveries waiting while paused.
    pub fn held(&self) -> usize {
        self.inner.held.lock().expect("held lock").len()
    }

    fn spawn(&self, delivery: Delivery, initial_delay_ms: u64) {
        let inner = self.inner.clone();
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if initial_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(initial_delay_ms)).await;
            }
            deliver(&inner, delivery).await;
            if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
    }

    /// Waits until no delivery is in flight, waiting for a retry or reserved (held ones do not
    /// count).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn log(&self) -> Vec<RecordedDelivery> {
        self.inner.log.lock().expect("log lock").clone()
    }

    pub fn clear_log(&self) {
        self.inner.log.lock().expect("log lock").clear();
    }

    pub fn stats(&self) -> DispatcherStats {
        self.inner.stats.lock().expect("stats lock").clone()
    }
}

async fn deliver(inner: &Inner, delivery: Delivery) {
    let mut attempt = 0u32;
    loop {
        let (headers, body) = (delivery.build)(attempt);
        let timeout = Duration::from_millis(inner.options.lock().expect("options lock").timeout_ms.max(1));
        let status = {
            let _permit = inner.permits.acquire().await.expect("semaphore open");
            let mut req = inner.client.post(&delivery.url).timeout(timeout).body(body.clone());
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.send().await.ok().map(|r| r.status().as_u16())
        };
        {
            let recorded = RecordedDelivery {
                url: delivery.url.clone(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                attempt,
                status,
                sent_at_ms: now_ms(),
            };
            let observer = inner.observer.lock().expect("observer lock").clone();
            if let Some(observe) = observer {
                observe(&recorded);
            }
            let mut log = inner.log.lock().expect("log lock");
            if log.len() >= LOG_CAP {
                log.remove(0);
            }
            log.push(recorded);
        }
        inner.stats.lock().expect("stats lock").attempts += 1;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            inner.stats.lock().expect("stats lock").delivered += 1;
            return;
        }
        let delays = inner.options.lock().expect("options lock").retry_delays_ms.clone();
        match delays.get(attempt as usize) {
            Some(&ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                attempt += 1;
            }
            None => {
                inner.stats.lock().expect("stats lock").failed += 1;
                tracing::warn!(url = %delivery.url, attempts = attempt + 1, "webhook delivery failed for good");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use std::sync::atomic::AtomicU32;

    async fn target(fail_first: u32) -> (String, Arc<AtomicU32>) {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/hook",
            post(move || {
                let h = h.clone();
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst);
                    if n < fail_first { http::StatusCode::INTERNAL_SERVER_ERROR } else { http::StatusCode::OK }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), hits)
    }

    fn delivery(url: &str) -> Delivery {
        Delivery {
            url: url.to_string(),
            build: Arc::new(|n| (vec![("x-attempt".into(), n.to_string())], b"[]".to_vec())),
        }
    }

    #[tokio::test]
    async fn retries_until_the_target_accepts() {
        let (url, hits) = target(2).await;
        let d = Dispatcher::new(DeliveryOptions { retry_delays_ms: vec![1, 1, 1], ..Default::default() });
        d.send(delivery(&url));
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        let log = d.log();
        assert_eq!(log.iter().map(|r| r.attempt).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(log[2].headers[0].1, "2");
        assert_eq!(d.stats().delivered, 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_retry() {
        let (url, hits) = target(100).await;
        let d = Dispatcher::new(DeliveryOptions { retry_delays_ms: vec![1], ..Default::default() });
        d.send(delivery(&url));
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(d.stats().failed, 1);
    }

    #[tokio::test]
    async fn waiting_for_idle_includes_reserved_deliveries() {
        let (url, hits) = target(0).await;
        let d = Dispatcher::default();
        let reservation = d.reserve();
        let (d2, url2) = (d.clone(), url.clone());
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            d2.send(delivery(&url2));
            drop(reservation);
        });
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 1, "idle only once the reserved delivery was made");
    }

    #[tokio::test]
    async fn paused_deliveries_wait_and_can_be_discarded() {
        let (url, hits) = target(0).await;
        let d = Dispatcher::new(DeliveryOptions { paused: true, ..Default::default() });
        d.send(delivery(&url));
        d.send(delivery(&url));
        assert_eq!(d.held(), 2);
        assert_eq!(d.discard_held(), 2);
        d.send(delivery(&url));
        d.resume();
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn duplicates_and_drops_follow_the_options() {
        let (url, hits) = target(0).await;
        let d = Dispatcher::new(DeliveryOptions { duplicate_rate: 1.0, ..Default::default() });
        d.send(delivery(&url));
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        d.set_options(DeliveryOptions { drop_rate: 1.0, ..Default::default() });
        d.send(delivery(&url));
        d.wait_idle().await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(d.stats().dropped, 1);
    }
}
