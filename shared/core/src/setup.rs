//! What the setup screens offer before anything is saved: the mappings a new connection starts
//! with (the obvious default pairs and same-named custom fields), and how the values of an
//! option property map between the apps, with the MailerLite values that match no option.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConnectionConfig, Direction, FieldMapping, HubSpotObject, Side};
use crate::schema::{FieldSchemas, HsProperty, MlField};
use crate::validate::validate_config;
use crate::value::{Conversion, HsKind};

/// HubSpot's default contact properties and the MailerLite default fields they are (HubSpot
/// property name, MailerLite field key).
pub const DEFAULT_PAIRS: [(&str, &str); 9] = [
    ("firstname", "name"),
    ("lastname", "last_name"),
    ("company", "company"),
    ("city", "city"),
    ("country", "country"),
    ("phone", "phone"),
    ("mobilephone", "phone"),
    ("state", "state"),
    ("zip", "z_i_p"),
];

/// A name compared loosely: lowercase letters and digits only (`Signup date`, `signup_date`
/// and `signupDate` are the same name).
fn loose(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The direction a property allows: read-only and calculated properties (HubSpot computes them)
/// can only be a source.
fn direction_for(property: &HsProperty) -> Direction {
    if property.is_writable() { Direction::TwoWay } else { Direction::HubSpotToMailerLite }
}

/// The mappings a new connection starts with, in the order of the apps' fields: each default
/// pair both apps have, then each MailerLite custom field whose key or name is a HubSpot contact
/// property's name or label. Only pairs whose types convert; the email is never mapped; each
/// field and property is used once; read-only properties flow HubSpot → MailerLite. The result
/// passes [`validate_config`] with these schemas.
pub fn suggest_mappings(schemas: &FieldSchemas) -> Vec<FieldMapping> {
    let mut used_hs: BTreeSet<String> = BTreeSet::new();
    let mut used_ml: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    let mut take = |property: &HsProperty, field: &MlField, out: &mut Vec<FieldMapping>| {
        let email = property.name.eq_ignore_ascii_case("email") || field.key.eq_ignore_ascii_case("email");
        let converts = HsKind::of(property).is_some_and(|k| k.converts_to(field.ml_type));
        if email || !converts || used_hs.contains(&property.name) || used_ml.contains(&field.key) {
            return;
        }
        used_hs.insert(property.name.clone());
        used_ml.insert(field.key.clone());
        out.push(FieldMapping::new(&property.name, &field.key).with_direction(direction_for(property)));
    };
    for (property, field) in DEFAULT_PAIRS {
        if let (Some(p), Some(f)) =
            (schemas.hubspot_property(HubSpotObject::Contact, property), schemas.mailerlite_field(field))
        {
            take(p, f, &mut out);
        }
    }
    for field in &schemas.mailerlite {
        let names = [loose(&field.key), loose(&field.name)];
        let same = |p: &&HsProperty| names.contains(&loose(&p.name)) || names.contains(&loose(&p.label));
        let matches: Vec<&HsProperty> = schemas.hubspot_contact.iter().filter(same).collect();
        // The property named exactly like the field first, then one labelled like it.
        if let Some(p) = matches.iter().find(|p| loose(&p.name) == names[0]).or_else(|| matches.first()) {
            take(p, field, &mut out);
        }
    }
    // What validation would still refuse (nothing, by construction) is left out all the same.
    let mut config = ConnectionConfig::new("suggestions");
    config.mappings = out;
    let refused: BTreeSet<usize> = validate_config(&config, Some(schemas))
        .iter()
        .filter_map(|p| p.field.strip_prefix("mappings[")?.split(']').next()?.parse().ok())
        .collect();
    config.mappings.into_iter().enumerate().filter(|(i, _)| !refused.contains(i)).map(|(_, m)| m).collect()
}

/// One option of a HubSpot property and what MailerLite receives for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptionValue {
    /// The option's internal value (what HubSpot's API reads and writes).
    pub value: String,
    /// What people see in HubSpot.
    pub label: String,
    /// What the sync writes to the MailerLite field for it.
    pub mailerlite_value: String,
}

/// One value found in the MailerLite field and what HubSpot would receive for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailerLiteValue {
    pub value: String,
    /// How many of the subscribers read hold it.
    pub subscribers: u64,
    /// The option value HubSpot receives; `null` when the value matches no option (the sync
    /// records an error for each such contact instead of writing it).
    pub hubspot_value: Option<String>,
}

/// How the values of an option property map between the apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptionMapping {
    pub hubspot_property: String,
    pub mailerlite_field: String,
    /// Every option of the property, in HubSpot's order.
    pub options: Vec<OptionValue>,
    /// The distinct values of the MailerLite field among the subscribers read, most frequent
    /// first; only shown when MailerLite may write the property.
    pub mailerlite_values: Vec<MailerLiteValue>,
    /// MailerLite values that match no option (a subset of `mailerlite_values`).
    pub unmatched: Vec<String>,
}

/// Why an option mapping cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionMappingError {
    #[error("HubSpot property \"{0}\" has no options (it is not a dropdown, radio or checkbox property).")]
    NotAnOptionProperty(String),
    #[error("HubSpot property \"{property}\" cannot be converted to MailerLite field \"{field}\".")]
    NoConversion { property: String, field: String },
}

