//! [`MailerLiteApi`] over the `hmsync-mailerlite` client: reads by id or email go through
//! `/api/batch` (50 per request, one request of the budget), writes too, never as an
//! upsert-only batch (which MailerLite treats as an import limited to 5 per minute).

use async_trait::async_trait;
use hmsync_core::{MlField, MlStatus, MlType, Side};
use hmsync_mailerlite as ml;

use crate::api::{
    ApiError, ApiResult, ItemError, ItemErrorKind, MailerLiteAccount, MailerLiteApi, MailerLiteGroupInfo,
    MailerLiteSegmentInfo, MlOp, MlPage, MlRecord, MlSource, MlWebhook, MlWebhookSpec,
};

/// The engine's view of one MailerLite account.
#[derive(Clone)]
pub struct MailerLiteAdapter {
    client: ml::Client,
}

impl MailerLiteAdapter {
    pub fn new(client: ml::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &ml::Client {
        &self.client
    }

    /// Requests this client sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.client.pacer().requests_sent()
    }
}

fn group_info(g: ml::Group) -> MailerLiteGroupInfo {
    let total = g.active_count + g.unsubscribed_count + g.unconfirmed_count + g.bounced_count + g.junk_count;
    MailerLiteGroupInfo { id: g.id, name: g.name, active: g.active_count, total }
}

fn status_to_core(s: ml::Status) -> MlStatus {
    MlStatus::parse(s.as_str()).unwrap_or(MlStatus::Active)
}

fn status_to_client(s: MlStatus) -> ml::Status {
    match s {
        MlStatus::Active => ml::Status::Active,
        MlStatus::Unsubscribed => ml::Status::Unsubscribed,
        MlStatus::Unconfirmed => ml::Status::Unconfirmed,
        MlStatus::Bounced => ml::Status::Bounced,
        MlStatus::Junk => ml::Status::Junk,
    }
}

/// The record the engine plans with. Timestamps keep MailerLite's REST form, so a scan can
/// compare `updated_at` with what the link stored.
pub fn record(s: ml::Subscriber) -> MlRecord {
    MlRecord {
        id: s.id,
        email: s.email,
        status: status_to_core(s.status),
        fields: s.fields,
        groups: s.groups.unwrap_or_default().into_iter().map(|g| g.id).collect(),
        created_at: s.created_at.map(|t| t.to_rest()).unwrap_or_default(),
        updated_at: s.updated_at.map(|t| t.to_rest()).unwrap_or_default(),
        opens_count: s.opens_count,
        clicks_count: s.clicks_count,
    }
}

/// A webhook as the engine sees it.
fn webhook(w: ml::Webhook) -> MlWebhook {
    MlWebhook {
        id: w.id,
        name: w.name.unwrap_or_default(),
        url: w.url,
        events: w.events,
        enabled: w.enabled,
        batchable: w.batchable,
        blocked: w.is_blocked,
        secret: w.secret,
        last_fired_at: w.last_fired_at.map(|t| t.to_rest()),
        response_code: w.response_code,
    }
}

/// An activity-log entry as an engagement event (`None` for entries that are not engagement).
fn engagement_event(subscriber_id: &str, email: &str, e: &ml::LogEntry) -> Option<hmsync_core::EngagementEvent> {
    use hmsync_core::EventKind;
    let kind = match e.log_name.as_str() {
        "email_open" => EventKind::Open,
        "link_click" => EventKind::Click,
        "unsubscribed" => EventKind::Unsubscribe,
        "email_bounce" => EventKind::Bounce,
        "spam_complaint" => EventKind::SpamReport,
        _ => return None,
    };
    let at_ms = e.created_at.as_ref().map(|t| (t.0.unix_timestamp_nanos() / 1_000_000) as i64)?;
    Some(hmsync_core::EngagementEvent {
        kind,
        subscriber_id: subscriber_id.to_string(),
        email: email.to_string(),
        at_ms,
        campaign_id: e.property("campaign_id").map(str::to_string),
        campaign_name: e.property("campaign_name").map(str::to_string),
        url: e.property("url").map(str::to_string),
        opens_count: None,
        clicks_count: None,
    })
}

