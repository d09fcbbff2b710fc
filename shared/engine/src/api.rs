//! What the engine needs from the two APIs, as ports. The real adapters wrap `hmsync-hubspot`
//! and `hmsync-mailerlite` (see [`crate::adapters`]); every method is batch-shaped, because the
//! two APIs' rate limits are the real bottleneck of a sync.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{HsProperty, MlField, MlStatus, Side};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A HubSpot contact as read (property values are wire strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HsRecord {
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
}

impl HsRecord {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// A MailerLite subscriber as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlRecord {
    pub id: String,
    pub email: String,
    pub status: MlStatus,
    pub fields: BTreeMap<String, Value>,
    pub groups: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// MailerLite's totals of the subscriber's opens and clicks.
    #[serde(default)]
    pub opens_count: u64,
    #[serde(default)]
    pub clicks_count: u64,
}

/// One page of a HubSpot scan.
#[derive(Debug, Clone, Default)]
pub struct HsPage {
    pub records: Vec<HsRecord>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
    /// How many records the whole scan will return, when the API says.
    pub total: Option<u64>,
}

/// One page of a MailerLite listing.
#[derive(Debug, Clone, Default)]
pub struct MlPage {
    pub records: Vec<MlRecord>,
    pub next: Option<String>,
}

/// Which MailerLite subscribers a listing walks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum MlSource {
    /// Every subscriber, every status.
    All,
    /// Members of a group with one status (group listings default to active only).
    Group(String, MlStatus),
    /// Members of a segment (active only).
    Segment(String),
}

/// The HubSpot portal behind a connection's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubSpotAccount {
    pub portal_id: u64,
    /// The portal's domain, when HubSpot tells it (OAuth installs).
    pub domain: Option<String>,
    /// The scopes granted; `null` when HubSpot does not describe the token.
    pub scopes: Option<Vec<String>>,
    /// The app the token belongs to, when HubSpot tells it.
    #[serde(default)]
    pub app_id: Option<u64>,
}

/// The MailerLite account behind an API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailerLiteAccount {
    /// The account's name, when MailerLite tells it to an API key.
    pub name: Option<String>,
    /// Subscribers of every status.
    pub subscribers: u64,
}

/// A HubSpot contact list (a rule can name it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubSpotListInfo {
    pub id: String,
    pub name: String,
    /// Contacts in the list, when HubSpot says.
    pub size: Option<u64>,
    /// `MANUAL` or `SNAPSHOT` (static) or `DYNAMIC` (active).
    pub processing_type: String,
}

/// A MailerLite group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailerLiteGroupInfo {
    pub id: String,
    pub name: String,
    /// Active members.
    pub active: u64,
    /// Members of every status (active, unsubscribed, unconfirmed, bounced, junk).
    pub total: u64,
}

/// A MailerLite segment (its rule syncs active subscribers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailerLiteSegmentInfo {
    pub id: String,
    pub name: String,
    /// Active members.
    pub active: u64,
}

/// One MailerLite write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MlOp {
    /// `POST /subscribers`: creates, or adds to an existing subscriber without removing anything.
    Upsert {
        email: String,
        fields: BTreeMap<String, Value>,
        status: Option<MlStatus>,
        groups: Vec<String>,
    },
    /// `PUT /subscribers/{id}` without `groups` (which would replace membership).
    Update {
        id: String,
        email: Option<String>,
        fields: BTreeMap<String, Value>,
        status: Option<MlStatus>,
    },
    AddToGroup {
        id: String,
        group_id: String,
    },
    RemoveFromGroup {
        id: String,
        group_id: String,
    },
}

/// A HubSpot contact update or create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HsWrite {
    /// Contact id for updates; a unique trace id for creates (to tell results apart).
    pub key: String,
    pub properties: BTreeMap<String, String>,
}

/// A HubSpot note on a contact (engagement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HsNote {
    pub contact_id: String,
    pub timestamp_ms: i64,
    pub body: String,
}

