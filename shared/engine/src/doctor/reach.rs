//! What the apps' rate-limit headers said to the doctor's own requests, and whether the
//! deployment's public URL answers the way both apps will call it.

use std::time::Duration;

use hmsync_http::RateLimitReading;

use crate::api::{HubSpotApi, MailerLiteApi};
use crate::ml_webhooks::is_local;

use super::{Check, Context, Finding, Severity};

/// Below this share of a budget left, the sync runs slower than it could.
const LOW_SHARE: f64 = 0.1;

/// How long the public URL may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn low(remaining: Option<u64>, limit: Option<u64>) -> bool {
    matches!((remaining, limit), (Some(r), Some(l)) if l > 0 && (r as f64) < (l as f64) * LOW_SHARE)
}

/// "`remaining` of `limit` `what`", e.g. "92 of 100 requests per 10 s left".
fn share(remaining: Option<u64>, limit: Option<u64>, what: &str) -> Option<String> {
    match (remaining, limit) {
        (Some(r), Some(l)) => Some(format!("{r} of {l} {what}")),
        (Some(r), None) => Some(format!("{r} {what}")),
        _ => None,
    }
}

fn window_text(window: Option<Duration>) -> String {
    match window {
        Some(w) if w.as_millis() % 1000 == 0 => format!("per {} s", w.as_secs()),
        Some(w) => format!("per {} ms", w.as_millis()),
        None => "per window".into(),
    }
}

/// The rate-limit headroom each app reported on the doctor's last request to it.
pub(super) fn rate_limits(hs: Option<&dyn HubSpotApi>, ml: Option<&dyn MailerLiteApi>) -> Vec<Finding> {
    let c = Check::RateLimits;
    let mut findings = Vec::new();
    match hs.map(|hs| hs.rate_limits()) {
        None => {}
        Some(None) => findings.push(
            Finding::new(c, Severity::Unknown, "HubSpot sent no rate-limit headers to the doctor's requests.")
                .action("See the app's API call usage in HubSpot (the app's Monitoring page)."),
        ),
        Some(Some(r)) => findings.push(hubspot(&r)),
    }
    match ml.map(|ml| ml.rate_limits()) {
        None => {}
        Some(None) => findings.push(Finding::new(
            c,
            Severity::Unknown,
            "MailerLite sent no rate-limit headers to the doctor's requests.",
        )),
        Some(Some(r)) => {
            let text = share(r.remaining, r.limit, "requests per minute left").unwrap_or_else(|| "no figures".into());
            findings.push(if low(r.remaining, r.limit) {
                Finding::new(c, Severity::Warning, format!("MailerLite: {text}."))
                    .feature("Another integration of the account (or several hmsync connections) uses most of the API key's budget: syncs run slower.")
                    .action("Give each integration its own API key user, or spread their work.")
            } else {
                Finding::ok(c, format!("MailerLite: {text}."))
            });
        }
    }
    findings
}

fn hubspot(r: &RateLimitReading) -> Finding {
    let c = Check::RateLimits;
    let mut parts = Vec::new();
    parts.extend(share(r.remaining, r.limit, &format!("requests {} left", window_text(r.window))));
    parts.extend(share(r.daily_remaining, r.daily_limit, "left today"));
    let text = format!("HubSpot: {}.", if parts.is_empty() { "no figures".to_string() } else { parts.join("; ") });
    if low(r.daily_remaining, r.daily_limit) {
        return Finding::new(c, Severity::Warning, text)
            .feature("HubSpot's daily limit, shared by every private app of the portal, is nearly used up: when it is, hmsync waits until it resets.")
            .action("See which apps use the portal's API calls in HubSpot, and whether the portal's tier (or the API limit increase) fits them.");
    }
    if low(r.remaining, r.limit) {
        return Finding::new(c, Severity::Warning, text)
            .feature("Another client of the app uses most of its burst limit: syncs run slower.")
            .action("Check what else uses this app's token (each integration should have its own app).");
    }
    Finding::ok(c, text)
}

/// `GET <public URL>/health`, through the public URL as the apps call it.
pub(super) async fn public_url(cx: &Context<'_>) -> Finding {
    let c = Check::PublicUrl;
    let Some(base) = &cx.public_url else {
        return Finding::new(c, Severity::Unknown, "No public URL is known for this deployment.")
            .feature("HubSpot and MailerLite send webhooks to it.")
            .action(
                "Run the doctor with --public-url (the URL HubSpot and MailerLite call), as given to hmsync serve.",
            );
    };
    let url = format!("{base}/health");
    let unreachable = |why: String| {
        Finding::new(c, Severity::Error, format!("{url} {why}."))
            .feature("Webhooks of both apps do not arrive: changes reach the other app only with the scheduled scan.")
            .action("Check that hmsync runs there and that the URL (tunnel, proxy, DNS, custom domain) reaches it; then run the doctor again.")
    };
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => return unreachable(format!("could not be called ({e})")),
    };
    let answer = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return unreachable(format!("did not answer within {} s", PROBE_TIMEOUT.as_secs())),
        Err(e) if e.is_connect() => return unreachable("refused the connection or could not be reached".into()),
        Err(e) => return unreachable(format!("could not be reached ({e})")),
    };
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if status != 200 || body.get("status").and_then(|s| s.as_str()) != Some("ok") {
        return unreachable(format!("answered {status}, not hmsync's health answer"));
    }
    let local_apis = cx.options.local_apis();
    if is_local(base) && !local_apis {
        return Finding::new(
            c,
            Severity::Warning,
            format!("{url} answers, but it is an address of this machine or network: neither HubSpot nor MailerLite can call it."),
        )
        .feature("Webhooks of both apps do not arrive: changes reach the other app only with the scheduled scan.")
        .action("Give hmsync a public HTTPS URL (a tunnel or a reverse proxy) and pass it as --public-url (HMSYNC_PUBLIC_URL); on AWS use the API's URL.");
    }
    if base.starts_with("http://") && !local_apis {
        return Finding::new(c, Severity::Warning, format!("{url} answers, but over plain HTTP."))
            .feature("HubSpot sends webhooks only to HTTPS target URLs, and webhooks carry contact data.")
            .action("Put HTTPS in front of hmsync (a tunnel or a reverse proxy with a certificate) and use the https:// URL.");
    }
    if base.starts_with("http://") {
        return Finding::ok(
            c,
            format!(
                "{url} answered 200 (plain HTTP on this machine: enough for the local simulators; the real apps need an HTTPS URL)."
            ),
        );
    }
    Finding::ok(c, format!("{url} answered 200 over HTTPS."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_low_below_a_tenth_left() {
        assert!(low(Some(9), Some(100)));
        assert!(!low(Some(10), Some(100)));
        assert!(!low(Some(3), None));
        let r = RateLimitReading {
            limit: Some(190),
            remaining: Some(180),
            window: Some(Duration::from_secs(10)),
            daily_limit: Some(625_000),
            daily_remaining: Some(1_000),
            at_ms: 0,
        };
        let f = hubspot(&r);
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.message, "HubSpot: 180 of 190 requests per 10 s left; 1000 of 625000 left today.");
    }
}
