//! One or more example tests per rule of docs/sync-rules.md, each named after its rule.

mod support;

use hmsync_core::*;
use serde_json::json;
use support::*;

fn linked_after_initial(
    c: &ConnectionConfig,
    h: &HubSpotContact,
    m: &MailerLiteSubscriber,
) -> (Link, HubSpotContact, MailerLiteSubscriber) {
    let (_, a) = run(&planner(c), Phase::Initial, None, Some(h), Some(m));
    let mut link = a.link.expect("linked");
    link.id = "L1".into();
    (link, a.hubspot.unwrap(), a.mailerlite.unwrap())
}

// ---------------------------------------------------------------- Linking and identity

#[test]
fn contacts_are_linked_by_email_compared_trimmed_and_lowercased() {
    let h = hs("1", "  Ada@Example.COM ", &[("firstname", "Ada")]);
    let m = ml("9", "ada@example.com", json!({"name": "Ada"}));
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), Some(&m));
    let link = plan.link.expect("a link");
    assert_eq!((link.hubspot_id.as_deref(), link.mailerlite_id.as_deref()), (Some("1"), Some("9")));
    assert_eq!(link.email, "ada@example.com");
    assert!(!matches!(plan.hubspot, Some(HubSpotWrite::Create { .. })));
    assert!(!matches!(plan.mailerlite, Some(MailerLiteWrite::Create { .. })));
    assert!(plan.changes.iter().any(|c| c.reason == Reason::Linked));
}

#[test]
fn hubspot_primary_email_is_used_and_additional_emails_are_ignored() {
    let h = hs("1", "ada@example.com", &[("hs_additional_emails", "ada@old.example.com;a@x.com")]);
    assert_eq!(h.email().as_deref(), Some("ada@example.com"));
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), None);
    match plan.mailerlite {
        Some(MailerLiteWrite::Create { email, .. }) => assert_eq!(email, "ada@example.com"),
        other => panic!("expected a create, got {other:?}"),
    }
}

#[test]
fn several_candidates_share_an_email_link_the_oldest() {
    let oldest = choose_oldest(&[
        Candidate { id: "71", created_at: "2023-05-01T10:00:00.000Z" },
        Candidate { id: "70", created_at: "2021-01-01T10:00:00.000Z" },
    ]);
    assert_eq!(oldest, Some("70"));
}

#[test]
fn contacts_without_a_valid_email_are_excluded_not_errors() {
    let p = planner(&config());
    let plan = p.plan(Phase::Initial, None, Some(&hs("1", "not-an-email", &[("firstname", "Ada")])), None);
    assert_eq!(plan.exclusion, Some(Exclusion::NoEmail));
    assert!(plan.errors.is_empty() && !plan.has_writes() && plan.link.is_none());
    let plan = p.plan(Phase::Initial, None, None, Some(&ml("9", "broken@", json!({}))));
    assert_eq!(plan.exclusion, Some(Exclusion::NoEmail));
}

#[test]
fn email_change_in_hubspot_follows_the_link_and_updates_mailerlite() {
    let c = config();
    let (link, mut h, m) =
        linked_after_initial(&c, &hs("1", "ada@example.com", &[]), &ml("9", "ada@example.com", empty()));
    h.properties.insert("email".into(), Some("ada@newco.com".into()));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    match &plan.mailerlite {
        Some(MailerLiteWrite::Update { id, email, .. }) => {
            assert_eq!((id.as_str(), email.as_deref()), ("9", Some("ada@newco.com")))
        }
        other => panic!("expected an email update, got {other:?}"),
    }
    assert!(plan.hubspot.is_none() || !hs_props(&plan).contains_key("email"));
    let next = plan.link.unwrap();
    assert_eq!(next.email, "ada@newco.com");
    assert_eq!((next.hubspot_id.as_deref(), next.mailerlite_id.as_deref()), (Some("1"), Some("9")), "held by both ids");
}

#[test]
fn email_change_in_mailerlite_follows_the_link_and_updates_hubspot() {
    let c = config();
    let (link, h, mut m) =
        linked_after_initial(&c, &hs("1", "ada@example.com", &[]), &ml("9", "ada@example.com", empty()));
    m.email = "ada@personal.org".into();
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(hs_props(&plan).get("email").map(String::as_str), Some("ada@personal.org"));
    assert_eq!(plan.link.unwrap().email, "ada@personal.org");
}

