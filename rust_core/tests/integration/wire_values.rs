//! The CBOR value read straight from protobuf bytes (codec::wire) is the
//! value the general path builds through a DynamicMessage, for every message
//! type of the schema, filled at random.

use hms_ffi::codec::{message, wire};
use hms_ffi::schema;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value as Field};

/// xorshift64*: reproducible without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self) -> String {
        let words = ["", "a", "héllo", "ünïcode 🚀", "x y z", "0"];
        words[self.below(words.len() as u64) as usize].to_owned()
    }
}

fn scalar(kind: &Kind, random: &mut Random, depth: u32) -> Field {
    match kind {
        Kind::Double => Field::F64([0.0, -1.5, 1e300, f64::NAN][random.below(4) as usize]),
        Kind::Float => Field::F32([0.0, 2.5, -3.25][random.below(3) as usize]),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Field::I32([0, -1, i32::MIN, i32::MAX, 7][random.below(5) as usize])
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Field::I64([0, -1, i64::MIN, i64::MAX, 9][random.below(5) as usize])
        }
        Kind::Uint32 | Kind::Fixed32 => Field::U32([0, 1, u32::MAX][random.below(3) as usize]),
        Kind::Uint64 | Kind::Fixed64 => Field::U64([0, 1, u64::MAX][random.below(3) as usize]),
        Kind::Bool => Field::Bool(random.below(2) == 1),
        Kind::String => Field::String(random.text()),
        Kind::Bytes => Field::Bytes(random.text().into_bytes().into()),
        Kind::Enum(desc) => {
            let values: Vec<i32> = desc.values().map(|v| v.number()).collect();
            // Sometimes a number the schema does not know.
            match random.below(values.len() as u64 + 1) as usize {
                i if i < values.len() => Field::EnumNumber(values[i]),
                _ => Field::EnumNumber(12345),
            }
        }
        Kind::Message(desc) => Field::Message(filled(desc, random, depth + 1)),
    }
}

fn map_key(kind: &Kind, random: &mut Random) -> MapKey {
    match kind {
        Kind::String => MapKey::String(random.text()),
        Kind::Bool => MapKey::Bool(random.below(2) == 1),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(random.below(5) as i32 - 2),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(random.below(5) as i64 - 2),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(random.below(5) as u32),
        _ => MapKey::U64(random.below(5)),
    }
}

/// A message of `desc` with a random subset of its fields set.
fn filled(desc: &MessageDescriptor, random: &mut Random, depth: u32) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    match desc.full_name() {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" => {
            message.set_field_by_name("seconds", Field::I64(random.below(2_000_000_000) as i64));
            message.set_field_by_name("nanos", Field::I32(random.below(1000) as i32 * 1000));
            return message;
        }
        name if name.starts_with("google.protobuf.") => return message,
        _ => {}
    }
    if depth > 3 {
        return message;
    }
    for field in desc.fields() {
        if random.below(3) == 0 {
            continue;
        }
        let kind = field.kind();
        let value = if field.is_map() {
            let entry = kind.as_message().expect("a map has an entry type");
            let (key_kind, value_kind) = (
                entry.map_entry_key_field().kind(),
                entry.map_entry_value_field().kind(),
            );
            Field::Map(
                (0..random.below(4))
                    .map(|_| {
                        (
                            map_key(&key_kind, random),
                            scalar(&value_kind, random, depth),
                        )
                    })
                    .collect(),
            )
        } else if field.is_list() {
            Field::List(
                (0..random.below(4))
                    .map(|_| scalar(&kind, random, depth))
                    .collect(),
            )
        } else {
            scalar(&kind, random, depth)
        };
        message.set_field(&field, value);
    }
    message
}

#[test]
fn the_wire_walk_gives_the_general_paths_value_for_every_type() {
    let pool = schema::message_descriptor("hms.sys.v1.EchoRequest")
        .unwrap()
        .parent_pool()
        .clone();
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut compared = 0;
    for desc in pool.all_messages() {
        if !desc.full_name().starts_with("hms.") || desc.is_map_entry() {
            continue;
        }
        for _ in 0..40 {
            let bytes = filled(&desc, &mut random, 0).encode_to_vec();
            let general = DynamicMessage::decode(desc.clone(), bytes.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|m| message::to_value(&m).map_err(|e| e.message));
            let walked = wire::to_value(&desc, &bytes).map_err(|e| e.message);
            match (general, walked) {
                (Ok(general), Ok(Some(walked))) => {
                    assert_eq!(
                        sorted(general),
                        sorted(walked),
                        "{}: {bytes:02x?}",
                        desc.full_name()
                    );
                    compared += 1;
                }
                // Well-formed bytes are never left to the general path.
                (_, Ok(None)) => panic!("{}: left to the general path", desc.full_name()),
                (general, walked) => {
                    assert_eq!(
                        general.err(),
                        walked.err(),
                        "{}: both fail alike",
                        desc.full_name()
                    )
                }
            }
        }
    }
    assert!(compared > 1000, "compared only {compared} messages");
}

/// Map entries in key order, as the CBOR encoder writes them (NaN made
/// comparable).
fn sorted(value: hms_ffi::codec::Value) -> String {
    let mut out = Vec::new();
    hms_ffi::codec::cbor::encode(&value, &mut out);
    format!("{out:02x?}")
}
