//! AgentService: create, read, list with filters and pages, update with
//! revisions and masks, delete.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{AGENTS, FORMATS, call, call_in, create_agent, expect_code, get_agent, new_runtime};
use hms_ffi::Code;
use hms_ffi::HmsError;
use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState;
use hms_ffi::proto::hms::agent::v1::{
    Agent, CreateAgentRequest, DeleteAgentRequest, DeleteAgentResponse, ListAgentsRequest,
    ListAgentsResponse, UpdateAgentRequest,
};
use hms_ffi::runtime::Runtime;
use prost_types::{FieldMask, Timestamp};

type Rt = Arc<Runtime>;

fn create(rt: &Rt, agent: Agent) -> Result<Agent, HmsError> {
    call(
        rt,
        &format!("{AGENTS}/CreateAgent"),
        &CreateAgentRequest { agent: Some(agent) },
    )
}

fn full_agent(name: &str) -> Agent {
    Agent {
        name: name.into(),
        kind: "researcher".into(),
        version: "2.1.0".into(),
        capabilities: vec!["search".into(), "write".into()],
        labels: [("team".to_string(), "blue".to_string())].into(),
        metadata: [("owner".to_string(), "ü".to_string())].into(),
        description: "finds things".into(),
        ..Default::default()
    }
}

fn update(rt: &Rt, agent: Agent, paths: &[&str]) -> Result<Agent, HmsError> {
    call(
        rt,
        &format!("{AGENTS}/UpdateAgent"),
        &UpdateAgentRequest {
            agent: Some(agent),
            update_mask: (!paths.is_empty()).then(|| FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        },
    )
}

fn delete(rt: &Rt, id: &str, revision: u64) -> Result<DeleteAgentResponse, HmsError> {
    call(
        rt,
        &format!("{AGENTS}/DeleteAgent"),
        &DeleteAgentRequest {
            id: id.into(),
            revision,
        },
    )
}

fn list(rt: &Rt, request: &ListAgentsRequest) -> Result<ListAgentsResponse, HmsError> {
    call(rt, &format!("{AGENTS}/ListAgents"), request)
}

/// Every agent matching `request`, page by page; checks each page's size.
fn list_all(rt: &Rt, mut request: ListAgentsRequest) -> (Vec<Agent>, usize) {
    let mut agents = Vec::new();
    let mut pages = 0;
    loop {
        let page = list(rt, &request).unwrap();
        pages += 1;
        if request.page_size > 0 {
            assert!(page.agents.len() <= request.page_size as usize);
            if !page.next_page_token.is_empty() {
                assert_eq!(page.agents.len(), request.page_size as usize, "a full page");
            }
        }
        agents.extend(page.agents);
        if page.next_page_token.is_empty() {
            return (agents, pages);
        }
        assert!(pages < 10_000, "paging never ends");
        request.page_token = page.next_page_token;
    }
}

fn later_or_equal(a: &Option<Timestamp>, b: &Option<Timestamp>) -> bool {
    let a = a.expect("set");
    let b = b.expect("set");
    (a.seconds, a.nanos) >= (b.seconds, b.nanos)
}

#[test]
fn create_assigns_id_state_revision_and_timestamps() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("scout")).unwrap();
    assert!(common::is_uuid(&agent.id), "{}", agent.id);
    assert_eq!(agent.state, LifecycleState::Initialized as i32);
    assert_eq!(agent.revision, 1);
    assert!(agent.created_at.is_some());
    assert_eq!(agent.created_at, agent.updated_at);
    let expected = Agent {
        id: agent.id.clone(),
        state: agent.state,
        revision: 1,
        created_at: agent.created_at,
        updated_at: agent.updated_at,
        ..full_agent("scout")
    };
    assert_eq!(agent, expected);
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
    // Ids are unique.
    let ids: HashSet<String> = (0..50)
        .map(|i| create_agent(&rt, &format!("a{i}")).id)
        .collect();
    assert_eq!(ids.len(), 50);
}

#[test]
fn create_ignores_core_owned_fields() {
    let rt = new_runtime();
    let agent = create(
        &rt,
        Agent {
            id: "my-own-id".into(),
            state: LifecycleState::Active as i32,
            revision: 42,
            created_at: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            updated_at: Some(Timestamp {
                seconds: 2,
                nanos: 0,
            }),
            ..full_agent("x")
        },
    )
    .unwrap();
    assert_ne!(agent.id, "my-own-id");
    assert_eq!(agent.state, LifecycleState::Initialized as i32);
    assert_eq!(agent.revision, 1);
    assert_ne!(agent.created_at.unwrap().seconds, 1);
    expect_code(get_agent(&rt, "my-own-id"), Code::NotFound);
}

