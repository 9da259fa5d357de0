/*
 * hms_ffi.h: the C ABI of HMS FFI, version 1.4.
 *
 * One Rust core implements the HMS agent platform; this header is the only
 * contract between it and every host (C, Python, Go, PHP, Ruby, ...).
 * Everything that crosses it is an opaque 64-bit handle, a status code, or a
 * byte buffer holding a protobuf, CBOR or JSON message whose schema lives in
 * include/proto/hms/.
 *
 * Rules that hold for every function below
 * ----------------------------------------
 * Status.   Every fallible function returns int32_t: HMS_OK (0) or one of the
 *           HMS_* status codes. Outputs come last, the error buffer very last.
 *           Outputs are left untouched when a call fails.
 * Errors.   When `err` is non-NULL and a call fails, *err receives an
 *           hms.v1.Status message (code, message, details, origin) encoded in
 *           the call's format, or in JSON where the function takes no format.
 *           The return code alone is enough to branch on; `err` may be NULL.
 * Safety.   No input crashes the host: every function runs inside a guard
 *           that turns a panic into HMS_PANIC; NULL pointers, bad handles, bad
 *           UTF-8 and bad payloads are reported, never dereferenced blindly.
 *           (Pointers that are non-NULL but dangling cannot be checked.)
 * Handles.  Runtimes, services and subscriptions are generational, typed
 *           64-bit handles; 0 is never valid. A stale, freed, made-up or
 *           wrong-kind handle returns HMS_INVALID_HANDLE, every time.
 * Memory.   Input bytes (ptr, len) are borrowed for the duration of the call
 *           only; ptr may be NULL when len is 0. Output bytes are written into
 *           a caller-provided hms_buf, which the caller owns until it passes it
 *           to hms_buf_free. An hms_buf may come in zeroed, or holding a buffer
 *           this library produced earlier and nobody freed: the library then
 *           reuses that memory (on success it may swap it for a spare block
 *           of the calling thread, so data may change between calls). On
 *           failure, a panic included, the buffer is untouched: same data,
 *           len and bytes. Keep one zeroed hms_buf per thread, copy each
 *           answer out, and free it once at the end.
 * Threads.  Every function may be called from any thread at any time. The
 *           library holds no internal lock while it calls into a host
 *           (handlers, event callbacks), so callbacks may call back in.
 * Limits.   Payload size (default 4 MiB) and nesting depth (default 64), set
 *           per runtime in hms.v1.RuntimeConfig, are enforced before or while
 *           decoding: a hostile payload fails fast with HMS_DECODE_ERROR or
 *           HMS_RESOURCE_EXHAUSTED without allocating its declared size.
 *
 * Versions.  HMS_ABI_VERSION_MAJOR/MINOR below describe this header;
 *           hms_abi_version() describes the loaded library. A binding refuses
 *           a library of another major, or of an older minor than its own.
 *           A published signature never changes; a change of meaning gets a
 *           new function.
 */
#ifndef HMS_FFI_H
#define HMS_FFI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HMS_ABI_VERSION_MAJOR 1
#define HMS_ABI_VERSION_MINOR 4 /* additive changes bump the minor */

/* ------------------------------------------------------------------------ */
/* Formats of every payload that crosses the boundary.                      */
/* ------------------------------------------------------------------------ */

/* Protobuf binary encoding: the schema of truth. */
#define HMS_FORMAT_PROTOBUF 1
/* CBOR with the data model of the proto3 JSON mapping, native CBOR types and,
 * on output, RFC 8949 core deterministic encoding (docs/formats.md). */
#define HMS_FORMAT_CBOR 2
/* The proto3 JSON mapping, UTF-8. */
#define HMS_FORMAT_JSON 3

/* ------------------------------------------------------------------------ */
/* Status codes. 0..16 are gRPC's canonical codes; 100+ are the bridge's.   */
/* ------------------------------------------------------------------------ */

