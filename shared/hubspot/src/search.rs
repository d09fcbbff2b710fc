//! CRM search (<https://developers.hubspot.com/docs/api/crm/search>) with a typed filter builder, and the incremental
//! scan recipe:
//! `lastmodifieddate >= watermark`, ascending, ties broken on `hs_object_id`, never paging
//! towards the 10,000-result cap.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Call, HubSpotClient};
use crate::contacts::{CONTACTS, Page};
use crate::error::HubSpotError;
use crate::model::CrmObject;

/// Search results cannot be paged beyond this many.
pub const SEARCH_RESULT_CAP: usize = 10_000;
pub const SEARCH_MAX_LIMIT: usize = 200;
/// HubSpot refuses a search whose request body is longer than this many characters (search
/// guide, "Limits").
pub const SEARCH_BODY_LIMIT: usize = 3_000;

/// One search filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Filter {
    fn op(p: &str, op: &str, value: Option<String>) -> Self {
        Self { property_name: p.into(), operator: op.into(), value, high_value: None, values: None }
    }
    pub fn eq(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "EQ", Some(v.into()))
    }
    pub fn neq(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "NEQ", Some(v.into()))
    }
    pub fn gt(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "GT", Some(v.into()))
    }
    pub fn gte(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "GTE", Some(v.into()))
    }
    pub fn lt(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "LT", Some(v.into()))
    }
    pub fn lte(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "LTE", Some(v.into()))
    }
    pub fn between(p: &str, low: impl Into<String>, high: impl Into<String>) -> Self {
        Self { high_value: Some(high.into()), ..Self::op(p, "BETWEEN", Some(low.into())) }
    }
    /// Values exactly as given: right for enumeration properties, whose option values are
    /// case-sensitive. Use [`Filter::is_in_text`] for string properties.
    pub fn is_in(p: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { values: Some(values.into_iter().map(Into::into).collect()), ..Self::op(p, "IN", None) }
    }
    /// IN on a string property: HubSpot wants the values lowercased.
    pub fn is_in_text(p: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { values: Some(values.into_iter().map(|v| v.into().to_lowercase()).collect()), ..Self::op(p, "IN", None) }
    }
    /// Values exactly as given (enumerations); [`Filter::not_in_text`] for strings.
    pub fn not_in(p: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { values: Some(values.into_iter().map(Into::into).collect()), ..Self::op(p, "NOT_IN", None) }
    }
    /// NOT_IN on a string property (values lowercased).
    pub fn not_in_text(p: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            values: Some(values.into_iter().map(|v| v.into().to_lowercase()).collect()),
            ..Self::op(p, "NOT_IN", None)
        }
    }
    pub fn has_property(p: &str) -> Self {
        Self::op(p, "HAS_PROPERTY", None)
    }
    pub fn not_has_property(p: &str) -> Self {
        Self::op(p, "NOT_HAS_PROPERTY", None)
    }
    /// `*` wildcards allowed, e.g. `*@example.com`.
    pub fn contains_token(p: &str, v: impl Into<String>) -> Self {
        Self::op(p, "CONTAINS_TOKEN", Some(v.into()))
    }
}

/// Filters that must all match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

/// A search request; filter groups are ORed, at most one sort.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    pub sort: Option<(String, bool)>,
    pub query: Option<String>,
    pub properties: Vec<String>,
    pub limit: usize,
    pub after: Option<String>,
}

