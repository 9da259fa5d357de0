//! The proto3 JSON mapping of typed messages, and untyped JSON values.
//!
//! Input is parsed into the data model of [`Value`] (exact doubles,
//! duplicate keys refused) and read into messages by the same code as CBOR
//! ([`message::from_value`]), so both formats accept the same things.
//! Output is written straight from the message, keys of every object
//! sorted, within the size limit.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage, SerializeOptions,
    Value as Field,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Limits, Value, message};
use crate::error::{Code, HmsError, Result};

/// The key of a field in JSON output. Parsers accept both names always,
/// as the proto3 JSON mapping requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JsonNames {
    /// The proto field name (`created_at`): the core's default, the same
    /// key as in CBOR, and what every existing golden vector and binding
    /// expects.
    #[default]
    Proto,
    /// The lowerCamelCase `json_name` (`createdAt`): the default of
    /// protobuf's own JSON printers.
    LowerCamelCase,
}

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

/// Parses one JSON text into a value: integers that fit 64 bits stay
/// integers, other numbers are the nearest double (exactly, serde_json's
/// `float_roundtrip`), and an object with a key twice is refused.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Value> {
    check_depth(bytes, limits)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let ParsedValue(value) = ParsedValue::deserialize(&mut deserializer).map_err(parse_error)?;
    deserializer.end().map_err(parse_error)?;
    Ok(value)
}

struct ParsedValue(Value);

impl<'de> Deserialize<'de> for ParsedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ParsedValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Integer(n as i128))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Integer(n as i128))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Text(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Text(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(ParsedValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let ParsedValue(value) = map.next_value()?;
            entries.push((Value::Text(key), value));
        }
        Ok(Value::Map(entries))
    }
}

pub fn decode_message(
    desc: &MessageDescriptor,
    bytes: &[u8],
    limits: &Limits,
) -> Result<DynamicMessage> {
    message::from_value(desc, parse(bytes, limits)?)
}

pub fn decode_value(bytes: &[u8], limits: &Limits) -> Result<Value> {
    parse(bytes, limits)
}

/// Options of prost-reflect's serializer, used for well-known types only.
pub fn proto_name_options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

/// A value the JSON mapping cannot express (a Timestamp outside
/// 0001..9999, a Duration over 10,000 years): valid protobuf, no JSON or
/// CBOR form.
pub fn unrepresentable(desc: &MessageDescriptor, error: serde_json::Error) -> HmsError {
    HmsError::new(
        Code::OutOfRange,
        format!("a {} has no JSON or CBOR form: {error}", desc.full_name()),
    )
    .with_detail("type", desc.full_name())
}

/// The error of an output over the size limit.
pub fn output_too_large(max: usize) -> HmsError {
    HmsError::exhausted(format!("the output is over the limit of {max} bytes"))
        .with_detail("max_message_bytes", max)
}

/// Appends the proto3 JSON form of `message`, keys of every object sorted
/// (the same message always gives the same bytes); RESOURCE_EXHAUSTED as
/// soon as the output passes `max_bytes`.
pub fn encode_message(
    message: &DynamicMessage,
    names: JsonNames,
    max_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    let mut writer = Writer {
        out,
        start,
        max_bytes,
        names,
    };
    writer
        .message(message)
        .inspect_err(|_| writer.out.truncate(start))
}

/// Appends the JSON form of an untyped value, as [`encode_message`].
pub fn encode_value(value: &Value, max_bytes: usize, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let mut writer = Writer {
        out,
        start,
        max_bytes,
        names: JsonNames::Proto,
    };
    writer
        .value(value)
        .inspect_err(|_| writer.out.truncate(start))
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    max_bytes: usize,
    names: JsonNames,
}

