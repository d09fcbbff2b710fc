//! Scans: the initial (historical) sync reads both sides in full; scheduled scans and "sync
//! now" are the safety net for missed webhooks (HubSpot: contacts modified since the watermark;
//! MailerLite has no "modified since", so its subscribers are paged and compared with what each
//! link last saw; linked subscribers outside the rule's groups or segments are read again by id).
//! A scan is a chain of bounded page messages through the connection's queue
//! group, so it is resumable and shares the connection's API budget with everything else.

use hmsync_core::{HubSpotRule, MailerLiteRule, MlStatus};
use hmsync_store::LinkKey;

use crate::api::MlSource;
use crate::engine::{Engine, EngineError, Report};
use crate::failpoint;
use crate::message::{ContactRef, Origin, ScanKind, ScanPart, SyncMessage};
use crate::state::{Lifecycle, LinkCounts, ScanRun, ScanSummary, SideProgress, counters};
use crate::sync::{Preloaded, hubspot_properties};

const STATUSES: [MlStatus; 5] =
    [MlStatus::Active, MlStatus::Unsubscribed, MlStatus::Unconfirmed, MlStatus::Bounced, MlStatus::Junk];

/// The MailerLite listings a rule's scan walks: group listings default to active members, so
/// a group rule (every status) is walked once per status.
pub fn mailerlite_sources(rule: &MailerLiteRule) -> Vec<MlSource> {
    match rule {
        MailerLiteRule::All => vec![MlSource::All],
        MailerLiteRule::Groups { group_ids } => {
            group_ids.iter().flat_map(|g| STATUSES.iter().map(move |s| MlSource::Group(g.clone(), *s))).collect()
        }
        MailerLiteRule::Segments { segment_ids } => segment_ids.iter().map(|s| MlSource::Segment(s.clone())).collect(),
    }
}

/// Links per page of the [`ScanPart::MailerLiteLinks`] part (a store read; only the linked
/// subscribers outside the rule among them are read from MailerLite, 50 per request).
const LINKS_PAGE: usize = 1000;

/// The parts of a scan, in order.
fn parts(kind: ScanKind, hubspot_rule: &HubSpotRule, mailerlite_rule: &MailerLiteRule) -> Vec<ScanPart> {
    let mut parts: Vec<ScanPart> =
        (0..mailerlite_sources(mailerlite_rule).len()).map(|i| ScanPart::MailerLite { source_index: i }).collect();
    if kind != ScanKind::Initial && !matches!(mailerlite_rule, MailerLiteRule::All) {
        // The rule's listings miss linked subscribers outside it; without a "modified since"
        // filter, they are read again by id.
        parts.push(ScanPart::MailerLiteLinks);
    }
    match (hubspot_rule, kind) {
        (HubSpotRule::All, _) => parts.push(ScanPart::HubSpot),
        (HubSpotRule::Lists { list_ids }, ScanKind::Initial) => {
            parts.extend((0..list_ids.len()).map(|i| ScanPart::HubSpotList { list_index: i }));
        }
        (HubSpotRule::Lists { list_ids }, _) => {
            parts.push(ScanPart::HubSpot);
            parts.extend((0..list_ids.len()).map(|i| ScanPart::HubSpotList { list_index: i }));
            parts.push(ScanPart::HubSpotLinks);
        }
    }
    parts
}

