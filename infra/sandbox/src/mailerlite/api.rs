//! The `/api` handlers: subscribers, groups, segments, fields, imports, webhooks and batch
//! (campaigns live in `campaigns.rs`).

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::{Method, StatusCode, Uri};
use serde::Serialize;
use serde_json::{Map, Value};
use tower::ServiceExt;

use super::account::MailerLite;
use super::campaigns;
use super::error::{ApiError, Model};
use super::json::{created, json_response, no_content, ok};
use super::model::*;
use super::paging::{Params, cursor_envelope, cursor_page, decode_cursor, page_envelope};
use super::request::{flatten_query, numeric, object};
use super::store::{Actor, BATCH_ONLY_EVENTS, EVENTS, Store};
use crate::common::TimeScale;

type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<MailerLite> {
    Router::new()
        .route("/api/subscribers", get(list_subscribers).post(create_subscriber))
        .route("/api/subscribers/import", get(list_imports))
        .route("/api/subscribers/import/{id}", get(get_import))
        .route("/api/subscribers/{id}", get(get_subscriber).put(update_subscriber).delete(delete_subscriber))
        .route("/api/subscribers/{id}/forget", post(forget_subscriber))
        .route("/api/subscribers/{id}/activity-log", get(activity_log))
        .route("/api/subscribers/{sid}/groups/{gid}", post(assign).delete(unassign))
        .route("/api/groups", get(list_groups).post(create_group))
        .route("/api/groups/{id}", get(get_group).put(update_group).delete(delete_group))
        .route("/api/groups/{id}/subscribers", get(group_subscribers))
        .route("/api/groups/{id}/import-subscribers", post(import_subscribers))
        .route("/api/accounts", get(list_accounts))
        .route("/api/segments", get(list_segments))
        .route("/api/segments/{id}", get(get_segment).put(update_segment).delete(delete_segment))
        .route("/api/segments/{id}/subscribers", get(segment_subscribers))
        .route("/api/fields", get(list_fields).post(create_field))
        .route("/api/fields/{id}", put(update_field).delete(delete_field))
        .route("/api/webhooks", get(list_webhooks).post(create_webhook))
        .route("/api/webhooks/{id}", get(get_webhook).put(update_webhook).delete(delete_webhook))
        .route("/api/campaigns", get(campaigns::list))
        .route("/api/campaigns/{id}", get(campaigns::get_one))
        .route(
            "/api/campaigns/{id}/reports/subscriber-activity",
            get(campaigns::activity_get).post(campaigns::activity_post),
        )
        .route("/api/batch", post(batch))
}

/// The API routes without auth, limits or instrumentation: what `/api/batch` sub-requests run
/// through (built once per account).
fn inner_router(ml: &MailerLite) -> Router {
    ml.inner_router(|| routes().fallback(route_not_found).with_state(ml.clone()))
}

/// `{"message":"The route api/… could not be found."}`.
pub async fn route_not_found(req: Request) -> Response {
    ApiError::RouteNotFound(req.uri().path().trim_start_matches('/').to_string()).into_response()
}

fn status_filter(params: &Params, default: Option<Status>) -> Result<Option<Status>, ApiError> {
    match params.get("filter[status]") {
        None | Some("") => Ok(default),
        Some(s) => Status::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("filter.status", "The selected filter.status is invalid.")),
    }
}

fn name_of(body: &Map<String, Value>, required: bool) -> Result<Option<String>, ApiError> {
    match body.get("name") {
        None | Some(Value::Null) if required => Err(ApiError::invalid("name", "The name field is required.")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ApiError::invalid("name", "The name field is required.")),
        Some(Value::String(s)) if s.chars().count() > 255 => {
            Err(ApiError::invalid("name", "The name may not be greater than 255 characters."))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid("name", "The name must be a string.")),
    }
}

// --- subscribers ------------------------------------------------------------------------------

/// Largest `limit` on `GET /subscribers`. MailerLite documents no maximum; integrators report 100
/// (UNCONFIRMED); above it the sandbox answers 422 `errors.limit`.
pub const SUBSCRIBERS_MAX_LIMIT: usize = 100;

