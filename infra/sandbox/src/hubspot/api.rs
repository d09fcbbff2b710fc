//! The public API routes, each served under its v3/v4 path and its `2026-03` path.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::HubSpotState;
use super::errors::{HsError, HsResult};
use super::events::{Actor, Event, EventKind};
use super::lists::{List, compile};
use super::model::{Db, ObjectType, PropSelection, Record, SUBSCRIPTION_TYPES, SubscriptionStatus};
use super::properties::{Change, PropertyGroup, def_from_create, validate};
use super::search::search;
use super::time_fmt::iso_ms;

type St = State<Arc<HubSpotState>>;

const BATCH_LIMIT: usize = 100;

// ---- small helpers -------------------------------------------------------------------------

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    fn one(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn flag(&self, key: &str) -> bool {
        self.one(key) == Some("true")
    }
    fn number(&self, key: &str, default: usize, max: usize) -> HsResult<usize> {
        match self.one(key) {
            None | Some("") => Ok(default),
            Some(v) => {
                let n: usize =
                    v.parse().map_err(|_| HsError::validation(format!("{key} must be a number, got {v}")))?;
                if n > max {
                    // UNCONFIRMED: HubSpot's behaviour above the maximum; the sandbox refuses it.
                    return Err(HsError::validation(format!("{key} must be at most {max}, got {n}")));
                }
                Ok(n.max(1))
            }
        }
    }
}

fn parse_body(body: &Bytes) -> HsResult<Value> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| HsError::bad_json(&e))
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn respond(r: HsResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn props_of(v: &Value) -> HsResult<Map<String, Value>> {
    match v.get("properties") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(HsError::validation("properties must be an object of property name to value")),
    }
}

fn parse_id(s: &str) -> HsResult<u64> {
    s.trim().parse::<u64>().map_err(|_| HsError::not_found(s))
}

fn inputs(body: &Value) -> HsResult<Vec<Value>> {
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    if inputs.len() > BATCH_LIMIT {
        // The batch limit of every CRM object batch endpoint (100 inputs).
        return Err(HsError::validation(format!(
            "Batch input size {} exceeds the limit of {BATCH_LIMIT} inputs",
            inputs.len()
        )));
    }
    Ok(inputs)
}

fn input_id(v: &Value) -> Option<String> {
    match v.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn trace_id(v: &Value) -> Option<String> {
    v.get("objectWriteTraceId").and_then(Value::as_str).map(String::from)
}

/// The batch envelope: 200/201 when everything succeeded, 207 with `numErrors`/`errors` otherwise.
fn batch_response(success: StatusCode, results: Vec<Value>, errors: Vec<Value>, started: i64) -> Response {
    let mut v = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(crate::common::now_ms()),
    });
    if errors.is_empty() {
        return (success, axum::Json(v)).into_response();
    }
    v["numErrors"] = json!(errors.len());
    v["errors"] = Value::Array(errors);
    (StatusCode::MULTI_STATUS, axum::Json(v)).into_response()
}

fn with_trace(err: &HsError, trace: &str) -> Value {
    let mut e = err.standard_error();
    e["context"]["objectWriteTraceId"] = json!([trace]);
    e
}

fn not_found_error(t: ObjectType, ids: &[String]) -> Value {
    json!({
        "status":"error",
        "category":"OBJECT_NOT_FOUND",
        "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", t.upper_name()),
        "context":{"ids": ids},
        "errors":[],
    })
}

fn portal(st: &HubSpotState) -> u64 {
    st.config().portal_id
}

fn page_link(st: &HubSpotState, path: &str, limit: usize, after: &str) -> String {
    format!("{}{path}?limit={limit}&after={after}", st.base_url())
}

// ---- records -------------------------------------------------------------------------------

fn render_one(db: &Db, t: ObjectType, r: &Record, sel: &PropSelection, assoc: bool) -> Value {
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

async fn list_objects(st: Arc<HubSpotState>, t: ObjectType, path: String, raw: Option<String>) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let limit = q.number("limit", 10, 100)?;
        let after = match q.one("after") {
            None | Some("") => 0,
            Some(a) => {
                a.parse::<u64>().map_err(|_| HsError::validation(format!("after must be a record id, got {a}")))?
            }
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
    })())
}

fn find_record(db: &Db, t: ObjectType, id: &str, id_property: Option<&str>) -> HsResult<u64> {
    match (t, id_property) {
        (ObjectType::Contacts, Some("email")) => db.contact_by_email(id).ok_or_else(|| HsError::not_found(id)),
        (_, Some(p)) if p != "hs_object_id" => {
            Err(HsError::validation(format!("{p} is not a unique property and cannot be used as idProperty")))
        }
        (ObjectType::Contacts, _) => Ok(db.resolve_contact(parse_id(id)?)),
        _ => parse_id(id),
    }
}

async fn get_object(st: Arc<HubSpotState>, t: ObjectType, id: String, raw: Option<String>) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let db = st.db();
        let rid = find_record(&db, t, &id, q.one("idProperty"))?;
        let archived = q.flag("archived");
        let r = db.store(t).get(&rid).filter(|r| r.archived == archived).ok_or_else(|| HsError::not_found(&id))?;
        let sel = PropSelection::from_query(&q.all("properties"));
        let assoc = !q.all("associations").is_empty();
        Ok(ok(render_one(&db, t, r, &sel, assoc)))
    })())
}

