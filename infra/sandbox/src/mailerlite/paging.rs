//! The two pagination flavours (as documented and recorded): Laravel's cursor paginator (subscriber lists, ordered by
//! id descending) and its length-aware page paginator (everything else).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::json::OrderedMap;

/// A decoded cursor: `{"id": <id>, "_pointsToNextItems": <bool>}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub id: u64,
    pub next: bool,
}

pub fn encode_cursor(id: u64, next: bool) -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"id":{id},"_pointsToNextItems":{next}}}"#))
}

/// Decodes a cursor; anything unreadable is treated as no cursor (the first page), as the real
/// API answered `cursor=1` (python `groups-get-subscribers-in-group.yml`).
pub fn decode_cursor(raw: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let id = match v.get("id")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(Cursor { id, next: v.get("_pointsToNextItems").and_then(Value::as_bool).unwrap_or(true) })
}

/// One cursor page of ids (descending) and the neighbours' cursors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPage {
    pub ids: Vec<u64>,
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
}

/// Pages ids in descending order. `below(bound)` yields matching ids `< bound` descending
/// (`None` = from the top); `above(bound)` yields matching ids `> bound` ascending. Cost is the
/// page plus whatever the predicates skip, never the whole collection.
pub fn cursor_page<'a, B, A>(cursor: Option<Cursor>, limit: usize, below: B, above: A) -> CursorPage
where
    B: FnOnce(Option<u64>) -> Box<dyn Iterator<Item = u64> + 'a>,
    A: FnOnce(u64) -> Box<dyn Iterator<Item = u64> + 'a>,
{
    match cursor {
        Some(Cursor { id, next: false }) => {
            let mut ids: Vec<u64> = above(id).take(limit + 1).collect();
            let has_more = ids.len() > limit;
            ids.truncate(limit);
            ids.reverse();
            CursorPage {
                next_cursor: ids.last().map(|l| encode_cursor(*l, true)),
                prev_cursor: if has_more { ids.first().map(|f| encode_cursor(*f, false)) } else { None },
                ids,
            }
        }
        other => {
            let mut ids: Vec<u64> = below(other.map(|c| c.id)).take(limit + 1).collect();
            let has_more = ids.len() > limit;
            ids.truncate(limit);
            CursorPage {
                next_cursor: if has_more { ids.last().map(|l| encode_cursor(*l, true)) } else { None },
                prev_cursor: if other.is_some() { ids.first().map(|f| encode_cursor(*f, false)) } else { None },
                ids,
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CursorLinks {
    pub first: Option<String>,
    pub last: Option<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CursorMeta {
    pub path: String,
    pub per_page: Value,
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CursorEnvelope<T> {
    pub data: Vec<T>,
    pub links: CursorLinks,
    pub meta: CursorMeta,
}

pub fn cursor_envelope<T>(data: Vec<T>, page: &CursorPage, path: &str, per_page: Value) -> CursorEnvelope<T> {
    let link = |c: &Option<String>| c.as_ref().map(|c| format!("{path}?cursor={c}"));
    CursorEnvelope {
        data,
        links: CursorLinks { first: None, last: None, prev: link(&page.prev_cursor), next: link(&page.next_cursor) },
        meta: CursorMeta {
            path: path.to_string(),
            per_page,
            next_cursor: page.next_cursor.clone(),
            prev_cursor: page.prev_cursor.clone(),
        },
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PageLinks {
    pub first: String,
    pub last: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetaLink {
    pub url: Option<String>,
    pub label: String,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageMeta {
    pub current_page: usize,
    pub from: Option<usize>,
    pub last_page: usize,
    pub links: Vec<MetaLink>,
    pub path: String,
    pub per_page: usize,
    pub to: Option<usize>,
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregations: Option<OrderedMap<u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageEnvelope<T> {
    pub data: Vec<T>,
    pub links: PageLinks,
    pub meta: PageMeta,
}

/// Slices `all` to page `page` of `per_page` and wraps it like Laravel's LengthAwarePaginator.
pub fn page_envelope<T>(all: Vec<T>, page: usize, per_page: usize, path: &str) -> PageEnvelope<T> {
    let total = all.len();
    let per = per_page.max(1);
    let last_page = total.div_ceil(per).max(1);
    let start = (page - 1).saturating_mul(per).min(total);
    let data: Vec<T> = all.into_iter().skip(start).take(per).collect();
    let url = |p: usize| format!("{path}?page={p}");
    let (from, to) = if data.is_empty() { (None, None) } else { (Some(start + 1), Some(start + data.len())) };
    let mut links =
        vec![MetaLink { url: (page > 1).then(|| url(page - 1)), label: "&laquo; Previous".into(), active: false }];
    // Laravel's window: every page when there are few, else the ends and three on each side.
    let shown: Vec<usize> = if last_page <= 13 {
        (1..=last_page).collect()
    } else {
        let lo = page.saturating_sub(3).max(1);
        let hi = (page + 3).min(last_page);
        let mut v: Vec<usize> = vec![1, 2];
        v.extend(lo..=hi);
        v.extend([last_page - 1, last_page]);
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut prev_shown = 0;
    for p in shown {
        if prev_shown != 0 && p > prev_shown + 1 {
            links.push(MetaLink { url: None, label: "...".into(), active: false });
        }
        links.push(MetaLink { url: Some(url(p)), label: p.to_string(), active: p == page });
        prev_shown = p;
    }
    links.push(MetaLink {
        url: (page < last_page).then(|| url(page + 1)),
        label: "Next &raquo;".into(),
        active: false,
    });
    PageEnvelope {
        data,
        links: PageLinks {
            first: url(1),
            last: url(last_page),
            prev: (page > 1).then(|| url(page - 1)),
            next: (page < last_page).then(|| url(page + 1)),
        },
        meta: PageMeta {
            current_page: page,
            from,
            last_page,
            links,
            path: path.to_string(),
            per_page: per,
            to,
            total,
            aggregations: None,
        },
    }
}

/// Query parameters in order of appearance.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Params(raw.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()).unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `limit`: absent → `default`; otherwise an integer in `0..=max` or a 422 in Laravel's words.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(default),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if n < 0 => Err(ApiError::invalid("limit", "The limit field must be at least 0.")),
                Ok(n) if n as usize > max => {
                    Err(ApiError::invalid("limit", format!("The limit field must not be greater than {max}.")))
                }
                Ok(n) => Ok(n as usize),
                Err(_) => Err(ApiError::invalid("limit", "The limit field must be an integer.")),
            },
        }
    }

    pub fn page(&self) -> usize {
        self.get("page").and_then(|p| p.parse::<usize>().ok()).filter(|p| *p >= 1).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_match_the_recorded_encoding() {
        // From python subscribers-list.yml: next_cursor of a page ending at 139802435642197472.
        assert_eq!(
            encode_cursor(139802435642197472, true),
            "eyJpZCI6MTM5ODAyNDM1NjQyMTk3NDcyLCJfcG9pbnRzVG9OZXh0SXRlbXMiOnRydWV9"
        );
        assert_eq!(
            decode_cursor("eyJpZCI6MTM5ODAyNDM1NjQyMTk3NDcyLCJfcG9pbnRzVG9OZXh0SXRlbXMiOnRydWV9"),
            Some(Cursor { id: 139802435642197472, next: true })
        );
        assert_eq!(decode_cursor("1"), None);
    }

    fn pages(ids: &[u64], cursor: Option<Cursor>, limit: usize) -> CursorPage {
        let v = ids.to_vec();
        let w = ids.to_vec();
        cursor_page(
            cursor,
            limit,
            move |b| Box::new(v.into_iter().rev().filter(move |i| b.is_none_or(|b| *i < b))),
            move |b| Box::new(w.into_iter().filter(move |i| *i > b)),
        )
    }

    #[test]
    fn cursor_pages_walk_both_ways() {
        let ids: Vec<u64> = (1..=7).collect();
        let p1 = pages(&ids, None, 3);
        assert_eq!(p1.ids, [7, 6, 5]);
        assert!(p1.prev_cursor.is_none());
        let p2 = pages(&ids, decode_cursor(p1.next_cursor.as_ref().unwrap()), 3);
        assert_eq!(p2.ids, [4, 3, 2]);
        let p3 = pages(&ids, decode_cursor(p2.next_cursor.as_ref().unwrap()), 3);
        assert_eq!(p3.ids, [1]);
        assert!(p3.next_cursor.is_none());
        let back = pages(&ids, decode_cursor(p2.prev_cursor.as_ref().unwrap()), 3);
        assert_eq!(back.ids, [7, 6, 5]);
        assert!(back.prev_cursor.is_none());
    }

    #[test]
    fn page_meta_matches_laravel() {
        let env = page_envelope((1..=7).collect::<Vec<u32>>(), 1, 5, "http://x/api/groups");
        assert_eq!(env.data, [1, 2, 3, 4, 5]);
        assert_eq!(env.meta.last_page, 2);
        assert_eq!((env.meta.from, env.meta.to, env.meta.total), (Some(1), Some(5), 7));
        assert_eq!(env.links.next.as_deref(), Some("http://x/api/groups?page=2"));
        let labels: Vec<&str> = env.meta.links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["&laquo; Previous", "1", "2", "Next &raquo;"]);
        let empty = page_envelope(Vec::<u32>::new(), 1, 5, "http://x/api/groups");
        assert_eq!((empty.meta.from, empty.meta.to, empty.meta.last_page), (None, None, 1));
    }
}
