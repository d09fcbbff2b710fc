//! The admin API under `/__sandbox/mailerlite/` (no auth, never counted or faulted) and the
//! state helpers behind it, which tests call directly. Every helper that changes subscribers
//! fires webhooks exactly as the same change through the API would (seeding excepted).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::account::MailerLite;
use super::campaigns::{self, CampaignSpec, CampaignSummary};
use super::error::{ApiError, Model};
use super::json::json_response;
use super::model::{
    FieldType, GroupOut, LogEntry, LogEntryOut, Segment, SegmentOut, SegmentRule, Status, Subscriber, SubscriberOut,
};
use super::store::{Actor, Store};
use crate::common::people::{self, INDUSTRY_OPTIONS, INTEREST_OPTIONS};
use crate::common::time_fmt::{self, now};
use crate::common::{ChangedBy, DeliveryOptions, FaultSpec, RecordedDelivery, StatsSnapshot};

/// What to seed: people `start_index .. start_index + count` from `common::people`, with
/// deterministic shares of conflicting data and non-active statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedSpec {
    pub count: u64,
    pub start_index: u64,
    /// Share seeded with `people::conflicting` data (a different first name and city).
    pub conflict_rate: f64,
    pub unsubscribed_rate: f64,
    pub bounced_rate: f64,
    pub junk_rate: f64,
    pub unconfirmed_rate: f64,
    /// Groups every seeded subscriber joins.
    pub group_ids: Vec<String>,
    /// Groups a deterministic share of the seeded subscribers joins (chosen per person).
    pub group_memberships: Vec<SeedGroupMembership>,
    /// Fill the custom fields `industry`, `interests`, `employees`, `signup_date` (created on
    /// first use).
    pub custom_fields: bool,
    /// Varies which people get each trait (see `people::salted`); 0 keeps the default choice.
    pub seed: u64,
}

/// A group that a share of the seeded subscribers joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedGroupMembership {
    pub group_id: String,
    pub rate: f64,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            count: 0,
            start_index: 0,
            conflict_rate: 0.0,
            unsubscribed_rate: 0.0,
            bounced_rate: 0.0,
            junk_rate: 0.0,
            unconfirmed_rate: 0.0,
            group_ids: Vec::new(),
            group_memberships: Vec::new(),
            custom_fields: true,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub created: u64,
    pub updated: u64,
    /// Seeded subscribers by status.
    pub by_status: BTreeMap<String, u64>,
    /// Seeded with `people::conflicting` data.
    pub conflicting: u64,
}

/// A change made by a person in the MailerLite app: may set any status (including
/// reactivation, which only the API refuses); `null` field values clear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserEdit {
    pub fields: Map<String, Value>,
    pub email: Option<String>,
    pub status: Option<Status>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSettings {
    pub faults: Vec<FaultSpec>,
    pub seed: u64,
}

pub type DeliverySettings = DeliveryOptions;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitSettings {
    pub limit_per_minute: u32,
    pub imports_per_minute: u32,
    pub time_scale: f64,
}

// Seeding salts, so each rate picks an independent share of people.
const SALT_CONFLICT: u64 = 11;
const SALT_UNSUBSCRIBED: u64 = 12;
const SALT_BOUNCED: u64 = 13;
const SALT_JUNK: u64 = 14;
const SALT_UNCONFIRMED: u64 = 15;
const SALT_GROUP: u64 = 1000;