/// `associations` of a create body: `(to id, typeId)` pairs.
fn associations_of(v: &Value) -> Vec<(u64, u64)> {
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
fn contact_companies(db: &Db, assoc: &[(u64, u64)]) -> HsResult<Vec<(u64, bool)>> {
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

async fn create_object(st: Arc<HubSpotState>, t: ObjectType, body: Bytes) -> Response {
    respond((|| {
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
    })())
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

fn create_note(db: &mut Db, props: &Map<String, Value>, assoc: &[(u64, u64)], portal: u64) -> HsResult<u64> {
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

async fn patch_object(st: Arc<HubSpotState>, t: ObjectType, id: String, raw: Option<String>, body: Bytes) -> Response {
    respond((|| {
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
    })())
}

fn apply_plain(db: &mut Db, t: ObjectType, id: u64, changes: Vec<Change>, now: i64) {
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

async fn delete_contact(st: Arc<HubSpotState>, id: String) -> Response {
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
    StatusCode::NO_CONTENT.into_response()
}

// ---- batch ---------------------------------------------------------------------------------

async fn batch_read(st: Arc<HubSpotState>, t: ObjectType, raw: Option<String>, body: Bytes) -> Response {
    respond((|| {
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
            // Merged-away ids resolve to the survivor here (UNCONFIRMED; batch *update* refuses them).
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
    })())
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

async fn batch_create(st: Arc<HubSpotState>, t: ObjectType, body: Bytes) -> Response {
    respond((|| {
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
    })())
}

fn non_unique_id_property() -> HsError {
    // As reported (hubspot-api-nodejs #548).
    HsError::validation("Unable to perform update/upsert by non-unique 0-1 property")
}

async fn batch_update(st: Arc<HubSpotState>, t: ObjectType, body: Bytes) -> Response {
    respond((|| {
        let started = crate::common::now_ms();
        let body = parse_body(&body)?;
        let inputs = inputs(&body)?;
        let portal = portal(&st);
        let by_email = |v: &Value| v.get("idProperty").and_then(Value::as_str).is_some_and(|p| p != "hs_object_id");
        if by_email(&body) || inputs.iter().any(by_email) {
            return Err(non_unique_id_property());
        }
        let traced = !inputs.is_empty() && inputs.iter().all(|i| trace_id(i).is_some());
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
            let mut errors = Vec::new();
            let mut missing = Vec::new();
            let mut claimed = BTreeSet::new();
            for input in &inputs {
                let id = input_id(input).unwrap_or_default();
                // Merged-away ids do not work here, unlike the single-record PATCH (object API guide).
                let Some(rid) = id.parse::<u64>().ok().filter(|r| db.store(t).get(r).is_some_and(|r| !r.archived))
                else {
                    match trace_id(input) {
                        Some(trace) if traced => {
                            errors.push(with_trace(&HsError::not_found(&id), &trace));
                        }
                        _ => missing.push(id),
                    }
                    continue;
                };
                let plan = props_of(input).and_then(|props| {
                    let changes = match t {
                        ObjectType::Contacts => db.prepare_contact_update(rid, &props, false, portal)?,
                        _ => {
                            let r = &db.store(t)[&rid];
                            validate(db.schema(t), &props, &|n| r.get(n).map(String::from), false)
                                .map_err(|p| HsError::properties(&p, portal))?
                        }
                    };
                    claim_emails(&changes, &mut claimed)?;
                    Ok(Planned::Update { id: rid, changes })
                });
                match plan {
                    Ok(p) => plans.push(p),
                    Err(e) if !traced => return Err(e),
                    Err(e) => errors.push(with_trace(&e, &trace_id(input).unwrap_or_default())),
                }
            }
            if !missing.is_empty() {
                errors.push(not_found_error(t, &missing));
            }
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
    })())
}

async fn batch_upsert(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
        let started = crate::common::now_ms();
        let body = parse_body(&body)?;
        let inputs = inputs(&body)?;
        let portal = portal(&st);
        let t = ObjectType::Contacts;
        let (results, events) = {
            let mut db = st.db();
            let mut plans = Vec::new();
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
                // UNCONFIRMED: "partial upserts are not supported with email as idProperty" is read
                // as: any failing input fails the whole batch, so every error returns at once.
                match existing {
                    Some(rid) => {
                        let changes = db.prepare_contact_update(rid, &props, false, portal)?;
                        plans.push((Planned::Update { id: rid, changes }, false));
                    }
                    None => {
                        props.entry("email").or_insert_with(|| Value::String(id.clone()));
                        let changes = db.prepare_contact_create(&props, false, portal)?;
                        plans.push((Planned::Create { changes, companies: Vec::new() }, true));
                    }
                }
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
    })())
}

async fn batch_archive(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
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
    })())
}

async fn search_objects(st: Arc<HubSpotState>, t: ObjectType, body: Bytes) -> Response {
    respond((|| {
        let body = parse_body(&body)?;
        let lag = st.config().search_lag_ms as i64;
        let db = st.db();
        let visible_before = (lag > 0).then(|| crate::common::now_ms() - lag);
        Ok(ok(search(&db, t, &body, visible_before)?))
    })())
}

async fn merge(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
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
    })())
}

async fn gdpr_delete(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
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
    })())
}

// ---- associations --------------------------------------------------------------------------