/// How `property`'s options map to `field`, and which of the MailerLite `values` (as read from
/// subscribers) match no option. `from_mailerlite`: whether the mapping lets MailerLite write
/// the property (otherwise the MailerLite values do not matter and are not listed).
pub fn option_mapping<'a>(
    property: &HsProperty,
    field: &MlField,
    from_mailerlite: bool,
    values: impl IntoIterator<Item = &'a Value>,
) -> Result<OptionMapping, OptionMappingError> {
    let conversion = Conversion::new(property, field)
        .map_err(|_| OptionMappingError::NoConversion { property: property.name.clone(), field: field.key.clone() })?;
    if !matches!(conversion.kind, HsKind::Select | HsKind::MultiSelect) || property.options.is_empty() {
        return Err(OptionMappingError::NotAnOptionProperty(property.name.clone()));
    }
    let options = property
        .options
        .iter()
        .map(|o| OptionValue {
            value: o.value.clone(),
            label: o.label.clone(),
            mailerlite_value: conversion.hs_to_ml(Some(&o.value)).ok().flatten().unwrap_or_default(),
        })
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    if from_mailerlite {
        for v in values {
            if let Some(norm) = conversion.norm_ml(v) {
                *counts.entry(norm).or_default() += 1;
            }
        }
    }
    let mut mailerlite_values: Vec<MailerLiteValue> = counts
        .into_iter()
        .map(|(value, subscribers)| MailerLiteValue {
            hubspot_value: conversion.ml_to_hs(Some(&value)).ok().flatten(),
            value,
            subscribers,
        })
        .collect();
    mailerlite_values.sort_by(|a, b| b.subscribers.cmp(&a.subscribers).then_with(|| a.value.cmp(&b.value)));
    let unmatched = mailerlite_values.iter().filter(|v| v.hubspot_value.is_none()).map(|v| v.value.clone()).collect();
    Ok(OptionMapping {
        hubspot_property: property.name.clone(),
        mailerlite_field: field.key.clone(),
        options,
        mailerlite_values,
        unmatched,
    })
}

/// Whether a mapping lets MailerLite write its HubSpot property under the connection's direction.
pub fn writes_hubspot(config_direction: Direction, mapping: &FieldMapping) -> bool {
    mapping.hubspot_object == HubSpotObject::Contact
        && config_direction.allows_from(Side::MailerLite)
        && mapping.direction.allows_from(Side::MailerLite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{HsType, MlType};

    fn schemas() -> FieldSchemas {
        let text = |n: &str, label: &str| {
            let mut p = HsProperty::new(n, HsType::String, "text");
            p.label = label.into();
            p
        };
        let mut ml_named = MlField::new("signup", MlType::Date);
        ml_named.name = "Signup date".into();
        FieldSchemas {
            hubspot_contact: vec![
                text("email", "Email"),
                text("firstname", "First Name"),
                text("lastname", "Last Name"),
                text("city", "City"),
                HsProperty::new("employees", HsType::Number, "number"),
                HsProperty::new("vip", HsType::Bool, "booleancheckbox"),
                HsProperty::new("signup_date", HsType::Date, "date"),
                HsProperty::new("lead_score", HsType::Number, "calculation_equation").read_only(),
                HsProperty::new("industry_segment", HsType::Enumeration, "select")
                    .with_options(&[("retail", "Retail"), ("software", "Software")]),
            ],
            hubspot_company: vec![],
            mailerlite: vec![
                MlField::new("email", MlType::Text),
                MlField::new("name", MlType::Text),
                MlField::new("last_name", MlType::Text),
                MlField::new("city", MlType::Text),
                MlField::new("vip", MlType::Date),
                MlField::new("employees", MlType::Number),
                ml_named,
                MlField::new("lead_score", MlType::Number),
                MlField::new("industry", MlType::Text),
            ],
        }
    }

    #[test]
    fn new_connections_start_with_the_default_pairs_and_same_named_fields() {
        let s = schemas();
        let suggested = suggest_mappings(&s);
        let pairs: Vec<(&str, &str, Direction)> =
            suggested.iter().map(|m| (m.hubspot_property.as_str(), m.mailerlite_field.as_str(), m.direction)).collect();
        assert_eq!(
            pairs,
            vec![
                ("firstname", "name", Direction::TwoWay),
                ("lastname", "last_name", Direction::TwoWay),
                ("city", "city", Direction::TwoWay),
                // vip: a yes/no property does not convert to a MailerLite date field.
                ("employees", "employees", Direction::TwoWay),
                ("signup_date", "signup", Direction::TwoWay),
                ("lead_score", "lead_score", Direction::HubSpotToMailerLite),
            ]
        );
        let mut config = ConnectionConfig::new("x");
        config.mappings = suggested;
        assert_eq!(validate_config(&config, Some(&s)), vec![]);
    }

    #[test]
    fn option_values_map_by_label_and_unmatched_mailerlite_values_are_named() {
        let s = schemas();
        let property = s.hubspot_property(HubSpotObject::Contact, "industry_segment").unwrap();
        let field = s.mailerlite_field("industry").unwrap();
        let values = [json!("Retail"), json!("software"), json!("Aerospace"), json!("Aerospace"), json!(null)];
        let m = option_mapping(property, field, true, &values).unwrap();
        assert_eq!(m.options[0].mailerlite_value, "Retail");
        assert_eq!(m.options[1].value, "software");
        let found: Vec<(&str, u64, Option<&str>)> =
            m.mailerlite_values.iter().map(|v| (v.value.as_str(), v.subscribers, v.hubspot_value.as_deref())).collect();
        assert_eq!(
            found,
            vec![("Aerospace", 2, None), ("Retail", 1, Some("retail")), ("software", 1, Some("software"))]
        );
        assert_eq!(m.unmatched, vec!["Aerospace".to_string()]);
        // One-way from HubSpot: MailerLite's values never reach the property.
        assert!(option_mapping(property, field, false, &values).unwrap().mailerlite_values.is_empty());
        let city = s.hubspot_property(HubSpotObject::Contact, "firstname").unwrap();
        assert_eq!(
            option_mapping(city, field, true, &values),
            Err(OptionMappingError::NotAnOptionProperty("firstname".into()))
        );
    }
}
