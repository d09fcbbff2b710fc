//! A connection's MailerLite webhooks: registered when the connection is activated and when its
//! MailerLite API key changes, checked and repaired by every scan, shown in the status.
//!
//! Two webhooks point at `<public URL>/webhooks/mailerlite/<connection id>`, each with its own
//! signing secret (the receiver accepts a delivery signed by either):
//! - **subscriber changes**, not batched, so MailerLite sends each event at once;
//! - **opens, clicks and deletions**, batched: MailerLite accepts `campaign.open`,
//!   `campaign.click` and `subscriber.deleted` only on a batched webhook, and sends batches about
//!   once a minute.
//!
//! Registering is idempotent: MailerLite's webhooks are listed first, and one at our URL is kept
//! and fixed (events, name, enabled) instead of making another; after a create that timed out
//! or failed with a 5xx the list is read again before a new try. So there is never a second
//! webhook, and never one whose secret we did not store.

use hmsync_store::Connection;
use serde::{Deserialize, Serialize};

use crate::adapters::{MailerLiteSigning, mailerlite_signing_secret_name, update_part};
use crate::api::{ApiError, MailerLiteApi, MlWebhook, MlWebhookSpec};
use crate::engine::{Engine, EngineError};
use crate::state::{Lifecycle, counters};

/// The events of the webhook MailerLite sends at once (each may be batched or not).
pub const INSTANT_EVENTS: [&str; 8] = [
    "subscriber.created",
    "subscriber.updated",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.spam_reported",
    "subscriber.active",
    "subscriber.added_to_group",
    "subscriber.removed_from_group",
];

/// The events MailerLite sends only on a batched webhook.
pub const BATCHED_EVENTS: [&str; 3] = ["subscriber.deleted", "campaign.open", "campaign.click"];

/// How often a create that failed transiently is tried again (each time after a fresh listing).
const CREATE_ATTEMPTS: usize = 3;

/// Which of the connection's two webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookRole {
    /// Subscriber changes, sent at once.
    SubscriberChanges,
    /// Opens, clicks and deletions, sent in batches about once a minute.
    OpensClicksDeletions,
}

impl HookRole {
    pub(crate) const ALL: [HookRole; 2] = [HookRole::SubscriberChanges, HookRole::OpensClicksDeletions];

    pub(crate) fn events(self) -> &'static [&'static str] {
        match self {
            HookRole::SubscriberChanges => &INSTANT_EVENTS,
            HookRole::OpensClicksDeletions => &BATCHED_EVENTS,
        }
    }

    pub(crate) fn batchable(self) -> bool {
        self == HookRole::OpensClicksDeletions
    }

    /// The webhook's name in MailerLite: says what it is and whose, and finds it again.
    pub(crate) fn name(self, conn_id: &str) -> String {
        match self {
            HookRole::SubscriberChanges => format!("hmsync {conn_id}: subscriber changes"),
            HookRole::OpensClicksDeletions => format!("hmsync {conn_id}: opens, clicks, deletions (batched)"),
        }
    }

    pub(crate) fn spec(self, conn_id: &str, url: &str) -> MlWebhookSpec {
        MlWebhookSpec {
            name: self.name(conn_id),
            url: url.to_string(),
            events: self.events().iter().map(|e| e.to_string()).collect(),
            batchable: self.batchable(),
        }
    }

    /// Which role a webhook at our URL plays: by its name, else (a webhook made by hand or by
    /// an earlier version, which had one batched webhook for everything) by `batchable`.
    pub(crate) fn of(hook: &MlWebhook, conn_id: &str) -> HookRole {
        HookRole::ALL.into_iter().find(|r| hook.name == r.name(conn_id)).unwrap_or(if hook.batchable {
            HookRole::OpensClicksDeletions
        } else {
            HookRole::SubscriberChanges
        })
    }
}

/// Where MailerLite should send a connection's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookTarget {
    /// This deployment's public base URL (scheme and host, no trailing slash).
    Public(String),
    /// MailerLite cannot reach this deployment; says why and what to do.
    Unreachable(String),
}

