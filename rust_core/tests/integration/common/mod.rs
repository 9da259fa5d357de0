//! Helpers shared by the integration tests: runtimes, typed calls, host
//! handlers, event subscriptions, watchdogs and a test schema.
#![allow(dead_code)]

pub mod nats_server;
pub mod postgres;

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak, mpsc};
use std::time::Duration;

use hms_ffi::codec::{self, Format};
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::lifecycle::v1::{
    GetHistoryRequest, GetHistoryResponse, GetStateRequest, GetStateResponse, LifecycleEvent,
    LifecycleState, TransitionRequest, TransitionResponse,
};
use hms_ffi::proto::hms::agent::v1::{Agent, CreateAgentRequest, GetAgentRequest};
use hms_ffi::proto::hms::events::v1::{Event, EventFilter};
use hms_ffi::proto::v1::{CallOptions, MethodDescriptor, ServiceDescriptor};
use hms_ffi::registry::{HostHandler, Reply};
use hms_ffi::runtime::{self, Runtime, SubscriptionEntry};
use hms_ffi::{Code, HmsError};

pub const FORMATS: [Format; 3] = [Format::Protobuf, Format::Cbor, Format::Json];

pub const AGENTS: &str = "hms.agent.v1.AgentService";
pub const TASKS: &str = "hms.agent.v1.TaskService";
pub const KNOWLEDGE: &str = "hms.agent.v1.KnowledgeService";
pub const LIFECYCLE: &str = "hms.agent.lifecycle.v1.LifecycleService";

// ---------------------------------------------------------------- runtimes

pub fn new_runtime() -> Arc<Runtime> {
    runtime_with(|_| {})
}

pub fn runtime_with(configure: impl FnOnce(&mut Settings)) -> Arc<Runtime> {
    let mut settings = Settings::default();
    configure(&mut settings);
    store_under_test(&mut settings);
    Runtime::new(settings).expect("the runtime opens")
}

/// With HMS_TEST_STORE=postgres, a runtime whose test chose no store of its
/// own keeps its records in a fresh PostgreSQL database: the domain suite
/// runs once on each store (scripts/test.sh).
fn store_under_test(settings: &mut Settings) {
    #[cfg(feature = "postgres")]
    if std::env::var("HMS_TEST_STORE").as_deref() == Ok("postgres")
        && settings.data_dir.is_none()
        && matches!(settings.store, hms_ffi::domain::StoreSettings::Embedded)
    {
        settings.store = postgres::fresh_database().store_settings();
    }
}

/// The error of a result whose Ok type has no Debug.
pub fn err_of<T>(result: Result<T, HmsError>) -> HmsError {
    match result {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(error) => error,
    }
}

/// Asserts `result` failed with `code` and returns the error.
#[track_caller]
pub fn expect_code<T>(result: Result<T, HmsError>, code: Code) -> HmsError {
    match result {
        Ok(_) => panic!("expected {code:?}, got Ok"),
        Err(error) => {
            assert_eq!(error.code, code, "unexpected error: {error:?}");
            error
        }
    }
}

// ------------------------------------------------------------------- codec

pub fn encode<M: prost::Message + prost::Name>(message: &M, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_typed(message, format, &mut out)
        .unwrap_or_else(|e| panic!("encoding {}: {e:?}", M::full_name()));
    out
}

pub fn decode<M: prost::Message + Default + prost::Name>(format: Format, bytes: &[u8]) -> M {
    codec::decode_typed(format, bytes, &codec::Limits::default())
        .unwrap_or_else(|e| panic!("decoding {}: {e:?}", M::full_name()))
}

pub fn options(deadline_ms: u32) -> CallOptions {
    CallOptions {
        deadline_ms,
        ..Default::default()
    }
}

// ------------------------------------------------------------------- calls

/// Calls `method` with raw bytes; the response bytes, or the error.
pub fn call_raw(
    rt: &Arc<Runtime>,
    method: &str,
    format: Format,
    request: &[u8],
    options: &[u8],
) -> Result<Vec<u8>, HmsError> {
    let mut out = Vec::new();
    rt.call(method, format, request, options, &mut out)?;
    Ok(out)
}

