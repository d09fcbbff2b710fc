//! The connection config: what a user chooses when they connect HubSpot and MailerLite.

use serde::{Deserialize, Serialize};

/// The OpenAPI `pattern` of a string that must not be blank: it holds a character that is not
/// Unicode white space (`char::is_whitespace`, what `str::trim` removes), so the document says
/// exactly what [`crate::validate_config`] and the API check. The `#[schema(pattern)]`
/// attributes repeat this literal (utoipa takes literals only); a test of the API compares them.
pub const NON_BLANK_PATTERN: &str =
    "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]";

/// One of the two apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[serde(rename = "hubspot")]
    HubSpot,
    #[serde(rename = "mailerlite")]
    MailerLite,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::HubSpot => Side::MailerLite,
            Side::MailerLite => Side::HubSpot,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::HubSpot => "HubSpot",
            Side::MailerLite => "MailerLite",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way data may flow, for the whole connection or for one field mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    TwoWay,
    #[serde(rename = "hubspot_to_mailerlite")]
    HubSpotToMailerLite,
    #[serde(rename = "mailerlite_to_hubspot")]
    MailerLiteToHubSpot,
}

impl Direction {
    /// Whether data may flow out of `from` into the other side.
    pub fn allows_from(self, from: Side) -> bool {
        match self {
            Direction::TwoWay => true,
            Direction::HubSpotToMailerLite => from == Side::HubSpot,
            Direction::MailerLiteToHubSpot => from == Side::MailerLite,
        }
    }

    /// The only source of a one-way direction.
    pub fn one_way_source(self) -> Option<Side> {
        match self {
            Direction::TwoWay => None,
            Direction::HubSpotToMailerLite => Some(Side::HubSpot),
            Direction::MailerLiteToHubSpot => Some(Side::MailerLite),
        }
    }
}

/// Which HubSpot contacts take part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubSpotRule {
    #[default]
    All,
    /// Members of any of these v3 lists (MANUAL/SNAPSHOT = static, DYNAMIC = active).
    Lists {
        #[cfg_attr(feature = "openapi", schema(schema_with = openapi::non_blank_ids))]
        list_ids: Vec<String>,
    },
}

/// Which MailerLite subscribers take part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MailerLiteRule {
    /// Every subscriber, every status.
    #[default]
    All,
    /// Members of any of these groups, every status.
    Groups {
        #[cfg_attr(feature = "openapi", schema(schema_with = openapi::non_blank_ids))]
        group_ids: Vec<String>,
    },
    /// Members of any of these segments; active subscribers only.
    Segments {
        #[cfg_attr(feature = "openapi", schema(schema_with = openapi::non_blank_ids))]
        segment_ids: Vec<String>,
    },
}

/// The HubSpot object a mapped property belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HubSpotObject {
    #[default]
    Contact,
    /// The contact's primary company; HubSpot → MailerLite only.
    Company,
}

/// One mapped field: a HubSpot property ↔ a MailerLite field key. Checked together with the
/// rest of the config (beyond what this schema can say): the email is never mapped (it is the
/// link key); a company mapping flows `hubspot_to_mailerlite`; a one-way mapping's
/// `conflict_winner` is its source; its direction agrees with the connection's; each HubSpot
/// property and MailerLite field is written by one mapping at most; and, once the fields were
/// read, both exist and their types convert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldMapping {
    #[serde(default)]
    pub hubspot_object: HubSpotObject,
    /// The HubSpot property's internal name (e.g. `firstname`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub hubspot_property: String,
    /// The MailerLite field's key (e.g. `last_name`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub mailerlite_field: String,
    #[serde(default)]
    pub direction: Direction,
    /// Overrides the connection's conflict winner for this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_winner: Option<Side>,
    /// A blank never replaces a value on the other side (clears do not propagate).
    #[serde(default)]
    pub never_overwrite_with_blank: bool,
}

impl FieldMapping {
    pub fn new(hubspot_property: &str, mailerlite_field: &str) -> Self {
        Self {
            hubspot_object: HubSpotObject::Contact,
            hubspot_property: hubspot_property.to_string(),
            mailerlite_field: mailerlite_field.to_string(),
            direction: Direction::TwoWay,
            conflict_winner: None,
            never_overwrite_with_blank: false,
        }
    }

    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    pub fn company(mut self) -> Self {
        self.hubspot_object = HubSpotObject::Company;
        self.direction = Direction::HubSpotToMailerLite;
        self
    }

    /// The stable key under which a link stores this mapping's base value.
    pub fn key(&self) -> String {
        let object = match self.hubspot_object {
            HubSpotObject::Contact => "contact",
            HubSpotObject::Company => "company",
        };
        format!("{object}.{}={}", self.hubspot_property, self.mailerlite_field)
    }
}

/// Limits on how many destructive changes one run may make before the connection pauses for
/// approval: bugs and API outages must not become mass changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SafetyValve {
    // utoipa calls u32 `int32`: the maximum says how far it really goes.
    #[cfg_attr(feature = "openapi", schema(maximum = 4294967295u32))]
    pub max_group_removals: u32,
    #[cfg_attr(feature = "openapi", schema(maximum = 4294967295u32))]
    pub max_unsubscribes: u32,
    #[cfg_attr(feature = "openapi", schema(maximum = 4294967295u32))]
    pub max_field_clears: u32,
}

impl Default for SafetyValve {
    fn default() -> Self {
        Self { max_group_removals: 100, max_unsubscribes: 100, max_field_clears: 500 }
    }
}