/// Pages subscribers by id descending; `members` restricts to a set (a group's members).
fn subscriber_page(
    st: &Store,
    params: &Params,
    members: Option<&BTreeSet<u64>>,
    keep: &dyn Fn(&Subscriber) -> bool,
    limit: usize,
) -> super::paging::CursorPage {
    let cursor = params.get("cursor").and_then(decode_cursor);
    let ok = move |id: &u64| st.subscribers.get(id).is_some_and(|s| s.is_live() && keep(s));
    match members {
        Some(set) => cursor_page(
            cursor,
            limit,
            |b| {
                let upper = b.map_or(Bound::Unbounded, Bound::Excluded);
                Box::new(set.range((Bound::Unbounded, upper)).rev().copied().filter(ok))
            },
            |b| Box::new(set.range((Bound::Excluded(b), Bound::Unbounded)).copied().filter(ok)),
        ),
        None => cursor_page(
            cursor,
            limit,
            |b| {
                let upper = b.map_or(Bound::Unbounded, Bound::Excluded);
                Box::new(st.subscribers.range((Bound::Unbounded, upper)).rev().map(|(id, _)| *id).filter(ok))
            },
            |b| Box::new(st.subscribers.range((Bound::Excluded(b), Bound::Unbounded)).map(|(id, _)| *id).filter(ok)),
        ),
    }
}

async fn list_subscribers(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let status = status_filter(&params, None)?;
    let limit = params.limit(25, SUBSCRIBERS_MAX_LIMIT)?;
    let st = ml.store();
    if limit == 0 {
        // The count endpoint; `filter[status]` applies (UNCONFIRMED).
        return Ok(json_response(StatusCode::OK, &serde_json::json!({ "total": st.live_count(status) })));
    }
    let with_groups = params.get("include") == Some("groups");
    let page = subscriber_page(&st, &params, None, &|s| status.is_none_or(|x| s.status == x), limit);
    let data: Vec<SubscriberOut> =
        page.ids.iter().map(|id| st.subscriber_out(&st.subscribers[id], with_groups)).collect();
    let path = format!("{}/subscribers", ml.base_url());
    Ok(json_response(StatusCode::OK, &cursor_envelope(data, &page, &path, Value::from(limit))))
}

async fn create_subscriber(State(ml): State<MailerLite>, body: Bytes) -> ApiResult {
    let body = object(&body);
    let mut st = ml.store();
    let input = st.parse_subscriber_input(&body, true)?;
    let (id, was_created) = st.upsert(input, "api")?;
    let out = st.subscriber_out(&st.subscribers[&id], true);
    Ok(if was_created { created(out) } else { ok(out) })
}

async fn get_subscriber(State(ml): State<MailerLite>, Path(id): Path<String>) -> ApiResult {
    let st = ml.store();
    let s = st.live_subscriber(&id)?;
    Ok(ok(st.subscriber_out(s, true)))
}

async fn update_subscriber(State(ml): State<MailerLite>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body = object(&body);
    let mut st = ml.store();
    let sid = st.live_subscriber(&id)?.id;
    let input = st.parse_subscriber_input(&body, false)?;
    st.update(sid, input, Actor::Api)?;
    Ok(ok(st.subscriber_out(&st.subscribers[&sid], true)))
}

async fn delete_subscriber(State(ml): State<MailerLite>, Path(id): Path<String>) -> ApiResult {
    let mut st = ml.store();
    let sid = st.live_subscriber(&id)?.id;
    st.delete(sid);
    Ok(no_content())
}

#[derive(Serialize)]
struct ForgetBody {
    data: SubscriberOut,
    message: &'static str,
}

async fn forget_subscriber(State(ml): State<MailerLite>, Path(id): Path<String>) -> ApiResult {
    let mut st = ml.store();
    let sid = st.live_subscriber(&id)?.id;
    let data = st.forget(sid);
    Ok(json_response(
        StatusCode::OK,
        &ForgetBody { data, message: "Subscriber data will be completely deleted and forgotten within 30 days." },
    ))
}

const LOG_NAMES: [&str; 12] = [
    "campaign_send",
    "automation_email_sent",
    "email_open",
    "link_click",
    "email_bounce",
    "spam_complaint",
    "unsubscribed",
    "email_forward",
    "marketing_preferences_change",
    "preference_center",
    "added_to_group",
    "activated",
];

