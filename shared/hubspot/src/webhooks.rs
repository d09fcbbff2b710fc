//! Incoming app webhooks: typed events (<https://developers.hubspot.com/docs/api/webhooks>) and signature verification
//! v1, v2 and v3 (<https://developers.hubspot.com/docs/api/webhooks/validating-requests>).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Requests older than this are rejected (v3).
pub const MAX_TIMESTAMP_AGE_MS: i64 = 300_000;

/// The event's `subscriptionType`; unknown types are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscriptionType {
    ContactCreation,
    ContactDeletion,
    ContactPropertyChange,
    ContactMerge,
    ContactRestore,
    ContactPrivacyDeletion,
    ContactAssociationChange,
    CompanyPropertyChange,
    Other(String),
}

impl SubscriptionType {
    pub fn as_str(&self) -> &str {
        match self {
            Self::ContactCreation => "contact.creation",
            Self::ContactDeletion => "contact.deletion",
            Self::ContactPropertyChange => "contact.propertyChange",
            Self::ContactMerge => "contact.merge",
            Self::ContactRestore => "contact.restore",
            Self::ContactPrivacyDeletion => "contact.privacyDeletion",
            Self::ContactAssociationChange => "contact.associationChange",
            Self::CompanyPropertyChange => "company.propertyChange",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for SubscriptionType {
    fn from(s: &str) -> Self {
        match s {
            "contact.creation" => Self::ContactCreation,
            "contact.deletion" => Self::ContactDeletion,
            "contact.propertyChange" => Self::ContactPropertyChange,
            "contact.merge" => Self::ContactMerge,
            "contact.restore" => Self::ContactRestore,
            "contact.privacyDeletion" => Self::ContactPrivacyDeletion,
            "contact.associationChange" => Self::ContactAssociationChange,
            "company.propertyChange" => Self::CompanyPropertyChange,
            other => Self::Other(other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for SubscriptionType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from(String::deserialize(d)?.as_str()))
    }
}

impl Serialize for SubscriptionType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let v = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(v.into_iter().filter_map(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok()))).collect())
}

/// One webhook event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    #[serde(default)]
    pub event_id: u64,
    #[serde(default)]
    pub subscription_id: u64,
    pub portal_id: u64,
    #[serde(default)]
    pub app_id: u64,
    pub occurred_at: i64,
    /// Real payloads say `subscriptionType`; the docs table says `eventType`.
    #[serde(alias = "eventType")]
    pub subscription_type: SubscriptionType,
    #[serde(default)]
    pub attempt_number: u32,
    #[serde(default, deserialize_with = "opt_id")]
    pub object_id: Option<u64>,
    /// `CRM_UI`, `INTEGRATION`, `IMPORT`, … (an open set).
    #[serde(default)]
    pub change_source: Option<String>,
    /// `userId:…`, or the writing app's id for `INTEGRATION`.
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub change_flag: Option<String>,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default)]
    pub property_value: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub primary_object_id: Option<u64>,
    #[serde(default, deserialize_with = "ids")]
    pub merged_object_ids: Vec<u64>,
    #[serde(default, deserialize_with = "opt_id")]
    pub new_object_id: Option<u64>,
    #[serde(default)]
    pub number_of_properties_moved: Option<u64>,
    #[serde(default)]
    pub object_type_id: Option<String>,
    /// Association changes: the record the subscribed object type is on (`contact.associationChange`:
    /// the contact), the other record, and the association (`CONTACT_TO_COMPANY`, …).
    #[serde(default, deserialize_with = "opt_id")]
    pub from_object_id: Option<u64>,
    #[serde(default, deserialize_with = "opt_id")]
    pub to_object_id: Option<u64>,
    #[serde(default)]
    pub association_type: Option<String>,
}

impl WebhookEvent {
    /// The surviving record of a merge: `newObjectId` when HubSpot made a new record, else the primary.
    pub fn merge_survivor(&self) -> Option<u64> {
        self.new_object_id.or(self.primary_object_id)
    }

