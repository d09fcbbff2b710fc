//! v3 Lists: MANUAL, SNAPSHOT and DYNAMIC lists of contacts, memberships ordered by record id
//! and by join order, and the `filterBranch` subset the sandbox evaluates.
//! Documented at <https://developers.hubspot.com/docs/api/crm/lists>.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::Record;
use super::time_fmt::iso_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Position in join order.
    pub seq: u64,
    pub first_added_ms: i64,
    pub last_added_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List {
    pub id: u64,
    pub name: String,
    /// `MANUAL`, `SNAPSHOT` or `DYNAMIC`.
    pub processing_type: String,
    pub object_type_id: String,
    pub filter_branch: Option<Value>,
    pub filter: Option<Branch>,
    pub version: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub filters_updated_ms: i64,
    pub members: BTreeMap<u64, Membership>,
    pub join_order: BTreeMap<u64, u64>,
    pub next_seq: u64,
    pub last_added_ms: Option<i64>,
    pub last_removed_ms: Option<i64>,
}

/// The user id the sandbox puts in `createdById`/`updatedById`.
pub const SANDBOX_USER_ID: u64 = 1_234_567;

impl List {
    pub fn new(id: u64, name: String, processing_type: String, filter_branch: Option<Value>, now: i64) -> Self {
        Self {
            id,
            name,
            processing_type,
            object_type_id: "0-1".into(),
            filter: None,
            filter_branch,
            version: 1,
            created_ms: now,
            updated_ms: now,
            filters_updated_ms: now,
            members: BTreeMap::new(),
            join_order: BTreeMap::new(),
            next_seq: 1,
            last_added_ms: None,
            last_removed_ms: None,
        }
    }

    pub fn is_static(&self) -> bool {
        self.processing_type != "DYNAMIC"
    }

    pub fn add(&mut self, record: u64, now: i64) -> bool {
        if self.members.contains_key(&record) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(record, Membership { seq, first_added_ms: now, last_added_ms: now });
        self.join_order.insert(seq, record);
        self.last_added_ms = Some(now);
        true
    }

    pub fn remove(&mut self, record: u64, now: i64) -> bool {
        match self.members.remove(&record) {
            Some(m) => {
                self.join_order.remove(&m.seq);
                self.last_removed_ms = Some(now);
                true
            }
            None => false,
        }
    }

    pub fn to_json(&self, include_filters: bool) -> Value {
        let mut v = json!({
            "listId": self.id.to_string(),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": iso_ms(self.created_ms),
            "createdById": SANDBOX_USER_ID.to_string(),
            "updatedAt": iso_ms(self.updated_ms),
            "updatedById": SANDBOX_USER_ID.to_string(),
            "filtersUpdatedAt": iso_ms(self.filters_updated_ms),
            "size": self.members.len(),
        });
        if include_filters && let Some(f) = &self.filter_branch {
            v["filterBranch"] = f.clone();
        }
        v
    }

    /// The `additionalProperties` of a list search result (values are strings).
    pub fn additional_properties(&self) -> Value {
        let ms = |t: Option<i64>| t.map_or(Value::Null, |t| Value::String(t.to_string()));
        json!({
            "hs_list_size": self.members.len().to_string(),
            "hs_last_record_added_at": ms(self.last_added_ms),
            "hs_last_record_removed_at": ms(self.last_removed_ms),
            "hs_folder_name": Value::Null,
            "hs_list_reference_count": "0",
        })
    }
}

