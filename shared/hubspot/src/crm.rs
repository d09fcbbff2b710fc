//! Companies and associations, properties, lists, notes, communication preferences and account info.

use std::collections::HashMap;

use futures::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::batch::{BatchItem, BatchKind};
use crate::client::{Call, HubSpotClient};
use crate::contacts::Page;
use crate::error::HubSpotError;
use crate::model::{
    AccountDetails, BatchOutcome, Company, HubSpotList, ListMembership, MembershipChange, Note, NoteInput, Property,
    PropertyCreate, PropertyGroup, RecordListMembership, SubscriptionDefinition, SubscriptionStatus,
    UnsubscribeAllStatus,
};

pub const COMPANIES: &str = "/crm/objects/2026-03/companies";
pub const NOTES: &str = "/crm/objects/2026-03/notes";
pub const PROPERTIES: &str = "/crm/properties/2026-03";
pub const LISTS: &str = "/crm/lists/2026-03";
pub const ASSOCIATIONS: &str = "/crm/associations/2026-03";
pub const PREFERENCES: &str = "/communication-preferences/2026-03";
pub const ACCOUNT: &str = "/account-info/2026-03/details";

/// Associations batch reads take up to 1,000 inputs.
const ASSOCIATION_BATCH: usize = 1000;
/// List memberships pages hold up to 250 records.
const MEMBERSHIP_PAGE: usize = 250;

