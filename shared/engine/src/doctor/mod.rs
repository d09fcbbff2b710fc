//! `hmsync doctor`: a read-only preflight of one connection against the real accounts of both
//! apps. It checks the credentials (which portal and account they reach, the HubSpot scopes),
//! the webhooks of both apps, the mapped fields against the apps' current schemas, the rate-limit
//! headroom and whether the deployment's public URL answers. Every finding says what is wrong,
//! the feature it affects and what to do.
//!
//! It changes nothing: no write to either app, no repair, no store write (reading may refresh an
//! OAuth access token, which the token store keeps). The CLI (`hmsync doctor`) and the config
//! API (`GET /connections/{id}/doctor`) both call [`Engine::doctor`].

mod accounts;
mod fields;
mod reach;
mod webhooks;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::adapters::{Credentials, HubSpotAuth, load_credentials};
use crate::api::{ApiError, HubSpotApi, MailerLiteApi};
use crate::engine::{Engine, EngineError};
use crate::ml_webhooks::is_local;
use crate::state::{ConnectionState, Lifecycle, Pause};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// As it should be.
    Ok,
    /// hmsync cannot tell (the app does not say, or did not answer): check it by hand.
    Unknown,
    /// A feature works worse than it could (slower, or with errors on some contacts).
    Warning,
    /// Something the connection needs is broken.
    Error,
}

impl Severity {
    /// The mark the text report puts before the finding (never colour alone).
    pub fn mark(self) -> &'static str {
        match self {
            Severity::Ok => "✓",
            Severity::Unknown => "?",
            Severity::Warning => "!",
            Severity::Error => "✗",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The connection's own state (phase, pause, connection-level problem).
    Connection,
    /// The HubSpot credentials: valid, which portal and app.
    HubspotToken,
    /// The HubSpot scopes granted against those the connection uses.
    HubspotScopes,
    /// The MailerLite API key: valid, which account.
    MailerliteKey,
    /// The connection's two MailerLite webhooks, and the last MailerLite delivery.
    MailerliteWebhooks,
    /// The HubSpot app's webhooks: its subscriptions, its client secret, the last delivery.
    HubspotWebhooks,
    /// The mapped fields against both apps' current schemas.
    Fields,
    /// What the apps' rate-limit headers say is left.
    RateLimits,
    /// The deployment's public URL, where both apps send webhooks.
    PublicUrl,
}

impl Check {
    /// The check's name in the text report.
    pub fn label(self) -> &'static str {
        match self {
            Check::Connection => "Connection",
            Check::HubspotToken => "HubSpot token",
            Check::HubspotScopes => "HubSpot scopes",
            Check::MailerliteKey => "MailerLite API key",
            Check::MailerliteWebhooks => "MailerLite webhooks",
            Check::HubspotWebhooks => "HubSpot webhooks",
            Check::Fields => "Fields",
            Check::RateLimits => "Rate limits",
            Check::PublicUrl => "Public URL",
        }
    }
}

/// One thing the doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// What was found: what is wrong, or that all is well.
    pub message: String,
    /// The feature that does not work (or works worse) while this is so; absent when all is well.
    pub feature: Option<String>,
    /// What to do; absent when there is nothing to do.
    pub action: Option<String>,
}

impl Finding {
    fn new(check: Check, severity: Severity, message: impl Into<String>) -> Self {
        Finding { check, severity, message: message.into(), feature: None, action: None }
    }

    fn ok(check: Check, message: impl Into<String>) -> Self {
        Finding::new(check, Severity::Ok, message)
    }

    fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }
}

/// How many findings of each severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindingCounts {
    pub ok: usize,
    pub unknown: usize,
    pub warning: usize,
    pub error: usize,
}

/// What the doctor found for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DoctorReport {
    pub connection_id: String,
    pub name: String,
    /// When the checks ran (epoch ms).
    pub checked_at_ms: i64,
    /// No finding is an error.
    pub ok: bool,
    pub counts: FindingCounts,
    /// Every finding, in the order the checks ran.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    fn new(connection_id: &str, name: &str, checked_at_ms: i64, findings: Vec<Finding>) -> Self {
        let mut counts = FindingCounts::default();
        for f in &findings {
            match f.severity {
                Severity::Ok => counts.ok += 1,
                Severity::Unknown => counts.unknown += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Error => counts.error += 1,
            }
        }
        DoctorReport {
            connection_id: connection_id.to_string(),
            name: name.to_string(),
            checked_at_ms,
            ok: counts.error == 0,
            counts,
            findings,
        }
    }

    /// The report as text: a line per finding with its mark (✓ ? ! ✗) and its check, then what
    /// it affects and what to do, and a summary line.
    pub fn to_text(&self) -> String {
        let mut out = format!("hmsync doctor: connection {} (\"{}\")\n", self.connection_id, self.name);
        for f in &self.findings {
            out.push_str(&format!("{} {}: {}\n", f.severity.mark(), f.check.label(), f.message));
            if let Some(feature) = &f.feature {
                out.push_str(&format!("    Affects: {feature}\n"));
            }
            if let Some(action) = &f.action {
                out.push_str(&format!("    To do: {action}\n"));
            }
        }
        let c = self.counts;
        let summary = if c.error == 0 && c.warning == 0 {
            format!("All {} passed", plural(c.ok, "check"))
        } else {
            format!("{} (✗), {} (!), {} passed (✓)", plural(c.error, "error"), plural(c.warning, "warning"), c.ok)
        };
        let unknown = match c.unknown {
            0 => String::new(),
            n => format!("; {n} hmsync cannot check (?): check by hand as the line says"),
        };
        out.push_str(&format!("{summary}{unknown}.\n"));
        out
    }
}

