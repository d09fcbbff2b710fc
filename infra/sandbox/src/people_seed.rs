//! One population of generated people (`common::people`) seeded into both simulators, so a
//! known share of it exists on both sides: the starting point of the demo and the benchmark.
//!
//! HubSpot gets people `[0, n)`, MailerLite gets `[n - shared, 2n - shared)` where
//! `shared = round(n × overlap)`, so exactly `shared` emails exist on both sides. Each side is
//! seeded through its own seed function (no webhooks, no rate limits, not counted).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hubspot::{HsError, HubSpotState, SeedListMembership, SeedRequest};
use crate::mailerlite::{ApiError, MailerLite, SeedGroupMembership, SeedSpec};

/// `POST /__sandbox/people/seed` and [`crate::Sandbox::seed_people`]. Every rate is a share in
/// `0..=1`, applied per person deterministically (the same request seeds the same people).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeopleSeed {
    /// People seeded on each side.
    pub per_side: u64,
    /// Share of each side's people that exist on both sides (same email).
    pub overlap: f64,
    /// Share of the overlapping people whose MailerLite copy uses `people::conflicting` data
    /// (another first name and city), so the initial sync has conflicts to resolve.
    pub conflict_rate: f64,
    /// Share of HubSpot contacts opted out of all email.
    pub hubspot_opted_out_rate: f64,
    /// Share of MailerLite subscribers seeded `unsubscribed`.
    pub mailerlite_unsubscribed_rate: f64,
    /// Share of MailerLite subscribers seeded `bounced` (disjoint from the unsubscribed ones).
    pub mailerlite_bounced_rate: f64,
    /// Share of HubSpot contacts seeded without an email (the sync excludes them). They are
    /// taken from the HubSpot-only people, so the overlap stays exact and nobody without an
    /// email in HubSpot has a MailerLite copy; capped by how many HubSpot-only people there are.
    pub no_email_rate: f64,
    /// A MANUAL list (created, or reused by name) that a share of the HubSpot contacts joins.
    pub hubspot_list: Option<MembershipSeed>,
    /// A group (created, or reused by name) that a share of the MailerLite subscribers joins.
    pub mailerlite_group: Option<MembershipSeed>,
    /// Associate each HubSpot contact with a company named after its person's company.
    pub with_companies: bool,
    /// Varies which people get each trait; the sides use independent choices.
    pub seed: u64,
}

/// The default share of people on both sides.
pub const DEFAULT_OVERLAP: f64 = 0.5;

impl Default for PeopleSeed {
    fn default() -> Self {
        Self {
            per_side: 0,
            overlap: DEFAULT_OVERLAP,
            conflict_rate: 0.0,
            hubspot_opted_out_rate: 0.0,
            mailerlite_unsubscribed_rate: 0.0,
            mailerlite_bounced_rate: 0.0,
            no_email_rate: 0.0,
            hubspot_list: None,
            mailerlite_group: None,
            with_companies: false,
            seed: 0,
        }
    }
}

/// A list or group and the share of the seeded people that joins it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipSeed {
    pub name: String,
    #[serde(default = "everyone")]
    pub member_rate: f64,
}

fn everyone() -> f64 {
    1.0
}

