//! The audit log (docs/security.md, "Audit log"): what is recorded and
//! what never is, the chain and its verification against every kind of
//! tampering, failing closed (or open) when the log cannot be written, and
//! no returned call lost to a SIGKILL.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{LIFECYCLE, call, call_in, create_agent, expect_code, transition};
use hms_ffi::audit::{Audit, AuditKind, AuditRecord, AuditSettings, Chain};
use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::lifecycle::v1::{
    LifecycleState as S, RegisterHookRequest, RegisterHookResponse,
};
use hms_ffi::proto::hms::audit::v1::{
    ReadRequest, ReadResponse, Tamper, VerifyRequest, VerifyResponse,
};
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse};
use hms_ffi::proto::v1::{
    AuditConfig, CallOptions, Credentials, NatsTransport, RuntimeConfig, SecurityConfig,
};
use hms_ffi::runtime::{HostOptions, Runtime};
use hms_ffi::{Code, HmsError};
use serde_json::Value;
use tempfile::TempDir;

type Rt = Arc<Runtime>;

const ECHO: &str = "hms.sys.v1.System/Echo";
const AUDIT: &str = "hms.audit.v1.Audit";
const ALICE_TOKEN: &str = "hms_alice_audit_5c0ffee5c0ffee5c0ffee5c0ffee";
const WRONG_TOKEN: &str = "hms_wrong_audit_d3adb33fd3adb33fd3adb33fd3ad";

/// A security section with one API token (alice), calls without one still
/// allowed, and `audit` as the log's configuration.
fn security(dir: &Path, audit: AuditConfig) -> SecurityConfig {
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        crate::common::token_line("alice", "ops", b"0123456789abcdef", ALICE_TOKEN) + "\n",
    )
    .unwrap();
    SecurityConfig {
        api_tokens_file: tokens.display().to_string(),
        audit: Some(audit),
        ..Default::default()
    }
}

fn audited(data_dir: Option<&Path>, audit: AuditConfig) -> Result<Rt, HmsError> {
    let dir = TempDir::new().unwrap();
    let config = RuntimeConfig {
        data_dir: data_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        security: Some(security(dir.path(), audit)),
        ..Default::default()
    };
    Runtime::new(Settings::from_config(config)?)
}

fn log_of(dir: &Path) -> PathBuf {
    dir.join(hms_ffi::audit::DEFAULT_FILE_NAME)
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

fn verify(path: &Path, key: Option<&Path>) -> VerifyResponse {
    hms_ffi::audit::verify_file(path, &Chain::from_key_file(key).unwrap()).unwrap()
}

fn wrong_token_echo(rt: &Rt) -> HmsError {
    let options = CallOptions {
        credentials: Some(Credentials {
            scheme: "api-key".into(),
            token: WRONG_TOKEN.into(),
            principal: "mallory".into(),
        }),
        trace_id: "trace-auth-1".into(),
        ..Default::default()
    };
    expect_code(
        call_in::<_, EchoResponse>(
            rt,
            ECHO,
            Format::Protobuf,
            &EchoRequest {
                text: "request body never logged".into(),
                ..Default::default()
            },
            Some(&options),
        ),
        Code::Unauthenticated,
    )
}

#[test]
fn auth_failures_transitions_vetoes_and_the_start_are_recorded_without_secrets() {
    let dir = TempDir::new().unwrap();
    let rt = audited(Some(dir.path()), AuditConfig::default()).unwrap();
    wrong_token_echo(&rt);
    let agent = create_agent(&rt, "audited");
    transition(&rt, &agent.id, S::Active, false).unwrap();
    let hooks = common::unique("audit.v1.Veto");
    rt.register_service(
        common::hook_descriptor(&hooks),
        Format::Protobuf,
        HostOptions::default(),
        common::failing(Code::PermissionDenied, "not today"),
    )
    .unwrap();
    let _: RegisterHookResponse = call(
        &rt,
        &format!("{LIFECYCLE}/RegisterHook"),
        &RegisterHookRequest {
            method: format!("{hooks}/On"),
            name: "veto pause".into(),
            blocking: true,
            to_states: vec![S::Paused as i32],
            ..Default::default()
        },
    )
    .unwrap();
    expect_code(
        transition(&rt, &agent.id, S::Paused, false),
        Code::PermissionDenied,
    );

    let path = log_of(dir.path());
    let log = records(&path);
    let sequences: Vec<u64> = log.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(sequences, (1..=log.len() as u64).collect::<Vec<_>>());

    let started = of_kind(&log, "security_change");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["details"]["event"], "runtime_started");
    let tokens_file = started[0]["details"]["api_tokens_file"].as_str().unwrap();
    assert!(tokens_file.ends_with("/tokens"), "{tokens_file}");

    let failures = of_kind(&log, "authentication_failure");
    assert_eq!(failures.len(), 1, "{log:#?}");
    let failure = failures[0];
    assert_eq!(failure["method"], ECHO);
    assert_eq!(failure["principal"], "", "a failed caller is nobody");
    assert_eq!(failure["details"]["claimed_principal"], "mallory");
    assert_eq!(failure["details"]["reason"], "unknown_token");
    assert_eq!(failure["decision"], "deny");
    assert_eq!(failure["status"], Code::Unauthenticated as i32);
    assert_eq!(failure["trace_id"], "trace-auth-1");
    assert_eq!(failure["transport"], "local");

    let transitions = of_kind(&log, "lifecycle_transition");
    assert_eq!(transitions.len(), 1);
    let made = transitions[0];
    assert_eq!(made["method"], format!("{LIFECYCLE}/Transition"));
    assert_eq!(made["resource"], format!("agent:{}", agent.id));
    assert_eq!(made["details"]["from"], "INITIALIZED");
    assert_eq!(made["details"]["to"], "ACTIVE");
    assert_eq!(made["details"]["sequence"], "1");
    assert_eq!(made["status"], 0);

    let vetoes = of_kind(&log, "hook_veto");
    assert_eq!(vetoes.len(), 1);
    let veto = vetoes[0];
    assert_eq!(veto["decision"], "veto");
    assert_eq!(veto["status"], Code::PermissionDenied as i32);
    assert_eq!(veto["details"]["hook_name"], "veto pause");
    assert_eq!(veto["details"]["to"], "PAUSED");
    assert_eq!(veto["resource"], format!("agent:{}", agent.id));

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [WRONG_TOKEN, ALICE_TOKEN, "request body never logged"] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
    let verified = verify(&path, None);
    assert_eq!(verified.first_break, None);
    assert_eq!(verified.records, log.len() as u64);
}

