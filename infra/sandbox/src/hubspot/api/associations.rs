//! Contact-to-company associations (v4 and `2026-03`).

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::common::*;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::model::Record;

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

pub(super) async fn contact_company_associations(
    State(st): St,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    let path = uri.path().to_string();
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
}

pub(super) async fn association_batch_read(State(st): St, body: Bytes) -> HsResult<Response> {
    let started = crate::common::now_ms();
    let body = parse_body(&body)?;
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    if inputs.len() > 1000 {
        return Err(HsError::validation(format!("Batch input size {} exceeds the limit of 1000 inputs", inputs.len())));
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
}
