//! The mapped fields against both apps' schemas as they are now: the config's validation
//! (shared/core) run on fresh schemas, what changed since hmsync last read them (the values it
//! checks before sending), and MailerLite values that match no option of a property they write.

use std::collections::BTreeSet;

use hmsync_core::{FieldMapping, FieldSchemas, HsProperty, MlField, option_mapping, validate_config, writes_hubspot};

use crate::api::{HubSpotApi, MailerLiteApi};
use crate::catalog::{OPTION_SAMPLE, first_subscribers};
use crate::engine::EngineError;

use super::{Check, Context, Finding, Severity, api_failure, lowercase_first};

const REFRESH: &str =
    "Refresh the fields (POST /connections/{id}/fields/refresh, or Refresh fields on the setup screen)";

pub(super) async fn check(
    cx: &Context<'_>,
    hs: Option<&dyn HubSpotApi>,
    ml: Option<&dyn MailerLiteApi>,
) -> Vec<Finding> {
    let c = Check::Fields;
    let (Some(hs), Some(ml)) = (hs, ml) else {
        return vec![
            Finding::new(
                c,
                Severity::Unknown,
                "The fields were not compared: an app's credentials do not work (see above).",
            )
            .action("Fix the credentials, then run the doctor again."),
        ];
    };
    let fresh = match read_schemas(hs, ml).await {
        Ok(schemas) => schemas,
        Err(e) => return vec![api_failure(c, "reading the apps' fields", &e)],
    };
    let config = &cx.conn.config;
    let problems = validate_config(config, Some(&fresh));
    let mut findings: Vec<Finding> = problems
        .iter()
        .map(|p| {
            Finding::new(c, Severity::Error, format!("{} ({})", p.message, p.field))
                .feature(match mapping_at(config.mappings.as_slice(), &p.field) {
                    Some(m) => format!(
                        "Mapping {} ↔ {} cannot sync; activating, saving the config and refreshing the fields refuse it until it is fixed.",
                        m.hubspot_property, m.mailerlite_field
                    ),
                    None => "Activating, saving the config and refreshing the fields refuse it until it is fixed.".into(),
                })
                .action(p.fix.clone())
        })
        .collect();
    let broken: BTreeSet<usize> = problems.iter().filter_map(|p| mapping_index(&p.field)).collect();
    let mut option_mappings = Vec::new();
    for (i, m) in config.mappings.iter().enumerate().filter(|(i, _)| !broken.contains(i)) {
        let (Some(property), Some(field)) = (
            fresh.hubspot_property(m.hubspot_object, &m.hubspot_property),
            fresh.mailerlite_field(&m.mailerlite_field),
        ) else {
            continue;
        };
        if let Some(stored) = &cx.conn.schemas {
            findings.extend(drift(m, stored, property, field));
        }
        if writes_hubspot(config.direction, m) && !property.options.is_empty() {
            option_mappings.push((i, property, field));
        }
    }
    if !option_mappings.is_empty() {
        findings.extend(unmatched_values(ml, &option_mappings, config.mappings.as_slice()).await);
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            c,
            format!(
                "All {} mapped fields exist in both apps, their types convert, and nothing changed since hmsync last read them.",
                config.mappings.len()
            ),
        ));
    }
    findings
}

async fn read_schemas(hs: &dyn HubSpotApi, ml: &dyn MailerLiteApi) -> Result<FieldSchemas, EngineError> {
    Ok(FieldSchemas {
        hubspot_contact: hs.contact_properties().await?,
        hubspot_company: hs.company_properties().await?,
        mailerlite: ml.fields().await?,
    })
}

/// `mappings[3].mailerlite_field` → 3.
fn mapping_index(field: &str) -> Option<usize> {
    field.strip_prefix("mappings[")?.split(']').next()?.parse().ok()
}

fn mapping_at<'a>(mappings: &'a [FieldMapping], field: &str) -> Option<&'a FieldMapping> {
    mappings.get(mapping_index(field)?)
}

fn type_of(p: &HsProperty) -> String {
    let kind = serde_json::to_value(&p.hs_type).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    format!("{kind} ({})", p.field_type)
}

