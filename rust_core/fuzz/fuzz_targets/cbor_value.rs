//! Untyped CBOR: decode under small limits, re-encode as CBOR (must decode
//! again to the same bytes) and convert to JSON through `transcode`, the
//! path `hms_convert` takes with an empty type name.
#![no_main]

use hms_ffi::Code;
use hms_ffi::codec::{self, Format, JsonNames, Limits};
use hms_ffi_fuzz::{SMALL_LIMIT, check_code, check_output};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_message_bytes: SMALL_LIMIT,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

/// Limits for decoding the core's own output again, which may be larger
/// than the input (see KNOWN_ISSUE_UNBOUNDED_OUTPUT).
const OUTPUT_LIMITS: Limits = Limits {
    max_message_bytes: usize::MAX,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

fuzz_target!(|data: &[u8]| {
    let value = match codec::decode_value(Format::Cbor, data, &LIMITS) {
        Ok(value) => value,
        Err(error) => {
            // ABI.md 8: a hostile payload is a decode error or a limit.
            let code = check_code("CBOR decode", error.code.as_i32());
            assert!(
                matches!(code, Code::DecodeError | Code::ResourceExhausted),
                "CBOR decode failed with {code:?}: {}",
                error.message
            );
            return;
        }
    };
    let mut cbor = Vec::new();
    codec::encode_value(&value, Format::Cbor, &mut cbor).expect("CBOR encodes every value");
    check_output("CBOR -> CBOR", cbor.len(), data.len(), SMALL_LIMIT);
    let again = codec::decode_value(Format::Cbor, &cbor, &OUTPUT_LIMITS)
        .expect("the core's own CBOR decodes");
    let mut cbor_again = Vec::new();
    codec::encode_value(&again, Format::Cbor, &mut cbor_again).expect("CBOR encodes");
    assert_eq!(cbor, cbor_again, "deterministic CBOR is not stable");

    let mut json = Vec::new();
    match codec::transcode(None, Format::Cbor, data, Format::Json, &LIMITS, &mut json) {
        Ok(()) => {
            check_output("CBOR -> JSON", json.len(), data.len(), SMALL_LIMIT);
            codec::decode_value(Format::Json, &json, &OUTPUT_LIMITS)
                .expect("the core's own JSON decodes");
        }
        Err(error) => {
            check_code("CBOR -> JSON", error.code.as_i32());
        }
    }
});