#[test]
fn every_authorization_decision_is_recorded_allow_and_deny() {
    let dir = TempDir::new().unwrap();
    let policies = dir.path().join("policies.cedar");
    std::fs::write(
        &policies,
        "@id(\"ops-echo\")\npermit (principal in Hms::Role::\"ops\", \
         action == Hms::Action::\"hms.sys.v1.System/Echo\", resource);\n",
    )
    .unwrap();
    let mut security = security(dir.path(), AuditConfig::default());
    security.authorization = Some(hms_ffi::proto::v1::AuthorizationConfig {
        policy_files: vec![policies.display().to_string()],
        ..Default::default()
    });
    let config = RuntimeConfig {
        data_dir: dir.path().display().to_string(),
        security: Some(security),
        ..Default::default()
    };
    let rt = Runtime::new(Settings::from_config(config).unwrap()).unwrap();
    let alice = CallOptions {
        credentials: Some(Credentials {
            scheme: "api-key".into(),
            token: ALICE_TOKEN.into(),
            principal: String::new(),
        }),
        trace_id: "trace-authz-1".into(),
        ..Default::default()
    };
    let echo = EchoRequest {
        text: "allowed".into(),
        ..Default::default()
    };
    call_in::<_, EchoResponse>(&rt, ECHO, Format::Protobuf, &echo, Some(&alice)).unwrap();
    // The cache answers the second time: recorded all the same.
    call_in::<_, EchoResponse>(&rt, ECHO, Format::Protobuf, &echo, Some(&alice)).unwrap();
    expect_code(
        call_in::<_, hms_ffi::proto::hms::agent::v1::ListAgentsResponse>(
            &rt,
            "hms.agent.v1.AgentService/ListAgents",
            Format::Protobuf,
            &hms_ffi::proto::hms::agent::v1::ListAgentsRequest::default(),
            Some(&alice),
        ),
        Code::PermissionDenied,
    );

    let path = log_of(dir.path());
    let log = records(&path);
    let decisions = of_kind(&log, "authorization_decision");
    assert_eq!(decisions.len(), 3, "{log:#?}");
    for allowed in &decisions[..2] {
        assert_eq!(allowed["principal"], "alice");
        assert_eq!(allowed["method"], ECHO);
        assert_eq!(allowed["decision"], "allow");
        assert_eq!(allowed["status"], 0);
        assert_eq!(allowed["resource"], "runtime:runtime");
        assert_eq!(allowed["details"]["policies"], "ops-echo");
        assert_eq!(allowed["trace_id"], "trace-authz-1");
        assert_eq!(allowed["transport"], "local");
    }
    let denied = decisions[2];
    assert_eq!(denied["method"], "hms.agent.v1.AgentService/ListAgents");
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["status"], Code::PermissionDenied as i32);
    let started = of_kind(&log, "security_change");
    assert_eq!(
        started[0]["details"]["authorization.policy_files"],
        policies.display().to_string()
    );
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains(ALICE_TOKEN)
    );
    assert_eq!(verify(&path, None).first_break, None);
}

