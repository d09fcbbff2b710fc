//! The connection's state: lifecycle phase, pauses, the running scan, watermarks, progress and
//! the connection-level problem. Stored as one versioned document (see `StateStore`); counters
//! that many writers bump live beside it as atomic counters.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use hmsync_core::{SafetyCounters, SafetyTrip, Side};

use crate::message::ScanKind;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Configured, not activated: nothing syncs.
    #[default]
    Draft,
    /// The historical sync is linking both databases.
    InitialSync,
    /// Continuous sync: webhooks plus scheduled scans.
    Continuous,
}

/// Why a connection is paused. Work that arrives while paused is parked, not lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Pause {
    /// The user paused it.
    User,
    /// A run would make more destructive changes than allowed; waits for approval.
    SafetyValve { trips: Vec<SafetyTrip>, run_id: Option<String> },
    /// Credentials stopped working; waits for new ones.
    Credentials { side: Side, message: String, action: String },
}

/// A problem with the whole connection, shown on the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    pub side: Option<Side>,
    pub message: String,
    pub action: String,
    pub since_ms: i64,
}

/// Progress of one side of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SideProgress {
    pub done: bool,
    pub pages: u64,
    pub records: u64,
}

/// The scan that is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanRun {
    pub run_id: String,
    pub kind: ScanKind,
    pub started_at_ms: i64,
    /// Last time a page of this run was processed (a run silent for long is considered dead).
    pub last_page_at_ms: i64,
    pub hubspot: SideProgress,
    pub mailerlite: SideProgress,
    /// Destructive changes this run has made so far (the safety valve's measure).
    pub destructive: SafetyCounters,
    /// The user approved this run's destructive changes.
    pub approved: bool,
    /// Records expected in total (initial sync), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// Records without a usable email seen so far.
    #[serde(default)]
    pub excluded_no_email: u64,
}

/// A finished scan, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanSummary {
    pub run_id: String,
    pub kind: ScanKind,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub records: u64,
    /// Records without a usable email the scan saw (excluded, not errors).
    #[serde(default)]
    pub excluded_no_email: u64,
    /// The links as the scan left them.
    #[serde(default)]
    pub links: LinkCounts,
}

/// How many links are in which state (counted at the end of each scan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkCounts {
    pub total: u64,
    /// Linked on both sides, neither deleted.
    pub complete: u64,
    pub hubspot_in_scope: u64,
    pub mailerlite_in_scope: u64,
    pub deleted_in_hubspot: u64,
    pub deleted_in_mailerlite: u64,
}

/// The whole state document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionState {
    pub lifecycle: Lifecycle,
    pub pause: Option<Pause>,
    /// Work waits until then (rate limits, HubSpot's daily limit).
    pub wait_until_ms: Option<i64>,
    pub problem: Option<Problem>,
    pub scan: Option<ScanRun>,
    pub last_scan: Option<ScanSummary>,
    /// HubSpot contacts modified before this were seen by a finished scan.
    pub hubspot_watermark_ms: Option<i64>,
    pub initial_started_at_ms: Option<i64>,
    pub initial_finished_at_ms: Option<i64>,
    /// The user approved destructive changes until then (the safety valve lets them through).
    pub approved_until_ms: Option<i64>,
    /// Messages parked by versions that kept them here; parked work now has its own items
    /// (`ParkedStore`), and these are replayed with them.
    #[serde(rename = "parked", skip_serializing_if = "Vec::is_empty")]
    pub legacy_parked: Vec<Value>,
    /// The key of this connection's tombstone digests (random; made at the first erasure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy_key: Option<String>,
    /// The HubSpot portal behind the credentials (for webhook routing).
    pub portal_id: Option<u64>,
    /// The MailerLite webhooks as last registered or checked.
    pub mailerlite_webhooks: Option<crate::ml_webhooks::MailerLiteWebhooks>,
}

/// Names of the atomic counters kept beside the state.
pub mod counters {
    pub const INITIAL_DONE: &str = "initial_done";
    pub const SYNCED: &str = "synced";
    pub const CREATED_HUBSPOT: &str = "created_hubspot";
    pub const CREATED_MAILERLITE: &str = "created_mailerlite";
    pub const EXCLUDED_NO_EMAIL: &str = "excluded_no_email";
    pub const ECHOES_SKIPPED: &str = "echoes_skipped";
    pub const WEBHOOK_EVENTS: &str = "webhook_events";
    /// MailerLite webhook items that could not be read (skipped; the rest of the delivery was
    /// accepted).
    pub const WEBHOOK_ITEMS_SKIPPED: &str = "webhook_items_skipped";
    pub const ENGAGEMENT_EVENTS: &str = "engagement_events";
    /// When the receiver last accepted a signed delivery of each app (milliseconds; set, not added).
    pub const HUBSPOT_DELIVERY_AT: &str = "hubspot_webhook_received_at_ms";
    pub const MAILERLITE_DELIVERY_AT: &str = "mailerlite_webhook_received_at_ms";
}

impl ConnectionState {
    /// Whether contact work may run now (not paused, not waiting).
    pub fn accepts_work(&self, now_ms: i64) -> bool {
        self.pause.is_none() && self.wait_until_ms.is_none_or(|t| t <= now_ms)
    }
}