#define HMS_OK 0
#define HMS_CANCELLED 1           /* the operation or subscription was closed */
#define HMS_UNKNOWN 2             /* an error without a better code */
#define HMS_INVALID_ARGUMENT 3    /* a malformed argument: NULL pointer with a length, bad UTF-8, unknown format or method */
#define HMS_DEADLINE_EXCEEDED 4   /* CallOptions.deadline_ms passed, or hms_poll timed out */
#define HMS_NOT_FOUND 5           /* no such method, service, message type or record */
#define HMS_ALREADY_EXISTS 6      /* a service of that name is registered already */
#define HMS_PERMISSION_DENIED 7   /* refused by policy */
#define HMS_RESOURCE_EXHAUSTED 8  /* a size limit: payload, queue or nesting */
#define HMS_FAILED_PRECONDITION 9 /* the request is valid but the state forbids it */
#define HMS_ABORTED 10            /* a concurrency conflict, e.g. a stale revision */
#define HMS_OUT_OF_RANGE 11       /* a value past its valid range */
#define HMS_UNIMPLEMENTED 12      /* the method exists but is not implemented */
#define HMS_INTERNAL 13           /* an invariant of the core broke */
#define HMS_UNAVAILABLE 14        /* the handler cannot run now (e.g. wrong thread, being unregistered) */
#define HMS_DATA_LOSS 15          /* stored data is unreadable */
#define HMS_UNAUTHENTICATED 16    /* missing or invalid credentials */
#define HMS_INVALID_HANDLE 100    /* unknown, stale, freed or wrong-kind handle */
#define HMS_DECODE_ERROR 101      /* payload does not parse in the declared format/type */
#define HMS_HANDLER_ERROR 102     /* a host-language handler raised or returned garbage */
#define HMS_INCOMPATIBLE 103      /* ABI or schema version mismatch */
#define HMS_PANIC 104             /* a bug inside the core, caught at the boundary */

/* ------------------------------------------------------------------------ */
/* Versions                                                                 */
/* ------------------------------------------------------------------------ */

/* (major << 16) | minor of the loaded library. Never fails; any thread. */
uint32_t hms_abi_version(void);

/* Semantic version of the library, e.g. "1.0.0": static, NUL-terminated,
 * never freed. Never fails; any thread. */
const char *hms_version(void);

/* ------------------------------------------------------------------------ */
/* Owned output bytes                                                       */
/* ------------------------------------------------------------------------ */

/* A byte buffer produced by the library and owned by the caller.
 * data: the bytes (NULL when nothing was ever written); len: bytes of the
 * latest output; cap: allocated capacity. Never edit these fields; zero a new
 * one with `hms_buf b = {0};` and hand it back to the library to reuse it. */
typedef struct hms_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hms_buf;

/* Frees the memory of *buf and zeroes it, so a second call is a no-op.
 * buf may be NULL. Passing memory the library did not produce is undefined
 * behaviour (the one thing this ABI cannot check). Any thread. */
void hms_buf_free(hms_buf *buf);

/* ------------------------------------------------------------------------ */
/* Runtimes                                                                 */
/* ------------------------------------------------------------------------ */

/* Handle of a runtime: one registry of services, one event bus, one store. */
typedef uint64_t hms_runtime;

/* Creates a runtime.
 * format, config, config_len: an hms.v1.RuntimeConfig in that format;
 *   config_len 0 gives the defaults (format must still be valid).
 * out: receives the handle (written only on success).
 * err: may be NULL; receives an hms.v1.Status in `format` on failure.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (unknown format, NULL out, NULL config
 * with a length); HMS_DECODE_ERROR (config does not parse);
 * HMS_FAILED_PRECONDITION (data_dir unusable or held by another runtime).
 * With a NATS transport (RuntimeConfig.nats, docs/transport.md) it connects
 * first: HMS_UNAVAILABLE when no server answers within its
 * connect_timeout_ms; HMS_UNIMPLEMENTED from a build without the transport.
 * Without one nothing of the transport starts (no socket, no thread).
 * Any thread. */
int32_t hms_runtime_new(int32_t format, const uint8_t *config, size_t config_len,
                        hms_runtime *out, hms_buf *err);

