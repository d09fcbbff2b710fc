//! Batch calls with a per-input outcome, in chunks of at most 100 inputs. No input is ever left
//! without an outcome, and a chunk is never split in halves to find a bad input:
//!
//! - Reads report missing inputs in a 207 (`context.ids`).
//! - Batch create carries an `objectWriteTraceId` per input, so HubSpot answers per input (207);
//!   the multi-status answer is documented for the batch create endpoints only.
//! - Batch update and upsert fail as a whole (400, or 409 for an email another contact has) when
//!   one input is refused, and nothing is applied. The inputs the error names (by the property
//!   and value it quotes) lose the refused properties and are recorded as failed with that
//!   error, and the chunk is sent again at once with the rest: one refused value in a chunk of
//!   100 costs 2 requests. A refused property that several inputs carry with no value to tell
//!   them apart is sent alone for each of them afterwards (at most [`MAX_SINGLES`]).
//!
//! Errors that will fail every request (auth, limits, outages, a missing route) mark the rest of
//! the inputs failed without sending them.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::client::{Call, HubSpotClient};
use crate::error::{HubSpotError, PropertyError, from_response, names_existing_record};
use crate::model::{BatchItemError, BatchOutcome, CrmObject};

/// One input of a batch.
#[derive(Debug, Clone)]
pub(crate) struct BatchItem {
    pub index: usize,
    /// The input's id or email (how HubSpot's `context.ids` names it).
    pub key: Option<String>,
    pub json: Value,
}

/// How a batch endpoint reports the failure of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    /// Reads, and creates HubSpot answers as a whole (notes): one answer per chunk.
    Once,
    /// Batch create with an `objectWriteTraceId` per input: failures come back per input.
    TracedCreate,
    /// Batch update and upsert: one refused input fails the whole request.
    WholeRequest,
}

/// HubSpot's batch limit for CRM objects.
pub const BATCH_SIZE: usize = 100;

/// Rounds of "drop what the error names, send the rest" per chunk: HubSpot lists every invalid
/// value of a batch in one error, so the second round is normally the last.
const MAX_ROUNDS: usize = 3;

/// At most this many inputs of a chunk are sent alone to find which carried a refused value.
pub const MAX_SINGLES: usize = 10;

fn status_of(category: &str, message: &str) -> u16 {
    if names_existing_record(message) {
        return 409;
    }
    match category {
        "OBJECT_NOT_FOUND" => 404,
        "CONFLICT" => 409,
        "VALIDATION_ERROR" => 400,
        "RATE_LIMITS" => 429,
        _ => 400,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from).or_else(|| x.as_u64().map(|n| n.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn item_error(item: &BatchItem, error: HubSpotError) -> BatchItemError {
    BatchItemError { index: Some(item.index), key: item.key.clone(), error }
}

/// The value an input sends for `property`, if it sends one.
fn sent_value<'a>(item: &'a BatchItem, property: &str) -> Option<&'a str> {
    item.json.pointer("/properties").and_then(|p| p.get(property)).and_then(Value::as_str)
}

/// Whether HubSpot's quoted `value` is what `sent` carries (a multiple-checkbox value is
/// refused item by item).
fn quotes(sent: &str, value: &str) -> bool {
    sent == value || sent.split(';').any(|v| v == value)
}

/// A property of one input that a whole-request refusal names: `ambiguous` when the input only
/// sent the property like several others, with nothing in the error telling them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused {
    property: String,
    ambiguous: bool,
}

/// Which inputs (by position) a whole-request refusal names, and for which properties.
fn refused_inputs(error: &HubSpotError, items: &[BatchItem]) -> BTreeMap<usize, Vec<Refused>> {
    let mut out: BTreeMap<usize, Vec<Refused>> = BTreeMap::new();
    let mut by_property = |property: &str, value: Option<&str>, every_carrier: bool| {
        let carriers: Vec<usize> = (0..items.len()).filter(|i| sent_value(&items[*i], property).is_some()).collect();
        let quoted: Vec<usize> = value
            .map(|v| {
                carriers
                    .iter()
                    .copied()
                    .filter(|i| sent_value(&items[*i], property).is_some_and(|s| quotes(s, v)))
                    .collect()
            })
            .unwrap_or_default();
        let (named, ambiguous) = if !quoted.is_empty() {
            (quoted, false)
        } else {
            let one = every_carrier || carriers.len() == 1;
            (carriers, !one)
        };
        for pos in named {
            let entry = out.entry(pos).or_default();
            match entry.iter_mut().find(|r| r.property == property) {
                Some(r) => r.ambiguous &= ambiguous,
                None => entry.push(Refused { property: property.to_string(), ambiguous }),
            }
        }
    };
    match error {
        HubSpotError::Validation { errors, .. } => {
            for e in errors {
                // A property that does not exist or cannot be written fails every input sending it.
                let every = matches!(e.code.as_str(), "PROPERTY_DOESNT_EXIST" | "READ_ONLY_VALUE");
                by_property(&e.property, e.value.as_deref(), every);
            }
        }
        HubSpotError::Conflict { .. } => by_property("email", None, false),
        _ => {}
    }
    out
}