    /// The contacts a `contact.associationChange` concerns: `fromObjectId` (the contact the
    /// event is for), and `toObjectId` too when the association is between two contacts.
    /// Events without those fields fall back to `objectId`.
    pub fn association_contacts(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.from_object_id.or(self.object_id).into_iter().collect();
        if self.association_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("CONTACT_TO_CONTACT"))
            && let Some(to) = self.to_object_id
            && !out.contains(&to)
        {
            out.push(to);
        }
        out
    }

    /// Whether our own app made this change (echo of our write).
    pub fn is_from_app(&self, app_id: u64) -> bool {
        self.change_source.as_deref() == Some("INTEGRATION") && self.source_id.as_deref() == Some(&app_id.to_string())
    }
}

/// Parses the JSON array HubSpot posts. Generic `object.*` events (the developer platform's
/// `crmObjects` subscriptions) of contacts (`0-1`) and companies (`0-2`) become
/// their `contact.*` / `company.*` equivalents, so an app may subscribe either way.
pub fn parse_events(raw_body: &[u8]) -> Result<Vec<WebhookEvent>, serde_json::Error> {
    let mut events: Vec<WebhookEvent> = serde_json::from_slice(raw_body)?;
    for e in &mut events {
        if let SubscriptionType::Other(kind) = &e.subscription_type
            && let Some(action) = kind.strip_prefix("object.")
        {
            let object = match e.object_type_id.as_deref() {
                Some("0-1") => "contact",
                Some("0-2") => "company",
                _ => continue,
            };
            e.subscription_type = SubscriptionType::from(format!("{object}.{action}").as_str());
        }
    }
    Ok(events)
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or empty")]
    Missing,
    #[error("the request timestamp is missing or not a number")]
    BadTimestamp,
    #[error("the request timestamp is more than 5 minutes old (or in the future); possible replay")]
    Expired,
    #[error("the signature does not match the body; check the app's client secret")]
    Mismatch,
}

