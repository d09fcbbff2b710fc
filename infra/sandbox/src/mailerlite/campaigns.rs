//! Sent campaigns and engagement: the admin "simulate a campaign send", the campaign endpoints,
//! and the subscriber-activity report. Documented at <https://developers.mailerlite.com/docs/campaigns.html>.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::account::MailerLite;
use super::error::{ApiError, Model};
use super::json::{OrderedMap, Rate, json_response, ok, rate};
use super::model::{ActivityRow, Campaign, Status, SubscriberOut};
use super::paging::{Params, page_envelope};
use super::request::{flatten_query, numeric, object};
use super::store::{Actor, PendingEvent, Store};
use crate::common::time_fmt::{now, rest};

/// Who receives a simulated campaign: explicit subscriber ids and/or a group's members. Only
/// live, active subscribers are sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipients {
    pub subscriber_ids: Vec<String>,
    pub group_id: Option<String>,
}

/// A campaign send to simulate. Counts win over rates; rates are fractions of the delivered
/// emails. Who opens, clicks, … is chosen deterministically from `seed`:
/// hard bounces first (they never open), then openers among the delivered; clickers are the
/// first openers; unsubscribers and then spam reporters are the last openers (one person does
/// at most one of the two). Clicked URLs rotate through `urls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignSpec {
    pub name: String,
    pub subject: Option<String>,
    pub recipients: Recipients,
    pub opens: Option<u64>,
    pub open_rate: Option<f64>,
    pub clicks: Option<u64>,
    pub click_rate: Option<f64>,
    pub unsubscribes: Option<u64>,
    pub hard_bounces: Option<u64>,
    pub spam_reports: Option<u64>,
    pub urls: Vec<String>,
    pub seed: Option<u64>,
}

/// What a simulated send did, by subscriber id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub campaign_id: String,
    pub recipients: Vec<String>,
    pub opened: Vec<String>,
    pub clicked: Vec<String>,
    pub unsubscribed: Vec<String>,
    pub bounced: Vec<String>,
    pub spam_reported: Vec<String>,
}

fn count(n: Option<u64>, rate: Option<f64>, of: usize) -> usize {
    match (n, rate) {
        (Some(n), _) => (n as usize).min(of),
        (None, Some(r)) => ((r.clamp(0.0, 1.0) * of as f64).round() as usize).min(of),
        (None, None) => 0,
    }
}

