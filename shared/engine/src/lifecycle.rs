//! The connection lifecycle: refresh fields, activate (starts the initial sync), pause,
//! resume, sync now, approve (releases the safety valve), the schedule's tick, and HubSpot
//! merges.

use hmsync_core::{
    ConfigProblem, FieldSchemas, Planner, engagement, link_kept_after_merge, rekey_after_merge, validate_config,
};
use hmsync_store::{Connection, LinkKey};

use crate::api::{ApiError, HsRecord};
use crate::engine::{ConflictRetry, Engine, EngineError, Report};
use crate::failpoint;
use crate::message::{ContactRef, Origin, ScanKind, SyncMessage};
use crate::ml_webhooks::WebhookTarget;
use crate::state::{ConnectionState, Lifecycle, Pause, Problem};
use crate::sync::{Preloaded, hubspot_properties};

/// What a schedule tick (or a release of waits) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tick {
    pub scans_enqueued: usize,
    /// Parked messages replayed because their wait for an API limit was over.
    pub waits_released: usize,
    /// Connections whose part of the tick failed (each is logged with its error).
    pub failures: usize,
}

/// Why a lifecycle action was refused (the config API turns these into 4xx answers).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the config has problems; fix them first")]
    InvalidConfig(Vec<ConfigProblem>),
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<hmsync_store::StoreError> for LifecycleError {
    fn from(e: hmsync_store::StoreError) -> Self {
        LifecycleError::Engine(e.into())
    }
}

impl From<ApiError> for LifecycleError {
    fn from(e: ApiError) -> Self {
        LifecycleError::Engine(e.into())
    }
}

impl Engine {
    /// Re-reads both apps' schemas (HubSpot contact and company properties, MailerLite fields),
    /// creates the engagement properties if the connection records engagement, stores the
    /// schemas, and returns the config's problems against them.
    pub async fn refresh_fields(&self, conn_id: &str) -> Result<(Connection, Vec<ConfigProblem>), LifecycleError> {
        let conn = self.connection(conn_id).await?;
        let hs = self.apis.hubspot(&conn).await?;
        let ml = self.apis.mailerlite(&conn).await?;
        if conn.config.engagement.enabled {
            hs.ensure_properties(
                engagement::PROPERTY_GROUP,
                engagement::PROPERTY_GROUP_LABEL,
                &engagement::properties(),
            )
            .await?;
        }
        let schemas = FieldSchemas {
            hubspot_contact: hs.contact_properties().await?,
            hubspot_company: hs.company_properties().await?,
            mailerlite: ml.fields().await?,
        };
        let portal_id = hs.portal_id().await?;
        if let Err(refusal) = self.check_portal(conn_id, portal_id).await? {
            return Err(LifecycleError::NotAllowed(refusal));
        }
        // The schemas are stored on the newest version of the connection: a config saved while
        // the apps were read is kept, and a lost race starts again from a fresh read.
        let mut races = ConflictRetry::new(format!("connection {conn_id}"));
        let mut next = conn;
        let conn = loop {
            next.schemas = Some(schemas.clone());
            match self.store.update_connection(&next).await {
                Ok(saved) => break saved,
                Err(e) => {
                    races.after(e.into())?;
                    next = self.connection(conn_id).await?;
                }
            }
        };
        self.pin_portal(conn_id, portal_id).await?;
        let problems = validate_config(&conn.config, conn.schemas.as_ref());
        Ok((conn, problems))
    }

    /// Whether credentials of HubSpot portal `portal` may serve the connection: a connection is
    /// pinned to the portal of its first HubSpot credentials, so a token or an install for
    /// another portal (an agency picking the wrong client's portal) is refused, naming both,
    /// instead of creating subscribers' contacts in another client's CRM.
    pub async fn check_portal(&self, conn_id: &str, portal: u64) -> Result<Result<(), String>, EngineError> {
        let (state, _) = self.state(conn_id).await?;
        Ok(match state.portal_id {
            Some(pinned) if pinned != portal => Err(format!(
                "these HubSpot credentials are for portal {portal}, but connection {conn_id} syncs portal {pinned} \
                 (the portal of its first HubSpot credentials); nothing was saved. Use credentials of portal \
                 {pinned}, or create another connection for portal {portal}"
            )),
            _ => Ok(()),
        })
    }