impl WebhookTarget {
    /// The public base URL as MailerLite at `mailerlite_api_url` sees it. A loopback or private
    /// address is reachable only by a MailerLite on the same machine or network (a sandbox):
    /// registering it with the real MailerLite would pretend real-time sync works.
    pub fn for_mailerlite(public_base_url: &str, mailerlite_api_url: &str) -> WebhookTarget {
        let base = public_base_url.trim().trim_end_matches('/');
        if base.is_empty() {
            return WebhookTarget::Unreachable(
                "this deployment has no public URL, so MailerLite cannot send webhooks: set one (HMSYNC_PUBLIC_BASE_URL, or hmsync serve --public-url)".into(),
            );
        }
        if is_local(base) && !is_local(mailerlite_api_url) {
            return WebhookTarget::Unreachable(format!(
                "MailerLite cannot call {base} (an address of this machine or network): start hmsync serve with --public-url set to an HTTPS URL that reaches it (a tunnel or a reverse proxy)"
            ));
        }
        WebhookTarget::Public(base.to_string())
    }

    /// The URL of a connection's MailerLite webhooks, or why there is none.
    pub fn url(&self, conn_id: &str) -> Result<String, String> {
        match self {
            WebhookTarget::Public(base) => Ok(format!("{base}/webhooks/mailerlite/{conn_id}")),
            WebhookTarget::Unreachable(why) => Err(why.clone()),
        }
    }
}

/// Whether the URL's host is loopback, private, link-local or a local name.
pub(crate) fn is_local(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.is_unspecified() || ip.is_unique_local() || ip.is_unicast_link_local()
        }
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || [".localhost", ".local", ".internal", ".lan"].iter().any(|s| d.ends_with(s))
        }
        None => false,
    }
}

/// One of the connection's webhooks as MailerLite last listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookHealth {
    pub role: HookRole,
    /// MailerLite's webhook id.
    pub id: String,
    pub enabled: bool,
    /// MailerLite's `is_blocked`.
    pub blocked: bool,
    /// The status our receiver answered MailerLite's last delivery attempt with.
    pub last_response_code: Option<u16>,
    /// When MailerLite last sent it (MailerLite's time, UTC).
    pub last_fired_at: Option<String>,
}

impl HookHealth {
    fn of(role: HookRole, h: &MlWebhook) -> Self {
        HookHealth {
            role,
            id: h.id.clone(),
            enabled: h.enabled,
            blocked: h.blocked,
            last_response_code: h.response_code,
            last_fired_at: h.last_fired_at.clone(),
        }
    }
}

/// What the connection knows about its MailerLite webhooks (kept in its state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailerLiteWebhooks {
    /// Where they point; `None` while MailerLite cannot reach this deployment.
    pub url: Option<String>,
    pub hooks: Vec<HookHealth>,
    /// When MailerLite's webhooks were last listed.
    pub checked_at_ms: Option<i64>,
    /// Why the last registration or check failed; `None` after one that worked.
    pub problem: Option<String>,
    pub problem_since_ms: Option<i64>,
    /// Webhooks re-enabled, fixed or re-created by checks after the first registration.
    pub repairs: u64,
    pub last_repair_at_ms: Option<i64>,
}

/// How the connection's MailerLite webhooks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailerLiteWebhookState {
    /// Not registered yet (the connection is not active).
    NotRegistered,
    /// Both webhooks exist and are enabled.
    Registered,
    /// MailerLite cannot reach this deployment: changes made in MailerLite arrive with the
    /// scheduled scan only. `problem` says what to set.
    NoPublicUrl,
    /// The last registration or check failed, or a webhook is disabled or blocked; the next
    /// scan tries again. `problem` says why.
    Failing,
}

/// The webhooks of both apps, in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhooksStatus {
    pub mailerlite: MailerLiteWebhookStatus,
    pub hubspot: HubSpotWebhookStatus,
}

/// The connection's MailerLite webhooks (hmsync registers and repairs them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailerLiteWebhookStatus {
    pub state: MailerLiteWebhookState,
    /// Where MailerLite sends them.
    pub url: Option<String>,
    /// Each webhook as MailerLite last listed it.
    pub hooks: Vec<HookHealth>,
    /// When they were last checked (activation, a credentials change, each scan).
    pub checked_at_ms: Option<i64>,
    /// What went wrong, and what to do (absent when all is well).
    pub problem: Option<String>,
    pub problem_since_ms: Option<i64>,
    /// Repairs made by checks (re-enabled, fixed, re-created).
    pub repairs: u64,
    pub last_repair_at_ms: Option<i64>,
    /// When our receiver last accepted a signed MailerLite delivery for this connection.
    pub last_delivery_at_ms: Option<i64>,
}

