//! Typed request and response bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::HubSpotError;

/// A CRM record (`SimplePublicObject`): contacts, companies, notes. Property values are strings
/// or `null` (requested but empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub archived_at: Option<String>,
    /// Present on single reads with `associations=…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associations: Option<Value>,
    /// Upsert results: whether the record was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

pub type Contact = CrmObject;
pub type Company = CrmObject;
pub type Note = CrmObject;

impl CrmObject {
    /// A property's value; empty strings count as no value.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref()).filter(|v| !v.is_empty())
    }

    pub fn email(&self) -> Option<&str> {
        self.prop("email")
    }

    /// Ids this record absorbed in merges (`hs_merged_object_ids`).
    pub fn merged_ids(&self) -> Vec<String> {
        self.prop("hs_merged_object_ids")
            .map(|m| m.split(';').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    }

    /// Company ids from a single read with `associations=companies`, primary first, deduplicated.
    pub fn company_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let results =
            self.associations.as_ref().and_then(|a| a.pointer("/companies/results")).and_then(Value::as_array);
        let mut items: Vec<(bool, String)> = results
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let id = r.get("id").and_then(Value::as_str)?.to_string();
                Some((r.get("type").and_then(Value::as_str) == Some("contact_to_company"), id))
            })
            .collect();
        items.sort_by_key(|(primary, _)| !primary);
        for (_, id) in items {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

/// An association to write with a create (`associations[]` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociationSpec {
    pub to_id: String,
    pub type_id: u32,
}

impl AssociationSpec {
    /// Contact → company, primary (type 1).
    pub fn primary_company(company_id: impl Into<String>) -> Self {
        Self { to_id: company_id.into(), type_id: 1 }
    }
    /// Note → contact (type 202).
    pub fn note_to_contact(contact_id: impl Into<String>) -> Self {
        Self { to_id: contact_id.into(), type_id: 202 }
    }
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({"to":{"id":self.to_id},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":self.type_id}]})
    }
}

/// A contact to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactInput {
    pub properties: BTreeMap<String, String>,
    pub associations: Vec<AssociationSpec>,
}

/// An update of a contact by record id (batch update needs record ids, not emails).
#[derive(Debug, Clone, PartialEq)]
pub struct ContactUpdate {
    pub id: String,
    pub properties: BTreeMap<String, String>,
}

/// An upsert keyed by email.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactUpsert {
    pub email: String,
    pub properties: BTreeMap<String, String>,
}

/// One input of a batch that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItemError {
    /// Index of the input in the slice the caller passed; `None` when HubSpot's error could not
    /// be tied to one input.
    pub index: Option<usize>,
    /// The input's id or email.
    pub key: Option<String>,
    pub error: HubSpotError,
}

/// Per-input outcome of a batch call (chunked by the client): every input is either among the
/// results or among the errors.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome<T> {
    pub results: Vec<T>,
    pub errors: Vec<BatchItemError>,
}

impl<T> Default for BatchOutcome<T> {
    fn default() -> Self {
        Self { results: Vec::new(), errors: Vec::new() }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or number id, got {other}"))),
    }
}

/// A property option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub display_order: Option<i32>,
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    #[serde(default)]
    pub archivable: bool,
    #[serde(default)]
    pub read_only_definition: bool,
    #[serde(default)]
    pub read_only_value: bool,
}

/// A property definition (<https://developers.hubspot.com/docs/api/crm/properties>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub field_type: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub modification_metadata: ModificationMetadata,
}

impl Property {
    /// HubSpot computes or owns the value: it can only be read.
    pub fn is_read_only(&self) -> bool {
        self.modification_metadata.read_only_value || self.calculated
    }
}

/// A property to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PropertyOption>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroup {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub display_order: Option<i32>,
}

/// A v3 list (`PublicObjectList`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotList {
    #[serde(deserialize_with = "string_or_number")]
    pub list_id: String,
    pub name: String,
    #[serde(default)]
    pub object_type_id: String,
    /// `MANUAL`, `SNAPSHOT` or `DYNAMIC`.
    pub processing_type: String,
    #[serde(default)]
    pub processing_status: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub additional_properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub filter_branch: Option<Value>,
}

impl HubSpotList {
    /// Membership writes work for MANUAL and SNAPSHOT lists only.
    pub fn is_static(&self) -> bool {
        self.processing_type != "DYNAMIC"
    }
}

/// One member of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMembership {
    #[serde(deserialize_with = "string_or_number")]
    pub record_id: String,
    #[serde(default)]
    pub membership_timestamp: Option<String>,
}

/// The answer of a membership write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChange {
    /// HubSpot's schema spells this `recordsIdsAdded`.
    #[serde(default, rename = "recordsIdsAdded", alias = "recordIdsAdded")]
    pub added: Vec<String>,
    #[serde(default, rename = "recordIdsRemoved")]
    pub removed: Vec<String>,
    #[serde(default, rename = "recordIdsMissing")]
    pub missing: Vec<String>,
}

/// A list a record belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordListMembership {
    #[serde(deserialize_with = "string_or_number")]
    pub list_id: String,
    #[serde(default)]
    pub list_version: Option<u64>,
    #[serde(default)]
    pub first_added_timestamp: Option<String>,
    #[serde(default)]
    pub last_added_timestamp: Option<String>,
}

/// A subscription type (`GET …/definitions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDefinition {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub is_active: bool,
}

/// One subscription status of an email (v4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    #[serde(default)]
    pub channel: Option<String>,
    pub subscriber_id_string: String,
    #[serde(deserialize_with = "string_or_number")]
    pub subscription_id: String,
    /// `SUBSCRIBED`, `UNSUBSCRIBED` or `NOT_SPECIFIED`.
    pub status: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub legal_basis: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// "Unsubscribed from all" state of an email (v4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeAllStatus {
    pub subscriber_id_string: String,
    #[serde(default)]
    pub wide_status_type: Option<String>,
    pub status: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl UnsubscribeAllStatus {
    pub fn is_unsubscribed(&self) -> bool {
        self.status == "UNSUBSCRIBED"
    }
}

/// `GET /account-info/v3/details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    pub portal_id: u64,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub company_currency: Option<String>,
    #[serde(default)]
    pub ui_domain: Option<String>,
    #[serde(default)]
    pub data_hosting_location: Option<String>,
}

/// What HubSpot says about a set of credentials ([`crate::HubSpotClient::token_info`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// The portal (account) the token works in.
    #[serde(default)]
    pub hub_id: Option<u64>,
    /// The portal's domain, for OAuth installs (e.g. `example.com`).
    #[serde(default)]
    pub hub_domain: Option<String>,
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A note to create on a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteInput {
    pub contact_id: String,
    /// ISO-8601 or epoch ms (`hs_timestamp`).
    pub timestamp: String,
    pub body: String,
}