/* Frees a runtime. Its services are unregistered and its subscriptions
 * closed: a thread blocked in hms_poll on one returns HMS_CANCELLED, and
 * their handles become invalid (a later hms_service_unregister or
 * hms_unsubscribe returns HMS_INVALID_HANDLE, which a binding closing them
 * afterwards may ignore). A handle that another thread is creating for this
 * runtime at the same moment (hms_service_register, hms_subscribe,
 * hms_subscribe_push, hms_method_resolve) is either freed with it or never
 * returned (that call answers HMS_INVALID_HANDLE): no handle outlives its
 * runtime. Calls already running finish on the threads that made them.
 *
 * Bounded: it waits for handlers and push callbacks of this runtime that are
 * still running at most RuntimeConfig.shutdown_timeout_ms in all (default
 * 5000 ms), then returns anyway. Those still running are abandoned: they go
 * on until they return, their answers are discarded (never written anywhere
 * freed), and their user_data must stay valid until then. Library threads
 * left inside host code this way are counted in
 * hms.sys.v1.System/Health.abandoned_handler_threads until they return.
 * A NATS transport is stopped too, within the same bound: its exported
 * services are withdrawn, its remote calls still pending fail with
 * HMS_UNAVAILABLE.
 * Returns HMS_OK, or HMS_INVALID_HANDLE when rt is not a live runtime (a
 * second free included). Any thread, but not from inside one of this
 * runtime's handlers. */
int32_t hms_runtime_free(hms_runtime rt);

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */
/* ------------------------------------------------------------------------ */

/* Calls one method: built-in and host-registered services alike.
 * method, method_len: full name "package.Service/Method", UTF-8, e.g.
 *   "hms.sys.v1.System/Echo"; no NUL terminator needed (a NUL or other
 *   control character inside it is HMS_INVALID_ARGUMENT).
 * format: format of request, options, response and err.
 * request, request_len: the method's input message (empty is the default
 *   message).
 * options, options_len: an hms.v1.CallOptions (deadline, metadata,
 *   credentials, trace id); may be NULL/0.
 * response: receives the output message on success (reused if it holds a
 *   library buffer); untouched on failure.
 * err: may be NULL; receives an hms.v1.Status on failure.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (bad method name, format or pointer);
 * HMS_NOT_FOUND (no such service or method); HMS_DECODE_ERROR (request or
 * options do not parse as their type); HMS_RESOURCE_EXHAUSTED (request or
 * response over the size limit, nesting over the depth limit);
 * HMS_DEADLINE_EXCEEDED (deadline passed); HMS_HANDLER_ERROR (a host handler
 * raised or replied garbage); HMS_UNAVAILABLE (a caller-thread-only service
 * called from another thread, or a service being unregistered);
 * HMS_INVALID_HANDLE; or whatever status the method itself reports.
 * Remote calls: when the method's service is not registered in rt and rt
 * has a NATS transport (RuntimeConfig.nats), the call goes to a runtime that
 * exports it, local first then remote (docs/transport.md). A remote status
 * comes back unchanged with `origin` naming the runtime that answered;
 * HMS_UNAVAILABLE also means that nobody exports the service or that the
 * connection is down; HMS_DEADLINE_EXCEEDED comes at the deadline
 * (deadline_ms, else the transport's request_timeout_ms); HMS_DECODE_ERROR
 * means something other than an HMS runtime answered. Remote calls are at
 * most once: after HMS_UNAVAILABLE or HMS_DEADLINE_EXCEEDED the method may
 * or may not have run.
 * A call that fails changes nothing: a built-in method checks that its
 * answer fits the size limit and that the deadline has not passed before it
 * stores or publishes anything (HMS_RESOURCE_EXHAUSTED,
 * HMS_DEADLINE_EXCEEDED). Built-in methods honour deadline_ms too.
 * Any thread; handlers may call hms_call again (nested dispatch), at most
 * 32 calls deep in one chain (deeper: HMS_RESOURCE_EXHAUSTED, so endless
 * recursion through handlers ends instead of overflowing a stack).
 * A call with a deadline into a host handler runs it on a library thread
 * and stops waiting at the deadline; a handler that then never returns keeps
 * that thread. At most 8 such threads per service and 64 per process are
 * left behind: past that, deadline calls into host handlers are refused with
 * HMS_RESOURCE_EXHAUSTED until some return (see System/Health). */
int32_t hms_call(hms_runtime rt, const char *method, size_t method_len, int32_t format,
                 const uint8_t *request, size_t request_len,
                 const uint8_t *options, size_t options_len,
                 hms_buf *response, hms_buf *err);

