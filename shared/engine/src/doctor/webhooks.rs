//! The webhooks of both apps: the connection's two MailerLite webhooks as MailerLite lists
//! them (against what `ml_webhooks` registers), and the HubSpot app's webhooks, whose
//! subscriptions HubSpot does not let hmsync read.

use std::collections::BTreeSet;

use hmsync_core::{Direction, HubSpotObject, Side};

use crate::api::{MailerLiteApi, MlWebhook};
use crate::ml_webhooks::{HookRole, WebhookTarget};
use crate::state::counters;

use super::{Check, Context, Finding, Severity, api_failure, lowercase_first, when};

/// What a MailerLite webhook is for, and what is lost without it.
fn role_text(role: HookRole) -> (&'static str, &'static str) {
    match role {
        HookRole::SubscriberChanges => (
            "subscriber changes",
            "Changes made in MailerLite (edits, unsubscribes, new subscribers, group moves) reach HubSpot only with the scheduled scan (every 2 hours by default), not within seconds.",
        ),
        HookRole::OpensClicksDeletions => (
            "opens, clicks, deletions",
            "Opens, clicks and deletions reach HubSpot only through the scan's reading of the activity log (at most 20 subscribers per scan page), not within a minute.",
        ),
    }
}

/// The connection's MailerLite webhooks: present at our URL, enabled, not blocked, signing with
/// a secret hmsync holds, with the events hmsync needs; and the last MailerLite delivery.
pub(super) async fn mailerlite(cx: &Context<'_>, ml: Option<&dyn MailerLiteApi>) -> Vec<Finding> {
    let c = Check::MailerliteWebhooks;
    let Some(ml) = ml else {
        return vec![
            Finding::new(c, Severity::Unknown, "Not checked: the MailerLite API key does not work (see above).")
                .action("Fix the API key, then run the doctor again."),
        ];
    };
    let target = match &cx.public_url {
        Some(base) => WebhookTarget::for_mailerlite(base, &cx.options.mailerlite_api_url),
        None => WebhookTarget::Unreachable("no public URL is known for this deployment".into()),
    };
    let url = match target.url(cx.id()) {
        Ok(url) => url,
        Err(why) if cx.active() => {
            return vec![
                Finding::new(c, Severity::Warning, format!("MailerLite cannot send webhooks here: {why}."))
                    .feature(role_text(HookRole::SubscriberChanges).1)
                    .action("Give the deployment a public HTTPS URL (hmsync serve --public-url, or the AWS API's own URL), then run sync now through it (POST /connections/{id}/sync-now): it registers the webhooks there."),
                deliveries(cx),
            ];
        }
        Err(_) => {
            return vec![Finding::ok(c, "Not activated yet: activation registers the two webhooks.")];
        }
    };
    let listing = match ml.webhooks().await {
        Ok(listing) => listing,
        Err(e) => return vec![api_failure(c, "listing the MailerLite webhooks", &e.into())],
    };
    let mut findings = Vec::new();
    for role in HookRole::ALL {
        findings.push(role_finding(cx, &listing, role, &url));
    }
    if !cx.active() && findings.iter().all(|f| f.severity != Severity::Ok) {
        return vec![Finding::ok(c, "Not activated yet: activation registers the two webhooks.")];
    }
    findings.push(deliveries(cx));
    findings
}