/// The escapes HubSpot decodes before signing the URI (step 2 of the v3 check).
pub fn decode_signed_uri(uri: &str) -> String {
    const ESCAPES: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_string();
    for (from, to) in ESCAPES {
        out = out.replace(from, to).replace(&from.to_ascii_lowercase(), to);
    }
    out
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// v3 signature value: `base64(HMAC-SHA256(secret, method + uri + body + timestamp))`.
pub fn sign_v3(client_secret: &str, method: &str, uri: &str, raw_body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(decode_signed_uri(uri).as_bytes());
    mac.update(raw_body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies `X-HubSpot-Signature-v3` for a request to `uri` (the full URL HubSpot called).
pub fn verify_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    raw_body: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let (signature, timestamp) = check_v3_headers(timestamp_header, signature_header, now_ms)?;
    let expected = sign_v3(client_secret, method, uri, raw_body, timestamp);
    if equal(expected.as_bytes(), signature.as_bytes()) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// What can be checked of a v3 request without the client secret: a signature is there (not
/// empty) and the timestamp is a number within 5 minutes of `now_ms`. Returns both, trimmed.
pub fn check_v3_headers<'a>(
    timestamp_header: Option<&'a str>,
    signature_header: Option<&'a str>,
    now_ms: i64,
) -> Result<(&'a str, &'a str), SignatureError> {
    let signature = signature_header.map(str::trim).filter(|s| !s.is_empty()).ok_or(SignatureError::Missing)?;
    let timestamp = timestamp_header.map(str::trim).ok_or(SignatureError::BadTimestamp)?;
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if now_ms.saturating_sub(ts) > MAX_TIMESTAMP_AGE_MS || ts.saturating_sub(now_ms) > MAX_TIMESTAMP_AGE_MS {
        return Err(SignatureError::Expired);
    }
    Ok((signature, timestamp))
}

/// v1 (`X-HubSpot-Signature`, version `v1`): `hex(sha256(secret + body))`.
pub fn verify_v1(client_secret: &str, raw_body: &[u8], signature_header: Option<&str>) -> Result<(), SignatureError> {
    let signature = signature_header.ok_or(SignatureError::Missing)?;
    let expected = sha256_hex(&[client_secret.as_bytes(), raw_body]);
    if equal(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// v2 (workflow webhooks, CRM cards): `hex(sha256(secret + method + uri + body))`.
pub fn verify_v2(
    client_secret: &str,
    method: &str,
    uri: &str,
    raw_body: &[u8],
    signature_header: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature_header.ok_or(SignatureError::Missing)?;
    let expected = sha256_hex(&[client_secret.as_bytes(), method.as_bytes(), uri.as_bytes(), raw_body]);
    if equal(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const V1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    #[test]
    fn v1_documented_vector() {
        let sig = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
        assert_eq!(verify_v1(SECRET, V1_BODY.as_bytes(), Some(sig)), Ok(()));
        assert_eq!(verify_v1(SECRET, b"[]", Some(sig)), Err(SignatureError::Mismatch));
        assert_eq!(verify_v1(SECRET, V1_BODY.as_bytes(), None), Err(SignatureError::Missing));
    }

    #[test]
    fn v2_documented_vectors() {
        let uri = "https://www.example.com/webhook_uri";
        let get = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";
        let post = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900";
        assert_eq!(verify_v2(SECRET, "GET", uri, b"", Some(get)), Ok(()));
        assert_eq!(verify_v2(SECRET, "POST", uri, br#"{"example_field":"example_value"}"#, Some(post)), Ok(()));
        assert_eq!(verify_v2(SECRET, "POST", uri, b"", Some(post)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn v3_documented_vectors_and_window() {
        let now = 1_700_000_000_000 + 1000;
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                br#"{"example_field":"example_value"}"#,
                Some("1700000000000"),
                Some("rQEKkaNUiu+1qGF//O/pw4BCzstSqO1PyUnGICmf+7o="),
                now
            ),
            Ok(())
        );
        let second = "TG5LEza+56rSdOP+q+2jN7hh5c2Jo3oxNA/X3MYsmIg=";
        let uri = "https://hooks.example.com/hubspot?portal=62515";
        assert_eq!(
            verify_v3(SECRET, "POST", uri, V1_BODY.as_bytes(), Some("1700000000000"), Some(second), now),
            Ok(())
        );
        // The URI as a proxy may present it, with escaped characters, verifies the same.
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                "https%3A%2F%2Fhooks.example.com%2Fhubspot%3Fportal=62515",
                V1_BODY.as_bytes(),
                Some("1700000000000"),
                Some(second),
                now
            ),
            Ok(())
        );
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                uri,
                V1_BODY.as_bytes(),
                Some("1700000000000"),
                Some(second),
                1_700_000_000_000 + 300_001
            ),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify_v3(SECRET, "POST", uri, b"[]", Some("1700000000000"), Some(second), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3(SECRET, "POST", uri, b"[]", Some("soon"), Some(second), now),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn v3_headers_are_checked_without_the_secret() {
        let now = 1_700_000_000_000;
        let fresh = Some("1700000000000");
        assert_eq!(check_v3_headers(fresh, Some(" sig= "), now), Ok(("sig=", "1700000000000")));
        for empty in [None, Some(""), Some("  ")] {
            assert_eq!(check_v3_headers(fresh, empty, now), Err(SignatureError::Missing), "{empty:?}");
        }
        for bad in [None, Some(""), Some("soon")] {
            assert_eq!(check_v3_headers(bad, Some("sig"), now), Err(SignatureError::BadTimestamp), "{bad:?}");
        }
        for far in ["1699999699999", "1700000300001", "-9223372036854775808", "9223372036854775807"] {
            assert_eq!(check_v3_headers(Some(far), Some("sig"), now), Err(SignatureError::Expired), "{far}");
        }
    }

    #[test]
    fn parses_the_recorded_events() {
        let body = r#"[{"eventId":3029365631,"subscriptionId":686627,"portalId":891472211,"appId":7906213,"occurredAt":1715203101896,
  "subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":847297356,"propertyName":"firstname",
  "propertyValue":"Briane","changeSource":"CRM_UI","sourceId":"userId:882761034"},
 {"eventId":3944863254,"subscriptionId":3327050,"portalId":49532047,"appId":9318066,"occurredAt":1742175136625,
  "subscriptionType":"contact.creation","attemptNumber":7,"objectId":106500991877,"changeFlag":"CREATED",
  "changeSource":"INTEGRATION","sourceId":"9318066"},
 {"eventId":5,"subscriptionId":1,"portalId":1,"appId":1,"occurredAt":1,"subscriptionType":"contact.merge","objectId":10,
  "primaryObjectId":10,"mergedObjectIds":[11,12],"newObjectId":13,"numberOfPropertiesMoved":4,"changeSource":"CRM_UI"},
 {"eventId":6,"portalId":1,"occurredAt":1,"subscriptionType":"object.creation","objectTypeId":"0-1","objectId":"14"}]"#;
        let events = parse_events(body.as_bytes()).unwrap();
        assert_eq!(events[0].subscription_type, SubscriptionType::ContactPropertyChange);
        assert_eq!(events[0].property_value.as_deref(), Some("Briane"));
        assert!(events[1].is_from_app(9318066));
        assert!(!events[0].is_from_app(9318066));
        assert_eq!(events[1].attempt_number, 7);
        assert_eq!(events[2].merged_object_ids, vec![11, 12]);
        assert_eq!(events[2].merge_survivor(), Some(13));
        assert_eq!(events[3].subscription_type, SubscriptionType::ContactCreation);
        assert_eq!(events[3].object_id, Some(14));
    }

    #[test]
    fn association_changes_name_their_contacts_by_from_and_to_object_ids() {
        let body = r#"[{"portalId":1,"occurredAt":1,"subscriptionType":"contact.associationChange","associationType":"CONTACT_TO_COMPANY","fromObjectId":21,"toObjectId":5001,"associationRemoved":false,"isPrimaryAssociation":true},
 {"portalId":1,"occurredAt":1,"subscriptionType":"contact.associationChange","associationType":"CONTACT_TO_CONTACT","fromObjectId":21,"toObjectId":22}]"#;
        let events = parse_events(body.as_bytes()).unwrap();
        assert_eq!(events[0].subscription_type, SubscriptionType::ContactAssociationChange);
        assert_eq!(events[0].association_contacts(), vec![21]);
        assert_eq!(events[1].association_contacts(), vec![21, 22]);
    }

    #[test]
    fn generic_object_events_of_contacts_and_companies_read_as_their_legacy_types() {
        let body = r#"[{"portalId":1,"occurredAt":1,"subscriptionType":"object.propertyChange","objectTypeId":"0-1","objectId":1,"propertyName":"lastname","propertyValue":"Ng"},
 {"portalId":1,"occurredAt":1,"subscriptionType":"object.merge","objectTypeId":"0-1","objectId":2,"primaryObjectId":2,"mergedObjectIds":[3]},
 {"portalId":1,"occurredAt":1,"subscriptionType":"object.propertyChange","objectTypeId":"0-2","objectId":4,"propertyName":"industry"},
 {"portalId":1,"occurredAt":1,"subscriptionType":"object.creation","objectTypeId":"0-3","objectId":5}]"#;
        let kinds: Vec<_> = parse_events(body.as_bytes()).unwrap().into_iter().map(|e| e.subscription_type).collect();
        assert_eq!(
            kinds,
            [
                SubscriptionType::ContactPropertyChange,
                SubscriptionType::ContactMerge,
                SubscriptionType::CompanyPropertyChange,
                SubscriptionType::Other("object.creation".into()),
            ]
        );
    }
}