#[test]
fn a_restarted_runtime_continues_the_chain() {
    let dir = TempDir::new().unwrap();
    let rt = audited(Some(dir.path()), AuditConfig::default()).unwrap();
    wrong_token_echo(&rt);
    rt.close();
    drop(rt);
    let rt = audited(Some(dir.path()), AuditConfig::default()).unwrap();
    wrong_token_echo(&rt);
    let path = log_of(dir.path());
    assert_eq!(records(&path).len(), 4);
    let verified = verify(&path, None);
    assert_eq!((verified.records, verified.first_break), (4, None));
}

#[test]
fn a_log_with_a_broken_tail_is_refused_not_forked() {
    let dir = TempDir::new().unwrap();
    let key = key_file(dir.path());
    let keyed = || AuditConfig {
        hmac_key_file: key.display().to_string(),
        ..Default::default()
    };
    drop(audited(Some(dir.path()), keyed()).unwrap());
    let path = log_of(dir.path());

    let error = expect_code(
        audited(Some(dir.path()), AuditConfig::default()),
        Code::DataLoss,
    );
    assert!(error.message.contains("does not verify"), "{error:?}");

    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":2,\"time\":");
    std::fs::write(&path, &bytes).unwrap();
    let error = expect_code(audited(Some(dir.path()), keyed()), Code::DataLoss);
    assert!(error.message.contains("cut short"), "{error:?}");
    assert!(error.message.contains("hms audit verify"), "{error:?}");
    assert_eq!(error.details.get("line").map(String::as_str), Some("2"));
}

