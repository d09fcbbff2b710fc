//! The load: people editing both apps at a steady rate while the clock runs. HubSpot edits and
//! MailerLite field, email and status edits are made as a user in the app would make them (the
//! simulators' user helpers, which fire the same webhooks); MailerLite creations and group moves
//! have no such helper and go through the MailerLite API with a client of their own, so they meet
//! the injected faults like any other API caller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmsync_e2e::Harness;
use hmsync_sandbox::common::people::{INDUSTRY_OPTIONS, INTEREST_OPTIONS};
use hmsync_sandbox::mailerlite::UserEdit;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// The HubSpot user the edits are attributed to (webhooks say `CRM_UI`).
const USER: u64 = 7;

const FIRST_NAMES: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Radia", "Hedy", "Katherine"];
const LAST_NAMES: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Perlman", "Lamarr", "Johnson"];
const CITIES: [&str; 8] = ["Tallinn", "Berlin", "Lisbon", "Austin", "Toronto", "Dublin", "Vilnius", "Oslo"];
const COMPANIES: [&str; 6] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Wonka"];

/// What kind of edit a person makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HubSpotCreate,
    /// The same new person signs up in both apps at nearly the same time.
    CreateOnBothSides,
    HubSpotUpdate,
    HubSpotClear,
    HubSpotEmailChange,
    HubSpotMerge,
    HubSpotListAdd,
    HubSpotListRemove,
    HubSpotOptOut,
    MailerLiteCreate,
    MailerLiteUpdate,
    MailerLiteClear,
    MailerLiteEmailChange,
    MailerLiteGroupMove,
    MailerLiteUnsubscribe,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::HubSpotCreate => "hubspot_create",
            Kind::CreateOnBothSides => "create_on_both_sides",
            Kind::HubSpotUpdate => "hubspot_update",
            Kind::HubSpotClear => "hubspot_clear_field",
            Kind::HubSpotEmailChange => "hubspot_email_change",
            Kind::HubSpotMerge => "hubspot_merge",
            Kind::HubSpotListAdd => "hubspot_list_add",
            Kind::HubSpotListRemove => "hubspot_list_remove",
            Kind::HubSpotOptOut => "hubspot_opt_out",
            Kind::MailerLiteCreate => "mailerlite_create",
            Kind::MailerLiteUpdate => "mailerlite_update",
            Kind::MailerLiteClear => "mailerlite_clear_field",
            Kind::MailerLiteEmailChange => "mailerlite_email_change",
            Kind::MailerLiteGroupMove => "mailerlite_group_move",
            Kind::MailerLiteUnsubscribe => "mailerlite_unsubscribe",
        }
    }
}

/// Relative frequencies of the edits.
const MIX: [(Kind, u32); 15] = [
    (Kind::HubSpotCreate, 5),
    (Kind::CreateOnBothSides, 2),
    (Kind::HubSpotUpdate, 20),
    (Kind::HubSpotClear, 4),
    (Kind::HubSpotEmailChange, 3),
    (Kind::HubSpotMerge, 2),
    (Kind::HubSpotListAdd, 4),
    (Kind::HubSpotListRemove, 4),
    (Kind::HubSpotOptOut, 2),
    (Kind::MailerLiteCreate, 5),
    (Kind::MailerLiteUpdate, 20),
    (Kind::MailerLiteClear, 4),
    (Kind::MailerLiteEmailChange, 3),
    (Kind::MailerLiteGroupMove, 5),
    (Kind::MailerLiteUnsubscribe, 3),
];

/// Edits of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EditCount {
    /// The app took the edit.
    pub applied: u64,
    /// No suitable record at that moment, or the app (or an injected fault) refused it.
    pub not_applied: u64,
    /// Why the latest edit of this kind did not happen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_not_applied: Option<String>,
}

/// Where the load works.
#[derive(Debug, Clone)]
pub struct Setup {
    pub seed: u64,
    pub edits_per_second: f64,
    /// The HubSpot list of the connection's HubSpot rule.
    pub list_id: u64,
    /// A group of the MailerLite rule.
    pub rule_group: String,
    /// A group outside the MailerLite rule.
    pub other_group: String,
    /// Emails the MailerLite seed used (people the load may edit there).
    pub mailerlite_emails: Vec<String>,
}