/// The part of a whole-request error that concerns one input's refused properties.
fn narrowed(error: &HubSpotError, properties: &[String], item: &BatchItem) -> HubSpotError {
    match error {
        HubSpotError::Validation { errors, message } => {
            let about = |e: &&PropertyError| properties.contains(&e.property);
            let mine: Vec<PropertyError> = errors
                .iter()
                .filter(about)
                .filter(|e| match (&e.value, sent_value(item, &e.property)) {
                    (Some(v), Some(sent)) => quotes(sent, v),
                    _ => true,
                })
                .cloned()
                .collect();
            let mine = if mine.is_empty() { errors.iter().filter(about).cloned().collect() } else { mine };
            HubSpotError::Validation { errors: mine, message: message.clone() }
        }
        other => other.clone(),
    }
}

/// `item` without `properties` (in its `properties` object).
fn without(item: &BatchItem, properties: &[String]) -> BatchItem {
    let mut out = item.clone();
    if let Some(p) = out.json.get_mut("properties").and_then(Value::as_object_mut) {
        for name in properties {
            p.remove(name);
        }
    }
    out
}

/// `item` sending only `property`.
fn only(item: &BatchItem, property: &str) -> BatchItem {
    let mut out = item.clone();
    if let Some(p) = out.json.get_mut("properties").and_then(Value::as_object_mut) {
        p.retain(|k, _| k == property);
    }
    out
}

fn sends_properties(item: &BatchItem) -> bool {
    item.json.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty())
}

impl HubSpotClient {
    /// Runs a batch endpoint over `items`. `envelope` builds the request body from the inputs
    /// of one chunk.
    pub(crate) async fn run_batch(
        &self,
        path: &str,
        items: Vec<BatchItem>,
        kind: BatchKind,
        envelope: &(dyn Fn(Vec<Value>) -> Value + Sync),
    ) -> BatchOutcome<CrmObject> {
        let mut outcome = BatchOutcome::default();
        let mut queue: VecDeque<Vec<BatchItem>> = items.chunks(BATCH_SIZE).map(<[BatchItem]>::to_vec).collect();
        while let Some(chunk) = queue.pop_front() {
            let result = match kind {
                BatchKind::WholeRequest => self.send_whole(path, chunk.clone(), envelope, &mut outcome).await,
                BatchKind::Once | BatchKind::TracedCreate => {
                    self.send_chunk(path, &chunk, kind == BatchKind::TracedCreate, envelope).await.map(|v| {
                        collect(&mut outcome, &chunk, &v);
                    })
                }
            };
            match result {
                Ok(()) => {}
                Err(e @ HubSpotError::Decode(_)) => {
                    // HubSpot accepted the chunk but its answer is unreadable: the outcome of
                    // these inputs is unknown, the rest can still be sent.
                    outcome.errors.extend(chunk.iter().map(|i| item_error(i, e.clone())));
                }
                Err(e) if e.stops_everything() => {
                    for item in chunk.iter().chain(queue.drain(..).flatten().collect::<Vec<_>>().iter()) {
                        outcome.errors.push(item_error(item, e.clone()));
                    }
                }
                Err(e) => {
                    // Refused as a whole for a reason no input carries alone: every input of the
                    // chunk has that outcome (nothing was applied).
                    tracing::debug!(path, size = chunk.len(), error = %e, "batch chunk refused as a whole");
                    outcome.errors.extend(chunk.iter().map(|i| item_error(i, e.clone())));
                }
            }
        }
        outcome
    }

