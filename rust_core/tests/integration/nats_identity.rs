//! `security.require_nats_identity` (docs/security.md, "NATS identity"):
//! against a real nats-server with two accounts, the exporter's and its
//! callers' (NKey users), the callers reaching the exporter through a
//! service import with `share: true`, so that the server names each
//! request's sender in its `Nats-Request-Info` header.

use crate::common;
use crate::remote::{nats_jwt, server_config, unlimited, write_credentials, write_key_file};
use crate::security::{
    ALICE_TOKEN, BOB_TOKEN, context_of, credentials, principal, refused, register_exported_context,
    security_config,
};

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use common::expect_code;
use common::nats_server::NatsServer;
use hms_ffi::Code;
use hms_ffi::config::Settings;
use hms_ffi::proto::v1::{Credentials, NatsTransport, RuntimeConfig, SecurityConfig};
use hms_ffi::runtime::Runtime;
use tempfile::TempDir;

type Rt = Arc<Runtime>;

/// The NKey users of the test server: `exporter` and `insider` log into
/// the exporter's account, `alice` and `bob` into the callers' account.
struct Users {
    exporter: nkeys::KeyPair,
    insider: nkeys::KeyPair,
    alice: nkeys::KeyPair,
    bob: nkeys::KeyPair,
}

/// A nats-server with an `EXPORTER` account exporting every HMS method
/// subject and a `CALLERS` account importing them with `share: true`.
fn two_account_server(dir: &Path) -> (NatsServer, Users) {
    let users = Users {
        exporter: nkeys::KeyPair::new_user(),
        insider: nkeys::KeyPair::new_user(),
        alice: nkeys::KeyPair::new_user(),
        bob: nkeys::KeyPair::new_user(),
    };
    let config = server_config(
        dir,
        &format!(
            "accounts {{\n\
             EXPORTER {{ users = [{{nkey: {}}}, {{nkey: {}}}], exports = [{{service: \"hms.svc.>\"}}] }}\n\
             CALLERS {{ users = [{{nkey: {}}}, {{nkey: {}}}], \
             imports = [{{service: {{account: EXPORTER, subject: \"hms.svc.>\"}}, share: true}}] }}\n\
             }}\n",
            users.exporter.public_key(),
            users.insider.public_key(),
            users.alice.public_key(),
            users.bob.public_key(),
        ),
    );
    (NatsServer::start_with(&["-c", &config]), users)
}

/// A runtime connected to `server` as the NKey user `user`.
fn runtime_as(
    server: &NatsServer,
    dir: &Path,
    name: &str,
    user: &nkeys::KeyPair,
    security: Option<SecurityConfig>,
) -> Rt {
    runtime_with(server, dir, name, nkey_auth(dir, user), security)
}

/// Logging in as the NKey user `user`, its seed in a file in `dir`.
fn nkey_auth(dir: &Path, user: &nkeys::KeyPair) -> NatsTransport {
    NatsTransport {
        nkey_seed_file: write_key_file(dir, &user.seed().unwrap())
            .display()
            .to_string(),
        ..Default::default()
    }
}

/// A runtime connected to `server` with the authentication of `auth`.
fn runtime_with(
    server: &NatsServer,
    dir: &Path,
    name: &str,
    auth: NatsTransport,
    security: Option<SecurityConfig>,
) -> Rt {
    let config = RuntimeConfig {
        name: name.into(),
        // The exporter's audit log is read back; the callers keep none.
        data_dir: if security.is_some() {
            dir.display().to_string()
        } else {
            String::new()
        },
        nats: Some(NatsTransport {
            servers: vec![server.url()],
            connect_timeout_ms: 5_000,
            request_timeout_ms: 5_000,
            ..auth
        }),
        security,
        ..Default::default()
    };
    Runtime::new(Settings::from_config(config).expect("a valid config")).expect("it connects")
}

/// The exporter (authentication required, alice's and bob's NATS users
/// mapped to their principals when `require` is on) and the name of its
/// exported context service.
fn exporter(server: &NatsServer, dir: &Path, users: &Users, require: bool) -> (Rt, String) {
    let mut security = security_config(dir);
    if require {
        security.require_nats_identity = true;
        security.nats_user_principals = [
            (users.alice.public_key(), "alice".to_owned()),
            (users.bob.public_key(), "bob".to_owned()),
        ]
        .into();
    }
    exporter_with(server, dir, nkey_auth(dir, &users.exporter), security)
}

