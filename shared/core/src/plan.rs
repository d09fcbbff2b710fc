//! The planner: from the config, the link and what each app holds now, decide exactly what to
//! write where (docs/sync-rules.md). Pure: the engine reads, plans, writes and stores the new link.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConnectionConfig, FieldMapping, HubSpotObject, MailerLiteRule, Side};
use crate::engagement;
use crate::record::{FieldBase, HubSpotContact, Link, MailerLiteSubscriber};
use crate::rules::MlStatus;
use crate::safety::SafetyCounters;
use crate::schema::FieldSchemas;
use crate::value::{Conversion, ValueError};

/// Initial (historical) sync links both databases; continuous sync keeps them in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Initial,
    Continuous,
}

/// A write to HubSpot. Property values are wire strings; `""` clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HubSpotWrite {
    Create { properties: BTreeMap<String, String> },
    Update { id: String, properties: BTreeMap<String, String> },
}

/// A write to MailerLite. Field values are JSON; `null` clears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MailerLiteWrite {
    Create {
        email: String,
        fields: BTreeMap<String, Value>,
        status: MlStatus,
        groups: Vec<String>,
    },
    Update {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        fields: BTreeMap<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<MlStatus>,
    },
}

/// A MailerLite group membership change of an existing subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupChange {
    Add { group_id: String },
    Remove { group_id: String },
}

/// Why a change was made, for the contact's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", content = "side", rename_all = "snake_case")]
pub enum Reason {
    /// Created on the target side from the other side's record.
    Created,
    /// An existing pair was linked by email.
    Linked,
    /// Only one side had a value; it filled the empty side.
    FilledEmpty,
    /// Only this side changed since the last sync.
    ChangedOn(Side),
    /// Both sides differ and this side is the conflict winner.
    ConflictWinner(Side),
    /// A one-way mapping: the target mirrors this side.
    MirrorsSource(Side),
    /// The email changed on this side; the link follows it.
    EmailFollowed(Side),
    /// The contact opted out of email in HubSpot.
    OptedOutInHubSpot,
    /// The MailerLite status is recorded on the HubSpot contact.
    StatusRecorded,
    /// The contact matches the HubSpot rule.
    AddedToTargetGroup,
    /// The contact stopped matching the HubSpot rule (never unsubscribed, never deleted).
    StoppedMatching,
    DeletedIn(Side),
    RestoredIn(Side),
    /// A blank did not replace the other side's value ("never overwrite with a blank").
    BlankKept,
}

/// One planned change, with before/after for history and preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Where the change is written (or observed, for deletions).
    pub target: Side,
    /// The property or field key, or `contact`, `email`, `status`, `group:<id>`.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub reason: Reason,
}

/// A value that could not be written; the rest of the contact still syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The side the value could not be written to.
    pub target: Side,
    pub mapping: String,
    pub hubspot_property: String,
    pub mailerlite_field: String,
    pub error: ValueError,
}

/// Why a record takes no part in the sync (counted, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    NoEmail,
}

/// Everything to do for one contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub hubspot: Option<HubSpotWrite>,
    pub mailerlite: Option<MailerLiteWrite>,
    pub group_changes: Vec<GroupChange>,
    /// Opt the contact out of all email in HubSpot (communication preferences).
    pub hubspot_unsubscribe_all: bool,
    /// The link after the plan is applied; ids of records still to be created are `None`.
    /// `None` when nothing is linked (out of scope, or excluded).
    pub link: Option<Link>,
    pub changes: Vec<Change>,
    pub errors: Vec<FieldError>,
    pub exclusion: Option<Exclusion>,
    pub safety: SafetyCounters,
}

impl Plan {
    /// Whether the plan writes anything to either app.
    pub fn has_writes(&self) -> bool {
        self.hubspot.is_some()
            || self.mailerlite.is_some()
            || !self.group_changes.is_empty()
            || self.hubspot_unsubscribe_all
    }