#[test]
fn a_value_the_destination_refused_is_withheld_and_the_rest_of_the_contact_still_syncs() {
    // Ada's new email is another subscriber's: MailerLite refuses it. Her new first name and
    // her opt-out still reach her subscriber; the email change stays pending, not forgotten.
    let c = config();
    let p = planner(&c);
    let (link, mut h, m) = linked_after_initial(
        &c,
        &hs("1", "ada@example.com", &[("firstname", "Ada")]),
        &ml("9", "ada@example.com", empty()),
    );
    h.properties.insert("email".into(), Some("taken@example.com".into()));
    h.properties.insert("firstname".into(), Some("Zed".into()));
    h.properties.insert("hs_email_optout".into(), Some("true".into()));
    let mut plan = p.plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(plan.written_value(Side::MailerLite, "email").as_deref(), Some("taken@example.com"));
    assert!(p.withhold(&mut plan, Some(&link), Side::MailerLite, "email"));
    match &plan.mailerlite {
        Some(MailerLiteWrite::Update { email, fields, status, .. }) => {
            assert_eq!(
                (email, fields.get("name"), status),
                (&None, Some(&json!("Zed")), &Some(MlStatus::Unsubscribed))
            );
        }
        other => panic!("expected the rest of the update, got {other:?}"),
    }
    assert!(!plan.changes.iter().any(|c| c.field == "email"));
    let next = plan.link.clone().unwrap();
    assert_eq!(next.email, "ada@example.com", "the link keeps the email both apps still have");
    assert!(!p.withhold(&mut plan, Some(&link), Side::MailerLite, "email"), "nothing more to withhold");

    // Next time the email change is still planned (and withheld again while it stands refused).
    let m = apply(&c, &plan, Some(&h), Some(&m), "-", "-").mailerlite.unwrap();
    let again = p.plan(Phase::Continuous, Some(&next), Some(&h), Some(&m));
    assert_eq!(again.written_value(Side::MailerLite, "email").as_deref(), Some("taken@example.com"));
    assert!(ml_fields(&again).is_empty(), "the first name is synced");
    assert_eq!(ml_status_write(&again), None, "the opt-out is synced");

    // A refused field is withheld the same way: its base stays, so the change stays pending.
    h.properties.insert("city".into(), Some("Lima".into()));
    let mut plan = p.plan(Phase::Continuous, Some(&next), Some(&h), Some(&m));
    assert!(p.withhold(&mut plan, Some(&next), Side::MailerLite, "city"));
    let key = FieldMapping::new("city", "city").key();
    assert!(next.bases.contains_key(&key));
    assert_eq!(plan.link.unwrap().bases.get(&key), next.bases.get(&key));
}

#[test]
fn a_value_hubspot_refused_on_a_create_is_withheld_and_the_contact_is_still_created() {
    let p = planner(&config());
    let m = ml("9", "a@x.com", json!({"name": "Ada", "city": "Oslo"}));
    let mut plan = p.plan(Phase::Initial, None, None, Some(&m));
    assert_eq!(plan.written_value(Side::HubSpot, "city").as_deref(), Some("Oslo"));
    assert!(p.withhold(&mut plan, None, Side::HubSpot, "city"));
    let Some(HubSpotWrite::Create { properties }) = &plan.hubspot else { panic!("still a create: {:?}", plan.hubspot) };
    assert_eq!((properties.get("firstname").map(String::as_str), properties.get("city")), (Some("Ada"), None));
    assert!(!p.withhold(&mut plan, None, Side::HubSpot, "email"), "never without its email");
    assert!(matches!(plan.hubspot, Some(HubSpotWrite::Create { .. })));
}

#[test]
fn email_changed_differently_on_both_sides_the_conflict_winner_wins() {
    let mut c = config();
    c.conflict_winner = Side::MailerLite;
    let (link, mut h, mut m) =
        linked_after_initial(&c, &hs("1", "ada@example.com", &[]), &ml("9", "ada@example.com", empty()));
    h.properties.insert("email".into(), Some("ada@crm.com".into()));
    m.email = "ada@mail.com".into();
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(hs_props(&plan).get("email").map(String::as_str), Some("ada@mail.com"));
    assert_eq!(plan.link.unwrap().email, "ada@mail.com");
}

#[test]
fn hubspot_merge_rekeys_the_link_to_new_object_id_else_primary() {
    assert_eq!(survivor_id("111", Some("999")), "999");
    assert_eq!(survivor_id("111", None), "111");
    let mut l = Link::new("L1", "a@x.com");
    l.hubspot_id = Some("222".into());
    let out = rekey_after_merge(survivor_id("111", None), Some("a@x.com"), None, vec![l]);
    assert_eq!(out.kept.unwrap().hubspot_id.as_deref(), Some("111"));
}

#[test]
fn a_hubspot_merge_into_a_new_record_keeps_the_link_and_its_subscriber_in_the_target_group() {
    // HubSpot merges contact 1 (primary) and contact 2 into a new record 300 with the primary's
    // values: the link moves to 300 and nothing about its subscriber changes.
    let c = config();
    let p = planner(&c);
    let (link, h, m) =
        linked_after_initial(&c, &hs("1", "ada@x.com", &[("firstname", "Ada")]), &ml("9", "ada@x.com", empty()));
    assert!(m.groups.contains(&"tg".to_string()) && link.in_target_group);
    let out = rekey_after_merge("300", Some("ada@x.com"), None, vec![link.clone()]);
    let kept = out.kept.expect("the link is kept");
    assert_eq!((kept.id.as_str(), kept.hubspot_id.as_deref()), (link.id.as_str(), Some("300")));
    let mut survivor = h.clone();
    survivor.id = "300".into();
    let plan = p.plan(Phase::Continuous, Some(&kept), Some(&survivor), Some(&m));
    assert!(plan.group_changes.is_empty(), "no remove and re-add: {:?}", plan.group_changes);
    assert!(plan.mailerlite.is_none(), "{:?}", plan.mailerlite);
    let next = plan.link.unwrap();
    assert_eq!(next.hubspot_id.as_deref(), Some("300"));
    assert!(next.in_target_group && !next.hs_deleted);
}

