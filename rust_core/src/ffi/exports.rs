//! The exported functions, in the order of the header.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use super::host::{CHandler, hms_event_fn, hms_handler_fn, push_sink, reply_mut, reply_ref};
use super::{borrow_bytes, borrow_str, fill_buf, guard, hms_buf, hms_reply, required};
use crate::codec::{self, Format, Limits};
use crate::config::Settings;
use crate::error::HmsError;
use crate::proto::v1::ServiceDescriptor;
use crate::runtime::{self, HostOptions};
use crate::schema;

const JSON: i32 = Format::Json as i32;

#[unsafe(no_mangle)]
pub extern "C" fn hms_abi_version() -> u32 {
    (crate::ABI_VERSION_MAJOR << 16) | crate::ABI_VERSION_MINOR
}

#[unsafe(no_mangle)]
pub extern "C" fn hms_version() -> *const c_char {
    crate::VERSION_NUL.as_ptr().cast()
}

/// # Safety
/// `buf` is NULL or an hms_buf this library filled (or zeroed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_buf_free(buf: *mut hms_buf) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: NULL or a valid hms_buf per the header.
        let Some(buf) = (unsafe { buf.as_mut() }) else {
            return;
        };
        // SAFETY: data is NULL or our allocation of `cap` bytes.
        drop(unsafe { super::take_vec(buf) });
        *buf = hms_buf {
            data: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        };
    });
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_runtime_new(
    format: i32,
    config: *const u8,
    config_len: usize,
    out: *mut u64,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        // SAFETY: caller bytes borrowed for this call.
        let config = unsafe { borrow_bytes(config, config_len, "config") }?;
        let settings = Settings::decode(format, config)?;
        let handle = runtime::create(settings)?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *out = handle };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn hms_runtime_free(rt: u64) -> i32 {
    guard(std::ptr::null_mut(), JSON, || runtime::free(rt))
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_call(
    rt: u64,
    method: *const c_char,
    method_len: usize,
    format: i32,
    request: *const u8,
    request_len: usize,
    options: *const u8,
    options_len: usize,
    response: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(response, "response")?;
        // SAFETY: caller bytes borrowed for this call.
        let method = unsafe { borrow_str(method, method_len, "method") }?;
        // SAFETY: caller bytes borrowed for this call.
        let request = unsafe { borrow_bytes(request, request_len, "request") }?;
        // SAFETY: caller bytes borrowed for this call.
        let options = unsafe { borrow_bytes(options, options_len, "options") }?;
        let runtime = runtime::runtime(rt)?;
        // SAFETY: `response` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe {
            fill_buf(response, |out| {
                runtime.call(method, format, request, options, out)
            })
        }
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h; `handler` and `user_data` stay
/// valid until hms_service_unregister returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_service_register(
    rt: u64,
    format: i32,
    descriptor: *const u8,
    descriptor_len: usize,
    flags: u32,
    handler: hms_handler_fn,
    user_data: *mut c_void,
    out: *mut u64,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        let Some(callback) = handler else {
            return Err(HmsError::invalid_argument("handler must not be NULL"));
        };
        const CALLER_THREAD: u32 = 1;
        const EXPORT: u32 = 2;
        const KNOWN_FLAGS: u32 = CALLER_THREAD | EXPORT;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(
                HmsError::invalid_argument(format!("unknown flags {flags:#x}"))
                    .with_detail("flags", flags),
            );
        }
        // SAFETY: caller bytes borrowed for this call.
        let descriptor = unsafe { borrow_bytes(descriptor, descriptor_len, "descriptor") }?;
        let runtime = runtime::runtime(rt)?;
        let descriptor: ServiceDescriptor =
            codec::decode_typed(format, descriptor, runtime.limits())?;
        let handler = Box::new(CHandler {
            callback,
            user_data: user_data as usize,
        });
        let options = HostOptions {
            caller_thread_only: flags & CALLER_THREAD != 0,
            export: flags & EXPORT != 0,
        };
        let handle = runtime.register_service(descriptor, format, options, handler)?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *out = handle };
        Ok(())
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_serve(
    rt: u64,
    timeout_ms: i32,
    served: *mut u32,
    err: *mut hms_buf,
) -> i32 {
    guard(err, JSON, || {
        required(served, "served")?;
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let count = runtime::runtime(rt)?.serve(timeout)?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *served = count };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn hms_service_unregister(svc: u64) -> i32 {
    guard(std::ptr::null_mut(), JSON, || {
        runtime::unregister_service(svc)
    })
}

/// # Safety
/// `reply` is the pointer given to a running handler; `data` as documented.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_reply_set(reply: *mut hms_reply, data: *const u8, len: usize) -> i32 {
    guard(std::ptr::null_mut(), JSON, || {
        // SAFETY: NULL or the live reply of a running handler.
        let reply = unsafe { reply_mut(reply) }
            .ok_or_else(|| HmsError::invalid_argument("reply must not be NULL"))?;
        // SAFETY: caller bytes borrowed for this call.
        let data = unsafe { borrow_bytes(data, len, "data") }?;
        reply.set(data)
    })
}

/// # Safety
/// `reply` is the pointer given to a running handler; `message` as documented.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_reply_error(
    reply: *mut hms_reply,
    code: i32,
    message: *const c_char,
    message_len: usize,
) -> i32 {
    guard(std::ptr::null_mut(), JSON, || {
        // SAFETY: NULL or the live reply of a running handler.
        let reply = unsafe { reply_mut(reply) }
            .ok_or_else(|| HmsError::invalid_argument("reply must not be NULL"))?;
        // SAFETY: caller bytes borrowed for this call.
        let message = unsafe { borrow_bytes(message.cast(), message_len, "message") }?;
        reply.error(code, String::from_utf8_lossy(message).into_owned())
    })
}

