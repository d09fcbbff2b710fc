//! Batch calls with a per-input outcome: inputs are sent in chunks of at most 100, every input
//! carries an `objectWriteTraceId` (its index) so HubSpot reports failures per input (207), and a
//! chunk that fails as a whole for a data reason is split in halves until the bad inputs are
//! isolated. Errors that will fail every request (auth, limits, outages) mark the rest of the
//! inputs failed without sending them. No input is ever left without an outcome.

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::client::{Call, HubSpotClient};
use crate::error::{HubSpotError, from_response};
use crate::model::{BatchItemError, BatchOutcome, CrmObject};

/// One input of a batch.
#[derive(Debug, Clone)]
pub(crate) struct BatchItem {
    pub index: usize,
    /// The input's id or email (how HubSpot's `context.ids` names it).
    pub key: Option<String>,
    pub json: Value,
}

/// HubSpot's batch limit for CRM objects.
pub const BATCH_SIZE: usize = 100;

fn status_of(category: &str) -> u16 {
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

impl HubSpotClient {
    /// Runs a batch endpoint over `items`. `envelope` builds the request body from the inputs of
    /// one chunk; `traced` adds `objectWriteTraceId` to each input.
    pub(crate) async fn run_batch(
        &self,
        path: &str,
        items: Vec<BatchItem>,
        traced: bool,
        envelope: &(dyn Fn(Vec<Value>) -> Value + Sync),
    ) -> BatchOutcome<CrmObject> {
        let mut outcome = BatchOutcome::default();
        let mut queue: VecDeque<Vec<BatchItem>> = items.chunks(BATCH_SIZE).map(<[BatchItem]>::to_vec).collect();
        while let Some(chunk) = queue.pop_front() {
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
            match self.send_value(Call::post(path, &body)).await {
                Ok(v) => collect(&mut outcome, &chunk, &v),
                Err(e @ HubSpotError::Decode(_)) => {
                    // HubSpot accepted the chunk but its answer is unreadable: the outcome of
                    // these inputs is unknown, the rest can still be sent.
                    for item in chunk {
                        outcome.errors.push(BatchItemError {
                            index: Some(item.index),
                            key: item.key,
                            error: e.clone(),
                        });
                    }
                }
                Err(e) if e.stops_everything() => {
                    for item in chunk.into_iter().chain(queue.drain(..).flatten()) {
                        outcome.errors.push(BatchItemError {
                            index: Some(item.index),
                            key: item.key,
                            error: e.clone(),
                        });
                    }
                }
                Err(e) if chunk.len() > 1 => {
                    // A whole-chunk rejection (e.g. one invalid value): isolate the bad inputs.
                    tracing::debug!(path, size = chunk.len(), error = %e, "batch rejected as a whole; splitting");
                    let mut first = chunk;
                    let second = first.split_off(first.len() / 2);
                    queue.push_front(second);
                    queue.push_front(first);
                }
                Err(e) => {
                    let item = chunk.into_iter().next().expect("non-empty chunk");
                    outcome.errors.push(BatchItemError { index: Some(item.index), key: item.key, error: e });
                }
            }
        }
        outcome
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
        let error = from_response(status_of(category), e, None);
        let traces = strings(e.pointer("/context/objectWriteTraceId"));
        let ids = strings(e.pointer("/context/ids"));
        let mut matched = false;
        for t in &traces {
            if let Some(item) = t.parse::<usize>().ok().and_then(|i| chunk.iter().find(|c| c.index == i)) {
                outcome.errors.push(BatchItemError {
                    index: Some(item.index),
                    key: item.key.clone(),
                    error: error.clone(),
                });
                matched = true;
            }
        }
        for id in &ids {
            let item = chunk.iter().find(|c| c.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(id)));
            outcome.errors.push(BatchItemError {
                index: item.map(|i| i.index),
                key: Some(id.clone()),
                error: match &error {
                    HubSpotError::NotFound { message, .. } => {
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
