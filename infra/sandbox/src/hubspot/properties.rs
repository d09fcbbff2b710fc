//! Property definitions and HubSpot's validation of written values.
//! Documented at <https://developers.hubspot.com/docs/api/crm/properties>
//! and <https://developers.hubspot.com/docs/api/crm/contacts>.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::PropertyProblem;
use super::time_fmt::{iso_ms, parse_date, parse_instant_ms};
use crate::common::people::{INDUSTRY_OPTIONS, INTEREST_OPTIONS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "displayOrder")]
    pub display_order: i32,
    #[serde(default)]
    pub hidden: bool,
}

/// One property definition, stored the way the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub display_order: i32,
    pub has_unique_value: bool,
    pub calculated: bool,
    pub hubspot_defined: bool,
    pub read_only_value: bool,
    pub read_only_definition: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl PropertyDef {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "hidden": false,
            "formField": !self.read_only_value,
            "hasUniqueValue": self.has_unique_value,
            "calculated": self.calculated,
            "externalOptions": false,
            "hubspotDefined": self.hubspot_defined,
            "showCurrencySymbol": false,
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.read_only_definition,
                "readOnlyValue": self.read_only_value,
            },
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": false,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyGroup {
    pub name: String,
    pub label: String,
    pub display_order: i32,
}

impl PropertyGroup {
    pub fn to_json(&self) -> Value {
        json!({"name":self.name,"label":self.label,"displayOrder":self.display_order,"archived":false})
    }
}

/// The property schema of one object type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schema {
    pub properties: BTreeMap<String, PropertyDef>,
    pub groups: BTreeMap<String, PropertyGroup>,
}

struct Spec<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'a str,
    field_type: &'a str,
    group: &'a str,
    options: Vec<(&'a str, &'a str)>,
    hubspot_defined: bool,
    read_only: bool,
    calculated: bool,
    unique: bool,
}

fn spec<'a>(name: &'a str, label: &'a str, kind: &'a str, field_type: &'a str, group: &'a str) -> Spec<'a> {
    Spec {
        name,
        label,
        kind,
        field_type,
        group,
        options: Vec::new(),
        hubspot_defined: true,
        read_only: false,
        calculated: false,
        unique: false,
    }
}