/// Runs the send against the store (the caller flushes webhooks).
pub fn simulate(st: &mut Store, spec: &CampaignSpec, default_seed: u64) -> Result<CampaignSummary, ApiError> {
    let mut ids: Vec<u64> = Vec::new();
    for raw in &spec.recipients.subscriber_ids {
        let id = st.find_live(raw).ok_or_else(|| ApiError::NotFound(Model::Subscriber, raw.clone()))?;
        ids.push(id);
    }
    let mut group_ids = Vec::new();
    if let Some(g) = &spec.recipients.group_id {
        let gid = st.group_id(g)?;
        group_ids.push(gid);
        ids.extend(st.groups[&gid].members.iter().copied());
    }
    ids.sort_unstable();
    ids.dedup();
    ids.retain(|id| st.subscribers.get(id).is_some_and(|s| s.is_live() && s.status == Status::Active));
    let mut rng = fastrand::Rng::with_seed(spec.seed.unwrap_or(default_seed) ^ st.campaigns.len() as u64);
    rng.shuffle(&mut ids);

    let bounces = count(spec.hard_bounces, None, ids.len());
    let (bounced, delivered) = ids.split_at(bounces);
    let opens = count(spec.opens, spec.open_rate, delivered.len());
    let openers = &delivered[..opens];
    let clicks = count(spec.clicks, spec.click_rate, openers.len());
    let clickers = &openers[..clicks];
    let unsubs = count(spec.unsubscribes, None, openers.len());
    let unsubscribers = &openers[openers.len() - unsubs..];
    let spam = count(spec.spam_reports, None, openers.len() - unsubs);
    let spammers = &openers[openers.len() - unsubs - spam..openers.len() - unsubs];

    let at = now();
    let campaign_id = st.new_id();
    let email_id = st.new_id();
    let name = if spec.name.is_empty() { format!("Campaign {campaign_id}") } else { spec.name.clone() };
    let subject = spec.subject.clone().unwrap_or_else(|| name.clone());
    let preview_url = format!("https://preview.mailerlite.io/preview/{}/emails/{email_id}", st.account_id);
    let urls: Vec<String> = if spec.urls.is_empty() { vec!["https://example.com/".into()] } else { spec.urls.clone() };
    let props = |extra: Option<(&str, &str)>| {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), "campaigns".into());
        m.insert("campaign_id".into(), campaign_id.to_string().into());
        m.insert("campaign_name".into(), name.clone().into());
        m.insert("preview_url".into(), preview_url.clone().into());
        if let Some((k, v)) = extra {
            m.insert(k.into(), v.into());
        }
        Value::Object(m)
    };
    let set = |v: &[u64]| v.iter().copied().collect::<std::collections::HashSet<u64>>();
    let (opener_set, clicker_set, unsub_set, bounce_set, spam_set) =
        (set(openers), set(clickers), set(unsubscribers), set(bounced), set(spammers));
    let mut rows = Vec::new();
    // Sorted back into id order so the report and logs are stable.
    let mut all: Vec<u64> = ids.clone();
    all.sort_unstable();
    for sid in &all {
        let opened = opener_set.contains(sid);
        let clicked = clicker_set.contains(sid);
        let row = ActivityRow {
            id: st.new_id(),
            subscriber_id: *sid,
            opens_count: u64::from(opened),
            clicks_count: u64::from(clicked),
            opened,
            clicked,
            unsubscribed: unsub_set.contains(sid),
            hardbounced: bounce_set.contains(sid),
            junk: spam_set.contains(sid),
        };
        if let Some(s) = st.subscribers.get_mut(sid) {
            s.sent += 1;
            s.opens_count += row.opens_count;
            s.clicks_count += row.clicks_count;
            s.updated_at = at;
            for g in s.groups.clone() {
                if let Some(group) = st.groups.get_mut(&g) {
                    group.sent_count += 1;
                    group.opens_count += row.opens_count;
                    group.clicks_count += row.clicks_count;
                }
            }
        }
        st.log(*sid, "campaign_send", "campaigns", props(None), at);
        rows.push(row);
    }
    st.campaigns.insert(
        campaign_id,
        Campaign {
            id: campaign_id,
            email_id,
            name: name.clone(),
            subject,
            created_at: at,
            finished_at: at,
            group_ids,
            rows,
        },
    );
    let event = |kind: &'static str, sid: u64, url: Option<String>| PendingEvent {
        kind,
        subscriber_id: sid,
        group: None,
        campaign_id: Some(campaign_id),
        url,
    };
    for sid in bounced {
        st.log(*sid, "email_bounce", "campaigns", props(None), at);
        st.set_status(*sid, Status::Bounced, Actor::User, at);
    }
    for sid in openers {
        st.log(*sid, "email_open", "opens", props(None), at);
        st.pending.push(event("campaign.open", *sid, None));
    }
    for (i, sid) in clickers.iter().enumerate() {
        let url = urls[i % urls.len()].clone();
        st.log(*sid, "link_click", "clicks", props(Some(("url", &url))), at);
        st.pending.push(event("campaign.click", *sid, Some(url)));
    }
    for sid in unsubscribers {
        st.log(*sid, "unsubscribed", "campaigns", props(None), at);
        st.set_status(*sid, Status::Unsubscribed, Actor::User, at);
    }
    for sid in spammers {
        st.log(*sid, "spam_complaint", "campaigns", props(None), at);
        st.set_status(*sid, Status::Junk, Actor::SpamReport, at);
    }
    let strs = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
    let mut opened: Vec<u64> = openers.to_vec();
    opened.sort_unstable();
    let mut clicked: Vec<u64> = clickers.to_vec();
    clicked.sort_unstable();
    Ok(CampaignSummary {
        campaign_id: campaign_id.to_string(),
        recipients: strs(&all),
        opened: strs(&opened),
        clicked: strs(&clicked),
        unsubscribed: strs(unsubscribers),
        bounced: strs(bounced),
        spam_reported: strs(spammers),
    })
}

