//! The simulated account: every record, the indexes that keep pages O(page · log n), and the
//! operations both the API handlers and the admin helpers call (so an admin "user edit" and an
//! API write change state and fire webhooks the same way).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, Model};
use super::model::*;
use crate::common::time_fmt::{self, now};

/// A webhook event waiting for the end of the current API call or admin action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingEvent {
    #[serde(deserialize_with = "crate::snapshot::interned")]
    pub kind: crate::snapshot::StaticStr,
    pub subscriber_id: u64,
    pub group: Option<(u64, String)>,
    pub campaign_id: Option<u64>,
    pub url: Option<String>,
}

/// The webhook-visible event names (<https://developers.mailerlite.com/docs/webhooks.html>).
pub const EVENTS: [&str; 14] = [
    "subscriber.created",
    "subscriber.updated",
    "subscriber.unsubscribed",
    "subscriber.added_to_group",
    "subscriber.removed_from_group",
    "subscriber.bounced",
    "subscriber.automation_triggered",
    "subscriber.automation_completed",
    "subscriber.spam_reported",
    "subscriber.deleted",
    "subscriber.active",
    "campaign.sent",
    "campaign.click",
    "campaign.open",
];

/// Events whose webhooks must be `batchable: true` (documented).
pub const BATCH_ONLY_EVENTS: [&str; 3] = ["campaign.open", "campaign.click", "subscriber.deleted"];

/// A validated subscriber write (POST upsert or PUT update).
#[derive(Debug, Clone, Default)]
pub struct SubscriberInput {
    pub email: Option<String>,
    /// Known field keys only, values normalized to their field type; `None` clears.
    pub fields: Vec<(String, Option<Value>)>,
    pub groups: Option<Vec<u64>>,
    pub status: Option<Status>,
    pub subscribed_at: Option<Option<i64>>,
    pub unsubscribed_at: Option<Option<i64>>,
    pub opted_in_at: Option<Option<i64>>,
    pub ip_address: Option<Option<String>>,
    pub optin_ip: Option<Option<String>>,
}

/// Who changed a status: decides which webhook fires and whether reactivation is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An API call: cannot reactivate unsubscribed/bounced/junk subscribers.
    Api,
    /// A person in the app or a form: may do anything.
    User,
    /// The subscriber marked a campaign as spam.
    SpamReport,
}

/// The account. Serializable for snapshots (`super::snapshot`): the email index and the status
/// counters (the account's and each group's) are derived and rebuilt on restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    pub account_id: u64,
    pub(super) next_id: u64,
    /// Kept as its current state, so a restored account continues the same id sequence.
    #[serde(with = "crate::snapshot::rng")]
    pub(super) rng: fastrand::Rng,
    pub subscribers: BTreeMap<u64, Subscriber>,
    /// Lower-cased email → id of the live or soft-deleted subscriber holding it (forgotten ones
    /// release their email).
    #[serde(skip)]
    pub(super) email_index: HashMap<String, u64>,
    pub groups: BTreeMap<u64, Group>,
    /// Live subscribers by status (index = `Status::index`), kept with the group counters.
    #[serde(skip)]
    pub(super) status_counts: [u64; 5],
    pub fields: Vec<FieldDef>,
    pub(super) next_field_id: u64,
    pub segments: BTreeMap<u64, Segment>,
    pub webhooks: BTreeMap<u64, Webhook>,
    pub campaigns: BTreeMap<u64, Campaign>,
    pub imports: BTreeMap<u64, Import>,
    pub activity: HashMap<u64, Vec<LogEntry>>,
    pub pending: Vec<PendingEvent>,
    /// Bumped on every mutable access through `MailerLite::store()` (see `super::snapshot`).
    #[serde(skip)]
    pub(super) generation: u64,
}

fn default_fields() -> Vec<FieldDef> {
    [("Name", "name"), ("Last name", "last_name"), ("Company", "company"), ("Country", "country"), ("City", "city")]
        .into_iter()
        .chain([("Phone", "phone"), ("State", "state"), ("Zip", "z_i_p")])
        .enumerate()
        .map(|(i, (name, key))| FieldDef {
            id: i as u64 + 1,
            name: name.into(),
            key: key.into(),
            kind: FieldType::Text,
            is_default: true,
        })
        .collect()
}

/// A loose email check in the spirit of "RFC 2821": one `@`, a non-empty local part, a dotted
/// domain, no whitespace.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254
}

/// Laravel's attribute name in messages: underscores become spaces.
fn attr(name: &str) -> String {
    name.replace('_', " ")
}

