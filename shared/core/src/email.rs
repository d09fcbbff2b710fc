//! Email is the link key: compared trimmed and lowercased; contacts without a valid one are
//! excluded from the sync (counted, not errors).

/// The normal form of an email address, or `None` when it is not a usable address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    is_valid_email(&e).then_some(e)
}

/// A pragmatic RFC 5321 check: one `@`, a non-empty local part, a dotted domain, no spaces,
/// at most 254 characters. Both APIs refuse addresses that fail it.
pub fn is_valid_email(e: &str) -> bool {
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else { return false };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

/// One record that has a given email: its id and when it was created (RFC 3339 or the
/// MailerLite `YYYY-MM-DD HH:MM:SS` form; compared as instants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub created_at: &'a str,
}

/// When several records share an email, the sync links the oldest (ties: the smallest id, as
/// both APIs hand out increasing ids) and never creates a duplicate.
pub fn choose_oldest<'a>(candidates: &[Candidate<'a>]) -> Option<&'a str> {
    candidates
        .iter()
        .min_by(|a, b| {
            let ta = crate::value::parse_datetime(a.created_at);
            let tb = crate::value::parse_datetime(b.created_at);
            let by_time = match (ta, tb) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_time.then_with(|| (a.id.len(), a.id).cmp(&(b.id.len(), b.id)))
        })
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_compared_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Ada.Lovelace@Example.COM ").as_deref(), Some("ada.lovelace@example.com"));
        assert_eq!(normalize_email("a+tag@sub.example.org").as_deref(), Some("a+tag@sub.example.org"));
    }

    #[test]
    fn contacts_without_a_valid_email_are_excluded() {
        for bad in [
            "",
            "  ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            ".a@example.com",
            "a@-x.com",
            "a@example.c",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn several_candidates_link_the_oldest() {
        let c = [
            Candidate { id: "900", created_at: "2024-03-01T10:00:00.000Z" },
            Candidate { id: "12", created_at: "2024-03-01 09:59:59" },
            Candidate { id: "5", created_at: "2024-05-01T00:00:00Z" },
        ];
        assert_eq!(choose_oldest(&c), Some("12"));
        let tie = [Candidate { id: "20", created_at: "2024-01-01" }, Candidate { id: "3", created_at: "2024-01-01" }];
        assert_eq!(choose_oldest(&tie), Some("3"));
        assert_eq!(choose_oldest(&[]), None);
    }
}