/// What the load did and what it leaves the checker to verify.
pub struct Load {
    h: Arc<Harness>,
    setup: Setup,
    rng: fastrand::Rng,
    ml: hmsync_mailerlite::Client,
    /// Emails that exist or existed on some side (the MailerLite edits pick from these).
    known: Vec<String>,
    fresh: u64,
    pub edits: BTreeMap<&'static str, EditCount>,
    /// Subscribers the people unsubscribed themselves, by id (shared with the checker's
    /// expectations).
    pub suppressed: Arc<Mutex<BTreeMap<String, String>>>,
}

/// Why an edit did not happen.
type Skip = String;

impl Load {
    pub fn new(h: Arc<Harness>, setup: Setup, suppressed: Arc<Mutex<BTreeMap<String, String>>>) -> Load {
        let mut config = hmsync_mailerlite::Config::new(h.mailerlite.config().token)
            .with_base_url(h.mailerlite.base_url().to_string());
        config.time_scale = h.mailerlite.config().time_scale;
        config.retry = hmsync_http::RetryPolicy::fast(3);
        config.timeout = crate::chaos::CLIENT_TIMEOUT;
        let ml = hmsync_mailerlite::Client::new(config).expect("MailerLite client of the load");
        Load {
            rng: fastrand::Rng::with_seed(setup.seed),
            known: setup.mailerlite_emails.clone(),
            h,
            setup,
            ml,
            fresh: 0,
            edits: MIX.iter().map(|(k, _)| (k.name(), EditCount::default())).collect(),
            suppressed,
        }
    }

