//! `google.protobuf.Struct` ↔ JSON, for the free-form fields services store as `jsonb`.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number, Value as Json};

use crate::error::{Error, Result};

pub use agentic_proto::codec::MAX_STRUCT_DEPTH;

/// The JSON object of `value`; `None` is an empty object. Fails, naming `field`, on a
/// number JSON cannot hold (NaN, infinity), or on nesting deeper than
/// [`MAX_STRUCT_DEPTH`] (the same limit, with the same words, as a request too deep to
/// decode at all gets from the codec).
pub fn from_struct(field: &str, value: Option<&Struct>) -> Result<Json> {
    let Some(value) = value else {
        return Ok(Json::Object(Map::new()));
    };
    object(field, value, 1)
}

/// [`from_struct`], refusing a value over `max_bytes` encoded (naming `field`).
pub fn from_struct_within(field: &str, value: Option<&Struct>, max_bytes: usize) -> Result<Json> {
    use prost::Message;
    if value.is_some_and(|value| value.encoded_len() > max_bytes) {
        return Err(Error::invalid(
            field,
            format!("must be at most {max_bytes} bytes encoded"),
        ));
    }
    from_struct(field, value)
}

/// PostgreSQL's `jsonb` cannot hold U+0000, in keys or strings.
fn no_nul(field: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Fails if a container at `depth` (the field's own object is 1) is too deep.
fn within_depth(field: &str, depth: usize) -> Result<()> {
    if depth > MAX_STRUCT_DEPTH {
        return Err(Error::invalid(field, agentic_proto::codec::too_deep()));
    }
    Ok(())
}

fn object(field: &str, value: &Struct, depth: usize) -> Result<Json> {
    within_depth(field, depth)?;
    let mut map = Map::with_capacity(value.fields.len());
    for (key, item) in &value.fields {
        no_nul(field, key)?;
        map.insert(key.clone(), from_value(field, item, depth)?);
    }
    Ok(Json::Object(map))
}

/// The JSON of `value`, held by a container at `depth`.
fn from_value(field: &str, value: &Value, depth: usize) -> Result<Json> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => Json::Number(
            Number::from_f64(*n)
                .ok_or_else(|| Error::invalid(field, "holds a number that is not finite"))?,
        ),
        Some(Kind::StringValue(s)) => {
            no_nul(field, s)?;
            Json::String(s.clone())
        }
        Some(Kind::ListValue(list)) => {
            within_depth(field, depth + 1)?;
            Json::Array(
                list.values
                    .iter()
                    .map(|item| from_value(field, item, depth + 1))
                    .collect::<Result<_>>()?,
            )
        }
        Some(Kind::StructValue(inner)) => object(field, inner, depth + 1)?,
    })
}

/// The `Struct` of a JSON object (anything else is an empty one).
pub fn to_struct(value: &Json) -> Struct {
    match value {
        Json::Object(map) => Struct {
            fields: map
                .iter()
                .map(|(key, item)| (key.clone(), to_value(item)))
                .collect(),
        },
        _ => Struct::default(),
    }
}

fn to_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Json::Object(_) => Kind::StructValue(to_struct(value)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_struct() {
        let json: Json = serde_json::json!({
            "a": 1.5, "b": [true, null, "x"], "c": {"d": {}}
        });
        assert_eq!(
            from_struct("config", Some(&to_struct(&json))).unwrap(),
            json
        );
        assert_eq!(from_struct("config", None).unwrap(), serde_json::json!({}));
    }

    /// `depth` levels of objects and lists, alternating, in an object.
    fn nested(depth: usize) -> Json {
        let inner = (2..depth).fold(serde_json::json!({}), |inner, level| {
            if level % 2 == 0 {
                serde_json::json!([inner])
            } else {
                serde_json::json!({ "k": inner })
            }
        });
        serde_json::json!({ "k": inner })
    }

    #[test]
    fn nesting_is_held_to_the_stated_depth() {
        let deepest = to_struct(&nested(MAX_STRUCT_DEPTH));
        assert!(from_struct("metadata", Some(&deepest)).is_ok());
        let too_deep = to_struct(&nested(MAX_STRUCT_DEPTH + 1));
        let Err(Error::InvalidArgument(violations)) = from_struct("metadata", Some(&too_deep))
        else {
            panic!("a value past the limit was accepted");
        };
        assert_eq!(violations[0].field, "metadata");
        assert_eq!(violations[0].description, agentic_proto::codec::too_deep());
    }

    #[test]
    fn nul_characters_jsonb_cannot_hold_are_refused() {
        let json: Json = serde_json::json!({"a\0b": 1});
        assert!(from_struct("m", Some(&to_struct(&json))).is_err());
        let json: Json = serde_json::json!({"a": ["x\0"]});
        assert!(from_struct("m", Some(&to_struct(&json))).is_err());
    }

    #[test]
    fn numbers_json_cannot_hold_are_refused_by_field() {
        let mut value = Struct::default();
        value.fields.insert(
            "x".into(),
            Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        );
        let Err(Error::InvalidArgument(violations)) = from_struct("agent.config", Some(&value))
        else {
            panic!("NaN accepted");
        };
        assert_eq!(violations[0].field, "agent.config");
    }
}