/* ------------------------------------------------------------------------ */
/* Services implemented by the host                                         */
/* ------------------------------------------------------------------------ */

/* Handle of a host-registered service. */
typedef uint64_t hms_service;

/* Library-owned reply slot handed to a handler; valid only until the
 * handler returns. The handler answers through hms_reply_set,
 * hms_reply_error or (since ABI 1.2) hms_reply_status; answering none is
 * reported to the caller as HMS_HANDLER_ERROR. Since ABI 1.2 it also reads
 * its call (method, metadata, trace id, deadline) with hms_reply_context. */
typedef struct hms_reply hms_reply;

/* A host handler. Called once per call of one of the service's methods.
 * reply: where to answer; method, method_len: the short method name (e.g.
 *   "Greet"), also NUL-terminated for hosts that read C strings; format: the format the service was
 *   registered with, of request and of the expected answer; request,
 *   request_len: the input, borrowed until the handler returns (request may
 *   be NULL when request_len is 0); user_data: as given at registration.
 * The handler must not unwind (throw, longjmp, panic) into the library: a
 * binding catches its language's exceptions and answers with
 * hms_reply_error(reply, HMS_HANDLER_ERROR, text). Runs on the calling
 * thread, or on a library thread when the call has a deadline (unless the
 * service is HMS_SERVICE_CALLER_THREAD) or came from another process over
 * the transport (a caller-thread service's exported call runs on the host
 * thread inside hms_serve). */
typedef void (*hms_handler_fn)(hms_reply *reply, const char *method, size_t method_len,
                               int32_t format, const uint8_t *request, size_t request_len,
                               void *user_data);

/* Flags of hms_service_register. */
#define HMS_SERVICE_DEFAULT 0u
/* Run handlers only on a host thread that is itself inside a library call of
 * this host (synchronous nested dispatch: PHP, Ruby's Fiddle). Calls that
 * would have to run the handler on any other thread fail with
 * HMS_UNAVAILABLE and say why, except exported calls (HMS_SERVICE_EXPORT),
 * which wait for a host thread to run them in hms_serve; deadlines are then
 * checked when the handler returns instead of preempting it. */
#define HMS_SERVICE_CALLER_THREAD 1u
/* (Since ABI 1.3.) Serve the service to other processes over the runtime's
 * NATS transport from its registration until it is unregistered, as if
 * hms.v1.RuntimeConfig.nats.export_services named it (docs/transport.md).
 * Exported calls run on library threads; since ABI 1.4 it combines with
 * HMS_SERVICE_CALLER_THREAD, and then each exported call waits for a host
 * thread to run it inside hms_serve. A runtime without a transport refuses
 * it with HMS_FAILED_PRECONDITION. */
#define HMS_SERVICE_EXPORT 2u

/* Registers a service implemented by the host.
 * format: format of descriptor, and of every request and reply of handler.
 * descriptor, descriptor_len: an hms.v1.ServiceDescriptor. A method with
 *   input_type/output_type names message types known to the core (built-in,
 *   or added with hms_schema_register): callers may use any format and the
 *   core converts. A method with both empty takes and returns any CBOR/JSON
 *   value, converted structurally between CBOR and JSON.
 * flags: HMS_SERVICE_DEFAULT, or HMS_SERVICE_CALLER_THREAD and/or
 *   HMS_SERVICE_EXPORT (both together since ABI 1.4: see hms_serve).
 * handler, user_data: the callback and its context; user_data is passed back
 *   untouched and must stay valid until hms_service_unregister returns.
 * out: receives the service handle.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (NULL handler, empty or malformed
 * names, unknown format or flags); HMS_DECODE_ERROR;
 * HMS_NOT_FOUND (an input/output type the core does not know);
 * HMS_ALREADY_EXISTS (the name is taken); HMS_INVALID_HANDLE;
 * HMS_FAILED_PRECONDITION (HMS_SERVICE_EXPORT without a transport);
 * HMS_UNAVAILABLE (the export did not reach the NATS server); on any error
 * nothing stays registered. Publishes a "registry.service_registered" event.
 * Any thread. */