    /// The number of field conflicts the plan resolves.
    pub fn conflicts(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c.reason, Reason::ConflictWinner(_))).count()
    }

    /// The value the plan writes to `field` of an existing record on `side` (`email`, a HubSpot
    /// property or a MailerLite field key), as text: what a refused value is compared with.
    pub fn written_value(&self, side: Side, field: &str) -> Option<String> {
        match side {
            Side::HubSpot => match &self.hubspot {
                Some(HubSpotWrite::Update { properties, .. } | HubSpotWrite::Create { properties }) => {
                    properties.get(field).cloned()
                }
                None => None,
            },
            Side::MailerLite => match &self.mailerlite {
                Some(MailerLiteWrite::Update { email, fields, .. }) => match field {
                    "email" => email.clone(),
                    _ => fields.get(field).map(value_text),
                },
                _ => None,
            },
        }
    }
}

/// A MailerLite value as text (strings as they are, anything else as JSON).
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One mapping, prepared once per connection.
#[derive(Debug, Clone)]
struct PreparedMapping {
    mapping: FieldMapping,
    key: String,
    conversion: Conversion,
    from_hubspot: bool,
    from_mailerlite: bool,
    winner: Side,
}

impl PreparedMapping {
    /// The only side data flows from, when the mapping (with the connection direction and the
    /// property's writability) is one-way.
    fn one_way_source(&self) -> Option<Side> {
        match (self.from_hubspot, self.from_mailerlite) {
            (true, false) => Some(Side::HubSpot),
            (false, true) => Some(Side::MailerLite),
            _ => None,
        }
    }
}

/// Plans contacts for one connection. Build it once per batch; planning is then cheap.
#[derive(Debug, Clone)]
pub struct Planner {
    config: ConnectionConfig,
    mappings: Vec<PreparedMapping>,
}

/// The planner's view of one side's value of a mapping.
struct Values {
    hs: Option<String>,
    ml: Option<String>,
}

impl Planner {
    /// Prepares the mappings; a mapping whose fields are missing from the schemas or whose types
    /// have no conversion is skipped (validation reports it to the user).
    pub fn new(config: &ConnectionConfig, schemas: &FieldSchemas) -> Planner {
        let mappings = config
            .mappings
            .iter()
            .filter_map(|m| {
                let property = schemas.hubspot_property(m.hubspot_object, &m.hubspot_property)?;
                let field = schemas.mailerlite_field(&m.mailerlite_field)?;
                let conversion = Conversion::new(property, field).ok()?;
                let from_hubspot =
                    config.direction.allows_from(Side::HubSpot) && m.direction.allows_from(Side::HubSpot);
                let from_mailerlite = config.direction.allows_from(Side::MailerLite)
                    && m.direction.allows_from(Side::MailerLite)
                    && m.hubspot_object == HubSpotObject::Contact
                    && property.is_writable();
                let winner = match (from_hubspot, from_mailerlite) {
                    (true, false) => Side::HubSpot,
                    (false, true) => Side::MailerLite,
                    _ => m.conflict_winner.unwrap_or(config.conflict_winner),
                };
                Some(PreparedMapping {
                    mapping: m.clone(),
                    key: m.key(),
                    conversion,
                    from_hubspot,
                    from_mailerlite,
                    winner,
                })
            })
            .collect();
        Planner { config: config.clone(), mappings }
    }

    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// Takes back what `plan` writes to `field` of the record on `side` — a value that app
    /// refused — as if it had not been planned: the link keeps what it held for that field (so
    /// the change stays pending, and is sent once it changes), and everything else of the contact
    /// is written as planned (a HubSpot contact is still created, without the value). Returns
    /// whether there was such a write.
    pub fn withhold(&self, plan: &mut Plan, link: Option<&Link>, side: Side, field: &str) -> bool {
        let taken = match (side, &mut plan.hubspot, &mut plan.mailerlite) {
            (Side::HubSpot, Some(HubSpotWrite::Update { properties, .. }), _) => {
                let taken = properties.remove(field).is_some();
                if properties.is_empty() {
                    plan.hubspot = None;
                }
                taken
            }
            // A contact is created without the refused value (never without its email).
            (Side::HubSpot, Some(HubSpotWrite::Create { properties }), _) if field != "email" => {
                properties.remove(field).is_some()
            }
            (Side::MailerLite, _, Some(MailerLiteWrite::Update { email, fields, status, .. })) => {
                let taken = match field {
                    "email" => email.take().is_some(),
                    _ => fields.remove(field).is_some(),
                };
                if email.is_none() && fields.is_empty() && status.is_none() {
                    plan.mailerlite = None;
                }
                taken
            }
            _ => false,
        };
        if !taken {
            return false;
        }
        plan.changes.retain(|c| !(c.target == side && c.field == field));
        let Some(next) = plan.link.as_mut() else { return true };
        if field == "email" {
            if let Some(l) = link {
                next.email = l.email.clone();
            }
            return true;
        }
        for m in &self.mappings {
            let maps = match side {
                Side::HubSpot => {
                    m.mapping.hubspot_object == HubSpotObject::Contact && m.mapping.hubspot_property == field
                }
                Side::MailerLite => m.mapping.mailerlite_field == field,
            };
            if maps {
                match link.and_then(|l| l.bases.get(&m.key)) {
                    Some(base) => next.bases.insert(m.key.clone(), base.clone()),
                    None => next.bases.remove(&m.key),
                };
            }
        }
        true
    }