    async fn send_chunk(
        &self,
        path: &str,
        chunk: &[BatchItem],
        traced: bool,
        envelope: &(dyn Fn(Vec<Value>) -> Value + Sync),
    ) -> Result<Value, HubSpotError> {
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut j = i.json.clone();
                if traced {
                    j["objectWriteTraceId"] = json!(i.index.to_string());
                }
                j
            })
            .collect();
        let body = envelope(inputs);
        self.send_value(Call::post(path, &body)).await.map_err(|e| match e {
            // A whole batch request is never about one missing record (those come back in a
            // 207): a 404 here is the route's.
            HubSpotError::NotFound { message, .. } => HubSpotError::RouteNotFound { message },
            other => other,
        })
    }

    /// One chunk of an update or upsert: refused inputs are dropped (recorded with their
    /// error) or stripped of the refused values, and the rest is sent again.
    async fn send_whole(
        &self,
        path: &str,
        mut pending: Vec<BatchItem>,
        envelope: &(dyn Fn(Vec<Value>) -> Value + Sync),
        outcome: &mut BatchOutcome<CrmObject>,
    ) -> Result<(), HubSpotError> {
        let mut singles: Vec<(BatchItem, String)> = Vec::new();
        for round in 0..MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let error = match self.send_chunk(path, &pending, false, envelope).await {
                Ok(v) => {
                    collect(outcome, &pending, &v);
                    pending.clear();
                    break;
                }
                Err(e) if e.stops_everything() || matches!(e, HubSpotError::Decode(_)) => return Err(e),
                Err(e) => e,
            };
            let mut refused = refused_inputs(&error, &pending);
            let ambiguous_email = refused.values().flatten().filter(|r| r.ambiguous && r.property == "email").count();
            if let HubSpotError::Conflict { existing_id: Some(holder), .. } = &error
                && ambiguous_email > 1
            {
                self.name_conflicting_email(holder, &pending, &mut refused).await?;
            }
            let ambiguous = refused.values().flatten().filter(|r| r.ambiguous).count();
            if refused.is_empty() || round + 1 == MAX_ROUNDS || ambiguous > MAX_SINGLES {
                tracing::debug!(path, size = pending.len(), error = %error, "batch refused as a whole; no input named");
                outcome.errors.extend(pending.iter().map(|i| item_error(i, error.clone())));
                pending.clear();
                break;
            }
            tracing::debug!(path, refused = refused.len(), error = %error, "batch refused; sending the rest again");
            let mut next = Vec::with_capacity(pending.len());
            for (pos, item) in pending.iter().enumerate() {
                let Some(props) = refused.get(&pos) else {
                    next.push(item.clone());
                    continue;
                };
                let named: Vec<String> = props.iter().filter(|r| !r.ambiguous).map(|r| r.property.clone()).collect();
                if !named.is_empty() {
                    outcome.errors.push(item_error(item, narrowed(&error, &named, item)));
                }
                singles.extend(
                    props.iter().filter(|r| r.ambiguous).map(|r| (only(item, &r.property), r.property.clone())),
                );
                let all: Vec<String> = props.iter().map(|r| r.property.clone()).collect();
                let rest = without(item, &all);
                if sends_properties(&rest) {
                    next.push(rest);
                }
            }
            pending = next;
        }
        for (single, property) in singles {
            match self.send_chunk(path, std::slice::from_ref(&single), false, envelope).await {
                Ok(v) => collect(outcome, std::slice::from_ref(&single), &v),
                Err(e) if e.stops_everything() || matches!(e, HubSpotError::Decode(_)) => return Err(e),
                Err(e) => outcome.errors.push(item_error(&single, narrowed(&e, &[property], &single))),
            }
        }
        Ok(())
    }

    /// A 409 names the contact that has the email, not the input that sent it: when several
    /// inputs change their email, one read of that contact's emails tells which one it was.
    async fn name_conflicting_email(
        &self,
        holder: &str,
        items: &[BatchItem],
        refused: &mut BTreeMap<usize, Vec<Refused>>,
    ) -> Result<(), HubSpotError> {
        let contact = match self.get_contact(holder, &["email", "hs_additional_emails"]).await {
            Ok(c) => c,
            Err(e) if e.stops_everything() => return Err(e),
            Err(_) => return Ok(()),
        };
        let held: Vec<String> = contact
            .prop("email")
            .into_iter()
            .chain(contact.prop("hs_additional_emails").into_iter().flat_map(|e| e.split(';')))
            .map(|e| e.trim().to_lowercase())
            .collect();
        let holds =
            |pos: &usize| sent_value(&items[*pos], "email").is_some_and(|e| held.contains(&e.trim().to_lowercase()));
        if refused.keys().any(holds) {
            for (pos, props) in refused.iter_mut() {
                let holder = holds(pos);
                props.retain(|r| r.property != "email" || holder);
                for r in props.iter_mut().filter(|r| r.property == "email") {
                    r.ambiguous = false;
                }
            }
            refused.retain(|_, props| !props.is_empty());
        }
        Ok(())
    }
}

