//! The CBOR data model of a message read straight from its protobuf bytes.
//!
//! A built-in answer in CBOR used to go prost message -> protobuf bytes ->
//! `DynamicMessage` -> value -> CBOR; building the `DynamicMessage` was most
//! of the cost (30x the protobuf encode of a 1 KiB Agent). This walks the
//! protobuf bytes that prost wrote and builds the same value directly.
//! Well-known types keep their JSON mapping through [`message::to_value`],
//! and anything this walk does not expect (groups, malformed bytes) answers
//! `None`, so the caller takes the general path: the result is always the
//! one [`message::to_value`] gives.

use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use super::Value;
use super::message;
use crate::error::Result;

/// The value of the message `desc` encoded in `bytes`; `Ok(None)` when the
/// bytes hold something this walk leaves to the general path.
pub fn to_value(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Option<Value>> {
    if desc.package_name() == "google.protobuf" {
        let Ok(dynamic) = DynamicMessage::decode(desc.clone(), bytes) else {
            return Ok(None);
        };
        return message::to_value(&dynamic).map(Some);
    }
    let mut fields: Vec<(FieldDescriptor, Value)> = Vec::new();
    let mut buf = bytes;
    while buf.has_remaining() {
        let Ok((number, wire_type)) = decode_key(&mut buf) else {
            return Ok(None);
        };
        let Some(field) = desc.get_field(number) else {
            // Unknown to the schema: the general path drops it too.
            if skip(wire_type, &mut buf).is_none() {
                return Ok(None);
            }
            continue;
        };
        let kind = field.kind();
        if field.is_map() {
            let Some(entry) = length_delimited(wire_type, &mut buf) else {
                return Ok(None);
            };
            let Kind::Message(entry_desc) = &kind else {
                return Ok(None);
            };
            let Some((key, value)) = map_entry(entry_desc, entry)? else {
                return Ok(None);
            };
            match slot(&mut fields, &field, || Value::Map(Vec::new())) {
                Value::Map(entries) => match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some(existing) => existing.1 = value,
                    None => entries.push((key, value)),
                },
                _ => return Ok(None),
            }
        } else if field.is_list() {
            let mut items = Vec::new();
            if wire_type == WireType::LengthDelimited && is_packable(&kind) {
                let Some(mut packed) = length_delimited(wire_type, &mut buf) else {
                    return Ok(None);
                };
                while packed.has_remaining() {
                    let Some(item) = scalar(&kind, packed_wire_type(&kind), &mut packed)? else {
                        return Ok(None);
                    };
                    items.push(item);
                }
            } else {
                let Some(item) = scalar(&kind, wire_type, &mut buf)? else {
                    return Ok(None);
                };
                items.push(item);
            }
            match slot(&mut fields, &field, || Value::Array(Vec::new())) {
                Value::Array(list) => list.extend(items),
                _ => return Ok(None),
            }
        } else {
            let Some(value) = scalar(&kind, wire_type, &mut buf)? else {
                return Ok(None);
            };
            // A field written twice: prost never does, and merging
            // messages is the general path's business.
            if fields.iter().any(|(f, _)| f.number() == number) {
                return Ok(None);
            }
            fields.push((field, value));
        }
    }
    Ok(Some(Value::Map(
        fields
            .into_iter()
            // An empty list is no field at all to a DynamicMessage; prost
            // never writes one, but a packed list may hold no item. (Map
            // fields start with their first entry, so they are never empty.)
            .filter(|(field, value)| {
                !(field.is_list() && matches!(value, Value::Array(v) if v.is_empty()))
            })
            .map(|(field, value)| (Value::Text(field.name().to_owned()), value))
            .collect(),
    )))
}

/// The value of `field` among `fields`, added empty when first seen.
fn slot<'a>(
    fields: &'a mut Vec<(FieldDescriptor, Value)>,
    field: &FieldDescriptor,
    empty: impl FnOnce() -> Value,
) -> &'a mut Value {
    let at = match fields
        .iter()
        .position(|(f, _)| f.number() == field.number())
    {
        Some(at) => at,
        None => {
            fields.push((field.clone(), empty()));
            fields.len() - 1
        }
    };
    &mut fields[at].1
}