/// An exporter logged in with `auth`, secured by `security`, and the name
/// of its exported context service.
fn exporter_with(
    server: &NatsServer,
    dir: &Path,
    auth: NatsTransport,
    security: SecurityConfig,
) -> (Rt, String) {
    let rt = runtime_with(server, dir, "exporter", auth, Some(security));
    let service = register_exported_context(&rt);
    (rt, service)
}

/// The exporter's audit records of failed authentications.
fn authentication_failures(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(hms_ffi::audit::DEFAULT_FILE_NAME))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["kind"] == "authentication_failure")
        .collect()
}

#[test]
fn a_call_is_served_only_over_its_own_principals_nats_connection() {
    let dir = TempDir::new().unwrap();
    let (server, users) = two_account_server(dir.path());
    let (_exporter, service) = exporter(&server, dir.path(), &users, true);
    let alice = runtime_as(&server, dir.path(), "alice", &users.alice, None);

    let context = context_of(&alice, &service, Some(&credentials(ALICE_TOKEN)))
        .expect("alice's token over alice's NATS connection");
    assert_eq!(principal(&context), "alice", "{context}");

    // Bob's token (stolen, or lent) over alice's connection.
    let error = expect_code(
        context_of(&alice, &service, Some(&credentials(BOB_TOKEN))),
        Code::PermissionDenied,
    );
    assert_eq!(
        error.details["reason"], "nats_identity_mismatch",
        "{error:?}"
    );
    assert_eq!(error.details["nats_user"], users.alice.public_key());
    assert_eq!(error.details["nats_account"], "CALLERS");
    assert!(error.message.contains("another principal"), "{error:?}");
    assert!(!format!("{error:?}").contains(BOB_TOKEN), "{error:?}");
    assert_eq!(
        error.origin, "exporter",
        "refused by the exporter: {error:?}"
    );

    // The exporter's own account: no service import, so no header.
    let insider = runtime_as(&server, dir.path(), "insider", &users.insider, None);
    let error = refused(
        context_of(&insider, &service, Some(&credentials(ALICE_TOKEN))),
        "nats_identity_missing",
        ALICE_TOKEN,
    );
    assert!(
        error.message.contains("service import"),
        "it says what to configure: {error:?}"
    );

    // Over the right connection, still no call without credentials.
    refused(context_of(&alice, &service, None), "missing", "");

    let failures = authentication_failures(dir.path());
    let reasons: Vec<_> = failures
        .iter()
        .map(|r| {
            (
                r["status"].as_i64().unwrap(),
                r["details"]["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                Code::PermissionDenied as i64,
                "nats_identity_mismatch".into()
            ),
            (Code::Unauthenticated as i64, "nats_identity_missing".into()),
            (Code::Unauthenticated as i64, "missing".into()),
        ],
        "{failures:#?}"
    );
    assert_eq!(
        failures[0]["details"]["nats_user"],
        users.alice.public_key()
    );
    let log = std::fs::read_to_string(dir.path().join(hms_ffi::audit::DEFAULT_FILE_NAME)).unwrap();
    assert!(!log.contains(ALICE_TOKEN) && !log.contains(BOB_TOKEN));
}

#[test]
fn a_rogue_client_cannot_forge_the_nats_identity_header() {
    use prost::Message;
    let dir = TempDir::new().unwrap();
    let (server, users) = two_account_server(dir.path());
    let (_exporter, service) = exporter(&server, dir.path(), &users, true);
    // Bob holds alice's token and claims to be alice's NATS user.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bob = tokio
        .block_on(
            async_nats::ConnectOptions::with_nkey(users.bob.seed().unwrap()).connect(server.url()),
        )
        .expect("bob connects");
    let stolen = Credentials {
        scheme: String::new(),
        token: ALICE_TOKEN.into(),
        principal: String::new(),
    };
    let forged_identity = serde_json::json!({"acc": "CALLERS", "user": users.alice.public_key()});
    let answer = |header: &str| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Hms-Format", "json");
        headers.insert(
            "Hms-Credentials",
            base64::engine::general_purpose::STANDARD
                .encode(stolen.encode_to_vec())
                .as_str(),
        );
        headers.insert(header, forged_identity.to_string().as_str());
        let reply = tokio
            .block_on(bob.request_with_headers(
                format!("hms.svc.{service}.Context"),
                headers,
                "{}".into(),
            ))
            .expect("the exporter answers");
        let status: i32 = reply
            .headers
            .as_ref()
            .unwrap()
            .get("Hms-Status")
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(
            !reply
                .payload
                .windows(ALICE_TOKEN.len())
                .any(|w| w == ALICE_TOKEN.as_bytes())
        );
        (status, body)
    };
    // Spelled as the server spells it, the header is replaced by the
    // server's own: bob's user, so alice's token is refused over it.
    let (status, body) = answer("Nats-Request-Info");
    assert_eq!(status, Code::PermissionDenied as i32, "{body}");
    assert_eq!(
        body["details"]["reason"], "nats_identity_mismatch",
        "{body}"
    );
    assert_eq!(
        body["details"]["nats_user"],
        users.bob.public_key(),
        "{body}"
    );
    // Spelled otherwise, nats-server keeps it beside its own: two
    // identities, and the call is refused rather than either believed.
    let (status, body) = answer("nats-request-info");
    assert_eq!(status, Code::Unauthenticated as i32, "{body}");
    assert_eq!(
        body["details"]["reason"], "nats_identity_ambiguous",
        "{body}"
    );
}

