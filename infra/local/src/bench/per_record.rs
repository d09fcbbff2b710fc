//! Part C: the same initial sync done the way a per-record integration (a Zapier-style pair of
//! "new record → find on the other side → create or update" flows) does it, with the real
//! clients against a freshly seeded sandbox with the same data. Only requests are counted; the
//! time follows from them (its bound). On a large population the loop runs over a sample of
//! each side and the counts are scaled to the whole population: every record costs the same
//! two requests, and listing pages grow with the records, so the scaling is exact up to
//! rounding as long as the sample is whole pages.
//!
//! The loop is the cheapest honest version of that integration: it reads each side's records
//! once (list pages of 100, as its trigger would), looks each record up by email on the other
//! side with the cheapest lookup (HubSpot `GET …/contacts/{email}?idProperty=email`, MailerLite
//! `GET /subscribers/{email}`, neither in a search bucket), and writes it with one request
//! (MailerLite's non-destructive upsert also adds the target group; HubSpot create or update).
//! It does not react to the records it creates itself, which a real pair of flows would.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use hmsync_hubspot as hs;
use hmsync_mailerlite as ml;
use hmsync_sandbox::Sandbox;
use hmsync_sandbox::common::people::INDUSTRY_OPTIONS;

use super::bound::bound;
use super::report::{InitialSync, PerRecord, SideRequests, thousands};
use super::setup;

/// The per-record loop's rate-limit windows are this much shorter than real ones: only its
/// requests are counted, so it may run as fast as the simulators and clients allow.
pub const TIME_SCALE: f64 = 200.0;

/// The mapped HubSpot properties (as in [`setup::connection_config`]).
const HS_PROPERTIES: [&str; 5] = ["email", "firstname", "lastname", "city", "industry_segment"];

fn hubspot_client(sandbox: &Sandbox) -> hs::HubSpotClient {
    let c = sandbox.hubspot().config();
    hs::HubSpotClient::new(
        hs::Auth::StaticToken(c.token.clone()),
        hs::HubSpotConfig { base_url: sandbox.hubspot_url(), time_scale: c.time_scale, ..Default::default() },
    )
}

fn mailerlite_client(sandbox: &Sandbox) -> anyhow::Result<ml::Client> {
    let c = sandbox.mailerlite().config();
    let mut config = ml::Config::new(c.token).with_base_url(sandbox.mailerlite_url());
    config.time_scale = c.time_scale;
    Ok(ml::Client::new(config)?)
}

/// HubSpot's option value for a MailerLite label (case-insensitive), as the mapping converts it.
fn industry_value(label: &str) -> Option<&'static str> {
    INDUSTRY_OPTIONS
        .iter()
        .find(|(v, l)| l.eq_ignore_ascii_case(label) || v.eq_ignore_ascii_case(label))
        .map(|(v, _)| *v)
}

fn industry_label(value: &str) -> Option<&'static str> {
    INDUSTRY_OPTIONS.iter().find(|(v, _)| *v == value).map(|(_, l)| *l)
}

/// HubSpot → MailerLite for one contact: find the subscriber, then create or update it.
async fn contact_to_mailerlite(ml: &ml::Client, contact: &hs::Contact, group: Option<&str>) -> Result<(), ml::Error> {
    let Some(email) = contact.email() else { return Ok(()) };
    // The lookup decides "create" or "update" in such a flow; MailerLite's upsert does both.
    let _existing = ml.get_subscriber(email).await?;
    let mut upsert = ml::SubscriberUpsert::new(email);
    for (property, field) in [("firstname", "name"), ("lastname", "last_name"), ("city", "city")] {
        if let Some(v) = contact.prop(property) {
            upsert = upsert.field(field, v);
        }
    }
    if let Some(label) = contact.prop("industry_segment").and_then(industry_label) {
        upsert = upsert.field("industry", label);
    }
    if let Some(g) = group {
        upsert = upsert.add_to_group(g);
    }
    ml.upsert_subscriber(&upsert).await.map(|_| ())
}

/// MailerLite → HubSpot for one subscriber: find the contact by email, then update or create it.
async fn subscriber_to_hubspot(hs: &hs::HubSpotClient, s: &ml::Subscriber) -> Result<(), hs::HubSpotError> {
    let mut properties = BTreeMap::new();
    for (field, property) in [("name", "firstname"), ("last_name", "lastname"), ("city", "city")] {
        if let Some(v) = s.field_text(field) {
            properties.insert(property.to_string(), v);
        }
    }
    if let Some(v) = s.field_text("industry").as_deref().and_then(industry_value) {
        properties.insert("industry_segment".to_string(), v.to_string());
    }
    match hs.find_contact_by_email(&s.email, &HS_PROPERTIES).await? {
        Some(c) => hs.update_contact(&c.id, &properties).await.map(|_| ()),
        None => {
            properties.insert("email".into(), s.email.clone());
            hs.create_contact(&hs::ContactInput { properties, associations: Vec::new() }).await.map(|_| ())
        }
    }
}

