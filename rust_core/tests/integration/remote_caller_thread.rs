//! Exported caller-thread-only services (PHP, Ruby): their calls wait for
//! the host's thread, which runs them inside `hms_serve`
//! ([`Runtime::serve`]), against a real nats-server started per test.

use crate::common;
use crate::common::nats_server::plain_client;
use crate::remote::{Rt, call_echo, echo, register_echo_with, runtime_handle, runtime_on};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::nats_server::NatsServer;
use common::{
    RuntimeSlot, WATCHDOG, call_in, decode, err_of, expect_code, handler, new_runtime, options,
    unique, untyped, within,
};
use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::sys::v1::EchoResponse;
use hms_ffi::proto::v1::Status;
use hms_ffi::runtime::{self, HostOptions};
use hms_ffi::transport::MAX_WAITING_CALLS;

const CALLER_THREAD_EXPORT: HostOptions = HostOptions {
    caller_thread_only: true,
    export: true,
};

/// A nats-server, a runtime named `host` on it that exports the echo
/// service `name` caller-thread only, counting its handler's calls, and a
/// runtime that calls it. The server is the last field: it stops after
/// the runtimes are gone.
struct Exported {
    name: String,
    exporter: Rt,
    service: u64,
    calls: Arc<AtomicUsize>,
    caller: Rt,
    server: NatsServer,
}

fn exported(prefix: &str, host: &str) -> Exported {
    let server = NatsServer::start();
    let name = unique(prefix);
    let exporter = runtime_on(&server, host, &[], &[]);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = register_echo_with(&exporter, &name, "x", calls.clone(), CALLER_THREAD_EXPORT)
        .expect("caller-thread and export together are accepted");
    let caller = runtime_on(&server, "caller", &[], &[]);
    Exported {
        name,
        exporter,
        service,
        calls,
        caller,
        server,
    }
}

/// Serves `rt` on this thread until `done` says so, at most [`WATCHDOG`];
/// returns how many calls it ran.
fn serve_until(rt: &Rt, done: impl Fn() -> bool) -> u32 {
    let give_up = Instant::now() + WATCHDOG;
    let mut served = 0;
    while !done() {
        assert!(Instant::now() < give_up, "the calls never came");
        served += rt.serve(Some(Duration::from_millis(50))).expect("serve");
    }
    served
}

