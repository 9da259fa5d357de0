//! Untyped JSON: decode under small limits, re-encode as JSON (must decode
//! again to the same bytes) and convert to CBOR through `transcode`, the
//! path `hms_convert` takes with an empty type name.
#![no_main]

use hms_ffi::Code;
use hms_ffi::codec::{self, Format, JsonNames, Limits};
use hms_ffi_fuzz::{SMALL_LIMIT, check_code, check_output, json_stability_checked};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_message_bytes: SMALL_LIMIT,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

const OUTPUT_LIMITS: Limits = Limits {
    max_message_bytes: usize::MAX,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

fuzz_target!(|data: &[u8]| {
    let value = match codec::decode_value(Format::Json, data, &LIMITS) {
        Ok(value) => value,
        Err(error) => {
            let code = check_code("JSON decode", error.code.as_i32());
            assert!(
                matches!(code, Code::DecodeError | Code::ResourceExhausted),
                "JSON decode failed with {code:?}: {}",
                error.message
            );
            return;
        }
    };
    let mut json = Vec::new();
    codec::encode_value(&value, Format::Json, &mut json).expect("JSON encodes every value");
    check_output("JSON -> JSON", json.len(), data.len(), SMALL_LIMIT);
    let again = codec::decode_value(Format::Json, &json, &OUTPUT_LIMITS)
        .expect("the core's own JSON decodes");
    let mut json_again = Vec::new();
    codec::encode_value(&again, Format::Json, &mut json_again).expect("JSON encodes");
    if json_stability_checked(&json) {
        assert_eq!(json, json_again, "JSON output is not stable");
    }

    let mut cbor = Vec::new();
    match codec::transcode(None, Format::Json, data, Format::Cbor, &LIMITS, &mut cbor) {
        Ok(()) => {
            check_output("JSON -> CBOR", cbor.len(), data.len(), SMALL_LIMIT);
            codec::decode_value(Format::Cbor, &cbor, &OUTPUT_LIMITS)
                .expect("the core's own CBOR decodes");
        }
        Err(error) => {
            check_code("JSON -> CBOR", error.code.as_i32());
        }
    }
});
