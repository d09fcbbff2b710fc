//! The simulated portal's data: records in ordered maps keyed by numeric id (pages cost
//! O(page · log n)), an email index, merge aliases, lists, schemas and subscription statuses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::lists::List;
use super::properties::{Schema, company_schema, contact_schema, note_schema};
use super::time_fmt::iso_ms;

/// Contacts, companies and notes share one record shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    /// Non-empty values only (an empty value is "no value"); every value is a string.
    pub props: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived: bool,
    pub archived_ms: Option<i64>,
    /// Contacts: associated company ids; notes: associated contact ids.
    pub assoc: BTreeSet<u64>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }

    /// All of this contact's addresses, lowercased: primary then additional.
    pub fn emails(&self) -> Vec<String> {
        let mut v: Vec<String> = self.get("email").map(|e| e.trim().to_lowercase()).into_iter().collect();
        if let Some(extra) = self.get("hs_additional_emails") {
            v.extend(extra.split(';').filter(|s| !s.is_empty()).map(|s| s.trim().to_lowercase()));
        }
        v
    }
}

/// Which properties a read returns.
#[derive(Debug, Clone, PartialEq)]
pub enum PropSelection {
    /// The object's default set (contacts: `createdate, email, firstname, hs_object_id, lastmodifieddate, lastname`).
    Default,
    /// These names; unknown names are silently omitted, empty ones come back as `null`.
    Names(Vec<String>),
    /// Every property that has a value (responses to writes).
    AllSet,
}

impl PropSelection {
    /// From `properties` query values (comma-separated, repeated, or both).
    pub fn from_query(values: &[String]) -> Self {
        let names: Vec<String> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() { Self::Default } else { Self::Names(names) }
    }

    /// From a JSON `properties` array of a request body.
    pub fn from_body(v: Option<&Value>) -> Self {
        let names: Vec<String> = v
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        if names.is_empty() { Self::Default } else { Self::Names(names) }
    }
}

/// The object types the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectType {
    Contacts,
    Companies,
    Notes,
}

impl ObjectType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contacts" | "contact" | "0-1" => Some(Self::Contacts),
            "companies" | "company" | "0-2" => Some(Self::Companies),
            "notes" | "note" | "0-46" => Some(Self::Notes),
            _ => None,
        }
    }

    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
            Self::Companies => &["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
            Self::Notes => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        }
    }

    /// The property that holds the modification time.
    pub fn modified_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            Self::Companies | Self::Notes => "hs_lastmodifieddate",
        }
    }

    pub fn created_property(self) -> &'static str {
        match self {
            Self::Contacts | Self::Companies => "createdate",
            Self::Notes => "hs_createdate",
        }
    }

    /// The record-not-found wording of batch reads.
    pub fn upper_name(self) -> &'static str {
        match self {
            Self::Contacts => "CONTACT",
            Self::Companies => "COMPANY",
            Self::Notes => "NOTE",
        }
    }
}

/// One communication subscription status of one email address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    pub status: String,
    pub legal_basis: Option<String>,
    pub legal_basis_explanation: Option<String>,
    pub source: String,
    pub timestamp_ms: i64,
}

/// The portal. Serializable for snapshots (`super::snapshot`); the email index is derived and
/// rebuilt on restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Db {
    pub contacts: BTreeMap<u64, Record>,
    /// Every primary and additional email of a live contact (lowercased) → its id.
    #[serde(skip)]
    pub email_index: HashMap<String, u64>,
    /// Merged-away contact id → the id that absorbed it.
    pub aliases: HashMap<u64, u64>,
    pub companies: BTreeMap<u64, Record>,
    pub notes: BTreeMap<u64, Record>,
    pub lists: BTreeMap<u64, List>,
    pub schemas: HashMap<ObjectType, Schema>,
    /// email (lowercased) → subscription id → status.
    pub subscriptions: HashMap<String, BTreeMap<u64, SubscriptionStatus>>,
    /// email (lowercased) → time of "unsubscribe from all".
    pub unsubscribed_all: HashMap<String, i64>,
    /// Emails removed by a GDPR delete; they cannot be used again.
    pub blocklist: HashSet<String>,
    pub next_contact_id: u64,
    pub next_company_id: u64,
    pub next_note_id: u64,
    pub next_list_id: u64,
    /// Last timestamp handed out, so that two writes never share a `lastmodifieddate` by accident
    /// of ordering within the same process (ties still happen inside one batch, as in HubSpot).
    pub last_ms: i64,
    /// Bumped on every mutable access through `HubSpotState::db()` (see `super::snapshot`), so a
    /// snapshot saver can tell an unchanged portal without comparing it.
    #[serde(skip)]
    pub generation: u64,
}