fn association_types(primary: bool) -> Value {
    let mut types = Vec::new();
    if primary {
        types.push(json!({"category":"HUBSPOT_DEFINED","typeId":1,"label":"Primary"}));
    }
    types.push(json!({"category":"HUBSPOT_DEFINED","typeId":279,"label":null}));
    Value::Array(types)
}

fn company_links(r: &Record) -> Vec<Value> {
    let primary = r.get("associatedcompanyid").and_then(|v| v.parse::<u64>().ok());
    r.assoc
        .iter()
        .map(|c| json!({"toObjectId": c.to_string(), "associationTypes": association_types(primary == Some(*c))}))
        .collect()
}

async fn contact_company_associations(
    st: Arc<HubSpotState>,
    path: String,
    id: String,
    raw: Option<String>,
) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let limit = q.number("limit", 500, 500)?;
        let after: u64 = q.one("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let db = st.db();
        let rid = db.resolve_contact(parse_id(&id)?);
        let Some(r) = db.contacts.get(&rid).filter(|r| !r.archived) else {
            // UNCONFIRMED: the sandbox answers an unknown contact with an empty page.
            return Ok(ok(json!({"results": []})));
        };
        let all: Vec<Value> = company_links(r)
            .into_iter()
            .filter(|v| v["toObjectId"].as_str().and_then(|s| s.parse::<u64>().ok()).is_some_and(|c| c >= after))
            .collect();
        let mut out = json!({"results": all.iter().take(limit).cloned().collect::<Vec<_>>()});
        if all.len() > limit {
            let next = all[limit]["toObjectId"].as_str().unwrap_or_default().to_string();
            out["paging"] = json!({"next":{"after": next, "link": page_link(&st, &path, limit, &next)}});
        }
        Ok(ok(out))
    })())
}

async fn association_batch_read(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
        let started = crate::common::now_ms();
        let body = parse_body(&body)?;
        let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
        if inputs.len() > 1000 {
            return Err(HsError::validation(format!(
                "Batch input size {} exceeds the limit of 1000 inputs",
                inputs.len()
            )));
        }
        let db = st.db();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for input in &inputs {
            let id = input_id(input).unwrap_or_default();
            let rec = id
                .parse::<u64>()
                .ok()
                .map(|i| db.resolve_contact(i))
                .and_then(|i| db.contacts.get(&i))
                .filter(|r| !r.archived);
            match rec {
                Some(r) if !r.assoc.is_empty() => {
                    results.push(json!({"from":{"id": id}, "to": company_links(r)}));
                }
                _ => errors.push(json!({
                    "status":"error",
                    "category":"OBJECT_NOT_FOUND",
                    "subCategory":"crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": format!("No company is associated with contact {id}."),
                    "context":{"fromObjectId":[id]},
                    "errors":[],
                })),
            }
        }
        Ok(batch_response(StatusCode::OK, results, errors, started))
    })())
}

// ---- properties ----------------------------------------------------------------------------

fn schema_type(object_type: &str) -> HsResult<ObjectType> {
    ObjectType::parse(object_type)
        .ok_or_else(|| HsError::validation(format!("Unable to infer object type from: {object_type}")))
}

async fn list_properties(st: Arc<HubSpotState>, object_type: String) -> Response {
    respond((|| {
        let t = schema_type(&object_type)?;
        let db = st.db();
        let results: Vec<Value> = db.schema(t).properties.values().map(|p| p.to_json()).collect();
        Ok(ok(json!({"results": results})))
    })())
}

async fn get_property(st: Arc<HubSpotState>, object_type: String, name: String) -> Response {
    respond((|| {
        let t = schema_type(&object_type)?;
        let db = st.db();
        let p = db.schema(t).properties.get(&name).ok_or_else(|| {
            // UNCONFIRMED wording.
            HsError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", format!("Property {name} does not exist"))
        })?;
        Ok(ok(p.to_json()))
    })())
}

async fn create_property(st: Arc<HubSpotState>, object_type: String, body: Bytes) -> Response {
    respond((|| {
        let t = schema_type(&object_type)?;
        let body = parse_body(&body)?;
        let mut db = st.db();
        let now = db.stamp();
        let def = def_from_create(&body, now).map_err(HsError::validation)?;
        let schema = db.schemas.get_mut(&t).expect("schema per type");
        if schema.properties.contains_key(&def.name) {
            // Observed category; UNCONFIRMED message.
            return Err(HsError::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("A property named '{}' already exists.", def.name),
            ));
        }
        if !schema.groups.contains_key(&def.group_name) {
            return Err(HsError::validation(format!("Property group {} does not exist", def.group_name)));
        }
        let v = def.to_json();
        schema.properties.insert(def.name.clone(), def);
        Ok(created(v))
    })())
}

async fn list_groups(st: Arc<HubSpotState>, object_type: String) -> Response {
    respond((|| {
        let t = schema_type(&object_type)?;
        let db = st.db();
        let results: Vec<Value> = db.schema(t).groups.values().map(PropertyGroup::to_json).collect();
        Ok(ok(json!({"results": results})))
    })())
}

