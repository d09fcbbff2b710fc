//! Property definitions and property groups.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::common::*;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::model::ObjectType;
use crate::hubspot::properties::{PropertyGroup, def_from_create};

fn schema_type(object_type: &str) -> HsResult<ObjectType> {
    ObjectType::parse(object_type)
        .ok_or_else(|| HsError::validation(format!("Unable to infer object type from: {object_type}")))
}

pub(super) async fn list_properties(State(st): St, Path(object_type): Path<String>) -> HsResult<Response> {
    let t = schema_type(&object_type)?;
    let db = st.db();
    let results: Vec<Value> = db.schema(t).properties.values().map(|p| p.to_json()).collect();
    Ok(ok(json!({"results": results})))
}

pub(super) async fn get_property(
    State(st): St,
    Path((object_type, name)): Path<(String, String)>,
) -> HsResult<Response> {
    let t = schema_type(&object_type)?;
    let db = st.db();
    let p = db.schema(t).properties.get(&name).ok_or_else(|| {
        // UNCONFIRMED wording.
        HsError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", format!("Property {name} does not exist"))
    })?;
    Ok(ok(p.to_json()))
}

pub(super) async fn create_property(State(st): St, Path(object_type): Path<String>, body: Bytes) -> HsResult<Response> {
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
}

pub(super) async fn list_groups(State(st): St, Path(object_type): Path<String>) -> HsResult<Response> {
    let t = schema_type(&object_type)?;
    let db = st.db();
    let results: Vec<Value> = db.schema(t).groups.values().map(PropertyGroup::to_json).collect();
    Ok(ok(json!({"results": results})))
}

pub(super) async fn create_group(State(st): St, Path(object_type): Path<String>, body: Bytes) -> HsResult<Response> {
    let t = schema_type(&object_type)?;
    let body = parse_body(&body)?;
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| HsError::validation("name is required"))?;
    let label = body.get("label").and_then(Value::as_str).ok_or_else(|| HsError::validation("label is required"))?;
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
}
