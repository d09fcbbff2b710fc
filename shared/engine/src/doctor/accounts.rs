//! The credentials: whether they work, which HubSpot portal and app and which MailerLite
//! account they reach, and the HubSpot scopes granted against those the connection uses.

use std::sync::Arc;

use crate::api::{HubSpotAccount, HubSpotApi, MailerLiteApi};
use crate::scopes::scope_uses;

use super::{Check, Context, Finding, Severity, api_failure, hubspot_client, mailerlite_client};

/// The HubSpot token and its scopes; the client when the token works.
pub(super) async fn hubspot(cx: &Context<'_>) -> (Option<Arc<dyn HubSpotApi>>, Vec<Finding>) {
    let hs = match hubspot_client(cx).await {
        Ok(hs) => hs,
        Err(finding) => return (None, vec![finding, scopes_unknown("no HubSpot token works yet")]),
    };
    let account = match hs.account().await {
        Ok(a) => a,
        Err(e) => {
            let finding = api_failure(Check::HubspotToken, "reading the portal behind the token", &e.into());
            return (None, vec![finding, scopes_unknown("the token could not be checked")]);
        }
    };
    let mut findings = token(cx, &account);
    findings.extend(scopes(cx, &account));
    (Some(hs), findings)
}

/// Which portal and app the token reaches, against the portal the connection was set up with
/// and the app id saved with it.
fn token(cx: &Context<'_>, account: &HubSpotAccount) -> Vec<Finding> {
    let c = Check::HubspotToken;
    let portal = account.portal_id;
    let mut findings = Vec::new();
    match cx.state.portal_id {
        Some(set_up) if set_up != portal => findings.push(
            Finding::new(
                c,
                Severity::Error,
                format!("The HubSpot token reaches portal {portal}, but the connection was set up with portal {set_up}."),
            )
            .feature(format!(
                "Every link holds portal {set_up}'s contact ids, and HubSpot webhooks are routed to this connection by portal: syncing with this token would create duplicates and miss changes."
            ))
            .action(format!(
                "Save the token of the app installed in portal {set_up} (PUT /connections/{{id}}/credentials), or make a new connection for portal {portal}."
            )),
        ),
        _ => {
            let domain = account.domain.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            let app = account.app_id.map(|a| format!(", app {a}")).unwrap_or_default();
            let first = if cx.state.portal_id.is_none() { " (refreshing the fields records it)" } else { "" };
            findings.push(Finding::ok(c, format!("Valid: portal {portal}{domain}{app}{first}.")));
        }
    }
    match (cx.credentials.hubspot_app_id, account.app_id) {
        (Some(saved), Some(actual)) if saved != actual => findings.push(
            Finding::new(
                c,
                Severity::Warning,
                format!("The token belongs to HubSpot app {actual}, but the app id saved with the connection is {saved}."),
            )
            .feature("Our own HubSpot writes coming back as webhooks are not recognised by their app (only by their values), and the client secret saved may be the other app's: then every HubSpot delivery is refused.")
            .action(format!(
                "Save app {actual}'s id and client secret (PUT /connections/{{id}}/credentials with hubspot_app_id and hubspot_client_secret)."
            )),
        ),
        (None, _) => findings.push(
            Finding::new(c, Severity::Warning, "No HubSpot app id is saved with the connection.")
                .feature("Our own HubSpot writes coming back as webhooks are recognised by their values only (each costs a read).")
                .action("Save the app's id (PUT /connections/{id}/credentials with hubspot_app_id)."),
        ),
        _ => {}
    }
    findings
}

fn scopes_unknown(why: &str) -> Finding {
    Finding::new(Check::HubspotScopes, Severity::Unknown, format!("The scopes were not checked: {why}."))
        .action("Fix the HubSpot token first, then run the doctor again.")
}

/// Each scope the connection uses and the token lacks, with the feature it disables.
fn scopes(cx: &Context<'_>, account: &HubSpotAccount) -> Vec<Finding> {
    let c = Check::HubspotScopes;
    let uses = scope_uses(&cx.conn.config);
    let Some(granted) = &account.scopes else {
        let wanted: Vec<&str> = uses.iter().filter(|u| u.used).map(|u| u.scope).collect();
        return vec![
            Finding::new(c, Severity::Unknown, "HubSpot did not describe the token, so its scopes are unknown.")
                .action(format!(
                    "Check the app's scopes in HubSpot (the app's Auth settings): this connection uses {}.",
                    wanted.join(", ")
                )),
        ];
    };
    let has = |s: &str| granted.iter().any(|g| g == s);
    let mut findings = Vec::new();
    let mut unused_missing = Vec::new();
    for u in uses.iter().filter(|u| !has(u.scope)) {
        if !u.used {
            unused_missing.push(format!("{} (without it: {})", u.scope, u.without));
            continue;
        }
        findings.push(
            Finding::new(
                c,
                if u.essential { Severity::Error } else { Severity::Warning },
                format!("The HubSpot app lacks the scope {}.", u.scope),
            )
            .feature(u.without)
            .action(format!(
                "Add {} to the app's scopes (hubspot-app/src/app/app-hsmeta.json, or the OAuth app's) and reinstall it; then save the new token or connect HubSpot again.",
                u.scope
            )),
        );
    }
    if findings.is_empty() {
        let used = uses.iter().filter(|u| u.used).count();
        let mut message = format!("The token has all {used} scopes this connection uses.");
        if !unused_missing.is_empty() {
            message.push_str(&format!(" Not granted, and not used now: {}.", unused_missing.join("; ")));
        }
        findings.push(Finding::ok(c, message));
    }
    findings
}

/// The MailerLite API key and the account it reaches; the client when the key works.
pub(super) async fn mailerlite(cx: &Context<'_>) -> (Option<Arc<dyn MailerLiteApi>>, Vec<Finding>) {
    let c = Check::MailerliteKey;
    let ml = match mailerlite_client(cx).await {
        Ok(ml) => ml,
        Err(finding) => return (None, vec![finding]),
    };
    match ml.account().await {
        Ok(account) => {
            let name = account.name.map(|n| format!("account \"{n}\", ")).unwrap_or_default();
            let finding = Finding::ok(c, format!("Valid: {name}{} subscribers.", account.subscribers));
            (Some(ml), vec![finding])
        }
        Err(e) => (None, vec![api_failure(c, "reading the account behind the API key", &e.into())]),
    }
}