#[test]
fn a_merged_away_contacts_link_is_retired_like_a_deleted_contacts() {
    let c = config();
    let p = planner(&c);
    let (link, _, m) = linked_after_initial(&c, &hs("2", "bo@x.com", &[]), &ml("9", "bo@x.com", empty()));
    let mut survivor = Link::new("L1", "ada@x.com");
    survivor.hubspot_id = Some("1".into());
    let out = rekey_after_merge("1", Some("ada@x.com"), None, vec![link, survivor]);
    let retired = out.retired[0].clone();
    assert!(retired.hs_deleted);
    // Its subscriber is planned as that of a deleted contact: out of the target group, nothing else.
    assert!(m.groups.contains(&"tg".to_string()));
    let plan = p.plan(Phase::Continuous, Some(&retired), None, Some(&m));
    assert_eq!(plan.group_changes, vec![GroupChange::Remove { group_id: "tg".into() }]);
    assert!(plan.hubspot.is_none() && plan.mailerlite.is_none());
    assert!(plan.link.unwrap().hs_deleted);
}

#[test]
fn a_merge_into_a_contact_whose_email_another_subscriber_has_links_the_survivor_by_email() {
    // Contact 2 (linked to subscriber 9) is merged into contact 1, never linked, whose email
    // subscriber 8 has: the survivor belongs with subscriber 8; contact 2's link is retired.
    let mut merged = Link::new("L2", "bo@x.com");
    merged.hubspot_id = Some("2".into());
    merged.mailerlite_id = Some("9".into());
    let out = rekey_after_merge("1", Some("ada@x.com"), Some("8"), vec![merged.clone()]);
    assert_eq!(out.kept, None);
    assert_eq!(out.retired.len(), 1);
    assert!(out.retired[0].hs_deleted);
    // Without a subscriber of its own, the survivor keeps the merged contact's link (and its
    // email then follows the link).
    let out = rekey_after_merge("1", Some("ada@x.com"), None, vec![merged.clone()]);
    assert_eq!(out.kept.map(|k| k.hubspot_id), Some(Some("1".into())));
    // The subscriber found by email is the link's own: kept.
    let out = rekey_after_merge("1", Some("ada@x.com"), Some("9"), vec![merged]);
    assert!(out.kept.is_some());
}

#[test]
fn after_a_merge_the_survivor_shows_its_own_subscribers_status() {
    let mut c = config();
    c.engagement.enabled = true;
    let p = planner(&c);
    let (link, mut h, mut m) = linked_after_initial(&c, &hs("1", "ada@x.com", &[]), &ml("9", "ada@x.com", empty()));
    m.status = MlStatus::Unsubscribed;
    h.properties.insert(engagement::STATUS.into(), Some("unsubscribed".into()));
    let plan = p.plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    let link = plan.link.unwrap();
    assert_eq!(link.ml_status, Some(MlStatus::Unsubscribed));
    // HubSpot merges a newer contact into it and copies that contact's status over.
    h.properties.insert(engagement::STATUS.into(), Some("active".into()));
    let out = rekey_after_merge("1", Some("ada@x.com"), None, vec![link.clone()]);
    let plan = p.plan(Phase::Continuous, Some(out.kept.as_ref().unwrap()), Some(&h), Some(&m));
    assert_eq!(hs_props(&plan).get(engagement::STATUS).map(String::as_str), Some("unsubscribed"));
    assert!(!plan.link.unwrap().hs_merged, "checked once");
    // Without a merge, a status the sync recorded is not written again on a stale read.
    let plan = p.plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(!hs_props(&plan).contains_key(engagement::STATUS));
}

// ---------------------------------------------------------------- Initial sync

#[test]
fn initial_sync_creates_the_missing_counterpart_on_each_side() {
    let p = planner(&config());
    let plan = p.plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[("firstname", "Ada")])), None);
    assert!(matches!(&plan.mailerlite, Some(MailerLiteWrite::Create { fields, .. }) if fields["name"] == json!("Ada")));
    let plan = p.plan(Phase::Initial, None, None, Some(&ml("9", "b@x.com", json!({"name": "Bo"}))));
    match &plan.hubspot {
        Some(HubSpotWrite::Create { properties }) => {
            assert_eq!(properties["email"], "b@x.com");
            assert_eq!(properties["firstname"], "Bo");
        }
        other => panic!("expected a HubSpot create, got {other:?}"),
    }
}

#[test]
fn mailerlite_create_is_active_and_joins_the_target_group() {
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[])), None);
    match plan.mailerlite {
        Some(MailerLiteWrite::Create { status, groups, .. }) => {
            assert_eq!(status, MlStatus::Active);
            assert_eq!(groups, vec!["tg".to_string()]);
        }
        other => panic!("expected a create, got {other:?}"),
    }
    assert!(plan.link.unwrap().in_target_group);
}

#[test]
fn existing_unsubscribed_bounced_and_junk_subscribers_keep_their_status() {
    for status in [MlStatus::Unsubscribed, MlStatus::Bounced, MlStatus::Junk] {
        let mut m = ml("9", "a@x.com", json!({"name": "Old"}));
        m.status = status;
        let plan =
            planner(&config()).plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[("firstname", "New")])), Some(&m));
        assert_eq!(ml_status_write(&plan), None, "{status}");
        assert_eq!(ml_fields(&plan).get("name"), Some(&json!("New")), "fields still sync for {status}");
    }
}

