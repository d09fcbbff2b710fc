//! [`HubSpotApi`] over the `hmsync-hubspot` client: batch reads and writes (100 per request),
//! search for scans (its own 5/s bucket, 200 per page, keyset paging so no query nears the
//! 10,000-result cap).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use hmsync_core::{HsOption, HsProperty, HsType, Side};
use hmsync_hubspot as hs;

use crate::api::{
    ApiError, ApiResult, HsNote, HsPage, HsRecord, HsWrite, HubSpotAccount, HubSpotApi, HubSpotListInfo, ItemError,
    ItemErrorKind,
};

/// Search pages are at most this long (HubSpot's maximum).
const SEARCH_PAGE: usize = 200;

/// What a scan's search asks for when the mapped properties would make its body longer than
/// HubSpot accepts (3,000 characters, about 100 mappings): the rest is read in batches.
const SEARCH_MINIMUM: [&str; 4] = ["hs_object_id", "email", "lastmodifieddate", "hs_merged_object_ids"];

/// Whether a scan's search for `properties` fits HubSpot's body limit, in the longest shape the
/// scans send (two bounds on the modification time, an id bound, sort and paging).
fn search_fits(properties: &[&str]) -> bool {
    hs::SearchRequest::new()
        .group([
            hs::Filter::gte("lastmodifieddate", "1767225600000"),
            hs::Filter::lte("lastmodifieddate", "1767312000000"),
            hs::Filter::gt("hs_object_id", "99999999999999"),
        ])
        .sort_ascending("lastmodifieddate")
        .properties(properties)
        .limit(SEARCH_PAGE)
        .after("10000")
        .fits()
}

/// The engine's view of one HubSpot portal.
#[derive(Clone)]
pub struct HubSpotAdapter {
    client: hs::HubSpotClient,
}

impl HubSpotAdapter {
    pub fn new(client: hs::HubSpotClient) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &hs::HubSpotClient {
        &self.client
    }

    /// Requests this client sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.client.pacer().requests_sent()
    }
}

fn record(o: hs::CrmObject) -> HsRecord {
    HsRecord { id: o.id, properties: o.properties }
}

/// A failure of a whole call.
pub fn api_error(e: hs::HubSpotError) -> ApiError {
    match e {
        hs::HubSpotError::Unauthorized { reason } => ApiError::Unauthorized {
            side: Side::HubSpot,
            message: format!("HubSpot rejected the credentials ({reason})"),
            action: "Reconnect HubSpot (Connect HubSpot on the connection, or save a new access token): the token is wrong, or the app was uninstalled or its refresh token revoked.".into(),
        },
        hs::HubSpotError::MissingScopes { scopes, .. } => ApiError::Forbidden {
            side: Side::HubSpot,
            message: format!("the HubSpot app lacks the scopes {}", scopes.join(", ")),
            action: "Add these scopes to the HubSpot app and reinstall or re-authorize it.".into(),
        },
        hs::HubSpotError::DailyLimit => ApiError::DailyLimit { retry_after: Duration::from_secs(3600) },
        hs::HubSpotError::RateLimited { policy, retry_after } => ApiError::Transient {
            side: Side::HubSpot,
            message: format!("HubSpot rate limit {policy}"),
            retry_after,
        },
        hs::HubSpotError::Transient { status: 477, retry_after, .. } => ApiError::Transient {
            side: Side::HubSpot,
            message: "the HubSpot account is being moved between data-hosting locations (HTTP 477 Migration in Progress)"
                .into(),
            retry_after,
        },
        e @ hs::HubSpotError::Transient { .. } => {
            let retry_after = match &e {
                hs::HubSpotError::Transient { retry_after, .. } => *retry_after,
                _ => None,
            };
            ApiError::Transient { side: Side::HubSpot, message: e.to_string(), retry_after }
        }
        e @ hs::HubSpotError::Transport(_) => {
            ApiError::Transient { side: Side::HubSpot, message: e.to_string(), retry_after: None }
        }
        e => ApiError::Rejected { side: Side::HubSpot, message: e.to_string() },
    }
}