/// The HubSpot app's webhooks (configured in the HubSpot app by the user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubSpotWebhookStatus {
    /// When our receiver last accepted a delivery signed by this connection's HubSpot app;
    /// `null`: none yet (check the app's webhook target URL and subscriptions).
    pub last_delivery_at_ms: Option<i64>,
}

impl WebhooksStatus {
    pub(crate) fn of(
        lifecycle: Lifecycle,
        record: Option<&MailerLiteWebhooks>,
        counters: &std::collections::BTreeMap<String, i64>,
    ) -> Self {
        let stamp = |name: &str| counters.get(name).copied().filter(|t| *t > 0);
        let record = record.cloned().unwrap_or_default();
        let healthy = record.hooks.len() == HookRole::ALL.len() && record.hooks.iter().all(|h| h.enabled && !h.blocked);
        let state = if record.url.is_none() && record.problem.is_some() {
            MailerLiteWebhookState::NoPublicUrl
        } else if record.problem.is_some() || (record.checked_at_ms.is_some() && !healthy) {
            MailerLiteWebhookState::Failing
        } else if healthy {
            MailerLiteWebhookState::Registered
        } else if lifecycle == Lifecycle::Draft {
            MailerLiteWebhookState::NotRegistered
        } else {
            MailerLiteWebhookState::Failing
        };
        WebhooksStatus {
            mailerlite: MailerLiteWebhookStatus {
                state,
                url: record.url,
                hooks: record.hooks,
                checked_at_ms: record.checked_at_ms,
                problem: record.problem,
                problem_since_ms: record.problem_since_ms,
                repairs: record.repairs,
                last_repair_at_ms: record.last_repair_at_ms,
                last_delivery_at_ms: stamp(counters::MAILERLITE_DELIVERY_AT),
            },
            hubspot: HubSpotWebhookStatus { last_delivery_at_ms: stamp(counters::HUBSPOT_DELIVERY_AT) },
        }
    }
}

/// The connection's two webhooks after [`ensure`], in [`HookRole::ALL`] order.
struct Ensured {
    hooks: Vec<(HookRole, MlWebhook)>,
    /// What had to change (for the log; empty when all was as it should be).
    changes: Vec<String>,
}

impl Ensured {
    fn secret(&self, role: HookRole) -> Option<String> {
        self.hooks.iter().find(|(r, _)| *r == role).map(|(_, h)| h.secret.clone())
    }
}

/// Makes the account's webhooks at `url` exactly the connection's two: keeps and fixes the ones
/// there, creates what is missing, removes duplicates, and re-creates a blocked one.
async fn ensure(ml: &dyn MailerLiteApi, conn_id: &str, url: &str) -> Result<Ensured, ApiError> {
    let mut listing = ml.webhooks().await?;
    let mut hooks = Vec::new();
    let mut changes = Vec::new();
    for role in HookRole::ALL {
        let spec = role.spec(conn_id, url);
        let mut attempts = 0;
        let hook = loop {
            let mut mine: Vec<MlWebhook> =
                listing.iter().filter(|h| h.url == url && HookRole::of(h, conn_id) == role).cloned().collect();
            // Keep the one most likely to be working: not blocked, enabled, named by us.
            mine.sort_by_key(|h| (h.blocked, !h.enabled, h.name != spec.name));
            let mut mine = mine.into_iter();
            let keep = mine.next();
            for extra in mine {
                ml.delete_webhook(&extra.id).await?;
                changes.push(format!("removed a duplicate {role:?} webhook"));
            }
            match keep {
                Some(h) if h.blocked => {
                    // MailerLite does not document what unblocks a webhook; a new one starts clean.
                    ml.delete_webhook(&h.id).await?;
                    changes.push(format!("re-created the blocked {role:?} webhook"));
                }
                Some(h) if needs_fix(&h, &spec) => {
                    changes.push(format!(
                        "{} the {role:?} webhook",
                        if h.enabled { "fixed the events or name of" } else { "re-enabled" }
                    ));
                    break ml.update_webhook(&h.id, &spec).await?;
                }
                Some(h) => break h,
                None => {}
            }
            match ml.create_webhook(&spec).await {
                Ok(h) => {
                    changes.push(format!("created the {role:?} webhook"));
                    break h;
                }
                Err(e) if e.is_transient() && attempts + 1 < CREATE_ATTEMPTS => {
                    // The create may have happened: look before trying again.
                    attempts += 1;
                    tracing::info!(connection = conn_id, ?role, error = %e, "creating the MailerLite webhook failed; listing again before another try");
                    listing = ml.webhooks().await?;
                }
                Err(e) => return Err(e),
            }
        };
        listing.retain(|h| h.id != hook.id);
        hooks.push((role, hook));
    }
    Ok(Ensured { hooks, changes })
}

