//! The admin API under `/__sandbox/hubspot/` (no auth, never counted or faulted): seeding,
//! user actions in the "CRM UI" (webhooks as `CRM_UI`), state reads, faults, webhook
//! delivery, stats, rate limits and tokens. Every route calls the same [`HubSpotState`]
//! helper a test would call directly.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::errors::{HsError, HsResult};
use super::seed::SeedRequest;
use super::{HubSpotState, RateLimitSettings, WebhookSettings};
use crate::common::{DeliveryOptions, FaultSpec};

type St = State<Arc<HubSpotState>>;

/// The user id stamped on admin "user" actions unless the request names one.
pub const DEFAULT_USER_ID: u64 = 882_761_034;

fn respond(r: HsResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UserWrite {
    properties: Map<String, Value>,
    user_id: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UserQuery {
    user_id: Option<u64>,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeBody {
    primary_object_id: u64,
    object_id_to_merge: u64,
    user_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    name: String,
    processing_type: String,
    filter_branch: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MembersBody {
    add: Vec<u64>,
    remove: Vec<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FaultsBody {
    specs: Vec<FaultSpec>,
    seed: u64,
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    refresh_token: String,
}

#[derive(Debug, Deserialize)]
struct DailyBody {
    exhausted: bool,
}

/// `{"retryAfterSeconds": 3600}` starts a data-hosting migration, `{"retryAfterSeconds": null}` ends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MigrationBody {
    retry_after_seconds: Option<u64>,
}

async fn seed(State(st): St, Json(req): Json<SeedRequest>) -> Response {
    respond(st.seed(&req).map(|r| Json(r).into_response()))
}

async fn create_contact(State(st): St, Json(b): Json<UserWrite>) -> Response {
    respond((|| {
        let id = st.user_create_contact(&b.properties, b.user_id.unwrap_or(DEFAULT_USER_ID))?;
        Ok((StatusCode::CREATED, Json(st.contact(id).unwrap_or(Value::Null))).into_response())
    })())
}

async fn find_contact(State(st): St, Query(q): Query<UserQuery>) -> Response {
    match q.email.as_deref().and_then(|e| st.contact_by_email(e)) {
        Some(c) => Json(c).into_response(),
        None => HsError::not_found(q.email.as_deref().unwrap_or("")).into_response(),
    }
}

async fn get_contact(State(st): St, Path(id): Path<u64>) -> Response {
    match st.contact(id) {
        Some(c) => Json(c).into_response(),
        None => HsError::not_found(&id.to_string()).into_response(),
    }
}

async fn edit_contact(State(st): St, Path(id): Path<u64>, Json(b): Json<UserWrite>) -> Response {
    respond((|| {
        st.user_edit_contact(id, &b.properties, b.user_id.unwrap_or(DEFAULT_USER_ID))?;
        Ok(Json(st.contact(id).unwrap_or(Value::Null)).into_response())
    })())
}

async fn delete_contact(State(st): St, Path(id): Path<u64>, Query(q): Query<UserQuery>) -> Response {
    respond(
        st.user_delete_contact(id, q.user_id.unwrap_or(DEFAULT_USER_ID))
            .map(|_| StatusCode::NO_CONTENT.into_response()),
    )
}

async fn restore_contact(State(st): St, Path(id): Path<u64>, Query(q): Query<UserQuery>) -> Response {
    respond((|| {
        st.user_restore_contact(id, q.user_id.unwrap_or(DEFAULT_USER_ID))?;
        Ok(Json(st.contact(id).unwrap_or(Value::Null)).into_response())
    })())
}

async fn merge_contacts(State(st): St, Json(b): Json<MergeBody>) -> Response {
    respond((|| {
        let id =
            st.user_merge_contacts(b.primary_object_id, b.object_id_to_merge, b.user_id.unwrap_or(DEFAULT_USER_ID))?;
        Ok(Json(st.contact(id).unwrap_or(Value::Null)).into_response())
    })())
}

async fn contact_notes(State(st): St, Path(id): Path<u64>) -> Response {
    Json(json!({"results": st.notes_of(id)})).into_response()
}

async fn create_company(State(st): St, Json(b): Json<UserWrite>) -> Response {
    respond(
        st.create_company(&b.properties)
            .map(|id| (StatusCode::CREATED, Json(json!({"id": id.to_string()}))).into_response()),
    )
}

async fn lists(State(st): St) -> Response {
    let db = st.db();
    let lists: Vec<Value> = db.lists.values().map(|l| l.to_json(true)).collect();
    Json(json!({"lists": lists})).into_response()
}

async fn create_list(State(st): St, Json(b): Json<ListBody>) -> Response {
    respond(
        st.create_list(&b.name, &b.processing_type, b.filter_branch).map(|l| Json(json!({"list": l})).into_response()),
    )
}

async fn get_list(State(st): St, Path(id): Path<u64>) -> Response {
    let db = st.db();
    match db.lists.get(&id) {
        Some(l) => {
            let members: Vec<String> = l.members.keys().map(u64::to_string).collect();
            Json(json!({"list": l.to_json(true), "members": members})).into_response()
        }
        None => HsError::not_found(&id.to_string()).into_response(),
    }
}

async fn change_members(State(st): St, Path(id): Path<u64>, Json(b): Json<MembersBody>) -> Response {
    respond(st.change_list_members(id, &b.add, &b.remove).map(|v| Json(v).into_response()))
}

async fn get_faults(State(st): St) -> Response {
    let f = &st.instrumentation().faults;
    Json(json!({"specs": f.specs(), "counts": f.counts()})).into_response()
}

async fn set_faults(State(st): St, Json(b): Json<FaultsBody>) -> Response {
    st.instrumentation().faults.set(b.specs, b.seed);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_delivery(State(st): St) -> Response {
    Json(
        json!({"options": st.dispatcher().options(), "stats": st.dispatcher().stats(), "held": st.dispatcher().held()}),
    )
    .into_response()
}

async fn set_delivery(State(st): St, Json(o): Json<DeliveryOptions>) -> Response {
    st.dispatcher().set_options(o);
    StatusCode::NO_CONTENT.into_response()
}

async fn resume_delivery(State(st): St) -> Response {
    st.dispatcher().resume();
    StatusCode::NO_CONTENT.into_response()
}

async fn discard_held(State(st): St) -> Response {
    Json(json!({"discarded": st.dispatcher().discard_held()})).into_response()
}

async fn deliveries(State(st): St) -> Response {
    Json(json!({"deliveries": st.dispatcher().log()})).into_response()
}

async fn clear_deliveries(State(st): St) -> Response {
    st.dispatcher().clear_log();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_webhooks(State(st): St) -> Response {
    Json(json!({"settings": st.webhook_settings()})).into_response()
}

async fn set_webhooks(State(st): St, Json(s): Json<WebhookSettings>) -> Response {
    st.set_webhook_settings(Some(s));
    Json(json!({"settings": st.webhook_settings()})).into_response()
}

async fn delete_webhooks(State(st): St) -> Response {
    st.set_webhook_settings(None);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(st): St) -> Response {
    Json(st.instrumentation().stats.snapshot()).into_response()
}

async fn reset_stats(State(st): St) -> Response {
    st.instrumentation().stats.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_rate_limits(State(st): St) -> Response {
    Json(st.rate_limits()).into_response()
}

async fn set_rate_limits(State(st): St, Json(s): Json<RateLimitSettings>) -> Response {
    st.set_rate_limits(s);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_daily(State(st): St, Json(b): Json<DailyBody>) -> Response {
    st.set_daily_limit_exhausted(b.exhausted);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_migration(State(st): St, Json(b): Json<MigrationBody>) -> Response {
    st.set_migration_in_progress(b.retry_after_seconds.map(std::time::Duration::from_secs));
    StatusCode::NO_CONTENT.into_response()
}

async fn revoke(State(st): St, Json(b): Json<RevokeBody>) -> Response {
    Json(json!({"revoked": st.revoke_refresh_token(&b.refresh_token)})).into_response()
}

async fn expire(State(st): St) -> Response {
    Json(json!({"expired": st.expire_access_tokens()})).into_response()
}

pub fn routes(state: Arc<HubSpotState>) -> Router {
    let p = "/__sandbox/hubspot";
    Router::new()
        .route(&format!("{p}/seed"), post(seed))
        .route(&format!("{p}/contacts"), get(find_contact).post(create_contact))
        .route(&format!("{p}/contacts/merge"), post(merge_contacts))
        .route(&format!("{p}/contacts/{{id}}"), get(get_contact).patch(edit_contact).delete(delete_contact))
        .route(&format!("{p}/contacts/{{id}}/restore"), post(restore_contact))
        .route(&format!("{p}/contacts/{{id}}/notes"), get(contact_notes))
        .route(&format!("{p}/companies"), post(create_company))
        .route(&format!("{p}/lists"), get(lists).post(create_list))
        .route(&format!("{p}/lists/{{id}}"), get(get_list))
        .route(&format!("{p}/lists/{{id}}/members"), put(change_members))
        .route(&format!("{p}/faults"), get(get_faults).put(set_faults))
        .route(&format!("{p}/delivery"), get(get_delivery).put(set_delivery))
        .route(&format!("{p}/delivery/resume"), post(resume_delivery))
        .route(&format!("{p}/delivery/discard"), post(discard_held))
        .route(&format!("{p}/deliveries"), get(deliveries).delete(clear_deliveries))
        .route(&format!("{p}/webhooks"), get(get_webhooks).put(set_webhooks).delete(delete_webhooks))
        .route(&format!("{p}/stats"), get(stats))
        .route(&format!("{p}/stats/reset"), post(reset_stats))
        .route(&format!("{p}/rate-limits"), get(get_rate_limits).put(set_rate_limits))
        .route(&format!("{p}/daily-limit"), put(set_daily))
        .route(&format!("{p}/migration"), put(set_migration))
        .route(&format!("{p}/oauth/revoke"), post(revoke))
        .route(&format!("{p}/oauth/expire-access-tokens"), post(expire))
        .with_state(state)
}
