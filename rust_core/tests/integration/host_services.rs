//! Services implemented by the host: registration, dispatch in every
//! format, errors, deadlines, thread affinity, unregistration, schemas.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::{
    FORMATS, RuntimeSlot, WATCHDOG, call_in, call_raw, decode, descriptor, echo_typed, encode,
    expect_code, handler, method, new_runtime, options, unique, untyped, within,
};
use hms_ffi::Code;
use hms_ffi::codec::{self, Format, Limits, Value, cbor};
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse};
use hms_ffi::runtime::{self, HostOptions, Runtime};

type Rt = Arc<Runtime>;

fn echo_request(text: &str) -> EchoRequest {
    EchoRequest {
        payload: vec![0, 1, 0, 2].into(),
        text: text.into(),
    }
}

/// A typed Echo-like handler: Shout upper-cases, Whisper lower-cases, and
/// the payload comes back reversed. Records (method, format) of each call.
fn shouter(seen: Arc<Mutex<Vec<(String, Format)>>>) -> Box<dyn hms_ffi::registry::HostHandler> {
    handler(move |reply, method, format, request| {
        seen.lock().unwrap().push((method.to_owned(), format));
        let request: EchoRequest = codec::decode_typed(format, request, &Limits::default())
            .expect("the core hands over a valid request in the service's format");
        let text = match method {
            "Shout" => request.text.to_uppercase(),
            _ => request.text.to_lowercase(),
        };
        let mut payload = request.payload.to_vec();
        payload.reverse();
        let payload = payload.into();
        reply
            .set(&encode(&EchoResponse { payload, text }, format))
            .unwrap();
    })
}

#[test]
fn typed_host_service_answers_in_every_format() {
    for host_format in FORMATS {
        let rt = new_runtime();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let name = unique("greet.v1.Upper");
        rt.register_service(
            echo_typed(&name, &["Shout", "Whisper"]),
            host_format,
            HostOptions::default(),
            shouter(seen.clone()),
        )
        .unwrap();
        for format in FORMATS {
            let response: EchoResponse = call_in(
                &rt,
                &format!("{name}/Shout"),
                format,
                &echo_request("Hello ü"),
                None,
            )
            .unwrap_or_else(|e| panic!("host {host_format:?}, caller {format:?}: {e:?}"));
            assert_eq!(response.text, "HELLO Ü");
            assert_eq!(response.payload, vec![2, 0, 1, 0]);
            let response: EchoResponse = call_in(
                &rt,
                &format!("{name}/Whisper"),
                format,
                &echo_request("Hello"),
                None,
            )
            .unwrap();
            assert_eq!(response.text, "hello");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 6);
        assert!(seen.iter().all(|(_, f)| *f == host_format));
        assert_eq!(seen[0].0, "Shout");
        assert_eq!(seen[1].0, "Whisper");
    }
}

