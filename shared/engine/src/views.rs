//! What the config API and the status page show: a connection's status, one contact's link and
//! history, retrying errored contacts, the preview (dry run), and checking and storing
//! credentials.

use std::collections::BTreeMap;

use hmsync_core::{ConnectionConfig, FieldSchemas, Link, Phase, Planner, Reason, Side, validate_config};
use hmsync_store::{ContactError, HistoryEntry, LinkKey};
use serde::{Deserialize, Serialize};

use crate::adapters::{
    ApiKeys, ApiSettings, Credentials, HubSpotAdapter, HubSpotAuth, HubSpotSigning, MailerLiteAdapter,
    MailerLiteSigning, credentials_secret_name, hubspot_signing_secret_name, hubspot_tokens_secret_name,
    install_tokens, load_credentials, mailerlite_signing_secret_name, put_part,
};
use crate::api::{ApiError, HubSpotApi, MailerLiteApi, MlSource};
use crate::engine::{Engine, EngineError};
use crate::message::{ContactRef, Origin};
use crate::scan::mailerlite_sources;
use crate::state::{ConnectionState, Lifecycle, LinkCounts, Pause, Problem, ScanRun, ScanSummary, counters};
use crate::sync::{Preloaded, plan_units};

/// Progress of the initial sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InitialProgress {
    pub done: u64,
    /// Records to read in total, once known.
    pub total: Option<u64>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Records per second so far.
    pub rate_per_second: Option<f64>,
    /// Seconds left at that rate.
    pub eta_seconds: Option<u64>,
}

/// Counts shown on the status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    /// Links as counted at the end of the last scan.
    pub links: LinkCounts,
    pub errored: u64,
    /// Records without a usable email in the last scan (excluded, not errors).
    pub excluded_no_email: u64,
}

/// Everything the status page shows about one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    pub connection_id: String,
    pub name: String,
    pub lifecycle: Lifecycle,
    pub pause: Option<Pause>,
    /// Work waits until then (an API limit).
    pub waiting_until_ms: Option<i64>,
    pub problem: Option<Problem>,
    pub initial_sync: InitialProgress,
    pub scan: Option<ScanRun>,
    pub last_scan: Option<ScanSummary>,
    pub next_scan_at_ms: Option<i64>,
    pub counts: StatusCounts,
    /// The calendar month (UTC) and its unique synced contacts: the billing figure.
    pub month: String,
    pub unique_contacts_this_month: u64,
    /// Engagement events recorded in HubSpot today (UTC) and in total.
    pub engagement_events_today: u64,
    pub engagement_events_total: u64,
    /// Messages held while the connection is paused.
    pub parked_messages: usize,
    /// The webhooks of both apps: MailerLite's as registered and last checked, and when our
    /// receiver last got a signed delivery from each app.
    pub webhooks: crate::ml_webhooks::WebhooksStatus,
    /// Every counter the sync keeps (synced, created per side, echoes skipped, webhook events, …).
    pub counters: BTreeMap<String, i64>,
}

/// One contact: its link, current error and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactView {
    pub link: Link,
    pub error: Option<ContactError>,
    pub history: Vec<HistoryEntry>,
}

/// What a preview (dry run) found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    /// Records read from each app for the preview (the first pages).
    pub sampled_hubspot: usize,
    pub sampled_mailerlite: usize,
    pub hubspot: SideCounts,
    pub mailerlite: SideCounts,
    /// Field conflicts and who would win them.
    pub conflicts: BTreeMap<Side, usize>,
    pub excluded_no_email: usize,
    /// Contacts that would get an error (a value that fits no option or type).
    pub errors: usize,
    /// Contacts the preview planned, with field-level before/after (up to `samples`).
    pub samples: Vec<PreviewContact>,
}

/// Planned changes on one app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SideCounts {
    pub creates: usize,
    pub updates: usize,
    pub unchanged: usize,
    pub unsubscribes: usize,
    pub group_adds: usize,
    pub group_removals: usize,
    pub field_clears: usize,
}

/// One contact of a preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewContact {
    pub email: Option<String>,
    pub changes: Vec<hmsync_core::Change>,
    pub errors: Vec<String>,
}

