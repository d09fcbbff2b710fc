//! `POST /batch`: up to 50 requests for the price of one.
//!
//! [`Client::batch`] takes any number of typed requests, sends them in chunks of at most 50,
//! and returns exactly one outcome per request, in order (a chunk that fails as a whole gives
//! its error to every request in it; nothing is dropped).
//!
//! The import path: a batch made only of `POST api/subscribers` is processed as an import and
//! limited to 5 per minute. [`BatchOptions::avoid_import_path`] (the default) keeps upsert-only
//! chunks off that path by sending at most 49 upserts plus one cheap count request
//! (`GET api/subscribers?limit=0`) whose answer is not reported; without it such chunks are
//! paced against the import bucket as well. [`chunk_is_upsert_only`] lets a caller that builds
//! its own chunks check.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, Target, decode, error_from, reactivation_refusal, segment};
use crate::error::Error;
use crate::models::{Data, Group, Subscriber};
use crate::requests::{SubscriberUpdate, SubscriberUpsert, activates};

/// Requests per batch.
pub const BATCH_LIMIT: usize = 50;

/// One typed request inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchRequest {
    Upsert(SubscriberUpsert),
    Update { subscriber_id: String, update: SubscriberUpdate },
    Get { id_or_email: String },
    Delete { subscriber_id: String },
    AssignToGroup { subscriber_id: String, group_id: String },
    UnassignFromGroup { subscriber_id: String, group_id: String },
}

/// What one request in a batch achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    /// Upsert, update or get; `created` is true for a 201.
    Subscriber { subscriber: Box<Subscriber>, created: bool },
    /// Assign answers with the group.
    Group(Box<Group>),
    /// Delete and unassign (204).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    pub avoid_import_path: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { avoid_import_path: true }
    }
}

impl BatchRequest {
    fn is_upsert(&self) -> bool {
        matches!(self, BatchRequest::Upsert(_))
    }

    fn target(&self) -> Target {
        match self {
            BatchRequest::Upsert(u) => Target::new("subscriber", u.email.clone()),
            BatchRequest::Update { subscriber_id, .. }
            | BatchRequest::Delete { subscriber_id }
            | BatchRequest::AssignToGroup { subscriber_id, .. }
            | BatchRequest::UnassignFromGroup { subscriber_id, .. } => Target::new("subscriber", subscriber_id.clone()),
            BatchRequest::Get { id_or_email } => Target::new("subscriber", id_or_email.clone()),
        }
    }

    /// The `{"method","path","body"}` item.
    pub fn to_item(&self) -> Value {
        let (method, path, body) = match self {
            BatchRequest::Upsert(u) => {
                ("POST", "api/subscribers".to_string(), Some(serde_json::to_value(u).unwrap_or(Value::Null)))
            }
            BatchRequest::Update { subscriber_id, update } => {
                ("PUT", format!("api/subscribers/{}", segment(subscriber_id)), Some(update.to_json()))
            }
            BatchRequest::Get { id_or_email } => {
                ("GET", format!("api/subscribers/{}", segment(&id_or_email.trim().to_lowercase())), None)
            }
            BatchRequest::Delete { subscriber_id } => {
                ("DELETE", format!("api/subscribers/{}", segment(subscriber_id)), None)
            }
            BatchRequest::AssignToGroup { subscriber_id, group_id } => {
                ("POST", format!("api/subscribers/{}/groups/{}", segment(subscriber_id), segment(group_id)), None)
            }
            BatchRequest::UnassignFromGroup { subscriber_id, group_id } => {
                ("DELETE", format!("api/subscribers/{}/groups/{}", segment(subscriber_id), segment(group_id)), None)
            }
        };
        let mut item = serde_json::json!({ "method": method, "path": path });
        if let Some(b) = body {
            item["body"] = b;
        }
        item
    }

    fn outcome(&self, code: u16, body: &Value) -> Result<BatchOutcome, Error> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        if !(200..300).contains(&code) {
            let err = error_from(code, &bytes, &self.target());
            return Err(match self {
                BatchRequest::Upsert(u) if activates(u.status) => reactivation_refusal(err, &u.email),
                BatchRequest::Update { subscriber_id, update } if activates(update.status) => {
                    reactivation_refusal(err, subscriber_id)
                }
                _ => err,
            });
        }
        match self {
            BatchRequest::Upsert(_) | BatchRequest::Update { .. } | BatchRequest::Get { .. } => {
                let d: Data<Subscriber> = decode(&bytes, "batch subscriber response")?;
                Ok(BatchOutcome::Subscriber { subscriber: Box::new(d.data), created: code == 201 })
            }
            BatchRequest::AssignToGroup { .. } => {
                let d: Data<Group> = decode(&bytes, "batch assign response")?;
                Ok(BatchOutcome::Group(Box::new(d.data)))
            }
            BatchRequest::Delete { .. } | BatchRequest::UnassignFromGroup { .. } => Ok(BatchOutcome::Done),
        }
    }
}