/// `{"data":[…]}` only, as the docs' example (no `links`, no `meta`; the Go SDK models page
/// metadata, so a client must cope either way). The order is not documented (the example's ids
/// run 1235, 1234, 123456): the sandbox answers oldest first, so a client that assumes newest
/// first is caught. `page` from 1, `limit` default 100.
async fn activity_log(State(ml): State<MailerLite>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(100, 1000)?.max(1);
    let filter = params.get("filter[log_name]").filter(|s| !s.is_empty());
    if let Some(f) = filter
        && !LOG_NAMES.contains(&f)
    {
        return Err(ApiError::invalid("filter.log_name", "The selected filter.log_name is invalid."));
    }
    let st = ml.store();
    let sid = st.live_subscriber(&id)?.id;
    let skip = (params.page() - 1).saturating_mul(limit);
    let entries: Vec<LogEntryOut> = st
        .activity
        .get(&sid)
        .map(|v| {
            v.iter()
                .filter(|e| filter.is_none_or(|f| e.log_name == f))
                .skip(skip)
                .take(limit)
                .map(LogEntry::out)
                .collect()
        })
        .unwrap_or_default();
    Ok(ok(entries))
}

/// `POST /subscribers/{sid}/groups/{gid}`. A subscriber or group that does not exist is the
/// documented 422 `{"errors":{"id":["The selected id is invalid."]}}` (not a 404).
async fn assign(State(ml): State<MailerLite>, Path((sid, gid)): Path<(String, String)>) -> ApiResult {
    let mut st = ml.store();
    let invalid = || ApiError::Rejected {
        message: "The given data was invalid.".into(),
        errors: vec![("id".into(), "The selected id is invalid.".into())],
    };
    let sid = st.find_live(&sid).ok_or_else(invalid)?;
    let gid = gid.parse::<u64>().ok().filter(|g| st.groups.contains_key(g)).ok_or_else(invalid)?;
    // Re-assigning a member is a no-op answered 200 (assumed).
    st.assign(sid, gid);
    Ok(ok(st.groups[&gid].out()))
}

/// 204; unknown subscriber or group → 404 `{"message": ""}` (documented). A subscriber who is
/// not a member gets the same 404 (assumed: the docs name no case; this is the reading that a
/// client must cope with, since the removal it asked for cannot happen).
async fn unassign(State(ml): State<MailerLite>, Path((sid, gid)): Path<(String, String)>) -> ApiResult {
    let mut st = ml.store();
    let empty = || ApiError::Message(StatusCode::NOT_FOUND, String::new());
    let sid = st.find_live(&sid).ok_or_else(empty)?;
    let gid = gid.parse::<u64>().ok().filter(|g| st.groups.contains_key(g)).ok_or_else(empty)?;
    if !st.unassign(sid, gid) {
        return Err(empty());
    }
    Ok(no_content())
}

// --- imports -----------------------------------------------------------------------------------

async fn list_imports(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(25, 100)?.max(1);
    let st = ml.store();
    let now = std::time::Instant::now();
    let all: Vec<ImportOut> = st.imports.values().rev().map(|i| i.out(st.account_id, now)).collect();
    let path = format!("{}/subscribers/import", ml.base_url());
    Ok(json_response(StatusCode::OK, &page_envelope(all, params.page(), limit, &path)))
}

async fn get_import(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let st = ml.store();
    let imp = st.imports.get(&id).ok_or_else(|| ApiError::NotFound(Model::Import, id.to_string()))?;
    Ok(ok(imp.out(st.account_id, std::time::Instant::now())))
}

async fn import_subscribers(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let gid = numeric(&id, &uri)?;
    let body = object(&body);
    let mut st = ml.store();
    let gid = st.group_id(&gid.to_string())?;
    let Some(Value::Array(items)) = body.get("subscribers") else {
        return Err(ApiError::invalid("subscribers", "The subscribers field is required."));
    };
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("email") {
            Some(Value::String(e)) => {
                let fields = item.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
                rows.push((e.clone(), fields));
            }
            _ => {
                errors.push((format!("subscribers.{i}.email"), format!("The subscribers.{i}.email field is required.")))
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let config = ml.config();
    let delay = TimeScale(config.time_scale).scale(Duration::from_millis(config.import_delay_ms));
    let import_id = st.import(gid, rows, delay);
    let url = format!("{}/subscribers/import/{import_id}", ml.base_url());
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "import_progress_url": url })))
}

// --- groups ------------------------------------------------------------------------------------