// --- output --------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Stats {
    sent: u64,
    opens_count: u64,
    unique_opens_count: u64,
    open_rate: Rate,
    clicks_count: u64,
    unique_clicks_count: u64,
    click_rate: Rate,
    unsubscribes_count: u64,
    unsubscribe_rate: Rate,
    spam_count: u64,
    spam_rate: Rate,
    hard_bounces_count: u64,
    hard_bounce_rate: Rate,
    soft_bounces_count: u64,
    soft_bounce_rate: Rate,
    forwards_count: u64,
    forward_rate: Rate,
    click_to_open_rate: Rate,
}

fn stats(c: &Campaign) -> Stats {
    let sent = c.rows.len() as u64;
    let n = |f: fn(&ActivityRow) -> bool| c.rows.iter().filter(|r| f(r)).count() as u64;
    let opens = n(|r| r.opened);
    let clicks = n(|r| r.clicked);
    let unsubs = n(|r| r.unsubscribed);
    let spam = n(|r| r.junk);
    let bounces = n(|r| r.hardbounced);
    Stats {
        sent,
        opens_count: c.rows.iter().map(|r| r.opens_count).sum(),
        unique_opens_count: opens,
        open_rate: rate(opens, sent),
        clicks_count: c.rows.iter().map(|r| r.clicks_count).sum(),
        unique_clicks_count: clicks,
        click_rate: rate(clicks, sent),
        unsubscribes_count: unsubs,
        unsubscribe_rate: rate(unsubs, sent),
        spam_count: spam,
        spam_rate: rate(spam, sent),
        hard_bounces_count: bounces,
        hard_bounce_rate: rate(bounces, sent),
        soft_bounces_count: 0,
        soft_bounce_rate: rate(0, sent),
        forwards_count: 0,
        forward_rate: rate(0, sent),
        click_to_open_rate: rate(clicks, opens),
    }
}

#[derive(Serialize)]
struct EmailOut {
    id: String,
    account_id: String,
    emailable_id: String,
    emailable_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    from: &'static str,
    from_name: &'static str,
    name: Option<String>,
    subject: String,
    screenshot_url: Option<String>,
    preview_url: String,
    created_at: String,
    updated_at: String,
    is_designed: bool,
    language_id: u64,
    is_winner: bool,
    stats: Stats,
    send_after: Option<String>,
    track_opens: bool,
}

#[derive(Serialize)]
struct CampaignOut {
    id: String,
    account_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    missing_data: Vec<Value>,
    settings: Value,
    filter: Value,
    filter_for_humans: Value,
    delivery_schedule: &'static str,
    language_id: &'static str,
    created_at: String,
    updated_at: String,
    scheduled_for: Option<String>,
    queued_at: String,
    started_at: String,
    finished_at: String,
    stopped_at: Option<String>,
    default_email_id: String,
    emails: Vec<EmailOut>,
    used_in_automations: bool,
    type_for_humans: &'static str,
    is_stopped: bool,
    stats: Stats,
}

