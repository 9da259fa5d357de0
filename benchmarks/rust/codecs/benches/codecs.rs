//! The core's codecs on one Agent of about 1 KiB (`core_<format>_<encode|
//! decode>_agent`: exactly the `encode_typed`/`decode_typed` a domain call
//! runs), the core's CBOR codec against minicbor and ciborium on the same
//! data item (`cbor_<lib>_<encode|decode>_value`), and Echo 64 B through
//! the core's dispatch with no FFI (`core_echo_raw_64`: the core's share of
//! every language's `echo_raw_64`), and the same Echo with security on:
//! an API token verified per call (`core_echo_raw_64_api_token`), then
//! Cedar authorization by 20 and 200 policies, a decision from the cache
//! or made on every call (`core_echo_raw_64_authz_<n>_<cached|uncached>`).
//!
//! `cargo bench -p codecs` (benchmarks/rust/run.sh codecs) runs them with
//! criterion, then writes benchmarks/out/rust-codecs.json from criterion's
//! samples (each sample one round). HMS_BENCH_QUICK=1: a few short samples.

use std::hint::black_box;
use std::time::Duration;

use codecs::{Case, ResultFile};
use criterion::Criterion;
use hms_ffi::codec::{self, Format, Limits};
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::v1::Agent;
use hms_ffi::proto::hms::sys::v1::EchoRequest;
use hms_ffi::proto::v1::{
    AuditConfig, AuthorizationConfig, Credentials, RuntimeConfig, SecurityConfig,
};
use sha2::{Digest, Sha256};

const FORMATS: [(Format, &str); 3] = [
    (Format::Protobuf, "protobuf"),
    (Format::Cbor, "cbor"),
    (Format::Json, "json"),
];

/// (id, label, baseline) of every case, in the order of the result file.
fn cases() -> Vec<(String, String, Option<String>)> {
    let mut cases = Vec::new();
    for (_, name) in FORMATS {
        for (op, what) in [
            ("encode", "encode_typed: prost Agent to"),
            ("decode", "decode_typed: bytes to prost Agent,"),
        ] {
            let baseline = (name != "protobuf").then(|| format!("core_protobuf_{op}_agent"));
            cases.push((
                format!("core_{name}_{op}_agent"),
                format!("{what} {name} (the core's codec, ~1 KiB Agent)"),
                baseline,
            ));
        }
    }
    for op in ["encode", "decode"] {
        for (lib, what) in [
            (
                "core",
                "the core's own CBOR codec (rust_core/src/codec/cbor.rs)",
            ),
            ("minicbor", "minicbor Encoder/Decoder, same data model"),
            ("ciborium", "ciborium::Value, into_writer/from_reader"),
        ] {
            let baseline = (lib != "core").then(|| format!("cbor_core_{op}_value"));
            cases.push((
                format!("cbor_{lib}_{op}_value"),
                format!("CBOR {op} of the Agent's data item: {what}"),
                baseline,
            ));
        }
    }
    cases.push((
        "core_echo_raw_64".to_owned(),
        "Echo 64 B: runtime::call_method (the dispatch behind hms_method_call), no FFI".to_owned(),
        None,
    ));
    cases.push((
        "core_echo_raw_64_api_token".to_owned(),
        "core_echo_raw_64 requiring authentication: an API token per call (verified once, \
         then found by its keyed hash)"
            .to_owned(),
        Some("core_echo_raw_64".to_owned()),
    ));
    for (count, kind, what) in authz_variants() {
        cases.push((
            format!("core_echo_raw_64_authz_{count}_{kind}"),
            format!("core_echo_raw_64_api_token authorized by {count} Cedar policies, {what}"),
            Some("core_echo_raw_64_api_token".to_owned()),
        ));
    }
    cases
}

/// (policies, cache, what) of the authorization cases.
fn authz_variants() -> Vec<(usize, &'static str, &'static str)> {
    [20, 200]
        .into_iter()
        .flat_map(|count| {
            [
                (count, "cached", "a method-level decision (cached)"),
                (
                    count,
                    "uncached",
                    "a decision on every call (its policy reads the context)",
                ),
            ]
        })
        .collect()
}

