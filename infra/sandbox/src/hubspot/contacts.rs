//! Contact writes with HubSpot's rules: validation, email uniqueness (primary and additional,
//! case-insensitive), lifecycle stages only moving forward, merges, archive/restore and GDPR
//! delete. Every write returns the webhook events it causes; DYNAMIC lists follow every change.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Map, Value};

use super::errors::{HsError, HsResult, PropertyProblem};
use super::events::{Event, EventKind};
use super::model::{Db, ObjectType, Record};
use super::properties::{Change, lifecycle_rank, validate};
use super::time_fmt::iso_ms;

/// Properties HubSpot maintains itself; they never appear as `contact.propertyChange` events here.
const SYSTEM_PROPERTIES: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];

impl Db {
    /// Validates a create: property values, then the email against the blocklist and every
    /// existing primary/additional email.
    pub fn prepare_contact_create(
        &self,
        props: &Map<String, Value>,
        allow_read_only: bool,
        portal_id: u64,
    ) -> HsResult<Vec<Change>> {
        let schema = self.schema(ObjectType::Contacts);
        let changes =
            validate(schema, props, &|_| None, allow_read_only).map_err(|p| HsError::properties(&p, portal_id))?;
        for (name, value) in &changes {
            let Some(value) = value else { continue };
            if name == "email" || name == "hs_additional_emails" {
                for e in value.split(';').filter(|s| !s.is_empty()) {
                    self.check_email_free(e, None)?;
                }
            }
        }
        Ok(changes)
    }

    /// 409 when `email` belongs to a live contact other than `own`; 400 when GDPR-blocklisted.
    pub fn check_email_free(&self, email: &str, own: Option<u64>) -> HsResult<()> {
        let key = email.trim().to_lowercase();
        if self.blocklist.contains(&key) {
            // UNCONFIRMED wording: HubSpot blocks GDPR-deleted addresses without a documented error.
            return Err(HsError::validation(format!(
                "The email address {email} was permanently deleted (GDPR) and is blocked from being used again."
            )));
        }
        match self.contact_by_email(&key) {
            Some(existing) if Some(existing) != own => Err(HsError::conflict(existing)),
            _ => Ok(()),
        }
    }

    /// Inserts a validated contact. `companies` are associated, the first `primary` one becoming
    /// `associatedcompanyid`.
    pub fn insert_contact(&mut self, changes: Vec<Change>, companies: &[(u64, bool)], now: i64) -> (u64, Vec<Event>) {
        let id = self.next_contact_id;
        self.next_contact_id += 1;
        let mut rec = Record {
            id,
            props: Default::default(),
            created_ms: now,
            updated_ms: now,
            archived: false,
            archived_ms: None,
            assoc: BTreeSet::new(),
        };
        // UNCONFIRMED that HubSpot also sends a propertyChange for each property set at creation;
        // the sandbox does, so a subscriber sees every value it subscribed to.
        let mut events = vec![Event::new(EventKind::Creation, id, now)];
        for (name, value) in changes {
            if let Some(v) = value {
                events.push(Event::new(EventKind::PropertyChange { name: name.clone(), value: v.clone() }, id, now));
                rec.props.insert(name, v);
            }
        }
        for (company, primary) in companies {
            rec.assoc.insert(*company);
            if *primary && !rec.props.contains_key("associatedcompanyid") {
                rec.props.insert("associatedcompanyid".into(), company.to_string());
            }
        }
        if let Some(c) = rec.get("associatedcompanyid").and_then(|c| c.parse().ok()) {
            rec.assoc.insert(c);
        }
        rec.props.insert("hs_object_id".into(), id.to_string());
        rec.props.insert("createdate".into(), iso_ms(now));
        rec.props.insert("lastmodifieddate".into(), iso_ms(now));
        self.contacts.insert(id, rec);
        self.index_emails(id);
        self.refresh_dynamic_lists(id, now);
        (id, events)
    }

