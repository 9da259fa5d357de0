//! The CBOR mapping of typed messages: the data model of the proto3 JSON
//! mapping with native CBOR types (docs/formats.md).
//!
//! Messages are maps keyed by proto field names; fields at their default
//! value are left out. Integers stay integers (64-bit ones too), bytes stay
//! byte strings, enums are written as names (numbers when the value is not
//! in the schema) and read as either. Well-known types
//! (`google.protobuf.*`) keep their JSON mapping, e.g. a Timestamp is an
//! RFC 3339 string.

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value as Field,
};

use super::Value;
use super::json;
use crate::error::{HmsError, Result};

fn is_well_known(desc: &MessageDescriptor) -> bool {
    desc.package_name() == "google.protobuf"
}

/// Fails only for values the JSON mapping cannot express, e.g. a Timestamp
/// outside 0001..9999.
pub fn to_value(message: &DynamicMessage) -> Result<Value> {
    let desc = message.descriptor();
    if is_well_known(&desc) {
        let json = message
            .serialize_with_options(serde_json::value::Serializer, &json::serialize_options())
            .map_err(|e| json::unrepresentable(&desc, e))?;
        return Ok(json::from_json(json));
    }
    message
        .fields()
        .map(|(field, value)| {
            Ok((
                Value::Text(field.name().to_owned()),
                field_to_value(&field, value)?,
            ))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Map)
}

fn field_to_value(field: &FieldDescriptor, value: &Field) -> Result<Value> {
    match value {
        Field::List(items) => items
            .iter()
            .map(|item| scalar_to_value(&field.kind(), item))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        Field::Map(entries) => {
            let value_kind = field
                .kind()
                .as_message()
                .expect("a map field has an entry message")
                .map_entry_value_field()
                .kind();
            entries
                .iter()
                .map(|(key, value)| {
                    Ok((map_key_to_value(key), scalar_to_value(&value_kind, value)?))
                })
                .collect::<Result<Vec<_>>>()
                .map(Value::Map)
        }
        single => scalar_to_value(&field.kind(), single),
    }
}

fn map_key_to_value(key: &MapKey) -> Value {
    match key {
        MapKey::Bool(b) => Value::Bool(*b),
        MapKey::I32(i) => Value::Integer(*i as i128),
        MapKey::I64(i) => Value::Integer(*i as i128),
        MapKey::U32(u) => Value::Integer(*u as i128),
        MapKey::U64(u) => Value::Integer(*u as i128),
        MapKey::String(s) => Value::Text(s.clone()),
    }
}

fn scalar_to_value(kind: &Kind, value: &Field) -> Result<Value> {
    Ok(match value {
        Field::Bool(b) => Value::Bool(*b),
        Field::I32(i) => Value::Integer(*i as i128),
        Field::I64(i) => Value::Integer(*i as i128),
        Field::U32(u) => Value::Integer(*u as i128),
        Field::U64(u) => Value::Integer(*u as i128),
        Field::F32(f) => Value::Float(*f as f64),
        Field::F64(f) => Value::Float(*f),
        Field::String(s) => Value::Text(s.clone()),
        Field::Bytes(b) => Value::Bytes(b.to_vec()),
        Field::EnumNumber(number) => match kind.as_enum() {
            Some(enum_desc) => enum_to_value(enum_desc, *number),
            None => Value::Integer(*number as i128),
        },
        Field::Message(message) => to_value(message)?,
        Field::List(_) | Field::Map(_) => unreachable!("lists and maps are never nested directly"),
    })
}

/// An enum value: its name, a number the schema does not know, or null for
/// `google.protobuf.NullValue`.
pub fn enum_to_value(desc: &prost_reflect::EnumDescriptor, number: i32) -> Value {
    if desc.full_name() == "google.protobuf.NullValue" {
        return Value::Null;
    }
    match desc.get_value(number) {
        Some(value) => Value::Text(value.name().to_owned()),
        None => Value::Integer(number as i128),
    }
}

fn mismatch(path: &str, expected: &str, got: &Value) -> HmsError {
    HmsError::decode(format!(
        "field `{path}`: expected {expected}, got {}",
        got.kind_name()
    ))
    .with_detail("field", path)
}

pub fn from_value(desc: &MessageDescriptor, value: Value) -> Result<DynamicMessage> {
    message_from_value(desc, value, desc.name())
}

fn message_from_value(
    desc: &MessageDescriptor,
    value: Value,
    path: &str,
) -> Result<DynamicMessage> {
    if is_well_known(desc) {
        let json = json::to_json(&value);
        return DynamicMessage::deserialize(desc.clone(), json).map_err(|e| {
            HmsError::decode(format!(
                "field `{path}`: not a valid {}: {e}",
                desc.full_name()
            ))
            .with_detail("field", path)
        });
    }
    let Value::Map(entries) = value else {
        return Err(mismatch(path, "a map", &value));
    };
    let mut message = DynamicMessage::new(desc.clone());
    for (key, value) in entries {
        let Value::Text(name) = key else {
            return Err(mismatch(path, "text keys (field names)", &key));
        };
        // Unknown names are skipped, as protobuf skips unknown numbers, so an
        // older core accepts messages of newer schemas.
        let Some(field) = desc
            .get_field_by_name(&name)
            .or_else(|| desc.get_field_by_json_name(&name))
        else {
            continue;
        };
        if value == Value::Null && !is_null_value(&field.kind()) {
            continue;
        }
        let field_path = format!("{path}.{name}");
        let field_value = field_from_value(&field, value, &field_path)?;
        message.set_field(&field, field_value);
    }
    Ok(message)
}

fn is_null_value(kind: &Kind) -> bool {
    match kind {
        Kind::Message(desc) => desc.full_name() == "google.protobuf.Value",
        Kind::Enum(desc) => desc.full_name() == "google.protobuf.NullValue",
        _ => false,
    }
}

fn field_from_value(field: &FieldDescriptor, value: Value, path: &str) -> Result<Field> {
    if field.is_map() {
        let entry = field.kind();
        let entry = entry
            .as_message()
            .expect("a map field has an entry message");
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let Value::Map(entries) = value else {
            return Err(mismatch(path, "a map", &value));
        };
        let mut map = std::collections::HashMap::with_capacity(entries.len());
        for (key, value) in entries {
            let key = map_key_from_value(&key_kind, key, path)?;
            map.insert(key, scalar_from_value(&value_kind, value, path)?);
        }
        return Ok(Field::Map(map));
    }
    if field.is_list() {
        let Value::Array(items) = value else {
            return Err(mismatch(path, "an array", &value));
        };
        let kind = field.kind();
        return items
            .into_iter()
            .map(|item| scalar_from_value(&kind, item, path))
            .collect::<Result<Vec<_>>>()
            .map(Field::List);
    }
    scalar_from_value(&field.kind(), value, path)
}

fn map_key_from_value(kind: &Kind, key: Value, path: &str) -> Result<MapKey> {
    // JSON can only carry text keys, so numbers and bools also come as text.
    let key = match (kind, key) {
        (Kind::String, key) => key,
        (Kind::Bool, Value::Text(text)) => match text.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(mismatch(path, "a bool key", &Value::Text(text))),
        },
        (_, Value::Text(text)) => match text.parse::<i128>() {
            Ok(number) => Value::Integer(number),
            Err(_) => return Err(mismatch(path, "an integer key", &Value::Text(text))),
        },
        (_, key) => key,
    };
    Ok(match scalar_from_value(kind, key, path)? {
        Field::Bool(b) => MapKey::Bool(b),
        Field::I32(i) => MapKey::I32(i),
        Field::I64(i) => MapKey::I64(i),
        Field::U32(u) => MapKey::U32(u),
        Field::U64(u) => MapKey::U64(u),
        Field::String(s) => MapKey::String(s),
        _ => unreachable!("map keys are integers, bools or strings"),
    })
}