#[test]
fn deleted_and_forgotten_subscribers_are_recreated_active_by_the_initial_sync() {
    let mut link = Link::new("L1", "a@x.com");
    link.hubspot_id = Some("1".into());
    link.mailerlite_id = Some("9".into());
    link.ml_deleted = true;
    link.hs_in_scope = true;
    let plan = planner(&config()).plan(Phase::Initial, Some(&link), Some(&hs("1", "a@x.com", &[])), None);
    assert!(matches!(plan.mailerlite, Some(MailerLiteWrite::Create { status: MlStatus::Active, .. })));
    let next = plan.link.unwrap();
    assert!(!next.ml_deleted && next.mailerlite_id.is_none(), "the new subscriber's id replaces the old one");
}

#[test]
fn opted_out_hubspot_contact_is_created_unsubscribed_never_active() {
    let h = hs("1", "a@x.com", &[("hs_email_optout", "true")]);
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), None);
    assert!(matches!(plan.mailerlite, Some(MailerLiteWrite::Create { status: MlStatus::Unsubscribed, .. })));
}

#[test]
fn opted_out_hubspot_contact_is_never_left_active_in_mailerlite() {
    let h = hs("1", "a@x.com", &[("hs_email_optout", "true")]);
    for status in [MlStatus::Active, MlStatus::Unconfirmed] {
        let mut m = ml("9", "a@x.com", empty());
        m.status = status;
        let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), Some(&m));
        assert_eq!(ml_status_write(&plan), Some(MlStatus::Unsubscribed));
        assert_eq!(plan.safety.unsubscribes, 1);
    }
}

#[test]
fn initial_conflict_the_winner_value_goes_to_both() {
    let h = hs("1", "a@x.com", &[("firstname", "Ada"), ("city", "Tallinn")]);
    let m = ml("9", "a@x.com", json!({"name": "Adeline", "city": "Berlin"}));
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("name"), Some(&json!("Ada")));
    assert_eq!(ml_fields(&plan).get("city"), Some(&json!("Tallinn")));
    assert!(!hs_props(&plan).contains_key("firstname"));
    assert_eq!(plan.conflicts(), 2);
    let mut c = config();
    c.conflict_winner = Side::MailerLite;
    let plan = planner(&c).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert_eq!(hs_props(&plan).get("firstname").map(String::as_str), Some("Adeline"));
    assert!(ml_fields(&plan).is_empty());
}

#[test]
fn a_value_on_one_side_only_fills_the_empty_side_in_the_mappings_direction() {
    let h = hs("1", "a@x.com", &[("firstname", "Ada")]);
    let m = ml("9", "a@x.com", json!({"city": "Berlin"}));
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("name"), Some(&json!("Ada")));
    assert_eq!(hs_props(&plan).get("city").map(String::as_str), Some("Berlin"));
    let mut c = config();
    c.mappings = vec![FieldMapping::new("city", "city").with_direction(Direction::HubSpotToMailerLite)];
    let plan = planner(&c).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert!(!hs_props(&plan).contains_key("city"), "a one-way mapping never fills its source");
    assert!(ml_fields(&plan).is_empty(), "a blank source does not clear the destination at the initial sync");
}

// ---------------------------------------------------------------- Continuous sync

#[test]
fn three_way_merge_only_one_side_changed_that_change_flows() {
    let c = config();
    let (link, mut h, m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    h.properties.insert("firstname".into(), Some("Augusta".into()));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan), [("name".to_string(), json!("Augusta"))].into());
    assert!(
        plan.changes
            .iter()
            .any(|ch| ch.reason == Reason::ChangedOn(Side::HubSpot) && ch.after.as_deref() == Some("Augusta"))
    );
    let mut m2 = m.clone();
    m2.fields.insert("name".into(), json!("Countess"));
    let plan =
        planner(&c).plan(Phase::Continuous, Some(&link), Some(&hs("1", "a@x.com", &[("firstname", "Ada")])), Some(&m2));
    assert_eq!(hs_props(&plan).get("firstname").map(String::as_str), Some("Countess"));
    assert!(ml_fields(&plan).is_empty());
}

#[test]
fn three_way_merge_both_changed_differently_the_conflict_winner_wins() {
    let c = config();
    let (link, mut h, mut m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    h.properties.insert("firstname".into(), Some("Augusta".into()));
    m.fields.insert("name".into(), json!("Countess"));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("name"), Some(&json!("Augusta")));
    assert!(!hs_props(&plan).contains_key("firstname"));
    assert_eq!(plan.conflicts(), 1);
}

