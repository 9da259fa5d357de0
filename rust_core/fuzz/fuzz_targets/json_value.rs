//! Untyped JSON: decode under small limits, re-encode as JSON (must decode
//! again to the same bytes where JSON output is stable) and convert to CBOR
//! through `transcode`, the path `hms_convert` takes with an empty type name.
#![no_main]

use hms_ffi::codec::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hms_ffi_fuzz::untyped_round_trip(Format::Json, Format::Cbor, data));
