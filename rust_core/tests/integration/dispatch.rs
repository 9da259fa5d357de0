//! The built-in services and how calls are routed.

use crate::common;

use common::{FORMATS, call, call_in, call_raw, encode, expect_code, new_runtime};
use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::events::v1::EventFilter;
use hms_ffi::proto::hms::registry::v1::{
    DescribeServiceRequest, DescribeServiceResponse, ListServicesRequest, ListServicesResponse,
};
use hms_ffi::proto::hms::sys::v1::{
    EchoRequest, EchoResponse, HealthRequest, HealthResponse, VersionRequest, VersionResponse,
    health_response::ServingStatus,
};

const BUILTINS: [&str; 7] = [
    "hms.agent.lifecycle.v1.LifecycleService",
    "hms.agent.v1.AgentService",
    "hms.agent.v1.KnowledgeService",
    "hms.agent.v1.TaskService",
    "hms.audit.v1.Audit",
    "hms.registry.v1.Registry",
    "hms.sys.v1.System",
];

fn list(rt: &std::sync::Arc<hms_ffi::runtime::Runtime>, prefix: &str) -> ListServicesResponse {
    call(
        rt,
        "hms.registry.v1.Registry/ListServices",
        &ListServicesRequest {
            name_prefix: prefix.into(),
        },
    )
    .unwrap()
}

#[test]
fn echo_returns_the_request_in_every_format() {
    let rt = new_runtime();
    let request = EchoRequest {
        payload: vec![0, 1, 0, 0xff, 0].into(),
        text: "héllo \u{0} 🚀".into(),
    };
    for format in FORMATS {
        let response: EchoResponse =
            call_in(&rt, "hms.sys.v1.System/Echo", format, &request, None).unwrap();
        assert_eq!(response.payload, request.payload, "{format:?}");
        assert_eq!(response.text, request.text, "{format:?}");
    }
    // A big payload just under the default limit.
    let big = EchoRequest {
        payload: vec![7; 3 << 20].into(),
        text: String::new(),
    };
    let response: EchoResponse = call(&rt, "hms.sys.v1.System/Echo", &big).unwrap();
    assert_eq!(response.payload.len(), 3 << 20);
}

#[test]
fn an_empty_request_is_the_default_message_in_every_format() {
    let rt = new_runtime();
    for format in FORMATS {
        let out = call_raw(&rt, "hms.sys.v1.System/Echo", format, &[], &[])
            .unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
        let response: EchoResponse = common::decode(format, &out);
        assert_eq!(response, EchoResponse::default(), "{format:?}");
    }
}

