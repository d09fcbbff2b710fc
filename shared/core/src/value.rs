//! Field values: per-side normal forms and conversion between HubSpot property types and
//! MailerLite field types (docs/sync-rules.md, "Field values").
//!
//! Every value is handled in a *normal form* per side (`Option<String>`, `None` = blank), so
//! that equal values compare equal however the API spelled them (`"17.50"` vs `17.5`, a date
//! as `YYYY-MM-DD` or as midnight epoch milliseconds, checkbox values in any order).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::config::Side;
use crate::schema::{HsOption, HsProperty, HsType, MlField, MlType};

/// How a HubSpot property's values behave for conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HsKind {
    Text,
    Number,
    Bool,
    Date,
    Datetime,
    /// One option value (select, radio, booleancheckbox enumerations).
    Select,
    /// Several `;`-separated option values (checkbox enumerations).
    MultiSelect,
}

impl HsKind {
    pub fn of(property: &HsProperty) -> Option<HsKind> {
        Some(match &property.hs_type {
            HsType::String => HsKind::Text,
            HsType::Number => HsKind::Number,
            HsType::Bool => HsKind::Bool,
            HsType::Date => HsKind::Date,
            HsType::Datetime => HsKind::Datetime,
            HsType::Enumeration if property.is_multi_select() => HsKind::MultiSelect,
            HsType::Enumeration => HsKind::Select,
            HsType::Other(_) => return None,
        })
    }

    /// Whether a value of this kind can be written to and read back from a MailerLite field of `ml`.
    pub fn converts_to(self, ml: MlType) -> bool {
        match ml {
            MlType::Text => true,
            MlType::Number => matches!(self, HsKind::Text | HsKind::Number | HsKind::Bool),
            MlType::Date => matches!(self, HsKind::Text | HsKind::Date | HsKind::Datetime),
        }
    }
}

/// A value that cannot be written to the other side. Each names the field, the value and what
/// to do; the rest of the contact still syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ValueError {
    #[error(
        "\"{value}\" is not an option of the HubSpot property \"{property}\" (allowed: {}). Add the option to the property in HubSpot, or change the value in MailerLite field \"{field}\" to one of the allowed options.",
        allowed.join(", ")
    )]
    NotAnOption { property: String, field: String, value: String, allowed: Vec<String> },
    #[error(
        "\"{value}\" in {from} field \"{from_field}\" is not a number, so it cannot be written to {to} field \"{to_field}\". Use digits with at most one decimal point and no thousands separators."
    )]
    NotANumber { from: Side, from_field: String, to: Side, to_field: String, value: String },
    #[error(
        "\"{value}\" in {from} field \"{from_field}\" is not a date, so it cannot be written to {to} field \"{to_field}\". Use the form YYYY-MM-DD."
    )]
    NotADate { from: Side, from_field: String, to: Side, to_field: String, value: String },
    #[error(
        "\"{value}\" in {from} field \"{from_field}\" is not a date and time, so it cannot be written to {to} field \"{to_field}\". Use ISO 8601 (2024-05-01T14:30:00Z) or YYYY-MM-DD."
    )]
    NotADatetime { from: Side, from_field: String, to: Side, to_field: String, value: String },
    #[error(
        "\"{value}\" in {from} field \"{from_field}\" is not yes/no, so it cannot be written to {to} field \"{to_field}\". Use true/false, yes/no or 1/0."
    )]
    NotABool { from: Side, from_field: String, to: Side, to_field: String, value: String },
}

impl ValueError {
    pub fn value(&self) -> &str {
        match self {
            ValueError::NotAnOption { value, .. }
            | ValueError::NotANumber { value, .. }
            | ValueError::NotADate { value, .. }
            | ValueError::NotADatetime { value, .. }
            | ValueError::NotABool { value, .. } => value,
        }
    }
}

/// How one mapping converts values between its HubSpot property and its MailerLite field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub kind: HsKind,
    pub ml_type: MlType,
    pub property: String,
    pub field: String,
    pub options: Vec<HsOption>,
}

/// The pair of types has no conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoConversion;

impl Conversion {
    pub fn new(property: &HsProperty, field: &MlField) -> Result<Conversion, NoConversion> {
        let kind = HsKind::of(property).ok_or(NoConversion)?;
        if !kind.converts_to(field.ml_type) {
            return Err(NoConversion);
        }
        Ok(Conversion {
            kind,
            ml_type: field.ml_type,
            property: property.name.clone(),
            field: field.key.clone(),
            options: property.options.clone(),
        })
    }

