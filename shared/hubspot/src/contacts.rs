//! Contacts: single reads and writes, paging as a stream, batches, merge, GDPR delete.

use futures::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::batch::{BatchItem, BatchKind};
use crate::client::{Call, HubSpotClient};
use crate::error::HubSpotError;
use crate::model::{BatchOutcome, Contact, ContactInput, ContactUpdate, ContactUpsert, CrmObject};

/// The date-versioned contacts path (same shapes as `/crm/v3/objects/contacts`).
pub const CONTACTS: &str = "/crm/objects/2026-03/contacts";

/// Options of [`HubSpotClient::list_contacts`].
#[derive(Debug, Clone, PartialEq)]
pub struct ListOptions {
    pub properties: Vec<String>,
    /// At most 100.
    pub page_size: usize,
    pub archived: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self { properties: Vec::new(), page_size: 100, archived: false }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub results: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextPage {
    pub after: String,
}

impl<T> Page<T> {
    pub fn next_after(&self) -> Option<String> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.clone())
    }
}

fn props_json(p: &std::collections::BTreeMap<String, String>) -> Value {
    json!(p)
}

impl HubSpotClient {
    /// One contact by record id (merged-away ids resolve to the survivor).
    pub async fn get_contact(&self, id: &str, properties: &[&str]) -> Result<Contact, HubSpotError> {
        let path = format!("{CONTACTS}/{id}");
        let mut call = Call::get(&path);
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        self.send(call).await
    }

    /// One contact with its company associations (`CrmObject::company_ids`).
    pub async fn get_contact_with_companies(&self, id: &str, properties: &[&str]) -> Result<Contact, HubSpotError> {
        let path = format!("{CONTACTS}/{id}");
        let mut call = Call::get(&path).query("associations", "companies");
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        self.send(call).await
    }

