//! Engagement sync: MailerLite opens, clicks, unsubscribes, bounces and spam reports recorded on
//! the HubSpot contact as properties (group "MailerLite") and, when the connection asks, as
//! notes. Events arrive by webhook (near-instant) or from the activity log when a scan sees a
//! subscriber's counts move without them; each is recorded once. Events of a contact that is not
//! linked yet wait and are recorded when the link is made.

use std::collections::{BTreeMap, HashMap};

use hmsync_core::{EngagementEvent, Link, record_events};
use hmsync_store::{LinkKey, StoreError};

use crate::api::{HsNote, HsWrite, ItemErrorKind, MlRecord};
use crate::engine::{Engine, EngineError, Report};
use crate::message::SyncMessage;
use crate::state::counters;

/// At most this many activity logs are read per scan page (one request each); the rest of the
/// subscribers whose counts moved are read by later scans (they still differ from the link).
const ACTIVITY_READS_PER_PAGE: usize = 20;

/// The counter of events recorded on one UTC day.
pub fn day_counter(now_ms: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let day = dt.format(time::macros::format_description!("[year]-[month]-[day]")).expect("a date has every component");
    format!("{}:{day}", counters::ENGAGEMENT_EVENTS)
}

impl Engine {
    /// Records engagement events (one message: a webhook delivery, a scan's findings, or events
    /// that waited for their link).
    pub(crate) async fn record_engagement(
        &self,
        conn_id: &str,
        events: &[EngagementEvent],
        message: &SyncMessage,
    ) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, message).await? {
            return Ok(report);
        }
        let settings = &conn.config.engagement;
        if !settings.enabled || events.is_empty() {
            return Ok(Report::default());
        }
        let keys: Vec<LinkKey> = events.iter().map(|e| LinkKey::MailerLite(e.subscriber_id.clone())).collect();
        let links: HashMap<String, Link> =
            self.store.find_links(conn_id, &keys).await?.into_iter().map(|(k, l)| (k.value().to_string(), l)).collect();

        // Events of contacts not linked yet wait for their link.
        let mut waiting: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        let mut by_link: BTreeMap<String, (Link, Vec<EngagementEvent>)> = BTreeMap::new();
        for e in events {
            match links.get(&e.subscriber_id) {
                Some(l) => by_link.entry(l.id.clone()).or_insert_with(|| (l.clone(), Vec::new())).1.push(e.clone()),
                None => {
                    if let Some(email) = hmsync_core::normalize_email(&e.email) {
                        waiting.entry(email).or_default().push(serde_json::to_value(e).expect("events serialize"));
                    }
                }
            }
        }
        for (email, events) in &waiting {
            self.store.put_pending_events(conn_id, email, events, self.settings.event_key_ttl).await?;
        }

        let mut report = Report::default();
        let mut updates: Vec<(Link, hmsync_core::EngagementUpdate)> = Vec::new();
        for (_, (link, events)) in by_link {
            let update = record_events(&link.engagement, &events, settings.notes);
            if update.state != link.engagement {
                updates.push((link, update));
            }
        }
        if updates.is_empty() {
            return Ok(report);
        }
        let hs = self.apis.hubspot(&conn).await?;
        let writes: Vec<(usize, HsWrite)> = updates
            .iter()
            .enumerate()
            .filter(|(_, (l, u))| !u.properties.is_empty() && l.hubspot_id.is_some() && !l.hs_deleted)
            .map(|(i, (l, u))| {
                (i, HsWrite { key: l.hubspot_id.clone().unwrap_or_default(), properties: u.properties.clone() })
            })
            .collect();
        let mut failed = vec![false; updates.len()];
        if !writes.is_empty() {
            let inputs: Vec<HsWrite> = writes.iter().map(|(_, w)| w.clone()).collect();
            for ((i, _), result) in writes.iter().zip(hs.update_contacts(&inputs).await?) {
                if let Err(e) = result {
                    failed[*i] = true;
                    // A contact deleted meanwhile keeps its events in the link state only.
                    if !matches!(e.kind, ItemErrorKind::NotFound) {
                        let (link, _) = &updates[*i];
                        let mut err = hmsync_store::ContactError::new(
                            &link.id,
                            vec![hmsync_store::ContactProblem {
                                side: hmsync_core::Side::HubSpot,
                                field: e.field.clone(),
                                message: format!("Engagement could not be recorded: {}", e.message),
                                action: e.action.clone(),
                                api_message: e.api_message.clone(),
                                refused: Default::default(),
                            }],
                        );
                        err.email = Some(link.email.clone());
                        err.hubspot_id = link.hubspot_id.clone();
                        err.mailerlite_id = link.mailerlite_id.clone();
                        self.store.set_error(conn_id, &err).await?;
                        report.errors += 1;
                    }
                }
            }
        }
        if settings.notes {
            let notes: Vec<HsNote> = updates
                .iter()
                .enumerate()
                .filter(|(i, (l, _))| !failed[*i] && l.hubspot_id.is_some() && !l.hs_deleted)
                .flat_map(|(_, (l, u))| {
                    let contact = l.hubspot_id.clone().unwrap_or_default();
                    u.notes.iter().map(move |n| HsNote {
                        contact_id: contact.clone(),
                        timestamp_ms: n.at_ms,
                        body: n.body.clone(),
                    })
                })
                .collect();
            if !notes.is_empty() {
                for r in hs.create_notes(&notes).await? {
                    if let Err(e) = r {
                        tracing::warn!(connection = conn_id, error = %e.message, "an engagement note was refused");
                    }
                }
            }
        }
        let now = self.now_ms();
        let mut recorded = 0usize;
        for (i, (link, update)) in updates.into_iter().enumerate() {
            if failed[i] {
                continue;
            }
            recorded += update.recorded;
            let mut next = link.clone();
            next.engagement = update.state;
            match self.store.put_link(conn_id, &next, Some(&link)).await {
                Ok(_) => {}
                Err(e @ StoreError::VersionConflict { .. }) => {
                    return Err(EngineError::Retry { message: e.to_string(), after: None });
                }
                Err(e) => return Err(e.into()),
            }
            report.written += 1;
        }
        if recorded > 0 {
            let day = day_counter(now);
            self.store
                .add_counters(
                    conn_id,
                    &[(counters::ENGAGEMENT_EVENTS, recorded as i64), (day.as_str(), recorded as i64)],
                )
                .await?;
        }
        report.contacts = recorded;
        Ok(report)
    }

    /// Events that waited for a link made in this batch are recorded now.
    pub(crate) async fn release_pending_events(&self, conn_id: &str, emails: &[String]) -> Result<usize, EngineError> {
        let mut events: Vec<EngagementEvent> = Vec::new();
        for email in emails {
            for v in self.store.take_pending_events(conn_id, email).await? {
                if let Ok(e) = serde_json::from_value::<EngagementEvent>(v) {
                    events.push(e);
                }
            }
        }
        if events.is_empty() {
            return Ok(0);
        }
        let n = events.len();
        // New work even if an earlier message (the webhook that parked these events) had the
        // same content: a content dedup id would make the queue drop it.
        self.enqueue_fresh(&SyncMessage::Engagement { connection_id: conn_id.to_string(), events }).await?;
        Ok(n)
    }

    /// The scan's safety net: subscribers whose opens or clicks moved beyond what the link
    /// recorded (a webhook was lost) get their activity log read and recorded.
    pub(crate) async fn engagement_from_scan(
        &self,
        conn: &hmsync_store::Connection,
        records: &[MlRecord],
    ) -> Result<usize, EngineError> {
        if !conn.config.engagement.enabled || records.is_empty() {
            return Ok(0);
        }
        let keys: Vec<LinkKey> = records.iter().map(|r| LinkKey::MailerLite(r.id.clone())).collect();
        let links: HashMap<String, Link> = self
            .store
            .find_links(&conn.id, &keys)
            .await?
            .into_iter()
            .map(|(k, l)| (k.value().to_string(), l))
            .collect();
        let moved: Vec<(&MlRecord, &Link)> = records
            .iter()
            .filter_map(|r| links.get(&r.id).map(|l| (r, l)))
            .filter(|(r, l)| r.opens_count > l.engagement.opens || r.clicks_count > l.engagement.clicks)
            .collect();
        if moved.is_empty() {
            return Ok(0);
        }
        let ml = self.apis.mailerlite(conn).await?;
        let mut events: Vec<EngagementEvent> = Vec::new();
        for (r, _) in moved.iter().take(ACTIVITY_READS_PER_PAGE) {
            let totals = |mut e: EngagementEvent| {
                e.opens_count = Some(r.opens_count);
                e.clicks_count = Some(r.clicks_count);
                e
            };
            events.extend(ml.activity(&r.id, &r.email, 100).await?.into_iter().map(totals));
        }
        if events.is_empty() {
            return Ok(0);
        }
        let n = events.len();
        self.enqueue_fresh(&SyncMessage::Engagement { connection_id: conn.id.clone(), events }).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_counter_names_the_utc_day() {
        assert_eq!(day_counter(1_764_547_200_000), "engagement_events:2025-12-01");
    }
}
