//! JSON request bodies: at most [`MAX_BODY_BYTES`] (413 above), syntactically valid JSON (400
//! otherwise), and of the right shape (422 naming each bad field by its JSON path; a JSON object
//! wherever the document says object). Error messages never quote the submitted strings: a
//! misplaced token must not come back in an answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::error::{FieldProblem, HttpError};

/// The largest body the config API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many shape problems one answer lists at most.
const MAX_SHAPE_PROBLEMS: usize = 50;

/// A required JSON body.
pub struct JsonBody<T>(pub T);

/// An optional JSON body: an empty body, or JSON `null`, is `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        match read(req, state).await? {
            Some(bytes) => parse(&bytes).map(JsonBody),
            None => Err(HttpError::bad_request("the request has no body; it needs a JSON object")),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let value = match read(req, state).await? {
            Some(bytes) => parse_json(&bytes)?,
            None => Value::Null,
        };
        if value.is_null() {
            return Ok(OptionalJsonBody(T::default()));
        }
        from_value(value).map(OptionalJsonBody).map_err(HttpError::invalid)
    }
}

/// The body's bytes (`None` when there are none), within the size limit and declared as JSON.
/// A body of only white space is not JSON (400), not "no body".
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Option<Bytes>, HttpError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes"))
                .with_action("Send a smaller body.")
        } else {
            HttpError::bad_request(format!("the body could not be read: {rejection}"))
        }
    })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    });
    if !is_json {
        return Err(HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be JSON")
            .with_action("Send it with `Content-Type: application/json`."));
    }
    Ok(Some(bytes))
}

/// Parses a JSON body into `T`, naming every field of the wrong shape.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    from_value(parse_json(bytes)?).map_err(HttpError::invalid)
}

/// The body as JSON, or 400.
fn parse_json(bytes: &[u8]) -> Result<Value, HttpError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // Syntax errors say where (line, column), never what was there.
        HttpError::bad_request(format!("the body is not valid JSON ({e})"))
    })
}

/// Deserializes `value` into `T`. On failure, the bad value is taken out and deserialization is
/// tried again, so that one answer names every bad optional field rather than the first. A
/// missing field, or a bad required one, ends the search: the object cannot be read past it.
pub fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, Vec<FieldProblem>> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    while problems.len() < MAX_SHAPE_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, T>(Strict(&value)) {
            Ok(v) if problems.is_empty() => return Ok(v),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let message = redact(&err.inner().to_string());
        let missing = missing_field(&message);
        let field = match &missing {
            Some(name) => join(&segments, Some(name)),
            None => join(&segments, None),
        };
        if problems.iter().any(|p| p.field == field) {
            // Taking the value out made it a missing field: already reported.
            return Err(problems);
        }
        let fix = if missing.is_some() {
            "Add this field; GET /openapi.json describes every body."
        } else if message.starts_with("unknown field") {
            "Remove this field or correct its name; GET /openapi.json lists the fields."
        } else {
            "Send a value of the type GET /openapi.json gives for this field."
        };
        problems.push(FieldProblem::new(field, message, fix));
        if missing.is_some() || !remove(&mut value, &segments) {
            return Err(problems);
        }
    }
    Err(problems)
}

/// Deserializes a [`Value`] like `&Value` does, except that a struct is only read from a JSON
/// object: serde's derived structs also accept an array of their fields in order (`[null, null]`
/// would be a preview request, `[]` a retry of everything), which the document does not allow.
struct Strict<'de>(&'de Value);

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(StrictSeq(items.iter())),
            Value::Object(map) => visitor.visit_map(StrictMap { entries: map.iter(), value: None }),
            // JSON Schema's integers include `3.0`: a whole float in range reads as an integer.
            Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => {
                    visitor.visit_u64(f as u64)
                }
                Some(f) if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..0.0).contains(&f) => {
                    visitor.visit_i64(f as i64)
                }
                _ => self.0.deserialize_any(visitor),
            },
            scalar => scalar.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Only the tags of internally tagged enums (`"type": "lists"`) are read as identifiers from
    /// a value: a string. serde would also take a variant's index (`"type": 0`).
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    /// Externally tagged enums (the unit enums of the config: directions, sides, objects).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map ignored_any
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

struct StrictSeq<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for StrictSeq<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap<'de> {
    entries: serde_json::map::Iter<'de>,
    value: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for StrictMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::<serde_json::Error>::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let value = self.value.take().ok_or_else(|| de::Error::custom("a map value was read before its key"))?;
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `missing field `name`` → `name`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_string)
}

/// The JSON path of the segments (plus a missing child), like `config.mappings[0].direction`;
/// `(body)` for the body itself.
fn join(segments: &[Segment], child: Option<&str>) -> String {
    let mut path = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    if let Some(c) = child {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(c);
    }
    if path.is_empty() { "(body)".to_string() } else { path }
}

/// Removes the value at `segments` from its parent object; false when it cannot be removed
/// (the body itself, an array element whose removal would shift the others, or a path that
/// does not resolve).
fn remove(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut current = value;
    for s in parents {
        current = match (s, current) {
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, current) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        _ => false,
    }
}

