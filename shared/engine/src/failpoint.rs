//! Failpoints: named places between an external write and the store update that records it,
//! where a test can stop the worker (as a crash would) to prove the sync still converges.
//! Only built with the `failpoints` feature (the tests, the soak and the bench turn it on);
//! without it, [`Failpoints`] holds nothing and every check compiles to nothing.

#[cfg(feature = "failpoints")]
use std::collections::HashSet;
#[cfg(feature = "failpoints")]
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

/// The armed failpoints. Each fires once, then disarms itself. They belong to one engine
/// instance, not to the process (as with the `fail` crate's global registry), so tests running
/// side by side arm their own without disturbing each other.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    #[cfg(feature = "failpoints")]
    armed: Arc<Mutex<HashSet<&'static str>>>,
    #[cfg(feature = "failpoints")]
    fired: Arc<Mutex<Vec<&'static str>>>,
}

impl Failpoints {
    #[cfg(feature = "failpoints")]
    pub fn arm(&self, name: &'static str) {
        self.armed.lock().expect("failpoints lock").insert(name);
    }

    /// The failpoints that fired so far, in order.
    #[cfg(feature = "failpoints")]
    pub fn fired(&self) -> Vec<&'static str> {
        self.fired.lock().expect("failpoints lock").clone()
    }

    /// Stops here if `name` is armed.
    #[cfg(feature = "failpoints")]
    pub fn check(&self, name: &'static str) -> Result<(), EngineError> {
        let hit = self.armed.lock().expect("failpoints lock").remove(name);
        if hit {
            self.fired.lock().expect("failpoints lock").push(name);
            return Err(EngineError::Crashed(name));
        }
        Ok(())
    }

    /// Never stops: failpoints are not built in.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub fn check(&self, _name: &'static str) -> Result<(), EngineError> {
        Ok(())
    }
}