    /// A live (not archived) contact id, following merge aliases when `follow_aliases`.
    pub fn live_contact(&self, id: u64, follow_aliases: bool) -> Option<u64> {
        let id = if follow_aliases { self.resolve_contact(id) } else { id };
        self.contacts.get(&id).filter(|r| !r.archived).map(|r| r.id)
    }

    /// Validates an update of live contact `id`.
    pub fn prepare_contact_update(
        &self,
        id: u64,
        props: &Map<String, Value>,
        allow_read_only: bool,
        portal_id: u64,
    ) -> HsResult<Vec<Change>> {
        let rec = self.contacts.get(&id).ok_or_else(|| HsError::not_found(&id.to_string()))?;
        let schema = self.schema(ObjectType::Contacts);
        let changes = validate(schema, props, &|n| rec.get(n).map(str::to_string), allow_read_only)
            .map_err(|p| HsError::properties(&p, portal_id))?;
        let mut problems = Vec::new();
        for (name, value) in &changes {
            let Some(value) = value else { continue };
            if name == "email" || name == "hs_additional_emails" {
                for e in value.split(';').filter(|s| !s.is_empty()) {
                    // UNCONFIRMED: an update to another contact's address answers like a create (409).
                    self.check_email_free(e, Some(id))?;
                }
            }
            if name == "lifecyclestage"
                && let (Some(old), Some(new)) =
                    (rec.get("lifecyclestage").and_then(lifecycle_rank), lifecycle_rank(value))
                && new < old
            {
                // UNCONFIRMED code and wording; the rule itself is in HubSpot's contacts guide.
                problems.push(PropertyProblem {
                    name: name.clone(),
                    code: "INVALID_LIFECYCLE_STAGE",
                    message: format!(
                        "lifecyclestage can only move forward: {value} is before {}. Clear it (\"\") first to move it backward.",
                        rec.get("lifecyclestage").unwrap_or_default()
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(HsError::properties(&problems, portal_id));
        }
        Ok(changes)
    }

    /// Applies validated changes; only real differences become `propertyChange` events and bump
    /// `lastmodifieddate`.
    pub fn apply_contact_update(&mut self, id: u64, changes: Vec<Change>, now: i64) -> Vec<Event> {
        let emails_change = changes.iter().any(|(n, _)| n == "email" || n == "hs_additional_emails");
        if emails_change {
            self.unindex_emails(id);
        }
        let mut events = Vec::new();
        let Some(rec) = self.contacts.get_mut(&id) else { return events };
        for (name, value) in changes {
            if rec.props.get(&name) == value.as_ref() {
                continue;
            }
            match &value {
                Some(v) => rec.props.insert(name.clone(), v.clone()),
                None => rec.props.remove(&name),
            };
            if name == "associatedcompanyid"
                && let Some(c) = value.as_deref().and_then(|c| c.parse::<u64>().ok())
            {
                rec.assoc.insert(c);
            }
            if name == "email"
                && let Some(new) = &value
                && let Some(extra) = rec.props.get("hs_additional_emails").cloned()
            {
                let kept: Vec<&str> = extra.split(';').filter(|e| !e.eq_ignore_ascii_case(new)).collect();
                if kept.is_empty() {
                    rec.props.remove("hs_additional_emails");
                } else {
                    rec.props.insert("hs_additional_emails".into(), kept.join(";"));
                }
            }
            if !SYSTEM_PROPERTIES.contains(&name.as_str()) {
                events.push(Event::new(EventKind::PropertyChange { name, value: value.unwrap_or_default() }, id, now));
            }
        }
        if !events.is_empty() {
            rec.updated_ms = now;
            rec.props.insert("lastmodifieddate".into(), iso_ms(now));
        }
        if emails_change {
            self.index_emails(id);
        }
        if !events.is_empty() {
            self.refresh_dynamic_lists(id, now);
        }
        events
    }

    /// Archives a live contact (recycle bin): it leaves every list and frees its emails.
    pub fn archive_contact(&mut self, id: u64, now: i64) -> Vec<Event> {
        if self.live_contact(id, false).is_none() {
            return Vec::new();
        }
        self.unindex_emails(id);
        if let Some(rec) = self.contacts.get_mut(&id) {
            rec.archived = true;
            rec.archived_ms = Some(now);
            rec.updated_ms = now;
            rec.props.insert("lastmodifieddate".into(), iso_ms(now));
        }
        self.remove_from_all_lists(id, now);
        vec![Event::new(EventKind::Deletion, id, now)]
    }

    /// Restores an archived contact (a user action in the UI); 409 when its email was taken meanwhile.
    pub fn restore_contact(&mut self, id: u64, now: i64) -> HsResult<Vec<Event>> {
        let rec = self.contacts.get(&id).filter(|r| r.archived).ok_or_else(|| HsError::not_found(&id.to_string()))?;
        for e in rec.emails() {
            self.check_email_free(&e, Some(id))?;
        }
        if let Some(rec) = self.contacts.get_mut(&id) {
            rec.archived = false;
            rec.archived_ms = None;
            rec.updated_ms = now;
            rec.props.insert("lastmodifieddate".into(), iso_ms(now));
        }
        self.index_emails(id);
        self.refresh_dynamic_lists(id, now);
        Ok(vec![Event::new(EventKind::Restore, id, now)])
    }

    /// Merges `secondary` into `primary` as HubSpot does since its changelog "Updated merge
    /// functionality for contacts and companies": a new record with a new id is created, both
    /// old ids become aliases of it (reads by either return the new record with the new id), the
    /// primary's values win and the secondary's fill only the properties the primary has no
    /// value for (the lifecycle stage keeps its documented exception: the furthest stage wins);
    /// the secondary's emails become additional emails. Returns the new id and the
    /// `contact.merge` event (`primaryObjectId`, `mergedObjectIds`, `newObjectId`).
    /// Assumed: the new record keeps the primary's creation date, lists hold it where they held
    /// either old record, and no `contact.creation` event is sent for it.
    pub fn merge_contacts(&mut self, primary: u64, secondary: u64, now: i64) -> HsResult<(u64, Vec<Event>)> {
        let p = self.live_contact(primary, true).ok_or_else(|| HsError::not_found(&primary.to_string()))?;
        let s = self.live_contact(secondary, true).ok_or_else(|| HsError::not_found(&secondary.to_string()))?;
        if p == s {
            return Err(HsError::validation(format!("Cannot merge contact {p} into itself")));
        }
        let merged_count = |r: &Record| r.get("hs_merged_object_ids").map_or(0, |m| m.split(';').count());
        let (pr, sr) = (&self.contacts[&p], &self.contacts[&s]);
        if merged_count(pr) + merged_count(sr) + 2 > 250 {
            return Err(HsError::new(
                StatusCode::URI_TOO_LONG,
                "VALIDATION_ERROR",
                "Cannot have more than 250 identities on a profile",
            ));
        }
        self.unindex_emails(p);
        self.unindex_emails(s);
        let pr = self.contacts.remove(&p).expect("primary is live");
        let sr = self.contacts.remove(&s).expect("secondary is live");
        let n = self.next_contact_id;
        self.next_contact_id += 1;
        let mut rec = Record {
            id: n,
            props: pr.props.clone(),
            created_ms: pr.created_ms,
            updated_ms: now,
            archived: false,
            archived_ms: None,
            assoc: pr.assoc.union(&sr.assoc).copied().collect(),
        };
        let mut moved = 0u32;
        for (k, v) in &sr.props {
            if matches!(k.as_str(), "email" | "hs_additional_emails" | "hs_merged_object_ids")
                || SYSTEM_PROPERTIES.contains(&k.as_str())
            {
                continue;
            }
            let take = match rec.props.get(k) {
                None => true,
                Some(_) if k == "lifecyclestage" => {
                    lifecycle_rank(v) > rec.get("lifecyclestage").and_then(lifecycle_rank)
                }
                Some(_) => false,
            };
            if take && rec.props.get(k) != Some(v) {
                rec.props.insert(k.clone(), v.clone());
                moved += 1;
            }
        }
        let mut extra: Vec<String> = rec
            .get("hs_additional_emails")
            .map(|e| e.split(';').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        let secondary_emails: Vec<String> = sr
            .get("email")
            .map(String::from)
            .into_iter()
            .chain(sr.get("hs_additional_emails").into_iter().flat_map(|e| e.split(';')).map(String::from))
            .filter(|e| !e.is_empty())
            .collect();
        if rec.get("email").is_none()
            && let Some(first) = sr.get("email")
        {
            rec.props.insert("email".into(), first.to_string());
        }
        for e in secondary_emails {
            let is_primary = rec.get("email").is_some_and(|p| p.eq_ignore_ascii_case(&e));
            if !is_primary && !extra.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
                extra.push(e);
            }
        }
        if !extra.is_empty() {
            rec.props.insert("hs_additional_emails".into(), extra.join(";"));
        }
        let mut merged: Vec<String> = Vec::new();
        for (id, r) in [(p, &pr), (s, &sr)] {
            merged.push(id.to_string());
            merged.extend(r.get("hs_merged_object_ids").into_iter().flat_map(|m| m.split(';')).map(String::from));
        }
        merged.retain(|m| !m.is_empty());
        rec.props.insert("hs_merged_object_ids".into(), merged.join(";"));
        rec.props.insert("hs_object_id".into(), n.to_string());
        rec.props.insert("lastmodifieddate".into(), iso_ms(now));
        self.contacts.insert(n, rec);
        self.aliases.insert(p, n);
        self.aliases.insert(s, n);
        self.index_emails(n);
        for list in self.lists.values_mut() {
            let member = list.members.contains_key(&p) || list.members.contains_key(&s);
            list.remove(p, now);
            list.remove(s, now);
            if member && list.is_static() {
                list.add(n, now);
            }
        }
        self.refresh_dynamic_lists(n, now);
        let event = Event::new(EventKind::Merge { primary: p, merged: vec![s], new_id: n, moved }, p, now);
        Ok((n, vec![event]))
    }

    /// Permanently deletes a contact (GDPR) and blocklists its emails. Returns the
    /// `privacyDeletion` and `deletion` events (HubSpot sends them in separate requests).
    pub fn gdpr_delete(&mut self, id: u64, now: i64) -> Vec<Event> {
        self.unindex_emails(id);
        let Some(rec) = self.contacts.remove(&id) else { return Vec::new() };
        for e in rec.emails() {
            self.blocklist.insert(e.clone());
            self.subscriptions.remove(&e);
            self.unsubscribed_all.remove(&e);
        }
        self.aliases.retain(|_, to| *to != id);
        self.remove_from_all_lists(id, now);
        vec![Event::new(EventKind::PrivacyDeletion, id, now), Event::new(EventKind::Deletion, id, now)]
    }

    /// Re-evaluates every DYNAMIC list for one contact.
    pub fn refresh_dynamic_lists(&mut self, id: u64, now: i64) {
        let Some(rec) = self.contacts.get(&id) else { return };
        let live = !rec.archived;
        for list in self.lists.values_mut() {
            if list.processing_type != "DYNAMIC" {
                continue;
            }
            let Some(filter) = &list.filter else { continue };
            if live && filter.matches(rec) {
                list.add(id, now);
            } else {
                list.remove(id, now);
            }
        }
    }

    pub fn remove_from_all_lists(&mut self, id: u64, now: i64) {
        for list in self.lists.values_mut() {
            list.remove(id, now);
        }
    }
}