impl Store {
    /// Inserts generated subscribers directly: no webhooks, no rate limits.
    pub fn seed(&mut self, spec: &SeedSpec) -> Result<SeedSummary, ApiError> {
        let mut all_join = Vec::new();
        for g in &spec.group_ids {
            all_join.push(self.group_id(g)?);
        }
        let mut shares = Vec::new();
        for share in &spec.group_memberships {
            shares.push((self.group_id(&share.group_id)?, share.rate));
        }
        let salt = |base: u64| people::salted(base, spec.seed);
        if spec.custom_fields {
            self.ensure_field("industry", FieldType::Text);
            self.ensure_field("interests", FieldType::Text);
            self.ensure_field("employees", FieldType::Number);
            self.ensure_field("signup_date", FieldType::Date);
        }
        let at = now();
        let mut summary = SeedSummary::default();
        for index in spec.start_index..spec.start_index + spec.count {
            let base = people::person(index);
            let conflict = people::chosen(index, salt(SALT_CONFLICT), spec.conflict_rate);
            let p = if conflict { people::conflicting(&base) } else { base };
            summary.conflicting += u64::from(conflict);
            let status = if people::chosen(index, salt(SALT_UNSUBSCRIBED), spec.unsubscribed_rate) {
                Status::Unsubscribed
            } else if people::chosen(index, salt(SALT_BOUNCED), spec.bounced_rate) {
                Status::Bounced
            } else if people::chosen(index, salt(SALT_JUNK), spec.junk_rate) {
                Status::Junk
            } else if people::chosen(index, salt(SALT_UNCONFIRMED), spec.unconfirmed_rate) {
                Status::Unconfirmed
            } else {
                Status::Active
            };
            let mut fields: HashMap<String, Value> = HashMap::new();
            fields.insert("name".into(), p.first_name.clone().into());
            fields.insert("last_name".into(), p.last_name.clone().into());
            fields.insert("company".into(), p.company.clone().into());
            fields.insert("city".into(), p.city.clone().into());
            fields.insert("phone".into(), p.phone.clone().into());
            if spec.custom_fields {
                fields.insert("industry".into(), INDUSTRY_OPTIONS[p.industry].1.into());
                if !p.interests.is_empty() {
                    let labels: Vec<&str> = p.interests.iter().map(|i| INTEREST_OPTIONS[*i].1).collect();
                    fields.insert("interests".into(), labels.join(", ").into());
                }
                fields.insert("employees".into(), Value::from(p.employees));
                fields.insert("signup_date".into(), p.signup_date.clone().into());
            }
            let sid = match self.find_any(&p.email).map(|s| s.id) {
                Some(sid) => {
                    summary.updated += 1;
                    sid
                }
                None => {
                    summary.created += 1;
                    let sid = self.new_id();
                    self.insert_raw(Subscriber {
                        id: sid,
                        email: p.email.clone(),
                        status,
                        source: "import".into(),
                        sent: 0,
                        opens_count: 0,
                        clicks_count: 0,
                        ip_address: None,
                        subscribed_at: Some(at),
                        unsubscribed_at: None,
                        created_at: at,
                        updated_at: at,
                        fields: HashMap::new(),
                        groups: BTreeSet::new(),
                        opted_in_at: None,
                        optin_ip: None,
                        deleted_at: None,
                        forget_at: None,
                    });
                    sid
                }
            };
            let mut groups = all_join.clone();
            groups.extend(
                shares
                    .iter()
                    .filter(|(gid, rate)| people::chosen(index, salt(SALT_GROUP.wrapping_add(*gid)), *rate))
                    .map(|(gid, _)| *gid),
            );
            self.overwrite_seeded(sid, status, fields, &groups, at);
            *summary.by_status.entry(status.as_str().to_string()).or_default() += 1;
        }
        Ok(summary)
    }
}

fn admin_error(e: ApiError) -> Response {
    e.into_response()
}

impl MailerLite {
    /// Seeds generated subscribers (no webhooks, not counted).
    pub fn seed(&self, spec: &SeedSpec) -> Result<SeedSummary, ApiError> {
        self.store().seed(spec)
    }

    /// Creates a group as a user in the app would; returns its id.
    pub fn create_group(&self, name: &str) -> String {
        self.store().create_group(name).to_string()
    }

    /// Defines a segment by a rule (segments cannot be defined through the API); returns its id.
    pub fn create_segment(&self, name: &str, rule: SegmentRule) -> String {
        let mut st = self.store();
        let id = st.new_id();
        st.segments.insert(id, Segment { id, name: name.to_string(), rule, created_at: now() });
        id.to_string()
    }

    /// Creates a custom field; returns its key.
    pub fn create_field(&self, name: &str, kind: FieldType) -> Result<String, ApiError> {
        let mut st = self.store();
        let id = st.create_field(name, kind)?;
        Ok(st.fields.iter().find(|f| f.id == id).map(|f| f.key.clone()).unwrap_or_default())
    }

    /// The subscriber by id or email, deleted and forgotten ones included (with `deleted_at`
    /// and `forget_at`), as the REST object with groups.
    pub fn subscriber(&self, id_or_email: &str) -> Option<SubscriberOut> {
        let st = self.store();
        let s = st.find_any(id_or_email)?;
        let mut out = st.subscriber_out(s, true);
        out.deleted_at = Some(s.deleted_at.map(time_fmt::rest).map_or(Value::Null, Value::String));
        out.forget_at = Some(s.forget_at.map(time_fmt::rest).map_or(Value::Null, Value::String));
        Some(out)
    }

    /// Every group.
    pub fn groups(&self) -> Vec<GroupOut> {
        self.store().groups.values().map(|g| g.out()).collect()
    }

    /// Every segment.
    pub fn segments(&self) -> Vec<SegmentOut> {
        let st = self.store();
        st.segments.values().map(|s| st.segment_out(s, false)).collect()
    }

    /// A subscriber's activity log, oldest first.
    pub fn activity(&self, id_or_email: &str) -> Vec<LogEntryOut> {
        let st = self.store();
        let Some(id) = st.find_any(id_or_email).map(|s| s.id) else { return Vec::new() };
        st.activity.get(&id).map(|v| v.iter().map(LogEntry::out).collect()).unwrap_or_default()
    }