/// The subscription types of the portal (`GET …/definitions`): (id, name, description, purpose, isDefault).
pub const SUBSCRIPTION_TYPES: [(u64, &str, &str, &str, bool); 2] = [
    (39644612, "Marketing Information", "Marketing offers and updates.", "Marketing", true),
    (39644613, "One to One", "One to one emails", "Sales", false),
];

impl Db {
    pub fn new(now: i64) -> Self {
        let mut schemas = HashMap::new();
        schemas.insert(ObjectType::Contacts, contact_schema(now));
        schemas.insert(ObjectType::Companies, company_schema(now));
        schemas.insert(ObjectType::Notes, note_schema(now));
        Self {
            contacts: BTreeMap::new(),
            email_index: HashMap::new(),
            aliases: HashMap::new(),
            companies: BTreeMap::new(),
            notes: BTreeMap::new(),
            lists: BTreeMap::new(),
            schemas,
            subscriptions: HashMap::new(),
            unsubscribed_all: HashMap::new(),
            blocklist: HashSet::new(),
            // HubSpot ids are large numbers; start somewhere realistic.
            next_contact_id: 101,
            next_company_id: 5_000_001,
            next_note_id: 80_000_001,
            next_list_id: 1,
            last_ms: 0,
            generation: 0,
        }
    }

    /// The current time in ms, never earlier than a previous stamp.
    pub fn stamp(&mut self) -> i64 {
        let now = crate::common::now_ms().max(self.last_ms);
        self.last_ms = now;
        now
    }

    pub fn schema(&self, t: ObjectType) -> &Schema {
        &self.schemas[&t]
    }

    pub fn store(&self, t: ObjectType) -> &BTreeMap<u64, Record> {
        match t {
            ObjectType::Contacts => &self.contacts,
            ObjectType::Companies => &self.companies,
            ObjectType::Notes => &self.notes,
        }
    }

    pub fn store_mut(&mut self, t: ObjectType) -> &mut BTreeMap<u64, Record> {
        match t {
            ObjectType::Contacts => &mut self.contacts,
            ObjectType::Companies => &mut self.companies,
            ObjectType::Notes => &mut self.notes,
        }
    }

    /// Follows merge aliases to the live id (or returns `id`).
    pub fn resolve_contact(&self, id: u64) -> u64 {
        let mut id = id;
        for _ in 0..300 {
            match self.aliases.get(&id) {
                Some(&next) => id = next,
                None => break,
            }
        }
        id
    }

    /// A live contact with this email as primary or additional address (UNCONFIRMED that
    /// additional emails resolve on reads; they do count for uniqueness).
    pub fn contact_by_email(&self, email: &str) -> Option<u64> {
        self.email_index.get(&email.trim().to_lowercase()).copied()
    }

    pub fn index_emails(&mut self, id: u64) {
        if let Some(r) = self.contacts.get(&id) {
            for e in r.emails() {
                self.email_index.insert(e, id);
            }
        }
    }

    pub fn unindex_emails(&mut self, id: u64) {
        if let Some(r) = self.contacts.get(&id) {
            for e in r.emails() {
                if self.email_index.get(&e) == Some(&id) {
                    self.email_index.remove(&e);
                }
            }
        }
    }

    /// Renders a record as `SimplePublicObject`.
    pub fn render(&self, t: ObjectType, r: &Record, sel: &PropSelection) -> Value {
        let mut props = Map::new();
        match sel {
            PropSelection::AllSet => {
                for (k, v) in &r.props {
                    props.insert(k.clone(), Value::String(v.clone()));
                }
            }
            PropSelection::Default => {
                for k in t.default_properties() {
                    props.insert(k.to_string(), r.props.get(*k).map_or(Value::Null, |v| Value::String(v.clone())));
                }
            }
            PropSelection::Names(names) => {
                let schema = self.schema(t);
                for k in names {
                    if schema.properties.contains_key(k) {
                        props.insert(k.clone(), r.props.get(k).map_or(Value::Null, |v| Value::String(v.clone())));
                    }
                }
            }
        }
        let mut v = json!({
            "id": r.id.to_string(),
            "properties": props,
            "createdAt": iso_ms(r.created_ms),
            "updatedAt": iso_ms(r.updated_ms),
            "archived": r.archived,
        });
        if let Some(at) = r.archived_ms {
            v["archivedAt"] = Value::String(iso_ms(at));
        }
        v
    }

    /// The `associations.companies` block of a single contact read: one entry per association label.
    pub fn render_company_associations(&self, r: &Record) -> Value {
        let primary = r.get("associatedcompanyid").and_then(|v| v.parse::<u64>().ok());
        let mut results = Vec::new();
        for c in &r.assoc {
            if primary == Some(*c) {
                results.push(json!({"id":c.to_string(),"type":"contact_to_company"}));
            }
            results.push(json!({"id":c.to_string(),"type":"contact_to_company_unlabeled"}));
        }
        json!({"companies":{"results":results}})
    }
}