async fn create_group(st: Arc<HubSpotState>, object_type: String, body: Bytes) -> Response {
    respond((|| {
        let t = schema_type(&object_type)?;
        let body = parse_body(&body)?;
        let name = body.get("name").and_then(Value::as_str).ok_or_else(|| HsError::validation("name is required"))?;
        let label =
            body.get("label").and_then(Value::as_str).ok_or_else(|| HsError::validation("label is required"))?;
        let mut db = st.db();
        let schema = db.schemas.get_mut(&t).expect("schema per type");
        if schema.groups.contains_key(name) {
            return Err(HsError::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("A property group named '{name}' already exists."),
            ));
        }
        let g = PropertyGroup {
            name: name.into(),
            label: label.into(),
            display_order: body.get("displayOrder").and_then(Value::as_i64).unwrap_or(-1) as i32,
        };
        let v = g.to_json();
        schema.groups.insert(name.into(), g);
        Ok(created(v))
    })())
}

// ---- lists ---------------------------------------------------------------------------------

/// Creates a list; SNAPSHOT lists take their members from the filters once, DYNAMIC ones keep
/// following them.
pub fn create_list_in(
    st: &HubSpotState,
    name: &str,
    processing_type: &str,
    filter_branch: Option<Value>,
) -> HsResult<Value> {
    if !matches!(processing_type, "MANUAL" | "SNAPSHOT" | "DYNAMIC") {
        return Err(HsError::validation(format!(
            "processingType must be MANUAL, SNAPSHOT or DYNAMIC, got {processing_type}"
        )));
    }
    let mut db = st.db();
    if db.lists.values().any(|l| l.name.eq_ignore_ascii_case(name)) {
        // UNCONFIRMED wording; names are unique among public lists.
        return Err(HsError::validation(format!("A list named {name} already exists.")));
    }
    let filter = match (&filter_branch, processing_type) {
        (Some(f), "DYNAMIC" | "SNAPSHOT") => {
            let schema = db.schema(ObjectType::Contacts);
            Some(compile(f, &|p| schema.properties.contains_key(p)).map_err(HsError::validation)?)
        }
        (None, "DYNAMIC" | "SNAPSHOT") => {
            return Err(HsError::validation(format!("A {processing_type} list needs a filterBranch")));
        }
        _ => None,
    };
    let now = db.stamp();
    let id = db.next_list_id;
    db.next_list_id += 1;
    let mut list = List::new(id, name.to_string(), processing_type.to_string(), filter_branch, now);
    if let Some(f) = &filter {
        let members: Vec<u64> = db.contacts.values().filter(|r| !r.archived && f.matches(r)).map(|r| r.id).collect();
        for m in members {
            list.add(m, now);
        }
    }
    if processing_type == "DYNAMIC" {
        list.filter = filter;
    }
    let v = list.to_json(true);
    db.lists.insert(id, list);
    Ok(v)
}

/// Adds and removes records of a MANUAL or SNAPSHOT list.
pub fn change_members(st: &HubSpotState, list_id: u64, add: &[u64], remove: &[u64]) -> HsResult<Value> {
    let mut db = st.db();
    let Db { lists, contacts, .. } = &mut *db;
    let list = lists.get_mut(&list_id).ok_or_else(|| HsError::not_found(&list_id.to_string()))?;
    if !list.is_static() {
        // UNCONFIRMED wording; membership writes only work for MANUAL/SNAPSHOT lists (lists guide).
        return Err(HsError::validation(format!(
            "List {list_id} is a DYNAMIC list; memberships can only be changed for MANUAL or SNAPSHOT lists."
        )));
    }
    let now = crate::common::now_ms();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut missing = Vec::new();
    for id in add {
        if contacts.get(id).is_none_or(|r| r.archived) {
            missing.push(id.to_string());
        } else if list.add(*id, now) {
            added.push(id.to_string());
        }
    }
    for id in remove {
        if list.remove(*id, now) {
            removed.push(id.to_string());
        } else if !contacts.contains_key(id) {
            missing.push(id.to_string());
        }
    }
    if !added.is_empty() || !removed.is_empty() {
        list.updated_ms = now;
    }
    Ok(json!({"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing}))
}

fn list_id(s: &str) -> HsResult<u64> {
    s.parse().map_err(|_| HsError::not_found(s))
}

async fn create_list(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
        let body = parse_body(&body)?;
        let name = body.get("name").and_then(Value::as_str).ok_or_else(|| HsError::validation("name is required"))?;
        let object_type = body.get("objectTypeId").and_then(Value::as_str).unwrap_or("0-1");
        if object_type != "0-1" {
            return Err(HsError::validation(format!("The sandbox serves contact lists (0-1), not {object_type}")));
        }
        let processing = body
            .get("processingType")
            .and_then(Value::as_str)
            .ok_or_else(|| HsError::validation("processingType is required"))?;
        let list = create_list_in(&st, name, processing, body.get("filterBranch").cloned().filter(|f| !f.is_null()))?;
        Ok(ok(json!({"list": list})))
    })())
}

async fn get_lists(st: Arc<HubSpotState>, raw: Option<String>) -> Response {
    let q = Query::parse(raw);
    let include = q.flag("includeFilters");
    let db = st.db();
    let lists: Vec<Value> = q
        .all("listIds")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|id| id.parse::<u64>().ok())
        .filter_map(|id| db.lists.get(&id))
        .map(|l| l.to_json(include))
        .collect();
    ok(json!({"lists": lists}))
}

async fn get_list(st: Arc<HubSpotState>, id: String, raw: Option<String>) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let db = st.db();
        let l = db.lists.get(&list_id(&id)?).ok_or_else(|| HsError::not_found(&id))?;
        Ok(ok(json!({"list": l.to_json(q.flag("includeFilters"))})))
    })())
}