#[test]
fn create_requires_a_name() {
    let rt = new_runtime();
    let error = expect_code(create(&rt, Agent::default()), Code::InvalidArgument);
    assert_eq!(
        error.details.get("field").map(String::as_str),
        Some("agent.name")
    );
    let error: Result<Agent, _> = call(
        &rt,
        &format!("{AGENTS}/CreateAgent"),
        &CreateAgentRequest { agent: None },
    );
    expect_code(error, Code::InvalidArgument);
    let listed = list(&rt, &ListAgentsRequest::default()).unwrap();
    assert!(listed.agents.is_empty(), "nothing was created");
}

#[test]
fn agents_work_in_every_format() {
    let rt = new_runtime();
    for format in FORMATS {
        let agent: Agent = call_in(
            &rt,
            &format!("{AGENTS}/CreateAgent"),
            format,
            &CreateAgentRequest {
                agent: Some(full_agent(&format!("{format:?}"))),
            },
            None,
        )
        .unwrap();
        let fetched: Agent = call_in(
            &rt,
            &format!("{AGENTS}/GetAgent"),
            format,
            &hms_ffi::proto::hms::agent::v1::GetAgentRequest {
                id: agent.id.clone(),
            },
            None,
        )
        .unwrap();
        assert_eq!(fetched, agent, "{format:?}");
    }
    // JSON written by hand, enum names and all.
    let out = common::call_raw(
        &rt,
        &format!("{AGENTS}/CreateAgent"),
        hms_ffi::codec::Format::Json,
        br#"{"agent": {"name": "hand", "labels": {"a": "b"}, "capabilities": ["x"]}}"#,
        &[],
    )
    .unwrap();
    let agent: Agent = common::decode(hms_ffi::codec::Format::Json, &out);
    assert_eq!(agent.name, "hand");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""state":"INITIALIZED""#), "{text}");
    assert!(text.contains(r#""revision":"1""#), "{text}");
}

#[test]
fn get_of_an_unknown_id_is_not_found() {
    let rt = new_runtime();
    let error = expect_code(get_agent(&rt, "nope"), Code::NotFound);
    assert_eq!(error.details.get("id").map(String::as_str), Some("nope"));
    expect_code(get_agent(&rt, ""), Code::InvalidArgument);
}

#[test]
fn update_replaces_fields_and_bumps_the_revision() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("before")).unwrap();
    // An empty mask replaces every updatable field.
    let replaced = update(
        &rt,
        Agent {
            id: agent.id.clone(),
            name: "after".into(),
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert_eq!(replaced.name, "after");
    assert!(replaced.kind.is_empty() && replaced.capabilities.is_empty());
    assert!(replaced.labels.is_empty() && replaced.description.is_empty());
    assert_eq!(replaced.revision, 2);
    assert_eq!(replaced.created_at, agent.created_at);
    assert!(later_or_equal(&replaced.updated_at, &agent.updated_at));
    assert_eq!(replaced.state, agent.state);
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), replaced);
}

#[test]
fn update_with_a_mask_changes_only_the_named_fields() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("masked")).unwrap();
    let changes = Agent {
        id: agent.id.clone(),
        name: "ignored".into(),
        labels: [("team".to_string(), "red".to_string())].into(),
        capabilities: vec!["new".into()],
        ..Default::default()
    };
    let updated = update(&rt, changes, &["labels", "capabilities"]).unwrap();
    assert_eq!(updated.name, "masked");
    assert_eq!(updated.kind, "researcher");
    assert_eq!(updated.labels.get("team").map(String::as_str), Some("red"));
    assert_eq!(updated.capabilities, ["new"]);
    assert_eq!(updated.metadata, agent.metadata);
    assert_eq!(updated.revision, 2);
    for path in [
        "name",
        "kind",
        "version",
        "description",
        "metadata",
        "capabilities",
        "labels",
    ] {
        let mut change = full_agent(&format!("via {path}"));
        change.id = agent.id.clone();
        update(&rt, change, &[path]).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    }
}

#[test]
fn update_refuses_bad_masks_and_an_empty_name() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("strict")).unwrap();
    let with_id = |name: &str| Agent {
        id: agent.id.clone(),
        name: name.into(),
        ..Default::default()
    };
    for paths in [
        &["state"][..],
        &["id"],
        &["revision"],
        &["created_at"],
        &["nope"],
        &["name", "bogus"],
    ] {
        expect_code(update(&rt, with_id("x"), paths), Code::InvalidArgument);
    }
    expect_code(update(&rt, with_id(""), &["name"]), Code::InvalidArgument);
    expect_code(update(&rt, with_id(""), &[]), Code::InvalidArgument);
    // Nothing changed.
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
}

