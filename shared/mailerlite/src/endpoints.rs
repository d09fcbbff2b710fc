//! Typed endpoints: subscribers, groups, segments, fields, imports, webhooks, campaigns.

use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, Resend, Target, decode, reactivation_refusal, segment};
use crate::error::Error;
use crate::models::*;
use crate::requests::{ImportRow, NewWebhook, SubscriberUpdate, SubscriberUpsert, WebhookUpdate, activates};

/// Which statuses a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statuses {
    /// Every status (group/segment members: one pass per status, since those endpoints filter
    /// to `active` unless told otherwise).
    All,
    Only(Status),
}

/// Page size used when streaming subscribers (the largest the API is known to accept).
pub const SUBSCRIBERS_PAGE: u32 = 100;
/// Page size when streaming group members (the documented maximum is 1000).
pub const MEMBERS_PAGE: u32 = 500;
/// Page size asked of segment member lists. No maximum is documented; when MailerLite refuses
/// it (a 422 on `limit`), the client asks for the documented default (50, no `limit`) instead,
/// for the rest of its life.
pub const SEGMENT_PAGE: u32 = 500;
/// Entries per activity-log page (the documented default, sent explicitly so that a full page
/// says "maybe more" without page metadata).
pub const ACTIVITY_PAGE: u32 = 100;

/// The result of an upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub subscriber: Subscriber,
    /// 201 (new, or a deleted subscriber brought back) rather than 200 (updated).
    pub created: bool,
}

/// `limit` of the subscriber-activity report: only these values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportLimit {
    L10,
    L25,
    #[default]
    L50,
    L100,
}

impl ReportLimit {
    pub fn value(self) -> u32 {
        match self {
            ReportLimit::L10 => 10,
            ReportLimit::L25 => 25,
            ReportLimit::L50 => 50,
            ReportLimit::L100 => 100,
        }
    }
}

/// Filters of the subscriber-activity report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityType {
    Opened,
    Unopened,
    Clicked,
    Unsubscribed,
    Forwarded,
    HardBounced,
    SoftBounced,
    Junk,
}

impl ActivityType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::Opened => "opened",
            ActivityType::Unopened => "unopened",
            ActivityType::Clicked => "clicked",
            ActivityType::Unsubscribed => "unsubscribed",
            ActivityType::Forwarded => "forwarded",
            ActivityType::HardBounced => "hardbounced",
            ActivityType::SoftBounced => "softbounced",
            ActivityType::Junk => "junk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActivityQuery {
    pub kind: Option<ActivityType>,
    pub limit: ReportLimit,
    pub page: u32,
    pub include_subscriber: bool,
}