fn bench_core_codecs(c: &mut Criterion) {
    let agent = codecs::agent();
    let limits = Limits::default();
    for (format, name) in FORMATS {
        let mut bytes = Vec::new();
        codec::encode_typed(&agent, format, &mut bytes).expect("the Agent encodes");
        let back: Agent = codec::decode_typed(format, &bytes, &limits).expect("and decodes");
        assert_eq!(back, agent, "{name} round trip");

        let mut out = Vec::with_capacity(4096);
        c.bench_function(&format!("core_{name}_encode_agent"), |b| {
            b.iter(|| {
                out.clear();
                codec::encode_typed(black_box(&agent), format, &mut out).unwrap();
            });
        });
        c.bench_function(&format!("core_{name}_decode_agent"), |b| {
            b.iter(|| codec::decode_typed::<Agent>(format, black_box(&bytes), &limits).unwrap());
        });
    }
}

fn bench_cbor_libraries(c: &mut Criterion) {
    let value = codecs::agent_value();
    let cib = codecs::to_ciborium(&value);
    let mut bytes = Vec::new();
    codec::cbor::encode(&value, &mut bytes);
    let mut out = Vec::with_capacity(4096);

    c.bench_function("cbor_core_encode_value", |b| {
        b.iter(|| {
            out.clear();
            codec::cbor::encode(black_box(&value), &mut out);
        });
    });
    c.bench_function("cbor_minicbor_encode_value", |b| {
        b.iter(|| {
            out.clear();
            codecs::minicbor_encode(black_box(&value), &mut minicbor::Encoder::new(&mut out))
                .unwrap();
        });
    });
    c.bench_function("cbor_ciborium_encode_value", |b| {
        b.iter(|| {
            out.clear();
            ciborium::into_writer(black_box(&cib), &mut out).unwrap();
        });
    });
    c.bench_function("cbor_core_decode_value", |b| {
        b.iter(|| codec::cbor::decode(black_box(&bytes), 64).unwrap());
    });
    c.bench_function("cbor_minicbor_decode_value", |b| {
        b.iter(|| codecs::minicbor_decode(&mut minicbor::Decoder::new(black_box(&bytes))).unwrap());
    });
    c.bench_function("cbor_ciborium_decode_value", |b| {
        b.iter(|| {
            ciborium::from_reader::<ciborium::Value, _>(black_box(bytes.as_slice())).unwrap()
        });
    });
}

fn bench_core_echo(c: &mut Criterion) {
    bench_echo(c, "core_echo_raw_64", Settings::default());
}

const BENCH_TOKEN: &str = "hms_bench_authz_0123456789abcdef0123456789";

/// `count` Cedar policies: one permitting the role "reader" to call Echo
/// (with `condition` after it), the others permitting roles nobody has,
/// each a whole service, so every policy is looked at.
fn policies(count: usize, condition: &str) -> String {
    let mut text = format!(
        "permit (principal in Hms::Role::\"reader\", \
         action == Hms::Action::\"hms.sys.v1.System/Echo\", resource){condition};\n"
    );
    for n in 1..count {
        text.push_str(&format!(
            "permit (principal in Hms::Role::\"team-{n}\", \
             action in Hms::Action::\"hms.agent.v1.AgentService\", resource);\n"
        ));
    }
    text
}