    /// The mapping keys and conversions in use (for the convergence checks of tests and tools).
    pub fn conversions(&self) -> impl Iterator<Item = (&FieldMapping, &Conversion)> {
        self.mappings.iter().map(|m| (&m.mapping, &m.conversion))
    }

    fn values(&self, m: &PreparedMapping, hs: Option<&HubSpotContact>, ml: Option<&MailerLiteSubscriber>) -> Values {
        let hs_raw = hs.and_then(|h| match m.mapping.hubspot_object {
            HubSpotObject::Contact => h.property(&m.mapping.hubspot_property),
            HubSpotObject::Company => h.company.get(&m.mapping.hubspot_property).and_then(|v| v.as_deref()),
        });
        Values {
            hs: m.conversion.norm_hs(hs_raw),
            ml: ml.and_then(|s| m.conversion.norm_ml(s.field(&m.mapping.mailerlite_field))),
        }
    }

    /// Plans one contact. `link` is what the store holds (if linked); `hubspot` and `mailerlite`
    /// are the records as read now (`None`: not found, i.e. absent or deleted).
    pub fn plan(
        &self,
        phase: Phase,
        link: Option<&Link>,
        hubspot: Option<&HubSpotContact>,
        mailerlite: Option<&MailerLiteSubscriber>,
    ) -> Plan {
        let mut plan = Plan::default();
        let config = &self.config;
        let from_hs = config.direction.allows_from(Side::HubSpot);
        let from_ml = config.direction.allows_from(Side::MailerLite);
        let hs_email = hubspot.and_then(HubSpotContact::email);
        let ml_email = mailerlite.and_then(MailerLiteSubscriber::email);

        if link.is_none() {
            let usable_hs = hubspot.filter(|_| hs_email.is_some());
            let usable_ml = mailerlite.filter(|_| ml_email.is_some());
            if usable_hs.is_none() && usable_ml.is_none() {
                if hubspot.is_some() || mailerlite.is_some() {
                    plan.exclusion = Some(Exclusion::NoEmail);
                }
                return plan;
            }
            return self.plan_unlinked(phase, usable_hs, usable_ml, hs_email.or(ml_email).unwrap_or_default());
        }
        let link = link.expect("checked above");
        let mut next = link.clone();

        // Deletions and restores are observed, never propagated as deletions.
        if hubspot.is_none() && link.hubspot_id.is_some() && !link.hs_deleted {
            next.hs_deleted = true;
            plan.changes.push(change(Side::HubSpot, "contact", None, None, Reason::DeletedIn(Side::HubSpot)));
        }
        if mailerlite.is_none() && link.mailerlite_id.is_some() && !link.ml_deleted {
            next.ml_deleted = true;
            plan.changes.push(change(Side::MailerLite, "contact", None, None, Reason::DeletedIn(Side::MailerLite)));
        }
        if let Some(hs) = hubspot {
            // The survivor of a merge is compared with its actual values now (below).
            next.hs_merged = false;
            if link.hs_deleted {
                plan.changes.push(change(Side::HubSpot, "contact", None, None, Reason::RestoredIn(Side::HubSpot)));
            }
            next.hs_deleted = false;
            next.hubspot_id = Some(hs.id.clone());
            next.hs_in_scope = hs.in_scope;
            next.hs_last_modified = Some(hs.last_modified().to_string());
        }
        if let Some(ml) = mailerlite {
            if link.ml_deleted {
                plan.changes.push(change(
                    Side::MailerLite,
                    "contact",
                    None,
                    None,
                    Reason::RestoredIn(Side::MailerLite),
                ));
            }
            next.ml_deleted = false;
            next.mailerlite_id = Some(ml.id.clone());
            next.ml_in_scope = ml.in_scope;
            next.ml_updated_at = Some(ml.updated_at.clone());
        }

        match (hubspot, mailerlite) {
            (Some(hs), Some(ml)) => self.plan_pair(&mut plan, &mut next, Some(link), hs, ml),
            (Some(hs), None) => {
                let recreate = phase == Phase::Initial || !next.ml_deleted;
                if recreate && from_hs && hs.in_scope && hs_email.is_some() {
                    self.create_in_mailerlite(&mut plan, &mut next, hs, hs_email.as_deref().unwrap_or_default());
                }
            }
            (None, Some(ml)) => {
                let recreate = phase == Phase::Initial || !next.hs_deleted;
                let created = recreate && from_ml && ml.in_scope && ml_email.is_some();
                if created {
                    self.create_in_hubspot(&mut plan, &mut next, ml, ml_email.as_deref().unwrap_or_default());
                }
                let belongs = created && from_hs && self.config.hubspot_rule.matches_new_contact();
                self.target_group(&mut plan, &mut next, Some(link), belongs, ml);
            }
            (None, None) => {}
        }
        plan.link = Some(next);
        plan
    }

