//! The sync rules of hmsync, pure and exhaustively tested: the connection config and its
//! validation, field value conversion, email identity, rule matching, and the planner that
//! decides what to write where (the rules: docs/sync-rules.md). No I/O: the engine reads, plans with this crate,
//! writes, and stores the links it returns.

pub mod apply;
pub mod config;
pub mod email;
pub mod engagement;
pub mod merge;
pub mod plan;
pub mod record;
pub mod rules;
pub mod safety;
pub mod schema;
pub mod setup;
pub mod validate;
pub mod value;

pub use apply::{Applied, apply};
pub use config::{
    ConnectionConfig, Direction, EngagementSettings, FieldMapping, HubSpotObject, HubSpotRule, MailerLiteRule,
    SafetyValve, Side,
};
pub use email::{Candidate, choose_oldest, is_valid_email, normalize_email};
pub use engagement::{EngagementEvent, EngagementNote, EngagementState, EngagementUpdate, EventKind, record_events};
pub use merge::{MergeOutcome, link_kept_after_merge, rekey_after_merge, survivor_id};
pub use plan::{
    Change, Exclusion, FieldError, GroupChange, HubSpotWrite, MailerLiteWrite, Phase, Plan, Planner, Reason, value_text,
};
pub use record::{FieldBase, HubSpotContact, Link, MailerLiteSubscriber};
pub use rules::MlStatus;
pub use safety::{SafetyCounters, SafetyTrip};
pub use schema::{FieldSchemas, HsOption, HsProperty, HsType, MlField, MlType};
pub use setup::{
    MailerLiteValue, OptionMapping, OptionMappingError, OptionValue, option_mapping, suggest_mappings, writes_hubspot,
};
pub use validate::{ConfigProblem, validate_config};
pub use value::{Conversion, HsKind, ValueError};
