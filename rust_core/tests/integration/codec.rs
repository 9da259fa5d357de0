//! Protobuf, CBOR and JSON: round trips, the CBOR mapping, leniency on
//! input, and the limits a hostile payload runs into.

use crate::common;

use std::collections::{HashMap, HashSet};

use common::{FORMATS, decode, encode, expect_code};
use hms_ffi::Code;
use hms_ffi::codec::{self, Format, Limits, Value, cbor};
use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState;
use hms_ffi::proto::hms::agent::v1::{
    Agent, KnowledgeEntry, ListAgentsRequest, Task, TaskStatus, UpdateAgentRequest,
};
use hms_ffi::proto::hms::sys::v1::EchoRequest;
use hms_ffi::proto::v1::Status;
use hms_ffi::schema;
use prost_types::{FieldMask, Timestamp};

// ------------------------------------------------------------------ helpers

fn convert(
    type_name: &str,
    from: Format,
    bytes: &[u8],
    to: Format,
) -> Result<Vec<u8>, hms_ffi::HmsError> {
    convert_with(type_name, from, bytes, to, &Limits::default())
}

fn convert_with(
    type_name: &str,
    from: Format,
    bytes: &[u8],
    to: Format,
    limits: &Limits,
) -> Result<Vec<u8>, hms_ffi::HmsError> {
    let desc = schema::message_descriptor(type_name)?;
    let mut out = Vec::new();
    codec::transcode(Some(&desc), from, bytes, to, limits, &mut out)?;
    Ok(out)
}

fn convert_untyped(from: Format, bytes: &[u8], to: Format) -> Result<Vec<u8>, hms_ffi::HmsError> {
    let mut out = Vec::new();
    codec::transcode(None, from, bytes, to, &Limits::default(), &mut out)?;
    Ok(out)
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

/// The value of `key` in a decoded map.
#[track_caller]
fn get<'a>(value: &'a Value, key: &str) -> &'a Value {
    let Value::Map(entries) = value else {
        panic!("not a map: {value:?}");
    };
    entries
        .iter()
        .find(|(k, _)| *k == Value::Text(key.into()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no key {key} in {value:?}"))
}

fn has(value: &Value, key: &str) -> bool {
    let Value::Map(entries) = value else {
        return false;
    };
    entries.iter().any(|(k, _)| *k == Value::Text(key.into()))
}

/// `value` with the entries of every map sorted, to compare maps as sets.
fn normalized(value: Value) -> Value {
    match value {
        Value::Map(entries) => {
            let mut entries: Vec<(Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| (normalized(k), normalized(v)))
                .collect();
            entries.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(entries)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

fn parse_json(bytes: &[u8]) -> Value {
    codec::decode_value(Format::Json, bytes, &Limits::default()).expect("valid JSON")
}

fn parse_cbor(bytes: &[u8]) -> Value {
    cbor::decode(bytes, 100).expect("valid CBOR")
}

fn ts(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

/// An agent with every kind of field; maps hold one entry each so that every
/// encoding of it is byte-for-byte deterministic.
fn single_entry_agent() -> Agent {
    Agent {
        id: "0190b7e0-0000-7000-8000-000000000001".into(),
        name: "scout ✓ 日本語 🚀".into(),
        kind: "searcher".into(),
        version: "1.0.0-β".into(),
        capabilities: vec!["search".into(), "summarize".into(), "ü".into()],
        labels: [("team".to_string(), "blue".to_string())].into(),
        metadata: [("nul".to_string(), "a\0b".to_string())].into(),
        state: LifecycleState::Active as i32,
        created_at: Some(ts(-62_135_596_800, 0)),
        updated_at: Some(ts(253_402_300_799, 999_999_999)),
        revision: u64::MAX,
        description: "line 1\nline 2 \"quoted\" \\ \u{0} \u{7f} \u{feff}".into(),
    }
}

fn many_labels_agent() -> Agent {
    let mut agent = single_entry_agent();
    agent.labels = (0..40)
        .map(|i| (format!("k{i:02}{}", "x".repeat(i % 7)), format!("v{i}")))
        .collect();
    agent.metadata = (0..25).map(|i| (format!("m{i}"), "é".repeat(i))).collect();
    agent
}

fn extreme_task(priority: i32) -> Task {
    Task {
        id: "t1".into(),
        agent_id: "a1".into(),
        title: "título \u{1F600}".into(),
        input: vec![0, 1, 0, 0xff, 0, 0x80, 0].into(),
        input_content_type: "application/octet-stream".into(),
        priority,
        status: TaskStatus::Failed as i32,
        result: vec![0; 5].into(),
        result_content_type: "text/plain".into(),
        error: Some(Status {
            code: Code::HandlerError as i32,
            message: "boom".into(),
            details: [("rule".to_string(), "x".to_string())].into(),
            origin: "test".into(),
        }),
        deadline: Some(ts(1_795_107_600, 1)),
        created_at: Some(ts(0, 0)),
        updated_at: Some(ts(1, 500_000_000)),
        revision: 1,
        labels: [("k".to_string(), String::new())].into(),
        required_capabilities: vec![String::new(), "gpu \u{1F600}".into()],
        max_attempts: u32::MAX,
        attempts: u32::MAX,
        claimed_by: "worker é".into(),
        lease_expires_at: Some(ts(253_402_300_799, 999_999_999)),
    }
}

/// JSON of an hmstest.v1.Scalars with every 64-bit extreme.
const SCALARS_JSON: &str = r#"{
  "i64": "-9223372036854775808", "u64": "18446744073709551615",
  "s64": "-9223372036854775808", "fx64": "18446744073709551615",
  "sfx64": "-9223372036854775808", "i32": -2147483648,
  "dbl": 0.1, "flt": 1.5, "flag": true, "text": "ünïcödé \u0000 end",
  "data": "AAEA/wA=", "color": "GREEN",
  "many": ["-9223372036854775808", "-1", "0", "9223372036854775807"],
  "by_id": {"-9223372036854775808": "min"}, "by_flag": {"true": "yes"},
  "node": {"child": {"child": {"value": "9223372036854775807", "label": "deep"}}},
  "colors": ["RED", "GREEN"]
}"#;

/// Every conversion between the three formats of the message held in
/// `protobuf`; each result converted back to protobuf must give the same
/// bytes when `bytes_equal`, and the same message otherwise.
fn check_all_conversions<M>(type_name: &str, protobuf: &[u8], bytes_equal: bool)
where
    M: prost::Message + Default + PartialEq + std::fmt::Debug,
{
    let original = M::decode(protobuf).expect("valid protobuf");
    let encoded: HashMap<Format, Vec<u8>> = FORMATS
        .iter()
        .map(|f| {
            (
                *f,
                convert(type_name, Format::Protobuf, protobuf, *f).unwrap(),
            )
        })
        .collect();
    let mut conversions = 0;
    for from in FORMATS {
        for to in FORMATS {
            if from == to {
                continue;
            }
            let converted = convert(type_name, from, &encoded[&from], to)
                .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e:?}"));
            if to == Format::Cbor || bytes_equal {
                assert_eq!(converted, encoded[&to], "{from:?} -> {to:?} differs");
            }
            let back = convert(type_name, to, &converted, Format::Protobuf).unwrap();
            if bytes_equal {
                assert_eq!(
                    back,
                    encoded[&Format::Protobuf],
                    "{from:?} -> {to:?} -> protobuf changed the bytes"
                );
            }
            assert_eq!(
                M::decode(back.as_slice()).unwrap(),
                original,
                "{from:?} -> {to:?} changed the message"
            );
            conversions += 1;
        }
    }
    assert_eq!(conversions, 6);
}

// ------------------------------------------------- independent CBOR checker

/// Checks RFC 8949 §4.2.1 core deterministic encoding of one item: shortest
/// heads, definite lengths, no tags, shortest floats, map keys strictly
/// ascending by their encoded bytes. Returns the number of maps seen.
struct DeterminismChecker<'a> {
    buf: &'a [u8],
    pos: usize,
    maps: usize,
    halves: HashSet<u32>,
}

fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let mantissa = (bits & 0x3ff) as f32;
    let magnitude = match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    };
    sign * magnitude
}

