//! The HubSpot contact properties in which hmsync records MailerLite engagement. HubSpot
//! timeline events are closed to new apps, so engagement lives in properties (and optional notes).

use crate::schema::{HsProperty, HsType};

/// The property group the engagement properties live in.
pub const PROPERTY_GROUP: &str = "mailerlite";
pub const PROPERTY_GROUP_LABEL: &str = "MailerLite";

pub const STATUS: &str = "mailerlite_status";
pub const LAST_OPEN_AT: &str = "mailerlite_last_open_at";
pub const LAST_CLICK_AT: &str = "mailerlite_last_click_at";
pub const LAST_CLICKED_URL: &str = "mailerlite_last_clicked_url";
pub const LAST_CAMPAIGN: &str = "mailerlite_last_campaign";
pub const OPENS_COUNT: &str = "mailerlite_opens_count";
pub const CLICKS_COUNT: &str = "mailerlite_clicks_count";
pub const UNSUBSCRIBED_AT: &str = "mailerlite_unsubscribed_at";
pub const BOUNCED_AT: &str = "mailerlite_bounced_at";
pub const SPAM_REPORTED_AT: &str = "mailerlite_spam_reported_at";

/// The definitions to create (idempotently) on activation and on "refresh fields".
pub fn properties() -> Vec<HsProperty> {
    let p = |name: &str, label: &str, t: HsType, field: &str| {
        let mut p = HsProperty::new(name, t, field);
        p.label = label.to_string();
        p
    };
    vec![
        p(STATUS, "MailerLite status", HsType::Enumeration, "select").with_options(&[
            ("active", "Active"),
            ("unsubscribed", "Unsubscribed"),
            ("unconfirmed", "Unconfirmed"),
            ("bounced", "Bounced"),
            ("junk", "Junk"),
        ]),
        p(LAST_OPEN_AT, "MailerLite last open", HsType::Datetime, "date"),
        p(LAST_CLICK_AT, "MailerLite last click", HsType::Datetime, "date"),
        p(LAST_CLICKED_URL, "MailerLite last clicked URL", HsType::String, "text"),
        p(LAST_CAMPAIGN, "MailerLite last campaign", HsType::String, "text"),
        p(OPENS_COUNT, "MailerLite opens", HsType::Number, "number"),
        p(CLICKS_COUNT, "MailerLite clicks", HsType::Number, "number"),
        p(UNSUBSCRIBED_AT, "MailerLite unsubscribed at", HsType::Datetime, "date"),
        p(BOUNCED_AT, "MailerLite bounced at", HsType::Datetime, "date"),
        p(SPAM_REPORTED_AT, "MailerLite spam report at", HsType::Datetime, "date"),
    ]
}

/// What a person did with an email, as MailerLite reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Open,
    Click,
    Unsubscribe,
    Bounce,
    SpamReport,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Click => "click",
            EventKind::Unsubscribe => "unsubscribe",
            EventKind::Bounce => "bounce",
            EventKind::SpamReport => "spam_report",
        }
    }
}

/// One engagement event (from a webhook, or from the activity log when the scan finds that a
/// subscriber's counts moved without one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngagementEvent {
    pub kind: EventKind,
    pub subscriber_id: String,
    pub email: String,
    /// When it happened (the activity log's time; a webhook's receipt time: webhook items carry
    /// no timestamp).
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MailerLite's own totals for the subscriber when the event was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicks_count: Option<u64>,
}

impl EngagementEvent {
    /// The identity of an event for deduplication. Webhook items carry no id and no time, so the
    /// key is what the event is about: one open (and one note) per campaign per contact, one
    /// click per link. Counts come from MailerLite's totals, so nothing is undercounted.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.kind.as_str(),
            self.subscriber_id,
            self.campaign_id.as_deref().unwrap_or("-"),
            self.url.as_deref().unwrap_or("-")
        )
    }

    /// A short digest of [`EngagementEvent::key`] (64 bits of SHA-256, 16 hex digits): what a
    /// link remembers of the event. Among the at most [`RECENT_EVENTS`] digests of one link a
    /// collision has a chance of about 10^-15.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(self.key().as_bytes())[..8])
    }
}

/// What the link remembers of a contact's engagement (so HubSpot is written only on change and
/// no event counts twice).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct EngagementState {
    pub opens: u64,
    pub clicks: u64,
    pub last_open_ms: Option<i64>,
    pub last_click_ms: Option<i64>,
    pub last_clicked_url: Option<String>,
    pub last_campaign: Option<String>,
    /// Time of the latest event that named a campaign (decides `last_campaign`).
    pub last_campaign_ms: Option<i64>,
    pub unsubscribed_ms: Option<i64>,
    pub bounced_ms: Option<i64>,
    pub spam_reported_ms: Option<i64>,
    /// Digests ([`EngagementEvent::digest`]) of the most recent events' keys: a repeated or
    /// overlapping delivery changes nothing. Digests, not the keys, whose click URLs would make
    /// a link item large and keep what a person clicked.
    pub recent: Vec<String>,
}