/// A failure of one input of a batch (or of the whole call, when it is not about the input).
fn item_error(e: hs::HubSpotError) -> Result<ItemError, ApiError> {
    let api_message = Some(e.to_string());
    Ok(match e {
        hs::HubSpotError::NotFound { .. } => ItemError {
            field: None,
            message: "The contact no longer exists in HubSpot (deleted or merged).".into(),
            action: "Nothing to do: the sync looks at the contact again.".into(),
            api_message,
            kind: ItemErrorKind::NotFound,
        },
        hs::HubSpotError::Conflict { existing_id, .. } => ItemError {
            field: Some("email".into()),
            message: format!(
                "HubSpot already has a contact with this email{}.",
                existing_id.as_ref().map(|i| format!(" (id {i})")).unwrap_or_default()
            ),
            action: "If that contact holds the email as an additional email, merge the two contacts in HubSpot; the sync then links the survivor.".into(),
            api_message,
            kind: ItemErrorKind::AlreadyExists { existing_id },
        },
        hs::HubSpotError::Validation { errors, message } => {
            let properties: Vec<String> = errors.iter().map(|p| p.property.clone()).collect();
            let detail = if errors.is_empty() {
                message
            } else {
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            };
            ItemError {
                field: properties.first().cloned(),
                message: format!("HubSpot refused the values: {detail}"),
                action: "Fix the value in MailerLite, or the property's options in HubSpot. The rest of the contact keeps syncing meanwhile; the value is sent again when it changes, or when you retry the contact.".into(),
                api_message,
                kind: ItemErrorKind::Invalid { properties },
            }
        }
        e if e.is_transient()
            || matches!(
                e,
                hs::HubSpotError::Unauthorized { .. }
                    | hs::HubSpotError::MissingScopes { .. }
                    | hs::HubSpotError::RouteNotFound { .. }
            ) =>
        {
            return Err(api_error(e));
        }
        other => ItemError {
            field: None,
            message: format!("HubSpot refused the change: {other}"),
            action: "Check the contact in HubSpot; retry from the status page once fixed.".into(),
            api_message,
            kind: ItemErrorKind::Other,
        },
    })
}

fn props(properties: &[String]) -> Vec<&str> {
    properties.iter().map(String::as_str).collect()
}

fn property(p: hs::Property) -> HsProperty {
    let read_only = p.is_read_only();
    HsProperty {
        name: p.name,
        label: p.label,
        hs_type: HsType::parse(&p.kind),
        field_type: p.field_type,
        options: p.options.into_iter().map(|o| HsOption { label: o.label, value: o.value }).collect(),
        read_only,
        calculated: p.calculated,
    }
}

impl HubSpotAdapter {
    /// The properties a scan's search asks for: all of them when they fit the body limit, else
    /// the minimum (the rest is then read with [`HubSpotAdapter::complete`]).
    fn scan_properties<'a>(wanted: &[&'a str]) -> (Vec<&'a str>, bool) {
        if search_fits(wanted) { (wanted.to_vec(), false) } else { (SEARCH_MINIMUM.to_vec(), true) }
    }

    /// Reads the full `properties` of records a search returned with the minimum only.
    async fn complete(&self, records: Vec<HsRecord>, properties: &[String]) -> ApiResult<Vec<HsRecord>> {
        if records.is_empty() {
            return Ok(records);
        }
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let read = Self::reads(self.client.batch_read_contacts(&ids, &props(properties)).await)?;
        let by_id: std::collections::HashMap<String, HsRecord> = read.into_iter().map(|r| (r.id.clone(), r)).collect();
        // A record deleted between the search and the read drops out, as it would from the next page.
        Ok(records.into_iter().filter_map(|r| by_id.get(&r.id).cloned()).collect())
    }

    /// Reads that tolerate missing records: not-found inputs are absent, other failures fail.
    fn reads(outcome: hs::BatchOutcome<hs::CrmObject>) -> ApiResult<Vec<HsRecord>> {
        for e in outcome.errors {
            match e.error {
                hs::HubSpotError::NotFound { .. } => {}
                other => return Err(api_error(other)),
            }
        }
        Ok(outcome.results.into_iter().filter(|o| !o.archived).map(record).collect())
    }

    /// Lines batch results up with the inputs: by id for updates, by email for creates. An
    /// input with both an error and a result had its refused values left out and the rest
    /// written ([`ItemErrorKind::InvalidRestWritten`]).
    fn writes(
        inputs: &[HsWrite],
        outcome: hs::BatchOutcome<hs::CrmObject>,
        by_email: bool,
    ) -> ApiResult<Vec<Result<HsRecord, ItemError>>> {
        let mut errors: Vec<Option<ItemError>> = vec![None; inputs.len()];
        for e in outcome.errors {
            let Some(i) = e.index else { return Err(api_error(e.error)) };
            errors[i] = Some(item_error(e.error)?);
        }
        let mut written: Vec<Option<HsRecord>> = vec![None; inputs.len()];
        for o in outcome.results {
            let i = if by_email {
                let email = o.prop("email").map(|e| e.trim().to_lowercase());
                inputs.iter().enumerate().position(|(i, w)| {
                    written[i].is_none()
                        && errors[i].is_none()
                        && w.properties.get("email").map(|e| e.trim().to_lowercase()) == email
                })
            } else {
                inputs.iter().enumerate().position(|(i, w)| written[i].is_none() && w.key == o.id)
            };
            if let Some(i) = i {
                written[i] = Some(record(o));
            }
        }
        let mut out: Vec<Option<Result<HsRecord, ItemError>>> = Vec::with_capacity(inputs.len());
        for (error, rec) in errors.into_iter().zip(written) {
            out.push(match (error, rec) {
                (None, rec) => rec.map(Ok),
                (Some(mut e), Some(rec)) => {
                    let refused = match &e.kind {
                        ItemErrorKind::Invalid { properties } => Some(properties.clone()),
                        ItemErrorKind::AlreadyExists { .. } => Some(vec!["email".to_string()]),
                        _ => None,
                    };
                    if let Some(properties) = refused {
                        e.kind = ItemErrorKind::InvalidRestWritten { properties, written: Box::new(rec) };
                    }
                    Some(Err(e))
                }
                (Some(e), None) => Some(Err(e)),
            });
        }
        out.into_iter()
            .map(|r| {
                r.ok_or_else(|| ApiError::Transient {
                    side: Side::HubSpot,
                    message: "HubSpot's batch answer left an input without an outcome".into(),
                    retry_after: None,
                })
            })
            .collect()
    }
}