/// Which credentials a connection has (never their values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialsStatus {
    /// `token`, `oauth`, `oauth (not connected)` (the OAuth app is stored but not installed), or
    /// `null` (none).
    #[cfg_attr(feature = "openapi", schema(schema_with = hubspot_auth_kinds))]
    pub hubspot: Option<String>,
    pub hubspot_app_id: Option<u64>,
    pub hubspot_client_secret: bool,
    pub mailerlite_api_key: bool,
    /// The secret of the MailerLite webhook for subscriber changes (stored when hmsync registers it).
    pub mailerlite_webhook_secret: bool,
    /// The secret of the batched MailerLite webhook (opens, clicks, deletions).
    pub mailerlite_batched_webhook_secret: bool,
}

/// A group or segment of the MailerLite rule that MailerLite does not have is a problem of the
/// config (the preview's, which may not be stored), not a failed request.
fn missing_source(e: ApiError, source: &MlSource) -> crate::LifecycleError {
    let (field, kind) = match source {
        MlSource::Group(..) => ("mailerlite_rule.group_ids", "group"),
        MlSource::Segment(_) => ("mailerlite_rule.segment_ids", "segment"),
        MlSource::All => return EngineError::Api(e).into(),
    };
    match e {
        ApiError::NotFound { side, what } => crate::LifecycleError::InvalidConfig(vec![hmsync_core::ConfigProblem {
            field: field.into(),
            message: format!("{side} has no {what}."),
            fix: format!("Pick an existing MailerLite {kind}, or sync all subscribers."),
        }]),
        e => EngineError::Api(e).into(),
    }
}

/// The values of [`CredentialsStatus::hubspot`], for the OpenAPI document.
#[cfg(feature = "openapi")]
fn hubspot_auth_kinds() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([Some("token"), Some("oauth"), Some("oauth (not connected)"), None]))
        .description(Some(
            "How hmsync reaches HubSpot: `token`, `oauth`, `oauth (not connected)` (the OAuth app is stored but \
             not installed), or null (not stored).",
        ))
        .build()
}

