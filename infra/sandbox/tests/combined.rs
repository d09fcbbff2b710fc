//! The combined sandbox: both simulators on port 0, cross-side people seeding (library and admin
//! route), and the `hmsync-sandbox` command's arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use clap::Parser;
use hmsync_sandbox::cli::{self, Args};
use hmsync_sandbox::mailerlite::MailerLiteSim;
use hmsync_sandbox::{MembershipSeed, PEOPLE_SEED_PATH, PeopleSeed, PeopleSeedSummary, Sandbox, SandboxConfig};
use serde_json::{Value, json};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default(), local(), local()).await.unwrap()
}

fn email(index: u64) -> String {
    format!("person{index}@example.com")
}

/// The person index a generated phone number encodes (`+1555{index:07}`), so people without an
/// email can still be recognised.
fn index_of_phone(phone: &str) -> u64 {
    phone.strip_prefix("+1555").unwrap().parse().unwrap()
}

/// What the HubSpot side holds, by person index.
struct HubSpotPerson {
    email: Option<String>,
    first_name: String,
    opted_out: bool,
    id: u64,
}

fn hubspot_people(sb: &Sandbox) -> BTreeMap<u64, HubSpotPerson> {
    let db = sb.hubspot().db();
    db.contacts
        .values()
        .map(|r| {
            let person = HubSpotPerson {
                email: r.get("email").map(str::to_string),
                first_name: r.get("firstname").unwrap().to_string(),
                opted_out: r.get("hs_email_optout") == Some("true"),
                id: r.id,
            };
            (index_of_phone(r.get("phone").unwrap()), person)
        })
        .collect()
}

/// Every MailerLite subscriber of the people range, as the admin API renders it, by person index.
fn mailerlite_people(ml: &MailerLiteSim, range: std::ops::Range<u64>) -> BTreeMap<u64, Value> {
    range
        .map(|i| (i, serde_json::to_value(ml.subscriber(&email(i)).unwrap_or_else(|| panic!("person {i}"))).unwrap()))
        .collect()
}

fn assert_near(what: &str, actual: u64, expected: f64) {
    let tolerance = (expected * 0.3).max(10.0);
    assert!((actual as f64 - expected).abs() <= tolerance, "{what}: {actual}, expected about {expected}");
}

fn demo_seed(per_side: u64) -> PeopleSeed {
    PeopleSeed {
        per_side,
        overlap: 0.5,
        conflict_rate: 0.2,
        hubspot_opted_out_rate: 0.1,
        mailerlite_unsubscribed_rate: 0.1,
        mailerlite_bounced_rate: 0.05,
        no_email_rate: 0.1,
        hubspot_list: Some(MembershipSeed { name: "Newsletter (HubSpot)".into(), member_rate: 0.3 }),
        mailerlite_group: Some(MembershipSeed { name: "Newsletter".into(), member_rate: 0.4 }),
        with_companies: true,
        seed: 7,
    }
}

