//! The admin token (every config API route) and the signed `state` of the HubSpot OAuth flow.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Api;
use crate::error::HttpError;

/// Checks `Authorization: Bearer <admin token>`.
#[derive(Clone)]
pub struct AdminToken {
    /// SHA-256 of the token: comparing digests in constant time reveals neither the token's
    /// bytes nor its length. `None` when no token is configured: nothing matches then.
    digest: Option<[u8; 32]>,
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        if token.trim().is_empty() {
            tracing::warn!("no admin token is configured: every config API route refuses every request");
            return Self { digest: None };
        }
        Self { digest: Some(Sha256::digest(token.as_bytes()).into()) }
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let Some(digest) = &self.digest else { return false };
        let candidate: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&candidate).into()
    }
}

/// The bearer credential of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware of every protected route: 401 unless the admin token is presented.
pub async fn require_admin(State(api): State<Api>, req: Request, next: Next) -> Response {
    match bearer(req.headers()) {
        Some(token) if api.admin.matches(token) => next.run(req).await,
        Some(_) => HttpError::unauthorized("the admin token is wrong").into_response(),
        None => HttpError::unauthorized("this route needs the admin token (`Authorization: Bearer <token>`)")
            .into_response(),
    }
}

/// What the OAuth `state` carries through HubSpot's authorize page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// The connection being installed.
    #[serde(rename = "c")]
    pub connection_id: String,
    /// Epoch ms after which the state is refused.
    #[serde(rename = "e")]
    pub expires_at_ms: i64,
    /// Makes each state single-use (remembered once consumed).
    #[serde(rename = "n")]
    pub nonce: String,
}

/// Why a `state` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state is not one hmsync issued")]
    Malformed,
    #[error("the state's signature does not match")]
    BadSignature,
    #[error("the state expired")]
    Expired,
}

/// Signs and checks OAuth states: `base64url(json) "." base64url(HMAC-SHA256(key, base64url(json)))`,
/// with a key derived from the admin token (so rotating the token also invalidates states).
#[derive(Clone)]
pub struct StateSigner {
    key: [u8; 32],
}

impl StateSigner {
    pub fn new(admin_token: &str) -> Self {
        if admin_token.trim().is_empty() {
            // A key derived from an empty token would be public: states could be forged for the
            // public callback. Without a token, a random key makes every state unverifiable.
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            return Self { key };
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(admin_token.as_bytes()).expect("HMAC takes any key length");
        mac.update(b"hmsync/oauth-state/v1");
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    pub fn sign(&self, state: &OAuthState) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(state).expect("state serializes"));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    pub fn verify(&self, signed: &str, now_ms: i64) -> Result<OAuthState, StateError> {
        let (payload, signature) = signed.split_once('.').ok_or(StateError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| StateError::Malformed)?;
        self.mac(payload).verify_slice(&signature).map_err(|_| StateError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| StateError::Malformed)?;
        let state: OAuthState = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
        if now_ms > state.expires_at_ms {
            return Err(StateError::Expired);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(expires_at_ms: i64) -> OAuthState {
        OAuthState { connection_id: "c1".into(), expires_at_ms, nonce: "n1".into() }
    }

    #[test]
    fn admin_token_matches_only_itself() {
        let t = AdminToken::new("s3cret-admin");
        assert!(t.matches("s3cret-admin"));
        assert!(!t.matches("s3cret-admiN"));
        assert!(!t.matches(""));
        assert!(!t.matches("s3cret-admin "));
        let unset = AdminToken::new("");
        assert!(!unset.matches("") && !unset.matches(" "), "an empty admin token opens nothing");
    }

    #[test]
    fn bearer_is_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn states_round_trip_and_refuse_tampering_expiry_and_other_keys() {
        let signer = StateSigner::new("admin");
        let signed = signer.sign(&state(1_000));
        assert_eq!(signer.verify(&signed, 999), Ok(state(1_000)));
        assert_eq!(signer.verify(&signed, 1_001), Err(StateError::Expired));
        assert_eq!(StateSigner::new("other").verify(&signed, 0), Err(StateError::BadSignature));
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&state(i64::MAX)).unwrap()),
            signed.split_once('.').unwrap().1
        );
        assert_eq!(signer.verify(&forged, 0), Err(StateError::BadSignature));
        assert_eq!(signer.verify("garbage", 0), Err(StateError::Malformed));
    }

    #[test]
    fn without_an_admin_token_no_state_can_be_forged() {
        let public = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
            mac.update(b"hmsync/oauth-state/v1");
            StateSigner { key: mac.finalize().into_bytes().into() }
        };
        let forged = public.sign(&state(i64::MAX));
        assert_eq!(StateSigner::new("").verify(&forged, 0), Err(StateError::BadSignature));
    }
}