impl CredentialsStatus {
    pub fn of(c: &Credentials) -> Self {
        Self {
            hubspot: c.hubspot.as_ref().map(|a| match a {
                HubSpotAuth::Token { .. } => "token".to_string(),
                HubSpotAuth::OAuth { refresh_token, .. } if refresh_token.is_empty() => "oauth (not connected)".into(),
                HubSpotAuth::OAuth { .. } => "oauth".to_string(),
            }),
            hubspot_app_id: c.hubspot_app_id,
            hubspot_client_secret: c.hubspot_client_secret.is_some(),
            mailerlite_api_key: c.mailerlite_api_key.is_some(),
            mailerlite_webhook_secret: c.mailerlite_webhook_secret.is_some(),
            mailerlite_batched_webhook_secret: c.mailerlite_batched_webhook_secret.is_some(),
        }
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialProblem {
    /// The field of the request, e.g. `hubspot.access_token` or `mailerlite_api_key`.
    pub field: String,
    pub message: String,
}

impl Engine {
    /// The status page's view of a connection.
    pub async fn status(&self, conn_id: &str) -> Result<Status, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        let counters = self.store.get_counters(conn_id).await?;
        let now = self.now_ms();
        let month = crate::sync::month_of(now);
        let errored = self.store.count_errors(conn_id).await?;
        let unique = self.store.unique_contacts(conn_id, &month).await?;
        let links = match &state.last_scan {
            Some(s) => s.links,
            None => LinkCounts { total: self.store.count_links(conn_id).await?, ..LinkCounts::default() },
        };
        Ok(Status {
            connection_id: conn.id.clone(),
            name: conn.config.name.clone(),
            lifecycle: state.lifecycle,
            pause: state.pause.clone(),
            waiting_until_ms: state.wait_until_ms.filter(|t| *t > now),
            problem: state.problem.clone(),
            initial_sync: initial_progress(&state, &counters, now),
            scan: state.scan.clone(),
            next_scan_at_ms: match (&state.last_scan, state.lifecycle) {
                (Some(s), Lifecycle::Continuous) => {
                    Some(s.finished_at_ms + self.settings.scan_interval.as_millis() as i64)
                }
                _ => None,
            },
            last_scan: state.last_scan.clone(),
            counts: StatusCounts {
                links,
                errored,
                excluded_no_email: state.last_scan.as_ref().map(|s| s.excluded_no_email).unwrap_or(0),
            },
            month,
            unique_contacts_this_month: unique,
            parked_messages: self.store.count_parked(conn_id).await? as usize,
            engagement_events_today: counters.get(&crate::engagement::day_counter(now)).copied().unwrap_or(0).max(0)
                as u64,
            engagement_events_total: counters.get(counters::ENGAGEMENT_EVENTS).copied().unwrap_or(0).max(0) as u64,
            webhooks: crate::ml_webhooks::WebhooksStatus::of(
                state.lifecycle,
                state.mailerlite_webhooks.as_ref(),
                &counters,
            ),
            counters,
        })
    }

    /// A contact by email (or by either app's id): its link, current error and history.
    pub async fn contact(&self, conn_id: &str, key: &LinkKey) -> Result<Option<ContactView>, EngineError> {
        self.connection(conn_id).await?;
        let Some(link) = self.store.find_link(conn_id, key).await? else { return Ok(None) };
        let error = self.store.get_error(conn_id, &link.id).await?;
        let history = self.store.read_history(conn_id, &link.id, 200).await?;
        Ok(Some(ContactView { link, error, history }))
    }

    /// Syncs errored contacts again: the listed keys, or every errored contact. Returns how
    /// many contacts were queued.
    pub async fn retry_errors(&self, conn_id: &str, keys: Option<&[String]>) -> Result<usize, EngineError> {
        self.connection(conn_id).await?;
        let mut errors: Vec<ContactError> = Vec::new();
        match keys {
            Some(keys) => {
                for k in keys {
                    if let Some(e) = self.store.get_error(conn_id, k).await? {
                        errors.push(e);
                    }
                }
            }
            None => {
                let mut after: Option<String> = None;
                loop {
                    let page = self.store.list_errors(conn_id, after.as_deref(), 500).await?;
                    errors.extend(page.items);
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
        }
        let mut refs: Vec<ContactRef> = Vec::new();
        for e in &errors {
            if let Some(id) = &e.hubspot_id {
                refs.push(ContactRef::hubspot(id));
            }
            if let Some(id) = &e.mailerlite_id {
                refs.push(ContactRef::mailerlite(id));
            }
        }
        let now = self.now_ms();
        for chunk in refs.chunks(self.settings.refs_per_message.max(1)) {
            self.enqueue_retry(conn_id, chunk.to_vec(), now, Origin::UserRetry).await?;
        }
        Ok(errors.len())
    }

    /// A dry run: plans the first `limit` records of each app as the initial sync (or, for an
    /// active connection, as continuous sync with its links) would — with `config` instead of the
    /// stored config when given (the preview of a config change) — and writes nothing. The
    /// config is checked against the apps' current schemas first, as activation checks it.
    pub async fn preview(
        &self,
        conn_id: &str,
        config: Option<ConnectionConfig>,
        limit: usize,
        samples: usize,
    ) -> Result<Preview, crate::LifecycleError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        let mut conn = conn;
        if let Some(c) = config {
            conn.config = c;
        }
        let phase = if state.lifecycle == Lifecycle::Continuous { Phase::Continuous } else { Phase::Initial };
        let hs = self.apis.hubspot(&conn).await?;
        let ml = self.apis.mailerlite(&conn).await?;
        // The apps' schemas as they are now, read but not stored: activation refreshes the
        // fields before it validates, so the preview does the same to report every problem
        // activation would refuse (a mapping's typo included, before any "refresh fields").
        let schemas = FieldSchemas {
            hubspot_contact: hs.contact_properties().await?,
            hubspot_company: hs.company_properties().await?,
            mailerlite: ml.fields().await?,
        };
        let problems = validate_config(&conn.config, Some(&schemas));
        if !problems.is_empty() {
            return Err(crate::LifecycleError::InvalidConfig(problems));
        }
        let planner = Planner::new(&conn.config, &schemas);
        conn.schemas = Some(schemas.clone());
        let hs_props = crate::sync::hubspot_properties(&planner);

        let mut ml_records = Vec::new();
        for source in mailerlite_sources(&conn.config.mailerlite_rule) {
            let mut cursor: Option<String> = None;
            while ml_records.len() < limit {
                let page = ml.list(&source, cursor.as_deref()).await.map_err(|e| missing_source(e, &source))?;
                ml_records.extend(page.records);
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        ml_records.truncate(limit);
        let mut hs_records = Vec::new();
        let mut after: Option<String> = None;
        while hs_records.len() < limit {
            let page = hs.scan_all(after.as_deref(), &hs_props).await?;
            hs_records.extend(page.records);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        hs_records.truncate(limit);
        let mut refs: Vec<ContactRef> = ml_records.iter().map(|r| ContactRef::mailerlite(&r.id)).collect();
        refs.extend(hs_records.iter().map(|r| ContactRef::hubspot(&r.id)));
        let mut preview =
            Preview { sampled_hubspot: hs_records.len(), sampled_mailerlite: ml_records.len(), ..Preview::default() };
        let pre = Preloaded { hubspot: hs_records, mailerlite: ml_records, ..Preloaded::default() };
        let mut report = crate::engine::Report::default();
        let mut retry = Vec::new();
        let mut units = self.load_units(&conn, &planner, refs, pre, &mut report, &mut retry).await?;
        plan_units(&planner, phase, &mut units, &mut report);
        preview.excluded_no_email = report.excluded;
        for u in &units {
            let Some(plan) = &u.plan else { continue };
            if !u.problems.is_empty() {
                preview.errors += 1;
            }
            count_side(&mut preview.hubspot, plan, Side::HubSpot);
            count_side(&mut preview.mailerlite, plan, Side::MailerLite);
            for c in &plan.changes {
                if let Reason::ConflictWinner(w) = c.reason {
                    *preview.conflicts.entry(w).or_default() += 1;
                }
            }
            if preview.samples.len() < samples && (plan.has_writes() || !u.problems.is_empty()) {
                preview.samples.push(PreviewContact {
                    email: u.email(),
                    changes: plan.changes.clone(),
                    errors: u.problems.iter().map(|p| p.message.clone()).collect(),
                });
            }
        }
        Ok(preview)
    }

    /// The credentials' status (which are set; never their values).
    pub async fn credentials_status(&self, conn_id: &str) -> Result<CredentialsStatus, EngineError> {
        self.connection(conn_id).await?;
        Ok(CredentialsStatus::of(&load_credentials(&*self.secrets, conn_id).await?))
    }

    /// Checks new credentials against the APIs (a wrong key is refused before it is saved),
    /// merges them into the stored ones, saves them and lifts a credentials pause. A new
    /// MailerLite API key of an active connection moves its webhooks to the key's account
    /// (registered at `target`; see [`Engine::move_mailerlite_webhooks`]).
    pub async fn set_credentials(
        &self,
        conn_id: &str,
        update: Credentials,
        apis: &ApiSettings,
        target: &crate::ml_webhooks::WebhookTarget,
    ) -> Result<Result<CredentialsStatus, Vec<CredentialProblem>>, EngineError> {
        let conn = self.connection(conn_id).await?;
        let mut problems = Vec::new();
        let mut new_mailerlite: Option<MailerLiteAdapter> = None;
        let mut new_portal: Option<u64> = None;
        if let Some(auth) = &update.hubspot {
            let usable = match auth {
                HubSpotAuth::Token { access_token } => Some(hmsync_hubspot::Auth::StaticToken(access_token.clone())),
                HubSpotAuth::OAuth { refresh_token, .. } if refresh_token.is_empty() => None,
                HubSpotAuth::OAuth { client_id, client_secret, refresh_token, access_token, expires_at_ms } => {
                    Some(hmsync_hubspot::Auth::OAuth {
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        refresh_token: refresh_token.clone(),
                        access_token: access_token.clone(),
                        expires_at_ms: *expires_at_ms,
                        on_update: None,
                    })
                }
            };
            if let Some(auth) = usable {
                let factory = crate::adapters::CredentialApis::new(self.secrets.clone(), apis.clone());
                let client = HubSpotAdapter::new(hmsync_hubspot::HubSpotClient::new(auth, factory.hubspot_config()));
                let field = match auth_kind(&update) {
                    "token" => "hubspot.access_token",
                    _ => "hubspot.refresh_token",
                };
                match client.portal_id().await {
                    Ok(portal) => match self.check_portal(conn_id, portal).await? {
                        Ok(()) => new_portal = Some(portal),
                        Err(message) => problems.push(CredentialProblem { field: field.into(), message }),
                    },
                    Err(e) => problems.push(CredentialProblem { field: field.into(), message: e.to_string() }),
                }
            }
        }
        if let Some(key) = &update.mailerlite_api_key {
            let factory = crate::adapters::CredentialApis::new(self.secrets.clone(), apis.clone());
            match hmsync_mailerlite::Client::new(factory.mailerlite_config(key)) {
                Ok(client) => {
                    let adapter = MailerLiteAdapter::new(client);
                    match adapter.count().await {
                        Ok(_) => new_mailerlite = Some(adapter),
                        Err(e) => problems
                            .push(CredentialProblem { field: "mailerlite_api_key".into(), message: e.to_string() }),
                    }
                }
                Err(e) => {
                    problems.push(CredentialProblem { field: "mailerlite_api_key".into(), message: e.to_string() })
                }
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        // Every part is read past the cache and written only when this request changes it, so
        // tokens a worker refreshed and webhook secrets a scan repaired meanwhile stay as they are.
        let fresh = crate::adapters::load_fresh(&*self.secrets, conn_id).await?;
        let mut stored = fresh.credentials.clone();
        let key_changed = update.mailerlite_api_key.is_some() && update.mailerlite_api_key != stored.mailerlite_api_key;
        let (state, _) = self.state(conn_id).await?;
        if let Some(new_ml) = new_mailerlite.filter(|_| key_changed && state.lifecycle != Lifecycle::Draft) {
            // Still with the old key stored: the old account's webhooks are deleted with it.
            self.move_mailerlite_webhooks(&conn, &new_ml, target, &mut stored).await?;
        }
        let keys_changed = update.hubspot.is_some() || update.mailerlite_api_key.is_some();
        if update.hubspot.is_some() {
            stored.hubspot = update.hubspot;
        }
        if update.hubspot_app_id.is_some() {
            stored.hubspot_app_id = update.hubspot_app_id;
        }
        if update.hubspot_client_secret.is_some() {
            stored.hubspot_client_secret = update.hubspot_client_secret;
        }
        if update.mailerlite_api_key.is_some() {
            stored.mailerlite_api_key = update.mailerlite_api_key;
        }
        if update.mailerlite_webhook_secret.is_some() {
            stored.mailerlite_webhook_secret = update.mailerlite_webhook_secret;
        }
        let secrets = &*self.secrets;
        if keys_changed || !fresh.has_keys {
            put_part(secrets, &credentials_secret_name(conn_id), &ApiKeys::of(&stored)).await?;
            if let Some(tokens) = install_tokens(stored.hubspot.as_ref()) {
                put_part(secrets, &hubspot_tokens_secret_name(conn_id), &tokens).await?;
            }
        }
        let hubspot_signing = HubSpotSigning::of(&stored);
        if !fresh.has_hubspot_signing || hubspot_signing != HubSpotSigning::of(&fresh.credentials) {
            put_part(secrets, &hubspot_signing_secret_name(conn_id), &hubspot_signing).await?;
        }
        let mailerlite_signing = MailerLiteSigning::of(&stored);
        if !fresh.has_mailerlite_signing || mailerlite_signing != MailerLiteSigning::of(&fresh.credentials) {
            put_part(secrets, &mailerlite_signing_secret_name(conn_id), &mailerlite_signing).await?;
        }
        if let Some(portal) = new_portal {
            self.pin_portal(conn_id, portal).await.map_err(lifecycle_to_engine)?;
        }
        self.credentials_changed(conn_id).await.map_err(lifecycle_to_engine)?;
        Ok(Ok(CredentialsStatus::of(&stored)))
    }

    /// Stores HubSpot OAuth tokens obtained by the install flow (keeps the client id/secret).
    /// An install in another portal than the one the connection is pinned to is refused
    /// (`Ok(Err(why))`, naming both portals) and nothing is stored.
    pub async fn store_oauth_tokens(
        &self,
        conn_id: &str,
        client_id: &str,
        client_secret: &str,
        tokens: &hmsync_hubspot::TokenSet,
    ) -> Result<Result<(), String>, EngineError> {
        if let Some(portal) = tokens.hub_id
            && let Err(refusal) = self.check_portal(conn_id, portal).await?
        {
            return Ok(Err(refusal));
        }
        // The install's tokens go with the client into the API keys' part (the config API is
        // its only writer) and start the refreshed tokens' part over.
        let fresh = crate::adapters::load_fresh(&*self.secrets, conn_id).await?;
        let mut keys = ApiKeys::of(&fresh.credentials);
        keys.hubspot = Some(HubSpotAuth::OAuth {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            refresh_token: tokens.refresh_token.clone(),
            access_token: Some(tokens.access_token.clone()),
            expires_at_ms: Some(tokens.expires_at_ms),
        });
        put_part(&*self.secrets, &credentials_secret_name(conn_id), &keys).await?;
        if let Some(tokens) = install_tokens(keys.hubspot.as_ref()) {
            put_part(&*self.secrets, &hubspot_tokens_secret_name(conn_id), &tokens).await?;
        }
        if let Some(portal) = tokens.hub_id {
            self.pin_portal(conn_id, portal).await.map_err(lifecycle_to_engine)?;
        }
        self.credentials_changed(conn_id).await.map_err(lifecycle_to_engine)?;
        Ok(Ok(()))
    }

    /// The stored credentials (for the OAuth flow, which needs the client id and secret).
    pub async fn credentials(&self, conn_id: &str) -> Result<Credentials, EngineError> {
        load_credentials(&*self.secrets, conn_id).await
    }

    /// Deletes a connection: its MailerLite webhooks (if MailerLite still takes the key), its
    /// stored items, its credentials and its webhook routing.
    pub async fn delete_connection(&self, conn_id: &str) -> Result<bool, EngineError> {
        if let Some(conn) = self.store.get_connection(conn_id).await? {
            self.remove_mailerlite_webhooks(&conn).await?;
        }
        let existed = self.store.delete_connection(conn_id).await?;
        for name in crate::adapters::connection_secret_names(conn_id) {
            self.secrets.delete_secret(&name).await?;
        }
        self.apis.forget(conn_id);
        Ok(existed)
    }
}

fn auth_kind(c: &Credentials) -> &'static str {
    match &c.hubspot {
        Some(HubSpotAuth::Token { .. }) => "token",
        _ => "oauth",
    }
}

fn count_side(counts: &mut SideCounts, plan: &hmsync_core::Plan, side: Side) {
    let written = match side {
        Side::HubSpot => plan.hubspot.as_ref().map(|w| matches!(w, hmsync_core::HubSpotWrite::Create { .. })),
        Side::MailerLite => plan.mailerlite.as_ref().map(|w| matches!(w, hmsync_core::MailerLiteWrite::Create { .. })),
    };
    match written {
        Some(true) => counts.creates += 1,
        Some(false) => counts.updates += 1,
        None => counts.unchanged += 1,
    }
    if side == Side::MailerLite {
        counts.unsubscribes += plan.safety.unsubscribes as usize;
        counts.group_removals += plan.safety.group_removals as usize;
        counts.group_adds +=
            plan.group_changes.iter().filter(|g| matches!(g, hmsync_core::GroupChange::Add { .. })).count();
    }
    counts.field_clears += plan
        .changes
        .iter()
        .filter(|c| c.target == side && c.after.is_none() && c.before.is_some() && !c.field.starts_with("group:"))
        .count();
}

fn initial_progress(state: &ConnectionState, counters: &BTreeMap<String, i64>, now: i64) -> InitialProgress {
    let done = counters.get(counters::INITIAL_DONE).copied().unwrap_or(0).max(0) as u64;
    let total = state.scan.as_ref().filter(|r| r.kind == crate::message::ScanKind::Initial).and_then(|r| r.expected);
    let started = state.initial_started_at_ms;
    let finished = state.initial_finished_at_ms;
    let rate = match (started, finished) {
        (Some(s), None) if now > s && done > 0 => Some(done as f64 / ((now - s) as f64 / 1000.0)),
        (Some(s), Some(f)) if f > s && done > 0 => Some(done as f64 / ((f - s) as f64 / 1000.0)),
        _ => None,
    };
    let eta = match (total, rate, finished) {
        (Some(t), Some(r), None) if r > 0.0 => Some((t.saturating_sub(done) as f64 / r).ceil() as u64),
        _ => None,
    };
    InitialProgress {
        done,
        total,
        started_at_ms: started,
        finished_at_ms: finished,
        rate_per_second: rate,
        eta_seconds: eta,
    }
}

fn lifecycle_to_engine(e: crate::LifecycleError) -> EngineError {
    match e {
        crate::LifecycleError::Engine(e) => e,
        other => EngineError::Permanent(other.to_string()),
    }
}
