//! Deterministic protobuf output for dynamic messages.
//!
//! prost-reflect keeps map fields in hash maps, so it writes their entries in
//! a different order on every run. This pass rewrites an encoded message
//! with the entries of every map field sorted by key, as protobuf's
//! deterministic serialization does. Reordering never changes a length, so
//! every length prefix is copied as it is.

use std::borrow::Cow;
use std::cmp::Ordering;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};

use super::message::present_fields;

/// Appends the protobuf encoding of `message`, with map entries sorted.
pub fn encode(message: &DynamicMessage, out: &mut Vec<u8>) {
    if !contains_map(message) {
        encode_keeping_negative_zero(message, out);
        return;
    }
    let mut encoded = Vec::new();
    encode_keeping_negative_zero(message, &mut encoded);
    if !sort_map_entries(&message.descriptor(), &encoded, out) {
        out.extend_from_slice(&encoded);
    }
}

fn is_negative_zero(value: &Value) -> bool {
    match value {
        Value::F64(f) => *f == 0.0 && f.is_sign_negative(),
        Value::F32(f) => *f == 0.0 && f.is_sign_negative(),
        _ => false,
    }
}

/// Whether a float field without presence holds -0.0 anywhere in
/// `message`, map values included.
fn holds_negative_zero(message: &DynamicMessage) -> bool {
    present_fields(message).iter().any(|(field, value)| {
        (!field.is_list() && !field.is_map() && is_negative_zero(value.as_ref()))
            || nests_negative_zero(value.as_ref())
    })
}

/// Whether a message, list of messages or map inside `value` holds -0.0.
/// prost-reflect writes a map entry like a message without presence, so a
/// -0.0 map value is lost as well.
fn nests_negative_zero(value: &Value) -> bool {
    let in_message =
        |item: &Value| matches!(item, Value::Message(inner) if holds_negative_zero(inner));
    match value {
        Value::Message(inner) => holds_negative_zero(inner),
        Value::List(items) => items.iter().any(in_message),
        Value::Map(entries) => entries
            .values()
            .any(|item| is_negative_zero(item) || in_message(item)),
        _ => false,
    }
}

/// prost-reflect leaves out a float field without presence that holds
/// -0.0, taking it for the default; protobuf's reference encoders write it
/// (the default is +0.0 bit for bit). Messages holding one are written
/// here field by field, the rest by prost-reflect.
fn encode_keeping_negative_zero(message: &DynamicMessage, out: &mut Vec<u8>) {
    if !holds_negative_zero(message) {
        message.encode(out).expect("a Vec grows to fit any message");
        return;
    }
    let mut fields = present_fields(message);
    fields.sort_by_key(|(field, _)| field.number());
    for (field, value) in fields {
        let number = field.number();
        match value.as_ref() {
            Value::F64(f) if !field.is_list() && is_negative_zero(&value) => {
                encode_key(number, WireType::SixtyFourBit, out);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::F32(f) if !field.is_list() && is_negative_zero(&value) => {
                encode_key(number, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Message(inner) => encode_embedded(number, inner, out),
            Value::Map(entries) if nests_negative_zero(&value) => {
                // Each entry as the message it is on the wire, so that the
                // value goes through this same function.
                let Kind::Message(entry_type) = field.kind() else {
                    unreachable!("a map field's kind is its entry message")
                };
                let (key_field, value_field) = (
                    entry_type.map_entry_key_field(),
                    entry_type.map_entry_value_field(),
                );
                for (key, item) in entries {
                    let mut entry = DynamicMessage::new(entry_type.clone());
                    entry.set_field(&key_field, Value::from(key.clone()));
                    entry.set_field(&value_field, item.clone());
                    encode_embedded(number, &entry, out);
                }
            }
            Value::List(items) if matches!(field.kind(), Kind::Message(_)) => {
                for item in items {
                    if let Value::Message(inner) = item {
                        encode_embedded(number, inner, out);
                    }
                }
            }
            _ => {
                let mut one = DynamicMessage::new(message.descriptor());
                one.set_field(&field, Cow::into_owned(value));
                one.encode(out).expect("a Vec grows to fit any message");
            }
        }
    }
    // Extensions have presence, so prost-reflect writes them as they are.
    let mut extensions = DynamicMessage::new(message.descriptor());
    for (extension, value) in message.extensions() {
        extensions.set_extension(&extension, value.clone());
    }
    extensions
        .encode(out)
        .expect("a Vec grows to fit any message");
    for unknown in message.unknown_fields() {
        unknown.encode(out);
    }
}

fn encode_embedded(number: u32, message: &DynamicMessage, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    encode_keeping_negative_zero(message, &mut body);
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(&body);
}

/// Whether `message` holds a map field anywhere, i.e. needs the pass.
pub fn contains_map(message: &DynamicMessage) -> bool {
    message.fields().any(|(_, value)| value_contains_map(value))
}

fn value_contains_map(value: &Value) -> bool {
    match value {
        Value::Map(_) => true,
        Value::Message(message) => contains_map(message),
        Value::List(items) => items.iter().any(value_contains_map),
        _ => false,
    }
}

/// Rewrites `bytes`, a valid encoding of a `desc` message, into `out` with
/// map entries sorted; `false` (and `out` untouched) when the bytes do not
/// parse as records, in which case they stand. A group (wire types 3 and 4,
/// e.g. an unknown proto2 group) is one opaque record: its inside is copied
/// as it is, and the map entries around it are still sorted.
pub fn sort_map_entries(desc: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let ok = rewrite(desc, bytes, out).is_some();
    if !ok {
        out.truncate(start);
    }
    ok
}

struct Record<'a> {
    number: u32,
    /// The whole record: tag, length prefix and body.
    bytes: &'a [u8],
    /// Offset of the value: after the tag and, if any, the length prefix.
    value_at: usize,
    length_delimited: bool,
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn records(bytes: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let tag = varint(bytes, &mut at)?;
        let number = u32::try_from(tag >> 3).ok()?;
        let mut value_at = at;
        let length_delimited = match tag & 7 {
            0 => {
                varint(bytes, &mut at)?;
                false
            }
            1 => {
                at += 8;
                false
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                value_at = at;
                at = at.checked_add(len)?;
                true
            }
            5 => {
                at += 4;
                false
            }
            3 => {
                skip_group(bytes, &mut at, number)?;
                false
            }
            _ => return None,
        };
        records.push(Record {
            number,
            bytes: bytes.get(start..at)?,
            value_at: value_at - start,
            length_delimited,
        });
    }
    Some(records)
}

/// Moves `at` past the end-group tag of group `number`, whose start tag
/// was just read; `None` when the group never ends or ends with another
/// number. Nesting is bounded by the depth limit the bytes were decoded
/// under.
fn skip_group(bytes: &[u8], at: &mut usize, number: u32) -> Option<()> {
    loop {
        let tag = varint(bytes, at)?;
        let inner = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => {
                varint(bytes, at)?;
            }
            1 => *at = at.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(bytes, at)?).ok()?;
                *at = at.checked_add(len)?;
            }
            5 => *at = at.checked_add(4)?,
            3 => skip_group(bytes, at, inner)?,
            4 if inner == number => return (*at <= bytes.len()).then_some(()),
            _ => return None,
        }
        if *at > bytes.len() {
            return None;
        }
    }
}