#[test]
fn without_require_nats_identity_the_connection_is_not_checked() {
    let dir = TempDir::new().unwrap();
    let (server, users) = two_account_server(dir.path());
    let (_exporter, service) = exporter(&server, dir.path(), &users, false);
    let alice = runtime_as(&server, dir.path(), "alice", &users.alice, None);
    let insider = runtime_as(&server, dir.path(), "insider", &users.insider, None);
    for (caller, token, expected) in [
        (&alice, ALICE_TOKEN, "alice"),
        (&alice, BOB_TOKEN, "bob"),
        (&insider, ALICE_TOKEN, "alice"),
    ] {
        let context = context_of(caller, &service, Some(&credentials(token))).unwrap();
        assert_eq!(principal(&context), expected, "{context}");
    }
    refused(context_of(&alice, &service, None), "missing", "");
}

#[test]
fn an_account_mapping_covers_every_user_of_the_account() {
    let dir = TempDir::new().unwrap();
    let (server, users) = two_account_server(dir.path());
    let mut security = security_config(dir.path());
    security.require_nats_identity = true;
    security.nats_account_principals = [("CALLERS".to_owned(), "bob".to_owned())].into();
    let (_exporter, service) = exporter_with(
        &server,
        dir.path(),
        nkey_auth(dir.path(), &users.exporter),
        security,
    );
    let alice = runtime_as(&server, dir.path(), "alice", &users.alice, None);
    let context = context_of(&alice, &service, Some(&credentials(BOB_TOKEN))).unwrap();
    assert_eq!(principal(&context), "bob", "{context}");
    let error = expect_code(
        context_of(&alice, &service, Some(&credentials(ALICE_TOKEN))),
        Code::PermissionDenied,
    );
    assert_eq!(error.details["nats_account"], "CALLERS", "{error:?}");
}

#[test]
fn an_unmapped_nats_user_is_unauthenticated() {
    let dir = TempDir::new().unwrap();
    let (server, users) = two_account_server(dir.path());
    let mut security = security_config(dir.path());
    security.require_nats_identity = true;
    security.nats_user_principals = [(users.alice.public_key(), "alice".to_owned())].into();
    let (_exporter, service) = exporter_with(
        &server,
        dir.path(),
        nkey_auth(dir.path(), &users.exporter),
        security,
    );
    let bob = runtime_as(&server, dir.path(), "bob", &users.bob, None);
    let error = refused(
        context_of(&bob, &service, Some(&credentials(BOB_TOKEN))),
        "nats_identity_unknown",
        BOB_TOKEN,
    );
    assert!(
        error.message.contains("nats_user_principals"),
        "it names what to configure: {error:?}"
    );
}

