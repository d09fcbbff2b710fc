//! A journal of record changes stamped in milliseconds on the sandbox clock, so a benchmark can
//! measure how long a change takes from one app to the other (MailerLite's own timestamps have
//! whole seconds only). Off until started: seeding and ordinary tests pay nothing for it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::now_ms;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedBy {
    /// An API call (an integration such as hmsync).
    Api,
    /// A person in the app (the admin API's user actions).
    User,
}

/// One change to one record: a contact (HubSpot) or a subscriber (MailerLite) id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub record_id: u64,
    /// When the change was applied, in milliseconds since the Unix epoch (sandbox clock).
    pub at_ms: i64,
    pub by: ChangedBy,
    /// The change as its webhook names it, e.g. `contact.propertyChange`, `subscriber.updated`.
    pub event: String,
}

/// The journal of one simulator (`HubSpotState::change_journal`, `MailerLite::change_journal`).
#[derive(Debug, Default)]
pub struct ChangeJournal {
    on: AtomicBool,
    entries: Mutex<Vec<JournalEntry>>,
}

impl ChangeJournal {
    /// Empties the journal and records every change from now on.
    pub fn start(&self) {
        self.entries.lock().expect("journal lock").clear();
        self.on.store(true, Ordering::SeqCst);
    }

    /// Stops recording and returns what was recorded (the journal is left empty).
    pub fn stop(&self) -> Vec<JournalEntry> {
        self.on.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.entries.lock().expect("journal lock"))
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// What was recorded so far, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.entries.lock().expect("journal lock").clone()
    }

    /// Records a change applied at `at_ms` (nothing while the journal is off).
    pub fn record(&self, record_id: u64, at_ms: i64, by: ChangedBy, event: &str) {
        if self.is_on() {
            self.entries.lock().expect("journal lock").push(JournalEntry {
                record_id,
                at_ms,
                by,
                event: event.to_string(),
            });
        }
    }

    /// Records changes applied just now.
    pub fn record_now<'a>(&self, changes: impl IntoIterator<Item = (u64, &'a str)>, by: ChangedBy) {
        if self.is_on() {
            let at_ms = now_ms();
            let mut entries = self.entries.lock().expect("journal lock");
            entries.extend(changes.into_iter().map(|(record_id, event)| JournalEntry {
                record_id,
                at_ms,
                by,
                event: event.to_string(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_between_start_and_stop() {
        let j = ChangeJournal::default();
        j.record(1, 10, ChangedBy::Api, "contact.creation");
        assert!(j.entries().is_empty(), "off until started");
        j.start();
        j.record(2, 20, ChangedBy::User, "contact.propertyChange");
        j.record_now([(3, "subscriber.updated"), (4, "subscriber.updated")], ChangedBy::Api);
        let got = j.stop();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            JournalEntry { record_id: 2, at_ms: 20, by: ChangedBy::User, event: "contact.propertyChange".into() }
        );
        assert_eq!((got[1].record_id, got[2].record_id), (3, 4));
        assert_eq!(got[1].at_ms, got[2].at_ms, "one call, one stamp");
        j.record(5, 50, ChangedBy::Api, "contact.deletion");
        assert!(j.entries().is_empty(), "stopped, and emptied by stop");
    }
}
