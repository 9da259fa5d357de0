//! The CBOR mapping of typed messages: the data model of the proto3 JSON
//! mapping with native CBOR types (docs/formats.md).
//!
//! Messages are maps keyed by proto field names; fields at their default
//! value are left out (-0.0 is not the default). Integers stay integers
//! (64-bit ones too), bytes stay byte strings, enums are written as names
//! (numbers when the value is not in the schema) and read as either.
//! Well-known types (`google.protobuf.*`) keep their JSON mapping, e.g. a
//! Timestamp is an RFC 3339 string.
//!
//! JSON input is read into messages here too ([`from_value`]), so JSON and
//! CBOR accept exactly the same things.

use std::borrow::Cow;

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as Field,
};

use super::json;
use super::{Value, cbor};
use crate::error::{HmsError, Result};

pub fn is_well_known(desc: &MessageDescriptor) -> bool {
    desc.package_name() == "google.protobuf"
}

/// Fails only for values the JSON mapping cannot express, e.g. a Timestamp
/// outside 0001..9999.
pub fn to_value(message: &DynamicMessage) -> Result<Value> {
    let desc = message.descriptor();
    if is_well_known(&desc) {
        return well_known_to_value(message);
    }
    let fields = present_fields(message).into_iter().map(|(field, value)| {
        Ok((
            Value::Text(field.name().to_owned()),
            field_to_value(&field.kind(), &value)?,
        ))
    });
    let extensions = present_extensions(message)
        .into_iter()
        .map(|(key, kind, value)| Ok((Value::Text(key), field_to_value(&kind, value)?)));
    fields
        .chain(extensions)
        .collect::<Result<Vec<_>>>()
        .map(Value::Map)
}

/// The extensions set in `message`, each with its key in JSON and CBOR
/// (`[full.extension.name]`, as the proto3 JSON mapping writes them) and
/// its kind.
pub fn present_extensions(message: &DynamicMessage) -> Vec<(String, Kind, &Field)> {
    message
        .extensions()
        .map(|(extension, value)| {
            (
                format!("[{}]", extension.full_name()),
                extension.kind(),
                value,
            )
        })
        .collect()
}

/// A well-known type in its JSON mapping, as a value. The float wrappers
/// are done here: the JSON serializer underneath turns NaN and the
/// infinities in them into null.
pub fn well_known_to_value(message: &DynamicMessage) -> Result<Value> {
    let desc = message.descriptor();
    if let Some(value) = float_wrapper_value(message) {
        return Ok(Value::Float(value));
    }
    check_representable(message)?;
    let json = message
        .serialize_with_options(serde_json::value::Serializer, &json::proto_name_options())
        .map_err(|e| json::unrepresentable(&desc, e))?;
    Ok(json::from_json(json))
}

/// The value of a google.protobuf.DoubleValue or FloatValue.
pub fn float_wrapper_value(message: &DynamicMessage) -> Option<f64> {
    match message.descriptor().full_name() {
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            Some(match message.get_field_by_name("value").as_deref() {
                Some(Field::F64(f)) => *f,
                Some(Field::F32(f)) => *f as f64,
                _ => 0.0,
            })
        }
        _ => None,
    }
}

