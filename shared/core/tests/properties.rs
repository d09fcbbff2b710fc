//! Property tests of the planner over random configs, records and links:
//! idempotence (no echo), convergence, never reactivating, one-way mappings never writing
//! to their source, and consent crossing every link (checked over every config and every pair
//! of consent states).

mod support;

use std::collections::BTreeMap;

use hmsync_core::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Draws choices from a random tape, so one `Vec<u16>` describes a whole scenario.
struct Tape<'a> {
    data: &'a [u16],
    at: usize,
}

impl Tape<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let v = self.data[self.at % self.data.len()] as usize;
        self.at += 1;
        v % n.max(1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.pick(100) < percent
    }
    fn one<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.pick(items.len())]
    }
}

/// A candidate mapping with the values each side may hold.
struct Candidate {
    mapping: FieldMapping,
    hs_values: &'static [&'static str],
    ml_values: fn() -> Vec<Value>,
}

fn candidates() -> Vec<Candidate> {
    vec![
        Candidate {
            mapping: FieldMapping::new("firstname", "name"),
            hs_values: &["", "Ada", "Grace", "ada"],
            ml_values: || vec![json!(null), json!("Ada"), json!("Grace"), json!("")],
        },
        Candidate {
            mapping: FieldMapping::new("city", "city"),
            hs_values: &["", "Oslo", "Riga"],
            ml_values: || vec![json!(null), json!("Oslo"), json!("Vilnius")],
        },
        Candidate {
            mapping: FieldMapping::new("industry_segment", "industry"),
            hs_values: &["", "saas", "retail", "finance"],
            ml_values: || {
                vec![json!(null), json!("SaaS"), json!("retail"), json!("Financial services"), json!("Aerospace")]
            },
        },
        Candidate {
            mapping: FieldMapping::new("interests", "interests"),
            hs_values: &["", "webinars", "events;webinars", "news"],
            ml_values: || {
                vec![
                    json!(null),
                    json!("Webinars"),
                    json!("Events, Webinars"),
                    json!("product news;events"),
                    json!("Golf"),
                ]
            },
        },
        Candidate {
            mapping: FieldMapping::new("employees", "employees"),
            hs_values: &["", "10", "12.50", "0"],
            ml_values: || vec![json!(null), json!(10), json!(12.5), json!("7")],
        },
        Candidate {
            mapping: FieldMapping::new("signup_date", "signup_date"),
            hs_values: &["", "2015-05-01", "1430438400000", "2020-01-31"],
            ml_values: || vec![json!(null), json!("2015-05-01"), json!("2021-02-03")],
        },
        Candidate {
            mapping: FieldMapping::new("last_demo_at", "last_demo"),
            hs_values: &["", "2024-06-01T22:15:00.000Z", "1582947017000"],
            ml_values: || vec![json!(null), json!("2024-06-01"), json!("2020-02-29")],
        },
        Candidate {
            mapping: FieldMapping::new("vip", "vip"),
            hs_values: &["", "true", "false"],
            ml_values: || vec![json!(null), json!("yes"), json!("No"), json!("maybe")],
        },
        Candidate {
            mapping: FieldMapping::new("lead_score", "score").with_direction(Direction::HubSpotToMailerLite),
            hs_values: &["", "40", "99"],
            ml_values: || vec![json!(null), json!(40), json!(1)],
        },
        Candidate {
            mapping: FieldMapping::new("name", "company").company(),
            hs_values: &["", "Acme", "Globex"],
            ml_values: || vec![json!(null), json!("Acme"), json!("Initech")],
        },
    ]
}

const DIRECTIONS: [Direction; 3] = [Direction::TwoWay, Direction::HubSpotToMailerLite, Direction::MailerLiteToHubSpot];
const SIDES: [Side; 2] = [Side::HubSpot, Side::MailerLite];
const STATUSES: [MlStatus; 5] =
    [MlStatus::Active, MlStatus::Unsubscribed, MlStatus::Unconfirmed, MlStatus::Bounced, MlStatus::Junk];

#[derive(Debug)]
struct Scenario {
    config: ConnectionConfig,
    phase: Phase,
    link: Option<Link>,
    hs: Option<HubSpotContact>,
    ml: Option<MailerLiteSubscriber>,
}