async fn delete_list(st: Arc<HubSpotState>, id: String) -> Response {
    respond((|| {
        let mut db = st.db();
        db.lists.remove(&list_id(&id)?).ok_or_else(|| HsError::not_found(&id))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn list_by_name(st: Arc<HubSpotState>, object_type: String, name: String, raw: Option<String>) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let db = st.db();
        let l = db
            .lists
            .values()
            .find(|l| l.object_type_id == object_type && l.name.eq_ignore_ascii_case(&name))
            .ok_or_else(|| HsError::not_found(&name))?;
        Ok(ok(json!({"list": l.to_json(q.flag("includeFilters"))})))
    })())
}

async fn search_lists(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
        let body = parse_body(&body)?;
        let query = body.get("query").and_then(Value::as_str).unwrap_or("").to_lowercase();
        let types: Vec<String> = body
            .get("processingTypes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        let ids: Vec<u64> = body
            .get("listIds")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64())).collect())
            .unwrap_or_default();
        let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let count = body.get("count").and_then(Value::as_u64).unwrap_or(20) as usize;
        if count > 500 {
            return Err(HsError::validation(format!("count must be at most 500, got {count}")));
        }
        let db = st.db();
        let matching: Vec<&List> = db
            .lists
            .values()
            .filter(|l| query.is_empty() || l.name.to_lowercase().contains(&query))
            .filter(|l| types.is_empty() || types.contains(&l.processing_type))
            .filter(|l| ids.is_empty() || ids.contains(&l.id))
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(count)
            .map(|l| {
                let mut v = l.to_json(false);
                v["additionalProperties"] = l.additional_properties();
                v
            })
            .collect();
        let end = (offset + count).min(total);
        Ok(ok(json!({"lists": page, "offset": end, "hasMore": end < total, "total": total})))
    })())
}

async fn memberships(
    st: Arc<HubSpotState>,
    path: String,
    id: String,
    raw: Option<String>,
    join_order: bool,
) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        let limit = q.number("limit", 100, 250)?;
        let after: u64 = match q.one("after") {
            None | Some("") => 0,
            Some(a) => {
                a.parse().map_err(|_| HsError::validation(format!("after must be a cursor from paging, got {a}")))?
            }
        };
        let db = st.db();
        let list = db.lists.get(&list_id(&id)?).ok_or_else(|| HsError::not_found(&id))?;
        let entry = |record: u64| {
            let m = list.members[&record];
            json!({"recordId": record.to_string(), "membershipTimestamp": iso_ms(m.last_added_ms)})
        };
        // Cursors: the next record id (by id) or the next join position (join order).
        let mut page: Vec<(u64, Value)> = if join_order {
            list.join_order.range(after..).take(limit + 1).map(|(seq, r)| (*seq, entry(*r))).collect()
        } else {
            list.members.range(after..).take(limit + 1).map(|(r, _)| (*r, entry(*r))).collect()
        };
        let next = if page.len() > limit { page.pop().map(|(c, _)| c) } else { None };
        let mut out =
            json!({"results": page.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "total": list.members.len()});
        if let Some(n) = next {
            out["paging"] =
                json!({"next":{"after": n.to_string(), "link": page_link(&st, &path, limit, &n.to_string())}});
        }
        Ok(ok(out))
    })())
}

fn id_array(v: &Value) -> HsResult<Vec<u64>> {
    let arr = v.as_array().ok_or_else(|| HsError::validation("expected a JSON array of record ids"))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| x.as_u64())
                .ok_or_else(|| HsError::validation(format!("{x} is not a record id")))
        })
        .collect()
}

async fn membership_write(st: Arc<HubSpotState>, id: String, body: Bytes, op: &'static str) -> Response {
    respond((|| {
        let body = parse_body(&body)?;
        let lid = list_id(&id)?;
        let (add, remove) = match op {
            "add" => (id_array(&body)?, Vec::new()),
            "remove" => (Vec::new(), id_array(&body)?),
            _ => (
                id_array(body.get("recordIdsToAdd").unwrap_or(&json!([])))?,
                id_array(body.get("recordIdsToRemove").unwrap_or(&json!([])))?,
            ),
        };
        Ok(ok(change_members(&st, lid, &add, &remove)?))
    })())
}

fn record_memberships(db: &Db, record: u64) -> Vec<Value> {
    db.lists
        .values()
        .filter_map(|l| {
            l.members.get(&record).map(|m| {
                json!({
                    "listId": l.id.to_string(),
                    "listVersion": l.version,
                    "firstAddedTimestamp": iso_ms(m.first_added_ms),
                    "lastAddedTimestamp": iso_ms(m.last_added_ms),
                    "isPublicList": true,
                })
            })
        })
        .collect()
}

async fn record_lists(st: Arc<HubSpotState>, object_type: String, record: String) -> Response {
    respond((|| {
        if object_type != "0-1" {
            return Err(HsError::validation(format!("The sandbox serves contact lists (0-1), not {object_type}")));
        }
        let db = st.db();
        let rid = db.resolve_contact(parse_id(&record)?);
        let results = record_memberships(&db, rid);
        Ok(ok(json!({"total": results.len(), "results": results})))
    })())
}

