//! Records: list, read, create, update and archive contacts, companies and notes one at a time.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::common::*;
use crate::hubspot::HubSpotState;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::events::{Actor, Event, EventKind};
use crate::hubspot::model::{Db, ObjectType, PropSelection, Record};
use crate::hubspot::properties::{Change, validate};
use crate::hubspot::time_fmt::iso_ms;

pub(super) fn render_one(db: &Db, t: ObjectType, r: &Record, sel: &PropSelection, assoc: bool) -> Value {
    let mut v = db.render(t, r, sel);
    if assoc && t == ObjectType::Contacts && !r.assoc.is_empty() {
        v["associations"] = db.render_company_associations(r);
    }
    if assoc && t == ObjectType::Notes && !r.assoc.is_empty() {
        let results: Vec<Value> =
            r.assoc.iter().map(|c| json!({"id":c.to_string(),"type":"note_to_contact"})).collect();
        v["associations"] = json!({"contacts":{"results":results}});
    }
    v
}

pub(super) async fn list_objects(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    let path = uri.path().to_string();
    let q = Query::parse(raw);
    let limit = q.number("limit", 10, 100)?;
    let after = match q.one("after") {
        None | Some("") => 0,
        Some(a) => a.parse::<u64>().map_err(|_| HsError::validation(format!("after must be a record id, got {a}")))?,
    };
    let archived = q.flag("archived");
    let sel = PropSelection::from_query(&q.all("properties"));
    let assoc = q.all("associations").iter().any(|a| a.split(',').any(|x| x == "companies" || x == "contacts"));
    let db = st.db();
    let mut page: Vec<&Record> =
        db.store(t).range(after..).map(|(_, r)| r).filter(|r| r.archived == archived).take(limit + 1).collect();
    let next = if page.len() > limit { page.pop().map(|r| r.id) } else { None };
    let results: Vec<Value> = page.iter().map(|r| render_one(&db, t, r, &sel, assoc)).collect();
    let mut out = json!({ "results": results });
    if let Some(n) = next {
        let n = n.to_string();
        out["paging"] = json!({"next":{"after": n, "link": page_link(&st, &path, limit, &n)}});
    }
    Ok(ok(out))
}

pub(super) fn find_record(db: &Db, t: ObjectType, id: &str, id_property: Option<&str>) -> HsResult<u64> {
    match (t, id_property) {
        (ObjectType::Contacts, Some("email")) => db.contact_by_email(id).ok_or_else(|| HsError::not_found(id)),
        (_, Some(p)) if p != "hs_object_id" => {
            Err(HsError::validation(format!("{p} is not a unique property and cannot be used as idProperty")))
        }
        (ObjectType::Contacts, _) => Ok(db.resolve_contact(parse_id(id)?)),
        _ => parse_id(id),
    }
}

pub(super) async fn get_object(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    let q = Query::parse(raw);
    let db = st.db();
    let rid = find_record(&db, t, &id, q.one("idProperty"))?;
    let archived = q.flag("archived");
    let r = db.store(t).get(&rid).filter(|r| r.archived == archived).ok_or_else(|| HsError::not_found(&id))?;
    let sel = PropSelection::from_query(&q.all("properties"));
    let assoc = !q.all("associations").is_empty();
    Ok(ok(render_one(&db, t, r, &sel, assoc)))
}

/// `associations` of a create body: `(to id, typeId)` pairs.
pub(super) fn associations_of(v: &Value) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for a in v.get("associations").and_then(Value::as_array).into_iter().flatten() {
        let to = a
            .pointer("/to/id")
            .and_then(|v| v.as_str().map(String::from).or_else(|| v.as_u64().map(|n| n.to_string())));
        let Some(to) = to.and_then(|s| s.parse::<u64>().ok()) else { continue };
        for ty in a.get("types").and_then(Value::as_array).into_iter().flatten() {
            if let Some(type_id) = ty.get("associationTypeId").and_then(Value::as_u64) {
                out.push((to, type_id));
            }
        }
    }
    out
}

