//! CRM search: filter groups (AND inside, OR across), one sort, numeric `after` offsets,
//! `total`, the 10,000-result cap, and an optional index lag.
//! Documented at <https://developers.hubspot.com/docs/api/crm/search>.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::errors::{HsError, HsResult};
use super::model::{Db, ObjectType, PropSelection, Record};
use super::properties::{PropertyDef, Schema};
use super::time_fmt::{date_ms, parse_instant_ms};

/// Results beyond this offset cannot be paged to.
pub const MAX_RESULTS: usize = 10_000;
pub const MAX_LIMIT: usize = 200;

/// A comparable form of a property value.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Num(f64),
    Text(String),
}

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            (Key::Num(_), Key::Text(_)) => Ordering::Less,
            (Key::Text(_), Key::Num(_)) => Ordering::Greater,
        }
    }
}

/// How values of one property compare: numbers and times numerically, strings
/// case-insensitively, enumerations exactly.
fn key(def: &PropertyDef, raw: &str) -> Option<Key> {
    match def.kind.as_str() {
        "number" => raw.trim().parse::<f64>().ok().map(Key::Num),
        "datetime" => parse_instant_ms(raw).map(|ms| Key::Num(ms as f64)),
        "date" => date_ms(raw).or_else(|| parse_instant_ms(raw)).map(|ms| Key::Num(ms as f64)),
        "enumeration" => Some(Key::Text(raw.to_string())),
        _ => Some(Key::Text(raw.to_lowercase())),
    }
}

struct Filter<'a> {
    def: &'a PropertyDef,
    operator: String,
    value: Option<String>,
    high: Option<String>,
    values: Vec<String>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

const OPERATORS: [&str; 13] = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

fn parse_filter<'a>(schema: &'a Schema, f: &Value) -> HsResult<Filter<'a>> {
    let name = f
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("filter needs propertyName"))?;
    // UNCONFIRMED wording for a filter on an unknown property.
    let def = schema.properties.get(name).ok_or_else(|| {
        HsError::validation(format!("There was a problem with the request. Property {name} does not exist"))
    })?;
    let operator = f.get("operator").and_then(Value::as_str).unwrap_or("EQ").to_string();
    if !OPERATORS.contains(&operator.as_str()) {
        return Err(HsError::validation(format!("Unknown filter operator {operator}")));
    }
    let values =
        f.get("values").and_then(Value::as_array).map(|a| a.iter().filter_map(scalar).collect()).unwrap_or_default();
    let filter = Filter {
        def,
        operator,
        value: f.get("value").and_then(scalar),
        high: f.get("highValue").and_then(scalar),
        values,
    };
    let needs_value = matches!(
        filter.operator.as_str(),
        "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "BETWEEN" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN"
    );
    if needs_value && filter.value.is_none() {
        return Err(HsError::validation(format!("operator {} on {name} needs a value", filter.operator)));
    }
    if filter.operator == "BETWEEN" && filter.high.is_none() {
        return Err(HsError::validation(format!("BETWEEN on {name} needs a highValue")));
    }
    Ok(filter)
}

/// `*`-wildcard match, case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn contains_token(raw: &str, pattern: &str) -> bool {
    let raw = raw.to_lowercase();
    let pattern = pattern.to_lowercase();
    glob(&pattern, &raw)
        || raw
            .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
            .filter(|t| !t.is_empty())
            .any(|t| glob(&pattern, t))
}

/// The record's own key for the properties every scan filters and sorts on (id and the
/// creation/modification times), without parsing the stored strings; `None` for others.
fn fast_key(name: &str, r: &Record) -> Option<Key> {
    match name {
        "hs_object_id" => Some(Key::Num(r.id as f64)),
        "lastmodifieddate" | "hs_lastmodifieddate" => Some(Key::Num(r.updated_ms as f64)),
        "createdate" | "hs_createdate" => Some(Key::Num(r.created_ms as f64)),
        _ => None,
    }
}