#[test]
fn three_way_merge_both_changed_to_the_same_value_writes_nothing() {
    let c = config();
    let (link, mut h, mut m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    h.properties.insert("firstname".into(), Some("Augusta".into()));
    m.fields.insert("name".into(), json!("Augusta"));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(!plan.has_writes());
    assert_eq!(plan.link.unwrap().bases["contact.firstname=name"].hubspot.as_deref(), Some("Augusta"));
}

#[test]
fn a_mapping_can_override_the_conflict_winner() {
    let mut c = config();
    c.mappings[0].conflict_winner = Some(Side::MailerLite);
    let (link, mut h, mut m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada"), ("city", "Oslo")]),
        &ml("9", "a@x.com", json!({"name": "Ada", "city": "Oslo"})),
    );
    h.properties.insert("firstname".into(), Some("Augusta".into()));
    h.properties.insert("city".into(), Some("Riga".into()));
    m.fields.insert("name".into(), json!("Countess"));
    m.fields.insert("city".into(), json!("Vilnius"));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(
        hs_props(&plan).get("firstname").map(String::as_str),
        Some("Countess"),
        "field override: MailerLite wins"
    );
    assert_eq!(ml_fields(&plan).get("city"), Some(&json!("Riga")), "connection winner: HubSpot");
}

#[test]
fn clearing_a_field_propagates_both_ways() {
    let c = config();
    let (link, mut h, m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada"), ("city", "Oslo")]),
        &ml("9", "a@x.com", json!({"name": "Ada", "city": "Oslo"})),
    );
    h.properties.insert("firstname".into(), Some(String::new()));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("name"), Some(&json!(null)), "MailerLite clears with null");
    assert_eq!(plan.safety.field_clears, 1);
    let mut m2 = m.clone();
    m2.fields.insert("city".into(), json!(null));
    let plan = planner(&c).plan(
        Phase::Continuous,
        Some(&link),
        Some(&hs("1", "a@x.com", &[("firstname", "Ada"), ("city", "Oslo")])),
        Some(&m2),
    );
    assert_eq!(hs_props(&plan).get("city").map(String::as_str), Some(""), "HubSpot clears with an empty string");
}

#[test]
fn never_overwrite_with_a_blank_keeps_the_other_sides_value() {
    let mut c = config();
    c.mappings[0].never_overwrite_with_blank = true;
    let (link, mut h, m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    h.properties.insert("firstname".into(), None);
    let p = planner(&c);
    let (plan, a) = run(&p, Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(ml_fields(&plan).is_empty());
    assert!(plan.changes.iter().any(|ch| ch.reason == Reason::BlankKept));
    let again = p.plan(Phase::Continuous, a.link.as_ref(), a.hubspot.as_ref(), a.mailerlite.as_ref());
    assert!(!again.has_writes(), "the kept value is not pushed back into HubSpot either: {again:?}");
}

#[test]
fn echo_of_our_own_write_is_a_no_op() {
    let c = config();
    let p = planner(&c);
    let (link, mut h, m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada"), ("employees", "10")]),
        &ml("9", "a@x.com", json!({"name": "Ada", "employees": 10})),
    );
    h.properties.insert("firstname".into(), Some("Augusta".into()));
    h.properties.insert("employees".into(), Some("12.50".into()));
    let (plan, a) = run(&p, Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(plan.has_writes());
    // The webhook of our MailerLite write brings the same values back.
    let echo = p.plan(Phase::Continuous, a.link.as_ref(), a.hubspot.as_ref(), a.mailerlite.as_ref());
    assert!(!echo.has_writes(), "{echo:?}");
}

#[test]
fn a_contact_that_stops_matching_is_removed_from_the_target_group_never_unsubscribed_nor_deleted() {
    let c = config();
    let p = planner(&c);
    let (_, a) = run(&p, Phase::Initial, None, Some(&hs("1", "a@x.com", &[("firstname", "Ada")])), None);
    let (link, mut h, m) = (a.link.unwrap(), a.hubspot.unwrap(), a.mailerlite.unwrap());
    assert!(m.groups.contains(&"tg".to_string()));
    h.in_scope = false;
    h.properties.insert("firstname".into(), Some("Changed".into()));
    let plan = p.plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(plan.group_changes, vec![GroupChange::Remove { group_id: "tg".into() }]);
    assert_eq!(plan.safety.group_removals, 1);
    assert_eq!(ml_status_write(&plan), None, "never unsubscribed");
    assert!(ml_fields(&plan).is_empty(), "updates stop once the contact stops matching");
    assert!(plan.changes.iter().any(|ch| ch.reason == Reason::StoppedMatching));
}

#[test]
fn removing_a_rule_or_changing_a_segment_never_unsubscribes() {
    let mut c = config();
    c.mailerlite_rule = MailerLiteRule::Segments { segment_ids: vec!["s1".into()] };
    let (link, h, mut m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    m.in_scope = false;
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec!["77".into()] };
    let mut h = h;
    h.in_scope = false;
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_status_write(&plan), None);
    assert!(plan.mailerlite.is_none());
}

#[test]
fn a_user_added_member_of_the_target_group_that_never_matched_is_left_alone() {
    let mut m = ml("9", "a@x.com", empty());
    m.groups = vec!["tg".into()];
    let mut h = hs("1", "a@x.com", &[]);
    h.in_scope = false;
    let plan = planner(&config()).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert!(plan.group_changes.is_empty());
}

#[test]
fn deletion_in_hubspot_removes_from_the_target_group_and_marks_the_link_nothing_is_deleted() {
    let c = config();
    let p = planner(&c);
    let (_, a) = run(&p, Phase::Initial, None, Some(&hs("1", "a@x.com", &[])), None);
    let (link, m) = (a.link.unwrap(), a.mailerlite.unwrap());
    let plan = p.plan(Phase::Continuous, Some(&link), None, Some(&m));
    assert_eq!(plan.group_changes, vec![GroupChange::Remove { group_id: "tg".into() }]);
    assert!(plan.mailerlite.is_none() && plan.hubspot.is_none());
    let next = plan.link.unwrap();
    assert!(next.hs_deleted && next.mailerlite_id.is_some());
    assert!(plan.changes.iter().any(|ch| ch.reason == Reason::DeletedIn(Side::HubSpot)));
}

#[test]
fn deletion_in_mailerlite_marks_the_link_and_nothing_is_deleted_or_recreated() {
    let c = config();
    let (link, h, _) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    let p = planner(&c);
    let (plan, a) = run(&p, Phase::Continuous, Some(&link), Some(&h), None);
    assert!(!plan.has_writes(), "no delete in HubSpot, no re-create in MailerLite: {plan:?}");
    let next = a.link.unwrap();
    assert!(next.ml_deleted);
    let mut h2 = h.clone();
    h2.properties.insert("firstname".into(), Some("Changed".into()));
    let later = p.plan(Phase::Continuous, Some(&next), Some(&h2), None);
    assert!(!later.has_writes(), "a deleted subscriber is not re-created by continuous sync");
}

#[test]
fn a_restored_hubspot_contact_resumes_syncing() {
    let c = config();
    let (mut link, h, m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("firstname", "Ada")]),
        &ml("9", "a@x.com", json!({"name": "Ada"})),
    );
    link.hs_deleted = true;
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(plan.changes.iter().any(|ch| ch.reason == Reason::RestoredIn(Side::HubSpot)));
    assert!(!plan.link.unwrap().hs_deleted);
}