impl Writer<'_> {
    /// Checked after every piece, so the output never grows much past the
    /// limit, whatever the input expands to.
    fn room(&self) -> Result<()> {
        if self.out.len() - self.start > self.max_bytes {
            return Err(output_too_large(self.max_bytes));
        }
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.extend_from_slice(bytes);
        self.room()
    }

    fn serialized<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut *self.out, value).expect("writing to a Vec never fails");
        self.room()
    }

    fn text(&mut self, text: &str) -> Result<()> {
        self.serialized(text)
    }

    fn integer(&mut self, n: i128) -> Result<()> {
        self.raw(n.to_string().as_bytes())
    }

    /// A double: its shortest round-trip form, or the strings of the
    /// proto3 JSON mapping for NaN and the infinities.
    fn double(&mut self, f: f64) -> Result<()> {
        match non_finite_name(f) {
            Some(name) => self.text(name),
            None => self.serialized(&f),
        }
    }

    /// A float: its shortest form as a float (`0.1`, not the
    /// 0.10000000149011612 of the same value widened to a double).
    fn single(&mut self, f: f32) -> Result<()> {
        match non_finite_name(f as f64) {
            Some(name) => self.text(name),
            None => self.serialized(&f),
        }
    }

    fn value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Null => self.raw(b"null"),
            Value::Bool(b) => self.raw(if *b { b"true" } else { b"false" }),
            Value::Integer(n) if i64::try_from(*n).is_ok() || u64::try_from(*n).is_ok() => {
                self.integer(*n)
            }
            Value::Integer(n) => self.text(&n.to_string()),
            Value::Float(f) => self.double(*f),
            Value::Text(text) => self.text(text),
            Value::Bytes(bytes) => self.text(&base64_of(bytes)),
            Value::Array(items) => {
                self.raw(b"[")?;
                for (at, item) in items.iter().enumerate() {
                    if at > 0 {
                        self.raw(b",")?;
                    }
                    self.value(item)?;
                }
                self.raw(b"]")
            }
            Value::Map(entries) => {
                let mut keyed = entries
                    .iter()
                    .map(|(key, value)| Ok((key_text(key)?, value)))
                    .collect::<Result<Vec<_>>>()?;
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                if let Some(pair) = keyed.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                    return Err(HmsError::invalid_argument(format!(
                        "two map keys are both {:?} as JSON object keys",
                        pair[0].0
                    ))
                    .with_detail("key", &pair[0].0));
                }
                self.raw(b"{")?;
                for (at, (key, value)) in keyed.into_iter().enumerate() {
                    if at > 0 {
                        self.raw(b",")?;
                    }
                    self.text(&key)?;
                    self.raw(b":")?;
                    self.value(value)?;
                }
                self.raw(b"}")
            }
        }
    }

    fn message(&mut self, message: &DynamicMessage) -> Result<()> {
        let desc = message.descriptor();
        if message::is_well_known(&desc) {
            return self.well_known(message);
        }
        let mut fields: Vec<_> = message::present_fields(message)
            .into_iter()
            .map(|(field, value)| {
                let name = match self.names {
                    JsonNames::Proto => field.name().to_owned(),
                    JsonNames::LowerCamelCase => field.json_name().to_owned(),
                };
                (name, field.kind(), value)
            })
            .collect();
        fields.extend(
            message::present_extensions(message)
                .into_iter()
                .map(|(key, kind, value)| (key, kind, Cow::Borrowed(value))),
        );
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        self.raw(b"{")?;
        for (at, (name, kind, value)) in fields.iter().enumerate() {
            if at > 0 {
                self.raw(b",")?;
            }
            self.text(name)?;
            self.raw(b":")?;
            self.field(kind, value)?;
        }
        self.raw(b"}")
    }

    fn well_known(&mut self, message: &DynamicMessage) -> Result<()> {
        let desc = message.descriptor();
        if let Some(value) = message::float_wrapper_value(message) {
            return match desc.full_name() {
                "google.protobuf.FloatValue" => self.single(value as f32),
                _ => self.double(value),
            };
        }
        message::check_representable(message)?;
        let options = SerializeOptions::new().use_proto_field_name(self.names == JsonNames::Proto);
        let json = message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| unrepresentable(&desc, e))?;
        self.serialized(&json)
    }

    /// A field's value; `kind` is the field's kind (for a map, its entry
    /// message).
    fn field(&mut self, kind: &Kind, value: &Field) -> Result<()> {
        match value {
            Field::List(items) => {
                self.raw(b"[")?;
                for (at, item) in items.iter().enumerate() {
                    if at > 0 {
                        self.raw(b",")?;
                    }
                    self.scalar(kind, item)?;
                }
                self.raw(b"]")
            }
            Field::Map(entries) => {
                let value_kind = kind
                    .as_message()
                    .expect("a map field has an entry message")
                    .map_entry_value_field()
                    .kind();
                let mut keyed: Vec<(String, &Field)> = entries
                    .iter()
                    .map(|(key, value)| (map_key_text(key), value))
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                self.raw(b"{")?;
                for (at, (key, value)) in keyed.into_iter().enumerate() {
                    if at > 0 {
                        self.raw(b",")?;
                    }
                    self.text(&key)?;
                    self.raw(b":")?;
                    self.scalar(&value_kind, value)?;
                }
                self.raw(b"}")
            }
            single => self.scalar(kind, single),
        }
    }

    fn scalar(&mut self, kind: &Kind, value: &Field) -> Result<()> {
        match value {
            Field::Bool(b) => self.raw(if *b { b"true" } else { b"false" }),
            Field::I32(n) => self.integer(*n as i128),
            Field::U32(n) => self.integer(*n as i128),
            // 64-bit integers are strings: a double cannot hold them all.
            Field::I64(n) => self.text(&n.to_string()),
            Field::U64(n) => self.text(&n.to_string()),
            Field::F32(f) => self.single(*f),
            Field::F64(f) => self.double(*f),
            Field::String(text) => self.text(text),
            Field::Bytes(bytes) => self.text(&base64_of(bytes)),
            Field::EnumNumber(number) => match kind.as_enum() {
                Some(desc) => self.value(&message::enum_to_value(desc, *number)),
                None => self.integer(*number as i128),
            },
            Field::Message(inner) => self.message(inner),
            Field::List(_) | Field::Map(_) => {
                unreachable!("lists and maps are never nested directly")
            }
        }
    }
}

fn non_finite_name(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("Infinity")
    } else if f == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(text) => text.clone(),
    }
}

/// A map key as a JSON object key: text as it is, integers and bools as
/// their text (as the proto3 JSON mapping writes map keys). Other keys
/// have no JSON form and are refused; writing them as their own JSON text
/// would escape the text of every nested key again, doubling the output
/// at each level.
fn key_text(key: &Value) -> Result<String> {
    match key {
        Value::Text(text) => Ok(text.clone()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(HmsError::invalid_argument(format!(
            "a map key of type {} has no JSON form (JSON object keys are text)",
            other.kind_name()
        ))
        .with_detail("key_type", other.kind_name())),
    }
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

/// A value as a `serde_json::Value`, for prost-reflect's parser of
/// well-known types: bytes become base64 text, NaN and the infinities the
/// strings of the proto3 JSON mapping, integer and bool keys their text;
/// other keys are refused ([`key_text`]).
pub fn to_json(value: &Value) -> Result<serde_json::Value> {
    Ok(match value {
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
            None => non_finite_name(*f).unwrap_or("NaN").into(),
        },
        Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => base64_of(b).into(),
        Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Result<Vec<_>>>()?)
        }
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((key_text(k)?, to_json(v)?)))
                .collect::<Result<serde_json::Map<_, _>>>()?,
        ),
    })
}
