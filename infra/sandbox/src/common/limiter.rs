use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Shrinks every rate-limit window by the same factor, so a benchmark keeps the real
/// requests-per-window shape but runs `factor` times faster. `TimeScale(1.0)` is real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

impl Default for TimeScale {
    fn default() -> Self {
        Self(1.0)
    }
}

impl TimeScale {
    pub fn scale(&self, real: Duration) -> Duration {
        if self.0 <= 0.0 || !self.0.is_finite() {
            return real;
        }
        real.div_f64(self.0)
    }
}

/// Server-side sliding window: at most `limit` accepted requests in any `window`.
#[derive(Debug)]
pub struct SlidingWindowLimiter {
    limit: u32,
    window: Duration,
    hits: VecDeque<Instant>,
}

/// The outcome of [`SlidingWindowLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Accepted; `remaining` requests are left in the current window.
    Allowed { remaining: u32 },
    /// Refused; the next request fits after `retry_after`.
    Limited { retry_after: Duration },
}

impl SlidingWindowLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, hits: VecDeque::new() }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.hits.front() {
            if now.duration_since(t) >= self.window {
                self.hits.pop_front();
            } else {
                break;
            }
        }
    }

    /// Counts a request if it fits.
    pub fn check(&mut self, now: Instant) -> Admission {
        self.prune(now);
        if (self.hits.len() as u32) < self.limit {
            self.hits.push_back(now);
            Admission::Allowed { remaining: self.limit - self.hits.len() as u32 }
        } else {
            let oldest = *self.hits.front().expect("limit > 0 when full");
            Admission::Limited { retry_after: (oldest + self.window).saturating_duration_since(now) }
        }
    }

    /// Requests left in the current window without counting one.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.limit.saturating_sub(self.hits.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_says_when_to_come_back() {
        let mut l = SlidingWindowLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check(t0), Admission::Allowed { remaining: 1 });
        assert_eq!(l.check(t0 + Duration::from_secs(3)), Admission::Allowed { remaining: 0 });
        assert_eq!(l.check(t0 + Duration::from_secs(4)), Admission::Limited { retry_after: Duration::from_secs(6) });
        assert_eq!(l.check(t0 + Duration::from_secs(10)), Admission::Allowed { remaining: 0 });
    }

    #[test]
    fn time_scale_divides_windows() {
        assert_eq!(TimeScale(10.0).scale(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(TimeScale::default().scale(Duration::from_secs(10)), Duration::from_secs(10));
    }
}
