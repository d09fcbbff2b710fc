//! HubSpot API client for hmsync: auth (static token, OAuth with refresh), batching with a
//! per-input outcome, paging streams, the incremental search scan, pacing under HubSpot's rate
//! limits, typed errors, and webhook parsing and signature verification.
//!
//! Paths use the date-versioned `2026-03` spelling, same shapes as v3/v4
//! (<https://developers.hubspot.com/docs/api-reference/latest/overview>).

mod batch;
mod client;
mod contacts;
mod crm;
pub mod error;
pub mod model;
pub mod search;
pub mod search_pace;
pub mod webhooks;

pub use batch::{BATCH_SIZE, MAX_SINGLES};
pub use client::{
    Auth, DEFAULT_APP_URL, DEFAULT_BASE_URL, HubSpotClient, HubSpotConfig, INTROSPECT, PRIVATE_APP_TOKEN_INFO,
    TokenCallback, TokenSet, authorize_url, exchange_code,
};
pub use contacts::{CONTACTS, ListOptions};
pub use crm::{ACCOUNT, ASSOCIATIONS, COMPANIES, LISTS, NOTES, PREFERENCES, PROPERTIES};
pub use error::{HubSpotError, PropertyError};
pub use model::*;
pub use search::{Filter, FilterGroup, IncrementalScan, SEARCH_BODY_LIMIT, ScanCursor, SearchPage, SearchRequest};
pub use webhooks::{
    SignatureError, SubscriptionType, WebhookEvent, check_v3_headers, parse_events, verify_v1, verify_v2, verify_v3,
};
