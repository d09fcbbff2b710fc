//! The independent convergence checker (docs/sync-rules.md, last section): reads both apps through their APIs with
//! the real clients, and the links and recorded per-contact errors from the store, and checks the
//! end state against the sync rules of docs/sync-rules.md. What is in scope is derived from the apps
//! themselves (list members, groups, segments), never from the engine's own bookkeeping, so an
//! engine that forgot something cannot hide it. The planner is not used: only
//! [`Conversion::equivalent`], to compare a HubSpot value and a MailerLite value "through the
//! conversion".
//!
//! Not covered: mappings of HubSpot company properties (the checker does not read companies).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::TryStreamExt;
use hmsync_core::{
    ConnectionConfig, Conversion, Direction, FieldMapping, HsOption, HsProperty, HsType, HubSpotObject, HubSpotRule,
    Link, MailerLiteRule, MlField, MlType, Side, engagement, normalize_email,
};
use hmsync_mailerlite as ml;
use hmsync_sandbox::common::StatsSnapshot;
use hmsync_store::ContactError;
use serde::Serialize;
use serde_json::Value;

use crate::Harness;

/// What the scenario knows that the apps cannot tell afterwards.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Subscribers (by MailerLite id) that the seed or the people themselves made unsubscribed,
    /// bounced or junk, with that status: nobody may resubscribe them.
    pub suppressed: BTreeMap<String, String>,
}

/// One rule checked, with every violation found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    /// The rule, in the words of docs/sync-rules.md.
    pub rule: &'static str,
    /// How many records, links or values the rule was checked on.
    pub checked: u64,
    pub violations: Vec<String>,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the checker saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckFigures {
    pub hubspot_contacts: u64,
    pub hubspot_in_scope: u64,
    pub hubspot_without_email: u64,
    pub mailerlite_subscribers: u64,
    pub mailerlite_in_scope: u64,
    pub links: u64,
    /// Links holding a live contact and a live subscriber.
    pub complete_links: u64,
    /// Complete links with no violation of any check.
    pub converged: u64,
    /// Contacts with a recorded error (which exempts the named fields from the field check).
    pub recorded_errors: u64,
    pub field_values_compared: u64,
    pub field_values_exempted_by_errors: u64,
    /// Complete links whose emails differ while the contact has a recorded error for its email.
    pub emails_exempted_by_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub checks: Vec<CheckResult>,
    pub figures: CheckFigures,
    /// The recorded per-contact errors, as "email: message" (for the report).
    pub errors: Vec<String>,
    /// HubSpot contact ids and MailerLite subscriber ids of the links some check flagged (to
    /// tell later writes to them from echoes).
    pub flagged_records: BTreeSet<String>,
    /// HubSpot contact ids and MailerLite subscriber ids of the contacts with a recorded error.
    pub errored_records: BTreeSet<String>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(CheckResult::passed)
    }
}