/// Why one record of a batch failed. Never transient: transient failures fail the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The property or field concerned, when the API says.
    pub field: Option<String>,
    /// What happened, in words a user understands.
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// The API's own message.
    pub api_message: Option<String>,
    pub kind: ItemErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemErrorKind {
    /// The record is gone (deleted meanwhile).
    NotFound,
    /// A record with this email already exists (HubSpot tells its id).
    AlreadyExists {
        existing_id: Option<String>,
    },
    /// MailerLite refuses to reactivate an unsubscribed/bounced/junk subscriber: a known state.
    ReactivationRefused,
    /// The API rejected one or more values.
    Invalid {
        properties: Vec<String>,
    },
    /// The API rejected these values and wrote the rest of the record (HubSpot refuses a whole
    /// batch update for one value; the client sends the rest again without it).
    InvalidRestWritten {
        properties: Vec<String>,
        written: Box<HsRecord>,
    },
    Other,
}

/// A call that failed as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 5xx, timeouts, connection errors, 429 after retries: the message comes back later.
    #[error("{side} is unavailable ({message}); the work is retried later")]
    Transient { side: Side, message: String, retry_after: Option<Duration> },
    /// HubSpot's daily limit: nothing more today; the connection waits and resumes by itself.
    #[error("HubSpot's daily API limit is used up; hmsync waits until it resets and resumes by itself")]
    DailyLimit { retry_after: Duration },
    /// The credentials no longer work: a connection-level problem the user must fix.
    #[error("{side} refused the credentials: {message}")]
    Unauthorized { side: Side, message: String, action: String },
    /// A scope or permission is missing.
    #[error("{side} denied the request: {message}")]
    Forbidden { side: Side, message: String, action: String },
    /// The request itself is wrong (a bug or an unexpected API change).
    #[error("{side} rejected the request: {message}")]
    Rejected { side: Side, message: String },
    /// Something the config names (a MailerLite group or segment, a HubSpot list) does not
    /// exist in the app.
    #[error("{side} has no {what}")]
    NotFound { side: Side, what: String },
}

