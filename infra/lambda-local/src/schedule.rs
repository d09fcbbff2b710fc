//! EventBridge's scheduled events: what a `Schedule` event of the template (an EventBridge rule)
//! sends the function on each tick.

use serde_json::{Value, json};

/// The event of one tick of the rule `rule_arn`.
pub fn scheduled_event(rule_arn: &str, at: time::OffsetDateTime) -> Value {
    let time = at
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time,
        "region": "us-east-1",
        "resources": [rule_arn],
        "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_an_eventbridge_scheduled_event() {
        let at = time::macros::datetime!(2026-12-07 10:00:00.5 UTC);
        let e = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/hmsync-scan", at);
        assert_eq!(e["time"], "2026-12-07T10:00:00Z");
        let parsed: aws_lambda_events::eventbridge::EventBridgeEvent = serde_json::from_value(e).unwrap();
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert_eq!(parsed.source, "aws.events");
    }
}