    /// Pins the connection to `portal` (if it is not pinned yet) and routes the portal's
    /// webhooks to it. Fails, changing nothing, if it is pinned to another portal.
    pub async fn pin_portal(&self, conn_id: &str, portal: u64) -> Result<(), LifecycleError> {
        let (_, refusal) = self
            .update_state(conn_id, |s| match s.portal_id {
                Some(pinned) if pinned != portal => Some(pinned),
                _ => {
                    s.portal_id = Some(portal);
                    None
                }
            })
            .await?;
        if let Some(pinned) = refusal {
            return Err(LifecycleError::NotAllowed(format!(
                "connection {conn_id} syncs HubSpot portal {pinned}, not portal {portal}"
            )));
        }
        self.store.add_route(portal, conn_id).await?;
        Ok(())
    }

    /// Activates a connection: validates it against fresh schemas, registers its MailerLite
    /// webhooks at `target` and starts the initial sync. A webhook that cannot be registered
    /// does not stop the activation: the status says why, and each scan tries again.
    pub async fn activate(&self, conn_id: &str, target: &WebhookTarget) -> Result<ConnectionState, LifecycleError> {
        let (_, problems) = self.refresh_fields(conn_id).await?;
        if !problems.is_empty() {
            return Err(LifecycleError::InvalidConfig(problems));
        }
        let now = self.now_ms();
        let (state, started) = self
            .update_state(conn_id, |s| {
                if s.lifecycle != Lifecycle::Draft {
                    return false;
                }
                s.lifecycle = Lifecycle::InitialSync;
                s.initial_started_at_ms = Some(now);
                s.problem = None;
                true
            })
            .await?;
        if !started {
            return Err(LifecycleError::NotAllowed(format!(
                "connection {conn_id} is already active; use sync-now to scan again"
            )));
        }
        // Before the initial sync reads anything: a change made in MailerLite meanwhile arrives
        // as a webhook instead of waiting for the first scan. Only a store failure gets here as
        // an error (a MailerLite one is recorded); the initial sync starts anyway, and "sync
        // now" registers the webhooks later.
        if let Err(e) = self.register_mailerlite_webhooks(conn_id, target).await {
            tracing::error!(connection = conn_id, error = %e, "the MailerLite webhooks could not be recorded; \"sync now\" registers them");
        }
        self.enqueue(&[SyncMessage::ScanStart { connection_id: conn_id.to_string(), kind: ScanKind::Initial }]).await?;
        Ok(state)
    }

    pub async fn pause(&self, conn_id: &str) -> Result<ConnectionState, LifecycleError> {
        self.connection(conn_id).await?;
        let (state, _) = self
            .update_state(conn_id, |s| {
                if s.pause.is_none() {
                    s.pause = Some(Pause::User);
                }
            })
            .await?;
        Ok(state)
    }

    /// Resumes a connection paused by the user or by a credentials problem, and replays the work
    /// that arrived meanwhile. A safety-valve pause needs `approve`.
    pub async fn resume(&self, conn_id: &str) -> Result<ConnectionState, LifecycleError> {
        self.connection(conn_id).await?;
        let (state, parked) = self
            .update_state(conn_id, |s| match &s.pause {
                Some(Pause::SafetyValve { .. }) => None,
                _ => {
                    s.pause = None;
                    s.problem = None;
                    Some(std::mem::take(&mut s.legacy_parked))
                }
            })
            .await?;
        let Some(parked) = parked else {
            return Err(LifecycleError::NotAllowed(
                "the safety valve holds this connection: review the pending changes and approve them".into(),
            ));
        };
        self.replay(conn_id, parked).await?;
        Ok(state)
    }