/// Where the deployment is, for the checks that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// The deployment's public base URL, where HubSpot and MailerLite send webhooks (scheme and
    /// host); `None` when the caller does not know it (the CLI then takes the URL the
    /// connection's MailerLite webhooks were registered at).
    pub public_url: Option<String>,
    /// The apps' API base URLs (a local sandbox can reach a local public URL; the real apps
    /// cannot).
    pub hubspot_api_url: String,
    pub mailerlite_api_url: String,
}

impl DoctorOptions {
    /// Whether both APIs are on this machine or network (the simulators): then a plain-HTTP,
    /// local public URL is all they need.
    fn local_apis(&self) -> bool {
        is_local(&self.hubspot_api_url) && is_local(&self.mailerlite_api_url)
    }
}

/// What the checks share.
struct Context<'a> {
    engine: &'a Engine,
    conn: hmsync_store::Connection,
    state: ConnectionState,
    credentials: Credentials,
    counters: std::collections::BTreeMap<String, i64>,
    options: DoctorOptions,
    /// The public base URL used: the given one, else where the MailerLite webhooks were registered.
    public_url: Option<String>,
}

impl Context<'_> {
    fn id(&self) -> &str {
        &self.conn.id
    }

    fn active(&self) -> bool {
        self.state.lifecycle != Lifecycle::Draft
    }
}

impl Engine {
    /// Checks one connection against both apps and this deployment, changing nothing.
    pub async fn doctor(&self, conn_id: &str, options: &DoctorOptions) -> Result<DoctorReport, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        let (credentials, unreadable) = match load_credentials(&*self.secrets, conn_id).await {
            Ok(credentials) => (credentials, None),
            Err(EngineError::Permanent(message)) => (Credentials::default(), Some(message)),
            Err(e) => return Err(e),
        };
        let counters = self.store.get_counters(conn_id).await?;
        let registered_base = state
            .mailerlite_webhooks
            .as_ref()
            .and_then(|w| w.url.as_deref())
            .and_then(|u| u.strip_suffix(&format!("/webhooks/mailerlite/{conn_id}")).map(str::to_string));
        let public_url = options
            .public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .or(registered_base);
        let cx = Context { engine: self, conn, state, credentials, counters, options: options.clone(), public_url };
        let mut findings = vec![connection_finding(&cx)];
        if let Some(message) = unreadable {
            findings.push(
                Finding::new(Check::Connection, Severity::Error, format!("{message}."))
                    .feature("Nothing syncs.")
                    .action("Save both apps' credentials again (PUT /connections/{id}/credentials)."),
            );
        }

        let (hs, hubspot_findings) = accounts::hubspot(&cx).await;
        findings.extend(hubspot_findings);
        let (ml, mailerlite_findings) = accounts::mailerlite(&cx).await;
        findings.extend(mailerlite_findings);
        findings.extend(webhooks::mailerlite(&cx, ml.as_deref()).await);
        findings.extend(webhooks::hubspot(&cx));
        findings.extend(fields::check(&cx, hs.as_deref(), ml.as_deref()).await);
        findings.extend(reach::rate_limits(hs.as_deref(), ml.as_deref()));
        findings.push(reach::public_url(&cx).await);
        Ok(DoctorReport::new(&cx.conn.id, &cx.conn.config.name, self.now_ms(), findings))
    }
}

/// The connection's phase, and whether it is paused or has a connection-level problem.
fn connection_finding(cx: &Context<'_>) -> Finding {
    let c = Check::Connection;
    match &cx.state.pause {
        Some(Pause::Credentials { side, message, action }) => {
            return Finding::new(c, Severity::Error, format!("Paused: {side} refused the credentials ({message})."))
                .feature("Nothing syncs; work is held, not lost.")
                .action(action.clone());
        }
        Some(Pause::User) => {
            return Finding::new(c, Severity::Warning, "Paused by a user.")
                .feature("Nothing syncs; work is held, not lost.")
                .action("Resume it (POST /connections/{id}/resume, or Resume on the status page).");
        }
        Some(Pause::SafetyValve { .. }) => {
            return Finding::new(
                c,
                Severity::Warning,
                "Held by the safety valve: a run would make many destructive changes.",
            )
            .feature("Nothing syncs until the held changes are approved.")
            .action("Review the run on the status page; approve it (POST /connections/{id}/approve) if intended.");
        }
        None => {}
    }
    if let Some(problem) = &cx.state.problem {
        return Finding::new(c, Severity::Warning, problem.message.clone()).action(problem.action.clone());
    }
    Finding::ok(
        c,
        match cx.state.lifecycle {
            Lifecycle::Draft => {
                "Draft: not activated yet (activation registers the MailerLite webhooks and runs the initial sync)."
            }
            Lifecycle::InitialSync => "The initial sync is running.",
            Lifecycle::Continuous => "Syncing continuously.",
        },
    )
}

