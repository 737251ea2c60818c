//! Request bodies: JSON only, within the body limit, unknown fields refused, and every field
//! checked on its own so that one answer names every failing field.
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use orgbase_domain::{FieldError, ValidationErrors};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// One field of a request body: absent, `null`, a value of the right type, or a value of the
/// wrong type (kept as the reason, so that the other fields are still checked).
#[derive(Debug, Clone, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    Invalid(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Field::Null,
            v => match serde_json::from_value(v.clone()) {
                Ok(t) => Field::Value(t),
                // JSON has one number type: `671.0` is the integer 671 to JSON Schema (and to
                // most clients' encoders), so a whole number written with a point is taken.
                Err(e) => match integral(&v).and_then(|w| serde_json::from_value(w).ok()) {
                    Some(t) => Field::Value(t),
                    None => Field::Invalid(e.to_string()),
                },
            },
        })
    }
}

/// `v` with every whole number written as a float (`2.0`) as an integer, if it has any.
fn integral(v: &Value) -> Option<Value> {
    // Beyond 2^53 a float no longer names one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| Value::from(f as i64)),
        Value::Array(items) => {
            let changed: Vec<Option<Value>> = items.iter().map(integral).collect();
            changed.iter().any(Option::is_some).then(|| {
                Value::Array(
                    items
                        .iter()
                        .zip(changed)
                        .map(|(old, new)| new.unwrap_or_else(|| old.clone()))
                        .collect(),
                )
            })
        }
        _ => None,
    }
}

/// Only for the schema generator, which shows a `#[serde(default)]` struct's defaults.
impl<T: serde::Serialize> serde::Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<T> Field<T> {
    fn invalid(name: &str, reason: String, errors: &mut ValidationErrors) {
        errors.push(FieldError::new(name, "invalid_type", reason));
    }

    /// A field that must be given and not be null.
    pub fn required(self, name: &str, errors: &mut ValidationErrors) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent | Field::Null => {
                errors.add(name, "required", "is required");
                None
            }
            Field::Invalid(r) => {
                Self::invalid(name, r, errors);
                None
            }
        }
    }

    /// A field that may be left out, but not set to null.
    pub fn optional(self, name: &str, errors: &mut ValidationErrors) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent => None,
            Field::Null => {
                errors.add(name, "invalid_type", "must not be null");
                None
            }
            Field::Invalid(r) => {
                Self::invalid(name, r, errors);
                None
            }
        }
    }

    /// A nullable field: `None` when absent, `Some(None)` when null (clear it).
    pub fn nullable(self, name: &str, errors: &mut ValidationErrors) -> Option<Option<T>> {
        match self {
            Field::Value(v) => Some(Some(v)),
            Field::Null => Some(None),
            Field::Absent => None,
            Field::Invalid(r) => {
                Self::invalid(name, r, errors);
                None
            }
        }
    }
}

/// The field names a struct deserializes (serde hands them to `deserialize_struct`).
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Checks a JSON object against a struct's fields: each unknown key is an error of its own.
pub fn unknown_fields<T: DeserializeOwned>(
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
    errors: &mut ValidationErrors,
) {
    let known = struct_fields::<T>();
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errors.add(
                format!("{prefix}{k}"),
                "unknown_field",
                "is not a field of this request",
            );
        }
    }
}

/// A JSON object body. `.1` holds the unknown fields found, to which the handler adds the rest.
pub struct JsonBody<T>(pub T, pub ValidationErrors);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.config.body_limit;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::InvalidBody(e.body_text())
            }
        })?;
        parse_object::<T>(&bytes)
    }
}

/// A JSON object body that may also be left out entirely (no bytes at all, whatever the
/// content type): then `T::default()`. For routes whose every field is optional, so that a
/// client sending nothing is served.
pub struct OptionalJsonBody<T>(pub T, pub ValidationErrors);

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(Self(T::default(), ValidationErrors::new()));
        }
        let JsonBody(t, e) = JsonBody::<T>::from_request(req, state).await?;
        Ok(Self(t, e))
    }
}

/// Parses a body that must be a JSON object into `T`, noting its unknown fields.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object".into(),
        ));
    };
    let mut errors = ValidationErrors::new();
    unknown_fields::<T>(&obj, "", &mut errors);
    let t = T::deserialize(Value::Object(obj)).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    Ok(JsonBody(t, errors))
}

/// A nested object given as a field: its unknown keys are errors too.
pub fn nested<T: DeserializeOwned>(
    field: Field<Value>,
    name: &str,
    errors: &mut ValidationErrors,
    nullable: bool,
) -> Option<Option<T>> {
    let v = if nullable {
        field.nullable(name, errors)?
    } else {
        Some(field.optional(name, errors)?)
    };
    let Some(v) = v else { return Some(None) };
    let Value::Object(obj) = v else {
        errors.add(name, "invalid_type", "must be an object");
        return None;
    };
    unknown_fields::<T>(&obj, &format!("{name}."), errors);
    match T::deserialize(Value::Object(obj)) {
        Ok(t) => Some(Some(t)),
        Err(e) => {
            errors.add(name, "invalid_type", e.to_string());
            None
        }
    }
}

/// A path id that is not a UUID names nothing: 404, like any id that does not exist.
pub fn org_id(raw: &str) -> Result<orgbase_domain::OrganizationId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Body {
        name: Field<String>,
        country_code: Field<String>,
        count: Field<i64>,
    }

    #[test]
    fn a_whole_number_with_a_point_is_an_integer() {
        let f: Field<i64> = serde_json::from_str("671.0").unwrap();
        assert!(matches!(f, Field::Value(671)));
        let f: Field<Vec<i64>> = serde_json::from_str("[2, 3.0]").unwrap();
        assert!(matches!(f, Field::Value(ref v) if v == &[2, 3]));
        for not_whole in ["671.5", "1e300", "\"671\""] {
            let f: Field<i64> = serde_json::from_str(not_whole).unwrap();
            assert!(matches!(f, Field::Invalid(_)), "{not_whole}");
        }
    }

    #[test]
    fn introspects_serialized_field_names() {
        assert_eq!(struct_fields::<Body>(), ["name", "countryCode", "count"]);
    }

    #[test]
    fn collects_every_problem() {
        let JsonBody(b, mut errs) =
            parse_object::<Body>(br#"{"name": 5, "count": null, "x": 1, "y": 2}"#)
                .ok()
                .unwrap();
        assert!(b.name.required("name", &mut errs).is_none());
        assert!(b.country_code.required("countryCode", &mut errs).is_none());
        assert!(b.count.optional("count", &mut errs).is_none());
        let fields: Vec<_> = errs
            .0
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("x", "unknown_field"),
                ("y", "unknown_field"),
                ("name", "invalid_type"),
                ("countryCode", "required"),
                ("count", "invalid_type")
            ]
        );
    }

    #[test]
    fn distinguishes_malformed_from_wrong_shape() {
        assert!(matches!(
            parse_object::<Body>(b"{"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_object::<Body>(b"[1]"),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            parse_object::<Body>(b""),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