    /// Approves the destructive changes the safety valve held, and replays them.
    pub async fn approve(&self, conn_id: &str) -> Result<ConnectionState, LifecycleError> {
        self.connection(conn_id).await?;
        let until = self.now_ms() + self.settings.approval_window.as_millis() as i64;
        let (state, parked) = self
            .update_state(conn_id, |s| match &s.pause {
                Some(Pause::SafetyValve { run_id, .. }) => {
                    if let Some(run) = s.scan.as_mut().filter(|r| Some(&r.run_id) == run_id.as_ref()) {
                        run.approved = true;
                    }
                    s.approved_until_ms = Some(until);
                    s.pause = None;
                    Some(std::mem::take(&mut s.legacy_parked))
                }
                _ => None,
            })
            .await?;
        let Some(parked) = parked else {
            return Err(LifecycleError::NotAllowed("nothing is waiting for approval".into()));
        };
        self.replay(conn_id, parked).await?;
        Ok(state)
    }

    /// "Sync now": a scan of both sides, right away (the scan checks the MailerLite webhooks).
    pub async fn sync_now(&self, conn_id: &str) -> Result<(), LifecycleError> {
        self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if state.lifecycle == Lifecycle::Draft {
            return Err(LifecycleError::NotAllowed(format!(
                "connection {conn_id} is not active yet; activate it first"
            )));
        }
        let msg = SyncMessage::ScanStart { connection_id: conn_id.to_string(), kind: ScanKind::Manual };
        self.enqueue_fresh(&msg).await?;
        Ok(())
    }

    /// The schedule's tick: waits that are over are released, and every active connection
    /// without a scan running gets one. Each connection on its own: one that fails (its state
    /// unreadable, a throttled write) is logged and counted, and the others still get theirs.
    /// Fails only when the connections cannot be listed.
    pub async fn schedule_tick(&self) -> Result<Tick, EngineError> {
        let connections = self.store.list_connections().await?;
        let now = self.now_ms();
        let stale = self.settings.scan_stale_after.as_millis() as i64;
        let mut tick = Tick::default();
        for conn in &connections {
            let outcome: Result<(usize, bool), EngineError> = async {
                let released = self.release_wait(&conn.id, now).await?;
                let (state, _) = self.state(&conn.id).await?;
                let running = state.scan.as_ref().is_some_and(|r| now - r.last_page_at_ms < stale);
                let due = state.lifecycle == Lifecycle::Continuous && state.pause.is_none() && !running;
                if due {
                    self.enqueue_fresh(&SyncMessage::ScanStart {
                        connection_id: conn.id.clone(),
                        kind: ScanKind::Scheduled,
                    })
                    .await?;
                }
                Ok((released, due))
            }
            .await;
            match outcome {
                Ok((released, due)) => {
                    tick.waits_released += released;
                    tick.scans_enqueued += usize::from(due);
                }
                Err(e) => {
                    tick.failures += 1;
                    tracing::error!(connection = %conn.id, error = %e, "the scheduled scan of this connection could not start; the other connections' went ahead, and the next tick tries again");
                }
            }
        }
        Ok(tick)
    }

    /// Enqueues a message with a dedup id unique to now (repeated requests are new work).
    pub(crate) async fn enqueue_fresh(&self, message: &SyncMessage) -> Result<(), EngineError> {
        let dedup = format!("{}-{}", self.now_ms(), &message.content_dedup_id()[..16]);
        self.queue
            .send_batch(&[hmsync_store::QueueMessage {
                group_id: message.connection_id().to_string(),
                dedup_id: dedup,
                body: message.to_body(),
            }])
            .await?;
        Ok(())
    }