/// A record's sort key for `def`.
fn record_key(def: &PropertyDef, r: &Record) -> Option<Key> {
    fast_key(&def.name, r).or_else(|| r.get(&def.name).and_then(|v| key(def, v)))
}

impl Filter<'_> {
    fn matches(&self, r: &Record) -> bool {
        let raw = r.get(&self.def.name);
        let keys: Vec<Key> = match (fast_key(&self.def.name, r), raw) {
            (Some(k), _) => vec![k],
            (None, Some(v)) if self.def.kind == "enumeration" => {
                v.split(';').filter_map(|i| key(self.def, i)).collect()
            }
            (None, Some(v)) => key(self.def, v).into_iter().collect(),
            (None, None) => Vec::new(),
        };
        let items: Vec<&str> = match raw {
            Some(v) if self.def.kind == "enumeration" => v.split(';').collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        let cmp_any = |target: &str, pred: &dyn Fn(Ordering) -> bool| {
            let Some(t) = key(self.def, target) else { return false };
            keys.iter().any(|k| pred(k.cmp(&t)))
        };
        let value = self.value.as_deref().unwrap_or("");
        match self.operator.as_str() {
            "EQ" => cmp_any(value, &|o| o == Ordering::Equal),
            "NEQ" => !cmp_any(value, &|o| o == Ordering::Equal),
            "LT" => cmp_any(value, &|o| o == Ordering::Less),
            "LTE" => cmp_any(value, &|o| o != Ordering::Greater),
            "GT" => cmp_any(value, &|o| o == Ordering::Greater),
            "GTE" => cmp_any(value, &|o| o != Ordering::Less),
            "BETWEEN" => {
                cmp_any(value, &|o| o != Ordering::Less)
                    && cmp_any(self.high.as_deref().unwrap_or(""), &|o| o != Ordering::Greater)
            }
            "IN" | "NOT_IN" => {
                // String values must be given lowercase (HubSpot compares them to the lowercased value).
                let hit = self.values.iter().any(|v| {
                    if matches!(self.def.kind.as_str(), "string") {
                        items.iter().any(|i| i.to_lowercase() == *v)
                    } else {
                        cmp_any(v, &|o| o == Ordering::Equal)
                    }
                });
                hit == (self.operator == "IN")
            }
            "HAS_PROPERTY" => raw.is_some(),
            "NOT_HAS_PROPERTY" => raw.is_none(),
            "CONTAINS_TOKEN" => raw.is_some_and(|r| contains_token(r, value)),
            "NOT_CONTAINS_TOKEN" => !raw.is_some_and(|r| contains_token(r, value)),
            _ => false,
        }
    }
}

fn query_properties(t: ObjectType) -> &'static [&'static str] {
    match t {
        ObjectType::Contacts => {
            &["firstname", "lastname", "email", "phone", "hs_additional_emails", "fax", "mobilephone", "company"]
        }
        ObjectType::Companies => &["name", "domain", "website", "phone"],
        ObjectType::Notes => &["hs_note_body"],
    }
}

fn query_matches(t: ObjectType, r: &Record, q: &str) -> bool {
    let q = q.to_lowercase();
    query_properties(t).iter().filter_map(|p| r.get(p)).any(|v| {
        let v = v.to_lowercase();
        v.starts_with(&q)
            || v.split(|c: char| c.is_whitespace() || c == '@' || c == ';' || c == '.').any(|t| t.starts_with(&q))
    })
}