async fn list_groups(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(250, 1000)?.max(1);
    let st = ml.store();
    let name = params.get("filter[name]").map(str::to_lowercase).filter(|n| !n.is_empty());
    let mut groups: Vec<&Group> =
        st.groups.values().filter(|g| name.as_ref().is_none_or(|n| g.name.to_lowercase().contains(n))).collect();
    let sort = params.get("sort").unwrap_or("name");
    let (desc, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort),
    };
    let total = |g: &Group| g.counts.iter().sum::<u64>();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    match key {
        "total" => groups.sort_by_key(|g| total(g)),
        "open_rate" => {
            groups.sort_by(|a, b| ratio(a.opens_count, a.sent_count).total_cmp(&ratio(b.opens_count, b.sent_count)))
        }
        "click_rate" => {
            groups.sort_by(|a, b| ratio(a.clicks_count, a.sent_count).total_cmp(&ratio(b.clicks_count, b.sent_count)))
        }
        "created_at" => groups.sort_by_key(|g| (g.created_at, g.id)),
        "name" => groups.sort_by(|a, b| a.name.cmp(&b.name)),
        _ => return Err(ApiError::invalid("sort", "The selected sort is invalid.")),
    }
    if desc {
        groups.reverse();
    }
    let all: Vec<GroupOut> = groups.into_iter().map(Group::out).collect();
    let path = format!("{}/groups", ml.base_url());
    Ok(json_response(StatusCode::OK, &page_envelope(all, params.page(), limit, &path)))
}

async fn create_group(State(ml): State<MailerLite>, body: Bytes) -> ApiResult {
    let name = name_of(&object(&body), true)?.unwrap_or_default();
    let mut st = ml.store();
    let id = st.create_group(&name);
    Ok(created(st.groups[&id].out()))
}

async fn get_group(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let st = ml.store();
    let g = st.groups.get(&id).ok_or_else(|| ApiError::NotFound(Model::Group, id.to_string()))?;
    Ok(ok(g.out()))
}

async fn update_group(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let name = name_of(&object(&body), true)?.unwrap_or_default();
    let mut st = ml.store();
    let g = st.groups.get_mut(&id).ok_or_else(|| ApiError::NotFound(Model::Group, id.to_string()))?;
    g.name = name;
    Ok(ok(g.out()))
}

async fn delete_group(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    if !st.groups.contains_key(&id) {
        return Err(ApiError::NotFound(Model::Group, id.to_string()));
    }
    st.delete_group(id);
    Ok(no_content())
}

/// Members, cursor-paged; `filter[status]` DEFAULTS TO active; limit 50, max 1000
/// (<https://developers.mailerlite.com/docs/groups.html>).
async fn group_subscribers(
    State(ml): State<MailerLite>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let params = Params::parse(q.as_deref());
    let status = status_filter(&params, Some(Status::Active))?;
    let limit = params.limit(50, 1000)?.max(1);
    let st = ml.store();
    let g = st.groups.get(&id).ok_or_else(|| ApiError::NotFound(Model::Group, id.to_string()))?;
    let with_groups = params.get("include") == Some("groups");
    let page = subscriber_page(&st, &params, Some(&g.members), &|s| status.is_none_or(|x| s.status == x), limit);
    let data: Vec<SubscriberOut> =
        page.ids.iter().map(|sid| st.subscriber_out(&st.subscribers[sid], with_groups)).collect();
    let path = format!("{}/groups/{id}/subscribers", ml.base_url());
    Ok(json_response(StatusCode::OK, &cursor_envelope(data, &page, &path, Value::from(limit))))
}

// --- accounts ----------------------------------------------------------------------------------

/// The name the sandbox's account goes by.
pub const ACCOUNT_NAME: &str = "MailerLite sandbox";

/// `GET /api/accounts`: the accounts the credentials reach. MailerLite's own CLI reads it after
/// its OAuth login (mailerlite/mailerlite-cli `cmd/account/account.go`); ASSUMED to answer an
/// API key the same way, with the key's one account.
async fn list_accounts(State(ml): State<MailerLite>) -> ApiResult {
    let account = serde_json::json!({
        "id": ml.config().account_id.to_string(),
        "name": ACCOUNT_NAME,
        "status": "active",
    });
    Ok(ok(vec![account]))
}

// --- segments ----------------------------------------------------------------------------------

