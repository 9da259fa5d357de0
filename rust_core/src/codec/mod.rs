//! Protobuf, CBOR and JSON for any message type the schema pool knows, and
//! for untyped values, all with the size and depth limits of the ABI.
//!
//! Typed messages go through `prost_reflect::DynamicMessage`, so schemas
//! registered by hosts at run time convert exactly like built-in ones.

mod canonical;
pub mod cbor;
mod json;
pub mod message;
pub mod wire;

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use crate::error::{Code, HmsError, Result};
use crate::schema;

pub use cbor::Value;
pub use json::JsonNames;
pub use message::timestamp_is_valid;

/// The wire format of a payload (`HMS_FORMAT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Format {
    Protobuf = 1,
    Cbor = 2,
    Json = 3,
}

impl Format {
    pub fn from_i32(value: i32) -> Result<Format> {
        match value {
            1 => Ok(Format::Protobuf),
            2 => Ok(Format::Cbor),
            3 => Ok(Format::Json),
            other => Err(HmsError::invalid_argument(format!(
                "unknown format {other}: use 1 (protobuf), 2 (CBOR) or 3 (JSON)"
            ))
            .with_detail("format", other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Protobuf => "protobuf",
            Format::Cbor => "CBOR",
            Format::Json => "JSON",
        }
    }
}

/// Largest effective nesting depth: the protobuf and JSON parsers below
/// stop at 100 levels whatever the configuration says.
pub const MAX_DEPTH_CEILING: u32 = 100;

/// Bounds every decoder enforces and every conversion's output keeps to,
/// with the one output choice a runtime configures: the JSON field names.
/// They travel together because a runtime hands them to every conversion
/// it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_depth: u32,
    pub json_names: JsonNames,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            json_names: JsonNames::default(),
        }
    }
}

impl Limits {
    /// Refuses a payload over the size limit before any decoding.
    pub fn check_size(&self, len: usize, what: &str) -> Result<()> {
        if len > self.max_message_bytes {
            return Err(HmsError::exhausted(format!(
                "{what} of {len} bytes is over the limit of {} bytes",
                self.max_message_bytes
            ))
            .with_detail("size", len)
            .with_detail("max_message_bytes", self.max_message_bytes));
        }
        Ok(())
    }

    fn depth_exceeded(&self, depth: usize) -> HmsError {
        HmsError::exhausted(format!(
            "nesting depth {depth} is over the limit of {}",
            self.max_depth
        ))
        .with_detail("max_depth", self.max_depth)
    }
}