fn scenario(data: &[u16]) -> Scenario {
    let mut t = Tape { data, at: 0 };
    let cands = candidates();
    let mut config = ConnectionConfig::new("prop");
    config.direction = *t.one(&DIRECTIONS);
    config.conflict_winner = *t.one(&SIDES);
    config.target_group = t.chance(60).then(|| "tg".to_string());
    config.hubspot_rule =
        if t.chance(50) { HubSpotRule::All } else { HubSpotRule::Lists { list_ids: vec!["7".into()] } };
    config.mailerlite_rule = match t.pick(3) {
        0 => MailerLiteRule::All,
        1 => MailerLiteRule::Groups { group_ids: vec![if t.chance(50) { "tg".into() } else { "g1".into() }] },
        _ => MailerLiteRule::Segments { segment_ids: vec!["s1".into()] },
    };
    config.engagement.enabled = t.chance(70);
    config.engagement.unsubscribe_in_hubspot = t.chance(30);
    let mut used = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        if t.chance(60) {
            let mut m = c.mapping.clone();
            if m.hubspot_object == HubSpotObject::Contact && m.hubspot_property != "lead_score" {
                m.direction = *t.one(&DIRECTIONS);
            }
            m.conflict_winner = if t.chance(25) { Some(*t.one(&SIDES)) } else { None };
            if m.direction.one_way_source().is_some() {
                m.conflict_winner = None;
            }
            m.never_overwrite_with_blank = t.chance(25);
            config.mappings.push(m);
            used.push(i);
        }
    }
    let phase = if t.chance(50) { Phase::Initial } else { Phase::Continuous };

    let emails = ["ada@example.com", "ada@newco.com", "Ada@Example.com ", "broken"];
    let hs = t.chance(80).then(|| {
        let mut props: Vec<(&str, &str)> = Vec::new();
        let mut company = BTreeMap::new();
        for &i in &used {
            let c = &cands[i];
            let v = *t.one(c.hs_values);
            if c.mapping.hubspot_object == HubSpotObject::Company {
                company.insert(c.mapping.hubspot_property.clone(), (!v.is_empty()).then(|| v.to_string()));
            } else {
                props.push((c.mapping.hubspot_property.as_str(), v));
            }
        }
        let optout = if t.chance(20) { "true" } else { "false" };
        props.push(("hs_email_optout", optout));
        let status = *t.one(&["", "active", "unsubscribed"]);
        props.push((engagement::STATUS, status));
        let email = if t.chance(85) { emails[0] } else { *t.one(&emails) };
        let mut h = support::hs("101", email, &props);
        h.company = company;
        h.in_scope = match &config.hubspot_rule {
            HubSpotRule::All => true,
            HubSpotRule::Lists { .. } => t.chance(60),
        };
        h
    });
    let ml = t.chance(80).then(|| {
        let mut fields = serde_json::Map::new();
        for &i in &used {
            let c = &cands[i];
            let values = (c.ml_values)();
            fields.insert(c.mapping.mailerlite_field.clone(), t.one(&values).clone());
        }
        let email = if t.chance(85) { emails[0] } else { *t.one(&emails) };
        let mut m = support::ml("909", email, Value::Object(fields));
        m.status = *t.one(&STATUSES);
        m.groups = [("tg", 50), ("g1", 30)].iter().filter(|(_, p)| t.chance(*p)).map(|(g, _)| g.to_string()).collect();
        let segments: Vec<String> = if t.chance(60) { vec!["s1".into()] } else { Vec::new() };
        m.in_scope = config.mailerlite_rule.matches(m.status, &m.groups, &segments);
        m
    });

    let link = t.chance(60).then(|| {
        let old_email = ["ada@example.com", "ada@old.com"][t.pick(2)];
        let mut l = Link::new("L1", old_email);
        l.hubspot_id = (hs.is_some() || t.chance(50)).then(|| "101".to_string());
        l.mailerlite_id = (ml.is_some() || t.chance(50)).then(|| "909".to_string());
        if l.hubspot_id.is_none() && l.mailerlite_id.is_none() {
            l.hubspot_id = Some("101".into());
        }
        l.hs_in_scope = t.chance(60);
        l.ml_in_scope = t.chance(60);
        l.in_target_group = t.chance(50);
        l.hs_opted_out = t.chance(20);
        l.ml_status = if t.chance(70) { Some(*t.one(&STATUSES)) } else { None };
        l.hs_deleted = hs.is_none() && t.chance(50);
        l.ml_deleted = ml.is_none() && t.chance(50);
        let planner = Planner::new(&config, &support::schemas());
        for (mapping, conv) in planner.conversions() {
            if t.chance(70) {
                let c = cands.iter().find(|c| c.mapping.key() == mapping.key()).expect("candidate");
                let hv = *t.one(c.hs_values);
                let mv = t.one(&(c.ml_values)()).clone();
                l.bases.insert(
                    mapping.key(),
                    FieldBase { hubspot: conv.norm_hs(Some(hv)), mailerlite: conv.norm_ml(&mv) },
                );
            }
        }
        l
    });
    // Without a link, the engine only presents two records together when they share an email.
    let ml = match (&link, &hs, ml) {
        (None, Some(h), Some(m)) if h.email().is_none() || h.email() != m.email() => None,
        (_, _, ml) => ml,
    };
    Scenario { config, phase, link, hs, ml }
}

