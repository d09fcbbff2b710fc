//! Communication preferences (v4 and `2026-03`): subscription statuses and "unsubscribe from all".

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::common::*;
use crate::hubspot::errors::{HsError, HsResult};
use crate::hubspot::events::{Actor, Event};
use crate::hubspot::model::{Db, SUBSCRIPTION_TYPES, SubscriptionStatus};
use crate::hubspot::time_fmt::iso_ms;

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

pub(super) async fn get_statuses(
    State(st): St,
    Path(email): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
    check_channel(&Query::parse(raw))?;
    let db = st.db();
    Ok(action_response(status_entries(&db, &email)))
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

pub(super) async fn set_status(State(st): St, Path(email): Path<String>, body: Bytes) -> HsResult<Response> {
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
                legal_basis_explanation: body.get("legalBasisExplanation").and_then(Value::as_str).map(String::from),
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
}

/// Mirrors a subscription change onto `hs_email_optout` (UNCONFIRMED that HubSpot fires a
/// propertyChange for it; the sandbox does, attributed to the calling app).
fn set_optout(db: &mut Db, email_key: &str, value: bool, now: i64) -> Vec<Event> {
    let Some(id) = db.contact_by_email(email_key) else { return Vec::new() };
    let changes = vec![("hs_email_optout".to_string(), Some(value.to_string()))];
    db.apply_contact_update(id, changes, now)
}

pub(super) async fn unsubscribe_all(
    State(st): St,
    Path(email): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
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
}

pub(super) async fn get_unsubscribe_all(
    State(st): St,
    Path(email): Path<String>,
    RawQuery(raw): RawQuery,
) -> HsResult<Response> {
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
}

pub(super) async fn get_definitions() -> HsResult<Response> {
    let now = iso_ms(crate::common::now_ms());
    Ok(ok(json!({"status":"COMPLETE","results":definitions(),"startedAt":now,"completedAt":now})))
}
