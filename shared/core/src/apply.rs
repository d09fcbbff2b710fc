//! What a plan does to the records, computed without calling anything: used for preview
//! (before/after per field) and by the tests that check a plan is idempotent and converges.

use crate::config::{ConnectionConfig, MailerLiteRule};
use crate::plan::{GroupChange, HubSpotWrite, MailerLiteWrite, Plan};
use crate::record::{HubSpotContact, Link, MailerLiteSubscriber};

/// The records and link after a plan is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub hubspot: Option<HubSpotContact>,
    pub mailerlite: Option<MailerLiteSubscriber>,
    pub link: Option<Link>,
}

/// Applies `plan` to the records as the APIs would: `""` and `null` clear, MailerLite fields
/// merge, group changes add and remove. Created records get the given ids.
pub fn apply(
    config: &ConnectionConfig,
    plan: &Plan,
    hubspot: Option<&HubSpotContact>,
    mailerlite: Option<&MailerLiteSubscriber>,
    new_hubspot_id: &str,
    new_mailerlite_id: &str,
) -> Applied {
    let mut hs = hubspot.cloned();
    let mut ml = mailerlite.cloned();
    match &plan.hubspot {
        Some(HubSpotWrite::Create { properties }) => {
            hs = Some(HubSpotContact {
                id: new_hubspot_id.to_string(),
                properties: properties.iter().map(|(k, v)| (k.clone(), (!v.is_empty()).then(|| v.clone()))).collect(),
                company: Default::default(),
                in_scope: config.hubspot_rule.matches_new_contact(),
            });
        }
        Some(HubSpotWrite::Update { properties, .. }) => {
            if let Some(h) = hs.as_mut() {
                for (k, v) in properties {
                    h.properties.insert(k.clone(), (!v.is_empty()).then(|| v.clone()));
                }
            }
        }
        None => {}
    }
    if plan.hubspot_unsubscribe_all
        && let Some(h) = hs.as_mut()
    {
        h.properties.insert("hs_email_optout".into(), Some("true".into()));
    }
    match &plan.mailerlite {
        Some(MailerLiteWrite::Create { email, fields, status, groups }) => {
            ml = Some(MailerLiteSubscriber {
                id: new_mailerlite_id.to_string(),
                email: email.clone(),
                status: *status,
                fields: fields.clone(),
                groups: groups.clone(),
                created_at: String::new(),
                updated_at: String::new(),
                in_scope: config.mailerlite_rule.matches_new_subscriber(groups),
            });
        }
        Some(MailerLiteWrite::Update { email, fields, status, .. }) => {
            if let Some(m) = ml.as_mut() {
                if let Some(e) = email {
                    m.email = e.clone();
                }
                for (k, v) in fields {
                    m.fields.insert(k.clone(), v.clone());
                }
                if let Some(s) = status {
                    m.status = *s;
                }
            }
        }
        None => {}
    }
    if let Some(m) = ml.as_mut() {
        for change in &plan.group_changes {
            match change {
                GroupChange::Add { group_id } if !m.groups.contains(group_id) => m.groups.push(group_id.clone()),
                GroupChange::Remove { group_id } => m.groups.retain(|g| g != group_id),
                GroupChange::Add { .. } => {}
            }
        }
        match &config.mailerlite_rule {
            MailerLiteRule::All => m.in_scope = true,
            MailerLiteRule::Groups { group_ids } => m.in_scope = m.groups.iter().any(|g| group_ids.contains(g)),
            MailerLiteRule::Segments { .. } => {}
        }
    }
    let link = plan.link.clone().map(|mut l| {
        if l.hubspot_id.is_none() && matches!(plan.hubspot, Some(HubSpotWrite::Create { .. })) {
            l.hubspot_id = Some(new_hubspot_id.to_string());
        }
        if l.mailerlite_id.is_none() && matches!(plan.mailerlite, Some(MailerLiteWrite::Create { .. })) {
            l.mailerlite_id = Some(new_mailerlite_id.to_string());
        }
        if let Some(m) = &ml {
            l.ml_in_scope = m.in_scope;
        }
        l
    });
    Applied { hubspot: hs, mailerlite: ml, link }
}