fn integer<T: TryFrom<i128>>(value: &Value, path: &str, expected: &str) -> Result<T> {
    let number = match value {
        Value::Integer(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i128),
        Value::Text(text) => text.parse::<i128>().ok(),
        _ => None,
    };
    number
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| mismatch(path, expected, value))
}

fn float(value: &Value, path: &str) -> Result<f64> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Integer(i) => Ok(*i as f64),
        Value::Text(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| mismatch(path, "a number", value)),
        },
        _ => Err(mismatch(path, "a number", value)),
    }
}

fn scalar_from_value(kind: &Kind, value: Value, path: &str) -> Result<Field> {
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Field::I32(integer(&value, path, "a 32-bit integer")?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Field::I64(integer(&value, path, "a 64-bit integer")?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Field::U32(integer(&value, path, "an unsigned 32-bit integer")?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Field::U64(integer(&value, path, "an unsigned 64-bit integer")?)
        }
        Kind::Float => Field::F32(float(&value, path)? as f32),
        Kind::Double => Field::F64(float(&value, path)?),
        Kind::Bool => match value {
            Value::Bool(b) => Field::Bool(b),
            other => return Err(mismatch(path, "a bool", &other)),
        },
        Kind::String => match value {
            Value::Text(text) => Field::String(text),
            other => return Err(mismatch(path, "text", &other)),
        },
        Kind::Bytes => match value {
            Value::Bytes(bytes) => Field::Bytes(bytes.into()),
            Value::Text(text) => Field::Bytes(
                decode_base64(&text)
                    .ok_or_else(|| {
                        mismatch(path, "bytes or base64 text", &Value::Text(text.clone()))
                    })?
                    .into(),
            ),
            other => return Err(mismatch(path, "bytes", &other)),
        },
        Kind::Enum(desc) => match value {
            Value::Text(name) => match desc.get_value_by_name(&name) {
                Some(v) => Field::EnumNumber(v.number()),
                None => {
                    return Err(HmsError::decode(format!(
                        "field `{path}`: `{name}` is not a value of {}",
                        desc.full_name()
                    ))
                    .with_detail("field", path));
                }
            },
            Value::Null if desc.full_name() == "google.protobuf.NullValue" => Field::EnumNumber(0),
            other => Field::EnumNumber(integer(&other, path, "an enum name or number")?),
        },
        Kind::Message(desc) => Field::Message(message_from_value(desc, value, path)?),
    })
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let engines = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD];
    engines.iter().find_map(|engine| engine.decode(text).ok())
}