/// A typed call in `format`, with optional call options.
pub fn call_in<Req, Resp>(
    rt: &Arc<Runtime>,
    method: &str,
    format: Format,
    request: &Req,
    call_options: Option<&CallOptions>,
) -> Result<Resp, HmsError>
where
    Req: prost::Message + prost::Name,
    Resp: prost::Message + Default + prost::Name,
{
    let request = encode(request, format);
    let options = call_options.map(|o| encode(o, format)).unwrap_or_default();
    let out = call_raw(rt, method, format, &request, &options)?;
    Ok(decode(format, &out))
}

/// A typed call in protobuf without options.
pub fn call<Req, Resp>(rt: &Arc<Runtime>, method: &str, request: &Req) -> Result<Resp, HmsError>
where
    Req: prost::Message + prost::Name,
    Resp: prost::Message + Default + prost::Name,
{
    call_in(rt, method, Format::Protobuf, request, None)
}

// ----------------------------------------------------------- host services

/// A host handler made of a closure.
pub struct FnHandler<F>(pub F);

impl<F> HostHandler for FnHandler<F>
where
    F: Fn(&mut Reply, &str, Format, &[u8]) + Send + Sync,
{
    fn invoke(&self, reply: &mut Reply, method: &CStr, format: Format, request: &[u8]) {
        let method = method.to_str().expect("method names are UTF-8");
        (self.0)(reply, method, format, request)
    }
}

pub fn handler<F>(function: F) -> Box<dyn HostHandler>
where
    F: Fn(&mut Reply, &str, Format, &[u8]) + Send + Sync + 'static,
{
    Box::new(FnHandler(function))
}

/// The call's context (`hms_reply_context`) as JSON, as a handler reads it.
pub fn context_json(reply: &Reply) -> Vec<u8> {
    let mut context = Vec::new();
    reply.context(Format::Json, &mut context).unwrap();
    context
}

/// Answers an Echo-shaped call with its own context, as JSON text.
pub fn reply_with_context(reply: &mut Reply, format: Format) {
    let response = hms_ffi::proto::hms::sys::v1::EchoResponse {
        payload: Default::default(),
        text: String::from_utf8(context_json(reply)).unwrap(),
    };
    reply.set(&encode(&response, format)).unwrap();
}

/// A lifecycle hook service `name` with its one method `On`.
pub fn hook_descriptor(name: &str) -> ServiceDescriptor {
    descriptor(
        name,
        vec![method(
            "On",
            "hms.agent.lifecycle.v1.HookInvocation",
            "hms.agent.lifecycle.v1.UnregisterHookResponse",
        )],
    )
}

pub fn method(name: &str, input: &str, output: &str) -> MethodDescriptor {
    MethodDescriptor {
        name: name.into(),
        input_type: input.into(),
        output_type: output.into(),
    }
}

pub fn descriptor(name: &str, methods: Vec<MethodDescriptor>) -> ServiceDescriptor {
    ServiceDescriptor {
        name: name.into(),
        version: "1.2.3".into(),
        methods,
        origin: String::new(),
        description: "a test service".into(),
        served_by: Vec::new(),
    }
}

/// A service whose methods take EchoRequest and return EchoResponse.
pub fn echo_typed(name: &str, methods: &[&str]) -> ServiceDescriptor {
    descriptor(
        name,
        methods
            .iter()
            .map(|m| method(m, "hms.sys.v1.EchoRequest", "hms.sys.v1.EchoResponse"))
            .collect(),
    )
}

/// A service whose methods take and return any CBOR/JSON value.
pub fn untyped(name: &str, methods: &[&str]) -> ServiceDescriptor {
    descriptor(name, methods.iter().map(|m| method(m, "", "")).collect())
}

/// A handler answering every call with `bytes`.
pub fn replying(bytes: Vec<u8>) -> Box<dyn HostHandler> {
    handler(move |reply, _, _, _| reply.set(&bytes).expect("first answer"))
}

/// A handler failing every call with `code`.
pub fn failing(code: Code, message: &'static str) -> Box<dyn HostHandler> {
    handler(move |reply, _, _, _| {
        reply
            .error(code as i32, message.into())
            .expect("first answer")
    })
}