/// Runs one search request. `visible_before_ms`: records modified after it are not indexed yet.
pub fn search(db: &Db, t: ObjectType, body: &Value, visible_before_ms: Option<i64>) -> HsResult<Value> {
    let schema = db.schema(t);
    let groups = body.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    if groups.len() > 5 {
        return Err(HsError::validation(format!("Too many filter groups: {} (maximum 5)", groups.len())));
    }
    let mut compiled = Vec::new();
    let mut total_filters = 0;
    for g in &groups {
        let filters = g.get("filters").and_then(Value::as_array).cloned().unwrap_or_default();
        if filters.len() > 6 {
            return Err(HsError::validation(format!("Too many filters in a group: {} (maximum 6)", filters.len())));
        }
        total_filters += filters.len();
        compiled.push(filters.iter().map(|f| parse_filter(schema, f)).collect::<HsResult<Vec<_>>>()?);
    }
    if total_filters > 18 {
        return Err(HsError::validation(format!("Too many filters: {total_filters} (maximum 18)")));
    }
    let sorts = body.get("sorts").and_then(Value::as_array).cloned().unwrap_or_default();
    if sorts.len() > 1 {
        return Err(HsError::validation("Only one sort is supported"));
    }
    let sort = match sorts.first() {
        None => None,
        Some(Value::String(s)) => Some(match s.strip_prefix('-') {
            Some(name) => (name.to_string(), false),
            None => (s.clone(), true),
        }),
        Some(o) => {
            let name = o
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| HsError::validation("sort needs propertyName"))?;
            let asc = o.get("direction").and_then(Value::as_str).unwrap_or("ASCENDING") != "DESCENDING";
            Some((name.to_string(), asc))
        }
    };
    let sort_def = match &sort {
        Some((name, _)) => Some(
            schema
                .properties
                .get(name)
                .ok_or_else(|| HsError::validation(format!("Property {name} does not exist")))?,
        ),
        None => None,
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| HsError::validation("limit must be a number"))? as usize,
    };
    if limit > MAX_LIMIT {
        return Err(HsError::validation(format!("limit must be at most {MAX_LIMIT}, got {limit}")));
    }
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| if s.is_empty() { Some(0) } else { s.parse().ok() }))
            .ok_or_else(|| HsError::validation("after must be a numeric offset"))? as usize,
    };
    if after >= MAX_RESULTS {
        // UNCONFIRMED wording; the 400 itself is documented.
        return Err(HsError::validation(format!(
            "Paging beyond the first {MAX_RESULTS} results is not allowed (after={after}). Narrow the search instead."
        )));
    }
    let query = body.get("query").and_then(Value::as_str).filter(|q| !q.trim().is_empty());
    let mut hits: Vec<(&Record, Option<Key>)> = Vec::new();
    for r in db.store(t).values() {
        if r.archived || visible_before_ms.is_some_and(|v| r.updated_ms > v) {
            continue;
        }
        if !compiled.is_empty() && !compiled.iter().any(|g| g.iter().all(|f| f.matches(r))) {
            continue;
        }
        if let Some(q) = query
            && !query_matches(t, r, q)
        {
            continue;
        }
        let k = sort_def.and_then(|d| record_key(d, r));
        hits.push((r, k));
    }
    if let Some((_, asc)) = &sort {
        // Records without the sort property come last; ties keep id order.
        hits.sort_by(|(ra, ka), (rb, kb)| {
            let o = match (ka, kb) {
                (Some(a), Some(b)) => {
                    if *asc {
                        a.cmp(b)
                    } else {
                        b.cmp(a)
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            o.then(ra.id.cmp(&rb.id))
        });
    }
    let total = hits.len();
    let end = (after + limit).min(total).min(MAX_RESULTS);
    let sel = PropSelection::from_body(body.get("properties"));
    let results: Vec<Value> =
        hits.get(after.min(total)..end).unwrap_or(&[]).iter().map(|(r, _)| db.render(t, r, &sel)).collect();
    let mut out = json!({"total": total, "results": results});
    if end < total {
        out["paging"] = json!({"next":{"after": end.to_string()}});
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_tokens() {
        assert!(contains_token("ada@hubspot.com", "*@hubspot.com"));
        assert!(contains_token("Ada Lovelace", "lovelace"));
        assert!(!contains_token("ada@example.com", "*@hubspot.com"));
    }
}
