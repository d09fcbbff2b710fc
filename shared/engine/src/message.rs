//! The work items that travel through the sync queue (SQS FIFO, one message group per
//! connection, so each connection has exactly one writer at a time).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use hmsync_core::Side;

/// A contact to (re)consider, with what the event that named it said, so that echoes of our own
/// writes are recognised from the link alone, without calling either API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "side", rename_all = "snake_case")]
pub enum ContactRef {
    #[serde(rename = "hubspot")]
    HubSpot {
        id: String,
        /// Property values the webhook reported (name → new value).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<(String, String)>,
        /// The event was a creation, deletion, restore or merge: always look.
        #[serde(default)]
        structural: bool,
    },
    #[serde(rename = "mailerlite")]
    MailerLite {
        id: String,
        /// The subscriber as the webhook carried it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<Value>,
        /// Set by group/segment scans: the subscriber was listed as a member of the rule's
        /// groups/segments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<bool>,
        /// A group event: the subscriber joined (`true`) or left (`false`) this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<(String, bool)>,
        #[serde(default)]
        structural: bool,
    },
}

impl ContactRef {
    pub fn hubspot(id: &str) -> Self {
        ContactRef::HubSpot { id: id.to_string(), changes: Vec::new(), structural: true }
    }

    pub fn mailerlite(id: &str) -> Self {
        ContactRef::MailerLite { id: id.to_string(), snapshot: None, member: None, group: None, structural: true }
    }

    pub fn side(&self) -> Side {
        match self {
            ContactRef::HubSpot { .. } => Side::HubSpot,
            ContactRef::MailerLite { .. } => Side::MailerLite,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            ContactRef::HubSpot { id, .. } | ContactRef::MailerLite { id, .. } => id,
        }
    }
}

/// Where a piece of work came from (recorded in history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Webhook,
    Scan,
    /// The sync comes back to a contact by itself (after a conflict it could not settle at once).
    Retry,
    Initial,
    /// Someone asked to retry errored contacts (the status page, the API): values an app refused
    /// before are sent again.
    UserRetry,
}

/// Why a scan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScanKind {
    /// The historical sync after activation: both sides in full.
    Initial,
    /// The schedule's safety net for missed webhooks.
    Scheduled,
    /// "Sync now".
    Manual,
}

/// Which part of a scan a page belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum ScanPart {
    /// MailerLite subscribers of the rule (all; or one group and status; or one segment).
    MailerLite { source_index: usize },
    /// HubSpot contacts: all (initial) or modified since the watermark.
    HubSpot,
    /// Members of one HubSpot list of the rule.
    HubSpotList { list_index: usize },
    /// Linked contacts re-checked for list membership (to notice contacts that left the lists).
    HubSpotLinks,
    /// Linked subscribers outside the MailerLite rule's groups/segments, which the rule's
    /// listings do not walk, read again by id (their status is recorded whatever the rules).
    MailerLiteLinks,
}

/// One queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncMessage {
    Contacts {
        connection_id: String,
        refs: Vec<ContactRef>,
        origin: Origin,
    },
    ScanStart {
        connection_id: String,
        kind: ScanKind,
    },
    ScanPage {
        connection_id: String,
        run_id: String,
        part: ScanPart,
        cursor: Option<String>,
    },
    /// A HubSpot merge: re-key links, then sync the survivor.
    HubSpotMerge {
        connection_id: String,
        survivor_id: String,
        merged_ids: Vec<String>,
    },
    /// A mapped property of a HubSpot company changed: its contacts sync again.
    CompanyChanged {
        connection_id: String,
        company_id: String,
    },
    /// MailerLite engagement to record in HubSpot.
    Engagement {
        connection_id: String,
        events: Vec<hmsync_core::EngagementEvent>,
    },
    /// A HubSpot privacy deletion: erase the person from the connection.
    PrivacyDeletion {
        connection_id: String,
        hubspot_id: String,
    },
}

impl SyncMessage {
    pub fn connection_id(&self) -> &str {
        match self {
            SyncMessage::Contacts { connection_id, .. }
            | SyncMessage::ScanStart { connection_id, .. }
            | SyncMessage::ScanPage { connection_id, .. }
            | SyncMessage::HubSpotMerge { connection_id, .. }
            | SyncMessage::PrivacyDeletion { connection_id, .. }
            | SyncMessage::CompanyChanged { connection_id, .. }
            | SyncMessage::Engagement { connection_id, .. } => connection_id,
        }
    }

    /// The message's `type` as it travels (`contacts`, `scan_page`, …), for logs and the status
    /// page's list of dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncMessage::Contacts { .. } => "contacts",
            SyncMessage::ScanStart { .. } => "scan_start",
            SyncMessage::ScanPage { .. } => "scan_page",
            SyncMessage::HubSpotMerge { .. } => "hub_spot_merge",
            SyncMessage::CompanyChanged { .. } => "company_changed",
            SyncMessage::Engagement { .. } => "engagement",
            SyncMessage::PrivacyDeletion { .. } => "privacy_deletion",
        }
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("messages serialize")
    }

    pub fn from_body(body: &str) -> Result<SyncMessage, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// A deduplication id derived from the content: the same events delivered twice within the
    /// queue's dedup window become one message.
    pub fn content_dedup_id(&self) -> String {
        hex::encode(Sha256::digest(self.to_body().as_bytes()))
    }
}

/// The dedup id of a message that a webhook delivery became: the delivery's key and the
/// message together, so the same delivery sent again maps to the same ids and another delivery
/// never does, whatever its messages say.
pub fn delivery_dedup_id(delivery_key: &str, message: &SyncMessage) -> String {
    let mut digest = Sha256::new();
    digest.update(delivery_key.as_bytes());
    digest.update([0]);
    digest.update(message.to_body().as_bytes());
    hex::encode(digest.finalize())
}

