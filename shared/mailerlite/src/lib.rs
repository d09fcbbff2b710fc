//! MailerLite API client (`connect.mailerlite.com/api`): typed requests and lenient models,
//! cursor streams, batching, pacing against both rate limits, bounded retries, typed errors and
//! webhook signatures. It follows MailerLite's documentation (<https://developers.mailerlite.com/docs/>) and real
//! recordings of the API (`tests/fixtures/recordings/`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hmsync_mailerlite::Error> {
//! use futures::TryStreamExt;
//! use hmsync_mailerlite::{Client, Config, Statuses, SubscriberUpsert};
//! let client = Client::new(Config::new("token"))?;
//! let up = client.upsert_subscriber(&SubscriberUpsert::new("Ada@Example.com").field("name", "Ada")).await?;
//! let everyone: Vec<_> = client.subscribers(Statuses::All).try_collect().await?;
//! # let _ = (up, everyone); Ok(()) }
//! ```

mod batch;
mod client;
mod endpoints;
mod error;
mod models;
mod requests;
mod webhooks;

pub use batch::{BATCH_LIMIT, BatchOptions, BatchOutcome, BatchRequest, chunk_is_upsert_only, plan_chunks};
pub use client::USER_AGENT;
pub use client::{
    API_VERSION, Client, Config, DEFAULT_BASE_URL, IMPORTS_BUCKET, REQUESTS_BUCKET, RETRY_AFTER_MS_HEADER,
};
pub use endpoints::{
    ACTIVITY_PAGE, ActivityQuery, ActivityType, MEMBERS_PAGE, ReportLimit, SEGMENT_PAGE, SUBSCRIBERS_PAGE, Statuses,
    Upserted, next_cursor,
};
pub use error::Error;
pub use models::{
    ActivityRow, Campaign, CampaignStats, CursorMeta, CursorPage, Field, FieldType, Group, Import, ImportSample,
    LogEntry, Page, PageMeta, Percent, Segment, Status, Subscriber, Timestamp, Webhook,
};
pub use requests::{GroupMembership, ImportRow, NewWebhook, SubscriberUpdate, SubscriberUpsert, WebhookUpdate};
pub use webhooks::{
    AutomationRef, CampaignRef, GroupRef, SubscriberEventKind, WebhookDelivery, WebhookEvent, parse_webhook,
    verify_signature,
};