fn q(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[derive(Deserialize)]
struct Total {
    total: u64,
}

#[derive(Deserialize)]
struct ForgetReply {
    data: Subscriber,
}

#[derive(Deserialize)]
struct ImportStarted {
    import_progress_url: String,
}

/// The cursor of the page after `page`, read with `sent`: present as long as MailerLite gives
/// one, even after a short or empty page (segment pages can be both and still continue), and
/// absent when it repeats the cursor just sent (a page that does not move would loop).
pub fn next_cursor<T>(page: &CursorPage<T>, sent: Option<&str>) -> Option<String> {
    page.meta.next_cursor.clone().filter(|c| !c.is_empty() && Some(c.as_str()) != sent)
}

#[derive(Deserialize)]
struct LogPage {
    data: Vec<LogEntry>,
}

impl Client {
    /// Streams subscriber pages from a cursor endpoint, one item at a time; an error ends the
    /// stream after being yielded.
    fn cursor_stream(
        &self,
        path: String,
        base: Vec<(String, String)>,
        target: Target,
    ) -> impl Stream<Item = Result<Subscriber, Error>> + Send + use<> {
        let client = self.clone();
        stream::unfold(Some(None::<String>), move |state| {
            let client = client.clone();
            let path = path.clone();
            let base = base.clone();
            let target = target.clone();
            async move {
                let cursor = state?;
                let mut query = base;
                if let Some(c) = &cursor {
                    query.push(q("cursor", c));
                }
                match client.get_json::<CursorPage<Subscriber>>(&path, &query, &target).await {
                    Ok(page) => {
                        let next = next_cursor(&page, cursor.as_deref());
                        let items: Vec<Result<Subscriber, Error>> = page.data.into_iter().map(Ok).collect();
                        Some((items, next.map(Some)))
                    }
                    Err(e) => Some((vec![Err(e)], None)),
                }
            }
        })
        .flat_map(stream::iter)
    }

    // --- subscribers --------------------------------------------------------------------------

    /// Every subscriber (newest first), optionally of one status.
    pub fn subscribers(&self, statuses: Statuses) -> impl Stream<Item = Result<Subscriber, Error>> + Send + use<> {
        let mut query = vec![q("limit", SUBSCRIBERS_PAGE)];
        if let Statuses::Only(s) = statuses {
            query.push(q("filter[status]", s));
        }
        self.cursor_stream("/subscribers".into(), query, Target::new("subscriber list", ""))
    }

    /// One page of subscribers (cursor from the previous page's `meta.next_cursor`).
    pub async fn subscribers_page(
        &self,
        statuses: Statuses,
        cursor: Option<&str>,
        limit: u32,
        include_groups: bool,
    ) -> Result<CursorPage<Subscriber>, Error> {
        let mut query = vec![q("limit", limit)];
        if let Statuses::Only(s) = statuses {
            query.push(q("filter[status]", s));
        }
        if let Some(c) = cursor {
            query.push(q("cursor", c));
        }
        if include_groups {
            query.push(q("include", "groups"));
        }
        self.get_json("/subscribers", &query, &Target::new("subscriber list", "")).await
    }

    /// `GET /subscribers?limit=0`.
    pub async fn count_subscribers(&self, statuses: Statuses) -> Result<u64, Error> {
        let mut query = vec![q("limit", 0)];
        if let Statuses::Only(s) = statuses {
            query.push(q("filter[status]", s));
        }
        Ok(self.get_json::<Total>("/subscribers", &query, &Target::new("subscriber count", "")).await?.total)
    }

    /// By id or email (`None` when there is no such live subscriber).
    pub async fn get_subscriber(&self, id_or_email: &str) -> Result<Option<Subscriber>, Error> {
        let key = id_or_email.trim().to_lowercase();
        let path = format!("/subscribers/{}", segment(&key));
        match self.get_json::<Data<Subscriber>>(&path, &[], &Target::new("subscriber", key.clone())).await {
            Ok(d) => Ok(Some(d.data)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /subscribers` (non-destructive upsert by email).
    pub async fn upsert_subscriber(&self, upsert: &SubscriberUpsert) -> Result<Upserted, Error> {
        let body = serde_json::to_value(upsert).unwrap_or(Value::Null);
        let target = Target::new("subscriber", upsert.email.clone());
        let reply = self
            .call(Method::POST, "/subscribers", &[], Some(&body), false, &target)
            .await
            .map_err(|e| if activates(upsert.status) { reactivation_refusal(e, &upsert.email) } else { e })?;
        let d: Data<Subscriber> = decode(&reply.body, "POST /subscribers")?;
        Ok(Upserted { subscriber: d.data, created: reply.status == 201 })
    }

    /// `PUT /subscribers/{id}`. Group membership changes only with
    /// [`SubscriberUpdate::replace_groups_with`].
    pub async fn update_subscriber(&self, id: &str, update: &SubscriberUpdate) -> Result<Subscriber, Error> {
        let body = update.to_json();
        let path = format!("/subscribers/{}", segment(id));
        let reply = self
            .call(Method::PUT, &path, &[], Some(&body), false, &Target::new("subscriber", id))
            .await
            .map_err(|e| if activates(update.status) { reactivation_refusal(e, id) } else { e })?;
        Ok(decode::<Data<Subscriber>>(&reply.body, "PUT /subscribers/{id}")?.data)
    }

    /// Soft delete. `Ok(false)` when it was already gone (404: e.g. a retried delete).
    pub async fn delete_subscriber(&self, id: &str) -> Result<bool, Error> {
        let path = format!("/subscribers/{}", segment(id));
        match self.call(Method::DELETE, &path, &[], None, false, &Target::new("subscriber", id)).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// GDPR forget: returns the subscriber with `deleted_at` and `forget_at`.
    pub async fn forget_subscriber(&self, id: &str) -> Result<Subscriber, Error> {
        let path = format!("/subscribers/{}/forget", segment(id));
        let reply = self.call(Method::POST, &path, &[], None, false, &Target::new("subscriber", id)).await?;
        Ok(decode::<ForgetReply>(&reply.body, "POST /subscribers/{id}/forget")?.data)
    }

    /// One page of a subscriber's activity log (from 1, [`ACTIVITY_PAGE`] entries), optionally
    /// of one `log_name`. The docs show `data` only and no order: a page shorter than
    /// [`ACTIVITY_PAGE`] is the last, and callers sort by `created_at` themselves.
    pub async fn activity_log(&self, id: &str, log_name: Option<&str>, page: u32) -> Result<Vec<LogEntry>, Error> {
        let mut query = vec![q("page", page.max(1)), q("limit", ACTIVITY_PAGE)];
        if let Some(n) = log_name {
            query.push(q("filter[log_name]", n));
        }
        let path = format!("/subscribers/{}/activity-log", segment(id));
        Ok(self.get_json::<LogPage>(&path, &query, &Target::new("subscriber", id)).await?.data)
    }

    // --- groups -------------------------------------------------------------------------------

    pub async fn groups_page(&self, page: u32, limit: u32, name: Option<&str>) -> Result<Page<Group>, Error> {
        let mut query = vec![q("page", page.max(1)), q("limit", limit.max(1))];
        if let Some(n) = name {
            query.push(q("filter[name]", n));
        }
        self.get_json("/groups", &query, &Target::new("group list", "")).await
    }

    /// Every group.
    pub async fn groups(&self) -> Result<Vec<Group>, Error> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p = self.groups_page(page, 250, None).await?;
            let more = p.has_next();
            all.extend(p.data);
            if !more {
                return Ok(all);
            }
            page += 1;
        }
    }

    pub async fn get_group(&self, id: &str) -> Result<Option<Group>, Error> {
        match self.get_json::<Data<Group>>(&format!("/groups/{}", segment(id)), &[], &Target::new("group", id)).await {
            Ok(d) => Ok(Some(d.data)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_group(&self, name: &str) -> Result<Group, Error> {
        let body = serde_json::json!({ "name": name });
        let reply = self.call(Method::POST, "/groups", &[], Some(&body), false, &Target::new("group", name)).await?;
        Ok(decode::<Data<Group>>(&reply.body, "POST /groups")?.data)
    }

    /// The group with exactly this name (case-sensitive), created when missing. Group names
    /// are not unique in MailerLite: the oldest match wins.
    pub async fn ensure_group(&self, name: &str) -> Result<Group, Error> {
        let mut page = 1;
        let mut found: Option<Group> = None;
        loop {
            let p = self.groups_page(page, 250, Some(name)).await?;
            let more = p.has_next();
            for g in p.data.into_iter().filter(|g| g.name == name) {
                if found.as_ref().is_none_or(|f| g.id.len() < f.id.len() || (g.id.len() == f.id.len() && g.id < f.id)) {
                    found = Some(g);
                }
            }
            if !more {
                break;
            }
            page += 1;
        }
        match found {
            Some(g) => Ok(g),
            None => self.create_group(name).await,
        }
    }

    pub async fn rename_group(&self, id: &str, name: &str) -> Result<Group, Error> {
        let body = serde_json::json!({ "name": name });
        let reply = self
            .call(Method::PUT, &format!("/groups/{}", segment(id)), &[], Some(&body), false, &Target::new("group", id))
            .await?;
        Ok(decode::<Data<Group>>(&reply.body, "PUT /groups/{id}")?.data)
    }

    /// `Ok(false)` when the group did not exist.
    pub async fn delete_group(&self, id: &str) -> Result<bool, Error> {
        match self
            .call(Method::DELETE, &format!("/groups/{}", segment(id)), &[], None, false, &Target::new("group", id))
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A group's members. The endpoint returns only `active` members unless asked, so the
    /// caller chooses: [`Statuses::All`] walks every status in turn.
    pub fn group_members(
        &self,
        group_id: &str,
        statuses: Statuses,
    ) -> impl Stream<Item = Result<Subscriber, Error>> + Send + use<> {
        let list: Vec<Status> = match statuses {
            Statuses::All => Status::ALL.to_vec(),
            Statuses::Only(s) => vec![s],
        };
        let client = self.clone();
        let path = format!("/groups/{}/subscribers", segment(group_id));
        let target = Target::new("group", group_id);
        stream::iter(list).flat_map(move |s| {
            client.cursor_stream(path.clone(), vec![q("limit", MEMBERS_PAGE), q("filter[status]", s)], target.clone())
        })
    }

    /// One page of a group's members of one status (resumable scans keep the cursor between
    /// pages). `include_groups` adds each member's groups.
    pub async fn group_members_page(
        &self,
        group_id: &str,
        status: Status,
        cursor: Option<&str>,
        include_groups: bool,
    ) -> Result<CursorPage<Subscriber>, Error> {
        let path = format!("/groups/{}/subscribers", segment(group_id));
        let mut query = vec![q("limit", MEMBERS_PAGE), q("filter[status]", status)];
        if let Some(c) = cursor {
            query.push(q("cursor", c));
        }
        if include_groups {
            query.push(q("include", "groups"));
        }
        self.get_json(&path, &query, &Target::new("group", group_id)).await
    }

    /// `POST /subscribers/{sid}/groups/{gid}`: returns the group. A subscriber or group that
    /// does not exist is a 422 with `errors.id` ("The selected id is invalid."), not a 404.
    pub async fn assign_to_group(&self, subscriber_id: &str, group_id: &str) -> Result<Group, Error> {
        let path = format!("/subscribers/{}/groups/{}", segment(subscriber_id), segment(group_id));
        let reply = self.call(Method::POST, &path, &[], None, false, &Target::new("subscriber", subscriber_id)).await?;
        Ok(decode::<Data<Group>>(&reply.body, "POST /subscribers/{id}/groups/{id}")?.data)
    }

    /// `Ok(false)` when there was nothing to remove: the subscriber or group does not exist, or
    /// (assumed: the docs name no case for their 404) the subscriber is not a member.
    pub async fn unassign_from_group(&self, subscriber_id: &str, group_id: &str) -> Result<bool, Error> {
        let path = format!("/subscribers/{}/groups/{}", segment(subscriber_id), segment(group_id));
        match self.call(Method::DELETE, &path, &[], None, false, &Target::new("subscriber", subscriber_id)).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Bulk import into a group (counts against the 5/minute import limit). Returns the
    /// import id to poll with [`Client::import_progress`].
    pub async fn import_to_group(&self, group_id: &str, rows: &[ImportRow]) -> Result<String, Error> {
        let body = serde_json::json!({ "subscribers": rows });
        let path = format!("/groups/{}/import-subscribers", segment(group_id));
        let reply = self.call(Method::POST, &path, &[], Some(&body), true, &Target::new("group", group_id)).await?;
        let started: ImportStarted = decode(&reply.body, "POST /groups/{id}/import-subscribers")?;
        started.import_progress_url.rsplit('/').next().filter(|id| !id.is_empty()).map(str::to_string).ok_or_else(
            || Error::Decode { context: "import_progress_url".into(), message: started.import_progress_url.clone() },
        )
    }

    pub async fn import_progress(&self, import_id: &str) -> Result<Import, Error> {
        let path = format!("/subscribers/import/{}", segment(import_id));
        Ok(self.get_json::<Data<Import>>(&path, &[], &Target::new("import", import_id)).await?.data)
    }

    /// Polls until the import is done, at most `max_polls` times.
    pub async fn wait_for_import(&self, import_id: &str, interval: Duration, max_polls: u32) -> Result<Import, Error> {
        let mut last = self.import_progress(import_id).await?;
        let mut polls = 1;
        while !last.done {
            if polls >= max_polls {
                return Err(Error::Transient {
                    status: None,
                    message: format!("import {import_id} not done after {polls} polls ({}% processed)", last.percent),
                });
            }
            tokio::time::sleep(interval).await;
            last = self.import_progress(import_id).await?;
            polls += 1;
        }
        Ok(last)
    }

    // --- account ------------------------------------------------------------------------------

    /// The accounts the credentials reach (`GET /api/accounts`, `{"data": [{id, name, status}]}`).
    /// MailerLite documents it for its OAuth clients (its own CLI), not for API keys: a key it
    /// refuses this for (any 4xx) gives `Ok(None)`, and callers treat the name as unknown.
    pub async fn accounts(&self) -> Result<Option<Vec<Account>>, Error> {
        match self.get_json::<Data<Vec<Account>>>("/accounts", &[], &Target::new("account list", "")).await {
            Ok(d) => Ok(Some(d.data)),
            Err(Error::NotFound { .. } | Error::Validation { .. } | Error::Api { .. } | Error::Decode { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    // --- segments -----------------------------------------------------------------------------

    pub async fn segments(&self) -> Result<Vec<Segment>, Error> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p: Page<Segment> = self
                .get_json("/segments", &[q("page", page), q("limit", 250)], &Target::new("segment list", ""))
                .await?;
            let more = p.has_next();
            all.extend(p.data);
            if !more {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// A segment's members of one status (the endpoint defaults to `active`; segments sync
    /// active members only).
    pub fn segment_members(
        &self,
        segment_id: &str,
        status: Status,
    ) -> impl Stream<Item = Result<Subscriber, Error>> + Send + use<> {
        let client = self.clone();
        let segment_id = segment_id.to_string();
        stream::unfold(Some(None::<String>), move |state| {
            let (client, segment_id) = (client.clone(), segment_id.clone());
            async move {
                let cursor = state?;
                match client.segment_members_page(&segment_id, status, cursor.as_deref()).await {
                    Ok(page) => {
                        let next = next_cursor(&page, cursor.as_deref());
                        Some((page.data.into_iter().map(Ok).collect::<Vec<_>>(), next.map(Some)))
                    }
                    Err(e) => Some((vec![Err(e)], None)),
                }
            }
        })
        .flat_map(stream::iter)
    }

    /// One page of a segment's members of one status (segment items carry their groups). A
    /// page may be short or empty and still have a next cursor: follow [`next_cursor`].
    pub async fn segment_members_page(
        &self,
        segment_id: &str,
        status: Status,
        cursor: Option<&str>,
    ) -> Result<CursorPage<Subscriber>, Error> {
        use std::sync::atomic::Ordering;
        let path = format!("/segments/{}/subscribers", segment(segment_id));
        let target = Target::new("segment", segment_id);
        let query = |limit: bool| {
            let mut query = vec![q("filter[status]", status)];
            if limit {
                query.push(q("limit", SEGMENT_PAGE));
            }
            if let Some(c) = cursor {
                query.push(q("cursor", c));
            }
            query
        };
        if !self.inner.segment_limit_refused.load(Ordering::Relaxed) {
            match self.get_json(&path, &query(true), &target).await {
                Err(e) if !e.field_errors("limit").is_empty() => {
                    tracing::info!(limit = SEGMENT_PAGE, "MailerLite refused the segment page size; using its default");
                    self.inner.segment_limit_refused.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.get_json(&path, &query(false), &target).await
    }

    // --- fields -------------------------------------------------------------------------------

    pub async fn fields(&self) -> Result<Vec<Field>, Error> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p: Page<Field> =
                self.get_json("/fields", &[q("page", page), q("limit", 100)], &Target::new("field list", "")).await?;
            let more = p.has_next();
            all.extend(p.data);
            if !more {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// Creates a field; its key is derived from the name by MailerLite (read it back).
    pub async fn create_field(&self, name: &str, kind: FieldType) -> Result<Field, Error> {
        let body = serde_json::json!({ "name": name, "type": kind.as_str() });
        let reply = self.call(Method::POST, "/fields", &[], Some(&body), false, &Target::new("field", name)).await?;
        Ok(decode::<Data<Field>>(&reply.body, "POST /fields")?.data)
    }

    // --- webhooks -----------------------------------------------------------------------------

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p: Page<Webhook> =
                self.get_json("/webhooks", &[q("page", page)], &Target::new("webhook list", "")).await?;
            let more = p.has_next();
            all.extend(p.data);
            if !more {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// Creates a webhook. Sent once: after a timeout or a 5xx the webhook may exist anyway, so
    /// the caller lists the webhooks before it tries again (a second one would sign with a
    /// secret nobody stored).
    pub async fn create_webhook(&self, hook: &NewWebhook) -> Result<Webhook, Error> {
        let body = serde_json::to_value(hook).unwrap_or(Value::Null);
        let target = Target::new("webhook", hook.url.clone());
        let reply = self
            .call_with(Method::POST, "/webhooks", &[], Some(&body), false, &target, Resend::OnlyRateLimited)
            .await?;
        Ok(decode::<Data<Webhook>>(&reply.body, "POST /webhooks")?.data)
    }

    /// `PUT /webhooks/{id}`: changes the fields `update` names (safe to send again).
    pub async fn update_webhook(&self, id: &str, update: &WebhookUpdate) -> Result<Webhook, Error> {
        let body = serde_json::to_value(update).unwrap_or(Value::Null);
        let path = format!("/webhooks/{}", segment(id));
        let reply = self.call(Method::PUT, &path, &[], Some(&body), false, &Target::new("webhook", id)).await?;
        Ok(decode::<Data<Webhook>>(&reply.body, "PUT /webhooks/{id}")?.data)
    }

    /// `Ok(false)` when it did not exist.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, Error> {
        match self
            .call(Method::DELETE, &format!("/webhooks/{}", segment(id)), &[], None, false, &Target::new("webhook", id))
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // --- campaigns ----------------------------------------------------------------------------

    /// Every sent campaign (`filter[status]` defaults to `ready` on the API, so it is set).
    pub async fn sent_campaigns(&self) -> Result<Vec<Campaign>, Error> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let query = [q("filter[status]", "sent"), q("page", page), q("limit", 100)];
            let p: Page<Campaign> = self.get_json("/campaigns", &query, &Target::new("campaign list", "")).await?;
            let more = p.has_next();
            all.extend(p.data);
            if !more {
                return Ok(all);
            }
            page += 1;
        }
    }

    pub async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>, Error> {
        match self
            .get_json::<Data<Campaign>>(&format!("/campaigns/{}", segment(id)), &[], &Target::new("campaign", id))
            .await
        {
            Ok(d) => Ok(Some(d.data)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of a sent campaign's subscriber-activity report (`meta.aggregations` holds the
    /// counts per kind).
    pub async fn campaign_activity(&self, campaign_id: &str, query: ActivityQuery) -> Result<Page<ActivityRow>, Error> {
        let mut params = vec![q("limit", query.limit.value()), q("page", query.page.max(1))];
        if let Some(k) = query.kind {
            params.push(q("filter[type]", k.as_str()));
        }
        if query.include_subscriber {
            params.push(q("include", "subscriber"));
        }
        let path = format!("/campaigns/{}/reports/subscriber-activity", segment(campaign_id));
        self.get_json(&path, &params, &Target::new("campaign", campaign_id)).await
    }
}