pub(crate) fn needs_fix(h: &MlWebhook, spec: &MlWebhookSpec) -> bool {
    let mut have: Vec<&str> = h.events.iter().map(String::as_str).collect();
    let mut want: Vec<&str> = spec.events.iter().map(String::as_str).collect();
    have.sort_unstable();
    want.sort_unstable();
    !h.enabled || h.batchable != spec.batchable || h.name != spec.name || have != want
}

impl Engine {
    /// Registers the connection's MailerLite webhooks at `target` (or finds and fixes them) and
    /// stores their secrets; the outcome, good or bad, is recorded for the status. Fails only
    /// when the store does: a MailerLite failure is recorded and the next scan tries again.
    pub async fn register_mailerlite_webhooks(&self, conn_id: &str, target: &WebhookTarget) -> Result<(), EngineError> {
        let conn = self.connection(conn_id).await?;
        let url = match target.url(conn_id) {
            Ok(url) => url,
            Err(why) => {
                tracing::warn!(connection = conn_id, "MailerLite webhooks not registered: {why}");
                return self.record_webhooks(conn_id, None, Err(why), false).await;
            }
        };
        let outcome = match self.apis.mailerlite(&conn).await {
            Ok(ml) => ensure(&*ml, conn_id, &url).await.map_err(EngineError::from),
            Err(e) => Err(e),
        };
        self.apply_outcome(conn_id, &url, outcome, false).await
    }

    /// Registers an active connection's MailerLite webhooks at `target` when they are
    /// registered elsewhere or nowhere (this deployment's URL changed, it got one, or the
    /// connection was activated by an earlier version): what "sync now" does first, since only
    /// a request to this deployment tells its URL. Does nothing otherwise.
    pub async fn follow_webhook_target(&self, conn_id: &str, target: &WebhookTarget) -> Result<(), EngineError> {
        let (state, _) = self.state(conn_id).await?;
        let Ok(url) = target.url(conn_id) else { return Ok(()) };
        let registered_at = state.mailerlite_webhooks.as_ref().and_then(|w| w.url.as_deref());
        if state.lifecycle == Lifecycle::Draft || registered_at == Some(url.as_str()) {
            return Ok(());
        }
        self.register_mailerlite_webhooks(conn_id, target).await
    }

    /// A scan's check: lists the webhooks where the last registration put them and repairs
    /// what is wrong. Costs one MailerLite request when all is well.
    pub(crate) async fn check_mailerlite_webhooks(&self, conn: &Connection) -> Result<(), EngineError> {
        let (state, _) = self.state(&conn.id).await?;
        let Some(url) = state.mailerlite_webhooks.as_ref().and_then(|w| w.url.clone()) else {
            // Never registered at a reachable URL: only activation, new credentials or "sync
            // now" (which know this deployment's URL) can.
            return Ok(());
        };
        let outcome = match self.apis.mailerlite(conn).await {
            Ok(ml) => ensure(&*ml, &conn.id, &url).await.map_err(EngineError::from),
            Err(e) => Err(e),
        };
        self.apply_outcome(&conn.id, &url, outcome, true).await
    }

