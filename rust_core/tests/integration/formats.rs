//! The JSON and CBOR codecs against their specs (proto3 JSON mapping,
//! RFC 8949): exact numbers, naming modes, duplicate keys, unknown enum
//! names, bignums, well-known types, and the size limit on output.

use crate::common;

use common::{FORMATS, expect_code};
use hms_ffi::Code;
use hms_ffi::codec::{self, Format, JsonNames, Limits, Value, cbor};
use hms_ffi::proto::hms::agent::v1::{Agent, KnowledgeEntry, Task};
use hms_ffi::schema;
use prost::Message;
use prost_types::Timestamp;

const NUMBERS: &str = "hmsformats.v1.Numbers";

/// `hmsformats.v1.Numbers`: one field of each kind these tests need,
/// including the well-known types the built-in schemas do not use.
fn register_numbers_schema() {
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
        FileDescriptorProto, FileDescriptorSet,
    };

    fn field(
        name: &str,
        json: &str,
        number: i32,
        kind: Type,
        type_name: Option<&str>,
    ) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(json.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            ..Default::default()
        }
    }
    let mut colors = field(
        "colors",
        "colors",
        14,
        Type::Enum,
        Some(".hmsformats.v1.Shade"),
    );
    colors.label = Some(Label::Repeated as i32);
    let numbers = DescriptorProto {
        name: Some("Numbers".into()),
        field: vec![
            field("single", "single", 1, Type::Float, None),
            field("double", "double", 2, Type::Double, None),
            field("i32", "i32", 3, Type::Int32, None),
            field("u32", "u32", 4, Type::Uint32, None),
            field("i64", "i64", 5, Type::Int64, None),
            field("u64", "u64", 6, Type::Uint64, None),
            field(
                "boxed_double",
                "boxedDouble",
                7,
                Type::Message,
                Some(".google.protobuf.DoubleValue"),
            ),
            field(
                "boxed_float",
                "boxedFloat",
                8,
                Type::Message,
                Some(".google.protobuf.FloatValue"),
            ),
            field(
                "wait",
                "wait",
                9,
                Type::Message,
                Some(".google.protobuf.Duration"),
            ),
            field(
                "at",
                "at",
                10,
                Type::Message,
                Some(".google.protobuf.Timestamp"),
            ),
            field("display_name", "displayName", 11, Type::String, None),
            field(
                "shade",
                "shade",
                12,
                Type::Enum,
                Some(".hmsformats.v1.Shade"),
            ),
            field("doubles", "doubles", 13, Type::Double, None),
            colors,
        ],
        ..Default::default()
    };
    let mut doubles = numbers.field[12].clone();
    doubles.label = Some(Label::Repeated as i32);
    let mut numbers = numbers;
    numbers.field[12] = doubles;
    // map<string, double> scores = 15; map<string, Numbers> children = 16;
    for (name, number, entry, value_type, value_name) in [
        ("scores", 15, "ScoresEntry", Type::Double, None),
        (
            "children",
            16,
            "ChildrenEntry",
            Type::Message,
            Some(".hmsformats.v1.Numbers"),
        ),
    ] {
        numbers.nested_type.push(DescriptorProto {
            name: Some(entry.into()),
            field: vec![
                field("key", "key", 1, Type::String, None),
                field("value", "value", 2, value_type, value_name),
            ],
            options: Some(prost_types::MessageOptions {
                map_entry: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut map = field(
            name,
            name,
            number,
            Type::Message,
            Some(&format!(".hmsformats.v1.Numbers.{entry}")),
        );
        map.label = Some(Label::Repeated as i32);
        numbers.field.push(map);
    }
    let shade = EnumDescriptorProto {
        name: Some("Shade".into()),
        value: [
            "SHADE_UNSPECIFIED",
            "SHADE_LIGHT_AND_VERY_LONG_NAME",
            "SHADE_DARK",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| EnumValueDescriptorProto {
            name: Some(n.to_string()),
            number: Some(i as i32),
            options: None,
        })
        .collect(),
        ..Default::default()
    };
    let global = prost_reflect::DescriptorPool::global();
    let mut files: Vec<FileDescriptorProto> = [
        "google/protobuf/wrappers.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
    ]
    .iter()
    .map(|name| {
        global
            .get_file_by_name(name)
            .unwrap_or_else(|| panic!("{name} is in prost-reflect's pool"))
            .file_descriptor_proto()
            .clone()
    })
    .collect();
    files.push(FileDescriptorProto {
        name: Some("hmsformats/v1/numbers.proto".into()),
        package: Some("hmsformats.v1".into()),
        dependency: files.iter().map(|f| f.name().to_owned()).collect(),
        message_type: vec![numbers],
        enum_type: vec![shade],
        syntax: Some("proto3".into()),
        ..Default::default()
    });
    let set = FileDescriptorSet { file: files };
    schema::register(&set.encode_to_vec()).expect("the numbers schema registers");
}

fn convert_with(
    type_name: &str,
    from: Format,
    bytes: &[u8],
    to: Format,
    limits: &Limits,
) -> Result<Vec<u8>, hms_ffi::HmsError> {
    let desc = match type_name {
        "" => None,
        name => Some(schema::message_descriptor(name)?),
    };
    let mut out = Vec::new();
    codec::transcode(desc.as_ref(), from, bytes, to, limits, &mut out)?;
    Ok(out)
}

fn convert(
    type_name: &str,
    from: Format,
    bytes: &[u8],
    to: Format,
) -> Result<Vec<u8>, hms_ffi::HmsError> {
    convert_with(type_name, from, bytes, to, &Limits::default())
}

fn json_to(type_name: &str, json: &str, to: Format) -> Result<Vec<u8>, hms_ffi::HmsError> {
    convert(type_name, Format::Json, json.as_bytes(), to)
}

#[track_caller]
fn json_text(type_name: &str, json: &str) -> String {
    String::from_utf8(
        json_to(type_name, json, Format::Json).unwrap_or_else(|e| panic!("{json}: {e:?}")),
    )
    .expect("JSON output is UTF-8")
}

fn cbor_of(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    cbor::encode(value, &mut out);
    out
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// The value of `key` in a CBOR map.
#[track_caller]
fn get(value: &Value, key: &str) -> Value {
    let Value::Map(entries) = value else {
        panic!("not a map: {value:?}");
    };
    entries
        .iter()
        .find(|(k, _)| *k == text(key))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no key {key} in {value:?}"))
}

#[track_caller]
fn decode_error_naming(
    result: Result<Vec<u8>, hms_ffi::HmsError>,
    needles: &[&str],
) -> hms_ffi::HmsError {
    let error = expect_code(result, Code::DecodeError);
    for needle in needles {
        assert!(
            error.message.contains(needle),
            "{needle:?} not in {:?}",
            error.message
        );
    }
    error
}

/// xorshift64*: reproducible pseudo-random bits without a dependency.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// ------------------------------------------------- 1. structural blow-up

/// 68 bytes: 33 nested one-entry maps, each the key of the one around it.
/// Writing a map key as its own JSON text escapes every inner key again, so
/// the output used to double per level until the process aborted.
#[test]
fn nested_map_keys_are_refused_in_json_not_escaped_again_per_level() {
    let mut bomb = vec![0xa1; 33];
    bomb.extend_from_slice(&[0x61, b'a', 0x01]);
    bomb.extend_from_slice(&[0x01; 32]);
    assert_eq!(bomb.len(), 68);
    let error = expect_code(
        convert("", Format::Cbor, &bomb, Format::Json),
        Code::InvalidArgument,
    );
    assert!(error.message.contains("map key of type map"), "{error:?}");
    // CBOR to CBOR keeps it: CBOR has such keys.
    assert_eq!(
        convert("", Format::Cbor, &bomb, Format::Cbor).unwrap(),
        bomb
    );
    // Integer and bool keys are written as their text; a clash is refused.
    let keyed = Value::Map(vec![
        (Value::Integer(1), text("one")),
        (Value::Bool(true), text("yes")),
        (text("b"), Value::Null),
    ]);
    assert_eq!(
        convert("", Format::Cbor, &cbor_of(&keyed), Format::Json).unwrap(),
        br#"{"1":"one","b":null,"true":"yes"}"#
    );
    let clash = Value::Map(vec![
        (Value::Integer(1), Value::Null),
        (text("1"), Value::Null),
    ]);
    let error = expect_code(
        convert("", Format::Cbor, &cbor_of(&clash), Format::Json),
        Code::InvalidArgument,
    );
    assert!(error.message.contains("\"1\""), "{error:?}");
    for key in [
        Value::Bytes(vec![1]),
        Value::Float(1.5),
        Value::Null,
        Value::Array(vec![]),
    ] {
        let value = Value::Map(vec![(key.clone(), Value::Null)]);
        expect_code(
            convert("", Format::Cbor, &cbor_of(&value), Format::Json),
            Code::InvalidArgument,
        );
    }
}

/// The same bomb sent to an untyped host method registered in JSON is
/// refused before the handler sees it, and so is a request that grows past
/// the runtime's size limit on its way to JSON.
#[test]
fn an_untyped_json_host_method_refuses_nested_map_keys() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rt = common::runtime_with(|s| s.limits.max_message_bytes = 256);
    let name = common::unique("formats.v1.Any");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    rt.register_service(
        common::untyped(&name, &["Take"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        common::handler(move |reply, _, _, _| {
            seen.fetch_add(1, Ordering::Relaxed);
            reply.set(b"{}").unwrap();
        }),
    )
    .unwrap();
    let method = format!("{name}/Take");
    let mut bomb = vec![0xa1; 33];
    bomb.extend_from_slice(&[0x61, b'a', 0x01]);
    bomb.extend_from_slice(&[0x01; 32]);
    expect_code(
        common::call_raw(&rt, &method, Format::Cbor, &bomb, &[]),
        Code::InvalidArgument,
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    // 80 half floats (241 bytes) are within the limit as CBOR, not as JSON.
    let mut halves = vec![0x98, 80];
    for _ in 0..80 {
        halves.extend_from_slice(&[0xf9, 0x00, 0x01]);
    }
    expect_code(
        common::call_raw(&rt, &method, Format::Cbor, &halves, &[]),
        Code::ResourceExhausted,
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(
        common::call_raw(&rt, &method, Format::Cbor, &[0xa0], &[]).unwrap(),
        [0xa0]
    );
}

#[test]
fn converted_output_over_the_size_limit_is_resource_exhausted() {
    register_numbers_schema();
    let limits = Limits {
        max_message_bytes: 64,
        ..Limits::default()
    };
    // Untyped: 20 half floats (61 bytes) are over 400 bytes of JSON.
    let mut halves = vec![0x94];
    for _ in 0..20 {
        halves.extend_from_slice(&[0xf9, 0x00, 0x01]);
    }
    let error = expect_code(
        convert_with("", Format::Cbor, &halves, Format::Json, &limits),
        Code::ResourceExhausted,
    );
    assert_eq!(
        error.details.get("max_message_bytes").map(String::as_str),
        Some("64")
    );
    assert!(convert_with("", Format::Cbor, &halves, Format::Cbor, &limits).is_ok());
    // Typed: 40 one-byte enum numbers become 40 long names in JSON and CBOR.
    let mut packed = vec![0x72, 40];
    packed.extend_from_slice(&[1; 40]);
    for to in [Format::Json, Format::Cbor] {
        expect_code(
            convert_with(NUMBERS, Format::Protobuf, &packed, to, &limits),
            Code::ResourceExhausted,
        );
        assert!(
            convert(NUMBERS, Format::Protobuf, &packed, to)
                .unwrap()
                .len()
                > 64 * 10
        );
    }
    assert!(
        convert_with(
            NUMBERS,
            Format::Protobuf,
            &packed,
            Format::Protobuf,
            &limits
        )
        .is_ok()
    );
    // A million enum numbers (1 MB) would be 32 MB of names: refused under
    // the default 4 MiB as the output passes it.
    let mut million = vec![0x72];
    prost::encoding::encode_varint(1_000_000, &mut million);
    million.extend(std::iter::repeat_n(1u8, 1_000_000));
    for to in [Format::Json, Format::Cbor] {
        expect_code(
            convert(NUMBERS, Format::Protobuf, &million, to),
            Code::ResourceExhausted,
        );
    }
    // Exactly at the limit passes.
    let json = convert(NUMBERS, Format::Protobuf, &packed, Format::Json).unwrap();
    let at_limit = Limits {
        max_message_bytes: json.len(),
        ..Limits::default()
    };
    assert_eq!(
        convert_with(NUMBERS, Format::Protobuf, &packed, Format::Json, &at_limit).unwrap(),
        json
    );
}

// ------------------------------------------------------ 2. exact doubles

#[test]
fn json_doubles_parse_to_the_nearest_double_exactly() {
    // Map values too: a double value, and a message value holding one.
    let in_maps = r#"{"children":{"b":{"double":-0.0},"a":{"i32":1}},"scores":{"x":-0.0,"y":0.0}}"#;
    let protobuf = json_to(NUMBERS, in_maps, Format::Protobuf).unwrap();
    assert_eq!(
        convert(NUMBERS, Format::Protobuf, &protobuf, Format::Json).unwrap(),
        br#"{"children":{"a":{"i32":1},"b":{"double":-0.0}},"scores":{"x":-0.0,"y":0.0}}"#
    );
    let entry: KnowledgeEntry = common::decode(Format::Json, br#"{"confidence": 2.22507e-308}"#);
    assert_eq!(entry.confidence.to_bits(), 2.22507e-308f64.to_bits());
    let mut bits = Bits(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let double = f64::from_bits(bits.next());
        if !double.is_finite() {
            continue;
        }
        // Rust prints the shortest form that reads back exactly.
        let written = format!("{double:e}");
        let untyped =
            codec::decode_value(Format::Json, written.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(untyped, Value::Float(double), "{written}");
        let json = format!(r#"{{"confidence": {written}}}"#);
        // Map values too: a double value, and a message value holding one.
        let in_maps =
            r#"{"children":{"b":{"double":-0.0},"a":{"i32":1}},"scores":{"x":-0.0,"y":0.0}}"#;
        let protobuf = json_to(NUMBERS, in_maps, Format::Protobuf).unwrap();
        assert_eq!(
            convert(NUMBERS, Format::Protobuf, &protobuf, Format::Json).unwrap(),
            br#"{"children":{"a":{"i32":1},"b":{"double":-0.0}},"scores":{"x":-0.0,"y":0.0}}"#
        );
        let entry: KnowledgeEntry = common::decode(Format::Json, json.as_bytes());
        assert_eq!(entry.confidence.to_bits(), double.to_bits(), "{written}");
        // And the core's own JSON reads back to the same double.
        let printed = convert(
            "hms.agent.v1.KnowledgeEntry",
            Format::Json,
            json.as_bytes(),
            Format::Json,
        )
        .unwrap();
        let again: KnowledgeEntry = common::decode(Format::Json, &printed);
        assert_eq!(again.confidence.to_bits(), double.to_bits(), "{written}");
    }
}

// ------------------------------------------------- 3. integral numbers

#[test]
fn integer_fields_take_integral_numbers_in_any_json_spelling() {
    let task = "hms.agent.v1.Task";
    for (json, priority) in [
        (r#"{"priority": 5.0}"#, 5),
        (r#"{"priority": 1e5}"#, 100_000),
        (r#"{"priority": -2E3}"#, -2000),
        (r#"{"priority": "1e2"}"#, 100),
        (r#"{"priority": "7"}"#, 7),
        (r#"{"priority": "-4.0"}"#, -4),
    ] {
        let decoded: Task = common::decode(Format::Json, json.as_bytes());
        assert_eq!(decoded.priority, priority, "{json}");
    }
    for (json, revision) in [
        (r#"{"revision": 1e5}"#, 100_000u64),
        (r#"{"revision": "1e2"}"#, 100),
        (r#"{"revision": 18446744073709551615}"#, u64::MAX),
        (r#"{"revision": "18446744073709551615"}"#, u64::MAX),
    ] {
        let decoded: Agent = common::decode(Format::Json, json.as_bytes());
        assert_eq!(decoded.revision, revision, "{json}");
    }
    for (json, why) in [
        (r#"{"priority": 1.5}"#, "is not an integer"),
        (r#"{"priority": "1.5"}"#, "is not an integer"),
        (r#"{"priority": "1e-1"}"#, "is not an integer"),
        (r#"{"priority": "five"}"#, "is not an integer"),
        (r#"{"priority": 1e10}"#, "out of range"),
        (r#"{"priority": "3e9"}"#, "out of range"),
        (r#"{"priority": "Infinity"}"#, "is not an integer"),
        (r#"{"priority": 1e300}"#, "1e300 is out of range"),
        (r#"{"priority": "1e40"}"#, "\"1e40\" is out of range"),
        (r#"{"priority": " 5"}"#, "is not an integer"),
    ] {
        decode_error_naming(
            json_to(task, json, Format::Protobuf),
            &["Task.priority", why],
        );
    }
    decode_error_naming(
        json_to(
            "hms.agent.v1.Agent",
            r#"{"revision": -1e0}"#,
            Format::Protobuf,
        ),
        &["Agent.revision", "out of range"],
    );
    // A JSON integer literal just below i64::MIN is no int64, even though
    // it reads as the double -2^63.
    register_numbers_schema();
    decode_error_naming(
        json_to(
            NUMBERS,
            r#"{"i64": -9223372036854775809}"#,
            Format::Protobuf,
        ),
        &["Numbers.i64"],
    );
    let fits = json_text(
        NUMBERS,
        r#"{"i64": -9223372036854775808, "u32": 4.294967295e9}"#,
    );
    assert_eq!(fits, r#"{"i64":"-9223372036854775808","u32":4294967295}"#);
}

// ------------------------------------------------ 4. -0.0, NaN, FLT_MAX

#[test]
fn negative_zero_survives_in_json_and_cbor() {
    register_numbers_schema();
    let json = json_text(
        NUMBERS,
        r#"{"double": -0.0, "single": -0.0, "doubles": [-0.0]}"#,
    );
    assert_eq!(json, r#"{"double":-0.0,"doubles":[-0.0],"single":-0.0}"#);
    let cbor = json_to(NUMBERS, &json, Format::Cbor).unwrap();
    let value = cbor::decode(&cbor, 64).unwrap();
    assert_eq!(get(&value, "double"), Value::Float(-0.0));
    assert!(matches!(get(&value, "double"), Value::Float(f) if f.is_sign_negative()));
    assert!(
        cbor.windows(3).any(|w| w == [0xf9, 0x80, 0x00]),
        "{cbor:02x?}"
    );
    assert_eq!(
        convert(NUMBERS, Format::Cbor, &cbor, Format::Json).unwrap(),
        json.as_bytes()
    );
    // Protobuf writes it too (the default is +0.0 bit for bit), nested
    // messages included.
    let protobuf = json_to(NUMBERS, r#"{"double": -0.0}"#, Format::Protobuf).unwrap();
    assert_eq!(protobuf, [0x11, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    assert_eq!(
        convert(NUMBERS, Format::Protobuf, &protobuf, Format::Json).unwrap(),
        br#"{"double":-0.0}"#
    );
    common::register_test_schema();
    let nested =
        br#"{"node": {"value": "1"}, "dbl": -0.0, "flt": -0.0, "by_id": {"2": "b", "1": "a"}}"#;
    let protobuf = convert("hmstest.v1.Scalars", Format::Json, nested, Format::Protobuf).unwrap();
    let back = convert(
        "hmstest.v1.Scalars",
        Format::Protobuf,
        &protobuf,
        Format::Json,
    )
    .unwrap();
    assert_eq!(
        back,
        br#"{"by_id":{"1":"a","2":"b"},"dbl":-0.0,"flt":-0.0,"node":{"value":"1"}}"#
    );
    // Map values too: a double value, and a message value holding one.
    let in_maps = r#"{"children":{"b":{"double":-0.0},"a":{"i32":1}},"scores":{"x":-0.0,"y":0.0}}"#;
    let protobuf = json_to(NUMBERS, in_maps, Format::Protobuf).unwrap();
    assert_eq!(
        convert(NUMBERS, Format::Protobuf, &protobuf, Format::Json).unwrap(),
        br#"{"children":{"a":{"i32":1},"b":{"double":-0.0}},"scores":{"x":-0.0,"y":0.0}}"#
    );
    let entry: KnowledgeEntry = common::decode(
        Format::Protobuf,
        &json_to(
            "hms.agent.v1.KnowledgeEntry",
            r#"{"confidence": -0.0, "id": "k"}"#,
            Format::Protobuf,
        )
        .unwrap(),
    );
    assert!(entry.confidence == 0.0 && entry.confidence.is_sign_negative());
    assert_eq!(entry.id, "k");
    // Positive zero is still the default, left out.
    assert_eq!(json_text(NUMBERS, r#"{"double": 0.0, "single": 0}"#), "{}");
    let entry = json_text("hms.agent.v1.KnowledgeEntry", r#"{"confidence": -0.0}"#);
    assert_eq!(entry, r#"{"confidence":-0.0}"#);
}

#[test]
fn float_wrappers_keep_nan_and_infinities_as_strings() {
    register_numbers_schema();
    for (json_in, expected) in [
        (r#"{"boxed_double": "NaN"}"#, r#"{"boxed_double":"NaN"}"#),
        (
            r#"{"boxed_double": "Infinity"}"#,
            r#"{"boxed_double":"Infinity"}"#,
        ),
        (
            r#"{"boxedDouble": "-Infinity"}"#,
            r#"{"boxed_double":"-Infinity"}"#,
        ),
        (r#"{"boxed_float": "NaN"}"#, r#"{"boxed_float":"NaN"}"#),
        (
            r#"{"boxed_float": "-Infinity"}"#,
            r#"{"boxed_float":"-Infinity"}"#,
        ),
        (r#"{"boxed_double": 0}"#, r#"{"boxed_double":0.0}"#),
        (r#"{"boxed_double": -0.0}"#, r#"{"boxed_double":-0.0}"#),
        (r#"{"boxed_float": 0.1}"#, r#"{"boxed_float":0.1}"#),
        (r#"{"boxed_double": 0.1}"#, r#"{"boxed_double":0.1}"#),
    ] {
        assert_eq!(json_text(NUMBERS, json_in), expected, "{json_in}");
        // Through CBOR (a native float there) and protobuf too.
        for via in [Format::Cbor, Format::Protobuf] {
            let middle = json_to(NUMBERS, json_in, via).unwrap();
            let back = convert(NUMBERS, via, &middle, Format::Json).unwrap();
            assert_eq!(back, expected.as_bytes(), "{json_in} via {via:?}");
        }
    }
    let cbor = json_to(NUMBERS, r#"{"boxed_double": "NaN"}"#, Format::Cbor).unwrap();
    let value = cbor::decode(&cbor, 64).unwrap();
    assert!(matches!(get(&value, "boxed_double"), Value::Float(f) if f.is_nan()));
}

#[test]
fn float_fields_take_their_own_json_back_and_refuse_overflow() {
    register_numbers_schema();
    for max in [f32::MAX, f32::MIN, f32::MIN_POSITIVE, 0.1f32, 16_777_217.0] {
        let protobuf = {
            let mut out = vec![0x0d];
            out.extend_from_slice(&max.to_le_bytes());
            out
        };
        let json = convert(NUMBERS, Format::Protobuf, &protobuf, Format::Json).unwrap();
        // Printed in the shortest form of a float, as protobuf does.
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            format!(r#"{{"single":{}}}"#, float_text(max))
        );
        for to in FORMATS {
            let once = convert(NUMBERS, Format::Json, &json, to).unwrap();
            let back = convert(NUMBERS, to, &once, Format::Protobuf).unwrap();
            assert_eq!(back, protobuf, "{max} via {to:?}");
        }
    }
    for json in [
        r#"{"single": 3.5e38}"#,
        r#"{"single": -1e39}"#,
        r#"{"single": "1e300"}"#,
    ] {
        decode_error_naming(
            json_to(NUMBERS, json, Format::Protobuf),
            &["Numbers.single", "range of a float"],
        );
    }
    let overflow = cbor_of(&map(vec![("single", Value::Float(1e300))]));
    decode_error_naming(
        convert(NUMBERS, Format::Cbor, &overflow, Format::Protobuf),
        &["Numbers.single"],
    );
    // Infinity itself is a float.
    let infinite = json_to(NUMBERS, r#"{"single": "-Infinity"}"#, Format::Json).unwrap();
    assert_eq!(infinite, br#"{"single":"-Infinity"}"#);
}

fn float_text(f: f32) -> String {
    let mut out = Vec::new();
    serde_json::to_writer(&mut out, &f).unwrap();
    String::from_utf8(out).unwrap()
}

// ---------------------------------------- 5. Duration / Timestamp ranges

#[test]
fn out_of_range_timestamps_and_durations_pass_as_protobuf_only() {
    register_numbers_schema();
    let task = Task {
        title: "t".into(),
        deadline: Some(Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        }),
        ..Default::default()
    };
    let protobuf = task.encode_to_vec();
    assert_eq!(
        convert(
            "hms.agent.v1.Task",
            Format::Protobuf,
            &protobuf,
            Format::Protobuf
        )
        .unwrap(),
        protobuf
    );
    for to in [Format::Json, Format::Cbor] {
        let error = expect_code(
            convert("hms.agent.v1.Task", Format::Protobuf, &protobuf, to),
            Code::OutOfRange,
        );
        assert!(
            error.message.contains("google.protobuf.Timestamp"),
            "{error:?}"
        );
        assert!(error.message.contains("no JSON or CBOR form"), "{error:?}");
    }
    // A Duration of 10,001 years (field 9: seconds 315,607,536,000).
    let duration = prost_types::Duration {
        seconds: 315_607_536_000,
        nanos: 0,
    };
    let mut protobuf = vec![0x4a];
    protobuf.push(duration.encoded_len() as u8);
    protobuf.extend_from_slice(&duration.encode_to_vec());
    assert_eq!(
        convert(NUMBERS, Format::Protobuf, &protobuf, Format::Protobuf).unwrap(),
        protobuf
    );
    for to in [Format::Json, Format::Cbor] {
        let error = expect_code(
            convert(NUMBERS, Format::Protobuf, &protobuf, to),
            Code::OutOfRange,
        );
        assert!(
            error.message.contains("google.protobuf.Duration"),
            "{error:?}"
        );
    }
    // Written as JSON or CBOR, out of range is a decode error.
    for json in [
        r#"{"wait": "315607536000s"}"#,
        r#"{"at": "10000-01-01T00:00:00Z"}"#,
    ] {
        expect_code(json_to(NUMBERS, json, Format::Protobuf), Code::DecodeError);
    }
    assert_eq!(
        json_text(NUMBERS, r#"{"wait": "-1.5s"}"#),
        r#"{"wait":"-1.500s"}"#
    );
}

// --------------------------------------------------------- 6. JSON names

#[test]
fn json_output_uses_proto_names_by_default_and_json_names_on_request() {
    register_numbers_schema();
    let camel = Limits {
        json_names: JsonNames::LowerCamelCase,
        ..Limits::default()
    };
    let input = r#"{"display_name": "x", "boxed_double": 1.5, "i32": 1}"#;
    assert_eq!(
        json_text(NUMBERS, input),
        r#"{"boxed_double":1.5,"display_name":"x","i32":1}"#
    );
    let camel_json = convert_with(
        NUMBERS,
        Format::Json,
        input.as_bytes(),
        Format::Json,
        &camel,
    )
    .unwrap();
    assert_eq!(
        camel_json,
        br#"{"boxedDouble":1.5,"displayName":"x","i32":1}"#
    );
    // Parsers take both names, in both modes; CBOR keeps proto names.
    assert_eq!(
        json_text(NUMBERS, std::str::from_utf8(&camel_json).unwrap()),
        json_text(NUMBERS, input)
    );
    let cbor = convert_with(NUMBERS, Format::Json, &camel_json, Format::Cbor, &camel).unwrap();
    assert_eq!(
        get(&cbor::decode(&cbor, 64).unwrap(), "display_name"),
        text("x")
    );
    // Nested messages and well-known types follow the mode too.
    let agent = br#"{"createdAt": "2026-01-01T00:00:00Z", "labels": {"a_b": "c"}}"#;
    let out = convert_with(
        "hms.agent.v1.Agent",
        Format::Json,
        agent,
        Format::Json,
        &camel,
    )
    .unwrap();
    assert_eq!(
        out,
        br#"{"createdAt":"2026-01-01T00:00:00Z","labels":{"a_b":"c"}}"#
    );
}

#[test]
fn a_runtime_config_selects_the_json_names() {
    use hms_ffi::config::Settings;
    use hms_ffi::proto::v1::{JsonNames as ConfigJsonNames, RuntimeConfig};
    let settings = |json_names: ConfigJsonNames| {
        Settings::from_config(RuntimeConfig {
            json_names: json_names as i32,
            ..Default::default()
        })
        .unwrap()
        .limits
        .json_names
    };
    assert_eq!(settings(ConfigJsonNames::Unspecified), JsonNames::Proto);
    assert_eq!(settings(ConfigJsonNames::Proto), JsonNames::Proto);
    assert_eq!(
        settings(ConfigJsonNames::LowerCamelCase),
        JsonNames::LowerCamelCase
    );
    // A runtime so configured writes its built-in responses that way.
    for (names, key) in [
        (JsonNames::Proto, "\"library_version\""),
        (JsonNames::LowerCamelCase, "\"libraryVersion\""),
    ] {
        let rt = common::runtime_with(|s| s.limits.json_names = names);
        let out =
            common::call_raw(&rt, "hms.sys.v1.System/Version", Format::Json, b"{}", &[]).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(key), "{names:?}: {out}");
    }
    let unknown = Settings::from_config(RuntimeConfig {
        json_names: 99,
        ..Default::default()
    });
    expect_code(unknown, Code::InvalidArgument);
}

// ---------------------------------- 7. unknown enum names, duplicate keys

#[test]
fn unknown_enum_names_are_decode_errors_in_json_and_cbor() {
    let json = r#"{"state": "NOT_A_STATE"}"#;
    let cbor = cbor_of(&map(vec![("state", text("NOT_A_STATE"))]));
    for (from, bytes) in [
        (Format::Json, json.as_bytes().to_vec()),
        (Format::Cbor, cbor),
    ] {
        let error = decode_error_naming(
            convert("hms.agent.v1.Agent", from, &bytes, Format::Protobuf),
            &["Agent.state", "NOT_A_STATE"],
        );
        assert_eq!(
            error.details.get("value").map(String::as_str),
            Some("NOT_A_STATE")
        );
    }
}

#[test]
fn duplicate_keys_are_decode_errors_typed_and_untyped() {
    for json in [
        r#"{"name": "a", "name": "b"}"#,
        r#"{"labels": {"k": "1", "k": "2"}}"#,
    ] {
        decode_error_naming(
            json_to("hms.agent.v1.Agent", json, Format::Protobuf),
            &["duplicate key", "\""],
        );
        decode_error_naming(
            convert("", Format::Json, json.as_bytes(), Format::Cbor),
            &["duplicate key"],
        );
    }
    // Both names of one field, or two members of one oneof.
    register_numbers_schema();
    decode_error_naming(
        json_to(
            NUMBERS,
            r#"{"display_name": "a", "displayName": "b"}"#,
            Format::Protobuf,
        ),
        &["given more than once"],
    );
    // CBOR: the same key twice, even in two encodings of it.
    let twice = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
    decode_error_naming(
        convert("", Format::Cbor, &twice, Format::Json),
        &["duplicate map key \"a\""],
    );
    let one_two_ways = [0xa2, 0x01, 0xf6, 0x18, 0x01, 0xf6];
    decode_error_naming(
        convert("", Format::Cbor, &one_two_ways, Format::Cbor),
        &["duplicate map key 1"],
    );
    let mut agent = vec![0xa2];
    for value in ["a", "b"] {
        agent.extend_from_slice(&[0x64, b'n', b'a', b'm', b'e', 0x61, value.as_bytes()[0]]);
    }
    decode_error_naming(
        convert("hms.agent.v1.Agent", Format::Cbor, &agent, Format::Protobuf),
        &["duplicate map key \"name\""],
    );
    // Map keys of a typed map field that are equal as keys ("1" and "01").
    common::register_test_schema();
    decode_error_naming(
        json_to(
            "hmstest.v1.Scalars",
            r#"{"by_id": {"1": "a", "01": "b"}}"#,
            Format::Protobuf,
        ),
        &["duplicate map key"],
    );
}

// ------------------------------------------------------------- 8. CBOR

#[test]
fn each_chunk_of_an_indefinite_text_string_must_be_utf8() {
    // "é" (c3 a9) split across two chunks: each chunk alone is malformed.
    let split = [0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff];
    decode_error_naming(
        convert("", Format::Cbor, &split, Format::Json),
        &["chunk is not valid UTF-8"],
    );
    let whole = [0x7f, 0x62, 0xc3, 0xa9, 0x61, b'!', 0xff];
    assert_eq!(
        convert("", Format::Cbor, &whole, Format::Json).unwrap(),
        "\"é!\"".as_bytes()
    );
}

#[test]
fn bignums_decode_to_their_integer_value() {
    let decode = |bytes: &[u8]| cbor::decode(bytes, 64);
    // 2^64 - 1 and -2^64 as bignums (tag 2, tag 3), with leading zeros.
    let max = [
        0xc2, 0x49, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(decode(&max).unwrap(), Value::Integer(u64::MAX as i128));
    let min = [0xc3, 0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        decode(&min).unwrap(),
        Value::Integer(-(u64::MAX as i128) - 1)
    );
    assert_eq!(decode(&[0xc2, 0x41, 0x05]).unwrap(), Value::Integer(5));
    assert_eq!(decode(&[0xc3, 0x40]).unwrap(), Value::Integer(-1));
    // Indefinite-length magnitude.
    assert_eq!(
        decode(&[0xc2, 0x5f, 0x41, 0x01, 0x41, 0x00, 0xff]).unwrap(),
        Value::Integer(256)
    );
    // Beyond the 64-bit range, or not a byte string: refused.
    let huge = [0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        decode(&huge)
            .unwrap_err()
            .message
            .contains("beyond the 64-bit integer range")
    );
    expect_code(decode(&[0xc3, 0x01]), Code::DecodeError);
    // Untyped, a bignum converts like the integer it is.
    assert_eq!(
        convert("", Format::Cbor, &max, Format::Json).unwrap(),
        b"18446744073709551615"
    );
    assert_eq!(
        convert("", Format::Cbor, &max, Format::Cbor).unwrap(),
        [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
    // Typed, it fits the field or is refused.
    let mut revision = vec![0xa1, 0x68];
    revision.extend_from_slice(b"revision");
    let with = |value: &[u8]| [revision.as_slice(), value].concat();
    let agent: Agent = common::decode(Format::Cbor, &with(&max));
    assert_eq!(agent.revision, u64::MAX);
    decode_error_naming(
        convert(
            "hms.agent.v1.Agent",
            Format::Cbor,
            &with(&[0xc3, 0x40]),
            Format::Protobuf,
        ),
        &["Agent.revision", "-1 is out of range"],
    );
    let mut priority = vec![0xa1, 0x68];
    priority.extend_from_slice(b"priority");
    priority.extend_from_slice(&[0xc2, 0x45, 0x01, 0, 0, 0, 0]);
    decode_error_naming(
        convert(
            "hms.agent.v1.Task",
            Format::Cbor,
            &priority,
            Format::Protobuf,
        ),
        &["Task.priority", "out of range"],
    );
}

// ------------------------------------------------------ golden vectors

/// Every case of tests/vectors converts between its three files byte for
/// byte, as every binding checks: the core's default output is unchanged.
#[test]
fn golden_vectors_convert_byte_for_byte() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    for case in cases {
        let type_name = case["type"].as_str().unwrap();
        let file =
            |ext: &str| std::fs::read(root.join(case["files"][ext].as_str().unwrap())).unwrap();
        let files = [
            (Format::Json, file("json")),
            (Format::Cbor, file("cbor")),
            (Format::Protobuf, file("pb")),
        ];
        for (from, input) in &files {
            for (to, expected) in &files {
                let got = convert(type_name, *from, input, *to).unwrap_or_else(|e| {
                    panic!("{type_name} {} {from:?}->{to:?}: {e:?}", case["case"])
                });
                assert_eq!(
                    &got, expected,
                    "{type_name} {} {from:?}->{to:?}",
                    case["case"]
                );
            }
        }
    }
}

// ------------------------------- 9. protobuf conformance regressions

#[test]
fn json_bytes_take_base64url_and_missing_padding() {
    // Recommended.Proto3.JsonInput.BytesFieldBase64Url: "-_" is 0xfb, the
    // unused bits of the last symbol ignored.
    let echo = "hms.sys.v1.EchoRequest";
    for (json, bytes) in [
        (r#"{"payload": "-_"}"#, vec![0xfb]),
        (r#"{"payload": "-_8="}"#, vec![0xfb, 0xff]),
        (r#"{"payload": "-_8"}"#, vec![0xfb, 0xff]),
        (r#"{"payload": "+/8="}"#, vec![0xfb, 0xff]),
        (r#"{"payload": "+/8"}"#, vec![0xfb, 0xff]),
        (r#"{"payload": "AQI"}"#, vec![1, 2]),
    ] {
        let pb = json_to(echo, json, Format::Protobuf).unwrap_or_else(|e| panic!("{json}: {e:?}"));
        let mut expected = vec![0x0a, bytes.len() as u8];
        expected.extend_from_slice(&bytes);
        assert_eq!(pb, expected, "{json}");
    }
    // Output stays standard, padded base64.
    assert_eq!(
        json_text(echo, r#"{"payload": "-_8"}"#),
        r#"{"payload":"+/8="}"#
    );
    for bad in [r#"{"payload": "*"}"#, r#"{"payload": "A"}"#] {
        decode_error_naming(json_to(echo, bad, Format::Protobuf), &["payload"]);
    }
}

#[test]
fn a_null_oneof_member_is_not_set_and_not_a_second_member() {
    // Required.Proto3.JsonInput.OneofFieldNull{First,Second}.
    let event = "hms.events.v1.Event";
    for json in [
        r#"{"service": null, "lagged": {}}"#,
        r#"{"lagged": {}, "service": null}"#,
    ] {
        assert_eq!(json_text(event, json), r#"{"lagged":{}}"#, "{json}");
    }
    assert_eq!(
        json_text(event, r#"{"service": null, "agent": null}"#),
        "{}"
    );
    // Two members set, or one field given twice, are still refused.
    for json in [
        r#"{"service": {}, "lagged": {}}"#,
        r#"{"service": null, "service": {}}"#,
        r#"{"hook_failed": null, "hookFailed": {}}"#,
    ] {
        assert!(
            json_to(event, json, Format::Protobuf).is_err(),
            "{json} was accepted"
        );
    }
}

const EXTENDABLE: &str = "hmsext.v1.Extendable";

/// `hmsext.v1.Extendable` (proto2, extensions 100 to 199) and three
/// extensions of it: `count` (int32), `tags` (repeated string) and `child`
/// (an Extendable).
fn register_extension_schema() {
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        descriptor_proto::ExtensionRange,
    };
    let field = |name: &str, number: i32, label: Label, kind: Type| FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    let extension = |name: &str, number: i32, label: Label, kind: Type| FieldDescriptorProto {
        extendee: Some(".hmsext.v1.Extendable".into()),
        ..field(name, number, label, kind)
    };
    let mut child = extension("child", 102, Label::Optional, Type::Message);
    child.type_name = Some(".hmsext.v1.Extendable".into());
    let file = FileDescriptorProto {
        name: Some("hmsext/v1/extendable.proto".into()),
        package: Some("hmsext.v1".into()),
        message_type: vec![DescriptorProto {
            name: Some("Extendable".into()),
            field: vec![field("plain", 1, Label::Optional, Type::Int32)],
            extension_range: vec![ExtensionRange {
                start: Some(100),
                end: Some(200),
                ..Default::default()
            }],
            ..Default::default()
        }],
        extension: vec![
            extension("count", 100, Label::Optional, Type::Int32),
            extension("tags", 101, Label::Repeated, Type::String),
            child,
        ],
        syntax: Some("proto2".into()),
        ..Default::default()
    };
    let set = FileDescriptorSet { file: vec![file] };
    schema::register(&set.encode_to_vec()).expect("the extension schema registers");
}

#[test]
fn extensions_are_bracketed_full_names_in_json_and_cbor() {
    // Recommended.Proto2.JsonInput.FieldNameExtension.
    register_extension_schema();
    let json = r#"{"plain": 1, "[hmsext.v1.count]": 7, "[hmsext.v1.tags]": ["a", "b"],
        "[hmsext.v1.child]": {"[hmsext.v1.count]": 8}}"#;
    let expected = r#"{"[hmsext.v1.child]":{"[hmsext.v1.count]":8},"[hmsext.v1.count]":7,"[hmsext.v1.tags]":["a","b"],"plain":1}"#;
    assert_eq!(json_text(EXTENDABLE, json), expected);
    // Through protobuf (field numbers 100..102) and CBOR, and back.
    let pb = json_to(EXTENDABLE, json, Format::Protobuf).unwrap();
    assert!(
        pb.windows(2).any(|w| w == [0xa0, 0x06]),
        "no field 100 in {pb:x?}"
    );
    let back = convert(EXTENDABLE, Format::Protobuf, &pb, Format::Json).unwrap();
    assert_eq!(String::from_utf8(back).unwrap(), expected);
    let cbor = convert(EXTENDABLE, Format::Protobuf, &pb, Format::Cbor).unwrap();
    let value = cbor::decode(&cbor, 64).unwrap();
    assert_eq!(get(&value, "[hmsext.v1.count]"), Value::Integer(7));
    let back = convert(EXTENDABLE, Format::Cbor, &cbor, Format::Json).unwrap();
    assert_eq!(String::from_utf8(back).unwrap(), expected);
    // The same keys in lowerCamelCase mode; null is "not set"; unknown
    // extensions are skipped like unknown fields; one given twice is refused.
    let camel = Limits {
        json_names: JsonNames::LowerCamelCase,
        ..Limits::default()
    };
    let out = convert_with(
        EXTENDABLE,
        Format::Json,
        json.as_bytes(),
        Format::Json,
        &camel,
    );
    assert_eq!(String::from_utf8(out.unwrap()).unwrap(), expected);
    assert_eq!(
        json_text(
            EXTENDABLE,
            r#"{"[hmsext.v1.count]": null, "[hmsext.v1.nope]": 1}"#
        ),
        "{}"
    );
    decode_error_naming(
        json_to(
            EXTENDABLE,
            r#"{"[hmsext.v1.count]": 1, "[hmsext.v1.count]": 2}"#,
            Format::Protobuf,
        ),
        &["duplicate key"],
    );
    // Nesting through extensions counts against the depth limit.
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let deep = r#"{"[hmsext.v1.child]": {"[hmsext.v1.child]": {"plain": 1}}}"#;
    let deep = json_to(EXTENDABLE, deep, Format::Protobuf).unwrap();
    expect_code(
        convert_with(EXTENDABLE, Format::Protobuf, &deep, Format::Json, &shallow),
        Code::ResourceExhausted,
    );
}

#[test]
fn a_runtime_converts_with_its_own_json_names_and_limits() {
    register_numbers_schema();
    let input = br#"{"display_name": "x", "i32": 1}"#;
    let proto_rt = common::runtime_with(|_| {});
    let camel_rt = common::runtime_with(|s| s.limits.json_names = JsonNames::LowerCamelCase);
    let small_rt = common::runtime_with(|s| s.limits.max_message_bytes = 16);
    let run = |rt: &hms_ffi::runtime::Runtime, bytes: &[u8]| {
        let mut out = Vec::new();
        rt.convert(NUMBERS, Format::Json, bytes, Format::Json, &mut out)
            .map(|()| String::from_utf8(out).unwrap())
    };
    assert_eq!(
        run(&proto_rt, input).unwrap(),
        r#"{"display_name":"x","i32":1}"#
    );
    assert_eq!(
        run(&camel_rt, input).unwrap(),
        r#"{"displayName":"x","i32":1}"#
    );
    // 15 bytes in, 28 out: the output is over the runtime's limit.
    let short = br#"{"i32": 123456}"#;
    assert_eq!(run(&small_rt, short).unwrap(), r#"{"i32":123456}"#);
    expect_code(run(&small_rt, input), Code::ResourceExhausted);
    expect_code(
        codec::convert(
            "no.such.Type",
            Format::Json,
            b"{}",
            Format::Json,
            &Limits::default(),
            &mut Vec::new(),
        ),
        Code::NotFound,
    );
}