#[derive(PartialEq, PartialOrd)]
enum MapKey<'a> {
    Number(i128),
    Text(&'a [u8]),
}

fn entry_key<'a>(entry: &MessageDescriptor, body: &'a [u8]) -> Option<MapKey<'a>> {
    let kind = entry.map_entry_key_field().kind();
    let mut key = match kind {
        Kind::String => MapKey::Text(&[]),
        _ => MapKey::Number(0),
    };
    for record in records(body)? {
        if record.number != 1 {
            continue;
        }
        // The value of a record: after its tag (and length prefix).
        let value = &record.bytes[record.value_at..];
        let fixed = |width: usize| value.get(..width);
        key = match kind {
            Kind::String => MapKey::Text(value),
            Kind::Int32 | Kind::Int64 => MapKey::Number(varint(value, &mut 0)? as i64 as i128),
            Kind::Uint32 | Kind::Uint64 | Kind::Bool => {
                MapKey::Number(varint(value, &mut 0)? as i128)
            }
            Kind::Sint32 | Kind::Sint64 => {
                let raw = varint(value, &mut 0)?;
                MapKey::Number(((raw >> 1) as i64 ^ -((raw & 1) as i64)) as i128)
            }
            Kind::Fixed32 => MapKey::Number(u32::from_le_bytes(fixed(4)?.try_into().ok()?) as i128),
            Kind::Sfixed32 => {
                MapKey::Number(i32::from_le_bytes(fixed(4)?.try_into().ok()?) as i128)
            }
            Kind::Fixed64 => MapKey::Number(u64::from_le_bytes(fixed(8)?.try_into().ok()?) as i128),
            Kind::Sfixed64 => {
                MapKey::Number(i64::from_le_bytes(fixed(8)?.try_into().ok()?) as i128)
            }
            _ => return None,
        };
    }
    Some(key)
}

fn rewrite(desc: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let records = records(bytes)?;
    let mut index = 0;
    while index < records.len() {
        let record = &records[index];
        let field = desc.get_field(record.number);
        match field {
            Some(field) if field.is_map() && record.length_delimited => {
                let entry = field.kind().as_message()?.clone();
                let mut group = Vec::new();
                while index < records.len() && records[index].number == record.number {
                    let body = &records[index].bytes[records[index].value_at..];
                    group.push((entry_key(&entry, body)?, index));
                    index += 1;
                }
                group.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
                for (_, at) in group {
                    let entry_record = &records[at];
                    out.extend_from_slice(&entry_record.bytes[..entry_record.value_at]);
                    rewrite(&entry, &entry_record.bytes[entry_record.value_at..], out)?;
                }
                continue;
            }
            Some(field) if record.length_delimited => match field.kind() {
                Kind::Message(inner) => {
                    out.extend_from_slice(&record.bytes[..record.value_at]);
                    rewrite(&inner, &record.bytes[record.value_at..], out)?;
                }
                _ => out.extend_from_slice(record.bytes),
            },
            _ => out.extend_from_slice(record.bytes),
        }
        index += 1;
    }
    Some(())
}