    /// Sends the connection's parked work back to the queue, oldest first (with `legacy`, work a
    /// state document of an earlier version held), and removes each page once it is queued.
    /// Returns how many messages went back.
    pub(crate) async fn replay(&self, conn_id: &str, legacy: Vec<serde_json::Value>) -> Result<usize, EngineError> {
        let mut replayed = 0;
        for m in legacy.into_iter().filter_map(|v| serde_json::from_value::<SyncMessage>(v).ok()) {
            self.enqueue_fresh(&m).await?;
            replayed += 1;
        }
        loop {
            let page = self.store.list_parked(conn_id, None, 100).await?;
            if page.items.is_empty() {
                return Ok(replayed);
            }
            let mut ids = Vec::with_capacity(page.items.len());
            for parked in page.items {
                match SyncMessage::from_body(&parked.body) {
                    Ok(m) => {
                        self.enqueue_fresh(&m).await?;
                        replayed += 1;
                    }
                    Err(e) => {
                        tracing::error!(connection = conn_id, error = %e, "a parked message could not be read; dropped")
                    }
                }
                ids.push(parked.id);
            }
            self.store.remove_parked(conn_id, &ids).await?;
        }
    }

    /// New credentials were stored: drop cached clients and lift a credentials pause.
    pub async fn credentials_changed(&self, conn_id: &str) -> Result<(), LifecycleError> {
        self.apis.forget(conn_id);
        let (_, parked) = self
            .update_state(conn_id, |s| {
                if matches!(s.pause, Some(Pause::Credentials { .. })) {
                    s.pause = None;
                    s.problem = None;
                    return Some(std::mem::take(&mut s.legacy_parked));
                }
                None
            })
            .await?;
        if let Some(legacy) = parked {
            self.replay(conn_id, legacy).await?;
        }
        Ok(())
    }

    /// Turns a failure that concerns the whole connection (credentials, daily limit) into state
    /// the status page shows, parking the message where that keeps work safe; then adds what the
    /// message did to the connection's counters of this hour (one store write per message).
    pub async fn handle_with_recovery(&self, message: &SyncMessage) -> Result<Report, EngineError> {
        let conn_id = message.connection_id();
        let before = self.apis.requests_sent(conn_id);
        let outcome = self.recover(message).await;
        self.count_hour(conn_id, outcome.as_ref(), before).await;
        outcome
    }

    async fn recover(&self, message: &SyncMessage) -> Result<Report, EngineError> {
        let mut outcome = self.handle(message).await;
        if matches!(outcome, Err(EngineError::Api(ApiError::Unauthorized { .. } | ApiError::Forbidden { .. }))) {
            // Credentials saved since this process read them (the config API runs in another
            // function, and credentials are cached) get one try before the connection pauses.
            self.apis.forget(message.connection_id());
            outcome = self.handle(message).await;
        }
        match outcome {
            Err(EngineError::Api(ApiError::Unauthorized { side, message: msg, action }))
            | Err(EngineError::Api(ApiError::Forbidden { side, message: msg, action })) => {
                let now = self.now_ms();
                let conn_id = message.connection_id();
                self.update_state(conn_id, |s| {
                    s.pause = Some(Pause::Credentials { side, message: msg.clone(), action: action.clone() });
                    s.problem =
                        Some(Problem { side: Some(side), message: msg.clone(), action: action.clone(), since_ms: now });
                })
                .await?;
                tracing::warn!(connection = conn_id, %side, "credentials refused; connection paused until they are replaced");
                self.park(conn_id, message).await
            }
            Err(EngineError::Api(ApiError::DailyLimit { .. })) => {
                let retry_after = self.settings.daily_limit_probe;
                let now = self.now_ms();
                let until = now + retry_after.as_millis() as i64;
                self.update_state(message.connection_id(), |s| {
                    s.wait_until_ms = Some(until);
                    s.problem = Some(Problem {
                        side: Some(hmsync_core::Side::HubSpot),
                        message: "HubSpot's daily API limit is used up.".into(),
                        action: "Nothing to do: hmsync waits until the limit resets and resumes by itself. Other apps of the portal share this limit.".into(),
                        since_ms: now,
                    });
                })
                .await?;
                tracing::warn!(connection = message.connection_id(), "HubSpot daily limit used up; work waits parked");
                self.park(message.connection_id(), message).await
            }
            Ok(report) => {
                if !report.parked {
                    self.clear_transient_problem(message.connection_id()).await?;
                }
                Ok(report)
            }
            other => other,
        }
    }

