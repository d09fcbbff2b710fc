//! The one error type of every port, typed so that callers can tell a lost race (re-read and
//! retry), a conflict a person must resolve, and a transient backend failure (retry later) apart.

use crate::model::LinkKey;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} already exists")]
    AlreadyExists { entity: String },

    #[error("{entity} does not exist")]
    NotFound { entity: String },

    /// Optimistic locking lost: someone else wrote since the caller read. `current` is the
    /// stored version (`None`: it does not exist).
    #[error("{entity} was changed by another writer ({}); read it again and retry", describe_version(.current))]
    VersionConflict { entity: String, current: Option<u64> },

    /// A link claimed a HubSpot id, MailerLite id or email that another link already holds.
    /// Nothing was written.
    #[error(
        "{key} already belongs to link {existing_link_id}; two contacts cannot share it, so merge or \
         unlink the other contact first"
    )]
    IndexConflict { key: LinkKey, existing_link_id: String },

    /// The caller passed something the backend cannot store (a bug, not a transient failure).
    #[error("{message}")]
    Invalid { message: String },

    /// The backend refused for load (throttling, a concurrent transaction): retry later.
    #[error("the storage backend is throttling requests ({message}); retry later")]
    Throttled { message: String },

    /// The backend could not be reached or failed internally: retry later.
    #[error("the storage backend is unavailable ({message}); retry later")]
    Unavailable { message: String },

    /// Some messages of a batch could not be enqueued, even after retries. None is dropped
    /// silently: the caller must fail (so its own input is retried) or re-send.
    #[error("{failed} of {total} queue messages could not be sent: {message}")]
    SendFailed { failed: usize, total: usize, message: String, transient: bool },

    /// Anything else the backend reported (misconfiguration, a missing table, corrupt data).
    #[error("storage backend error: {message}")]
    Backend { message: String },
}

fn describe_version(current: &Option<u64>) -> String {
    match current {
        Some(v) => format!("stored version is {v}"),
        None => "it no longer exists".to_string(),
    }
}

impl StoreError {
    /// Whether retrying the same call later may succeed (throttling, outages, lost
    /// transaction races). Conflicts are not transient: the caller must re-read first.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Throttled { .. } | StoreError::Unavailable { .. } => true,
            StoreError::SendFailed { transient, .. } => *transient,
            _ => false,
        }
    }

    pub(crate) fn backend(message: impl Into<String>) -> Self {
        StoreError::Backend { message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid { message: message.into() }
    }

    pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> Self {
        StoreError::Backend { message: format!("stored {what} could not be read: {err}") }
    }
}
