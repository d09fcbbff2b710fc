//! Client-side pacing and retry policy shared by the HubSpot and MailerLite clients, and the
//! wall clock ([`now_ms`]) every crate of hmsync reads.
//!
//! The two APIs' rate limits are the real bottleneck of a sync, so each client keeps its own
//! account under every rate-limit bucket *before* sending ([`Pacer`]), adopts what the server
//! says about the remaining budget (other integrations may share it), honours `Retry-After`,
//! and retries transient failures with bounded, jittered backoff ([`RetryPolicy`]), never
//! waiting longer in-process than the work's time [`budget`] allows.

pub mod budget;
mod clock;
mod headroom;
mod pacer;
mod retry;

pub use clock::now_ms;
pub use headroom::{LastReading, RateLimitReading};
pub use pacer::{Bucket, Pacer};
pub use retry::{MAX_RETRY_AFTER, RetryPolicy, parse_retry_after};