/// The fields of `message` that its JSON and CBOR forms carry: the set
/// ones, plus float fields without presence that hold -0.0. -0.0 equals the
/// default 0 as a number but not bit for bit, and protobuf's reference
/// implementations (C++, Python, Go) write it; prost-reflect counts it as
/// the default and would leave it out.
pub fn present_fields(message: &DynamicMessage) -> Vec<(FieldDescriptor, Cow<'_, Field>)> {
    let mut fields: Vec<(FieldDescriptor, Cow<'_, Field>)> = message
        .fields()
        .map(|(field, value)| (field, Cow::Borrowed(value)))
        .collect();
    for field in message.descriptor().fields() {
        if !matches!(field.kind(), Kind::Double | Kind::Float)
            || field.is_list()
            || field.supports_presence()
        {
            continue;
        }
        let value = message.get_field(&field);
        let negative_zero = match value.as_ref() {
            Field::F64(f) => *f == 0.0 && f.is_sign_negative(),
            Field::F32(f) => *f == 0.0 && f.is_sign_negative(),
            _ => false,
        };
        if negative_zero {
            fields.push((field, value));
        }
    }
    fields
}

/// A field's value; `kind` is the field's kind (for a map, its entry
/// message).
fn field_to_value(kind: &Kind, value: &Field) -> Result<Value> {
    match value {
        Field::List(items) => items
            .iter()
            .map(|item| scalar_to_value(kind, item))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        Field::Map(entries) => {
            let value_kind = kind
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
        single => scalar_to_value(kind, single),
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

/// Appends the CBOR form of `message` (the value [`to_value`] gives, in
/// deterministic encoding) without building that value first, so an output
/// past `max_bytes` fails (RESOURCE_EXHAUSTED) as soon as it gets there.
pub fn encode_cbor(message: &DynamicMessage, max_bytes: usize, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let mut writer = CborWriter {
        out,
        start,
        max_bytes,
    };
    writer
        .message(message)
        .inspect_err(|_| writer.out.truncate(start))
}

struct CborWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    max_bytes: usize,
}

impl CborWriter<'_> {
    fn room(&self) -> Result<()> {
        if self.out.len() - self.start > self.max_bytes {
            return Err(json::output_too_large(self.max_bytes));
        }
        Ok(())
    }

    fn value(&mut self, value: &Value) -> Result<()> {
        cbor::encode(value, self.out);
        self.room()
    }

    /// A map whose entries are written by `entry`, in the order of their
    /// encoded keys (RFC 8949 core deterministic encoding).
    fn map<T>(
        &mut self,
        mut entries: Vec<(Vec<u8>, T)>,
        mut entry: impl FnMut(&mut Self, &T) -> Result<()>,
    ) -> Result<()> {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        cbor::write_head(self.out, 5, entries.len() as u64);
        for (key, value) in &entries {
            self.out.extend_from_slice(key);
            entry(self, value)?;
        }
        self.room()
    }

    fn message(&mut self, message: &DynamicMessage) -> Result<()> {
        if is_well_known(&message.descriptor()) {
            return self.value(&well_known_to_value(message)?);
        }
        let fields = present_fields(message).into_iter().map(|(field, value)| {
            (
                encoded(&Value::Text(field.name().to_owned())),
                (field.kind(), value),
            )
        });
        let extensions = present_extensions(message)
            .into_iter()
            .map(|(key, kind, value)| (encoded(&Value::Text(key)), (kind, Cow::Borrowed(value))));
        let entries = fields.chain(extensions).collect();
        self.map(entries, |writer, (kind, value)| writer.field(kind, value))
    }

    /// A field's value; `kind` is the field's kind (for a map, its entry
    /// message).
    fn field(&mut self, kind: &Kind, value: &Field) -> Result<()> {
        match value {
            Field::List(items) => {
                cbor::write_head(self.out, 4, items.len() as u64);
                for item in items {
                    self.scalar(kind, item)?;
                }
                self.room()
            }
            Field::Map(entries) => {
                let value_kind = kind
                    .as_message()
                    .expect("a map field has an entry message")
                    .map_entry_value_field()
                    .kind();
                let entries = entries
                    .iter()
                    .map(|(key, value)| (encoded(&map_key_to_value(key)), value))
                    .collect();
                self.map(entries, |writer, value| writer.scalar(&value_kind, value))
            }
            single => self.scalar(kind, single),
        }
    }

    fn scalar(&mut self, kind: &Kind, value: &Field) -> Result<()> {
        match value {
            Field::Message(inner) => self.message(inner),
            other => self.value(&scalar_to_value(kind, other)?),
        }
    }
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    cbor::encode(value, &mut out);
    out
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
    // The float wrappers read like float fields, so -0.0 keeps its sign
    // and a float out of range is refused.
    match desc.full_name() {
        "google.protobuf.DoubleValue" => {
            let mut message = DynamicMessage::new(desc.clone());
            message.set_field_by_name("value", Field::F64(float(&value, path)?));
            return Ok(message);
        }
        "google.protobuf.FloatValue" => {
            let mut message = DynamicMessage::new(desc.clone());
            message.set_field_by_name("value", Field::F32(single(&value, path)?));
            return Ok(message);
        }
        _ => {}
    }
    if is_well_known(desc) {
        let json = json::to_json(&value).map_err(|e| e.with_detail("field", path))?;
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
    let mut seen = std::collections::HashSet::new();
    for (key, value) in entries {
        let Value::Text(name) = key else {
            return Err(mismatch(path, "text keys (field names)", &key));
        };
        let field_path = format!("{path}.{name}");
        if let Some(extension) = extension_of(desc, &name) {
            if !seen.insert(format!("extension {}", extension.full_name())) {
                return Err(given_twice(&field_path, extension.full_name()));
            }
            if value == Value::Null && !is_null_value(&extension.kind()) {
                continue;
            }
            let shape = Shape {
                kind: extension.kind(),
                is_map: extension.is_map(),
                is_list: extension.is_list(),
            };
            message.set_extension(&extension, field_from_value(&shape, value, &field_path)?);
            continue;
        }
        // Unknown names are skipped, as protobuf skips unknown numbers, so an
        // older core accepts messages of newer schemas.
        let Some(field) = desc
            .get_field_by_name(&name)
            .or_else(|| desc.get_field_by_json_name(&name))
        else {
            continue;
        };
        // Both names of a field, or two fields of one oneof, would
        // silently overwrite each other: refused, as the reference parsers do.
        if !seen.insert(format!("field {}", field.name())) {
            return Err(given_twice(&field_path, field.name()));
        }
        if value == Value::Null && !is_null_value(&field.kind()) {
            // null is "not set": it does not count as the member of a oneof.
            continue;
        }
        if let Some(oneof) = field.containing_oneof()
            && !seen.insert(format!("oneof {}", oneof.name()))
        {
            return Err(given_twice(&field_path, &format!("oneof {}", oneof.name())));
        }
        let shape = Shape {
            kind: field.kind(),
            is_map: field.is_map(),
            is_list: field.is_list(),
        };
        message.set_field(&field, field_from_value(&shape, value, &field_path)?);
    }
    Ok(message)
}

fn given_twice(field_path: &str, what: &str) -> HmsError {
    HmsError::decode(format!(
        "field `{field_path}`: {what} is given more than once"
    ))
    .with_detail("field", field_path)
}

/// The extension of `desc` a key `[full.extension.name]` names, as the
/// proto3 JSON mapping spells extensions; `None` for any other key, and
/// for extensions the schema pool does not know (skipped like unknown
/// fields).
fn extension_of(desc: &MessageDescriptor, key: &str) -> Option<ExtensionDescriptor> {
    let name = key.strip_prefix('[')?.strip_suffix(']')?;
    desc.get_extension_by_full_name(name)
}

/// What reading a field's value needs to know of a field or an extension.
struct Shape {
    kind: Kind,
    is_map: bool,
    is_list: bool,
}

fn is_null_value(kind: &Kind) -> bool {
    match kind {
        Kind::Message(desc) => desc.full_name() == "google.protobuf.Value",
        Kind::Enum(desc) => desc.full_name() == "google.protobuf.NullValue",
        _ => false,
    }
}

fn field_from_value(field: &Shape, value: Value, path: &str) -> Result<Field> {
    if field.is_map {
        let entry = field
            .kind
            .as_message()
            .expect("a map field has an entry message");
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let Value::Map(entries) = value else {
            return Err(mismatch(path, "a map", &value));
        };
        let mut map = std::collections::HashMap::with_capacity(entries.len());
        for (key, value) in entries {
            let shown = super::cbor::describe_key(&key);
            let key = map_key_from_value(&key_kind, key, path)?;
            let value = scalar_from_value(&value_kind, value, path)?;
            if map.insert(key, value).is_some() {
                return Err(
                    HmsError::decode(format!("field `{path}`: duplicate map key {shown}"))
                        .with_detail("field", path)
                        .with_detail("key", shown),
                );
            }
        }
        return Ok(Field::Map(map));
    }
    if field.is_list {
        let Value::Array(items) = value else {
            return Err(mismatch(path, "an array", &value));
        };
        return items
            .into_iter()
            .map(|item| scalar_from_value(&field.kind, item, path))
            .collect::<Result<Vec<_>>>()
            .map(Field::List);
    }
    scalar_from_value(&field.kind, value, path)
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

/// An integer field's value: an integer, an integral float (`5.0`,
/// `1e5`), or text holding either (`"5"`, `"1e2"`), as the proto3 JSON
/// mapping allows; refused when not integral or out of `T`'s range.
fn integer<T: TryFrom<i128>>(value: &Value, path: &str, expected: &str) -> Result<T> {
    let refuse = |why: &str| {
        let shown = match value {
            Value::Text(text) => format!("{text:?}"),
            Value::Float(f) => format!("{f:?}"),
            Value::Integer(n) => n.to_string(),
            other => other.kind_name().to_owned(),
        };
        HmsError::decode(format!(
            "field `{path}`: {shown} {why}, expected {expected}"
        ))
        .with_detail("field", path)
    };
    let number = match value {
        Value::Integer(n) => *n,
        Value::Float(f) => integral(*f).map_err(refuse)?,
        Value::Text(text) => match text.parse::<i128>() {
            Ok(n) => n,
            // Rust's float syntax is wider than JSON's: no sign, no blanks.
            Err(_) if text.starts_with('+') || text.trim() != text => {
                return Err(refuse("is not an integer"));
            }
            Err(_) => match text.parse::<f64>() {
                Ok(f) => integral(f).map_err(refuse)?,
                Err(_) => return Err(refuse("is not an integer")),
            },
        },
        other => return Err(mismatch(path, expected, other)),
    };
    T::try_from(number).map_err(|_| refuse("is out of range"))
}

/// The integer an integral float stands for, within the 64-bit ranges.
/// -2^63 itself is refused: a JSON integer literal just below i64::MIN
/// reads as that very double, and it must not pass as i64::MIN.
fn integral(f: f64) -> std::result::Result<i128, &'static str> {
    const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err("is not an integer");
    }
    if f <= -TWO_TO_THE_63 || f >= 2.0 * 2.0 * TWO_TO_THE_63 {
        return Err("is out of range");
    }
    Ok(f as i128)
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

/// A float field's value: rounded to the nearest float, so a float's own
/// shortest form (3.4028235e38 for FLT_MAX) reads back exactly, but refused
/// when a finite number is past the float range instead of becoming an
/// infinity.
fn single(value: &Value, path: &str) -> Result<f32> {
    let double = float(value, path)?;
    let narrowed = double as f32;
    if narrowed.is_infinite() && double.is_finite() {
        return Err(HmsError::decode(format!(
            "field `{path}`: {double} is out of the range of a float"
        ))
        .with_detail("field", path));
    }
    Ok(narrowed)
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
        Kind::Float => Field::F32(single(&value, path)?),
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
                    .with_detail("field", path)
                    .with_detail("value", name));
                }
            },
            Value::Null if desc.full_name() == "google.protobuf.NullValue" => Field::EnumNumber(0),
            other => Field::EnumNumber(integer(&other, path, "an enum name or number")?),
        },
        Kind::Message(desc) => Field::Message(message_from_value(desc, value, path)?),
    })
}