/// A handler answering after `delay` with an empty message of any type.
pub fn sleeping(delay: Duration) -> Box<dyn HostHandler> {
    handler(move |reply, _, _, _| {
        std::thread::sleep(delay);
        let _ = reply.set(&[]);
    })
}

static NAMES: AtomicU64 = AtomicU64::new(0);

/// A service name unique in this process.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// A late-bound weak reference to a runtime, for handlers that call back in
/// (weak, so a handler never keeps its own runtime alive).
#[derive(Clone, Default)]
pub struct RuntimeSlot(Arc<OnceLock<Weak<Runtime>>>);

impl RuntimeSlot {
    pub fn set(&self, rt: &Arc<Runtime>) {
        let _ = self.0.set(Arc::downgrade(rt));
    }

    pub fn get(&self) -> Arc<Runtime> {
        self.0.get().and_then(Weak::upgrade).expect("runtime alive")
    }
}

// ---------------------------------------------------------------- watchdog

/// Runs `f` on its own thread; panics when it has not finished in `limit`
/// (a hang becomes a failure instead of a stuck suite).
#[track_caller]
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    match receiver.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}: hung"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the watched thread panicked"),
    }
}

pub const WATCHDOG: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ events

pub fn subscribe(rt: &Arc<Runtime>, filter: &EventFilter) -> (u64, Arc<SubscriptionEntry>) {
    let handle = rt
        .subscribe(Format::Protobuf, &encode(filter, Format::Protobuf), None)
        .expect("subscribe");
    (handle, runtime::subscription(handle).expect("live"))
}

pub fn kinds(kinds: &[&str]) -> EventFilter {
    EventFilter {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..Default::default()
    }
}

/// The next event through the public poll (encoded, then decoded), or the error.
pub fn poll(entry: &SubscriptionEntry, timeout: Option<Duration>) -> Result<Event, HmsError> {
    let mut out = Vec::new();
    entry.subscription.poll(timeout, &mut out)?;
    Ok(decode(entry.subscription.format, &out))
}

/// Every event queued now, without waiting.
pub fn drain(entry: &SubscriptionEntry) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match poll(entry, Some(Duration::ZERO)) {
            Ok(event) => events.push(event),
            Err(e) if e.code == Code::DeadlineExceeded => return events,
            Err(e) => panic!("poll failed: {e:?}"),
        }
    }
}

// ------------------------------------------------------------------ domain

pub fn create_agent(rt: &Arc<Runtime>, name: &str) -> Agent {
    call(
        rt,
        &format!("{AGENTS}/CreateAgent"),
        &CreateAgentRequest {
            agent: Some(Agent {
                name: name.into(),
                ..Default::default()
            }),
        },
    )
    .expect("CreateAgent")
}

pub fn get_agent(rt: &Arc<Runtime>, id: &str) -> Result<Agent, HmsError> {
    call(
        rt,
        &format!("{AGENTS}/GetAgent"),
        &GetAgentRequest { id: id.into() },
    )
}

pub fn transition_request(agent_id: &str, to: LifecycleState, force: bool) -> TransitionRequest {
    TransitionRequest {
        agent_id: agent_id.into(),
        target_state: to as i32,
        force,
        ..Default::default()
    }
}

pub fn transition(
    rt: &Arc<Runtime>,
    agent_id: &str,
    to: LifecycleState,
    force: bool,
) -> Result<TransitionResponse, HmsError> {
    call(
        rt,
        &format!("{LIFECYCLE}/Transition"),
        &transition_request(agent_id, to, force),
    )
}

/// A new agent moved to ACTIVE.
pub fn active_agent(rt: &Arc<Runtime>, name: &str) -> Agent {
    let agent = create_agent(rt, name);
    transition(rt, &agent.id, LifecycleState::Active, false).expect("INITIALIZED -> ACTIVE");
    get_agent(rt, &agent.id).expect("GetAgent")
}

/// A new agent put into `state` (forced when the table has no direct way).
pub fn agent_in(rt: &Arc<Runtime>, state: LifecycleState) -> Agent {
    let agent = create_agent(rt, &format!("in-{}", state.as_str_name()));
    if state != LifecycleState::Initialized {
        transition(rt, &agent.id, state, true).expect("forced transition");
    }
    get_agent(rt, &agent.id).expect("GetAgent")
}