#[test]
fn unsubscribe_in_mailerlite_is_recorded_on_the_hubspot_contact() {
    let c = config();
    let (link, h, mut m) = linked_after_initial(&c, &hs("1", "a@x.com", &[]), &ml("9", "a@x.com", empty()));
    assert_eq!(h.property(engagement::STATUS), Some("active"));
    m.status = MlStatus::Unsubscribed;
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(hs_props(&plan).get(engagement::STATUS).map(String::as_str), Some("unsubscribed"));
    assert!(!plan.hubspot_unsubscribe_all, "the opt-out in HubSpot is off by default");
    assert_eq!(plan.link.unwrap().ml_status, Some(MlStatus::Unsubscribed));
}

#[test]
fn unsubscribe_in_mailerlite_opts_out_in_hubspot_when_the_connection_asks() {
    let mut c = config();
    c.engagement.unsubscribe_in_hubspot = true;
    let (link, h, mut m) = linked_after_initial(&c, &hs("1", "a@x.com", &[]), &ml("9", "a@x.com", empty()));
    m.status = MlStatus::Unsubscribed;
    let p = planner(&c);
    let (plan, a) = run(&p, Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert!(plan.hubspot_unsubscribe_all);
    let again = p.plan(Phase::Continuous, a.link.as_ref(), a.hubspot.as_ref(), a.mailerlite.as_ref());
    assert!(!again.has_writes());
}

#[test]
fn opt_out_in_hubspot_sets_the_subscriber_unsubscribed() {
    let c = config();
    let (link, mut h, m) = linked_after_initial(&c, &hs("1", "a@x.com", &[]), &ml("9", "a@x.com", empty()));
    h.properties.insert("hs_email_optout".into(), Some("true".into()));
    let p = planner(&c);
    let (plan, a) = run(&p, Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_status_write(&plan), Some(MlStatus::Unsubscribed));
    assert!(plan.changes.iter().any(|ch| ch.reason == Reason::OptedOutInHubSpot));
    assert!(!p.plan(Phase::Continuous, a.link.as_ref(), a.hubspot.as_ref(), a.mailerlite.as_ref()).has_writes());
}

#[test]
fn nobody_whose_unsubscribe_came_from_the_person_is_resubscribed() {
    let c = config();
    let (link, mut h, mut m) =
        linked_after_initial(&c, &hs("1", "a@x.com", &[("hs_email_optout", "true")]), &ml("9", "a@x.com", empty()));
    assert_eq!(m.status, MlStatus::Unsubscribed);
    // The contact opts back in to email in HubSpot: the sync still never reactivates.
    h.properties.insert("hs_email_optout".into(), Some("false".into()));
    m.fields.insert("name".into(), json!("Ada"));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_status_write(&plan), None);
    // Re-linking from scratch (e.g. a new connection) does not reactivate either.
    let plan = planner(&c).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert_eq!(ml_status_write(&plan), None);
}

// ---------------------------------------------------------------- Field values

#[test]
fn hubspot_to_mailerlite_writes_the_option_label() {
    let plan = planner(&config()).plan(
        Phase::Initial,
        None,
        Some(&hs("1", "a@x.com", &[("industry_segment", "finance")])),
        None,
    );
    assert_eq!(ml_fields(&plan).get("industry"), Some(&json!("Financial services")));
}