/// What was seeded. The counts assume empty simulators: seeding people again keeps the
/// records that have their email (counted as seeded, their traits not counted again), while
/// HubSpot contacts without an email, matched by nothing, are created again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeopleSeedSummary {
    pub hubspot: HubSpotSeedCounts,
    pub mailerlite: MailerLiteSeedCounts,
    /// People on both sides with the same email: exactly `round(per_side × overlap)`.
    pub overlap: u64,
    /// Overlapping people whose MailerLite copy has conflicting data.
    pub conflicting: u64,
    /// Distinct emails over both sides: how many linked contacts a full sync of everyone ends
    /// with (HubSpot contacts without an email are excluded by the sync and not counted).
    pub expected_unique_contacts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HubSpotSeedCounts {
    /// The people seeded are `first_index..end_index`.
    pub first_index: u64,
    pub end_index: u64,
    pub contacts: u64,
    pub without_email: u64,
    pub opted_out: u64,
    pub companies_created: u64,
    /// The list's id (a string, as the Lists API returns it).
    pub list_id: Option<String>,
    /// The list's members after seeding.
    pub list_members: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailerLiteSeedCounts {
    /// The people seeded are `first_index..end_index`.
    pub first_index: u64,
    pub end_index: u64,
    pub subscribers: u64,
    /// Seeded subscribers by status (`active`, `unsubscribed`, `bounced`).
    pub by_status: BTreeMap<String, u64>,
    pub group_id: Option<String>,
    /// The group's live members after seeding.
    pub group_members: u64,
}

/// Why a people seed was refused; nothing is seeded when the request is invalid.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeopleSeedError {
    #[error("invalid people seed: {field} {problem}")]
    Invalid { field: &'static str, problem: String },
    #[error("seeding HubSpot failed ({}): {}", .0.status, hubspot_message(.0))]
    HubSpot(HsError),
    #[error("seeding MailerLite failed ({}): {}", .0.status(), .0.message())]
    MailerLite(ApiError),
    #[error("seeding was interrupted: the runtime shut down")]
    Interrupted,
}

fn hubspot_message(e: &HsError) -> String {
    e.body["message"].as_str().unwrap_or("no message").to_string()
}

impl PeopleSeed {
    /// Checks every share is in `0..=1` and that the MailerLite statuses fit in one population.
    pub fn validate(&self) -> Result<(), PeopleSeedError> {
        let mut rates = vec![
            ("overlap", self.overlap),
            ("conflict_rate", self.conflict_rate),
            ("hubspot_opted_out_rate", self.hubspot_opted_out_rate),
            ("mailerlite_unsubscribed_rate", self.mailerlite_unsubscribed_rate),
            ("mailerlite_bounced_rate", self.mailerlite_bounced_rate),
            ("no_email_rate", self.no_email_rate),
        ];
        if let Some(l) = &self.hubspot_list {
            rates.push(("hubspot_list.member_rate", l.member_rate));
        }
        if let Some(g) = &self.mailerlite_group {
            rates.push(("mailerlite_group.member_rate", g.member_rate));
        }
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(PeopleSeedError::Invalid {
                    field,
                    problem: format!("must be between 0 and 1, got {rate}"),
                });
            }
        }
        if self.mailerlite_unsubscribed_rate + self.mailerlite_bounced_rate > 1.0 {
            return Err(PeopleSeedError::Invalid {
                field: "mailerlite_bounced_rate",
                problem: "plus mailerlite_unsubscribed_rate must not exceed 1 (a subscriber has one status)".into(),
            });
        }
        for (field, name) in [
            ("hubspot_list.name", self.hubspot_list.as_ref().map(|l| &l.name)),
            ("mailerlite_group.name", self.mailerlite_group.as_ref().map(|g| &g.name)),
        ] {
            if name.is_some_and(|n| n.trim().is_empty()) {
                return Err(PeopleSeedError::Invalid { field, problem: "must not be empty".into() });
            }
        }
        Ok(())
    }

    /// People on both sides.
    pub fn shared(&self) -> u64 {
        (self.per_side as f64 * self.overlap).round() as u64
    }
}

/// Seeds both sides; each side's state stays locked while its people are inserted. Blocking
/// (a few seconds for 100,000 people per side in a debug build): servers call it from
/// `spawn_blocking` (see [`PeopleSeeder::seed_blocking_task`]).
pub fn seed_people(
    hubspot: &HubSpotState,
    mailerlite: &MailerLite,
    seed: &PeopleSeed,
) -> Result<PeopleSeedSummary, PeopleSeedError> {
    seed.validate()?;
    let n = seed.per_side;
    let shared = seed.shared();
    // The first MailerLite person: everyone before it is HubSpot-only.
    let ml_start = n - shared;
    // The sides choose independently: with the same salt on both sides the opted-out HubSpot
    // contacts would be exactly the unsubscribed MailerLite subscribers.
    let hs_seed = seed.seed.wrapping_mul(2);
    let ml_seed = seed.seed.wrapping_mul(2).wrapping_add(1);

    let list_id = seed.hubspot_list.as_ref().map(|l| hubspot_list(hubspot, &l.name)).transpose()?;
    let lists: Vec<SeedListMembership> = match (&seed.hubspot_list, list_id) {
        (Some(l), Some(list_id)) => vec![SeedListMembership { list_id, rate: l.member_rate }],
        _ => Vec::new(),
    };
    let hs_request = |start_index: u64, count: u64, no_email_rate: f64| SeedRequest {
        count,
        start_index,
        conflict_rate: 0.0,
        opted_out_rate: seed.hubspot_opted_out_rate,
        no_email_rate,
        lists: lists.clone(),
        with_companies: seed.with_companies,
        seed: hs_seed,
    };
    // The no-email share of all HubSpot contacts, drawn from the HubSpot-only people.
    let no_email_rate = if ml_start == 0 { 0.0 } else { (seed.no_email_rate * n as f64 / ml_start as f64).min(1.0) };
    let mut hs = HubSpotSeedCounts { first_index: 0, end_index: n, ..Default::default() };
    for request in [hs_request(0, ml_start, no_email_rate), hs_request(ml_start, shared, 0.0)] {
        let r = hubspot.seed(&request).map_err(PeopleSeedError::HubSpot)?;
        hs.contacts += r.ids.len() as u64;
        hs.without_email += r.without_email;
        hs.opted_out += r.opted_out;
        hs.companies_created += r.company_ids.len() as u64;
    }
    if let Some(id) = list_id {
        hs.list_id = Some(id.to_string());
        hs.list_members = hubspot.list_members(id).map_or(0, |m| m.len() as u64);
    }

    let group_id = seed.mailerlite_group.as_ref().map(|g| mailerlite_group(mailerlite, &g.name));
    let group_memberships: Vec<SeedGroupMembership> = match (&seed.mailerlite_group, &group_id) {
        (Some(g), Some(id)) => vec![SeedGroupMembership { group_id: id.clone(), rate: g.member_rate }],
        _ => Vec::new(),
    };
    // The seed function picks bounced among those not unsubscribed; scale it so the bounced
    // share is of all subscribers.
    let not_unsubscribed = 1.0 - seed.mailerlite_unsubscribed_rate;
    let bounced_rate =
        if not_unsubscribed <= 0.0 { 0.0 } else { (seed.mailerlite_bounced_rate / not_unsubscribed).min(1.0) };
    let ml_spec = |start_index: u64, count: u64, conflict_rate: f64| SeedSpec {
        count,
        start_index,
        conflict_rate,
        unsubscribed_rate: seed.mailerlite_unsubscribed_rate,
        bounced_rate,
        group_memberships: group_memberships.clone(),
        seed: ml_seed,
        ..SeedSpec::default()
    };
    let mut ml = MailerLiteSeedCounts { first_index: ml_start, end_index: ml_start + n, ..Default::default() };
    let mut conflicting = 0;
    // Conflicting data only makes sense for people HubSpot also has.
    for (spec, overlapping) in
        [(ml_spec(ml_start, shared, seed.conflict_rate), true), (ml_spec(n, ml_start, 0.0), false)]
    {
        let s = mailerlite.seed(&spec).map_err(PeopleSeedError::MailerLite)?;
        ml.subscribers += s.created + s.updated;
        for (status, count) in s.by_status {
            *ml.by_status.entry(status).or_default() += count;
        }
        if overlapping {
            conflicting = s.conflicting;
        }
    }
    if let Some(id) = group_id {
        ml.group_members = mailerlite.groups().into_iter().find(|g| g.id == id).map_or(0, |g| {
            g.active_count + g.unsubscribed_count + g.unconfirmed_count + g.bounced_count + g.junk_count
        });
        ml.group_id = Some(id);
    }

    let expected_unique_contacts = hs.contacts - hs.without_email + ml.subscribers - shared;
    Ok(PeopleSeedSummary { hubspot: hs, mailerlite: ml, overlap: shared, conflicting, expected_unique_contacts })
}