pub fn get_state(rt: &Arc<Runtime>, agent_id: &str) -> Result<GetStateResponse, HmsError> {
    call(
        rt,
        &format!("{LIFECYCLE}/GetState"),
        &GetStateRequest {
            agent_id: agent_id.into(),
        },
    )
}

/// The whole history of an agent, following page tokens.
pub fn history(rt: &Arc<Runtime>, agent_id: &str) -> Vec<LifecycleEvent> {
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page: GetHistoryResponse = call(
            rt,
            &format!("{LIFECYCLE}/GetHistory"),
            &GetHistoryRequest {
                agent_id: agent_id.into(),
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .expect("GetHistory");
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        token = page.next_page_token;
    }
}

/// Asserts the history is gapless (sequence 1..n) and chained (each
/// previous_state is the prior new_state, starting from INITIALIZED).
#[track_caller]
pub fn assert_chained(events: &[LifecycleEvent]) {
    let mut state = LifecycleState::Initialized as i32;
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1, "gap at {index}");
        assert_eq!(
            event.previous_state, state,
            "event {} does not start where the previous one ended",
            event.sequence
        );
        state = event.new_state;
    }
}

pub fn is_uuid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

pub const ALL_STATES: [LifecycleState; 10] = [
    LifecycleState::Initialized,
    LifecycleState::Active,
    LifecycleState::Paused,
    LifecycleState::Suspended,
    LifecycleState::ShuttingDown,
    LifecycleState::Terminated,
    LifecycleState::Maintenance,
    LifecycleState::Error,
    LifecycleState::Upgrading,
    LifecycleState::Recovering,
];

// ------------------------------------------------------------ test schema

/// Registers (idempotently) the `hmstest/v1/codec.proto` schema:
///
/// ```proto
/// package hmstest.v1;
/// enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
/// message Node { Node child = 1; int64 value = 2; string label = 3; }
/// message Scalars {
///   int64 i64 = 1; uint64 u64 = 2; sint64 s64 = 3; fixed64 fx64 = 4;
///   sfixed64 sfx64 = 5; int32 i32 = 6; double dbl = 7; float flt = 8;
///   bool flag = 9; string text = 10; bytes data = 11; Color color = 12;
///   repeated int64 many = 13; map<int64, string> by_id = 14;
///   map<bool, string> by_flag = 15; Node node = 16;
///   repeated Color colors = 17;
/// }
/// ```
pub fn register_test_schema() {
    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
        FileDescriptorProto, FileDescriptorSet, MessageOptions,
    };

    fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            json_name: None,
            ..Default::default()
        }
    }
    fn repeated(mut f: FieldDescriptorProto) -> FieldDescriptorProto {
        f.label = Some(Label::Repeated as i32);
        f
    }
    fn map_entry(name: &str, key: Type) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.into()),
            field: vec![
                field("key", 1, key, None),
                field("value", 2, Type::String, None),
            ],
            options: Some(MessageOptions {
                map_entry: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    let color = EnumDescriptorProto {
        name: Some("Color".into()),
        value: ["COLOR_UNSPECIFIED", "RED", "GREEN"]
            .iter()
            .enumerate()
            .map(|(i, n)| EnumValueDescriptorProto {
                name: Some(n.to_string()),
                number: Some(i as i32),
                options: None,
            })
            .collect(),
        ..Default::default()
    };
    let node = DescriptorProto {
        name: Some("Node".into()),
        field: vec![
            field("child", 1, Type::Message, Some(".hmstest.v1.Node")),
            field("value", 2, Type::Int64, None),
            field("label", 3, Type::String, None),
        ],
        ..Default::default()
    };
    let scalars = DescriptorProto {
        name: Some("Scalars".into()),
        field: vec![
            field("i64", 1, Type::Int64, None),
            field("u64", 2, Type::Uint64, None),
            field("s64", 3, Type::Sint64, None),
            field("fx64", 4, Type::Fixed64, None),
            field("sfx64", 5, Type::Sfixed64, None),
            field("i32", 6, Type::Int32, None),
            field("dbl", 7, Type::Double, None),
            field("flt", 8, Type::Float, None),
            field("flag", 9, Type::Bool, None),
            field("text", 10, Type::String, None),
            field("data", 11, Type::Bytes, None),
            field("color", 12, Type::Enum, Some(".hmstest.v1.Color")),
            repeated(field("many", 13, Type::Int64, None)),
            repeated(field(
                "by_id",
                14,
                Type::Message,
                Some(".hmstest.v1.Scalars.ByIdEntry"),
            )),
            repeated(field(
                "by_flag",
                15,
                Type::Message,
                Some(".hmstest.v1.Scalars.ByFlagEntry"),
            )),
            field("node", 16, Type::Message, Some(".hmstest.v1.Node")),
            repeated(field("colors", 17, Type::Enum, Some(".hmstest.v1.Color"))),
        ],
        nested_type: vec![
            map_entry("ByIdEntry", Type::Int64),
            map_entry("ByFlagEntry", Type::Bool),
        ],
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("hmstest/v1/codec.proto".into()),
        package: Some("hmstest.v1".into()),
        message_type: vec![node, scalars],
        enum_type: vec![color],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let set = FileDescriptorSet { file: vec![file] };
    hms_ffi::schema::register(&set.encode_to_vec()).expect("the test schema registers");
}

/// Protobuf bytes of `depth` nested `hmstest.v1.Node`s (field 1 each).
pub fn nested_nodes_protobuf(depth: usize) -> Vec<u8> {
    // Built back to front: the innermost node is empty.
    let mut reversed: Vec<u8> = Vec::new();
    for _ in 1..depth {
        let len = reversed.len();
        let mut varint = Vec::new();
        let mut n = len as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                varint.push(byte);
                break;
            }
            varint.push(byte | 0x80);
        }
        reversed.extend(varint.iter().rev());
        reversed.push(0x0a);
    }
    reversed.reverse();
    reversed
}