/// A check that failed on a whole call: refused credentials and missing scopes are errors; an
/// app that did not answer leaves the check unknown.
fn api_failure(check: Check, what: &str, e: &EngineError) -> Finding {
    match e {
        EngineError::Api(ApiError::Unauthorized { side, message, action }) => {
            Finding::new(check, Severity::Error, format!("{side} refused the credentials while {what}: {message}."))
                .feature("Nothing syncs: the connection pauses until the credentials work.")
                .action(action.clone())
        }
        EngineError::Api(ApiError::Forbidden { side, message, action }) => {
            Finding::new(check, Severity::Error, format!("{side} denied {what}: {message}."))
                .feature("What needs this permission fails.")
                .action(action.clone())
        }
        EngineError::Api(e @ (ApiError::Transient { .. } | ApiError::DailyLimit { .. })) => {
            Finding::new(check, Severity::Unknown, format!("Could not check {what}: {e}."))
                .action("Run the doctor again later.")
        }
        e => Finding::new(check, Severity::Error, format!("{what} failed: {e}."))
            .action("Run the doctor again; if it fails the same way, report it with this message."),
    }
}

/// The HubSpot client of a connection with usable credentials, or the finding why there is none.
async fn hubspot_client(cx: &Context<'_>) -> Result<Arc<dyn HubSpotApi>, Finding> {
    let c = Check::HubspotToken;
    match &cx.credentials.hubspot {
        None => {
            return Err(Finding::new(c, Severity::Error, "No HubSpot credentials are saved.")
                .feature("Nothing syncs.")
                .action("Save the HubSpot app's access token (PUT /connections/{id}/credentials), or connect the OAuth app."));
        }
        Some(HubSpotAuth::OAuth { refresh_token, .. }) if refresh_token.is_empty() => {
            return Err(Finding::new(c, Severity::Error, "The HubSpot OAuth app is saved but not installed.")
                .feature("Nothing syncs.")
                .action("Install it: Connect HubSpot on the connection (GET /connections/{id}/oauth/hubspot/start)."));
        }
        Some(_) => {}
    }
    cx.engine.apis.hubspot(&cx.conn).await.map_err(|e| api_failure(c, "building the HubSpot client", &e))
}

/// The MailerLite client of a connection with an API key, or the finding why there is none.
async fn mailerlite_client(cx: &Context<'_>) -> Result<Arc<dyn MailerLiteApi>, Finding> {
    let c = Check::MailerliteKey;
    if cx.credentials.mailerlite_api_key.is_none() {
        return Err(Finding::new(c, Severity::Error, "No MailerLite API key is saved.")
            .feature("Nothing syncs.")
            .action("Save a MailerLite API key (PUT /connections/{id}/credentials)."));
    }
    cx.engine.apis.mailerlite(&cx.conn).await.map_err(|e| api_failure(c, "building the MailerLite client", &e))
}

/// "1 error", "2 errors".
fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

/// "Run sync now" → "run sync now", to follow "then".
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// An instant as the report shows it (UTC, RFC 3339).
fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_marks_every_line_and_counts_the_severities() {
        let findings = vec![
            Finding::ok(Check::HubspotToken, "valid"),
            Finding::new(Check::HubspotScopes, Severity::Error, "lacks x").feature("f").action("a"),
            Finding::new(Check::HubspotWebhooks, Severity::Unknown, "cannot read").action("look"),
            Finding::new(Check::RateLimits, Severity::Warning, "low"),
        ];
        let report = DoctorReport::new("c1", "Sales", 0, findings);
        assert!(!report.ok);
        assert_eq!(report.counts, FindingCounts { ok: 1, unknown: 1, warning: 1, error: 1 });
        let text = report.to_text();
        assert!(text.contains("✓ HubSpot token: valid\n"), "{text}");
        assert!(text.contains("✗ HubSpot scopes: lacks x\n    Affects: f\n    To do: a\n"), "{text}");
        assert!(text.contains("? HubSpot webhooks: cannot read\n"), "{text}");
        assert!(text.contains("! Rate limits: low\n"), "{text}");
        assert!(
            text.ends_with(
                "1 error (✗), 1 warning (!), 1 passed (✓); 1 hmsync cannot check (?): check by hand as the line says.\n"
            ),
            "{text}"
        );
        let clean = DoctorReport::new("c1", "Sales", 0, vec![Finding::ok(Check::Fields, "fine")]);
        assert!(clean.ok);
        assert!(clean.to_text().ends_with("All 1 check passed.\n"));
    }

    #[test]
    fn instants_are_shown_in_utc() {
        assert_eq!(when(1_796_650_062_000), "2026-12-07T13:27:42Z");
    }
}
