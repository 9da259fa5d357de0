//! ABI 1.1: method handles and batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hms_ffi::batch::{self, MAX_CALLS, MAX_RESULT_BYTES};
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse};
use hms_ffi::proto::v1::Status;
use hms_ffi::runtime::{self, HostOptions, Runtime};
use hms_ffi::{Code, HmsError};

use crate::common::*;

const ECHO: &str = "hms.sys.v1.System/Echo";

fn echo_request(text: &str, format: Format) -> Vec<u8> {
    encode(
        &EchoRequest {
            payload: text.as_bytes().to_vec().into(),
            text: text.into(),
        },
        format,
    )
}

fn call_handle(handle: u64, request: &[u8]) -> Result<Vec<u8>, HmsError> {
    let mut out = Vec::new();
    runtime::call_method(handle, request, &mut out).map(|()| out)
}

fn run_batch(calls: &[(u64, &[u8])]) -> Result<Vec<(Code, Vec<u8>)>, HmsError> {
    let mut out = Vec::new();
    batch::run(&batch_frame(calls), &mut out)?;
    assert_eq!(
        u64::from_le_bytes(out[..8].try_into().unwrap()),
        calls.len() as u64
    );
    Ok(batch_results(&out))
}

/// A host service counting its calls, to prove what ran.
fn counting_service(rt: &Arc<Runtime>) -> (String, Arc<AtomicUsize>, u64) {
    let name = unique("fast.v1.Count");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let service = rt
        .register_service(
            echo_typed(&name, &["Echo"]),
            Format::Protobuf,
            HostOptions::default(),
            handler(move |reply, _, _, request| {
                seen.fetch_add(1, Ordering::SeqCst);
                reply.set(request).expect("first answer");
            }),
        )
        .unwrap();
    (format!("{name}/Echo"), calls, service)
}

#[test]
fn a_method_handle_answers_as_hms_call_does_in_every_format() {
    let rt = new_runtime();
    for format in FORMATS {
        let handle = rt.resolve_method(ECHO, format).unwrap();
        let request = echo_request("héllo", format);
        let through_handle = call_handle(handle, &request).unwrap();
        let through_name = call_raw(&rt, ECHO, format, &request, &[]).unwrap();
        assert_eq!(through_handle, through_name, "{format:?}");
        let response: EchoResponse = decode(format, &through_handle);
        assert_eq!(response.text, "héllo");
        runtime::free_method(handle).unwrap();
    }
}

#[test]
fn resolving_checks_the_name_once() {
    let rt = new_runtime();
    let error = expect_code(
        rt.resolve_method("", Format::Protobuf),
        Code::InvalidArgument,
    );
    assert!(
        error.message.contains("package.Service/Method"),
        "{error:?}"
    );
    let error = expect_code(
        rt.resolve_method("no.such.v1.Service/Method", Format::Protobuf),
        Code::NotFound,
    );
    assert_eq!(error.origin, "registry");
    expect_code(
        rt.resolve_method("hms.sys.v1.System/NoSuchMethod", Format::Cbor),
        Code::NotFound,
    );
    expect_code(
        runtime::resolve_method(0, ECHO, Format::Protobuf),
        Code::InvalidHandle,
    );
}

#[test]
fn errors_through_a_handle_name_the_method() {
    let rt = new_runtime();
    let handle = rt.resolve_method(ECHO, Format::Protobuf).unwrap();
    let error = expect_code(call_handle(handle, &[0xff, 0xff]), Code::DecodeError);
    assert_eq!(error.origin, ECHO);
    let tight = runtime_with(|s| s.limits.max_message_bytes = 16);
    let handle = tight.resolve_method(ECHO, Format::Protobuf).unwrap();
    expect_code(call_handle(handle, &[0; 17]), Code::ResourceExhausted);
}

#[test]
fn freed_stale_and_foreign_method_handles_are_invalid() {
    let rt = new_runtime();
    let handle = rt.resolve_method(ECHO, Format::Protobuf).unwrap();
    runtime::free_method(handle).unwrap();
    expect_code(runtime::free_method(handle), Code::InvalidHandle);
    expect_code(call_handle(handle, &[]), Code::InvalidHandle);
    expect_code(call_handle(0, &[]), Code::InvalidHandle);
    let runtime_handle = runtime::create(Default::default()).unwrap();
    expect_code(call_handle(runtime_handle, &[]), Code::InvalidHandle);
    runtime::free(runtime_handle).unwrap();
}