/// Waits until `rt` holds `count` exported calls for its host's thread.
fn wait_for_waiting(rt: &Rt, count: usize) {
    let give_up = Instant::now() + WATCHDOG;
    while rt.transport().unwrap().waiting_calls() < count {
        assert!(Instant::now() < give_up, "the calls never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_caller_thread_service_is_served_remotely_by_its_host_thread() {
    let server = NatsServer::start();
    let name = unique("pump.v1.Greeter");
    let configured = unique("pump.v1.Configured");
    let exporter = runtime_on(&server, "php-host", &[&configured], &[]);
    let calls = Arc::new(AtomicUsize::new(0));
    register_echo_with(&exporter, &name, "php", calls.clone(), CALLER_THREAD_EXPORT)
        .expect("caller-thread and export together are accepted");
    // Named in export_services instead of flagged: served the same way.
    let by_config = HostOptions {
        caller_thread_only: true,
        export: false,
    };
    register_echo_with(&exporter, &configured, "cfg", calls.clone(), by_config).unwrap();
    assert_eq!(
        exporter.transport().unwrap().exported(),
        vec![configured.clone(), name.clone()]
    );
    let caller = runtime_on(&server, "caller", &[], &[]);

    let (sender, answers) = mpsc::channel();
    let remote = caller.clone();
    let (greeter, other) = (name.clone(), configured.clone());
    std::thread::spawn(move || {
        let ok = call_echo(&remote, &greeter, "Echo", "hi");
        let failed = call_echo(&remote, &greeter, "Fail", "why");
        let context = call_in::<_, EchoResponse>(
            &remote,
            &format!("{greeter}/Context"),
            Format::Json,
            &echo("x"),
            Some(&options(9_000)),
        );
        let configured = call_echo(&remote, &other, "Echo", "cfg");
        let _ = sender.send((ok, failed, context, configured));
    });
    let answered = Mutex::new(None);
    let served = serve_until(&exporter, || {
        if let Ok(all) = answers.try_recv() {
            *answered.lock().unwrap() = Some(all);
        }
        answered.lock().unwrap().is_some()
    });
    let (ok, failed, context, configured) = answered.into_inner().unwrap().unwrap();
    assert_eq!(served, 4);
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    assert_eq!(ok.unwrap().text, "HI:php");
    assert_eq!(configured.unwrap().text, "CFG:cfg");
    // The handler's status crosses unchanged, naming the runtime that
    // answered, as for a library-thread export.
    let error = expect_code(failed, Code::FailedPrecondition);
    assert_eq!(error.message, "no way: why");
    assert_eq!(
        error.details.get("reason").map(String::as_str),
        Some("testing")
    );
    assert_eq!(error.origin, "php-host");
    // The handler read its call: the method and what is left of the
    // deadline, which ran from when the call arrived.
    let context: serde_json::Value = serde_json::from_str(&context.unwrap().text).unwrap();
    assert_eq!(context["method"], format!("{name}/Context"));
    let remaining: u64 = context["remaining_ms"]
        .as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| context["remaining_ms"].as_u64())
        .expect("the deadline travelled");
    assert!(remaining > 0 && remaining <= 9_000, "{remaining}");
}

#[test]
fn the_handler_runs_on_the_thread_that_serves() {
    let server = NatsServer::start();
    let name = unique("pump.v1.Thread");
    let exporter = runtime_on(&server, "thread-host", &[], &[]);
    let ran_on = Arc::new(Mutex::new(None));
    let seen = ran_on.clone();
    exporter
        .register_service(
            untyped(&name, &["Where"]),
            Format::Json,
            CALLER_THREAD_EXPORT,
            handler(move |reply, _, _, _| {
                *seen.lock().unwrap() = Some(std::thread::current().id());
                reply.set(b"\"here\"").unwrap();
            }),
        )
        .unwrap();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let method = format!("{name}/Where");
    let call =
        std::thread::spawn(move || common::call_raw(&caller, &method, Format::Json, b"{}", &[]));
    serve_until(&exporter, || call.is_finished());
    assert_eq!(call.join().unwrap().unwrap(), b"\"here\"");
    assert_eq!(*ran_on.lock().unwrap(), Some(std::thread::current().id()));
}

#[test]
fn serve_with_nothing_waiting_returns_zero_at_its_timeout() {
    let Exported { exporter, .. } = &exported("pump.v1.Idle", "idle-host");
    assert_eq!(exporter.serve(Some(Duration::ZERO)).unwrap(), 0);
    assert_eq!(exporter.serve(Some(Duration::from_millis(30))).unwrap(), 0);
}

#[test]
fn serve_needs_a_transport() {
    let alone = new_runtime();
    let error = expect_code(alone.serve(Some(Duration::ZERO)), Code::FailedPrecondition);
    assert!(error.message.contains("no transport"), "{}", error.message);
    assert!(error.message.contains("nats.servers"), "{}", error.message);
}

#[test]
fn one_host_thread_serves_a_runtime_and_freeing_it_ends_the_wait() {
    let server = NatsServer::start();
    let exporter = runtime_on(&server, "one-server", &[], &[]);
    let handle = runtime_handle(&exporter);
    let serving = exporter.clone();
    // Whichever of two threads takes the seat first serves; the other is
    // refused, naming the reason (this one retries until it is inside).
    let server_thread = std::thread::spawn(move || {
        loop {
            match serving.serve(None) {
                Err(e) if e.message.contains("another thread") => std::thread::yield_now(),
                served => return served,
            }
        }
    });
    let give_up = Instant::now() + WATCHDOG;
    let error = loop {
        match exporter.serve(Some(Duration::ZERO)) {
            Err(error) => break error,
            Ok(_) => {
                assert!(Instant::now() < give_up, "the serving thread never started");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_eq!(error.code, Code::FailedPrecondition);
    assert!(
        error.message.contains("another thread"),
        "{}",
        error.message
    );

    // Freeing the runtime wakes the waiting thread: CANCELLED, nothing served.
    runtime::free(handle).unwrap();
    let error = within(WATCHDOG, move || err_of(server_thread.join().unwrap()));
    assert_eq!(error.code, Code::Cancelled);
}

#[test]
fn serve_is_refused_from_a_handler_it_runs() {
    let server = NatsServer::start();
    let name = unique("pump.v1.Nested");
    let exporter = runtime_on(&server, "nested-host", &[], &[]);
    let slot = RuntimeSlot::default();
    slot.set(&exporter);
    let inner = slot.clone();
    exporter
        .register_service(
            untyped(&name, &["Again"]),
            Format::Json,
            CALLER_THREAD_EXPORT,
            handler(move |reply, _, _, _| {
                let error = err_of(inner.get().serve(Some(Duration::ZERO)));
                let text =
                    serde_json::json!({ "code": error.code as i32, "message": error.message });
                reply.set(text.to_string().as_bytes()).unwrap();
            }),
        )
        .unwrap();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let method = format!("{name}/Again");
    let call =
        std::thread::spawn(move || common::call_raw(&caller, &method, Format::Json, b"{}", &[]));
    serve_until(&exporter, || call.is_finished());
    let answer: serde_json::Value = serde_json::from_slice(&call.join().unwrap().unwrap()).unwrap();
    assert_eq!(answer["code"], Code::FailedPrecondition as i32);
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("on this thread already"), "{message}");
}

#[test]
fn a_full_queue_answers_resource_exhausted_naming_the_limit() {
    let Exported {
        name,
        exporter,
        calls,
        caller,
        ..
    } = &exported("pump.v1.Full", "full-host");
    let extra = 3;
    let (sender, answers) = mpsc::channel();
    for i in 0..MAX_WAITING_CALLS + extra {
        let (caller, name, sender) = (caller.clone(), name.clone(), sender.clone());
        std::thread::spawn(move || {
            let answer = call_in::<_, EchoResponse>(
                &caller,
                &format!("{name}/Echo"),
                Format::Protobuf,
                &echo(&format!("c{i}")),
                Some(&options(WATCHDOG.as_millis() as u32)),
            );
            let _ = sender.send(answer);
        });
    }
    drop(sender);
    // Nobody serves yet: the calls over the bound come back at once.
    let mut refused = Vec::new();
    while refused.len() < extra {
        let answer = answers.recv_timeout(WATCHDOG).expect("the refusals come");
        refused.push(expect_code(answer, Code::ResourceExhausted));
    }
    for error in &refused {
        assert!(
            error
                .message
                .contains(&format!("at most {MAX_WAITING_CALLS}")),
            "{}",
            error.message
        );
        assert_eq!(
            error.details.get("max_waiting_calls"),
            Some(&MAX_WAITING_CALLS.to_string())
        );
        assert_eq!(error.origin, "full-host");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        exporter.transport().unwrap().waiting_calls(),
        MAX_WAITING_CALLS
    );

    let served = serve_until(exporter, || {
        calls.load(Ordering::SeqCst) == MAX_WAITING_CALLS
    });
    assert_eq!(served as usize, MAX_WAITING_CALLS);
    let answered: Vec<_> = answers.iter().collect();
    assert_eq!(answered.len(), MAX_WAITING_CALLS);
    assert!(answered.iter().all(|a| a.is_ok()), "{answered:?}");
}

#[test]
fn a_call_whose_deadline_passes_while_it_waits_never_runs() {
    let late_host = exported("pump.v1.Late", "late-host");
    let Exported {
        name,
        exporter,
        calls,
        caller,
        ..
    } = &late_host;

    // An HMS caller gives up at its deadline.
    let late = call_in::<_, EchoResponse>(
        caller,
        &format!("{name}/Echo"),
        Format::Protobuf,
        &echo("late"),
        Some(&options(150)),
    );
    expect_code(late, Code::DeadlineExceeded);

    // A plain client reads what the exporter answers for a call past its
    // deadline: the status, without the handler having run.
    let (tokio, client) = plain_client(&late_host.server);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Hms-Format", "json");
    headers.insert("Hms-Deadline-Ms", "100");
    let subject = format!("hms.svc.{name}.Echo");
    let request = tokio.spawn(async move {
        client
            .request_with_headers(subject, headers, r#"{"text":"late"}"#.into())
            .await
    });
    wait_for_waiting(exporter, 1);
    // Past both deadlines (100 ms here, 150 ms for the caller above).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(exporter.serve(Some(Duration::ZERO)).unwrap(), 0);
    let reply = tokio.block_on(request).unwrap().expect("an answer");
    let status_header = reply.headers.as_ref().and_then(|h| h.get("Hms-Status"));
    assert_eq!(
        status_header.map(|v| v.as_str().to_owned()),
        Some((Code::DeadlineExceeded as i32).to_string())
    );
    let status: Status = decode(Format::Json, &reply.payload);
    assert!(status.message.contains("did not run"), "{}", status.message);
    assert_eq!(status.origin, "late-host");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(exporter.transport().unwrap().waiting_calls(), 0);
}

#[test]
fn unregistering_answers_its_waiting_calls_unavailable() {
    let Exported {
        name,
        exporter,
        service,
        calls,
        caller,
        ..
    } = &exported("pump.v1.Gone", "gone-host");
    let (remote, greeter) = (caller.clone(), name.clone());
    let waiting = std::thread::spawn(move || call_echo(&remote, &greeter, "Echo", "x"));
    wait_for_waiting(exporter, 1);
    runtime::unregister_service(*service).unwrap();
    let error = within(WATCHDOG, move || {
        expect_code(waiting.join().unwrap(), Code::Unavailable)
    });
    assert!(error.message.contains("unregistered"), "{}", error.message);
    assert_eq!(error.origin, "gone-host");
    assert_eq!(exporter.transport().unwrap().waiting_calls(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn freeing_the_runtime_answers_its_waiting_calls_unavailable() {
    let Exported {
        name,
        exporter,
        calls,
        caller,
        ..
    } = &exported("pump.v1.Freed", "freed-host");
    let (sender, answers) = mpsc::channel();
    for _ in 0..3 {
        let (remote, greeter, sender) = (caller.clone(), name.clone(), sender.clone());
        std::thread::spawn(move || {
            let _ = sender.send(call_echo(&remote, &greeter, "Echo", "x"));
        });
    }
    wait_for_waiting(exporter, 3);
    runtime::free(runtime_handle(exporter)).unwrap();
    for _ in 0..3 {
        let answer = answers.recv_timeout(WATCHDOG).expect("an answer");
        let error = expect_code(answer, Code::Unavailable);
        assert!(
            error.message.contains("waited for its host's thread"),
            "{}",
            error.message
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(exporter.transport().unwrap().waiting_calls(), 0);
    // Served no more: the runtime is gone.
    expect_code(exporter.serve(Some(Duration::ZERO)), Code::Cancelled);
}

unsafe extern "C" {
    // Declared safe: it checks its pointers itself (NULL included), and
    // the others are plain values.
    safe fn hms_serve(
        rt: u64,
        timeout_ms: i32,
        served: *mut u32,
        err: *mut std::ffi::c_void,
    ) -> i32;
}

#[test]
fn hms_serve_checks_its_arguments() {
    let server = NatsServer::start();
    let exporter = runtime_on(&server, "abi-host", &[], &[]);
    let handle = runtime_handle(&exporter);
    let null = std::ptr::null_mut();
    let mut served = 7u32;
    assert_eq!(
        hms_serve(handle, 0, std::ptr::null_mut(), null),
        Code::InvalidArgument as i32
    );
    assert_eq!(served, 7, "untouched on failure");
    assert_eq!(hms_serve(handle, 0, &mut served, null), Code::Ok as i32);
    assert_eq!(served, 0);
    assert_eq!(
        hms_serve(0, 0, &mut served, null),
        Code::InvalidHandle as i32
    );
    runtime::free(handle).unwrap();
    assert_eq!(
        hms_serve(handle, 0, &mut served, null),
        Code::InvalidHandle as i32
    );
}