fn campaign_out(st: &Store, c: &Campaign) -> CampaignOut {
    let groups: Vec<String> = c.group_ids.iter().map(u64::to_string).collect();
    let (filter, humans) = if groups.is_empty() {
        (serde_json::json!([]), serde_json::json!([]))
    } else {
        let names: Vec<String> = c.group_ids.iter().filter_map(|g| st.groups.get(g)).map(|g| g.name.clone()).collect();
        (
            serde_json::json!([[{"operator": "in_any", "args": ["groups", groups]}]]),
            serde_json::json!([[format!("In any group: {}", names.join(", "))]]),
        )
    };
    CampaignOut {
        id: c.id.to_string(),
        account_id: st.account_id.to_string(),
        name: c.name.clone(),
        kind: "regular",
        status: "sent",
        missing_data: Vec::new(),
        settings: serde_json::json!({"track_opens": true, "use_google_analytics": false, "ecommerce_tracking": false}),
        filter,
        filter_for_humans: humans,
        delivery_schedule: "instant",
        language_id: "4",
        created_at: rest(c.created_at),
        updated_at: rest(c.finished_at),
        scheduled_for: None,
        queued_at: rest(c.created_at),
        started_at: rest(c.created_at),
        finished_at: rest(c.finished_at),
        stopped_at: None,
        default_email_id: c.email_id.to_string(),
        emails: vec![EmailOut {
            id: c.email_id.to_string(),
            account_id: st.account_id.to_string(),
            emailable_id: c.id.to_string(),
            emailable_type: "campaigns",
            kind: "builder_html",
            from: "sandbox@example.com",
            from_name: "Sandbox",
            name: None,
            subject: c.subject.clone(),
            screenshot_url: None,
            preview_url: format!("https://preview.mailerlite.io/preview/{}/emails/{}", st.account_id, c.email_id),
            created_at: rest(c.created_at),
            updated_at: rest(c.finished_at),
            is_designed: true,
            language_id: 4,
            is_winner: false,
            stats: stats(c),
            send_after: None,
            track_opens: true,
        }],
        used_in_automations: false,
        type_for_humans: "Regular",
        is_stopped: false,
        stats: stats(c),
    }
}

/// `GET /campaigns`: `filter[status]` defaults to `ready` (documented); the sandbox only holds sent
/// campaigns, so pass `filter[status]=sent`.
pub async fn list(State(ml): State<MailerLite>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let status = params.get("filter[status]").filter(|s| !s.is_empty()).unwrap_or("ready");
    if !["sent", "draft", "ready"].contains(&status) {
        return Err(ApiError::invalid("filter.status", "The selected filter.status is invalid."));
    }
    if let Some(t) = params.get("filter[type]").filter(|s| !s.is_empty())
        && !["regular", "ab", "resend", "rss"].contains(&t)
    {
        return Err(ApiError::invalid("filter.type", "The selected filter.type is invalid."));
    }
    let limit = params.limit(25, 100)?.max(1);
    let st = ml.store();
    let regular = params.get("filter[type]").is_none_or(|t| t.is_empty() || t == "regular");
    let all: Vec<CampaignOut> = if status == "sent" && regular {
        st.campaigns.values().rev().map(|c| campaign_out(&st, c)).collect()
    } else {
        Vec::new()
    };
    let path = format!("{}/campaigns", ml.base_url());
    let mut env = page_envelope(all, params.page(), limit, &path);
    let sent = st.campaigns.len() as u64;
    env.meta.aggregations =
        Some(OrderedMap(vec![("sum".into(), sent), ("draft".into(), 0), ("ready".into(), 0), ("sent".into(), sent)]));
    Ok(json_response(StatusCode::OK, &env))
}

pub async fn get_one(State(ml): State<MailerLite>, Path(id): Path<String>, uri: Uri) -> Result<Response, ApiError> {
    let id = numeric(&id, &uri)?;
    let st = ml.store();
    let c = st.campaigns.get(&id).ok_or_else(|| ApiError::NotFound(Model::Campaign, id.to_string()))?;
    Ok(ok(campaign_out(&st, c)))
}

#[derive(Serialize)]
struct ActivityOut {
    id: String,
    opens_count: u64,
    clicks_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriber: Option<SubscriberOut>,
}

const REPORT_TYPES: [&str; 8] =
    ["opened", "unopened", "clicked", "unsubscribed", "forwarded", "hardbounced", "softbounced", "junk"];