#[derive(Debug, Deserialize)]
struct Results<T> {
    results: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct ListEnvelope {
    list: HubSpotList,
}

#[derive(Debug, Deserialize)]
struct ListsEnvelope {
    lists: Vec<HubSpotList>,
    #[serde(default)]
    offset: u64,
    #[serde(default, rename = "hasMore")]
    has_more: bool,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl HubSpotClient {
    // ---- companies ---------------------------------------------------------------------

    /// Reads companies by id, 100 per request.
    pub async fn batch_read_companies(&self, ids: &[String], properties: &[&str]) -> BatchOutcome<Company> {
        let items = ids
            .iter()
            .enumerate()
            .map(|(index, id)| BatchItem { index, key: Some(id.clone()), json: json!({"id": id}) })
            .collect();
        let props: Vec<String> = properties.iter().map(|p| p.to_string()).collect();
        self.run_batch(
            &format!("{COMPANIES}/batch/read"),
            items,
            BatchKind::Once,
            &move |inputs| json!({"inputs": inputs, "properties": props}),
        )
        .await
    }

    /// The primary company of each contact (association type 1), from the v4 batch read
    /// (1,000 contacts per request). Contacts without a company are absent from the map.
    pub async fn primary_companies(&self, contact_ids: &[String]) -> Result<HashMap<String, String>, HubSpotError> {
        let path = format!("{ASSOCIATIONS}/contacts/companies/batch/read");
        let mut out = HashMap::new();
        for chunk in contact_ids.chunks(ASSOCIATION_BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            let v = self.send_value(Call::post(&path, &json!({"inputs": inputs}))).await?;
            for r in v.get("results").and_then(Value::as_array).into_iter().flatten() {
                let Some(from) = r.pointer("/from/id").and_then(id_string) else { continue };
                let to = r.get("to").and_then(Value::as_array).cloned().unwrap_or_default();
                let primary = to
                    .iter()
                    .find(|t| {
                        t.get("associationTypes")
                            .and_then(Value::as_array)
                            .is_some_and(|ts| ts.iter().any(|x| x.get("typeId").and_then(Value::as_u64) == Some(1)))
                    })
                    .or_else(|| to.first());
                if let Some(company) = primary.and_then(|p| p.get("toObjectId")).and_then(id_string) {
                    out.insert(from, company);
                }
            }
        }
        Ok(out)
    }

    // ---- properties --------------------------------------------------------------------

    /// Every property of `object_type` (`contacts` or `companies`).
    pub async fn list_properties(&self, object_type: &str) -> Result<Vec<Property>, HubSpotError> {
        let path = format!("{PROPERTIES}/{object_type}");
        Ok(self.send::<Results<Property>>(Call::get(&path)).await?.results)
    }

    pub async fn get_property(&self, object_type: &str, name: &str) -> Result<Option<Property>, HubSpotError> {
        let path = format!("{PROPERTIES}/{object_type}/{}", enc(name));
        match self.send(Call::get(&path)).await {
            Ok(p) => Ok(Some(p)),
            Err(HubSpotError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_property(&self, object_type: &str, p: &PropertyCreate) -> Result<Property, HubSpotError> {
        let body = serde_json::to_value(p).map_err(|e| HubSpotError::Decode(e.to_string()))?;
        self.send(Call::post(&format!("{PROPERTIES}/{object_type}"), &body)).await
    }

    /// Creates the property unless it exists; returns the definition HubSpot holds. A property
    /// that exists with another type is an error naming both types.
    pub async fn ensure_property(&self, object_type: &str, p: &PropertyCreate) -> Result<Property, HubSpotError> {
        match self.get_property(object_type, &p.name).await? {
            Some(existing) => check_same_kind(existing, p),
            None => self.create_or_adopt(object_type, p).await,
        }
    }

    /// [`Self::ensure_property`] for several properties with one read of the schema: a setup
    /// that finds them all in place costs one request, not one per property.
    pub async fn ensure_properties(
        &self,
        object_type: &str,
        wanted: &[PropertyCreate],
    ) -> Result<Vec<Property>, HubSpotError> {
        let mut existing: std::collections::HashMap<String, Property> =
            self.list_properties(object_type).await?.into_iter().map(|p| (p.name.clone(), p)).collect();
        let mut out = Vec::with_capacity(wanted.len());
        for p in wanted {
            out.push(match existing.remove(&p.name) {
                Some(found) => check_same_kind(found, p)?,
                None => self.create_or_adopt(object_type, p).await?,
            });
        }
        Ok(out)
    }

    /// Creates a property the schema did not have; one created concurrently by someone else is
    /// read back and adopted when its type fits.
    async fn create_or_adopt(&self, object_type: &str, p: &PropertyCreate) -> Result<Property, HubSpotError> {
        match self.create_property(object_type, p).await {
            Ok(created) => Ok(created),
            Err(HubSpotError::Api { status: 409, .. }) | Err(HubSpotError::Conflict { .. }) => {
                let existing =
                    self.get_property(object_type, &p.name).await?.ok_or_else(|| HubSpotError::NotFound {
                        what: format!("property {}", p.name),
                        message: "created concurrently but not readable".into(),
                    })?;
                check_same_kind(existing, p)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn list_property_groups(&self, object_type: &str) -> Result<Vec<PropertyGroup>, HubSpotError> {
        let path = format!("{PROPERTIES}/{object_type}/groups");
        Ok(self.send::<Results<PropertyGroup>>(Call::get(&path)).await?.results)
    }

    /// Creates the property group unless it exists.
    pub async fn ensure_property_group(&self, object_type: &str, group: &PropertyGroup) -> Result<(), HubSpotError> {
        if self.list_property_groups(object_type).await?.iter().any(|g| g.name == group.name) {
            return Ok(());
        }
        let body = serde_json::to_value(group).map_err(|e| HubSpotError::Decode(e.to_string()))?;
        match self.send_value(Call::post(&format!("{PROPERTIES}/{object_type}/groups"), &body)).await {
            Ok(_) | Err(HubSpotError::Api { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ---- lists -------------------------------------------------------------------------

    /// Lists whose name contains `query` (all lists for ""), optionally of some processing types.
    pub async fn search_lists(&self, query: &str, processing_types: &[&str]) -> Result<Vec<HubSpotList>, HubSpotError> {
        let path = format!("{LISTS}/search");
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let mut body = json!({"query": query, "offset": offset, "count": 500});
            if !processing_types.is_empty() {
                body["processingTypes"] = json!(processing_types);
            }
            let page: ListsEnvelope = self.send(Call::post(&path, &body)).await?;
            let n = page.lists.len() as u64;
            out.extend(page.lists);
            if !page.has_more || n == 0 {
                return Ok(out);
            }
            offset = page.offset.max(offset + n);
        }
    }

    pub async fn get_list(&self, list_id: &str) -> Result<HubSpotList, HubSpotError> {
        let path = format!("{LISTS}/{list_id}");
        Ok(self.send::<ListEnvelope>(Call::get(&path).query("includeFilters", "true")).await?.list)
    }

    pub async fn get_list_by_name(&self, name: &str) -> Result<Option<HubSpotList>, HubSpotError> {
        let path = format!("{LISTS}/object-type-id/0-1/name/{}", enc(name));
        match self.send::<ListEnvelope>(Call::get(&path)).await {
            Ok(l) => Ok(Some(l.list)),
            Err(HubSpotError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a contact list. `filter_branch` is required for DYNAMIC and SNAPSHOT lists.
    pub async fn create_list(
        &self,
        name: &str,
        processing_type: &str,
        filter_branch: Option<Value>,
    ) -> Result<HubSpotList, HubSpotError> {
        let mut body = json!({"name": name, "objectTypeId": "0-1", "processingType": processing_type});
        if let Some(f) = filter_branch {
            body["filterBranch"] = f;
        }
        Ok(self.send::<ListEnvelope>(Call::post(LISTS, &body)).await?.list)
    }

    /// Every member of a list, ordered by record id, 250 per request.
    pub fn list_memberships(
        &self,
        list_id: &str,
    ) -> impl Stream<Item = Result<ListMembership, HubSpotError>> + Send + 'static {
        let client = self.clone();
        let path = format!("{LISTS}/{list_id}/memberships");
        let state: (Option<Option<String>>, std::vec::IntoIter<ListMembership>) = (Some(None), Vec::new().into_iter());
        futures::stream::unfold(state, move |(mut cursor, mut buffer)| {
            let client = client.clone();
            let path = path.clone();
            async move {
                loop {
                    if let Some(m) = buffer.next() {
                        return Some((Ok(m), (cursor, buffer)));
                    }
                    let after = cursor.take()?;
                    let mut call = Call::get(&path).query("limit", MEMBERSHIP_PAGE.to_string());
                    if let Some(a) = after {
                        call = call.query("after", a);
                    }
                    match client.send::<Page<ListMembership>>(call).await {
                        Ok(page) => {
                            cursor = page.next_after().map(Some);
                            buffer = page.results.into_iter();
                        }
                        Err(e) => return Some((Err(e), (None, Vec::new().into_iter()))),
                    }
                }
            }
        })
    }

    /// One page of a list's members (ordered by record id) and the cursor of the next page;
    /// resumable scans keep the cursor between messages.
    pub async fn list_memberships_page(
        &self,
        list_id: &str,
        after: Option<&str>,
    ) -> Result<(Vec<ListMembership>, Option<String>), HubSpotError> {
        let path = format!("{LISTS}/{list_id}/memberships");
        let mut call = Call::get(&path).query("limit", MEMBERSHIP_PAGE.to_string());
        if let Some(a) = after {
            call = call.query("after", a);
        }
        let page = self.send::<Page<ListMembership>>(call).await?;
        let next = page.next_after();
        Ok((page.results, next))
    }

    /// Adds records to a MANUAL or SNAPSHOT list.
    pub async fn add_to_list(&self, list_id: &str, record_ids: &[String]) -> Result<MembershipChange, HubSpotError> {
        let path = format!("{LISTS}/{list_id}/memberships/add");
        self.send(Call::post(&path, &json!(record_ids)).with_method(Method::PUT)).await
    }

    /// Removes records from a MANUAL or SNAPSHOT list.
    pub async fn remove_from_list(
        &self,
        list_id: &str,
        record_ids: &[String],
    ) -> Result<MembershipChange, HubSpotError> {
        let path = format!("{LISTS}/{list_id}/memberships/remove");
        self.send(Call::post(&path, &json!(record_ids)).with_method(Method::PUT)).await
    }

    /// The lists each contact belongs to, 100 contacts per request.
    pub async fn contact_list_memberships(
        &self,
        contact_ids: &[String],
    ) -> Result<HashMap<String, Vec<RecordListMembership>>, HubSpotError> {
        let path = format!("{LISTS}/records/memberships/batch/read");
        let mut out = HashMap::new();
        for chunk in contact_ids.chunks(crate::batch::BATCH_SIZE) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"objectTypeId": "0-1", "recordId": id})).collect();
            let v = self.send_value(Call::post(&path, &json!({"inputs": inputs}))).await?;
            for r in v.get("results").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = r.get("recordId").and_then(id_string) else { continue };
                let lists: Vec<RecordListMembership> =
                    serde_json::from_value(r.get("recordListMemberships").cloned().unwrap_or(json!([])))
                        .map_err(|e| HubSpotError::Decode(e.to_string()))?;
                out.insert(id, lists);
            }
        }
        Ok(out)
    }

    // ---- notes -------------------------------------------------------------------------

    /// Creates notes associated with their contacts (type 202), 100 per request.
    pub async fn create_notes(&self, notes: &[NoteInput]) -> BatchOutcome<Note> {
        let items = notes
            .iter()
            .enumerate()
            .map(|(index, n)| BatchItem {
                index,
                key: Some(n.contact_id.clone()),
                json: json!({
                    "properties": {"hs_timestamp": n.timestamp, "hs_note_body": n.body},
                    "associations": [crate::model::AssociationSpec::note_to_contact(n.contact_id.clone()).to_json()],
                }),
            })
            .collect();
        self.run_batch(&format!("{NOTES}/batch/create"), items, BatchKind::Once, &|inputs| json!({"inputs": inputs}))
            .await
    }

    // ---- communication preferences (v4) ------------------------------------------------

    pub async fn subscription_definitions(&self) -> Result<Vec<SubscriptionDefinition>, HubSpotError> {
        Ok(self
            .send::<Results<SubscriptionDefinition>>(Call::get(&format!("{PREFERENCES}/definitions")))
            .await?
            .results)
    }

    pub async fn subscription_statuses(&self, email: &str) -> Result<Vec<SubscriptionStatus>, HubSpotError> {
        let path = format!("{PREFERENCES}/statuses/{}", enc(email));
        Ok(self.send::<Results<SubscriptionStatus>>(Call::get(&path).query("channel", "EMAIL")).await?.results)
    }

    /// Sets one subscription's status (v4 can resubscribe; never do that for a person's own opt-out).
    pub async fn set_subscription_status(
        &self,
        email: &str,
        subscription_id: &str,
        status: &str,
        legal_basis: Option<&str>,
        legal_basis_explanation: Option<&str>,
    ) -> Result<Vec<SubscriptionStatus>, HubSpotError> {
        let path = format!("{PREFERENCES}/statuses/{}", enc(email));
        let mut body = json!({"subscriptionId": subscription_id, "statusState": status, "channel": "EMAIL"});
        if let Some(b) = legal_basis {
            body["legalBasis"] = json!(b);
        }
        if let Some(e) = legal_basis_explanation {
            body["legalBasisExplanation"] = json!(e);
        }
        Ok(self.send::<Results<SubscriptionStatus>>(Call::post(&path, &body)).await?.results)
    }

    /// Opts an email out of all email (sets `hs_email_optout`).
    pub async fn unsubscribe_all(&self, email: &str) -> Result<(), HubSpotError> {
        let path = format!("{PREFERENCES}/statuses/{}/unsubscribe-all", enc(email));
        self.send_value(Call::post(&path, &json!({})).query("channel", "EMAIL")).await.map(|_| ())
    }

    pub async fn unsubscribe_all_status(&self, email: &str) -> Result<Option<UnsubscribeAllStatus>, HubSpotError> {
        let path = format!("{PREFERENCES}/statuses/{}/unsubscribe-all", enc(email));
        let r: Results<UnsubscribeAllStatus> = self.send(Call::get(&path).query("channel", "EMAIL")).await?;
        Ok(r.results.into_iter().next())
    }

    // ---- account -----------------------------------------------------------------------

    /// The portal behind the credentials.
    pub async fn account_details(&self) -> Result<AccountDetails, HubSpotError> {
        self.send(Call::get(ACCOUNT)).await
    }
}

fn check_same_kind(existing: Property, wanted: &PropertyCreate) -> Result<Property, HubSpotError> {
    if existing.kind == wanted.kind {
        return Ok(existing);
    }
    Err(HubSpotError::Api {
        status: 409,
        category: "OBJECT_ALREADY_EXISTS".into(),
        message: format!(
            "property {} already exists with type {} (wanted {}); rename one of them in HubSpot",
            existing.name, existing.kind, wanted.kind
        ),
    })
}

fn id_string(v: &Value) -> Option<String> {
    v.as_str().map(String::from).or_else(|| v.as_u64().map(|n| n.to_string()))
}
