//! The simulated MailerLite API (`connect.mailerlite.com/api`), faithful to MailerLite's documentation
//! and to the recordings in `shared/mailerlite/tests/fixtures/recordings/` (each behaviour and its
//! source: docs/api-fidelity.md).
//!
//! - [`MailerLiteSim::start`] binds a port and serves the API under `/api` and the admin API
//!   under `/__sandbox/mailerlite/` (see `infra/sandbox/README.md`, "MailerLite").
//! - [`MailerLite`] is the account itself: [`MailerLite::router`] mounts it anywhere, and its
//!   methods are the state helpers the admin routes call (seed, user edits, campaigns, …).
//!
//! Modules, leaves first: `json`, `time_fmt` (shared), `error`, `model`, `paging`, `request`,
//! `store` (the records), `hooks` (webhook payloads), `limits`, `outbox` (what waits to go out),
//! `account` (the [`MailerLite`] handle), `delivery` (when webhooks go out), `snapshot`,
//! `campaigns`, `api` and `admin` (the handlers), `server` (the routes and [`MailerLiteSim`]).

mod account;
mod admin;
mod api;
mod campaigns;
mod delivery;
mod error;
mod health;
mod hooks;
mod json;
mod limits;
mod model;
mod outbox;
mod paging;
mod request;
mod server;
mod snapshot;
mod store;

pub use account::{MailerLite, MailerLiteConfig};
pub use admin::{
    DeliverySettings, FaultSettings, RateLimitSettings, SeedGroupMembership, SeedSpec, SeedSummary, UserEdit,
};
pub use campaigns::{CampaignSpec, CampaignSummary, Recipients};
pub use error::ApiError;
pub use hooks::sign as sign_webhook;
pub use limits::{RETRY_AFTER_MS_HEADER, WITHOUT_USER_AGENT};
pub use model::{FieldType, GroupOut, LogEntryOut, SegmentOut, SegmentRule, Status, SubscriberOut};
pub use outbox::{WebhookFaults, default_delivery};
pub use paging::{decode_cursor, encode_cursor};
pub use server::MailerLiteSim;
pub use snapshot::{MailerLiteSnapshot, RESTORE_FIELD_ID_GAP, RESTORE_ID_GAP};

#[cfg(test)]
mod tests;