async fn list_segments(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(250, 250)?.max(1);
    let st = ml.store();
    let all: Vec<SegmentOut> = st.segments.values().rev().map(|s| st.segment_out(s, true)).collect();
    let path = format!("{}/segments", ml.base_url());
    Ok(json_response(StatusCode::OK, &page_envelope(all, params.page(), limit, &path)))
}

async fn get_segment(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let st = ml.store();
    let seg = st.segments.get(&id).ok_or_else(|| ApiError::NotFound(Model::Segment, id.to_string()))?;
    Ok(ok(st.segment_out(seg, false)))
}

async fn update_segment(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    if !st.segments.contains_key(&id) {
        return Err(ApiError::NotFound(Model::Segment, id.to_string()));
    }
    let name = name_of(&object(&body), true)?.unwrap_or_default();
    if let Some(seg) = st.segments.get_mut(&id) {
        seg.name = name;
    }
    Ok(ok(st.segment_out(&st.segments[&id], false)))
}

async fn delete_segment(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    st.segments.remove(&id).ok_or_else(|| ApiError::NotFound(Model::Segment, id.to_string()))?;
    Ok(no_content())
}

/// Members matching the segment's rule, ACTIVE only unless `filter[status]` asks for another
/// status; items include `groups` by default; `per_page` echoes a query `limit` as a string
/// (NODE-TAPES segments/test-GET-31). A page reads `limit` subscribers of the account and
/// returns those that match, so pages can be short or even empty and still carry a
/// `next_cursor` (PY-CASS segments-get-subscribers.yml: 2 items, `per_page` 50, a next cursor;
/// how the real API fills a page is assumed). No maximum `limit` is documented: the config's
/// `segment_max_limit` (default 1000, the groups' documented maximum) is assumed.
async fn segment_subscribers(
    State(ml): State<MailerLite>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let params = Params::parse(q.as_deref());
    let status = status_filter(&params, Some(Status::Active))?;
    let limit = params.limit(50, ml.config().segment_max_limit)?.max(1);
    let st = ml.store();
    let seg = st.segments.get(&id).ok_or_else(|| ApiError::NotFound(Model::Segment, id.to_string()))?;
    let rule = seg.rule.clone();
    let window = subscriber_page(&st, &params, None, &|_| true, limit);
    let data: Vec<SubscriberOut> = window
        .ids
        .iter()
        .map(|sid| &st.subscribers[sid])
        .filter(|s| status.is_none_or(|x| s.status == x) && st.segment_matches(&rule, s))
        .map(|s| st.subscriber_out(s, true))
        .collect();
    let per_page = match params.get("limit") {
        Some(raw) => Value::String(raw.to_string()),
        None => Value::from(limit),
    };
    let path = format!("{}/segments/{id}/subscribers", ml.base_url());
    Ok(json_response(StatusCode::OK, &cursor_envelope(data, &window, &path, per_page)))
}

// --- fields ------------------------------------------------------------------------------------

async fn list_fields(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(100, 1000)?.max(1);
    let keyword = params.get("filter[keyword]").map(str::to_lowercase).filter(|k| !k.is_empty());
    let kind = match params.get("filter[type]").filter(|t| !t.is_empty()) {
        Some(t) => Some(
            FieldType::parse(t)
                .ok_or_else(|| ApiError::invalid("filter.type", "The selected filter.type is invalid."))?,
        ),
        None => None,
    };
    let st = ml.store();
    let mut fields: Vec<&FieldDef> = st
        .fields
        .iter()
        .filter(|f| keyword.as_ref().is_none_or(|k| f.name.to_lowercase().contains(k) || f.key.contains(k)))
        .filter(|f| kind.is_none_or(|t| f.kind == t))
        .collect();
    let sort = params.get("sort").unwrap_or("name");
    match sort.trim_start_matches('-') {
        "name" => fields.sort_by(|a, b| a.name.cmp(&b.name)),
        "type" => fields.sort_by(|a, b| a.kind.as_str().cmp(b.kind.as_str()).then(a.name.cmp(&b.name))),
        _ => return Err(ApiError::invalid("sort", "The selected sort is invalid.")),
    }
    if sort.starts_with('-') {
        fields.reverse();
    }
    let all: Vec<FieldOut> = fields.into_iter().map(|f| f.out(true)).collect();
    let path = format!("{}/fields", ml.base_url());
    Ok(json_response(StatusCode::OK, &page_envelope(all, params.page(), limit, &path)))
}