/// Bytes from base64 text, as the proto3 JSON mapping reads them: the
/// standard or the URL-safe alphabet (`-`, `_`), padded or not, and the
/// unused bits of the last symbol ignored (`"-_"` is the byte 0xfb), as
/// protobuf's reference parsers do.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const PLAIN: GeneralPurpose = GeneralPurpose::new(&STANDARD, LENIENT);
    const URL: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, LENIENT);
    let engine = if text.contains(['-', '_']) {
        &URL
    } else {
        &PLAIN
    };
    engine.decode(text).ok()
}

/// Deepest nesting of messages, lists and maps in `message` (1 for a flat
/// message), after checking that every well-known value in it is valid
/// (a Timestamp within 0001..9999 and nanos in range, a Duration within
/// ±10,000 years). Only JSON and CBOR input is checked that way: protobuf
/// has no range for them, and its reference parsers accept any value.
pub fn checked_depth(message: &DynamicMessage, check_ranges: bool) -> Result<usize> {
    if check_ranges && !well_known_in_range(message) {
        return Err(out_of_range(message, "a {} out of its valid range"));
    }
    let mut deepest = 0;
    let values = message.fields().map(|(_, value)| value);
    for value in values.chain(message.extensions().map(|(_, value)| value)) {
        deepest = deepest.max(field_depth(value, check_ranges)?);
    }
    Ok(1 + deepest)
}