/// A compiled `filterBranch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub and: bool,
    pub filters: Vec<PropertyFilter>,
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyFilter {
    pub property: String,
    pub operator: String,
    pub values: Vec<String>,
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compiles the supported subset: `OR`/`AND` branches of `PROPERTY` filters with the operators
/// IS_EQUAL_TO/EQ, IS_NOT_EQUAL_TO/NEQ, IS_ANY_OF/IN, IS_NONE_OF/NOT_IN, IS_KNOWN/HAS_PROPERTY,
/// IS_NOT_KNOWN/NOT_HAS_PROPERTY and CONTAINS. Anything else is refused with a message naming it.
pub fn compile(branch: &Value, property_exists: &dyn Fn(&str) -> bool) -> Result<Branch, String> {
    let kind = branch.get("filterBranchType").and_then(Value::as_str).unwrap_or("AND");
    let and = match kind {
        "AND" => true,
        "OR" => false,
        other => return Err(format!("filterBranchType {other} is not supported by the sandbox (use OR or AND)")),
    };
    let mut filters = Vec::new();
    for f in branch.get("filters").and_then(Value::as_array).into_iter().flatten() {
        let ftype = f.get("filterType").and_then(Value::as_str).unwrap_or("");
        if ftype != "PROPERTY" {
            return Err(format!("filterType {ftype} is not supported by the sandbox (only PROPERTY)"));
        }
        let property = f.get("property").and_then(Value::as_str).ok_or("a PROPERTY filter needs `property`")?;
        if !property_exists(property) {
            return Err(format!("Property {property} does not exist"));
        }
        let op = f.get("operation").ok_or("a PROPERTY filter needs `operation`")?;
        let operator = op.get("operator").and_then(Value::as_str).ok_or("an operation needs `operator`")?;
        let operator = match operator {
            "IS_EQUAL_TO" | "EQ" => "EQ",
            "IS_NOT_EQUAL_TO" | "NEQ" => "NEQ",
            "IS_ANY_OF" | "IN" => "IN",
            "IS_NONE_OF" | "NOT_IN" => "NOT_IN",
            "IS_KNOWN" | "HAS_PROPERTY" => "HAS_PROPERTY",
            "IS_NOT_KNOWN" | "NOT_HAS_PROPERTY" => "NOT_HAS_PROPERTY",
            "CONTAINS" => "CONTAINS",
            other => return Err(format!("operator {other} is not supported by the sandbox")),
        }
        .to_string();
        let mut values: Vec<String> =
            op.get("values").and_then(Value::as_array).map(|a| a.iter().map(scalar).collect()).unwrap_or_default();
        if let Some(v) = op.get("value") {
            values.push(scalar(v));
        }
        filters.push(PropertyFilter { property: property.to_string(), operator, values });
    }
    let mut branches = Vec::new();
    for b in branch.get("filterBranches").and_then(Value::as_array).into_iter().flatten() {
        branches.push(compile(b, property_exists)?);
    }
    Ok(Branch { and, filters, branches })
}

impl PropertyFilter {
    fn matches(&self, r: &Record) -> bool {
        let value = r.get(&self.property);
        let items: Vec<String> =
            value.map(|v| v.split(';').map(|s| s.trim().to_lowercase()).collect()).unwrap_or_default();
        let wanted: Vec<String> = self.values.iter().map(|v| v.trim().to_lowercase()).collect();
        let whole = value.map(|v| v.trim().to_lowercase());
        let equal_any = whole.as_ref().is_some_and(|w| wanted.contains(w) || items.iter().any(|i| wanted.contains(i)));
        match self.operator.as_str() {
            "EQ" | "IN" => equal_any,
            "NEQ" | "NOT_IN" => !equal_any,
            "HAS_PROPERTY" => value.is_some(),
            "NOT_HAS_PROPERTY" => value.is_none(),
            "CONTAINS" => whole.is_some_and(|w| wanted.iter().any(|x| w.contains(x.as_str()))),
            _ => false,
        }
    }
}

impl Branch {
    pub fn matches(&self, r: &Record) -> bool {
        let filters = self.filters.iter().map(|f| f.matches(r));
        let branches = self.branches.iter().map(|b| b.matches(r));
        let mut all = filters.chain(branches).peekable();
        if all.peek().is_none() {
            return self.and;
        }
        if self.and { all.all(|m| m) } else { all.any(|m| m) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn rec(props: &[(&str, &str)]) -> Record {
        Record {
            id: 1,
            props: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            created_ms: 0,
            updated_ms: 0,
            archived: false,
            archived_ms: None,
            assoc: BTreeSet::new(),
        }
    }

    #[test]
    fn evaluates_or_of_and_property_filters() {
        let branch = json!({"filterBranchType":"OR","filters":[],"filterBranches":[{"filterBranchType":"AND","filterBranches":[],"filters":[
            {"filterType":"PROPERTY","property":"industry_segment","operation":{"operationType":"ENUMERATION","operator":"IS_ANY_OF","values":["saas","retail"]}},
            {"filterType":"PROPERTY","property":"email","operation":{"operationType":"ALL_PROPERTY","operator":"IS_KNOWN"}}]}]});
        let b = compile(&branch, &|_| true).unwrap();
        assert!(b.matches(&rec(&[("industry_segment", "saas"), ("email", "a@b.co")])));
        assert!(!b.matches(&rec(&[("industry_segment", "saas")])));
        assert!(!b.matches(&rec(&[("industry_segment", "finance"), ("email", "a@b.co")])));
        assert!(
            compile(&json!({"filterBranchType":"OR","filters":[{"filterType":"FORM_SUBMISSION"}]}), &|_| true).is_err()
        );
    }
}