async fn create_field(State(ml): State<MailerLite>, body: Bytes) -> ApiResult {
    let body = object(&body);
    let mut errors = Vec::new();
    let name = match name_of(&body, true) {
        Ok(n) => n,
        Err(ApiError::Validation(e)) => {
            errors.extend(e);
            None
        }
        Err(e) => return Err(e),
    };
    let kind = match body.get("type") {
        None | Some(Value::Null) => {
            errors.push(("type".into(), "The type field is required.".into()));
            None
        }
        Some(Value::String(t)) if FieldType::parse(t).is_some() => FieldType::parse(t),
        Some(_) => {
            errors.push(("type".into(), "The selected type is invalid.".into()));
            None
        }
    };
    let (Some(name), Some(kind)) = (name, kind) else { return Err(ApiError::Validation(errors)) };
    let mut st = ml.store();
    let id = st.create_field(&name, kind)?;
    let field = st.fields.iter().find(|f| f.id == id).expect("just created").out(false);
    Ok(created(field))
}

async fn update_field(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    if !st.fields.iter().any(|f| f.id == id) {
        return Err(ApiError::NotFound(Model::Field, id.to_string()));
    }
    let name = name_of(&object(&body), true)?.unwrap_or_default();
    if st.fields.iter().any(|f| f.id != id && f.name.eq_ignore_ascii_case(&name)) {
        let m = "Field name must be unique".to_string();
        return Err(ApiError::Rejected { message: m.clone(), errors: vec![("name".into(), m)] });
    }
    let field = st.fields.iter_mut().find(|f| f.id == id).expect("checked above");
    // The key never changes on rename (NODE-TAPES fields/test-PUT-12).
    field.name = name;
    Ok(ok(field.out(false)))
}

async fn delete_field(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    let field =
        st.fields.iter().find(|f| f.id == id).ok_or_else(|| ApiError::NotFound(Model::Field, id.to_string()))?;
    if field.is_default {
        // UNCONFIRMED: the default fields are fixed in the app; the sandbox refuses to delete them.
        return Err(ApiError::invalid("id", "Default fields cannot be deleted."));
    }
    st.delete_field(id);
    Ok(no_content())
}

// --- webhooks ----------------------------------------------------------------------------------

#[derive(Default)]
struct WebhookInput {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    batchable: Option<bool>,
}

fn parse_webhook(body: &Map<String, Value>, creating: bool) -> Result<WebhookInput, ApiError> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut w = WebhookInput::default();
    match body.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.chars().count() <= 255 => w.name = Some(s.clone()),
        Some(_) => errors.push(("name".into(), "The name must be a string.".into())),
    }
    match body.get("url") {
        None | Some(Value::Null) if creating => errors.push(("url".into(), "The url field is required.".into())),
        None | Some(Value::Null) => {}
        Some(Value::String(u)) if url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) => {
            w.url = Some(u.clone())
        }
        Some(_) => errors.push(("url".into(), "The url must be a valid URL.".into())),
    }
    match body.get("events") {
        None | Some(Value::Null) if creating => errors.push(("events".into(), "The events field is required.".into())),
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut events = Vec::new();
            for (i, e) in items.iter().enumerate() {
                match e.as_str().filter(|e| EVENTS.contains(e)) {
                    Some(e) => events.push(e.to_string()),
                    None => errors.push((format!("events.{i}"), format!("The selected events.{i} is invalid."))),
                }
            }
            w.events = Some(events);
        }
        Some(_) => errors.push(("events".into(), "The events field is required.".into())),
    }
    for key in ["enabled", "batchable"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => {
                if key == "enabled" {
                    w.enabled = Some(*b)
                } else {
                    w.batchable = Some(*b)
                }
            }
            Some(_) => errors.push((key.into(), format!("The {key} field must be true or false."))),
        }
    }
    if errors.is_empty() { Ok(w) } else { Err(ApiError::Validation(errors)) }
}

/// `batchable` must be true when the events include campaign.open, campaign.click or
/// subscriber.deleted (documented); the message is UNCONFIRMED.
fn check_batchable(events: &[String], batchable: bool) -> Result<(), ApiError> {
    if !batchable && events.iter().any(|e| BATCH_ONLY_EVENTS.contains(&e.as_str())) {
        return Err(ApiError::invalid(
            "batchable",
            "The batchable field must be true when events contain campaign.open, campaign.click or subscriber.deleted.",
        ));
    }
    Ok(())
}

