//! Lists (segments) and their memberships.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::common::*;
use crate::hubspot::HubSpotState;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::lists::{List, compile};
use crate::hubspot::model::{Db, ObjectType};
use crate::hubspot::time_fmt::iso_ms;

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

pub(super) async fn create_list(State(st): St, body: Bytes) -> HsResult<Response> {
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
}

pub(super) async fn get_lists(State(st): St, RawQuery(raw): RawQuery) -> HsResult<Response> {
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
    Ok(ok(json!({"lists": lists})))
}

pub(super) async fn get_list(State(st): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> HsResult<Response> {
    let q = Query::parse(raw);
    let db = st.db();
    let l = db.lists.get(&list_id(&id)?).ok_or_else(|| HsError::not_found(&id))?;
    Ok(ok(json!({"list": l.to_json(q.flag("includeFilters"))})))
}

pub(super) async fn delete_list(State(st): St, Path(id): Path<String>) -> HsResult<Response> {
    let mut db = st.db();
    db.lists.remove(&list_id(&id)?).ok_or_else(|| HsError::not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_by_name(
    State(st): St,
    Path((object_type, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    let q = Query::parse(raw);
    let db = st.db();
    let l = db
        .lists
        .values()
        .find(|l| l.object_type_id == object_type && l.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| HsError::not_found(&name))?;
    Ok(ok(json!({"list": l.to_json(q.flag("includeFilters"))})))
}

pub(super) async fn search_lists(State(st): St, body: Bytes) -> HsResult<Response> {
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
}

/// A page of a list's members, by record id or in join order.
fn memberships(st: &HubSpotState, path: &str, id: String, raw: Option<String>, join_order: bool) -> HsResult<Response> {
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
    let mut out = json!({"results": page.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "total": list.members.len()});
    if let Some(n) = next {
        out["paging"] = json!({"next":{"after": n.to_string(), "link": page_link(st, path, limit, &n.to_string())}});
    }
    Ok(ok(out))
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

fn membership_write(st: &HubSpotState, id: String, body: Bytes, op: &'static str) -> HsResult<Response> {
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
    Ok(ok(change_members(st, lid, &add, &remove)?))
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

pub(super) async fn record_lists(
    State(st): St,
    Path((object_type, record)): Path<(String, String)>,
) -> HsResult<Response> {
    if object_type != "0-1" {
        return Err(HsError::validation(format!("The sandbox serves contact lists (0-1), not {object_type}")));
    }
    let db = st.db();
    let rid = db.resolve_contact(parse_id(&record)?);
    let results = record_memberships(&db, rid);
    Ok(ok(json!({"total": results.len(), "results": results})))
}

pub(super) async fn record_lists_batch(State(st): St, body: Bytes) -> HsResult<Response> {
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
    let errors = if missing.is_empty() { Vec::new() } else { vec![not_found_error(ObjectType::Contacts, &missing)] };
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

pub(super) async fn members(
    State(st): St,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    memberships(&st, uri.path(), id, raw, false)
}

pub(super) async fn members_in_join_order(
    State(st): St,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    memberships(&st, uri.path(), id, raw, true)
}

pub(super) async fn add_members(State(st): St, Path(id): Path<String>, body: Bytes) -> HsResult<Response> {
    membership_write(&st, id, body, "add")
}

pub(super) async fn remove_members(State(st): St, Path(id): Path<String>, body: Bytes) -> HsResult<Response> {
    membership_write(&st, id, body, "remove")
}

pub(super) async fn add_and_remove_members(State(st): St, Path(id): Path<String>, body: Bytes) -> HsResult<Response> {
    membership_write(&st, id, body, "add-and-remove")
}