    /// The normal form of a HubSpot wire value (`None` and `""` are blank).
    pub fn norm_hs(&self, raw: Option<&str>) -> Option<String> {
        let raw = raw?;
        if raw.is_empty() {
            return None;
        }
        Some(match self.kind {
            HsKind::Text | HsKind::Select => raw.to_string(),
            HsKind::Number => canonical_number(raw).unwrap_or_else(|| raw.to_string()),
            HsKind::Bool => parse_bool(raw).map(bool_str).unwrap_or(raw).to_string(),
            HsKind::Date => parse_date(raw).map(format_date).unwrap_or_else(|| raw.to_string()),
            HsKind::Datetime => parse_datetime(raw).map(format_datetime).unwrap_or_else(|| raw.to_string()),
            HsKind::MultiSelect => {
                let values = self.sort_options(raw.split(';').map(str::trim).filter(|v| !v.is_empty()));
                if values.is_empty() {
                    return None;
                }
                values.join(";")
            }
        })
    }

    /// The normal form of a MailerLite field value (`null` and `""` are blank).
    pub fn norm_ml(&self, raw: &Value) -> Option<String> {
        let text = match raw {
            Value::Null => return None,
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        Some(match self.ml_type {
            MlType::Text => text,
            MlType::Number => canonical_number(&text).unwrap_or(text),
            MlType::Date => parse_date(&text).map(format_date).unwrap_or(text),
        })
    }

    /// The MailerLite value (normal form) for a HubSpot value (normal form).
    pub fn hs_to_ml(&self, hs: Option<&str>) -> Result<Option<String>, ValueError> {
        let Some(h) = hs else { return Ok(None) };
        let out = match (self.kind, self.ml_type) {
            (HsKind::Text, MlType::Text) => h.to_string(),
            (HsKind::Text, MlType::Number) => canonical_number(h).ok_or_else(|| self.err_to_ml(h, Kind::Number))?,
            (HsKind::Text, MlType::Date) => {
                parse_date(h).map(format_date).ok_or_else(|| self.err_to_ml(h, Kind::Date))?
            }
            (HsKind::Number, _) => canonical_number(h).ok_or_else(|| self.err_to_ml(h, Kind::Number))?,
            (HsKind::Bool, MlType::Number) => {
                let b = parse_bool(h).ok_or_else(|| self.err_to_ml(h, Kind::Bool))?;
                if b { "1" } else { "0" }.to_string()
            }
            (HsKind::Bool, _) => {
                let b = parse_bool(h).ok_or_else(|| self.err_to_ml(h, Kind::Bool))?;
                self.label_of(bool_str(b)).unwrap_or(bool_str(b)).to_string()
            }
            (HsKind::Date, _) => parse_date(h).map(format_date).ok_or_else(|| self.err_to_ml(h, Kind::Date))?,
            (HsKind::Datetime, MlType::Date) => {
                parse_datetime(h).map(|d| format_date(d.date())).ok_or_else(|| self.err_to_ml(h, Kind::Datetime))?
            }
            (HsKind::Datetime, _) => {
                parse_datetime(h).map(format_datetime).ok_or_else(|| self.err_to_ml(h, Kind::Datetime))?
            }
            (HsKind::Select, _) => self.label_of(h).unwrap_or(h).to_string(),
            (HsKind::MultiSelect, _) => h
                .split(';')
                .filter(|v| !v.is_empty())
                .map(|v| self.label_of(v).unwrap_or(v))
                .collect::<Vec<_>>()
                .join(", "),
        };
        Ok(Some(out))
    }

    /// The HubSpot value (normal form) for a MailerLite value (normal form). Options are matched
    /// by label or value, case-insensitively, and written as the option value.
    pub fn ml_to_hs(&self, ml: Option<&str>) -> Result<Option<String>, ValueError> {
        let Some(l) = ml else { return Ok(None) };
        let out = match self.kind {
            HsKind::Text => l.to_string(),
            HsKind::Number => canonical_number(l).ok_or_else(|| self.err_to_hs(l, Kind::Number))?,
            HsKind::Bool => {
                let b = parse_bool(l)
                    .or_else(|| self.match_option(l).and_then(|v| parse_bool(&v)))
                    .ok_or_else(|| self.err_to_hs(l, Kind::Bool))?;
                bool_str(b).to_string()
            }
            HsKind::Date => parse_date(l).map(format_date).ok_or_else(|| self.err_to_hs(l, Kind::Date))?,
            HsKind::Datetime => {
                parse_datetime(l).map(format_datetime).ok_or_else(|| self.err_to_hs(l, Kind::Datetime))?
            }
            HsKind::Select => self.match_option(l.trim()).ok_or_else(|| self.not_an_option(l))?,
            HsKind::MultiSelect => {
                let mut values = Vec::new();
                for part in l.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
                    values.push(self.match_option(part).ok_or_else(|| self.not_an_option(part))?);
                }
                let values = self.sort_options(values.iter().map(String::as_str));
                if values.is_empty() {
                    return Ok(None);
                }
                values.join(";")
            }
        };
        Ok(Some(out))
    }