int32_t hms_service_register(hms_runtime rt, int32_t format,
                             const uint8_t *descriptor, size_t descriptor_len,
                             uint32_t flags, hms_handler_fn handler, void *user_data,
                             hms_service *out, hms_buf *err);

/* Removes a service. New calls get HMS_NOT_FOUND at once; the function
 * waits until calls in flight have returned (except calls running on this
 * very thread, so a handler may unregister its own service), after which the
 * handler and user_data are never used again. Publishes a
 * "registry.service_unregistered" event.
 * Returns HMS_OK or HMS_INVALID_HANDLE (a second call included). */
int32_t hms_service_unregister(hms_service svc);

/* (Since ABI 1.4.) Runs, on the calling thread, the exported calls waiting
 * for rt's services registered HMS_SERVICE_CALLER_THREAD together with
 * HMS_SERVICE_EXPORT (or named in RuntimeConfig.nats.export_services): the
 * pump of hosts whose handlers may run only on their own thread (PHP,
 * Ruby). Such a call, arriving over NATS, waits in a queue of the runtime
 * (at most 64 calls; more are answered HMS_RESOURCE_EXHAUSTED, naming the
 * limit) until a host thread calls hms_serve, and its remote caller waits
 * meanwhile (up to its deadline).
 * timeout_ms: how long to wait for the first call: 0 runs only the calls
 *   waiting already; negative waits until at least one call was served or
 *   the runtime is being freed. Then every call waiting at that moment
 *   runs, each through the ordinary handler path (reply, status, origin,
 *   hms_reply_context and deadline as for a local call), and its answer
 *   goes back to its caller.
 * served: receives how many calls ran (0 when none came in time). A call
 *   whose deadline passed while it waited is answered
 *   HMS_DEADLINE_EXCEEDED without running its handler, and not counted.
 *   Unregistering its service, or freeing rt, answers HMS_UNAVAILABLE to
 *   every call still waiting.
 * Returns HMS_OK (also when nothing came); HMS_CANCELLED (rt is being
 * freed, nothing was served); HMS_FAILED_PRECONDITION (rt has no transport;
 * hms_serve is running for rt on another thread already, or on this one,
 * from inside a handler it runs: one host thread serves a runtime; called
 * from a library thread); HMS_INVALID_ARGUMENT (served is NULL);
 * HMS_INVALID_HANDLE. err receives an hms.v1.Status in JSON.
 * A host thread only: the handlers run on it, so a loop of hms_serve with a
 * short timeout keeps a single-threaded host (PHP) responsive. */
int32_t hms_serve(hms_runtime rt, int32_t timeout_ms, uint32_t *served, hms_buf *err);

/* Answers a call with bytes in the service's format (copied).
 * Returns HMS_OK, HMS_INVALID_ARGUMENT (NULL reply or NULL data with a length)
 * or HMS_FAILED_PRECONDITION (the reply was answered already). */
int32_t hms_reply_set(hms_reply *reply, const uint8_t *data, size_t len);

/* Answers a call with an error. code: an HMS_* status other than HMS_OK
 * (anything else becomes HMS_UNKNOWN); message: UTF-8 text (invalid bytes are
 * replaced), may be NULL when message_len is 0; text past 16 KiB is cut
 * (with a note of how much), so errors passed on through nested calls stay
 * small.
 * Returns HMS_OK, HMS_INVALID_ARGUMENT or HMS_FAILED_PRECONDITION. */
int32_t hms_reply_error(hms_reply *reply, int32_t code, const char *message, size_t message_len);

/* Milliseconds left before the call's deadline; -1 when it has none, 0 when
 * it has passed. A long-running handler can use it to give up early. */
int64_t hms_reply_remaining_ms(const hms_reply *reply);

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

/* Handle of a subscription to a runtime's events. */
typedef uint64_t hms_subscription;

/* Subscribes to events for polling.
 * format: format of filter and of every event polled.
 * filter, filter_len: an hms.events.v1.EventFilter; empty matches all.
 * Each subscription has a bounded queue (RuntimeConfig.event_queue_capacity):
 * when it is full the oldest events are dropped and the next poll returns one
 * "lagged" event saying how many were lost.
 * With a NATS transport, EventFilter.include_remote (or origins, or a
 * replay_from_* field) adds other runtimes' events, each with its origin
 * (docs/transport.md); hms_subscribe returns once the server knows the
 * subscription. Without a transport, or a replay without
 * NatsTransport.event_stream: HMS_FAILED_PRECONDITION.
 * Returns HMS_OK, HMS_INVALID_ARGUMENT, HMS_DECODE_ERROR, HMS_INVALID_HANDLE,
 * HMS_FAILED_PRECONDITION, HMS_UNAVAILABLE (the server did not take the
 * subscription in time). */