async fn record_lists_batch(st: Arc<HubSpotState>, body: Bytes) -> Response {
    respond((|| {
        let started = crate::common::now_ms();
        let body = parse_body(&body)?;
        let inputs = inputs(&body)?;
        let db = st.db();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in &inputs {
            let record = input
                .get("recordId")
                .and_then(|v| v.as_str().map(String::from).or_else(|| v.as_u64().map(|n| n.to_string())))
                .unwrap_or_default();
            let object_type = input.get("objectTypeId").and_then(Value::as_str).unwrap_or("0-1");
            match record.parse::<u64>().ok().map(|r| db.resolve_contact(r)).filter(|r| db.contacts.contains_key(r)) {
                Some(rid) if object_type == "0-1" => results.push(json!({
                    "objectTypeId": object_type,
                    "recordId": record,
                    "recordListMemberships": record_memberships(&db, rid),
                })),
                _ => missing.push(record),
            }
        }
        let errors =
            if missing.is_empty() { Vec::new() } else { vec![not_found_error(ObjectType::Contacts, &missing)] };
        Ok(batch_response(StatusCode::OK, results, errors, started))
    })())
}

// ---- communication preferences v4 ----------------------------------------------------------

fn definitions() -> Vec<Value> {
    SUBSCRIPTION_TYPES
        .iter()
        .map(|(id, name, description, purpose, is_default)| {
            json!({
                "id": id.to_string(), "name": name, "description": description, "purpose": purpose,
                "communicationMethod": "Email", "isActive": true, "isDefault": is_default, "isInternal": false,
                "businessUnitId": 0, "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z",
            })
        })
        .collect()
}

fn status_entries(db: &Db, email: &str) -> Vec<Value> {
    let key = email.trim().to_lowercase();
    let stored = db.subscriptions.get(&key);
    let all_off = db.unsubscribed_all.get(&key);
    SUBSCRIPTION_TYPES
        .iter()
        .map(|(id, ..)| {
            let s = stored.and_then(|m| m.get(id));
            let (status, source, ts) = match (s, all_off) {
                (_, Some(at)) => ("UNSUBSCRIBED".to_string(), "Unsubscribed from all".to_string(), *at),
                (Some(s), None) => (s.status.clone(), s.source.clone(), s.timestamp_ms),
                (None, None) => ("NOT_SPECIFIED".to_string(), "Default".to_string(), 0),
            };
            json!({
                "channel": "EMAIL",
                "subscriberIdString": email,
                "subscriptionId": id,
                "status": status,
                "source": source,
                "legalBasis": s.and_then(|s| s.legal_basis.clone()),
                "legalBasisExplanation": s.and_then(|s| s.legal_basis_explanation.clone()),
                "setStatusSuccessReason": Value::Null,
                "timestamp": if ts > 0 { Value::String(iso_ms(ts)) } else { Value::Null },
                "businessUnitId": 0,
            })
        })
        .collect()
}

fn action_response(results: Vec<Value>) -> Response {
    let now = iso_ms(crate::common::now_ms());
    ok(json!({"status":"COMPLETE","results":results,"startedAt":now,"completedAt":now}))
}

fn check_channel(q: &Query) -> HsResult<()> {
    match q.one("channel") {
        Some("EMAIL") | None => Ok(()),
        Some(other) => Err(HsError::validation(format!("channel {other} is not supported; use EMAIL"))),
    }
}

async fn get_statuses(st: Arc<HubSpotState>, email: String, raw: Option<String>) -> Response {
    respond((|| {
        check_channel(&Query::parse(raw))?;
        let db = st.db();
        Ok(action_response(status_entries(&db, &email)))
    })())
}

const LEGAL_BASES: [&str; 7] = [
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "PERFORMANCE_OF_CONTRACT",
    "CONSENT_WITH_NOTICE",
    "NON_GDPR",
    "PROCESS_AND_STORE",
    "LEGITIMATE_INTEREST_OTHER",
];

async fn set_status(st: Arc<HubSpotState>, email: String, body: Bytes) -> Response {
    respond((|| {
        let body = parse_body(&body)?;
        let sub_id = body
            .get("subscriptionId")
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .ok_or_else(|| HsError::validation("subscriptionId is required"))?;
        if !SUBSCRIPTION_TYPES.iter().any(|(id, ..)| *id == sub_id) {
            return Err(HsError::validation(format!("Subscription {sub_id} does not exist")));
        }
        let state = body.get("statusState").and_then(Value::as_str).unwrap_or("");
        if !matches!(state, "SUBSCRIBED" | "UNSUBSCRIBED" | "NOT_SPECIFIED") {
            return Err(HsError::validation(format!(
                "statusState must be SUBSCRIBED, UNSUBSCRIBED or NOT_SPECIFIED, got {state}"
            )));
        }
        let legal_basis = body.get("legalBasis").and_then(Value::as_str).map(String::from);
        if let Some(b) = &legal_basis
            && !LEGAL_BASES.contains(&b.as_str())
        {
            return Err(HsError::validation(format!("legalBasis {b} is not one of {LEGAL_BASES:?}")));
        }
        let (entries, events) = {
            let mut db = st.db();
            let now = db.stamp();
            let key = email.trim().to_lowercase();
            db.subscriptions.entry(key.clone()).or_default().insert(
                sub_id,
                SubscriptionStatus {
                    status: state.into(),
                    legal_basis,
                    legal_basis_explanation: body
                        .get("legalBasisExplanation")
                        .and_then(Value::as_str)
                        .map(String::from),
                    source: "Public API".into(),
                    timestamp_ms: now,
                },
            );
            let mut events = Vec::new();
            // v4 can resubscribe (unlike v3): subscribing lifts "unsubscribed from all" (UNCONFIRMED
            // that HubSpot also flips hs_email_optout back; the sandbox does).
            if state == "SUBSCRIBED" && db.unsubscribed_all.remove(&key).is_some() {
                events = set_optout(&mut db, &key, false, now);
            }
            let entries: Vec<Value> =
                status_entries(&db, &email).into_iter().filter(|e| e["subscriptionId"] == json!(sub_id)).collect();
            (entries, events)
        };
        st.emit(&events, Actor::Integration);
        Ok(action_response(entries))
    })())
}