/// A failure of a whole call.
pub fn api_error(e: ml::Error) -> ApiError {
    match e {
        ml::Error::Unauthorized => ApiError::Unauthorized {
            side: Side::MailerLite,
            message: "MailerLite rejected the API key (it was revoked, or its user left the account)".into(),
            action: "Generate a new API key in MailerLite (Integrations › MailerLite API) and save it in the connection's credentials.".into(),
        },
        ml::Error::RateLimited { retry_after } | ml::Error::ImportRateLimited { retry_after } => ApiError::Transient {
            side: Side::MailerLite,
            message: "MailerLite's rate limit".into(),
            retry_after: Some(retry_after),
        },
        e @ (ml::Error::Transient { .. } | ml::Error::Transport(_)) => {
            ApiError::Transient { side: Side::MailerLite, message: e.to_string(), retry_after: None }
        }
        ml::Error::Api { status: 403, message } => ApiError::Forbidden {
            side: Side::MailerLite,
            message: format!("MailerLite denied the request: {message}"),
            action: "Check that the API key belongs to a user allowed to manage subscribers.".into(),
        },
        e => ApiError::Rejected { side: Side::MailerLite, message: e.to_string() },
    }
}

/// A failure of one record of a batch (or of the whole call, when it is not about the record).
fn item_error(e: ml::Error) -> Result<ItemError, ApiError> {
    let api_message = Some(e.to_string());
    Ok(match e {
        ml::Error::NotFound { .. } => ItemError {
            field: None,
            message: "The subscriber no longer exists in MailerLite.".into(),
            action: "Nothing to do: the sync looks at the contact again.".into(),
            api_message,
            kind: ItemErrorKind::NotFound,
        },
        ml::Error::ReactivationRefused { .. } => ItemError {
            field: Some("status".into()),
            message: "MailerLite keeps this subscriber unsubscribed, bounced or junk.".into(),
            action: "Nothing to do: only the person can resubscribe.".into(),
            api_message,
            kind: ItemErrorKind::ReactivationRefused,
        },
        ml::Error::Validation { message, errors } => {
            let fields: Vec<String> =
                errors.keys().map(|k| k.strip_prefix("fields.").unwrap_or(k).to_string()).collect();
            ItemError {
                field: fields.first().cloned(),
                message: format!("MailerLite refused the values: {}", describe(&message, &errors)),
                action: "Correct the value in HubSpot (or the field's type in MailerLite). The rest of the contact keeps syncing meanwhile; the value is sent again when it changes, or when you retry the contact.".into(),
                api_message,
                kind: ItemErrorKind::Invalid { properties: fields },
            }
        }
        e if e.is_transient() || matches!(e, ml::Error::Unauthorized) => return Err(api_error(e)),
        other => ItemError {
            field: None,
            message: format!("MailerLite refused the change: {other}"),
            action: "Check the subscriber in MailerLite; retry from the status page once fixed.".into(),
            api_message,
            kind: ItemErrorKind::Other,
        },
    })
}

fn describe(message: &str, errors: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    if errors.is_empty() {
        return message.to_string();
    }
    errors.iter().map(|(f, m)| format!("{f}: {}", m.join(" "))).collect::<Vec<_>>().join("; ")
}

/// At most this many activity-log pages are read per subscriber (500 entries): the bound of a
/// log read whose order is not documented.
pub const ACTIVITY_PAGES: u32 = 5;

