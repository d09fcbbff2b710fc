//! The connection's hourly counters: what each handled message did (records written in each
//! app, contacts that got an error, messages that failed, API requests, initial-sync progress),
//! added once per message, and read back as the status page's charts.

use std::collections::BTreeMap;

use hmsync_store::{HOUR_MS, HourCounters};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, Report};

/// The names of the hourly counters.
pub mod names {
    pub const WRITTEN_HUBSPOT: &str = "written_hubspot";
    pub const WRITTEN_MAILERLITE: &str = "written_mailerlite";
    pub const ERRORS: &str = "errors";
    pub const FAILED_MESSAGES: &str = "failed_messages";
    pub const REQUESTS_HUBSPOT: &str = "requests_hubspot";
    pub const REQUESTS_MAILERLITE: &str = "requests_mailerlite";
    pub const INITIAL_RECORDS: &str = "initial_records";
}

/// The most hours one read returns (two weeks).
pub const MAX_HOURS: u32 = 14 * 24;

/// One hour of a connection's activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HourActivity {
    /// When the hour starts (epoch milliseconds, UTC).
    pub hour_ms: u64,
    /// Records written in HubSpot (created or updated).
    pub written_hubspot: u64,
    /// Records written in MailerLite (created, updated, or moved in or out of the target group).
    pub written_mailerlite: u64,
    /// Contacts that got (or kept) an error.
    pub errors: u64,
    /// Queue messages that failed and come back later (outages, rate limits, bugs).
    pub failed_messages: u64,
    /// Requests sent to each API.
    pub requests_hubspot: u64,
    pub requests_mailerlite: u64,
    /// Records the initial sync read.
    pub initial_records: u64,
}

/// Each app's request limit per hour, as hmsync paces itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestLimits {
    /// HubSpot's burst limit (per 10 seconds) over an hour. The portal's daily limit applies too.
    pub hubspot_per_hour: u64,
    /// MailerLite's per-minute limit over an hour.
    pub mailerlite_per_hour: u64,
}

/// A connection's activity over the last hours, with the limits to read requests against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    /// One entry per hour, oldest first, the current hour last (zeros where nothing happened).
    pub hours: Vec<HourActivity>,
    pub limits: RequestLimits,
}

impl HourActivity {
    fn of(hour: &HourCounters) -> Self {
        let get = |name: &str| hour.counters.get(name).copied().unwrap_or(0).max(0) as u64;
        Self {
            hour_ms: hour.hour_ms,
            written_hubspot: get(names::WRITTEN_HUBSPOT),
            written_mailerlite: get(names::WRITTEN_MAILERLITE),
            errors: get(names::ERRORS),
            failed_messages: get(names::FAILED_MESSAGES),
            requests_hubspot: get(names::REQUESTS_HUBSPOT),
            requests_mailerlite: get(names::REQUESTS_MAILERLITE),
            initial_records: get(names::INITIAL_RECORDS),
        }
    }
}

/// The deltas one handled message adds to its hour.
pub fn message_deltas(outcome: Result<&Report, &EngineError>, requests: (u64, u64)) -> Vec<(&'static str, i64)> {
    let mut deltas = Vec::new();
    let mut add = |name: &'static str, value: u64| {
        if value > 0 {
            deltas.push((name, value.min(i64::MAX as u64) as i64));
        }
    };
    match outcome {
        Ok(r) => {
            add(names::WRITTEN_HUBSPOT, r.written_hubspot as u64);
            add(names::WRITTEN_MAILERLITE, r.written_mailerlite as u64);
            add(names::ERRORS, r.errors as u64);
            add(names::INITIAL_RECORDS, r.initial_records);
        }
        Err(_) => add(names::FAILED_MESSAGES, 1),
    }
    add(names::REQUESTS_HUBSPOT, requests.0);
    add(names::REQUESTS_MAILERLITE, requests.1);
    deltas
}

impl Engine {
    /// Adds what a handled message did to its connection's counters of this hour. `before` is
    /// what the connection's clients had sent when the message started. A failure to store the
    /// counters is logged, not returned: the message's work is done and must not run again for
    /// a chart.
    pub(crate) async fn count_hour(&self, conn_id: &str, outcome: Result<&Report, &EngineError>, before: (u64, u64)) {
        let after = self.apis.requests_sent(conn_id);
        let requests = (after.0.saturating_sub(before.0), after.1.saturating_sub(before.1));
        let deltas = message_deltas(outcome, requests);
        if deltas.is_empty() {
            return;
        }
        let now = self.now_ms().max(0) as u64;
        let hour = now / HOUR_MS * HOUR_MS;
        if let Err(e) = self.store.add_hourly(conn_id, hour, &deltas, self.settings.hourly_ttl).await {
            tracing::warn!(connection = conn_id, error = %e, "could not add to the hourly counters");
        }
    }

    /// The connection's activity in the last `hours` hours (1 to [`MAX_HOURS`]; the current
    /// hour included).
    pub async fn activity(&self, conn_id: &str, hours: u32) -> Result<Activity, EngineError> {
        self.connection(conn_id).await?;
        let hours = u64::from(hours.clamp(1, MAX_HOURS));
        let now = self.now_ms().max(0) as u64;
        let last = now / HOUR_MS * HOUR_MS;
        let first = last.saturating_sub((hours - 1) * HOUR_MS);
        let stored: BTreeMap<u64, HourActivity> = self
            .store
            .read_hourly(conn_id, first, last)
            .await?
            .iter()
            .map(|h| (h.hour_ms, HourActivity::of(h)))
            .collect();
        let hours = (0..hours)
            .map(|i| first + i * HOUR_MS)
            .map(|hour_ms| stored.get(&hour_ms).cloned().unwrap_or(HourActivity { hour_ms, ..HourActivity::default() }))
            .collect();
        let (hubspot_per_hour, mailerlite_per_hour) = self.apis.limits_per_hour();
        Ok(Activity { hours, limits: RequestLimits { hubspot_per_hour, mailerlite_per_hour } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_adds_what_it_did_and_nothing_for_zeros() {
        let report = Report { written_hubspot: 3, errors: 1, initial_records: 200, ..Report::default() };
        assert_eq!(
            message_deltas(Ok(&report), (4, 0)),
            vec![
                (names::WRITTEN_HUBSPOT, 3),
                (names::ERRORS, 1),
                (names::INITIAL_RECORDS, 200),
                (names::REQUESTS_HUBSPOT, 4)
            ]
        );
        let failed = EngineError::Permanent("x".into());
        assert_eq!(
            message_deltas(Err(&failed), (0, 2)),
            vec![(names::FAILED_MESSAGES, 1), (names::REQUESTS_MAILERLITE, 2)]
        );
        assert!(message_deltas(Ok(&Report::default()), (0, 0)).is_empty());
    }
}