impl Engine {
    /// Starts a scan unless one is running (a run silent for too long counts as dead).
    pub(crate) async fn start_scan(&self, conn_id: &str, kind: ScanKind) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let now = self.now_ms();
        let message = SyncMessage::ScanStart { connection_id: conn_id.to_string(), kind };
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, &message).await? {
            return Ok(report);
        }
        let stale = self.settings.scan_stale_after.as_millis() as i64;
        if state.scan.as_ref().is_some_and(|r| now - r.last_page_at_ms < stale) {
            tracing::info!(connection = conn_id, "a scan is already running; this start is skipped");
            return Ok(Report::default());
        }
        if kind != ScanKind::Initial {
            // The safety net checks the real-time path too: a disabled, blocked or deleted
            // MailerLite webhook is repaired here (a failure is recorded, never fails the scan).
            self.check_mailerlite_webhooks(&conn).await?;
        }
        let parts = parts(kind, &conn.config.hubspot_rule, &conn.config.mailerlite_rule);
        let run_id = uuid::Uuid::now_v7().to_string();
        let expected = if kind == ScanKind::Initial {
            let ml = self.apis.mailerlite(&conn).await?;
            Some(ml.count().await?)
        } else {
            None
        };
        let first = SyncMessage::ScanPage {
            connection_id: conn_id.to_string(),
            run_id: run_id.clone(),
            part: parts[0].clone(),
            cursor: None,
        };
        self.update_state(conn_id, |s| {
            s.scan = Some(ScanRun {
                run_id: run_id.clone(),
                kind,
                started_at_ms: now,
                last_page_at_ms: now,
                hubspot: SideProgress::default(),
                mailerlite: SideProgress::default(),
                destructive: Default::default(),
                approved: false,
                expected,
                excluded_no_email: 0,
            });
        })
        .await?;
        self.enqueue(&[first]).await?;
        Ok(Report { enqueued: 1, ..Report::default() })
    }

    /// Processes one page of a scan and enqueues the next.
    pub(crate) async fn scan_page(
        &self,
        conn_id: &str,
        run_id: &str,
        part: &ScanPart,
        cursor: Option<&str>,
        message: &SyncMessage,
    ) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, message).await? {
            return Ok(report);
        }
        let Some(run) = state.scan.clone().filter(|r| r.run_id == run_id) else {
            tracing::info!(connection = conn_id, run_id, "page of a scan that is no longer running; skipped");
            return Ok(Report::default());
        };
        let config = &conn.config;
        let initial = run.kind == ScanKind::Initial;
        let mut report;
        let next_cursor: Option<String>;
        let records: u64;
        match part {
            ScanPart::MailerLite { source_index } => {
                let sources = mailerlite_sources(&config.mailerlite_rule);
                let source = &sources[*source_index];
                let ml = self.apis.mailerlite(&conn).await?;
                let page = ml.list(source, cursor).await?;
                records = page.records.len() as u64;
                let member = match source {
                    MlSource::All => None,
                    MlSource::Group(..) | MlSource::Segment(_) => Some(true),
                };
                let refs = page
                    .records
                    .iter()
                    .map(|r| ContactRef::MailerLite {
                        id: r.id.clone(),
                        snapshot: None,
                        member,
                        group: None,
                        structural: false,
                    })
                    .collect();
                let records_seen = page.records.clone();
                let pre = Preloaded { mailerlite: page.records, skip_unchanged: true, ..Preloaded::default() };
                report = self.sync_contacts(conn_id, refs, origin(initial), pre, message).await?;
                if !report.parked && !initial {
                    // Opens and clicks whose webhooks were lost show up as moved counts.
                    report.enqueued += self.engagement_from_scan(&conn, &records_seen).await?.min(1);
                }
                next_cursor = page.next;
            }
            ScanPart::HubSpot => {
                let schemas = conn.schemas.clone().unwrap_or_default();
                let props = hubspot_properties(&hmsync_core::Planner::new(config, &schemas));
                let hs = self.apis.hubspot(&conn).await?;
                let page = if initial {
                    hs.scan_all(cursor, &props).await?
                } else {
                    let since = state.hubspot_watermark_ms.unwrap_or(0);
                    hs.scan_modified(since, cursor, &props).await?
                };
                records = page.records.len() as u64;
                if initial
                    && cursor.is_none()
                    && let Some(total) = page.total
                {
                    // The HubSpot total is known from the first page: progress can show it.
                    self.update_state(conn_id, |s| {
                        if let Some(r) = s.scan.as_mut().filter(|r| r.run_id == run_id) {
                            r.expected = Some(r.expected.unwrap_or(0) + total);
                        }
                    })
                    .await?;
                }
                // Merges whose webhook was lost: the survivors name the contacts they absorbed.
                let mut refs = if initial { Vec::new() } else { self.repair_lost_merges(&conn, &page.records).await? };
                refs.extend(page.records.iter().map(|r| ContactRef::HubSpot {
                    id: r.id.clone(),
                    changes: Vec::new(),
                    structural: false,
                }));
                // After a full MailerLite pass of every subscriber, an unlinked contact has no
                // counterpart: no lookup by email is needed.
                let known_absent = initial && matches!(config.mailerlite_rule, MailerLiteRule::All);
                let pre = Preloaded {
                    hubspot: page.records,
                    mailerlite_known_absent: known_absent,
                    skip_unchanged: true,
                    ..Preloaded::default()
                };
                report = self.sync_contacts(conn_id, refs, origin(initial), pre, message).await?;
                next_cursor = page.next;
            }
            ScanPart::HubSpotList { list_index } => {
                let HubSpotRule::Lists { list_ids } = &config.hubspot_rule else {
                    return Err(EngineError::Permanent("list page for a connection without a list rule".into()));
                };
                let hs = self.apis.hubspot(&conn).await?;
                let (ids, next) = hs.list_members(&list_ids[*list_index], cursor).await?;
                records = ids.len() as u64;
                // Members already in scope are covered by the modified-contacts part.
                let keys: Vec<LinkKey> = ids.iter().map(|i| LinkKey::HubSpot(i.clone())).collect();
                let linked = self.store.find_links(conn_id, &keys).await?;
                let refs: Vec<ContactRef> = ids
                    .iter()
                    .filter(|id| {
                        initial
                            || !linked
                                .iter()
                                .any(|(k, l)| k == &LinkKey::HubSpot((*id).clone()) && l.hs_in_scope && !l.hs_deleted)
                    })
                    .map(|id| ContactRef::hubspot(id))
                    .collect();
                report = if refs.is_empty() {
                    Report::default()
                } else {
                    self.sync_contacts(conn_id, refs, origin(initial), Preloaded::default(), message).await?
                };
                next_cursor = next;
            }
            ScanPart::MailerLiteLinks => {
                let page = self.store.list_links(conn_id, cursor, LINKS_PAGE).await?;
                let ids: Vec<String> = page
                    .items
                    .iter()
                    .filter(|l| !l.ml_in_scope && !l.ml_deleted && !l.hs_deleted && l.hubspot_id.is_some())
                    .filter_map(|l| l.mailerlite_id.clone())
                    .collect();
                records = ids.len() as u64;
                report = if ids.is_empty() {
                    Report::default()
                } else {
                    let ml = self.apis.mailerlite(&conn).await?;
                    let found = ml.get_by_ids(&ids).await?;
                    let mut refs: Vec<ContactRef> = found
                        .iter()
                        .map(|r| ContactRef::MailerLite {
                            id: r.id.clone(),
                            snapshot: None,
                            member: None,
                            group: None,
                            structural: false,
                        })
                        .collect();
                    // Gone from MailerLite: the sync marks their links.
                    refs.extend(
                        ids.iter()
                            .filter(|id| !found.iter().any(|r| &r.id == *id))
                            .map(|id| ContactRef::mailerlite(id)),
                    );
                    let pre = Preloaded { mailerlite: found.clone(), skip_unchanged: true, ..Preloaded::default() };
                    let mut r = self.sync_contacts(conn_id, refs, Origin::Scan, pre, message).await?;
                    if !r.parked {
                        r.enqueued += self.engagement_from_scan(&conn, &found).await?.min(1);
                    }
                    r
                };
                next_cursor = page.next;
            }
            ScanPart::HubSpotLinks => {
                let page = self.store.list_links(conn_id, cursor, 100).await?;
                records = page.items.len() as u64;
                let ids: Vec<String> = page
                    .items
                    .iter()
                    .filter(|l| l.hs_in_scope && !l.hs_deleted)
                    .filter_map(|l| l.hubspot_id.clone())
                    .collect();
                let mut refs = Vec::new();
                if !ids.is_empty() {
                    let hs = self.apis.hubspot(&conn).await?;
                    let memberships = hs.memberships(&ids).await?;
                    for id in ids {
                        let lists = memberships.get(&id).cloned().unwrap_or_default();
                        if !config.hubspot_rule.matches(&lists) {
                            refs.push(ContactRef::hubspot(&id));
                        }
                    }
                }
                report = if refs.is_empty() {
                    Report::default()
                } else {
                    self.sync_contacts(conn_id, refs, Origin::Scan, Preloaded::default(), message).await?
                };
                next_cursor = page.next;
            }
        }
        if report.parked {
            return Ok(report);
        }
        self.failpoints.check(failpoint::AFTER_SCAN_PAGE_SYNCED)?;

        // The next page, the next part, or the end of the run.
        let all_parts = parts(run.kind, &config.hubspot_rule, &config.mailerlite_rule);
        let next = match next_cursor {
            Some(c) => Some((part.clone(), Some(c))),
            None => {
                all_parts.iter().position(|p| p == part).and_then(|i| all_parts.get(i + 1)).map(|p| (p.clone(), None))
            }
        };
        let now = self.now_ms();
        let hubspot_part = !matches!(part, ScanPart::MailerLite { .. } | ScanPart::MailerLiteLinks);
        if initial && records > 0 && !matches!(part, ScanPart::HubSpotLinks) {
            self.store.add_counters(conn_id, &[(counters::INITIAL_DONE, records as i64)]).await?;
            report.initial_records = records;
        }
        let excluded = report.excluded as u64;
        match next {
            Some((part, cursor)) => {
                let msg = SyncMessage::ScanPage {
                    connection_id: conn_id.to_string(),
                    run_id: run_id.to_string(),
                    part,
                    cursor,
                };
                self.enqueue(&[msg]).await?;
                report.enqueued += 1;
                self.update_state(conn_id, |s| {
                    if let Some(r) = s.scan.as_mut().filter(|r| r.run_id == run_id) {
                        r.last_page_at_ms = now;
                        r.excluded_no_email += excluded;
                        let side = if hubspot_part { &mut r.hubspot } else { &mut r.mailerlite };
                        side.pages += 1;
                        side.records += records;
                    }
                })
                .await?;
            }
            None => {
                let lag = self.settings.search_lag.as_millis() as i64;
                let links = self.count_link_states(conn_id).await?;
                self.update_state(conn_id, |s| {
                    let Some(r) = s.scan.take().filter(|r| r.run_id == run_id) else { return };
                    let total = r.hubspot.records + r.mailerlite.records + records;
                    s.last_scan = Some(ScanSummary {
                        run_id: r.run_id.clone(),
                        kind: r.kind,
                        started_at_ms: r.started_at_ms,
                        finished_at_ms: now,
                        records: total,
                        excluded_no_email: r.excluded_no_email + excluded,
                        links,
                    });
                    s.hubspot_watermark_ms = Some(r.started_at_ms - lag);
                    if r.kind == ScanKind::Initial {
                        s.lifecycle = Lifecycle::Continuous;
                        s.initial_finished_at_ms = Some(now);
                    }
                })
                .await?;
                tracing::info!(connection = conn_id, run_id, "scan finished");
            }
        }
        Ok(report)
    }
}