    /// After a new MailerLite API key is checked and before it is saved: registers the
    /// webhooks on the key's account and puts their secrets in `credentials`. When our webhooks
    /// are not on that account (another account), they are deleted from the old one with the
    /// old key, so its subscribers stop arriving; if the old key no longer works they cannot
    /// be, and the receiver refuses their deliveries (their secrets are replaced) until
    /// MailerLite disables them.
    pub(crate) async fn move_mailerlite_webhooks(
        &self,
        conn: &Connection,
        new_ml: &dyn MailerLiteApi,
        target: &WebhookTarget,
        credentials: &mut crate::adapters::Credentials,
    ) -> Result<(), EngineError> {
        let (state, _) = self.state(&conn.id).await?;
        let previous: Vec<String> =
            state.mailerlite_webhooks.iter().flat_map(|w| w.hooks.iter().map(|h| h.id.clone())).collect();
        let stored = state.mailerlite_webhooks.as_ref().and_then(|w| w.url.clone());
        let url = match (target.url(&conn.id), stored) {
            (Ok(url), _) | (Err(_), Some(url)) => url,
            (Err(why), None) => return self.record_webhooks(&conn.id, None, Err(why), false).await,
        };
        match ensure(new_ml, &conn.id, &url).await {
            Ok(ensured) => {
                credentials.mailerlite_webhook_secret = ensured.secret(HookRole::SubscriberChanges);
                credentials.mailerlite_batched_webhook_secret = ensured.secret(HookRole::OpensClicksDeletions);
                let moved = !previous.is_empty() && !ensured.hooks.iter().any(|(_, h)| previous.contains(&h.id));
                if moved {
                    self.delete_old_webhooks(conn, &previous).await;
                }
                let hooks = ensured.hooks.iter().map(|(r, h)| HookHealth::of(*r, h)).collect();
                self.record_webhooks(&conn.id, Some(&url), Ok(hooks), false).await
            }
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "MailerLite webhooks not registered on the new key's account; the next scan tries again");
                self.record_webhooks(&conn.id, Some(&url), Err(problem_text(&e.into())), false).await
            }
        }
    }

    /// Deletes webhooks with the stored (old) key; failures are logged, not raised.
    async fn delete_old_webhooks(&self, conn: &Connection, ids: &[String]) {
        let old = match self.apis.mailerlite(conn).await {
            Ok(ml) => ml,
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "the old MailerLite account's webhooks could not be deleted");
                return;
            }
        };
        for id in ids {
            match old.delete_webhook(id).await {
                Ok(()) => {
                    tracing::info!(connection = %conn.id, webhook = %id, "webhook deleted from the old MailerLite account")
                }
                Err(e) => tracing::warn!(connection = %conn.id, webhook = %id, error = %e,
                    "a webhook of the old MailerLite account could not be deleted; the receiver refuses its deliveries and MailerLite disables it after 3 days of errors"),
            }
        }
    }

    /// Deletes the connection's webhooks from MailerLite (the connection is being deleted);
    /// failures are logged, not raised.
    pub(crate) async fn remove_mailerlite_webhooks(&self, conn: &Connection) -> Result<(), EngineError> {
        let (state, _) = self.state(&conn.id).await?;
        let ids: Vec<String> =
            state.mailerlite_webhooks.iter().flat_map(|w| w.hooks.iter().map(|h| h.id.clone())).collect();
        if !ids.is_empty() {
            self.delete_old_webhooks(conn, &ids).await;
        }
        Ok(())
    }

    async fn apply_outcome(
        &self,
        conn_id: &str,
        url: &str,
        outcome: Result<Ensured, EngineError>,
        repair: bool,
    ) -> Result<(), EngineError> {
        match outcome {
            Ok(ensured) => {
                // Only the webhooks' own part is written, and only while it exists: a scan of a
                // connection deleted meanwhile does not bring its secrets back.
                let name = mailerlite_signing_secret_name(conn_id);
                let signing = MailerLiteSigning {
                    mailerlite_webhook_secret: ensured.secret(HookRole::SubscriberChanges),
                    mailerlite_batched_webhook_secret: ensured.secret(HookRole::OpensClicksDeletions),
                };
                let stored: Option<MailerLiteSigning> =
                    crate::adapters::read_part(&*self.secrets, conn_id, &name, true).await?;
                if stored.as_ref() != Some(&signing) && !update_part(&*self.secrets, &name, &signing).await? {
                    return Err(EngineError::Permanent(format!(
                        "the MailerLite webhooks of connection {conn_id} were registered but their secrets could not be kept: the connection has no stored credentials (deleted?); save its credentials again"
                    )));
                }
                if !ensured.changes.is_empty() {
                    tracing::info!(connection = conn_id, changes = ?ensured.changes, "MailerLite webhooks registered or repaired");
                }
                let repaired = repair && !ensured.changes.is_empty();
                let hooks = ensured.hooks.iter().map(|(r, h)| HookHealth::of(*r, h)).collect();
                self.record_webhooks(conn_id, Some(url), Ok(hooks), repaired).await
            }
            Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
            Err(e) => {
                tracing::warn!(connection = conn_id, error = %e, "MailerLite webhooks could not be registered or checked; the next scan tries again");
                self.record_webhooks(conn_id, Some(url), Err(problem_text(&e)), false).await
            }
        }
    }

    async fn record_webhooks(
        &self,
        conn_id: &str,
        url: Option<&str>,
        outcome: Result<Vec<HookHealth>, String>,
        repaired: bool,
    ) -> Result<(), EngineError> {
        let now = self.now_ms();
        self.update_state(conn_id, |s| {
            let w = s.mailerlite_webhooks.get_or_insert_with(Default::default);
            w.url = url.map(str::to_string);
            match &outcome {
                Ok(hooks) => {
                    w.hooks = hooks.clone();
                    w.checked_at_ms = Some(now);
                    w.problem = None;
                    w.problem_since_ms = None;
                    if repaired {
                        w.repairs += 1;
                        w.last_repair_at_ms = Some(now);
                    }
                }
                Err(why) => {
                    if w.problem.as_ref() != Some(why) {
                        w.problem_since_ms = Some(now);
                    }
                    w.problem = Some(why.clone());
                }
            }
        })
        .await?;
        Ok(())
    }
}