/// CBOR of `depth` nested Node maps: {"child": {"child": ... {}}}.
pub fn nested_nodes_cbor(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 7);
    for _ in 1..depth {
        out.push(0xa1);
        out.extend_from_slice(&[0x65, b'c', b'h', b'i', b'l', b'd']);
    }
    out.push(0xa0);
    out
}

/// JSON of `depth` nested Node objects.
pub fn nested_nodes_json(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 12);
    for _ in 1..depth {
        out.extend_from_slice(b"{\"child\":");
    }
    out.extend_from_slice(b"{}");
    out.extend(std::iter::repeat_n(b'}', depth - 1));
    out
}

/// A batch frame: count, method[count], end[count], payloads.
pub fn batch_frame(calls: &[(u64, &[u8])]) -> Vec<u8> {
    let mut words = vec![calls.len() as u64];
    words.extend(calls.iter().map(|(method, _)| *method));
    let mut end = 0;
    for (_, request) in calls {
        end += request.len() as u64;
        words.push(end);
    }
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    for (_, request) in calls {
        bytes.extend_from_slice(request);
    }
    bytes
}

/// A result frame split into (code, answer) per call.
pub fn batch_results(results: &[u8]) -> Vec<(Code, Vec<u8>)> {
    let word = |i: usize| u64::from_le_bytes(results[i * 8..i * 8 + 8].try_into().unwrap());
    let count = word(0) as usize;
    let area = &results[8 * (1 + 2 * count)..];
    let mut start = 0;
    (0..count)
        .map(|i| {
            let code = Code::from_i32(word(1 + i) as i32).expect("a status code");
            let end = word(1 + count + i) as usize;
            let answer = area[start..end].to_vec();
            start = end;
            (code, answer)
        })
        .collect()
}

/// Runs `openssl` with `args` in `dir`; the tests make their own
/// certificates and keys, so that none is checked in to expire or leak.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (apt-get install openssl)");
    assert!(status.success(), "openssl {args:?}: {status}");
}

/// A token-file line as tools/hms_token.py writes it.
pub fn token_line(principal: &str, roles: &str, salt: &[u8], token: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(token.as_bytes())
        .finalize();
    format!("{principal} {roles} sha256:{}:{}", hex(salt), hex(&digest))
}