#[test]
fn health_reports_the_runtime() {
    let rt = common::runtime_with(|s| s.name = "health-check".into());
    let health: HealthResponse = call(&rt, "hms.sys.v1.System/Health", &HealthRequest {}).unwrap();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    assert_eq!(health.runtime_name, "health-check");
    assert_eq!(health.storage, "memory");
    assert_eq!(health.subscriptions, 0);
    let listed = list(&rt, "").services.len() as u32;
    assert_eq!(health.services, listed);

    let (_handle, _entry) = common::subscribe(&rt, &EventFilter::default());
    rt.register_service(
        common::untyped("health.v1.Extra", &["Do"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        common::replying(b"{}".to_vec()),
    )
    .unwrap();
    let health: HealthResponse = call(&rt, "hms.sys.v1.System/Health", &HealthRequest {}).unwrap();
    assert_eq!(health.subscriptions, 1);
    assert_eq!(health.services, listed + 1);
}

#[test]
fn version_reports_the_library_and_formats() {
    let rt = new_runtime();
    for format in FORMATS {
        let version: VersionResponse = call_in(
            &rt,
            "hms.sys.v1.System/Version",
            format,
            &VersionRequest {},
            None,
        )
        .unwrap();
        assert_eq!(version.library_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(version.abi_major, hms_ffi::ABI_VERSION_MAJOR);
        assert_eq!(version.abi_minor, hms_ffi::ABI_VERSION_MINOR);
        assert_eq!(version.formats, ["protobuf", "cbor", "json"]);
    }
}

#[test]
fn list_services_shows_builtins_and_host_services() {
    let rt = new_runtime();
    let listed = list(&rt, "");
    let names: Vec<&str> = listed.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, BUILTINS, "the built-in services, by name");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "listed by name");
    for service in &listed.services {
        assert_eq!(service.origin, "builtin", "{}", service.name);
        assert!(!service.methods.is_empty());
        for method in &service.methods {
            assert!(!method.input_type.is_empty() && !method.output_type.is_empty());
        }
    }
    let system = listed
        .services
        .iter()
        .find(|s| s.name == "hms.sys.v1.System")
        .unwrap();
    let methods: Vec<&str> = system.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(methods, ["Echo", "Health", "Version"]);
    assert_eq!(system.methods[0].input_type, "hms.sys.v1.EchoRequest");
    assert_eq!(system.methods[0].output_type, "hms.sys.v1.EchoResponse");
    let agents = listed
        .services
        .iter()
        .find(|s| s.name == "hms.agent.v1.AgentService")
        .unwrap();
    assert_eq!(agents.methods.len(), 5);

    rt.register_service(
        common::echo_typed("zz.host.v1.Echoer", &["Say", "Shout"]),
        Format::Cbor,
        hms_ffi::runtime::HostOptions::default(),
        common::replying(vec![0xa0]),
    )
    .unwrap();
    let listed = list(&rt, "zz.");
    assert_eq!(listed.services.len(), 1);
    let host = &listed.services[0];
    assert_eq!(host.name, "zz.host.v1.Echoer");
    assert_eq!(host.origin, "host");
    assert_eq!(host.version, "1.2.3");
    assert_eq!(host.description, "a test service");
    let methods: Vec<&str> = host.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(methods, ["Say", "Shout"]);
    assert_eq!(list(&rt, "").services.len(), BUILTINS.len() + 1);
}

#[test]
fn list_services_filters_by_prefix() {
    let rt = new_runtime();
    let agent_services = list(&rt, "hms.agent.");
    assert_eq!(agent_services.services.len(), 4);
    assert!(
        agent_services
            .services
            .iter()
            .all(|s| s.name.starts_with("hms.agent."))
    );
    assert!(list(&rt, "nothing.like.this").services.is_empty());
}

#[test]
fn describe_service_finds_builtin_and_host_services() {
    let rt = new_runtime();
    let described: DescribeServiceResponse = call(
        &rt,
        "hms.registry.v1.Registry/DescribeService",
        &DescribeServiceRequest {
            name: "hms.sys.v1.System".into(),
        },
    )
    .unwrap();
    let service = described.service.unwrap();
    assert_eq!(service.name, "hms.sys.v1.System");
    assert_eq!(service.origin, "builtin");
    assert_eq!(service.methods.len(), 3);

    rt.register_service(
        common::untyped("desc.v1.Host", &["Go"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        common::replying(b"{}".to_vec()),
    )
    .unwrap();
    let described: DescribeServiceResponse = call(
        &rt,
        "hms.registry.v1.Registry/DescribeService",
        &DescribeServiceRequest {
            name: "desc.v1.Host".into(),
        },
    )
    .unwrap();
    let service = described.service.unwrap();
    assert_eq!(service.origin, "host");
    assert_eq!(service.methods[0].name, "Go");
    assert!(service.methods[0].input_type.is_empty());

    let error = expect_code(
        call::<_, DescribeServiceResponse>(
            &rt,
            "hms.registry.v1.Registry/DescribeService",
            &DescribeServiceRequest {
                name: "no.such.Service".into(),
            },
        ),
        Code::NotFound,
    );
    assert!(error.message.contains("no.such.Service"), "{error:?}");
}

#[test]
fn unknown_services_and_methods_are_not_found() {
    let rt = new_runtime();
    for format in FORMATS {
        let error = expect_code(
            call_raw(&rt, "no.such.v1.Service/Method", format, &[], &[]),
            Code::NotFound,
        );
        assert_eq!(
            error.details.get("service").map(String::as_str),
            Some("no.such.v1.Service")
        );
        assert_eq!(error.origin, "registry");
        let error = expect_code(
            call_raw(&rt, "hms.sys.v1.System/NoSuchMethod", format, &[], &[]),
            Code::NotFound,
        );
        assert_eq!(
            error.details.get("method").map(String::as_str),
            Some("NoSuchMethod")
        );
    }
    // Names are case-sensitive.
    expect_code(
        call_raw(&rt, "hms.sys.v1.System/echo", Format::Json, &[], &[]),
        Code::NotFound,
    );
}

#[test]
fn malformed_method_names_are_invalid_arguments() {
    let rt = new_runtime();
    for name in [
        "",
        "/",
        "//",
        "Echo",
        "hms.sys.v1.System",
        "hms.sys.v1.System/",
        "/Echo",
        "/hms.sys.v1.System/",
        "hms.sys.v1.System/Echo/",
    ] {
        expect_code(
            call_raw(&rt, name, Format::Json, &[], &[]),
            Code::InvalidArgument,
        );
    }
    // A leading slash, as in gRPC paths, is accepted.
    let out = call_raw(
        &rt,
        "/hms.sys.v1.System/Echo",
        Format::Json,
        br#"{"text": "hi"}"#,
        &[],
    )
    .unwrap();
    let echo: EchoResponse = common::decode(Format::Json, &out);
    assert_eq!(echo.text, "hi");
}

#[test]
fn bad_requests_and_options_are_decode_errors() {
    let rt = new_runtime();
    let error = expect_code(
        call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, b"{nope", &[]),
        Code::DecodeError,
    );
    assert_eq!(error.origin, "hms.sys.v1.System/Echo");
    expect_code(
        call_raw(&rt, "hms.sys.v1.System/Echo", Format::Cbor, &[0xff], &[]),
        Code::DecodeError,
    );
    expect_code(
        call_raw(
            &rt,
            "hms.sys.v1.System/Echo",
            Format::Protobuf,
            &[0x0f],
            &[],
        ),
        Code::DecodeError,
    );
    // Options are decoded in the call's format too.
    expect_code(
        call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, b"{}", b"{bad"),
        Code::DecodeError,
    );
    let options = encode(&common::options(1000), Format::Cbor);
    expect_code(
        call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, b"{}", &options),
        Code::DecodeError,
    );
    for format in FORMATS {
        let options = encode(&common::options(1000), format);
        assert!(call_raw(&rt, "hms.sys.v1.System/Echo", format, &[], &options).is_ok());
    }
}