#[test]
fn untyped_host_service_converts_values_structurally() {
    let rt = new_runtime();
    let name = unique("any.v1.Wrap");
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    rt.register_service(
        untyped(&name, &["Wrap"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, _, format, request| {
            assert_eq!(format, Format::Json);
            log.lock().unwrap().push(request.to_vec());
            let value = codec::decode_value(Format::Json, request, &Limits::default()).unwrap();
            let mut out = Vec::new();
            codec::encode_value(
                &Value::Map(vec![(Value::Text("got".into()), value)]),
                Format::Json,
                &mut out,
            )
            .unwrap();
            reply.set(&out).unwrap();
        }),
    )
    .unwrap();
    let method = format!("{name}/Wrap");
    // CBOR in: bytes reach the JSON handler as base64 text.
    let request = Value::Map(vec![
        (Value::Text("b".into()), Value::Bytes(vec![0, 0xff])),
        (Value::Text("n".into()), Value::Integer(-3)),
    ]);
    let mut bytes = Vec::new();
    cbor::encode(&request, &mut bytes);
    let out = call_raw(&rt, &method, Format::Cbor, &bytes, &[]).unwrap();
    let value = cbor::decode(&out, 64).unwrap();
    assert_eq!(
        value,
        Value::Map(vec![(
            Value::Text("got".into()),
            Value::Map(vec![
                (Value::Text("b".into()), Value::Text("AP8=".into())),
                (Value::Text("n".into()), Value::Integer(-3)),
            ])
        )])
    );
    // JSON in, JSON out.
    let out = call_raw(&rt, &method, Format::Json, br#"[1, "two", null]"#, &[]).unwrap();
    let value = codec::decode_value(Format::Json, &out, &Limits::default()).unwrap();
    assert_eq!(
        value,
        Value::Map(vec![(
            Value::Text("got".into()),
            Value::Array(vec![
                Value::Integer(1),
                Value::Text("two".into()),
                Value::Null
            ])
        )])
    );
    // Protobuf needs a type.
    let calls = received.lock().unwrap().len();
    expect_code(
        call_raw(&rt, &method, Format::Protobuf, &[0x08, 0x01], &[]),
        Code::InvalidArgument,
    );
    assert_eq!(
        received.lock().unwrap().len(),
        calls,
        "the handler is not called"
    );
    // Malformed input never reaches the handler.
    expect_code(
        call_raw(&rt, &method, Format::Json, b"{oops", &[]),
        Code::DecodeError,
    );
    expect_code(
        call_raw(&rt, &method, Format::Cbor, &[0xff], &[]),
        Code::DecodeError,
    );
    assert_eq!(received.lock().unwrap().len(), calls);
}

#[test]
fn handler_errors_propagate_their_code_and_message() {
    let rt = new_runtime();
    let name = unique("err.v1.Fail");
    let code = Arc::new(AtomicUsize::new(0));
    let current = code.clone();
    rt.register_service(
        untyped(&name, &["Fail"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, _, _, _| {
            let code = current.load(Ordering::SeqCst) as i32;
            reply.error(code, format!("failed with {code}")).unwrap();
        }),
    )
    .unwrap();
    let method = format!("{name}/Fail");
    for expected in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
        code.store(expected as i32 as usize, Ordering::SeqCst);
        for format in [Format::Json, Format::Cbor] {
            let error = expect_code(call_raw(&rt, &method, format, &[], &[]), expected);
            assert_eq!(error.message, format!("failed with {}", expected as i32));
            assert_eq!(error.origin, method);
        }
    }
    // OK or a number the ABI does not define become UNKNOWN.
    for bogus in [0usize, 999, 17] {
        code.store(bogus, Ordering::SeqCst);
        expect_code(
            call_raw(&rt, &method, Format::Json, &[], &[]),
            Code::Unknown,
        );
    }
}

#[test]
fn a_handler_that_does_not_answer_is_a_handler_error() {
    let rt = new_runtime();
    let name = unique("silent.v1.Svc");
    rt.register_service(
        echo_typed(&name, &["Nothing"]),
        Format::Cbor,
        HostOptions::default(),
        handler(|_, _, _, _| {}),
    )
    .unwrap();
    for format in FORMATS {
        let error = expect_code(
            call_raw(&rt, &format!("{name}/Nothing"), format, &[], &[]),
            Code::HandlerError,
        );
        assert!(error.message.contains("without answering"), "{error:?}");
    }
    // The runtime and the service go on.
    assert!(call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, &[], &[]).is_ok());
}

#[test]
fn a_handler_replying_garbage_is_a_handler_error() {
    let cases: Vec<(Format, bool, Vec<u8>)> = vec![
        (Format::Json, true, b"not json".to_vec()),
        (Format::Json, true, br#"{"text": 5}"#.to_vec()),
        (Format::Json, true, br#"{"text": "a"} {"#.to_vec()),
        (Format::Protobuf, true, vec![0x0f]),
        (Format::Protobuf, true, vec![0x12, 0x05, b'a']),
        (Format::Cbor, true, vec![0xff]),
        (Format::Cbor, true, vec![0x80]),
        (Format::Json, false, b"{".to_vec()),
        (Format::Cbor, false, vec![0x62, 0xff, 0xfe]),
    ];
    for (host_format, typed, garbage) in cases {
        let rt = new_runtime();
        let name = unique("garbage.v1.Svc");
        let descriptor = if typed {
            echo_typed(&name, &["Reply"])
        } else {
            untyped(&name, &["Reply"])
        };
        rt.register_service(
            descriptor,
            host_format,
            HostOptions::default(),
            common::replying(garbage.clone()),
        )
        .unwrap();
        for format in [Format::Json, Format::Cbor] {
            let error = expect_code(
                call_raw(&rt, &format!("{name}/Reply"), format, &[], &[]),
                Code::HandlerError,
            );
            assert!(
                error.message.contains("garbage"),
                "{host_format:?} {garbage:?}: {error:?}"
            );
        }
        assert!(call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, &[], &[]).is_ok());
    }
}

#[test]
fn a_reply_is_answered_once() {
    let rt = new_runtime();
    let name = unique("twice.v1.Svc");
    let second = Arc::new(Mutex::new(Vec::new()));
    let log = second.clone();
    rt.register_service(
        untyped(&name, &["Twice"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, _, _, _| {
            reply.set(b"1").unwrap();
            log.lock()
                .unwrap()
                .push(reply.set(b"2").map_err(|e| e.code));
            log.lock().unwrap().push(
                reply
                    .error(Code::Internal as i32, "late".into())
                    .map_err(|e| e.code),
            );
        }),
    )
    .unwrap();
    let out = call_raw(&rt, &format!("{name}/Twice"), Format::Json, &[], &[]).unwrap();
    assert_eq!(out, b"1");
    assert_eq!(
        *second.lock().unwrap(),
        vec![Err(Code::FailedPrecondition), Err(Code::FailedPrecondition)]
    );
}

#[test]
fn a_reply_over_the_size_limit_is_resource_exhausted() {
    let rt = common::runtime_with(|s| s.limits.max_message_bytes = 100);
    let name = unique("big.v1.Svc");
    rt.register_service(
        untyped(&name, &["Big"]),
        Format::Json,
        HostOptions::default(),
        common::replying(format!("\"{}\"", "x".repeat(200)).into_bytes()),
    )
    .unwrap();
    expect_code(
        call_raw(&rt, &format!("{name}/Big"), Format::Json, &[], &[]),
        Code::ResourceExhausted,
    );
}

#[test]
fn handlers_may_call_back_into_the_runtime() {
    let rt = new_runtime();
    let slot = RuntimeSlot::default();
    slot.set(&rt);
    let name = unique("nested.v1.Svc");
    let service = name.clone();
    let inner_slot = slot.clone();
    rt.register_service(
        untyped(&name, &["Outer", "Inner", "Count"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, method, format, request| {
            let rt = inner_slot.get();
            match method {
                "Outer" => {
                    // A built-in and another method of this very service.
                    let echo = call_raw(
                        &rt,
                        "hms.sys.v1.System/Echo",
                        Format::Json,
                        br#"{"text": "from echo"}"#,
                        &[],
                    )
                    .unwrap();
                    let echo: EchoResponse = decode(Format::Json, &echo);
                    let inner =
                        call_raw(&rt, &format!("{service}/Inner"), format, b"{}", &[]).unwrap();
                    let text =
                        format!("[\"{}\", {}]", echo.text, String::from_utf8(inner).unwrap());
                    reply.set(text.as_bytes()).unwrap();
                }
                "Inner" => reply.set(b"\"inner\"").unwrap(),
                _ => {
                    let n: i64 = std::str::from_utf8(request).unwrap().parse().unwrap();
                    if n == 0 {
                        reply.set(b"0").unwrap();
                        return;
                    }
                    match call_raw(
                        &rt,
                        &format!("{service}/Count"),
                        format,
                        (n - 1).to_string().as_bytes(),
                        &[],
                    ) {
                        Ok(out) => {
                            let below: i64 = std::str::from_utf8(&out).unwrap().parse().unwrap();
                            reply.set((below + 1).to_string().as_bytes()).unwrap();
                        }
                        Err(e) => reply.error(e.code as i32, e.message).unwrap(),
                    }
                }
            }
        }),
    )
    .unwrap();
    let out = within(WATCHDOG, {
        let rt = rt.clone();
        let name = name.clone();
        move || call_raw(&rt, &format!("{name}/Outer"), Format::Json, &[], &[])
    })
    .unwrap();
    assert_eq!(
        codec::decode_value(Format::Json, &out, &Limits::default()).unwrap(),
        Value::Array(vec![
            Value::Text("from echo".into()),
            Value::Text("inner".into())
        ])
    );
    let out = within(WATCHDOG, {
        let rt = rt.clone();
        let name = name.clone();
        move || call_raw(&rt, &format!("{name}/Count"), Format::Json, b"25", &[])
    })
    .unwrap();
    assert_eq!(out, b"25");
    // The same through worker threads (every level has a deadline).
    let deadline = encode(&options(20_000), Format::Json);
    let out = within(WATCHDOG, {
        let rt = rt.clone();
        move || call_raw(&rt, &format!("{name}/Count"), Format::Json, b"5", &deadline)
    })
    .unwrap();
    assert_eq!(out, b"5");
}

#[test]
fn a_handler_slower_than_its_deadline_is_deadline_exceeded() {
    let rt = new_runtime();
    let name = unique("slow.v1.Svc");
    let finished = Arc::new(AtomicUsize::new(0));
    let done = finished.clone();
    rt.register_service(
        untyped(&name, &["Slow", "Fast"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, method, _, _| {
            if method == "Slow" {
                std::thread::sleep(Duration::from_millis(1_000));
                done.fetch_add(1, Ordering::SeqCst);
            }
            reply.set(b"\"done\"").unwrap();
        }),
    )
    .unwrap();
    for format in [Format::Json, Format::Cbor] {
        let opts = encode(&options(50), format);
        let started = Instant::now();
        let error = expect_code(
            call_raw(&rt, &format!("{name}/Slow"), format, &[], &opts),
            Code::DeadlineExceeded,
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "the caller stops waiting at the deadline, not when the handler returns"
        );
        assert_eq!(error.origin, format!("{name}/Slow"));
    }
    // The runtime and the service still work, with and without deadlines.
    assert!(call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, &[], &[]).is_ok());
    let fast = call_raw(
        &rt,
        &format!("{name}/Fast"),
        Format::Json,
        &[],
        &encode(&options(10_000), Format::Json),
    )
    .unwrap();
    assert_eq!(fast, b"\"done\"");
    assert_eq!(
        call_raw(&rt, &format!("{name}/Fast"), Format::Json, &[], &[]).unwrap(),
        b"\"done\""
    );
}

#[test]
fn remaining_ms_reflects_the_deadline() {
    let rt = new_runtime();
    let name = unique("remaining.v1.Svc");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    rt.register_service(
        untyped(&name, &["Check"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, _, _, _| {
            log.lock().unwrap().push(reply.remaining_ms());
            reply.set(b"null").unwrap();
        }),
    )
    .unwrap();
    let method = format!("{name}/Check");
    call_raw(&rt, &method, Format::Json, &[], &[]).unwrap();
    call_raw(
        &rt,
        &method,
        Format::Json,
        &[],
        &encode(&options(30_000), Format::Json),
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], -1, "no deadline");
    assert!(seen[1] > 0 && seen[1] <= 30_000, "{}", seen[1]);
}

/// A service recording the thread each call ran on.
fn thread_recorder(
    rt: &Rt,
    caller_thread_only: bool,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<ThreadId>>>) {
    let name = unique("threads.v1.Svc");
    let threads = Arc::new(Mutex::new(Vec::new()));
    let log = threads.clone();
    rt.register_service(
        untyped(&name, &["Where"]),
        Format::Json,
        HostOptions {
            caller_thread_only,
            ..HostOptions::default()
        },
        handler(move |reply, _, _, _| {
            log.lock().unwrap().push(std::thread::current().id());
            std::thread::sleep(delay);
            reply.set(b"null").unwrap();
        }),
    )
    .unwrap();
    (format!("{name}/Where"), threads)
}

#[test]
fn handlers_run_on_the_calling_thread_unless_a_deadline_needs_a_worker() {
    let rt = new_runtime();
    let (method, threads) = thread_recorder(&rt, false, Duration::ZERO);
    let me = std::thread::current().id();
    call_raw(&rt, &method, Format::Json, &[], &[]).unwrap();
    call_raw(
        &rt,
        &method,
        Format::Json,
        &[],
        &encode(&options(10_000), Format::Json),
    )
    .unwrap();
    let threads = threads.lock().unwrap();
    assert_eq!(threads[0], me, "no deadline: the calling thread");
    assert_ne!(threads[1], me, "a deadline: a library thread");
}

#[test]
fn caller_thread_services_run_on_the_caller_even_with_a_deadline() {
    let rt = new_runtime();
    let (method, threads) = thread_recorder(&rt, true, Duration::ZERO);
    let me = std::thread::current().id();
    call_raw(
        &rt,
        &method,
        Format::Json,
        &[],
        &encode(&options(10_000), Format::Json),
    )
    .unwrap();
    assert_eq!(threads.lock().unwrap()[0], me);
    // A slow one is checked against its deadline when it returns.
    let (slow, threads) = thread_recorder(&rt, true, Duration::from_millis(600));
    expect_code(
        call_raw(
            &rt,
            &slow,
            Format::Json,
            &[],
            &encode(&options(50), Format::Json),
        ),
        Code::DeadlineExceeded,
    );
    assert_eq!(threads.lock().unwrap()[0], me);
    // Any host thread may call it, as long as the library did not create it.
    let (method, threads) = thread_recorder(&rt, true, Duration::ZERO);
    let other = std::thread::spawn({
        let rt = rt.clone();
        let method = method.clone();
        move || {
            call_raw(&rt, &method, Format::Json, &[], &[]).unwrap();
            std::thread::current().id()
        }
    })
    .join()
    .unwrap();
    assert_eq!(threads.lock().unwrap()[0], other);
}

#[test]
fn caller_thread_service_called_from_a_push_callback_is_unavailable() {
    let rt = new_runtime();
    let (method, threads) = thread_recorder(&rt, true, Duration::ZERO);
    let (sender, receiver) = mpsc::channel();
    let weak = Arc::downgrade(&rt);
    let sink_method = method.clone();
    let sink = Box::new(move |_event: &[u8]| {
        if let Some(rt) = weak.upgrade() {
            let result = call_raw(&rt, &sink_method, Format::Json, &[], &[]);
            let _ = sender.send(result.map_err(|e| (e.code, e.message)));
        }
    });
    let filter = encode(&common::kinds(&["agent.created"]), Format::Json);
    let sub = rt.subscribe(Format::Json, &filter, Some(sink)).unwrap();
    common::create_agent(&rt, "trigger");
    let result = receiver
        .recv_timeout(WATCHDOG)
        .expect("the push callback ran");
    let (code, message) = result.expect_err("must not run on the event thread");
    assert_eq!(code, Code::Unavailable);
    assert!(message.contains("caller-thread"), "{message}");
    assert!(threads.lock().unwrap().is_empty(), "the handler never ran");
    runtime::unsubscribe(sub).unwrap();
}

#[test]
fn caller_thread_service_called_from_a_deadline_worker_is_unavailable() {
    let rt = new_runtime();
    let (cto_method, threads) = thread_recorder(&rt, true, Duration::ZERO);
    let slot = RuntimeSlot::default();
    slot.set(&rt);
    let name = unique("relay.v1.Svc");
    let target = cto_method.clone();
    rt.register_service(
        untyped(&name, &["Relay"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, _, _, _| {
            match call_raw(&slot.get(), &target, Format::Json, &[], &[]) {
                Ok(out) => reply.set(&out).unwrap(),
                Err(e) => reply.error(e.code as i32, e.message).unwrap(),
            }
        }),
    )
    .unwrap();
    // With a deadline the relay runs on a library thread: refused.
    let error = expect_code(
        call_raw(
            &rt,
            &format!("{name}/Relay"),
            Format::Json,
            &[],
            &encode(&options(10_000), Format::Json),
        ),
        Code::Unavailable,
    );
    assert!(error.message.contains("caller-thread"), "{error:?}");
    assert!(threads.lock().unwrap().is_empty());
    // Without one it runs on this thread: nested dispatch is fine.
    call_raw(&rt, &format!("{name}/Relay"), Format::Json, &[], &[]).unwrap();
    assert_eq!(
        threads.lock().unwrap().as_slice(),
        [std::thread::current().id()]
    );
}

#[test]
fn caller_thread_services_nest_on_the_caller_thread() {
    let rt = new_runtime();
    let slot = RuntimeSlot::default();
    slot.set(&rt);
    let (inner, threads) = thread_recorder(&rt, true, Duration::ZERO);
    let name = unique("outer.v1.Svc");
    let target = inner.clone();
    rt.register_service(
        untyped(&name, &["Outer"]),
        Format::Json,
        HostOptions {
            caller_thread_only: true,
            ..HostOptions::default()
        },
        handler(move |reply, _, _, _| {
            let out = call_raw(
                &slot.get(),
                &target,
                Format::Json,
                &[],
                &encode(&options(10_000), Format::Json),
            )
            .unwrap();
            reply.set(&out).unwrap();
        }),
    )
    .unwrap();
    call_raw(
        &rt,
        &format!("{name}/Outer"),
        Format::Json,
        &[],
        &encode(&options(10_000), Format::Json),
    )
    .unwrap();
    assert_eq!(
        threads.lock().unwrap().as_slice(),
        [std::thread::current().id()]
    );
}

/// A service whose handler signals when it starts and waits for a release.
struct Gate {
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn gated_service(rt: &Rt, name: &str) -> (u64, Gate) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let handle = rt
        .register_service(
            untyped(name, &["Wait", "Quick"]),
            Format::Json,
            HostOptions::default(),
            handler(move |reply, method, _, _| {
                if method == "Wait" {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    let _ = release_rx.lock().unwrap().recv_timeout(WATCHDOG);
                }
                reply.set(b"\"ok\"").unwrap();
            }),
        )
        .unwrap();
    (handle, Gate { entered, release })
}

#[test]
fn unregister_waits_for_calls_in_flight() {
    let rt = new_runtime();
    let name = unique("inflight.v1.Svc");
    let (handle, gate) = gated_service(&rt, &name);
    let caller = std::thread::spawn({
        let rt = rt.clone();
        let name = name.clone();
        move || call_raw(&rt, &format!("{name}/Wait"), Format::Json, &[], &[])
    });
    gate.entered.recv_timeout(WATCHDOG).unwrap();
    let unregistered = Arc::new(AtomicBool::new(false));
    let unregisterer = std::thread::spawn({
        let unregistered = unregistered.clone();
        move || {
            runtime::unregister_service(handle).unwrap();
            unregistered.store(true, Ordering::SeqCst);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !unregistered.load(Ordering::SeqCst),
        "unregister returned while a call was in flight"
    );
    // New calls are refused at once meanwhile.
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match call_raw(&rt, &format!("{name}/Quick"), Format::Json, &[], &[]) {
            Err(e) if matches!(e.code, Code::NotFound | Code::Unavailable) => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            other => panic!("new calls must be refused: {:?}", other.map(|_| ())),
        }
    }
    gate.release.send(()).unwrap();
    unregisterer.join().unwrap();
    assert!(unregistered.load(Ordering::SeqCst));
    assert_eq!(caller.join().unwrap().unwrap(), b"\"ok\"");
    expect_code(
        call_raw(&rt, &format!("{name}/Quick"), Format::Json, &[], &[]),
        Code::NotFound,
    );
    expect_code(runtime::unregister_service(handle), Code::InvalidHandle);
}

#[test]
fn unregister_waits_even_after_this_thread_made_deadline_calls() {
    let rt = new_runtime();
    let name = unique("stale.v1.Svc");
    let (handle, gate) = gated_service(&rt, &name);
    // This thread calls the service through a deadline worker first.
    call_raw(
        &rt,
        &format!("{name}/Quick"),
        Format::Json,
        &[],
        &encode(&options(10_000), Format::Json),
    )
    .unwrap();
    let caller = std::thread::spawn({
        let rt = rt.clone();
        let name = name.clone();
        move || call_raw(&rt, &format!("{name}/Wait"), Format::Json, &[], &[])
    });
    gate.entered.recv_timeout(WATCHDOG).unwrap();
    let unregistered = Arc::new(AtomicBool::new(false));
    let release = gate.release.clone();
    let flag = unregistered.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let early = flag.load(Ordering::SeqCst);
        release.send(()).unwrap();
        early
    });
    // From this very thread: it has no call in flight, so it must wait.
    runtime::unregister_service(handle).unwrap();
    unregistered.store(true, Ordering::SeqCst);
    let returned_early = releaser.join().unwrap();
    caller.join().unwrap().unwrap();
    assert!(
        !returned_early,
        "unregister returned while another thread's call was in flight"
    );
}

#[test]
fn a_handler_may_unregister_its_own_service() {
    for deadline in [0u32, 10_000] {
        let rt = new_runtime();
        let name = unique("self.v1.Svc");
        let handle_slot: Arc<OnceLock<u64>> = Arc::new(OnceLock::new());
        let slot = handle_slot.clone();
        let handle = rt
            .register_service(
                untyped(&name, &["Leave"]),
                Format::Json,
                HostOptions::default(),
                handler(move |reply, _, _, _| {
                    let outcome = runtime::unregister_service(*slot.get().unwrap());
                    let text = format!("\"{:?}\"", outcome.map_err(|e| e.code));
                    reply.set(text.as_bytes()).unwrap();
                }),
            )
            .unwrap();
        handle_slot.set(handle).unwrap();
        let out = within(WATCHDOG, {
            let rt = rt.clone();
            let name = name.clone();
            move || {
                call_raw(
                    &rt,
                    &format!("{name}/Leave"),
                    Format::Json,
                    &[],
                    &encode(&options(deadline), Format::Json),
                )
            }
        })
        .unwrap_or_else(|e| panic!("deadline {deadline}: {e:?}"));
        assert_eq!(out, b"\"Ok(())\"", "deadline {deadline}");
        expect_code(
            call_raw(&rt, &format!("{name}/Leave"), Format::Json, &[], &[]),
            Code::NotFound,
        );
    }
}

#[test]
fn a_service_can_be_registered_again_after_unregistering() {
    let rt = new_runtime();
    let name = unique("again.v1.Svc");
    let first = rt
        .register_service(
            untyped(&name, &["Which"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"1".to_vec()),
        )
        .unwrap();
    runtime::unregister_service(first).unwrap();
    let second = rt
        .register_service(
            untyped(&name, &["Which"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"2".to_vec()),
        )
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(
        call_raw(&rt, &format!("{name}/Which"), Format::Json, &[], &[]).unwrap(),
        b"2"
    );
    expect_code(runtime::unregister_service(first), Code::InvalidHandle);
    runtime::unregister_service(second).unwrap();
}

#[test]
fn duplicate_service_names_are_already_exists() {
    let rt = new_runtime();
    let name = unique("dup.v1.Svc");
    rt.register_service(
        untyped(&name, &["A"]),
        Format::Json,
        HostOptions::default(),
        common::replying(b"1".to_vec()),
    )
    .unwrap();
    let error = expect_code(
        rt.register_service(
            untyped(&name, &["B"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"2".to_vec()),
        ),
        Code::AlreadyExists,
    );
    assert!(error.message.contains(&name));
    // The first one is untouched.
    assert_eq!(
        call_raw(&rt, &format!("{name}/A"), Format::Json, &[], &[]).unwrap(),
        b"1"
    );
    // Built-in names are taken too.
    expect_code(
        rt.register_service(
            echo_typed("hms.sys.v1.System", &["Echo"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"{}".to_vec()),
        ),
        Code::AlreadyExists,
    );
    let echo = call_raw(
        &rt,
        "hms.sys.v1.System/Echo",
        Format::Json,
        br#"{"text":"builtin"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(decode::<EchoResponse>(Format::Json, &echo).text, "builtin");
}

#[test]
fn invalid_descriptors_are_refused_with_the_documented_codes() {
    let rt = new_runtime();
    let cases = vec![
        (untyped("", &["A"]), Code::InvalidArgument),
        (untyped("bad name!", &["A"]), Code::InvalidArgument),
        (untyped("a..b", &["A"]), Code::InvalidArgument),
        (untyped("1pkg.Svc", &["A"]), Code::InvalidArgument),
        (untyped("has/slash", &["A"]), Code::InvalidArgument),
        (descriptor("ok.v1.NoMethods", vec![]), Code::InvalidArgument),
        (untyped("ok.v1.EmptyMethod", &[""]), Code::InvalidArgument),
        (
            untyped("ok.v1.SlashMethod", &["a/b"]),
            Code::InvalidArgument,
        ),
        (untyped("ok.v1.DotMethod", &["a.b"]), Code::InvalidArgument),
        (untyped("ok.v1.Twice", &["A", "A"]), Code::InvalidArgument),
        (
            descriptor(
                "ok.v1.HalfIn",
                vec![method("A", "hms.sys.v1.EchoRequest", "")],
            ),
            Code::InvalidArgument,
        ),
        (
            descriptor(
                "ok.v1.HalfOut",
                vec![method("A", "", "hms.sys.v1.EchoResponse")],
            ),
            Code::InvalidArgument,
        ),
        (
            descriptor(
                "ok.v1.Unknown",
                vec![method("A", "no.such.Request", "hms.sys.v1.EchoResponse")],
            ),
            Code::NotFound,
        ),
        (
            descriptor(
                "ok.v1.UnknownOut",
                vec![method("A", "hms.sys.v1.EchoRequest", "no.such.Reply")],
            ),
            Code::NotFound,
        ),
    ];
    for (descriptor, code) in cases {
        let name = descriptor.name.clone();
        let error = expect_code(
            rt.register_service(
                descriptor,
                Format::Json,
                HostOptions::default(),
                common::replying(b"{}".to_vec()),
            ),
            code,
        );
        assert!(!error.message.is_empty(), "{name}");
    }
    // Nothing of them was registered.
    let listed: hms_ffi::proto::hms::registry::v1::ListServicesResponse = common::call(
        &rt,
        "hms.registry.v1.Registry/ListServices",
        &hms_ffi::proto::hms::registry::v1::ListServicesRequest {
            name_prefix: "ok.".into(),
        },
    )
    .unwrap();
    assert!(listed.services.is_empty());
}

#[test]
fn freeing_the_runtime_unregisters_its_services() {
    let handle = runtime::create(hms_ffi::config::Settings::default()).unwrap();
    let service = {
        let rt = runtime::runtime(handle).unwrap();
        rt.register_service(
            untyped("freed.v1.Svc", &["A"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"1".to_vec()),
        )
        .unwrap()
    };
    runtime::free(handle).unwrap();
    expect_code(runtime::unregister_service(service), Code::InvalidHandle);
}

// ----------------------------------------------------------------- schemas

/// `hmstest/greeter.proto`: GreetRequest {string name = 1; uint64 times = 2;
/// bytes blob = 3;} and GreetReply {repeated string lines = 1; uint64 total = 2;}.
fn greeter_schema(extra_field: bool) -> Vec<u8> {
    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
    let field = |name: &str, number: i32, kind: Type, label: Label| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    let mut request_fields = vec![
        field("name", 1, Type::String, Label::Optional),
        field("times", 2, Type::Uint64, Label::Optional),
        field("blob", 3, Type::Bytes, Label::Optional),
    ];
    if extra_field {
        request_fields.push(field("extra", 4, Type::Bool, Label::Optional));
    }
    let file = FileDescriptorProto {
        name: Some("hmstest/greeter.proto".into()),
        package: Some("hmstest.greeter.v1".into()),
        message_type: vec![
            DescriptorProto {
                name: Some("GreetRequest".into()),
                field: request_fields,
                ..Default::default()
            },
            DescriptorProto {
                name: Some("GreetReply".into()),
                field: vec![
                    field("lines", 1, Type::String, Label::Repeated),
                    field("total", 2, Type::Uint64, Label::Optional),
                ],
                ..Default::default()
            },
        ],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    prost_types::FileDescriptorSet { file: vec![file] }.encode_to_vec()
}

fn transcode(type_name: &str, from: Format, bytes: &[u8], to: Format) -> Vec<u8> {
    let desc = hms_ffi::schema::message_descriptor(type_name).unwrap();
    let mut out = Vec::new();
    codec::transcode(Some(&desc), from, bytes, to, &Limits::default(), &mut out).unwrap();
    out
}

#[test]
fn a_registered_schema_types_a_host_service_in_every_format() {
    hms_ffi::schema::register(&greeter_schema(false)).unwrap();
    // Registering the same file again is a no-op.
    hms_ffi::schema::register(&greeter_schema(false)).unwrap();
    let rt = new_runtime();
    let name = unique("hmstest.greeter.v1.Greeter");
    rt.register_service(
        descriptor(
            &name,
            vec![method(
                "Greet",
                "hmstest.greeter.v1.GreetRequest",
                "hmstest.greeter.v1.GreetReply",
            )],
        ),
        Format::Cbor,
        hms_ffi::runtime::HostOptions::default(),
        handler(|reply, _, format, request| {
            assert_eq!(format, Format::Cbor);
            let value = cbor::decode(request, 64).unwrap();
            let Value::Map(entries) = value else { panic!() };
            let field = |key: &str| {
                entries
                    .iter()
                    .find(|(k, _)| *k == Value::Text(key.into()))
                    .map(|(_, v)| v.clone())
            };
            let Some(Value::Text(name)) = field("name") else {
                panic!()
            };
            let Some(Value::Integer(times)) = field("times") else {
                panic!("uint64 arrives as a CBOR integer")
            };
            let Some(Value::Bytes(blob)) = field("blob") else {
                panic!("bytes arrive as a CBOR byte string")
            };
            let lines = (0..times)
                .map(|i| Value::Text(format!("hello {name} #{i}")))
                .collect();
            let answer = Value::Map(vec![
                (Value::Text("lines".into()), Value::Array(lines)),
                (
                    Value::Text("total".into()),
                    Value::Integer(u64::MAX as i128 - blob.len() as i128),
                ),
            ]);
            let mut out = Vec::new();
            cbor::encode(&answer, &mut out);
            reply.set(&out).unwrap();
        }),
    )
    .unwrap();
    let json_request = br#"{"name": "Ada", "times": "2", "blob": "AAAA"}"#;
    for format in FORMATS {
        let request = transcode(
            "hmstest.greeter.v1.GreetRequest",
            Format::Json,
            json_request,
            format,
        );
        let out = call_raw(&rt, &format!("{name}/Greet"), format, &request, &[])
            .unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
        let json = transcode("hmstest.greeter.v1.GreetReply", format, &out, Format::Json);
        let value = codec::decode_value(Format::Json, &json, &Limits::default()).unwrap();
        let Value::Map(entries) = value else { panic!() };
        assert!(entries.contains(&(
            Value::Text("lines".into()),
            Value::Array(vec![
                Value::Text("hello Ada #0".into()),
                Value::Text("hello Ada #1".into())
            ])
        )));
        assert!(entries.contains(&(
            Value::Text("total".into()),
            Value::Text((u64::MAX - 3).to_string())
        )));
    }
}

#[test]
fn schema_registration_refuses_garbage_conflicts_and_missing_imports() {
    use prost::Message;
    use prost_types::{FileDescriptorProto, FileDescriptorSet};
    expect_code(
        hms_ffi::schema::register(&[0xff, 0xff, 0xff]),
        Code::DecodeError,
    );
    hms_ffi::schema::register(&greeter_schema(false)).unwrap();
    // Same file name, different content.
    expect_code(
        hms_ffi::schema::register(&greeter_schema(true)),
        Code::InvalidArgument,
    );
    // Conflicts with a built-in file.
    let clash = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("hms/sys/v1/system.proto".into()),
            package: Some("other".into()),
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    };
    expect_code(
        hms_ffi::schema::register(&clash.encode_to_vec()),
        Code::InvalidArgument,
    );
    let orphan = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("hmstest/orphan.proto".into()),
            package: Some("hmstest.orphan".into()),
            dependency: vec!["hmstest/not_there.proto".into()],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    };
    expect_code(
        hms_ffi::schema::register(&orphan.encode_to_vec()),
        Code::InvalidArgument,
    );
    // The pool is unchanged by the failures.
    expect_code(
        hms_ffi::schema::message_descriptor("other.Anything"),
        Code::NotFound,
    );
    assert!(hms_ffi::schema::message_descriptor("hmstest.greeter.v1.GreetRequest").is_ok());
}

#[test]
fn unregister_waits_for_a_handler_its_caller_stopped_waiting_for() {
    let rt = new_runtime();
    let name = unique("abandoned.v1.Svc");
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let handle = rt
        .register_service(
            untyped(&name, &["Slow"]),
            Format::Json,
            HostOptions::default(),
            handler(move |reply, _, _, _| {
                std::thread::sleep(Duration::from_millis(600));
                done.store(true, Ordering::SeqCst);
                reply.set(b"null").unwrap();
            }),
        )
        .unwrap();
    expect_code(
        call_raw(
            &rt,
            &format!("{name}/Slow"),
            Format::Json,
            &[],
            &encode(&options(30), Format::Json),
        ),
        Code::DeadlineExceeded,
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "still running on its worker"
    );
    // After unregister returns the handler is never used again: it must
    // have finished.
    within(WATCHDOG, move || runtime::unregister_service(handle)).unwrap();
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn freeing_the_runtime_waits_for_calls_in_flight() {
    let handle = runtime::create(hms_ffi::config::Settings::default()).unwrap();
    let rt = runtime::runtime(handle).unwrap();
    let name = unique("freeing.v1.Svc");
    let (_service, gate) = gated_service(&rt, &name);
    let caller = std::thread::spawn({
        let rt = rt.clone();
        let name = name.clone();
        move || call_raw(&rt, &format!("{name}/Wait"), Format::Json, &[], &[])
    });
    drop(rt);
    gate.entered.recv_timeout(WATCHDOG).unwrap();
    let freed = Arc::new(AtomicBool::new(false));
    let freer = std::thread::spawn({
        let freed = freed.clone();
        move || {
            runtime::free(handle).unwrap();
            freed.store(true, Ordering::SeqCst);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !freed.load(Ordering::SeqCst),
        "free returned while a handler of the runtime was running"
    );
    gate.release.send(()).unwrap();
    within(WATCHDOG, move || freer.join().unwrap());
    assert_eq!(caller.join().unwrap().unwrap(), b"\"ok\"");
}

#[test]
fn unregistered_services_leave_the_listing() {
    let rt = new_runtime();
    let name = unique("listed.v1.Svc");
    let handle = rt
        .register_service(
            untyped(&name, &["A"]),
            Format::Json,
            HostOptions::default(),
            common::replying(b"1".to_vec()),
        )
        .unwrap();
    let listed = |prefix: &str| -> Vec<String> {
        let response: hms_ffi::proto::hms::registry::v1::ListServicesResponse = common::call(
            &rt,
            "hms.registry.v1.Registry/ListServices",
            &hms_ffi::proto::hms::registry::v1::ListServicesRequest {
                name_prefix: prefix.into(),
            },
        )
        .unwrap();
        response.services.into_iter().map(|s| s.name).collect()
    };
    assert_eq!(listed("listed."), std::slice::from_ref(&name));
    runtime::unregister_service(handle).unwrap();
    assert!(listed("listed.").is_empty());
    let described: Result<hms_ffi::proto::hms::registry::v1::DescribeServiceResponse, _> =
        common::call(
            &rt,
            "hms.registry.v1.Registry/DescribeService",
            &hms_ffi::proto::hms::registry::v1::DescribeServiceRequest { name },
        );
    expect_code(described, Code::NotFound);
}

#[test]
fn hostile_nesting_to_and_from_an_untyped_service_fails_cleanly() {
    let rt = new_runtime();
    let name = unique("deep.v1.Svc");
    let deep_reply = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let calls = Arc::new(AtomicUsize::new(0));
    let count = calls.clone();
    rt.register_service(
        untyped(&name, &["Echo", "Deep"]),
        Format::Json,
        HostOptions::default(),
        handler(move |reply, method, _, request| {
            count.fetch_add(1, Ordering::SeqCst);
            if method == "Deep" {
                reply.set(deep_reply.as_bytes()).unwrap();
            } else {
                reply.set(request).unwrap();
            }
        }),
    )
    .unwrap();
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    expect_code(
        call_raw(
            &rt,
            &format!("{name}/Echo"),
            Format::Json,
            deep_json.as_bytes(),
            &[],
        ),
        Code::ResourceExhausted,
    );
    let deep_cbor = vec![0x81; 100_000];
    expect_code(
        call_raw(&rt, &format!("{name}/Echo"), Format::Cbor, &deep_cbor, &[]),
        Code::ResourceExhausted,
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before the handler"
    );
    // A reply nested too deep is refused too (as the handler's garbage or
    // as a limit), never passed on.
    for format in [Format::Json, Format::Cbor] {
        let error = call_raw(&rt, &format!("{name}/Deep"), format, b"", &[]).unwrap_err();
        assert!(
            matches!(error.code, Code::ResourceExhausted | Code::HandlerError),
            "{error:?}"
        );
    }
}
