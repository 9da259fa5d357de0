//! The proto3 JSON mapping (through prost-reflect's serde support), and
//! untyped JSON values.

use base64::Engine as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};

use super::{Limits, Value};
use crate::error::{HmsError, Result};

/// Counts nesting before parsing, so a depth bomb fails in one linear scan
/// with RESOURCE_EXHAUSTED instead of reaching the parser.
fn check_depth(bytes: &[u8], limits: &Limits) -> Result<()> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limits.max_depth as usize {
                    return Err(limits.depth_exceeded(depth));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_error(error: serde_json::Error) -> HmsError {
    HmsError::decode(format!("JSON: {error}"))
}

pub fn decode_message(
    desc: &MessageDescriptor,
    bytes: &[u8],
    limits: &Limits,
) -> Result<DynamicMessage> {
    check_depth(bytes, limits)?;
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(parse_error)?;
    check_integers(desc, &json, desc.name())?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    DynamicMessage::deserialize_with_options(desc.clone(), json, &options).map_err(|e| {
        HmsError::decode(format!("JSON is not a valid {}: {e}", desc.full_name()))
            .with_detail("type", desc.full_name())
    })
}

/// Refuses JSON numbers outside the range of their integer field, which the
/// proto3 JSON parser underneath would clamp to the nearest limit.
fn check_integers(desc: &MessageDescriptor, json: &serde_json::Value, path: &str) -> Result<()> {
    let serde_json::Value::Object(members) = json else {
        return Ok(());
    };
    if desc.package_name() == "google.protobuf" {
        return Ok(());
    }
    for (name, value) in members {
        let Some(field) = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name))
        else {
            continue;
        };
        let field_path = format!("{path}.{name}");
        let kind = if field.is_map() {
            field
                .kind()
                .as_message()
                .expect("a map field has an entry message")
                .map_entry_value_field()
                .kind()
        } else {
            field.kind()
        };
        let items: Vec<&serde_json::Value> = match value {
            serde_json::Value::Array(items) if field.is_list() => items.iter().collect(),
            serde_json::Value::Object(entries) if field.is_map() => entries.values().collect(),
            single => vec![single],
        };
        for item in items {
            check_integer(&kind, item, &field_path)?;
        }
    }
    Ok(())
}

fn check_integer(kind: &Kind, value: &serde_json::Value, path: &str) -> Result<()> {
    let serde_json::Value::Number(number) = value else {
        if let Kind::Message(inner) = kind {
            return check_integers(inner, value, path);
        }
        return Ok(());
    };
    let fits = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            number.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
        }
        Kind::Uint32 | Kind::Fixed32 => number.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            number.as_i64().is_some()
                || number
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            number.as_u64().is_some()
                || number
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(&f))
        }
        _ => true,
    };
    if fits {
        return Ok(());
    }
    Err(HmsError::decode(format!(
        "field `{path}`: {number} is out of the range of its {kind:?} type"
    ))
    .with_detail("field", path))
}

pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

/// Writes the proto3 JSON form with the keys of every object sorted, so the
/// same message always gives the same bytes (map fields are hash maps).
pub fn encode_message(message: &DynamicMessage, out: &mut Vec<u8>) -> Result<()> {
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| unrepresentable(&message.descriptor(), e))?;
    serde_json::to_writer(out, &value).expect("a JSON value always serializes");
    Ok(())
}

/// A value the JSON mapping cannot express (a Timestamp outside
/// 0001..9999, a Duration over 10,000 years): valid protobuf, no JSON or
/// CBOR form.
pub fn unrepresentable(desc: &MessageDescriptor, error: serde_json::Error) -> HmsError {
    HmsError::new(
        crate::error::Code::OutOfRange,
        format!("a {} has no JSON or CBOR form: {error}", desc.full_name()),
    )
    .with_detail("type", desc.full_name())
}

pub fn decode_value(bytes: &[u8], limits: &Limits) -> Result<Value> {
    check_depth(bytes, limits)?;
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(parse_error)?;
    Ok(from_json(json))
}

pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &to_json(value)).expect("a JSON value always serializes");
}

pub fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i as i128)
            } else if let Some(u) = n.as_u64() {
                Value::Integer(u as i128)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::Text(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Value::Text(k), from_json(v)))
                .collect(),
        ),
    }
}

/// JSON has no bytes, no non-finite numbers and only text keys: bytes
/// become base64 text, NaN and infinities the strings of the proto3 JSON
/// mapping, other keys their text form.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => {
            if let Ok(small) = i64::try_from(*i) {
                small.into()
            } else if let Ok(big) = u64::try_from(*i) {
                big.into()
            } else {
                serde_json::Value::String(i.to_string())
            }
        }
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => serde_json::Value::Number(n),
            None if f.is_nan() => "NaN".into(),
            None if *f > 0.0 => "Infinity".into(),
            None => "-Infinity".into(),
        },
        Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect(),
        ),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => to_json(other).to_string(),
    }
}