async fn list_webhooks(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.limit(50, 1000)?.max(1);
    let st = ml.store();
    let all: Vec<WebhookOut> = st.webhooks.values().rev().map(Webhook::out).collect();
    let path = format!("{}/webhooks", ml.base_url());
    Ok(json_response(StatusCode::OK, &page_envelope(all, params.page(), limit, &path)))
}

async fn get_webhook(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let st = ml.store();
    let w = st.webhooks.get(&id).ok_or_else(|| ApiError::NotFound(Model::Webhook, id.to_string()))?;
    Ok(ok(w.out()))
}

async fn create_webhook(State(ml): State<MailerLite>, body: Bytes) -> ApiResult {
    let input = parse_webhook(&object(&body), true)?;
    let events = input.events.unwrap_or_default();
    let batchable = input.batchable.unwrap_or(false);
    check_batchable(&events, batchable)?;
    let mut st = ml.store();
    let id = st.new_id();
    let secret = st.random_secret();
    let at = crate::common::time_fmt::now();
    let hook = Webhook {
        id,
        name: input.name.unwrap_or_default(),
        url: input.url.unwrap_or_default(),
        events,
        enabled: input.enabled.unwrap_or(true),
        batchable,
        secret,
        created_at: at,
        updated_at: at,
        last_fired_at: None,
        response_code: None,
        failing_since_ms: None,
        blocked: false,
    };
    let out = hook.out();
    st.webhooks.insert(id, hook);
    Ok(created(out))
}

async fn update_webhook(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let input = parse_webhook(&object(&body), false)?;
    let mut st = ml.store();
    let w = st.webhooks.get_mut(&id).ok_or_else(|| ApiError::NotFound(Model::Webhook, id.to_string()))?;
    let events = input.events.clone().unwrap_or_else(|| w.events.clone());
    let batchable = input.batchable.unwrap_or(w.batchable);
    check_batchable(&events, batchable)?;
    if let Some(n) = input.name {
        w.name = n;
    }
    if let Some(u) = input.url {
        w.url = u;
    }
    if let Some(e) = input.enabled {
        // Enabled again: a new run of failures has to last its full time before it disables it.
        if e && !w.enabled {
            w.failing_since_ms = None;
        }
        w.enabled = e;
    }
    w.events = events;
    w.batchable = batchable;
    w.updated_at = crate::common::time_fmt::now();
    Ok(ok(w.out()))
}

async fn delete_webhook(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let id = numeric(&id, &uri)?;
    let mut st = ml.store();
    st.webhooks.remove(&id).ok_or_else(|| ApiError::NotFound(Model::Webhook, id.to_string()))?;
    Ok(no_content())
}

// --- batch -------------------------------------------------------------------------------------

/// Requests per batch (<https://developers.mailerlite.com/docs/batching.html>).
pub const BATCH_MAX: usize = 50;

/// `api/subscribers`, `/api/subscribers` → `api/subscribers`.
fn normalize_path(p: &str) -> String {
    p.trim().trim_start_matches('/').to_string()
}

/// A batch made only of `POST api/subscribers` (processed as an import, as documented).
pub fn is_upsert_only_batch(bytes: &[u8]) -> bool {
    let body = object(bytes);
    let Some(Value::Array(items)) = body.get("requests") else { return false };
    !items.is_empty()
        && items.iter().all(|it| {
            it.get("method").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("POST"))
                && it.get("path").and_then(Value::as_str).is_some_and(|p| normalize_path(p) == "api/subscribers")
        })
}

