//! What an API's rate-limit headers said last: how much of its budget is left. The pacer acts
//! on the same headers; this keeps them to show (the `hmsync doctor` report).

use std::sync::Mutex;
use std::time::Duration;

/// The rate-limit headers of one answer. Each part is `None` when the answer did not carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitReading {
    /// Requests allowed per `window` (HubSpot's `X-HubSpot-RateLimit-Max`, MailerLite's
    /// `X-RateLimit-Limit`).
    pub limit: Option<u64>,
    /// What is left of it now (`…-Remaining`).
    pub remaining: Option<u64>,
    pub window: Option<Duration>,
    /// HubSpot's daily allowance and what is left of it today (`X-HubSpot-RateLimit-Daily`,
    /// `-Daily-Remaining`; only on answers to static tokens).
    pub daily_limit: Option<u64>,
    pub daily_remaining: Option<u64>,
    /// When the answer came (epoch ms).
    pub at_ms: i64,
}

impl RateLimitReading {
    /// Whether the answer carried any rate-limit header at all.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.daily_limit.is_none() && self.daily_remaining.is_none()
    }
}

/// The last reading a client took; cheap to update on every answer.
#[derive(Debug, Default)]
pub struct LastReading(Mutex<Option<RateLimitReading>>);

impl LastReading {
    /// Keeps `reading` unless the answer carried no rate-limit header.
    pub fn record(&self, reading: RateLimitReading) {
        if !reading.is_empty() {
            *self.0.lock().expect("reading lock") = Some(reading);
        }
    }

    pub fn get(&self) -> Option<RateLimitReading> {
        *self.0.lock().expect("reading lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_rate_limit_headers_keeps_the_last_reading() {
        let last = LastReading::default();
        assert_eq!(last.get(), None);
        let seen = RateLimitReading { limit: Some(100), remaining: Some(97), at_ms: 5, ..Default::default() };
        last.record(seen);
        last.record(RateLimitReading { at_ms: 9, ..Default::default() });
        assert_eq!(last.get(), Some(seen));
    }
}