/// The MANUAL list named `name` (case-insensitive), created if missing. A DYNAMIC list of that
/// name cannot take seeded members.
fn hubspot_list(hubspot: &HubSpotState, name: &str) -> Result<u64, PeopleSeedError> {
    let existing =
        hubspot.db().lists.values().find(|l| l.name.eq_ignore_ascii_case(name)).map(|l| (l.id, l.is_static()));
    match existing {
        Some((id, true)) => Ok(id),
        Some((id, false)) => Err(PeopleSeedError::Invalid {
            field: "hubspot_list.name",
            problem: format!("names the DYNAMIC list {id}, whose members follow its filters; choose another name"),
        }),
        None => {
            let list = hubspot.create_list(name, "MANUAL", None).map_err(PeopleSeedError::HubSpot)?;
            list["listId"].as_str().and_then(|id| id.parse().ok()).ok_or_else(|| {
                PeopleSeedError::HubSpot(HsError::validation(format!("the created list {name} has no listId")))
            })
        }
    }
}

/// The group named `name` (case-insensitive), created if missing.
fn mailerlite_group(mailerlite: &MailerLite, name: &str) -> String {
    match mailerlite.groups().into_iter().find(|g| g.name.eq_ignore_ascii_case(name)) {
        Some(g) => g.id,
        None => mailerlite.create_group(name),
    }
}

/// Both simulators' state, for seeding people from a server task (the combined sandbox's
/// `POST /__sandbox/people/seed`) or any holder of the two states. Cheap to clone.
#[derive(Clone)]
pub struct PeopleSeeder {
    pub hubspot: Arc<HubSpotState>,
    pub mailerlite: MailerLite,
}

impl PeopleSeeder {
    /// Seeds in the calling thread (see [`seed_people`]).
    pub fn seed(&self, seed: &PeopleSeed) -> Result<PeopleSeedSummary, PeopleSeedError> {
        seed_people(&self.hubspot, &self.mailerlite, seed)
    }

    /// Seeds on tokio's blocking pool, so the servers' workers keep answering meanwhile.
    pub async fn seed_blocking_task(&self, seed: PeopleSeed) -> Result<PeopleSeedSummary, PeopleSeedError> {
        let seeder = self.clone();
        match tokio::task::spawn_blocking(move || seeder.seed(&seed)).await {
            Ok(result) => result,
            // A panic while seeding is a sandbox bug: surface it where it happened.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(PeopleSeedError::Interrupted),
        }
    }
}