impl SearchRequest {
    pub fn new() -> Self {
        Self { limit: SEARCH_MAX_LIMIT, ..Self::default() }
    }
    /// Adds a group of ANDed filters (groups are ORed).
    pub fn group(mut self, filters: impl IntoIterator<Item = Filter>) -> Self {
        self.filter_groups.push(FilterGroup { filters: filters.into_iter().collect() });
        self
    }
    pub fn sort_ascending(mut self, p: &str) -> Self {
        self.sort = Some((p.into(), true));
        self
    }
    pub fn sort_descending(mut self, p: &str) -> Self {
        self.sort = Some((p.into(), false));
        self
    }
    pub fn properties(mut self, props: &[&str]) -> Self {
        self.properties = props.iter().map(|p| p.to_string()).collect();
        self
    }
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.clamp(1, SEARCH_MAX_LIMIT);
        self
    }
    pub fn after(mut self, a: impl Into<String>) -> Self {
        self.after = Some(a.into());
        self
    }
    pub fn query(mut self, q: impl Into<String>) -> Self {
        self.query = Some(q.into());
        self
    }

    /// Whether HubSpot accepts the request's body length ([`SEARCH_BODY_LIMIT`]).
    pub fn fits(&self) -> bool {
        self.to_json().to_string().len() <= SEARCH_BODY_LIMIT
    }

    pub fn to_json(&self) -> Value {
        let mut b = json!({"filterGroups": self.filter_groups, "properties": self.properties, "limit": self.limit});
        if let Some((p, asc)) = &self.sort {
            b["sorts"] = json!([{"propertyName": p, "direction": if *asc { "ASCENDING" } else { "DESCENDING" }}]);
        }
        if let Some(a) = &self.after {
            b["after"] = json!(a);
        }
        if let Some(q) = &self.query {
            b["query"] = json!(q);
        }
        b
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub total: u64,
    pub results: Vec<CrmObject>,
    /// The offset of the next page; `None` on the last one.
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    total: u64,
    #[serde(flatten)]
    page: Page<CrmObject>,
}

impl HubSpotClient {
    /// One search page of contacts, paced with every search of the process to the same portal.
    pub async fn search_contacts(&self, req: &SearchRequest) -> Result<SearchPage, HubSpotError> {
        self.search_objects(&format!("{CONTACTS}/search"), req).await
    }

    /// One search page of companies.
    pub async fn search_companies(&self, req: &SearchRequest) -> Result<SearchPage, HubSpotError> {
        self.search_objects(&format!("{}/search", crate::crm::COMPANIES), req).await
    }

    async fn search_objects(&self, path: &str, req: &SearchRequest) -> Result<SearchPage, HubSpotError> {
        let body = req.to_json();
        let length = body.to_string().len();
        if length > SEARCH_BODY_LIMIT {
            // HubSpot would refuse it (400); asking for fewer properties is the caller's fix.
            return Err(HubSpotError::Api {
                status: 400,
                category: "VALIDATION_ERROR".into(),
                message: format!(
                    "the search body is {length} characters, over HubSpot's limit of {SEARCH_BODY_LIMIT}; request fewer properties"
                ),
            });
        }
        let r: SearchResponse = self.send(Call::post(path, &body).search()).await?;
        let next_after = r.page.next_after();
        Ok(SearchPage { total: r.total, results: r.page.results, next_after })
    }
}

/// Where an incremental scan stands; persist it between pages to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanCursor {
    /// `lastmodifieddate` (epoch ms) the next query starts at (inclusive).
    pub watermark_ms: i64,
    /// Ids already returned whose `lastmodifieddate` equals `watermark_ms`.
    pub seen_at_watermark: BTreeSet<String>,
    /// Set while walking a run of records sharing `watermark_ms` by id (more than a page of them).
    pub tie_after_id: Option<String>,
    pub done: bool,
}

/// The incremental contact scan of the module doc.
///
/// Every page is a fresh query starting at the watermark (keyset paging), so no query ever
/// pages towards the 10,000-result cap, and records modified during the scan cannot shift
/// offsets. Records sharing one timestamp beyond a page (bulk jobs stamp thousands alike) are
/// walked by `hs_object_id`, which is unique.
#[derive(Debug, Clone)]
pub struct IncrementalScan {
    pub cursor: ScanCursor,
    /// Upper bound (inclusive, epoch ms), e.g. the run start minus search's indexing lag.
    pub until_ms: Option<i64>,
    pub properties: Vec<String>,
    pub page_size: usize,
}