    /// Ends the waits for API limits whose time is up: the parked work is replayed (and, if the
    /// limit is still used up, waits again). Runs with every schedule tick (and the local
    /// runner's minute timer); the next message of a connection does the same by itself (see
    /// `gate`). Each connection on its own, like [`Engine::schedule_tick`].
    pub async fn release_waits(&self) -> Result<Tick, EngineError> {
        let now = self.now_ms();
        let mut tick = Tick::default();
        for conn in self.store.list_connections().await? {
            match self.release_wait(&conn.id, now).await {
                Ok(released) => tick.waits_released += released,
                Err(e) => {
                    tick.failures += 1;
                    tracing::error!(connection = %conn.id, error = %e, "the wait of this connection could not be released; tried again later");
                }
            }
        }
        Ok(tick)
    }

    /// Releases one connection's wait if its time is up; returns how many parked messages were
    /// replayed.
    async fn release_wait(&self, conn_id: &str, now: i64) -> Result<usize, EngineError> {
        let (state, _) = self.state(conn_id).await?;
        if state.pause.is_some() || state.wait_until_ms.is_none_or(|t| t > now) {
            return Ok(0);
        }
        let (_, parked) = self
            .update_state(conn_id, |s| {
                if s.pause.is_none() && s.wait_until_ms.is_some_and(|t| t <= now) {
                    s.wait_until_ms = None;
                    return Some(std::mem::take(&mut s.legacy_parked));
                }
                None
            })
            .await?;
        match parked {
            Some(legacy) => self.replay(conn_id, legacy).await,
            None => Ok(0),
        }
    }

    /// A wait for an API limit is over once work succeeds again.
    async fn clear_transient_problem(&self, conn_id: &str) -> Result<(), EngineError> {
        let (state, _) = self.state(conn_id).await?;
        if state.problem.is_some() && state.pause.is_none() && state.wait_until_ms.is_none() {
            self.update_state(conn_id, |s| {
                if s.pause.is_none() && s.wait_until_ms.is_none() {
                    s.problem = None;
                }
            })
            .await?;
        }
        Ok(())
    }