/// A failure to read what the checker needs (not a violation).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("HubSpot: {0}")]
    HubSpot(#[from] hmsync_hubspot::HubSpotError),
    #[error("MailerLite: {0}")]
    MailerLite(#[from] ml::Error),
    #[error("store: {0}")]
    Store(#[from] hmsync_store::StoreError),
    #[error("{0}")]
    Setup(String),
}

/// A HubSpot contact as the checker sees it.
#[derive(Debug, Clone)]
struct Contact {
    id: String,
    email: Option<String>,
    properties: BTreeMap<String, Option<String>>,
    in_scope: bool,
}

impl Contact {
    fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref()).filter(|v| !v.is_empty())
    }

    fn opted_out(&self) -> bool {
        self.prop("hs_email_optout").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// For messages: which contacts HubSpot merged into this one (merges move values around).
    fn merges(&self) -> String {
        self.prop("hs_merged_object_ids").map(|m| format!("; absorbed merged contact(s) {m}")).unwrap_or_default()
    }
}

/// A MailerLite subscriber as the checker sees it.
#[derive(Debug, Clone)]
struct Subscriber {
    id: String,
    email: Option<String>,
    status: String,
    fields: BTreeMap<String, Value>,
    groups: BTreeSet<String>,
    in_scope: bool,
}

fn suppressed(status: &str) -> bool {
    matches!(status, "unsubscribed" | "bounced" | "junk")
}

/// A mapping with its conversion and the ways its values may flow.
struct CheckedMapping {
    mapping: FieldMapping,
    conversion: Conversion,
    from_hubspot: bool,
    from_mailerlite: bool,
}

/// Reads both apps and the store and checks connection `connection_id`.
pub async fn check(h: &Harness, connection_id: &str, expected: &Expectations) -> Result<CheckReport, CheckError> {
    let connection = h
        .store
        .get_connection(connection_id)
        .await?
        .ok_or_else(|| CheckError::Setup(format!("connection {connection_id} does not exist")))?;
    let config = connection.config;
    let hs = h.hs_client();
    let mlc = h.ml_client();

    let mappings = mappings(&config, &hs, &mlc).await?;
    let contacts = read_contacts(&config, &mappings, &hs).await?;
    let subscribers = read_subscribers(&config, &mlc).await?;
    let links = read_links(h, connection_id).await?;
    let errors = read_errors(h, connection_id).await?;
    Ok(evaluate(&config, &mappings, &contacts, &subscribers, &links, &errors, expected))
}

/// The HubSpot write requests in a sandbox's stats, by endpoint: every request that is not a
/// GET, a batch read or a search.
pub fn hubspot_writes(stats: &StatsSnapshot) -> BTreeMap<String, u64> {
    stats
        .endpoints
        .iter()
        .filter(|(key, _)| {
            let (method, path) = key.split_once(' ').unwrap_or((key.as_str(), ""));
            method != "GET" && !path.ends_with("/batch/read") && !path.ends_with("/search")
        })
        .map(|(key, e)| (key.clone(), e.requests))
        .collect()
}

async fn mappings(
    config: &ConnectionConfig,
    hs: &hmsync_hubspot::HubSpotClient,
    mlc: &ml::Client,
) -> Result<Vec<CheckedMapping>, CheckError> {
    let properties: HashMap<String, HsProperty> = hs
        .list_properties("contacts")
        .await?
        .into_iter()
        .map(|p| {
            let read_only = p.is_read_only();
            let property = HsProperty {
                name: p.name.clone(),
                label: p.label,
                hs_type: HsType::parse(&p.kind),
                field_type: p.field_type,
                options: p.options.into_iter().map(|o| HsOption { label: o.label, value: o.value }).collect(),
                read_only,
                calculated: p.calculated,
            };
            (p.name, property)
        })
        .collect();
    let fields: HashMap<String, MlField> = mlc
        .fields()
        .await?
        .into_iter()
        .map(|f| {
            let ml_type = match f.kind {
                ml::FieldType::Text => MlType::Text,
                ml::FieldType::Number => MlType::Number,
                ml::FieldType::Date => MlType::Date,
            };
            (f.key.clone(), MlField { key: f.key, name: f.name, ml_type })
        })
        .collect();
    let mut out = Vec::new();
    for m in config.mappings.iter().filter(|m| m.hubspot_object == HubSpotObject::Contact) {
        let property = properties
            .get(&m.hubspot_property)
            .ok_or_else(|| CheckError::Setup(format!("HubSpot has no contact property {}", m.hubspot_property)))?;
        let field = fields
            .get(&m.mailerlite_field)
            .ok_or_else(|| CheckError::Setup(format!("MailerLite has no field {}", m.mailerlite_field)))?;
        let conversion = Conversion::new(property, field).map_err(|_| {
            CheckError::Setup(format!("{} and {} have no conversion", m.hubspot_property, m.mailerlite_field))
        })?;
        out.push(CheckedMapping {
            mapping: m.clone(),
            conversion,
            from_hubspot: config.direction.allows_from(Side::HubSpot) && m.direction.allows_from(Side::HubSpot),
            from_mailerlite: config.direction.allows_from(Side::MailerLite)
                && m.direction.allows_from(Side::MailerLite)
                && property.is_writable(),
        });
    }
    Ok(out)
}

async fn read_contacts(
    config: &ConnectionConfig,
    mappings: &[CheckedMapping],
    hs: &hmsync_hubspot::HubSpotClient,
) -> Result<Vec<Contact>, CheckError> {
    let mut properties: BTreeSet<String> = ["email", "hs_email_optout", "hs_merged_object_ids", engagement::STATUS]
        .iter()
        .map(|s| s.to_string())
        .collect();
    properties.extend(mappings.iter().map(|m| m.mapping.hubspot_property.clone()));
    let options = hmsync_hubspot::ListOptions { properties: properties.into_iter().collect(), ..Default::default() };
    let raw: Vec<hmsync_hubspot::Contact> = hs.list_contacts(options).try_collect().await?;
    let members: Option<BTreeSet<String>> = match &config.hubspot_rule {
        HubSpotRule::All => None,
        HubSpotRule::Lists { list_ids } => {
            let mut all = BTreeSet::new();
            for list in list_ids {
                let members: Vec<hmsync_hubspot::ListMembership> = hs.list_memberships(list).try_collect().await?;
                all.extend(members.into_iter().map(|m| m.record_id));
            }
            Some(all)
        }
    };
    Ok(raw
        .into_iter()
        .map(|c| Contact {
            email: c.prop("email").and_then(normalize_email),
            in_scope: members.as_ref().is_none_or(|m| m.contains(&c.id)),
            id: c.id,
            properties: c.properties,
        })
        .collect())
}

async fn read_subscribers(config: &ConnectionConfig, mlc: &ml::Client) -> Result<Vec<Subscriber>, CheckError> {
    let mut raw: Vec<ml::Subscriber> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = mlc.subscribers_page(ml::Statuses::All, cursor.as_deref(), ml::SUBSCRIBERS_PAGE, true).await?;
        let empty = page.data.is_empty();
        raw.extend(page.data);
        match page.meta.next_cursor {
            Some(c) if !empty => cursor = Some(c),
            _ => break,
        }
    }
    let segment_members: BTreeSet<String> = match &config.mailerlite_rule {
        MailerLiteRule::Segments { segment_ids } => {
            let mut all = BTreeSet::new();
            for s in segment_ids {
                let members: Vec<ml::Subscriber> = mlc.segment_members(s, ml::Status::Active).try_collect().await?;
                all.extend(members.into_iter().map(|m| m.id));
            }
            all
        }
        _ => BTreeSet::new(),
    };
    Ok(raw
        .into_iter()
        .map(|s| {
            let groups: BTreeSet<String> = s.groups.unwrap_or_default().into_iter().map(|g| g.id).collect();
            let status = s.status.as_str().to_string();
            let in_scope = match &config.mailerlite_rule {
                MailerLiteRule::All => true,
                MailerLiteRule::Groups { group_ids } => group_ids.iter().any(|g| groups.contains(g)),
                MailerLiteRule::Segments { .. } => status == "active" && segment_members.contains(&s.id),
            };
            Subscriber { email: normalize_email(&s.email), id: s.id, status, fields: s.fields, groups, in_scope }
        })
        .collect())
}