impl<'a> DeterminismChecker<'a> {
    fn check(buf: &'a [u8]) -> usize {
        let halves = (0..=u16::MAX)
            .map(half_to_f32)
            .filter(|f| !f.is_nan())
            .map(f32::to_bits)
            .collect();
        let mut checker = DeterminismChecker {
            buf,
            pos: 0,
            maps: 0,
            halves,
        };
        checker.item();
        assert_eq!(checker.pos, buf.len(), "trailing bytes");
        checker.maps
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        slice
    }

    fn head(&mut self, info: u8) -> u64 {
        let at = self.pos;
        let (arg, minimum) = match info {
            0..=23 => (info as u64, 0),
            24 => (self.take(1)[0] as u64, 24),
            25 => (
                u16::from_be_bytes(self.take(2).try_into().unwrap()) as u64,
                0x100,
            ),
            26 => (
                u32::from_be_bytes(self.take(4).try_into().unwrap()) as u64,
                0x1_0000,
            ),
            27 => (
                u64::from_be_bytes(self.take(8).try_into().unwrap()),
                0x1_0000_0000,
            ),
            _ => panic!("indefinite length or reserved info {info} at byte {at}"),
        };
        assert!(
            arg >= minimum,
            "argument {arg} not in its shortest form at byte {at}"
        );
        arg
    }