int32_t hms_subscribe(hms_runtime rt, int32_t format,
                      const uint8_t *filter, size_t filter_len,
                      hms_subscription *out, hms_buf *err);

/* Takes the next event of a polled subscription, waiting up to timeout_ms
 * (0: do not wait; negative: wait until an event comes or the subscription
 * closes). event receives an hms.events.v1.Event.
 * Returns HMS_OK; HMS_DEADLINE_EXCEEDED (no event in time: not an error of
 * the subscription); HMS_CANCELLED (the subscription or its runtime was
 * closed); HMS_FAILED_PRECONDITION (a push subscription);
 * HMS_INVALID_HANDLE. Several threads may poll one subscription; each event
 * goes to one of them. */
int32_t hms_poll(hms_subscription sub, int32_t timeout_ms, hms_buf *event, hms_buf *err);

/* Receives one event of a push subscription: event, event_len are borrowed
 * until the callback returns. Must not unwind into the library. */
typedef void (*hms_event_fn)(const uint8_t *event, size_t event_len, void *user_data);

/* Subscribes with a callback, run on one library thread per subscription, in
 * event order. For hosts that accept calls from foreign threads (C, Python,
 * Go); PHP and Ruby's Fiddle poll instead. Arguments as hms_subscribe, plus
 * the callback and its user_data, which must stay valid until
 * hms_unsubscribe returns.
 * Returns HMS_OK, HMS_INVALID_ARGUMENT (NULL callback), HMS_DECODE_ERROR,
 * HMS_INVALID_HANDLE. */
int32_t hms_subscribe_push(hms_runtime rt, int32_t format,
                           const uint8_t *filter, size_t filter_len,
                           hms_event_fn callback, void *user_data,
                           hms_subscription *out, hms_buf *err);

/* Closes a subscription. Wakes pollers (HMS_CANCELLED); for a push
 * subscription, waits until its callback has returned for the last time
 * (unless called from inside that callback). Returns HMS_OK or
 * HMS_INVALID_HANDLE (a second call included). */
int32_t hms_unsubscribe(hms_subscription sub);

/* ------------------------------------------------------------------------ */
/* Schemas and conversion                                                   */
/* ------------------------------------------------------------------------ */

/* Adds message types to the process-wide schema pool, so host services can
 * name them and hms_convert can convert them.
 * fds, fds_len: a google.protobuf.FileDescriptorSet, protobuf-encoded. Files
 * already known with identical content are skipped.
 * err: may be NULL; receives an hms.v1.Status in JSON.
 * Returns HMS_OK; HMS_DECODE_ERROR (not a FileDescriptorSet);
 * HMS_INVALID_ARGUMENT (a file conflicts with a known one or misses an
 * import). Any thread. */
int32_t hms_schema_register(const uint8_t *fds, size_t fds_len, hms_buf *err);

/* Converts one message between formats.
 * type_name, type_name_len: full message name, e.g. "hms.sys.v1.EchoRequest";
 *   empty converts any value structurally between CBOR and JSON.
 * data, data_len: the message in from_format. out: receives it in to_format.
 * Default limits apply (4 MiB, depth 64), and JSON output has proto field
 * names; hms_runtime_convert converts under a runtime's settings instead.
 * err: may be NULL; receives an hms.v1.Status in JSON.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (unknown format, protobuf without a
 * type); HMS_NOT_FOUND (unknown type); HMS_DECODE_ERROR;
 * HMS_RESOURCE_EXHAUSTED. Any thread. */
int32_t hms_convert(const char *type_name, size_t type_name_len, int32_t from_format,
                    const uint8_t *data, size_t data_len, int32_t to_format,
                    hms_buf *out, hms_buf *err);

