//! Authorization (docs/security.md): Cedar policies over the verified
//! principal, the method and the record it names; the shared decision
//! table (tests/security/decisions.json) locally and over NATS; invalid
//! policies, reloads (also under load) and the decision cache.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{call_in, call_raw, encode, expect_code, token_line};
use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::security::v1::{ReloadPoliciesRequest, ReloadPoliciesResponse};
use hms_ffi::proto::hms::sys::v1::{EchoRequest, EchoResponse};
use hms_ffi::proto::v1::{
    AuthorizationConfig, CallOptions, Credentials, RuntimeConfig, SecurityConfig,
};
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};
use tempfile::TempDir;

type Rt = Arc<Runtime>;

const ECHO: &str = "hms.sys.v1.System/Echo";
const RELOAD: &str = "hms.security.v1.Security/ReloadPolicies";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn table() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("tests/security/decisions.json"))
        .expect("the decision table");
    serde_json::from_str(&text).expect("the decision table is JSON")
}

/// Writes the token file of the table's principals into `dir`.
fn token_file(dir: &Path, table: &serde_json::Value) -> String {
    let mut lines = String::new();
    for (name, principal) in table["principals"].as_object().unwrap() {
        if principal["in_token_file"] != true {
            continue;
        }
        let roles: Vec<&str> = principal["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let roles = if roles.is_empty() {
            "-".to_owned()
        } else {
            roles.join(",")
        };
        let token = principal["token"].as_str().unwrap();
        lines.push_str(&token_line(
            name,
            &roles,
            name.as_bytes().repeat(8).as_slice(),
            token,
        ));
        lines.push('\n');
    }
    let path = dir.join("tokens");
    std::fs::write(&path, lines).unwrap();
    path.display().to_string()
}

/// A security section with the table's tokens and `policy_files`.
fn security(dir: &Path, policy_files: Vec<String>) -> SecurityConfig {
    SecurityConfig {
        api_tokens_file: token_file(dir, &table()),
        authorization: Some(AuthorizationConfig {
            policy_files,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn starter() -> String {
    repo_root()
        .join(table()["policies"].as_str().unwrap())
        .display()
        .to_string()
}

fn runtime_with(security: SecurityConfig) -> Result<Rt, HmsError> {
    let config = RuntimeConfig {
        security: Some(security),
        ..Default::default()
    };
    Runtime::new(Settings::from_config(config)?)
}

fn policy_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn as_principal(name: &str) -> Option<CallOptions> {
    let token = table()["principals"][name]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("principal {name} is in the table"))
        .to_owned();
    (!token.is_empty()).then(|| CallOptions {
        credentials: Some(Credentials {
            scheme: "api-key".into(),
            token,
            principal: String::new(),
        }),
        ..Default::default()
    })
}

fn echo_as(rt: &Rt, principal: &str) -> Result<EchoResponse, HmsError> {
    call_in(
        rt,
        ECHO,
        Format::Protobuf,
        &EchoRequest::default(),
        as_principal(principal).as_ref(),
    )
}

fn reload(rt: &Rt, principal: &str, text: &str) -> Result<ReloadPoliciesResponse, HmsError> {
    call_in(
        rt,
        RELOAD,
        Format::Protobuf,
        &ReloadPoliciesRequest {
            policy_text: text.into(),
        },
        as_principal(principal).as_ref(),
    )
}

/// "PermissionDenied" as the table names it: "PERMISSION_DENIED".
fn code_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn substitute(text: &str, saved: &HashMap<String, String>) -> String {
    saved.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("${{{name}}}"), value)
    })
}