    fn item(&mut self) {
        let initial = self.take(1)[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        match major {
            0 | 1 => {
                self.head(info);
            }
            2 | 3 => {
                let len = self.head(info) as usize;
                self.take(len);
            }
            4 => {
                for _ in 0..self.head(info) {
                    self.item();
                }
            }
            5 => {
                self.maps += 1;
                let mut previous: Option<&[u8]> = None;
                for _ in 0..self.head(info) {
                    let start = self.pos;
                    self.item();
                    let key = &self.buf[start..self.pos];
                    if let Some(previous) = previous {
                        assert!(
                            previous < key,
                            "map keys out of order: {previous:x?} then {key:x?}"
                        );
                    }
                    previous = Some(key);
                    self.item();
                }
            }
            6 => panic!("the core wrote a tag"),
            _ => match info {
                20..=22 => {}
                25 => {
                    self.take(2);
                }
                26 => {
                    let f = f32::from_be_bytes(self.take(4).try_into().unwrap());
                    assert!(!f.is_nan(), "NaN must be written as f97e00");
                    assert!(!self.halves.contains(&f.to_bits()), "{f} fits in a half");
                }
                27 => {
                    let f = f64::from_be_bytes(self.take(8).try_into().unwrap());
                    assert!(!f.is_nan(), "NaN must be written as f97e00");
                    assert_ne!((f as f32) as f64, f, "{f} fits in a single");
                }
                _ => panic!("unexpected simple value {info}"),
            },
        }
    }
}

// ------------------------------------------------------------- round trips

#[test]
fn echo_round_trips_in_every_format_and_conversion() {
    let echo = EchoRequest {
        payload: vec![0, 0, 1, 0xff, 0, b'a', 0].into(),
        text: "héllo \u{0} wörld 🚀 \"\\/\u{1}".into(),
    };
    check_all_conversions::<EchoRequest>(
        "hms.sys.v1.EchoRequest",
        &encode(&echo, Format::Protobuf),
        true,
    );
    for format in FORMATS {
        let back: EchoRequest = decode(format, &encode(&echo, format));
        assert_eq!(back, echo, "{format:?}");
    }
}

#[test]
fn agent_round_trips_in_every_format_and_conversion() {
    let agent = single_entry_agent();
    check_all_conversions::<Agent>(
        "hms.agent.v1.Agent",
        &encode(&agent, Format::Protobuf),
        true,
    );
    for format in FORMATS {
        let back: Agent = decode(format, &encode(&agent, format));
        assert_eq!(back, agent, "{format:?}");
    }
}

#[test]
fn agent_with_many_map_entries_round_trips() {
    let agent = many_labels_agent();
    check_all_conversions::<Agent>(
        "hms.agent.v1.Agent",
        &encode(&agent, Format::Protobuf),
        false,
    );
    for format in FORMATS {
        let back: Agent = decode(format, &encode(&agent, format));
        assert_eq!(back, agent, "{format:?}");
    }
}

#[test]
fn task_priority_extremes_and_binary_input_round_trip() {
    for priority in [i32::MIN, -1, 0, 1, i32::MAX] {
        let task = extreme_task(priority);
        check_all_conversions::<Task>("hms.agent.v1.Task", &encode(&task, Format::Protobuf), true);
        for format in FORMATS {
            let back: Task = decode(format, &encode(&task, format));
            assert_eq!(back, task, "{format:?} priority {priority}");
        }
    }
    let cbor = parse_cbor(&encode(&extreme_task(i32::MIN), Format::Cbor));
    assert_eq!(*get(&cbor, "priority"), Value::Integer(i32::MIN as i128));
    assert_eq!(
        *get(&cbor, "input"),
        Value::Bytes(vec![0, 1, 0, 0xff, 0, 0x80, 0])
    );
    assert_eq!(*get(&cbor, "status"), text("FAILED"));
    assert_eq!(*get(get(&cbor, "error"), "code"), Value::Integer(102));
}

#[test]
fn sixty_four_bit_extremes_round_trip_in_a_registered_schema() {
    common::register_test_schema();
    let protobuf = convert(
        "hmstest.v1.Scalars",
        Format::Json,
        SCALARS_JSON.as_bytes(),
        Format::Protobuf,
    )
    .unwrap();
    // No prost type for this schema: compare bytes, which are deterministic
    // with single-entry maps.
    let encoded: HashMap<Format, Vec<u8>> = FORMATS
        .iter()
        .map(|f| {
            (
                *f,
                convert("hmstest.v1.Scalars", Format::Protobuf, &protobuf, *f).unwrap(),
            )
        })
        .collect();
    for from in FORMATS {
        for to in FORMATS {
            let converted = convert("hmstest.v1.Scalars", from, &encoded[&from], to).unwrap();
            assert_eq!(converted, encoded[&to], "{from:?} -> {to:?}");
        }
    }
    let value = parse_cbor(&encoded[&Format::Cbor]);
    let min = i64::MIN as i128;
    let max = u64::MAX as i128;
    assert_eq!(*get(&value, "i64"), Value::Integer(min));
    assert_eq!(*get(&value, "u64"), Value::Integer(max));
    assert_eq!(*get(&value, "s64"), Value::Integer(min));
    assert_eq!(*get(&value, "fx64"), Value::Integer(max));
    assert_eq!(*get(&value, "sfx64"), Value::Integer(min));
    assert_eq!(*get(&value, "i32"), Value::Integer(i32::MIN as i128));
    assert_eq!(*get(&value, "flag"), Value::Bool(true));
    assert_eq!(*get(&value, "data"), Value::Bytes(vec![0, 1, 0, 0xff, 0]));
    assert_eq!(*get(&value, "color"), text("GREEN"));
    assert_eq!(
        *get(&value, "colors"),
        Value::Array(vec![text("RED"), text("GREEN")])
    );
    assert_eq!(
        *get(&value, "many"),
        Value::Array(vec![
            Value::Integer(min),
            Value::Integer(-1),
            Value::Integer(0),
            Value::Integer(i64::MAX as i128)
        ])
    );
    // Integer map keys stay integers in CBOR, bool keys stay bools.
    assert_eq!(
        *get(&value, "by_id"),
        Value::Map(vec![(Value::Integer(min), text("min"))])
    );
    assert_eq!(
        *get(&value, "by_flag"),
        Value::Map(vec![(Value::Bool(true), text("yes"))])
    );
    assert_eq!(
        *get(get(get(get(&value, "node"), "child"), "child"), "value"),
        Value::Integer(i64::MAX as i128)
    );
    // Raw heads: i64::MIN is major 1 with argument 2^63-1, u64::MAX major 0.
    let raw = &encoded[&Format::Cbor];
    let find = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(find(&[
        0x63, b'i', b'6', b'4', 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    ]));
    assert!(find(&[
        0x63, b'u', b'6', b'4', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    ]));
    // JSON writes 64-bit integers as strings, 32-bit ones as numbers.
    let json = parse_json(&encoded[&Format::Json]);
    assert_eq!(*get(&json, "i64"), text("-9223372036854775808"));
    assert_eq!(*get(&json, "u64"), text("18446744073709551615"));
    assert_eq!(*get(&json, "i32"), Value::Integer(i32::MIN as i128));
    assert_eq!(*get(&json, "data"), text("AAEA/wA="));
}

#[test]
fn cbor_floats_take_their_shortest_form() {
    common::register_test_schema();
    for (json, expected) in [
        (r#"{"dbl": 1.5}"#, vec![0xf9, 0x3e, 0x00]),
        (r#"{"dbl": 100000.0}"#, vec![0xfa, 0x47, 0xc3, 0x50, 0x00]),
        (
            r#"{"dbl": 1.1}"#,
            vec![0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
        ),
        (r#"{"dbl": "NaN"}"#, vec![0xf9, 0x7e, 0x00]),
        (r#"{"dbl": "-Infinity"}"#, vec![0xf9, 0xfc, 0x00]),
        (r#"{"flt": 0.5}"#, vec![0xf9, 0x38, 0x00]),
    ] {
        let out = convert(
            "hmstest.v1.Scalars",
            Format::Json,
            json.as_bytes(),
            Format::Cbor,
        )
        .unwrap();
        assert!(
            out.ends_with(&expected),
            "{json} gave {out:02x?}, expected a value of {expected:02x?}"
        );
        DeterminismChecker::check(&out);
    }
}

// ---------------------------------------------------------- CBOR mapping

#[test]
fn cbor_output_is_deterministic() {
    let agent = many_labels_agent();
    // Equal maps filled in a different order.
    let mut reordered = agent.clone();
    let mut pairs: Vec<(String, String)> = agent.labels.clone().into_iter().collect();
    pairs.reverse();
    reordered.labels = pairs.into_iter().collect();
    let first = encode(&agent, Format::Cbor);
    assert_eq!(first, encode(&agent, Format::Cbor));
    assert_eq!(first, encode(&reordered, Format::Cbor));
    // Whatever format it came from.
    for from in FORMATS {
        let bytes = encode(&agent, from);
        assert_eq!(
            convert("hms.agent.v1.Agent", from, &bytes, Format::Cbor).unwrap(),
            first,
            "from {from:?}"
        );
    }
    let maps = DeterminismChecker::check(&first);
    assert!(maps >= 3, "agent, labels and metadata are maps");
}

#[test]
fn cbor_map_keys_are_in_rfc8949_core_deterministic_order() {
    let agent = many_labels_agent();
    let value = parse_cbor(&encode(&agent, Format::Cbor));
    let Value::Map(entries) = &value else {
        panic!()
    };
    let keys: Vec<String> = entries
        .iter()
        .map(|(k, _)| match k {
            Value::Text(t) => t.clone(),
            other => panic!("non-text key {other:?}"),
        })
        .collect();
    // Shorter keys first, then bytewise.
    let mut expected = keys.clone();
    expected.sort_by(|a, b| a.len().cmp(&b.len()).then(a.as_bytes().cmp(b.as_bytes())));
    assert_eq!(keys, expected);
    assert_eq!(keys.first().map(String::as_str), Some("id"));
    // Nested maps too, and the untyped encoder.
    let untyped = map(vec![
        ("bb", Value::Integer(1)),
        ("a", Value::Integer(2)),
        (
            "ab",
            Value::Map(vec![
                (text("z"), Value::Null),
                (Value::Integer(10), Value::Null),
                (text("y"), Value::Null),
            ]),
        ),
    ]);
    let out = cbor_of(&untyped);
    DeterminismChecker::check(&out);
    let reconverted = convert_untyped(Format::Cbor, &out, Format::Cbor).unwrap();
    assert_eq!(reconverted, out);
}

#[test]
fn cbor_keeps_integers_bytes_and_enums_native() {
    let agent = single_entry_agent();
    let raw = encode(&agent, Format::Cbor);
    let value = parse_cbor(&raw);
    assert_eq!(*get(&value, "revision"), Value::Integer(u64::MAX as i128));
    let revision = [
        0x68, b'r', b'e', b'v', b'i', b's', b'i', b'o', b'n', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff,
    ];
    assert!(
        raw.windows(revision.len()).any(|w| w == revision),
        "revision is a major-0 integer"
    );
    assert_eq!(*get(&value, "state"), text("ACTIVE"));
    assert_eq!(*get(&value, "created_at"), text("0001-01-01T00:00:00Z"));
    assert_eq!(
        *get(&value, "updated_at"),
        text("9999-12-31T23:59:59.999999999Z")
    );
    assert_eq!(
        *get(&value, "capabilities"),
        Value::Array(vec![text("search"), text("summarize"), text("ü")])
    );
    assert_eq!(*get(get(&value, "metadata"), "nul"), text("a\0b"));
    // Fields at their default value are left out.
    let empty = parse_cbor(&encode(&Agent::default(), Format::Cbor));
    assert_eq!(empty, Value::Map(vec![]));

    let entry = KnowledgeEntry {
        content: vec![0, 0, 0].into(),
        confidence: 0.5,
        ..Default::default()
    };
    let value = parse_cbor(&encode(&entry, Format::Cbor));
    assert_eq!(*get(&value, "content"), Value::Bytes(vec![0, 0, 0]));
    assert_eq!(*get(&value, "confidence"), Value::Float(0.5));
    // JSON: proto field names, 64-bit as strings, bytes as base64.
    let json = parse_json(&encode(&agent, Format::Json));
    assert_eq!(*get(&json, "revision"), text("18446744073709551615"));
    assert!(has(&json, "created_at") && !has(&json, "createdAt"));
    let json = parse_json(&encode(&entry, Format::Json));
    assert_eq!(*get(&json, "content"), text("AAAA"));
}

#[test]
fn well_known_types_keep_their_json_mapping_in_cbor() {
    let request = UpdateAgentRequest {
        agent: Some(Agent {
            id: "x".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["name".into(), "labels".into()],
        }),
    };
    let value = parse_cbor(&encode(&request, Format::Cbor));
    assert_eq!(*get(&value, "update_mask"), text("name,labels"));
    check_all_conversions::<UpdateAgentRequest>(
        "hms.agent.v1.UpdateAgentRequest",
        &encode(&request, Format::Protobuf),
        true,
    );
}

#[test]
fn documented_worked_example_converts_byte_for_byte() {
    // docs/formats.md, "A worked example".
    let json = br#"{"id": "a1", "name": "scout", "capabilities": ["search", "summarize"],
 "labels": {"team": "blue"}, "state": "ACTIVE",
 "revision": "18446744073709551615", "created_at": "2026-11-25T17:00:00Z"}"#;
    let mut cbor = vec![0xa7, 0x62, b'i', b'd', 0x62, b'a', b'1'];
    cbor.extend_from_slice(&[
        0x64, b'n', b'a', b'm', b'e', 0x65, b's', b'c', b'o', b'u', b't',
    ]);
    cbor.extend_from_slice(&[
        0x65, b's', b't', b'a', b't', b'e', 0x66, b'A', b'C', b'T', b'I', b'V', b'E',
    ]);
    cbor.extend_from_slice(&[
        0x66, b'l', b'a', b'b', b'e', b'l', b's', 0xa1, 0x64, b't', b'e', b'a', b'm', 0x64, b'b',
        b'l', b'u', b'e',
    ]);
    cbor.extend_from_slice(&[
        0x68, b'r', b'e', b'v', b'i', b's', b'i', b'o', b'n', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff,
    ]);
    cbor.push(0x6a);
    cbor.extend_from_slice(b"created_at");
    cbor.push(0x74);
    cbor.extend_from_slice(b"2026-11-25T17:00:00Z");
    cbor.push(0x6c);
    cbor.extend_from_slice(b"capabilities");
    cbor.extend_from_slice(&[0x82, 0x66]);
    cbor.extend_from_slice(b"search");
    cbor.push(0x69);
    cbor.extend_from_slice(b"summarize");
    assert_eq!(cbor.len(), 130);
    let protobuf: Vec<u8> = [
        &[0x0a, 0x02, b'a', b'1'][..],
        &[0x12, 0x05, b's', b'c', b'o', b'u', b't'],
        &[0x2a, 0x06, b's', b'e', b'a', b'r', b'c', b'h'],
        &[
            0x2a, 0x09, b's', b'u', b'm', b'm', b'a', b'r', b'i', b'z', b'e',
        ],
        &[
            0x32, 0x0c, 0x0a, 0x04, b't', b'e', b'a', b'm', 0x12, 0x04, b'b', b'l', b'u', b'e',
        ],
        &[0x40, 0x02],
        &[0x4a, 0x06, 0x08, 0x90, 0xa8, 0x9c, 0xd8, 0x06],
        &[
            0x58, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ]
    .concat();
    assert_eq!(protobuf.len(), 65);
    let name = "hms.agent.v1.Agent";
    assert_eq!(
        convert(name, Format::Json, json, Format::Cbor).unwrap(),
        cbor
    );
    assert_eq!(
        convert(name, Format::Json, json, Format::Protobuf).unwrap(),
        protobuf
    );
    assert_eq!(
        convert(name, Format::Cbor, &cbor, Format::Protobuf).unwrap(),
        protobuf
    );
    assert_eq!(
        convert(name, Format::Protobuf, &protobuf, Format::Cbor).unwrap(),
        cbor
    );
    let back = parse_json(&convert(name, Format::Cbor, &cbor, Format::Json).unwrap());
    assert_eq!(normalized(back), normalized(parse_json(json)));
}

// ---------------------------------------------------------- lenient input

#[test]
fn enums_are_accepted_as_names_or_numbers() {
    let name = "hms.agent.v1.Agent";
    let by_name = cbor_of(&map(vec![("name", text("x")), ("state", text("PAUSED"))]));
    let by_number = cbor_of(&map(vec![
        ("name", text("x")),
        ("state", Value::Integer(3)),
    ]));
    for bytes in [&by_name, &by_number] {
        let agent: Agent = decode(
            Format::Protobuf,
            &convert(name, Format::Cbor, bytes, Format::Protobuf).unwrap(),
        );
        assert_eq!(agent.state, LifecycleState::Paused as i32);
    }
    for json in [&br#"{"state": "PAUSED"}"#[..], br#"{"state": 3}"#] {
        let agent: Agent = decode(Format::Json, json);
        assert_eq!(agent.state, LifecycleState::Paused as i32);
    }
    // Repeated enums may mix both.
    let request: ListAgentsRequest = decode(Format::Json, br#"{"states": ["ACTIVE", 3]}"#);
    assert_eq!(request.states, vec![2, 3]);
    let cbor = cbor_of(&map(vec![(
        "states",
        Value::Array(vec![Value::Integer(2), text("PAUSED")]),
    )]));
    let request: ListAgentsRequest = decode(Format::Cbor, &cbor);
    assert_eq!(request.states, vec![2, 3]);
    // A name the schema does not know never becomes another value: CBOR
    // refuses it; JSON refuses it or, as proto3 JSON parsers that skip
    // unknown fields do, leaves the field unset.
    let bad = cbor_of(&map(vec![("state", text("NOPE"))]));
    expect_code(
        convert(name, Format::Cbor, &bad, Format::Protobuf),
        Code::DecodeError,
    );
    match convert(
        name,
        Format::Json,
        br#"{"state": "NOPE"}"#,
        Format::Protobuf,
    ) {
        Ok(bytes) => assert_eq!(decode::<Agent>(Format::Protobuf, &bytes).state, 0),
        Err(error) => assert_eq!(error.code, Code::DecodeError),
    }
}

#[test]
fn unknown_enum_numbers_survive_every_conversion() {
    let agent = Agent {
        name: "x".into(),
        state: 99,
        ..Default::default()
    };
    let protobuf = encode(&agent, Format::Protobuf);
    check_all_conversions::<Agent>("hms.agent.v1.Agent", &protobuf, true);
    let cbor = parse_cbor(
        &convert(
            "hms.agent.v1.Agent",
            Format::Protobuf,
            &protobuf,
            Format::Cbor,
        )
        .unwrap(),
    );
    assert_eq!(*get(&cbor, "state"), Value::Integer(99));
    let json = parse_json(
        &convert(
            "hms.agent.v1.Agent",
            Format::Protobuf,
            &protobuf,
            Format::Json,
        )
        .unwrap(),
    );
    assert_eq!(*get(&json, "state"), Value::Integer(99));
    // And in repeated fields.
    let request = ListAgentsRequest {
        states: vec![2, 1234, 3],
        ..Default::default()
    };
    check_all_conversions::<ListAgentsRequest>(
        "hms.agent.v1.ListAgentsRequest",
        &encode(&request, Format::Protobuf),
        true,
    );
}

#[test]
fn unknown_field_names_are_skipped() {
    let cbor = cbor_of(&map(vec![
        ("name", text("x")),
        (
            "from_the_future",
            map(vec![(
                "deep",
                Value::Array(vec![Value::Integer(1), Value::Bytes(vec![0])]),
            )]),
        ),
        ("another", Value::Null),
    ]));
    let agent: Agent = decode(Format::Cbor, &cbor);
    assert_eq!(agent.name, "x");
    let agent: Agent = decode(
        Format::Json,
        br#"{"name": "x", "fromTheFuture": {"deep": [1, {"a": null}]}, "z": 1.5}"#,
    );
    assert_eq!(agent.name, "x");
    // Unknown field numbers in protobuf, as protobuf always did.
    let mut protobuf = encode(
        &EchoRequest {
            payload: vec![].into(),
            text: "t".into(),
        },
        Format::Protobuf,
    );
    protobuf.extend_from_slice(&[0xf8, 0x06, 0x2a]); // field 111, varint 42
    let echo: EchoRequest = decode(Format::Protobuf, &protobuf);
    assert_eq!(echo.text, "t");
    assert!(
        convert(
            "hms.sys.v1.EchoRequest",
            Format::Protobuf,
            &protobuf,
            Format::Json
        )
        .is_ok()
    );
}

#[test]
fn json_and_cbor_accept_camel_case_names_nulls_and_integral_strings() {
    let agent: Agent = decode(
        Format::Json,
        br#"{"name": "x", "createdAt": "2020-01-01T00:00:00Z", "revision": 7, "kind": null}"#,
    );
    assert_eq!(agent.created_at, Some(ts(1_577_836_800, 0)));
    assert_eq!(agent.revision, 7);
    let cbor = cbor_of(&map(vec![
        ("name", text("x")),
        ("createdAt", text("2020-01-01T00:00:00Z")),
        ("revision", text("7")),
        ("kind", Value::Null),
    ]));
    let from_cbor: Agent = decode(Format::Cbor, &cbor);
    assert_eq!(from_cbor, agent);
}

#[test]
fn empty_payload_is_the_default_message_in_every_format() {
    for format in FORMATS {
        let bytes: &[u8] = if format == Format::Cbor { &[0xa0] } else { &[] };
        let agent: Agent = decode(format, bytes);
        assert_eq!(agent, Agent::default(), "{format:?}");
    }
}

// ------------------------------------------------------------------ limits

/// An EchoRequest of exactly `size` bytes in `format`.
fn echo_of_size(format: Format, size: usize) -> Vec<u8> {
    (0..size)
        .map(|len| {
            encode(
                &EchoRequest {
                    payload: vec![].into(),
                    text: "x".repeat(len),
                },
                format,
            )
        })
        .find(|bytes| bytes.len() == size)
        .unwrap_or_else(|| panic!("no {format:?} EchoRequest of {size} bytes"))
}

#[test]
fn payload_over_max_message_bytes_is_resource_exhausted() {
    let limits = Limits {
        max_message_bytes: 64,
        max_depth: 64,
        ..Limits::default()
    };
    for format in FORMATS {
        let fits = echo_of_size(format, 64);
        assert!(convert_with("hms.sys.v1.EchoRequest", format, &fits, format, &limits).is_ok());
        let over = echo_of_size(format, 65);
        let error = expect_code(
            convert_with("hms.sys.v1.EchoRequest", format, &over, format, &limits),
            Code::ResourceExhausted,
        );
        assert_eq!(
            error.details.get("max_message_bytes").map(String::as_str),
            Some("64")
        );
        let typed: Result<EchoRequest, _> = codec::decode_typed(format, &over, &limits);
        expect_code(typed, Code::ResourceExhausted);
    }
    for format in [Format::Cbor, Format::Json] {
        let over = echo_of_size(format, 65);
        expect_code(
            codec::decode_value(format, &over, &limits),
            Code::ResourceExhausted,
        );
    }
    // Through a runtime configured with the limit.
    let rt = common::runtime_with(|s| s.limits.max_message_bytes = 64);
    for format in FORMATS {
        let over = echo_of_size(format, 65);
        expect_code(
            common::call_raw(&rt, "hms.sys.v1.System/Echo", format, &over, &[]),
            Code::ResourceExhausted,
        );
        let fits = echo_of_size(format, 64);
        assert!(common::call_raw(&rt, "hms.sys.v1.System/Echo", format, &fits, &[]).is_ok());
        // A response over the limit fails too.
        expect_code(
            common::call_raw(
                &rt,
                "hms.registry.v1.Registry/ListServices",
                format,
                &[],
                &[],
            ),
            Code::ResourceExhausted,
        );
    }
}

#[test]
fn nesting_at_max_depth_passes_and_one_deeper_fails_in_every_format() {
    common::register_test_schema();
    for max_depth in [8u32, 64] {
        let limits = Limits {
            max_message_bytes: 4 << 20,
            max_depth,
            ..Limits::default()
        };
        let depth = max_depth as usize;
        for (format, ok, deep) in [
            (
                Format::Protobuf,
                common::nested_nodes_protobuf(depth),
                common::nested_nodes_protobuf(depth + 1),
            ),
            (
                Format::Cbor,
                common::nested_nodes_cbor(depth),
                common::nested_nodes_cbor(depth + 1),
            ),
            (
                Format::Json,
                common::nested_nodes_json(depth),
                common::nested_nodes_json(depth + 1),
            ),
        ] {
            convert_with("hmstest.v1.Node", format, &ok, Format::Cbor, &limits)
                .unwrap_or_else(|e| panic!("{format:?} at depth {depth}: {e:?}"));
            let error =
                convert_with("hmstest.v1.Node", format, &deep, Format::Cbor, &limits).unwrap_err();
            assert_eq!(
                error.code,
                Code::ResourceExhausted,
                "{format:?} at depth {}: {error:?}",
                depth + 1
            );
        }
        // Untyped arrays.
        let ok_json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deep_json = format!("{}{}", "[".repeat(depth + 1), "]".repeat(depth + 1));
        assert!(codec::decode_value(Format::Json, ok_json.as_bytes(), &limits).is_ok());
        expect_code(
            codec::decode_value(Format::Json, deep_json.as_bytes(), &limits),
            Code::ResourceExhausted,
        );
        let mut ok_cbor = vec![0x81; depth - 1];
        ok_cbor.push(0x80);
        let mut deep_cbor = vec![0x81; depth];
        deep_cbor.push(0x80);
        assert!(codec::decode_value(Format::Cbor, &ok_cbor, &limits).is_ok());
        expect_code(
            codec::decode_value(Format::Cbor, &deep_cbor, &limits),
            Code::ResourceExhausted,
        );
    }
}

#[test]
fn depth_over_the_limit_fails_through_a_runtime_call() {
    common::register_test_schema();
    let rt = common::runtime_with(|s| s.limits.max_depth = 4);
    let service = common::unique("depth.v1.Svc");
    rt.register_service(
        common::descriptor(
            &service,
            vec![common::method("Take", "hmstest.v1.Node", "hmstest.v1.Node")],
        ),
        Format::Cbor,
        hms_ffi::runtime::HostOptions::default(),
        common::replying(vec![0xa0]),
    )
    .unwrap();
    let method = format!("{service}/Take");
    for (format, ok, deep) in [
        (
            Format::Protobuf,
            common::nested_nodes_protobuf(4),
            common::nested_nodes_protobuf(5),
        ),
        (
            Format::Cbor,
            common::nested_nodes_cbor(4),
            common::nested_nodes_cbor(5),
        ),
        (
            Format::Json,
            common::nested_nodes_json(4),
            common::nested_nodes_json(5),
        ),
    ] {
        common::call_raw(&rt, &method, format, &ok, &[])
            .unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
        let error = common::call_raw(&rt, &method, format, &deep, &[]).unwrap_err();
        assert!(
            matches!(error.code, Code::ResourceExhausted | Code::DecodeError),
            "{format:?}: {error:?}"
        );
    }
}

#[test]
fn hundred_thousand_levels_fail_cleanly_in_every_format() {
    common::register_test_schema();
    const LEVELS: usize = 100_000;
    let limits = Limits::default();
    for (format, bytes) in [
        (Format::Protobuf, common::nested_nodes_protobuf(LEVELS)),
        (Format::Cbor, common::nested_nodes_cbor(LEVELS)),
        (Format::Json, common::nested_nodes_json(LEVELS)),
    ] {
        assert!(
            bytes.len() < limits.max_message_bytes,
            "{format:?} fits the size limit"
        );
        let error =
            convert_with("hmstest.v1.Node", format, &bytes, Format::Json, &limits).unwrap_err();
        assert!(
            matches!(error.code, Code::ResourceExhausted | Code::DecodeError),
            "{format:?}: {error:?}"
        );
    }
    // Untyped.
    let json = format!("{}{}", "[".repeat(LEVELS), "]".repeat(LEVELS));
    expect_code(
        codec::decode_value(Format::Json, json.as_bytes(), &limits),
        Code::ResourceExhausted,
    );
    let json = "{\"a\":".repeat(LEVELS);
    expect_code(
        codec::decode_value(Format::Json, json.as_bytes(), &limits),
        Code::ResourceExhausted,
    );
    let cbor = vec![0x81; LEVELS];
    expect_code(
        codec::decode_value(Format::Cbor, &cbor, &limits),
        Code::ResourceExhausted,
    );
    let mut tags = vec![0xc1; LEVELS];
    tags.push(0x00);
    let error = codec::decode_value(Format::Cbor, &tags, &limits).unwrap_err();
    assert!(
        matches!(error.code, Code::ResourceExhausted | Code::DecodeError),
        "{error:?}"
    );
    // Nesting hidden in a field the schema does not know.
    let mut unknown = vec![0xa1, 0x63, b'z', b'z', b'z'];
    unknown.extend(std::iter::repeat_n(0x81, LEVELS));
    let error = convert_with(
        "hms.sys.v1.EchoRequest",
        Format::Cbor,
        &unknown,
        Format::Json,
        &limits,
    )
    .unwrap_err();
    assert_eq!(error.code, Code::ResourceExhausted, "{error:?}");
    let json = format!("{{\"zzz\":{}{}}}", "[".repeat(LEVELS), "]".repeat(LEVELS));
    let error = convert_with(
        "hms.sys.v1.EchoRequest",
        Format::Json,
        json.as_bytes(),
        Format::Cbor,
        &limits,
    )
    .unwrap_err();
    assert_eq!(error.code, Code::ResourceExhausted, "{error:?}");
}

#[test]
fn deeply_nested_protobuf_groups_in_unknown_fields_fail_cleanly() {
    // Field 15, wire type 3 (start group), 100,000 times.
    let groups = vec![0x7b; 100_000];
    let typed: Result<EchoRequest, _> =
        codec::decode_typed(Format::Protobuf, &groups, &Limits::default());
    let error = typed.unwrap_err();
    assert!(
        matches!(error.code, Code::ResourceExhausted | Code::DecodeError),
        "{error:?}"
    );
    let error = convert(
        "hms.sys.v1.EchoRequest",
        Format::Protobuf,
        &groups,
        Format::Json,
    )
    .unwrap_err();
    assert!(
        matches!(error.code, Code::ResourceExhausted | Code::DecodeError),
        "{error:?}"
    );
}

#[test]
fn json_brackets_inside_strings_do_not_count_as_nesting() {
    let text = format!("\\\"{}", "[{".repeat(5_000));
    let json = format!(r#"{{"text": "{text}"}}"#);
    let echo: EchoRequest = decode(Format::Json, json.as_bytes());
    assert_eq!(echo.text.len(), 1 + 10_000);
}

#[test]
fn cbor_length_prefix_of_two_to_the_64_is_a_decode_error() {
    let limits = Limits::default();
    for major in [0x5b, 0x7b, 0x9b, 0xbb] {
        let mut bytes = vec![major];
        bytes.extend_from_slice(&[0xff; 8]);
        expect_code(
            codec::decode_value(Format::Cbor, &bytes, &limits),
            Code::DecodeError,
        );
        // Inside a typed message too.
        let mut typed = vec![0xa1, 0x67];
        typed.extend_from_slice(b"payload");
        typed.extend_from_slice(&bytes);
        expect_code(
            convert(
                "hms.sys.v1.EchoRequest",
                Format::Cbor,
                &typed,
                Format::Protobuf,
            ),
            Code::DecodeError,
        );
    }
    // 2^32 items claimed by a short payload.
    expect_code(
        codec::decode_value(Format::Cbor, &[0x9a, 0xff, 0xff, 0xff, 0xff, 0x00], &limits),
        Code::DecodeError,
    );
    // An indefinite string whose chunk claims 2^64-1 bytes.
    let chunked = [
        0x5f, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    expect_code(
        codec::decode_value(Format::Cbor, &chunked, &limits),
        Code::DecodeError,
    );
    // Protobuf: a length-delimited field claiming 2^63 bytes.
    let mut protobuf = vec![0x0a];
    protobuf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    expect_code(
        convert(
            "hms.sys.v1.EchoRequest",
            Format::Protobuf,
            &protobuf,
            Format::Json,
        ),
        Code::DecodeError,
    );
}

#[test]
fn every_truncation_of_cbor_and_json_is_a_decode_error() {
    let agent = single_entry_agent();
    for format in [Format::Cbor, Format::Json] {
        let full = encode(&agent, format);
        for cut in 1..full.len() {
            let error = convert("hms.agent.v1.Agent", format, &full[..cut], Format::Protobuf)
                .expect_err("a truncated payload must fail");
            assert_eq!(
                error.code,
                Code::DecodeError,
                "{format:?} cut at {cut}: {error:?}"
            );
        }
    }
    // Protobuf: cuts are valid or DecodeError, never anything else; a cut
    // inside a length-delimited field always fails.
    let full = encode(&agent, Format::Protobuf);
    for cut in 1..full.len() {
        if let Err(error) = convert(
            "hms.agent.v1.Agent",
            Format::Protobuf,
            &full[..cut],
            Format::Cbor,
        ) {
            assert_eq!(error.code, Code::DecodeError, "cut at {cut}");
        }
    }
    let echo = encode(
        &EchoRequest {
            payload: vec![0; 10].into(),
            text: String::new(),
        },
        Format::Protobuf,
    );
    expect_code(
        convert(
            "hms.sys.v1.EchoRequest",
            Format::Protobuf,
            &echo[..echo.len() - 1],
            Format::Json,
        ),
        Code::DecodeError,
    );
}

#[test]
fn garbage_is_a_decode_error_in_every_format() {
    let name = "hms.agent.v1.Agent";
    for bytes in [
        &[0x0f][..],
        &[0x00],
        &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        &[0x12, 0x02, 0xff, 0xfe],
    ] {
        expect_code(
            convert(name, Format::Protobuf, bytes, Format::Json),
            Code::DecodeError,
        );
    }
    for bytes in [
        &[0xff][..],
        &[0x1c],
        &[0xa1, 0x01, 0x02],
        &[0x62, 0xff, 0xfe],
        &[0xa0, 0x00],
        &[0x80],
        &[0xa1, 0x64, b'n', b'a', b'm', b'e', 0x05],
        &[0xa1, 0x64, b'n', b'a', b'm', b'e', 0x62, 0xc3, 0x28],
    ] {
        expect_code(
            convert(name, Format::Cbor, bytes, Format::Json),
            Code::DecodeError,
        );
    }
    for bytes in [
        &b"not json"[..],
        b"{]",
        b"[1, 2]",
        b"{\"name\": 5}",
        b"{\"name\": \"x\"} trailing",
        b"{\"revision\": -1}",
        b"{\"labels\": [1]}",
        b"\xff\xfe",
        b"{\"name\": \"\xc3\x28\"}",
    ] {
        expect_code(
            convert(name, Format::Json, bytes, Format::Cbor),
            Code::DecodeError,
        );
    }
    for bytes in [&b"{"[..], b"nul", b"[1,]"] {
        expect_code(
            codec::decode_value(Format::Json, bytes, &Limits::default()),
            Code::DecodeError,
        );
    }
}

// ---------------------------------------------------------------- untyped

#[test]
fn untyped_values_convert_structurally_between_cbor_and_json() {
    let value = map(vec![
        ("bytes", Value::Bytes(vec![0, 0xff, 0x10])),
        ("neg", Value::Integer(-5)),
        ("big", Value::Integer(u64::MAX as i128)),
        (
            "list",
            Value::Array(vec![
                Value::Integer(1),
                text("x"),
                Value::Null,
                Value::Bool(true),
                Value::Float(1.5),
            ]),
        ),
        ("nested", map(vec![("ü", text("日本"))])),
    ]);
    let mut entries = match value.clone() {
        Value::Map(entries) => entries,
        _ => unreachable!(),
    };
    entries.push((Value::Integer(7), text("integer key")));
    let cbor = cbor_of(&Value::Map(entries));
    let json = convert_untyped(Format::Cbor, &cbor, Format::Json).unwrap();
    let parsed = parse_json(&json);
    assert_eq!(
        *get(&parsed, "bytes"),
        text("AP8Q"),
        "bytes become base64 text"
    );
    assert_eq!(*get(&parsed, "neg"), Value::Integer(-5));
    assert_eq!(*get(&parsed, "big"), Value::Integer(u64::MAX as i128));
    assert_eq!(*get(&parsed, "list"), *get(&value, "list"));
    assert_eq!(*get(get(&parsed, "nested"), "ü"), text("日本"));
    assert_eq!(*get(&parsed, "7"), text("integer key"));
    // And back: base64 stays text, the rest is the same.
    let back = parse_cbor(&convert_untyped(Format::Json, &json, Format::Cbor).unwrap());
    assert_eq!(*get(&back, "bytes"), text("AP8Q"));
    assert_eq!(*get(&back, "list"), *get(&value, "list"));
    assert_eq!(*get(&back, "big"), Value::Integer(u64::MAX as i128));
    DeterminismChecker::check(&convert_untyped(Format::Json, &json, Format::Cbor).unwrap());
    // Scalars at the top level.
    for (json, expected) in [
        ("1", Value::Integer(1)),
        ("\"s\"", text("s")),
        ("null", Value::Null),
        ("[]", Value::Array(vec![])),
    ] {
        let cbor = convert_untyped(Format::Json, json.as_bytes(), Format::Cbor).unwrap();
        assert_eq!(parse_cbor(&cbor), expected);
    }
}

#[test]
fn protobuf_without_a_type_is_invalid_argument() {
    expect_code(
        convert_untyped(Format::Protobuf, &[0x08, 0x01], Format::Json),
        Code::InvalidArgument,
    );
    expect_code(
        convert_untyped(Format::Json, b"{}", Format::Protobuf),
        Code::InvalidArgument,
    );
    expect_code(
        codec::decode_value(Format::Protobuf, &[], &Limits::default()),
        Code::InvalidArgument,
    );
    let mut out = Vec::new();
    expect_code(
        codec::encode_value(&Value::Null, Format::Protobuf, &mut out),
        Code::InvalidArgument,
    );
}

#[test]
fn unknown_type_names_are_not_found() {
    expect_code(
        schema::message_descriptor("hmstest.v1.DoesNotExist"),
        Code::NotFound,
    );
    expect_code(
        convert("no.such.Type", Format::Json, b"{}", Format::Cbor),
        Code::NotFound,
    );
    assert!(schema::message_descriptor(".hms.sys.v1.EchoRequest").is_ok());
}

#[test]
fn out_of_range_integers_and_bad_values_are_decode_errors() {
    let task = "hms.agent.v1.Task";
    let agent = "hms.agent.v1.Agent";
    for (type_name, json) in [
        (task, r#"{"priority": 2147483648}"#),
        (task, r#"{"priority": -2147483649}"#),
        (task, r#"{"priority": 1.5}"#),
        (agent, r#"{"revision": "-1"}"#),
        (task, r#"{"input": "not base64!"}"#),
        (agent, r#"{"created_at": "yesterday"}"#),
        (agent, r#"{"created_at": "10000-01-01T00:00:00Z"}"#),
    ] {
        let error =
            convert(type_name, Format::Json, json.as_bytes(), Format::Protobuf).expect_err(json);
        assert_eq!(error.code, Code::DecodeError, "{json}: {error:?}");
    }
    for (type_name, value) in [
        (task, map(vec![("priority", Value::Integer(1 << 31))])),
        (task, map(vec![("priority", Value::Float(1.5))])),
        (agent, map(vec![("revision", Value::Integer(-1))])),
        (task, map(vec![("input", text("not base64!"))])),
        (task, map(vec![("input", Value::Integer(3))])),
        (agent, map(vec![("created_at", Value::Integer(0))])),
        (agent, map(vec![("capabilities", text("not a list"))])),
        (agent, map(vec![("labels", Value::Array(vec![]))])),
    ] {
        let error = convert(type_name, Format::Cbor, &cbor_of(&value), Format::Protobuf)
            .expect_err(&format!("{value:?} must fail"));
        assert_eq!(error.code, Code::DecodeError, "{value:?}: {error:?}");
    }
    // 2^64 as a CBOR bignum (tag 2) is no uint64 either.
    let mut bignum = vec![0xa1, 0x68];
    bignum.extend_from_slice(b"revision");
    bignum.extend_from_slice(&[0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect_code(
        convert(agent, Format::Cbor, &bignum, Format::Protobuf),
        Code::DecodeError,
    );
    // The extremes themselves are fine, as numbers or strings.
    let agent_json = br#"{"revision": 18446744073709551615}"#;
    let decoded: Agent = decode(Format::Json, agent_json);
    assert_eq!(decoded.revision, u64::MAX);
    let task_json = br#"{"priority": -2147483648}"#;
    let decoded: Task = decode(Format::Json, task_json);
    assert_eq!(decoded.priority, i32::MIN);
    let decoded: Task = decode(
        Format::Cbor,
        &cbor_of(&map(vec![("priority", Value::Float(-3.0))])),
    );
    assert_eq!(decoded.priority, -3, "an integral float is an integer");
}

#[test]
fn json_numbers_past_the_64_bit_range_are_decode_errors() {
    for (type_name, json) in [
        (
            "hms.agent.v1.Agent",
            r#"{"revision": 18446744073709551616}"#,
        ),
        ("hms.agent.v1.Agent", r#"{"revision": 1e30}"#),
    ] {
        let result = convert(type_name, Format::Json, json.as_bytes(), Format::Protobuf);
        let error = result.expect_err(json);
        assert_eq!(error.code, Code::DecodeError, "{json}: {error:?}");
    }
    common::register_test_schema();
    let json = br#"{"i64": -9223372036854775809}"#;
    let result = convert("hmstest.v1.Scalars", Format::Json, json, Format::Protobuf);
    assert_eq!(result.expect_err("below i64::MIN").code, Code::DecodeError);
}

/// Valid protobuf whose google.protobuf.Timestamp has no RFC 3339 form (out
/// of 0001..9999) cannot be written as CBOR or JSON: the conversion must
/// fail with a status, never panic. Nanos outside 0..1e9 may fail the same
/// way or be normalized to the same instant.
#[test]
fn timestamps_without_an_rfc3339_form_fail_cleanly() {
    let convert_deadline = |stamp: Timestamp, to: Format| {
        let task = Task {
            title: "t".into(),
            deadline: Some(stamp),
            ..Default::default()
        };
        let protobuf = encode(&task, Format::Protobuf);
        let outcome = std::panic::catch_unwind(|| {
            convert("hms.agent.v1.Task", Format::Protobuf, &protobuf, to)
        });
        outcome.unwrap_or_else(|_| panic!("{stamp:?} to {to:?} panicked"))
    };
    let refused = |error: &hms_ffi::HmsError| {
        matches!(
            error.code,
            Code::DecodeError | Code::InvalidArgument | Code::OutOfRange
        )
    };
    for stamp in [
        ts(i64::MAX, 0),
        ts(i64::MIN, 0),
        ts(253_402_300_800, 0),
        ts(-62_135_596_801, 0),
    ] {
        for to in [Format::Cbor, Format::Json] {
            let error = convert_deadline(stamp, to).expect_err("no RFC 3339 form");
            assert!(refused(&error), "{stamp:?} to {to:?}: {error:?}");
        }
    }
    for stamp in [
        ts(0, -1),
        ts(0, 1_000_000_000),
        ts(5, i32::MAX),
        ts(5, i32::MIN),
    ] {
        for to in [Format::Cbor, Format::Json] {
            match convert_deadline(stamp, to) {
                Err(error) => assert!(refused(&error), "{stamp:?} to {to:?}: {error:?}"),
                Ok(bytes) => {
                    let back: Task = decode(to, &bytes);
                    let got = back.deadline.expect("still set");
                    let instant =
                        |t: Timestamp| t.seconds as i128 * 1_000_000_000 + t.nanos as i128;
                    assert_eq!(
                        instant(got),
                        instant(stamp),
                        "{stamp:?} to {to:?} moved in time"
                    );
                    assert!((0..1_000_000_000).contains(&got.nanos), "{got:?}");
                }
            }
        }
    }
}

#[test]
fn the_determinism_checker_catches_non_canonical_cbor() {
    let checks = |bytes: Vec<u8>| {
        std::panic::catch_unwind(move || {
            DeterminismChecker::check(&bytes);
        })
        .is_ok()
    };
    assert!(checks(vec![0xa2, 0x61, b'a', 0x01, 0x62, b'a', b'a', 0x02]));
    assert!(
        !checks(vec![0xa2, 0x62, b'a', b'a', 0x02, 0x61, b'b', 0x01]),
        "longer key first"
    );
    assert!(!checks(vec![0x18, 0x05]), "5 in two bytes");
    assert!(!checks(vec![0x9f, 0xff]), "indefinite length");
    assert!(
        !checks(vec![0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
        "1.5 as a double"
    );
    assert!(
        !checks(vec![0xfa, 0x3f, 0xc0, 0x00, 0x00]),
        "1.5 as a single"
    );
    assert!(!checks(vec![0xc1, 0x00]), "a tag");
}

#[test]
fn protobuf_output_sorts_map_entries_around_an_unknown_group() {
    use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleEvent;
    use prost::Message as _;
    let event = LifecycleEvent {
        agent_id: "a".into(),
        metadata: (0..16)
            .map(|i| (format!("k{i:02}"), i.to_string()))
            .collect(),
        ..Default::default()
    };
    // prost's types keep maps ordered, so this is the deterministic form.
    let sorted = event.encode_to_vec();
    // An empty unknown group, field 14 (start tag 0x73, end tag 0x74), as a
    // proto2 sender may write; the fuzzer found it kept the entries in hash
    // order, different from one conversion to the next.
    let mut input = sorted.clone();
    input.extend_from_slice(&[0x73, 0x74]);
    let mut expected = sorted;
    expected.extend_from_slice(&[0x73, 0x74]);
    for _ in 0..20 {
        let out = convert(
            "hms.agent.lifecycle.v1.LifecycleEvent",
            Format::Protobuf,
            &input,
            Format::Protobuf,
        )
        .unwrap();
        assert_eq!(out, expected);
    }
}