/* Converts one message between formats under the settings of runtime rt
 * (since ABI 1.2): exactly hms_convert, except that the runtime's
 * hms.v1.RuntimeConfig applies instead of the defaults: max_message_bytes
 * bounds the input and the output, max_depth the nesting, and json_names
 * the keys of JSON output (JSON_NAMES_PROTO: proto field names, as
 * hms_convert writes; JSON_NAMES_LOWER_CAMEL_CASE: the lowerCamelCase
 * json_name, as protobuf's own JSON printers write). JSON input accepts
 * both names whatever the setting.
 * rt: a live runtime; it is only read, and may be used by other calls at
 *   the same time.
 * type_name, type_name_len, data, data_len: as for hms_convert; borrowed
 *   for the call only.
 * out: receives the message in to_format; the caller owns it (hms_buf_free).
 * err: may be NULL; receives an hms.v1.Status in JSON.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (unknown format, protobuf without a
 * type, NULL out, bad UTF-8 in type_name); HMS_INVALID_HANDLE (rt is not a
 * live runtime); HMS_NOT_FOUND (unknown type); HMS_DECODE_ERROR (the data
 * is not a valid message of the type); HMS_OUT_OF_RANGE (a value the output
 * format cannot express, e.g. a Timestamp past year 9999 in JSON);
 * HMS_RESOURCE_EXHAUSTED (the input or the output is over the runtime's
 * max_message_bytes, or nests deeper than its max_depth). Any thread. */
int32_t hms_runtime_convert(hms_runtime rt, const char *type_name, size_t type_name_len,
                            int32_t from_format, const uint8_t *data, size_t data_len,
                            int32_t to_format, hms_buf *out, hms_buf *err);

/* ------------------------------------------------------------------------ */
/* Fast paths (since ABI 1.1)                                               */
/* ------------------------------------------------------------------------ */

/* Handle of a resolved method: one method of one runtime, bound to the
 * format its requests and answers travel in. */
typedef uint64_t hms_method;

/* Looks a method up once, so that later calls skip its name: hms_method_call
 * takes five arguments where hms_call takes ten, which is most of the cost of
 * a call from a scripting language's FFI.
 * rt, method, method_len, format: as for hms_call; the format holds for every
 *   call through the handle.
 * out: receives the handle (written only on success).
 * err: may be NULL; receives an hms.v1.Status in `format` (JSON when the
 *   format itself is invalid).
 * The handle stays valid until hms_method_free or until its runtime is freed
 * (then HMS_INVALID_HANDLE). A handle names the method, not one registration
 * of its service: when a host service is unregistered, calls through its
 * handles answer what hms_call would (HMS_NOT_FOUND), and reach the service
 * again once one of that name is registered anew.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (bad name, format or pointer);
 * HMS_NOT_FOUND (no such service or method); HMS_INVALID_HANDLE. Any thread. */
int32_t hms_method_resolve(hms_runtime rt, const char *method, size_t method_len,
                           int32_t format, hms_method *out, hms_buf *err);

/* Calls a resolved method: exactly hms_call with the handle's runtime,
 * method and format and no options (so no deadline; use hms_call for
 * CallOptions). Returns what hms_call returns, HMS_INVALID_HANDLE included.
 * Any thread; handlers may call it too. */
int32_t hms_method_call(hms_method method, const uint8_t *request, size_t request_len,
                        hms_buf *response, hms_buf *err);

/* Frees a method handle. Returns HMS_OK, or HMS_INVALID_HANDLE when it is
 * not live (a second free, or its runtime was freed). Any thread. */
int32_t hms_method_free(hms_method method);

/* Most calls a batch may hold, and the size of the answers after which the
 * remaining calls of a batch are not run (each then answers
 * HMS_RESOURCE_EXHAUSTED). */
#define HMS_BATCH_MAX_CALLS 1048576
#define HMS_BATCH_MAX_RESULT_BYTES 268435456

