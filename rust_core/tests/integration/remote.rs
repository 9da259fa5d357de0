//! Remote calls over NATS, against a real nats-server started per test:
//! local first then remote, every call path (name, handle, batch), errors
//! the same as local ones, queue groups, a server restart, discovery.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nats_server::{NatsServer, plain_client};
use common::{
    AGENTS, FORMATS, WATCHDOG, call, call_in, call_raw, create_agent, decode, echo_typed, encode,
    expect_code, get_agent, handler, new_runtime, openssl, options, unique, within,
};
use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::registry::v1::{ListServicesRequest, ListServicesResponse};
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse};
use hms_ffi::proto::v1::{CallOptions, Credentials, NatsTransport, RuntimeConfig, Status};
use hms_ffi::runtime::{self, HostOptions, Runtime};
use hms_ffi::{Code, batch};

pub(crate) type Rt = Arc<Runtime>;

const ECHO_METHODS: &[&str] = &["Echo", "Fail", "Hang", "Big", "Context"];

/// A runtime named `name` on `server`, exporting `exports` and reaching
/// `remote` services through it.
pub(crate) fn runtime_on(server: &NatsServer, name: &str, exports: &[&str], remote: &[&str]) -> Rt {
    runtime_configured(server, name, exports, remote, |_| {})
}

fn runtime_configured(
    server: &NatsServer,
    name: &str,
    exports: &[&str],
    remote: &[&str],
    configure: impl FnOnce(&mut RuntimeConfig),
) -> Rt {
    let mut config = RuntimeConfig {
        name: name.into(),
        nats: Some(NatsTransport {
            servers: vec![server.url()],
            export_services: exports.iter().map(|s| s.to_string()).collect(),
            remote_services: remote.iter().map(|s| s.to_string()).collect(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 5_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    configure(&mut config);
    let settings = Settings::from_config(config).expect("a valid transport config");
    Runtime::new(settings).expect("the runtime connects")
}

/// Registers the test echo service `name` on `rt` (protobuf handler):
/// Echo answers the request upper-cased, tagged with `tag`; Fail answers a
/// status with details; Hang sleeps 3 s; Big answers `big` payload bytes;
/// Context answers the call's metadata and trace id as its text.
fn register_echo(rt: &Rt, name: &str, tag: &'static str, calls: Arc<AtomicUsize>) -> u64 {
    register_echo_with(rt, name, tag, calls, HostOptions::default())
        .expect("the echo service registers")
}

pub(crate) fn register_echo_with(
    rt: &Rt,
    name: &str,
    tag: &'static str,
    calls: Arc<AtomicUsize>,
    options: HostOptions,
) -> Result<u64, hms_ffi::HmsError> {
    rt.register_service(
        echo_typed(name, ECHO_METHODS),
        Format::Protobuf,
        options,
        handler(move |reply, method, format, request| {
            calls.fetch_add(1, Ordering::SeqCst);
            let request: EchoRequest = decode(format, request);
            match method {
                "Echo" => {
                    let response = EchoResponse {
                        payload: request.payload,
                        text: format!("{}:{tag}", request.text.to_uppercase()),
                    };
                    reply.set(&encode(&response, format)).unwrap();
                }
                "Fail" => {
                    let status = Status {
                        code: Code::FailedPrecondition as i32,
                        message: format!("no way: {}", request.text),
                        details: [("reason".to_owned(), "testing".to_owned())].into(),
                        origin: String::new(),
                    };
                    reply.status(format, &encode(&status, format)).unwrap();
                }
                "Hang" => {
                    std::thread::sleep(Duration::from_secs(3));
                    let _ = reply.set(&[]);
                }
                "Big" => {
                    let size: usize = request.text.parse().unwrap();
                    let response = EchoResponse {
                        payload: vec![7u8; size].into(),
                        text: String::new(),
                    };
                    reply.set(&encode(&response, format)).unwrap();
                }
                _ => common::reply_with_context(reply, format),
            }
        }),
    )
}

pub(crate) fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        payload: vec![0, 1, 2, 255].into(),
        text: text.into(),
    }
}

pub(crate) fn call_echo(
    rt: &Rt,
    name: &str,
    method: &str,
    text: &str,
) -> Result<EchoResponse, hms_ffi::HmsError> {
    call(rt, &format!("{name}/{method}"), &echo(text))
}

/// Returns once the server handled what `client` sent before (a flush only
/// writes to the socket): a message to itself comes back after that.
async fn server_has_seen(client: &async_nats::Client) {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "".into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), echo.next())
        .await
        .expect("the server echoes");
}

// ------------------------------------------------------------------ tests

#[test]
fn a_runtime_without_transport_starts_nothing() {
    let rt = new_runtime();
    assert!(rt.transport().is_none());
    // A transport section without servers is no transport either.
    let settings = Settings::from_config(RuntimeConfig {
        nats: Some(NatsTransport::default()),
        ..Default::default()
    })
    .unwrap();
    assert!(settings.transport.is_none());
    let rt = Runtime::new(settings).unwrap();
    assert!(rt.transport().is_none());
    // And a call that misses locally stays NOT_FOUND.
    expect_code(
        call_echo(&rt, "nowhere.v1.Echo", "Echo", "x"),
        Code::NotFound,
    );
}