fn field_depth(value: &Field, check_ranges: bool) -> Result<usize> {
    Ok(match value {
        Field::Message(message) => checked_depth(message, check_ranges)?,
        Field::List(items) => {
            let mut deepest = 0;
            for item in items {
                deepest = deepest.max(field_depth(item, check_ranges)?);
            }
            deepest
        }
        Field::Map(entries) => {
            let mut deepest = 0;
            for value in entries.values() {
                deepest = deepest.max(field_depth(value, check_ranges)?);
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

fn seconds_and_nanos(message: &DynamicMessage) -> (i64, i64) {
    let number = |name: &str| match message.get_field_by_name(name).as_deref() {
        Some(Field::I64(n)) => *n,
        Some(Field::I32(n)) => *n as i64,
        _ => 0,
    };
    (number("seconds"), number("nanos"))
}

/// Whether a Timestamp or Duration is in the range of its JSON form (any
/// other message is).
fn well_known_in_range(message: &DynamicMessage) -> bool {
    let (seconds, nanos) = seconds_and_nanos(message);
    match message.descriptor().full_name() {
        "google.protobuf.Timestamp" => timestamp_is_valid(seconds, nanos),
        "google.protobuf.Duration" => {
            (-315_576_000_000..=315_576_000_000).contains(&seconds)
                && (-999_999_999..=999_999_999).contains(&nanos)
                && (seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0))
        }
        _ => true,
    }
}

/// `what` with `{}` standing for the type name, and the values.
fn out_of_range(message: &DynamicMessage, what: &str) -> HmsError {
    let desc = message.descriptor();
    let (seconds, nanos) = seconds_and_nanos(message);
    HmsError::decode(format!(
        "{} (seconds {seconds}, nanos {nanos})",
        what.replace("{}", desc.full_name())
    ))
    .with_detail("type", desc.full_name())
}

/// Refuses, on output, a Timestamp or Duration that protobuf carries but
/// the JSON mapping (and so CBOR) cannot.
pub fn check_representable(message: &DynamicMessage) -> Result<()> {
    if well_known_in_range(message) {
        return Ok(());
    }
    let mut error = out_of_range(
        message,
        "a {} out of its valid range has no JSON or CBOR form",
    );
    error.code = crate::error::Code::OutOfRange;
    Err(error)
}