#[test]
fn closing_the_runtime_invalidates_its_method_handles() {
    let rt = runtime::create(Default::default()).unwrap();
    let handle = runtime::resolve_method(rt, ECHO, Format::Protobuf).unwrap();
    call_handle(handle, &[]).unwrap();
    runtime::free(rt).unwrap();
    let error = expect_code(call_handle(handle, &[]), Code::InvalidHandle);
    assert!(error.message.contains("method"), "{error:?}");
    expect_code(runtime::free_method(handle), Code::InvalidHandle);
}

#[test]
fn a_handle_follows_its_name_when_the_service_is_unregistered_and_back() {
    let rt = new_runtime();
    let name = unique("fast.v1.Swap");
    let register = |answer: &'static str| {
        rt.register_service(
            echo_typed(&name, &["Echo"]),
            Format::Protobuf,
            HostOptions::default(),
            replying(echo_request(answer, Format::Protobuf)),
        )
        .unwrap()
    };
    let first = register("first");
    let method = format!("{name}/Echo");
    let handle = rt.resolve_method(&method, Format::Protobuf).unwrap();
    let text = |bytes: Vec<u8>| decode::<EchoResponse>(Format::Protobuf, &bytes).text;
    assert_eq!(text(call_handle(handle, &[]).unwrap()), "first");
    runtime::unregister_service(first).unwrap();
    let error = expect_code(call_handle(handle, &[]), Code::NotFound);
    let by_name = expect_code(
        call_raw(&rt, &method, Format::Protobuf, &[], &[]),
        Code::NotFound,
    );
    assert_eq!(
        error.message, by_name.message,
        "the same answer as hms_call"
    );
    register("second");
    assert_eq!(text(call_handle(handle, &[]).unwrap()), "second");
}

#[test]
fn a_batch_of_a_thousand_echoes_answers_each_in_order() {
    let rt = new_runtime();
    let handle = rt.resolve_method(ECHO, Format::Protobuf).unwrap();
    let requests: Vec<Vec<u8>> = (0..1000)
        .map(|i| echo_request(&format!("call {i}"), Format::Protobuf))
        .collect();
    let calls: Vec<(u64, &[u8])> = requests.iter().map(|r| (handle, r.as_slice())).collect();
    let results = run_batch(&calls).unwrap();
    assert_eq!(results.len(), 1000);
    for (i, (code, answer)) in results.iter().enumerate() {
        assert_eq!(*code, Code::Ok);
        let response: EchoResponse = decode(Format::Protobuf, answer);
        assert_eq!(response.text, format!("call {i}"));
    }
}

#[test]
fn an_empty_batch_is_an_empty_result_frame() {
    assert!(run_batch(&[]).unwrap().is_empty());
}

#[test]
fn a_failing_call_answers_a_status_and_the_batch_goes_on() {
    let rt = new_runtime();
    let (method, calls, _) = counting_service(&rt);
    let host = rt.resolve_method(&method, Format::Protobuf).unwrap();
    let echo_cbor = rt.resolve_method(ECHO, Format::Cbor).unwrap();
    let good = echo_request("ok", Format::Protobuf);
    let good_cbor = echo_request("ok", Format::Cbor);
    let freed = rt.resolve_method(ECHO, Format::Cbor).unwrap();
    runtime::free_method(freed).unwrap();
    let results = run_batch(&[
        (host, &good),
        (echo_cbor, &[0xff]),
        (freed, &good_cbor),
        (echo_cbor, &good_cbor),
        (host, &good),
    ])
    .unwrap();
    let codes: Vec<Code> = results.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::DecodeError,
            Code::InvalidHandle,
            Code::Ok,
            Code::Ok
        ]
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the calls after a failure ran"
    );
    let status: Status = decode(Format::Cbor, &results[1].1);
    assert_eq!(status.code, Code::DecodeError as i32);
    assert_eq!(status.origin, ECHO);
    // A handle that is not live has no format: its status is JSON.
    let status: Status = decode(Format::Json, &results[2].1);
    assert_eq!(status.code, Code::InvalidHandle as i32);
    let response: EchoResponse = decode(Format::Cbor, &results[3].1);
    assert_eq!(response.text, "ok");
}