#[test]
fn transport_config_is_checked() {
    let bad = |nats: NatsTransport| {
        expect_code(
            Settings::from_config(RuntimeConfig {
                nats: Some(nats),
                ..Default::default()
            }),
            Code::InvalidArgument,
        )
    };
    let server = vec!["nats://127.0.0.1:1".to_owned()];
    bad(NatsTransport {
        export_services: vec!["demo.v1.Echo".into()],
        ..Default::default()
    });
    bad(NatsTransport {
        servers: server.clone(),
        token: "t".into(),
        user: "u".into(),
        ..Default::default()
    });
    bad(NatsTransport {
        servers: server.clone(),
        export_services: vec!["not a name".into()],
        ..Default::default()
    });
    bad(NatsTransport {
        servers: server.clone(),
        subject_prefix: "has space".into(),
        ..Default::default()
    });
    bad(NatsTransport {
        servers: server.clone(),
        cert_file: "cert.pem".into(),
        ..Default::default()
    });
    bad(NatsTransport {
        servers: server,
        export_services: vec!["demo.v1.Echo".into()],
        remote_services: vec!["demo.v1.Echo".into()],
        ..Default::default()
    });
}

#[test]
fn an_unreachable_server_fails_runtime_creation_with_unavailable() {
    let mut server = NatsServer::start();
    server.stop();
    let settings = Settings::from_config(RuntimeConfig {
        nats: Some(NatsTransport {
            servers: vec![server.url()],
            connect_timeout_ms: 500,
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let error = within(WATCHDOG, move || {
        Runtime::new(settings).err().expect("no server, no runtime")
    });
    assert_eq!(error.code, Code::Unavailable, "{error:?}");
}

#[test]
fn a_server_requiring_authentication_takes_the_configured_credentials() {
    let echo_of = |rt: &Rt| {
        call_in::<_, EchoResponse>(
            rt,
            "hms.sys.v1.System/Echo",
            Format::Protobuf,
            &echo("hi"),
            None,
        )
        .map(|answer| answer.text)
    };
    let connect = |server: &NatsServer, name: &str, auth: NatsTransport| {
        let settings = Settings::from_config(RuntimeConfig {
            name: name.into(),
            nats: Some(NatsTransport {
                servers: vec![server.url()],
                connect_timeout_ms: 2_000,
                request_timeout_ms: 5_000,
                ..auth
            }),
            ..Default::default()
        })
        .unwrap();
        Runtime::new(settings)
    };
    let token = |token: &str| NatsTransport {
        token: token.into(),
        ..Default::default()
    };
    let user = |user: &str, password: &str| NatsTransport {
        user: user.into(),
        password: password.into(),
        ..Default::default()
    };
    let keys = tempfile::tempdir().unwrap();
    let nkey = |seed: &str| NatsTransport {
        nkey_seed_file: write_key_file(keys.path(), seed).display().to_string(),
        ..Default::default()
    };
    let credentials = |user: &nkeys::KeyPair, account: &nkeys::KeyPair| NatsTransport {
        credentials_file: write_credentials(keys.path(), user, account)
            .display()
            .to_string(),
        ..Default::default()
    };
    let (nkey_user, nkey_stranger) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    let nkey_config = server_config(
        keys.path(),
        &format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}",
            nkey_user.public_key()
        ),
    );
    let (account, stranger_account) =
        (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_account());
    let operator_config = operator_config(keys.path(), &nkeys::KeyPair::new_operator(), &account);
    let jwt_user = nkeys::KeyPair::new_user();
    for (server, good, bad) in [
        (
            NatsServer::start_with(&["--auth", "s3cret"]),
            token("s3cret"),
            token("guess"),
        ),
        (
            NatsServer::start_with(&["--user", "hms", "--pass", "pa55"]),
            user("hms", "pa55"),
            user("hms", "guess"),
        ),
        (
            NatsServer::start_with(&["-c", &nkey_config]),
            nkey(&nkey_user.seed().unwrap()),
            nkey(&nkey_stranger.seed().unwrap()),
        ),
        (
            // Decentralized auth: the server trusts an operator, the
            // account's JWT is preloaded, the user presents a JWT signed by
            // the account and proves it holds the user key.
            NatsServer::start_with(&["-c", &operator_config]),
            credentials(&jwt_user, &account),
            // Signed by an account the operator never issued.
            credentials(&jwt_user, &stranger_account),
        ),
    ] {
        // One runtime serves System, the other reaches it through the
        // server: both got in with the right credentials.
        let exporter = connect(
            &server,
            "exporter",
            NatsTransport {
                export_services: vec!["hms.sys.v1.System".into()],
                ..good.clone()
            },
        )
        .expect("the right credentials connect");
        let caller = connect(
            &server,
            "caller",
            NatsTransport {
                remote_services: vec!["hms.sys.v1.System".into()],
                ..good.clone()
            },
        )
        .expect("the right credentials connect");
        assert_eq!(echo_of(&caller).unwrap(), "hi");
        drop(exporter);
        let refused = within(WATCHDOG, move || {
            connect(&server, "intruder", bad)
                .err()
                .expect("wrong credentials, no runtime")
        });
        assert_eq!(refused.code, Code::Unavailable, "{refused:?}");
        assert!(
            refused.message.contains("uthoriz"),
            "the refusal says why: {refused:?}"
        );
    }
}

/// Writes `text` to a new file in `dir`, readable by its owner only (as
/// key files are kept), and returns its path.
pub(crate) fn write_key_file(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(unique("key"));
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    path
}

/// A nats-server configuration file holding `text`; its path.
pub(crate) fn server_config(dir: &std::path::Path, text: &str) -> String {
    write_key_file(dir, text).display().to_string()
}

/// A NATS JWT (the format nats-server and `nsc` use: an `ed25519-nkey`
/// signature over base64url header and claims) about `subject`, signed by
/// `issuer`, with `nats` as its NATS-specific claims.
pub(crate) fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = base64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": unique("jti"),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", base64.encode(claims.to_string()));
    let signature = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", base64.encode(signature))
}

