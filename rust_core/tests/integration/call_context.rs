//! What a host handler sees of its call (hms_reply_context) and the
//! structured errors it answers with (hms_reply_status), since ABI 1.2.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use common::{
    FORMATS, call_raw, decode, echo_typed, encode, expect_code, handler, new_runtime, unique,
    untyped,
};
use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::proto::v1::{CallContext, CallOptions, Status};
use hms_ffi::registry::{
    DROPPED_DETAILS_KEY, HandlerCall, MAX_HANDLER_DETAILS_BYTES, MAX_HANDLER_MESSAGE_BYTES, Reply,
};

/// Each context a handler read, with the thread it ran on.
type Seen = Arc<Mutex<Vec<(CallContext, ThreadId)>>>;

/// Registers a typed JSON service whose `Look` method records the
/// context it reads in `context_format`, and the thread it runs on.
fn context_recorder(rt: &Arc<hms_ffi::runtime::Runtime>, context_format: Format) -> (String, Seen) {
    let name = unique("context.v1.Svc");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    rt.register_service(
        echo_typed(&name, &["Look"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        handler(move |reply, _, _, _| {
            let mut bytes = Vec::new();
            reply.context(context_format, &mut bytes).unwrap();
            let context: CallContext = decode(context_format, &bytes);
            log.lock()
                .unwrap()
                .push((context, std::thread::current().id()));
            reply.set(b"{}").unwrap();
        }),
    )
    .unwrap();
    (format!("{name}/Look"), seen)
}

fn traced_options(deadline_ms: u32) -> CallOptions {
    CallOptions {
        deadline_ms,
        metadata: BTreeMap::from([
            ("tenant".to_owned(), "acme".to_owned()),
            ("ünï".to_owned(), "cödé".to_owned()),
        ]),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        ..Default::default()
    }
}

#[test]
fn handler_on_the_calling_thread_sees_method_metadata_and_trace_id() {
    for format in FORMATS {
        let rt = new_runtime();
        let (method, seen) = context_recorder(&rt, format);
        call_raw(
            &rt,
            &method,
            format,
            &[],
            &encode(&traced_options(0), format),
        )
        .unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
        let seen = seen.lock().unwrap();
        let (context, thread) = &seen[0];
        assert_eq!(
            *thread,
            std::thread::current().id(),
            "no deadline: caller's thread"
        );
        assert_eq!(context.method, method);
        assert_eq!(context.metadata, traced_options(0).metadata);
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.remaining_ms, None, "no deadline: absent");
        assert_eq!(context.principal, "", "reserved for the security layer");
    }
}

#[test]
fn handler_on_a_library_thread_sees_the_context_and_its_deadline() {
    let rt = new_runtime();
    let (method, seen) = context_recorder(&rt, Format::Cbor);
    call_raw(
        &rt,
        &method,
        Format::Json,
        &[],
        &encode(&traced_options(30_000), Format::Json),
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    let (context, thread) = &seen[0];
    assert_ne!(
        *thread,
        std::thread::current().id(),
        "deadline: a library thread"
    );
    assert_eq!(context.method, method);
    assert_eq!(context.metadata, traced_options(0).metadata);
    assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    let left = context
        .remaining_ms
        .expect("a deadline call has remaining_ms");
    assert!(left > 0 && left <= 30_000, "{left}");
}

#[test]
fn calls_without_options_give_an_empty_context_with_the_method() {
    let rt = new_runtime();
    let (method, seen) = context_recorder(&rt, Format::Protobuf);
    call_raw(&rt, &method, Format::Json, &[], &[]).unwrap();
    let handle = rt.resolve_method(&method, Format::Json).unwrap();
    let mut out = Vec::new();
    hms_ffi::runtime::call_method(handle, &[], &mut out).unwrap();
    for (context, _) in seen.lock().unwrap().iter() {
        assert_eq!(
            context.method, method,
            "a method handle gives the full name too"
        );
        assert!(context.metadata.is_empty() && context.trace_id.is_empty());
        assert_eq!(context.remaining_ms, None);
    }
}

#[test]
fn remaining_ms_decreases_while_the_handler_runs() {
    let rt = new_runtime();
    let name = unique("context.v1.Slow");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    rt.register_service(
        untyped(&name, &["Wait"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        handler(move |reply, _, _, _| {
            let read = |reply: &Reply| {
                let mut bytes = Vec::new();
                reply.context(Format::Protobuf, &mut bytes).unwrap();
                decode::<CallContext>(Format::Protobuf, &bytes).remaining_ms
            };
            let first = read(reply);
            std::thread::sleep(Duration::from_millis(50));
            let second = read(reply);
            log.lock().unwrap().push((first, second));
            reply.set(b"null").unwrap();
        }),
    )
    .unwrap();
    call_raw(
        &rt,
        &format!("{name}/Wait"),
        Format::Json,
        &[],
        &encode(&traced_options(10_000), Format::Json),
    )
    .unwrap();
    let (first, second) = seen.lock().unwrap()[0];
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first >= second + 40, "first {first}, then {second}");
}

#[test]
fn a_passed_deadline_reads_as_zero_not_absent() {
    let call = HandlerCall {
        method: "a.B/C".into(),
        deadline: Some(std::time::Instant::now()),
        ..Default::default()
    };
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(call.to_proto().remaining_ms, Some(0));
}

fn status_sender(
    rt: &Arc<hms_ffi::runtime::Runtime>,
    host_format: Format,
    status_format: Format,
    status: Status,
) -> String {
    let name = unique("status.v1.Svc");
    let bytes = encode(&status, status_format);
    rt.register_service(
        echo_typed(&name, &["Fail"]),
        host_format,
        hms_ffi::runtime::HostOptions::default(),
        handler(move |reply, _, _, _| reply.status(status_format, &bytes).unwrap()),
    )
    .unwrap();
    format!("{name}/Fail")
}

#[test]
fn a_status_reply_reaches_the_caller_with_details_and_origin_in_every_format() {
    let status = Status {
        code: Code::PermissionDenied.as_i32(),
        message: "tenant acme may not read this".into(),
        details: BTreeMap::from([
            ("rule".to_owned(), "tenant-isolation".to_owned()),
            ("tenant".to_owned(), "acme".to_owned()),
        ]),
        origin: "policy.v1.Engine".into(),
    };
    for host_format in FORMATS {
        for status_format in FORMATS {
            let rt = new_runtime();
            let method = status_sender(&rt, host_format, status_format, status.clone());
            for format in FORMATS {
                let error = expect_code(
                    call_raw(&rt, &method, format, &[], &[]),
                    Code::PermissionDenied,
                );
                assert_eq!(
                    error.to_status(),
                    status,
                    "{host_format:?}/{status_format:?}"
                );
            }
        }
    }
}

#[test]
fn an_empty_origin_becomes_the_method_and_ok_becomes_unknown() {
    let rt = new_runtime();
    let status = Status {
        code: 0,
        message: "not really ok".into(),
        details: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        origin: String::new(),
    };
    let method = status_sender(&rt, Format::Json, Format::Cbor, status);
    let error = expect_code(
        call_raw(&rt, &method, Format::Json, &[], &[]),
        Code::Unknown,
    );
    assert_eq!(error.origin, method);
    assert_eq!(error.details.get("k").map(String::as_str), Some("v"));

    let unknown = Status {
        code: 4242,
        ..Default::default()
    };
    let method = status_sender(&rt, Format::Json, Format::Protobuf, unknown);
    expect_code(
        call_raw(&rt, &method, Format::Json, &[], &[]),
        Code::Unknown,
    );
}

#[test]
fn a_status_message_is_cut_like_an_error_message() {
    let rt = new_runtime();
    let status = Status {
        code: Code::Internal.as_i32(),
        message: "x".repeat(MAX_HANDLER_MESSAGE_BYTES + 100),
        ..Default::default()
    };
    let method = status_sender(&rt, Format::Json, Format::Json, status);
    let error = expect_code(
        call_raw(&rt, &method, Format::Json, &[], &[]),
        Code::Internal,
    );
    assert!(error.message.len() < MAX_HANDLER_MESSAGE_BYTES + 64);
    assert!(
        error.message.ends_with("[100 more bytes dropped]"),
        "{}",
        error.message
    );
}

#[test]
fn status_details_are_bounded_and_the_rest_counted() {
    let rt = new_runtime();
    let status = Status {
        code: Code::Aborted.as_i32(),
        message: "too much detail".into(),
        details: (0..100)
            .map(|i| (format!("key{i:03}"), "v".repeat(1024)))
            .collect(),
        ..Default::default()
    };
    let method = status_sender(&rt, Format::Protobuf, Format::Protobuf, status);
    let error = expect_code(
        call_raw(&rt, &method, Format::Json, &[], &[]),
        Code::Aborted,
    );
    let dropped: usize = error.details[DROPPED_DETAILS_KEY].parse().unwrap();
    let kept: Vec<&String> = error
        .details
        .keys()
        .filter(|k| k.as_str() != DROPPED_DETAILS_KEY)
        .collect();
    assert_eq!(kept.len() + dropped, 100);
    assert_eq!(kept.len(), MAX_HANDLER_DETAILS_BYTES / (6 + 1024));
    // The first ones, in key order.
    assert_eq!(kept.first().map(|k| k.as_str()), Some("key000"));
    assert_eq!(error.message, "too much detail");
}

#[test]
fn a_malformed_status_is_refused_and_the_reply_stays_open() {
    let rt = new_runtime();
    let name = unique("status.v1.Bad");
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let log = refusals.clone();
    rt.register_service(
        untyped(&name, &["Fail"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        handler(move |reply, _, _, _| {
            for (format, bytes) in [
                (Format::Json, &b"{\"code\": \"not a number\"}"[..]),
                (Format::Json, &b"{"[..]),
                (Format::Protobuf, &b"\xff\xff"[..]),
                (Format::Cbor, &b"\xa1\x64code"[..]),
            ] {
                log.lock()
                    .unwrap()
                    .push(reply.status(format, bytes).unwrap_err().code);
            }
            reply.set(b"\"still answered\"").unwrap();
            log.lock()
                .unwrap()
                .push(reply.status(Format::Json, b"{}").unwrap_err().code);
        }),
    )
    .unwrap();
    let answer = call_raw(&rt, &format!("{name}/Fail"), Format::Json, &[], &[]).unwrap();
    assert_eq!(answer, b"\"still answered\"");
    assert_eq!(
        *refusals.lock().unwrap(),
        [
            Code::DecodeError,
            Code::DecodeError,
            Code::DecodeError,
            Code::DecodeError,
            Code::FailedPrecondition
        ]
    );
}
