//! scheduled-scan: the schedule's tick (an EventBridge rule, `rate(2 hours)` by default) enqueues
//! a scan start for every active connection that has no scan running. The scans themselves run
//! in contact-sync, one page per message, so they share each connection's API budget.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hmsync_engine::{Engine, EngineError};
use serde::Serialize;

/// What a tick did (the function's answer, visible in the invocation log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub scans_enqueued: usize,
}

/// Handles one tick. An error fails the invocation, and EventBridge retries it. A connection
/// whose scan start was enqueued before the error may get a second start from the retry;
/// contact-sync skips a start while that connection's scan is running.
pub async fn handle(engine: &Engine, event: EventBridgeEvent) -> Result<Tick, EngineError> {
    let scans_enqueued = engine.schedule_tick().await?;
    tracing::info!(
        event_id = event.id.as_deref().unwrap_or_default(),
        scheduled_at = event.time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        scans_enqueued,
        "schedule tick"
    );
    Ok(Tick { scans_enqueued })
}