/// No limit on anything, spelled out: a limit left out of an account's or
/// user's claims is zero, which nats-server reads as "none allowed".
pub(crate) fn unlimited() -> serde_json::Value {
    serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    })
}

/// A `.creds` file (as `nsc generate creds` writes it): a user JWT issued by
/// `account` for `user`, and the user's seed.
pub(crate) fn write_credentials(
    dir: &std::path::Path,
    user: &nkeys::KeyPair,
    account: &nkeys::KeyPair,
) -> std::path::PathBuf {
    let mut claims = unlimited();
    claims["type"] = "user".into();
    claims["version"] = 2.into();
    let jwt = nats_jwt(account, &user.public_key(), claims);
    let seed = user.seed().unwrap();
    write_key_file(
        dir,
        &format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
}

/// Server configuration for nats-server's decentralized (JWT)
/// authentication: it trusts `operator`, and `account` (issued by it) is
/// preloaded in a memory resolver.
fn operator_config(
    dir: &std::path::Path,
    operator: &nkeys::KeyPair,
    account: &nkeys::KeyPair,
) -> String {
    let operator_jwt = nats_jwt(
        operator,
        &operator.public_key(),
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let mut account_claims = serde_json::json!({"type": "account", "version": 2});
    account_claims["limits"] = unlimited();
    let account_jwt = nats_jwt(operator, &account.public_key(), account_claims);
    let operator_file = write_key_file(dir, &operator_jwt);
    server_config(
        dir,
        &format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{ {}: \"{account_jwt}\" }}\n",
            operator_file.display(),
            account.public_key()
        ),
    )
}

/// A CA, and a certificate with its key signed by it for `name`
/// (`name.pem`, `name.key`), with the extended key usage `usage`.
fn issue_certificate(dir: &std::path::Path, name: &str, usage: &str) {
    let key = format!("{name}.key");
    let request = format!("{name}.csr");
    let extensions = format!("{name}.ext");
    std::fs::write(
        dir.join(&extensions),
        format!(
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &request, "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &extensions,
        ],
    );
}

#[test]
fn mutual_tls_connects_with_the_configured_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = |file: &str| dir.path().join(file).to_string_lossy().into_owned();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hms test CA",
        ],
    );
    issue_certificate(dir.path(), "server", "serverAuth");
    issue_certificate(dir.path(), "client", "clientAuth");
    let server = NatsServer::start_with(&[
        "--tlsverify",
        "--tlscert",
        &path("server.pem"),
        "--tlskey",
        &path("server.key"),
        "--tlscacert",
        &path("ca.pem"),
    ]);
    let tls = |name: &str, client_certificate: bool| {
        let mut transport = NatsTransport {
            servers: vec![format!("tls://127.0.0.1:{}", server.port())],
            ca_file: path("ca.pem"),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            ..Default::default()
        };
        if client_certificate {
            transport.cert_file = path("client.pem");
            transport.key_file = path("client.key");
        }
        RuntimeConfig {
            name: name.into(),
            nats: Some(transport),
            ..Default::default()
        }
    };
    let mut exporting = tls("exporter", true);
    exporting.nats.as_mut().unwrap().export_services = vec!["hms.sys.v1.System".into()];
    let _exporter = Runtime::new(Settings::from_config(exporting).unwrap()).expect("TLS connects");
    let mut calling = tls("caller", true);
    calling.nats.as_mut().unwrap().remote_services = vec!["hms.sys.v1.System".into()];
    let caller = Runtime::new(Settings::from_config(calling).unwrap()).expect("TLS connects");
    let answer: EchoResponse = call_in(
        &caller,
        "hms.sys.v1.System/Echo",
        Format::Protobuf,
        &echo("over tls"),
        None,
    )
    .unwrap();
    assert_eq!(answer.text, "over tls");
    // The server asks for a client certificate: without one, no runtime.
    let anonymous = tls("anonymous", false);
    let refused = within(WATCHDOG, move || {
        Runtime::new(Settings::from_config(anonymous).unwrap())
            .err()
            .expect("no client certificate, no runtime")
    });
    assert_eq!(refused.code, Code::Unavailable, "{refused:?}");
}