/// One of the two webhooks, as MailerLite lists it.
fn role_finding(cx: &Context<'_>, listing: &[MlWebhook], role: HookRole, url: &str) -> Finding {
    let c = Check::MailerliteWebhooks;
    let (what, lost) = role_text(role);
    let name = role.name(cx.id());
    let mut ours: Vec<&MlWebhook> =
        listing.iter().filter(|h| h.url == url && HookRole::of(h, cx.id()) == role).collect();
    // The one the next scan keeps: not blocked, enabled, named by us.
    ours.sort_by_key(|h| (h.blocked, !h.enabled, h.name != name));
    let sync_now = "Run sync now (POST /connections/{id}/sync-now, or Sync now on the status page): its scan repairs the webhooks.";
    let Some(hook) = ours.first() else {
        if let Some(elsewhere) = listing.iter().find(|h| h.name == name) {
            return Finding::new(
                c,
                Severity::Error,
                format!("The MailerLite webhook for {what} points at {}, not at {url}.", elsewhere.url),
            )
            .feature(lost)
            .action(format!(
                "Delete it in MailerLite (Integrations › Webhooks) unless that URL is another hmsync of yours, then {}",
                lowercase_first(sync_now)
            ));
        }
        return Finding::new(
            c,
            Severity::Error,
            format!("The MailerLite webhook for {what} is missing (none at {url})."),
        )
        .feature(lost)
        .action(sync_now);
    };
    let code = hook.response_code.map(|s| format!("; our receiver last answered it {s}")).unwrap_or_default();
    if hook.blocked {
        return Finding::new(c, Severity::Error, format!("MailerLite blocked the webhook for {what}{code}."))
            .feature(lost)
            .action(format!("{sync_now} It replaces a blocked webhook with a new one."));
    }
    if !hook.enabled {
        return Finding::new(
            c,
            Severity::Error,
            format!("MailerLite disabled the webhook for {what} (it does so after 3 days of failed deliveries{code})."),
        )
        .feature(lost)
        .action(format!(
            "Make sure the public URL answers (see the Public URL line), then {}",
            lowercase_first(sync_now)
        ));
    }
    let secrets = [&cx.credentials.mailerlite_webhook_secret, &cx.credentials.mailerlite_batched_webhook_secret];
    if !secrets.iter().any(|s| s.as_deref() == Some(hook.secret.as_str())) {
        return Finding::new(
            c,
            Severity::Error,
            format!("MailerLite signs the webhook for {what} with a secret hmsync does not hold: our receiver refuses every delivery (401)."),
        )
        .feature(lost)
        .action(format!("{sync_now} It stores the webhook's secret."));
    }
    let have: BTreeSet<&str> = hook.events.iter().map(String::as_str).collect();
    let missing: Vec<&str> = role.events().iter().copied().filter(|e| !have.contains(e)).collect();
    if !missing.is_empty() || hook.batchable != role.batchable() {
        let mut problem = Vec::new();
        if !missing.is_empty() {
            problem.push(format!("lacks the events {}", missing.join(", ")));
        }
        if hook.batchable != role.batchable() {
            problem.push(if role.batchable() { "is not batched".into() } else { "is batched".to_string() });
        }
        return Finding::new(
            c,
            Severity::Warning,
            format!("The MailerLite webhook for {what} {}.", problem.join(" and ")),
        )
        .feature(lost)
        .action(sync_now);
    }
    if let Some(code) = hook.response_code.filter(|s| !(200..300).contains(s)) {
        return Finding::new(
            c,
            Severity::Warning,
            format!("Our receiver answered {code} to the last delivery of the webhook for {what}."),
        )
        .feature(format!("MailerLite disables a webhook after 3 days of errors. {lost}"))
        .action("Check the public URL and the receiver's log for that delivery.");
    }
    let extra = match ours.len() {
        1 => String::new(),
        n => format!(" ({} more at our URL; the next scan removes them)", n - 1),
    };
    Finding::ok(
        c,
        format!("The webhook for {what} is at {url}, enabled, with its {} events{extra}.", role.events().len()),
    )
}

/// When our receiver last accepted a signed MailerLite delivery for the connection.
fn deliveries(cx: &Context<'_>) -> Finding {
    let c = Check::MailerliteWebhooks;
    match last_delivery(cx, counters::MAILERLITE_DELIVERY_AT) {
        Some(t) => Finding::ok(c, format!("Our receiver last accepted a signed MailerLite delivery at {}.", when(t))),
        None => Finding::ok(
            c,
            "Our receiver has not had a MailerLite delivery for this connection yet (MailerLite sends one when a subscriber changes).",
        ),
    }
}

