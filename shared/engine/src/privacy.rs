//! Erasing one person from a connection (a HubSpot privacy deletion, or an erase through the
//! config API), exporting what hmsync holds about them, and keeping erased people out of every
//! later sync: a tombstone holds keyed digests of their email and record ids, and any record
//! carrying one of them is left alone (never created, linked or updated) until the user lifts it.

use hmac::{KeyInit, Mac};
use hmsync_core::{Link, normalize_email};
use hmsync_store::{ContactError, Erased, HistoryEntry, LinkKey, Person, Tombstone};
use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::sync::Unit;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Whom to erase or export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Email(String),
    HubSpot(String),
}

/// Which apps an erase is forwarded to (each off unless asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forward {
    /// `POST /subscribers/{id}/forget` for the linked subscriber.
    pub mailerlite: bool,
    /// HubSpot's GDPR delete of the linked contact.
    pub hubspot: bool,
}

/// What an erase did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    /// Stored items removed, by kind.
    pub erased: Erased,
    /// Keyed digests the tombstone holds (email and record ids; never the values).
    pub tombstone_digests: usize,
    /// MailerLite was asked to forget the subscriber.
    pub forgotten_in_mailerlite: bool,
    /// The HubSpot contact was deleted with HubSpot's GDPR delete.
    pub deleted_in_hubspot: bool,
}

/// Everything hmsync holds about one person in one connection.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Export {
    pub connection_id: String,
    pub email: String,
    /// The link with the last synced value of every mapped field.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub link: Option<Link>,
    /// Current contact errors (with the values they name).
    pub errors: Vec<ContactError>,
    /// Every change recorded within the history retention.
    pub history: Vec<HistoryEntry>,
    /// Whether the person is erased from this connection (a tombstone holds their email).
    pub erased: bool,
}

/// Reasons stored with a tombstone.
pub const HUBSPOT_PRIVACY_DELETION: &str = "hubspot_privacy_deletion";
pub const ERASED_BY_API: &str = "erased_by_api";