/// # Safety
/// `reply` is NULL or the pointer given to a running handler.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_reply_remaining_ms(reply: *const hms_reply) -> i64 {
    std::panic::catch_unwind(|| {
        // SAFETY: NULL or the live reply of a running handler; only read.
        unsafe { reply_mut(reply.cast_mut()) }.map_or(-1, |reply| reply.remaining_ms())
    })
    .unwrap_or(-1)
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_subscribe(
    rt: u64,
    format: i32,
    filter: *const u8,
    filter_len: usize,
    out: *mut u64,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        // SAFETY: caller bytes borrowed for this call.
        let filter = unsafe { borrow_bytes(filter, filter_len, "filter") }?;
        let handle = runtime::runtime(rt)?.subscribe(format, filter, None)?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *out = handle };
        Ok(())
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_poll(
    sub: u64,
    timeout_ms: i32,
    event: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    let entry = runtime::subscription(sub);
    let err_format = entry
        .as_ref()
        .map_or(JSON, |e| e.subscription.format as i32);
    guard(err, err_format, || {
        let entry = entry?;
        required(event, "event")?;
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        // SAFETY: `event` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe { fill_buf(event, |out| entry.subscription.poll(timeout, out)) }
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h; `callback` and `user_data` stay
/// valid until hms_unsubscribe returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_subscribe_push(
    rt: u64,
    format: i32,
    filter: *const u8,
    filter_len: usize,
    callback: hms_event_fn,
    user_data: *mut c_void,
    out: *mut u64,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        let Some(callback) = callback else {
            return Err(HmsError::invalid_argument("callback must not be NULL"));
        };
        // SAFETY: caller bytes borrowed for this call.
        let filter = unsafe { borrow_bytes(filter, filter_len, "filter") }?;
        let runtime = runtime::runtime(rt)?;
        let handle = runtime.subscribe(format, filter, Some(push_sink(callback, user_data)))?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *out = handle };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn hms_unsubscribe(sub: u64) -> i32 {
    guard(std::ptr::null_mut(), JSON, || runtime::unsubscribe(sub))
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_schema_register(
    fds: *const u8,
    fds_len: usize,
    err: *mut hms_buf,
) -> i32 {
    guard(err, JSON, || {
        // SAFETY: caller bytes borrowed for this call.
        let fds = unsafe { borrow_bytes(fds, fds_len, "fds") }?;
        schema::register(fds).map(|_| ())
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_convert(
    type_name: *const c_char,
    type_name_len: usize,
    from_format: i32,
    data: *const u8,
    data_len: usize,
    to_format: i32,
    out: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    // SAFETY: the caller's pointers, as documented for hms_convert.
    unsafe {
        convert_between(
            None,
            type_name,
            type_name_len,
            from_format,
            data,
            data_len,
            to_format,
            out,
            err,
        )
    }
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_runtime_convert(
    rt: u64,
    type_name: *const c_char,
    type_name_len: usize,
    from_format: i32,
    data: *const u8,
    data_len: usize,
    to_format: i32,
    out: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    // SAFETY: the caller's pointers, as documented for hms_runtime_convert.
    unsafe {
        convert_between(
            Some(rt),
            type_name,
            type_name_len,
            from_format,
            data,
            data_len,
            to_format,
            out,
            err,
        )
    }
}

/// hms_convert (no runtime: default settings) and hms_runtime_convert (the
/// runtime's settings and schemas).
///
/// # Safety
/// Pointers as documented for hms_convert in hms_ffi.h.
#[allow(clippy::too_many_arguments)]
unsafe fn convert_between(
    rt: Option<u64>,
    type_name: *const c_char,
    type_name_len: usize,
    from_format: i32,
    data: *const u8,
    data_len: usize,
    to_format: i32,
    out: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    guard(err, JSON, || {
        let from = Format::from_i32(from_format)?;
        let to = Format::from_i32(to_format)?;
        required(out, "out")?;
        // SAFETY: caller bytes borrowed for this call.
        let type_name = unsafe { borrow_str(type_name, type_name_len, "type_name") }?;
        // SAFETY: caller bytes borrowed for this call.
        let data = unsafe { borrow_bytes(data, data_len, "data") }?;
        let runtime = rt.map(runtime::runtime).transpose()?;
        // SAFETY: `out` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe {
            fill_buf(out, |buf| match &runtime {
                Some(runtime) => runtime.convert(type_name, from, data, to, buf),
                None => codec::convert(type_name, from, data, to, &Limits::default(), buf),
            })
        }
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_method_resolve(
    rt: u64,
    method: *const c_char,
    method_len: usize,
    format: i32,
    out: *mut u64,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        // SAFETY: caller bytes borrowed for this call.
        let method = unsafe { borrow_str(method, method_len, "method") }?;
        let handle = runtime::resolve_method(rt, method, format)?;
        // SAFETY: checked non-NULL above; the caller's output slot.
        unsafe { *out = handle };
        Ok(())
    })
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_method_call(
    method: u64,
    request: *const u8,
    request_len: usize,
    response: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    let entry = runtime::method(method);
    let err_format = entry.as_ref().map_or(JSON, |e| e.format as i32);
    guard(err, err_format, || {
        let entry = entry?;
        required(response, "response")?;
        // SAFETY: caller bytes borrowed for this call.
        let request = unsafe { borrow_bytes(request, request_len, "request") }?;
        // SAFETY: `response` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe { fill_buf(response, |out| entry.call(request, out)) }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn hms_method_free(method: u64) -> i32 {
    guard(std::ptr::null_mut(), JSON, || runtime::free_method(method))
}

/// # Safety
/// Pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_call_batch(
    batch: *const u8,
    batch_len: usize,
    results: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    guard(err, JSON, || {
        required(results, "results")?;
        // SAFETY: caller bytes borrowed for this call.
        let batch = unsafe { borrow_bytes(batch, batch_len, "batch") }?;
        // SAFETY: `results` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe { fill_buf(results, |out| crate::batch::run(batch, out)) }
    })
}

// Call context and structured error replies (since ABI 1.2).

/// # Safety
/// `reply` is NULL or the pointer given to a running handler; the other
/// pointers as documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_reply_context(
    reply: *const hms_reply,
    format: i32,
    out: *mut hms_buf,
    err: *mut hms_buf,
) -> i32 {
    guard(err, format, || {
        let format = Format::from_i32(format)?;
        required(out, "out")?;
        // SAFETY: NULL or the live reply of a running handler; only read.
        let reply = unsafe { reply_ref(reply) }
            .ok_or_else(|| HmsError::invalid_argument("reply must not be NULL"))?;
        // SAFETY: `out` is non-NULL (checked) and a valid hms_buf per the header.
        unsafe { fill_buf(out, |buf| reply.context(format, buf)) }
    })
}

/// # Safety
/// `reply` is NULL or the pointer given to a running handler; `status` as
/// documented in hms_ffi.h.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hms_reply_status(
    reply: *mut hms_reply,
    format: i32,
    status: *const u8,
    status_len: usize,
) -> i32 {
    guard(std::ptr::null_mut(), JSON, || {
        let format = Format::from_i32(format)?;
        // SAFETY: NULL or the live reply of a running handler.
        let reply = unsafe { reply_mut(reply) }
            .ok_or_else(|| HmsError::invalid_argument("reply must not be NULL"))?;
        // SAFETY: caller bytes borrowed for this call.
        let status = unsafe { borrow_bytes(status, status_len, "status") }?;
        reply.status(format, status)
    })
}