/// Runs the per-record loop over `sample` records per side (rounded up to whole pages, at most
/// every record) of a fresh `per_side` population and compares it with hmsync's run `a`.
pub async fn per_record(per_side: u64, sample: u64, a: &InitialSync) -> anyhow::Result<PerRecord> {
    let label = format!("C {}/side", thousands(per_side));
    let take = sample.div_ceil(100).max(1).saturating_mul(100).min(per_side);
    eprintln!("{label}: seeding a fresh sandbox; the per-record loop runs over {} records per side", thousands(take));
    let sandbox = setup::sandbox(TIME_SCALE).await?;
    let seeded = setup::seed(&sandbox, setup::population(per_side)).await?;
    let group = seeded.mailerlite.group_id.clone();
    let hs = hubspot_client(&sandbox);
    let ml = mailerlite_client(&sandbox)?;
    setup::reset_stats(&sandbox);

    let options = hs::ListOptions {
        properties: HS_PROPERTIES.iter().map(|p| p.to_string()).collect(),
        ..hs::ListOptions::default()
    };
    let contacts: Vec<hs::Contact> = hs.list_contacts(options).take(take as usize).try_collect().await?;
    let subscribers: Vec<ml::Subscriber> = ml.subscribers(ml::Statuses::All).take(take as usize).try_collect().await?;
    let to_mailerlite = async {
        let mut failures = 0u64;
        for c in &contacts {
            if let Err(e) = contact_to_mailerlite(&ml, c, group.as_deref()).await {
                tracing::warn!(error = %e, "per-record loop: HubSpot contact {} not synced", c.id);
                failures += 1;
            }
        }
        failures
    };
    let to_hubspot = async {
        let mut failures = 0u64;
        for s in &subscribers {
            if let Err(e) = subscriber_to_hubspot(&hs, s).await {
                tracing::warn!(error = %e, "per-record loop: subscriber {} not synced", s.email);
                failures += 1;
            }
        }
        failures
    };
    let (f1, f2) = tokio::join!(to_mailerlite, to_hubspot);
    if f1 + f2 > 0 {
        anyhow::bail!("{label}: {} records failed in the per-record loop (see the warnings above)", f1 + f2);
    }

    let sample_hubspot = SideRequests::of(&sandbox.hubspot().stats());
    let sample_mailerlite = SideRequests::of(&sandbox.mailerlite().stats());
    let factor = per_side as f64 / take as f64;
    let scale = |counts: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        counts.iter().map(|(k, v)| (k.clone(), (*v as f64 * factor).round() as u64)).collect()
    };
    let (hs_buckets, ml_buckets) = (scale(&sample_hubspot.buckets), scale(&sample_mailerlite.buckets));
    let hubspot_requests = (sample_hubspot.total as f64 * factor).round() as u64;
    let mailerlite_requests = (sample_mailerlite.total as f64 * factor).round() as u64;
    let bound = bound(&hs_buckets, &ml_buckets);
    let hmsync_requests = (a.hubspot.total + a.mailerlite.total).max(1);
    let result = PerRecord {
        sample_per_side: take,
        extrapolated: take < per_side,
        request_ratio: (hubspot_requests + mailerlite_requests) as f64 / hmsync_requests as f64,
        bound_ratio: if a.bound.seconds > 0.0 { bound.seconds / a.bound.seconds } else { 0.0 },
        bound,
        hubspot_requests,
        mailerlite_requests,
        sample_hubspot,
        sample_mailerlite,
    };
    eprintln!(
        "{label}: {} HubSpot + {} MailerLite requests{} ({:.1}× hmsync's)",
        thousands(result.hubspot_requests),
        thousands(result.mailerlite_requests),
        if result.extrapolated { " (extrapolated)" } else { "" },
        result.request_ratio
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn industry_labels_and_values_convert_like_the_mapping() {
        assert_eq!(industry_label("saas"), Some("SaaS"));
        assert_eq!(industry_value("SaaS"), Some("saas"));
        assert_eq!(industry_value("retail"), Some("retail"));
        assert_eq!(industry_value("Aerospace"), None);
        assert_eq!(industry_label("aerospace"), None);
    }
}