/// Runs of messages a consumer handles together: consecutive `Contacts` (of one origin) and
/// `Engagement` messages of one connection become at most one `Contacts` message (their
/// references together, at most `max`) and one `Engagement` message (their events together, at
/// most `max`), in the order their kinds first appear; any other message stands alone. Each run
/// comes with the positions of the messages it holds.
///
/// A MailerLite webhook that is not batched sends one event per delivery, and each delivery
/// becomes its own messages (an unsubscribe: a `Contacts` and an `Engagement` one), our own
/// writes coming back as a stream of them: handled one by one, each would cost its own read
/// and write requests instead of one per batch.
pub fn coalesce(messages: &[SyncMessage], max: usize) -> Vec<(Vec<SyncMessage>, std::ops::Range<usize>)> {
    let max = max.max(1);
    let mut out: Vec<(Vec<SyncMessage>, std::ops::Range<usize>)> = Vec::new();
    let mut open = false;
    for (i, m) in messages.iter().enumerate() {
        let mergeable = matches!(m, SyncMessage::Contacts { .. } | SyncMessage::Engagement { .. });
        if open
            && mergeable
            && let Some((run, range)) = out.last_mut()
            && absorb(run, m, max)
        {
            range.end = i + 1;
            continue;
        }
        out.push((vec![m.clone()], i..i + 1));
        open = mergeable;
    }
    out
}

/// Adds `m` to a run of merged messages, if it fits.
fn absorb(run: &mut Vec<SyncMessage>, m: &SyncMessage, max: usize) -> bool {
    if run.first().is_none_or(|first| first.connection_id() != m.connection_id()) {
        return false;
    }
    let same_kind = run.iter_mut().find(|r| std::mem::discriminant(*r) == std::mem::discriminant(m));
    match (same_kind, m) {
        (Some(SyncMessage::Contacts { refs, origin: o, .. }), SyncMessage::Contacts { refs: more, origin, .. })
            if o == origin && refs.len() + more.len() <= max =>
        {
            refs.extend(more.iter().cloned())
        }
        (Some(SyncMessage::Engagement { events, .. }), SyncMessage::Engagement { events: more, .. })
            if events.len() + more.len() <= max =>
        {
            events.extend(more.iter().cloned())
        }
        (None, _) => run.push(m.clone()),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_contacts_and_engagement_messages_of_one_connection_are_handled_together() {
        let contacts = |conn: &str, id: &str, origin: Origin| SyncMessage::Contacts {
            connection_id: conn.into(),
            refs: vec![ContactRef::mailerlite(id)],
            origin,
        };
        let event = hmsync_core::EngagementEvent {
            kind: hmsync_core::EventKind::Unsubscribe,
            subscriber_id: "3".into(),
            email: "a@example.com".into(),
            at_ms: 1,
            campaign_id: None,
            campaign_name: None,
            url: None,
            opens_count: None,
            clicks_count: None,
        };
        let engagement = SyncMessage::Engagement { connection_id: "c1".into(), events: vec![event.clone()] };
        let start = SyncMessage::ScanStart { connection_id: "c1".into(), kind: ScanKind::Scheduled };
        let messages = vec![
            contacts("c1", "1", Origin::Webhook),
            contacts("c1", "2", Origin::Webhook),
            engagement.clone(),
            contacts("c1", "3", Origin::Webhook),
            engagement.clone(),
            contacts("c1", "4", Origin::Retry),
            start.clone(),
            contacts("c1", "5", Origin::Webhook),
            contacts("c2", "6", Origin::Webhook),
        ];
        let runs = coalesce(&messages, 3);
        let ranges: Vec<_> = runs.iter().map(|(_, r)| r.clone()).collect();
        // At most 3 references or events each; origins and connections are never mixed; a
        // message of another kind ends a run.
        assert_eq!(ranges, [0..5, 5..6, 6..7, 7..8, 8..9]);
        assert_eq!(
            runs[0].0,
            [
                SyncMessage::Contacts {
                    connection_id: "c1".into(),
                    refs: vec![ContactRef::mailerlite("1"), ContactRef::mailerlite("2"), ContactRef::mailerlite("3")],
                    origin: Origin::Webhook
                },
                SyncMessage::Engagement { connection_id: "c1".into(), events: vec![event.clone(), event] },
            ]
        );
        assert_eq!(runs[2].0, [start]);
        assert_eq!(coalesce(&messages[..2], 1).len(), 2, "a reference too many starts a new run");
        assert!(coalesce(&[], 10).is_empty());
    }

    #[test]
    fn messages_round_trip_and_dedup_on_content() {
        let m = SyncMessage::Contacts {
            connection_id: "c1".into(),
            refs: vec![
                ContactRef::HubSpot {
                    id: "1".into(),
                    changes: vec![("firstname".into(), "Ada".into())],
                    structural: false,
                },
                ContactRef::mailerlite("9"),
            ],
            origin: Origin::Webhook,
        };
        let back = SyncMessage::from_body(&m.to_body()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.content_dedup_id(), m.content_dedup_id());
        assert_eq!(m.content_dedup_id().len(), 64);
        let scan = SyncMessage::ScanPage {
            connection_id: "c1".into(),
            run_id: "r".into(),
            part: ScanPart::MailerLite { source_index: 2 },
            cursor: Some("x".into()),
        };
        assert_eq!(SyncMessage::from_body(&scan.to_body()).unwrap(), scan);
    }
}
