//! Snapshots of the simulated account (see [`crate::snapshot`]): subscribers, groups, fields,
//! segments, webhooks, campaigns, imports, the activity log, pending events, the id counters
//! and the id generator's state, and the account's identity. Rate-limit windows, statistics,
//! faults and queued webhook deliveries are not kept (a restored account starts them fresh).

use serde::{Deserialize, Serialize};

use super::account::{MailerLite, MailerLiteConfig};
use super::store::Store;

/// How far the id counter (subscribers, groups, segments, webhooks, campaigns, imports, log
/// entries) moves ahead on restore: ids grow by 2048 on average, so this skips about half a
/// million ids, far more than a sync creates between two saves of a running sandbox (see
/// [`crate::snapshot`] for why).
pub const RESTORE_ID_GAP: u64 = 1_000_000_000;

/// The same for field ids (fields are few, and made by people rather than by a sync).
pub const RESTORE_FIELD_ID_GAP: u64 = 10_000;

/// Everything the account holds that a restart must keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailerLiteSnapshot {
    /// The account's configuration when the snapshot was taken; a restore keeps its identity
    /// (token, account id, seed), see [`MailerLite::restored`].
    pub config: MailerLiteConfig,
    pub(crate) store: Store,
}

impl MailerLiteSnapshot {
    /// How many subscribers (deleted and forgotten ones included) the snapshot holds.
    pub fn subscriber_count(&self) -> usize {
        self.store.subscribers.len()
    }
}

impl Store {
    /// Rebuilds what the writes maintain alongside the records: the email index (every
    /// subscriber not forgotten, live or soft-deleted, by its email) and the live-subscriber
    /// counters by status, the account's and each group's.
    pub(super) fn rebuild_indexes(&mut self) {
        self.email_index.clear();
        self.status_counts = [0; 5];
        for g in self.groups.values_mut() {
            g.counts = [0; 5];
        }
        for s in self.subscribers.values() {
            if s.forget_at.is_none() {
                self.email_index.insert(s.email.clone(), s.id);
            }
            if !s.is_live() {
                continue;
            }
            let idx = s.status.index();
            self.status_counts[idx] += 1;
            for g in &s.groups {
                if let Some(group) = self.groups.get_mut(g) {
                    group.counts[idx] += 1;
                }
            }
        }
    }
}

impl MailerLite {
    /// A copy of the account's state (see [`MailerLiteSnapshot`]).
    pub fn snapshot(&self) -> MailerLiteSnapshot {
        MailerLiteSnapshot { config: self.config(), store: self.shared.store.lock().expect("store lock").clone() }
    }

    /// An account restored from a snapshot, answering at `base_url` like [`MailerLite::new`].
    /// Its identity (token, account id, seed) is the snapshot's, because a client that stored
    /// the token must keep working; its operational settings (rate limits, time scale, import
    /// delay) are `config`'s. Derived indexes are rebuilt, the id generator continues from its
    /// saved state, and the id counters move ahead by [`RESTORE_ID_GAP`] so that no id handed
    /// out after the snapshot was taken is handed out again.
    pub fn restored(config: MailerLiteConfig, base_url: impl Into<String>, snapshot: MailerLiteSnapshot) -> Self {
        let saved = snapshot.config;
        let config = MailerLiteConfig { token: saved.token, account_id: saved.account_id, seed: saved.seed, ..config };
        let ml = MailerLite::new(config, base_url);
        let mut store = snapshot.store;
        store.rebuild_indexes();
        store.next_id += RESTORE_ID_GAP;
        store.next_field_id += RESTORE_FIELD_ID_GAP;
        *ml.shared.store.lock().expect("store lock") = store;
        ml
    }

    /// The account's part of [`crate::snapshot::SandboxGeneration`].
    pub fn generation(&self) -> u64 {
        self.shared.store.lock().expect("store lock").generation
    }
}

/// The derived parts of a store, for comparing a rebuilt one with the original.
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub(crate) struct Derived {
    email_index: Vec<(String, u64)>,
    status_counts: [u64; 5],
    group_counts: Vec<(u64, [u64; 5])>,
}

#[cfg(test)]
impl Store {
    pub(crate) fn derived(&self) -> Derived {
        let mut email_index: Vec<(String, u64)> = self.email_index.iter().map(|(e, id)| (e.clone(), *id)).collect();
        email_index.sort();
        let group_counts = self.groups.values().map(|g| (g.id, g.counts)).collect();
        Derived { email_index, status_counts: self.status_counts, group_counts }
    }
}