struct BatchItem {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn parse_batch(body: &Map<String, Value>) -> Result<Vec<BatchItem>, ApiError> {
    let Some(Value::Array(items)) = body.get("requests") else {
        return Err(ApiError::invalid("requests", "The requests field is required."));
    };
    if items.is_empty() {
        return Err(ApiError::invalid("requests", "The requests field is required."));
    }
    if items.len() > BATCH_MAX {
        // Laravel's default wording for `max:50` on an array (UNCONFIRMED for MailerLite).
        return Err(ApiError::invalid(
            "requests",
            format!("The requests field must not have more than {BATCH_MAX} items."),
        ));
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let method = match it.get("method").and_then(Value::as_str) {
            None => {
                errors.push((format!("requests.{i}.method"), format!("The requests.{i}.method field is required.")));
                None
            }
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => Some(Method::GET),
                "POST" => Some(Method::POST),
                "PUT" => Some(Method::PUT),
                "DELETE" => Some(Method::DELETE),
                "PATCH" => Some(Method::PATCH),
                _ => {
                    errors.push((
                        format!("requests.{i}.method"),
                        format!("The selected requests.{i}.method is invalid."),
                    ));
                    None
                }
            },
        };
        let path = match it.get("path").and_then(Value::as_str).map(normalize_path) {
            Some(p) if p.starts_with("api/") => Some(p),
            Some(_) => {
                errors.push((format!("requests.{i}.path"), format!("The requests.{i}.path must start with api/.")));
                None
            }
            None => {
                errors.push((format!("requests.{i}.path"), format!("The requests.{i}.path field is required.")));
                None
            }
        };
        let body = match it.get("body") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                errors.push((format!("requests.{i}.body"), format!("The requests.{i}.body must be an array.")));
                None
            }
        };
        if let (Some(method), Some(path)) = (method, path) {
            out.push(BatchItem { method, path, body });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(ApiError::Validation(errors)) }
}

/// `POST /batch`: each item runs through the same handlers, in order; always 200 once the
/// envelope is valid. Webhook routes are not supported in batches (documented) and answer the
/// route-not-found 404.
async fn batch(State(ml): State<MailerLite>, body: Bytes) -> Response {
    let items = match parse_batch(&object(&body)) {
        Ok(items) => items,
        Err(e) => return e.into_response(),
    };
    let mut results: Vec<(u16, Vec<u8>)> = Vec::with_capacity(items.len());
    for item in items {
        if item.path.starts_with("api/webhooks") {
            let r = ApiError::RouteNotFound(item.path.split('?').next().unwrap_or_default().to_string());
            results.push((404, serde_json::to_vec(&serde_json::json!({"message": r.message()})).unwrap_or_default()));
            continue;
        }
        let mut uri = format!("/{}", item.path);
        let mut body_bytes = Vec::new();
        match (&item.method, &item.body) {
            (&Method::GET, Some(b)) => {
                let mut params = Vec::new();
                flatten_query("", b, &mut params);
                if !params.is_empty() {
                    let q = serde_urlencoded::to_string(&params).unwrap_or_default();
                    uri.push(if uri.contains('?') { '&' } else { '?' });
                    uri.push_str(&q);
                }
            }
            (_, Some(b)) => body_bytes = serde_json::to_vec(b).unwrap_or_default(),
            _ => {}
        }
        let req = http::Request::builder()
            .method(item.method.clone())
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body_bytes));
        let (code, bytes) = match req {
            Ok(req) => match inner_router(&ml).oneshot(req).await {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
                    (code, bytes.to_vec())
                }
                Err(never) => match never {},
            },
            Err(_) => {
                let r = ApiError::RouteNotFound(item.path.clone());
                (404, serde_json::to_vec(&serde_json::json!({"message": r.message()})).unwrap_or_default())
            }
        };
        results.push((code, bytes));
    }
    let successful = results.iter().filter(|(c, _)| (200..300).contains(c)).count();
    let mut out = format!(
        r#"{{"total":{},"successful":{},"failed":{},"responses":["#,
        results.len(),
        successful,
        results.len() - successful
    )
    .into_bytes();
    for (i, (code, body)) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!(r#"{{"code":{code},"body":"#).as_bytes());
        // Sub-response bodies are embedded as they are (key order kept); an empty body (204)
        // becomes `null` (UNCONFIRMED).
        if body.is_empty() {
            out.extend_from_slice(b"null")
        } else {
            out.extend_from_slice(body)
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    super::json::json_bytes(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_only_batches_are_recognised() {
        let only = br#"{"requests":[{"method":"POST","path":"api/subscribers","body":{"email":"a@b.co"}},{"method":"post","path":"/api/subscribers"}]}"#;
        assert!(is_upsert_only_batch(only));
        let mixed =
            br#"{"requests":[{"method":"POST","path":"api/subscribers"},{"method":"GET","path":"api/subscribers/1"}]}"#;
        assert!(!is_upsert_only_batch(mixed));
        assert!(!is_upsert_only_batch(br#"{"requests":[]}"#));
    }
}
