use std::collections::BTreeMap;
use std::time::Duration;

/// Everything a MailerLite call can fail with. `Display` says what happened and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// 401: the key is wrong, revoked, or its user left the account.
    #[error(
        "MailerLite rejected the API key (401 Unauthenticated): it was revoked, or the user who created it was \
         removed from the account. Generate a new key in MailerLite (Integrations → MailerLite API) and update the connection"
    )]
    Unauthorized,
    /// 404: the subscriber/group/field/… (or route) does not exist.
    #[error("MailerLite has no such {what}: {message}")]
    NotFound { what: String, message: String },
    /// 422 with field-level errors (`errors` keys are field paths such as `email` or `fields.employees`).
    #[error("MailerLite refused the data: {}", describe(.message, .errors))]
    Validation { message: String, errors: BTreeMap<String, Vec<String>> },
    /// The subscriber is unsubscribed, bounced or junk and the API will not make them active
    /// again (abuse prevention). A known state to record, not a failure to retry.
    #[error(
        "MailerLite will not reactivate subscriber {subscriber}: {message}. Only the person can resubscribe \
         (a form, a landing page or the app); keep their MailerLite status"
    )]
    ReactivationRefused { subscriber: String, message: String },
    /// 429 from the global limit, still refused after the configured retries.
    #[error("MailerLite rate limit (120 requests/minute) still exceeded after retrying; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// 429 from the import limit (group imports, all-upsert batches: 5/minute).
    #[error(
        "MailerLite import rate limit (5 imports/minute) still exceeded after retrying; retry after {retry_after:?}"
    )]
    ImportRateLimited { retry_after: Duration },
    /// 5xx or a timeout, still failing after bounded retries: try again later.
    #[error("MailerLite is failing ({}): {message}; the request was retried and will be tried again later", status.map_or("timeout".to_string(), |s| format!("HTTP {s}")))]
    Transient { status: Option<u16>, message: String },
    /// The connection failed (DNS, TLS, reset), after bounded retries.
    #[error("could not reach MailerLite: {0}")]
    Transport(String),
    /// A response that does not parse as the documented shape.
    #[error("unexpected MailerLite response for {context}: {message}")]
    Decode { context: String, message: String },
    /// Any other refusal (400, 403, 405, …).
    #[error("MailerLite refused the request (HTTP {status}): {message}")]
    Api { status: u16, message: String },
}

fn describe(message: &str, errors: &BTreeMap<String, Vec<String>>) -> String {
    if errors.is_empty() {
        return message.to_string();
    }
    errors.iter().map(|(field, msgs)| format!("{field}: {}", msgs.join(" "))).collect::<Vec<_>>().join("; ")
}

impl Error {
    /// Worth retrying later (rate limits, 5xx, timeouts, connection failures).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. } | Error::ImportRateLimited { .. } | Error::Transient { .. } | Error::Transport(_)
        )
    }

    /// The messages for one field of a validation error (e.g. `"email"`, `"fields.employees"`).
    pub fn field_errors(&self, field: &str) -> &[String] {
        match self {
            Error::Validation { errors, .. } => errors.get(field).map(Vec::as_slice).unwrap_or(&[]),
            _ => &[],
        }
    }
}