/// Whether these requests, sent as one batch, would take the import path.
pub fn chunk_is_upsert_only(requests: &[BatchRequest]) -> bool {
    !requests.is_empty() && requests.iter().all(BatchRequest::is_upsert)
}

/// Splits requests into chunks as [`Client::batch`] sends them: `(range, padded)` where
/// `padded` means a count request is appended to keep the chunk off the import path.
pub fn plan_chunks(requests: &[BatchRequest], options: BatchOptions) -> Vec<(std::ops::Range<usize>, bool)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < requests.len() {
        let end = (start + BATCH_LIMIT).min(requests.len());
        if options.avoid_import_path && chunk_is_upsert_only(&requests[start..end]) {
            let end = (start + BATCH_LIMIT - 1).min(requests.len());
            chunks.push((start..end, true));
            start = end;
        } else {
            chunks.push((start..end, false));
            start = end;
        }
    }
    chunks
}

#[derive(Deserialize)]
struct BatchReply {
    responses: Vec<SubResponse>,
}

#[derive(Deserialize)]
struct SubResponse {
    code: u16,
    #[serde(default)]
    body: Value,
}

impl Client {
    /// Sends `requests` in batches of at most 50 and returns one outcome per request, in order.
    pub async fn batch(&self, requests: &[BatchRequest], options: BatchOptions) -> Vec<Result<BatchOutcome, Error>> {
        let mut out = Vec::with_capacity(requests.len());
        for (range, padded) in plan_chunks(requests, options) {
            let chunk = &requests[range];
            let mut items: Vec<Value> = chunk.iter().map(BatchRequest::to_item).collect();
            if padded {
                items.push(serde_json::json!({ "method": "GET", "path": "api/subscribers?limit=0" }));
            }
            let import = !padded && chunk_is_upsert_only(chunk);
            let body = serde_json::json!({ "requests": items });
            let reply = self.call(Method::POST, "/batch", &[], Some(&body), import, &Target::new("batch", "")).await;
            let parsed = reply.and_then(|r| decode::<BatchReply>(&r.body, "POST /batch"));
            match parsed {
                Ok(r) if r.responses.len() == items.len() => {
                    out.extend(chunk.iter().zip(r.responses.iter()).map(|(req, sub)| req.outcome(sub.code, &sub.body)));
                }
                Ok(r) => {
                    let e = Error::Decode {
                        context: "POST /batch".into(),
                        message: format!("{} responses for {} requests", r.responses.len(), items.len()),
                    };
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                }
                Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upserts(n: usize) -> Vec<BatchRequest> {
        (0..n).map(|i| BatchRequest::Upsert(SubscriberUpsert::new(format!("p{i}@example.com")))).collect()
    }

    #[test]
    fn chunks_hold_at_most_fifty_and_pad_upsert_only_ones() {
        let plan = plan_chunks(&upserts(100), BatchOptions::default());
        assert_eq!(plan, vec![(0..49, true), (49..98, true), (98..100, true)]);
        let plan = plan_chunks(&upserts(100), BatchOptions { avoid_import_path: false });
        assert_eq!(plan, vec![(0..50, false), (50..100, false)]);
        let mut mixed = upserts(60);
        mixed.insert(10, BatchRequest::Get { id_or_email: "x@example.com".into() });
        let plan = plan_chunks(&mixed, BatchOptions::default());
        assert_eq!(plan, vec![(0..50, false), (50..61, true)]);
        assert!(chunk_is_upsert_only(&upserts(3)));
        assert!(!chunk_is_upsert_only(&mixed));
    }

    #[test]
    fn items_use_the_documented_form() {
        let put =
            BatchRequest::Update { subscriber_id: "1".into(), update: SubscriberUpdate::new().field("name", "A") };
        assert_eq!(
            put.to_item(),
            serde_json::json!({"method": "PUT", "path": "api/subscribers/1", "body": {"fields": {"name": "A"}}})
        );
    }
}