async fn read_links(h: &Harness, connection_id: &str) -> Result<Vec<Link>, CheckError> {
    let mut links = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = h.store.list_links(connection_id, after.as_deref(), 1000).await?;
        links.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(links),
        }
    }
}

async fn read_errors(h: &Harness, connection_id: &str) -> Result<Vec<ContactError>, CheckError> {
    let mut errors = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = h.store.list_errors(connection_id, after.as_deref(), 1000).await?;
        errors.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(errors),
        }
    }
}

/// One rule's result being collected.
fn rule(name: &'static str, rule: &'static str) -> CheckResult {
    CheckResult { name, rule, checked: 0, violations: Vec::new() }
}

fn show(v: Option<&str>) -> String {
    v.map_or_else(|| "(blank)".to_string(), |s| format!("{s:?}"))
}

/// A link whose contact and subscriber both exist and neither is marked deleted.
struct Complete<'a> {
    link: &'a Link,
    contact: &'a Contact,
    subscriber: &'a Subscriber,
}

impl Complete<'_> {
    /// How messages name the contact.
    fn label(&self) -> String {
        self.contact.email.clone().or_else(|| self.subscriber.email.clone()).unwrap_or_else(|| self.link.email.clone())
    }
}

/// Everything read, indexed; each rule is one method.
struct View<'a> {
    config: &'a ConnectionConfig,
    mappings: &'a [CheckedMapping],
    contacts: &'a [Contact],
    subscribers: &'a [Subscriber],
    links: &'a [Link],
    hs_by_id: HashMap<&'a str, &'a Contact>,
    ml_by_id: HashMap<&'a str, &'a Subscriber>,
    by_hs: HashMap<&'a str, Vec<&'a Link>>,
    by_ml: HashMap<&'a str, Vec<&'a Link>>,
    by_email: HashMap<&'a str, Vec<&'a Link>>,
    complete: Vec<Complete<'a>>,
    /// Per contact key (link id, `hubspot:<id>`, `mailerlite:<id>`): the fields a recorded
    /// error names.
    errored: HashMap<String, BTreeSet<String>>,
    /// Links some violation concerns (they do not count as converged).
    flagged: BTreeSet<String>,
}

