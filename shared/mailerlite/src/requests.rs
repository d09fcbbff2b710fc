//! Request bodies. Field values: a JSON value sets the field, `Value::Null` clears it (omitting
//! a key leaves the stored value alone; MailerLite drops unknown keys silently, so validate keys
//! against `GET /fields` first).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::models::{Status, Timestamp};

/// `POST /subscribers`: create, or update the subscriber with this email non-destructively
/// (omitted fields kept; groups only added). MailerLite lowercases the email.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriberUpsert {
    pub email: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    /// Groups to add (never removes any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Omit to keep an existing subscriber's status (new ones become `active`). The API refuses
    /// to make unsubscribed/bounced/junk subscribers active ([`crate::Error::ReactivationRefused`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rest_time")]
    pub subscribed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rest_time")]
    pub unsubscribed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

impl SubscriberUpsert {
    pub fn new(email: impl Into<String>) -> Self {
        Self { email: email.into().trim().to_lowercase(), ..Default::default() }
    }

    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Clears a field (sends an explicit `null`).
    pub fn clear(mut self, key: impl Into<String>) -> Self {
        self.fields.insert(key.into(), Value::Null);
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    pub fn add_to_group(mut self, group_id: impl Into<String>) -> Self {
        self.groups.push(group_id.into());
        self
    }
}

/// Whether a write asks for a status MailerLite refuses to give an unsubscribed, bounced or
/// junk subscriber (so that a 422 answering it can be read as that refusal).
pub(crate) fn activates(status: Option<Status>) -> bool {
    matches!(status, Some(Status::Active | Status::Unconfirmed))
}

fn rest_time<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rest()),
        None => s.serialize_none(),
    }
}

/// What a `PUT` does to group membership. `PUT /subscribers/{id}` with a `groups` key REMOVES
/// the subscriber from every group not listed, so replacing must be asked for by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum GroupMembership {
    /// Leave membership as it is (the key is not sent).
    #[default]
    Keep,
    /// Make the subscriber a member of exactly these groups.
    ReplaceWith(Vec<String>),
}

/// `PUT /subscribers/{id}`: fields merge (`Value::Null` clears), `email` may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriberUpdate {
    pub email: Option<String>,
    pub fields: BTreeMap<String, Value>,
    pub status: Option<Status>,
    pub groups: GroupMembership,
}

impl SubscriberUpdate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    pub fn clear(mut self, key: impl Into<String>) -> Self {
        self.fields.insert(key.into(), Value::Null);
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into().trim().to_lowercase());
        self
    }

    /// Makes the subscriber a member of exactly `group_ids` (removing every other group).
    pub fn replace_groups_with(mut self, group_ids: Vec<String>) -> Self {
        self.groups = GroupMembership::ReplaceWith(group_ids);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(e) = &self.email {
            m.insert("email".into(), Value::String(e.clone()));
        }
        if !self.fields.is_empty() {
            m.insert("fields".into(), serde_json::to_value(&self.fields).unwrap_or(Value::Null));
        }
        if let Some(s) = self.status {
            m.insert("status".into(), Value::String(s.as_str().into()));
        }
        if let GroupMembership::ReplaceWith(ids) = &self.groups {
            m.insert("groups".into(), Value::Array(ids.iter().cloned().map(Value::String).collect()));
        }
        Value::Object(m)
    }
}

/// `POST /webhooks`. `batchable` must be true for `campaign.open`, `campaign.click` and
/// `subscriber.deleted`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewWebhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batchable: Option<bool>,
}

/// `PUT /webhooks/{id}`: every field is optional; the ones left out keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebhookUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batchable: Option<bool>,
}

/// One row of a group import.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportRow {
    pub email: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_sends_groups_only_when_replacing() {
        let keep = SubscriberUpdate::new().field("name", "Ada").clear("city");
        assert_eq!(keep.to_json(), serde_json::json!({"fields": {"city": null, "name": "Ada"}}));
        let replace = SubscriberUpdate::new().replace_groups_with(vec!["1".into()]);
        assert_eq!(replace.to_json(), serde_json::json!({"groups": ["1"]}));
    }

    #[test]
    fn upserts_lowercase_the_email_and_send_explicit_nulls() {
        let u = SubscriberUpsert::new(" Ada@Example.COM ").field("name", "Ada").clear("city");
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"email": "ada@example.com", "fields": {"city": null, "name": "Ada"}})
        );
    }
}
