//! Validation of a connection config against both apps' field schemas. Every problem is
//! returned (not just the first), each naming the field and the fix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ConnectionConfig, Direction, HubSpotObject, HubSpotRule, MailerLiteRule, Side};
use crate::schema::FieldSchemas;
use crate::value::HsKind;

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The JSON path of the offending value, e.g. `mappings[2].direction`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.field, self.message, self.fix)
    }
}

/// The legal bases HubSpot accepts with a communication-preferences change.
pub const LEGAL_BASES: [&str; 7] = [
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "PERFORMANCE_OF_CONTRACT",
    "CONSENT_WITH_NOTICE",
    "NON_GDPR",
    "PROCESS_AND_STORE",
    "LEGITIMATE_INTEREST_OTHER",
];

/// Checks `config`; with `schemas` (after "refresh fields") also every mapping against both
/// apps' fields. An empty result means the config is valid.
pub fn validate_config(config: &ConnectionConfig, schemas: Option<&FieldSchemas>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String, fix: &str| {
        problems.push(ConfigProblem { field, message, fix: fix.to_string() })
    };

    if config.name.trim().is_empty() {
        problem("name".into(), "The connection has no name.".into(), "Give it a name, e.g. \"Sales ↔ Newsletter\".");
    }
    if let HubSpotRule::Lists { list_ids } = &config.hubspot_rule
        && (list_ids.is_empty() || list_ids.iter().any(|l| l.trim().is_empty()))
    {
        problem(
            "hubspot_rule.list_ids".into(),
            "The HubSpot rule names no list.".into(),
            "Pick one or more HubSpot lists, or sync all contacts.",
        );
    }
    match &config.mailerlite_rule {
        MailerLiteRule::Groups { group_ids }
            if group_ids.is_empty() || group_ids.iter().any(|g| g.trim().is_empty()) =>
        {
            problem(
                "mailerlite_rule.group_ids".into(),
                "The MailerLite rule names no group.".into(),
                "Pick one or more MailerLite groups, or sync all subscribers.",
            );
        }
        MailerLiteRule::Segments { segment_ids }
            if segment_ids.is_empty() || segment_ids.iter().any(|s| s.trim().is_empty()) =>
        {
            problem(
                "mailerlite_rule.segment_ids".into(),
                "The MailerLite rule names no segment.".into(),
                "Pick one or more MailerLite segments, or sync all subscribers.",
            );
        }
        _ => {}
    }
    if config.target_group.as_deref().is_some_and(|g| g.trim().is_empty()) {
        problem(
            "target_group".into(),
            "The target group is empty.".into(),
            "Pick a MailerLite group or remove the target group.",
        );
    }
    if let Some(basis) = &config.engagement.legal_basis
        && !LEGAL_BASES.contains(&basis.as_str())
    {
        problem(
            "engagement.legal_basis".into(),
            format!("\"{basis}\" is not a HubSpot legal basis."),
            &format!("Use one of {}.", LEGAL_BASES.join(", ")),
        );
    }

    let mut hubspot_targets: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mailerlite_targets: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in config.mappings.iter().enumerate() {
        let at = |f: &str| format!("mappings[{i}].{f}");
        let name = format!("{} ↔ {}", m.hubspot_property, m.mailerlite_field);
        if m.hubspot_property.trim().is_empty() {
            problem(
                at("hubspot_property"),
                format!("Mapping {i} has no HubSpot property."),
                "Choose a HubSpot property.",
            );
            continue;
        }
        if m.mailerlite_field.trim().is_empty() {
            problem(
                at("mailerlite_field"),
                format!("Mapping {name} has no MailerLite field."),
                "Choose a MailerLite field.",
            );
            continue;
        }
        if m.hubspot_property.eq_ignore_ascii_case("email") || m.mailerlite_field.eq_ignore_ascii_case("email") {
            problem(
                at("hubspot_property"),
                format!("Mapping {name} maps the email."),
                "Remove it: email is the link key, matched automatically, and cannot be mapped.",
            );
            continue;
        }
        let from_hs = config.direction.allows_from(Side::HubSpot) && m.direction.allows_from(Side::HubSpot);
        let from_ml = config.direction.allows_from(Side::MailerLite) && m.direction.allows_from(Side::MailerLite);
        if !from_hs && !from_ml {
            problem(
                at("direction"),
                format!(
                    "Mapping {name} only flows {} but the connection only flows {}; nothing would sync.",
                    describe(m.direction),
                    describe(config.direction)
                ),
                "Make the mapping's direction agree with the connection's.",
            );
        }
        if m.hubspot_object == HubSpotObject::Company && m.direction.allows_from(Side::MailerLite) {
            problem(
                at("direction"),
                format!("Mapping {name} writes into a HubSpot company property."),
                "Company fields sync HubSpot → MailerLite only: set the direction to hubspot_to_mailerlite.",
            );
        }
        if let Some(winner) = m.conflict_winner
            && let Some(source) = m.direction.one_way_source()
            && winner != source
        {
            problem(
                at("conflict_winner"),
                format!("Mapping {name} is one-way from {source}, so {winner} can never win it."),
                "Remove the conflict winner of this mapping.",
            );
        }
        if from_ml
            && m.hubspot_object == HubSpotObject::Contact
            && let Some(first) = hubspot_targets.insert(&m.hubspot_property, i)
        {
            problem(
                at("hubspot_property"),
                format!("HubSpot property \"{}\" is written by mappings {first} and {i}.", m.hubspot_property),
                "Keep one mapping into this property, or make the other one HubSpot → MailerLite.",
            );
        }
        if from_hs && let Some(first) = mailerlite_targets.insert(&m.mailerlite_field, i) {
            problem(
                at("mailerlite_field"),
                format!("MailerLite field \"{}\" is written by mappings {first} and {i}.", m.mailerlite_field),
                "Keep one mapping into this field, or make the other one MailerLite → HubSpot.",
            );
        }

        let Some(schemas) = schemas else { continue };
        let object = match m.hubspot_object {
            HubSpotObject::Contact => "contact",
            HubSpotObject::Company => "company",
        };
        let property = schemas.hubspot_property(m.hubspot_object, &m.hubspot_property);
        let field = schemas.mailerlite_field(&m.mailerlite_field);
        if property.is_none() {
            problem(
                at("hubspot_property"),
                format!("HubSpot has no {object} property \"{}\".", m.hubspot_property),
                "Create the property in HubSpot and refresh fields, or pick an existing one.",
            );
        }
        if field.is_none() {
            problem(
                at("mailerlite_field"),
                format!("MailerLite has no field \"{}\".", m.mailerlite_field),
                "Create the field in MailerLite and refresh fields, or pick an existing one (use its key, e.g. last_name).",
            );
        }
        let (Some(property), Some(field)) = (property, field) else { continue };
        if !property.is_writable()
            && m.direction.allows_from(Side::MailerLite)
            && m.hubspot_object == HubSpotObject::Contact
        {
            problem(
                at("direction"),
                format!(
                    "HubSpot property \"{}\" is read-only (HubSpot calculates it), but mapping {name} writes into it.",
                    property.name
                ),
                "Set the direction to hubspot_to_mailerlite: read-only properties can only be a source.",
            );
        }
        match HsKind::of(property) {
            Some(kind) if kind.converts_to(field.ml_type) => {}
            _ => problem(
                at("mailerlite_field"),
                format!(
                    "HubSpot {} property \"{}\" cannot be converted to MailerLite {} field \"{}\".",
                    type_name(property),
                    property.name,
                    serde_json::to_value(field.ml_type)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    field.key
                ),
                "Map it to a MailerLite text field, or to a field of a compatible type (numbers ↔ number, dates ↔ date).",
            ),
        }
    }
    problems
}

fn describe(d: Direction) -> &'static str {
    match d {
        Direction::TwoWay => "both ways",
        Direction::HubSpotToMailerLite => "HubSpot → MailerLite",
        Direction::MailerLiteToHubSpot => "MailerLite → HubSpot",
    }
}

fn type_name(p: &crate::schema::HsProperty) -> String {
    match HsKind::of(p) {
        Some(HsKind::MultiSelect) => "multi-select".into(),
        Some(HsKind::Select) => "select".into(),
        _ => match &p.hs_type {
            crate::schema::HsType::Other(t) => t.clone(),
            t => serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        },
    }
}