/// What an erasure (a HubSpot privacy deletion, or an erase through the config API) does
/// beyond hmsync's own data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PrivacySettings {
    /// Also ask MailerLite to forget the linked subscriber (`POST /subscribers/{id}/forget`):
    /// MailerLite deletes it and purges its data after 30 days; its opens, clicks and
    /// unsubscribe leave the account's reports. Off by default.
    pub forget_in_mailerlite: bool,
}

/// What the connection records in HubSpot about MailerLite engagement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct EngagementSettings {
    /// Record status, opens, clicks, unsubscribes, bounces and spam reports as HubSpot contact
    /// properties (group "MailerLite").
    pub enabled: bool,
    /// Also add a HubSpot note per engagement event.
    pub notes: bool,
    /// Turn a MailerLite unsubscribe into a HubSpot email opt-out (communication preferences).
    pub unsubscribe_in_hubspot: bool,
    /// The legal basis sent with that opt-out when the portal has GDPR features on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::legal_basis))]
    pub legal_basis: Option<String>,
}

impl Default for EngagementSettings {
    fn default() -> Self {
        Self { enabled: true, notes: false, unsubscribe_in_hubspot: false, legal_basis: None }
    }
}

/// Everything a user configures for one HubSpot ↔ MailerLite connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionConfig {
    /// Shown on the status page; not blank.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub name: String,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub hubspot_rule: HubSpotRule,
    #[serde(default)]
    pub mailerlite_rule: MailerLiteRule,
    /// The MailerLite group that contacts coming from HubSpot are added to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            pattern = "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub target_group: Option<String>,
    #[serde(default)]
    pub mappings: Vec<FieldMapping>,
    /// Whose value wins when both sides changed a field differently (most teams pick the CRM).
    #[serde(default = "default_winner")]
    pub conflict_winner: Side,
    #[serde(default)]
    pub safety_valve: SafetyValve,
    #[serde(default)]
    pub engagement: EngagementSettings,
    #[serde(default)]
    pub privacy: PrivacySettings,
}

fn default_winner() -> Side {
    Side::HubSpot
}

impl ConnectionConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            direction: Direction::TwoWay,
            hubspot_rule: HubSpotRule::All,
            mailerlite_rule: MailerLiteRule::All,
            target_group: None,
            mappings: Vec::new(),
            conflict_winner: Side::HubSpot,
            safety_valve: SafetyValve::default(),
            engagement: EngagementSettings::default(),
            privacy: PrivacySettings::default(),
        }
    }
}

/// Schemas the derive cannot express with attributes.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

    use super::NON_BLANK_PATTERN;
    use crate::validate::LEGAL_BASES;

    /// A non-empty list of ids, none blank.
    pub fn non_blank_ids() -> utoipa::openapi::schema::Array {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(NON_BLANK_PATTERN)))
            .min_items(Some(1))
            .build()
    }

    /// One of HubSpot's legal bases, or null (none sent).
    pub fn legal_basis() -> utoipa::openapi::schema::Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .enum_values(Some(LEGAL_BASES.iter().map(|b| serde_json::Value::from(*b)).chain([serde_json::Value::Null])))
            .description(Some("The legal basis sent with that opt-out when the portal has GDPR features on."))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json_with_defaults() {
        let json = r#"{"name":"Sales","mappings":[{"hubspot_property":"firstname","mailerlite_field":"name"}]}"#;
        let c: ConnectionConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.direction, Direction::TwoWay);
        assert_eq!(c.conflict_winner, Side::HubSpot);
        assert_eq!(c.mappings[0].key(), "contact.firstname=name");
        let back: ConnectionConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let rule: MailerLiteRule = serde_json::from_str(r#"{"type":"segments","segment_ids":["7"]}"#).unwrap();
        assert_eq!(rule, MailerLiteRule::Segments { segment_ids: vec!["7".into()] });
        let d: Direction = serde_json::from_str(r#""hubspot_to_mailerlite""#).unwrap();
        assert_eq!(d, Direction::HubSpotToMailerLite);
    }

    #[test]
    fn directions_allow_the_right_sources() {
        assert!(Direction::TwoWay.allows_from(Side::HubSpot) && Direction::TwoWay.allows_from(Side::MailerLite));
        assert!(!Direction::HubSpotToMailerLite.allows_from(Side::MailerLite));
        assert_eq!(Direction::MailerLiteToHubSpot.one_way_source(), Some(Side::MailerLite));
    }

    #[test]
    fn the_non_blank_pattern_excludes_exactly_what_trim_removes() {
        // The pattern's character class, as ranges.
        const WHITE_SPACE: [(u32, u32); 10] = [
            (0x09, 0x0d),
            (0x20, 0x20),
            (0x85, 0x85),
            (0xa0, 0xa0),
            (0x1680, 0x1680),
            (0x2000, 0x200a),
            (0x2028, 0x2029),
            (0x202f, 0x202f),
            (0x205f, 0x205f),
            (0x3000, 0x3000),
        ];
        let class: String = WHITE_SPACE
            .iter()
            .map(|&(a, b)| if a == b { format!("\\u{a:04x}") } else { format!("\\u{a:04x}-\\u{b:04x}") })
            .collect();
        assert_eq!(NON_BLANK_PATTERN, format!("[^{class}]"));
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let listed = WHITE_SPACE.iter().any(|&(a, b)| (a..=b).contains(&(c as u32)));
            assert_eq!(c.is_whitespace(), listed, "U+{:04X}", c as u32);
        }
    }
}
