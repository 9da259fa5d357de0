//! Host callbacks behind the safe traits of the core.

use std::ffi::{CStr, c_char, c_void};

use super::hms_reply;
use crate::codec::Format;
use crate::events::PushSink;
use crate::registry::{HostHandler, Reply};

pub type hms_handler_fn = Option<
    unsafe extern "C" fn(
        reply: *mut hms_reply,
        method: *const c_char,
        method_len: usize,
        format: i32,
        request: *const u8,
        request_len: usize,
        user_data: *mut c_void,
    ),
>;

pub type hms_event_fn =
    Option<unsafe extern "C" fn(event: *const u8, event_len: usize, user_data: *mut c_void)>;

/// A C handler and its user data. The pointer is kept as an address: the
/// host guarantees it stays valid until unregistration, which waits for every
/// call in flight.
pub struct CHandler {
    pub callback: unsafe extern "C" fn(
        *mut hms_reply,
        *const c_char,
        usize,
        i32,
        *const u8,
        usize,
        *mut c_void,
    ),
    pub user_data: usize,
}

impl HostHandler for CHandler {
    fn invoke(&self, reply: &mut Reply, method: &CStr, format: Format, request: &[u8]) {
        let reply_ptr = (reply as *mut Reply).cast::<hms_reply>();
        // SAFETY: the callback and user_data are valid until the service is
        // unregistered (header contract), and unregistration waits for this
        // call; every pointer passed lives until the callback returns.
        unsafe {
            (self.callback)(
                reply_ptr,
                method.as_ptr(),
                method.count_bytes(),
                format as i32,
                request.as_ptr(),
                request.len(),
                self.user_data as *mut c_void,
            )
        }
    }
}

/// A sink calling a C event callback on the subscription's thread.
pub fn push_sink(
    callback: unsafe extern "C" fn(*const u8, usize, *mut c_void),
    user_data: *mut c_void,
) -> PushSink {
    let user_data = user_data as usize;
    Box::new(move |event: &[u8]| {
        // SAFETY: callback and user_data stay valid until hms_unsubscribe
        // returns, which waits for this thread (header contract); `event`
        // lives until the callback returns.
        unsafe { callback(event.as_ptr(), event.len(), user_data as *mut c_void) }
    })
}

/// The core's Reply behind an hms_reply pointer.
///
/// # Safety
/// `reply` must be NULL or the pointer handed to a running handler.
pub unsafe fn reply_mut<'a>(reply: *mut hms_reply) -> Option<&'a mut Reply> {
    // SAFETY: the library created it from a live `&mut Reply` that outlives
    // the handler call, which is the only time the host may use it.
    unsafe { reply.cast::<Reply>().as_mut() }
}

/// The core's Reply behind a read-only hms_reply pointer.
///
/// # Safety
/// `reply` must be NULL or the pointer handed to a running handler.
pub unsafe fn reply_ref<'a>(reply: *const hms_reply) -> Option<&'a Reply> {
    // SAFETY: as `reply_mut`; only shared access is handed out.
    unsafe { reply.cast::<Reply>().as_ref() }
}