fn map_entry(entry: &MessageDescriptor, mut bytes: &[u8]) -> Result<Option<(Value, Value)>> {
    let (Some(key_field), Some(value_field)) = (entry.get_field(1), entry.get_field(2)) else {
        return Ok(None);
    };
    let (mut key, mut value) = (None, None);
    while bytes.has_remaining() {
        let Ok((number, wire_type)) = decode_key(&mut bytes) else {
            return Ok(None);
        };
        let target = match number {
            1 => (&key_field, &mut key),
            2 => (&value_field, &mut value),
            _ => {
                if skip(wire_type, &mut bytes).is_none() {
                    return Ok(None);
                }
                continue;
            }
        };
        let Some(read) = scalar(&target.0.kind(), wire_type, &mut bytes)? else {
            return Ok(None);
        };
        *target.1 = Some(read);
    }
    let key = match key {
        Some(key) => key,
        None => default_of(&key_field.kind())?,
    };
    let value = match value {
        Some(value) => value,
        None => default_of(&value_field.kind())?,
    };
    Ok(Some((key, value)))
}

/// The value of a field left out of the bytes: its kind's default.
fn default_of(kind: &Kind) -> Result<Value> {
    Ok(match kind {
        Kind::Message(desc) => message::to_value(&DynamicMessage::new(desc.clone()))?,
        Kind::Enum(desc) => message::enum_to_value(desc, 0),
        Kind::String => Value::Text(String::new()),
        Kind::Bytes => Value::Bytes(Vec::new()),
        Kind::Bool => Value::Bool(false),
        Kind::Float | Kind::Double => Value::Float(0.0),
        _ => Value::Integer(0),
    })
}

fn is_packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

fn packed_wire_type(kind: &Kind) -> WireType {
    match kind {
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => WireType::ThirtyTwoBit,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => WireType::SixtyFourBit,
        _ => WireType::Varint,
    }
}

fn length_delimited<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    if wire_type != WireType::LengthDelimited {
        return None;
    }
    let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (bytes, rest) = buf.split_at(len);
    *buf = rest;
    Some(bytes)
}

fn skip(wire_type: WireType, buf: &mut &[u8]) -> Option<()> {
    let len = match wire_type {
        WireType::Varint => return decode_varint(buf).ok().map(|_| ()),
        WireType::ThirtyTwoBit => 4,
        WireType::SixtyFourBit => 8,
        WireType::LengthDelimited => return length_delimited(wire_type, buf).map(|_| ()),
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    if buf.len() < len {
        return None;
    }
    buf.advance(len);
    Some(())
}

/// One value of `kind` (a scalar, an enum or a message).
fn scalar(kind: &Kind, wire_type: WireType, buf: &mut &[u8]) -> Result<Option<Value>> {
    let expected = match kind {
        Kind::String | Kind::Bytes | Kind::Message(_) => WireType::LengthDelimited,
        other => packed_wire_type(other),
    };
    if wire_type != expected {
        return Ok(None);
    }
    let value = match kind {
        Kind::Message(desc) => {
            let Some(bytes) = length_delimited(wire_type, buf) else {
                return Ok(None);
            };
            return to_value(desc, bytes);
        }
        Kind::String => {
            let Some(bytes) = length_delimited(wire_type, buf) else {
                return Ok(None);
            };
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(None);
            };
            Value::Text(text.to_owned())
        }
        Kind::Bytes => {
            let Some(bytes) = length_delimited(wire_type, buf) else {
                return Ok(None);
            };
            Value::Bytes(bytes.to_vec())
        }
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let bits = buf.get_u32_le();
            match kind {
                Kind::Float => Value::Float(f32::from_bits(bits) as f64),
                Kind::Fixed32 => Value::Integer(bits as i128),
                _ => Value::Integer(bits as i32 as i128),
            }
        }
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
            if buf.len() < 8 {
                return Ok(None);
            }
            let bits = buf.get_u64_le();
            match kind {
                Kind::Double => Value::Float(f64::from_bits(bits)),
                Kind::Fixed64 => Value::Integer(bits as i128),
                _ => Value::Integer(bits as i64 as i128),
            }
        }
        varint_kind => {
            let Ok(raw) = decode_varint(buf) else {
                return Ok(None);
            };
            match varint_kind {
                Kind::Bool => Value::Bool(raw != 0),
                Kind::Int32 => Value::Integer(raw as i32 as i128),
                Kind::Int64 => Value::Integer(raw as i64 as i128),
                Kind::Uint32 => Value::Integer(raw as u32 as i128),
                Kind::Uint64 => Value::Integer(raw as i128),
                Kind::Sint32 => Value::Integer(zigzag(raw) as i32 as i128),
                Kind::Sint64 => Value::Integer(zigzag(raw) as i128),
                Kind::Enum(desc) => message::enum_to_value(desc, raw as i32),
                _ => return Ok(None),
            }
        }
    };
    Ok(Some(value))
}

fn zigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}
