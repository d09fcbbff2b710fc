//! Logs as one JSON object per line (CloudWatch Logs Insights reads the fields), without ANSI
//! colours, at the level `RUST_LOG` asks for (default `info`). Timestamps stay in: CloudWatch's
//! own ingestion time is not when the event happened.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Calling it again (tests) leaves the first one in place.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