impl<'a> Spec<'a> {
    fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    fn calculated(mut self) -> Self {
        self.calculated = true;
        self.read_only = true;
        self
    }
    fn custom(mut self) -> Self {
        self.hubspot_defined = false;
        self
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn options(mut self, o: &[(&'a str, &'a str)]) -> Self {
        self.options = o.to_vec();
        self
    }
}

fn build(specs: Vec<Spec<'_>>, groups: &[(&str, &str)], now: i64) -> Schema {
    let mut schema = Schema::default();
    for (i, (name, label)) in groups.iter().enumerate() {
        schema.groups.insert(
            name.to_string(),
            PropertyGroup { name: name.to_string(), label: label.to_string(), display_order: i as i32 },
        );
    }
    for (i, s) in specs.into_iter().enumerate() {
        let def = PropertyDef {
            name: s.name.into(),
            label: s.label.into(),
            kind: s.kind.into(),
            field_type: s.field_type.into(),
            group_name: s.group.into(),
            description: String::new(),
            options: s
                .options
                .iter()
                .enumerate()
                .map(|(j, (v, l))| PropertyOption {
                    label: l.to_string(),
                    value: v.to_string(),
                    description: String::new(),
                    display_order: j as i32,
                    hidden: false,
                })
                .collect(),
            display_order: i as i32,
            has_unique_value: s.unique,
            calculated: s.calculated,
            hubspot_defined: s.hubspot_defined,
            read_only_value: s.read_only,
            read_only_definition: s.hubspot_defined,
            created_ms: now,
            updated_ms: now,
        };
        schema.properties.insert(def.name.clone(), def);
    }
    schema
}

/// HubSpot's default lifecycle stages, in funnel order.
pub const LIFECYCLE_STAGES: [(&str, &str); 8] = [
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

const BOOL_OPTIONS: [(&str, &str); 2] = [("true", "Yes"), ("false", "No")];

/// The seeded contact schema: HubSpot defaults the sync touches plus the generated custom ones.
pub fn contact_schema(now: i64) -> Schema {
    let ci = "contactinformation";
    let specs = vec![
        spec("email", "Email", "string", "text", ci).unique(),
        spec("firstname", "First Name", "string", "text", ci),
        spec("lastname", "Last Name", "string", "text", ci),
        spec("company", "Company Name", "string", "text", ci),
        spec("phone", "Phone Number", "string", "phonenumber", ci),
        spec("city", "City", "string", "text", ci),
        spec("jobtitle", "Job Title", "string", "text", ci),
        spec("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", ci).options(&LIFECYCLE_STAGES),
        spec("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", "emailinformation")
            .options(&BOOL_OPTIONS)
            .read_only(),
        spec("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", ci).read_only(),
        spec("associatedcompanyid", "Primary Associated Company ID", "number", "number", ci),
        spec("createdate", "Create Date", "datetime", "date", ci).calculated(),
        spec("lastmodifieddate", "Last Modified Date", "datetime", "date", ci).calculated(),
        spec("hs_object_id", "Record ID", "number", "number", ci).calculated().unique(),
        spec("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", ci).read_only(),
        spec("industry_segment", "Industry segment", "enumeration", "select", ci).options(&INDUSTRY_OPTIONS).custom(),
        spec("interests", "Interests", "enumeration", "checkbox", ci).options(&INTEREST_OPTIONS).custom(),
        spec("employees", "Employees", "number", "number", ci).custom(),
        spec("signup_date", "Signup date", "date", "date", ci).custom(),
        spec("last_demo_at", "Last demo at", "datetime", "date", ci).custom(),
        spec("vip", "VIP", "bool", "booleancheckbox", ci).options(&BOOL_OPTIONS).custom(),
        spec("lead_score", "Lead score", "number", "calculation_equation", ci).calculated().custom(),
    ];
    build(specs, &[(ci, "Contact information"), ("emailinformation", "Email information")], now)
}

pub fn company_schema(now: i64) -> Schema {
    let ci = "companyinformation";
    let specs = vec![
        spec("name", "Company name", "string", "text", ci),
        spec("domain", "Company Domain Name", "string", "text", ci).unique(),
        spec("industry", "Industry", "string", "text", ci),
        spec("city", "City", "string", "text", ci),
        spec("numberofemployees", "Number of Employees", "number", "number", ci),
        spec("hs_object_id", "Record ID", "number", "number", ci).calculated().unique(),
        spec("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", ci).calculated(),
        spec("createdate", "Create Date", "datetime", "date", ci).calculated(),
    ];
    build(specs, &[(ci, "Company information")], now)
}

/// Notes are not exposed through the properties routes here; the set of writable note properties.
pub fn note_schema(now: i64) -> Schema {
    let specs = vec![
        spec("hs_timestamp", "Activity date", "datetime", "date", "engagement"),
        spec("hs_note_body", "Note body", "string", "html", "engagement"),
        spec("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "engagement"),
        spec("hs_attachment_ids", "Attachment IDs", "enumeration", "checkbox", "engagement"),
        spec("hs_object_id", "Record ID", "number", "number", "engagement").calculated(),
        spec("hs_createdate", "Create date", "datetime", "date", "engagement").calculated(),
        spec("hs_lastmodifieddate", "Last modified date", "datetime", "date", "engagement").calculated(),
    ];
    build(specs, &[("engagement", "Engagement")], now)
}

/// A validated change of one property: `None` clears it.
pub type Change = (String, Option<String>);

/// Validates the `properties` of a write against `schema`. `current` reads a property's current
/// value (for appends with a leading `;`). Any problem rejects the whole write.
pub fn validate(
    schema: &Schema,
    input: &serde_json::Map<String, Value>,
    current: &dyn Fn(&str) -> Option<String>,
    allow_read_only: bool,
) -> Result<Vec<Change>, Vec<PropertyProblem>> {
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    for (name, raw) in input {
        let Some(def) = schema.properties.get(name) else {
            problems.push(PropertyProblem {
                name: name.clone(),
                code: "PROPERTY_DOESNT_EXIST",
                message: format!("Property \"{name}\" does not exist"),
            });
            continue;
        };
        // JSON numbers and booleans are accepted and read as their string form; `null` is
        // UNCONFIRMED on the real service, so the sandbox rejects it (clear with "").
        let value = match raw {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                problems.push(PropertyProblem {
                    name: name.clone(),
                    code: "INVALID_PROPERTY_VALUE",
                    message: format!("{name} must be a string; clear a value with \"\""),
                });
                continue;
            }
        };
        if def.read_only_value && !allow_read_only {
            // UNCONFIRMED code and wording; the spec only says read-only properties "result in an error".
            problems.push(PropertyProblem {
                name: name.clone(),
                code: "READ_ONLY_VALUE",
                message: format!("\"{name}\" is a read only property; its value cannot be set."),
            });
            continue;
        }
        if value.is_empty() {
            changes.push((name.clone(), None));
            continue;
        }
        match normalize(def, &value, current(name).as_deref()) {
            Ok(v) => changes.push((name.clone(), Some(v))),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() { Ok(changes) } else { Err(problems) }
}

fn problem(def: &PropertyDef, code: &'static str, message: String) -> PropertyProblem {
    PropertyProblem { name: def.name.clone(), code, message }
}

/// Checks one non-empty value and returns the stored form.
fn normalize(def: &PropertyDef, value: &str, current: Option<&str>) -> Result<String, PropertyProblem> {
    match def.kind.as_str() {
        "number" => {
            let ok = !value.contains(',')
                && value.parse::<f64>().is_ok_and(f64::is_finite)
                && value.matches('.').count() <= 1
                && !value.contains(['e', 'E'])
                && !value.starts_with('+');
            if ok {
                Ok(value.to_string())
            } else {
                // UNCONFIRMED wording: the one public example is "discount was not a valid number".
                Err(problem(def, "INVALID_INTEGER", format!("{value} was not a valid number")))
            }
        }
        "bool" => match value {
            "true" | "false" => Ok(value.to_string()),
            _ => Err(problem(def, "INVALID_BOOLEAN", format!("{value} was not a valid boolean (true or false)"))),
        },
        "date" => parse_date(value).ok_or_else(|| {
            // UNCONFIRMED wording for dates that are not YYYY-MM-DD nor midnight-UTC ms.
            problem(
                def,
                "INVALID_DATE",
                format!("{value} is not a valid date; use YYYY-MM-DD or epoch milliseconds at midnight UTC"),
            )
        }),
        "datetime" => parse_instant_ms(value).map(iso_ms).ok_or_else(|| {
            problem(
                def,
                "INVALID_DATETIME",
                format!("{value} is not a valid datetime; use ISO 8601 or epoch milliseconds"),
            )
        }),
        "enumeration" if def.options.is_empty() => Ok(value.to_string()),
        "enumeration" => {
            let allowed = |v: &str| def.options.iter().any(|o| o.value == v);
            let invalid = |v: &str| {
                let list: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
                problem(def, "INVALID_OPTION", format!("{v} was not one of the allowed options: [{}]", list.join(", ")))
            };
            if def.field_type == "checkbox" {
                let (append, rest) = match value.strip_prefix(';') {
                    Some(rest) => (true, rest),
                    None => (false, value),
                };
                let mut items: Vec<String> = if append {
                    current.unwrap_or("").split(';').filter(|s| !s.is_empty()).map(str::to_string).collect()
                } else {
                    Vec::new()
                };
                for item in rest.split(';').filter(|s| !s.is_empty()) {
                    if !allowed(item) {
                        return Err(invalid(item));
                    }
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                }
                Ok(items.join(";"))
            } else if allowed(value) {
                Ok(value.to_string())
            } else {
                Err(invalid(value))
            }
        }
        _ if def.name == "email" => {
            if is_valid_email(value) {
                Ok(value.trim().to_string())
            } else {
                Err(problem(def, "INVALID_EMAIL", format!("Email address {value} is invalid")))
            }
        }
        _ => {
            if value.chars().count() > 65_536 {
                Err(problem(def, "INVALID_PROPERTY_VALUE", format!("{} is longer than 65536 characters", def.name)))
            } else {
                Ok(value.to_string())
            }
        }
    }
}

/// A pragmatic email check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
}

/// Index of a lifecycle stage in the funnel (`None` for custom or unknown values).
pub fn lifecycle_rank(v: &str) -> Option<usize> {
    LIFECYCLE_STAGES.iter().position(|(s, _)| *s == v)
}

/// A property created through the API, from its request body.
pub fn def_from_create(body: &Value, now: i64) -> Result<PropertyDef, String> {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let name = s("name").ok_or("name is required")?;
    let label = s("label").ok_or("label is required")?;
    let kind = s("type").ok_or("type is required")?;
    let field_type = s("fieldType").ok_or("fieldType is required")?;
    let group_name = s("groupName").ok_or("groupName is required")?;
    let valid_field_types: &[&str] = match kind.as_str() {
        "string" => &["text", "textarea", "html", "phonenumber", "file", "calculation_equation"],
        "number" => &["number", "calculation_equation"],
        "date" | "datetime" => &["date"],
        "enumeration" => &["select", "radio", "checkbox", "booleancheckbox", "calculation_equation"],
        "bool" => &["booleancheckbox", "calculation_equation"],
        _ => return Err(format!("{kind} is not a valid property type")),
    };
    if !valid_field_types.contains(&field_type.as_str()) {
        return Err(format!("fieldType {field_type} is not valid for a property of type {kind}"));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(format!("{name} is not a valid property name: use lowercase letters, digits and _"));
    }
    let options: Vec<PropertyOption> = match body.get("options") {
        Some(o) if !o.is_null() => serde_json::from_value(o.clone()).map_err(|e| format!("invalid options: {e}"))?,
        _ => Vec::new(),
    };
    if kind == "enumeration" && options.is_empty() && field_type != "booleancheckbox" {
        return Err("options are required for enumeration properties".into());
    }
    Ok(PropertyDef {
        name,
        label,
        kind,
        field_type,
        group_name,
        description: s("description").unwrap_or_default(),
        options,
        display_order: body.get("displayOrder").and_then(Value::as_i64).unwrap_or(-1) as i32,
        has_unique_value: body.get("hasUniqueValue").and_then(Value::as_bool).unwrap_or(false),
        calculated: false,
        hubspot_defined: false,
        read_only_value: false,
        read_only_definition: false,
        created_ms: now,
        updated_ms: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(props: Value) -> Result<Vec<Change>, Vec<PropertyProblem>> {
        let schema = contact_schema(0);
        validate(&schema, props.as_object().unwrap(), &|n| (n == "interests").then(|| "webinars".into()), false)
    }

    #[test]
    fn values_are_validated_as_hubspot_does() {
        assert!(check(json!({"employees":"1,000"})).unwrap_err()[0].code == "INVALID_INTEGER");
        assert!(check(json!({"employees":"12.5"})).is_ok());
        assert_eq!(check(json!({"vip":"yes"})).unwrap_err()[0].code, "INVALID_BOOLEAN");
        assert_eq!(check(json!({"signup_date":"1430438400001"})).unwrap_err()[0].code, "INVALID_DATE");
        assert_eq!(check(json!({"signup_date":"1430438400000"})).unwrap()[0].1.as_deref(), Some("2015-05-01"));
        assert_eq!(
            check(json!({"last_demo_at":"1654093908469"})).unwrap()[0].1.as_deref(),
            Some("2022-06-01T14:31:48.469Z")
        );
        let e = check(json!({"industry_segment":"Retail"})).unwrap_err();
        assert_eq!(
            e[0].message,
            "Retail was not one of the allowed options: [saas, retail, manufacturing, healthcare, finance]"
        );
        assert_eq!(check(json!({"interests":";events"})).unwrap()[0].1.as_deref(), Some("webinars;events"));
        assert_eq!(check(json!({"interests":"events;webinars"})).unwrap()[0].1.as_deref(), Some("events;webinars"));
        assert_eq!(check(json!({"interests":"events;nope"})).unwrap_err()[0].code, "INVALID_OPTION");
        assert_eq!(check(json!({"hs_email_optout":"true"})).unwrap_err()[0].code, "READ_ONLY_VALUE");
        assert_eq!(check(json!({"nope":"x"})).unwrap_err()[0].code, "PROPERTY_DOESNT_EXIST");
        assert_eq!(check(json!({"email":"not-an-email"})).unwrap_err()[0].code, "INVALID_EMAIL");
        assert_eq!(check(json!({"city":""})).unwrap(), vec![("city".to_string(), None)]);
    }
}