#[test]
fn update_of_an_unknown_agent_is_not_found() {
    let rt = new_runtime();
    expect_code(
        update(
            &rt,
            Agent {
                id: "ghost".into(),
                name: "x".into(),
                ..Default::default()
            },
            &[],
        ),
        Code::NotFound,
    );
    expect_code(update(&rt, full_agent("no id"), &[]), Code::InvalidArgument);
}

#[test]
fn a_stale_revision_is_aborted_and_changes_nothing() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("rev")).unwrap();
    let first = update(
        &rt,
        Agent {
            id: agent.id.clone(),
            name: "first".into(),
            revision: 1,
            ..Default::default()
        },
        &["name"],
    )
    .unwrap();
    assert_eq!(first.revision, 2);
    let error = expect_code(
        update(
            &rt,
            Agent {
                id: agent.id.clone(),
                name: "second".into(),
                revision: 1,
                ..Default::default()
            },
            &["name"],
        ),
        Code::Aborted,
    );
    assert_eq!(
        error.details.get("current_revision").map(String::as_str),
        Some("2")
    );
    expect_code(
        update(
            &rt,
            Agent {
                id: agent.id.clone(),
                name: "future".into(),
                revision: 99,
                ..Default::default()
            },
            &["name"],
        ),
        Code::Aborted,
    );
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), first);
    // Revision 0 means "whatever it is now".
    let unconditional = update(
        &rt,
        Agent {
            id: agent.id.clone(),
            name: "third".into(),
            ..Default::default()
        },
        &["name"],
    )
    .unwrap();
    assert_eq!(unconditional.revision, 3);
    // Delete honours revisions too.
    expect_code(delete(&rt, &agent.id, 2), Code::Aborted);
    assert!(get_agent(&rt, &agent.id).is_ok());
    delete(&rt, &agent.id, 3).unwrap();
}

#[test]
fn delete_removes_the_agent_and_its_history() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("doomed")).unwrap();
    common::transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
    delete(&rt, &agent.id, 0).unwrap();
    expect_code(get_agent(&rt, &agent.id), Code::NotFound);
    expect_code(delete(&rt, &agent.id, 0), Code::NotFound);
    expect_code(common::get_state(&rt, &agent.id), Code::NotFound);
    let history: Result<hms_ffi::proto::hms::agent::lifecycle::v1::GetHistoryResponse, _> = call(
        &rt,
        &format!("{}/GetHistory", common::LIFECYCLE),
        &hms_ffi::proto::hms::agent::lifecycle::v1::GetHistoryRequest {
            agent_id: agent.id.clone(),
            ..Default::default()
        },
    );
    expect_code(history, Code::NotFound);
    expect_code(delete(&rt, "", 0), Code::InvalidArgument);
    assert!(
        list(&rt, &ListAgentsRequest::default())
            .unwrap()
            .agents
            .is_empty()
    );
}

