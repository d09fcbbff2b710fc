//! Snapshots of the simulated portal (see [`crate::snapshot`]): the portal's data, OAuth grants
//! and tokens, the app's webhook settings, the event id counter and the portal's identity.
//! Rate-limit windows, statistics and faults are not kept (a restored portal starts them fresh).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{AuthState, Db, HubSpotConfig, HubSpotState, WebhookSettings};

/// How far the contact, company and note id counters move ahead on restore: far more records
/// than a sync creates between two saves of a running sandbox (see [`crate::snapshot`] for why).
pub const RESTORE_ID_GAP: u64 = 1_000_000;

/// The same for list ids (lists are few, and made by people rather than by a sync).
pub const RESTORE_LIST_ID_GAP: u64 = 1_000;

/// Everything the portal holds that a restart must keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubSpotSnapshot {
    /// The portal's configuration when the snapshot was taken; a restore keeps its identity
    /// (tokens, ids, secrets), see [`HubSpotState::restored`].
    pub config: HubSpotConfig,
    pub db: Db,
    pub auth: AuthState,
    pub webhooks: Option<WebhookSettings>,
    pub next_event_id: u64,
}

/// The portal's part of [`crate::snapshot::SandboxGeneration`].
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotGeneration {
    db: u64,
    auth: (u64, usize, usize),
    webhooks: Option<WebhookSettings>,
}

/// The portal's data, locked. Every mutable access bumps [`Db::generation`], which is how a
/// snapshot saver notices a change without comparing whole portals: all writes go through
/// [`HubSpotState::db`], so none can slip past.
pub struct DbGuard<'a>(pub(super) MutexGuard<'a, Db>);

impl Deref for DbGuard<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.0
    }
}

impl DerefMut for DbGuard<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        let db = &mut *self.0;
        db.generation = db.generation.wrapping_add(1);
        db
    }
}

impl Db {
    /// Rebuilds the email index from the contacts, as the writes maintain it: every primary and
    /// additional email of every live (not archived) contact.
    pub fn rebuild_indexes(&mut self) {
        self.email_index.clear();
        let live: Vec<u64> = self.contacts.values().filter(|r| !r.archived).map(|r| r.id).collect();
        for id in live {
            self.index_emails(id);
        }
    }
}

impl HubSpotState {
    /// A copy of the portal's state (see [`HubSpotSnapshot`]).
    pub fn snapshot(&self) -> HubSpotSnapshot {
        HubSpotSnapshot {
            config: self.config(),
            db: self.db.lock().expect("db lock").clone(),
            auth: self.auth.lock().expect("auth lock").clone(),
            webhooks: self.webhook_settings(),
            next_event_id: self.next_event_id.load(Ordering::SeqCst),
        }
    }

    /// A portal restored from a snapshot. Its identity (static token, portal id, app id, OAuth
    /// client id and secret, seed) is the snapshot's, because a client that stored them (or ids
    /// signed with them) must keep working; its operational settings (rate limits, time scale,
    /// search lag, token lifetime) are `config`'s. Derived indexes are rebuilt, and the id
    /// counters move ahead by [`RESTORE_ID_GAP`] so that no id handed out after the snapshot
    /// was taken is handed out again.
    pub fn restored(config: HubSpotConfig, snapshot: HubSpotSnapshot) -> Arc<Self> {
        let saved = snapshot.config;
        let config = HubSpotConfig {
            token: saved.token,
            portal_id: saved.portal_id,
            app_id: saved.app_id,
            client_id: saved.client_id,
            client_secret: saved.client_secret,
            seed: saved.seed,
            ..config
        };
        let state = Self::new(config);
        let mut db = snapshot.db;
        db.rebuild_indexes();
        db.next_contact_id += RESTORE_ID_GAP;
        db.next_company_id += RESTORE_ID_GAP;
        db.next_note_id += RESTORE_ID_GAP;
        db.next_list_id += RESTORE_LIST_ID_GAP;
        *state.db.lock().expect("db lock") = db;
        *state.auth.lock().expect("auth lock") = snapshot.auth;
        *state.webhooks.lock().expect("webhooks lock") = snapshot.webhooks;
        state.next_event_id.store(snapshot.next_event_id, Ordering::SeqCst);
        state
    }

    /// See [`crate::snapshot::SandboxGeneration`].
    pub fn generation(&self) -> HubSpotGeneration {
        HubSpotGeneration {
            db: self.db.lock().expect("db lock").generation,
            auth: self.auth.lock().expect("auth lock").generation(),
            webhooks: self.webhook_settings(),
        }
    }
}