/// A failure as the status shows it: what happened and what is done about it.
fn problem_text(e: &EngineError) -> String {
    format!("MailerLite webhooks could not be registered or checked: {e}. The next scan tries again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_public_url_reaches_only_a_local_mailerlite() {
        let real = "https://connect.mailerlite.com/api";
        let sandbox = "http://127.0.0.1:9000/api";
        assert!(matches!(WebhookTarget::for_mailerlite("http://127.0.0.1:8080", real), WebhookTarget::Unreachable(_)));
        assert!(matches!(WebhookTarget::for_mailerlite("http://localhost:8080/", real), WebhookTarget::Unreachable(_)));
        assert!(matches!(WebhookTarget::for_mailerlite("http://10.1.2.3", real), WebhookTarget::Unreachable(_)));
        assert!(matches!(WebhookTarget::for_mailerlite("", sandbox), WebhookTarget::Unreachable(_)));
        assert_eq!(
            WebhookTarget::for_mailerlite("http://127.0.0.1:8080/", sandbox),
            WebhookTarget::Public("http://127.0.0.1:8080".into())
        );
        let public = WebhookTarget::for_mailerlite("https://abc.execute-api.eu-west-1.amazonaws.com", real);
        assert_eq!(
            public.url("sales").as_deref(),
            Ok("https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/mailerlite/sales")
        );
    }

    fn hook(name: &str, batchable: bool) -> MlWebhook {
        MlWebhook {
            id: "1".into(),
            name: name.into(),
            url: "u".into(),
            events: vec![],
            enabled: true,
            batchable,
            blocked: false,
            secret: "s".into(),
            last_fired_at: None,
            response_code: None,
        }
    }

    #[test]
    fn a_webhook_at_our_url_is_told_apart_by_name_then_by_batching() {
        assert_eq!(HookRole::of(&hook("hmsync c1: subscriber changes", true), "c1"), HookRole::SubscriberChanges);
        assert_eq!(
            HookRole::of(&hook("hmsync c1: opens, clicks, deletions (batched)", false), "c1"),
            HookRole::OpensClicksDeletions
        );
        // The single batched webhook of earlier versions becomes the batched one (and is fixed).
        assert_eq!(HookRole::of(&hook("hmsync", true), "c1"), HookRole::OpensClicksDeletions);
        assert_eq!(HookRole::of(&hook("mine", false), "c1"), HookRole::SubscriberChanges);
        let spec = HookRole::OpensClicksDeletions.spec("c1", "u");
        let mut h = hook(&spec.name, true);
        h.events = vec!["campaign.click".into(), "subscriber.deleted".into(), "campaign.open".into()];
        assert!(!needs_fix(&h, &spec), "event order does not matter");
        h.enabled = false;
        assert!(needs_fix(&h, &spec));
    }

    #[test]
    fn debug_never_prints_a_webhook_secret() {
        let mut h = hook("x", false);
        h.secret = "wh-secret-value".into();
        assert!(!format!("{h:?}").contains("wh-secret-value"));
    }
}