impl Store {
    pub fn new(account_id: u64, seed: u64) -> Self {
        Self {
            account_id,
            next_id: 165_968_862_226_941_000,
            rng: fastrand::Rng::with_seed(seed),
            subscribers: BTreeMap::new(),
            email_index: HashMap::new(),
            groups: BTreeMap::new(),
            status_counts: [0; 5],
            fields: default_fields(),
            next_field_id: 947_147,
            segments: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            imports: BTreeMap::new(),
            activity: HashMap::new(),
            pending: Vec::new(),
            generation: 0,
        }
    }

    /// A new 18-digit id, larger than every id handed out before (ids sort by creation).
    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1 + self.rng.u64(0..4096);
        self.next_id
    }

    pub fn random_secret(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..10).map(|_| ALPHABET[self.rng.usize(0..ALPHABET.len())] as char).collect()
    }

    // --- lookups -----------------------------------------------------------------------------

    /// The live subscriber with this id or (case-insensitive) email.
    pub fn find_live(&self, id_or_email: &str) -> Option<u64> {
        let id = match id_or_email.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => self.email_index.get(&id_or_email.trim().to_lowercase()).copied(),
        }?;
        self.subscribers.get(&id).filter(|s| s.is_live()).map(|s| s.id)
    }

    /// Any subscriber (deleted and forgotten included) by id or email: for the admin API.
    pub fn find_any(&self, id_or_email: &str) -> Option<&Subscriber> {
        match id_or_email.parse::<u64>() {
            Ok(id) => self.subscribers.get(&id),
            Err(_) => self.email_index.get(&id_or_email.trim().to_lowercase()).and_then(|id| self.subscribers.get(id)),
        }
    }

    pub fn live_subscriber(&self, id_or_email: &str) -> Result<&Subscriber, ApiError> {
        self.find_live(id_or_email)
            .and_then(|id| self.subscribers.get(&id))
            .ok_or_else(|| ApiError::NotFound(Model::Subscriber, id_or_email.to_string()))
    }

    pub fn group_id(&self, raw: &str) -> Result<u64, ApiError> {
        raw.parse::<u64>()
            .ok()
            .filter(|id| self.groups.contains_key(id))
            .ok_or_else(|| ApiError::NotFound(Model::Group, raw.to_string()))
    }

    pub fn field_by_key(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    pub fn subscriber_out(&self, s: &Subscriber, with_groups: bool) -> SubscriberOut {
        let groups = with_groups.then(|| s.groups.iter().filter_map(|g| self.groups.get(g)).map(Group::out).collect());
        s.out(&self.fields, groups)
    }

    pub fn live_count(&self, status: Option<Status>) -> u64 {
        match status {
            Some(st) => self.status_counts[st.index()],
            None => self.status_counts.iter().sum(),
        }
    }

    // --- group counters ------------------------------------------------------------------------

    /// Removes a subscriber from the account's and its groups' counters before a change…
    fn detach(&mut self, sid: u64) {
        let Some(s) = self.subscribers.get(&sid) else { return };
        if !s.is_live() {
            return;
        }
        let idx = s.status.index();
        self.status_counts[idx] = self.status_counts[idx].saturating_sub(1);
        for g in s.groups.clone() {
            if let Some(group) = self.groups.get_mut(&g) {
                group.counts[idx] = group.counts[idx].saturating_sub(1);
            }
        }
    }

    /// …and adds it back after.
    fn attach(&mut self, sid: u64) {
        let Some(s) = self.subscribers.get(&sid) else { return };
        if !s.is_live() {
            return;
        }
        let idx = s.status.index();
        self.status_counts[idx] += 1;
        for g in s.groups.clone() {
            if let Some(group) = self.groups.get_mut(&g) {
                group.counts[idx] += 1;
            }
        }
    }

    fn push(&mut self, kind: &'static str, sid: u64) {
        self.pending.push(PendingEvent { kind, subscriber_id: sid, group: None, campaign_id: None, url: None });
    }

    pub fn log(&mut self, sid: u64, log_name: &'static str, subject_type: &'static str, properties: Value, at: i64) {
        let id = self.new_id();
        self.activity.entry(sid).or_default().push(LogEntry {
            id,
            log_name,
            subject_id: id,
            subject_type,
            properties,
            created_at: at,
        });
    }

    fn add_to_group(&mut self, sid: u64, gid: u64) -> bool {
        let added = self.subscribers.get_mut(&sid).is_some_and(|s| s.groups.insert(gid));
        if !added {
            return false;
        }
        let live_status = self.subscribers.get(&sid).filter(|s| s.is_live()).map(|s| s.status);
        let Some(group) = self.groups.get_mut(&gid) else { return false };
        group.members.insert(sid);
        if let Some(st) = live_status {
            group.counts[st.index()] += 1;
        }
        let name = group.name.clone();
        self.pending.push(PendingEvent {
            kind: "subscriber.added_to_group",
            subscriber_id: sid,
            group: Some((gid, name.clone())),
            campaign_id: None,
            url: None,
        });
        let props = serde_json::json!({"group_name": name, "group_id": gid.to_string()});
        self.log(sid, "added_to_group", "subscribers", props, now());
        true
    }

    fn remove_from_group(&mut self, sid: u64, gid: u64) -> bool {
        let removed = self.subscribers.get_mut(&sid).is_some_and(|s| s.groups.remove(&gid));
        if !removed {
            return false;
        }
        let live_status = self.subscribers.get(&sid).filter(|s| s.is_live()).map(|s| s.status);
        let Some(group) = self.groups.get_mut(&gid) else { return false };
        group.members.remove(&sid);
        if let Some(st) = live_status {
            group.counts[st.index()] = group.counts[st.index()].saturating_sub(1);
        }
        let name = group.name.clone();
        self.pending.push(PendingEvent {
            kind: "subscriber.removed_from_group",
            subscriber_id: sid,
            group: Some((gid, name)),
            campaign_id: None,
            url: None,
        });
        true
    }

    /// Changes a status, stamps the matching timestamps and queues the matching webhooks:
    /// `unsubscribed` → `subscriber.unsubscribed`; `active` → `subscriber.active` (plus
    /// `subscriber.updated` when it confirms an unconfirmed subscriber); `bounced` →
    /// `subscriber.bounced`; `junk` → `subscriber.spam_reported` when the person reported spam,
    /// else `subscriber.updated`; `unconfirmed` → `subscriber.updated`.
    pub fn set_status(&mut self, sid: u64, to: Status, actor: Actor, at: i64) {
        let Some(from) = self.subscribers.get(&sid).map(|s| s.status) else { return };
        if from == to {
            return;
        }
        self.detach(sid);
        if let Some(s) = self.subscribers.get_mut(&sid) {
            s.status = to;
            s.updated_at = at;
            match to {
                Status::Unsubscribed => s.unsubscribed_at = Some(at),
                Status::Active => {
                    s.unsubscribed_at = None;
                    if from == Status::Unconfirmed {
                        s.opted_in_at = Some(at);
                    }
                }
                _ => {}
            }
        }
        self.attach(sid);
        match to {
            Status::Unsubscribed => self.push("subscriber.unsubscribed", sid),
            Status::Active => {
                if from == Status::Unconfirmed {
                    self.push_updated_once(sid);
                }
                self.push("subscriber.active", sid);
            }
            Status::Bounced => self.push("subscriber.bounced", sid),
            Status::Junk if actor == Actor::SpamReport => self.push("subscriber.spam_reported", sid),
            Status::Junk | Status::Unconfirmed => self.push_updated_once(sid),
        }
    }

    /// One `subscriber.updated` per subscriber per flush, however many changes caused it.
    fn push_updated_once(&mut self, sid: u64) {
        if !self.pending.iter().any(|e| e.kind == "subscriber.updated" && e.subscriber_id == sid) {
            self.push("subscriber.updated", sid);
        }
    }

    // --- validation ------------------------------------------------------------------------------

    /// Validates a subscriber body. `email_required` for POST; PUT accepts an optional `email`
    /// (an email change, undocumented: UNCONFIRMED).
    pub fn parse_subscriber_input(
        &self,
        body: &Map<String, Value>,
        email_required: bool,
    ) -> Result<SubscriberInput, ApiError> {
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut input = SubscriberInput::default();
        match body.get("email") {
            None | Some(Value::Null) if email_required => {
                errors.push(("email".into(), "The email field is required.".into()))
            }
            None | Some(Value::Null) => {}
            Some(Value::String(e)) if valid_email(e.trim()) => input.email = Some(e.trim().to_lowercase()),
            Some(_) => errors.push(("email".into(), "The email must be a valid email address.".into())),
        }
        match body.get("fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(values)) => {
                for (key, value) in values {
                    // Unknown keys are silently dropped (NODE-TAPES PUT-24 sent `fields.email`).
                    let Some(def) = self.field_by_key(key) else { continue };
                    match normalize_field_value(def, value) {
                        Ok(v) => input.fields.push((key.clone(), v)),
                        Err(msg) => errors.push((format!("fields.{key}"), msg)),
                    }
                }
            }
            Some(_) => errors.push(("fields".into(), "The fields must be an array.".into())),
        }
        match body.get("groups") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                let mut groups = Vec::new();
                for (i, raw) in ids.iter().enumerate() {
                    let id = match raw {
                        Value::String(s) => s.parse::<u64>().ok(),
                        Value::Number(n) => n.as_u64(),
                        _ => None,
                    };
                    match id.filter(|id| self.groups.contains_key(id)) {
                        Some(id) => groups.push(id),
                        None => errors.push((format!("groups.{i}"), format!("The selected groups.{i} is invalid."))),
                    }
                }
                input.groups = Some(groups);
            }
            Some(_) => errors.push(("groups".into(), "The groups must be an array.".into())),
        }
        match body.get("status") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if Status::parse(s).is_some() => input.status = Status::parse(s),
            Some(_) => errors.push(("status".into(), "The selected status is invalid.".into())),
        }
        for key in ["subscribed_at", "unsubscribed_at", "opted_in_at"] {
            let parsed = match body.get(key) {
                None => continue,
                Some(Value::Null) => None,
                Some(Value::String(s)) => match time_fmt::parse_rest(s) {
                    Some(ts) => Some(ts),
                    None => {
                        errors.push((key.into(), format!("The {} does not match the format Y-m-d H:i:s.", attr(key))));
                        continue;
                    }
                },
                Some(_) => {
                    errors.push((key.into(), format!("The {} does not match the format Y-m-d H:i:s.", attr(key))));
                    continue;
                }
            };
            match key {
                "subscribed_at" => input.subscribed_at = Some(parsed),
                "unsubscribed_at" => input.unsubscribed_at = Some(parsed),
                _ => input.opted_in_at = Some(parsed),
            }
        }
        for key in ["ip_address", "optin_ip"] {
            let parsed = match body.get(key) {
                None => continue,
                Some(Value::Null) => None,
                Some(Value::String(s)) if s.parse::<std::net::IpAddr>().is_ok() => Some(s.clone()),
                Some(_) => {
                    errors.push((key.into(), format!("The {} must be a valid IP address.", attr(key))));
                    continue;
                }
            };
            if key == "ip_address" { input.ip_address = Some(parsed) } else { input.optin_ip = Some(parsed) }
        }
        // Validated, then ignored: see `upsert`.
        match body.get("resubscribe") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(_) => errors.push(("resubscribe".into(), "The resubscribe field must be true or false.".into())),
        }
        if errors.is_empty() { Ok(input) } else { Err(ApiError::Validation(errors)) }
    }

    // --- subscriber writes ----------------------------------------------------------------------

    /// The refusal to reactivate (documented: "you will not be able to reactivate them due to
    /// abuse prevention measures"). The text is the one reported in
    /// <https://github.com/mailerlite/mailerlite-nodejs/issues/37> for an unsubscribed subscriber;
    /// assumed: the 422 status, the body without `errors`, and the same sentence with
    /// `bounced`/`junk` for those statuses.
    pub fn reactivation_refused(current: Status) -> ApiError {
        ApiError::Message(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("This subscriber is {} and cannot be imported", current.as_str()),
        )
    }

    /// Applies field values and the plain attributes of `input`; returns whether a visible value
    /// changed (which fires `subscriber.updated` on an existing subscriber).
    fn apply_attributes(&mut self, sid: u64, input: &SubscriberInput, at: i64) -> bool {
        let Some(s) = self.subscribers.get_mut(&sid) else { return false };
        let mut changed = false;
        for (key, value) in &input.fields {
            let old = s.fields.get(key).cloned();
            match value {
                Some(v) => {
                    if old.as_ref() != Some(v) {
                        s.fields.insert(key.clone(), v.clone());
                        changed = true;
                    }
                }
                None => {
                    if old.is_some() {
                        s.fields.remove(key);
                        changed = true;
                    }
                }
            }
        }
        if let Some(v) = input.subscribed_at {
            s.subscribed_at = v;
        }
        if let Some(v) = input.unsubscribed_at {
            s.unsubscribed_at = v;
        }
        if let Some(v) = input.opted_in_at {
            s.opted_in_at = v;
        }
        if let Some(v) = &input.ip_address {
            s.ip_address = v.clone();
        }
        if let Some(v) = &input.optin_ip {
            s.optin_ip = v.clone();
        }
        if changed {
            s.updated_at = at;
        }
        changed
    }

    /// `POST /subscribers`: create, or non-destructively update the subscriber with this email.
    /// Returns the id and whether it was created (201) rather than updated (200).
    ///
    /// Re-creation (undocumented: UNCONFIRMED, chosen here): a soft-deleted subscriber comes
    /// back live with the **same id** and its kept data (DELETE "keeps all their information in
    /// case they re-subscribe"), answered 201 with `subscriber.created`; the status rules apply to
    /// it as to a live one. A forgotten subscriber's data is purged, so POST creates a **new** id.
    pub fn upsert(&mut self, input: SubscriberInput, source: &str) -> Result<(u64, bool), ApiError> {
        let email = input.email.clone().unwrap_or_default();
        let at = now();
        let existing = self.email_index.get(&email).copied();
        if let Some(sid) = existing {
            let (current, live) = {
                let s = &self.subscribers[&sid];
                (s.status, s.is_live())
            };
            let wants_active = matches!(input.status, Some(Status::Active | Status::Unconfirmed));
            // `resubscribe: true` changes nothing: the docs' abuse-prevention sentence is later
            // than the parameter's listing, and issue #37 reports the flag gone.
            if current.is_suppressed() && wants_active {
                return Err(Self::reactivation_refused(current));
            }
            if !live {
                self.detach(sid);
                if let Some(s) = self.subscribers.get_mut(&sid) {
                    s.deleted_at = None;
                    s.updated_at = at;
                }
                self.attach(sid);
                self.push("subscriber.created", sid);
                self.apply_attributes(sid, &input, at);
                if let Some(st) = input.status {
                    self.set_status(sid, st, Actor::User, at);
                }
                for g in input.groups.iter().flatten() {
                    self.add_to_group(sid, *g);
                }
                return Ok((sid, true));
            }
            if self.apply_attributes(sid, &input, at) {
                self.push_updated_once(sid);
            }
            if let Some(st) = input.status {
                self.set_status(sid, st, Actor::Api, at);
            }
            for g in input.groups.iter().flatten() {
                self.add_to_group(sid, *g);
            }
            return Ok((sid, false));
        }
        let sid = self.new_id();
        let status = input.status.unwrap_or(Status::Active);
        self.subscribers.insert(
            sid,
            Subscriber {
                id: sid,
                email: email.clone(),
                status,
                source: source.to_string(),
                sent: 0,
                opens_count: 0,
                clicks_count: 0,
                ip_address: None,
                subscribed_at: Some(at),
                unsubscribed_at: (status == Status::Unsubscribed).then_some(at),
                created_at: at,
                updated_at: at,
                fields: HashMap::new(),
                groups: BTreeSet::new(),
                opted_in_at: None,
                optin_ip: None,
                deleted_at: None,
                forget_at: None,
            },
        );
        self.email_index.insert(email, sid);
        self.attach(sid);
        self.apply_attributes(sid, &input, at);
        if let Some(s) = self.subscribers.get_mut(&sid) {
            s.updated_at = at;
        }
        self.push("subscriber.created", sid);
        for g in input.groups.iter().flatten() {
            self.add_to_group(sid, *g);
        }
        Ok((sid, true))
    }

    /// `PUT /subscribers/{id}`: fields merge, a present `groups` REPLACES membership, `email` may
    /// change. UNCONFIRMED choice: an email held by another subscriber (live or soft-deleted) is
    /// refused with 422 `errors.email` "The email has already been taken.".
    pub fn update(&mut self, sid: u64, input: SubscriberInput, actor: Actor) -> Result<(), ApiError> {
        let at = now();
        let current = self
            .subscribers
            .get(&sid)
            .map(|s| s.status)
            .ok_or_else(|| ApiError::NotFound(Model::Subscriber, sid.to_string()))?;
        let wants_active = matches!(input.status, Some(Status::Active | Status::Unconfirmed));
        if actor == Actor::Api && current.is_suppressed() && wants_active {
            return Err(Self::reactivation_refused(current));
        }
        let mut updated = false;
        if let Some(email) = &input.email {
            let old = self.subscribers[&sid].email.clone();
            if *email != old {
                if self.email_index.get(email).is_some_and(|other| *other != sid) {
                    return Err(ApiError::invalid("email", "The email has already been taken."));
                }
                self.email_index.remove(&old);
                self.email_index.insert(email.clone(), sid);
                if let Some(s) = self.subscribers.get_mut(&sid) {
                    s.email = email.clone();
                    s.updated_at = at;
                }
                updated = true;
            }
        }
        updated |= self.apply_attributes(sid, &input, at);
        if updated {
            self.push_updated_once(sid);
        }
        if let Some(st) = input.status {
            self.set_status(sid, st, actor, at);
        }
        if let Some(groups) = &input.groups {
            let wanted: BTreeSet<u64> = groups.iter().copied().collect();
            let have = self.subscribers[&sid].groups.clone();
            for g in have.difference(&wanted) {
                self.remove_from_group(sid, *g);
            }
            for g in wanted.difference(&have) {
                self.add_to_group(sid, *g);
            }
        }
        Ok(())
    }

    /// Soft delete: hidden from GET and lists, data kept, `subscriber.deleted` fired.
    pub fn delete(&mut self, sid: u64) {
        self.detach(sid);
        if let Some(s) = self.subscribers.get_mut(&sid) {
            s.deleted_at = Some(now());
        }
        self.push("subscriber.deleted", sid);
    }

    /// GDPR forget: deleted now, purged 30 days later; the email is released at once.
    pub fn forget(&mut self, sid: u64) -> SubscriberOut {
        let at = now();
        self.detach(sid);
        let email = {
            let s = self.subscribers.get_mut(&sid).expect("caller checked the subscriber exists");
            s.deleted_at = Some(at);
            s.forget_at = Some(at + 30 * 86_400);
            s.updated_at = at;
            s.email.clone()
        };
        if self.email_index.get(&email) == Some(&sid) {
            self.email_index.remove(&email);
        }
        self.push("subscriber.deleted", sid);
        let s = &self.subscribers[&sid];
        let mut out = self.subscriber_out(s, true);
        out.deleted_at = Some(Value::String(time_fmt::rest(at)));
        out.forget_at = Some(Value::String(time_fmt::rest(at + 30 * 86_400)));
        out.location = Some(Value::Null);
        out
    }

    pub fn assign(&mut self, sid: u64, gid: u64) {
        self.add_to_group(sid, gid);
    }

    /// Returns whether the subscriber was a member.
    pub fn unassign(&mut self, sid: u64, gid: u64) -> bool {
        self.remove_from_group(sid, gid)
    }

    /// Inserts a record as it is (seeding): no events.
    pub fn insert_raw(&mut self, s: Subscriber) {
        let id = s.id;
        self.email_index.insert(s.email.clone(), id);
        self.subscribers.insert(id, s);
        self.attach(id);
    }

    /// Seeding: replaces status and fields and joins groups, firing no webhooks.
    pub fn overwrite_seeded(
        &mut self,
        sid: u64,
        status: Status,
        fields: HashMap<String, Value>,
        groups: &[u64],
        at: i64,
    ) {
        self.detach(sid);
        if let Some(s) = self.subscribers.get_mut(&sid) {
            s.status = status;
            s.fields = fields;
            s.deleted_at = None;
            s.unsubscribed_at = (status == Status::Unsubscribed).then_some(at);
            s.updated_at = at;
            for g in groups {
                s.groups.insert(*g);
            }
        }
        for g in groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.insert(sid);
            }
        }
        self.attach(sid);
    }

    // --- groups, fields, segments ------------------------------------------------------------------

    pub fn create_group(&mut self, name: &str) -> u64 {
        let id = self.new_id();
        self.groups.insert(
            id,
            Group {
                id,
                name: name.to_string(),
                created_at: now(),
                members: BTreeSet::new(),
                counts: [0; 5],
                sent_count: 0,
                opens_count: 0,
                clicks_count: 0,
            },
        );
        id
    }

    pub fn delete_group(&mut self, gid: u64) {
        if let Some(g) = self.groups.remove(&gid) {
            for sid in g.members {
                if let Some(s) = self.subscribers.get_mut(&sid) {
                    s.groups.remove(&gid);
                }
            }
        }
        for seg in self.segments.values_mut() {
            if seg.rule == (SegmentRule::InGroup { group_id: gid.to_string() }) {
                seg.rule = SegmentRule::InGroup { group_id: String::new() };
            }
        }
    }

    pub fn create_field(&mut self, name: &str, kind: FieldType) -> Result<u64, ApiError> {
        let key = field_key(name);
        if self.fields.iter().any(|f| f.name.eq_ignore_ascii_case(name) || f.key == key) || key.is_empty() {
            let m = "Field name must be unique".to_string();
            return Err(ApiError::Rejected { message: m.clone(), errors: vec![("name".into(), m)] });
        }
        self.next_field_id += 1 + self.rng.u64(0..50);
        let id = self.next_field_id;
        self.fields.push(FieldDef { id, name: name.to_string(), key, kind, is_default: false });
        Ok(id)
    }

    pub fn ensure_field(&mut self, name: &str, kind: FieldType) {
        let key = field_key(name);
        if self.field_by_key(&key).is_none() {
            let _ = self.create_field(name, kind);
        }
    }

    pub fn delete_field(&mut self, id: u64) {
        if let Some(pos) = self.fields.iter().position(|f| f.id == id) {
            let key = self.fields.remove(pos).key;
            for s in self.subscribers.values_mut() {
                s.fields.remove(&key);
            }
        }
    }

    pub fn segment_matches(&self, rule: &SegmentRule, s: &Subscriber) -> bool {
        match rule {
            SegmentRule::FieldEquals { key, value } => match (s.fields.get(key), value) {
                (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
                (Some(a), b) => a == b,
                (None, b) => b.is_null(),
            },
            SegmentRule::InGroup { group_id } => group_id.parse::<u64>().is_ok_and(|g| s.groups.contains(&g)),
            SegmentRule::NumberGreaterThan { key, value } => {
                s.fields.get(key).and_then(Value::as_f64).is_some_and(|n| n > *value)
            }
        }
    }

    pub fn segment_out(&self, seg: &Segment, list: bool) -> SegmentOut {
        let (mut total, mut sent, mut opens, mut clicks) = (0u64, 0u64, 0u64, 0u64);
        for s in self.subscribers.values() {
            if s.is_live() && s.status == Status::Active && self.segment_matches(&seg.rule, s) {
                total += 1;
                sent += s.sent;
                opens += s.opens_count;
                clicks += s.clicks_count;
            }
        }
        SegmentOut {
            id: seg.id.to_string(),
            name: seg.name.clone(),
            total,
            open_rate: super::json::rate(opens, sent),
            click_rate: super::json::rate(clicks, sent),
            created_at: time_fmt::rest(seg.created_at),
            automations_using_segment_count: list.then_some(0),
        }
    }

    // --- imports -----------------------------------------------------------------------------

    /// `POST /groups/{id}/import-subscribers`: each row is upserted non-destructively and added to
    /// the group; unsubscribed/bounced/junk subscribers are skipped into `unsubscribed[]`
    /// (UNCONFIRMED, suggested by the progress object), invalid emails into `invalid[]`, repeats
    /// within the import into `duplicate[]`. Returns the import id.
    pub fn import(&mut self, gid: u64, rows: Vec<(String, Map<String, Value>)>, delay: Duration) -> u64 {
        let id = self.new_id();
        let mut imp = Import {
            id,
            total: rows.len() as u64,
            imported: 0,
            updated: 0,
            errored: 0,
            invalid: Vec::new(),
            changed: Vec::new(),
            unchanged: Vec::new(),
            unsubscribed: Vec::new(),
            duplicate: Vec::new(),
            created_at: now(),
            done_at: Instant::now() + delay,
        };
        let mut seen = BTreeSet::new();
        for (raw_email, fields) in rows {
            let email = raw_email.trim().to_lowercase();
            if !valid_email(&email) {
                imp.invalid.push(ImportSample { id: None, email: raw_email });
                imp.errored += 1;
                continue;
            }
            if !seen.insert(email.clone()) {
                imp.duplicate.push(ImportSample { id: None, email });
                continue;
            }
            let mut body = Map::new();
            body.insert("email".into(), Value::String(email.clone()));
            body.insert("fields".into(), Value::Object(fields));
            let input = match self.parse_subscriber_input(&body, true) {
                Ok(i) => i,
                Err(_) => {
                    imp.invalid.push(ImportSample { id: None, email });
                    imp.errored += 1;
                    continue;
                }
            };
            match self.find_live(&email).map(|sid| (sid, self.subscribers[&sid].status)) {
                Some((sid, st)) if st.is_suppressed() => {
                    imp.unsubscribed.push(ImportSample { id: Some(sid), email });
                }
                Some((sid, _)) => {
                    let changed = self.apply_attributes(sid, &input, now());
                    if changed {
                        self.push("subscriber.updated", sid);
                        imp.changed.push(ImportSample { id: Some(sid), email });
                    } else {
                        imp.unchanged.push(ImportSample { id: Some(sid), email });
                    }
                    self.add_to_group(sid, gid);
                    imp.updated += 1;
                }
                None => match self.upsert(input, "import") {
                    Ok((sid, _)) => {
                        self.add_to_group(sid, gid);
                        imp.imported += 1;
                    }
                    Err(_) => {
                        imp.errored += 1;
                    }
                },
            }
        }
        self.imports.insert(id, imp);
        id
    }
}