    /// Whether the two sides hold the same value through the conversion.
    pub fn equivalent(&self, hs: Option<&str>, ml: Option<&str>) -> bool {
        if hs.is_none() || ml.is_none() {
            return hs.is_none() && ml.is_none();
        }
        self.hs_to_ml(hs).is_ok_and(|m| m.as_deref() == ml) || self.ml_to_hs(ml).is_ok_and(|h| h.as_deref() == hs)
    }

    /// The HubSpot wire value for a normal form: `""` clears.
    pub fn hs_wire(&self, norm: Option<&str>) -> String {
        norm.unwrap_or_default().to_string()
    }

    /// The MailerLite JSON value for a normal form: `null` clears, numbers are JSON numbers.
    pub fn ml_wire(&self, norm: Option<&str>) -> Value {
        match norm {
            None => Value::Null,
            Some(s) if self.ml_type == MlType::Number => serde_json::from_str::<serde_json::Number>(s)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(s.into())),
            Some(s) => Value::String(s.to_string()),
        }
    }

    fn label_of(&self, value: &str) -> Option<&str> {
        self.options.iter().find(|o| o.value == value).map(|o| o.label.as_str())
    }

    fn match_option(&self, text: &str) -> Option<String> {
        let t = text.trim();
        self.options
            .iter()
            .find(|o| o.value == t)
            .or_else(|| {
                self.options.iter().find(|o| o.label.eq_ignore_ascii_case(t) || o.value.eq_ignore_ascii_case(t))
            })
            .map(|o| o.value.clone())
    }

    /// Option values deduplicated and in the property's option order (unknown values last).
    fn sort_options<'a>(&self, values: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut v: Vec<&str> = values.collect();
        v.sort_by_key(|x| (self.options.iter().position(|o| o.value == *x).unwrap_or(usize::MAX), x.to_string()));
        v.dedup();
        v.into_iter().map(str::to_string).collect()
    }

    fn not_an_option(&self, value: &str) -> ValueError {
        ValueError::NotAnOption {
            property: self.property.clone(),
            field: self.field.clone(),
            value: value.to_string(),
            allowed: self.options.iter().map(|o| o.label.clone()).collect(),
        }
    }

    fn err_to_ml(&self, value: &str, kind: Kind) -> ValueError {
        kind.error(Side::HubSpot, &self.property, Side::MailerLite, &self.field, value)
    }

    fn err_to_hs(&self, value: &str, kind: Kind) -> ValueError {
        kind.error(Side::MailerLite, &self.field, Side::HubSpot, &self.property, value)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Number,
    Date,
    Datetime,
    Bool,
}

impl Kind {
    fn error(self, from: Side, from_field: &str, to: Side, to_field: &str, value: &str) -> ValueError {
        let (from_field, to_field, value) = (from_field.to_string(), to_field.to_string(), value.to_string());
        match self {
            Kind::Number => ValueError::NotANumber { from, from_field, to, to_field, value },
            Kind::Date => ValueError::NotADate { from, from_field, to, to_field, value },
            Kind::Datetime => ValueError::NotADatetime { from, from_field, to, to_field, value },
            Kind::Bool => ValueError::NotABool { from, from_field, to, to_field, value },
        }
    }
}

/// A decimal number in canonical form: no leading `+`, no superfluous zeros, `.` as the only
/// separator. Thousands separators are refused (HubSpot refuses them too).
pub fn canonical_number(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.contains(['e', 'E']) {
        let f: f64 = s.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        return canonical_number(&format!("{f}"));
    }
    let (neg, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::new();
    if neg && !(int == "0" && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// `true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off` (any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn epoch_ms(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i128 = s.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()
}

/// A date from `YYYY-MM-DD`, a `YYYY-MM-DD HH:MM:SS` or ISO 8601 timestamp (its UTC date), or
/// epoch milliseconds (HubSpot's other spelling of a date).
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Some(d);
    }
    parse_datetime(s).map(|dt| dt.date())
}

