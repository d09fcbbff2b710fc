//! Syncing a batch of contacts: coalesce the references, drop echoes, read what is needed in
//! bulk, plan each contact with `hmsync-core`, write with the batch endpoints, then store links,
//! errors, history and the meter.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hmsync_core::{
    FieldMapping, HubSpotContact, HubSpotObject, HubSpotRule, Link, MailerLiteRule, MailerLiteSubscriber, MlStatus,
    Phase, Plan, Planner, SafetyCounters, Side, engagement, normalize_email,
};
use hmsync_store::{ContactError, ContactProblem, HistoryEntry, LinkKey, StoreError};
use serde_json::Value;

use crate::api::{HsRecord, HsWrite, ItemError, ItemErrorKind, MlOp, MlRecord};
use crate::engine::{Engine, EngineError, Report};
use crate::failpoint;
use crate::message::{ContactRef, Origin, SyncMessage};
use crate::state::{ConnectionState, Lifecycle, Pause, counters};

/// Records a scan page already read, so that syncing them costs no second read.
#[derive(Debug, Clone, Default)]
pub struct Preloaded {
    pub hubspot: Vec<HsRecord>,
    pub mailerlite: Vec<MlRecord>,
    /// Every MailerLite subscriber that could be a counterpart was seen (and linked) already, so
    /// an unlinked HubSpot contact has none: no lookup by email needed.
    pub mailerlite_known_absent: bool,
    /// Skip linked records whose modification time equals the link's (nothing changed).
    pub skip_unchanged: bool,
}

/// Whether building the units may re-key links for the HubSpot merges its reads reveal (never
/// in a preview, which must not write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeRepair {
    On,
    Off,
}

/// One contact being synced: its link (if any) and both records as read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unit {
    pub(crate) link: Option<Link>,
    pub(crate) hs_id: Option<String>,
    pub(crate) ml_id: Option<String>,
    pub(crate) hs: Option<HsRecord>,
    pub(crate) ml: Option<MlRecord>,
    /// Membership of the rule's groups/segments as a scan listed it.
    pub(crate) ml_member: Option<bool>,
    /// A reference said the record was created, deleted, restored or merged.
    pub(crate) structural: bool,
    pub(crate) plan: Option<Plan>,
    pub(crate) problems: Vec<ContactProblem>,
    /// Problems recorded before whose refused values the plan would have sent again unchanged:
    /// those values were withheld, and the problems stand.
    pub(crate) held: Vec<ContactProblem>,
    /// Some write failed: nothing is stored for this contact (it is planned again next time).
    pub(crate) failed: bool,
    /// Come back to this contact in a later message.
    pub(crate) retry: bool,
    pub(crate) written_hs: Option<HsRecord>,
    pub(crate) written_ml: Option<MlRecord>,
    /// The records as the planner sees them (with rule scope and company).
    pub(crate) hs_contact: Option<HubSpotContact>,
    pub(crate) ml_subscriber: Option<MailerLiteSubscriber>,
}

impl Unit {
    fn error_key(&self) -> String {
        if let Some(l) = &self.link
            && !l.id.is_empty()
        {
            return l.id.clone();
        }
        match (&self.hs_id, &self.ml_id) {
            (Some(h), _) => format!("hubspot:{h}"),
            (None, Some(m)) => format!("mailerlite:{m}"),
            (None, None) => "unknown".into(),
        }
    }

    pub(crate) fn email(&self) -> Option<String> {
        self.hs
            .as_ref()
            .and_then(|h| h.property("email").and_then(normalize_email))
            .or_else(|| self.ml.as_ref().and_then(|m| normalize_email(&m.email)))
            .or_else(|| self.link.as_ref().map(|l| l.email.clone()))
    }

    fn retry_ref(&self) -> Option<ContactRef> {
        if let Some(id) = &self.hs_id {
            return Some(ContactRef::hubspot(id));
        }
        self.ml_id.as_ref().map(|id| ContactRef::mailerlite(id))
    }
}

/// Coalesces references to the same record, keeping every hint.
pub(crate) fn coalesce(refs: Vec<ContactRef>) -> Vec<ContactRef> {
    let mut out: Vec<ContactRef> = Vec::new();
    let mut index: HashMap<(Side, String), usize> = HashMap::new();
    for r in refs {
        let key = (r.side(), r.id().to_string());
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(r);
            }
            Some(&i) => match (&mut out[i], r) {
                (
                    ContactRef::HubSpot { changes, structural, .. },
                    ContactRef::HubSpot { changes: more, structural: s, .. },
                ) => {
                    changes.extend(more);
                    *structural |= s;
                }
                (
                    ContactRef::MailerLite { snapshot, member, group, structural, .. },
                    ContactRef::MailerLite { snapshot: snap, member: mem, group: grp, structural: s, .. },
                ) => {
                    // Two different hints about one subscriber (reordered deliveries) cannot both
                    // be checked against the link; looking at it is the safe choice.
                    if (snap.is_some() && snapshot.is_some() && snap != *snapshot)
                        || (grp.is_some() && group.is_some() && grp != *group)
                    {
                        *structural = true;
                    }
                    if snap.is_some() {
                        *snapshot = snap;
                    }
                    if mem.is_some() {
                        *member = mem;
                    }
                    if grp.is_some() {
                        *group = grp;
                    }
                    *structural |= s;
                }
                _ => unreachable!("keyed by side"),
            },
        }
    }
    out
}

