//! Sync rules: which contacts take part on each side.

use serde::{Deserialize, Serialize};

use crate::config::{HubSpotRule, MailerLiteRule};

/// A MailerLite subscriber status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MlStatus {
    Active,
    Unsubscribed,
    Unconfirmed,
    Bounced,
    Junk,
}

impl MlStatus {
    pub fn parse(s: &str) -> Option<MlStatus> {
        Some(match s {
            "active" => MlStatus::Active,
            "unsubscribed" => MlStatus::Unsubscribed,
            "unconfirmed" => MlStatus::Unconfirmed,
            "bounced" => MlStatus::Bounced,
            "junk" => MlStatus::Junk,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MlStatus::Active => "active",
            MlStatus::Unsubscribed => "unsubscribed",
            MlStatus::Unconfirmed => "unconfirmed",
            MlStatus::Bounced => "bounced",
            MlStatus::Junk => "junk",
        }
    }

    /// The person (or their mail server) said no: the sync never makes them active again, and
    /// the MailerLite API refuses to anyway.
    pub fn is_suppressed(self) -> bool {
        matches!(self, MlStatus::Unsubscribed | MlStatus::Bounced | MlStatus::Junk)
    }
}

impl std::fmt::Display for MlStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HubSpotRule {
    /// Whether a contact that is a member of `list_ids` matches.
    pub fn matches(&self, member_of: &[String]) -> bool {
        match self {
            HubSpotRule::All => true,
            HubSpotRule::Lists { list_ids } => member_of.iter().any(|l| list_ids.contains(l)),
        }
    }

    /// Whether a contact the sync has just created matches before any list sees it.
    pub fn matches_new_contact(&self) -> bool {
        matches!(self, HubSpotRule::All)
    }

    /// The list memberships the sync must read to evaluate the rule.
    pub fn list_ids(&self) -> &[String] {
        match self {
            HubSpotRule::All => &[],
            HubSpotRule::Lists { list_ids } => list_ids,
        }
    }
}

impl MailerLiteRule {
    /// All and groups take every status; segments take active subscribers only.
    pub fn matches(&self, status: MlStatus, groups: &[String], segments: &[String]) -> bool {
        match self {
            MailerLiteRule::All => true,
            MailerLiteRule::Groups { group_ids } => groups.iter().any(|g| group_ids.contains(g)),
            MailerLiteRule::Segments { segment_ids } => {
                status == MlStatus::Active && segments.iter().any(|s| segment_ids.contains(s))
            }
        }
    }

    /// Whether a subscriber the sync has just created (with `groups`) matches; segment
    /// membership is only known once MailerLite has evaluated it (the next scan).
    pub fn matches_new_subscriber(&self, groups: &[String]) -> bool {
        match self {
            MailerLiteRule::All => true,
            MailerLiteRule::Groups { group_ids } => groups.iter().any(|g| group_ids.contains(g)),
            MailerLiteRule::Segments { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn hubspot_rule_all_or_list_members() {
        assert!(HubSpotRule::All.matches(&[]));
        let lists = HubSpotRule::Lists { list_ids: s(&["10", "11"]) };
        assert!(lists.matches(&s(&["3", "11"])));
        assert!(!lists.matches(&s(&["3"])));
        assert!(!lists.matches_new_contact());
    }

    #[test]
    fn mailerlite_all_and_groups_sync_every_status() {
        for status in
            [MlStatus::Active, MlStatus::Unsubscribed, MlStatus::Unconfirmed, MlStatus::Bounced, MlStatus::Junk]
        {
            assert!(MailerLiteRule::All.matches(status, &[], &[]));
            assert!(MailerLiteRule::Groups { group_ids: s(&["g"]) }.matches(status, &s(&["g"]), &[]));
        }
        assert!(!MailerLiteRule::Groups { group_ids: s(&["g"]) }.matches(MlStatus::Active, &s(&["h"]), &[]));
    }

    #[test]
    fn mailerlite_segments_sync_active_only() {
        let rule = MailerLiteRule::Segments { segment_ids: s(&["seg"]) };
        assert!(rule.matches(MlStatus::Active, &[], &s(&["seg"])));
        for status in [MlStatus::Unsubscribed, MlStatus::Unconfirmed, MlStatus::Bounced, MlStatus::Junk] {
            assert!(!rule.matches(status, &[], &s(&["seg"])), "{status}");
        }
        assert!(!rule.matches(MlStatus::Active, &[], &s(&["other"])));
    }

    #[test]
    fn statuses_round_trip_and_suppressed_ones_are_known() {
        for s in ["active", "unsubscribed", "unconfirmed", "bounced", "junk"] {
            assert_eq!(MlStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(MlStatus::Junk.is_suppressed() && !MlStatus::Unconfirmed.is_suppressed());
        assert_eq!(MlStatus::parse("deleted"), None);
    }
}
