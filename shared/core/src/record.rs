//! What the sync knows about a contact: the two apps' records (snapshots, as read) and the
//! link between them (stored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::email::normalize_email;
use crate::rules::MlStatus;

/// A HubSpot contact as read: every property is a string or null on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubSpotContact {
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    /// Properties of the contact's primary company (empty without one).
    #[serde(default)]
    pub company: BTreeMap<String, Option<String>>,
    /// Whether the contact matches the connection's HubSpot rule (evaluated by the caller).
    pub in_scope: bool,
}

impl HubSpotContact {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }

    /// The primary email in normal form; `hs_additional_emails` are ignored for linking.
    pub fn email(&self) -> Option<String> {
        self.property("email").and_then(normalize_email)
    }

    /// "Unsubscribed from all email" (`hs_email_optout`).
    pub fn opted_out(&self) -> bool {
        self.property("hs_email_optout").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn created_at(&self) -> &str {
        self.property("createdate").unwrap_or_default()
    }

    pub fn last_modified(&self) -> &str {
        self.property("lastmodifieddate").unwrap_or_default()
    }
}

/// A MailerLite subscriber as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailerLiteSubscriber {
    pub id: String,
    pub email: String,
    pub status: MlStatus,
    pub fields: BTreeMap<String, Value>,
    pub groups: Vec<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    /// Whether the subscriber matches the connection's MailerLite rule (evaluated by the caller).
    pub in_scope: bool,
}

impl MailerLiteSubscriber {
    pub fn email(&self) -> Option<String> {
        normalize_email(&self.email)
    }

    pub fn field(&self, key: &str) -> &Value {
        self.fields.get(key).unwrap_or(&Value::Null)
    }
}

/// The value of one mapped field the last time the sync agreed on it, in each side's normal
/// form. A side whose current value differs from its base has changed since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldBase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite: Option<String>,
}

/// The link between one HubSpot contact and one MailerLite subscriber: held by both ids once
/// made, with what the sync last saw and wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailerlite_id: Option<String>,
    /// The agreed email (normal form).
    pub email: String,
    /// The HubSpot contact matched the HubSpot rule when last seen.
    #[serde(default)]
    pub hs_in_scope: bool,
    /// The subscriber matched the MailerLite rule when last seen.
    #[serde(default)]
    pub ml_in_scope: bool,
    /// The sync put (or found) the subscriber in the target group while it belonged there, so
    /// it takes it out again when the contact stops matching.
    #[serde(default)]
    pub in_target_group: bool,
    /// The HubSpot contact was opted out of email when last seen.
    #[serde(default)]
    pub hs_opted_out: bool,
    /// The MailerLite status last seen (and recorded in HubSpot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml_status: Option<MlStatus>,
    #[serde(default)]
    pub hs_deleted: bool,
    #[serde(default)]
    pub ml_deleted: bool,
    /// HubSpot merged another contact into the link's contact since it was last synced: the
    /// survivor may hold the merged contact's copies of what the sync wrote (its MailerLite
    /// status), so what the link remembers writing is no guide until the next sync compares
    /// with the survivor's actual values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hs_merged: bool,
    /// `lastmodifieddate` of the HubSpot contact when last synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_last_modified: Option<String>,
    /// `updated_at` of the subscriber when last synced (MailerLite has no "modified since" filter,
    /// so the scan compares this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml_updated_at: Option<String>,
    /// Base value per mapping key ([`crate::FieldMapping::key`]).
    #[serde(default)]
    pub bases: BTreeMap<String, FieldBase>,
    /// What was recorded in HubSpot of the subscriber's engagement.
    #[serde(default, skip_serializing_if = "crate::engagement::EngagementState::is_empty")]
    pub engagement: crate::engagement::EngagementState,
    /// Optimistic-locking version, managed by the store.
    #[serde(default)]
    pub version: u64,
}

impl Link {
    pub fn new(id: &str, email: &str) -> Self {
        Self {
            id: id.to_string(),
            hubspot_id: None,
            mailerlite_id: None,
            email: email.to_string(),
            hs_in_scope: false,
            ml_in_scope: false,
            in_target_group: false,
            hs_opted_out: false,
            ml_status: None,
            hs_deleted: false,
            ml_deleted: false,
            hs_merged: false,
            hs_last_modified: None,
            ml_updated_at: None,
            bases: BTreeMap::new(),
            engagement: crate::engagement::EngagementState::default(),
            version: 0,
        }
    }

    /// Linked on both sides and neither side deleted.
    pub fn is_complete(&self) -> bool {
        self.hubspot_id.is_some() && self.mailerlite_id.is_some() && !self.hs_deleted && !self.ml_deleted
    }
}