/// The HubSpot properties a sync reads.
pub(crate) fn hubspot_properties(planner: &Planner) -> Vec<String> {
    let mut props: BTreeSet<String> = [
        "email",
        "hs_email_optout",
        "createdate",
        "lastmodifieddate",
        engagement::STATUS,
        crate::lifecycle::MERGED_IDS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (m, _) in planner.conversions() {
        match m.hubspot_object {
            HubSpotObject::Contact => {
                props.insert(m.hubspot_property.clone());
            }
            HubSpotObject::Company => {
                props.insert("associatedcompanyid".into());
            }
        }
    }
    props.into_iter().collect()
}

fn company_properties(planner: &Planner) -> Vec<String> {
    planner
        .conversions()
        .filter(|(m, _)| m.hubspot_object == HubSpotObject::Company)
        .map(|(m, _)| m.hubspot_property.clone())
        .collect()
}

/// Whether a HubSpot webhook's property changes are all what the link already holds (our own
/// write coming back, or a property the sync does not map).
fn hubspot_echo(planner: &Planner, link: &Link, changes: &[(String, String)]) -> bool {
    !changes.is_empty()
        && changes.iter().all(|(property, value)| match property.as_str() {
            "email" => normalize_email(value).as_deref() == Some(link.email.as_str()),
            "hs_email_optout" => value.eq_ignore_ascii_case("true") == link.hs_opted_out,
            "lastmodifieddate" | "hs_lastmodifieddate" => true,
            p if p.starts_with("mailerlite_") => true,
            p => planner
                .conversions()
                .filter(|(m, _)| m.hubspot_object == HubSpotObject::Contact && m.hubspot_property == p)
                .all(|(m, conv)| {
                    let base = link.bases.get(&m.key()).and_then(|b| b.hubspot.clone());
                    conv.norm_hs(Some(value)) == base
                }),
        })
}

/// Whether a MailerLite webhook's subscriber equals what the link holds in every synced respect.
fn mailerlite_echo(planner: &Planner, link: &Link, snapshot: &Value) -> bool {
    let Some(obj) = snapshot.as_object() else { return false };
    let email_same = obj.get("email").and_then(Value::as_str).and_then(normalize_email).as_deref() == Some(&link.email);
    let status_same = obj.get("status").and_then(Value::as_str).and_then(MlStatus::parse) == link.ml_status;
    let fields = obj.get("fields").and_then(Value::as_object);
    let fields_same = planner.conversions().all(|(m, conv): (&FieldMapping, _)| {
        let base = link.bases.get(&m.key()).and_then(|b| b.mailerlite.clone());
        match fields {
            Some(f) => conv.norm_ml(f.get(&m.mailerlite_field).unwrap_or(&Value::Null)) == base,
            None => false,
        }
    });
    email_same && status_same && fields_same
}

/// Whether a group event only says what the link already holds: the target group membership
/// the sync itself maintains, and no change of the rule's scope.
fn group_echo(config: &hmsync_core::ConnectionConfig, link: &Link, group: &str, added: bool) -> bool {
    let target = config.target_group.as_deref() == Some(group);
    let rule_group =
        matches!(&config.mailerlite_rule, MailerLiteRule::Groups { group_ids } if group_ids.iter().any(|g| g == group));
    if !target && !rule_group {
        return true;
    }
    (!target || added == link.in_target_group) && (!rule_group || added == link.ml_in_scope)
}

pub(crate) fn month_of(now_ms: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.format(time::macros::format_description!("[year]-[month]")).expect("a date has a year and a month")
}

fn to_contact(h: &HsRecord, in_scope: bool, company: BTreeMap<String, Option<String>>) -> HubSpotContact {
    HubSpotContact { id: h.id.clone(), properties: h.properties.clone(), company, in_scope }
}

fn to_subscriber(m: &MlRecord, in_scope: bool) -> MailerLiteSubscriber {
    MailerLiteSubscriber {
        id: m.id.clone(),
        email: m.email.clone(),
        status: m.status,
        fields: m.fields.clone(),
        groups: m.groups.clone(),
        created_at: m.created_at.clone(),
        updated_at: m.updated_at.clone(),
        in_scope,
    }
}

fn problem(side: Side, field: Option<String>, message: String, action: String, api: Option<String>) -> ContactProblem {
    ContactProblem { side, field, message, action, api_message: api, refused: BTreeMap::new() }
}

fn item_problem(side: Side, e: &ItemError) -> ContactProblem {
    problem(side, e.field.clone(), e.message.clone(), e.action.clone(), e.api_message.clone())
}

/// A contact HubSpot cannot create because another contact holds its email, although no contact
/// has it as its primary email: it is that contact's additional email.
fn held_as_additional_email(email: Option<&str>, existing_id: Option<&str>, e: &ItemError) -> ContactProblem {
    let email = email.unwrap_or("this email");
    let holder = existing_id.map(|id| format!("contact {id}")).unwrap_or_else(|| "another contact".into());
    let mut p = problem(
        Side::HubSpot,
        Some("email".into()),
        format!(
            "HubSpot keeps {email} as an additional email of {holder} (a merge leaves the merged-away \
             contact's email on the survivor), so it cannot be a contact of its own."
        ),
        format!(
            "If they are the same person, delete or unsubscribe the extra subscriber in MailerLite, or give it \
             another email; otherwise remove {email} from the additional emails of {holder} in HubSpot. Then \
             retry this contact."
        ),
        e.api_message.clone(),
    );
    p.refused = BTreeMap::from([("email".to_string(), email.to_string())]);
    p
}

fn reason_text(reason: &hmsync_core::Reason) -> String {
    use hmsync_core::Reason::*;
    match reason {
        Created => "created from the other app".into(),
        Linked => "linked by email".into(),
        FilledEmpty => "filled an empty field".into(),
        ChangedOn(s) => format!("changed in {s}"),
        ConflictWinner(s) => format!("conflict: {s} wins"),
        MirrorsSource(s) => format!("one-way from {s}"),
        EmailFollowed(s) => format!("email changed in {s}"),
        OptedOutInHubSpot => "opted out of email in HubSpot".into(),
        StatusRecorded => "MailerLite status recorded".into(),
        AddedToTargetGroup => "matches the HubSpot rule: added to the target group".into(),
        StoppedMatching => "stopped matching the rules: removed from the target group".into(),
        DeletedIn(s) => format!("deleted in {s}"),
        RestoredIn(s) => format!("restored in {s}"),
        BlankKept => "blank not copied (never overwrite with a blank)".into(),
    }
}

fn origin_text(origin: Origin) -> &'static str {
    match origin {
        Origin::Webhook => "webhook",
        Origin::Scan => "scan",
        Origin::Retry => "retry",
        Origin::Initial => "initial sync",
        Origin::UserRetry => "retry requested",
    }
}

impl Engine {
    /// Parks a message while the connection is paused: it is replayed on resume or approval.
    pub(crate) async fn park(&self, conn_id: &str, message: &SyncMessage) -> Result<Report, EngineError> {
        let body = serde_json::to_value(message).expect("messages serialize");
        let (_, parked) = self
            .update_state(conn_id, |s| {
                if s.parked.len() >= 10_000 {
                    return false;
                }
                if !s.parked.contains(&body) {
                    s.parked.push(body.clone());
                }
                true
            })
            .await?;
        if !parked {
            return Err(EngineError::Retry {
                message: format!("connection {conn_id} is paused and its parking space is full"),
                after: Some(std::time::Duration::from_secs(300)),
            });
        }
        Ok(Report { parked: true, ..Report::default() })
    }

    /// Whether work may run now: `Ok(None)` yes; `Ok(Some(report))` the message was parked or
    /// ignored; `Err` come back later.
    pub(crate) async fn gate(
        &self,
        conn_id: &str,
        state: &ConnectionState,
        message: &SyncMessage,
    ) -> Result<Option<Report>, EngineError> {
        if state.lifecycle == Lifecycle::Draft {
            return Ok(Some(Report::default()));
        }
        if state.pause.is_some() {
            return self.park(conn_id, message).await.map(Some);
        }
        // Waiting for an API limit (HubSpot's daily limit): the work waits parked, not bouncing
        // through the queue (each return would count towards the dead-letter limit).
        if let Some(until) = state.wait_until_ms {
            let now = self.now_ms();
            if until > now {
                return self.park(conn_id, message).await.map(Some);
            }
            // The wait is over: this message goes ahead and the work parked meanwhile is
            // replayed, without waiting for the schedule's tick. If the limit is still used up,
            // the first request says so and the wait starts again.
            let (_, released) = self
                .update_state(conn_id, |s| match s.wait_until_ms {
                    Some(t) if t > now || s.pause.is_some() => None,
                    _ => {
                        s.wait_until_ms = None;
                        Some(std::mem::take(&mut s.parked))
                    }
                })
                .await?;
            match released {
                None => return self.park(conn_id, message).await.map(Some),
                Some(parked) => {
                    tracing::info!(
                        connection = conn_id,
                        replayed = parked.len(),
                        "the wait for an API limit is over; parked work resumes"
                    );
                    self.replay(parked).await?;
                }
            }
        }
        Ok(None)
    }

    /// Syncs the contacts `refs` name (plus the records of `pre`, already read by a scan).
    /// Reads what a batch of references needs, in bulk: the links, both records of every
    /// contact (preloaded ones are not read again), counterparts by email, rule scope and the
    /// primary companies. Echoes and unchanged records drop out before any API call.
    pub(crate) async fn load_units(
        &self,
        conn: &hmsync_store::Connection,
        planner: &Planner,
        refs: Vec<ContactRef>,
        pre: Preloaded,
        report: &mut Report,
        retry_refs: &mut Vec<ContactRef>,
    ) -> Result<Vec<Unit>, EngineError> {
        self.load_units_with(conn, planner, refs, pre, report, retry_refs, MergeRepair::Off).await
    }