/// An instant from ISO 8601 / RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC, MailerLite's REST form),
/// `YYYY-MM-DD` (midnight UTC), or epoch milliseconds.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(dt.to_offset(UtcOffset::UTC));
    }
    if let Ok(dt) = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")) {
        return Some(dt.assume_utc());
    }
    if let Ok(dt) = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")) {
        return Some(dt.assume_utc());
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc());
    }
    epoch_ms(s)
}

/// `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]")).expect("a date has every component of the format")
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, the form HubSpot returns.
pub fn format_datetime(dt: OffsetDateTime) -> String {
    dt.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .expect("a date-time has every component of the format")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::HsProperty;

    fn conv(hs: HsProperty, ml: MlType) -> Conversion {
        Conversion::new(&hs, &MlField::new("f", ml)).expect("convertible")
    }

    fn select() -> HsProperty {
        HsProperty::new("industry_segment", HsType::Enumeration, "select")
            .with_options(&[("saas", "SaaS"), ("retail", "Retail")])
    }

    fn checkbox() -> HsProperty {
        HsProperty::new("interests", HsType::Enumeration, "checkbox").with_options(&[
            ("webinars", "Webinars"),
            ("events", "Events"),
            ("news", "Product news"),
        ])
    }

    #[test]
    fn numbers_have_one_canonical_form() {
        assert_eq!(canonical_number("017.50").as_deref(), Some("17.5"));
        assert_eq!(canonical_number("-0.0").as_deref(), Some("0"));
        assert_eq!(canonical_number("+3").as_deref(), Some("3"));
        assert_eq!(canonical_number(".5").as_deref(), Some("0.5"));
        assert_eq!(canonical_number("1e3").as_deref(), Some("1000"));
        assert_eq!(canonical_number("1,000"), None);
        assert_eq!(canonical_number("12abc"), None);
        assert_eq!(canonical_number("."), None);
    }

    #[test]
    fn dates_accept_every_spelling_either_api_uses() {
        let d = "2015-05-01";
        for s in
            ["2015-05-01", "1430438400000", "2015-05-01T00:00:00Z", "2015-05-01 10:11:12", "2015-05-01T23:00:00.000Z"]
        {
            assert_eq!(parse_date(s).map(format_date).as_deref(), Some(d), "{s}");
        }
        assert_eq!(format_datetime(parse_datetime("2020-02-29T05:30:17+02:00").unwrap()), "2020-02-29T03:30:17.000Z");
        assert_eq!(format_datetime(parse_datetime("1582947017000").unwrap()), "2020-02-29T03:30:17.000Z");
        assert!(parse_date("01/05/2015").is_none());
    }

    #[test]
    fn text_to_text_is_identity_and_blank_is_none() {
        let c = conv(HsProperty::new("firstname", HsType::String, "text"), MlType::Text);
        assert_eq!(c.norm_hs(Some("")), None);
        assert_eq!(c.norm_ml(&Value::Null), None);
        assert_eq!(c.norm_ml(&Value::String("".into())), None);
        assert_eq!(c.hs_to_ml(Some("Ada")).unwrap().as_deref(), Some("Ada"));
        assert_eq!(c.ml_to_hs(Some("Ada")).unwrap().as_deref(), Some("Ada"));
        assert_eq!(c.hs_wire(None), "");
        assert_eq!(c.ml_wire(None), Value::Null);
    }

    #[test]
    fn option_value_goes_to_mailerlite_as_its_label() {
        let c = conv(select(), MlType::Text);
        assert_eq!(c.hs_to_ml(Some("saas")).unwrap().as_deref(), Some("SaaS"));
    }

    #[test]
    fn mailerlite_label_or_value_any_case_becomes_the_option_value() {
        let c = conv(select(), MlType::Text);
        for input in ["SaaS", "saas", "SAAS", " Saas "] {
            assert_eq!(c.ml_to_hs(Some(input)).unwrap().as_deref(), Some("saas"), "{input}");
        }
        assert!(c.equivalent(Some("saas"), Some("SaaS")));
        assert!(c.equivalent(Some("saas"), Some("saas")));
    }

    #[test]
    fn a_value_that_matches_no_option_is_an_error_naming_property_value_and_options() {
        let c = conv(select(), MlType::Text);
        let err = c.ml_to_hs(Some("Purple")).unwrap_err();
        assert_eq!(
            err,
            ValueError::NotAnOption {
                property: "industry_segment".into(),
                field: "f".into(),
                value: "Purple".into(),
                allowed: vec!["SaaS".into(), "Retail".into()],
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"Purple\"") && msg.contains("industry_segment") && msg.contains("SaaS, Retail"),
            "{msg}"
        );
    }

    #[test]
    fn multi_select_joins_with_comma_and_splits_on_comma_or_semicolon() {
        let c = conv(checkbox(), MlType::Text);
        assert_eq!(c.norm_hs(Some("events;webinars;events")).as_deref(), Some("webinars;events"));
        assert_eq!(c.hs_to_ml(Some("webinars;events")).unwrap().as_deref(), Some("Webinars, Events"));
        assert_eq!(c.ml_to_hs(Some("events; Product news,WEBINARS")).unwrap().as_deref(), Some("webinars;events;news"));
        assert!(
            matches!(c.ml_to_hs(Some("Webinars, Golf")), Err(ValueError::NotAnOption { value, .. }) if value == "Golf")
        );
        assert_eq!(c.ml_to_hs(Some(" , ")).unwrap(), None);
    }

    #[test]
    fn numbers_convert_both_ways_and_refuse_text() {
        let c = conv(HsProperty::new("employees", HsType::Number, "number"), MlType::Number);
        assert_eq!(c.norm_ml(&serde_json::json!(17.5)).as_deref(), Some("17.5"));
        assert_eq!(c.norm_hs(Some("17.50")).as_deref(), Some("17.5"));
        assert_eq!(c.ml_wire(Some("17.5")), serde_json::json!(17.5));
        let t = conv(HsProperty::new("employees", HsType::Number, "number"), MlType::Text);
        assert!(matches!(t.ml_to_hs(Some("1,200")), Err(ValueError::NotANumber { to: Side::HubSpot, .. })));
        let s = conv(HsProperty::new("notes", HsType::String, "text"), MlType::Number);
        assert!(matches!(s.hs_to_ml(Some("lots")), Err(ValueError::NotANumber { to: Side::MailerLite, .. })));
    }

    #[test]
    fn bools_read_yes_no_and_write_true_false() {
        let c = conv(HsProperty::new("vip", HsType::Bool, "booleancheckbox"), MlType::Text);
        assert_eq!(c.ml_to_hs(Some("Yes")).unwrap().as_deref(), Some("true"));
        assert_eq!(c.hs_to_ml(Some("false")).unwrap().as_deref(), Some("false"));
        assert!(c.ml_to_hs(Some("maybe")).is_err());
        let n = conv(HsProperty::new("vip", HsType::Bool, "booleancheckbox"), MlType::Number);
        assert_eq!(n.hs_to_ml(Some("true")).unwrap().as_deref(), Some("1"));
        assert_eq!(n.ml_to_hs(Some("0")).unwrap().as_deref(), Some("false"));
        let labelled = conv(
            HsProperty::new("vip", HsType::Bool, "booleancheckbox").with_options(&[("true", "Yes"), ("false", "No")]),
            MlType::Text,
        );
        assert_eq!(labelled.hs_to_ml(Some("true")).unwrap().as_deref(), Some("Yes"));
    }

    #[test]
    fn datetime_to_mailerlite_date_keeps_the_utc_day() {
        let c = conv(HsProperty::new("last_demo_at", HsType::Datetime, "date"), MlType::Date);
        assert_eq!(c.norm_hs(Some("1582947017000")).as_deref(), Some("2020-02-29T03:30:17.000Z"));
        assert_eq!(c.hs_to_ml(Some("2020-02-29T03:30:17.000Z")).unwrap().as_deref(), Some("2020-02-29"));
        assert_eq!(c.ml_to_hs(Some("2020-02-29")).unwrap().as_deref(), Some("2020-02-29T00:00:00.000Z"));
        assert!(c.equivalent(Some("2020-02-29T03:30:17.000Z"), Some("2020-02-29")));
        let d = conv(HsProperty::new("signup_date", HsType::Date, "date"), MlType::Date);
        assert_eq!(d.norm_hs(Some("1430438400000")).as_deref(), Some("2015-05-01"));
        assert!(matches!(
            conv(HsProperty::new("signup_date", HsType::Date, "date"), MlType::Text).ml_to_hs(Some("May 1st")),
            Err(ValueError::NotADate { .. })
        ));
    }

    #[test]
    fn type_pairs_without_a_conversion_are_refused() {
        let date = HsProperty::new("signup_date", HsType::Date, "date");
        assert_eq!(Conversion::new(&date, &MlField::new("n", MlType::Number)), Err(NoConversion));
        assert_eq!(Conversion::new(&select(), &MlField::new("d", MlType::Date)), Err(NoConversion));
        let json = HsProperty::new("blob", HsType::Other("json".into()), "text");
        assert_eq!(Conversion::new(&json, &MlField::new("t", MlType::Text)), Err(NoConversion));
    }
}
