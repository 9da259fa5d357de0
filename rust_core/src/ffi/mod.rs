//! The C ABI of `include/hms_ffi.h`: the only unsafe code of the crate.
//!
//! Every exported function converts its arguments through the helpers
//! below, runs the safe core inside [`guard`], and converts the result. No
//! logic lives here.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

mod exports;
mod host;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::codec::{self, Format};
use crate::error::{Code, HmsError, Result};

/// `hms_buf` of the header: bytes the library allocated and the caller owns.
#[repr(C)]
pub struct hms_buf {
    pub data: *mut u8,
    pub len: usize,
    pub cap: usize,
}

/// `hms_reply` of the header: opaque to C, a `registry::Reply` inside.
#[repr(C)]
pub struct hms_reply {
    _opaque: [u8; 0],
}

/// Runs `body`, turning an error into its status code (and an
/// `hms.v1.Status` in `err`) and a panic into `HMS_PANIC`.
fn guard(err: *mut hms_buf, err_format: i32, body: impl FnOnce() -> Result<()>) -> i32 {
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return Code::Ok.as_i32(),
        Ok(Err(error)) => error,
        Err(payload) => {
            // Formatting the payload could panic too; a second guard keeps
            // that inside the library.
            let message = catch_unwind(AssertUnwindSafe(|| panic_message(payload.as_ref())))
                .unwrap_or_else(|_| "a panic whose message could not be read".to_owned());
            HmsError::new(Code::Panic, format!("bug in the HMS core: {message}"))
                .with_origin("core")
        }
    };
    let code = error.code.as_i32();
    let format = Format::from_i32(err_format).unwrap_or(Format::Json);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `err` is NULL or the caller's hms_buf, per the header.
        unsafe {
            write_buf(err, |out| {
                let _ = codec::encode_typed(&error.to_status(), format, out);
            })
        };
    }));
    code
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Borrows caller bytes; `len == 0` gives `&[]` whatever `ptr` is, since
/// `from_raw_parts(NULL, 0)` is undefined behaviour.
///
/// # Safety
/// When `len > 0` and `ptr` is non-NULL, `ptr` must point to `len` readable
/// bytes that stay valid for `'a` (the duration of the call).
unsafe fn borrow_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(
            HmsError::invalid_argument(format!("{what} is NULL but its length is {len}"))
                .with_detail("argument", what),
        );
    }
    if len > isize::MAX as usize {
        return Err(HmsError::invalid_argument(format!(
            "{what} length {len} is impossible"
        )));
    }
    // SAFETY: non-NULL, length checked against isize::MAX, and the caller
    // guarantees `len` readable bytes for the duration of the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a caller string and checks it is UTF-8.
///
/// # Safety
/// As [`borrow_bytes`].
unsafe fn borrow_str<'a>(ptr: *const std::ffi::c_char, len: usize, what: &str) -> Result<&'a str> {
    // SAFETY: forwarded contract of this function.
    let bytes = unsafe { borrow_bytes(ptr.cast(), len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| {
        HmsError::invalid_argument(format!("{what} is not valid UTF-8: {e}"))
            .with_detail("argument", what)
    })
}

/// Rebuilds the Vec behind an hms_buf so its memory is reused.
///
/// # Safety
/// `buf` must be a valid hms_buf whose `data` is NULL or came from this
/// library with capacity `cap` and was not freed.
unsafe fn take_vec(buf: &hms_buf) -> Vec<u8> {
    if buf.data.is_null() || buf.cap == 0 {
        Vec::new()
    } else {
        // SAFETY: the contract above: our allocation of `cap` bytes.
        unsafe { Vec::from_raw_parts(buf.data, 0, buf.cap) }
    }
}

fn store_vec(buf: &mut hms_buf, vec: Vec<u8>) {
    let mut vec = std::mem::ManuallyDrop::new(vec);
    if vec.capacity() == 0 {
        *buf = hms_buf {
            data: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        };
    } else {
        *buf = hms_buf {
            data: vec.as_mut_ptr(),
            len: vec.len(),
            cap: vec.capacity(),
        };
    }
}

/// Replaces the content of `*buf` with what `fill` writes. A NULL `buf`
/// ignores the output.
///
/// # Safety
/// `buf` is NULL or valid as in [`take_vec`].
unsafe fn write_buf(buf: *mut hms_buf, fill: impl FnOnce(&mut Vec<u8>)) {
    if buf.is_null() {
        return;
    }
    // SAFETY: non-NULL and valid per the caller's contract.
    let _ = unsafe {
        fill_buf(buf, |out| {
            fill(out);
            Ok(())
        })
    };
}

/// Largest spare output allocation a thread keeps for the next call.
const MAX_SPARE_BYTES: usize = 1 << 20;

thread_local! {
    /// Library memory that the next output of this thread is written into
    /// (see [`fill_buf`]). Taken while in use, so a nested call on the same
    /// thread starts a fresh one.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn keep_spare(mut spare: Vec<u8>) {
    if spare.capacity() <= MAX_SPARE_BYTES {
        spare.clear();
        SPARE.set(spare);
    }
}

/// Runs `fill` into this thread's spare memory and, only when it succeeds,
/// swaps that memory with the caller's: `*buf` then holds the output, and
/// its previous allocation becomes the spare. On failure, and on a panic
/// inside `fill`, `*buf` is untouched (pointer, length and bytes), as the
/// header promises; in steady state nothing is allocated either way.
///
/// # Safety
/// `buf` must be non-NULL and valid as in [`take_vec`].
unsafe fn fill_buf(buf: *mut hms_buf, fill: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
    // SAFETY: checked for NULL by the callers' `required` and valid per contract.
    let buf = unsafe { &mut *buf };
    let mut output = SPARE.take();
    // A panic unwinds past `output`, which is library memory: only it is freed.
    match fill(&mut output) {
        Ok(()) => {
            // SAFETY: forwarded contract: `buf` holds NULL or our allocation.
            let previous = unsafe { take_vec(buf) };
            store_vec(buf, output);
            keep_spare(previous);
            Ok(())
        }
        Err(error) => {
            keep_spare(output);
            Err(error)
        }
    }
}

fn required<T>(ptr: *mut T, what: &str) -> Result<()> {
    if ptr.is_null() {
        return Err(
            HmsError::invalid_argument(format!("{what} must not be NULL"))
                .with_detail("argument", what),
        );
    }
    Ok(())
}