fn key_file(dir: &Path) -> PathBuf {
    let key = dir.join("audit.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    key
}

#[test]
fn bad_audit_configs_are_refused() {
    let dir = TempDir::new().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"too short").unwrap();
    for (audit, field) in [
        (
            AuditConfig {
                hmac_key_file: short.display().to_string(),
                ..Default::default()
            },
            "security.audit.hmac_key_file",
        ),
        (
            AuditConfig {
                hmac_key_file: dir.path().join("missing").display().to_string(),
                ..Default::default()
            },
            "security.audit.hmac_key_file",
        ),
        (
            AuditConfig {
                file_name: "../escape.log".into(),
                ..Default::default()
            },
            "security.audit.file_name",
        ),
    ] {
        let error = expect_code(audited(Some(dir.path()), audit), Code::InvalidArgument);
        assert_eq!(error.details.get("field").map(String::as_str), Some(field));
    }
    let error = expect_code(
        Settings::from_config(RuntimeConfig {
            nats: Some(NatsTransport {
                servers: vec!["nats://127.0.0.1:1".into()],
                export_services: vec![AUDIT.into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        Code::InvalidArgument,
    );
    assert!(error.message.contains("never exported"), "{error:?}");
}

/// A log of `count` records written by `Audit` itself.
fn write_log(path: &Path, key: Option<&Path>, count: usize) {
    let settings = AuditSettings {
        hmac_key_file: key.map(Path::to_path_buf),
        file_name: path.file_name().unwrap().to_str().unwrap().into(),
        fail_open: false,
        sync_each_record: false,
        security_summary: Default::default(),
    };
    let audit = Audit::open(&settings, Some(path.parent().unwrap()), "writer").unwrap();
    for n in 0..count {
        audit
            .record(
                AuditRecord {
                    principal: format!("user{n}"),
                    method: "demo.v1.Thing/Do".into(),
                    resource: format!("thing:{n}"),
                    ..AuditRecord::new(AuditKind::AuthorizationDecision, "allow", Code::Ok)
                }
                .with_detail("n", n),
            )
            .unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String], final_newline: bool) {
    let mut text = lines.join("\n");
    if final_newline {
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn expect_break(path: &Path, key: Option<&Path>, record: usize, tamper: Tamper, what: &str) {
    let verified = verify(path, key);
    let found = verified
        .first_break
        .unwrap_or_else(|| panic!("{what} of record {record} went unnoticed"));
    assert_eq!(
        (found.sequence, found.line, found.tamper),
        (record as u64, record as u64, tamper as i32),
        "{what} of record {record}: {found:?}"
    );
    assert_eq!(verified.records, record as u64 - 1, "{what}");
}

#[test]
fn every_kind_of_tampering_is_found_at_its_record() {
    const COUNT: usize = 6;
    let dir = TempDir::new().unwrap();
    let key = key_file(dir.path());
    for key in [None, Some(key.as_path())] {
        let path = dir.path().join(if key.is_some() {
            "keyed.log"
        } else {
            "plain.log"
        });
        write_log(&path, key, COUNT);
        let intact = lines(&path);
        let verified = verify(&path, key);
        assert_eq!(
            (verified.records, verified.first_break),
            (COUNT as u64, None)
        );
        for record in 1..=COUNT {
            let at = record - 1;

            let mut edited = intact.clone();
            edited[at] = edited[at].replacen("\"allow\"", "\"deny\"", 1);
            write_lines(&path, &edited, true);
            expect_break(&path, key, record, Tamper::Edited, "editing");

            let mut spaced = intact.clone();
            spaced[at] = spaced[at].replacen(",", ", ", 1);
            write_lines(&path, &spaced, true);
            expect_break(&path, key, record, Tamper::Edited, "reformatting");

            let mut cut = intact.clone();
            cut[at] = intact[at][..intact[at].len() / 2].to_owned();
            write_lines(&path, &cut, true);
            expect_break(&path, key, record, Tamper::Truncated, "truncating");

            let mut cut_at_end = intact[..record].to_vec();
            cut_at_end[at] = intact[at][..intact[at].len() - 3].to_owned();
            write_lines(&path, &cut_at_end, false);
            expect_break(&path, key, record, Tamper::Truncated, "cutting the log in");

            if record < COUNT {
                let mut removed = intact.clone();
                removed.remove(at);
                write_lines(&path, &removed, true);
                expect_break(&path, key, record, Tamper::Removed, "removing");

                let mut swapped = intact.clone();
                swapped.swap(at, at + 1);
                write_lines(&path, &swapped, true);
                expect_break(&path, key, record, Tamper::Reordered, "swapping");
            }
        }
        // Records cut off at the end leave an intact, shorter chain: what
        // tells is the last sequence and hash, kept elsewhere.
        write_lines(&path, &intact[..COUNT - 1], true);
        let verified = verify(&path, key);
        assert_eq!(verified.first_break, None);
        assert_eq!(verified.last_sequence, COUNT as u64 - 1);
    }
    // A whole log rewritten with a plain SHA-256 chain fails under the key,
    // at its first record, and says how.
    let rewritten = dir.path().join("rewritten.log");
    write_log(&rewritten, None, COUNT);
    expect_break(&rewritten, Some(&key), 1, Tamper::Edited, "re-chaining");
    let found = verify(&rewritten, Some(&key)).first_break.unwrap();
    assert!(found.message.contains("plain SHA-256"), "{found:?}");
}

#[test]
fn a_full_disk_fails_closed_by_default_and_open_when_configured() {
    let dir = TempDir::new().unwrap();
    std::os::unix::fs::symlink("/dev/full", log_of(dir.path())).unwrap();
    let error = expect_code(
        audited(Some(dir.path()), AuditConfig::default()),
        Code::Unavailable,
    );
    assert!(error.message.contains("audit.log"), "{error:?}");
    assert!(error.message.contains("No space left"), "{error:?}");

    let rt = audited(
        Some(dir.path()),
        AuditConfig {
            fail_open: true,
            ..Default::default()
        },
    )
    .unwrap();
    wrong_token_echo(&rt);
    let agent = create_agent(&rt, "unrecorded");
    transition(&rt, &agent.id, S::Active, false).unwrap();

    // A record a runtime's log refuses fails the call that records it.
    let full = Audit::open(
        &AuditSettings::from_config(&security(dir.path(), AuditConfig::default()))
            .unwrap()
            .unwrap(),
        Some(dir.path()),
        "full",
    )
    .unwrap();
    let error = expect_code(
        full.record(AuditRecord::authorization_decision(
            "alice", ECHO, "", true, "", false,
        )),
        Code::Unavailable,
    );
    assert!(error.message.contains("No space left"), "{error:?}");
}

#[test]
fn an_unwritable_log_fails_closed_even_for_root() {
    let dir = TempDir::new().unwrap();
    // A directory where the log belongs: no user, root included, can
    // append to it.
    std::fs::create_dir(log_of(dir.path())).unwrap();
    let error = expect_code(
        audited(Some(dir.path()), AuditConfig::default()),
        Code::Unavailable,
    );
    assert!(
        error.message.contains("cannot open the audit log"),
        "{error:?}"
    );
    assert!(error.message.contains("Is a directory"), "{error:?}");
}

#[test]
fn an_in_memory_log_is_read_and_verified_through_the_audit_service() {
    let rt = audited(None, AuditConfig::default()).unwrap();
    wrong_token_echo(&rt);
    wrong_token_echo(&rt);
    let read: ReadResponse = call(&rt, &format!("{AUDIT}/Read"), &ReadRequest::default()).unwrap();
    assert_eq!(read.records.len(), 3);
    assert!(read.records[2].contains("authentication_failure"));
    let again: ReadResponse = call(
        &rt,
        &format!("{AUDIT}/Read"),
        &ReadRequest {
            offset: read.next_offset,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(again.records.is_empty());
    let verified: VerifyResponse =
        call(&rt, &format!("{AUDIT}/Verify"), &VerifyRequest::default()).unwrap();
    assert_eq!((verified.records, verified.first_break), (3, None));

    let off = audited(
        None,
        AuditConfig {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let error = expect_code(
        call::<_, ReadResponse>(&off, &format!("{AUDIT}/Read"), &ReadRequest::default()),
        Code::FailedPrecondition,
    );
    assert!(error.message.contains("keeps no audit log"), "{error:?}");
}

#[test]
fn the_audit_service_reads_files_from_an_offset_and_refuses_past_the_end() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("some.log");
    write_log(&path, None, 3);
    let rt = common::new_runtime();
    let read = |offset: u64, max_records: u32| -> Result<ReadResponse, HmsError> {
        call(
            &rt,
            &format!("{AUDIT}/Read"),
            &ReadRequest {
                path: path.display().to_string(),
                offset,
                max_records,
            },
        )
    };
    let first = read(0, 2).unwrap();
    assert_eq!(first.records, lines(&path)[..2]);
    let rest = read(first.next_offset, 0).unwrap();
    assert_eq!(rest.records, lines(&path)[2..]);
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(rest.next_offset, len);
    let error = expect_code(read(len + 1, 0), Code::OutOfRange);
    assert!(error.message.contains("past the end"), "{error:?}");
    let verified: VerifyResponse = call(
        &rt,
        &format!("{AUDIT}/Verify"),
        &VerifyRequest {
            path: path.display().to_string(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(verified.records, 3);
    let error = expect_code(
        call::<_, VerifyResponse>(
            &rt,
            &format!("{AUDIT}/Verify"),
            &VerifyRequest {
                path: dir.path().join("missing.log").display().to_string(),
                ..Default::default()
            },
        ),
        Code::Unavailable,
    );
    assert!(error.message.contains("missing.log"), "{error:?}");
}

const CHILD_DIR: &str = "HMS_AUDIT_SIGKILL_CHILD_DIR";

/// Run by `the_log_survives_sigkill_with_every_returned_call` in a child
/// process: transitions one agent back and forth, printing the sequence of
/// each transition once its call returned, until it is killed.
#[test]
#[ignore = "the child process of the_log_survives_sigkill_with_every_returned_call"]
fn sigkill_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("run by its parent test"));
    let rt = audited(Some(&dir), AuditConfig::default()).unwrap();
    let agent = create_agent(&rt, "killed");
    println!("agent {}", agent.id);
    for n in 0u64.. {
        let to = if n % 2 == 0 { S::Active } else { S::Paused };
        let made = transition(&rt, &agent.id, to, false).unwrap();
        println!("returned {}", made.event.unwrap().sequence);
    }
}

#[test]
fn the_log_survives_sigkill_with_every_returned_call() {
    let dir = TempDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "audit::sigkill_child",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut agent = String::new();
    let mut returned = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("agent ") {
            agent = id.to_owned();
        } else if let Some(sequence) = line.strip_prefix("returned ") {
            returned.push(sequence.to_owned());
            if returned.len() == 200 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(returned.len(), 200, "the child stopped early");
    let path = log_of(dir.path());
    let verified = verify(&path, None);
    assert_eq!(verified.first_break, None);
    let recorded: std::collections::HashSet<String> = records(&path)
        .iter()
        .filter(|r| r["kind"] == "lifecycle_transition")
        .filter(|r| r["resource"] == format!("agent:{agent}"))
        .map(|r| r["details"]["sequence"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = returned.iter().filter(|s| !recorded.contains(*s)).collect();
    assert!(missing.is_empty(), "returned but not recorded: {missing:?}");
    // The killed runtime's log is continued, its chain unbroken.
    drop(audited(Some(dir.path()), AuditConfig::default()).unwrap());
    let after = verify(&path, None);
    assert_eq!(after.first_break, None);
    assert_eq!(after.records, verified.records + 1);
}
