//! Failpoints: named places between an external write and the store update that records it,
//! where a test can stop the worker (as a crash would) to prove the sync still converges.
//! Never armed in production; checking one is a set lookup.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::engine::EngineError;

/// After MailerLite creates/updates/group changes were sent, before anything is stored.
pub const AFTER_MAILERLITE_WRITES: &str = "after_mailerlite_writes";
/// After HubSpot contacts were created, before their links are stored.
pub const AFTER_HUBSPOT_CREATES: &str = "after_hubspot_creates";
/// After HubSpot contacts were updated, before the new base values are stored.
pub const AFTER_HUBSPOT_UPDATES: &str = "after_hubspot_updates";
/// After some links were stored, before the rest (and errors, history, meter).
pub const AFTER_FIRST_LINK_STORED: &str = "after_first_link_stored";
/// After a scan page was synced, before the next page is enqueued and the state saved.
pub const AFTER_SCAN_PAGE_SYNCED: &str = "after_scan_page_synced";
/// After a merge re-keyed the links, before the survivor is synced.
pub const AFTER_MERGE_REKEYED: &str = "after_merge_rekeyed";

/// Every failpoint, for tests that visit each one.
pub const ALL: [&str; 6] = [
    AFTER_MAILERLITE_WRITES,
    AFTER_HUBSPOT_CREATES,
    AFTER_HUBSPOT_UPDATES,
    AFTER_FIRST_LINK_STORED,
    AFTER_SCAN_PAGE_SYNCED,
    AFTER_MERGE_REKEYED,
];

/// The armed failpoints. Each fires once, then disarms itself.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    armed: Arc<Mutex<HashSet<&'static str>>>,
    fired: Arc<Mutex<Vec<&'static str>>>,
}

impl Failpoints {
    pub fn arm(&self, name: &'static str) {
        self.armed.lock().expect("failpoints lock").insert(name);
    }

    /// The failpoints that fired so far, in order.
    pub fn fired(&self) -> Vec<&'static str> {
        self.fired.lock().expect("failpoints lock").clone()
    }

    /// Stops here if `name` is armed.
    pub fn check(&self, name: &'static str) -> Result<(), EngineError> {
        let hit = self.armed.lock().expect("failpoints lock").remove(name);
        if hit {
            self.fired.lock().expect("failpoints lock").push(name);
            return Err(EngineError::Crashed(name));
        }
        Ok(())
    }
}