    fn with_live<T>(
        &self,
        id_or_email: &str,
        f: impl FnOnce(&mut Store, u64) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let result = {
            let mut st = self.store();
            let sid =
                st.find_live(id_or_email).ok_or_else(|| ApiError::NotFound(Model::Subscriber, id_or_email.into()))?;
            f(&mut st, sid)
        };
        self.flush_webhooks(ChangedBy::User);
        result
    }

    /// A person edits the subscriber in the app (fields, email, status — reactivation allowed).
    pub fn user_edit(&self, id_or_email: &str, edit: &UserEdit) -> Result<(), ApiError> {
        self.with_live(id_or_email, |st, sid| {
            let mut body = Map::new();
            body.insert("fields".into(), Value::Object(edit.fields.clone()));
            if let Some(e) = &edit.email {
                body.insert("email".into(), Value::String(e.clone()));
            }
            if let Some(s) = edit.status {
                body.insert("status".into(), Value::String(s.as_str().into()));
            }
            let input = st.parse_subscriber_input(&body, false)?;
            st.update(sid, input, Actor::User)
        })
    }

    /// The person unsubscribes (an unsubscribe link or the preference center).
    pub fn unsubscribe_as_person(&self, id_or_email: &str) -> Result<(), ApiError> {
        self.with_live(id_or_email, |st, sid| {
            let at = now();
            st.log(sid, "unsubscribed", "subscribers", Value::Array(Vec::new()), at);
            st.set_status(sid, Status::Unsubscribed, Actor::User, at);
            Ok(())
        })
    }

    /// A user deletes the subscriber in the app (soft delete, `subscriber.deleted`).
    pub fn delete_as_user(&self, id_or_email: &str) -> Result<(), ApiError> {
        self.with_live(id_or_email, |st, sid| {
            st.delete(sid);
            Ok(())
        })
    }

    /// A user forgets the subscriber in the app (GDPR).
    pub fn forget_as_user(&self, id_or_email: &str) -> Result<(), ApiError> {
        self.with_live(id_or_email, |st, sid| {
            st.forget(sid);
            Ok(())
        })
    }

    /// Simulates sending a campaign (see [`CampaignSpec`]); fires `campaign.open`/`click`
    /// (batched webhooks) and `subscriber.unsubscribed`/`bounced`/`spam_reported`.
    pub fn simulate_campaign(&self, spec: &CampaignSpec) -> Result<CampaignSummary, ApiError> {
        let seed = self.config().seed;
        let result = campaigns::simulate(&mut self.store(), spec, seed);
        self.flush_webhooks(ChangedBy::User);
        result
    }

    /// Replaces the injected faults (an empty list turns them off).
    pub fn set_faults(&self, settings: &FaultSettings) {
        self.instrumentation().faults.set(settings.faults.clone(), settings.seed);
    }

    pub fn reset_stats(&self) {
        self.instrumentation().stats.reset();
    }
}

// --- routes ------------------------------------------------------------------------------------

pub fn routes() -> Router<MailerLite> {
    Router::new()
        .route("/__sandbox/mailerlite/config", get(config))
        .route("/__sandbox/mailerlite/seed", post(seed))
        .route("/__sandbox/mailerlite/groups", get(groups).post(create_group))
        .route("/__sandbox/mailerlite/segments", get(segments).post(create_segment))
        .route("/__sandbox/mailerlite/fields", post(create_field))
        .route("/__sandbox/mailerlite/subscribers/{id}", get(subscriber).patch(user_edit).delete(delete_subscriber))
        .route("/__sandbox/mailerlite/subscribers/{id}/unsubscribe", post(unsubscribe))
        .route("/__sandbox/mailerlite/subscribers/{id}/forget", post(forget))
        .route("/__sandbox/mailerlite/subscribers/{id}/activity", get(activity))
        .route("/__sandbox/mailerlite/campaigns", post(campaign))
        .route("/__sandbox/mailerlite/faults", put(faults))
        .route("/__sandbox/mailerlite/delivery", get(delivery).put(set_delivery))
        .route("/__sandbox/mailerlite/deliveries", get(deliveries).delete(clear_deliveries))
        .route("/__sandbox/mailerlite/webhook-faults", get(webhook_faults).put(set_webhook_faults))
        .route("/__sandbox/mailerlite/webhook-batches/flush", post(flush_batches))
        .route("/__sandbox/mailerlite/stats", get(stats).delete(reset_stats))
        .route("/__sandbox/mailerlite/rate-limits", put(rate_limits))
}

fn json<T: Serialize>(v: &T) -> Response {
    json_response(StatusCode::OK, v)
}