impl MailerLiteAdapter {
    /// A group assignment refused with 422 `errors.id` means the subscriber or the group does
    /// not exist (the docs' one answer for both). One read of those subscribers tells which: a
    /// subscriber that is gone is `NotFound` (the sync looks at the contact again); one that
    /// exists means the target group was deleted, which the user must fix.
    async fn explain_refused_assignments(
        &self,
        ops: &[MlOp],
        refused: &[usize],
        out: &mut [Result<Option<MlRecord>, ItemError>],
    ) -> ApiResult<()> {
        let ids: Vec<String> = refused
            .iter()
            .filter_map(|i| match &ops[*i] {
                MlOp::AddToGroup { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let present: std::collections::HashSet<String> = self.get_many(&ids).await?.into_iter().map(|r| r.id).collect();
        for i in refused {
            let MlOp::AddToGroup { id, group_id } = &ops[*i] else { continue };
            let api_message = out[*i].as_ref().err().and_then(|e| e.api_message.clone());
            out[*i] = Err(if present.contains(id) {
                ItemError {
                    field: None,
                    message: format!("MailerLite has no group {group_id} any more, so the subscriber cannot join it."),
                    action: "Choose another target group in the connection's settings (or create the group again in \
                             MailerLite); the contact joins it on its next sync or when you retry."
                        .into(),
                    api_message,
                    kind: ItemErrorKind::Other,
                }
            } else {
                ItemError {
                    field: None,
                    message: "The subscriber no longer exists in MailerLite.".into(),
                    action: "Nothing to do: the sync looks at the contact again.".into(),
                    api_message,
                    kind: ItemErrorKind::NotFound,
                }
            });
        }
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> ApiResult<Vec<MlRecord>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let requests: Vec<ml::BatchRequest> =
            keys.iter().map(|k| ml::BatchRequest::Get { id_or_email: k.clone() }).collect();
        let mut out = Vec::new();
        for result in self.client.batch(&requests, ml::BatchOptions::default()).await {
            match result {
                Ok(ml::BatchOutcome::Subscriber { subscriber, .. }) => out.push(record(*subscriber)),
                Ok(_) | Err(ml::Error::NotFound { .. }) => {}
                Err(e) => return Err(api_error(e)),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl MailerLiteApi for MailerLiteAdapter {
    async fn list(&self, source: &MlSource, cursor: Option<&str>) -> ApiResult<MlPage> {
        let page = match source {
            MlSource::All => self.client.subscribers_page(ml::Statuses::All, cursor, ml::SUBSCRIBERS_PAGE, true).await,
            MlSource::Group(id, status) => {
                self.client.group_members_page(id, status_to_client(*status), cursor, true).await
            }
            MlSource::Segment(id) => self.client.segment_members_page(id, ml::Status::Active, cursor).await,
        }
        .map_err(|e| match (e, source) {
            (ml::Error::NotFound { .. }, MlSource::Group(id, _)) => {
                ApiError::NotFound { side: Side::MailerLite, what: format!("group {id}") }
            }
            (ml::Error::NotFound { .. }, MlSource::Segment(id)) => {
                ApiError::NotFound { side: Side::MailerLite, what: format!("segment {id}") }
            }
            (e, _) => api_error(e),
        })?;
        // Segment pages can be short, even empty, and still continue: only the cursor ends a walk.
        let next = ml::next_cursor(&page, cursor);
        Ok(MlPage { records: page.data.into_iter().map(record).collect(), next })
    }

    async fn count(&self) -> ApiResult<u64> {
        self.client.count_subscribers(ml::Statuses::All).await.map_err(api_error)
    }

    async fn account(&self) -> ApiResult<MailerLiteAccount> {
        let subscribers = self.count().await?;
        let accounts = self.client.accounts().await.map_err(api_error)?.unwrap_or_default();
        // A key reaches one account; with several, none of the names is surely the key's.
        let name = match accounts.as_slice() {
            [one] => Some(one.name.clone()),
            _ => None,
        };
        Ok(MailerLiteAccount { name, subscribers })
    }

    async fn groups(&self) -> ApiResult<Vec<MailerLiteGroupInfo>> {
        Ok(self.client.groups().await.map_err(api_error)?.into_iter().map(group_info).collect())
    }

    async fn create_group(&self, name: &str) -> ApiResult<MailerLiteGroupInfo> {
        Ok(group_info(self.client.create_group(name).await.map_err(api_error)?))
    }

    fn rate_limits(&self) -> Option<hmsync_http::RateLimitReading> {
        self.client.rate_limit_reading()
    }

    async fn segments(&self) -> ApiResult<Vec<MailerLiteSegmentInfo>> {
        Ok(self
            .client
            .segments()
            .await
            .map_err(api_error)?
            .into_iter()
            .map(|s| MailerLiteSegmentInfo { id: s.id, name: s.name, active: s.total })
            .collect())
    }

    async fn get_by_ids(&self, ids: &[String]) -> ApiResult<Vec<MlRecord>> {
        self.get_many(ids).await
    }

    async fn get_by_emails(&self, emails: &[String]) -> ApiResult<Vec<MlRecord>> {
        self.get_many(emails).await
    }

    async fn apply(&self, ops: &[MlOp]) -> ApiResult<Vec<Result<Option<MlRecord>, ItemError>>> {
        let requests: Vec<ml::BatchRequest> = ops
            .iter()
            .map(|op| match op {
                MlOp::Upsert { email, fields, status, groups } => {
                    let mut u = ml::SubscriberUpsert::new(email.clone());
                    u.fields = fields.clone();
                    u.groups = groups.clone();
                    u.status = status.map(status_to_client);
                    ml::BatchRequest::Upsert(u)
                }
                MlOp::Update { id, email, fields, status } => {
                    let mut u = ml::SubscriberUpdate::new();
                    u.email = email.clone();
                    u.fields = fields.clone();
                    u.status = status.map(status_to_client);
                    ml::BatchRequest::Update { subscriber_id: id.clone(), update: u }
                }
                MlOp::AddToGroup { id, group_id } => {
                    ml::BatchRequest::AssignToGroup { subscriber_id: id.clone(), group_id: group_id.clone() }
                }
                MlOp::RemoveFromGroup { id, group_id } => {
                    ml::BatchRequest::UnassignFromGroup { subscriber_id: id.clone(), group_id: group_id.clone() }
                }
            })
            .collect();
        let mut out = Vec::with_capacity(ops.len());
        let mut refused_assignments: Vec<usize> = Vec::new();
        for (i, result) in self.client.batch(&requests, ml::BatchOptions::default()).await.into_iter().enumerate() {
            out.push(match (result, &ops[i]) {
                (Ok(ml::BatchOutcome::Subscriber { subscriber, .. }), _) => Ok(Some(record(*subscriber))),
                (Ok(_), _) => Ok(None),
                // Nothing to remove (the subscriber left the group or is gone): the goal holds.
                (Err(ml::Error::NotFound { .. }), MlOp::RemoveFromGroup { .. }) => Ok(None),
                (Err(e), MlOp::AddToGroup { .. }) if !e.field_errors("id").is_empty() => {
                    refused_assignments.push(i);
                    Err(item_error(e)?)
                }
                (Err(e), _) => Err(item_error(e)?),
            });
        }
        if !refused_assignments.is_empty() {
            self.explain_refused_assignments(ops, &refused_assignments, &mut out).await?;
        }
        Ok(out)
    }

    async fn activity(
        &self,
        subscriber_id: &str,
        email: &str,
        limit: usize,
    ) -> ApiResult<Vec<hmsync_core::EngagementEvent>> {
        // The docs give neither page metadata nor an order: read pages while they are full (at
        // most ACTIVITY_PAGES), then keep the newest engagement by its own timestamps.
        let mut entries: Vec<ml::LogEntry> = Vec::new();
        for page in 1..=ACTIVITY_PAGES {
            let got = self.client.activity_log(subscriber_id, None, page).await.map_err(api_error)?;
            let full = got.len() >= ml::ACTIVITY_PAGE as usize;
            entries.extend(got);
            if !full {
                break;
            }
        }
        // Newest first by time, then by id (entries of one second keep the order they were made).
        entries.sort_by_key(|e| {
            let at = e.created_at.as_ref().map(|t| t.0.unix_timestamp()).unwrap_or(i64::MIN);
            std::cmp::Reverse((at, e.id.len(), e.id.clone()))
        });
        Ok(entries.iter().filter_map(|e| engagement_event(subscriber_id, email, e)).take(limit).collect())
    }

    async fn webhooks(&self) -> ApiResult<Vec<MlWebhook>> {
        Ok(self.client.webhooks().await.map_err(api_error)?.into_iter().map(webhook).collect())
    }

    async fn create_webhook(&self, spec: &MlWebhookSpec) -> ApiResult<MlWebhook> {
        let hook = ml::NewWebhook {
            name: Some(spec.name.clone()),
            url: spec.url.clone(),
            events: spec.events.clone(),
            enabled: Some(true),
            batchable: Some(spec.batchable),
        };
        self.client.create_webhook(&hook).await.map(webhook).map_err(api_error)
    }

    async fn update_webhook(&self, id: &str, spec: &MlWebhookSpec) -> ApiResult<MlWebhook> {
        let update = ml::WebhookUpdate {
            name: Some(spec.name.clone()),
            url: Some(spec.url.clone()),
            events: Some(spec.events.clone()),
            enabled: Some(true),
            batchable: Some(spec.batchable),
        };
        self.client.update_webhook(id, &update).await.map(webhook).map_err(api_error)
    }

    async fn delete_webhook(&self, id: &str) -> ApiResult<()> {
        self.client.delete_webhook(id).await.map(|_| ()).map_err(api_error)
    }

    async fn forget(&self, id: &str) -> ApiResult<()> {
        self.client.forget_subscriber(id).await.map(|_| ()).map_err(api_error)
    }

    async fn fields(&self) -> ApiResult<Vec<MlField>> {
        let fields = self.client.fields().await.map_err(api_error)?;
        Ok(fields
            .into_iter()
            .map(|f| MlField {
                key: f.key,
                name: f.name,
                ml_type: match f.kind {
                    ml::FieldType::Number => MlType::Number,
                    ml::FieldType::Date => MlType::Date,
                    ml::FieldType::Text => MlType::Text,
                },
            })
            .collect())
    }
}