/// Mirrors a subscription change onto `hs_email_optout` (UNCONFIRMED that HubSpot fires a
/// propertyChange for it; the sandbox does, attributed to the calling app).
fn set_optout(db: &mut Db, email_key: &str, value: bool, now: i64) -> Vec<Event> {
    let Some(id) = db.contact_by_email(email_key) else { return Vec::new() };
    let changes = vec![("hs_email_optout".to_string(), Some(value.to_string()))];
    db.apply_contact_update(id, changes, now)
}

async fn unsubscribe_all(st: Arc<HubSpotState>, email: String, raw: Option<String>) -> Response {
    respond((|| {
        let q = Query::parse(raw);
        check_channel(&q)?;
        let (entries, events) = {
            let mut db = st.db();
            let now = db.stamp();
            let key = email.trim().to_lowercase();
            db.unsubscribed_all.entry(key.clone()).or_insert(now);
            let events = set_optout(&mut db, &key, true, now);
            (status_entries(&db, &email), events)
        };
        st.emit(&events, Actor::Integration);
        Ok(action_response(if q.flag("verbose") { entries } else { Vec::new() }))
    })())
}

async fn get_unsubscribe_all(st: Arc<HubSpotState>, email: String, raw: Option<String>) -> Response {
    respond((|| {
        check_channel(&Query::parse(raw))?;
        let db = st.db();
        let at = db.unsubscribed_all.get(&email.trim().to_lowercase());
        // UNCONFIRMED field set beyond `wideStatusType`.
        Ok(action_response(vec![json!({
            "subscriberIdString": email,
            "wideStatusType": "PORTAL_WIDE",
            "status": if at.is_some() { "UNSUBSCRIBED" } else { "SUBSCRIBED" },
            "channel": "EMAIL",
            "timestamp": at.map(|t| iso_ms(*t)),
            "businessUnitId": 0,
        })]))
    })())
}

async fn get_definitions() -> Response {
    let now = iso_ms(crate::common::now_ms());
    ok(json!({"status":"COMPLETE","results":definitions(),"startedAt":now,"completedAt":now}))
}

async fn account_details(st: Arc<HubSpotState>) -> Response {
    let c = st.config();
    ok(json!({
        "portalId": c.portal_id,
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "-05:00",
        "utcOffsetMilliseconds": -18_000_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
}

// ---- routing -------------------------------------------------------------------------------

fn object_routes(
    r: Router<Arc<HubSpotState>>,
    prefix: &str,
    name: &'static str,
    t: ObjectType,
) -> Router<Arc<HubSpotState>> {
    let base = format!("{prefix}/{name}");
    let list_path = base.clone();
    let mut r = r
        .route(
            &base,
            get(move |State(st): St, RawQuery(q): RawQuery| list_objects(st, t, list_path.clone(), q))
                .post(move |State(st): St, b: Bytes| create_object(st, t, b)),
        )
        .route(
            &format!("{base}/batch/read"),
            post(move |State(st): St, RawQuery(q): RawQuery, b: Bytes| batch_read(st, t, q, b)),
        )
        .route(&format!("{base}/search"), post(move |State(st): St, b: Bytes| search_objects(st, t, b)));
    let one = format!("{base}/{{id}}");
    r = match t {
        ObjectType::Contacts => r
            .route(
                &one,
                get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| get_object(st, t, id, q))
                    .patch(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery, b: Bytes| {
                        patch_object(st, t, id, q, b)
                    })
                    .delete(|State(st): St, Path(id): Path<String>| delete_contact(st, id)),
            )
            .route(&format!("{base}/batch/create"), post(move |State(st): St, b: Bytes| batch_create(st, t, b)))
            .route(&format!("{base}/batch/update"), post(move |State(st): St, b: Bytes| batch_update(st, t, b)))
            .route(&format!("{base}/batch/upsert"), post(|State(st): St, b: Bytes| batch_upsert(st, b)))
            .route(&format!("{base}/batch/archive"), post(|State(st): St, b: Bytes| batch_archive(st, b)))
            .route(&format!("{base}/merge"), post(|State(st): St, b: Bytes| merge(st, b)))
            .route(&format!("{base}/gdpr-delete"), post(|State(st): St, b: Bytes| gdpr_delete(st, b))),
        ObjectType::Companies => r
            .route(
                &one,
                get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| get_object(st, t, id, q))
                    .patch(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery, b: Bytes| {
                        patch_object(st, t, id, q, b)
                    }),
            )
            .route(&format!("{base}/batch/update"), post(move |State(st): St, b: Bytes| batch_update(st, t, b))),
        ObjectType::Notes => r
            .route(
                &one,
                get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| get_object(st, t, id, q)),
            )
            .route(&format!("{base}/batch/create"), post(move |State(st): St, b: Bytes| batch_create(st, t, b))),
    };
    r
}