/// Deepest nesting of messages, lists and maps in `message` (1 for a flat
/// message), after checking that every well-known value in it is valid
/// (a Timestamp within 0001..9999 and nanos in range, a Duration within
/// ±10,000 years), as every format must be able to carry it.
pub fn checked_depth(message: &DynamicMessage) -> Result<usize> {
    check_well_known(message)?;
    let mut deepest = 0;
    for (_, value) in message.fields() {
        deepest = deepest.max(field_depth(value)?);
    }
    Ok(1 + deepest)
}

fn field_depth(value: &Field) -> Result<usize> {
    Ok(match value {
        Field::Message(message) => checked_depth(message)?,
        Field::List(items) => {
            let mut deepest = 0;
            for item in items {
                deepest = deepest.max(field_depth(item)?);
            }
            deepest
        }
        Field::Map(entries) => {
            let mut deepest = 0;
            for value in entries.values() {
                deepest = deepest.max(field_depth(value)?);
            }
            deepest
        }
        _ => 0,
    })
}

/// Whether a google.protobuf.Timestamp has an RFC 3339 form: 0001-01-01 to
/// 9999-12-31, nanos in 0..1e9 (what every format can carry).
pub fn timestamp_is_valid(seconds: i64, nanos: i64) -> bool {
    (-62_135_596_800..=253_402_300_799).contains(&seconds) && (0..1_000_000_000).contains(&nanos)
}

fn check_well_known(message: &DynamicMessage) -> Result<()> {
    let desc = message.descriptor();
    let number = |name: &str| match message.get_field_by_name(name).as_deref() {
        Some(Field::I64(n)) => *n,
        Some(Field::I32(n)) => *n as i64,
        _ => 0,
    };
    let valid = match desc.full_name() {
        "google.protobuf.Timestamp" => timestamp_is_valid(number("seconds"), number("nanos")),
        "google.protobuf.Duration" => {
            let (seconds, nanos) = (number("seconds"), number("nanos"));
            (-315_576_000_000..=315_576_000_000).contains(&seconds)
                && (-999_999_999..=999_999_999).contains(&nanos)
                && (seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0))
        }
        _ => true,
    };
    if valid {
        return Ok(());
    }
    Err(HmsError::decode(format!(
        "a {} out of its valid range (seconds {}, nanos {})",
        desc.full_name(),
        number("seconds"),
        number("nanos")
    ))
    .with_detail("type", desc.full_name()))
}