#[test]
fn remote_calls_answer_the_bytes_local_calls_do() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Echo");
    let exporter = runtime_on(&server, "exporter", &[&name, AGENTS], &[]);
    let calls = Arc::new(AtomicUsize::new(0));
    register_echo(&exporter, &name, "exporter", calls.clone());
    let caller = runtime_on(&server, "caller", &[], &[AGENTS]);

    // By name, in every format: the same bytes as the exporter's own call.
    for format in FORMATS {
        let request = encode(&echo("hello ü"), format);
        let method = format!("{name}/Echo");
        let local = call_raw(&exporter, &method, format, &request, &[]).unwrap();
        let remote = call_raw(&caller, &method, format, &request, &[]).unwrap();
        assert_eq!(remote, local, "{format:?}");
        let response: EchoResponse = decode(format, &remote);
        assert_eq!(response.text, "HELLO Ü:exporter");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);

    // Through a method handle, and a batch of handle calls.
    let handle = runtime::resolve_method(
        runtime_handle(&caller),
        &format!("{name}/Echo"),
        Format::Protobuf,
    )
    .expect("a handle to a remote method");
    let request = encode(&echo("handle"), Format::Protobuf);
    let mut through_handle = Vec::new();
    runtime::call_method(handle, &request, &mut through_handle).unwrap();
    let local = call_raw(
        &exporter,
        &format!("{name}/Echo"),
        Format::Protobuf,
        &request,
        &[],
    )
    .unwrap();
    assert_eq!(through_handle, local);
    let other = encode(&echo("second"), Format::Protobuf);
    let mut results = Vec::new();
    batch::run(
        &common::batch_frame(&[(handle, &request), (handle, &other)]),
        &mut results,
    )
    .unwrap();
    let results = common::batch_results(&results);
    assert_eq!(results[0], (Code::Ok, local));
    assert_eq!(results[1].0, Code::Ok);
    let second: EchoResponse = decode(Format::Protobuf, &results[1].1);
    assert_eq!(second.text, "SECOND:exporter");

    // The built-in domain service: the agent lives in the exporter.
    let agent = create_agent(&caller, "remote agent");
    assert_eq!(get_agent(&exporter, &agent.id).unwrap(), agent);
    assert_eq!(get_agent(&caller, &agent.id).unwrap(), agent);
    let missing = expect_code(get_agent(&caller, "no-such-agent"), Code::NotFound);
    assert_eq!(missing.origin, "exporter");
}

#[test]
fn a_service_registered_with_export_is_served_until_unregistered() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Flagged");
    let exporter = runtime_on(&server, "flag-exporter", &[], &[]);
    let exported = HostOptions {
        export: true,
        ..HostOptions::default()
    };
    let handle = register_echo_with(&exporter, &name, "flagged", Arc::default(), exported)
        .expect("an exported registration");
    assert_eq!(exporter.transport().unwrap().exported(), vec![name.clone()]);
    let caller = runtime_on(&server, "caller", &[], &[]);

    for format in FORMATS {
        let request = encode(&echo("hi"), format);
        let method = format!("{name}/Echo");
        let local = call_raw(&exporter, &method, format, &request, &[]).unwrap();
        let remote = call_raw(&caller, &method, format, &request, &[]).unwrap();
        assert_eq!(remote, local, "{format:?}");
    }
    let local = expect_code(
        call_echo(&exporter, &name, "Fail", "x"),
        Code::FailedPrecondition,
    );
    let remote = expect_code(
        call_echo(&caller, &name, "Fail", "x"),
        Code::FailedPrecondition,
    );
    assert_eq!(
        (remote.message, remote.details),
        (local.message, local.details)
    );
    assert_eq!(remote.origin, "flag-exporter");

    // Unregistering withdraws it: nobody answers any more.
    runtime::unregister_service(handle).unwrap();
    assert!(exporter.transport().unwrap().exported().is_empty());
    expect_code(call_echo(&caller, &name, "Echo", "x"), Code::Unavailable);

    // A later registration without the flag stays local.
    register_echo(&exporter, &name, "local", Arc::default());
    assert!(exporter.transport().unwrap().exported().is_empty());
    expect_code(call_echo(&caller, &name, "Echo", "x"), Code::Unavailable);
}

#[test]
fn an_export_the_runtime_cannot_serve_is_refused_at_registration() {
    let name = unique("remote.v1.Refused");
    let export = HostOptions {
        export: true,
        ..HostOptions::default()
    };

    let alone = new_runtime();
    let error = expect_code(
        register_echo_with(&alone, &name, "x", Arc::default(), export),
        Code::FailedPrecondition,
    );
    assert!(error.message.contains("no transport"), "{}", error.message);
    assert!(error.message.contains("nats.servers"), "{}", error.message);
    assert_eq!(error.details.get("service"), Some(&name));

    // Nothing was left behind: the name is free for a registration that works.
    register_echo_with(&alone, &name, "x", Arc::default(), HostOptions::default())
        .expect("the name is free");
}

/// The handle table of a runtime made in Rust: resolve through the public
/// function by registering the runtime in the table.
pub(crate) fn runtime_handle(rt: &Rt) -> u64 {
    runtime::RUNTIMES.insert(rt.clone())
}

#[test]
fn call_options_travel_in_headers() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Context");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    let options = CallOptions {
        deadline_ms: 4_000,
        metadata: [
            ("user id".to_owned(), "ü: 1\r\n".to_owned()),
            ("plain".to_owned(), "value".to_owned()),
        ]
        .into(),
        credentials: Some(Credentials {
            scheme: "bearer".into(),
            token: "secret".into(),
            principal: "alice".into(),
        }),
        trace_id: "trace-42".into(),
    };
    for format in FORMATS {
        let response: EchoResponse = call_in(
            &caller,
            &format!("{name}/Context"),
            format,
            &echo("x"),
            Some(&options),
        )
        .unwrap();
        let context: serde_json::Value = serde_json::from_str(&response.text).unwrap();
        assert_eq!(context["method"], format!("{name}/Context"));
        assert_eq!(context["trace_id"], "trace-42");
        assert_eq!(context["metadata"]["user id"], "ü: 1\r\n");
        assert_eq!(context["metadata"]["plain"], "value");
        let remaining: u64 = context["remaining_ms"]
            .as_str()
            .map(|s| s.parse().unwrap())
            .or_else(|| context["remaining_ms"].as_u64())
            .expect("the deadline travelled");
        assert!(remaining > 0 && remaining <= 4_000, "{remaining}");
        // Credentials are carried but verified by nobody: no principal.
        assert!(
            context["principal"].is_null() || context["principal"] == "",
            "{context}"
        );
    }
}