#[test]
fn errors_of_builtins_name_their_origin() {
    let rt = new_runtime();
    let error = expect_code(
        call::<_, hms_ffi::proto::hms::agent::v1::Agent>(
            &rt,
            "hms.agent.v1.AgentService/GetAgent",
            &hms_ffi::proto::hms::agent::v1::GetAgentRequest {
                id: "missing".into(),
            },
        ),
        Code::NotFound,
    );
    assert_eq!(error.origin, "hms.agent.v1.AgentService/GetAgent");
    // to_status carries everything.
    let status = error.to_status();
    assert_eq!(status.code, Code::NotFound as i32);
    assert_eq!(status.origin, error.origin);
    assert_eq!(
        status.details.get("id").map(String::as_str),
        Some("missing")
    );
}

#[test]
fn runtimes_are_independent() {
    let first = new_runtime();
    let second = new_runtime();
    first
        .register_service(
            common::untyped("only.v1.First", &["Go"]),
            Format::Json,
            hms_ffi::runtime::HostOptions::default(),
            common::replying(b"1".to_vec()),
        )
        .unwrap();
    assert!(call_raw(&first, "only.v1.First/Go", Format::Json, b"{}", &[]).is_ok());
    expect_code(
        call_raw(&second, "only.v1.First/Go", Format::Json, b"{}", &[]),
        Code::NotFound,
    );
    common::create_agent(&first, "a");
    let listed: hms_ffi::proto::hms::agent::v1::ListAgentsResponse = call(
        &second,
        "hms.agent.v1.AgentService/ListAgents",
        &hms_ffi::proto::hms::agent::v1::ListAgentsRequest::default(),
    )
    .unwrap();
    assert!(listed.agents.is_empty());
}