#[async_trait]
impl HubSpotApi for HubSpotAdapter {
    async fn portal_id(&self) -> ApiResult<u64> {
        Ok(self.client.account_details().await.map_err(api_error)?.portal_id)
    }

    async fn gdpr_delete(&self, id: &str) -> ApiResult<()> {
        self.client.gdpr_delete_contact(id).await.map_err(api_error)
    }

    async fn account(&self) -> ApiResult<HubSpotAccount> {
        let portal_id = self.portal_id().await?;
        // Token info describes private-app and OAuth tokens; a token it does not describe (a
        // refusal other than of the credentials themselves) leaves the scopes unknown.
        let info = match self.client.token_info().await {
            Ok(info) => Some(info),
            Err(e @ (hs::HubSpotError::Unauthorized { .. } | hs::HubSpotError::DailyLimit)) => {
                return Err(api_error(e));
            }
            Err(e) if e.is_transient() => return Err(api_error(e)),
            Err(e) => {
                tracing::info!(error = %e, "HubSpot did not describe the token; its scopes are unknown");
                None
            }
        };
        Ok(HubSpotAccount {
            portal_id,
            domain: info.as_ref().and_then(|i| i.hub_domain.clone()),
            app_id: info.as_ref().and_then(|i| i.app_id),
            scopes: info.map(|i| i.scopes),
        })
    }

    fn rate_limits(&self) -> Option<hmsync_http::RateLimitReading> {
        self.client.rate_limit_reading()
    }

    async fn lists(&self) -> ApiResult<Vec<HubSpotListInfo>> {
        let lists = self.client.search_lists("", &[]).await.map_err(api_error)?;
        Ok(lists
            .into_iter()
            .filter(|l| l.object_type_id.is_empty() || l.object_type_id == "0-1")
            .map(|l| HubSpotListInfo {
                size: l
                    .size
                    .or_else(|| l.additional_properties.get("hs_list_size").and_then(|v| v.as_deref()?.parse().ok())),
                id: l.list_id,
                name: l.name,
                processing_type: l.processing_type,
            })
            .collect())
    }

