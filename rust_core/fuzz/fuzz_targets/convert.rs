//! `hms_convert` through the C ABI: every pair of formats (and invalid
//! format numbers), typed for each of `TYPES`, untyped with the empty type
//! name, and with an unknown type name. Checks status codes, the error
//! Status, the default 4 MiB limit on the output, and that converting again
//! into the same (now non-empty) hms_buf gives the same bytes.
//!
//! Input: [type selector] [from format] [to format] data...
#![no_main]

use hms_ffi_fuzz::{
    Buf, DEFAULT_LIMIT, Input, TYPES, check_call, check_output, hms_convert, pb_stability_checked,
    raw_format,
};
use libfuzzer_sys::fuzz_target;

const PROTOBUF: i32 = 1;
const JSON: i32 = 3;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let selector = usize::from(input.byte()) % (TYPES.len() + 2);
    let type_name = match selector {
        n if n < TYPES.len() => TYPES[n],
        n if n == TYPES.len() => "",
        _ => "hms.fuzz.NoSuchType",
    };
    let from = raw_format(input.byte());
    let to = raw_format(input.byte());
    let payload = input.rest();

    let what = format!("hms_convert({type_name:?}, {from} -> {to})");
    let mut out = Buf::new();
    let mut err = Buf::new();
    // SAFETY: valid pointers and lengths for the duration of the call.
    let rc = unsafe {
        hms_convert(
            type_name.as_ptr(),
            type_name.len(),
            from,
            payload.as_ptr(),
            payload.len(),
            to,
            out.ptr(),
            err.ptr(),
        )
    };
    if check_call(&what, rc, JSON, &[&out], &err) as i32 != 0 {
        return;
    }
    check_output(&what, out.bytes().len(), payload.len(), DEFAULT_LIMIT);

    // ABI.md 5: output buffers are reusable; the same conversion into the
    // buffer just filled must give the same bytes.
    let first = out.bytes().to_vec();
    let mut err = Buf::new();
    // SAFETY: as above; `out` holds a buffer the library produced.
    let rc = unsafe {
        hms_convert(
            type_name.as_ptr(),
            type_name.len(),
            from,
            payload.as_ptr(),
            payload.len(),
            to,
            out.ptr(),
            err.ptr(),
        )
    };
    assert_eq!(rc, 0, "{what}: a second identical conversion failed");
    if to != PROTOBUF || pb_stability_checked(&first) {
        assert_eq!(
            out.bytes(),
            first,
            "{what}: a second identical conversion differs"
        );
    }
});