fn last_delivery(cx: &Context<'_>, counter: &str) -> Option<i64> {
    cx.counters.get(counter).copied().filter(|t| *t > 0)
}

/// The webhook subscriptions the connection needs from the HubSpot app: the contact events
/// and a property change per property that flows HubSpot → MailerLite.
fn hubspot_subscriptions(cx: &Context<'_>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let config = &cx.conn.config;
    let events =
        ["contact.creation", "contact.deletion", "contact.merge", "contact.restore", "contact.privacyDeletion"];
    let mut contact: BTreeSet<String> = ["email", "hs_email_optout"].iter().map(|p| p.to_string()).collect();
    let mut company = BTreeSet::new();
    if config.direction != Direction::MailerLiteToHubSpot {
        for m in config.mappings.iter().filter(|m| m.direction.allows_from(Side::HubSpot)) {
            match m.hubspot_object {
                HubSpotObject::Contact => contact.insert(m.hubspot_property.clone()),
                HubSpotObject::Company => company.insert(m.hubspot_property.clone()),
            };
        }
    }
    (events.iter().map(|e| e.to_string()).collect(), contact.into_iter().collect(), company.into_iter().collect())
}

/// The HubSpot app's webhooks: what hmsync can tell (the client secret saved, the last signed
/// delivery) and what must be checked by hand (the subscriptions).
pub(super) fn hubspot(cx: &Context<'_>) -> Vec<Finding> {
    let c = Check::HubspotWebhooks;
    let target = match &cx.public_url {
        Some(base) => format!("{base}/webhooks/hubspot"),
        None => "<the deployment's URL>/webhooks/hubspot".to_string(),
    };
    let (events, contact, company) = hubspot_subscriptions(cx);
    let mut wanted =
        format!("targetUrl {target}; {}; contact.propertyChange for {}", events.join(", "), contact.join(", "));
    if !company.is_empty() {
        wanted.push_str(&format!("; company.propertyChange for {}", company.join(", ")));
    }
    let mut findings = vec![
        Finding::new(
            c,
            Severity::Unknown,
            "hmsync cannot read the HubSpot app's webhook subscriptions with the app's access token: a developer-platform app's subscriptions are part of its project (webhooks-hsmeta.json); HubSpot's webhooks API reads the subscriptions of legacy public apps only, the v4 management API sees only subscriptions made through it (with a client-credentials token, and without a target URL), and legacy private apps' subscriptions have no API at all.",
        )
        .feature("A mapped property without a propertyChange subscription reaches MailerLite only with the scheduled scan.")
        .action(format!(
            "Check hubspot-app/src/app/webhooks/webhooks-hsmeta.json (then hs project upload) against what this connection needs: {wanted}."
        )),
    ];
    if cx.credentials.hubspot_client_secret.is_none() {
        findings.push(
            Finding::new(
                c,
                Severity::Error,
                "No HubSpot client secret is saved: our receiver refuses every HubSpot delivery (401).",
            )
            .feature("HubSpot changes reach MailerLite only with the scheduled scan (every 2 hours by default).")
            .action("Save the app's client secret (PUT /connections/{id}/credentials with hubspot_client_secret)."),
        );
    }
    findings.push(match last_delivery(cx, counters::HUBSPOT_DELIVERY_AT) {
        Some(t) => Finding::ok(c, format!("Our receiver last accepted a signed HubSpot delivery at {}.", when(t))),
        None if cx.active() => Finding::new(
            c,
            Severity::Warning,
            "Our receiver has not accepted a signed HubSpot delivery for this connection yet.",
        )
        .feature("HubSpot changes reach MailerLite only with the scheduled scan (every 2 hours by default).")
        .action(format!(
            "Change a synced contact in HubSpot and run the doctor again. If there is still none: check the app's webhook target URL ({target}), that the app is installed in the connection's portal, and that the client secret saved with the connection is the app's."
        )),
        None => Finding::ok(c, "No HubSpot delivery yet (the connection is not active)."),
    });
    findings
}