/// Checks both sides against the summary and the seed's shares (per_side 1,000, overlap 0.5).
fn check_demo_population(sb: &Sandbox, seed: &PeopleSeed, summary: &PeopleSeedSummary) {
    let n = seed.per_side;
    assert_eq!(summary.overlap, n / 2);
    assert_eq!((summary.hubspot.first_index, summary.hubspot.end_index), (0, n));
    assert_eq!((summary.mailerlite.first_index, summary.mailerlite.end_index), (n / 2, n + n / 2));

    let hs = hubspot_people(sb);
    assert_eq!(hs.len() as u64, n);
    assert_eq!(hs.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    let ml = mailerlite_people(sb.mailerlite(), n / 2..n + n / 2);
    assert!(sb.mailerlite().subscriber(&email(n / 2 - 1)).is_none());
    assert!(sb.mailerlite().subscriber(&email(n + n / 2)).is_none());
    assert_eq!(summary.hubspot.contacts, n);
    assert_eq!(summary.mailerlite.subscribers, n);

    // Exactly the overlap shares an email; every MailerLite subscriber has one, and nobody
    // without an email in HubSpot has a MailerLite copy.
    let hs_emails: BTreeSet<&str> = hs.values().filter_map(|p| p.email.as_deref()).collect();
    let ml_emails: BTreeSet<&str> = ml.values().map(|s| s["email"].as_str().unwrap()).collect();
    assert!(ml_emails.iter().all(|e| !e.is_empty()));
    assert_eq!(hs_emails.intersection(&ml_emails).count() as u64, n / 2);
    let without_email: Vec<u64> = hs.iter().filter(|(_, p)| p.email.is_none()).map(|(i, _)| *i).collect();
    assert!(without_email.iter().all(|i| !ml.contains_key(i)), "a person without email has a MailerLite copy");
    assert!(without_email.iter().all(|i| *i < n / 2));
    assert_eq!(summary.hubspot.without_email, without_email.len() as u64);
    assert_near("without email", summary.hubspot.without_email, seed.no_email_rate * n as f64);
    assert_eq!(summary.expected_unique_contacts, (n - summary.hubspot.without_email) + n - n / 2);
    assert_eq!(hs_emails.union(&ml_emails).count() as u64, summary.expected_unique_contacts);

    // Conflicts: only among the shared people, and only the MailerLite copy differs.
    let conflicting =
        ml.iter().filter(|(i, s)| **i < n && s["fields"]["name"].as_str() != Some(hs[i].first_name.as_str())).count()
            as u64;
    assert_eq!(conflicting, summary.conflicting);
    assert_near("conflicting", conflicting, seed.conflict_rate * (n / 2) as f64);

    let opted_out = hs.values().filter(|p| p.opted_out).count() as u64;
    assert_eq!(opted_out, summary.hubspot.opted_out);
    assert_near("opted out", opted_out, seed.hubspot_opted_out_rate * n as f64);

    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for s in ml.values() {
        *by_status.entry(s["status"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(by_status, summary.mailerlite.by_status);
    assert_near("unsubscribed", by_status["unsubscribed"], seed.mailerlite_unsubscribed_rate * n as f64);
    assert_near("bounced", by_status["bounced"], seed.mailerlite_bounced_rate * n as f64);
    assert_eq!(by_status.values().sum::<u64>(), n);

    // The list and the group, with their shares of members.
    let list_id: u64 = summary.hubspot.list_id.as_deref().unwrap().parse().unwrap();
    let list_members: BTreeSet<u64> = sb.hubspot().list_members(list_id).unwrap().into_iter().collect();
    assert_eq!(list_members.len() as u64, summary.hubspot.list_members);
    assert!(hs.values().filter(|p| list_members.contains(&p.id)).count() == list_members.len());
    assert_near("list members", summary.hubspot.list_members, 0.3 * n as f64);
    let group_id = summary.mailerlite.group_id.clone().unwrap();
    let in_group = ml
        .values()
        .filter(|s| s["groups"].as_array().unwrap().iter().any(|g| g["id"].as_str() == Some(group_id.as_str())))
        .count() as u64;
    assert_eq!(in_group, summary.mailerlite.group_members);
    assert_near("group members", in_group, 0.4 * n as f64);

    assert!(summary.hubspot.companies_created > 0);
    let first = hs.values().next().unwrap().id;
    assert_eq!(sb.hubspot().db().contacts[&first].assoc.len(), 1, "each contact has its company");
}

#[tokio::test]
async fn both_apis_answer_with_their_tokens() {
    let sb = sandbox().await;
    assert!(sb.mailerlite_url().ends_with("/api"), "{}", sb.mailerlite_url());
    assert_ne!(sb.hubspot().addr(), sb.mailerlite().addr());
    let http = reqwest::Client::new();

    let hs = format!("{}/crm/v3/objects/contacts?limit=1", sb.hubspot_url());
    let ok = http.get(&hs).bearer_auth(&sb.hubspot().config().token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["results"], json!([]));
    let refused = http.get(&hs).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let ml = format!("{}/subscribers", sb.mailerlite_url());
    let ok = http.get(&ml).bearer_auth(&sb.mailerlite().config().token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["data"], json!([]));
    let refused = http.get(&ml).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap(), json!({"message": "Unauthenticated."}));

    // Each side only takes its own token.
    let crossed = http.get(&ml).bearer_auth(&sb.hubspot().config().token).send().await.unwrap();
    assert_eq!(crossed.status(), 401);
}

#[tokio::test]
async fn the_change_journals_stamp_api_writes_and_user_edits_in_milliseconds() {
    use hmsync_sandbox::common::{ChangedBy, now_ms};
    use hmsync_sandbox::mailerlite::UserEdit;
    let sb = sandbox().await;
    sb.seed_people(&PeopleSeed { per_side: 2, overlap: 1.0, ..PeopleSeed::default() }).unwrap();
    let hs_id = hubspot_people(&sb)[&0].id;
    let ml_id: u64 = sb.mailerlite().subscriber(&email(1)).unwrap().id.parse().unwrap();
    let http = reqwest::Client::new();
    let hs_token = sb.hubspot().config().token;
    let ml_token = sb.mailerlite().config().token;
    sb.hubspot().user_edit_contact(hs_id, &json!({"city": "Before"}).as_object().unwrap().clone(), 7).unwrap();
    assert!(sb.hubspot().change_journal().entries().is_empty(), "off until started");

    sb.hubspot().change_journal().start();
    sb.mailerlite().change_journal().start();
    let before = now_ms();
    sb.hubspot().user_edit_contact(hs_id, &json!({"city": "Oslo"}).as_object().unwrap().clone(), 7).unwrap();
    let patch = format!("{}/crm/v3/objects/contacts/{hs_id}", sb.hubspot_url());
    let r = http.patch(&patch).bearer_auth(&hs_token).json(&json!({"properties": {"city": "Bergen"}})).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let edit = UserEdit { fields: json!({"city": "Turku"}).as_object().unwrap().clone(), ..UserEdit::default() };
    sb.mailerlite().user_edit(&email(1), &edit).unwrap();
    let put = format!("{}/subscribers/{ml_id}", sb.mailerlite_url());
    let r = http.put(&put).bearer_auth(&ml_token).json(&json!({"fields": {"city": "Espoo"}})).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let read = http.get(&put).bearer_auth(&ml_token).send().await.unwrap();
    assert_eq!(read.status(), 200, "reads are not changes");
    let after = now_ms();

    let hs = sb.hubspot().change_journal().stop();
    let by: Vec<(u64, ChangedBy, &str)> = hs.iter().map(|e| (e.record_id, e.by, e.event.as_str())).collect();
    assert_eq!(
        by,
        vec![(hs_id, ChangedBy::User, "contact.propertyChange"), (hs_id, ChangedBy::Api, "contact.propertyChange")]
    );
    let ml = sb.mailerlite().change_journal().stop();
    let by: Vec<(u64, ChangedBy, &str)> = ml.iter().map(|e| (e.record_id, e.by, e.event.as_str())).collect();
    assert_eq!(by, vec![(ml_id, ChangedBy::User, "subscriber.updated"), (ml_id, ChangedBy::Api, "subscriber.updated")]);
    for e in hs.iter().chain(&ml) {
        assert!((before..=after).contains(&e.at_ms), "{e:?} stamped between {before} and {after}");
    }
    assert!(hs[0].at_ms <= hs[1].at_ms && ml[0].at_ms <= ml[1].at_ms, "in the order they happened");
    sb.hubspot().user_edit_contact(hs_id, &json!({"city": "After"}).as_object().unwrap().clone(), 7).unwrap();
    assert!(sb.hubspot().change_journal().entries().is_empty(), "stopped");
}

#[tokio::test]
async fn the_time_scale_applies_to_both_sides() {
    let sb = Sandbox::start(SandboxConfig::default().with_time_scale(10.0), local(), local()).await.unwrap();
    assert_eq!(sb.hubspot().config().time_scale, 10.0);
    assert_eq!(sb.mailerlite().config().time_scale, 10.0);
    sb.set_time_scale(100.0);
    assert_eq!(sb.hubspot().rate_limits().time_scale, 100.0);
    assert_eq!(sb.hubspot().rate_limits().burst_limit, 100, "other limits are kept");
    assert_eq!(sb.mailerlite().config().time_scale, 100.0);
    assert_eq!(sb.mailerlite().config().limit_per_minute, 120);
    assert_eq!(sb.mailerlite().dispatcher().options().retry_delays_ms, vec![100, 1_000, 10_000]);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_people_gives_an_exact_overlap_and_the_configured_shares() {
    let sb = sandbox().await;
    let seed = demo_seed(1_000);
    let summary = sb.seed_people(&seed).unwrap();
    check_demo_population(&sb, &seed, &summary);

    // Seeding is not traffic: neither side counted a request.
    assert_eq!(sb.hubspot().stats().total_requests, 0);
    assert_eq!(sb.mailerlite().stats().total_requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_seed_picks_other_people_for_each_trait() {
    let a = sandbox().await;
    let b = sandbox().await;
    let seed = PeopleSeed { seed: 1, ..demo_seed(400) };
    let first = a.seed_people(&seed).unwrap();
    let second = b.seed_people(&PeopleSeed { seed: 2, ..seed.clone() }).unwrap();
    assert_eq!(first.overlap, second.overlap);
    let opted_out = |sb: &Sandbox| -> Vec<u64> {
        hubspot_people(sb).into_iter().filter(|(_, p)| p.opted_out).map(|(i, _)| i).collect()
    };
    assert_ne!(opted_out(&a), opted_out(&b));
    // The same request seeds the same people.
    let again = sandbox().await;
    assert_eq!(again.seed_people(&seed).unwrap().hubspot.opted_out, first.hubspot.opted_out);
    assert_eq!(opted_out(&again), opted_out(&a));
}

#[tokio::test]
async fn the_admin_route_seeds_both_sides_from_either_server() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let seed = demo_seed(1_000);
    let r = http.post(format!("{}{PEOPLE_SEED_PATH}", sb.hubspot_url())).json(&seed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let summary: PeopleSeedSummary = r.json().await.unwrap();
    check_demo_population(&sb, &seed, &summary);

    // The MailerLite server serves the same route, outside `/api`.
    let other = sandbox().await;
    let ml_root = other.mailerlite_url().trim_end_matches("/api").to_string();
    let r = http.post(format!("{ml_root}{PEOPLE_SEED_PATH}")).json(&seed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let same: PeopleSeedSummary = r.json().await.unwrap();
    check_demo_population(&other, &seed, &same);
    assert_eq!(same.hubspot.without_email, summary.hubspot.without_email, "the same request seeds the same people");

    // Defaults fill what the body leaves out.
    let empty = sandbox().await;
    let url = format!("{}{PEOPLE_SEED_PATH}", empty.hubspot_url());
    let r = http.post(url).json(&json!({"per_side": 10})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let defaults = r.json::<PeopleSeedSummary>().await.unwrap();
    assert_eq!((defaults.overlap, defaults.hubspot.list_id, defaults.mailerlite.group_id), (5, None, None));
}

#[tokio::test]
async fn the_admin_route_refuses_an_invalid_seed_and_seeds_nothing() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let url = format!("{}{PEOPLE_SEED_PATH}", sb.hubspot_url());
    let r = http.post(&url).json(&json!({"per_side": 10, "overlap": 1.5})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "invalid people seed: overlap must be between 0 and 1, got 1.5", "field": "overlap"})
    );
    let r = http
        .post(&url)
        .json(&json!({"per_side": 10, "mailerlite_unsubscribed_rate": 0.7, "mailerlite_bounced_rate": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "mailerlite_bounced_rate");
    assert!(sb.hubspot().db().contacts.is_empty());
    assert!(sb.mailerlite().subscriber(&email(5)).is_none());

    // A DYNAMIC list cannot take seeded members.
    let filter = json!({"filterBranchType":"OR","filterBranches":[{"filterBranchType":"AND","filters":[
        {"filterType":"PROPERTY","property":"city","operation":{"operationType":"MULTISTRING","operator":"IS_EQUAL_TO","values":["Oslo"]}}]}]});
    sb.hubspot().create_list("Oslo", "DYNAMIC", Some(filter)).unwrap();
    let r = http.post(&url).json(&json!({"per_side": 10, "hubspot_list": {"name": "oslo"}})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "hubspot_list.name");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlap_of_one_or_zero_is_exact_too() {
    let sb = sandbox().await;
    let all = sb.seed_people(&PeopleSeed { per_side: 100, overlap: 1.0, no_email_rate: 0.2, ..Default::default() });
    let all = all.unwrap();
    assert_eq!((all.overlap, all.hubspot.without_email, all.expected_unique_contacts), (100, 0, 100));
    assert_eq!(all.mailerlite.first_index, 0);

    let sb = sandbox().await;
    let none = sb.seed_people(&PeopleSeed { per_side: 100, overlap: 0.0, ..Default::default() }).unwrap();
    assert_eq!((none.overlap, none.mailerlite.first_index, none.expected_unique_contacts), (0, 100, 200));
}

#[test]
fn args_default_to_local_ports_and_the_simulators_tokens() {
    let args = Args::try_parse_from(["hmsync-sandbox"]).unwrap();
    assert_eq!((args.hubspot_port, args.mailerlite_port), (8010, 8020));
    assert_eq!(args.hubspot_addr(), "127.0.0.1:8010".parse().unwrap());
    assert_eq!(args.mailerlite_addr(), "127.0.0.1:8020".parse().unwrap());
    assert_eq!(args.hubspot_token, "hs-sandbox-token");
    assert_eq!(args.mailerlite_token, "ml-sandbox-token");
    assert_eq!(args.time_scale, 1.0);
    assert_eq!(args.sandbox_config(), SandboxConfig::default());
    assert_eq!(args.people_seed(), None);
}

#[test]
fn args_override_ports_tokens_time_scale_and_seeding() {
    let args = Args::try_parse_from([
        "hmsync-sandbox",
        "--hubspot-port",
        "9010",
        "--mailerlite-port",
        "9020",
        "--hubspot-token",
        "hs-demo",
        "--mailerlite-token",
        "ml-demo",
        "--time-scale",
        "60",
        "--seed-per-side",
        "5000",
        "--overlap",
        "0.25",
        "--conflict-rate",
        "0.1",
        "--hubspot-opted-out-rate",
        "0.02",
        "--mailerlite-unsubscribed-rate",
        "0.03",
        "--mailerlite-bounced-rate",
        "0.04",
        "--no-email-rate",
        "0.05",
        "--hubspot-list",
        "Synced",
        "--hubspot-list-rate",
        "0.5",
        "--mailerlite-group",
        "Newsletter",
        "--with-companies",
        "--seed",
        "9",
    ])
    .unwrap();
    assert_eq!(args.hubspot_addr(), "127.0.0.1:9010".parse().unwrap());
    assert_eq!(args.mailerlite_addr(), "127.0.0.1:9020".parse().unwrap());
    let config = args.sandbox_config();
    assert_eq!((config.hubspot.token.as_str(), config.mailerlite.token.as_str()), ("hs-demo", "ml-demo"));
    assert_eq!((config.hubspot.time_scale, config.mailerlite.time_scale), (60.0, 60.0));
    assert_eq!(
        args.people_seed(),
        Some(PeopleSeed {
            per_side: 5000,
            overlap: 0.25,
            conflict_rate: 0.1,
            hubspot_opted_out_rate: 0.02,
            mailerlite_unsubscribed_rate: 0.03,
            mailerlite_bounced_rate: 0.04,
            no_email_rate: 0.05,
            hubspot_list: Some(MembershipSeed { name: "Synced".into(), member_rate: 0.5 }),
            mailerlite_group: Some(MembershipSeed { name: "Newsletter".into(), member_rate: 1.0 }),
            with_companies: true,
            seed: 9,
        })
    );
}

#[test]
fn args_refuse_a_bad_time_scale_and_a_rate_without_its_list() {
    let err = Args::try_parse_from(["hmsync-sandbox", "--time-scale", "0"]).unwrap_err();
    assert!(err.to_string().contains("expected a positive number, got 0"), "{err}");
    assert!(Args::try_parse_from(["hmsync-sandbox", "--hubspot-list-rate", "0.5"]).is_err());
    assert!(Args::try_parse_from(["hmsync-sandbox", "--hubspot-port", "70000"]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_starts_seeds_and_names_its_urls_and_tokens() {
    let args = Args::try_parse_from([
        "hmsync-sandbox",
        "--hubspot-port",
        "0",
        "--mailerlite-port",
        "0",
        "--mailerlite-token",
        "ml-demo",
        "--seed-per-side",
        "200",
    ])
    .unwrap();
    let (sb, summary) = cli::start(&args).await.unwrap();
    let summary = summary.unwrap();
    assert_eq!((summary.hubspot.contacts, summary.mailerlite.subscribers, summary.overlap), (200, 200, 100));
    let banner = cli::banner(&sb);
    assert!(banner.contains(&format!("HubSpot     {}  token hs-sandbox-token", sb.hubspot_url())), "{banner}");
    assert!(banner.contains(&format!("MailerLite  {}  token ml-demo", sb.mailerlite_url())), "{banner}");
    assert!(cli::seed_report(&summary).contains("100 on both sides"));

    let ok = reqwest::Client::new()
        .get(format!("{}/subscribers", sb.mailerlite_url()))
        .bearer_auth("ml-demo")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // An invalid seed is refused before anything binds.
    let bad = Args::try_parse_from(["hmsync-sandbox", "--seed-per-side", "10", "--overlap", "2"]).unwrap();
    let err = cli::start(&bad).await.err().unwrap();
    assert_eq!(err.to_string(), "invalid people seed: overlap must be between 0 and 1, got 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn seeds_a_hundred_thousand_people_per_side() {
    let sb = sandbox().await;
    let seed = PeopleSeed {
        per_side: 100_000,
        overlap: 0.5,
        conflict_rate: 0.1,
        hubspot_opted_out_rate: 0.02,
        mailerlite_unsubscribed_rate: 0.05,
        mailerlite_bounced_rate: 0.01,
        no_email_rate: 0.01,
        hubspot_list: Some(MembershipSeed { name: "Synced".into(), member_rate: 0.5 }),
        mailerlite_group: Some(MembershipSeed { name: "Newsletter".into(), member_rate: 0.5 }),
        with_companies: true,
        seed: 0,
    };
    let summary = sb.seeder().seed_blocking_task(seed).await.unwrap();
    assert_eq!(summary.hubspot.contacts, 100_000);
    assert_eq!(summary.mailerlite.subscribers, 100_000);
    assert_eq!(summary.overlap, 50_000);
    assert_eq!(sb.hubspot().db().contacts.len(), 100_000);
    assert_eq!(summary.mailerlite.by_status.values().sum::<u64>(), 100_000);
    assert_eq!(summary.expected_unique_contacts, 150_000 - summary.hubspot.without_email);
}