/// Runs the table against `callee`'s policies through `caller` (the same
/// runtime locally, another one over NATS); `(case, expected, got)` of
/// every case that did not come out as expected.
fn run_table(caller: &Rt, remote: bool) -> Vec<(String, String, String)> {
    let table = table();
    let mut saved = HashMap::new();
    let json_call = |principal: &str, method: &str, request: &str| {
        let options = as_principal(principal)
            .map(|o| encode(&o, Format::Json))
            .unwrap_or_default();
        call_raw(caller, method, Format::Json, request.as_bytes(), &options)
    };
    for step in table["setup"].as_array().unwrap() {
        let request = substitute(step["request"].as_str().unwrap(), &saved);
        let principal = step["principal"].as_str().unwrap();
        let method = step["method"].as_str().unwrap();
        let out = json_call(principal, method, &request)
            .unwrap_or_else(|e| panic!("setup {method} as {principal}: {e:?}"));
        let response: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for (name, field) in step["save"].as_object().unwrap() {
            let value = response[field.as_str().unwrap()].as_str().unwrap();
            saved.insert(name.clone(), value.to_owned());
        }
    }
    let mut wrong = Vec::new();
    for case in table["cases"].as_array().unwrap() {
        let expected = match &case["expect_remote"] {
            serde_json::Value::String(code) if remote => code.clone(),
            _ => case["expect"].as_str().unwrap().to_owned(),
        };
        let request = substitute(case["request"].as_str().unwrap(), &saved);
        let got = match json_call(
            case["principal"].as_str().unwrap(),
            case["method"].as_str().unwrap(),
            &request,
        ) {
            Ok(_) => "OK".to_owned(),
            Err(error) => code_name(error.code),
        };
        if got != expected {
            wrong.push((case["id"].as_str().unwrap().to_owned(), expected, got));
        }
    }
    wrong
}

#[test]
fn the_decision_table_holds_for_the_starter_policies() {
    let dir = TempDir::new().unwrap();
    let rt = runtime_with(security(dir.path(), vec![starter()])).unwrap();
    let wrong = run_table(&rt, false);
    assert!(wrong.is_empty(), "(case, expected, got): {wrong:#?}");
}

#[test]
fn without_policies_every_authenticated_call_runs() {
    let dir = TempDir::new().unwrap();
    let mut config = security(dir.path(), Vec::new());
    config.authorization = None;
    let rt = runtime_with(config).unwrap();
    echo_as(&rt, "nobody").expect("no policy set: nothing is refused");
    echo_as(&rt, "anonymous").expect("authentication is not required");
    let error = expect_code(reload(&rt, "admin", ""), Code::NotFound);
    assert!(
        error.message.contains("hms.security.v1.Security"),
        "{error:?}"
    );
}