/// Normalizes a field value to its field's type. `Ok(None)` clears.
/// - text: strings as given; numbers and booleans are stored as their text.
/// - number: JSON numbers, and numeric strings (UNCONFIRMED coercion; accepted and stored as a
///   number, the safe reading for a client that sends strings).
/// - date: `YYYY-MM-DD` only (UNCONFIRMED; MailerLite date fields are date-only).
pub fn normalize_field_value(def: &FieldDef, value: &Value) -> Result<Option<Value>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let name = format!("fields.{}", attr(&def.key));
    match def.kind {
        FieldType::Text => match value {
            Value::String(s) => Ok(Some(Value::String(s.clone()))),
            Value::Number(n) => Ok(Some(Value::String(n.to_string()))),
            Value::Bool(b) => Ok(Some(Value::String(if *b { "1".into() } else { "0".into() }))),
            _ => Err(format!("The {name} must be a string.")),
        },
        FieldType::Number => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            Value::String(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                let n: f64 = s.trim().parse().unwrap_or(0.0);
                Ok(Some(super::json::num(n)))
            }
            _ => Err(format!("The {name} must be a number.")),
        },
        FieldType::Date => match value {
            Value::String(s) if time_fmt::is_date(s) => Ok(Some(Value::String(s.clone()))),
            _ => Err(format!("The {name} is not a valid date.")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn input(store: &Store, v: Value) -> SubscriberInput {
        store.parse_subscriber_input(&body(v), true).unwrap()
    }

    #[test]
    fn upsert_creates_then_merges_without_clearing_omitted_fields() {
        let mut st = Store::new(1, 1);
        let (id, created) = st
            .upsert(input(&st, serde_json::json!({"email":"A@Example.com","fields":{"name":"A","city":"X"}})), "api")
            .unwrap();
        assert!(created);
        assert_eq!(st.subscribers[&id].email, "a@example.com");
        let (id2, created) = st
            .upsert(input(&st, serde_json::json!({"email":"a@example.com","fields":{"city":null,"nope":1}})), "api")
            .unwrap();
        assert_eq!((id2, created), (id, false));
        assert_eq!(st.subscribers[&id].fields.get("name"), Some(&Value::String("A".into())));
        assert_eq!(st.subscribers[&id].fields.get("city"), None);
    }

    #[test]
    fn reactivation_is_refused_even_with_resubscribe() {
        let mut st = Store::new(1, 1);
        let (id, _) =
            st.upsert(input(&st, serde_json::json!({"email":"a@x.io","status":"unsubscribed"})), "api").unwrap();
        let err = st.upsert(input(&st, serde_json::json!({"email":"a@x.io","status":"active"})), "api").unwrap_err();
        assert_eq!(err.message(), "This subscriber is unsubscribed and cannot be imported");
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        let again = st
            .upsert(input(&st, serde_json::json!({"email":"a@x.io","status":"active","resubscribe":true})), "api")
            .unwrap_err();
        assert_eq!(again.message(), err.message());
        st.upsert(input(&st, serde_json::json!({"email":"a@x.io","resubscribe":true})), "api").unwrap();
        assert_eq!(st.subscribers[&id].status, Status::Unsubscribed, "resubscribe alone reactivates nobody");
    }

    #[test]
    fn group_counters_follow_status_membership_and_deletion() {
        let mut st = Store::new(1, 1);
        let g = st.create_group("G");
        let (id, _) = st.upsert(input(&st, serde_json::json!({"email":"a@x.io"})), "api").unwrap();
        st.assign(id, g);
        assert_eq!(st.groups[&g].counts, [1, 0, 0, 0, 0]);
        st.set_status(id, Status::Unsubscribed, Actor::Api, now());
        assert_eq!(st.groups[&g].counts, [0, 1, 0, 0, 0]);
        assert_eq!((st.live_count(None), st.live_count(Some(Status::Unsubscribed))), (1, 1));
        st.delete(id);
        assert_eq!(st.groups[&g].counts, [0; 5]);
        assert_eq!(st.live_count(None), 0);
        let (again, created) = st.upsert(input(&st, serde_json::json!({"email":"a@x.io"})), "api").unwrap();
        assert_eq!((again, created), (id, true), "a soft-deleted subscriber comes back with its id");
        assert_eq!(st.groups[&g].counts, [0, 1, 0, 0, 0], "and keeps its status and groups");
        assert_eq!(st.live_count(Some(Status::Unsubscribed)), 1);
    }

    #[test]
    fn forgotten_subscribers_release_their_email() {
        let mut st = Store::new(1, 1);
        let (id, _) = st.upsert(input(&st, serde_json::json!({"email":"a@x.io"})), "api").unwrap();
        st.forget(id);
        let (new_id, created) = st.upsert(input(&st, serde_json::json!({"email":"a@x.io"})), "api").unwrap();
        assert!(created);
        assert_ne!(new_id, id);
    }

    #[test]
    fn field_values_are_validated_by_type() {
        let mut st = Store::new(1, 1);
        st.create_field("employees", FieldType::Number).unwrap();
        st.create_field("signup date", FieldType::Date).unwrap();
        let ok = st
            .parse_subscriber_input(
                &body(serde_json::json!({"email":"a@x.io","fields":{"employees":"12","signup_date":"2024-01-31"}})),
                true,
            )
            .unwrap();
        assert_eq!(ok.fields[0].1, Some(serde_json::json!(12)));
        let err = st
            .parse_subscriber_input(
                &body(serde_json::json!({"email":"bad","fields":{"employees":"many","signup_date":"31/01/2024"}})),
                true,
            )
            .unwrap_err();
        let ApiError::Validation(errors) = err else { panic!() };
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["email", "fields.employees", "fields.signup_date"]);
    }
}