fn run(s: &Scenario) -> (Planner, Plan, Applied) {
    let planner = Planner::new(&s.config, &support::schemas());
    let plan = planner.plan(s.phase, s.link.as_ref(), s.hs.as_ref(), s.ml.as_ref());
    let applied = apply(&s.config, &plan, s.hs.as_ref(), s.ml.as_ref(), "102", "910");
    (planner, plan, applied)
}

fn hs_value(h: &HubSpotContact, m: &FieldMapping) -> Option<String> {
    match m.hubspot_object {
        HubSpotObject::Contact => h.property(&m.hubspot_property).map(str::to_string),
        HubSpotObject::Company => h.company.get(&m.hubspot_property).cloned().flatten(),
    }
}

/// The sides a mapping may flow from, as the rules define it.
fn flows(config: &ConnectionConfig, m: &FieldMapping) -> (bool, bool) {
    let schemas = support::schemas();
    let writable = m.hubspot_object == HubSpotObject::Contact
        && schemas.hubspot_property(m.hubspot_object, &m.hubspot_property).is_some_and(HsProperty::is_writable);
    (
        config.direction.allows_from(Side::HubSpot) && m.direction.allows_from(Side::HubSpot),
        config.direction.allows_from(Side::MailerLite) && m.direction.allows_from(Side::MailerLite) && writable,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Applying a plan and planning again gives an empty plan: our own writes never cause
    /// another write (no echo, no ping-pong).
    #[test]
    fn planning_after_applying_a_plan_writes_nothing(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let (planner, plan, applied) = run(&s);
        let again = planner.plan(Phase::Continuous, applied.link.as_ref(), applied.hubspot.as_ref(), applied.mailerlite.as_ref());
        prop_assert!(!again.has_writes(), "scenario: {s:#?}\nfirst plan: {plan:#?}\nsecond plan: {again:#?}");
    }

    /// After applying, every mapped field that may flow both ways (both records in scope) holds
    /// the same value on both sides through the conversion, unless the plan recorded a per-field
    /// error or kept a blank on purpose; a one-way field mirrors its non-blank source.
    #[test]
    fn after_applying_every_syncable_field_converges(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let (planner, plan, applied) = run(&s);
        let (Some(h), Some(m), Some(link)) = (&applied.hubspot, &applied.mailerlite, &applied.link) else { return Ok(()) };
        if link.hs_deleted || link.ml_deleted {
            return Ok(());
        }
        for (mapping, conv) in planner.conversions() {
            if plan.errors.iter().any(|e| e.mapping == mapping.key()) {
                continue;
            }
            let hv = conv.norm_hs(hs_value(h, mapping).as_deref());
            let mv = conv.norm_ml(m.field(&mapping.mailerlite_field));
            let (from_hs, from_ml) = flows(&s.config, mapping);
            let same = conv.equivalent(hv.as_deref(), mv.as_deref());
            if from_hs && from_ml {
                if !(h.in_scope && m.in_scope) {
                    continue;
                }
                let blank_kept = mapping.never_overwrite_with_blank && (hv.is_none() || mv.is_none());
                prop_assert!(same || blank_kept, "{} not converged: {hv:?} vs {mv:?}\n{s:#?}\n{plan:#?}", mapping.key());
            } else if from_hs && h.in_scope && hv.is_some() {
                prop_assert!(same, "{} (from HubSpot) not converged: {hv:?} vs {mv:?}\n{s:#?}\n{plan:#?}", mapping.key());
            } else if from_ml && !from_hs && m.in_scope && mv.is_some() {
                prop_assert!(same, "{} (from MailerLite) not converged: {hv:?} vs {mv:?}\n{s:#?}\n{plan:#?}", mapping.key());
            }
        }
    }

    /// No plan sets MailerLite `active` for an unsubscribed, bounced or junk subscriber, or for
    /// a HubSpot contact that opted out of email.
    #[test]
    fn no_plan_reactivates_a_subscriber_or_activates_an_opted_out_contact(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let (_, plan, applied) = run(&s);
        let opted_out = s.hs.as_ref().is_some_and(HubSpotContact::opted_out);
        match &plan.mailerlite {
            Some(MailerLiteWrite::Update { status, .. }) => prop_assert_ne!(*status, Some(MlStatus::Active)),
            Some(MailerLiteWrite::Create { status, .. }) => prop_assert!(!(opted_out && *status == MlStatus::Active)),
            None => {}
        }
        if let (Some(before), Some(after)) = (&s.ml, &applied.mailerlite)
            && before.status.is_suppressed()
        {
            prop_assert_eq!(after.status, before.status);
        }
    }

    /// A one-way mapping never writes to its source side.
    #[test]
    fn a_one_way_mapping_never_writes_to_its_source(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let (_, plan, _) = run(&s);
        let hs_written = support::hs_props(&plan);
        let ml_written = support::ml_fields(&plan);
        for m in &s.config.mappings {
            match m.direction {
                Direction::HubSpotToMailerLite => prop_assert!(
                    m.hubspot_object == HubSpotObject::Company || !hs_written.contains_key(&m.hubspot_property),
                    "{} wrote its HubSpot source", m.key()
                ),
                Direction::MailerLiteToHubSpot => {
                    prop_assert!(!ml_written.contains_key(&m.mailerlite_field), "{} wrote its MailerLite source", m.key())
                }
                Direction::TwoWay => {}
            }
            if s.config.direction == Direction::HubSpotToMailerLite && m.hubspot_object == HubSpotObject::Contact {
                prop_assert!(!hs_written.contains_key(&m.hubspot_property));
            }
            if s.config.direction == Direction::MailerLiteToHubSpot {
                prop_assert!(!ml_written.contains_key(&m.mailerlite_field));
            }
        }
    }

    /// A record that exists on a side is never created again there (no duplicates).
    #[test]
    fn a_plan_never_creates_a_record_that_exists(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let (_, plan, _) = run(&s);
        if s.hs.is_some() {
            prop_assert!(!matches!(plan.hubspot, Some(HubSpotWrite::Create { .. })), "HubSpot contact created twice");
        }
        if s.ml.is_some() {
            prop_assert!(!matches!(plan.mailerlite, Some(MailerLiteWrite::Create { .. })), "subscriber created twice");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consent crosses every link

/// Every config that matters for consent: each direction, each rule kind on both sides, with and
/// without a target group, engagement recording and the HubSpot opt-out on or off.
fn consent_configs() -> Vec<ConnectionConfig> {
    let mut out = Vec::new();
    for direction in DIRECTIONS {
        for hubspot_rule in [HubSpotRule::All, HubSpotRule::Lists { list_ids: vec!["7".into()] }] {
            for mailerlite_rule in [
                MailerLiteRule::All,
                MailerLiteRule::Groups { group_ids: vec!["g1".into()] },
                MailerLiteRule::Groups { group_ids: vec!["tg".into()] },
                MailerLiteRule::Segments { segment_ids: vec!["s1".into()] },
            ] {
                for target in [None, Some("tg".to_string())] {
                    for (enabled, opt_out) in [(false, false), (true, false), (false, true), (true, true)] {
                        let mut c = ConnectionConfig::new("consent");
                        c.direction = direction;
                        c.hubspot_rule = hubspot_rule.clone();
                        c.mailerlite_rule = mailerlite_rule.clone();
                        c.target_group = target.clone();
                        c.engagement.enabled = enabled;
                        c.engagement.unsubscribe_in_hubspot = opt_out;
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// Every HubSpot contact state: opted out or not, in or out of the rule, with each recorded
/// MailerLite status.
fn consent_contacts(config: &ConnectionConfig) -> Vec<HubSpotContact> {
    let mut out = Vec::new();
    for opted_out in [false, true] {
        for in_scope in [false, true] {
            if !in_scope && config.hubspot_rule == HubSpotRule::All {
                continue;
            }
            for status in ["", "active", "unsubscribed"] {
                let optout = if opted_out { "true" } else { "false" };
                let mut h =
                    support::hs("101", "ada@example.com", &[("hs_email_optout", optout), (engagement::STATUS, status)]);
                h.in_scope = in_scope;
                out.push(h);
            }
        }
    }
    out
}

/// Every subscriber state: each status, in the target group, another group or none, in the
/// segment or not.
fn consent_subscribers(config: &ConnectionConfig) -> Vec<MailerLiteSubscriber> {
    let mut out = Vec::new();
    for status in STATUSES {
        for groups in [vec![], vec!["tg".to_string()], vec!["g1".to_string()]] {
            for in_segment in [false, true] {
                let mut m = support::ml("909", "ada@example.com", json!({}));
                m.status = status;
                m.groups = groups.clone();
                let segments: Vec<String> = if in_segment { vec!["s1".into()] } else { Vec::new() };
                m.in_scope = config.mailerlite_rule.matches(status, &m.groups, &segments);
                out.push(m);
            }
        }
    }
    out
}

/// What the link may remember: nothing yet, or either opt-out with any recorded status.
fn consent_links() -> Vec<Option<Link>> {
    let mut out = vec![None];
    for hs_opted_out in [false, true] {
        for ml_status in [None, Some(MlStatus::Active), Some(MlStatus::Unsubscribed), Some(MlStatus::Unconfirmed)] {
            let mut l = Link::new("L1", "ada@example.com");
            l.hubspot_id = Some("101".into());
            l.mailerlite_id = Some("909".into());
            l.hs_in_scope = true;
            l.ml_in_scope = true;
            l.hs_opted_out = hs_opted_out;
            l.ml_status = ml_status;
            out.push(Some(l));
        }
    }
    out
}

/// Checks one case: after the plan is applied, a linked pair never has an opted-out contact
/// with an active or unconfirmed subscriber, a MailerLite unsubscribe shows on the contact (its
/// status property when engagement is recorded; an opt-out when the connection asks for one),
/// and nobody is resubscribed.
fn consent_holds(
    config: &ConnectionConfig,
    planner: &Planner,
    phase: Phase,
    link: Option<&Link>,
    hs: Option<&HubSpotContact>,
    ml: Option<&MailerLiteSubscriber>,
) -> Result<(), String> {
    let plan = planner.plan(phase, link, hs, ml);
    let applied = apply(config, &plan, hs, ml, "102", "910");
    let describe =
        || format!("config {config:?}\nphase {phase:?}\nlink {link:?}\nhs {hs:?}\nml {ml:?}\nplan {plan:#?}");
    if let (Some(before), Some(after)) = (ml, &applied.mailerlite)
        && before.status.is_suppressed()
        && after.status != before.status
    {
        return Err(format!("resubscribed: {:?} became {:?}\n{}", before.status, after.status, describe()));
    }
    let (Some(_), Some(h), Some(m)) = (&plan.link, &applied.hubspot, &applied.mailerlite) else { return Ok(()) };
    if h.opted_out() && matches!(m.status, MlStatus::Active | MlStatus::Unconfirmed) {
        return Err(format!("an opted-out contact is {} in MailerLite\n{}", m.status, describe()));
    }
    if m.status == MlStatus::Unsubscribed {
        if config.engagement.enabled && h.property(engagement::STATUS) != Some("unsubscribed") {
            return Err(format!("the unsubscribe is not recorded on the contact\n{}", describe()));
        }
        if config.engagement.unsubscribe_in_hubspot && !h.opted_out() {
            return Err(format!("the unsubscribe did not opt the contact out\n{}", describe()));
        }
    }
    Ok(())
}

/// Every config (all three directions, every rule kind on both sides) and every pair of
/// states, linked or being linked, at the initial sync and after: consent crosses the link.
#[test]
fn consent_crosses_every_link_in_every_config_and_every_pair_of_states() {
    let mut cases = 0usize;
    for config in consent_configs() {
        let planner = Planner::new(&config, &support::schemas());
        let contacts = consent_contacts(&config);
        let subscribers = consent_subscribers(&config);
        for link in consent_links() {
            for phase in [Phase::Initial, Phase::Continuous] {
                for h in &contacts {
                    for m in &subscribers {
                        cases += 1;
                        if let Err(e) = consent_holds(&config, &planner, phase, link.as_ref(), Some(h), Some(m)) {
                            panic!("{e}");
                        }
                    }
                    // A subscriber to be created (or a deleted one).
                    if let Err(e) = consent_holds(&config, &planner, phase, link.as_ref(), Some(h), None) {
                        panic!("{e}");
                    }
                }
                for m in &subscribers {
                    if let Err(e) = consent_holds(&config, &planner, phase, link.as_ref(), None, Some(m)) {
                        panic!("{e}");
                    }
                }
            }
        }
    }
    assert!(cases > 900_000, "{cases} cases");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The same over random configs with random mappings, field values and link bases: what the
    /// fields do never changes what consent does.
    #[test]
    fn consent_crosses_every_link_whatever_the_mappings(data in prop::collection::vec(any::<u16>(), 96)) {
        let s = scenario(&data);
        let planner = Planner::new(&s.config, &support::schemas());
        let outcome = consent_holds(&s.config, &planner, s.phase, s.link.as_ref(), s.hs.as_ref(), s.ml.as_ref());
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