/// Serde's messages quote the offending string (`invalid type: string "…"`, ``unknown variant
/// `…` ``); a secret sent in the wrong place must not be echoed, so quoted input is dropped.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let string_at = rest.find("string \"");
        let variant_at = rest.find("variant `");
        let (at, prefix, close) = match (string_at, variant_at) {
            (Some(s), Some(v)) if v < s => (v, "variant `", '`'),
            (Some(s), _) => (s, "string \"", '"'),
            (None, Some(v)) => (v, "variant `", '`'),
            (None, None) => {
                out.push_str(rest);
                return out;
            }
        };
        out.push_str(&rest[..at]);
        out.push_str(if close == '"' { "string" } else { "variant" });
        let quoted = &rest[at + prefix.len()..];
        // Skip to the closing quote (Debug-escaped strings escape inner quotes with `\`).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == close && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => rest = &quoted[i + close.len_utf8()..],
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Mapping {
        #[serde(default)]
        direction: Direction,
        property: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Direction {
        #[default]
        TwoWay,
        OneWay,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        name: Option<String>,
        mappings: Vec<Mapping>,
    }

    #[test]
    fn every_bad_field_is_named() {
        let body = serde_json::json!({
            "limit": "many",
            "name": 7,
            "mappings": [{"property": "a", "direction": "sideways"}, {"property": "b", "direction": 3}]
        });
        let problems = from_value::<Body>(body).unwrap_err();
        let mut fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["limit", "mappings[0].direction", "mappings[1].direction", "name"]);
    }

    #[test]
    fn a_bad_required_field_ends_the_search() {
        // Without a value for `property` the mapping cannot be read past it.
        let problems = from_value::<Body>(serde_json::json!({"mappings": [{"property": 5}]})).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["mappings[0].property"]);
    }

    #[test]
    fn a_missing_field_is_named_and_ends_the_search() {
        let problems = from_value::<Body>(serde_json::json!({"limit": -1})).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["limit", "mappings"]);
        assert!(problems[1].message.contains("missing field"), "{problems:?}");
    }

    #[test]
    fn submitted_strings_are_never_echoed() {
        let body = serde_json::json!({"mappings": [{"property": "a", "direction": "pat-na1-secret\"x"}], "limit": "also-secret"});
        let problems = from_value::<Body>(body).unwrap_err();
        for p in &problems {
            assert!(!p.message.contains("secret"), "{p:?}");
        }
        let message = |field: &str| problems.iter().find(|p| p.field == field).unwrap().message.clone();
        assert!(message("limit").starts_with("invalid type: string, expected"), "{problems:?}");
        assert!(message("mappings[0].direction").starts_with("unknown variant, expected"), "{problems:?}");
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Optional {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        mapping: Option<Mapping>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Rule {
        All,
        Lists { ids: Vec<String> },
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Tagged {
        rule: Rule,
    }

    #[test]
    fn structs_are_only_read_from_objects() {
        // serde would read `[null, null]` as an `Optional` and `["two_way", "a"]` as a mapping.
        let problems = from_value::<Optional>(serde_json::json!([null, null])).unwrap_err();
        assert_eq!(problems[0].field, "(body)");
        assert!(problems[0].message.starts_with("invalid type: sequence, expected struct"), "{problems:?}");
        assert!(from_value::<Optional>(serde_json::json!([])).is_err());
        let problems = from_value::<Optional>(serde_json::json!({"mapping": ["two_way", "a"]})).unwrap_err();
        assert_eq!(problems[0].field, "mapping");
        let problems = from_value::<Body>(serde_json::json!({"mappings": [["two_way", "a"]]})).unwrap_err();
        assert_eq!(problems[0].field, "mappings[0]");
        // Everything else reads as before: lists, options, nulls, numbers, enums, unknown fields.
        let body: Body = from_value(serde_json::json!({
            "limit": 7, "name": null, "mappings": [{"property": "a", "direction": "one_way"}, {"property": "b"}]
        }))
        .unwrap();
        assert_eq!((body.limit, body.name, body.mappings.len()), (Some(7), None, 2));
        assert!(matches!(body.mappings[0].direction, Direction::OneWay));
        assert!(from_value::<Optional>(serde_json::json!({"limit": 1.5})).is_err());
        // A whole float is an integer (as in JSON Schema), within the type's range.
        assert_eq!(from_value::<Optional>(serde_json::json!({"limit": 3.0})).unwrap().limit, Some(3));
        assert!(from_value::<Optional>(serde_json::json!({"limit": 4294967296.0})).is_err());
        assert!(from_value::<Optional>(serde_json::json!({"limit": -0.0})).unwrap().limit == Some(0));
        assert!(from_value::<Optional>(serde_json::json!({"limit": -1})).is_err());
        // An internally tagged enum's tag is its name, not the variant's index.
        let problems = from_value::<Tagged>(serde_json::json!({"rule": {"type": 0}})).unwrap_err();
        assert_eq!(problems[0].field, "rule.type", "{problems:?}");
        let tagged: Tagged = from_value(serde_json::json!({"rule": {"type": "lists", "ids": ["1"]}})).unwrap();
        assert!(matches!(tagged.rule, Rule::Lists { .. }));
        let unknown = from_value::<Optional>(serde_json::json!({"limits": 1})).unwrap_err();
        assert!(unknown[0].message.starts_with("unknown field"), "{unknown:?}");
    }

    #[test]
    fn syntax_errors_are_400() {
        let e = parse::<Body>(b"{\"mappings\": [").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse::<Body>(b"{}").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.problems[0].field, "mappings");
    }
}
