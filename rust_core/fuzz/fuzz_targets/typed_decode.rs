//! Typed decoding: protobuf, CBOR or JSON as one of the message types of
//! `TYPES`, under small limits. What decodes must encode in every format
//! (or fail as documented, e.g. OUT_OF_RANGE for JSON-unrepresentable
//! values) and, in its own format, decode again to the same bytes.
//! The three brief-named types also go through `decode_typed` (prost for
//! protobuf, transcoding for CBOR and JSON), a separate path.
//!
//! Input: [type selector] [format selector] payload...
#![no_main]

use hms_ffi::Code;
use hms_ffi::codec::{self, Format};
use hms_ffi::proto::hms::agent::v1::Agent;
use hms_ffi::proto::v1::{CallOptions, RuntimeConfig};
use hms_ffi::schema;
use hms_ffi_fuzz::{
    Input, OUTPUT_LIMITS, SMALL_LIMIT, SMALL_LIMITS, TYPES, check_code, check_output, format,
    json_stability_checked, pb_stability_checked,
};
use libfuzzer_sys::fuzz_target;

fn decode_error(what: &str, error: &hms_ffi::HmsError) {
    let code = check_code(what, error.code.as_i32());
    assert!(
        matches!(
            code,
            Code::DecodeError | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{what} failed with {code:?}: {}",
        error.message
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let type_name = TYPES[usize::from(input.byte()) % TYPES.len()];
    let from = format(input.byte());
    let payload = input.rest();
    let desc = schema::message_descriptor(type_name).expect("a built-in type");

    match type_name {
        "hms.agent.v1.Agent" => {
            if let Err(e) = codec::decode_typed::<Agent>(from, payload, &SMALL_LIMITS) {
                decode_error("decode_typed Agent", &e);
            }
        }
        "hms.v1.CallOptions" => {
            if let Err(e) = codec::decode_typed::<CallOptions>(from, payload, &SMALL_LIMITS) {
                decode_error("decode_typed CallOptions", &e);
            }
        }
        "hms.v1.RuntimeConfig" => {
            if let Err(e) = codec::decode_typed::<RuntimeConfig>(from, payload, &SMALL_LIMITS) {
                decode_error("decode_typed RuntimeConfig", &e);
            }
        }
        _ => {}
    }

    let message = match codec::decode_message(&desc, from, payload, &SMALL_LIMITS) {
        Ok(message) => message,
        Err(error) => {
            decode_error("decode_message", &error);
            return;
        }
    };
    for to in [Format::Protobuf, Format::Cbor, Format::Json] {
        let what = format!("{type_name} {} -> {}", from.name(), to.name());
        let mut out = Vec::new();
        // The runtime's path: output bounded by the limit, refused past it.
        if let Err(error) = codec::encode_message_within(&message, to, &SMALL_LIMITS, &mut out) {
            let code = check_code(&what, error.code.as_i32());
            assert!(
                matches!(code, Code::OutOfRange | Code::ResourceExhausted),
                "{what}: {code:?}: {}",
                error.message
            );
            continue;
        }
        check_output(&what, out.len(), payload.len(), SMALL_LIMIT);
        if to != from {
            continue;
        }
        let again = codec::decode_message(&desc, to, &out, &OUTPUT_LIMITS)
            .unwrap_or_else(|e| panic!("{what}: the core's own output does not decode: {e:?}"));
        let mut out_again = Vec::new();
        codec::encode_message(&again, to, &mut out_again).expect("encoded once already");
        let checked = match to {
            Format::Json => json_stability_checked(&out),
            Format::Protobuf => pb_stability_checked(&out),
            Format::Cbor => true,
        };
        if checked {
            assert_eq!(out, out_again, "{what}: output is not stable");
        }
    }
});