    /// No link yet: link the pair found by email, or create the missing side.
    fn plan_unlinked(
        &self,
        _phase: Phase,
        hubspot: Option<&HubSpotContact>,
        mailerlite: Option<&MailerLiteSubscriber>,
        email: String,
    ) -> Plan {
        let mut plan = Plan::default();
        let config = &self.config;
        let mut next = Link::new("", &email);
        match (hubspot, mailerlite) {
            (Some(hs), Some(ml)) => {
                if !hs.in_scope && !ml.in_scope {
                    return plan;
                }
                next.hubspot_id = Some(hs.id.clone());
                next.mailerlite_id = Some(ml.id.clone());
                next.hs_in_scope = hs.in_scope;
                next.ml_in_scope = ml.in_scope;
                next.hs_last_modified = Some(hs.last_modified().to_string());
                next.ml_updated_at = Some(ml.updated_at.clone());
                plan.changes.push(change(Side::HubSpot, "contact", None, Some(hs.id.clone()), Reason::Linked));
                self.plan_pair(&mut plan, &mut next, None, hs, ml);
            }
            (Some(hs), None) => {
                if !(hs.in_scope && config.direction.allows_from(Side::HubSpot)) {
                    return plan;
                }
                next.hubspot_id = Some(hs.id.clone());
                next.hs_in_scope = true;
                next.hs_last_modified = Some(hs.last_modified().to_string());
                self.create_in_mailerlite(&mut plan, &mut next, hs, &email);
            }
            (None, Some(ml)) => {
                if !(ml.in_scope && config.direction.allows_from(Side::MailerLite)) {
                    return plan;
                }
                next.mailerlite_id = Some(ml.id.clone());
                next.ml_in_scope = true;
                next.ml_updated_at = Some(ml.updated_at.clone());
                self.create_in_hubspot(&mut plan, &mut next, ml, &email);
                let belongs = config.direction.allows_from(Side::HubSpot) && config.hubspot_rule.matches_new_contact();
                self.target_group(&mut plan, &mut next, None, belongs, ml);
            }
            (None, None) => return plan,
        }
        plan.link = Some(next);
        plan
    }

