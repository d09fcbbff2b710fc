//! The safety valve: a run that would remove many contacts from the target group, unsubscribe
//! many, or clear many fields pauses for approval instead of writing.

use serde::{Deserialize, Serialize};

use crate::config::SafetyValve;

/// Destructive changes planned by one plan or summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SafetyCounters {
    pub group_removals: u32,
    pub unsubscribes: u32,
    pub field_clears: u32,
}

impl SafetyCounters {
    pub fn add(&mut self, other: &SafetyCounters) {
        self.group_removals += other.group_removals;
        self.unsubscribes += other.unsubscribes;
        self.field_clears += other.field_clears;
    }

    pub fn is_zero(&self) -> bool {
        *self == SafetyCounters::default()
    }
}

/// A threshold a run went over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SafetyTrip {
    #[error(
        "this run would remove {count} contacts from the target group (limit {limit}). Check the HubSpot rule and list memberships, then approve or fix the config."
    )]
    GroupRemovals { count: u32, limit: u32 },
    #[error(
        "this run would unsubscribe {count} MailerLite subscribers (limit {limit}). Check the HubSpot opt-outs, then approve or fix the config."
    )]
    Unsubscribes { count: u32, limit: u32 },
    #[error(
        "this run would clear {count} field values (limit {limit}). Check the field mappings and the source data, then approve or fix the config."
    )]
    FieldClears { count: u32, limit: u32 },
}

impl SafetyValve {
    /// Every threshold `counters` goes over (empty: the run may write).
    pub fn check(&self, counters: &SafetyCounters) -> Vec<SafetyTrip> {
        let mut trips = Vec::new();
        if counters.group_removals > self.max_group_removals {
            trips.push(SafetyTrip::GroupRemovals { count: counters.group_removals, limit: self.max_group_removals });
        }
        if counters.unsubscribes > self.max_unsubscribes {
            trips.push(SafetyTrip::Unsubscribes { count: counters.unsubscribes, limit: self.max_unsubscribes });
        }
        if counters.field_clears > self.max_field_clears {
            trips.push(SafetyTrip::FieldClears { count: counters.field_clears, limit: self.max_field_clears });
        }
        trips
    }
}
