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

/// Re-keys the links held by the merged contacts to `survivor_id` (the webhook's `newObjectId`
/// if present, else `primaryObjectId`). When several links are involved, the one whose email is
/// the survivor's is kept, else the one the survivor already held, else the first.
pub fn rekey_after_merge(survivor_id: &str, survivor_email: Option<&str>, mut links: Vec<Link>) -> MergeOutcome {
    if links.is_empty() {
        return MergeOutcome { kept: None, retired: Vec::new() };
    }
    let keep = links
        .iter()
        .position(|l| survivor_email.is_some_and(|e| l.email == e))
        .or_else(|| links.iter().position(|l| l.hubspot_id.as_deref() == Some(survivor_id)))
        .unwrap_or(0);
    let mut kept = links.remove(keep);
    kept.hubspot_id = Some(survivor_id.to_string());
    kept.hs_deleted = false;
    let retired = links
        .into_iter()
        .map(|mut l| {
            l.hubspot_id = None;
            l.hs_deleted = true;
            l.hs_in_scope = false;
            l
        })
        .collect();
    MergeOutcome { kept: Some(kept), retired }
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
        let out = rekey_after_merge("300", Some("a@x.com"), vec![link("L1", "222", "a@x.com")]);
        let kept = out.kept.unwrap();
        assert_eq!(kept.hubspot_id.as_deref(), Some("300"));
        assert_eq!(kept.mailerlite_id.as_deref(), Some("ml-L1"));
        assert!(out.retired.is_empty());
    }

    #[test]
    fn hubspot_merge_of_two_linked_contacts_keeps_one_link_and_makes_no_duplicate() {
        let out =
            rekey_after_merge("111", Some("a@x.com"), vec![link("L2", "222", "b@x.com"), link("L1", "111", "a@x.com")]);
        assert_eq!(out.kept.unwrap().id, "L1");
        assert_eq!(out.retired.len(), 1);
        let r = &out.retired[0];
        assert_eq!((r.id.as_str(), r.hubspot_id.as_deref(), r.hs_deleted), ("L2", None, true));
        assert_eq!(r.mailerlite_id.as_deref(), Some("ml-L2"), "the subscriber is left alone");
    }
}