#[test]
fn a_remote_status_comes_back_unchanged_with_its_origin() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Status");
    let exporter = runtime_on(&server, "status-exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    for format in FORMATS {
        let error = expect_code(
            call_in::<_, EchoResponse>(
                &caller,
                &format!("{name}/Fail"),
                format,
                &echo("why"),
                None,
            ),
            Code::FailedPrecondition,
        );
        assert_eq!(error.message, "no way: why");
        assert_eq!(
            error.details.get("reason").map(String::as_str),
            Some("testing")
        );
        assert_eq!(error.origin, "status-exporter");
    }
    // A method the exporter's service lacks: NOT_FOUND, found out here.
    let error = expect_code(call_echo(&caller, &name, "Nope", "x"), Code::NotFound);
    assert_eq!(error.origin, "transport");
    assert_eq!(
        error.details.get("method").map(String::as_str),
        Some("Nope")
    );
}

#[test]
fn no_responders_is_unavailable() {
    let server = NatsServer::start();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let error = within(WATCHDOG, move || {
        expect_code(
            call_echo(&caller, "nobody.v1.Home", "Echo", "x"),
            Code::Unavailable,
        )
    });
    assert!(
        error.message.contains("nobody.v1.Home/Echo"),
        "{}",
        error.message
    );
    // A service registered here answers for all its methods: no fallback.
    let rt = runtime_on(&server, "local", &[], &[]);
    expect_code(
        call_echo(&rt, "hms.sys.v1.System", "Nope", "x"),
        Code::NotFound,
    );
}

#[test]
fn a_handler_that_never_answers_ends_at_the_callers_deadline() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Hang");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    let method = format!("{name}/Hang");
    let error = within(Duration::from_millis(1_500), move || {
        expect_code(
            call_in::<_, EchoResponse>(
                &caller,
                &method,
                Format::Protobuf,
                &echo("x"),
                Some(&options(300)),
            ),
            Code::DeadlineExceeded,
        )
    });
    // Either side may notice first: the caller's clock, or the exporter's
    // (which got the deadline in a header).
    assert!(error.message.contains("deadline"), "{}", error.message);
}

#[test]
fn payloads_over_a_limit_are_resource_exhausted_with_both_numbers() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Big");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    // The caller accepts 4 MiB; the server's max_payload is 1 MiB.
    let caller = runtime_on(&server, "caller", &[], &[]);
    let max_payload = 1024 * 1024;

    // A request over the server's max_payload never leaves.
    let request = EchoRequest {
        payload: vec![1u8; 2 * max_payload].into(),
        text: String::new(),
    };
    let error = expect_code(
        call::<_, EchoResponse>(&caller, &format!("{name}/Echo"), &request),
        Code::ResourceExhausted,
    );
    assert!(
        error.message.contains(&max_payload.to_string()),
        "{}",
        error.message
    );
    assert!(
        error.message.contains(&(2 * max_payload).to_string())
            || error.details.contains_key("size")
    );

    // An answer over the server's max_payload: the exporter says so.
    let error = expect_code(
        call_echo(&caller, &name, "Big", &(2 * max_payload).to_string()),
        Code::ResourceExhausted,
    );
    assert!(
        error.message.contains(&max_payload.to_string()),
        "{}",
        error.message
    );
    assert_eq!(error.origin, "exporter");

    // An answer over the caller's own limit.
    let small = runtime_configured(&server, "small", &[], &[], |config| {
        config.max_message_bytes = 64 * 1024;
    });
    let error = expect_code(
        call_echo(&small, &name, "Big", "100000"),
        Code::ResourceExhausted,
    );
    assert!(error.message.contains("65536"), "{}", error.message);
    assert!(error.message.contains("1000"), "{}", error.message);
}

#[test]
fn a_rogue_responder_gives_decode_error_never_a_crash() {
    let server = NatsServer::start();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let (tokio, client) = plain_client(&server);
    let replies: Vec<(Option<&'static str>, &'static [u8])> = vec![
        (None, b"plain garbage without headers"),
        (Some("banana"), b""),
        (Some("9999"), b""),
        (Some("3"), b"\xff\xff\xff not a status"),
        (Some("3"), b""),
    ];
    for (index, (status, body)) in replies.into_iter().enumerate() {
        let service = format!("rogue.v{index}.Service");
        let subject = format!("hms.svc.{service}.Call");
        let mut requests = tokio.block_on(client.subscribe(subject)).unwrap();
        tokio.block_on(server_has_seen(&client));
        let responder = client.clone();
        tokio.spawn(async move {
            use futures_util::StreamExt;
            while let Some(request) = requests.next().await {
                let Some(reply) = request.reply else { continue };
                let mut headers = async_nats::HeaderMap::new();
                if let Some(status) = status {
                    headers.insert("Hms-Status", status);
                }
                let _ = responder
                    .publish_with_headers(reply, headers, body.into())
                    .await;
            }
        });
        for format in FORMATS {
            let error = expect_code(
                call_raw(&caller, &format!("{service}/Call"), format, b"", &[]),
                Code::DecodeError,
            );
            assert!(
                error.message.contains("not an HMS reply"),
                "{}",
                error.message
            );
        }
    }
}

