//! Batch endpoints, search, merge and GDPR delete.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::common::*;
use super::objects::{apply_plain, associations_of, contact_companies, create_note, find_record, render_one};
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::events::{Actor, Event};
use crate::hubspot::model::{ObjectType, PropSelection};
use crate::hubspot::properties::{Change, validate};
use crate::hubspot::search::search;

pub(super) async fn batch_read(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> HsResult<Response> {
    let started = crate::common::now_ms();
    let q = Query::parse(raw);
    let body = parse_body(&body)?;
    let inputs = inputs(&body)?;
    let id_property = body.get("idProperty").and_then(Value::as_str);
    let archived = q.flag("archived");
    let sel = PropSelection::from_body(body.get("properties"));
    let db = st.db();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for input in &inputs {
        let Some(id) = input_id(input) else {
            return Err(HsError::validation("every input needs an id"));
        };
        // Merged-away ids answer with the new merged record and its new id (changelog
        // "Updated merge functionality for contacts and companies").
        let found = find_record(&db, t, &id, id_property)
            .ok()
            .and_then(|rid| db.store(t).get(&rid))
            .filter(|r| r.archived == archived);
        match found {
            Some(r) => {
                if seen.insert(r.id) {
                    results.push(db.render(t, r, &sel));
                }
            }
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() { Vec::new() } else { vec![not_found_error(t, &missing)] };
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

/// One validated input of a contact batch write.
enum Planned {
    Create { changes: Vec<Change>, companies: Vec<(u64, bool)> },
    Update { id: u64, changes: Vec<Change> },
}

/// Checks emails that several inputs of one batch would claim.
fn claim_emails(changes: &[Change], claimed: &mut BTreeSet<String>) -> HsResult<()> {
    for (name, value) in changes {
        if name != "email" {
            continue;
        }
        if let Some(e) = value
            && !claimed.insert(e.trim().to_lowercase())
        {
            // UNCONFIRMED wording for two inputs with the same email.
            return Err(HsError::validation(format!("Duplicate email in batch input: {e}")));
        }
    }
    Ok(())
}

pub(super) async fn batch_create(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    body: Bytes,
) -> HsResult<Response> {
    let started = crate::common::now_ms();
    let body = parse_body(&body)?;
    let inputs = inputs(&body)?;
    let portal = portal(&st);
    if t == ObjectType::Notes {
        let mut db = st.db();
        let mut created_notes = Vec::new();
        let mut planned = Vec::new();
        for input in &inputs {
            planned.push((props_of(input)?, associations_of(input)));
        }
        for (props, assoc) in &planned {
            // Notes are validated up front so that a bad input fails the whole batch.
            validate(db.schema(t), props, &|_| None, false).map_err(|p| HsError::properties(&p, portal))?;
            if props.get("hs_timestamp").is_none_or(|v| v.as_str().is_none_or(str::is_empty)) {
                return Err(HsError::validation("hs_timestamp is required to create a note"));
            }
            for (to, _) in assoc {
                if db.live_contact(*to, true).is_none() {
                    return Err(HsError::not_found(&to.to_string()));
                }
            }
        }
        for (props, assoc) in &planned {
            let id = create_note(&mut db, props, assoc, portal)?;
            created_notes.push(render_one(&db, t, &db.notes[&id], &PropSelection::AllSet, true));
        }
        return Ok(batch_response(StatusCode::CREATED, created_notes, Vec::new(), started));
    }
    if t != ObjectType::Contacts {
        return Err(HsError::validation("batch create is served for contacts and notes"));
    }
    // Without an objectWriteTraceId on every input, the first problem fails the whole batch
    // (documented for conflicts; UNCONFIRMED and applied here to invalid values too, the
    // safe reading for a client); with them, problems come back per input in a 207.
    let traced = !inputs.is_empty() && inputs.iter().all(|i| trace_id(i).is_some());
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    let (results, events) = {
        let mut db = st.db();
        let mut claimed = BTreeSet::new();
        for input in &inputs {
            let plan = props_of(input).and_then(|props| {
                let changes = db.prepare_contact_create(&props, false, portal)?;
                claim_emails(&changes, &mut claimed)?;
                let companies = contact_companies(&db, &associations_of(input))?;
                Ok(Planned::Create { changes, companies })
            });
            match plan {
                Ok(p) => plans.push(p),
                // Without trace ids the first problem fails the whole batch (error-handling guide).
                Err(e) if !traced => return Err(e),
                Err(e) => errors.push(with_trace(&e, &trace_id(input).unwrap_or_default())),
            }
        }
        let now = db.stamp();
        let mut results = Vec::new();
        let mut events = Vec::new();
        for p in plans {
            if let Planned::Create { changes, companies } = p {
                let (id, ev) = db.insert_contact(changes, &companies, now);
                events.extend(ev);
                results.push(db.render(t, &db.contacts[&id], &PropSelection::AllSet));
            }
        }
        (results, events)
    };
    st.emit(&events, Actor::Integration);
    Ok(batch_response(StatusCode::CREATED, results, errors, started))
}

fn non_unique_id_property() -> HsError {
    // As reported (hubspot-api-nodejs #548).
    HsError::validation("Unable to perform update/upsert by non-unique 0-1 property")
}

/// Batch update: one invalid value (or an email another contact has) fails the whole batch
/// and nothing is applied, whether or not the inputs carry an `objectWriteTraceId`: the
/// multi-status answer is documented for batch create only (error-handling guide). Every
/// invalid value of every input is listed in the one error. Ids that are not live contacts come
/// back as one `OBJECT_NOT_FOUND` error of a 207 while the other inputs apply (changelog
/// "Simplifying batch update response codes for CRM v3 APIs").
pub(super) async fn batch_update(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    body: Bytes,
) -> HsResult<Response> {
    let started = crate::common::now_ms();
    let body = parse_body(&body)?;
    let inputs = inputs(&body)?;
    let portal = portal(&st);
    let by_email = |v: &Value| v.get("idProperty").and_then(Value::as_str).is_some_and(|p| p != "hs_object_id");
    if by_email(&body) || inputs.iter().any(by_email) {
        return Err(non_unique_id_property());
    }
    let mut seen = BTreeSet::new();
    for input in &inputs {
        if let Some(id) = input_id(input)
            && !seen.insert(id.clone())
        {
            // UNCONFIRMED: duplicate ids in one batch (undocumented; a 400 is the likely answer).
            return Err(HsError::validation(format!("Duplicate IDs found in batch input: [{id}]")));
        }
    }
    let (results, errors, events) = {
        let mut db = st.db();
        let mut plans = Vec::new();
        let mut refused = Vec::new();
        let mut missing = Vec::new();
        let mut claimed = BTreeSet::new();
        for input in &inputs {
            let id = input_id(input).unwrap_or_default();
            // Merged-away ids do not work here, unlike the single-record PATCH (object API guide).
            let Some(rid) = id.parse::<u64>().ok().filter(|r| db.store(t).get(r).is_some_and(|r| !r.archived)) else {
                missing.push(id);
                continue;
            };
            let props = props_of(input)?;
            let changes = match t {
                ObjectType::Contacts => db.prepare_contact_update(rid, &props, false, portal),
                _ => {
                    let r = &db.store(t)[&rid];
                    validate(db.schema(t), &props, &|n| r.get(n).map(String::from), false)
                        .map_err(|p| HsError::properties(&p, portal))
                }
            };
            match changes {
                Ok(changes) => {
                    claim_emails(&changes, &mut claimed)?;
                    plans.push(Planned::Update { id: rid, changes });
                }
                Err(e) => refused.push(e),
            }
        }
        if !refused.is_empty() {
            return Err(HsError::whole_batch(refused, portal));
        }
        let errors = if missing.is_empty() { Vec::new() } else { vec![not_found_error(t, &missing)] };
        let now = db.stamp();
        let mut results = Vec::new();
        let mut events = Vec::new();
        for p in plans {
            if let Planned::Update { id, changes } = p {
                if t == ObjectType::Contacts {
                    events.extend(db.apply_contact_update(id, changes, now));
                } else {
                    apply_plain(&mut db, t, id, changes, now);
                }
                results.push(db.render(t, &db.store(t)[&id], &PropSelection::AllSet));
            }
        }
        (results, errors, events)
    };
    st.emit(&events, Actor::Integration);
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

/// Batch upsert by email or id: like batch update, one invalid value fails the whole batch
/// (every invalid value listed in the one error), traced or not.
pub(super) async fn batch_upsert(State(st): St, body: Bytes) -> HsResult<Response> {
    let started = crate::common::now_ms();
    let body = parse_body(&body)?;
    let inputs = inputs(&body)?;
    let portal = portal(&st);
    let t = ObjectType::Contacts;
    let (results, events) = {
        let mut db = st.db();
        let mut plans = Vec::new();
        let mut refused = Vec::new();
        let mut claimed = BTreeSet::new();
        for input in &inputs {
            let id = input_id(input).ok_or_else(|| HsError::validation("every upsert input needs an id"))?;
            let id_property = input.get("idProperty").and_then(Value::as_str).unwrap_or("hs_object_id");
            let mut props = props_of(input)?;
            let existing = match id_property {
                "email" => {
                    if !claimed.insert(id.trim().to_lowercase()) {
                        return Err(HsError::validation(format!("Duplicate IDs found in batch input: [{id}]")));
                    }
                    db.contact_by_email(&id)
                }
                "hs_object_id" => Some(
                    id.parse::<u64>()
                        .ok()
                        .and_then(|r| db.live_contact(r, false))
                        .ok_or_else(|| HsError::not_found(&id))?,
                ),
                other => {
                    return Err(HsError::validation(format!(
                        "{other} is not a unique property and cannot be used as idProperty"
                    )));
                }
            };
            let plan = match existing {
                Some(rid) => db
                    .prepare_contact_update(rid, &props, false, portal)
                    .map(|changes| (Planned::Update { id: rid, changes }, false)),
                None => {
                    props.entry("email").or_insert_with(|| Value::String(id.clone()));
                    db.prepare_contact_create(&props, false, portal)
                        .map(|changes| (Planned::Create { changes, companies: Vec::new() }, true))
                }
            };
            match plan {
                Ok(p) => plans.push(p),
                Err(e) => refused.push(e),
            }
        }
        if !refused.is_empty() {
            return Err(HsError::whole_batch(refused, portal));
        }
        let now = db.stamp();
        let mut results = Vec::new();
        let mut events = Vec::new();
        for (plan, new) in plans {
            let id = match plan {
                Planned::Create { changes, companies } => {
                    let (id, ev) = db.insert_contact(changes, &companies, now);
                    events.extend(ev);
                    id
                }
                Planned::Update { id, changes } => {
                    events.extend(db.apply_contact_update(id, changes, now));
                    id
                }
            };
            let mut v = db.render(t, &db.contacts[&id], &PropSelection::AllSet);
            v["new"] = json!(new);
            results.push(v);
        }
        (results, events)
    };
    st.emit(&events, Actor::Integration);
    Ok(batch_response(StatusCode::OK, results, Vec::new(), started))
}

pub(super) async fn batch_archive(State(st): St, body: Bytes) -> HsResult<Response> {
    let body = parse_body(&body)?;
    let inputs = inputs(&body)?;
    let events: Vec<Event> = {
        let mut db = st.db();
        let now = db.stamp();
        let mut events = Vec::new();
        for input in &inputs {
            if let Some(id) = input_id(input).and_then(|i| i.parse::<u64>().ok()) {
                events.extend(db.archive_contact(id, now));
            }
        }
        events
    };
    st.emit(&events, Actor::Integration);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn search_objects(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    body: Bytes,
) -> HsResult<Response> {
    let body = parse_body(&body)?;
    let lag = st.config().search_lag_ms as i64;
    let db = st.db();
    let visible_before = (lag > 0).then(|| crate::common::now_ms() - lag);
    Ok(ok(search(&db, t, &body, visible_before)?))
}

pub(super) async fn merge(State(st): St, body: Bytes) -> HsResult<Response> {
    let body = parse_body(&body)?;
    let id = |k: &str| -> HsResult<u64> {
        let v = body.get(k).ok_or_else(|| HsError::validation(format!("{k} is required")))?;
        let s = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
        parse_id(&s)
    };
    let (primary, secondary) = (id("primaryObjectId")?, id("objectIdToMerge")?);
    let (v, events) = {
        let mut db = st.db();
        let now = db.stamp();
        let (survivor, events) = db.merge_contacts(primary, secondary, now)?;
        (db.render(ObjectType::Contacts, &db.contacts[&survivor], &PropSelection::AllSet), events)
    };
    st.emit(&events, Actor::Integration);
    Ok(ok(v))
}

pub(super) async fn gdpr_delete(State(st): St, body: Bytes) -> HsResult<Response> {
    let body = parse_body(&body)?;
    let object_id = body
        .get("objectId")
        .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
        .ok_or_else(|| HsError::validation("objectId is required"))?;
    let events = {
        let mut db = st.db();
        let now = db.stamp();
        if body.get("idProperty").and_then(Value::as_str) == Some("email") {
            match db.contact_by_email(&object_id) {
                Some(id) => db.gdpr_delete(id, now),
                None => {
                    // "the email address will be added to a blocklist" (contacts guide, GDPR delete).
                    db.blocklist.insert(object_id.trim().to_lowercase());
                    Vec::new()
                }
            }
        } else {
            let id = db.resolve_contact(parse_id(&object_id)?);
            if !db.contacts.contains_key(&id) {
                return Err(HsError::not_found(&object_id));
            }
            db.gdpr_delete(id, now)
        }
    };
    // privacyDeletion and deletion arrive as separate requests.
    for e in &events {
        st.emit(std::slice::from_ref(e), Actor::Integration);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