/// Reads one batch answer (200/201/207) into the outcome.
fn collect(outcome: &mut BatchOutcome<CrmObject>, chunk: &[BatchItem], v: &Value) {
    for r in v.get("results").and_then(Value::as_array).into_iter().flatten() {
        match serde_json::from_value::<CrmObject>(r.clone()) {
            Ok(o) => outcome.results.push(o),
            Err(e) => outcome.errors.push(BatchItemError {
                index: None,
                key: r.get("id").and_then(Value::as_str).map(String::from),
                error: HubSpotError::Decode(format!("batch result: {e}")),
            }),
        }
    }
    for e in v.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let category = e.get("category").and_then(Value::as_str).unwrap_or_default();
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
        let error = from_response(status_of(category, message), e, None);
        let traces = strings(e.pointer("/context/objectWriteTraceId"));
        let ids = strings(e.pointer("/context/ids"));
        let mut matched = false;
        for t in &traces {
            if let Some(item) = t.parse::<usize>().ok().and_then(|i| chunk.iter().find(|c| c.index == i)) {
                outcome.errors.push(item_error(item, error.clone()));
                matched = true;
            }
        }
        for id in &ids {
            let item = chunk.iter().find(|c| c.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(id)));
            outcome.errors.push(BatchItemError {
                index: item.map(|i| i.index),
                key: Some(id.clone()),
                error: match &error {
                    HubSpotError::NotFound { message, .. } | HubSpotError::RouteNotFound { message } => {
                        HubSpotError::NotFound { what: format!("record {id}"), message: message.clone() }
                    }
                    other => other.clone(),
                },
            });
            matched = true;
        }
        if !matched {
            outcome.errors.push(BatchItemError { index: None, key: None, error });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, props: Value) -> BatchItem {
        BatchItem { index, key: Some(index.to_string()), json: json!({"id": index.to_string(), "properties": props}) }
    }

    fn invalid(property: &str, code: &str, value: Option<&str>) -> PropertyError {
        PropertyError {
            property: property.into(),
            code: code.into(),
            value: value.map(String::from),
            allowed_options: Vec::new(),
            message: String::new(),
        }
    }

    #[test]
    fn a_quoted_value_names_the_inputs_that_sent_it() {
        let items = vec![
            item(0, json!({"industry": "SaaS", "city": "Oslo"})),
            item(1, json!({"industry": "Aerospace", "city": "Riga"})),
            item(2, json!({"interests": "events;Gardening"})),
        ];
        let error = HubSpotError::Validation {
            errors: vec![
                invalid("industry", "INVALID_OPTION", Some("Aerospace")),
                invalid("interests", "INVALID_OPTION", Some("Gardening")),
            ],
            message: String::new(),
        };
        let refused = refused_inputs(&error, &items);
        assert_eq!(refused.len(), 2);
        assert_eq!(refused[&1], vec![Refused { property: "industry".into(), ambiguous: false }]);
        assert_eq!(refused[&2], vec![Refused { property: "interests".into(), ambiguous: false }]);
    }

    #[test]
    fn a_property_that_cannot_be_written_names_every_input_sending_it() {
        let items = vec![item(0, json!({"nope": "a"})), item(1, json!({"nope": "b"})), item(2, json!({"city": "c"}))];
        let error = HubSpotError::Validation {
            errors: vec![invalid("nope", "PROPERTY_DOESNT_EXIST", None)],
            message: String::new(),
        };
        let refused = refused_inputs(&error, &items);
        assert_eq!(refused.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert!(refused.values().flatten().all(|r| !r.ambiguous));
    }

    #[test]
    fn an_unquoted_value_of_several_inputs_is_ambiguous() {
        let items = vec![item(0, json!({"lifecyclestage": "lead"})), item(1, json!({"lifecyclestage": "customer"}))];
        let error = HubSpotError::Validation {
            errors: vec![invalid("lifecyclestage", "INVALID_LIFECYCLE_STAGE", None)],
            message: String::new(),
        };
        assert!(refused_inputs(&error, &items).values().flatten().all(|r| r.ambiguous));
    }
}
