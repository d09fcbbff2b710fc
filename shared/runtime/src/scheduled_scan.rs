//! scheduled-scan: the schedule's tick (an EventBridge rule, `rate(2 hours)` by default) ends
//! the waits for API limits that are over and enqueues a scan start for every active connection
//! that has no scan running. The scans themselves run in contact-sync, one page per message, so
//! they share each connection's API budget.

use aws_lambda_events::eventbridge::EventBridgeEvent;
pub use hmsync_engine::Tick;
use hmsync_engine::{Engine, EngineError};

/// Handles one tick. Each connection is handled on its own: one whose part fails is logged with
/// its error and counted in `failures`, and the others still get their scans. The invocation
/// fails only when the connections cannot be listed (then EventBridge retries it; a connection
/// whose scan start was enqueued before may get a second start, which contact-sync skips while
/// its scan runs).
pub async fn handle(engine: &Engine, event: EventBridgeEvent) -> Result<Tick, EngineError> {
    let tick = engine.schedule_tick().await?;
    let event_id = event.id.as_deref().unwrap_or_default();
    let scheduled_at = event.time.map(|t| t.to_rfc3339()).unwrap_or_default();
    if tick.failures > 0 {
        tracing::error!(
            event_id,
            scheduled_at,
            scans_enqueued = tick.scans_enqueued,
            waits_released = tick.waits_released,
            failures = tick.failures,
            "schedule tick: some connections failed (each is logged above)"
        );
    } else {
        tracing::info!(
            event_id,
            scheduled_at,
            scans_enqueued = tick.scans_enqueued,
            waits_released = tick.waits_released,
            "schedule tick"
        );
    }
    Ok(tick)
}