#[test]
fn mailerlite_to_hubspot_accepts_a_label_or_a_value_in_any_case_and_writes_the_value() {
    let p = planner(&config());
    for text in ["Financial services", "financial SERVICES", "finance", "FINANCE"] {
        let plan = p.plan(Phase::Initial, None, None, Some(&ml("9", "a@x.com", json!({ "industry": text }))));
        assert_eq!(hs_props(&plan).get("industry_segment").map(String::as_str), Some("finance"), "{text}");
    }
}

#[test]
fn a_value_that_matches_no_option_is_a_per_contact_error_and_the_rest_still_syncs() {
    let m = ml("9", "a@x.com", json!({"industry": "Aerospace", "name": "Ada"}));
    let plan = planner(&config()).plan(Phase::Initial, None, None, Some(&m));
    assert_eq!(hs_props(&plan).get("firstname").map(String::as_str), Some("Ada"));
    assert!(!hs_props(&plan).contains_key("industry_segment"));
    assert_eq!(plan.errors.len(), 1);
    let e = &plan.errors[0];
    assert_eq!(
        (e.target, e.hubspot_property.as_str(), e.mailerlite_field.as_str()),
        (Side::HubSpot, "industry_segment", "industry")
    );
    match &e.error {
        ValueError::NotAnOption { property, value, allowed, .. } => {
            assert_eq!((property.as_str(), value.as_str()), ("industry_segment", "Aerospace"));
            assert_eq!(allowed, &["SaaS", "Retail", "Financial services"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn multi_select_joins_with_comma_and_splits_on_comma_or_semicolon() {
    let p = planner(&config());
    let plan = p.plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[("interests", "events;webinars")])), None);
    assert_eq!(ml_fields(&plan).get("interests"), Some(&json!("Webinars, Events")));
    let plan =
        p.plan(Phase::Initial, None, None, Some(&ml("9", "a@x.com", json!({"interests": "product news; Events"}))));
    assert_eq!(hs_props(&plan).get("interests").map(String::as_str), Some("events;news"));
}

#[test]
fn numbers_dates_datetimes_and_bools_convert_between_the_apps() {
    let mut c = config();
    c.mappings = vec![
        FieldMapping::new("employees", "employees"),
        FieldMapping::new("signup_date", "signup_date"),
        FieldMapping::new("last_demo_at", "last_demo"),
        FieldMapping::new("vip", "vip"),
    ];
    let h = hs(
        "1",
        "a@x.com",
        &[
            ("employees", "1200.0"),
            ("signup_date", "1430438400000"),
            ("last_demo_at", "2024-06-01T22:15:00.000Z"),
            ("vip", "true"),
        ],
    );
    let plan = planner(&c).plan(Phase::Initial, None, Some(&h), None);
    let f = ml_fields(&plan);
    assert_eq!(f["employees"], json!(1200));
    assert_eq!(f["signup_date"], json!("2015-05-01"));
    assert_eq!(f["last_demo"], json!("2024-06-01"));
    assert_eq!(f["vip"], json!("true"));
    let m = ml(
        "9",
        "b@x.com",
        json!({"employees": 7.5, "signup_date": "2015-05-01", "last_demo": "2024-06-01", "vip": "Yes"}),
    );
    let plan = planner(&c).plan(Phase::Initial, None, None, Some(&m));
    let p = hs_props(&plan);
    assert_eq!(
        (p["employees"].as_str(), p["signup_date"].as_str(), p["last_demo_at"].as_str(), p["vip"].as_str()),
        ("7.5", "2015-05-01", "2024-06-01T00:00:00.000Z", "true")
    );
}

#[test]
fn read_only_and_calculated_hubspot_properties_are_only_sources() {
    let mut c = config();
    c.mappings = vec![FieldMapping::new("lead_score", "score")];
    let problems = validate_config(&c, Some(&schemas()));
    assert!(
        problems.iter().any(|p| p.field == "mappings[0].direction" && p.message.contains("read-only")),
        "{problems:?}"
    );
    // Even if such a config reached the planner, it would never write the property.
    let m = ml("9", "a@x.com", json!({"score": 99}));
    let plan = planner(&c).plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[("lead_score", "40")])), Some(&m));
    assert!(!hs_props(&plan).contains_key("lead_score"));
    assert_eq!(ml_fields(&plan).get("score"), Some(&json!(40)), "it mirrors its HubSpot source");
    c.mappings[0].direction = Direction::HubSpotToMailerLite;
    assert!(validate_config(&c, Some(&schemas())).is_empty());
}

#[test]
fn company_fields_flow_hubspot_to_mailerlite_only() {
    let mut c = config();
    c.mappings = vec![FieldMapping::new("name", "company").company()];
    assert!(validate_config(&c, Some(&schemas())).is_empty());
    let mut h = hs("1", "a@x.com", &[]);
    h.company.insert("name".into(), Some("Acme".into()));
    let m = ml("9", "a@x.com", json!({"company": "Globex"}));
    let plan = planner(&c).plan(Phase::Initial, None, Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("company"), Some(&json!("Acme")));
    assert!(
        !matches!(plan.hubspot, Some(HubSpotWrite::Update { ref properties, .. }) if properties.contains_key("name"))
    );
    c.mappings[0].direction = Direction::TwoWay;
    let problems = validate_config(&c, Some(&schemas()));
    assert!(problems.iter().any(|p| p.message.contains("company")), "{problems:?}");
}

