//! Authentication (docs/security.md): API tokens and JWTs verified on every
//! call path (hms_call, method handles, batches, calls over NATS), the
//! principal from the verified credential only, and no secret in any error
//! or Debug output.

use crate::common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{
    batch_frame, batch_results, call_in, call_raw, decode, echo_typed, encode, expect_code,
    handler, openssl, token_line, unique,
};
use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse, HealthRequest, HealthResponse};
use hms_ffi::proto::v1::{
    CallOptions, Credentials, JwtVerification, RuntimeConfig, SecurityConfig,
};
use hms_ffi::runtime::{self, HostOptions, Runtime};
use hms_ffi::{Code, HmsError, batch};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tempfile::TempDir;

type Rt = Arc<Runtime>;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "hms-test";
pub(crate) const ALICE_TOKEN: &str = "hms_alice_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub(crate) const BOB_TOKEN: &str = "hms_bob_0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// Key pairs made once per test run with the openssl CLI (PKCS#8 private
/// keys, SPKI public keys, PEM), so that none is checked in.
struct KeyPair {
    private: Vec<u8>,
    public: Vec<u8>,
}

struct Keys {
    ed25519: KeyPair,
    p256: KeyPair,
    rsa: KeyPair,
    /// Signs nothing this runtime trusts.
    other_ed25519: KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = TempDir::new().unwrap();
        let pair = |name: &str, genpkey: &[&str]| {
            let private = format!("{name}.key");
            let public = format!("{name}.pub");
            let mut args = vec!["genpkey"];
            args.extend_from_slice(genpkey);
            args.extend_from_slice(&["-out", &private]);
            openssl(dir.path(), &args);
            openssl(
                dir.path(),
                &["pkey", "-in", &private, "-pubout", "-out", &public],
            );
            KeyPair {
                private: std::fs::read(dir.path().join(private)).unwrap(),
                public: std::fs::read(dir.path().join(public)).unwrap(),
            }
        };
        Keys {
            ed25519: pair("ed", &["-algorithm", "ed25519"]),
            p256: pair(
                "ec",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
            rsa: pair(
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
            other_ed25519: pair("other", &["-algorithm", "ed25519"]),
        }
    })
}