impl ApiError {
    /// Whether the failed work should simply be tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Transient { .. } | ApiError::DailyLimit { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Transient { retry_after, .. } => *retry_after,
            ApiError::DailyLimit { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The HubSpot operations the sync uses.
#[async_trait]
pub trait HubSpotApi: Send + Sync {
    /// The portal (account) id behind the credentials.
    async fn portal_id(&self) -> ApiResult<u64>;
    /// Permanently deletes a contact (GDPR delete): HubSpot also blocks its email.
    async fn gdpr_delete(&self, id: &str) -> ApiResult<()>;
    /// Contacts by id; missing and archived ids are absent from the result.
    async fn read_contacts(&self, ids: &[String], properties: &[String]) -> ApiResult<Vec<HsRecord>>;
    /// Contacts by primary email; emails without a contact are absent.
    async fn find_contacts_by_email(&self, emails: &[String], properties: &[String]) -> ApiResult<Vec<HsRecord>>;
    /// A page of every contact in id order (the initial sync). `after`: the cursor of the previous page.
    async fn scan_all(&self, after: Option<&str>, properties: &[String]) -> ApiResult<HsPage>;
    /// A page of contacts modified at or after `since_ms`, oldest first (incremental scans;
    /// restarts before the search cap are inside the cursor).
    async fn scan_modified(&self, since_ms: i64, after: Option<&str>, properties: &[String]) -> ApiResult<HsPage>;
    /// A page of the record ids in a list.
    async fn list_members(&self, list_id: &str, after: Option<&str>) -> ApiResult<(Vec<String>, Option<String>)>;
    /// The contacts whose primary company is `company_id`.
    async fn contacts_of_company(&self, company_id: &str) -> ApiResult<Vec<String>>;
    /// The list ids each contact is a member of.
    async fn memberships(&self, contact_ids: &[String]) -> ApiResult<BTreeMap<String, Vec<String>>>;
    /// Properties of companies by id.
    async fn read_companies(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> ApiResult<BTreeMap<String, BTreeMap<String, Option<String>>>>;
    /// Creates contacts; one result per input, in order (`Ok` holds the new record).
    async fn create_contacts(&self, inputs: &[HsWrite]) -> ApiResult<Vec<Result<HsRecord, ItemError>>>;
    /// Updates contacts by id; one result per input, in order.
    async fn update_contacts(&self, inputs: &[HsWrite]) -> ApiResult<Vec<Result<HsRecord, ItemError>>>;
    /// Opts an email out of all email (communication preferences).
    async fn unsubscribe_all(&self, email: &str, legal_basis: Option<&str>) -> ApiResult<()>;
    async fn contact_properties(&self) -> ApiResult<Vec<HsProperty>>;
    async fn company_properties(&self) -> ApiResult<Vec<HsProperty>>;
    /// Creates the property group and any of `properties` that do not exist yet.
    async fn ensure_properties(&self, group: &str, group_label: &str, properties: &[HsProperty]) -> ApiResult<()>;
    async fn create_notes(&self, notes: &[HsNote]) -> ApiResult<Vec<Result<(), ItemError>>>;
    /// The portal and what the credentials may do in it (the setup screens).
    async fn account(&self) -> ApiResult<HubSpotAccount>;
    /// Every contact list (the setup screens' rule picker).
    async fn lists(&self) -> ApiResult<Vec<HubSpotListInfo>>;
    /// What HubSpot's rate-limit headers said on the last answer that carried them. No I/O.
    fn rate_limits(&self) -> Option<hmsync_http::RateLimitReading>;
}

/// The MailerLite operations the sync uses.
#[async_trait]
pub trait MailerLiteApi: Send + Sync {
    /// A page of subscribers from `source`.
    async fn list(&self, source: &MlSource, cursor: Option<&str>) -> ApiResult<MlPage>;
    /// How many subscribers the account has.
    async fn count(&self) -> ApiResult<u64>;
    /// Subscribers by id; deleted or unknown ids are absent.
    async fn get_by_ids(&self, ids: &[String]) -> ApiResult<Vec<MlRecord>>;
    /// Subscribers by email; unknown emails are absent.
    async fn get_by_emails(&self, emails: &[String]) -> ApiResult<Vec<MlRecord>>;
    /// Applies writes (bundled into batch requests); one result per op, in order (`Ok` holds the
    /// subscriber as written when the API returns it).
    async fn apply(&self, ops: &[MlOp]) -> ApiResult<Vec<Result<Option<MlRecord>, ItemError>>>;
    async fn fields(&self) -> ApiResult<Vec<MlField>>;
    /// The subscriber's engagement events from the activity log (newest first, up to `limit`).
    async fn activity(
        &self,
        subscriber_id: &str,
        email: &str,
        limit: usize,
    ) -> ApiResult<Vec<hmsync_core::EngagementEvent>>;
    /// Every webhook of the account, with its secret and health.
    async fn webhooks(&self) -> ApiResult<Vec<MlWebhook>>;
    /// Creates a webhook, enabled. Sent once: after a transient failure it may exist anyway, so
    /// the caller lists the webhooks before trying again.
    async fn create_webhook(&self, spec: &MlWebhookSpec) -> ApiResult<MlWebhook>;
    /// Makes webhook `id` what `spec` says, and enables it.
    async fn update_webhook(&self, id: &str, spec: &MlWebhookSpec) -> ApiResult<MlWebhook>;
    /// Deletes a webhook; `Ok` also when it no longer exists.
    async fn delete_webhook(&self, id: &str) -> ApiResult<()>;
    /// Asks MailerLite to forget a subscriber (deleted now, its data purged after 30 days).
    async fn forget(&self, id: &str) -> ApiResult<()>;
    /// The account behind the key (the setup screens).
    async fn account(&self) -> ApiResult<MailerLiteAccount>;
    async fn groups(&self) -> ApiResult<Vec<MailerLiteGroupInfo>>;
    async fn create_group(&self, name: &str) -> ApiResult<MailerLiteGroupInfo>;
    async fn segments(&self) -> ApiResult<Vec<MailerLiteSegmentInfo>>;
    /// What MailerLite's rate-limit headers said on the last answer that carried them. No I/O.
    fn rate_limits(&self) -> Option<hmsync_http::RateLimitReading>;
}

/// A MailerLite webhook as listed. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MlWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub batchable: bool,
    /// MailerLite's `is_blocked`.
    pub blocked: bool,
    /// Signs every delivery (`Signature` header).
    pub secret: String,
    pub last_fired_at: Option<String>,
    /// The status our receiver answered MailerLite's last delivery attempt with.
    pub response_code: Option<u16>,
}

impl std::fmt::Debug for MlWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlWebhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .field("batchable", &self.batchable)
            .field("blocked", &self.blocked)
            .field("last_fired_at", &self.last_fired_at)
            .field("response_code", &self.response_code)
            .finish_non_exhaustive()
    }
}

/// What a MailerLite webhook of a connection should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlWebhookSpec {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub batchable: bool,
}