/// The company associations of a contact create (type 1 primary, 279 unlabeled); every target
/// must exist.
pub(super) fn contact_companies(db: &Db, assoc: &[(u64, u64)]) -> HsResult<Vec<(u64, bool)>> {
    let mut out = Vec::new();
    for (to, type_id) in assoc {
        if *type_id != 1 && *type_id != 279 {
            return Err(HsError::validation(format!(
                "associationTypeId {type_id} is not supported for contacts by the sandbox (contact to company: 1 or 279)"
            )));
        }
        if db.companies.get(to).is_none_or(|c| c.archived) {
            // UNCONFIRMED wording for an association to a missing record.
            return Err(HsError::validation(format!("The company {to} to associate does not exist")));
        }
        out.push((*to, *type_id == 1));
    }
    Ok(out)
}

pub(super) async fn create_object(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    body: Bytes,
) -> HsResult<Response> {
    let body = parse_body(&body)?;
    let props = props_of(&body)?;
    let assoc = associations_of(&body);
    match t {
        ObjectType::Contacts => {
            let (v, events) = {
                let mut db = st.db();
                let changes = db.prepare_contact_create(&props, false, portal(&st))?;
                let companies = contact_companies(&db, &assoc)?;
                let now = db.stamp();
                let (id, events) = db.insert_contact(changes, &companies, now);
                (db.render(t, &db.contacts[&id], &PropSelection::AllSet), events)
            };
            st.emit(&events, Actor::Integration);
            Ok(created(v))
        }
        ObjectType::Companies => {
            let id = create_company_in(&st, &props)?;
            let db = st.db();
            Ok(created(db.render(t, &db.companies[&id], &PropSelection::AllSet)))
        }
        ObjectType::Notes => {
            let mut db = st.db();
            let id = create_note(&mut db, &props, &assoc, portal(&st))?;
            Ok(created(render_one(&db, t, &db.notes[&id], &PropSelection::AllSet, true)))
        }
    }
}

/// Creates a company (API create and the admin/seed path).
pub fn create_company_in(st: &HubSpotState, props: &Map<String, Value>) -> HsResult<u64> {
    let portal = portal(st);
    let mut db = st.db();
    let changes = validate(db.schema(ObjectType::Companies), props, &|_| None, false)
        .map_err(|p| HsError::properties(&p, portal))?;
    let now = db.stamp();
    Ok(insert_plain(&mut db, ObjectType::Companies, changes, BTreeSet::new(), now))
}

/// Changes a company's properties; returns its `company.propertyChange` events.
pub fn edit_company_in(st: &HubSpotState, id: u64, props: &Map<String, Value>) -> HsResult<Vec<Event>> {
    let portal = portal(st);
    let mut db = st.db();
    let changes = validate(db.schema(ObjectType::Companies), props, &|_| None, false)
        .map_err(|p| HsError::properties(&p, portal))?;
    let now = db.stamp();
    let record = db
        .store_mut(ObjectType::Companies)
        .get_mut(&id)
        .filter(|r| !r.archived)
        .ok_or_else(|| HsError::not_found(&id.to_string()))?;
    let mut events = Vec::new();
    for (name, value) in changes {
        let before = record.props.get(&name).cloned();
        match &value {
            Some(v) => record.props.insert(name.clone(), v.clone()),
            None => record.props.remove(&name),
        };
        if before != value {
            events.push(Event::new(
                EventKind::CompanyPropertyChange { name, value: value.unwrap_or_default() },
                id,
                now,
            ));
        }
    }
    if !events.is_empty() {
        record.updated_ms = now;
        record.props.insert(ObjectType::Companies.modified_property().into(), iso_ms(now));
    }
    Ok(events)
}