    /// Edits at the configured rate until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Load {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.setup.edits_per_second.max(0.01)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return self;
            }
            let kind = self.pick_kind();
            let outcome = self.edit(kind).await;
            let count = self.edits.entry(kind.name()).or_default();
            match outcome {
                Ok(()) => count.applied += 1,
                Err(why) => {
                    count.not_applied += 1;
                    count.last_not_applied = Some(why);
                }
            }
        }
    }

    fn pick_kind(&mut self) -> Kind {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.u32(0..total);
        for (k, w) in MIX {
            if n < w {
                return k;
            }
            n -= w;
        }
        Kind::HubSpotUpdate
    }

    async fn edit(&mut self, kind: Kind) -> Result<(), Skip> {
        match kind {
            Kind::HubSpotCreate => self.hubspot_create().map(|_| ()),
            Kind::CreateOnBothSides => {
                let email = self.hubspot_create()?;
                self.mailerlite_create_as(&email).await
            }
            Kind::HubSpotUpdate => {
                let (id, _) = self.live_contact()?;
                let mut props = Map::new();
                for _ in 0..self.rng.usize(1..=2) {
                    let (k, v) = self.hubspot_value();
                    props.insert(k.to_string(), json!(v));
                }
                self.h.hubspot.user_edit_contact(id, &props, USER).map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Kind::HubSpotClear => {
                let (id, _) = self.live_contact()?;
                let property = ["firstname", "lastname", "city", "industry_segment"][self.rng.usize(0..4)];
                let props = Map::from_iter([(property.to_string(), json!(""))]);
                self.h.hubspot.user_edit_contact(id, &props, USER).map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Kind::HubSpotEmailChange => {
                let (id, _) = self.live_contact()?;
                let email = self.fresh_email();
                let props = Map::from_iter([("email".to_string(), json!(email))]);
                self.h.hubspot.user_edit_contact(id, &props, USER).map_err(|e| format!("{e:?}"))?;
                self.known.push(email);
                Ok(())
            }
            Kind::HubSpotMerge => {
                let (a, _) = self.live_contact()?;
                let (b, _) = self.live_contact()?;
                if a == b {
                    return Err("picked the same contact twice".into());
                }
                self.h.hubspot.user_merge_contacts(a, b, USER).map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Kind::HubSpotListAdd => {
                let (id, _) = self.live_contact()?;
                self.h
                    .hubspot
                    .change_list_members(self.setup.list_id, &[id], &[])
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
            Kind::HubSpotListRemove => {
                let members = self.h.hubspot.list_members(self.setup.list_id).unwrap_or_default();
                if members.is_empty() {
                    return Err("the list is empty".into());
                }
                let id = members[self.rng.usize(0..members.len())];
                self.h
                    .hubspot
                    .change_list_members(self.setup.list_id, &[], &[id])
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
            Kind::HubSpotOptOut => {
                let (id, _) = self.live_contact()?;
                let props = Map::from_iter([("hs_email_optout".to_string(), json!("true"))]);
                self.h.hubspot.user_edit_contact(id, &props, USER).map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Kind::MailerLiteCreate => {
                let email = self.fresh_email();
                self.mailerlite_create_as(&email).await
            }
            Kind::MailerLiteUpdate => {
                let email = self.live_subscriber(false)?.email;
                let mut fields = Map::new();
                for _ in 0..self.rng.usize(1..=2) {
                    let (k, v) = self.mailerlite_value();
                    fields.insert(k.to_string(), json!(v));
                }
                let edit = UserEdit { fields, ..Default::default() };
                self.h.mailerlite.user_edit(&email, &edit).map_err(|e| format!("{e:?}"))
            }
            Kind::MailerLiteClear => {
                let email = self.live_subscriber(false)?.email;
                let field = ["name", "last_name", "city", "industry"][self.rng.usize(0..4)];
                let edit =
                    UserEdit { fields: Map::from_iter([(field.to_string(), Value::Null)]), ..Default::default() };
                self.h.mailerlite.user_edit(&email, &edit).map_err(|e| format!("{e:?}"))
            }
            Kind::MailerLiteEmailChange => {
                let email = self.live_subscriber(false)?.email;
                let new = self.fresh_email();
                let edit = UserEdit { email: Some(new.clone()), ..Default::default() };
                self.h.mailerlite.user_edit(&email, &edit).map_err(|e| format!("{e:?}"))?;
                self.known.push(new);
                Ok(())
            }
            Kind::MailerLiteGroupMove => {
                let s = self.live_subscriber(false)?;
                let groups: Vec<String> = s.groups.unwrap_or_default().into_iter().map(|g| g.id).collect();
                let (rule, other) = (self.setup.rule_group.clone(), self.setup.other_group.clone());
                let (from, to) = if groups.contains(&rule) {
                    (Some(rule), other)
                } else if groups.contains(&other) {
                    (Some(other), rule)
                } else {
                    (None, rule)
                };
                if let Some(from) = from {
                    self.ml.unassign_from_group(&s.id, &from).await.map_err(|e| format!("{e:?}"))?;
                }
                self.ml.assign_to_group(&s.id, &to).await.map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Kind::MailerLiteUnsubscribe => {
                let s = self.live_subscriber(true)?;
                self.h.mailerlite.unsubscribe_as_person(&s.email).map_err(|e| format!("{e:?}"))?;
                self.suppressed.lock().expect("suppressed lock").insert(s.id, "unsubscribed".into());
                Ok(())
            }
        }
    }

    fn fresh_email(&mut self) -> String {
        self.fresh += 1;
        format!("s{}n{}@soak.example.net", self.setup.seed, self.fresh)
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.rng.usize(0..from.len())]
    }

    /// A value a person would type into a mapped HubSpot property (option values for the select
    /// and the checkbox, as the CRM stores them).
    fn hubspot_value(&mut self) -> (&'static str, String) {
        match self.rng.u32(0..100) {
            0..25 => ("firstname", format!("{}{}", self.pick(&FIRST_NAMES), self.rng.u32(0..50))),
            25..45 => ("lastname", self.pick(&LAST_NAMES).to_string()),
            45..65 => ("city", self.pick(&CITIES).to_string()),
            65..85 => ("industry_segment", INDUSTRY_OPTIONS[self.rng.usize(0..INDUSTRY_OPTIONS.len())].0.to_string()),
            85..95 => ("company", self.pick(&COMPANIES).to_string()),
            // One-way from MailerLite: a HubSpot edit is overwritten by MailerLite's value.
            _ => ("interests", self.interests(|o| o.0, ";")),
        }
    }

    /// A value a person would type into a MailerLite field: option labels or values in any case,
    /// and now and then one that is no option at all (a per-contact error in HubSpot).
    fn mailerlite_value(&mut self) -> (&'static str, String) {
        match self.rng.u32(0..100) {
            0..25 => ("name", format!("{}{}", self.pick(&FIRST_NAMES), self.rng.u32(0..50))),
            25..40 => ("last_name", self.pick(&LAST_NAMES).to_string()),
            40..55 => ("city", self.pick(&CITIES).to_string()),
            55..75 => ("industry", self.industry_text()),
            75..92 => {
                let v = if self.rng.u32(0..20) == 0 { "Gardening".to_string() } else { self.interests(|o| o.1, ", ") };
                ("interests", v)
            }
            // One-way from HubSpot: a MailerLite edit is overwritten by HubSpot's value.
            _ => ("company", self.pick(&COMPANIES).to_string()),
        }
    }

    fn industry_text(&mut self) -> String {
        let (value, label) = INDUSTRY_OPTIONS[self.rng.usize(0..INDUSTRY_OPTIONS.len())];
        match self.rng.u32(0..20) {
            // Valid for hmsync's stored schema, refused by HubSpot (the soak drops the option).
            0..3 => "Aerospace".to_string(),
            3..4 => value.to_uppercase(),
            4..7 => label.to_lowercase(),
            _ => label.to_string(),
        }
    }

    fn interests(&mut self, part: fn(&(&'static str, &'static str)) -> &'static str, sep: &str) -> String {
        let chosen: Vec<&str> = INTEREST_OPTIONS.iter().filter(|_| self.rng.bool()).map(part).collect();
        chosen.join(sep)
    }

    /// Creates a contact in HubSpot as a user would, and puts most new contacts on the list.
    fn hubspot_create(&mut self) -> Result<String, Skip> {
        let email = self.fresh_email();
        let mut props = Map::new();
        props.insert("email".into(), json!(email));
        for _ in 0..4 {
            let (k, v) = self.hubspot_value();
            props.insert(k.to_string(), json!(v));
        }
        let id = self.h.hubspot.user_create_contact(&props, USER).map_err(|e| format!("{e:?}"))?;
        self.known.push(email.clone());
        if self.rng.u32(0..10) < 7 {
            self.h.hubspot.change_list_members(self.setup.list_id, &[id], &[]).map_err(|e| format!("{e:?}"))?;
        }
        Ok(email)
    }

    /// Signs a person up in MailerLite (through the API: a form or an import would).
    async fn mailerlite_create_as(&mut self, email: &str) -> Result<(), Skip> {
        let mut upsert = hmsync_mailerlite::SubscriberUpsert::new(email);
        for _ in 0..4 {
            let (k, v) = self.mailerlite_value();
            upsert.fields.insert(k.to_string(), json!(v));
        }
        let group = if self.rng.u32(0..10) < 7 { &self.setup.rule_group } else { &self.setup.other_group };
        upsert.groups = vec![group.clone()];
        self.ml.upsert_subscriber(&upsert).await.map_err(|e| format!("{e:?}"))?;
        if !self.known.iter().any(|k| k == email) {
            self.known.push(email.to_string());
        }
        Ok(())
    }

    /// A random live HubSpot contact with an email.
    fn live_contact(&mut self) -> Result<(u64, String), Skip> {
        let live: Vec<(u64, String)> = {
            let db = self.h.hubspot.db();
            db.contacts
                .values()
                .filter(|r| !r.archived)
                .filter_map(|r| r.props.get("email").map(|e| (r.id, e.clone())))
                .collect()
        };
        if live.is_empty() {
            return Err("no live contact".into());
        }
        Ok(live[self.rng.usize(0..live.len())].clone())
    }

    /// A random live subscriber (optionally one that is active or unconfirmed), found by an email
    /// some side has or had.
    fn live_subscriber(&mut self, subscribed: bool) -> Result<hmsync_sandbox::mailerlite::SubscriberOut, Skip> {
        for _ in 0..12 {
            let email = if self.rng.bool() || self.known.is_empty() {
                self.live_contact()?.1
            } else {
                self.known[self.rng.usize(0..self.known.len())].clone()
            };
            let Some(s) = self.h.mailerlite.subscriber(&email) else { continue };
            let live = s.deleted_at.as_ref().is_none_or(Value::is_null);
            if live && (!subscribed || matches!(s.status, "active" | "unconfirmed")) {
                return Ok(s);
            }
        }
        Err("no suitable subscriber found".into())
    }
}