#[test]
fn a_denial_names_principal_action_resource_and_reason_and_no_request() {
    let dir = TempDir::new().unwrap();
    let rt = runtime_with(security(dir.path(), vec![starter()])).unwrap();
    let secret_text = "the body of a request, never echoed";
    let error = expect_code(
        call_in::<_, EchoResponse>(
            &rt,
            ECHO,
            Format::Protobuf,
            &EchoRequest {
                text: secret_text.into(),
                ..Default::default()
            },
            as_principal("nobody").as_ref(),
        ),
        Code::PermissionDenied,
    );
    assert!(
        error.message.contains(r#"Hms::User::"nobody""#)
            && error.message.contains(ECHO)
            && error.message.contains(r#"Hms::Runtime::"#)
            && error.message.contains("no policy permits it"),
        "{error:?}"
    );
    assert_eq!(error.details["reason"], "no_permit");
    let token = table()["principals"]["nobody"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = format!("{error:?}");
    assert!(
        !shown.contains(secret_text) && !shown.contains(&token),
        "{shown}"
    );

    let created: hms_ffi::proto::hms::agent::v1::Agent = call_in(
        &rt,
        "hms.agent.v1.AgentService/CreateAgent",
        Format::Protobuf,
        &hms_ffi::proto::hms::agent::v1::CreateAgentRequest {
            agent: Some(hms_ffi::proto::hms::agent::v1::Agent {
                name: "guarded".into(),
                labels: [("protected".to_owned(), "true".to_owned())].into(),
                ..Default::default()
            }),
        },
        as_principal("admin").as_ref(),
    )
    .unwrap();
    let error = expect_code(
        call_in::<_, hms_ffi::proto::hms::agent::v1::DeleteAgentResponse>(
            &rt,
            "hms.agent.v1.AgentService/DeleteAgent",
            Format::Protobuf,
            &hms_ffi::proto::hms::agent::v1::DeleteAgentRequest {
                id: created.id.clone(),
                revision: 0,
            },
            as_principal("admin").as_ref(),
        ),
        Code::PermissionDenied,
    );
    assert!(
        error
            .message
            .contains("forbidden by policy protected-agents")
            && error
                .message
                .contains(&format!(r#"Hms::Agent::"{}""#, created.id)),
        "{error:?}"
    );
    assert_eq!(error.details["reason"], "forbidden");
    assert_eq!(error.details["policies"], "protected-agents");
}

#[test]
fn an_invalid_policy_file_is_refused_with_its_line_and_column() {
    let dir = TempDir::new().unwrap();
    let syntax = policy_file(
        dir.path(),
        "syntax.cedar",
        "// fine so far\npermit (principal, action, resource);\npermit (principal, action resource);\n",
    );
    let error = expect_code(
        runtime_with(security(dir.path(), vec![syntax.clone()])),
        Code::InvalidArgument,
    );
    assert_eq!(error.details["file"], syntax, "{error:?}");
    assert_eq!(error.details["line"], "3", "{error:?}");
    assert_eq!(error.details["column"], "27", "{error:?}");
    assert_eq!(
        error.details["field"],
        "security.authorization.policy_files"
    );
    assert!(
        error.message.starts_with(&format!("{syntax}:3:27: ")),
        "{error:?}"
    );

    let unknown_attribute = policy_file(
        dir.path(),
        "schema.cedar",
        "permit (principal, action, resource is Hms::Agent)\n  when { resource.colour == \"red\" };\n",
    );
    let error = expect_code(
        runtime_with(security(dir.path(), vec![unknown_attribute.clone()])),
        Code::InvalidArgument,
    );
    assert_eq!(error.details["file"], unknown_attribute, "{error:?}");
    assert_eq!(error.details["line"], "2", "{error:?}");
    assert!(error.message.contains("colour"), "{error:?}");

    let unknown_action = policy_file(
        dir.path(),
        "action.cedar",
        "permit (principal, action == Hms::Action::\"hms.sys.v1.System/Nope\", resource);\n",
    );
    let error = expect_code(
        runtime_with(security(dir.path(), vec![unknown_action])),
        Code::InvalidArgument,
    );
    assert_eq!(error.details["line"], "1", "{error:?}");

    let missing = dir.path().join("missing.cedar").display().to_string();
    let error = expect_code(
        runtime_with(security(dir.path(), vec![missing.clone()])),
        Code::InvalidArgument,
    );
    assert!(error.message.contains(&missing), "{error:?}");

    let twice = policy_file(
        dir.path(),
        "twice.cedar",
        "@id(\"same\") permit (principal, action, resource);\n@id(\"same\") forbid (principal, action, resource);\n",
    );
    let error = expect_code(
        runtime_with(security(dir.path(), vec![twice])),
        Code::InvalidArgument,
    );
    assert!(
        error.message.contains("\"same\" is used twice"),
        "{error:?}"
    );

    let error = expect_code(
        runtime_with(security(dir.path(), Vec::new())),
        Code::InvalidArgument,
    );
    assert_eq!(
        error.details["field"],
        "security.authorization.policy_files"
    );
}

#[test]
fn reload_replaces_the_set_and_a_bad_one_leaves_the_old_in_force() {
    let dir = TempDir::new().unwrap();
    let file = policy_file(
        dir.path(),
        "policies.cedar",
        "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n",
    );
    let rt = runtime_with(security(dir.path(), vec![file.clone()])).unwrap();
    expect_code(echo_as(&rt, "reader"), Code::PermissionDenied);
    expect_code(reload(&rt, "reader", ""), Code::PermissionDenied);

    // The file changes; a reload of the files picks it up.
    std::fs::write(
        &file,
        "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n\
         @id(\"readers-echo\") permit (principal in Hms::Role::\"reader\", \
         action == Hms::Action::\"hms.sys.v1.System/Echo\", resource);\n",
    )
    .unwrap();
    let reloaded = reload(&rt, "admin", "").unwrap();
    assert_eq!(reloaded.policies, 2);
    assert_eq!(reloaded.generation, 2);
    assert_eq!(reloaded.policy_ids, ["admin", "readers-echo"]);
    echo_as(&rt, "reader").expect("permitted by the reloaded file");

    // Invalid text: refused with its line and column, the old set stays.
    let error = expect_code(
        reload(
            &rt,
            "admin",
            "permit (principal, action, resource)\nwhen { resource.nope };",
        ),
        Code::InvalidArgument,
    );
    assert_eq!(error.details["file"], "request");
    assert_eq!(error.details["line"], "2", "{error:?}");
    echo_as(&rt, "reader").expect("the old set is still in force");
    std::fs::write(&file, "permit (principal action resource);").unwrap();
    let error = expect_code(reload(&rt, "admin", ""), Code::InvalidArgument);
    assert_eq!(error.details["line"], "1", "{error:?}");
    echo_as(&rt, "reader").expect("the old set is still in force");

    // Policy text replaces the whole set.
    let reloaded = reload(
        &rt,
        "admin",
        "permit (principal in Hms::Role::\"admin\", action, resource);",
    )
    .unwrap();
    assert_eq!(reloaded.policy_ids, ["request#0"]);
    assert_eq!(reloaded.generation, 3);
    expect_code(echo_as(&rt, "reader"), Code::PermissionDenied);
}

#[test]
fn cached_method_level_decisions_end_with_a_reload() {
    let dir = TempDir::new().unwrap();
    let file = policy_file(
        dir.path(),
        "policies.cedar",
        "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n\
         @id(\"readers-echo\") permit (principal in Hms::Role::\"reader\", \
         action == Hms::Action::\"hms.sys.v1.System/Echo\", resource);\n",
    );
    let rt = runtime_with(security(dir.path(), vec![file])).unwrap();
    // The same method-level decision, twice: the second from the cache.
    echo_as(&rt, "reader").unwrap();
    echo_as(&rt, "reader").unwrap();
    expect_code(echo_as(&rt, "nobody"), Code::PermissionDenied);
    expect_code(echo_as(&rt, "nobody"), Code::PermissionDenied);
    reload(
        &rt,
        "admin",
        "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n\
         @id(\"anyone-echo\") permit (principal, action == Hms::Action::\"hms.sys.v1.System/Echo\", resource);\n\
         @id(\"no-readers\") forbid (principal in Hms::Role::\"reader\", action, resource);",
    )
    .unwrap();
    let error = expect_code(echo_as(&rt, "reader"), Code::PermissionDenied);
    assert_eq!(error.details["policies"], "no-readers", "{error:?}");
    echo_as(&rt, "nobody").expect("no cached denial survives the reload");
}

#[test]
fn resource_attributes_decide_per_record() {
    use hms_ffi::proto::hms::agent::v1::{Agent, CreateAgentRequest, GetAgentRequest};
    let dir = TempDir::new().unwrap();
    let file = policy_file(
        dir.path(),
        "policies.cedar",
        "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n\
         @id(\"own-agents\") permit (principal, action == Hms::Action::\"hms.agent.v1.AgentService/GetAgent\", \
         resource is Hms::Agent) when { resource.owner == principal.name && resource.state == \"INITIALIZED\" };\n",
    );
    let rt = runtime_with(security(dir.path(), vec![file])).unwrap();
    let create = |owner: &str| -> Agent {
        call_in(
            &rt,
            "hms.agent.v1.AgentService/CreateAgent",
            Format::Protobuf,
            &CreateAgentRequest {
                agent: Some(Agent {
                    name: format!("of {owner}"),
                    metadata: [("owner".to_owned(), owner.to_owned())].into(),
                    ..Default::default()
                }),
            },
            as_principal("admin").as_ref(),
        )
        .unwrap()
    };
    let get = |id: &str, principal: &str| -> Result<Agent, HmsError> {
        call_in(
            &rt,
            "hms.agent.v1.AgentService/GetAgent",
            Format::Protobuf,
            &GetAgentRequest { id: id.into() },
            as_principal(principal).as_ref(),
        )
    };
    let daves = create("dave");
    let nobodys = create("nobody");
    get(&daves.id, "dave").expect("dave owns it");
    expect_code(get(&nobodys.id, "dave"), Code::PermissionDenied);
    get(&nobodys.id, "nobody").expect("nobody owns that one");
    // A record that does not exist has no attributes: nothing permits it
    // but the policies that read none.
    expect_code(get("no-such-agent", "dave"), Code::PermissionDenied);
    expect_code(get("no-such-agent", "admin"), Code::NotFound);
    // The state is read from the store at each call.
    let _: hms_ffi::proto::hms::agent::lifecycle::v1::TransitionResponse = call_in(
        &rt,
        "hms.agent.lifecycle.v1.LifecycleService/Transition",
        Format::Protobuf,
        &common::transition_request(
            &daves.id,
            hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState::Active,
            false,
        ),
        as_principal("admin").as_ref(),
    )
    .unwrap();
    expect_code(get(&daves.id, "dave"), Code::PermissionDenied);
}

#[test]
fn reloads_under_load_never_show_a_half_loaded_set() {
    let dir = TempDir::new().unwrap();
    let generation = |n: usize| {
        format!(
            "@id(\"admin\") permit (principal in Hms::Role::\"admin\", action, resource);\n\
             @id(\"g{n}-a\") forbid (principal in Hms::Role::\"reader\", action, resource);\n\
             @id(\"g{n}-b\") forbid (principal in Hms::Role::\"reader\", action == Hms::Action::\"hms.sys.v1.System/Echo\", resource);\n"
        )
    };
    let file = policy_file(dir.path(), "policies.cedar", &generation(0));
    let rt = runtime_with(security(dir.path(), vec![file])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let rt = rt.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = 0usize;
                while !stop.load(Ordering::Acquire) || seen == 0 {
                    let error = expect_code(echo_as(&rt, "reader"), Code::PermissionDenied);
                    // Both forbids of one generation decide, never one
                    // alone nor two of different generations.
                    let policies: Vec<&str> = error.details["policies"].split(',').collect();
                    let [a, b] = policies[..] else {
                        panic!("two deciding policies: {error:?}");
                    };
                    assert_eq!(a.strip_suffix("-a"), b.strip_suffix("-b"), "{error:?}");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for n in 1..=40 {
        reload(&rt, "admin", &generation(n)).unwrap();
    }
    stop.store(true, Ordering::Release);
    for caller in callers {
        assert!(caller.join().expect("no caller saw a mixed set") > 0);
    }
    let error = expect_code(echo_as(&rt, "reader"), Code::PermissionDenied);
    assert_eq!(error.details["policies"], "g40-a,g40-b");
}

#[cfg(feature = "nats")]
mod remote {
    use super::*;
    use common::nats_server::NatsServer;

    /// The built-in services the table calls; the exporter also serves
    /// its Security service, which the caller does not have.
    const SERVICES: [&str; 5] = [
        "hms.sys.v1.System",
        "hms.agent.v1.AgentService",
        "hms.agent.v1.TaskService",
        "hms.agent.v1.KnowledgeService",
        "hms.agent.lifecycle.v1.LifecycleService",
    ];

    /// The table through a runtime that serves none of the services: every
    /// call crosses NATS with the case's credentials, and the exporter
    /// decides with `transport == "remote"`.
    #[test]
    fn the_decision_table_holds_over_nats() {
        let server = NatsServer::start();
        let dir = TempDir::new().unwrap();
        let mut exported = SERVICES.to_vec();
        exported.push("hms.security.v1.Security");
        let _exporter = crate::security::remote::runtime_on(
            &server,
            "exporter",
            &exported,
            Some(security(dir.path(), vec![starter()])),
        );
        let caller = crate::remote::runtime_on(&server, "caller", &[], &SERVICES);
        let wrong = run_table(&caller, true);
        assert!(wrong.is_empty(), "(case, expected, got): {wrong:#?}");
    }
}