#[test]
fn exporters_of_one_service_share_its_calls() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Shared");
    let counts: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::default()).collect();
    let tags = ["first", "second"];
    let exporters: Vec<Rt> = (0..2)
        .map(|i| {
            let rt = runtime_on(&server, tags[i], &[&name], &[]);
            register_echo(&rt, &name, tags[i], counts[i].clone());
            rt
        })
        .collect();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let answered: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let caller = caller.clone();
            let name = name.clone();
            let answered = answered.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let text = format!("{t}-{i}");
                    let response = call_echo(&caller, &name, "Echo", &text).unwrap();
                    let (echoed, tag) = response.text.split_once(':').unwrap();
                    assert_eq!(echoed, text.to_uppercase());
                    *answered.lock().unwrap().entry(tag.to_owned()).or_default() += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no call failed");
    }
    let served: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(
        served.iter().sum::<usize>(),
        200,
        "every call ran once: {served:?}"
    );
    assert!(
        served.iter().all(|n| *n > 0),
        "both exporters served: {served:?}"
    );
    let answered = answered.lock().unwrap();
    assert_eq!(answered.get("first").copied(), Some(served[0]));
    assert_eq!(answered.get("second").copied(), Some(served[1]));
    drop(exporters);
}

#[test]
fn calls_fail_fast_while_the_server_is_down_and_succeed_after_it_returns() {
    let mut server = NatsServer::start();
    let name = unique("remote.v1.Restart");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "exporter", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    call_echo(&caller, &name, "Echo", "before").unwrap();

    server.stop();
    // Once the client has noticed, calls fail at once with UNAVAILABLE.
    let noticed = Instant::now() + Duration::from_secs(5);
    loop {
        let started = Instant::now();
        let result = call_in::<_, EchoResponse>(
            &caller,
            &format!("{name}/Echo"),
            Format::Protobuf,
            &echo("down"),
            Some(&options(2_000)),
        );
        let error = expect_code(result, Code::Unavailable);
        if started.elapsed() < Duration::from_millis(100) {
            assert!(
                error.message.contains("down") || error.message.contains("lost"),
                "{}",
                error.message
            );
            break;
        }
        assert!(Instant::now() < noticed, "the loss was never noticed");
    }

    server.restart();
    // Both runtimes reconnect, the exporter's subscriptions come back: no
    // action from the host.
    let back = Instant::now() + Duration::from_secs(15);
    loop {
        match call_echo(&caller, &name, "Echo", "after") {
            Ok(response) => {
                assert_eq!(response.text, "AFTER:exporter");
                break;
            }
            Err(error) => {
                assert_eq!(error.code, Code::Unavailable, "{error:?}");
                assert!(Instant::now() < back, "never recovered: {error:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // And the announcement is back too.
    let info = srv_info(&server, &name);
    assert_eq!(info["metadata"]["hms.runtime"], "exporter");
}

/// `$SRV.INFO.<nats name>` as a plain client sees it.
fn srv_info(server: &NatsServer, service: &str) -> serde_json::Value {
    let (tokio, client) = plain_client(server);
    let subject = format!("$SRV.INFO.{}", service.replace('.', "-"));
    let reply = tokio
        .block_on(client.request(subject, "".into()))
        .expect("the service answers $SRV.INFO");
    serde_json::from_slice(&reply.payload).unwrap()
}

#[test]
fn exported_services_are_announced_through_the_nats_service_api() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Announced");
    let exporter = runtime_on(&server, "announcer", &[&name, AGENTS], &[]);
    register_echo(&exporter, &name, "x", Arc::default());

    let info = srv_info(&server, &name);
    assert_eq!(info["name"], name.replace('.', "-"));
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["metadata"]["hms.service"], name.as_str());
    assert_eq!(info["metadata"]["hms.runtime"], "announcer");
    assert_eq!(info["metadata"]["hms.service_version"], "1.2.3");
    let mut endpoints: Vec<(String, String, String)> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["subject"].as_str().unwrap().to_owned(),
                e["queue_group"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    endpoints.sort();
    let mut expected: Vec<(String, String, String)> = ECHO_METHODS
        .iter()
        .map(|m| {
            (
                m.to_string(),
                format!("hms.svc.{name}.{m}"),
                format!("hms.{name}"),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(endpoints, expected);
    assert_eq!(
        info["endpoints"][0]["metadata"]["hms.input_type"],
        "hms.sys.v1.EchoRequest"
    );

    // STATS counts the calls of each endpoint.
    let caller = runtime_on(&server, "caller", &[], &[]);
    call_echo(&caller, &name, "Echo", "counted").unwrap();
    let (tokio, client) = plain_client(&server);
    let stats = tokio
        .block_on(client.request(format!("$SRV.STATS.{}", name.replace('.', "-")), "".into()))
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
    let echo_stats = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Echo")
        .expect("Echo has stats");
    assert_eq!(echo_stats["num_requests"], 1);

    // The built-in domain service, and PING answered for it.
    let agents = srv_info(&server, AGENTS);
    assert_eq!(agents["endpoints"].as_array().unwrap().len(), 5);
    let pong = tokio
        .block_on(client.request("$SRV.PING.hms-agent-v1-AgentService", "".into()))
        .unwrap();
    let pong: serde_json::Value = serde_json::from_slice(&pong.payload).unwrap();
    assert_eq!(pong["type"], "io.nats.micro.v1.ping_response");

    // Unregistering withdraws the announcement.
    let handle = {
        let rt = runtime_on(&server, "short-lived", &["short.v1.Lived"], &[]);
        let handle = register_echo(&rt, "short.v1.Lived", "x", Arc::default());
        srv_info(&server, "short.v1.Lived");
        (rt, handle)
    };
    runtime::unregister_service(handle.1).unwrap();
    // Its endpoints are gone when unregister returns; the announcement
    // task is aborted then, and its subscriptions follow a moment later.
    expect_code(
        call_echo(&handle.0, "short.v1.Lived", "Echo", "x"),
        Code::Unavailable,
    );
    let until = Instant::now() + Duration::from_secs(2);
    while tokio
        .block_on(client.request("$SRV.INFO.short-v1-Lived", "".into()))
        .is_ok()
    {
        assert!(
            Instant::now() < until,
            "an unregistered service is no longer announced"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn list_services_shows_remote_services_and_who_serves_them() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Listed");
    let exporters: Vec<Rt> = ["one", "two"]
        .iter()
        .map(|tag| {
            let rt = runtime_on(&server, tag, &[&name], &[]);
            register_echo(&rt, &name, "x", Arc::default());
            rt
        })
        .collect();
    let caller = runtime_on(&server, "caller", &[], &[AGENTS]);
    let listed: ListServicesResponse = call(
        &caller,
        "hms.registry.v1.Registry/ListServices",
        &ListServicesRequest {
            name_prefix: String::new(),
        },
    )
    .unwrap();
    let remote = listed
        .services
        .iter()
        .find(|s| s.name == name)
        .expect("the remote service is listed");
    assert_eq!(remote.origin, "remote");
    assert_eq!(remote.served_by, vec!["one".to_owned(), "two".to_owned()]);
    assert_eq!(remote.version, "1.2.3");
    let mut methods: Vec<&str> = remote.methods.iter().map(|m| m.name.as_str()).collect();
    methods.sort();
    let mut expected = ECHO_METHODS.to_vec();
    expected.sort();
    assert_eq!(methods, expected);
    assert!(
        remote
            .methods
            .iter()
            .all(|m| m.output_type == "hms.sys.v1.EchoResponse")
    );
    // Local services keep their origin; the AgentService this runtime
    // reaches remotely is not exported by anyone here, so it is absent.
    let system = listed
        .services
        .iter()
        .find(|s| s.name == "hms.sys.v1.System")
        .unwrap();
    assert_eq!(system.origin, "builtin");
    assert!(listed.services.iter().all(|s| s.name != AGENTS));
    drop(exporters);
}

#[test]
fn freeing_a_runtime_with_a_transport_returns_promptly() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Freed");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    call_echo(&caller, &name, "Echo", "x").unwrap();
    let handles: Vec<u64> = [exporter, caller.clone()]
        .iter()
        .map(runtime_handle)
        .collect();
    let exporter_handle = handles[0];
    within(Duration::from_secs(3), move || {
        runtime::free(exporter_handle).unwrap()
    });
    // Its service is gone from NATS with it.
    let error = expect_code(call_echo(&caller, &name, "Echo", "x"), Code::Unavailable);
    assert!(
        error.message.contains("nobody exports"),
        "{}",
        error.message
    );
    let caller_handle = handles[1];
    within(Duration::from_secs(3), move || {
        runtime::free(caller_handle).unwrap()
    });
    // A freed runtime's remote calls end cleanly.
    expect_code(call_echo(&caller, &name, "Echo", "x"), Code::Unavailable);
}

#[test]
fn unusable_transport_settings_fail_runtime_creation_clearly() {
    let server = NatsServer::start();
    for (nats, field) in [
        (
            NatsTransport {
                servers: vec![server.url()],
                nkey_seed_file: "/nonexistent/seed.nk".into(),
                ..Default::default()
            },
            "nats.nkey_seed_file",
        ),
        (
            NatsTransport {
                servers: vec![server.url()],
                credentials_file: "/nonexistent/user.creds".into(),
                ..Default::default()
            },
            "nats.credentials_file",
        ),
    ] {
        let settings = Settings::from_config(RuntimeConfig {
            nats: Some(nats),
            ..Default::default()
        })
        .unwrap();
        let error = within(WATCHDOG, move || Runtime::new(settings).err().unwrap());
        assert_eq!(error.code, Code::InvalidArgument, "{error:?}");
        assert_eq!(error.details.get("field").map(String::as_str), Some(field));
    }
}

#[test]
fn a_host_inside_its_own_tokio_runtime_can_use_the_transport() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Nested");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "exporter", Arc::default());
    let host = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    within(WATCHDOG, move || {
        host.block_on(async move {
            let settings = Settings::from_config(RuntimeConfig {
                name: "inside-tokio".into(),
                nats: Some(NatsTransport {
                    servers: vec![url],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .unwrap();
            let caller = Runtime::new(settings).expect("no block_on inside block_on");
            let response = call_echo(&caller, &name, "Echo", "nested").unwrap();
            assert_eq!(response.text, "NESTED:exporter");
            runtime::free(runtime_handle(&caller)).unwrap();
        })
    });
}

#[test]
fn closing_an_exporter_answers_its_calls_in_flight() {
    let server = NatsServer::start();
    let name = unique("remote.v1.Drain");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    register_echo(&exporter, &name, "x", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    let method = format!("{name}/Hang");
    let pending = std::thread::spawn(move || {
        call_in::<_, EchoResponse>(
            &caller,
            &method,
            Format::Protobuf,
            &echo("x"),
            Some(&options(10_000)),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // The handler sleeps 3 s, within the default shutdown timeout: close
    // waits for it, and its answer still reaches the caller.
    exporter.close();
    let answer = within(Duration::from_secs(8), move || pending.join().unwrap());
    assert!(answer.is_ok(), "{answer:?}");
}

/// The answer of each call made one by one through its handle, as a batch
/// writes it (an error as its Status).
fn sequential_answers(calls: &[(u64, Vec<u8>)]) -> Vec<(Code, Vec<u8>)> {
    calls
        .iter()
        .map(|(handle, request)| {
            let mut out = Vec::new();
            match runtime::call_method(*handle, request, &mut out) {
                Ok(()) => (Code::Ok, out),
                Err(error) => (error.code, encode(&error.to_status(), Format::Protobuf)),
            }
        })
        .collect()
}

#[test]
fn a_batch_sends_its_remote_calls_at_once_and_answers_like_single_calls() {
    let server = NatsServer::start();
    let exported = unique("remote.v1.Batch");
    let local = unique("local.v1.Batch");
    let nowhere = unique("nowhere.v1.Batch");
    let exporter = runtime_on(&server, "exporter", &[&exported], &[]);
    register_echo(&exporter, &exported, "exporter", Arc::default());
    let caller = runtime_on(&server, "caller", &[], &[]);
    register_echo(&caller, &local, "caller", Arc::default());
    let rt = runtime_handle(&caller);
    let request = |text: &str| encode(&echo(text), Format::Protobuf);
    let handle = |service: &str, method: &str| {
        runtime::resolve_method(rt, &format!("{service}/{method}"), Format::Protobuf).unwrap()
    };
    let calls = vec![
        (handle(&local, "Echo"), request("one")),
        (handle(&exported, "Echo"), request("two")),
        (handle(&nowhere, "Echo"), request("three")),
        (handle(&exported, "Fail"), request("four")),
        (handle(&local, "Fail"), request("five")),
        (handle(&exported, "Echo"), request("six")),
    ];
    let frame: Vec<(u64, &[u8])> = calls.iter().map(|(h, r)| (*h, r.as_slice())).collect();
    let mut results = Vec::new();
    batch::run(&common::batch_frame(&frame), &mut results).unwrap();
    let results = common::batch_results(&results);
    // Each entry has its own status: the method nobody exports fails
    // alone, the others answer.
    let codes: Vec<Code> = results.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Unavailable,
            Code::FailedPrecondition,
            Code::FailedPrecondition,
            Code::Ok
        ]
    );
    let texts: Vec<String> = [0, 1, 5]
        .iter()
        .map(|&i| decode::<EchoResponse>(Format::Protobuf, &results[i].1).text)
        .collect();
    assert_eq!(texts, ["ONE:caller", "TWO:exporter", "SIX:exporter"]);
    let failed: Status = decode(Format::Protobuf, &results[3].1);
    assert_eq!(failed.origin, "exporter");
    // Byte for byte what the calls answer one by one.
    assert_eq!(results, sequential_answers(&calls));
}

#[test]
fn a_batch_has_its_remote_calls_in_flight_together() {
    const TOGETHER: usize = 4;
    let server = NatsServer::start();
    let name = unique("remote.v1.Gather");
    let exporter = runtime_on(&server, "exporter", &[&name], &[]);
    // Each call waits until TOGETHER calls have arrived (or 3 s passed):
    // only calls sent at once, not one after the other, all meet.
    let arrived = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    exporter
        .register_service(
            common::echo_typed(&name, &["Gather"]),
            Format::Protobuf,
            HostOptions::default(),
            handler(move |reply, _, format, _| {
                let (count, changed) = &*arrived;
                let mut count = count.lock().unwrap();
                *count += 1;
                changed.notify_all();
                let (count, _) = changed
                    .wait_timeout_while(count, Duration::from_secs(3), |n| *n < TOGETHER)
                    .unwrap();
                let response = EchoResponse {
                    payload: Default::default(),
                    text: if *count >= TOGETHER {
                        "together"
                    } else {
                        "alone"
                    }
                    .into(),
                };
                reply.set(&encode(&response, format)).unwrap();
            }),
        )
        .unwrap();
    let caller = runtime_on(&server, "caller", &[], &[]);
    let method = runtime::resolve_method(
        runtime_handle(&caller),
        &format!("{name}/Gather"),
        Format::Protobuf,
    )
    .unwrap();
    let request = encode(&echo("x"), Format::Protobuf);
    let calls: Vec<(u64, &[u8])> = (0..TOGETHER)
        .map(|_| (method, request.as_slice()))
        .collect();
    let frame = common::batch_frame(&calls);
    within(WATCHDOG, move || {
        let mut results = Vec::new();
        batch::run(&frame, &mut results).unwrap();
        for (code, answer) in common::batch_results(&results) {
            assert_eq!(code, Code::Ok);
            let response: EchoResponse = decode(Format::Protobuf, &answer);
            assert_eq!(response.text, "together");
        }
    });
}
