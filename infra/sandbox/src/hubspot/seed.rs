//! Seeding generated contacts from `common::people` (no webhooks, no rate-limit accounting).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::HubSpotState;
use super::errors::HsError;
use super::model::ObjectType;
use super::time_fmt::iso_ms;
use crate::common::people::{INDUSTRY_OPTIONS, INTEREST_OPTIONS, chosen, conflicting, person, salted};

/// Salts for [`chosen`], so each trait picks an independent share of people.
const SALT_CONFLICT: u64 = 11;
const SALT_OPTED_OUT: u64 = 12;
const SALT_NO_EMAIL: u64 = 13;
const SALT_LIST: u64 = 1000;

/// Adds a share of the seeded contacts to a MANUAL or SNAPSHOT list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedListMembership {
    pub list_id: u64,
    pub rate: f64,
}

/// `POST /__sandbox/hubspot/seed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedRequest {
    pub count: u64,
    pub start_index: u64,
    /// Share of people seeded with [`conflicting`] data (another first name and city).
    pub conflict_rate: f64,
    /// Share opted out of all email (`hs_email_optout = true`, unsubscribed from all).
    pub opted_out_rate: f64,
    /// Share seeded without an email.
    pub no_email_rate: f64,
    pub lists: Vec<SeedListMembership>,
    /// Associate each contact with a company named after `Person::company` (created once per name).
    pub with_companies: bool,
    /// Varies which people get each trait (see `people::salted`); 0 keeps the default choice.
    pub seed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// Contact ids in person order; a person whose email already exists keeps its contact's id.
    pub ids: Vec<u64>,
    pub company_ids: Vec<u64>,
    /// Contacts this call created without an email.
    pub without_email: u64,
    /// Contacts this call created opted out of all email.
    pub opted_out: u64,
}

pub fn seed(st: &HubSpotState, req: &SeedRequest) -> Result<SeedResult, HsError> {
    let mut db = st.db();
    for m in &req.lists {
        let list = db.lists.get(&m.list_id).ok_or_else(|| HsError::not_found(&m.list_id.to_string()))?;
        if !list.is_static() {
            return Err(HsError::validation(format!("List {} is DYNAMIC; its members follow its filters", m.list_id)));
        }
    }
    let now = db.stamp();
    let mut companies: HashMap<String, u64> =
        db.companies.values().filter_map(|c| c.get("name").map(|n| (n.to_string(), c.id))).collect();
    let mut result = SeedResult::default();
    for index in req.start_index..req.start_index + req.count {
        let base = person(index);
        let p =
            if chosen(index, salted(SALT_CONFLICT, req.seed), req.conflict_rate) { conflicting(&base) } else { base };
        let with_email = !chosen(index, salted(SALT_NO_EMAIL, req.seed), req.no_email_rate);
        if with_email && let Some(existing) = db.contact_by_email(&p.email) {
            result.ids.push(existing);
            continue;
        }
        let mut changes: Vec<(String, Option<String>)> = vec![
            ("firstname".into(), Some(p.first_name.clone())),
            ("lastname".into(), Some(p.last_name.clone())),
            ("company".into(), Some(p.company.clone())),
            ("city".into(), Some(p.city.clone())),
            ("phone".into(), Some(p.phone.clone())),
            ("industry_segment".into(), Some(INDUSTRY_OPTIONS[p.industry].0.to_string())),
            ("employees".into(), Some(p.employees.to_string())),
            ("signup_date".into(), Some(p.signup_date.clone())),
            ("lifecyclestage".into(), Some("lead".into())),
        ];
        if with_email {
            changes.push(("email".into(), Some(p.email.clone())));
        }
        if !p.interests.is_empty() {
            let v: Vec<&str> = p.interests.iter().map(|i| INTEREST_OPTIONS[*i].0).collect();
            changes.push(("interests".into(), Some(v.join(";"))));
        }
        let opted_out = chosen(index, salted(SALT_OPTED_OUT, req.seed), req.opted_out_rate);
        if opted_out {
            changes.push(("hs_email_optout".into(), Some("true".into())));
        }
        let mut company_links = Vec::new();
        if req.with_companies {
            let company = match companies.get(&p.company) {
                Some(id) => *id,
                None => {
                    let id = db.next_company_id;
                    db.next_company_id += 1;
                    let domain = format!("{}.example.com", p.company.to_lowercase());
                    let props = [
                        ("name", p.company.clone()),
                        ("domain", domain),
                        ("industry", INDUSTRY_OPTIONS[p.industry].1.to_string()),
                        ("city", p.city.clone()),
                        ("numberofemployees", (p.employees * 10).to_string()),
                        ("hs_object_id", id.to_string()),
                        ("createdate", iso_ms(now)),
                        ("hs_lastmodifieddate", iso_ms(now)),
                    ];
                    let rec = super::model::Record {
                        id,
                        props: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                        created_ms: now,
                        updated_ms: now,
                        archived: false,
                        archived_ms: None,
                        assoc: Default::default(),
                    };
                    db.store_mut(ObjectType::Companies).insert(id, rec);
                    companies.insert(p.company.clone(), id);
                    result.company_ids.push(id);
                    id
                }
            };
            company_links.push((company, true));
        }
        let (id, _events) = db.insert_contact(changes, &company_links, now);
        if opted_out && with_email {
            db.unsubscribed_all.insert(p.email.to_lowercase(), now);
        }
        result.without_email += u64::from(!with_email);
        result.opted_out += u64::from(opted_out);
        for m in &req.lists {
            if chosen(index, salted(SALT_LIST + m.list_id, req.seed), m.rate)
                && let Some(list) = db.lists.get_mut(&m.list_id)
            {
                list.add(id, now);
            }
        }
        result.ids.push(id);
    }
    Ok(result)
}