fn modified_ms(c: &CrmObject) -> Option<i64> {
    let v = c.prop("lastmodifieddate")?;
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl IncrementalScan {
    /// A scan of contacts modified at or after `watermark_ms`.
    pub fn new(watermark_ms: i64, until_ms: Option<i64>, properties: &[&str]) -> Self {
        let mut props: Vec<String> = properties.iter().map(|p| p.to_string()).collect();
        for p in ["lastmodifieddate", "hs_object_id"] {
            if !props.iter().any(|x| x == p) {
                props.push(p.into());
            }
        }
        Self {
            cursor: ScanCursor { watermark_ms, seen_at_watermark: BTreeSet::new(), tie_after_id: None, done: false },
            until_ms,
            properties: props,
            page_size: SEARCH_MAX_LIMIT,
        }
    }

    /// Resumes from a stored cursor.
    pub fn resume(cursor: ScanCursor, until_ms: Option<i64>, properties: &[&str]) -> Self {
        Self { cursor, ..Self::new(0, until_ms, properties) }
    }

    fn upper(&self, mut filters: Vec<Filter>) -> Vec<Filter> {
        if let Some(u) = self.until_ms {
            filters.push(Filter::lte("lastmodifieddate", u.to_string()));
        }
        filters
    }

    /// The next batch of contacts (possibly empty while advancing), or `None` when done.
    pub async fn next_page(&mut self, client: &HubSpotClient) -> Result<Option<Vec<CrmObject>>, HubSpotError> {
        if self.cursor.done {
            return Ok(None);
        }
        let props: Vec<&str> = self.properties.iter().map(String::as_str).collect();
        let wm = self.cursor.watermark_ms;
        if let Some(after_id) = self.cursor.tie_after_id.clone() {
            let req =
                SearchRequest::new()
                    .group(self.upper(vec![
                        Filter::eq("lastmodifieddate", wm.to_string()),
                        Filter::gt("hs_object_id", after_id),
                    ]))
                    .sort_ascending("hs_object_id")
                    .properties(&props)
                    .limit(self.page_size);
            let page = client.search_contacts(&req).await?;
            let fresh: Vec<CrmObject> =
                page.results.iter().filter(|c| !self.cursor.seen_at_watermark.contains(&c.id)).cloned().collect();
            match page.results.last() {
                Some(last) if page.next_after.is_some() => {
                    self.cursor.tie_after_id = Some(last.id.clone());
                }
                _ => {
                    // The run of ties is done: continue strictly after this timestamp.
                    self.cursor.tie_after_id = None;
                    self.cursor.watermark_ms = wm + 1;
                    self.cursor.seen_at_watermark.clear();
                }
            }
            return Ok(Some(fresh));
        }
        let req = SearchRequest::new()
            .group(self.upper(vec![Filter::gte("lastmodifieddate", wm.to_string())]))
            .sort_ascending("lastmodifieddate")
            .properties(&props)
            .limit(self.page_size);
        let page = client.search_contacts(&req).await?;
        let full = page.next_after.is_some();
        let fresh: Vec<CrmObject> = page
            .results
            .iter()
            .filter(|c| !(modified_ms(c) == Some(wm) && self.cursor.seen_at_watermark.contains(&c.id)))
            .cloned()
            .collect();
        let max_ts = page.results.iter().filter_map(modified_ms).max();
        let min_ts = page.results.iter().filter_map(modified_ms).min();
        match max_ts {
            None => self.cursor.done = true,
            Some(ts) if full && min_ts == Some(ts) => {
                // A full page of one timestamp: walk that timestamp by id.
                if ts != wm {
                    self.cursor.seen_at_watermark.clear();
                    self.cursor.watermark_ms = ts;
                }
                self.cursor.seen_at_watermark.extend(page.results.iter().map(|c| c.id.clone()));
                self.cursor.tie_after_id = Some("0".into());
            }
            Some(ts) => {
                if ts != wm {
                    self.cursor.seen_at_watermark.clear();
                }
                self.cursor.watermark_ms = ts;
                self.cursor
                    .seen_at_watermark
                    .extend(page.results.iter().filter(|c| modified_ms(c) == Some(ts)).map(|c| c.id.clone()));
                if !full {
                    self.cursor.done = true;
                }
            }
        }
        Ok(Some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_request_shape() {
        let r = SearchRequest::new()
            .group([Filter::gte("lastmodifieddate", "1767225600000"), Filter::lte("lastmodifieddate", "1767312000000")])
            .sort_ascending("lastmodifieddate")
            .properties(&["email"])
            .after("0");
        assert_eq!(
            r.to_json(),
            json!({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"1767225600000"},{"propertyName":"lastmodifieddate","operator":"LTE","value":"1767312000000"}]}],"sorts":[{"propertyName":"lastmodifieddate","direction":"ASCENDING"}],"properties":["email"],"limit":200,"after":"0"})
        );
        assert_eq!(Filter::is_in_text("city", ["Oslo"]).values.unwrap(), vec!["oslo"]);
        assert_eq!(Filter::is_in("tier", ["Gold"]).values.unwrap(), vec!["Gold"], "enumeration values are exact");
    }
}