    /// A contact by email, or `None`.
    pub async fn find_contact_by_email(
        &self,
        email: &str,
        properties: &[&str],
    ) -> Result<Option<Contact>, HubSpotError> {
        let path =
            format!("{CONTACTS}/{}", percent_encoding::utf8_percent_encode(email, percent_encoding::NON_ALPHANUMERIC));
        let mut call = Call::get(&path).query("idProperty", "email");
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        match self.send(call).await {
            Ok(c) => Ok(Some(c)),
            Err(HubSpotError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every contact, page by page (`after` cursors), as a stream. Each page is retried on its own;
    /// an error ends the stream after being yielded.
    pub fn list_contacts(
        &self,
        options: ListOptions,
    ) -> impl Stream<Item = Result<Contact, HubSpotError>> + Send + 'static {
        self.list_objects(CONTACTS.to_string(), options)
    }

    pub(crate) fn list_objects(
        &self,
        path: String,
        options: ListOptions,
    ) -> impl Stream<Item = Result<CrmObject, HubSpotError>> + Send + 'static {
        let client = self.clone();
        let state: (Option<Option<String>>, std::vec::IntoIter<CrmObject>) = (Some(None), Vec::new().into_iter());
        futures::stream::unfold(state, move |(mut cursor, mut buffer)| {
            let client = client.clone();
            let path = path.clone();
            let options = options.clone();
            async move {
                loop {
                    if let Some(item) = buffer.next() {
                        return Some((Ok(item), (cursor, buffer)));
                    }
                    let after = cursor.take()?;
                    let mut call = Call::get(&path).query("limit", options.page_size.clamp(1, 100).to_string());
                    if let Some(a) = &after {
                        call = call.query("after", a.clone());
                    }
                    if !options.properties.is_empty() {
                        call = call.query("properties", options.properties.join(","));
                    }
                    if options.archived {
                        call = call.query("archived", "true");
                    }
                    match client.send::<Page<CrmObject>>(call).await {
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

    pub async fn create_contact(&self, input: &ContactInput) -> Result<Contact, HubSpotError> {
        let assoc: Vec<Value> = input.associations.iter().map(|a| a.to_json()).collect();
        let body = json!({"properties": props_json(&input.properties), "associations": assoc});
        self.send(Call::post(CONTACTS, &body)).await
    }

    /// Updates a contact by id (merged-away ids work here). `""` clears a property.
    pub async fn update_contact(
        &self,
        id: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Result<Contact, HubSpotError> {
        let path = format!("{CONTACTS}/{id}");
        let body = json!({"properties": props_json(properties)});
        self.send(Call::post(&path, &body).with_method(Method::PATCH)).await
    }

    /// Archives a contact (recycle bin).
    pub async fn archive_contact(&self, id: &str) -> Result<(), HubSpotError> {
        let path = format!("{CONTACTS}/{id}");
        self.send_value(Call::get(&path).with_method(Method::DELETE)).await.map(|_| ())
    }

    async fn batch_read(
        &self,
        path: &str,
        keys: &[String],
        id_property: Option<&str>,
        properties: &[&str],
    ) -> BatchOutcome<CrmObject> {
        let items = keys
            .iter()
            .enumerate()
            .map(|(index, k)| BatchItem { index, key: Some(k.clone()), json: json!({"id": k}) })
            .collect();
        let props: Vec<String> = properties.iter().map(|p| p.to_string()).collect();
        let id_property = id_property.map(String::from);
        self.run_batch(path, items, BatchKind::Once, &move |inputs| {
            let mut b = json!({"inputs": inputs, "properties": props});
            if let Some(p) = &id_property {
                b["idProperty"] = json!(p);
            }
            b
        })
        .await
    }

    /// Reads contacts by record id, 100 per request; unknown ids come back as per-input errors.
    pub async fn batch_read_contacts(&self, ids: &[String], properties: &[&str]) -> BatchOutcome<Contact> {
        self.batch_read(&format!("{CONTACTS}/batch/read"), ids, None, properties).await
    }

    /// Reads contacts by email, 100 per request.
    pub async fn batch_read_contacts_by_email(&self, emails: &[String], properties: &[&str]) -> BatchOutcome<Contact> {
        self.batch_read(&format!("{CONTACTS}/batch/read"), emails, Some("email"), properties).await
    }

    /// Creates contacts, 100 per request, each input traced so one bad input fails only itself.
    pub async fn batch_create_contacts(&self, inputs: &[ContactInput]) -> BatchOutcome<Contact> {
        let items = inputs
            .iter()
            .enumerate()
            .map(|(index, i)| {
                let assoc: Vec<Value> = i.associations.iter().map(|a| a.to_json()).collect();
                BatchItem {
                    index,
                    key: i.properties.get("email").cloned(),
                    json: json!({"properties": props_json(&i.properties), "associations": assoc}),
                }
            })
            .collect();
        self.run_batch(
            &format!("{CONTACTS}/batch/create"),
            items,
            BatchKind::TracedCreate,
            &|inputs| json!({"inputs": inputs}),
        )
        .await
    }

    /// Updates contacts by record id (batch update does not accept emails nor merged-away ids).
    pub async fn batch_update_contacts(&self, updates: &[ContactUpdate]) -> BatchOutcome<Contact> {
        let items = updates
            .iter()
            .enumerate()
            .map(|(index, u)| BatchItem {
                index,
                key: Some(u.id.clone()),
                json: json!({"id": u.id, "properties": props_json(&u.properties)}),
            })
            .collect();
        self.run_batch(
            &format!("{CONTACTS}/batch/update"),
            items,
            BatchKind::WholeRequest,
            &|inputs| json!({"inputs": inputs}),
        )
        .await
    }

    /// Creates or updates contacts keyed by email; results carry `new`.
    pub async fn batch_upsert_contacts(&self, upserts: &[ContactUpsert]) -> BatchOutcome<Contact> {
        let items = upserts
            .iter()
            .enumerate()
            .map(|(index, u)| BatchItem {
                index,
                key: Some(u.email.clone()),
                json: json!({"id": u.email, "idProperty": "email", "properties": props_json(&u.properties)}),
            })
            .collect();
        self.run_batch(
            &format!("{CONTACTS}/batch/upsert"),
            items,
            BatchKind::WholeRequest,
            &|inputs| json!({"inputs": inputs}),
        )
        .await
    }

    /// Archives contacts, 100 per request.
    pub async fn batch_archive_contacts(&self, ids: &[String]) -> Result<(), HubSpotError> {
        let path = format!("{CONTACTS}/batch/archive");
        for chunk in ids.chunks(crate::batch::BATCH_SIZE) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            self.send_value(Call::post(&path, &json!({"inputs": inputs}))).await?;
        }
        Ok(())
    }

    /// Merges `secondary` into `primary`; returns the surviving record (re-key links to its id).
    pub async fn merge_contacts(&self, primary: &str, secondary: &str) -> Result<Contact, HubSpotError> {
        let body = json!({"primaryObjectId": primary, "objectIdToMerge": secondary});
        self.send(Call::post(&format!("{CONTACTS}/merge"), &body)).await
    }

    /// Permanently deletes a contact (GDPR) by id.
    pub async fn gdpr_delete_contact(&self, id: &str) -> Result<(), HubSpotError> {
        let body = json!({"objectId": id});
        self.send_value(Call::post(&format!("{CONTACTS}/gdpr-delete"), &body)).await.map(|_| ())
    }
}