fn activity(ml: &MailerLite, raw_id: &str, uri: &Uri, params: Params) -> Result<Response, ApiError> {
    let id = numeric(raw_id, uri)?;
    let kind = params.get("filter[type]").filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(k) = &kind
        && !REPORT_TYPES.contains(&k.as_str())
    {
        return Err(ApiError::invalid("filter.type", "The selected filter.type is invalid."));
    }
    let limit = match params.get("limit") {
        None | Some("") => 50,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n @ (10 | 25 | 50 | 100)) => n,
            _ => return Err(ApiError::invalid("limit", "The limit must be one of following: 10, 25, 50, 100")),
        },
    };
    let include = params.get("include").unwrap_or("");
    let (with_sub, with_groups) =
        (include.split(',').any(|i| i.starts_with("subscriber")), include.contains("subscriber.groups"));
    let st = ml.store();
    let c = st.campaigns.get(&id).ok_or_else(|| ApiError::NotFound(Model::Campaign, id.to_string()))?;
    let search = params.get("filter[search]").map(str::to_lowercase).filter(|s| !s.is_empty());
    let email_of = |r: &ActivityRow| st.subscribers.get(&r.subscriber_id).map(|s| s.email.clone()).unwrap_or_default();
    let matches = |r: &ActivityRow| match kind.as_deref() {
        Some("opened") => r.opened,
        Some("unopened") => !r.opened,
        Some("clicked") => r.clicked,
        Some("unsubscribed") => r.unsubscribed,
        Some("hardbounced") => r.hardbounced,
        Some("junk") => r.junk,
        Some(_) => false,
        None => true,
    };
    let mut rows: Vec<&ActivityRow> =
        c.rows.iter().filter(|r| matches(r) && search.as_ref().is_none_or(|q| email_of(r).contains(q))).collect();
    let sort = params.get("sort").unwrap_or("id");
    match sort.trim_start_matches('-') {
        "id" | "updated_at" => rows.sort_by_key(|r| r.id),
        "opens_count" => rows.sort_by_key(|r| (r.opens_count, r.id)),
        "clicks_count" => rows.sort_by_key(|r| (r.clicks_count, r.id)),
        _ => return Err(ApiError::invalid("sort", "The selected sort is invalid.")),
    }
    if sort.starts_with('-') {
        rows.reverse();
    }
    let data: Vec<ActivityOut> = rows
        .into_iter()
        .map(|r| ActivityOut {
            id: r.id.to_string(),
            opens_count: r.opens_count,
            clicks_count: r.clicks_count,
            subscriber: if with_sub {
                st.subscribers.get(&r.subscriber_id).map(|s| st.subscriber_out(s, with_groups))
            } else {
                None
            },
        })
        .collect();
    let n = |f: fn(&ActivityRow) -> bool| c.rows.iter().filter(|r| f(r)).count() as u64;
    let path = format!("{}/campaigns/{id}/reports/subscriber-activity", ml.base_url());
    let mut env = page_envelope(data, params.page(), limit, &path);
    env.meta.aggregations = Some(OrderedMap(vec![
        ("all".into(), c.rows.len() as u64),
        ("opened".into(), n(|r| r.opened)),
        ("unopened".into(), n(|r| !r.opened)),
        ("clicked".into(), n(|r| r.clicked)),
        ("unsubscribed".into(), n(|r| r.unsubscribed)),
        ("forwarded".into(), 0),
        ("hardbounced".into(), n(|r| r.hardbounced)),
        ("softbounced".into(), 0),
        ("social_interaction".into(), 0),
        ("junk".into(), n(|r| r.junk)),
    ]));
    Ok(json_response(StatusCode::OK, &env))
}

/// GET with query parameters (DOCS)…
pub async fn activity_get(
    State(ml): State<MailerLite>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    activity(&ml, &id, &uri, Params::parse(q.as_deref()))
}

/// …or POST with a JSON body (what most SDKs send, see the recordings); both are accepted.
pub async fn activity_post(
    State(ml): State<MailerLite>,
    Path(id): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut params = Vec::new();
    flatten_query("", &Value::Object(object(&body)), &mut params);
    activity(&ml, &id, &uri, Params(params))
}
