//! The HubSpot scopes hmsync asks for, and which feature each one serves: the OAuth install
//! asks for them, the setup screens show the missing ones, and `hmsync doctor` says what a
//! connection cannot do without each (<https://developers.hubspot.com/docs/api/scopes>).

use hmsync_core::{ConnectionConfig, Direction, HubSpotObject, HubSpotRule};

/// The scopes the sync needs: contacts read/write, companies read (company fields), contact
/// property read/write (the engagement properties), company properties read, lists read (list
/// rules), and `oauth`.
pub const REQUIRED_SCOPES: [&str; 8] = [
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.lists.read",
    "oauth",
];

/// Asked for, not required: turning a MailerLite unsubscribe into a HubSpot opt-out. HubSpot
/// drops an optional scope silently when the portal lacks the tool.
pub const OPTIONAL_SCOPES: [&str; 1] = ["communication_preferences.read_write"];

/// The scope that records a MailerLite unsubscribe as a HubSpot email opt-out.
pub const OPT_OUT_SCOPE: &str = "communication_preferences.read_write";

/// One scope and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeUse {
    pub scope: &'static str,
    /// What stops working without it (a sentence).
    pub without: &'static str,
    /// Whether this connection's config uses that feature.
    pub used: bool,
    /// Whether its absence stops the sync itself (not one feature of it).
    pub essential: bool,
}

/// Every scope hmsync asks for (but `oauth`, which only marks an OAuth app), with what this
/// connection loses without it.
pub fn scope_uses(config: &ConnectionConfig) -> Vec<ScopeUse> {
    let writes_contacts = config.direction != Direction::HubSpotToMailerLite || config.engagement.enabled;
    let company_mappings = config.mappings.iter().any(|m| m.hubspot_object == HubSpotObject::Company);
    let list_rule = matches!(config.hubspot_rule, HubSpotRule::Lists { .. });
    let uses = [
        ("crm.objects.contacts.read", "hmsync cannot read contacts: nothing syncs.", true, true),
        (
            "crm.objects.contacts.write",
            "MailerLite changes, new subscribers and engagement are not written to HubSpot.",
            writes_contacts,
            writes_contacts,
        ),
        (
            "crm.objects.companies.read",
            "Company fields (mappings of company properties) are not read.",
            company_mappings,
            false,
        ),
        (
            "crm.schemas.contacts.read",
            "Contact properties cannot be read: fields cannot be refreshed and the connection cannot be activated.",
            true,
            true,
        ),
        (
            "crm.schemas.contacts.write",
            "The engagement properties (group \"MailerLite\") cannot be created: refreshing fields and activation fail while engagement is on.",
            config.engagement.enabled,
            config.engagement.enabled,
        ),
        (
            "crm.schemas.companies.read",
            "Company properties cannot be read: fields cannot be refreshed and the connection cannot be activated.",
            true,
            true,
        ),
        ("crm.lists.read", "HubSpot list rules cannot be read: scans of a list rule fail.", list_rule, list_rule),
        (
            OPT_OUT_SCOPE,
            "MailerLite unsubscribes are not recorded as HubSpot email opt-outs (the hmsync email-status property still records them, and each such contact shows an error).",
            config.engagement.unsubscribe_in_hubspot,
            false,
        ),
    ];
    uses.into_iter().map(|(scope, without, used, essential)| ScopeUse { scope, without, used, essential }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_asked_for_says_what_it_is_for() {
        let uses = scope_uses(&ConnectionConfig::new("c"));
        let mut listed: Vec<&str> = uses.iter().map(|u| u.scope).collect();
        let mut asked: Vec<&str> =
            REQUIRED_SCOPES.iter().chain(OPTIONAL_SCOPES.iter()).copied().filter(|s| *s != "oauth").collect();
        listed.sort_unstable();
        asked.sort_unstable();
        assert_eq!(listed, asked);
    }

    #[test]
    fn a_scope_is_used_only_by_a_config_with_its_feature() {
        let mut config = ConnectionConfig::new("c");
        config.direction = Direction::HubSpotToMailerLite;
        config.engagement.enabled = false;
        let used = |c: &ConnectionConfig, s: &str| scope_uses(c).into_iter().find(|u| u.scope == s).unwrap().used;
        assert!(!used(&config, "crm.objects.contacts.write"));
        assert!(!used(&config, "crm.lists.read"));
        assert!(!used(&config, OPT_OUT_SCOPE));
        config.hubspot_rule = HubSpotRule::Lists { list_ids: vec!["1".into()] };
        config.engagement.unsubscribe_in_hubspot = true;
        assert!(used(&config, "crm.lists.read"));
        assert!(used(&config, OPT_OUT_SCOPE));
    }
}
