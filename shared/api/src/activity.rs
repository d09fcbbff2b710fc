//! What the status page draws and lists beside the status: a connection's activity per hour
//! (records written, errors, API requests against each app's limit, initial-sync progress) and
//! its dead letters.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use hmsync_engine::SyncMessage;
use hmsync_engine::hourly::{Activity, MAX_HOURS};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::connections::connection;
use crate::error::{ErrorBody, FieldProblem, HttpError};
use crate::operations::DEAD_LETTER_PEEK;

/// Hours an activity read covers unless asked otherwise.
pub const DEFAULT_HOURS: u32 = 48;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(activity)).routes(routes!(dead_letters))
}

/// A message that could not succeed, or failed too often, and was set aside.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterView {
    pub message_id: String,
    /// What the message was for: `contacts`, `scan_start`, `scan_page`, `hub_spot_merge`,
    /// `company_changed`, `engagement`, or `unreadable` (not a message of this version).
    pub kind: String,
    /// Contacts the message carried (for `contacts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<usize>,
    /// How often it was delivered before it was set aside.
    pub receive_count: u32,
    /// Why its last attempt failed (hmsync set it aside: it cannot succeed, or it failed on its
    /// last allowed delivery). Absent when the queue moved it after its receive limit without an
    /// answer from hmsync (the worker stopped while handling it: a crash or a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A connection's dead letters among the oldest of the queue.
#[derive(Serialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetterView>,
}

fn kind_of(body: &str) -> (String, Option<usize>) {
    match SyncMessage::from_body(body) {
        Ok(SyncMessage::Contacts { refs, .. }) => ("contacts".into(), Some(refs.len())),
        Ok(m) => {
            let kind = serde_json::to_value(&m)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                .unwrap_or_else(|| "unreadable".into());
            (kind, None)
        }
        Err(_) => ("unreadable".into(), None),
    }
}

/// The connection's activity hour by hour: records written in each app, contacts that got an
/// error, failed messages, API requests (with each app's limit per hour, to read them against)
/// and the records the initial sync read. The current hour is last.
#[utoipa::path(
    get,
    path = "/connections/{id}/activity",
    tag = "health",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("hours" = Option<u32>, Query, description = "Hours up to now (1–336, default 48)", minimum = 1, maximum = 336),
    ),
    responses(
        (status = 200, body = Activity),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "A bad `hours`", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn activity(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Activity>, HttpError> {
    connection(&api, &id).await?;
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let hours = match q.get("hours") {
        None => DEFAULT_HOURS,
        Some(h) => match h.parse::<u32>() {
            Ok(n) if (1..=MAX_HOURS).contains(&n) => n,
            _ => {
                return Err(HttpError::invalid(vec![FieldProblem::new(
                    "hours",
                    format!("hours must be a whole number from 1 to {MAX_HOURS}"),
                    "Send hours in range, or leave it out for 48.",
                )]));
            }
        },
    };
    Ok(Json(api.engine.activity(&id, hours).await?))
}

/// The connection's messages among the 100 oldest dead letters: what each was for and how
/// often it was tried. `POST /dead-letters/requeue` moves them back to the queue.
#[utoipa::path(
    get,
    path = "/connections/{id}/dead-letters",
    tag = "health",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, body = DeadLetters),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 501, description = "This deployment's API cannot read the queue", body = ErrorBody),
        (status = 503, description = "The queue is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn dead_letters(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<DeadLetters>, HttpError> {
    connection(&api, &id).await?;
    let Some(queue) = &api.work_queue else {
        return Err(HttpError::new(StatusCode::NOT_IMPLEMENTED, "this API has no access to the dead-letter queue")
            .with_action("Look at the dead-letter queue in the SQS console."));
    };
    let dead_letters = queue
        .dead_letters(DEAD_LETTER_PEEK)
        .await?
        .into_iter()
        .filter(|d| d.group_id == id)
        .map(|d| {
            let (kind, contacts) = kind_of(&d.body);
            DeadLetterView {
                message_id: d.message_id,
                kind,
                contacts,
                receive_count: d.receive_count,
                last_error: d.last_error,
            }
        })
        .collect();
    Ok(Json(DeadLetters { dead_letters }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_says_what_it_was_for_without_its_contents() {
        let contacts = SyncMessage::Contacts {
            connection_id: "c1".into(),
            refs: vec![hmsync_engine::ContactRef::hubspot("1"), hmsync_engine::ContactRef::mailerlite("2")],
            origin: hmsync_engine::Origin::Webhook,
        };
        assert_eq!(kind_of(&contacts.to_body()), ("contacts".to_string(), Some(2)));
        let scan = SyncMessage::ScanStart { connection_id: "c1".into(), kind: hmsync_engine::ScanKind::Manual };
        assert_eq!(kind_of(&scan.to_body()), ("scan_start".to_string(), None));
        assert_eq!(kind_of("not json"), ("unreadable".to_string(), None));
    }
}