#[test]
fn malformed_frames_are_refused_before_anything_runs() {
    let rt = new_runtime();
    let (method, calls, _) = counting_service(&rt);
    let host = rt.resolve_method(&method, Format::Protobuf).unwrap();
    // Two valid EchoRequests: the empty one and `payload: b""` spelt out.
    let good = batch_frame(&[(host, b"".as_slice()), (host, b"\x0a\x00".as_slice())]);
    let word = |frame: &mut Vec<u8>, index: usize, value: u64| {
        frame[index * 8..index * 8 + 8].copy_from_slice(&value.to_le_bytes())
    };
    let mut cases: Vec<(&str, Vec<u8>, Code)> = vec![
        ("empty", Vec::new(), Code::InvalidArgument),
        ("short count", vec![1, 0, 0], Code::InvalidArgument),
        ("header cut", good[..30].to_vec(), Code::InvalidArgument),
        (
            "payload cut",
            good[..good.len() - 1].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0]].concat(),
            Code::InvalidArgument,
        ),
    ];
    let mut decreasing = good.clone();
    word(&mut decreasing, 3, 3);
    cases.push(("ends decrease", decreasing, Code::InvalidArgument));
    let mut huge_count = good.clone();
    word(&mut huge_count, 0, u64::MAX);
    cases.push(("count u64::MAX", huge_count, Code::ResourceExhausted));
    let mut over = good.clone();
    word(&mut over, 0, MAX_CALLS + 1);
    cases.push(("count over the limit", over, Code::ResourceExhausted));
    let mut overflowing_end = good.clone();
    word(&mut overflowing_end, 4, u64::MAX);
    cases.push(("end past the area", overflowing_end, Code::InvalidArgument));
    for (what, bytes, code) in cases {
        let mut out = b"kept".to_vec();
        let error = expect_code(batch::run(&bytes, &mut out), code);
        assert!(
            error.message.contains("batch"),
            "{what}: message says what is wrong: {error:?}"
        );
        assert_eq!(out, b"kept", "{what}: nothing written");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
    let mut out = Vec::new();
    batch::run(&good, &mut out).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn answers_past_the_result_limit_stop_the_batch() {
    let rt = runtime_with(|s| s.limits.max_message_bytes = 9 << 20);
    let handle = rt.resolve_method(ECHO, Format::Protobuf).unwrap();
    let big = encode(
        &EchoRequest {
            payload: vec![1; 8 << 20].into(),
            text: String::new(),
        },
        Format::Protobuf,
    );
    let needed = MAX_RESULT_BYTES / big.len() + 2;
    let calls: Vec<(u64, &[u8])> = (0..needed).map(|_| (handle, big.as_slice())).collect();
    let results = run_batch(&calls).unwrap();
    let answered = results.iter().filter(|(c, _)| *c == Code::Ok).count();
    assert!(
        answered * big.len() > MAX_RESULT_BYTES,
        "ran up to the limit"
    );
    assert!(answered < needed);
    let (code, status) = results.last().unwrap();
    assert_eq!(*code, Code::ResourceExhausted);
    let status: Status = decode(Format::Protobuf, status);
    assert!(status.message.contains("split the batch"), "{status:?}");
}

#[test]
fn handles_and_batches_work_from_many_threads() {
    let rt = new_runtime();
    let handle = rt.resolve_method(ECHO, Format::Protobuf).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            scope.spawn(move || {
                for i in 0..200 {
                    let text = format!("{thread}/{i}");
                    let request = echo_request(&text, Format::Protobuf);
                    let single: EchoResponse =
                        decode(Format::Protobuf, &call_handle(handle, &request).unwrap());
                    assert_eq!(single.text, text);
                    let results = run_batch(&[(handle, &request), (handle, &request)]).unwrap();
                    assert!(results.iter().all(|(code, _)| *code == Code::Ok));
                }
            });
        }
    });
}
