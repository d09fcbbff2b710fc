use std::time::{Duration, SystemTime};

/// Bounded exponential backoff with full jitter for transient failures (5xx, timeouts,
/// connection errors). Bounded so that a failing API turns into a failed message that comes
/// back later, never into a request that retries forever or an outcome that is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// A policy for tests: same number of attempts, delays in milliseconds.
    pub fn fast(max_attempts: u32) -> Self {
        Self { max_attempts, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(20) }
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay before attempt `attempt + 1`: uniform in `[0, min(max, base * 2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { fastrand::u64(0..=nanos) })
    }
}

/// The longest `Retry-After` taken at its word: HubSpot documents up to 24 hours (477
/// "Migration in Progress"); anything longer, or unrepresentable, is read as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses a `Retry-After` header: delta-seconds (MailerLite, HubSpot) or an HTTP date. Never
/// panics: a negative, non-numeric or `NaN` value is no answer (`None`, the caller's own backoff
/// applies), a huge one is capped at [`MAX_RETRY_AFTER`], and a date in the past means now.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let p =
            RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for attempt in 1..10 {
            let cap = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(p.delay(attempt) <= cap);
            }
        }
        assert!(p.should_retry(9));
        assert!(!p.should_retry(10));
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("119"), Some(Duration::from_secs(119)));
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_never_panics_on_extreme_values() {
        assert_eq!(parse_retry_after("1e300"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("1.8e19"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("inf"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("-0.5"), None);
        assert_eq!(parse_retry_after("-1e300"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("nan"), None);
        assert_eq!(parse_retry_after("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("86401"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("5e-324"), Some(Duration::ZERO));
    }
}
