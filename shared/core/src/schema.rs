//! The field schemas of both apps, as the config is validated and values are converted
//! against them (read with "refresh fields").

use serde::{Deserialize, Serialize};

/// A HubSpot property `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HsType {
    String,
    Number,
    Bool,
    Date,
    Datetime,
    Enumeration,
    /// Internal types (`json`, `object_coordinates`, `phone_number`): not mappable.
    #[serde(untagged)]
    Other(String),
}

impl HsType {
    pub fn parse(s: &str) -> HsType {
        match s {
            "string" => HsType::String,
            "number" => HsType::Number,
            "bool" => HsType::Bool,
            "date" => HsType::Date,
            "datetime" => HsType::Datetime,
            "enumeration" => HsType::Enumeration,
            other => HsType::Other(other.to_string()),
        }
    }
}

/// One option of a HubSpot enumeration property: the API reads and writes `value`; people see `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HsOption {
    pub label: String,
    pub value: String,
}

/// A HubSpot contact or company property definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HsProperty {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub hs_type: HsType,
    pub field_type: String,
    #[serde(default)]
    pub options: Vec<HsOption>,
    /// `modificationMetadata.readOnlyValue`: HubSpot computes it, the API cannot write it.
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub calculated: bool,
}

impl HsProperty {
    pub fn new(name: &str, hs_type: HsType, field_type: &str) -> Self {
        Self {
            name: name.to_string(),
            label: name.to_string(),
            hs_type,
            field_type: field_type.to_string(),
            options: Vec::new(),
            read_only: false,
            calculated: false,
        }
    }

    pub fn with_options(mut self, options: &[(&str, &str)]) -> Self {
        self.options = options.iter().map(|(v, l)| HsOption { value: v.to_string(), label: l.to_string() }).collect();
        self
    }

    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// A checkbox enumeration holds several `;`-separated values.
    pub fn is_multi_select(&self) -> bool {
        self.hs_type == HsType::Enumeration && self.field_type == "checkbox"
    }

    /// Only a source of data: HubSpot refuses API writes to it.
    pub fn is_writable(&self) -> bool {
        !self.read_only && !self.calculated
    }
}

/// A MailerLite field type (the API has no option sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MlType {
    Text,
    Number,
    Date,
}

/// A MailerLite field definition. `key` never changes on rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MlField {
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub ml_type: MlType,
}

impl MlField {
    pub fn new(key: &str, ml_type: MlType) -> Self {
        Self { key: key.to_string(), name: key.to_string(), ml_type }
    }
}

/// Both apps' schemas, as last read by "refresh fields".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldSchemas {
    pub hubspot_contact: Vec<HsProperty>,
    pub hubspot_company: Vec<HsProperty>,
    pub mailerlite: Vec<MlField>,
}

impl FieldSchemas {
    pub fn hubspot_property(&self, object: crate::HubSpotObject, name: &str) -> Option<&HsProperty> {
        let list = match object {
            crate::HubSpotObject::Contact => &self.hubspot_contact,
            crate::HubSpotObject::Company => &self.hubspot_company,
        };
        list.iter().find(|p| p.name == name)
    }

    pub fn mailerlite_field(&self, key: &str) -> Option<&MlField> {
        self.mailerlite.iter().find(|f| f.key == key)
    }
}