impl<'a> View<'a> {
    fn new(
        config: &'a ConnectionConfig,
        mappings: &'a [CheckedMapping],
        contacts: &'a [Contact],
        subscribers: &'a [Subscriber],
        links: &'a [Link],
        errors: &[ContactError],
    ) -> View<'a> {
        let hs_by_id: HashMap<&str, &Contact> = contacts.iter().map(|c| (c.id.as_str(), c)).collect();
        let ml_by_id: HashMap<&str, &Subscriber> = subscribers.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut by_hs: HashMap<&str, Vec<&Link>> = HashMap::new();
        let mut by_ml: HashMap<&str, Vec<&Link>> = HashMap::new();
        let mut by_email: HashMap<&str, Vec<&Link>> = HashMap::new();
        for l in links {
            if let Some(id) = &l.hubspot_id {
                by_hs.entry(id.as_str()).or_default().push(l);
            }
            if let Some(id) = &l.mailerlite_id {
                by_ml.entry(id.as_str()).or_default().push(l);
            }
            if !l.email.is_empty() {
                by_email.entry(l.email.as_str()).or_default().push(l);
            }
        }
        let complete = links
            .iter()
            .filter(|l| !l.hs_deleted && !l.ml_deleted)
            .filter_map(|l| {
                let contact = *hs_by_id.get(l.hubspot_id.as_deref()?)?;
                let subscriber = *ml_by_id.get(l.mailerlite_id.as_deref()?)?;
                Some(Complete { link: l, contact, subscriber })
            })
            .collect();
        let mut errored: HashMap<String, BTreeSet<String>> = HashMap::new();
        for e in errors {
            let keys = [
                Some(e.key.clone()),
                e.hubspot_id.as_ref().map(|i| format!("hubspot:{i}")),
                e.mailerlite_id.as_ref().map(|i| format!("mailerlite:{i}")),
            ];
            for field in e.problems.iter().filter_map(|p| p.field.as_ref()) {
                for k in keys.iter().flatten() {
                    errored.entry(k.clone()).or_default().insert(field.clone());
                }
            }
        }
        View {
            config,
            mappings,
            contacts,
            subscribers,
            links,
            hs_by_id,
            ml_by_id,
            by_hs,
            by_ml,
            by_email,
            complete,
            errored,
            flagged: BTreeSet::new(),
        }
    }

    fn violation(&mut self, result: &mut CheckResult, link: Option<&str>, message: String) {
        if let Some(l) = link {
            self.flagged.insert(l.to_string());
        }
        result.violations.push(message);
    }

    /// Every in-scope record is held by exactly one link that does not call it deleted, and that
    /// link reaches a live counterpart (in the directions that create one); no link holds a
    /// record that is gone without saying so.
    fn linked_once(&mut self) -> CheckResult {
        let mut r = rule(
            "linked_once",
            "every in-scope contact linked exactly once (or unlinked under an error recorded for its email), to its live counterpart; no link holds a record that is gone",
        );
        for c in self.contacts.iter().filter(|c| c.in_scope) {
            let Some(email) = &c.email else { continue };
            r.checked += 1;
            let held = self.by_hs.get(c.id.as_str()).cloned().unwrap_or_default();
            match held.as_slice() {
                [] if self.email_refused(&format!("hubspot:{}", c.id)) => {}
                [] => self.violation(
                    &mut r,
                    None,
                    format!("HubSpot contact {} <{email}> is in scope but not linked", c.id),
                ),
                [l] if l.hs_deleted => self.violation(
                    &mut r,
                    Some(&l.id),
                    format!("HubSpot contact {} <{email}> is live but its link {} says it was deleted", c.id, l.id),
                ),
                [l] => {
                    let counterpart = l.mailerlite_id.as_deref().and_then(|m| self.ml_by_id.get(m));
                    if self.config.direction.allows_from(Side::HubSpot) && !l.ml_deleted && counterpart.is_none() {
                        self.violation(
                            &mut r,
                            Some(&l.id),
                            format!(
                                "HubSpot contact {} <{email}> is in scope but has no live MailerLite subscriber",
                                c.id
                            ),
                        );
                    }
                }
                more => self.violation(
                    &mut r,
                    None,
                    format!("HubSpot contact {} <{email}> is held by {} links", c.id, more.len()),
                ),
            }
        }
        for s in self.subscribers.iter().filter(|s| s.in_scope) {
            let Some(email) = &s.email else { continue };
            r.checked += 1;
            let held = self.by_ml.get(s.id.as_str()).cloned().unwrap_or_default();
            match held.as_slice() {
                [] if self.email_refused(&format!("mailerlite:{}", s.id)) => {}
                [] => self.violation(
                    &mut r,
                    None,
                    format!("MailerLite subscriber {} <{email}> is in scope but not linked", s.id),
                ),
                [l] if l.ml_deleted => self.violation(
                    &mut r,
                    Some(&l.id),
                    format!(
                        "MailerLite subscriber {} <{email}> is live but its link {} says it was deleted",
                        s.id, l.id
                    ),
                ),
                [l] => {
                    let counterpart = l.hubspot_id.as_deref().and_then(|h| self.hs_by_id.get(h));
                    if self.config.direction.allows_from(Side::MailerLite) && !l.hs_deleted && counterpart.is_none() {
                        self.violation(
                            &mut r,
                            Some(&l.id),
                            format!(
                                "MailerLite subscriber {} <{email}> is in scope but has no live HubSpot contact",
                                s.id
                            ),
                        );
                    }
                }
                more => self.violation(
                    &mut r,
                    None,
                    format!("MailerLite subscriber {} <{email}> is held by {} links", s.id, more.len()),
                ),
            }
        }
        for l in self.links {
            if let Some(id) = &l.hubspot_id
                && !l.hs_deleted
                && !self.hs_by_id.contains_key(id.as_str())
            {
                self.violation(
                    &mut r,
                    Some(&l.id),
                    format!(
                        "link {} <{}> holds HubSpot contact {id}, which no longer exists (merged or deleted), and \
                         does not say so",
                        l.id, l.email
                    ),
                );
            }
            if let Some(id) = &l.mailerlite_id
                && !l.ml_deleted
                && !self.ml_by_id.contains_key(id.as_str())
            {
                self.violation(
                    &mut r,
                    Some(&l.id),
                    format!(
                        "link {} <{}> holds MailerLite subscriber {id}, which no longer exists, and does not say so",
                        l.id, l.email
                    ),
                );
            }
        }
        r
    }

    /// No email on two records of one side; no record or email held by two links.
    fn no_duplicates(&mut self) -> CheckResult {
        let mut r = rule("no_duplicates", "no email twice on either side; no record held by two links");
        let mut hs_emails: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in self.contacts {
            if let Some(e) = &c.email {
                hs_emails.entry(e.as_str()).or_default().push(c.id.as_str());
            }
        }
        let mut ml_emails: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in self.subscribers {
            if let Some(e) = &s.email {
                ml_emails.entry(e.as_str()).or_default().push(s.id.as_str());
            }
        }
        for (side, emails) in [("HubSpot contacts", &hs_emails), ("MailerLite subscribers", &ml_emails)] {
            for (email, ids) in emails {
                r.checked += 1;
                if ids.len() > 1 {
                    r.violations.push(format!("{email} is the email of {} {side}: {ids:?}", ids.len()));
                }
            }
        }
        for (what, index) in
            [("HubSpot contact", &self.by_hs), ("MailerLite subscriber", &self.by_ml), ("email", &self.by_email)]
        {
            for (key, held) in index {
                r.checked += 1;
                if held.len() > 1 {
                    let ids: Vec<&str> = held.iter().map(|l| l.id.as_str()).collect();
                    r.violations.push(format!("{what} {key} is held by {} links: {ids:?}", held.len()));
                }
            }
        }
        r
    }

    /// An error is recorded for this record's email: the other app refused to hold it (for
    /// example HubSpot keeps it as another contact's additional email), so it stays unlinked and
    /// the user is told why.
    fn email_refused(&self, key: &str) -> bool {
        self.errored.get(key).is_some_and(|fields| fields.contains("email"))
    }

    /// The fields a recorded error names for this complete link's contact.
    fn exempt(&self, p: &Complete<'_>) -> BTreeSet<String> {
        [p.link.id.clone(), format!("hubspot:{}", p.contact.id), format!("mailerlite:{}", p.subscriber.id)]
            .iter()
            .filter_map(|k| self.errored.get(k))
            .flatten()
            .cloned()
            .collect()
    }

    /// Both records of every complete link carry the same email, unless the contact has a
    /// recorded error for its email (docs/sync-rules.md: propagate the new email where the destination
    /// allows it, otherwise record an actionable error).
    fn email_follows_link(&mut self, figures: &mut CheckFigures) -> CheckResult {
        let mut r = rule(
            "email_follows_link",
            "both records of a link carry the same email, unless the contact has a recorded error for its email",
        );
        let mut found = Vec::new();
        for p in &self.complete {
            if p.contact.email == p.subscriber.email {
                r.checked += 1;
                continue;
            }
            if self.exempt(p).contains("email") {
                figures.emails_exempted_by_errors += 1;
                continue;
            }
            r.checked += 1;
            found.push((
                p.link.id.clone(),
                format!(
                    "link {}: HubSpot contact {} has {} but MailerLite subscriber {} has {}{}",
                    p.link.id,
                    p.contact.id,
                    show(p.contact.email.as_deref()),
                    p.subscriber.id,
                    show(p.subscriber.email.as_deref()),
                    p.contact.merges()
                ),
            ));
        }
        for (link, message) in found {
            self.violation(&mut r, Some(&link), message);
        }
        r
    }

    /// Mapped values agree through the conversion: two-way fields while both records are in
    /// scope (a change made while one was out of scope waits, by the rules); one-way fields equal
    /// their source when the source is in scope and not blank (a blank source fills nothing).
    /// Fields a recorded error names are exempt; so are blanks a mapping keeps on purpose.
    fn mapped_fields(&mut self, figures: &mut CheckFigures) -> CheckResult {
        let mut r = rule(
            "mapped_fields",
            "mapped fields equal through the conversion (two-way fields while both sides are in scope, one-way \
             fields equal to their non-blank source), unless the contact has a recorded error for the field",
        );
        let mut found = Vec::new();
        for p in &self.complete {
            let (c, s, l) = (p.contact, p.subscriber, p.link);
            let exempt: BTreeSet<&String> = [l.id.clone(), format!("hubspot:{}", c.id), format!("mailerlite:{}", s.id)]
                .iter()
                .filter_map(|k| self.errored.get(k))
                .flatten()
                .collect();
            for m in self.mappings {
                let property = &m.mapping.hubspot_property;
                let field = &m.mapping.mailerlite_field;
                let hs_value = m.conversion.norm_hs(c.prop(property));
                let ml_value = m.conversion.norm_ml(s.fields.get(field).unwrap_or(&Value::Null));
                let required = match (m.from_hubspot, m.from_mailerlite) {
                    (true, true) => c.in_scope && s.in_scope,
                    (true, false) => c.in_scope && hs_value.is_some(),
                    (false, true) => s.in_scope && ml_value.is_some(),
                    (false, false) => false,
                };
                let blank_kept = m.mapping.never_overwrite_with_blank && (hs_value.is_none() || ml_value.is_none());
                if !required || blank_kept {
                    continue;
                }
                if exempt.contains(property) || exempt.contains(field) {
                    figures.field_values_exempted_by_errors += 1;
                    continue;
                }
                figures.field_values_compared += 1;
                r.checked += 1;
                if !m.conversion.equivalent(hs_value.as_deref(), ml_value.as_deref()) {
                    let way = match m.mapping.direction {
                        Direction::TwoWay => "two-way",
                        Direction::HubSpotToMailerLite => "HubSpot → MailerLite",
                        Direction::MailerLiteToHubSpot => "MailerLite → HubSpot",
                    };
                    found.push((
                        l.id.clone(),
                        format!(
                            "{}: HubSpot {property} = {} but MailerLite {field} = {} ({way}; link {}{})",
                            p.label(),
                            show(hs_value.as_deref()),
                            show(ml_value.as_deref()),
                            l.id,
                            c.merges()
                        ),
                    ));
                }
            }
        }
        for (link, message) in found {
            self.violation(&mut r, Some(&link), message);
        }
        r
    }

    /// A HubSpot opt-out reaches the linked subscriber; the subscriber's status is recorded on
    /// the contact (when engagement is recorded).
    fn statuses(&mut self) -> (CheckResult, Option<CheckResult>) {
        let mut opt_out = rule("hubspot_opt_out", "a HubSpot contact opted out of email is never active in MailerLite");
        let mut recorded = self.config.engagement.enabled.then(|| {
            rule(
                "status_recorded",
                "the MailerLite status is recorded on the linked HubSpot contact (mailerlite_status)",
            )
        });
        let mut found: Vec<(bool, String, String)> = Vec::new();
        for p in &self.complete {
            let (c, s, l) = (p.contact, p.subscriber, p.link);
            opt_out.checked += 1;
            if c.opted_out() && !suppressed(&s.status) {
                let message = format!(
                    "{}: opted out of email in HubSpot but {} in MailerLite (link {}{})",
                    p.label(),
                    s.status,
                    l.id,
                    c.merges()
                );
                found.push((true, l.id.clone(), message));
            }
            if let Some(r) = recorded.as_mut() {
                r.checked += 1;
                if c.prop(engagement::STATUS) != Some(s.status.as_str()) {
                    let message = format!(
                        "{}: HubSpot {} = {} but the subscriber is {} (link {}{})",
                        p.label(),
                        engagement::STATUS,
                        show(c.prop(engagement::STATUS)),
                        s.status,
                        l.id,
                        c.merges()
                    );
                    found.push((false, l.id.clone(), message));
                }
            }
        }
        for (is_opt_out, link, message) in found {
            match (is_opt_out, recorded.as_mut()) {
                (true, _) => self.violation(&mut opt_out, Some(&link), message),
                (false, Some(r)) => self.violation(r, Some(&link), message),
                (false, None) => {}
            }
        }
        (opt_out, recorded)
    }

    /// Every subscriber the seed or the person made unsubscribed, bounced or junk still is.
    fn nobody_resubscribed(&mut self, expected: &Expectations) -> CheckResult {
        let mut r = rule(
            "nobody_resubscribed",
            "every subscriber the seed or the person made unsubscribed, bounced or junk is still so",
        );
        for (id, was) in &expected.suppressed {
            r.checked += 1;
            match self.ml_by_id.get(id.as_str()) {
                None => r.violations.push(format!("subscriber {id} ({was}) is gone")),
                Some(s) if s.status != *was => {
                    let link = self.by_ml.get(id.as_str()).and_then(|v| v.first()).map(|l| l.id.clone());
                    let message =
                        format!("subscriber {id} {} was {was} and is now {}", show(s.email.as_deref()), s.status);
                    self.violation(&mut r, link.as_deref(), message);
                }
                Some(_) => {}
            }
        }
        r
    }

    /// The target group holds exactly the subscribers whose linked HubSpot contact exists and
    /// matches the HubSpot rule (the soak never puts anyone there by hand).
    fn target_group(&mut self, group: &str) -> CheckResult {
        let mut r = rule(
            "target_group",
            "a subscriber is in the target group exactly while its linked HubSpot contact exists and matches the \
             HubSpot rule",
        );
        let from_hubspot = self.config.direction.allows_from(Side::HubSpot);
        let belongs: HashMap<&str, (&str, bool)> = self
            .complete
            .iter()
            .map(|p| (p.subscriber.id.as_str(), (p.link.id.as_str(), p.contact.in_scope && from_hubspot)))
            .collect();
        let mut found = Vec::new();
        for s in self.subscribers {
            r.checked += 1;
            let member = s.groups.contains(group);
            let any_link = self.by_ml.get(s.id.as_str()).and_then(|v| v.first()).copied();
            let (link, should) = match belongs.get(s.id.as_str()) {
                Some((l, b)) => (Some(*l), *b),
                None => (any_link.map(|l| l.id.as_str()), false),
            };
            if member && !should {
                let why = match any_link {
                    None => "it is not linked".to_string(),
                    Some(l) if l.hs_deleted || l.hubspot_id.is_none() => {
                        format!("its HubSpot contact is gone (link {} marks it deleted)", l.id)
                    }
                    Some(l) => match l.hubspot_id.as_deref().and_then(|i| self.hs_by_id.get(i)) {
                        None => format!(
                            "its HubSpot contact {} no longer exists (link {})",
                            l.hubspot_id.as_deref().unwrap_or("-"),
                            l.id
                        ),
                        Some(c) => {
                            format!("its HubSpot contact {} does not match the HubSpot rule (link {})", c.id, l.id)
                        }
                    },
                };
                let message =
                    format!("subscriber {} {} is in the target group but {why}", s.id, show(s.email.as_deref()));
                found.push((link.map(str::to_string), message));
            } else if !member && should {
                let message = format!(
                    "subscriber {} {} is not in the target group but its HubSpot contact matches the rule",
                    s.id,
                    show(s.email.as_deref())
                );
                found.push((link.map(str::to_string), message));
            }
        }
        for (link, message) in found {
            self.violation(&mut r, link.as_deref(), message);
        }
        r
    }
}

