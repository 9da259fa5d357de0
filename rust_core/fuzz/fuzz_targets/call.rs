//! `hms_call` through the C ABI on a fresh runtime with a 4 KiB message
//! limit: up to eight calls in sequence (so CreateAgent can be followed by
//! GetAgent, Transition, ...), each with a fuzzer-chosen method (a built-in
//! one or any name), format (sometimes invalid), options and request.
//!
//! Input, per call:
//!   [format] [method selector] [options_len: u8] options
//!   ([name_len: u8] name, when the selector is past METHODS)
//!   [request_len: u16 LE] request
#![no_main]

use hms_ffi_fuzz::{
    Buf, Input, METHODS, SMALL_LIMIT, check_call, check_output, free_runtime, hms_call, raw_format,
    small_runtime,
};
use libfuzzer_sys::fuzz_target;

const MAX_CALLS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let rt = small_runtime();
    let mut input = Input(data);
    for _ in 0..MAX_CALLS {
        if input.is_empty() {
            break;
        }
        let format = raw_format(input.byte());
        let selector = usize::from(input.byte());
        let options_len = usize::from(input.byte());
        let options = input.take(options_len);
        let method: &[u8] = match METHODS.get(selector) {
            Some(name) => name.as_bytes(),
            None => {
                let len = usize::from(input.byte());
                input.take(len)
            }
        };
        let request_len = input.u16();
        let request = input.take(request_len);

        let what = format!(
            "hms_call({:?}, format {format})",
            String::from_utf8_lossy(method)
        );
        let mut response = Buf::new();
        let mut err = Buf::new();
        // SAFETY: valid pointers and lengths for the duration of the call.
        let rc = unsafe {
            hms_call(
                rt,
                method.as_ptr(),
                method.len(),
                format,
                request.as_ptr(),
                request.len(),
                options.as_ptr(),
                options.len(),
                response.ptr(),
                err.ptr(),
            )
        };
        if check_call(&what, rc, format, &[&response], &err) as i32 == 0 {
            check_output(
                &what,
                response.bytes().len(),
                request.len() + options.len(),
                SMALL_LIMIT,
            );
        }
    }
    free_runtime(rt);
});