#[test]
fn bad_nats_identity_settings_are_refused_with_their_field() {
    let dir = TempDir::new().unwrap();
    fn tables(s: &mut SecurityConfig) {
        s.nats_user_principals = [("UAAA".to_owned(), "alice".to_owned())].into();
    }
    type Configure = fn(&mut SecurityConfig);
    let cases: [(&str, Configure); 4] = [
        // Nothing to match against.
        ("security.require_nats_identity", |s| {
            s.require_nats_identity = true
        }),
        // Tables that would be ignored.
        ("security.require_nats_identity", tables),
        ("security.nats_account_principals", |s| {
            s.require_nats_identity = true;
            s.nats_account_principals = [("CALLERS".to_owned(), String::new())].into();
        }),
        // No verifier for the credentials to match with.
        ("security.require_nats_identity", |s| {
            *s = SecurityConfig::default();
            s.require_nats_identity = true;
            tables(s);
        }),
    ];
    for (field, configure) in cases {
        let mut security = security_config(dir.path());
        configure(&mut security);
        let error = Settings::from_config(RuntimeConfig {
            security: Some(security),
            ..Default::default()
        })
        .expect_err(field);
        assert_eq!(error.code, Code::InvalidArgument, "{error:?}");
        assert_eq!(error.details["field"], field, "{error:?}");
    }
}

/// Decentralized (operator) mode: accounts and users are JWTs, the NATS
/// identity is the user's public key from its `.creds` file and the
/// account's public key.
#[test]
fn a_creds_users_public_key_is_its_nats_identity() {
    let dir = TempDir::new().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let (exporting, calling) = (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_account());
    let account_jwt = |account: &nkeys::KeyPair, sharing: serde_json::Value| {
        let mut claims =
            serde_json::json!({"type": "account", "version": 2, "limits": unlimited()});
        claims
            .as_object_mut()
            .unwrap()
            .extend(sharing.as_object().unwrap().clone());
        nats_jwt(&operator, &account.public_key(), claims)
    };
    let exporter_jwt = account_jwt(
        &exporting,
        serde_json::json!({"exports": [{"name": "hms", "subject": "hms.svc.>", "type": "service"}]}),
    );
    let caller_jwt = account_jwt(
        &calling,
        serde_json::json!({"imports": [{
            "name": "hms", "subject": "hms.svc.>", "account": exporting.public_key(),
            "type": "service", "share": true,
        }]}),
    );
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let config = server_config(
        dir.path(),
        &format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{ {}: \"{exporter_jwt}\", {}: \"{caller_jwt}\" }}\n",
            write_key_file(dir.path(), &operator_jwt).display(),
            exporting.public_key(),
            calling.public_key(),
        ),
    );
    let server = NatsServer::start_with(&["-c", &config]);
    let creds = |user: &nkeys::KeyPair, account: &nkeys::KeyPair| NatsTransport {
        credentials_file: write_credentials(dir.path(), user, account)
            .display()
            .to_string(),
        ..Default::default()
    };
    let (exporter_user, alice_user) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    let mut security = security_config(dir.path());
    security.require_nats_identity = true;
    security.nats_user_principals = [(alice_user.public_key(), "alice".to_owned())].into();
    let (_exporter, service) = exporter_with(
        &server,
        dir.path(),
        creds(&exporter_user, &exporting),
        security,
    );
    let alice = runtime_with(
        &server,
        dir.path(),
        "alice",
        creds(&alice_user, &calling),
        None,
    );
    let context = context_of(&alice, &service, Some(&credentials(ALICE_TOKEN))).unwrap();
    assert_eq!(principal(&context), "alice", "{context}");
    let error = expect_code(
        context_of(&alice, &service, Some(&credentials(BOB_TOKEN))),
        Code::PermissionDenied,
    );
    assert_eq!(
        error.details["nats_user"],
        alice_user.public_key(),
        "{error:?}"
    );
    assert_eq!(
        error.details["nats_account"],
        calling.public_key(),
        "{error:?}"
    );
}