#[test]
fn list_pages_through_every_agent_exactly_once_oldest_first() {
    let rt = new_runtime();
    let created: Vec<Agent> = (0..23)
        .map(|i| create_agent(&rt, &format!("agent-{i:02}")))
        .collect();
    for page_size in [1, 2, 5, 7, 23, 24, 1000] {
        let (agents, pages) = list_all(
            &rt,
            ListAgentsRequest {
                page_size,
                ..Default::default()
            },
        );
        assert_eq!(agents, created, "page_size {page_size}");
        assert_eq!(
            pages,
            23usize.div_ceil(page_size as usize).max(1),
            "page_size {page_size}"
        );
    }
    // The default page is 100.
    for i in 23..105 {
        create_agent(&rt, &format!("agent-{i:03}"));
    }
    let first = list(&rt, &ListAgentsRequest::default()).unwrap();
    assert_eq!(first.agents.len(), 100);
    assert!(!first.next_page_token.is_empty());
    let second = list(
        &rt,
        &ListAgentsRequest {
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(second.agents.len(), 5);
    assert!(second.next_page_token.is_empty());
}

#[test]
fn pages_stay_consistent_when_agents_come_and_go() {
    let rt = new_runtime();
    let created: Vec<Agent> = (0..10)
        .map(|i| create_agent(&rt, &format!("c{i}")))
        .collect();
    let first = list(
        &rt,
        &ListAgentsRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .unwrap();
    // Delete one not yet seen and add one: the rest is still seen once.
    delete(&rt, &created[6].id, 0).unwrap();
    let added = create_agent(&rt, "late");
    let (rest, _) = list_all(
        &rt,
        ListAgentsRequest {
            page_size: 4,
            page_token: first.next_page_token,
            ..Default::default()
        },
    );
    let mut seen: Vec<String> = first.agents.iter().map(|a| a.id.clone()).collect();
    seen.extend(rest.iter().map(|a| a.id.clone()));
    let mut expected: Vec<String> = created
        .iter()
        .filter(|a| a.id != created[6].id)
        .map(|a| a.id.clone())
        .collect();
    expected.push(added.id);
    assert_eq!(seen, expected);
}

#[test]
fn a_bad_page_token_is_invalid_argument() {
    let rt = new_runtime();
    create_agent(&rt, "x");
    for token in ["%%%", "not a token!", "\u{1F600}"] {
        expect_code(
            list(
                &rt,
                &ListAgentsRequest {
                    page_token: token.into(),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
        );
    }
}

#[test]
fn list_filters_by_labels_capabilities_states_and_kind() {
    let rt = new_runtime();
    let make = |name: &str, kind: &str, labels: &[(&str, &str)], caps: &[&str]| {
        create(
            &rt,
            Agent {
                name: name.into(),
                kind: kind.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                capabilities: caps.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    make(
        "a",
        "bot",
        &[("team", "blue"), ("env", "prod")],
        &["search", "write"],
    );
    let b = make("b", "bot", &[("team", "blue")], &["search"]);
    let c = make(
        "c",
        "human",
        &[("team", "red"), ("env", "prod")],
        &["write"],
    );
    make("d", "bot", &[], &[]);
    common::transition(&rt, &b.id, LifecycleState::Active, false).unwrap();
    common::transition(&rt, &c.id, LifecycleState::Error, false).unwrap();
    let names = |request: ListAgentsRequest| -> Vec<String> {
        list_all(
            &rt,
            ListAgentsRequest {
                page_size: 1,
                ..request
            },
        )
        .0
        .into_iter()
        .map(|a| a.name)
        .collect()
    };
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        names(ListAgentsRequest {
            labels: labels(&[("team", "blue")]),
            ..Default::default()
        }),
        ["a", "b"]
    );
    assert_eq!(
        names(ListAgentsRequest {
            labels: labels(&[("team", "blue"), ("env", "prod")]),
            ..Default::default()
        }),
        ["a"],
        "all of the labels"
    );
    assert_eq!(
        names(ListAgentsRequest {
            capabilities: vec!["search".into(), "write".into()],
            ..Default::default()
        }),
        ["a"],
        "all of the capabilities"
    );
    assert_eq!(
        names(ListAgentsRequest {
            capabilities: vec!["write".into()],
            ..Default::default()
        }),
        ["a", "c"]
    );
    assert_eq!(
        names(ListAgentsRequest {
            states: vec![LifecycleState::Active as i32, LifecycleState::Error as i32],
            ..Default::default()
        }),
        ["b", "c"],
        "any of the states"
    );
    assert_eq!(
        names(ListAgentsRequest {
            states: vec![LifecycleState::Initialized as i32],
            ..Default::default()
        }),
        ["a", "d"]
    );
    assert_eq!(
        names(ListAgentsRequest {
            kind: "bot".into(),
            ..Default::default()
        }),
        ["a", "b", "d"]
    );
    assert_eq!(
        names(ListAgentsRequest {
            kind: "bot".into(),
            labels: labels(&[("env", "prod")]),
            states: vec![LifecycleState::Initialized as i32],
            ..Default::default()
        }),
        ["a"]
    );
    assert!(
        names(ListAgentsRequest {
            labels: labels(&[("team", "green")]),
            ..Default::default()
        })
        .is_empty()
    );
}

#[test]
fn concurrent_writers_naming_the_same_revision_have_one_winner() {
    let rt = new_runtime();
    let agent = create(&rt, full_agent("contended")).unwrap();
    for round in 0..10u64 {
        let revision = round + 1;
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let writers: Vec<_> = (0..6)
            .map(|writer| {
                let rt = rt.clone();
                let id = agent.id.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    update(
                        &rt,
                        Agent {
                            id,
                            description: format!("round {round} writer {writer}"),
                            revision,
                            ..Default::default()
                        },
                        &["description"],
                    )
                    .map_err(|e| e.code)
                })
            })
            .collect();
        let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let winners: Vec<&Agent> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || *r == Err(Code::Aborted)),
            "{results:?}"
        );
        let now = get_agent(&rt, &agent.id).unwrap();
        assert_eq!(now.revision, revision + 1);
        assert_eq!(now.description, winners[0].description);
    }
}

#[test]
fn page_size_is_capped_at_one_thousand() {
    let rt = new_runtime();
    for i in 0..1001 {
        create_agent(&rt, &format!("n{i}"));
    }
    let page = list(
        &rt,
        &ListAgentsRequest {
            page_size: 5000,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.agents.len(), 1000);
    assert!(!page.next_page_token.is_empty());
    let rest = list(
        &rt,
        &ListAgentsRequest {
            page_size: 5000,
            page_token: page.next_page_token,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rest.agents.len(), 1);
    assert!(rest.next_page_token.is_empty());
}