    /// A company's mapped property changed (company fields flow HubSpot → MailerLite): every
    /// contact whose primary company it is syncs again.
    pub(crate) async fn company_changed(
        &self,
        conn_id: &str,
        company_id: &str,
        message: &SyncMessage,
    ) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, message).await? {
            return Ok(report);
        }
        let hs = self.apis.hubspot(&conn).await?;
        let contacts = hs.contacts_of_company(company_id).await?;
        let mut report = Report::default();
        for chunk in contacts.chunks(self.settings.refs_per_message.max(1)) {
            let refs = chunk.iter().map(|id| ContactRef::hubspot(id)).collect();
            let r = self.sync_contacts(conn_id, refs, Origin::Webhook, Preloaded::default(), message).await?;
            report.contacts += r.contacts;
            report.written += r.written;
            report.written_hubspot += r.written_hubspot;
            report.written_mailerlite += r.written_mailerlite;
            report.errors += r.errors;
        }
        Ok(report)
    }

    /// A HubSpot merge: the links of the merged contacts move to the survivor (one link is kept,
    /// no duplicate is made), then the survivor and the subscribers of the retired links are
    /// synced (those leave the target group, like the subscribers of deleted contacts).
    pub(crate) async fn merge(
        &self,
        conn_id: &str,
        survivor_id: &str,
        merged_ids: &[String],
        message: &SyncMessage,
    ) -> Result<Report, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (state, _) = self.state(conn_id).await?;
        if let Some(report) = self.gate(conn_id, &state, message).await? {
            return Ok(report);
        }
        let mut refs = vec![ContactRef::hubspot(survivor_id)];
        refs.extend(self.rekey_merge(&conn, survivor_id, merged_ids, None).await?);
        self.sync_contacts(conn_id, refs, Origin::Webhook, Preloaded::default(), message).await
    }

    /// Re-keys the links of a merge in the store ([`hmsync_core::rekey_after_merge`]) and
    /// returns the references to sync for the retired links' subscribers. `survivor` is the
    /// survivor as already read, if it was. Costs a HubSpot read of the survivor when not given,
    /// and a MailerLite read by email when the link to keep does not have the survivor's email
    /// (another subscriber may have it).
    pub(crate) async fn rekey_merge(
        &self,
        conn: &Connection,
        survivor_id: &str,
        merged_ids: &[String],
        survivor: Option<&HsRecord>,
    ) -> Result<Vec<ContactRef>, EngineError> {
        let conn_id = conn.id.as_str();
        let mut keys: Vec<LinkKey> = merged_ids.iter().map(|i| LinkKey::HubSpot(i.clone())).collect();
        keys.push(LinkKey::HubSpot(survivor_id.to_string()));
        let mut links: Vec<hmsync_core::Link> = Vec::new();
        for (_, l) in self.store.find_links(conn_id, &keys).await? {
            if !links.iter().any(|x| x.id == l.id) {
                links.push(l);
            }
        }
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let read;
        let survivor = match survivor {
            Some(s) => Some(s),
            None => {
                let hs = self.apis.hubspot(conn).await?;
                let planner = Planner::new(&conn.config, &conn.schemas.clone().unwrap_or_default());
                read = hs.read_contacts(&[survivor_id.to_string()], &hubspot_properties(&planner)).await?;
                read.iter().find(|r| r.id == survivor_id)
            }
        };
        let survivor_email = survivor.and_then(|r| r.property("email").and_then(hmsync_core::normalize_email));
        // Email is the link key: when the link that would be kept has another email, the
        // subscriber that has the survivor's email (if any) belongs with the survivor.
        let mut survivor_subscriber: Option<String> = None;
        if let Some(email) = &survivor_email
            && let Some(keep) = link_kept_after_merge(survivor_id, Some(email), None, &links)
            && links[keep].email != *email
        {
            let ml = self.apis.mailerlite(conn).await?;
            survivor_subscriber = ml
                .get_by_emails(std::slice::from_ref(email))
                .await?
                .into_iter()
                .find(|m| hmsync_core::normalize_email(&m.email).as_deref() == Some(email.as_str()))
                .map(|m| m.id);
        }
        let before = links.clone();
        let outcome = rekey_after_merge(survivor_id, survivor_email.as_deref(), survivor_subscriber.as_deref(), links);
        // Retired links give up the survivor's id before the kept link claims it.
        let mut refs = Vec::new();
        for r in &outcome.retired {
            let prev = before.iter().find(|l| l.id == r.id);
            if prev != Some(r) {
                self.store.put_link(conn_id, r, prev).await?;
            }
            if let Some(ml_id) = &r.mailerlite_id {
                refs.push(ContactRef::mailerlite(ml_id));
            }
        }
        if let Some(k) = &outcome.kept {
            let prev = before.iter().find(|l| l.id == k.id);
            if prev != Some(k) {
                self.store.put_link(conn_id, k, prev).await?;
            }
        }
        self.failpoints.check(failpoint::AFTER_MERGE_REKEYED)?;
        Ok(refs)
    }

    /// The merges a scan finds on the contacts it read (`hs_merged_object_ids`) whose webhook was
    /// lost: a link still holding a merged-away contact as live. Re-keys them and returns the
    /// references to sync besides the page (the retired links' subscribers). Costs one store
    /// lookup per page with merged contacts, and API reads only for merges not handled yet.
    pub(crate) async fn repair_lost_merges(
        &self,
        conn: &Connection,
        records: &[HsRecord],
    ) -> Result<Vec<ContactRef>, EngineError> {
        let merged = merged_ids;
        let keys: Vec<LinkKey> = records.iter().flat_map(merged).map(LinkKey::HubSpot).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut live: Vec<String> = Vec::new();
        let mut refs = Vec::new();
        for (key, l) in self.store.find_links(&conn.id, &keys).await? {
            let LinkKey::HubSpot(id) = key else { continue };
            if !l.hs_deleted {
                live.push(id);
            } else if l.in_target_group
                && let Some(ml_id) = &l.mailerlite_id
            {
                // Retired by a merge whose sync did not finish (a crash in between): its
                // subscriber still has to leave the target group.
                refs.push(ContactRef::mailerlite(ml_id));
            }
        }
        for r in records {
            let ids = merged(r);
            if ids.iter().any(|id| live.contains(id)) {
                tracing::info!(connection = %conn.id, survivor = %r.id, merged = ?ids, "a merge whose webhook was lost: links re-keyed");
                refs.extend(self.rekey_merge(conn, &r.id, &ids, Some(r)).await?);
                // The survivor is planned whatever its modification time says: the kept link
                // is marked merged, and the values HubSpot merged in are checked once.
                refs.push(ContactRef::hubspot(&r.id));
            }
        }
        Ok(refs)
    }

    /// The merges that the contacts read by id reveal: a requested id answered by a record with
    /// another id that lists it in `hs_merged_object_ids` (HubSpot answers a merged-away id with
    /// the survivor), and survivors whose absorbed contacts links still hold
    /// ([`Engine::repair_lost_merges`] re-keys those). `None` when there is nothing to do; else
    /// the requested ids to read as their survivors, and the references to sync besides.
    /// Costs one store lookup when a read record names merged contacts, API calls only for
    /// merges not handled yet.
    pub(crate) async fn merges_in_reads(
        &self,
        conn: &Connection,
        units: &[crate::sync::Unit],
        preloaded: &std::collections::HashMap<String, HsRecord>,
        read: &std::collections::HashMap<String, HsRecord>,
    ) -> Result<Option<(std::collections::HashMap<String, String>, Vec<ContactRef>)>, EngineError> {
        let survivors: Vec<HsRecord> = read
            .iter()
            .filter(|(id, r)| {
                !preloaded.contains_key(*id) && r.property(MERGED_IDS).is_some_and(|m| !m.trim().is_empty())
            })
            .map(|(_, r)| r.clone())
            .collect();
        if survivors.is_empty() {
            return Ok(None);
        }
        let mut aliases = std::collections::HashMap::new();
        for u in units {
            let Some(id) = &u.hs_id else { continue };
            // A link retired by a merge keeps its absorbed id on purpose: nothing to follow.
            if read.contains_key(id) || preloaded.contains_key(id) || u.link.as_ref().is_some_and(|l| l.hs_deleted) {
                continue;
            }
            if let Some(s) = survivors.iter().find(|s| merged_ids(s).iter().any(|m| m == id)) {
                aliases.insert(id.clone(), s.id.clone());
            }
        }
        let refs = self.repair_lost_merges(conn, &survivors).await?;
        if aliases.is_empty() && refs.is_empty() {
            return Ok(None);
        }
        Ok(Some((aliases, refs)))
    }
}

/// The HubSpot property listing the contacts merged into a contact (`;`-separated ids).
pub(crate) const MERGED_IDS: &str = "hs_merged_object_ids";

/// The contacts `r` absorbed, from its `hs_merged_object_ids` (its own id left out).
fn merged_ids(r: &HsRecord) -> Vec<String> {
    r.property(MERGED_IDS)
        .map(|m| m.split(';').map(str::trim).filter(|s| !s.is_empty() && *s != r.id).map(String::from).collect())
        .unwrap_or_default()
}