/// A security section with a token file (alice: admin,ops; bob: no role)
/// and the three JWT keys, written to `dir`.
pub(crate) fn security_config(dir: &Path) -> SecurityConfig {
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "# principal roles hash\n{}\n{}\n",
            token_line("alice", "admin,ops", b"0123456789abcdef", ALICE_TOKEN),
            token_line("bob", "-", b"fedcba9876543210", BOB_TOKEN),
        ),
    )
    .unwrap();
    let mut public_key_files = Vec::new();
    for (name, pair) in [
        ("ed.pub", &keys().ed25519),
        ("ec.pub", &keys().p256),
        ("rsa.pub", &keys().rsa),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &pair.public).unwrap();
        public_key_files.push(path.display().to_string());
    }
    SecurityConfig {
        require_authentication: true,
        api_tokens_file: tokens.display().to_string(),
        jwt: Some(JwtVerification {
            public_key_files,
            issuer: ISSUER.into(),
            audiences: vec![AUDIENCE.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secured_runtime(configure: impl FnOnce(&mut SecurityConfig)) -> (TempDir, Rt) {
    let dir = TempDir::new().unwrap();
    let mut security = security_config(dir.path());
    configure(&mut security);
    let config = RuntimeConfig {
        security: Some(security),
        ..Default::default()
    };
    let rt = Runtime::new(Settings::from_config(config).expect("a valid security config"))
        .expect("the runtime opens");
    (dir, rt)
}

pub(crate) fn credentials(token: &str) -> CallOptions {
    CallOptions {
        credentials: Some(Credentials {
            scheme: String::new(),
            token: token.into(),
            principal: String::new(),
        }),
        ..Default::default()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "sub": "carol",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "iat": now(),
        "roles": ["reader", "writer"],
        "team": "blue",
    })
}

fn sign(algorithm: Algorithm, private: &[u8], claims: &serde_json::Value) -> String {
    let key = match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private),
        _ => EncodingKey::from_secret(private),
    }
    .unwrap();
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap()
}

/// A JWT of raw claim bytes, signed with the trusted Ed25519 key.
fn signed_raw(claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        base64url(br#"{"alg":"EdDSA","typ":"JWT"}"#),
        base64url(claims)
    );
    let key = EncodingKey::from_ed_pem(&keys().ed25519.private).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    format!("{message}.{signature}")
}

fn ed_jwt(claims: &serde_json::Value) -> String {
    sign(Algorithm::EdDSA, &keys().ed25519.private, claims)
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Registers a host service whose `Context` method answers the call's
/// `hms.v1.CallContext` as JSON text.
pub(crate) fn register_context(rt: &Rt, options: HostOptions) -> String {
    let name = unique("sec.v1.Context");
    rt.register_service(
        echo_typed(&name, &["Context"]),
        Format::Protobuf,
        options,
        handler(|reply, _, format, _| common::reply_with_context(reply, format)),
    )
    .expect("the context service registers");
    name
}

/// [`register_context`], exported over the runtime's transport.
pub(crate) fn register_exported_context(rt: &Rt) -> String {
    register_context(
        rt,
        HostOptions {
            export: true,
            ..Default::default()
        },
    )
}

/// The CallContext a handler of `rt` sees for a call with `options`.
pub(crate) fn context_of(
    rt: &Rt,
    service: &str,
    options: Option<&CallOptions>,
) -> Result<serde_json::Value, HmsError> {
    let response: EchoResponse = call_in(
        rt,
        &format!("{service}/Context"),
        Format::Protobuf,
        &EchoRequest::default(),
        options,
    )?;
    Ok(serde_json::from_str(&response.text).unwrap())
}

fn echo(rt: &Rt, options: Option<&CallOptions>) -> Result<EchoResponse, HmsError> {
    call_in(
        rt,
        "hms.sys.v1.System/Echo",
        Format::Json,
        &EchoRequest {
            text: "hi".into(),
            ..Default::default()
        },
        options,
    )
}

/// Asserts `result` failed UNAUTHENTICATED for `reason`, and that neither
/// its message nor its Debug output shows `secret`.
#[track_caller]
pub(crate) fn refused<T>(result: Result<T, HmsError>, reason: &str, secret: &str) -> HmsError {
    let error = expect_code(result, Code::Unauthenticated);
    assert_eq!(
        error.details.get("reason").map(String::as_str),
        Some(reason),
        "{error:?}"
    );
    if !secret.is_empty() {
        assert!(!error.message.contains(secret), "{error:?}");
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
    error
}

pub(crate) fn principal(context: &serde_json::Value) -> &str {
    context["principal"].as_str().unwrap_or("")
}

// ------------------------------------------------------------------ tests

#[test]
fn without_a_security_section_nothing_is_verified() {
    let rt = common::new_runtime();
    let service = register_context(&rt, HostOptions::default());
    let forged = CallOptions {
        credentials: Some(Credentials {
            scheme: "bearer".into(),
            token: "not-a-token".into(),
            principal: "root".into(),
        }),
        ..Default::default()
    };
    for options in [None, Some(&forged)] {
        echo(&rt, options).expect("calls run as before");
        let context = context_of(&rt, &service, options).unwrap();
        assert_eq!(principal(&context), "", "{context}");
    }
    // A section that configures no verifier verifies nothing either.
    let (_dir, rt) = secured_runtime(|s| {
        *s = SecurityConfig {
            default_credentials: Some(Credentials {
                scheme: String::new(),
                token: ALICE_TOKEN.into(),
                principal: String::new(),
            }),
            ..Default::default()
        }
    });
    echo(&rt, Some(&forged)).expect("nothing verifies the token");
}

#[test]
fn api_tokens_name_their_principal_and_roles() {
    let (_dir, rt) = secured_runtime(|_| {});
    let service = register_context(&rt, HostOptions::default());
    for (scheme, token, id, roles) in [
        ("", ALICE_TOKEN, "alice", vec!["admin", "ops"]),
        ("api-key", BOB_TOKEN, "bob", vec![]),
        ("API-KEY", ALICE_TOKEN, "alice", vec!["admin", "ops"]),
    ] {
        let mut options = credentials(token);
        options.credentials.as_mut().unwrap().scheme = scheme.into();
        // Twice: verified, then from the cache, the same.
        for _ in 0..2 {
            let context = context_of(&rt, &service, Some(&options)).unwrap();
            assert_eq!(principal(&context), id, "{context}");
            let seen: Vec<&str> = context["roles"]
                .as_array()
                .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(seen, roles, "{context}");
        }
    }
    // The principal named with the token may be given: it must match.
    let mut options = credentials(ALICE_TOKEN);
    options.credentials.as_mut().unwrap().principal = "alice".into();
    echo(&rt, Some(&options)).unwrap();
}

#[test]
fn bad_api_tokens_are_refused_without_echoing_them() {
    let (_dir, rt) = secured_runtime(|_| {});
    let mut wrong = ALICE_TOKEN.to_owned();
    wrong.replace_range(10..11, "X");
    let truncated = &ALICE_TOKEN[..ALICE_TOKEN.len() - 4];
    for token in [wrong.as_str(), truncated, "hms_unknown_token_0000000000"] {
        refused(echo(&rt, Some(&credentials(token))), "unknown_token", token);
    }
    let long = "a".repeat(1 << 20);
    let error = refused(echo(&rt, Some(&credentials(&long))), "too_long", &long);
    assert!(error.message.contains("8192"), "{error:?}");
    let mut options = credentials(ALICE_TOKEN);
    options.credentials.as_mut().unwrap().scheme = "digest".into();
    let error = refused(echo(&rt, Some(&options)), "unknown_scheme", ALICE_TOKEN);
    assert!(error.message.contains("\"digest\""), "{error:?}");
}

#[test]
fn a_forged_principal_changes_nothing() {
    let (_dir, rt) = secured_runtime(|_| {});
    let service = register_context(&rt, HostOptions::default());
    let forged = CallOptions {
        credentials: Some(Credentials {
            scheme: "api-key".into(),
            token: String::new(),
            principal: "alice".into(),
        }),
        ..Default::default()
    };
    let error = refused(context_of(&rt, &service, Some(&forged)), "missing", "");
    assert!(error.message.contains("principal alone"), "{error:?}");
    // Bob's token with Alice's name: refused, not run as either.
    let mut options = credentials(BOB_TOKEN);
    options.credentials.as_mut().unwrap().principal = "alice".into();
    refused(
        context_of(&rt, &service, Some(&options)),
        "principal_mismatch",
        BOB_TOKEN,
    );
    // Without require_authentication a forged name still names nobody.
    let (_dir, open) = secured_runtime(|s| s.require_authentication = false);
    let service = register_context(&open, HostOptions::default());
    let context = context_of(&open, &service, Some(&forged)).unwrap();
    assert_eq!(principal(&context), "", "{context}");
}

#[test]
fn missing_credentials_fail_except_for_health() {
    let (_dir, rt) = secured_runtime(|_| {});
    let error = refused(echo(&rt, None), "missing", "");
    assert!(
        error.message.contains("hms.sys.v1.System/Echo"),
        "{error:?}"
    );
    assert_eq!(error.origin, "hms.sys.v1.System/Echo");
    let health: HealthResponse = call_in(
        &rt,
        "hms.sys.v1.System/Health",
        Format::Protobuf,
        &HealthRequest::default(),
        None,
    )
    .expect("Health needs no credentials");
    assert_eq!(health.status, 1);
    // Bad credentials on Health are still refused: they are never ignored.
    refused(
        call_in::<_, HealthResponse>(
            &rt,
            "hms.sys.v1.System/Health",
            Format::Protobuf,
            &HealthRequest::default(),
            Some(&credentials("nope")),
        ),
        "unknown_token",
        "",
    );
    // Without require_authentication an anonymous call runs, principal empty.
    let (_dir, open) = secured_runtime(|s| s.require_authentication = false);
    echo(&open, None).expect("anonymous calls are allowed");
    refused(echo(&open, Some(&credentials("nope"))), "unknown_token", "");
}

#[test]
fn jwts_of_each_key_type_verify() {
    let (_dir, rt) = secured_runtime(|_| {});
    let service = register_context(&rt, HostOptions::default());
    let keys = keys();
    for (algorithm, pair) in [
        (Algorithm::EdDSA, &keys.ed25519),
        (Algorithm::ES256, &keys.p256),
        (Algorithm::RS256, &keys.rsa),
    ] {
        let token = sign(algorithm, &pair.private, &claims());
        for scheme in ["bearer", ""] {
            let mut options = credentials(&token);
            options.credentials.as_mut().unwrap().scheme = scheme.into();
            let context = context_of(&rt, &service, Some(&options))
                .unwrap_or_else(|e| panic!("{algorithm:?}: {e:?}"));
            assert_eq!(principal(&context), "carol", "{context}");
            assert_eq!(context["roles"], serde_json::json!(["reader", "writer"]));
            assert_eq!(context["principal_attributes"]["team"], "blue");
            assert!(context["principal_attributes"].get("iss").is_none());
        }
    }
}

#[test]
fn bad_jwts_are_refused_with_the_reason() {
    let (_dir, rt) = secured_runtime(|_| {});
    let keys = keys();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = claims();
        change(&mut claims);
        ed_jwt(&claims)
    };
    let good = ed_jwt(&claims());
    let header_none = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(claims().to_string().as_bytes());
    let cases: Vec<(&str, String)> = vec![
        ("expired", with(&|c| c["exp"] = (now() - 120).into())),
        ("not_yet_valid", with(&|c| c["nbf"] = (now() + 300).into())),
        ("audience", with(&|c| c["aud"] = "someone-else".into())),
        ("issuer", with(&|c| c["iss"] = "https://rogue.test".into())),
        (
            "missing_claim",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "missing_claim",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        ("algorithm", format!("{header_none}.{payload}.")),
        // HMAC keyed with the public key's bytes: the classic confusion.
        (
            "algorithm",
            sign(Algorithm::HS256, &keys.ed25519.public, &claims()),
        ),
        (
            "signature",
            sign(Algorithm::EdDSA, &keys.other_ed25519.private, &claims()),
        ),
        ("signature", format!("{}AAAA", &good[..good.len() - 4])),
        ("malformed", good[..good.len() / 2].replace('.', "")),
        (
            "malformed",
            format!("{}.{}", &good[..good.rfind('.').unwrap()], "!!!"),
        ),
        // Claims that are not UTF-8, under a good signature.
        ("malformed", signed_raw(&[0xff, 0xfe, 0x7b, 0x22])),
    ];
    for (reason, token) in cases {
        let mut options = credentials(&token);
        options.credentials.as_mut().unwrap().scheme = "bearer".into();
        let error = refused(echo(&rt, Some(&options)), reason, &token);
        // Nor any of its parts.
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!error.message.contains(part), "{error:?}");
        }
    }
    // Within the leeway (30 s by default) an expired token still passes;
    // with none it does not.
    let just_expired = with(&|c| c["exp"] = (now() - 10).into());
    echo(&rt, Some(&credentials(&just_expired))).expect("within the leeway");
    let (_dir, strict) = secured_runtime(|s| s.jwt.as_mut().unwrap().leeway_seconds = Some(0));
    refused(
        echo(&strict, Some(&credentials(&just_expired))),
        "expired",
        "",
    );
}

#[test]
fn a_token_that_is_not_utf8_is_refused_cleanly() {
    let (_dir, rt) = secured_runtime(|_| {});
    // CallOptions { credentials { token: <0xff 0xfe "secret"> } } in
    // protobuf: a string field that is not UTF-8.
    let token = [0xff, 0xfe, b's', b'e', b'c', b'r', b'e', b't'];
    let mut credentials_bytes = vec![0x12, token.len() as u8];
    credentials_bytes.extend_from_slice(&token);
    let mut options = vec![0x1a, credentials_bytes.len() as u8];
    options.extend_from_slice(&credentials_bytes);
    let request = encode(&EchoRequest::default(), Format::Protobuf);
    let error = call_raw(
        &rt,
        "hms.sys.v1.System/Echo",
        Format::Protobuf,
        &request,
        &options,
    )
    .expect_err("refused");
    assert_eq!(error.code, Code::DecodeError, "{error:?}");
    assert!(!format!("{error:?}").contains("secret"), "{error:?}");
}

#[test]
fn default_credentials_serve_every_call_path_and_a_call_overrides_them() {
    let (_dir, rt) = secured_runtime(|s| {
        s.default_credentials = Some(Credentials {
            scheme: String::new(),
            token: ALICE_TOKEN.into(),
            principal: String::new(),
        })
    });
    let service = register_context(&rt, HostOptions::default());
    let context = context_of(&rt, &service, None).unwrap();
    assert_eq!(principal(&context), "alice");
    let context = context_of(&rt, &service, Some(&credentials(BOB_TOKEN))).unwrap();
    assert_eq!(principal(&context), "bob");
    refused(
        context_of(&rt, &service, Some(&credentials("nope"))),
        "unknown_token",
        "",
    );
    // A method handle and a batch carry the default credentials too.
    let method = rt
        .resolve_method(&format!("{service}/Context"), Format::Protobuf)
        .unwrap();
    let request = encode(&EchoRequest::default(), Format::Protobuf);
    let mut out = Vec::new();
    runtime::call_method(method, &request, &mut out).unwrap();
    let response: EchoResponse = decode(Format::Protobuf, &out);
    let context: serde_json::Value = serde_json::from_str(&response.text).unwrap();
    assert_eq!(principal(&context), "alice");
    let mut results = Vec::new();
    batch::run(
        &batch_frame(&[(method, &request), (method, &request)]),
        &mut results,
    )
    .unwrap();
    for (code, answer) in batch_results(&results) {
        assert_eq!(code, Code::Ok);
        let response: EchoResponse = decode(Format::Protobuf, &answer);
        assert!(response.text.contains("\"alice\""), "{}", response.text);
    }
    runtime::free_method(method).unwrap();
}

#[test]
fn lifecycle_hooks_run_as_the_runtime_itself() {
    use hms_ffi::proto::hms::agent::lifecycle::v1::{
        LifecycleState, RegisterHookRequest, RegisterHookResponse,
    };
    let (_dir, rt) = secured_runtime(|s| {
        s.default_credentials = Some(Credentials {
            scheme: String::new(),
            token: ALICE_TOKEN.into(),
            principal: String::new(),
        })
    });
    let name = unique("sec.v1.Hook");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    rt.register_service(
        common::hook_descriptor(&name),
        Format::Protobuf,
        HostOptions::default(),
        handler(move |reply, _, _, _| {
            let context: serde_json::Value =
                serde_json::from_slice(&common::context_json(reply)).unwrap();
            log.lock().unwrap().push(principal(&context).to_owned());
            reply.set(&[]).unwrap();
        }),
    )
    .unwrap();
    let _: RegisterHookResponse = common::call(
        &rt,
        &format!("{}/RegisterHook", common::LIFECYCLE),
        &RegisterHookRequest {
            method: format!("{name}/On"),
            blocking: true,
            name: "audit".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let agent = common::create_agent(&rt, "hooked");
    common::transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["alice"]);
}

#[test]
fn method_handles_and_batches_without_credentials_are_refused() {
    let (_dir, rt) = secured_runtime(|_| {});
    let method = rt
        .resolve_method("hms.sys.v1.System/Echo", Format::Protobuf)
        .unwrap();
    let request = encode(&EchoRequest::default(), Format::Protobuf);
    refused(
        runtime::call_method(method, &request, &mut Vec::new()),
        "missing",
        "",
    );
    let mut results = Vec::new();
    batch::run(&batch_frame(&[(method, &request)]), &mut results).unwrap();
    assert_eq!(batch_results(&results)[0].0, Code::Unauthenticated);
    runtime::free_method(method).unwrap();
}

#[test]
fn secrets_never_show_in_debug_output() {
    let dir = TempDir::new().unwrap();
    let mut security = security_config(dir.path());
    security.default_credentials = Some(Credentials {
        scheme: "api-key".into(),
        token: ALICE_TOKEN.into(),
        principal: "alice".into(),
    });
    let config = RuntimeConfig {
        security: Some(security),
        ..Default::default()
    };
    assert!(!format!("{config:?}").contains(ALICE_TOKEN));
    let settings = Settings::from_config(config).unwrap();
    let shown = format!("{settings:?}");
    assert!(!shown.contains(ALICE_TOKEN), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let options = credentials(BOB_TOKEN);
    let shown = format!("{options:?} {options:#?}");
    assert!(!shown.contains(BOB_TOKEN), "{shown}");
}

#[test]
fn a_bad_security_section_is_refused_with_its_field() {
    let dir = TempDir::new().unwrap();
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let oct_jwks = dir.path().join("oct.json");
    std::fs::write(
        &oct_jwks,
        r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    let ed_public = dir.path().join("ed.pub");
    std::fs::write(&ed_public, &keys().ed25519.public).unwrap();
    let bad_tokens = dir.path().join("bad-tokens");
    std::fs::write(&bad_tokens, "alice admin\n").unwrap();
    let cases: Vec<(&str, SecurityConfig)> = vec![
        (
            "security.require_authentication",
            SecurityConfig {
                require_authentication: true,
                ..Default::default()
            },
        ),
        (
            "security.api_tokens_file",
            SecurityConfig {
                api_tokens_file: dir.path().join("missing").display().to_string(),
                ..Default::default()
            },
        ),
        (
            "security.api_tokens_file",
            SecurityConfig {
                api_tokens_file: bad_tokens.display().to_string(),
                ..Default::default()
            },
        ),
        (
            "security.api_tokens_env",
            SecurityConfig {
                api_tokens_env: "HMS_TEST_NO_SUCH_VARIABLE".into(),
                ..Default::default()
            },
        ),
        (
            "security.jwt",
            SecurityConfig {
                jwt: Some(JwtVerification::default()),
                ..Default::default()
            },
        ),
        (
            "security.jwt.public_key_files",
            SecurityConfig {
                jwt: Some(JwtVerification {
                    public_key_files: vec![not_a_key.display().to_string()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "security.jwt.jwks_file",
            SecurityConfig {
                jwt: Some(JwtVerification {
                    jwks_file: oct_jwks.display().to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "security.jwt.leeway_seconds",
            SecurityConfig {
                jwt: Some(JwtVerification {
                    public_key_files: vec![ed_public.display().to_string()],
                    leeway_seconds: Some(301),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "security.max_token_bytes",
            SecurityConfig {
                max_token_bytes: 1 << 20,
                ..Default::default()
            },
        ),
    ];
    for (field, security) in cases {
        let config = RuntimeConfig {
            security: Some(security),
            ..Default::default()
        };
        let error = Settings::from_config(config).expect_err(field);
        assert_eq!(error.code, Code::InvalidArgument, "{error:?}");
        assert_eq!(error.details["field"], field, "{error:?}");
    }
}

#[test]
fn a_jwks_file_verifies_by_kid() {
    let dir = TempDir::new().unwrap();
    // The raw Ed25519 key is the last 32 bytes of its SPKI DER.
    let pem = String::from_utf8(keys().ed25519.public.clone()).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let x = base64url(&der[der.len() - 32..]);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]})
            .to_string(),
    )
    .unwrap();
    let (_dir, rt) = secured_runtime(|s| {
        s.api_tokens_file.clear();
        s.jwt = Some(JwtVerification {
            jwks_file: jwks.display().to_string(),
            ..Default::default()
        });
    });
    let key = EncodingKey::from_ed_pem(&keys().ed25519.private).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    echo(&rt, Some(&credentials(&token))).expect("verified by kid k1");
    header.kid = Some("k2".into());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    refused(echo(&rt, Some(&credentials(&token))), "algorithm", &token);
    // API tokens are not configured here.
    refused(
        echo(&rt, Some(&credentials(ALICE_TOKEN))),
        "unknown_token",
        ALICE_TOKEN,
    );
}

#[cfg(feature = "nats")]
pub(crate) mod remote {
    use super::*;
    use common::nats_server::{NatsServer, plain_client};
    use hms_ffi::proto::v1::NatsTransport;

    pub(crate) fn runtime_on(
        server: &NatsServer,
        name: &str,
        exports: &[&str],
        security: Option<SecurityConfig>,
    ) -> Rt {
        let config = RuntimeConfig {
            name: name.into(),
            nats: Some(NatsTransport {
                servers: vec![server.url()],
                export_services: exports.iter().map(|s| s.to_string()).collect(),
                connect_timeout_ms: 5_000,
                request_timeout_ms: 5_000,
                ..Default::default()
            }),
            security,
            ..Default::default()
        };
        Runtime::new(Settings::from_config(config).unwrap()).expect("the runtime connects")
    }

    /// An exporter that requires authentication, with its own default
    /// credentials (which must never stand in for a remote caller's), and
    /// the name of its exported context service.
    fn exporter(server: &NatsServer, dir: &Path) -> (Rt, String) {
        let mut security = security_config(dir);
        security.default_credentials = Some(Credentials {
            scheme: String::new(),
            token: ALICE_TOKEN.into(),
            principal: String::new(),
        });
        let rt = runtime_on(server, "exporter", &[], Some(security));
        let service = register_exported_context(&rt);
        (rt, service)
    }

    #[test]
    fn a_remote_caller_is_authenticated_by_the_exporter() {
        let server = NatsServer::start();
        let dir = TempDir::new().unwrap();
        let (_exporter, service) = exporter(&server, dir.path());
        let caller_security = SecurityConfig {
            default_credentials: Some(Credentials {
                scheme: String::new(),
                token: BOB_TOKEN.into(),
                principal: String::new(),
            }),
            ..Default::default()
        };
        let caller = runtime_on(&server, "caller", &[], Some(caller_security));
        let context = context_of(&caller, &service, None).expect("bob's default token");
        assert_eq!(principal(&context), "bob", "{context}");
        let jwt = ed_jwt(&claims());
        let context = context_of(&caller, &service, Some(&credentials(&jwt))).unwrap();
        assert_eq!(principal(&context), "carol", "{context}");
        assert_eq!(context["roles"], serde_json::json!(["reader", "writer"]));
        let expired = {
            let mut claims = claims();
            claims["exp"] = (now() - 3600).into();
            ed_jwt(&claims)
        };
        refused(
            context_of(&caller, &service, Some(&credentials(&expired))),
            "expired",
            &expired,
        );
    }

    #[test]
    fn a_remote_call_without_credentials_is_refused_by_the_exporter() {
        let server = NatsServer::start();
        let dir = TempDir::new().unwrap();
        let (_exporter, service) = exporter(&server, dir.path());
        let caller = runtime_on(&server, "caller", &[], None);
        let error = refused(context_of(&caller, &service, None), "missing", "");
        // Refused by the exporter, never by the caller.
        assert_eq!(error.origin, "exporter", "{error:?}");
        let forged = CallOptions {
            credentials: Some(Credentials {
                scheme: String::new(),
                token: String::new(),
                principal: "alice".into(),
            }),
            ..Default::default()
        };
        refused(context_of(&caller, &service, Some(&forged)), "missing", "");
    }

    #[test]
    fn a_rogue_client_with_a_forged_principal_header_is_refused() {
        use prost::Message;
        let server = NatsServer::start();
        let dir = TempDir::new().unwrap();
        let (_exporter, service) = exporter(&server, dir.path());
        let (tokio, client) = plain_client(&server);
        let subject = format!("hms.svc.{service}.Context");
        for token in ["", "forged-token"] {
            let forged = Credentials {
                scheme: "api-key".into(),
                token: token.into(),
                principal: "alice".into(),
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Hms-Format", "json");
            headers.insert(
                "Hms-Credentials",
                base64::engine::general_purpose::STANDARD
                    .encode(forged.encode_to_vec())
                    .as_str(),
            );
            let reply = tokio
                .block_on(client.request_with_headers(subject.clone(), headers, "{}".into()))
                .expect("the exporter answers");
            let status = reply.headers.as_ref().and_then(|h| h.get("Hms-Status"));
            assert_eq!(
                status.map(|s| s.as_str()),
                Some((Code::Unauthenticated as i32).to_string().as_str())
            );
            let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
            let expected = if token.is_empty() {
                "missing"
            } else {
                "unknown_token"
            };
            assert_eq!(body["details"]["reason"], expected, "{body}");
            assert!(!reply.payload.windows(12).any(|w| w == b"forged-token"));
        }
    }
}
