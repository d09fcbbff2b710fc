//! The HubSpot contact properties in which hmsync records MailerLite engagement. HubSpot
//! timeline events are closed to new apps, so engagement lives in properties (and optional notes).

use crate::schema::{HsProperty, HsType};

/// The property group the engagement properties live in.
pub const PROPERTY_GROUP: &str = "mailerlite";
pub const PROPERTY_GROUP_LABEL: &str = "MailerLite";

pub const STATUS: &str = "mailerlite_status";
pub const LAST_OPEN_AT: &str = "mailerlite_last_open_at";
pub const LAST_CLICK_AT: &str = "mailerlite_last_click_at";
pub const LAST_CLICKED_URL: &str = "mailerlite_last_clicked_url";
pub const LAST_CAMPAIGN: &str = "mailerlite_last_campaign";
pub const OPENS_COUNT: &str = "mailerlite_opens_count";
pub const CLICKS_COUNT: &str = "mailerlite_clicks_count";
pub const UNSUBSCRIBED_AT: &str = "mailerlite_unsubscribed_at";
pub const BOUNCED_AT: &str = "mailerlite_bounced_at";
pub const SPAM_REPORTED_AT: &str = "mailerlite_spam_reported_at";

/// The definitions to create (idempotently) on activation and on "refresh fields".
pub fn properties() -> Vec<HsProperty> {
    let p = |name: &str, label: &str, t: HsType, field: &str| {
        let mut p = HsProperty::new(name, t, field);
        p.label = label.to_string();
        p
    };
    vec![
        p(STATUS, "MailerLite status", HsType::Enumeration, "select").with_options(&[
            ("active", "Active"),
            ("unsubscribed", "Unsubscribed"),
            ("unconfirmed", "Unconfirmed"),
            ("bounced", "Bounced"),
            ("junk", "Junk"),
        ]),
        p(LAST_OPEN_AT, "MailerLite last open", HsType::Datetime, "date"),
        p(LAST_CLICK_AT, "MailerLite last click", HsType::Datetime, "date"),
        p(LAST_CLICKED_URL, "MailerLite last clicked URL", HsType::String, "text"),
        p(LAST_CAMPAIGN, "MailerLite last campaign", HsType::String, "text"),
        p(OPENS_COUNT, "MailerLite opens", HsType::Number, "number"),
        p(CLICKS_COUNT, "MailerLite clicks", HsType::Number, "number"),
        p(UNSUBSCRIBED_AT, "MailerLite unsubscribed at", HsType::Datetime, "date"),
        p(BOUNCED_AT, "MailerLite bounced at", HsType::Datetime, "date"),
        p(SPAM_REPORTED_AT, "MailerLite spam report at", HsType::Datetime, "date"),
    ]
}