fn insert_plain(db: &mut Db, t: ObjectType, changes: Vec<Change>, assoc: BTreeSet<u64>, now: i64) -> u64 {
    let id = match t {
        ObjectType::Companies => {
            db.next_company_id += 1;
            db.next_company_id - 1
        }
        ObjectType::Notes => {
            db.next_note_id += 1;
            db.next_note_id - 1
        }
        ObjectType::Contacts => unreachable!("contacts are inserted by insert_contact"),
    };
    let mut r = Record {
        id,
        props: changes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
        created_ms: now,
        updated_ms: now,
        archived: false,
        archived_ms: None,
        assoc,
    };
    r.props.insert("hs_object_id".into(), id.to_string());
    r.props.insert(t.created_property().into(), iso_ms(now));
    r.props.insert(t.modified_property().into(), iso_ms(now));
    db.store_mut(t).insert(id, r);
    id
}

pub(super) fn create_note(db: &mut Db, props: &Map<String, Value>, assoc: &[(u64, u64)], portal: u64) -> HsResult<u64> {
    let changes =
        validate(db.schema(ObjectType::Notes), props, &|_| None, false).map_err(|p| HsError::properties(&p, portal))?;
    if !changes.iter().any(|(k, v)| k == "hs_timestamp" && v.is_some()) {
        return Err(HsError::validation("hs_timestamp is required to create a note"));
    }
    let mut contacts = BTreeSet::new();
    for (to, type_id) in assoc {
        if *type_id != 202 {
            return Err(HsError::validation(format!(
                "associationTypeId {type_id} is not supported for notes by the sandbox (note to contact is 202)"
            )));
        }
        if db.live_contact(*to, true).is_none() {
            return Err(HsError::not_found(&to.to_string()));
        }
        contacts.insert(db.resolve_contact(*to));
    }
    let now = db.stamp();
    Ok(insert_plain(db, ObjectType::Notes, changes, contacts, now))
}

pub(super) async fn patch_object(
    State(st): St,
    Extension(t): Extension<ObjectType>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> HsResult<Response> {
    let q = Query::parse(raw);
    let body = parse_body(&body)?;
    let props = props_of(&body)?;
    let portal = portal(&st);
    let (v, events) = {
        let mut db = st.db();
        let rid = find_record(&db, t, &id, q.one("idProperty"))?;
        if db.store(t).get(&rid).is_none_or(|r| r.archived) {
            return Err(HsError::not_found(&id));
        }
        let events = match t {
            ObjectType::Contacts => {
                let changes = db.prepare_contact_update(rid, &props, false, portal)?;
                let now = db.stamp();
                db.apply_contact_update(rid, changes, now)
            }
            _ => {
                let changes = {
                    let r = &db.store(t)[&rid];
                    validate(db.schema(t), &props, &|n| r.get(n).map(String::from), false)
                        .map_err(|p| HsError::properties(&p, portal))?
                };
                let now = db.stamp();
                apply_plain(&mut db, t, rid, changes, now);
                Vec::new()
            }
        };
        (db.render(t, &db.store(t)[&rid], &PropSelection::AllSet), events)
    };
    st.emit(&events, Actor::Integration);
    Ok(ok(v))
}

pub(super) fn apply_plain(db: &mut Db, t: ObjectType, id: u64, changes: Vec<Change>, now: i64) {
    let Some(r) = db.store_mut(t).get_mut(&id) else { return };
    let mut changed = false;
    for (k, v) in changes {
        if r.props.get(&k) != v.as_ref() {
            changed = true;
            match v {
                Some(v) => r.props.insert(k, v),
                None => r.props.remove(&k),
            };
        }
    }
    if changed {
        r.updated_ms = now;
        r.props.insert(t.modified_property().into(), iso_ms(now));
    }
}

pub(super) async fn delete_contact(State(st): St, Path(id): Path<String>) -> HsResult<Response> {
    let events = {
        let mut db = st.db();
        match id.parse::<u64>() {
            Ok(rid) => {
                let rid = db.resolve_contact(rid);
                let now = db.stamp();
                db.archive_contact(rid, now)
            }
            Err(_) => Vec::new(),
        }
    };
    st.emit(&events, Actor::Integration);
    Ok(StatusCode::NO_CONTENT.into_response())
}