impl Engine {
    /// Counts the links by state (the status page's counts, refreshed by every scan).
    pub async fn count_link_states(&self, conn_id: &str) -> Result<LinkCounts, EngineError> {
        let mut counts = LinkCounts::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_links(conn_id, after.as_deref(), 1000).await?;
            for l in &page.items {
                counts.total += 1;
                counts.complete += l.is_complete() as u64;
                counts.hubspot_in_scope += (l.hs_in_scope && !l.hs_deleted) as u64;
                counts.mailerlite_in_scope += (l.ml_in_scope && !l.ml_deleted) as u64;
                counts.deleted_in_hubspot += l.hs_deleted as u64;
                counts.deleted_in_mailerlite += l.ml_deleted as u64;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(counts),
            }
        }
    }
}

fn origin(initial: bool) -> Origin {
    if initial { Origin::Initial } else { Origin::Scan }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_rule_walks_every_status_of_every_group() {
        let sources = mailerlite_sources(&MailerLiteRule::Groups { group_ids: vec!["a".into(), "b".into()] });
        assert_eq!(sources.len(), 10);
        assert!(sources.contains(&MlSource::Group("b".into(), MlStatus::Junk)));
        assert_eq!(mailerlite_sources(&MailerLiteRule::All), vec![MlSource::All]);
    }

    #[test]
    fn scans_after_the_initial_sync_read_the_linked_subscribers_outside_a_group_rule_again() {
        let groups = MailerLiteRule::Groups { group_ids: vec!["a".into()] };
        let p = parts(ScanKind::Scheduled, &HubSpotRule::All, &groups);
        assert_eq!(p[5..], [ScanPart::MailerLiteLinks, ScanPart::HubSpot]);
        assert!(!parts(ScanKind::Initial, &HubSpotRule::All, &groups).contains(&ScanPart::MailerLiteLinks));
        assert!(!parts(ScanKind::Manual, &HubSpotRule::All, &MailerLiteRule::All).contains(&ScanPart::MailerLiteLinks));
    }

    #[test]
    fn scans_read_mailerlite_first_then_hubspot() {
        let p = parts(ScanKind::Initial, &HubSpotRule::All, &MailerLiteRule::All);
        assert_eq!(p, vec![ScanPart::MailerLite { source_index: 0 }, ScanPart::HubSpot]);
        let lists = HubSpotRule::Lists { list_ids: vec!["1".into(), "2".into()] };
        let p = parts(ScanKind::Scheduled, &lists, &MailerLiteRule::All);
        assert_eq!(
            p,
            vec![
                ScanPart::MailerLite { source_index: 0 },
                ScanPart::HubSpot,
                ScanPart::HubSpotList { list_index: 0 },
                ScanPart::HubSpotList { list_index: 1 },
                ScanPart::HubSpotLinks
            ]
        );
    }
}