/* Runs many calls in one crossing.
 * batch, batch_len: a batch frame (below): for each call, a method handle
 *   and its request in that handle's format.
 * results: receives a result frame (below): for each call, in order, its
 *   status code and its answer: the response on HMS_OK, otherwise an
 *   hms.v1.Status, both in the handle's format. Untouched on failure.
 * err: may be NULL; receives an hms.v1.Status in JSON when the frame itself
 *   is refused.
 * Calls run in order on the calling thread, each exactly as hms_method_call
 * would run it; a failing call does not stop the ones after it. Calls that
 * go to another runtime over NATS are all sent first (many in flight), then
 * every answer is collected in order, each with its own status and
 * deadline; local calls run in their turn meanwhile.
 * Returns HMS_OK once the frame has run, whatever its calls answered (read
 * each call's code); HMS_INVALID_ARGUMENT (NULL pointer, or a malformed
 * frame: nothing ran); HMS_RESOURCE_EXHAUSTED (more than
 * HMS_BATCH_MAX_CALLS calls: nothing ran). Any thread.
 *
 * Frames are flat arrays of little-endian uint64 followed by the payload
 * bytes, so that every host builds and splits them with its native packing
 * routines (struct, pack/unpack, encoding/binary) instead of a parser loop:
 *   batch frame:   count, method[count], end[count], payload area
 *   result frame:  count, code[count],   end[count], payload area
 * Payload i spans bytes [end[i-1], end[i]) of the payload area (end[-1] is
 * 0): ends never decrease and the last one is the area's length. A code is
 * a status code (0 is HMS_OK) widened to uint64. Example, two calls with
 * requests "ab" and "" through handle H:
 *   2, H, H, 2, 2, 'a' 'b'      (5 uint64 words, then 2 bytes) */
int32_t hms_call_batch(const uint8_t *batch, size_t batch_len, hms_buf *results,
                       hms_buf *err);

/* ------------------------------------------------------------------------ */
/* Call context and structured error replies (since ABI 1.2)                */
/* ------------------------------------------------------------------------ */

/* Reads what a handler may know of the call it serves: an
 * hms.v1.CallContext (include/proto/hms/v1/options.proto) with the full
 * method name ("package.Service/Method"), the caller's CallOptions.metadata
 * and trace_id, remaining_ms (milliseconds left before the caller's
 * deadline as of this read; absent without a deadline, 0 once passed) and
 * principal (the verified caller, with its roles and principal_attributes,
 * when the runtime's RuntimeConfig.security verifies credentials; empty
 * otherwise: docs/security.md).
 * reply: the reply handed to the running handler. The context is owned by
 *   the library and lives exactly as long as the reply: only while the
 *   handler runs, whether it was answered already or not.
 * format: any HMS_FORMAT_*; of out and err.
 * out: receives the message (reused if it holds a library buffer); untouched
 *   on failure.
 * err: may be NULL; receives an hms.v1.Status in `format` (JSON when the
 *   format itself is invalid).
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (NULL reply, e.g. outside a handler;
 * NULL out; unknown format).
 * Threads: the thread running the handler, or any thread it hands the reply
 * to while it waits, one at a time (a reply is not shared state). */
int32_t hms_reply_context(const hms_reply *reply, int32_t format, hms_buf *out,
                          hms_buf *err);

/* Answers a call with a structured error, so the caller's err receives
 * exactly what the handler says went wrong.
 * format, status, status_len: an hms.v1.Status in that format (any format,
 *   independent of the service's). code: an HMS_* status other than HMS_OK
 *   (HMS_OK and unknown numbers become HMS_UNKNOWN, as for
 *   hms_reply_error); message: cut past 16 KiB as for hms_reply_error;
 *   details: passed on in key order while keys and values total at most
 *   16 KiB, the count of the others in "hms.details_dropped"; origin:
 *   passed on, or the method's full
 *   name when empty. status may be NULL when status_len is 0 (a Status with
 *   every field at its default: HMS_UNKNOWN without text).
 * The caller of hms_call then gets the status's code as its return code and
 * the Status in its own format in err.
 * Returns HMS_OK; HMS_INVALID_ARGUMENT (NULL reply, e.g. outside a handler;
 * NULL status with a length; unknown format); HMS_DECODE_ERROR (status does
 * not parse: the reply stays unanswered, so the handler may still answer);
 * HMS_FAILED_PRECONDITION (the reply was answered already).
 * Threads: as hms_reply_context. */
int32_t hms_reply_status(hms_reply *reply, int32_t format, const uint8_t *status,
                         size_t status_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HMS_FFI_H */