    async fn read_contacts(&self, ids: &[String], properties: &[String]) -> ApiResult<Vec<HsRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Self::reads(self.client.batch_read_contacts(ids, &props(properties)).await)
    }

    async fn find_contacts_by_email(&self, emails: &[String], properties: &[String]) -> ApiResult<Vec<HsRecord>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        Self::reads(self.client.batch_read_contacts_by_email(emails, &props(properties)).await)
    }

    async fn scan_all(&self, after: Option<&str>, properties: &[String]) -> ApiResult<HsPage> {
        let mut wanted = props(properties);
        wanted.push("hs_object_id");
        let (asked, partial) = Self::scan_properties(&wanted);
        let mut req = hs::SearchRequest::new().sort_ascending("hs_object_id").properties(&asked).limit(SEARCH_PAGE);
        req = match after {
            Some(id) => req.group([hs::Filter::gt("hs_object_id", id)]),
            None => req.group([hs::Filter::has_property("hs_object_id")]),
        };
        let page = self.client.search_contacts(&req).await.map_err(api_error)?;
        let next = if page.next_after.is_some() { page.results.last().map(|o| o.id.clone()) } else { None };
        let mut records: Vec<HsRecord> = page.results.into_iter().map(record).collect();
        if partial {
            records = self.complete(records, properties).await?;
        }
        Ok(HsPage { records, next, total: Some(page.total) })
    }

    async fn scan_modified(&self, since_ms: i64, after: Option<&str>, properties: &[String]) -> ApiResult<HsPage> {
        let wanted = props(properties);
        let (asked, partial) = Self::scan_properties(&wanted);
        let mut scan = match after.and_then(|c| serde_json::from_str::<hs::ScanCursor>(c).ok()) {
            Some(cursor) => hs::IncrementalScan::resume(cursor, None, &asked),
            None => hs::IncrementalScan::new(since_ms, None, &asked),
        };
        let found = scan.next_page(&self.client).await.map_err(api_error)?.unwrap_or_default();
        let next = (!scan.cursor.done).then(|| serde_json::to_string(&scan.cursor).expect("cursor serializes"));
        let mut records: Vec<HsRecord> = found.into_iter().map(record).collect();
        if partial {
            records = self.complete(records, properties).await?;
        }
        Ok(HsPage { records, next, total: None })
    }

    async fn list_members(&self, list_id: &str, after: Option<&str>) -> ApiResult<(Vec<String>, Option<String>)> {
        let (members, next) = self.client.list_memberships_page(list_id, after).await.map_err(|e| match e {
            hs::HubSpotError::NotFound { .. } => {
                ApiError::NotFound { side: Side::HubSpot, what: format!("list {list_id}") }
            }
            e => api_error(e),
        })?;
        Ok((members.into_iter().map(|m| m.record_id).collect(), next))
    }

    async fn contacts_of_company(&self, company_id: &str) -> ApiResult<Vec<String>> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            // Keyset paging by id: no query nears the 10,000-result cap.
            let mut filters = vec![hs::Filter::eq("associatedcompanyid", company_id)];
            if let Some(a) = &after {
                filters.push(hs::Filter::gt("hs_object_id", a.clone()));
            }
            let req = hs::SearchRequest::new()
                .group(filters)
                .sort_ascending("hs_object_id")
                .properties(&["hs_object_id"])
                .limit(SEARCH_PAGE);
            let page = self.client.search_contacts(&req).await.map_err(api_error)?;
            let full = page.next_after.is_some();
            after = page.results.last().map(|o| o.id.clone());
            ids.extend(page.results.into_iter().map(|o| o.id));
            if !full {
                return Ok(ids);
            }
        }
    }

    async fn memberships(&self, contact_ids: &[String]) -> ApiResult<BTreeMap<String, Vec<String>>> {
        let m = self.client.contact_list_memberships(contact_ids).await.map_err(api_error)?;
        Ok(m.into_iter().map(|(id, lists)| (id, lists.into_iter().map(|l| l.list_id).collect())).collect())
    }

    async fn read_companies(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> ApiResult<BTreeMap<String, BTreeMap<String, Option<String>>>> {
        let records = Self::reads(self.client.batch_read_companies(ids, &props(properties)).await)?;
        Ok(records.into_iter().map(|r| (r.id, r.properties)).collect())
    }

    async fn create_contacts(&self, inputs: &[HsWrite]) -> ApiResult<Vec<Result<HsRecord, ItemError>>> {
        let creates: Vec<hs::ContactInput> = inputs
            .iter()
            .map(|w| hs::ContactInput { properties: w.properties.clone(), associations: Vec::new() })
            .collect();
        let outcome = self.client.batch_create_contacts(&creates).await;
        Self::writes(inputs, outcome, true)
    }

    async fn update_contacts(&self, inputs: &[HsWrite]) -> ApiResult<Vec<Result<HsRecord, ItemError>>> {
        let updates: Vec<hs::ContactUpdate> =
            inputs.iter().map(|w| hs::ContactUpdate { id: w.key.clone(), properties: w.properties.clone() }).collect();
        let outcome = self.client.batch_update_contacts(&updates).await;
        Self::writes(inputs, outcome, false)
    }

    async fn unsubscribe_all(&self, email: &str, _legal_basis: Option<&str>) -> ApiResult<()> {
        // The portal-wide opt-out (`unsubscribe-all`) takes no legal basis; per-subscription
        // changes would (and are not what "unsubscribed from all email" means).
        self.client.unsubscribe_all(email).await.map_err(api_error)
    }

    async fn contact_properties(&self) -> ApiResult<Vec<HsProperty>> {
        Ok(self.client.list_properties("contacts").await.map_err(api_error)?.into_iter().map(property).collect())
    }

    async fn company_properties(&self) -> ApiResult<Vec<HsProperty>> {
        Ok(self.client.list_properties("companies").await.map_err(api_error)?.into_iter().map(property).collect())
    }

    async fn ensure_properties(&self, group: &str, group_label: &str, properties: &[HsProperty]) -> ApiResult<()> {
        self.client
            .ensure_property_group(
                "contacts",
                &hs::PropertyGroup { name: group.into(), label: group_label.into(), display_order: None },
            )
            .await
            .map_err(api_error)?;
        let mut creates = Vec::with_capacity(properties.len());
        for p in properties {
            let kind = match &p.hs_type {
                HsType::String => "string",
                HsType::Number => "number",
                HsType::Bool => "bool",
                HsType::Date => "date",
                HsType::Datetime => "datetime",
                HsType::Enumeration => "enumeration",
                HsType::Other(t) => t.as_str(),
            };
            let create = hs::PropertyCreate {
                name: p.name.clone(),
                label: p.label.clone(),
                kind: kind.into(),
                field_type: p.field_type.clone(),
                group_name: group.into(),
                options: p
                    .options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| hs::PropertyOption {
                        label: o.label.clone(),
                        value: o.value.clone(),
                        description: None,
                        display_order: Some(i as i32),
                        hidden: false,
                    })
                    .collect(),
                description: "Recorded by hmsync from MailerLite.".into(),
            };
            creates.push(create);
        }
        self.client.ensure_properties("contacts", &creates).await.map_err(api_error)?;
        Ok(())
    }

    async fn create_notes(&self, notes: &[HsNote]) -> ApiResult<Vec<Result<(), ItemError>>> {
        let inputs: Vec<hs::NoteInput> = notes
            .iter()
            .map(|n| hs::NoteInput {
                contact_id: n.contact_id.clone(),
                timestamp: n.timestamp_ms.to_string(),
                body: n.body.clone(),
            })
            .collect();
        let outcome = self.client.create_notes(&inputs).await;
        let mut out: Vec<Result<(), ItemError>> = vec![Ok(()); notes.len()];
        for e in outcome.errors {
            let Some(i) = e.index else { return Err(api_error(e.error)) };
            out[i] = Err(item_error(e.error)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_in_progress_comes_back_after_its_retry_after() {
        let e = api_error(hs::HubSpotError::Transient {
            status: 477,
            message: "migrating".into(),
            correlation_id: None,
            retry_after: Some(Duration::from_secs(86_400)),
        });
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(86_400)));
        let engine_error: crate::engine::EngineError = e.into();
        assert_eq!(engine_error.retry_after(), Some(Some(Duration::from_secs(86_400))));
    }

    #[test]
    fn a_missing_route_is_a_refused_call_not_missing_records() {
        let e = api_error(hs::HubSpotError::RouteNotFound { message: "resource not found".into() });
        assert!(matches!(e, ApiError::Rejected { .. }), "{e:?}");
        assert!(item_error(hs::HubSpotError::RouteNotFound { message: "resource not found".into() }).is_err());
    }

    #[test]
    fn a_scan_with_very_many_mapped_properties_asks_for_the_minimum_and_reads_the_rest() {
        let few = ["email", "firstname"];
        assert_eq!(HubSpotAdapter::scan_properties(&few), (few.to_vec(), false));
        let names: Vec<String> = (0..150).map(|i| format!("mapped_property_{i:03}")).collect();
        let many: Vec<&str> = names.iter().map(String::as_str).collect();
        let (asked, partial) = HubSpotAdapter::scan_properties(&many);
        assert!(partial);
        assert!(search_fits(&asked));
    }
}