#[test]
fn config_validation_returns_every_problem_naming_the_mapping_and_the_fix() {
    let mut c = config();
    c.mappings = vec![
        FieldMapping::new("email", "email"),
        FieldMapping::new("no_such_property", "name"),
        FieldMapping::new("firstname", "no_such_field"),
        FieldMapping::new("signup_date", "employees"),
        FieldMapping::new("lead_score", "score"),
        FieldMapping::new("blob", "city"),
        FieldMapping::new("name", "company").company().with_direction(Direction::MailerLiteToHubSpot),
    ];
    c.hubspot_rule = HubSpotRule::Lists { list_ids: vec![] };
    let problems = validate_config(&c, Some(&schemas()));
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for expected in [
        "hubspot_rule.list_ids",
        "mappings[0].hubspot_property",
        "mappings[1].hubspot_property",
        "mappings[2].mailerlite_field",
        "mappings[3].mailerlite_field",
        "mappings[4].direction",
        "mappings[5].mailerlite_field",
        "mappings[6].direction",
    ] {
        assert!(fields.contains(&expected), "missing {expected} in {problems:#?}");
    }
    assert!(problems.iter().all(|p| !p.fix.is_empty() && !p.message.is_empty()));
    assert!(problems.iter().any(|p| p.message.contains("cannot be converted") && p.message.contains("signup_date")));
}

#[test]
fn config_validation_rejects_mappings_that_never_flow_or_write_twice() {
    let mut c = config();
    c.direction = Direction::HubSpotToMailerLite;
    c.mappings = vec![
        FieldMapping::new("firstname", "name").with_direction(Direction::MailerLiteToHubSpot),
        FieldMapping::new("lastname", "city"),
        FieldMapping::new("city", "city"),
    ];
    let problems = validate_config(&c, Some(&schemas()));
    assert!(problems.iter().any(|p| p.field == "mappings[0].direction"), "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.field == "mappings[2].mailerlite_field" && p.message.contains("written by mappings 1 and 2"))
    );
    assert!(validate_config(&config(), Some(&schemas())).is_empty());
}

// ---------------------------------------------------------------- Directions

#[test]
fn one_way_hubspot_to_mailerlite_connection_never_writes_to_hubspot() {
    let mut c = config();
    c.direction = Direction::HubSpotToMailerLite;
    c.engagement.enabled = false;
    let p = planner(&c);
    assert!(p.plan(Phase::Initial, None, None, Some(&ml("9", "a@x.com", json!({"name": "Bo"})))).link.is_none());
    let plan = p.plan(
        Phase::Initial,
        None,
        Some(&hs("1", "a@x.com", &[])),
        Some(&ml("9", "a@x.com", json!({"name": "Bo", "city": "Oslo"}))),
    );
    assert!(plan.hubspot.is_none());
}

#[test]
fn one_way_mailerlite_to_hubspot_connection_never_writes_to_mailerlite() {
    let mut c = config();
    c.direction = Direction::MailerLiteToHubSpot;
    let p = planner(&c);
    assert!(p.plan(Phase::Initial, None, Some(&hs("1", "a@x.com", &[])), None).link.is_none());
    let h = hs("1", "a@x.com", &[("firstname", "Ada"), ("hs_email_optout", "true")]);
    let plan = p.plan(Phase::Initial, None, Some(&h), Some(&ml("9", "a@x.com", json!({"name": "Bo"}))));
    assert!(plan.mailerlite.is_none() && plan.group_changes.is_empty());
    assert_eq!(hs_props(&plan).get("firstname").map(String::as_str), Some("Bo"));
}

#[test]
fn a_one_way_mapping_mirrors_its_source() {
    let mut c = config();
    c.mappings = vec![FieldMapping::new("city", "city").with_direction(Direction::HubSpotToMailerLite)];
    let (link, h, mut m) = linked_after_initial(
        &c,
        &hs("1", "a@x.com", &[("city", "Oslo")]),
        &ml("9", "a@x.com", json!({"city": "Oslo"})),
    );
    m.fields.insert("city".into(), json!("Edited in MailerLite"));
    let plan = planner(&c).plan(Phase::Continuous, Some(&link), Some(&h), Some(&m));
    assert_eq!(ml_fields(&plan).get("city"), Some(&json!("Oslo")));
    assert!(plan.hubspot.is_none());
}

// ---------------------------------------------------------------- Safety valve

#[test]
fn safety_valve_pauses_a_run_over_any_threshold() {
    let valve = SafetyValve { max_group_removals: 2, max_unsubscribes: 0, max_field_clears: 10 };
    assert!(valve.check(&SafetyCounters { group_removals: 2, unsubscribes: 0, field_clears: 10 }).is_empty());
    let trips = valve.check(&SafetyCounters { group_removals: 3, unsubscribes: 1, field_clears: 10 });
    assert_eq!(
        trips,
        vec![SafetyTrip::GroupRemovals { count: 3, limit: 2 }, SafetyTrip::Unsubscribes { count: 1, limit: 0 }]
    );
    assert!(trips[0].to_string().contains("approve"));
}