/// Echo on runtimes that authenticate (and authorize) every call, the
/// audit log off so that each figure is the decision alone.
fn bench_core_security(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hms-bench-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let salt = b"0123456789abcdef";
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(BENCH_TOKEN)
        .finalize();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let tokens = dir.join("tokens");
    let line = format!("bench reader sha256:{}:{}\n", hex(salt), hex(&digest));
    std::fs::write(&tokens, line).expect("the token file");
    let secured = |authorization: Option<AuthorizationConfig>| {
        let config = RuntimeConfig {
            security: Some(SecurityConfig {
                require_authentication: true,
                api_tokens_file: tokens.display().to_string(),
                default_credentials: Some(Credentials {
                    scheme: "api-key".into(),
                    token: BENCH_TOKEN.into(),
                    principal: String::new(),
                }),
                authorization,
                audit: Some(AuditConfig {
                    enabled: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Settings::from_config(config).expect("the security settings")
    };
    bench_echo(c, "core_echo_raw_64_api_token", secured(None));
    for (count, kind, _) in authz_variants() {
        let condition = if kind == "cached" {
            ""
        } else {
            " when { context.transport == \"local\" }"
        };
        let file = dir.join(format!("{kind}-{count}.cedar"));
        std::fs::write(&file, policies(count, condition)).expect("the policy file");
        let authorization = AuthorizationConfig {
            policy_files: vec![file.display().to_string()],
            ..Default::default()
        };
        let id = format!("core_echo_raw_64_authz_{count}_{kind}");
        bench_echo(c, &id, secured(Some(authorization)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Echo 64 B through `runtime::call_method` on a runtime of `settings`.
fn bench_echo(c: &mut Criterion, id: &str, settings: Settings) {
    let rt = hms_ffi::runtime::create(settings).expect("runtime");
    let echo = hms_ffi::runtime::resolve_method(rt, "hms.sys.v1.System/Echo", Format::Protobuf)
        .expect("Echo resolves");
    let payload: Vec<u8> = (0..64u32).map(|i| (i % 251) as u8).collect();
    let mut request = Vec::new();
    let message = EchoRequest {
        payload: payload.into(),
        ..Default::default()
    };
    codec::encode_typed(&message, Format::Protobuf, &mut request).unwrap();
    let mut out = Vec::with_capacity(256);
    hms_ffi::runtime::call_method(echo, &request, &mut out).expect("Echo answers");
    assert_eq!(out, request, "Echo returns its request");

    c.bench_function(id, |b| {
        b.iter(|| {
            out.clear();
            hms_ffi::runtime::call_method(echo, black_box(&request), &mut out).unwrap();
        });
    });
    hms_ffi::runtime::free(rt).expect("runtime freed");
}

/// The version of `package` in this workspace's Cargo.lock.
fn locked_version(package: &str) -> String {
    let lock = include_str!("../../Cargo.lock");
    let needle = format!("name = \"{package}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}

fn rustc_version() -> String {
    std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "rustc ?".to_owned(), |v| v.trim().to_owned())
}

fn write_results(quick: bool) -> Result<(), String> {
    let dir = codecs::criterion_dir();
    let cases = cases()
        .iter()
        .map(|(id, label, baseline)| {
            codecs::case_from_criterion(&dir, id, label, baseline.as_deref())
        })
        .collect::<Result<Vec<Case>, String>>()?;
    let file = ResultFile {
        language: "Rust".to_owned(),
        version: format!(
            "{}, hms_ffi {}, criterion {}, minicbor {}, ciborium {}",
            rustc_version(),
            locked_version("hms_ffi"),
            locked_version("criterion"),
            locked_version("minicbor"),
            locked_version("ciborium"),
        ),
        notes: vec![
            format!(
                "criterion{}: each sample is one round (time per iteration); median and \
                 quartiles over the samples; iterations is the mean per sample.",
                if quick { " (quick mode)" } else { "" }
            ),
            "core_*_agent is the codec work of a domain call: encode_typed/decode_typed \
             on the prost Agent (protobuf through prost, CBOR and JSON through \
             prost-reflect's DynamicMessage and the core's own value model)."
                .to_owned(),
            "cbor_*_value: the same data item (the Agent as CBOR) from and to each \
             library's own in-memory model; the core's encoder also sorts map keys \
             (RFC 8949 deterministic form); minicbor and ciborium write them in the \
             order given (sorted already), so all three write the same bytes."
                .to_owned(),
        ],
        cases,
        memory: Vec::new(),
    };
    let out = codecs::out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let path = out.join("rust-codecs.json");
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn main() {
    let quick = std::env::var("HMS_BENCH_QUICK").is_ok_and(|v| v == "1");
    // `cargo test --benches` passes --test (run each once, no samples kept);
    // `--list` only lists.
    let measuring = !std::env::args().any(|a| a == "--test" || a == "--list");
    let base = if quick {
        Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .nresamples(1_000)
    } else {
        Criterion::default()
            .sample_size(40)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .nresamples(10_000)
    };
    let mut c = base.configure_from_args();
    if measuring {
        // Fresh samples only: a case left from an earlier run must not pass
        // for one of this run.
        let dir = codecs::criterion_dir();
        for (id, _, _) in cases() {
            let _ = std::fs::remove_dir_all(dir.join(&id));
        }
    }
    bench_core_codecs(&mut c);
    bench_cbor_libraries(&mut c);
    bench_core_echo(&mut c);
    bench_core_security(&mut c);
    c.final_summary();
    if measuring && let Err(e) = write_results(quick) {
        eprintln!("codecs: {e}");
        std::process::exit(1);
    }
}