pub fn routes(state: Arc<HubSpotState>) -> Router {
    let mut r: Router<Arc<HubSpotState>> = Router::new();
    for prefix in ["/crm/v3/objects", "/crm/objects/2026-03"] {
        r = object_routes(r, prefix, "contacts", ObjectType::Contacts);
        r = object_routes(r, prefix, "companies", ObjectType::Companies);
        r = object_routes(r, prefix, "notes", ObjectType::Notes);
    }
    for prefix in ["/crm/v4/objects", "/crm/objects/2026-03"] {
        let path = format!("{prefix}/contacts/{{id}}/associations/companies");
        let p = path.clone();
        r = r.route(
            &path,
            get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| {
                contact_company_associations(st, p.replace("{id}", &id), id, q)
            }),
        );
    }
    for prefix in ["/crm/v4/associations", "/crm/associations/2026-03"] {
        r = r.route(
            &format!("{prefix}/contacts/companies/batch/read"),
            post(|State(st): St, b: Bytes| association_batch_read(st, b)),
        );
    }
    for prefix in ["/crm/v3/properties", "/crm/properties/2026-03"] {
        r = r
            .route(
                &format!("{prefix}/{{object_type}}"),
                get(|State(st): St, Path(t): Path<String>| list_properties(st, t))
                    .post(|State(st): St, Path(t): Path<String>, b: Bytes| create_property(st, t, b)),
            )
            .route(
                &format!("{prefix}/{{object_type}}/groups"),
                get(|State(st): St, Path(t): Path<String>| list_groups(st, t))
                    .post(|State(st): St, Path(t): Path<String>, b: Bytes| create_group(st, t, b)),
            )
            .route(
                &format!("{prefix}/{{object_type}}/{{name}}"),
                get(|State(st): St, Path((t, n)): Path<(String, String)>| get_property(st, t, n)),
            );
    }
    for prefix in ["/crm/v3/lists", "/crm/lists/2026-03"] {
        let members_path = format!("{prefix}/{{list_id}}/memberships");
        let join_path = format!("{prefix}/{{list_id}}/memberships/join-order");
        let (mp, jp) = (members_path.clone(), join_path.clone());
        r = r
            .route(
                prefix,
                get(|State(st): St, RawQuery(q): RawQuery| get_lists(st, q))
                    .post(|State(st): St, b: Bytes| create_list(st, b)),
            )
            .route(&format!("{prefix}/search"), post(|State(st): St, b: Bytes| search_lists(st, b)))
            .route(
                &format!("{prefix}/{{list_id}}"),
                get(|State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| get_list(st, id, q))
                    .delete(|State(st): St, Path(id): Path<String>| delete_list(st, id)),
            )
            .route(
                &format!("{prefix}/object-type-id/{{object_type}}/name/{{name}}"),
                get(|State(st): St, Path((t, n)): Path<(String, String)>, RawQuery(q): RawQuery| {
                    list_by_name(st, t, n, q)
                }),
            )
            .route(
                &members_path,
                get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| {
                    memberships(st, mp.replace("{list_id}", &id), id, q, false)
                }),
            )
            .route(
                &join_path,
                get(move |State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery| {
                    memberships(st, jp.replace("{list_id}", &id), id, q, true)
                }),
            )
            .route(
                &format!("{prefix}/{{list_id}}/memberships/add"),
                put(|State(st): St, Path(id): Path<String>, b: Bytes| membership_write(st, id, b, "add")),
            )
            .route(
                &format!("{prefix}/{{list_id}}/memberships/remove"),
                put(|State(st): St, Path(id): Path<String>, b: Bytes| membership_write(st, id, b, "remove")),
            )
            .route(
                &format!("{prefix}/{{list_id}}/memberships/add-and-remove"),
                put(|State(st): St, Path(id): Path<String>, b: Bytes| membership_write(st, id, b, "add-and-remove")),
            )
            .route(
                &format!("{prefix}/records/{{object_type}}/{{record_id}}/memberships"),
                get(|State(st): St, Path((t, id)): Path<(String, String)>| record_lists(st, t, id)),
            )
            .route(
                &format!("{prefix}/records/memberships/batch/read"),
                post(|State(st): St, b: Bytes| record_lists_batch(st, b)),
            );
    }
    for prefix in ["/communication-preferences/v4", "/communication-preferences/2026-03"] {
        r = r
            .route(&format!("{prefix}/definitions"), get(get_definitions))
            .route(
                &format!("{prefix}/statuses/{{email}}"),
                get(|State(st): St, Path(e): Path<String>, RawQuery(q): RawQuery| get_statuses(st, e, q))
                    .post(|State(st): St, Path(e): Path<String>, b: Bytes| set_status(st, e, b)),
            )
            .route(
                &format!("{prefix}/statuses/{{email}}/unsubscribe-all"),
                get(|State(st): St, Path(e): Path<String>, RawQuery(q): RawQuery| get_unsubscribe_all(st, e, q))
                    .post(|State(st): St, Path(e): Path<String>, RawQuery(q): RawQuery| unsubscribe_all(st, e, q)),
            );
    }
    for path in ["/account-info/v3/details", "/account-info/2026-03/details"] {
        r = r.route(path, get(|State(st): St| account_details(st)));
    }
    r.with_state(state)
}