/// What changed in a mapped property or field since hmsync last read the schemas: hmsync
/// converts and checks values against those until the fields are refreshed.
fn drift(m: &FieldMapping, stored: &FieldSchemas, property: &HsProperty, field: &MlField) -> Vec<Finding> {
    let c = Check::Fields;
    let mut findings = Vec::new();
    if let Some(old) = stored.hubspot_property(m.hubspot_object, &m.hubspot_property) {
        if old.hs_type != property.hs_type || old.field_type != property.field_type {
            findings.push(
                Finding::new(
                    c,
                    Severity::Warning,
                    format!(
                        "HubSpot property {} changed from {} to {} since hmsync last read the fields.",
                        property.name,
                        type_of(old),
                        type_of(property)
                    ),
                )
                .feature(format!(
                    "hmsync still converts {}'s values as {}: HubSpot may refuse them, and each such contact gets an error.",
                    property.name,
                    type_of(old)
                ))
                .action(format!("{REFRESH}, then check the mapping {} ↔ {}.", m.hubspot_property, m.mailerlite_field)),
            );
        }
        let now: BTreeSet<&str> = property.options.iter().map(|o| o.value.as_str()).collect();
        let before: BTreeSet<&str> = old.options.iter().map(|o| o.value.as_str()).collect();
        let removed: Vec<&str> = before.difference(&now).copied().collect();
        let added: Vec<&str> = now.difference(&before).copied().collect();
        if !removed.is_empty() {
            findings.push(
                Finding::new(
                    c,
                    Severity::Warning,
                    format!(
                        "Options of HubSpot property {} were removed since hmsync last read the fields: {}.",
                        property.name,
                        removed.join(", ")
                    ),
                )
                .feature("MailerLite values of those options still pass hmsync's check and HubSpot refuses them: each such contact gets an error.")
                .action(format!(
                    "Add the options back in HubSpot, or {} and correct those values in MailerLite.",
                    lowercase_first(REFRESH)
                )),
            );
        }
        if !added.is_empty() {
            findings.push(
                Finding::new(
                    c,
                    Severity::Warning,
                    format!(
                        "HubSpot property {} has new options since hmsync last read the fields: {}.",
                        property.name,
                        added.join(", ")
                    ),
                )
                .feature("Values of the new options are refused by hmsync as \"not an option\" until it reads the fields again.")
                .action(format!("{REFRESH}.")),
            );
        }
    }
    if let Some(old) = stored.mailerlite_field(&m.mailerlite_field)
        && old.ml_type != field.ml_type
    {
        let name = |t| serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        findings.push(
            Finding::new(
                c,
                Severity::Warning,
                format!(
                    "MailerLite field {} changed from {} to {} since hmsync last read the fields.",
                    field.key,
                    name(old.ml_type),
                    name(field.ml_type)
                ),
            )
            .feature(format!("hmsync still converts {}'s values as {}.", field.key, name(old.ml_type)))
            .action(format!("{REFRESH}, then check the mapping {} ↔ {}.", m.hubspot_property, m.mailerlite_field)),
        );
    }
    findings
}

/// MailerLite values of the first subscribers that match no option of the HubSpot property
/// they are written to (counted, never shown: values can be personal).
async fn unmatched_values(
    ml: &dyn MailerLiteApi,
    option_mappings: &[(usize, &HsProperty, &MlField)],
    mappings: &[FieldMapping],
) -> Vec<Finding> {
    let c = Check::Fields;
    let sample = match first_subscribers(ml).await {
        Ok(sample) => sample,
        Err(e) => return vec![api_failure(c, "reading MailerLite subscribers' values", &e.into())],
    };
    let mut findings = Vec::new();
    for (i, property, field) in option_mappings {
        let values: Vec<serde_json::Value> =
            sample.iter().map(|r| r.fields.get(&field.key).cloned().unwrap_or_default()).collect();
        let Ok(mapping) = option_mapping(property, field, true, &values) else { continue };
        if mapping.unmatched.is_empty() {
            continue;
        }
        let subscribers: u64 =
            mapping.mailerlite_values.iter().filter(|v| v.hubspot_value.is_none()).map(|v| v.subscribers).sum();
        let m = &mappings[*i];
        findings.push(
            Finding::new(
                c,
                Severity::Warning,
                format!(
                    "{} values of MailerLite field {}, held by {subscribers} of the first {} subscribers, match no option of HubSpot property {}.",
                    mapping.unmatched.len(),
                    field.key,
                    sample.len().min(OPTION_SAMPLE),
                    property.name
                ),
            )
            .feature("Those contacts get an error instead of the value; the rest of each contact still syncs.")
            .action(format!(
                "See the values with POST /connections/{{id}}/fields/options (mapping {} ↔ {}), then add them as options in HubSpot or correct them in MailerLite.",
                m.hubspot_property, m.mailerlite_field
            )),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_mapping_by_index() {
        assert_eq!(mapping_index("mappings[12].mailerlite_field"), Some(12));
        assert_eq!(mapping_index("name"), None);
        let mappings = vec![FieldMapping::new("firstname", "name")];
        assert_eq!(mapping_at(&mappings, "mappings[0].direction").map(|m| m.mailerlite_field.as_str()), Some("name"));
        assert!(mapping_at(&mappings, "mappings[1].direction").is_none());
    }
}
