//! Fixtures shared by the rule tests and the property tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use hmsync_core::*;
use serde_json::{Value, json};

pub fn schemas() -> FieldSchemas {
    let mut lead_score = HsProperty::new("lead_score", HsType::Number, "number").read_only();
    lead_score.calculated = true;
    FieldSchemas {
        hubspot_contact: vec![
            HsProperty::new("email", HsType::String, "text"),
            HsProperty::new("firstname", HsType::String, "text"),
            HsProperty::new("lastname", HsType::String, "text"),
            HsProperty::new("city", HsType::String, "text"),
            HsProperty::new("industry_segment", HsType::Enumeration, "select").with_options(&[
                ("saas", "SaaS"),
                ("retail", "Retail"),
                ("finance", "Financial services"),
            ]),
            HsProperty::new("interests", HsType::Enumeration, "checkbox").with_options(&[
                ("webinars", "Webinars"),
                ("events", "Events"),
                ("news", "Product news"),
            ]),
            HsProperty::new("employees", HsType::Number, "number"),
            HsProperty::new("signup_date", HsType::Date, "date"),
            HsProperty::new("last_demo_at", HsType::Datetime, "date"),
            HsProperty::new("vip", HsType::Bool, "booleancheckbox"),
            lead_score,
            HsProperty::new("hs_email_optout", HsType::Bool, "booleancheckbox").read_only(),
            HsProperty::new("blob", HsType::Other("json".into()), "text"),
        ],
        hubspot_company: vec![
            HsProperty::new("name", HsType::String, "text"),
            HsProperty::new("industry", HsType::String, "text"),
        ],
        mailerlite: vec![
            MlField::new("name", MlType::Text),
            MlField::new("last_name", MlType::Text),
            MlField::new("city", MlType::Text),
            MlField::new("industry", MlType::Text),
            MlField::new("interests", MlType::Text),
            MlField::new("employees", MlType::Number),
            MlField::new("signup_date", MlType::Date),
            MlField::new("last_demo", MlType::Date),
            MlField::new("vip", MlType::Text),
            MlField::new("score", MlType::Number),
            MlField::new("company", MlType::Text),
        ],
    }
}

/// Two-way, every contact and subscriber, HubSpot wins conflicts, target group "tg".
pub fn config() -> ConnectionConfig {
    let mut c = ConnectionConfig::new("test");
    c.target_group = Some("tg".into());
    c.mappings = vec![
        FieldMapping::new("firstname", "name"),
        FieldMapping::new("lastname", "last_name"),
        FieldMapping::new("city", "city"),
        FieldMapping::new("industry_segment", "industry"),
        FieldMapping::new("interests", "interests"),
        FieldMapping::new("employees", "employees"),
    ];
    c
}

pub fn planner(config: &ConnectionConfig) -> Planner {
    Planner::new(config, &schemas())
}

pub fn hs(id: &str, email: &str, props: &[(&str, &str)]) -> HubSpotContact {
    let mut properties: BTreeMap<String, Option<String>> =
        props.iter().map(|(k, v)| (k.to_string(), if v.is_empty() { None } else { Some(v.to_string()) })).collect();
    properties.insert("email".into(), Some(email.to_string()));
    properties.entry("createdate".into()).or_insert(Some("2024-01-01T00:00:00.000Z".into()));
    properties.entry("lastmodifieddate".into()).or_insert(Some("2024-01-02T00:00:00.000Z".into()));
    HubSpotContact { id: id.to_string(), properties, company: BTreeMap::new(), in_scope: true }
}

pub fn ml(id: &str, email: &str, fields: Value) -> MailerLiteSubscriber {
    let fields = fields.as_object().cloned().unwrap_or_default().into_iter().collect();
    MailerLiteSubscriber {
        id: id.to_string(),
        email: email.to_string(),
        status: MlStatus::Active,
        fields,
        groups: Vec::new(),
        created_at: "2024-01-01 00:00:00".into(),
        updated_at: "2024-01-02 00:00:00".into(),
        in_scope: true,
    }
}

pub fn empty() -> Value {
    json!({})
}

/// Plans, applies with fixed new ids, and returns the applied records.
pub fn run(
    planner: &Planner,
    phase: Phase,
    link: Option<&Link>,
    h: Option<&HubSpotContact>,
    m: Option<&MailerLiteSubscriber>,
) -> (Plan, Applied) {
    let plan = planner.plan(phase, link, h, m);
    let applied = apply(planner.config(), &plan, h, m, "hs-new", "ml-new");
    (plan, applied)
}

pub fn hs_props(plan: &Plan) -> BTreeMap<String, String> {
    match &plan.hubspot {
        Some(HubSpotWrite::Create { properties }) | Some(HubSpotWrite::Update { properties, .. }) => properties.clone(),
        None => BTreeMap::new(),
    }
}

pub fn ml_fields(plan: &Plan) -> BTreeMap<String, Value> {
    match &plan.mailerlite {
        Some(MailerLiteWrite::Create { fields, .. }) | Some(MailerLiteWrite::Update { fields, .. }) => fields.clone(),
        None => BTreeMap::new(),
    }
}

pub fn ml_status_write(plan: &Plan) -> Option<MlStatus> {
    match &plan.mailerlite {
        Some(MailerLiteWrite::Create { status, .. }) => Some(*status),
        Some(MailerLiteWrite::Update { status, .. }) => *status,
        None => None,
    }
}
