//! RuntimeConfig: `Settings::decode` and `hms_runtime_new` on the same
//! bytes must agree (the C function fails exactly when decoding does), and
//! a created runtime frees once, then is a stale handle.
//!
//! Input: [format selector, sometimes invalid] config bytes...
#![no_main]

use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi_fuzz::{Buf, Input, check_call, hms_runtime_free, hms_runtime_new, raw_format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let format = raw_format(input.byte());
    let config = input.rest();
    let decoded = Format::from_i32(format).and_then(|f| Settings::decode(f, config));
    if let Ok(settings) = &decoded
        && settings.data_dir.is_some()
    {
        // A fuzzer-chosen data_dir would create SQLite files anywhere on
        // disk; parsing and bounds checks are covered by decode above.
        return;
    }

    let mut rt = 0u64;
    let mut err = Buf::new();
    // SAFETY: valid pointers and lengths for the duration of the call.
    let rc = unsafe { hms_runtime_new(format, config.as_ptr(), config.len(), &mut rt, err.ptr()) };
    let code = check_call("hms_runtime_new", rc, format, &[], &err);
    match decoded {
        Ok(_) => {
            assert_eq!(
                rc, 0,
                "Settings::decode accepted what hms_runtime_new refused"
            );
            assert_ne!(rt, 0, "hms_runtime_new gave handle 0");
            // SAFETY: plain handle calls.
            unsafe {
                assert_eq!(hms_runtime_free(rt), 0);
                assert_eq!(
                    hms_runtime_free(rt),
                    100,
                    "a second free must be INVALID_HANDLE"
                );
            }
        }
        Err(error) => {
            assert_eq!(
                code, error.code,
                "hms_runtime_new and Settings::decode disagree"
            );
            assert_eq!(rt, 0, "hms_runtime_new failed but wrote its output");
        }
    }
});