impl EngagementState {
    pub fn is_empty(&self) -> bool {
        *self == EngagementState::default()
    }
}

/// How many event keys a link keeps.
pub const RECENT_EVENTS: usize = 200;

/// A note to add to the HubSpot contact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngagementNote {
    pub at_ms: i64,
    pub body: String,
}

/// The result of recording events for one contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngagementUpdate {
    pub state: EngagementState,
    /// HubSpot properties whose values changed.
    pub properties: std::collections::BTreeMap<String, String>,
    pub notes: Vec<EngagementNote>,
    /// Events that were new (not repeats).
    pub recorded: usize,
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(crate::value::format_datetime)
        .unwrap_or_default()
}

fn later(current: Option<i64>, at: i64) -> Option<i64> {
    Some(current.map_or(at, |c| c.max(at)))
}

/// Records `events` on `state`: counts follow MailerLite's totals (never down), times move
/// forward only, repeats are ignored, and a note is made per new event when `notes` is on.
pub fn record_events(state: &EngagementState, events: &[EngagementEvent], notes: bool) -> EngagementUpdate {
    let mut next = state.clone();
    let mut out = EngagementUpdate::default();
    let mut sorted: Vec<&EngagementEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.at_ms);
    for e in sorted {
        // MailerLite's totals apply even when the event itself is a repeat.
        if let Some(n) = e.opens_count {
            next.opens = next.opens.max(n);
        }
        if let Some(n) = e.clicks_count {
            next.clicks = next.clicks.max(n);
        }
        let digest = e.digest();
        // Links written before keys were digested still hold the keys themselves.
        if next.recent.contains(&digest) || next.recent.contains(&e.key()) {
            continue;
        }
        next.recent.push(digest);
        out.recorded += 1;
        let campaign = e.campaign_name.clone().unwrap_or_else(|| "a campaign".to_string());
        match e.kind {
            EventKind::Open => {
                if e.opens_count.is_none() {
                    next.opens += 1;
                }
                next.last_open_ms = later(next.last_open_ms, e.at_ms);
            }
            EventKind::Click => {
                if e.clicks_count.is_none() {
                    next.clicks += 1;
                }
                if next.last_click_ms.is_none_or(|t| e.at_ms >= t) {
                    next.last_clicked_url = e.url.clone().or(next.last_clicked_url.take());
                }
                next.last_click_ms = later(next.last_click_ms, e.at_ms);
            }
            EventKind::Unsubscribe => next.unsubscribed_ms = later(next.unsubscribed_ms, e.at_ms),
            EventKind::Bounce => next.bounced_ms = later(next.bounced_ms, e.at_ms),
            EventKind::SpamReport => next.spam_reported_ms = later(next.spam_reported_ms, e.at_ms),
        }
        if e.campaign_name.is_some() && next.last_campaign_ms.is_none_or(|t| e.at_ms >= t) {
            next.last_campaign = e.campaign_name.clone();
            next.last_campaign_ms = Some(e.at_ms);
        }
        if notes {
            let when = iso(e.at_ms);
            let body = match e.kind {
                EventKind::Open => format!("Opened \u{201c}{campaign}\u{201d} (MailerLite) on {when}"),
                EventKind::Click => format!(
                    "Clicked {} in \u{201c}{campaign}\u{201d} (MailerLite) on {when}",
                    e.url.as_deref().unwrap_or("a link")
                ),
                EventKind::Unsubscribe => format!("Unsubscribed in MailerLite on {when}"),
                EventKind::Bounce => format!("Email to this contact bounced (MailerLite) on {when}"),
                EventKind::SpamReport => format!("Marked \u{201c}{campaign}\u{201d} as spam (MailerLite) on {when}"),
            };
            out.notes.push(EngagementNote { at_ms: e.at_ms, body });
        }
    }
    if next.recent.len() > RECENT_EVENTS {
        let excess = next.recent.len() - RECENT_EVENTS;
        next.recent.drain(..excess);
    }
    let mut set = |name: &str, before: Option<String>, after: Option<String>| {
        if after.is_some() && after != before {
            out.properties.insert(name.to_string(), after.unwrap_or_default());
        }
    };
    set(OPENS_COUNT, Some(state.opens.to_string()), Some(next.opens.to_string()).filter(|_| next.opens > 0));
    set(CLICKS_COUNT, Some(state.clicks.to_string()), Some(next.clicks.to_string()).filter(|_| next.clicks > 0));
    set(LAST_OPEN_AT, state.last_open_ms.map(iso), next.last_open_ms.map(iso));
    set(LAST_CLICK_AT, state.last_click_ms.map(iso), next.last_click_ms.map(iso));
    set(LAST_CLICKED_URL, state.last_clicked_url.clone(), next.last_clicked_url.clone());
    set(LAST_CAMPAIGN, state.last_campaign.clone(), next.last_campaign.clone());
    set(UNSUBSCRIBED_AT, state.unsubscribed_ms.map(iso), next.unsubscribed_ms.map(iso));
    set(BOUNCED_AT, state.bounced_ms.map(iso), next.bounced_ms.map(iso));
    set(SPAM_REPORTED_AT, state.spam_reported_ms.map(iso), next.spam_reported_ms.map(iso));
    out.state = next;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(sub: &str, campaign: &str, at: i64, opens: Option<u64>) -> EngagementEvent {
        EngagementEvent {
            kind: EventKind::Open,
            subscriber_id: sub.into(),
            email: "a@x.com".into(),
            at_ms: at,
            campaign_id: Some(campaign.into()),
            campaign_name: Some(format!("Campaign {campaign}")),
            url: None,
            opens_count: opens,
            clicks_count: None,
        }
    }

    #[test]
    fn opens_and_clicks_are_recorded_as_counts_last_times_and_campaign() {
        let click = EngagementEvent {
            kind: EventKind::Click,
            url: Some("https://x.com/a".into()),
            clicks_count: Some(1),
            ..open("s", "c1", 2_000, Some(1))
        };
        let u = record_events(&EngagementState::default(), &[open("s", "c1", 1_000, Some(1)), click], true);
        assert_eq!(u.recorded, 2);
        assert_eq!(u.properties[OPENS_COUNT], "1");
        assert_eq!(u.properties[CLICKS_COUNT], "1");
        assert_eq!(u.properties[LAST_OPEN_AT], "1970-01-01T00:00:01.000Z");
        assert_eq!(u.properties[LAST_CLICK_AT], "1970-01-01T00:00:02.000Z");
        assert_eq!(u.properties[LAST_CLICKED_URL], "https://x.com/a");
        assert_eq!(u.properties[LAST_CAMPAIGN], "Campaign c1");
        assert_eq!(u.notes.len(), 2);
        assert!(u.notes[0].body.contains("Opened \u{201c}Campaign c1\u{201d}"), "{}", u.notes[0].body);
    }

    #[test]
    fn a_repeated_delivery_counts_once_and_writes_nothing() {
        let first = record_events(&EngagementState::default(), &[open("s", "c1", 1_000, Some(1))], true);
        let again = record_events(&first.state, &[open("s", "c1", 5_000, Some(1))], true);
        assert_eq!(again.recorded, 0);
        assert!(again.properties.is_empty() && again.notes.is_empty());
        assert_eq!(again.state.opens, 1);
    }

    #[test]
    fn counts_follow_mailerlites_totals_and_times_never_move_back() {
        let s = record_events(&EngagementState::default(), &[open("s", "c2", 9_000, Some(3))], false).state;
        let u = record_events(&s, &[open("s", "c1", 1_000, Some(2))], false);
        assert_eq!(u.state.opens, 3, "never down");
        assert_eq!(u.state.last_open_ms, Some(9_000), "an older event does not move the time back");
        assert_eq!(u.state.last_campaign.as_deref(), Some("Campaign c2"));
        assert!(!u.properties.contains_key(LAST_OPEN_AT));
    }

    #[test]
    fn unsubscribes_bounces_and_spam_reports_record_their_time() {
        let ev = |kind| EngagementEvent { kind, ..open("s", "c1", 7_000, None) };
        let u = record_events(
            &EngagementState::default(),
            &[ev(EventKind::Unsubscribe), ev(EventKind::Bounce), ev(EventKind::SpamReport)],
            false,
        );
        for p in [UNSUBSCRIBED_AT, BOUNCED_AT, SPAM_REPORTED_AT] {
            assert_eq!(u.properties[p], "1970-01-01T00:00:07.000Z", "{p}");
        }
        assert!(u.notes.is_empty(), "notes only when asked for");
    }

    #[test]
    fn a_link_keeps_short_digests_of_event_keys_never_the_urls() {
        let click = |url: &str| EngagementEvent {
            kind: EventKind::Click,
            url: Some(url.into()),
            clicks_count: None,
            ..open("s", "c1", 2_000, None)
        };
        let long = format!("https://x.com/offer?email=ada%40example.com&pad={}", "p".repeat(2_000));
        let u = record_events(&EngagementState::default(), &[click(&long), click("https://x.com/b")], false);
        assert_eq!(u.recorded, 2);
        assert!(u.state.recent.iter().all(|k| k.len() == 16 && k.chars().all(|c| c.is_ascii_hexdigit())));
        assert!(!u.state.recent.iter().any(|k| k.contains("x.com") || k.contains("ada")));
        assert_eq!(record_events(&u.state, &[click(&long)], false).recorded, 0, "a repeat is still recognised");
        // A key stored before digests were used is still recognised.
        let legacy = EngagementState { recent: vec![click("https://x.com/b").key()], ..EngagementState::default() };
        assert_eq!(record_events(&legacy, &[click("https://x.com/b")], false).recorded, 0);
    }

    #[test]
    fn event_keys_are_bounded() {
        let events: Vec<EngagementEvent> =
            (0..RECENT_EVENTS + 10).map(|i| open("s", &i.to_string(), i as i64, None)).collect();
        let u = record_events(&EngagementState::default(), &events, false);
        assert_eq!(u.state.recent.len(), RECENT_EVENTS);
        assert_eq!(u.state.opens, (RECENT_EVENTS + 10) as u64);
    }
}
