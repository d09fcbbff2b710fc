//! The use cases of hmsync over its ports (docs/architecture.md): HubSpot and MailerLite webhooks,
//! scans (the initial sync and the scheduled safety net), syncing batches of contacts, the
//! connection lifecycle and the safety valve. The Lambda functions and the local runner are
//! thin shells around an [`Engine`].

pub mod adapters;
pub mod api;
pub mod catalog;
pub mod delivery;
pub mod doctor;
pub mod engagement;
pub mod engine;
pub mod failpoint;
pub mod hourly;
pub mod lifecycle;
pub mod message;
pub mod ml_webhooks;
pub mod privacy;
pub mod scan;
pub mod scopes;
pub mod state;
pub mod sync;
pub mod views;
pub mod webhook;
pub mod worker;

pub use api::{ApiError, HubSpotApi, MailerLiteApi};
pub use delivery::{DeliveryPolicy, Disposition};
pub use engine::{ApiFactory, Clock, Engine, EngineError, EngineSettings, Report, SystemClock};
pub use lifecycle::{LifecycleError, Tick};
pub use message::{ContactRef, Origin, ScanKind, ScanPart, SyncMessage, coalesce};
pub use ml_webhooks::WebhookTarget;
pub use privacy::{Erasure, Export, Forward, Who};
pub use state::{ConnectionState, Lifecycle, Pause};