/// Decodes a message of type `desc` from `bytes` in `format`.
pub fn decode_message(
    desc: &MessageDescriptor,
    format: Format,
    bytes: &[u8],
    limits: &Limits,
) -> Result<DynamicMessage> {
    limits.check_size(bytes.len(), "payload")?;
    if bytes.is_empty() {
        // An empty payload is the default message in every format, as it is in protobuf.
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let message = match format {
        Format::Protobuf => {
            DynamicMessage::decode(desc.clone(), bytes).map_err(|e| protobuf_error(desc, e))?
        }
        Format::Cbor => {
            let value = cbor::decode(bytes, limits.max_depth)?;
            message::from_value(desc, value)?
        }
        Format::Json => json::decode_message(desc, bytes, limits)?,
    };
    // Protobuf carries any Timestamp or Duration; only JSON and CBOR
    // spell them in a way that has a range.
    let depth = message::checked_depth(&message, format != Format::Protobuf)?;
    if depth > limits.max_depth as usize {
        return Err(limits.depth_exceeded(depth));
    }
    Ok(message)
}

/// Appends `message` encoded in `format` to `out`, with proto field names
/// in JSON and no bound on the size. Fails (OUT_OF_RANGE) only for values
/// the JSON mapping cannot express, in JSON and CBOR.
pub fn encode_message(message: &DynamicMessage, format: Format, out: &mut Vec<u8>) -> Result<()> {
    let unbounded = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    encode_message_within(message, format, &unbounded, out)
}

/// As [`encode_message`], with the JSON names of `limits`, and
/// RESOURCE_EXHAUSTED (`out` as it was) when the output is over
/// `limits.max_message_bytes`.
pub fn encode_message_within(
    message: &DynamicMessage,
    format: Format,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    match format {
        Format::Protobuf => canonical::encode(message, out),
        Format::Cbor => return message::encode_cbor(message, limits.max_message_bytes, out),
        Format::Json => {
            return json::encode_message(message, limits.json_names, limits.max_message_bytes, out);
        }
    }
    check_output(out, start, limits)
}

/// Refuses (and takes back) output over the size limit.
fn check_output(out: &mut Vec<u8>, start: usize, limits: &Limits) -> Result<()> {
    if out.len() - start > limits.max_message_bytes {
        out.truncate(start);
        return Err(json::output_too_large(limits.max_message_bytes));
    }
    Ok(())
}

/// Decodes a built-in message type, using prost directly for protobuf.
pub fn decode_typed<M: Message + Default + prost::Name>(
    format: Format,
    bytes: &[u8],
    limits: &Limits,
) -> Result<M> {
    if format == Format::Protobuf {
        limits.check_size(bytes.len(), "payload")?;
        return M::decode(bytes).map_err(|e| {
            HmsError::decode(format!("payload is not a valid {}: {e}", M::full_name()))
                .with_detail("type", M::full_name())
        });
    }
    let desc = schema::message_descriptor(&M::full_name())?;
    let message = decode_message(&desc, format, bytes, limits)?;
    message.transcode_to::<M>().map_err(|e| {
        HmsError::new(
            Code::Internal,
            format!("transcoding {}: {e}", M::full_name()),
        )
    })
}

/// Appends a built-in message encoded in `format` to `out` (fails as
/// [`encode_message`]).
pub fn encode_typed<M: Message + prost::Name>(
    message: &M,
    format: Format,
    out: &mut Vec<u8>,
) -> Result<()> {
    let unbounded = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    encode_typed_within(message, format, &unbounded, out)
}

/// As [`encode_typed`], with the JSON names of `limits` and its size limit
/// on the output (as [`encode_message_within`]).
pub fn encode_typed_within<M: Message + prost::Name>(
    message: &M,
    format: Format,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    if format == Format::Protobuf {
        message.encode(out).expect("a Vec grows to fit any message");
        return check_output(out, start, limits);
    }
    let desc = schema::message_descriptor(&M::full_name())
        .expect("every built-in type is in the schema pool");
    if format == Format::Cbor
        && let Some(value) = wire::to_value(&desc, &message.encode_to_vec())?
    {
        cbor::encode(&value, out);
        return check_output(out, start, limits);
    }
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(message)
        .expect("a built-in message transcodes to its own descriptor");
    encode_message_within(&dynamic, format, limits, out)
}

/// Decodes an untyped CBOR or JSON value.
pub fn decode_value(format: Format, bytes: &[u8], limits: &Limits) -> Result<Value> {
    limits.check_size(bytes.len(), "payload")?;
    match format {
        Format::Protobuf => Err(HmsError::invalid_argument(
            "protobuf needs a message type; untyped values travel as CBOR or JSON",
        )),
        _ if bytes.is_empty() => Ok(Value::Null),
        Format::Cbor => cbor::decode(bytes, limits.max_depth),
        Format::Json => json::decode_value(bytes, limits),
    }
}

/// Appends an untyped value encoded in `format` (CBOR or JSON) to `out`,
/// with no bound on the size.
pub fn encode_value(value: &Value, format: Format, out: &mut Vec<u8>) -> Result<()> {
    let unbounded = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    encode_value_within(value, format, &unbounded, out)
}

/// As [`encode_value`], RESOURCE_EXHAUSTED (`out` as it was) when the
/// output is over `limits.max_message_bytes`.
pub fn encode_value_within(
    value: &Value,
    format: Format,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    match format {
        Format::Protobuf => Err(HmsError::invalid_argument(
            "protobuf needs a message type; untyped values travel as CBOR or JSON",
        )),
        Format::Cbor => {
            let start = out.len();
            cbor::encode(value, out);
            check_output(out, start, limits)
        }
        Format::Json => json::encode_value(value, limits.max_message_bytes, out),
    }
}

/// Re-encodes `bytes` from one format to another, as a message of type
/// `desc`, or structurally when `desc` is `None`. Always validates the
/// input, even when both formats are the same. The output keeps to
/// `limits` like the input (RESOURCE_EXHAUSTED past the size limit).
pub fn transcode(
    desc: Option<&MessageDescriptor>,
    from: Format,
    bytes: &[u8],
    to: Format,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    match desc {
        Some(desc) => {
            let message = decode_message(desc, from, bytes, limits)?;
            encode_message_within(&message, to, limits, out)?;
        }
        None => {
            let value = decode_value(from, bytes, limits)?;
            encode_value_within(&value, to, limits, out)?;
        }
    }
    Ok(())
}

/// [`transcode`] for a type named in the schema pool (`""`: structurally,
/// CBOR and JSON only): what `hms_convert` and `hms_runtime_convert` do,
/// the first with the default limits, the second with a runtime's.
/// NOT_FOUND when the pool has no such type.
pub fn convert(
    type_name: &str,
    from: Format,
    bytes: &[u8],
    to: Format,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    let desc = match type_name {
        "" => None,
        name => Some(schema::message_descriptor(name)?),
    };
    transcode(desc.as_ref(), from, bytes, to, limits, out)
}

fn protobuf_error(desc: &MessageDescriptor, error: prost::DecodeError) -> HmsError {
    let text = error.to_string();
    let base = if text.contains("recursion limit") {
        HmsError::exhausted(format!(
            "payload nests deeper than the protobuf limit of {MAX_DEPTH_CEILING} levels"
        ))
    } else {
        HmsError::decode(format!(
            "payload is not a valid {}: {text}",
            desc.full_name()
        ))
    };
    base.with_detail("type", desc.full_name())
}