    /// A new subscriber from a HubSpot contact: active unless the contact opted out (consent
    /// beats the seed), in the target group, with every mapped value that converts.
    fn create_in_mailerlite(&self, plan: &mut Plan, next: &mut Link, hs: &HubSpotContact, email: &str) {
        let mut fields = BTreeMap::new();
        // Bases describe a subscriber that no longer exists; start from what is written now.
        next.bases.clear();
        for m in &self.mappings {
            let v = self.values(m, Some(hs), None);
            if !m.from_hubspot {
                // The new subscriber starts blank in fields that never flow into MailerLite.
                next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: None });
                continue;
            }
            match m.conversion.hs_to_ml(v.hs.as_deref()) {
                Ok(Some(out)) => {
                    fields.insert(m.mapping.mailerlite_field.clone(), m.conversion.ml_wire(Some(&out)));
                    next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: Some(out) });
                }
                Ok(None) => {
                    next.bases.insert(m.key.clone(), FieldBase::default());
                }
                Err(error) => plan.errors.push(field_error(Side::MailerLite, m, error)),
            }
        }
        let status = if hs.opted_out() { MlStatus::Unsubscribed } else { MlStatus::Active };
        let groups: Vec<String> = self.config.target_group.iter().cloned().collect();
        next.email = email.to_string();
        next.mailerlite_id = None;
        next.ml_deleted = false;
        next.hs_opted_out = hs.opted_out();
        next.ml_status = Some(status);
        next.in_target_group = !groups.is_empty();
        next.ml_in_scope = self.config.mailerlite_rule.matches_new_subscriber(&groups);
        plan.changes.push(change(Side::MailerLite, "contact", None, Some(email.to_string()), Reason::Created));
        if status == MlStatus::Unsubscribed {
            plan.changes.push(change(
                Side::MailerLite,
                "status",
                None,
                Some(status.to_string()),
                Reason::OptedOutInHubSpot,
            ));
        }
        if self.config.engagement.enabled && hs.property(engagement::STATUS) != Some(status.as_str()) {
            plan.hubspot = Some(HubSpotWrite::Update {
                id: hs.id.clone(),
                properties: BTreeMap::from([(engagement::STATUS.to_string(), status.as_str().to_string())]),
            });
            plan.changes.push(change(
                Side::HubSpot,
                engagement::STATUS,
                None,
                Some(status.to_string()),
                Reason::StatusRecorded,
            ));
        }
        plan.mailerlite = Some(MailerLiteWrite::Create { email: email.to_string(), fields, status, groups });
    }

    /// A new HubSpot contact from a subscriber, with every mapped value that converts.
    fn create_in_hubspot(&self, plan: &mut Plan, next: &mut Link, ml: &MailerLiteSubscriber, email: &str) {
        let mut properties = BTreeMap::from([("email".to_string(), email.to_string())]);
        // Bases describe a contact that no longer exists; start from what is written now.
        next.bases.clear();
        for m in &self.mappings {
            let v = self.values(m, None, Some(ml));
            if !m.from_mailerlite {
                // The new contact starts blank in properties that never flow into HubSpot.
                next.bases.insert(m.key.clone(), FieldBase { hubspot: None, mailerlite: v.ml });
                continue;
            }
            match m.conversion.ml_to_hs(v.ml.as_deref()) {
                Ok(Some(out)) => {
                    properties.insert(m.mapping.hubspot_property.clone(), m.conversion.hs_wire(Some(&out)));
                    next.bases.insert(m.key.clone(), FieldBase { hubspot: Some(out), mailerlite: v.ml });
                }
                Ok(None) => {
                    next.bases.insert(m.key.clone(), FieldBase::default());
                }
                Err(error) => plan.errors.push(field_error(Side::HubSpot, m, error)),
            }
        }
        if self.config.engagement.enabled {
            properties.insert(engagement::STATUS.to_string(), ml.status.as_str().to_string());
        }
        next.email = email.to_string();
        next.hubspot_id = None;
        next.hs_deleted = false;
        next.hs_in_scope = self.config.hubspot_rule.matches_new_contact();
        next.hs_opted_out = false;
        next.ml_status = Some(ml.status);
        plan.changes.push(change(Side::HubSpot, "contact", None, Some(email.to_string()), Reason::Created));
        plan.hubspot = Some(HubSpotWrite::Create { properties });
    }

    /// Both records exist: follow the email, merge every mapped field, carry statuses and the
    /// target group.
    fn plan_pair(
        &self,
        plan: &mut Plan,
        next: &mut Link,
        link: Option<&Link>,
        hs: &HubSpotContact,
        ml: &MailerLiteSubscriber,
    ) {
        let config = &self.config;
        let from_hs = config.direction.allows_from(Side::HubSpot);
        let from_ml = config.direction.allows_from(Side::MailerLite);
        let mut hs_props: BTreeMap<String, String> = BTreeMap::new();
        let mut ml_fields: BTreeMap<String, Value> = BTreeMap::new();
        let mut ml_email: Option<String> = None;
        let mut ml_status: Option<MlStatus> = None;

        // Email: the link is held by both ids; an email change on one side follows the link.
        if let (Some(link), Some(h), Some(m)) = (link, hs.email(), ml.email()) {
            let preferred: &[Side] = match (h != link.email, m != link.email) {
                (true, false) => &[Side::HubSpot],
                (false, true) => &[Side::MailerLite],
                (true, true) if h != m => {
                    if config.conflict_winner == Side::HubSpot {
                        &[Side::HubSpot, Side::MailerLite]
                    } else {
                        &[Side::MailerLite, Side::HubSpot]
                    }
                }
                (true, true) => {
                    next.email = h.clone();
                    &[]
                }
                (false, false) => &[],
            };
            match preferred.iter().copied().find(|s| config.direction.allows_from(*s)) {
                Some(Side::HubSpot) => {
                    ml_email = Some(h.clone());
                    plan.changes.push(change(
                        Side::MailerLite,
                        "email",
                        Some(m),
                        Some(h.clone()),
                        Reason::EmailFollowed(Side::HubSpot),
                    ));
                    next.email = h;
                }
                Some(Side::MailerLite) => {
                    hs_props.insert("email".into(), m.clone());
                    plan.changes.push(change(
                        Side::HubSpot,
                        "email",
                        Some(h),
                        Some(m.clone()),
                        Reason::EmailFollowed(Side::MailerLite),
                    ));
                    next.email = m;
                }
                None => {}
            }
        }

        self.target_group(plan, next, link, from_hs && hs.in_scope, ml);
        // Joining or leaving the target group can move the subscriber in or out of a group rule.
        let ml_in_scope = match &config.mailerlite_rule {
            MailerLiteRule::Groups { group_ids } if !plan.group_changes.is_empty() => {
                let mut groups = ml.groups.clone();
                for c in &plan.group_changes {
                    match c {
                        GroupChange::Add { group_id } => groups.push(group_id.clone()),
                        GroupChange::Remove { group_id } => groups.retain(|g| g != group_id),
                    }
                }
                groups.iter().any(|g| group_ids.contains(g))
            }
            _ => ml.in_scope,
        };
        next.ml_in_scope = ml_in_scope;

        // Mapped fields: three-way merge against the base.
        for m in &self.mappings {
            let v = self.values(m, Some(hs), Some(ml));
            let base = link.and_then(|l| l.bases.get(&m.key));
            if m.conversion.equivalent(v.hs.as_deref(), v.ml.as_deref()) {
                next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: v.ml });
                continue;
            }
            let Some((source, reason)) = self.flow_source(m, &v, base) else { continue };
            let allowed = match source {
                Side::HubSpot => m.from_hubspot && hs.in_scope,
                Side::MailerLite => m.from_mailerlite && ml_in_scope,
            };
            if !allowed {
                // Waits until the source matches its rule again; the base keeps the change pending.
                continue;
            }
            let (target_value, current) = match source {
                Side::HubSpot => (m.conversion.hs_to_ml(v.hs.as_deref()), v.ml.clone()),
                Side::MailerLite => (m.conversion.ml_to_hs(v.ml.as_deref()), v.hs.clone()),
            };
            let out = match target_value {
                Ok(out) => out,
                Err(error) => {
                    plan.errors.push(field_error(source.other(), m, error));
                    continue;
                }
            };
            if out == current {
                next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: v.ml });
                continue;
            }
            if out.is_none() && m.mapping.never_overwrite_with_blank {
                plan.changes.push(change(
                    source.other(),
                    field_name(m, source.other()),
                    current,
                    None,
                    Reason::BlankKept,
                ));
                next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: v.ml });
                continue;
            }
            if out.is_none() {
                plan.safety.field_clears += 1;
            }
            match source {
                Side::HubSpot => {
                    ml_fields.insert(m.mapping.mailerlite_field.clone(), m.conversion.ml_wire(out.as_deref()));
                    next.bases.insert(m.key.clone(), FieldBase { hubspot: v.hs, mailerlite: out.clone() });
                }
                Side::MailerLite => {
                    hs_props.insert(m.mapping.hubspot_property.clone(), m.conversion.hs_wire(out.as_deref()));
                    next.bases.insert(m.key.clone(), FieldBase { hubspot: out.clone(), mailerlite: v.ml });
                }
            }
            plan.changes.push(change(source.other(), field_name(m, source.other()), current, out, reason));
        }

        // Opt-out in HubSpot → unsubscribed in MailerLite (on the transition, whatever the
        // rules: consent is not a field that stops syncing). Never the other way round.
        let was_opted_out = link.is_some_and(|l| l.hs_opted_out);
        if from_hs && hs.opted_out() && !was_opted_out && matches!(ml.status, MlStatus::Active | MlStatus::Unconfirmed)
        {
            ml_status = Some(MlStatus::Unsubscribed);
            plan.safety.unsubscribes += 1;
            plan.changes.push(change(
                Side::MailerLite,
                "status",
                Some(ml.status.to_string()),
                Some(MlStatus::Unsubscribed.to_string()),
                Reason::OptedOutInHubSpot,
            ));
        }
        next.hs_opted_out = hs.opted_out();
        let status_now = ml_status.unwrap_or(ml.status);

        // The MailerLite status is recorded on the HubSpot contact: when it changed since it
        // was recorded, or when a merge may have copied another contact's status onto it (a
        // status recorded before is not written again on a read that lags behind the write).
        let recorded = link.and_then(|l| l.ml_status);
        let merged = link.is_some_and(|l| l.hs_merged);
        if config.engagement.enabled
            && (recorded != Some(status_now) || merged)
            && hs.property(engagement::STATUS) != Some(status_now.as_str())
        {
            hs_props.insert(engagement::STATUS.to_string(), status_now.as_str().to_string());
            plan.changes.push(change(
                Side::HubSpot,
                engagement::STATUS,
                hs.property(engagement::STATUS).map(str::to_string),
                Some(status_now.to_string()),
                Reason::StatusRecorded,
            ));
        }
        if config.engagement.unsubscribe_in_hubspot
            && from_ml
            && ml.status == MlStatus::Unsubscribed
            && recorded.is_some_and(|s| s != MlStatus::Unsubscribed)
            && !hs.opted_out()
        {
            plan.hubspot_unsubscribe_all = true;
            plan.changes.push(change(
                Side::HubSpot,
                "hs_email_optout",
                None,
                Some("true".into()),
                Reason::StatusRecorded,
            ));
        }
        next.ml_status = Some(status_now);

        if !hs_props.is_empty() {
            plan.hubspot = Some(HubSpotWrite::Update { id: hs.id.clone(), properties: hs_props });
        }
        if !ml_fields.is_empty() || ml_email.is_some() || ml_status.is_some() {
            plan.mailerlite = Some(MailerLiteWrite::Update {
                id: ml.id.clone(),
                email: ml_email,
                fields: ml_fields,
                status: ml_status,
            });
        }
    }

    /// Target group: the subscriber joins while its contact matches the HubSpot rule (and data
    /// flows from HubSpot), and leaves when it stops.
    fn target_group(
        &self,
        plan: &mut Plan,
        next: &mut Link,
        link: Option<&Link>,
        belongs: bool,
        ml: &MailerLiteSubscriber,
    ) {
        let Some(group) = &self.config.target_group else { return };
        if belongs {
            if !ml.groups.contains(group) {
                plan.group_changes.push(GroupChange::Add { group_id: group.clone() });
                plan.changes.push(change(
                    Side::MailerLite,
                    &format!("group:{group}"),
                    None,
                    Some("member".into()),
                    Reason::AddedToTargetGroup,
                ));
            }
            next.in_target_group = true;
        } else {
            self.leave_target_group(plan, next, link, ml);
        }
    }

    /// The contact no longer belongs in the target group (stopped matching, or deleted in
    /// HubSpot): the sync removes it if it put it there — never unsubscribes, never deletes.
    fn leave_target_group(&self, plan: &mut Plan, next: &mut Link, link: Option<&Link>, ml: &MailerLiteSubscriber) {
        let Some(group) = &self.config.target_group else { return };
        if link.is_some_and(|l| l.in_target_group) && ml.groups.contains(group) {
            plan.group_changes.push(GroupChange::Remove { group_id: group.clone() });
            plan.safety.group_removals += 1;
            plan.changes.push(change(
                Side::MailerLite,
                &format!("group:{group}"),
                Some("member".into()),
                None,
                Reason::StoppedMatching,
            ));
        }
        next.in_target_group = false;
    }

    /// Which side's value should win for a field whose sides differ, and why. `None`: nothing
    /// flows (a one-way source that is blank and always was; a blank kept on purpose).
    fn flow_source(&self, m: &PreparedMapping, v: &Values, base: Option<&FieldBase>) -> Option<(Side, Reason)> {
        if let Some(source) = m.one_way_source() {
            let source_value = match source {
                Side::HubSpot => &v.hs,
                Side::MailerLite => &v.ml,
            };
            let source_had_value = base.is_some_and(|b| match source {
                Side::HubSpot => b.hubspot.is_some(),
                Side::MailerLite => b.mailerlite.is_some(),
            });
            // A blank source fills nothing; only clearing a value that was synced propagates.
            return (source_value.is_some() || source_had_value).then_some((source, Reason::MirrorsSource(source)));
        }
        if !m.from_hubspot {
            return None;
        }
        let fill = || match (&v.hs, &v.ml) {
            (None, _) => (Side::MailerLite, Reason::FilledEmpty),
            (_, None) => (Side::HubSpot, Reason::FilledEmpty),
            _ => (m.winner, Reason::ConflictWinner(m.winner)),
        };
        let Some(base) = base else { return Some(fill()) };
        let hs_changed = v.hs != base.hubspot;
        let ml_changed = v.ml != base.mailerlite;
        match (hs_changed, ml_changed) {
            (true, false) => Some((Side::HubSpot, Reason::ChangedOn(Side::HubSpot))),
            (false, true) => Some((Side::MailerLite, Reason::ChangedOn(Side::MailerLite))),
            (true, true) => Some((m.winner, Reason::ConflictWinner(m.winner))),
            (false, false) => {
                // Nothing changed since the last sync, yet the sides differ: a blank kept on
                // purpose stays; anything else (e.g. a value that failed to convert before and
                // converts now) is resolved as at the initial sync.
                let blank_kept = m.mapping.never_overwrite_with_blank && (v.hs.is_none() || v.ml.is_none());
                (!blank_kept).then(fill)
            }
        }
    }
}

fn field_name(m: &PreparedMapping, side: Side) -> &str {
    match side {
        Side::HubSpot => &m.mapping.hubspot_property,
        Side::MailerLite => &m.mapping.mailerlite_field,
    }
}

fn field_error(target: Side, m: &PreparedMapping, error: ValueError) -> FieldError {
    FieldError {
        target,
        mapping: m.key.clone(),
        hubspot_property: m.mapping.hubspot_property.clone(),
        mailerlite_field: m.mapping.mailerlite_field.clone(),
        error,
    }
}

fn change(target: Side, field: &str, before: Option<String>, after: Option<String>, reason: Reason) -> Change {
    Change { target, field: field.to_string(), before, after, reason }
}