fn evaluate(
    config: &ConnectionConfig,
    mappings: &[CheckedMapping],
    contacts: &[Contact],
    subscribers: &[Subscriber],
    links: &[Link],
    errors: &[ContactError],
    expected: &Expectations,
) -> CheckReport {
    let mut view = View::new(config, mappings, contacts, subscribers, links, errors);
    let mut figures = CheckFigures::default();
    let mut checks = vec![
        view.linked_once(),
        view.no_duplicates(),
        view.email_follows_link(&mut figures),
        view.mapped_fields(&mut figures),
    ];
    checks.push(view.nobody_resubscribed(expected));
    let (opt_out, recorded) = view.statuses();
    checks.push(opt_out);
    checks.extend(recorded);
    if let Some(group) = &config.target_group {
        checks.push(view.target_group(group));
    }

    figures.hubspot_contacts = contacts.len() as u64;
    figures.hubspot_in_scope = contacts.iter().filter(|c| c.in_scope && c.email.is_some()).count() as u64;
    figures.hubspot_without_email = contacts.iter().filter(|c| c.email.is_none()).count() as u64;
    figures.mailerlite_subscribers = subscribers.len() as u64;
    figures.mailerlite_in_scope = subscribers.iter().filter(|s| s.in_scope && s.email.is_some()).count() as u64;
    figures.links = links.len() as u64;
    figures.complete_links = view.complete.len() as u64;
    figures.converged = view.complete.iter().filter(|p| !view.flagged.contains(&p.link.id)).count() as u64;
    figures.recorded_errors = errors.len() as u64;
    let error_lines = errors
        .iter()
        .flat_map(|e| {
            e.problems.iter().map(move |p| format!("{}: {}", e.email.as_deref().unwrap_or(&e.key), p.message))
        })
        .collect();
    let flagged_records = links
        .iter()
        .filter(|l| view.flagged.contains(&l.id))
        .flat_map(|l| [l.hubspot_id.clone(), l.mailerlite_id.clone()])
        .flatten()
        .collect();
    let errored_records = errors
        .iter()
        .flat_map(|e| {
            let link = links.iter().find(|l| l.id == e.key);
            [
                e.hubspot_id.clone(),
                e.mailerlite_id.clone(),
                link.and_then(|l| l.hubspot_id.clone()),
                link.and_then(|l| l.mailerlite_id.clone()),
            ]
        })
        .flatten()
        .collect();
    CheckReport { checks, figures, errors: error_lines, flagged_records, errored_records }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmsync_store::ContactProblem;

    const GROUP: &str = "g-target";

    fn config() -> ConnectionConfig {
        let mut c = ConnectionConfig::new("checker");
        c.target_group = Some(GROUP.into());
        c.mappings = vec![
            FieldMapping::new("firstname", "name"),
            FieldMapping::new("company", "company").with_direction(Direction::HubSpotToMailerLite),
        ];
        c
    }

    fn mappings(config: &ConnectionConfig) -> Vec<CheckedMapping> {
        config
            .mappings
            .iter()
            .map(|m| CheckedMapping {
                mapping: m.clone(),
                conversion: Conversion::new(
                    &HsProperty::new(&m.hubspot_property, HsType::String, "text"),
                    &MlField::new(&m.mailerlite_field, MlType::Text),
                )
                .unwrap(),
                from_hubspot: m.direction.allows_from(Side::HubSpot),
                from_mailerlite: m.direction.allows_from(Side::MailerLite),
            })
            .collect()
    }

    fn contact(id: &str, email: &str, props: &[(&str, &str)]) -> Contact {
        let mut properties: BTreeMap<String, Option<String>> =
            props.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
        properties.insert("email".into(), Some(email.into()));
        properties.insert(engagement::STATUS.into(), Some("active".into()));
        Contact { id: id.into(), email: normalize_email(email), properties, in_scope: true }
    }

    fn subscriber(id: &str, email: &str, fields: &[(&str, &str)]) -> Subscriber {
        Subscriber {
            id: id.into(),
            email: normalize_email(email),
            status: "active".into(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect(),
            groups: BTreeSet::from([GROUP.to_string()]),
            in_scope: true,
        }
    }

    fn link(id: &str, hs: &str, ml: &str, email: &str) -> Link {
        let mut l = Link::new(id, email);
        l.hubspot_id = Some(hs.into());
        l.mailerlite_id = Some(ml.into());
        l
    }

    struct Case {
        config: ConnectionConfig,
        contacts: Vec<Contact>,
        subscribers: Vec<Subscriber>,
        links: Vec<Link>,
        errors: Vec<ContactError>,
        expected: Expectations,
    }

    impl Case {
        /// Ada, linked and converged.
        fn converged() -> Case {
            Case {
                config: config(),
                contacts: vec![contact("1", "ada@x.com", &[("firstname", "Ada"), ("company", "Acme")])],
                subscribers: vec![subscriber("s1", "ada@x.com", &[("name", "Ada"), ("company", "Acme")])],
                links: vec![link("L1", "1", "s1", "ada@x.com")],
                errors: Vec::new(),
                expected: Expectations::default(),
            }
        }

        /// The violations, by check name.
        fn run(&self) -> BTreeMap<&'static str, Vec<String>> {
            let m = mappings(&self.config);
            let r = evaluate(
                &self.config,
                &m,
                &self.contacts,
                &self.subscribers,
                &self.links,
                &self.errors,
                &self.expected,
            );
            r.checks.into_iter().filter(|c| !c.passed()).map(|c| (c.name, c.violations)).collect()
        }
    }

    #[test]
    fn a_converged_pair_passes_every_check() {
        assert_eq!(Case::converged().run(), BTreeMap::new());
    }

    #[test]
    fn a_differing_two_way_field_is_a_violation_unless_an_error_names_it() {
        let mut case = Case::converged();
        case.subscribers[0].fields.insert("name".into(), Value::from("Augusta"));
        let found = case.run();
        assert_eq!(found.keys().collect::<Vec<_>>(), vec![&"mapped_fields"], "{found:?}");
        assert!(found["mapped_fields"][0].contains("firstname = \"Ada\""), "{found:?}");
        let problem = ContactProblem {
            side: Side::HubSpot,
            field: Some("firstname".into()),
            message: "refused".into(),
            action: "fix it".into(),
            api_message: None,
            refused: BTreeMap::new(),
        };
        case.errors.push(ContactError::new("L1", vec![problem]));
        assert_eq!(case.run(), BTreeMap::new());
    }

    #[test]
    fn a_one_way_field_follows_its_source_only_when_the_source_has_a_value() {
        let mut case = Case::converged();
        case.subscribers[0].fields.insert("company".into(), Value::from("Globex"));
        assert!(case.run().contains_key("mapped_fields"));
        case.contacts[0].properties.insert("company".into(), None);
        assert_eq!(case.run(), BTreeMap::new(), "a blank source fills nothing");
    }

    #[test]
    fn a_link_to_a_contact_that_is_gone_is_flagged_unless_it_says_so() {
        let mut case = Case::converged();
        case.contacts.clear();
        let found = case.run();
        assert!(found["linked_once"].iter().any(|v| v.contains("no longer exists")), "{found:?}");
        assert!(found["target_group"][0].contains("no longer exists"), "{found:?}");
        case.links[0].hs_deleted = true;
        case.subscribers[0].groups.clear();
        assert_eq!(case.run(), BTreeMap::new());
    }

    #[test]
    fn an_opted_out_contact_with_an_active_subscriber_is_flagged() {
        let mut case = Case::converged();
        case.contacts[0].properties.insert("hs_email_optout".into(), Some("true".into()));
        assert!(case.run().contains_key("hubspot_opt_out"));
        case.subscribers[0].status = "unsubscribed".into();
        case.contacts[0].properties.insert(engagement::STATUS.into(), Some("unsubscribed".into()));
        assert_eq!(case.run(), BTreeMap::new());
    }

    #[test]
    fn a_resubscribed_subscriber_and_an_unrecorded_status_are_flagged() {
        let mut case = Case::converged();
        case.expected.suppressed.insert("s1".into(), "unsubscribed".into());
        let found = case.run();
        assert_eq!(found.keys().collect::<Vec<_>>(), vec![&"nobody_resubscribed"], "{found:?}");
        case.expected.suppressed.clear();
        case.subscribers[0].status = "bounced".into();
        assert!(case.run().contains_key("status_recorded"));
    }

    #[test]
    fn an_in_scope_record_without_a_link_and_duplicates_are_flagged() {
        let mut case = Case::converged();
        case.subscribers.push(subscriber("s2", "ADA@x.com ", &[]));
        case.contacts.push(contact("2", "bob@x.com", &[]));
        let found = case.run();
        assert!(found["no_duplicates"][0].contains("ada@x.com is the email of 2 MailerLite subscribers"), "{found:?}");
        assert_eq!(found["linked_once"].len(), 2, "{found:?}");
    }

    #[test]
    fn the_target_group_follows_the_hubspot_rule() {
        let mut case = Case::converged();
        case.contacts[0].in_scope = false;
        let found = case.run();
        assert!(found["target_group"][0].contains("does not match the HubSpot rule"), "{found:?}");
        case.subscribers[0].groups.clear();
        assert_eq!(case.run(), BTreeMap::new());
        case.contacts[0].in_scope = true;
        assert!(case.run()["target_group"][0].contains("is not in the target group"));
    }
}