    /// [`Engine::load_units`], and with [`MergeRepair::On`] the merges the reads reveal are
    /// handled first: HubSpot answers a merged-away id with the survivor (another id), and a
    /// survivor names what it absorbed in `hs_merged_object_ids`. Links still holding absorbed
    /// contacts are re-keyed to the survivor before anything is planned, so no link is taken for
    /// deleted (which would move its subscriber out of the target group and back in, firing
    /// "joined group" automations again); then the units are built again from the store.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn load_units_with(
        &self,
        conn: &hmsync_store::Connection,
        planner: &Planner,
        refs: Vec<ContactRef>,
        pre: Preloaded,
        report: &mut Report,
        retry_refs: &mut Vec<ContactRef>,
        repair: MergeRepair,
    ) -> Result<Vec<Unit>, EngineError> {
        let conn_id = conn.id.as_str();
        let report_before = report.clone();
        let (known_absent, skip_unchanged) = (pre.mailerlite_known_absent, pre.skip_unchanged);
        let config = planner.config();
        // 1. Coalesce and find the links.
        let refs = coalesce(refs);
        let keys: Vec<LinkKey> = refs
            .iter()
            .map(|r| match r {
                ContactRef::HubSpot { id, .. } => LinkKey::HubSpot(id.clone()),
                ContactRef::MailerLite { id, .. } => LinkKey::MailerLite(id.clone()),
            })
            .collect();
        let found: HashMap<LinkKey, Link> = self.store.find_links(conn_id, &keys).await?.into_iter().collect();
        let pre_hs: HashMap<String, HsRecord> = pre.hubspot.into_iter().map(|r| (r.id.clone(), r)).collect();
        let pre_ml: HashMap<String, MlRecord> = pre.mailerlite.into_iter().map(|r| (r.id.clone(), r)).collect();

        // 2. Units: one per link, one per unlinked record. Echoes and unchanged records drop out
        //    here, before any API call.
        let mut units: Vec<Unit> = Vec::new();
        let mut by_link: HashMap<String, usize> = HashMap::new();
        for (r, key) in refs.iter().zip(keys.iter()) {
            let link = found.get(key);
            if let Some(link) = link {
                let echo = match r {
                    ContactRef::HubSpot { changes, structural, .. } => {
                        !structural && hubspot_echo(planner, link, changes)
                    }
                    ContactRef::MailerLite { snapshot, group, structural: false, member: None, .. }
                        if snapshot.is_some() || group.is_some() =>
                    {
                        snapshot.as_ref().is_none_or(|s| mailerlite_echo(planner, link, s))
                            && group.as_ref().is_none_or(|(g, added)| group_echo(config, link, g, *added))
                    }
                    ContactRef::MailerLite { .. } => false,
                };
                if echo {
                    report.echoes += 1;
                    continue;
                }
                if skip_unchanged {
                    let unchanged = match r {
                        ContactRef::HubSpot { id, structural: false, .. } => pre_hs.get(id).is_some_and(|h| {
                            h.property("lastmodifieddate").is_some()
                                && link.hs_last_modified.as_deref() == h.property("lastmodifieddate")
                        }),
                        ContactRef::MailerLite { id, member, structural: false, .. } => {
                            pre_ml.get(id).is_some_and(|m| {
                                link.ml_updated_at.as_deref() == Some(m.updated_at.as_str())
                                    && member.is_none_or(|mem| mem == link.ml_in_scope)
                            })
                        }
                        _ => false,
                    };
                    if unchanged {
                        report.unchanged += 1;
                        continue;
                    }
                }
            }
            let idx = match link {
                Some(link) => *by_link.entry(link.id.clone()).or_insert_with(|| {
                    units.push(Unit {
                        hs_id: link.hubspot_id.clone(),
                        ml_id: link.mailerlite_id.clone(),
                        link: Some(link.clone()),
                        ..Unit::default()
                    });
                    units.len() - 1
                }),
                None => {
                    units.push(Unit::default());
                    units.len() - 1
                }
            };
            let unit = &mut units[idx];
            match r {
                ContactRef::HubSpot { id, structural, .. } => {
                    unit.hs_id.get_or_insert_with(|| id.clone());
                    unit.structural |= structural;
                }
                ContactRef::MailerLite { id, member, structural, .. } => {
                    unit.ml_id.get_or_insert_with(|| id.clone());
                    unit.ml_member = member.or(unit.ml_member);
                    unit.structural |= structural;
                }
            }
        }
        if units.is_empty() {
            return Ok(units);
        }

        let hs_api = self.apis.hubspot(conn).await?;
        let ml_api = self.apis.mailerlite(conn).await?;
        let hs_props = hubspot_properties(planner);

        // 3. Read both sides in bulk.
        let mut hs_records: HashMap<String, HsRecord> = HashMap::new();
        let mut ml_records: HashMap<String, MlRecord> = HashMap::new();
        self.read_records(&units, &pre_hs, &pre_ml, &*hs_api, &*ml_api, &hs_props, &mut hs_records, &mut ml_records)
            .await?;
        if repair == MergeRepair::On
            && let Some((aliases, more)) = self.merges_in_reads(conn, &units, &pre_hs, &hs_records).await?
        {
            let mut refs: Vec<ContactRef> = refs
                .into_iter()
                .map(|r| match r {
                    ContactRef::HubSpot { id, changes, structural } => {
                        ContactRef::HubSpot { id: aliases.get(&id).cloned().unwrap_or(id), changes, structural }
                    }
                    other => other,
                })
                .collect();
            refs.extend(more);
            let pre = Preloaded {
                hubspot: pre_hs.into_values().collect(),
                mailerlite: pre_ml.into_values().collect(),
                mailerlite_known_absent: known_absent,
                skip_unchanged,
            };
            *report = report_before;
            return Box::pin(self.load_units_with(conn, planner, refs, pre, report, retry_refs, MergeRepair::Off))
                .await;
        }
        for u in units.iter_mut() {
            u.hs = u.hs_id.as_ref().and_then(|id| hs_records.get(id).cloned());
            u.ml = u.ml_id.as_ref().and_then(|id| ml_records.get(id).cloned());
        }

        // 4. Unlinked records: pair them by email, with a link held under that email, or with the
        //    counterpart the other app has.
        let (more_hs, more_ml) = self.pair_unlinked(conn_id, &mut units, retry_refs).await?;
        if !more_hs.is_empty() {
            for r in hs_api.read_contacts(&more_hs, &hs_props).await? {
                hs_records.insert(r.id.clone(), r);
            }
        }
        if !more_ml.is_empty() {
            for r in ml_api.get_by_ids(&more_ml).await? {
                ml_records.insert(r.id.clone(), r);
            }
        }
        for u in units.iter_mut().filter(|u| u.link.is_some()) {
            if u.hs.is_none() {
                u.hs = u.hs_id.as_ref().and_then(|id| hs_records.get(id).cloned());
            }
            if u.ml.is_none() {
                u.ml = u.ml_id.as_ref().and_then(|id| ml_records.get(id).cloned());
            }
        }
        let need_ml_lookup: Vec<String> = if known_absent {
            Vec::new()
        } else {
            units.iter().filter(|u| u.link.is_none() && u.ml.is_none()).filter_map(|u| u.email()).collect()
        };
        let need_hs_lookup: Vec<String> =
            units.iter().filter(|u| u.link.is_none() && u.hs.is_none()).filter_map(|u| u.email()).collect();
        if !need_ml_lookup.is_empty() {
            for m in ml_api.get_by_emails(&need_ml_lookup).await? {
                if let Some(e) = normalize_email(&m.email)
                    && let Some(u) =
                        units.iter_mut().find(|u| u.link.is_none() && u.ml.is_none() && u.email() == Some(e.clone()))
                {
                    u.ml_id = Some(m.id.clone());
                    u.ml = Some(m);
                }
            }
        }
        if !need_hs_lookup.is_empty() {
            for h in hs_api.find_contacts_by_email(&need_hs_lookup, &hs_props).await? {
                if let Some(e) = h.property("email").and_then(normalize_email)
                    && let Some(u) =
                        units.iter_mut().find(|u| u.link.is_none() && u.hs.is_none() && u.email() == Some(e.clone()))
                {
                    u.hs_id = Some(h.id.clone());
                    u.hs = Some(h);
                }
            }
        }
        // A counterpart found by email may already be linked to someone else.
        self.check_counterparts(conn_id, &mut units, retry_refs).await?;

        // 5. Rules: which records are in scope.
        let hs_scope = self.hubspot_scope(&config.hubspot_rule, &units, &*hs_api).await?;
        let companies = self.companies(planner, &units, &*hs_api).await?;

        for u in units.iter_mut() {
            let company =
                u.hs.as_ref()
                    .and_then(|h| h.property("associatedcompanyid"))
                    .and_then(|c| companies.get(c).cloned())
                    .unwrap_or_default();
            u.hs_contact = u.hs.as_ref().map(|h| to_contact(h, hs_scope.get(&h.id).copied().unwrap_or(false), company));
            u.ml_subscriber = u.ml.as_ref().map(|m| {
                let in_scope = match &config.mailerlite_rule {
                    MailerLiteRule::All => true,
                    MailerLiteRule::Groups { .. } => config.mailerlite_rule.matches(m.status, &m.groups, &[]),
                    MailerLiteRule::Segments { .. } => {
                        m.status == MlStatus::Active
                            && u.ml_member.unwrap_or_else(|| u.link.as_ref().is_some_and(|l| l.ml_in_scope))
                    }
                };
                to_subscriber(m, in_scope)
            });
        }
        Ok(units)
    }

    pub(crate) async fn sync_contacts(
        &self,
        conn_id: &str,
        refs: Vec<ContactRef>,
        origin: Origin,
        pre: Preloaded,
        message: &SyncMessage,
    ) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, message).await? {
            return Ok(report);
        }
        let schemas = conn.schemas.clone().unwrap_or_default();
        let config = conn.config.clone();
        let planner = Planner::new(&config, &schemas);
        let phase = if state.lifecycle == Lifecycle::InitialSync { Phase::Initial } else { Phase::Continuous };
        let now = self.now_ms();
        let mut report = Report::default();
        let mut retry_refs: Vec<ContactRef> = Vec::new();
        let mut units =
            self.load_units_with(&conn, &planner, refs, pre, &mut report, &mut retry_refs, MergeRepair::On).await?;
        if report.echoes > 0 {
            self.store.add_counters(conn_id, &[(counters::ECHOES_SKIPPED, report.echoes as i64)]).await?;
        }
        if units.is_empty() {
            return Ok(report);
        }
        let destructive = plan_units(&planner, phase, &mut units, &mut report);
        self.withhold_refused(conn_id, &planner, &mut units, origin).await?;
        let hs_api = self.apis.hubspot(&conn).await?;
        let ml_api = self.apis.mailerlite(&conn).await?;

        // 7. The safety valve: too many destructive changes pause the connection for approval.
        if !destructive.is_zero() {
            let (_, tripped) = self
                .update_state(conn_id, |s| {
                    let approved = s.approved_until_ms.is_some_and(|t| t > now);
                    let mut total = destructive;
                    if origin == Origin::Scan
                        && let Some(run) = &s.scan
                    {
                        if run.approved || approved {
                            return Vec::new();
                        }
                        total.add(&run.destructive);
                    } else if approved {
                        return Vec::new();
                    }
                    let trips = config.safety_valve.check(&total);
                    if !trips.is_empty() {
                        s.pause = Some(Pause::SafetyValve {
                            trips: trips.clone(),
                            run_id: s.scan.as_ref().map(|r| r.run_id.clone()),
                        });
                    } else if origin == Origin::Scan
                        && let Some(run) = s.scan.as_mut()
                    {
                        run.destructive.add(&destructive);
                    }
                    trips
                })
                .await?;
            if !tripped.is_empty() {
                tracing::warn!(connection = conn_id, ?tripped, "safety valve: connection paused for approval");
                return self.park(conn_id, message).await;
            }
        }

        // 8. Write: MailerLite, then HubSpot creates, updates and opt-outs.
        self.write_mailerlite(&mut units, &*ml_api, &planner).await?;
        self.failpoints.check(failpoint::AFTER_MAILERLITE_WRITES)?;
        self.write_hubspot(&mut units, &*hs_api, &planner, origin).await?;
        self.undo_group_joins_of_failed_creates(&units, &*ml_api).await?;

        // 9. Store links, errors, history, meter and counters.
        let stored =
            self.store_results(conn_id, &mut units, origin, now, config.engagement.enabled, &mut report).await?;
        for u in &units {
            if u.retry
                && let Some(r) = u.retry_ref()
            {
                retry_refs.push(r);
            }
        }
        if !retry_refs.is_empty() {
            report.enqueued += 1;
            self.enqueue_retry(conn_id, retry_refs, now, Origin::Retry).await?;
        }
        let created_hs = units.iter().filter(|u| !u.failed && u.written_hs.is_some() && u.hs.is_none()).count();
        let created_ml = units.iter().filter(|u| !u.failed && u.written_ml.is_some() && u.ml.is_none()).count();
        let mut deltas: Vec<(&str, i64)> = vec![(counters::SYNCED, report.written as i64)];
        if report.excluded > 0 {
            deltas.push((counters::EXCLUDED_NO_EMAIL, report.excluded as i64));
        }
        if created_hs > 0 {
            deltas.push((counters::CREATED_HUBSPOT, created_hs as i64));
        }
        if created_ml > 0 {
            deltas.push((counters::CREATED_MAILERLITE, created_ml as i64));
        }
        self.store.add_counters(conn_id, &deltas).await?;
        if stored > 0 {
            tracing::debug!(connection = conn_id, contacts = report.contacts, written = report.written, "batch synced");
        }
        Ok(report)
    }

    /// Sends references back through the queue (a fresh dedup id: this is new work).
    pub(crate) async fn enqueue_retry(
        &self,
        conn_id: &str,
        refs: Vec<ContactRef>,
        now: i64,
        origin: Origin,
    ) -> Result<(), EngineError> {
        let message = SyncMessage::Contacts { connection_id: conn_id.to_string(), refs, origin };
        let body = message.to_body();
        let dedup = format!("retry-{now}-{}", &message.content_dedup_id()[..16]);
        self.queue
            .send_batch(&[hmsync_store::QueueMessage { group_id: conn_id.to_string(), dedup_id: dedup, body }])
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn read_records(
        &self,
        units: &[Unit],
        pre_hs: &HashMap<String, HsRecord>,
        pre_ml: &HashMap<String, MlRecord>,
        hs_api: &dyn crate::api::HubSpotApi,
        ml_api: &dyn crate::api::MailerLiteApi,
        hs_props: &[String],
        hs_records: &mut HashMap<String, HsRecord>,
        ml_records: &mut HashMap<String, MlRecord>,
    ) -> Result<(), EngineError> {
        let mut hs_ids: Vec<String> = Vec::new();
        let mut ml_ids: Vec<String> = Vec::new();
        for u in units {
            if let Some(id) = &u.hs_id {
                match pre_hs.get(id) {
                    Some(r) => {
                        hs_records.insert(id.clone(), r.clone());
                    }
                    None if !hs_records.contains_key(id) && !hs_ids.contains(id) => hs_ids.push(id.clone()),
                    None => {}
                }
            }
            if let Some(id) = &u.ml_id {
                match pre_ml.get(id) {
                    Some(r) => {
                        ml_records.insert(id.clone(), r.clone());
                    }
                    None if !ml_records.contains_key(id) && !ml_ids.contains(id) => ml_ids.push(id.clone()),
                    None => {}
                }
            }
        }
        if !hs_ids.is_empty() {
            for r in hs_api.read_contacts(&hs_ids, hs_props).await? {
                hs_records.insert(r.id.clone(), r);
            }
        }
        if !ml_ids.is_empty() {
            for r in ml_api.get_by_ids(&ml_ids).await? {
                ml_records.insert(r.id.clone(), r);
            }
        }
        Ok(())
    }

    /// Merges unlinked units that share an email, and attaches them to a link held under that
    /// email when the link has room for them.
    async fn pair_unlinked(
        &self,
        conn_id: &str,
        units: &mut Vec<Unit>,
        retry: &mut Vec<ContactRef>,
    ) -> Result<(Vec<String>, Vec<String>), EngineError> {
        // Records without a usable email take no part (counted as excluded by the planner).
        let mut by_email: HashMap<String, usize> = HashMap::new();
        let mut merged: Vec<Unit> = Vec::new();
        for u in std::mem::take(units) {
            if u.link.is_some() {
                merged.push(u);
                continue;
            }
            let Some(email) = u.email() else {
                merged.push(u);
                continue;
            };
            match by_email.get(&email) {
                Some(&i) => {
                    let other = &mut merged[i];
                    if other.hs.is_none() && u.hs.is_some() {
                        other.hs_id = u.hs_id;
                        other.hs = u.hs;
                    } else if other.ml.is_none() && u.ml.is_some() {
                        other.ml_id = u.ml_id;
                        other.ml = u.ml;
                    }
                    other.structural |= u.structural;
                }
                None => {
                    by_email.insert(email, merged.len());
                    merged.push(u);
                }
            }
        }
        *units = merged;

        let emails: Vec<LinkKey> =
            units.iter().filter(|u| u.link.is_none()).filter_map(|u| u.email()).map(LinkKey::Email).collect();
        if emails.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let held: HashMap<LinkKey, Link> = self.store.find_links(conn_id, &emails).await?.into_iter().collect();
        let linked_ids: BTreeSet<String> = units.iter().filter_map(|u| u.link.as_ref().map(|l| l.id.clone())).collect();
        for u in units.iter_mut().filter(|u| u.link.is_none()) {
            let Some(email) = u.email() else { continue };
            let Some(link) = held.get(&LinkKey::Email(email)) else { continue };
            let hs_fits = u.hs.is_none()
                || link.hubspot_id.is_none()
                || link.hs_deleted
                || link.hubspot_id.as_deref() == u.hs_id.as_deref();
            let ml_fits = u.ml.is_none()
                || link.mailerlite_id.is_none()
                || link.ml_deleted
                || link.mailerlite_id.as_deref() == u.ml_id.as_deref();
            if hs_fits && ml_fits && !linked_ids.contains(&link.id) {
                u.link = Some(link.clone());
            } else {
                // The email's link belongs to another record: refresh that one first (its email
                // probably changed), then come back to this one.
                if let Some(id) = &link.hubspot_id {
                    retry.push(ContactRef::hubspot(id));
                }
                if let Some(id) = &link.mailerlite_id {
                    retry.push(ContactRef::mailerlite(id));
                }
                u.failed = true;
                u.retry = true;
            }
        }
        // A unit attached to a link needs that link's other record.
        let mut need = (Vec::new(), Vec::new());
        for u in units.iter_mut().filter(|u| !u.failed) {
            if let Some(link) = &u.link {
                if u.hs.is_none()
                    && let Some(id) = &link.hubspot_id
                {
                    u.hs_id = Some(id.clone());
                    need.0.push(id.clone());
                }
                if u.ml.is_none()
                    && let Some(id) = &link.mailerlite_id
                {
                    u.ml_id = Some(id.clone());
                    need.1.push(id.clone());
                }
            }
        }
        Ok(need)
    }

    /// A counterpart found by email that is already linked to another record is not paired
    /// (that would make two links for one subscriber): both are looked at again later.
    async fn check_counterparts(
        &self,
        conn_id: &str,
        units: &mut [Unit],
        retry: &mut Vec<ContactRef>,
    ) -> Result<(), EngineError> {
        let mut keys = Vec::new();
        for u in units.iter().filter(|u| u.link.is_none() && !u.failed) {
            if let Some(h) = &u.hs {
                keys.push(LinkKey::HubSpot(h.id.clone()));
            }
            if let Some(m) = &u.ml {
                keys.push(LinkKey::MailerLite(m.id.clone()));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let held: HashMap<LinkKey, Link> = self.store.find_links(conn_id, &keys).await?.into_iter().collect();
        for u in units.iter_mut().filter(|u| u.link.is_none() && !u.failed) {
            let hs_link = u.hs.as_ref().and_then(|h| held.get(&LinkKey::HubSpot(h.id.clone())));
            let ml_link = u.ml.as_ref().and_then(|m| held.get(&LinkKey::MailerLite(m.id.clone())));
            if hs_link.is_some() || ml_link.is_some() {
                for l in [hs_link, ml_link].into_iter().flatten() {
                    if let Some(id) = &l.hubspot_id {
                        retry.push(ContactRef::hubspot(id));
                    }
                    if let Some(id) = &l.mailerlite_id {
                        retry.push(ContactRef::mailerlite(id));
                    }
                }
                u.failed = true;
            }
        }
        Ok(())
    }

    async fn hubspot_scope(
        &self,
        rule: &HubSpotRule,
        units: &[Unit],
        hs_api: &dyn crate::api::HubSpotApi,
    ) -> Result<HashMap<String, bool>, EngineError> {
        let ids: Vec<String> = units.iter().filter_map(|u| u.hs.as_ref().map(|h| h.id.clone())).collect();
        match rule {
            HubSpotRule::All => Ok(ids.into_iter().map(|id| (id, true)).collect()),
            HubSpotRule::Lists { .. } => {
                if ids.is_empty() {
                    return Ok(HashMap::new());
                }
                let memberships = hs_api.memberships(&ids).await?;
                Ok(ids
                    .into_iter()
                    .map(|id| {
                        let lists = memberships.get(&id).cloned().unwrap_or_default();
                        (id, rule.matches(&lists))
                    })
                    .collect())
            }
        }
    }

    async fn companies(
        &self,
        planner: &Planner,
        units: &[Unit],
        hs_api: &dyn crate::api::HubSpotApi,
    ) -> Result<HashMap<String, BTreeMap<String, Option<String>>>, EngineError> {
        let props = company_properties(planner);
        if props.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: BTreeSet<String> = units
            .iter()
            .filter_map(|u| u.hs.as_ref().and_then(|h| h.property("associatedcompanyid").map(str::to_string)))
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<String> = ids.into_iter().collect();
        Ok(hs_api.read_companies(&ids, &props).await?.into_iter().collect())
    }

    /// Values an app refused stand refused while their problem is recorded: a plan that would
    /// send one again unchanged leaves it out (the rest of the contact is written) and the
    /// problem stands, unless someone asked for a retry. Costs store reads only when errors are
    /// recorded, and only for contacts whose plan updates a record.
    async fn withhold_refused(
        &self,
        conn_id: &str,
        planner: &Planner,
        units: &mut [Unit],
        origin: Origin,
    ) -> Result<(), EngineError> {
        if origin == Origin::UserRetry {
            return Ok(());
        }
        let updates = |u: &Unit| {
            u.plan.as_ref().is_some_and(|p| {
                matches!(p.hubspot, Some(hmsync_core::HubSpotWrite::Update { .. }))
                    || matches!(p.mailerlite, Some(hmsync_core::MailerLiteWrite::Update { .. }))
            })
        };
        let creates_contact = |u: &Unit| {
            u.plan.as_ref().is_some_and(|p| matches!(p.hubspot, Some(hmsync_core::HubSpotWrite::Create { .. })))
        };
        let candidates: Vec<usize> = (0..units.len())
            .filter(|i| !units[*i].failed && (updates(&units[*i]) || creates_contact(&units[*i])))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        const LISTED: usize = 200;
        let count = self.store.count_errors(conn_id).await?;
        if count == 0 {
            return Ok(());
        }
        let mut errors: HashMap<String, ContactError> = HashMap::new();
        if count as usize <= LISTED {
            for e in self.store.list_errors(conn_id, None, LISTED).await?.items {
                errors.insert(e.key.clone(), e);
            }
        } else {
            for &i in &candidates {
                let key = units[i].error_key();
                if let Some(e) = self.store.get_error(conn_id, &key).await? {
                    errors.insert(key, e);
                }
            }
        }
        for i in candidates {
            let u = &mut units[i];
            let Some(error) = errors.get(&u.error_key()) else { continue };
            if creates_contact(u) {
                let email = u.email();
                let refused = error.problems.iter().find(|p| {
                    p.side == Side::HubSpot && p.refused.get("email").map(String::as_str) == email.as_deref()
                });
                // HubSpot refused a contact with this very email: the create stands refused (no
                // request, no group join) until the email changes or someone asks for a retry.
                if let Some(p) = refused {
                    u.plan = None;
                    u.failed = true;
                    u.problems.push(p.clone());
                    continue;
                }
            }
            let Some(plan) = u.plan.as_mut() else { continue };
            for p in error.problems.iter().filter(|p| !p.refused.is_empty()) {
                let mut held = false;
                for (field, value) in &p.refused {
                    if plan.written_value(p.side, field).as_deref() == Some(value.as_str()) {
                        held |= planner.withhold(plan, u.link.as_ref(), p.side, field);
                    }
                }
                if held {
                    u.held.push(p.clone());
                }
            }
        }
        Ok(())
    }

    /// A subscriber joins the target group in the same MailerLite batch that writes its fields,
    /// before its HubSpot contact is created. When that create fails (HubSpot refused a value, or
    /// holds the email as another contact's additional email), the subscriber is not linked and
    /// leaves the group again: one more MailerLite request, on this failure only.
    async fn undo_group_joins_of_failed_creates(
        &self,
        units: &[Unit],
        ml_api: &dyn crate::api::MailerLiteApi,
    ) -> Result<(), EngineError> {
        let mut ops: Vec<MlOp> = Vec::new();
        for u in units.iter().filter(|u| u.failed && u.written_hs.is_none()) {
            let (Some(plan), Some(ml)) = (&u.plan, &u.ml) else { continue };
            if !matches!(plan.hubspot, Some(hmsync_core::HubSpotWrite::Create { .. })) {
                continue;
            }
            for c in &plan.group_changes {
                if let hmsync_core::GroupChange::Add { group_id } = c {
                    ops.push(MlOp::RemoveFromGroup { id: ml.id.clone(), group_id: group_id.clone() });
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        for (op, result) in ops.iter().zip(ml_api.apply(&ops).await?) {
            if let Err(e) = result {
                tracing::warn!(?op, error = %e.message, "could not take a subscriber whose HubSpot create failed out of the target group");
            }
        }
        Ok(())
    }

    async fn write_mailerlite(
        &self,
        units: &mut [Unit],
        ml_api: &dyn crate::api::MailerLiteApi,
        planner: &Planner,
    ) -> Result<(), EngineError> {
        let mut ops: Vec<(usize, MlOp)> = Vec::new();
        for (i, u) in units.iter().enumerate() {
            let Some(plan) = &u.plan else { continue };
            let adds: Vec<String> = plan
                .group_changes
                .iter()
                .filter_map(|c| match c {
                    hmsync_core::GroupChange::Add { group_id } => Some(group_id.clone()),
                    _ => None,
                })
                .collect();
            let mut adds_done = false;
            match &plan.mailerlite {
                Some(hmsync_core::MailerLiteWrite::Create { email, fields, status, groups }) => {
                    ops.push((
                        i,
                        MlOp::Upsert {
                            email: email.clone(),
                            fields: fields.clone(),
                            status: Some(*status),
                            groups: groups.clone(),
                        },
                    ));
                }
                Some(hmsync_core::MailerLiteWrite::Update { id, email, fields, status }) => {
                    let current = u.ml.as_ref().map(|m| m.email.clone()).unwrap_or_default();
                    if email.is_none() && !adds.is_empty() && !current.is_empty() {
                        // One non-destructive upsert writes the fields and joins the group.
                        ops.push((
                            i,
                            MlOp::Upsert {
                                email: current,
                                fields: fields.clone(),
                                status: *status,
                                groups: adds.clone(),
                            },
                        ));
                        adds_done = true;
                    } else {
                        ops.push((
                            i,
                            MlOp::Update {
                                id: id.clone(),
                                email: email.clone(),
                                fields: fields.clone(),
                                status: *status,
                            },
                        ));
                    }
                }
                None => {}
            }
            let Some(ml_id) = u.ml.as_ref().map(|m| m.id.clone()) else { continue };
            for c in &plan.group_changes {
                match c {
                    hmsync_core::GroupChange::Add { group_id } if !adds_done => {
                        ops.push((i, MlOp::AddToGroup { id: ml_id.clone(), group_id: group_id.clone() }))
                    }
                    hmsync_core::GroupChange::Remove { group_id } => {
                        ops.push((i, MlOp::RemoveFromGroup { id: ml_id.clone(), group_id: group_id.clone() }))
                    }
                    _ => {}
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let only: Vec<MlOp> = ops.iter().map(|(_, op)| op.clone()).collect();
        let results = ml_api.apply(&only).await?;
        let mut second: Vec<(usize, MlOp)> = Vec::new();
        // New emails MailerLite refused (another subscriber has them, most likely): unit, email.
        let mut emails_refused: Vec<(usize, String)> = Vec::new();
        for ((i, op), result) in ops.into_iter().zip(results) {
            let u = &mut units[i];
            match result {
                Ok(Some(rec)) => {
                    if matches!(op, MlOp::Upsert { .. } | MlOp::Update { .. }) {
                        u.written_ml = Some(rec);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // MailerLite refuses the whole update for one value: record it and write the
                    // rest of the contact without it (its opt-out included).
                    let updates = matches!(
                        u.plan.as_ref().and_then(|p| p.mailerlite.as_ref()),
                        Some(hmsync_core::MailerLiteWrite::Update { .. })
                    );
                    if updates
                        && let ItemErrorKind::Invalid { properties } = &e.kind
                        && let Some((rest, refused)) = without_refused(&op, properties)
                    {
                        let (email, others): (BTreeMap<String, String>, BTreeMap<String, String>) =
                            refused.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| k == "email");
                        if let Some(new) = email.get("email") {
                            let mut p = item_problem(Side::MailerLite, &e);
                            p.field = Some("email".into());
                            p.refused = email.clone();
                            u.problems.push(p);
                            emails_refused.push((i, new.clone()));
                        }
                        if !others.is_empty() {
                            let mut p = item_problem(Side::MailerLite, &e);
                            p.field = others.keys().next().cloned();
                            p.refused = others;
                            u.problems.push(p);
                        }
                        if let Some(plan) = u.plan.as_mut() {
                            for field in refused.keys() {
                                planner.withhold(plan, u.link.as_ref(), Side::MailerLite, field);
                            }
                        }
                        if let Some(rest) = rest {
                            second.push((i, rest));
                        }
                        continue;
                    }
                    u.failed = true;
                    match e.kind {
                        ItemErrorKind::NotFound | ItemErrorKind::ReactivationRefused => u.retry = true,
                        _ => u.problems.push(item_problem(Side::MailerLite, &e)),
                    }
                }
            }
        }
        if !second.is_empty() {
            let only: Vec<MlOp> = second.iter().map(|(_, op)| op.clone()).collect();
            let results = ml_api.apply(&only).await?;
            for ((i, _), result) in second.into_iter().zip(results) {
                let u = &mut units[i];
                match result {
                    Ok(rec) => u.written_ml = rec.or(u.written_ml.take()),
                    Err(e) => {
                        u.failed = true;
                        match e.kind {
                            ItemErrorKind::NotFound | ItemErrorKind::ReactivationRefused => u.retry = true,
                            _ => u.problems.push(item_problem(Side::MailerLite, &e)),
                        }
                    }
                }
            }
        }
        if !emails_refused.is_empty() {
            self.explain_refused_emails(units, ml_api, emails_refused).await?;
        }
        Ok(())
    }

    /// Words the problem of a new email MailerLite refused: which subscriber already has it, and
    /// what to do (one batch read of those emails).
    async fn explain_refused_emails(
        &self,
        units: &mut [Unit],
        ml_api: &dyn crate::api::MailerLiteApi,
        refused: Vec<(usize, String)>,
    ) -> Result<(), EngineError> {
        let emails: Vec<String> = refused.iter().map(|(_, e)| e.clone()).collect();
        let holders: HashMap<String, MlRecord> = ml_api
            .get_by_emails(&emails)
            .await?
            .into_iter()
            .filter_map(|m| normalize_email(&m.email).map(|e| (e, m)))
            .collect();
        for (i, email) in refused {
            let u = &mut units[i];
            let old = u.ml.as_ref().map(|m| m.email.clone()).unwrap_or_default();
            let own = u.ml.as_ref().map(|m| m.id.clone());
            let holder = normalize_email(&email).and_then(|e| holders.get(&e)).filter(|m| Some(&m.id) != own.as_ref());
            let Some(p) =
                u.problems.iter_mut().find(|p| p.side == Side::MailerLite && p.refused.get("email") == Some(&email))
            else {
                continue;
            };
            match holder {
                Some(other) => {
                    p.message = format!(
                        "The new email {email} was not copied to MailerLite: another subscriber ({}, id {}) already \
                         has it, so MailerLite refused it.",
                        other.email, other.id
                    );
                    p.action = format!(
                        "If they are the same person, merge or delete the other subscriber (id {}) in MailerLite, then \
                         retry this contact; otherwise change the email in HubSpot back to {old} (or to one of their \
                         own). The rest of the contact keeps syncing meanwhile.",
                        other.id
                    );
                }
                None => {
                    p.message = format!("The new email {email} was not copied to MailerLite: {}", p.message);
                    p.action = format!(
                        "Correct the email in HubSpot (the subscriber keeps {old} meanwhile), or retry this contact \
                         once MailerLite accepts it. The rest of the contact keeps syncing meanwhile."
                    );
                }
            }
        }
        Ok(())
    }

    async fn write_hubspot(
        &self,
        units: &mut [Unit],
        hs_api: &dyn crate::api::HubSpotApi,
        planner: &Planner,
        origin: Origin,
    ) -> Result<(), EngineError> {
        let config = planner.config();
        let mut creates: Vec<(usize, HsWrite)> = Vec::new();
        let mut updates: Vec<(usize, HsWrite)> = Vec::new();
        let mut optouts: Vec<(usize, String)> = Vec::new();
        for (i, u) in units.iter().enumerate() {
            if u.failed {
                continue;
            }
            let Some(plan) = &u.plan else { continue };
            match &plan.hubspot {
                Some(hmsync_core::HubSpotWrite::Create { properties }) => {
                    creates.push((i, HsWrite { key: format!("u{i}"), properties: properties.clone() }))
                }
                Some(hmsync_core::HubSpotWrite::Update { id, properties }) => {
                    updates.push((i, HsWrite { key: id.clone(), properties: properties.clone() }))
                }
                None => {}
            }
            if plan.hubspot_unsubscribe_all
                && let Some(e) = u.email()
            {
                optouts.push((i, e));
            }
        }
        if !creates.is_empty() {
            let inputs: Vec<HsWrite> = creates.iter().map(|(_, w)| w.clone()).collect();
            let results = hs_api.create_contacts(&inputs).await?;
            // Contacts HubSpot refused a value of: created again without it (one more request).
            let mut again: Vec<(usize, HsWrite)> = Vec::new();
            for ((i, write), result) in creates.into_iter().zip(results) {
                let u = &mut units[i];
                match result {
                    Ok(rec) => u.written_hs = Some(rec),
                    Err(e) if matches!(&e.kind, ItemErrorKind::Invalid { .. }) => {
                        let ItemErrorKind::Invalid { properties } = &e.kind else { continue };
                        let refused: BTreeMap<String, String> = properties
                            .iter()
                            .filter(|k| k.as_str() != "email")
                            .filter_map(|k| write.properties.get(k).map(|v| (k.clone(), v.clone())))
                            .collect();
                        if refused.is_empty() {
                            u.failed = true;
                            u.problems.push(item_problem(Side::HubSpot, &e));
                            continue;
                        }
                        let mut p = item_problem(Side::HubSpot, &e);
                        p.refused = refused.clone();
                        u.problems.push(p);
                        if let Some(plan) = u.plan.as_mut() {
                            for field in refused.keys() {
                                planner.withhold(plan, u.link.as_ref(), Side::HubSpot, field);
                            }
                        }
                        let mut w = write.clone();
                        w.properties.retain(|k, _| !refused.contains_key(k));
                        again.push((i, w));
                    }
                    Err(e) => {
                        u.failed = true;
                        match &e.kind {
                            // Someone created it meanwhile: the next pass finds it by email and
                            // links it.
                            ItemErrorKind::AlreadyExists { .. } if origin != Origin::Retry => u.retry = true,
                            // The next pass did not find it by its email either: HubSpot holds the
                            // email as another contact's additional email (a merge leaves the
                            // merged-away email on the survivor). Coming back again would loop.
                            ItemErrorKind::AlreadyExists { existing_id } => u.problems.push(held_as_additional_email(
                                u.email().as_deref(),
                                existing_id.as_deref(),
                                &e,
                            )),
                            _ => u.problems.push(item_problem(Side::HubSpot, &e)),
                        }
                    }
                }
            }
            if !again.is_empty() {
                let inputs: Vec<HsWrite> = again.iter().map(|(_, w)| w.clone()).collect();
                for ((i, _), result) in again.into_iter().zip(hs_api.create_contacts(&inputs).await?) {
                    let u = &mut units[i];
                    match result {
                        Ok(rec) => u.written_hs = Some(rec),
                        Err(e) => {
                            u.failed = true;
                            if !matches!(e.kind, ItemErrorKind::AlreadyExists { .. }) {
                                u.problems.push(item_problem(Side::HubSpot, &e));
                            } else {
                                u.retry = true;
                            }
                        }
                    }
                }
            }
        }
        self.failpoints.check(failpoint::AFTER_HUBSPOT_CREATES)?;
        if !updates.is_empty() {
            let inputs: Vec<HsWrite> = updates.iter().map(|(_, w)| w.clone()).collect();
            let results = hs_api.update_contacts(&inputs).await?;
            let mut second: Vec<(usize, HsWrite)> = Vec::new();
            for ((i, write), result) in updates.into_iter().zip(results) {
                let u = &mut units[i];
                match result {
                    Ok(rec) => u.written_hs = Some(rec),
                    Err(e) => {
                        // HubSpot refuses the whole write for one bad value (or for an email
                        // another contact has): record it and write the rest of the contact
                        // without it.
                        let (refused, rest_written): (Vec<String>, Option<HsRecord>) = match &e.kind {
                            ItemErrorKind::Invalid { properties } => (properties.clone(), None),
                            ItemErrorKind::InvalidRestWritten { properties, written } => {
                                (properties.clone(), Some((**written).clone()))
                            }
                            ItemErrorKind::AlreadyExists { .. } => (vec!["email".to_string()], None),
                            _ => (Vec::new(), None),
                        };
                        let refused: BTreeMap<String, String> = refused
                            .into_iter()
                            .filter_map(|k| write.properties.get(&k).map(|v| (k, v.clone())))
                            .collect();
                        if !refused.is_empty() {
                            let mut p = item_problem(Side::HubSpot, &e);
                            if let Some(new) = refused.get("email") {
                                let old = u.hs.as_ref().and_then(|h| h.property("email")).unwrap_or_default();
                                p.field = Some("email".into());
                                p.message = format!("The new email {new} was not copied to HubSpot: {}", e.message);
                                p.action = format!(
                                    "If they are the same person, merge the two contacts in HubSpot (the sync then \
                                     links the survivor) and retry this contact; otherwise change the subscriber's \
                                     email in MailerLite back to {old}. The rest of the contact keeps syncing meanwhile."
                                );
                            }
                            p.refused = refused.clone();
                            u.problems.push(p);
                            if let Some(plan) = u.plan.as_mut() {
                                for field in refused.keys() {
                                    planner.withhold(plan, u.link.as_ref(), Side::HubSpot, field);
                                }
                            }
                            if let Some(rec) = rest_written {
                                // The client already sent the rest of the contact without it.
                                u.written_hs = Some(rec);
                                continue;
                            }
                            let mut w = write.clone();
                            w.properties.retain(|k, _| !refused.contains_key(k));
                            if !w.properties.is_empty() {
                                second.push((i, w));
                            }
                            continue;
                        }
                        u.failed = true;
                        match e.kind {
                            ItemErrorKind::NotFound => u.retry = true,
                            _ => u.problems.push(item_problem(Side::HubSpot, &e)),
                        }
                    }
                }
            }
            if !second.is_empty() {
                let inputs: Vec<HsWrite> = second.iter().map(|(_, w)| w.clone()).collect();
                let results = hs_api.update_contacts(&inputs).await?;
                for ((i, _), result) in second.into_iter().zip(results) {
                    let u = &mut units[i];
                    match result {
                        Ok(rec) => u.written_hs = Some(rec),
                        Err(e) => {
                            u.failed = true;
                            match e.kind {
                                ItemErrorKind::NotFound => u.retry = true,
                                _ => u.problems.push(item_problem(Side::HubSpot, &e)),
                            }
                        }
                    }
                }
            }
        }
        self.failpoints.check(failpoint::AFTER_HUBSPOT_UPDATES)?;
        for (i, email) in optouts {
            if let Err(e) = hs_api.unsubscribe_all(&email, config.engagement.legal_basis.as_deref()).await {
                if e.is_transient() {
                    return Err(e.into());
                }
                let u = &mut units[i];
                u.failed = true;
                u.problems.push(problem(
                    Side::HubSpot,
                    Some("hs_email_optout".into()),
                    format!("HubSpot refused to opt {email} out of email: {e}"),
                    "Give the HubSpot app the communication_preferences.read_write scope (hubspot-app/ declares it; reinstall the app after adding it) and retry this contact, or turn off \"unsubscribe in HubSpot\" for the connection.".into(),
                    None,
                ));
            }
        }
        Ok(())
    }

    /// Stores what was written. Returns how many links were stored.
    async fn store_results(
        &self,
        conn_id: &str,
        units: &mut [Unit],
        origin: Origin,
        now: i64,
        engagement: bool,
        report: &mut Report,
    ) -> Result<usize, EngineError> {
        let mut stored = 0usize;
        let mut new_links: Vec<String> = Vec::new();
        let mut history: Vec<HistoryEntry> = Vec::new();
        // A contact counts for the month when it is linked or written to (the billing figure:
        // each contact in the sync once, however often it syncs). The meter and the history are
        // written before the links: a crash in between leaves a contact counted and its changes
        // recorded, while the replay (whose plan then writes nothing) would never count it.
        let mut metered: Vec<String> = Vec::new();
        for u in units.iter_mut().filter(|u| !u.failed) {
            let newly_linked = u.link.as_ref().is_none_or(|l| l.id.is_empty());
            let Some(plan) = u.plan.as_mut() else { continue };
            let writes = plan.has_writes() || newly_linked;
            let Some(link) = plan.link.as_mut() else { continue };
            if link.id.is_empty() {
                let hubspot_id = link.hubspot_id.clone().or(u.written_hs.as_ref().map(|h| h.id.clone()));
                let mailerlite_id = link.mailerlite_id.clone().or(u.written_ml.as_ref().map(|m| m.id.clone()));
                link.id = new_link_id(conn_id, hubspot_id.as_deref(), mailerlite_id.as_deref());
            }
            if writes {
                metered.push(link.id.clone());
            }
            for c in &plan.changes {
                history.push(HistoryEntry {
                    link_id: link.id.clone(),
                    at_ms: now as u64,
                    email: link.email.clone(),
                    target: c.target,
                    field: c.field.clone(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                    reason: reason_text(&c.reason),
                    source: origin_text(origin).to_string(),
                });
            }
        }
        if !history.is_empty() {
            self.store.append_history(conn_id, &history, self.settings.history_ttl).await?;
        }
        if !metered.is_empty() {
            self.store.record_synced(conn_id, &month_of(now), &metered).await?;
        }
        let had_errors = self.store.count_errors(conn_id).await? > 0;
        for u in units.iter_mut() {
            let Some(plan) = u.plan.take() else {
                if !u.problems.is_empty() {
                    self.record_error(conn_id, u).await?;
                }
                continue;
            };
            if u.failed {
                if !u.problems.is_empty() {
                    report.errors += 1;
                    self.record_error(conn_id, u).await?;
                }
                continue;
            }
            // A write of the plan was refused: the link keeps what it held for that value (the
            // plan was adjusted), the rest is stored.
            let Some(mut link) = plan.link.clone() else {
                if !u.problems.is_empty() {
                    report.errors += 1;
                    self.record_error(conn_id, u).await?;
                }
                continue;
            };
            if let Some(h) = &u.written_hs {
                link.hubspot_id.get_or_insert_with(|| h.id.clone());
                if let Some(lm) = h.property("lastmodifieddate") {
                    link.hs_last_modified = Some(lm.to_string());
                }
            }
            if let Some(m) = &u.written_ml {
                link.mailerlite_id.get_or_insert_with(|| m.id.clone());
                link.ml_updated_at = Some(m.updated_at.clone());
            }
            let previous = u.link.clone().filter(|l| !l.id.is_empty());
            if previous.as_ref() != Some(&link) {
                match self.store.put_link(conn_id, &link, previous.as_ref()).await {
                    Ok(saved) => {
                        if previous.is_none() {
                            new_links.push(saved.email.clone());
                        }
                        link = saved;
                        stored += 1;
                    }
                    Err(StoreError::IndexConflict { key, existing_link_id }) => {
                        u.problems.push(problem(
                            Side::HubSpot,
                            None,
                            format!("{key} is already linked to another contact ({existing_link_id})"),
                            "Two records share this email or id: merge the duplicates in HubSpot or MailerLite; the sync links the survivor.".into(),
                            None,
                        ));
                        report.errors += 1;
                        self.record_error(conn_id, u).await?;
                        continue;
                    }
                    Err(e @ StoreError::VersionConflict { .. }) => {
                        return Err(EngineError::Retry { message: e.to_string(), after: None });
                    }
                    Err(e) => return Err(e.into()),
                }
                if stored == 1 {
                    self.failpoints.check(failpoint::AFTER_FIRST_LINK_STORED)?;
                }
            }
            u.link = Some(link.clone());
            if plan.has_writes() {
                report.written += 1;
            }
            if plan.hubspot.is_some() || plan.hubspot_unsubscribe_all {
                report.written_hubspot += 1;
            }
            if plan.mailerlite.is_some() || !plan.group_changes.is_empty() {
                report.written_mailerlite += 1;
            }
            if u.problems.is_empty() {
                // Values withheld because they stand refused: their problems stand too.
                if had_errors && u.held.is_empty() {
                    self.store.clear_error(conn_id, &link.id).await?;
                    for key in [
                        u.hs_id.as_ref().map(|h| format!("hubspot:{h}")),
                        u.ml_id.as_ref().map(|m| format!("mailerlite:{m}")),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        self.store.clear_error(conn_id, &key).await?;
                    }
                }
            } else {
                report.errors += 1;
                self.record_error(conn_id, u).await?;
            }
        }
        if engagement && !new_links.is_empty() && self.release_pending_events(conn_id, &new_links).await? > 0 {
            report.enqueued += 1;
        }
        Ok(stored)
    }

    async fn record_error(&self, conn_id: &str, u: &Unit) -> Result<(), EngineError> {
        let mut problems = u.problems.clone();
        problems.extend(u.held.iter().filter(|h| !u.problems.contains(h)).cloned());
        let mut e = ContactError::new(&u.error_key(), problems);
        e.email = u.email();
        e.hubspot_id = u.hs_id.clone();
        e.mailerlite_id = u.ml_id.clone();
        self.store.set_error(conn_id, &e).await?;
        Ok(())
    }
}

/// A MailerLite update without the values MailerLite refused (`properties`, as its error names
/// them): the rest of the write (`None` if nothing is left) and the refused values as text.
/// `None` if the error names nothing the write sent.
fn without_refused(op: &MlOp, properties: &[String]) -> Option<(Option<MlOp>, BTreeMap<String, String>)> {
    let (email, fields) = match op {
        MlOp::Update { email, fields, .. } => (email.as_ref(), fields),
        MlOp::Upsert { fields, .. } => (None, fields),
        _ => return None,
    };
    let mut refused = BTreeMap::new();
    for p in properties {
        match (p.as_str(), email) {
            ("email", Some(e)) => {
                refused.insert(p.clone(), e.clone());
            }
            _ => {
                if let Some(v) = fields.get(p) {
                    refused.insert(p.clone(), hmsync_core::value_text(v));
                }
            }
        }
    }
    if refused.is_empty() {
        return None;
    }
    let rest = match op.clone() {
        MlOp::Update { id, email, mut fields, status } => {
            let email = email.filter(|_| !refused.contains_key("email"));
            fields.retain(|k, _| !refused.contains_key(k));
            (email.is_some() || !fields.is_empty() || status.is_some()).then_some(MlOp::Update {
                id,
                email,
                fields,
                status,
            })
        }
        MlOp::Upsert { email, mut fields, status, groups } => {
            fields.retain(|k, _| !refused.contains_key(k));
            (!fields.is_empty() || status.is_some() || !groups.is_empty()).then_some(MlOp::Upsert {
                email,
                fields,
                status,
                groups,
            })
        }
        _ => None,
    };
    Some((rest, refused))
}

/// Plans every loaded contact; returns the destructive changes planned in total.
pub(crate) fn plan_units(planner: &Planner, phase: Phase, units: &mut [Unit], report: &mut Report) -> SafetyCounters {
    let mut destructive = SafetyCounters::default();
    for u in units.iter_mut() {
        if u.failed {
            continue;
        }
        let plan = planner.plan(phase, u.link.as_ref(), u.hs_contact.as_ref(), u.ml_subscriber.as_ref());
        destructive.add(&plan.safety);
        if plan.exclusion.is_some() {
            report.excluded += 1;
        }
        for e in &plan.errors {
            u.problems.push(problem(
                e.target,
                Some(match e.target {
                    Side::HubSpot => e.hubspot_property.clone(),
                    Side::MailerLite => e.mailerlite_field.clone(),
                }),
                e.error.to_string(),
                match &e.error {
                    hmsync_core::ValueError::NotAnOption { .. } => {
                        "Add the option in HubSpot (Settings › Properties), or correct the value in MailerLite; the contact syncs again on its next change or on retry.".into()
                    }
                    _ => "Correct the value in the app it comes from; the contact syncs again on its next change or on retry.".into(),
                },
                None,
            ));
        }
        u.plan = Some(plan);
    }
    report.contacts = units.iter().filter(|u| u.plan.is_some()).count();
    destructive
}

/// A new link's id, derived from its first record (the HubSpot contact when there is one): a
/// replay after a crash between the meter and the link gives the same link the same id, so it
/// is counted once. A record id belongs to one link at most, so two links never share an id.
fn new_link_id(conn_id: &str, hubspot_id: Option<&str>, mailerlite_id: Option<&str>) -> String {
    let key = match (hubspot_id, mailerlite_id) {
        (Some(h), _) => format!("{conn_id}/hubspot/{h}"),
        (None, Some(m)) => format!("{conn_id}/mailerlite/{m}"),
        (None, None) => return uuid::Uuid::now_v7().to_string(),
    };
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_merges_hints_of_the_same_record() {
        let refs = vec![
            ContactRef::HubSpot { id: "1".into(), changes: vec![("a".into(), "x".into())], structural: false },
            ContactRef::mailerlite("9"),
            ContactRef::HubSpot { id: "1".into(), changes: vec![("b".into(), "y".into())], structural: true },
        ];
        let out = coalesce(refs);
        assert_eq!(out.len(), 2);
        match &out[0] {
            ContactRef::HubSpot { changes, structural, .. } => {
                assert_eq!(changes.len(), 2);
                assert!(*structural);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_of(1_764_547_200_000), "2025-12");
        assert_eq!(month_of(1_764_547_199_000), "2025-11");
    }
}
