//! HubSpot merges: the link follows the surviving contact and no duplicate is made.

use crate::record::Link;

/// The links after a merge: at most one link holds the survivor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The link now held by the survivor.
    pub kept: Option<Link>,
    /// Links whose HubSpot contact was merged away while another link kept the survivor: they
    /// lose their HubSpot side (their MailerLite subscriber is left alone, never deleted).
    pub retired: Vec<Link>,
}

/// The contact a HubSpot merge leaves: `newObjectId` when HubSpot created a new record,
/// otherwise `primaryObjectId`.
pub fn survivor_id<'a>(primary_object_id: &'a str, new_object_id: Option<&'a str>) -> &'a str {
    new_object_id.filter(|id| !id.is_empty()).unwrap_or(primary_object_id)
}

/// Which link a merge keeps for the survivor: the one whose email is the survivor's, else the
/// one the survivor already held, else the first merged contact's — unless another MailerLite
/// subscriber (`survivor_subscriber`, found by the survivor's email) has the survivor's email:
/// email is the link key, so the survivor belongs with that subscriber, not with a merged
/// contact's (whose email it would otherwise try to take). `None`: no link is kept.
pub fn link_kept_after_merge(
    survivor_id: &str,
    survivor_email: Option<&str>,
    survivor_subscriber: Option<&str>,
    links: &[Link],
) -> Option<usize> {
    let has_email = |l: &Link| survivor_email.is_some_and(|e| l.email == e);
    // A link an earlier merge retired comes last among those with the email.
    if let Some(i) =
        links.iter().position(|l| has_email(l) && !l.hs_deleted).or_else(|| links.iter().position(has_email))
    {
        return Some(i);
    }
    if let Some(i) = links.iter().position(|l| l.hubspot_id.as_deref() == Some(survivor_id)) {
        return Some(i);
    }
    let first = links.first()?;
    match survivor_subscriber {
        Some(s) if first.mailerlite_id.as_deref() != Some(s) => None,
        _ => Some(0),
    }
}

/// Re-keys the links held by the merged contacts to `survivor_id` (the new record HubSpot
/// makes for a merge, the webhook's `newObjectId`; else `primaryObjectId`);
/// [`link_kept_after_merge`] says which one. The kept link keeps its subscriber, target-group
/// membership included (no remove and re-add). It is marked [`Link::hs_merged`]: HubSpot filled
/// the survivor's empty properties from the merged contacts, the sync's own included, so what the
/// survivor says is checked once. The other links are retired like the links of
/// deleted contacts (marked deleted in HubSpot; their subscribers leave the target group and are
/// never deleted); they keep the merged-away id, so a repeated merge finds them again.
pub fn rekey_after_merge(
    survivor_id: &str,
    survivor_email: Option<&str>,
    survivor_subscriber: Option<&str>,
    mut links: Vec<Link>,
) -> MergeOutcome {
    let kept = link_kept_after_merge(survivor_id, survivor_email, survivor_subscriber, &links).map(|keep| {
        let mut kept = links.remove(keep);
        kept.hubspot_id = Some(survivor_id.to_string());
        kept.hs_deleted = false;
        kept.hs_merged = true;
        kept
    });
    let retired = links
        .into_iter()
        .map(|mut l| {
            if l.hubspot_id.as_deref() == Some(survivor_id) {
                // The survivor's id belongs to the kept link (or to the survivor's own new link).
                l.hubspot_id = None;
            }
            l.hs_deleted = true;
            l.hs_in_scope = false;
            l.hs_merged = false;
            l
        })
        .collect();
    MergeOutcome { kept, retired }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, hs: &str, email: &str) -> Link {
        let mut l = Link::new(id, email);
        l.hubspot_id = Some(hs.into());
        l.mailerlite_id = Some(format!("ml-{id}"));
        l
    }

    #[test]
    fn hubspot_merge_rekeys_the_link_to_the_survivor() {
        let out = rekey_after_merge("300", Some("a@x.com"), None, vec![link("L1", "222", "a@x.com")]);
        let kept = out.kept.unwrap();
        assert_eq!(kept.hubspot_id.as_deref(), Some("300"));
        assert_eq!(kept.mailerlite_id.as_deref(), Some("ml-L1"));
        assert!(kept.hs_merged, "the survivor's copies of what the sync wrote are checked again");
        assert!(out.retired.is_empty());
    }

    #[test]
    fn hubspot_merge_of_two_linked_contacts_keeps_one_link_and_makes_no_duplicate() {
        let out = rekey_after_merge(
            "111",
            Some("a@x.com"),
            None,
            vec![link("L2", "222", "b@x.com"), link("L1", "111", "a@x.com")],
        );
        assert_eq!(out.kept.unwrap().id, "L1");
        assert_eq!(out.retired.len(), 1);
        let r = &out.retired[0];
        assert_eq!((r.id.as_str(), r.hubspot_id.as_deref(), r.hs_deleted), ("L2", Some("222"), true));
        assert_eq!(r.mailerlite_id.as_deref(), Some("ml-L2"), "the subscriber is left alone");
    }

    #[test]
    fn a_retired_link_gives_up_the_survivors_id() {
        // The survivor took the merged contact's email: that contact's link is kept.
        let out = rekey_after_merge(
            "111",
            Some("b@x.com"),
            None,
            vec![link("L1", "111", "a@x.com"), link("L2", "222", "b@x.com")],
        );
        assert_eq!(out.kept.as_ref().map(|k| (k.id.as_str(), k.hubspot_id.as_deref())), Some(("L2", Some("111"))));
        assert_eq!((out.retired[0].hubspot_id.as_deref(), out.retired[0].hs_deleted), (None, true));
    }

    #[test]
    fn a_link_retired_by_an_earlier_merge_is_not_preferred_to_a_live_one() {
        let mut old = link("L0", "100", "a@x.com");
        old.hs_deleted = true;
        let out = rekey_after_merge(
            "111",
            Some("a@x.com"),
            None,
            vec![old, link("L2", "222", "b@x.com"), link("L1", "111", "a@x.com")],
        );
        assert_eq!(out.kept.map(|k| k.id), Some("L1".to_string()));
    }

    #[test]
    fn repeating_a_merge_changes_nothing_more() {
        let first = rekey_after_merge(
            "111",
            Some("a@x.com"),
            None,
            vec![link("L2", "222", "b@x.com"), link("L1", "111", "a@x.com")],
        );
        let again = rekey_after_merge(
            "111",
            Some("a@x.com"),
            None,
            vec![first.retired[0].clone(), first.kept.clone().unwrap()],
        );
        assert_eq!(again.kept, first.kept);
        assert_eq!(again.retired, first.retired);
    }
}
