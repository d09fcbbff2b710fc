//! What the setup screens read from the two apps before anything is saved: the accounts behind
//! the stored credentials, HubSpot's lists, MailerLite's groups and segments (and a new target
//! group), and how an option property's values map between the apps.

use hmsync_core::{
    Direction, FieldMapping, HubSpotObject, OptionMapping, OptionMappingError, option_mapping, writes_hubspot,
};
use serde::{Deserialize, Serialize};

use crate::adapters::{HubSpotAuth, load_credentials};
use crate::api::{
    ApiResult, HubSpotAccount, HubSpotListInfo, MailerLiteAccount, MailerLiteApi, MailerLiteGroupInfo,
    MailerLiteSegmentInfo, MlRecord, MlSource,
};
use crate::engine::{Engine, EngineError};

/// Subscribers read to show which values of a MailerLite field match no HubSpot option.
pub const OPTION_SAMPLE: usize = 500;

/// The accounts behind a connection's stored credentials (`null` for an app without them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accounts {
    pub hubspot: Option<HubSpotAccount>,
    pub mailerlite: Option<MailerLiteAccount>,
}

/// Why the option values of a mapping cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum OptionValuesError {
    /// The apps' fields have not been read yet.
    #[error("the fields of the apps have not been read yet")]
    NoSchemas,
    #[error("HubSpot has no {object} property \"{name}\"")]
    NoProperty { object: &'static str, name: String },
    #[error("MailerLite has no field \"{0}\"")]
    NoField(String),
    #[error(transparent)]
    Mapping(#[from] OptionMappingError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// The HubSpot portal and the MailerLite account behind the stored credentials, asked live.
    pub async fn accounts(&self, conn_id: &str) -> Result<Accounts, EngineError> {
        let conn = self.connection(conn_id).await?;
        let stored = load_credentials(&*self.secrets, conn_id).await?;
        let hubspot = match &stored.hubspot {
            None => None,
            Some(HubSpotAuth::OAuth { refresh_token, .. }) if refresh_token.is_empty() => None,
            Some(_) => Some(self.apis.hubspot(&conn).await?.account().await?),
        };
        let mailerlite = match &stored.mailerlite_api_key {
            None => None,
            Some(_) => Some(self.apis.mailerlite(&conn).await?.account().await?),
        };
        Ok(Accounts { hubspot, mailerlite })
    }

    /// Every HubSpot contact list, by name.
    pub async fn hubspot_lists(&self, conn_id: &str) -> Result<Vec<HubSpotListInfo>, EngineError> {
        let conn = self.connection(conn_id).await?;
        let mut lists = self.apis.hubspot(&conn).await?.lists().await?;
        lists.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then_with(|| a.id.cmp(&b.id)));
        Ok(lists)
    }

    /// Every MailerLite group, by name.
    pub async fn mailerlite_groups(&self, conn_id: &str) -> Result<Vec<MailerLiteGroupInfo>, EngineError> {
        let conn = self.connection(conn_id).await?;
        let mut groups = self.apis.mailerlite(&conn).await?.groups().await?;
        groups.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then_with(|| a.id.cmp(&b.id)));
        Ok(groups)
    }

    /// Creates a MailerLite group (a new target group).
    pub async fn create_mailerlite_group(&self, conn_id: &str, name: &str) -> Result<MailerLiteGroupInfo, EngineError> {
        let conn = self.connection(conn_id).await?;
        Ok(self.apis.mailerlite(&conn).await?.create_group(name).await?)
    }

    /// Every MailerLite segment, by name.
    pub async fn mailerlite_segments(&self, conn_id: &str) -> Result<Vec<MailerLiteSegmentInfo>, EngineError> {
        let conn = self.connection(conn_id).await?;
        let mut segments = self.apis.mailerlite(&conn).await?.segments().await?;
        segments.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then_with(|| a.id.cmp(&b.id)));
        Ok(segments)
    }

    /// How `mapping`'s option property maps to its MailerLite field, against the fields last
    /// read; the MailerLite values come from the first [`OPTION_SAMPLE`] subscribers (only read
    /// when the mapping, under `direction`, lets MailerLite write the property).
    pub async fn option_values(
        &self,
        conn_id: &str,
        mapping: &FieldMapping,
        direction: Direction,
    ) -> Result<OptionMapping, OptionValuesError> {
        let conn = self.connection(conn_id).await?;
        let schemas = conn.schemas.clone().ok_or(OptionValuesError::NoSchemas)?;
        let object = match mapping.hubspot_object {
            HubSpotObject::Contact => "contact",
            HubSpotObject::Company => "company",
        };
        let property = schemas
            .hubspot_property(mapping.hubspot_object, &mapping.hubspot_property)
            .ok_or_else(|| OptionValuesError::NoProperty { object, name: mapping.hubspot_property.clone() })?;
        let field = schemas
            .mailerlite_field(&mapping.mailerlite_field)
            .ok_or_else(|| OptionValuesError::NoField(mapping.mailerlite_field.clone()))?;
        let from_mailerlite = writes_hubspot(direction, mapping);
        // Refuse a property without options before asking MailerLite anything.
        option_mapping(property, field, false, [])?;
        let mut values = Vec::new();
        if from_mailerlite {
            let ml = self.apis.mailerlite(&conn).await?;
            let sample = first_subscribers(&*ml).await.map_err(EngineError::Api)?;
            values.extend(sample.into_iter().map(|r| r.fields.get(&field.key).cloned().unwrap_or_default()));
        }
        Ok(option_mapping(property, field, from_mailerlite, &values)?)
    }
}

/// The first [`OPTION_SAMPLE`] subscribers of the account (every status), whose values show
/// which MailerLite values match no HubSpot option.
pub(crate) async fn first_subscribers(ml: &dyn MailerLiteApi) -> ApiResult<Vec<MlRecord>> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    while records.len() < OPTION_SAMPLE {
        let page = ml.list(&MlSource::All, cursor.as_deref()).await?;
        records.extend(page.records);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    records.truncate(OPTION_SAMPLE);
    Ok(records)
}