#[test]
fn runtime_handles_are_generational_and_typed() {
    let handle = hms_ffi::runtime::create(hms_ffi::config::Settings::default()).unwrap();
    assert_ne!(handle, 0);
    let rt = hms_ffi::runtime::runtime(handle).unwrap();
    assert!(call_raw(&rt, "hms.sys.v1.System/Echo", Format::Json, b"{}", &[]).is_ok());
    drop(rt);
    hms_ffi::runtime::free(handle).unwrap();
    expect_code(hms_ffi::runtime::free(handle), Code::InvalidHandle);
    expect_code(hms_ffi::runtime::runtime(handle), Code::InvalidHandle);
    expect_code(hms_ffi::runtime::runtime(0), Code::InvalidHandle);
    // A live runtime handle is not a service or subscription handle.
    let other = hms_ffi::runtime::create(hms_ffi::config::Settings::default()).unwrap();
    assert_ne!(other, handle, "a reused slot gets a new generation");
    expect_code(
        hms_ffi::runtime::unregister_service(other),
        Code::InvalidHandle,
    );
    expect_code(hms_ffi::runtime::unsubscribe(other), Code::InvalidHandle);
    expect_code(hms_ffi::runtime::subscription(other), Code::InvalidHandle);
    hms_ffi::runtime::free(other).unwrap();
}

#[test]
fn settings_from_config_apply_defaults_and_bounds() {
    use hms_ffi::config::Settings;
    use hms_ffi::proto::v1::RuntimeConfig;
    let defaults = Settings::from_config(RuntimeConfig::default()).unwrap();
    assert_eq!(defaults.limits.max_message_bytes, 4 << 20);
    assert_eq!(defaults.limits.max_depth, 64);
    assert_eq!(defaults.event_queue_capacity, 1024);
    assert!(defaults.data_dir.is_none());
    let custom = Settings::from_config(RuntimeConfig {
        max_message_bytes: 1000,
        max_depth: 10,
        data_dir: "/tmp/x".into(),
        event_queue_capacity: 4,
        name: "n".into(),
        shutdown_timeout_ms: 250,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        custom.shutdown_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        defaults.shutdown_timeout,
        hms_ffi::config::DEFAULT_SHUTDOWN_TIMEOUT
    );
    assert_eq!(custom.limits.max_message_bytes, 1000);
    assert_eq!(custom.limits.max_depth, 10);
    assert_eq!(custom.event_queue_capacity, 4);
    assert_eq!(custom.name, "n");
    for config in [
        RuntimeConfig {
            max_depth: 101,
            ..Default::default()
        },
        RuntimeConfig {
            max_message_bytes: (1 << 30) + 1,
            ..Default::default()
        },
        RuntimeConfig {
            event_queue_capacity: (1 << 20) + 1,
            ..Default::default()
        },
        RuntimeConfig {
            shutdown_timeout_ms: 600_001,
            ..Default::default()
        },
    ] {
        expect_code(Settings::from_config(config), Code::InvalidArgument);
    }
    // Empty config bytes are the defaults in every format.
    for format in FORMATS {
        let settings = Settings::decode(format, &[]).unwrap();
        assert_eq!(settings.limits, defaults.limits);
    }
    expect_code(Settings::decode(Format::Json, b"{x"), Code::DecodeError);
}