async fn config(State(ml): State<MailerLite>) -> Response {
    json(&ml.config())
}

async fn seed(State(ml): State<MailerLite>, Json(spec): Json<SeedSpec>) -> Response {
    match ml.seed(&spec) {
        Ok(s) => json(&s),
        Err(e) => admin_error(e),
    }
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn groups(State(ml): State<MailerLite>) -> Response {
    json(&ml.groups())
}

async fn create_group(State(ml): State<MailerLite>, Json(b): Json<Named>) -> Response {
    let id = ml.create_group(&b.name);
    json(&serde_json::json!({ "id": id }))
}

#[derive(Deserialize)]
struct NewSegment {
    name: String,
    rule: SegmentRule,
}

async fn segments(State(ml): State<MailerLite>) -> Response {
    json(&ml.segments())
}

async fn create_segment(State(ml): State<MailerLite>, Json(b): Json<NewSegment>) -> Response {
    let id = ml.create_segment(&b.name, b.rule);
    json(&serde_json::json!({ "id": id }))
}

#[derive(Deserialize)]
struct NewField {
    name: String,
    #[serde(rename = "type")]
    kind: FieldType,
}

async fn create_field(State(ml): State<MailerLite>, Json(b): Json<NewField>) -> Response {
    match ml.create_field(&b.name, b.kind) {
        Ok(key) => json(&serde_json::json!({ "key": key })),
        Err(e) => admin_error(e),
    }
}

async fn subscriber(State(ml): State<MailerLite>, Path(id): Path<String>) -> Response {
    match ml.subscriber(&id) {
        Some(s) => json(&s),
        None => admin_error(ApiError::NotFound(Model::Subscriber, id)),
    }
}

fn done(r: Result<(), ApiError>) -> Response {
    match r {
        Ok(()) => super::json::no_content(),
        Err(e) => admin_error(e),
    }
}

async fn user_edit(State(ml): State<MailerLite>, Path(id): Path<String>, Json(edit): Json<UserEdit>) -> Response {
    done(ml.user_edit(&id, &edit))
}

async fn delete_subscriber(State(ml): State<MailerLite>, Path(id): Path<String>) -> Response {
    done(ml.delete_as_user(&id))
}

async fn unsubscribe(State(ml): State<MailerLite>, Path(id): Path<String>) -> Response {
    done(ml.unsubscribe_as_person(&id))
}

async fn forget(State(ml): State<MailerLite>, Path(id): Path<String>) -> Response {
    done(ml.forget_as_user(&id))
}

async fn activity(State(ml): State<MailerLite>, Path(id): Path<String>) -> Response {
    json(&ml.activity(&id))
}

async fn campaign(State(ml): State<MailerLite>, Json(spec): Json<CampaignSpec>) -> Response {
    match ml.simulate_campaign(&spec) {
        Ok(s) => json(&s),
        Err(e) => admin_error(e),
    }
}

async fn faults(State(ml): State<MailerLite>, Json(f): Json<FaultSettings>) -> Response {
    ml.set_faults(&f);
    super::json::no_content()
}

async fn delivery(State(ml): State<MailerLite>) -> Response {
    json(&ml.dispatcher().options())
}

async fn set_delivery(State(ml): State<MailerLite>, Json(o): Json<DeliveryOptions>) -> Response {
    ml.dispatcher().set_options(o);
    super::json::no_content()
}

async fn webhook_faults(State(ml): State<MailerLite>) -> Response {
    json(&ml.webhook_faults())
}

async fn set_webhook_faults(State(ml): State<MailerLite>, Json(f): Json<super::WebhookFaults>) -> Response {
    ml.set_webhook_faults(f);
    super::json::no_content()
}

/// Sends the waiting batches now instead of at the next tick.
async fn flush_batches(State(ml): State<MailerLite>) -> Response {
    ml.flush_batches();
    super::json::no_content()
}

async fn deliveries(State(ml): State<MailerLite>) -> Response {
    let log: Vec<RecordedDelivery> = ml.dispatcher().log();
    json(&log)
}

async fn clear_deliveries(State(ml): State<MailerLite>) -> Response {
    ml.dispatcher().clear_log();
    super::json::no_content()
}

async fn stats(State(ml): State<MailerLite>) -> Response {
    let s: StatsSnapshot = ml.stats();
    json(&s)
}

async fn reset_stats(State(ml): State<MailerLite>) -> Response {
    ml.reset_stats();
    super::json::no_content()
}

async fn rate_limits(State(ml): State<MailerLite>, Json(r): Json<RateLimitSettings>) -> Response {
    ml.set_rate_limits(r.limit_per_minute, r.imports_per_minute, r.time_scale);
    super::json::no_content()
}