fn digest(key: &str, kind: &str, value: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The digests of a person: their email(s) and record ids.
fn digests_of(key: &str, emails: &[String], hs: Option<&str>, ml: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = emails.iter().map(|e| digest(key, "email", e)).collect();
    out.extend(hs.map(|id| digest(key, "hubspot", id)));
    out.extend(ml.map(|id| digest(key, "mailerlite", id)));
    out.sort();
    out.dedup();
    out
}

impl Engine {
    /// The connection's key for tombstone digests, made on first use and kept in its state (a
    /// random value, not personal data).
    async fn privacy_key(&self, conn_id: &str, create: bool) -> Result<Option<String>, EngineError> {
        let (state, _) = self.state(conn_id).await?;
        if state.privacy_key.is_some() || !create {
            return Ok(state.privacy_key);
        }
        let fresh = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let (state, _) = self
            .update_state(conn_id, |s| {
                s.privacy_key.get_or_insert_with(|| fresh.clone());
            })
            .await?;
        Ok(state.privacy_key)
    }

    async fn find_person(&self, conn_id: &str, who: &Who) -> Result<(Option<Link>, Vec<String>), EngineError> {
        Ok(match who {
            Who::Email(email) => {
                let email = normalize_email(email).unwrap_or_else(|| email.trim().to_lowercase());
                (self.store.link_by_email(conn_id, &email).await?, vec![email])
            }
            Who::HubSpot(id) => (self.store.link_by_hubspot_id(conn_id, id).await?, Vec::new()),
        })
    }

    /// Erases a person: a tombstone first (so no sync running meanwhile links them again), then
    /// every item stored under their keys, then the forwarding asked for.
    pub async fn erase(
        &self,
        conn_id: &str,
        who: &Who,
        reason: &str,
        forward: Forward,
    ) -> Result<Erasure, EngineError> {
        let conn = self.connection(conn_id).await?;
        let (link, mut emails) = self.find_person(conn_id, who).await?;
        let hs_id = link.as_ref().and_then(|l| l.hubspot_id.clone()).or(match who {
            Who::HubSpot(id) => Some(id.clone()),
            Who::Email(_) => None,
        });
        let ml_id = link.as_ref().and_then(|l| l.mailerlite_id.clone());
        if let Some(l) = &link
            && !emails.contains(&l.email)
        {
            emails.push(l.email.clone());
        }
        let key = self.privacy_key(conn_id, true).await?.expect("created above");
        let digests = digests_of(&key, &emails, hs_id.as_deref(), ml_id.as_deref());
        let stored = self
            .store
            .put_tombstone(conn_id, &Tombstone { digests, at_ms: self.now_ms().max(0) as u64, reason: reason.into() })
            .await?;

        let mut keys: Vec<LinkKey> = emails.iter().map(|e| LinkKey::Email(e.clone())).collect();
        keys.extend(hs_id.iter().map(|id| LinkKey::HubSpot(id.clone())));
        keys.extend(ml_id.iter().map(|id| LinkKey::MailerLite(id.clone())));
        let mut error_keys: Vec<String> = link.iter().map(|l| l.id.clone()).collect();
        error_keys.extend(hs_id.iter().map(|id| format!("hubspot:{id}")));
        error_keys.extend(ml_id.iter().map(|id| format!("mailerlite:{id}")));
        let person = Person { link_ids: link.iter().map(|l| l.id.clone()).collect(), keys, error_keys, emails };
        let erased = self.store.purge_person(conn_id, &person).await?;

        let mut erasure = Erasure { erased, tombstone_digests: stored.digests.len(), ..Erasure::default() };
        if forward.mailerlite
            && let Some(id) = &ml_id
        {
            self.apis.mailerlite(&conn).await?.forget(id).await?;
            erasure.forgotten_in_mailerlite = true;
        }
        if forward.hubspot
            && let Some(id) = &hs_id
        {
            self.apis.hubspot(&conn).await?.gdpr_delete(id).await?;
            erasure.deleted_in_hubspot = true;
        }
        tracing::info!(
            connection = conn_id,
            reason,
            links = erasure.erased.links,
            forgotten_in_mailerlite = erasure.forgotten_in_mailerlite,
            "a person was erased; a tombstone keeps them out of later syncs"
        );
        Ok(erasure)
    }

    /// A HubSpot `contact.privacyDeletion`: the person is erased from the connection, and
    /// MailerLite asked to forget them when the connection says so.
    pub(crate) async fn privacy_deletion(&self, conn_id: &str, hubspot_id: &str) -> Result<(), EngineError> {
        let conn = self.connection(conn_id).await?;
        let forward = Forward { mailerlite: conn.config.privacy.forget_in_mailerlite, hubspot: false };
        self.erase(conn_id, &Who::HubSpot(hubspot_id.to_string()), HUBSPOT_PRIVACY_DELETION, forward).await?;
        Ok(())
    }

    /// Everything hmsync holds about the person with this email in this connection.
    pub async fn export(&self, conn_id: &str, email: &str) -> Result<Export, EngineError> {
        self.connection(conn_id).await?;
        let (link, emails) = self.find_person(conn_id, &Who::Email(email.to_string())).await?;
        let email = emails.into_iter().next().unwrap_or_default();
        let mut error_keys: Vec<String> = Vec::new();
        if let Some(l) = &link {
            error_keys.push(l.id.clone());
            error_keys.extend(l.hubspot_id.iter().map(|id| format!("hubspot:{id}")));
            error_keys.extend(l.mailerlite_id.iter().map(|id| format!("mailerlite:{id}")));
        }
        let mut errors = Vec::new();
        for k in &error_keys {
            errors.extend(self.store.get_error(conn_id, k).await?);
        }
        let history = match &link {
            Some(l) => self.store.read_history(conn_id, &l.id, usize::MAX).await?,
            None => Vec::new(),
        };
        let erased = match self.privacy_key(conn_id, false).await? {
            Some(key) => !self.store.tombstoned(conn_id, &[digest(&key, "email", &email)]).await?.is_empty(),
            None => false,
        };
        Ok(Export { connection_id: conn_id.to_string(), email, link, errors, history, erased })
    }

    /// Lifts the tombstone holding this email: the person syncs again as a new contact.
    pub async fn lift_erasure(&self, conn_id: &str, email: &str) -> Result<bool, EngineError> {
        self.connection(conn_id).await?;
        let email = normalize_email(email).unwrap_or_else(|| email.trim().to_lowercase());
        let Some(key) = self.privacy_key(conn_id, false).await? else { return Ok(false) };
        Ok(self.store.lift_tombstone(conn_id, &digest(&key, "email", &email)).await?.is_some())
    }

    /// Drops the units of erased people (a tombstone holds their email or a record id): they
    /// are not planned, written or linked. Returns how many were dropped.
    pub(crate) async fn drop_erased(&self, conn_id: &str, units: &mut Vec<Unit>) -> Result<usize, EngineError> {
        if units.is_empty() || !self.store.has_tombstones(conn_id).await? {
            return Ok(0);
        }
        let Some(key) = self.privacy_key(conn_id, false).await? else { return Ok(0) };
        let per_unit: Vec<Vec<String>> = units
            .iter()
            .map(|u| {
                let emails: Vec<String> = u.email().into_iter().collect();
                digests_of(&key, &emails, u.hs_id.as_deref(), u.ml_id.as_deref())
            })
            .collect();
        let all: Vec<String> = per_unit.iter().flatten().cloned().collect();
        let held: std::collections::HashSet<String> = self.store.tombstoned(conn_id, &all).await?.into_iter().collect();
        if held.is_empty() {
            return Ok(0);
        }
        let mut keep = per_unit.iter().map(|d| !d.iter().any(|x| held.contains(x)));
        let before = units.len();
        units.retain(|_| keep.next().unwrap_or(true));
        Ok(before - units.len())
    }
}
