//! Persistence with a data_dir: everything survives a restart of the
//! runtime, and one folder belongs to one runtime at a time.
//! (Persistence across SIGKILL is tested from Python.)

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::{
    AGENTS, KNOWLEDGE, LIFECYCLE, TASKS, call, expect_code, get_state, history, transition,
};
use hms_ffi::Code;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::lifecycle::v1::{GetStateResponse, LifecycleEvent, LifecycleState};
use hms_ffi::proto::hms::agent::v1::{
    Agent, AssignTaskRequest, CreateAgentRequest, DeleteAgentRequest, DeleteAgentResponse,
    DeleteKnowledgeRequest, DeleteKnowledgeResponse, GetKnowledgeRequest, KnowledgeEntry,
    ListAgentsRequest, ListAgentsResponse, ListTasksRequest, ListTasksResponse,
    PutKnowledgeRequest, QueryKnowledgeRequest, QueryKnowledgeResponse, StartTaskRequest,
    SubmitTaskRequest, Task, UpdateAgentRequest,
};
use hms_ffi::proto::hms::sys::v1::{HealthRequest, HealthResponse};
use hms_ffi::runtime::{self, Runtime};

type Rt = Arc<Runtime>;

fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: Some(dir.to_path_buf()),
        ..Settings::default()
    }
}

fn open(dir: &Path) -> Rt {
    Runtime::new(settings(dir)).unwrap_or_else(|e| panic!("opening {}: {e:?}", dir.display()))
}

/// Everything a runtime stores, read back through its services.
#[derive(Debug, PartialEq)]
struct Snapshot {
    agents: Vec<Agent>,
    tasks: Vec<Task>,
    knowledge: Vec<KnowledgeEntry>,
    histories: Vec<Vec<LifecycleEvent>>,
    states: Vec<GetStateResponse>,
}

fn snapshot(rt: &Rt) -> Snapshot {
    let agents: ListAgentsResponse = call(
        rt,
        &format!("{AGENTS}/ListAgents"),
        &ListAgentsRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let tasks: ListTasksResponse = call(
        rt,
        &format!("{TASKS}/ListTasks"),
        &ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let knowledge: QueryKnowledgeResponse = call(
        rt,
        &format!("{KNOWLEDGE}/QueryKnowledge"),
        &QueryKnowledgeRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let histories = agents.agents.iter().map(|a| history(rt, &a.id)).collect();
    let states = agents
        .agents
        .iter()
        .map(|a| {
            let mut state = get_state(rt, &a.id).unwrap();
            state.time_in_state_ms = 0; // grows with the clock
            state
        })
        .collect();
    Snapshot {
        agents: agents.agents,
        tasks: tasks.tasks,
        knowledge: knowledge.entries,
        histories,
        states,
    }
}

fn create_agent(rt: &Rt, name: &str) -> Agent {
    call(
        rt,
        &format!("{AGENTS}/CreateAgent"),
        &CreateAgentRequest {
            agent: Some(Agent {
                name: name.into(),
                kind: "persistent".into(),
                capabilities: vec!["remember".into()],
                labels: [("disk".to_string(), "yes".to_string())].into(),
                metadata: [("bytes".to_string(), "\u{0}ü".to_string())].into(),
                ..Default::default()
            }),
        },
    )
    .unwrap()
}

fn put(rt: &Rt, namespace: &str, key: &str, text: &str) -> KnowledgeEntry {
    call(
        rt,
        &format!("{KNOWLEDGE}/PutKnowledge"),
        &PutKnowledgeRequest {
            entry: Some(KnowledgeEntry {
                namespace: namespace.into(),
                key: key.into(),
                text: text.into(),
                tags: vec!["t".into()],
                confidence: 0.75,
                ..Default::default()
            }),
        },
    )
    .unwrap()
}

/// Fills a runtime with a bit of everything, including updates and deletes.
fn populate(rt: &Rt) {
    let kept = create_agent(rt, "kept");
    let updated = create_agent(rt, "updated");
    let deleted = create_agent(rt, "deleted");
    let _: Agent = call(
        rt,
        &format!("{AGENTS}/UpdateAgent"),
        &UpdateAgentRequest {
            agent: Some(Agent {
                id: updated.id.clone(),
                description: "changed before the restart".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        },
    )
    .unwrap();
    transition(rt, &kept.id, LifecycleState::Active, false).unwrap();
    transition(rt, &kept.id, LifecycleState::Maintenance, false).unwrap();
    transition(rt, &updated.id, LifecycleState::Error, true).unwrap();
    transition(rt, &deleted.id, LifecycleState::Active, false).unwrap();
    let _: DeleteAgentResponse = call(
        rt,
        &format!("{AGENTS}/DeleteAgent"),
        &DeleteAgentRequest {
            id: deleted.id.clone(),
            revision: 0,
        },
    )
    .unwrap();
    transition(rt, &kept.id, LifecycleState::Active, false).unwrap();

    let submit = |title: &str, agent_id: &str| -> Task {
        call(
            rt,
            &format!("{TASKS}/SubmitTask"),
            &SubmitTaskRequest {
                task: Some(Task {
                    title: title.into(),
                    agent_id: agent_id.into(),
                    input: vec![0, 1, 2, 0].into(),
                    priority: -7,
                    ..Default::default()
                }),
            },
        )
        .unwrap()
    };
    submit("pending", "");
    let running = submit("running", &kept.id);
    let _: Task = call(
        rt,
        &format!("{TASKS}/StartTask"),
        &StartTaskRequest {
            id: running.id,
            revision: 0,
        },
    )
    .unwrap();
    let assigned_later = submit("assigned later", "");
    let _: Task = call(
        rt,
        &format!("{TASKS}/AssignTask"),
        &AssignTaskRequest {
            id: assigned_later.id,
            agent_id: kept.id.clone(),
            revision: 0,
        },
    )
    .unwrap();

    put(rt, "facts", "a", "first");
    put(rt, "facts", "a", "replaced");
    let gone = put(rt, "facts", "b", "deleted");
    put(rt, "other", "c", "kept");
    let _: DeleteKnowledgeResponse = call(
        rt,
        &format!("{KNOWLEDGE}/DeleteKnowledge"),
        &DeleteKnowledgeRequest {
            id: gone.id,
            revision: 0,
        },
    )
    .unwrap();
}

#[test]
fn everything_survives_freeing_the_runtime_and_opening_the_folder_again() {
    let dir = tempfile::tempdir().unwrap();
    let handle = runtime::create(settings(dir.path())).unwrap();
    let before = {
        let rt = runtime::runtime(handle).unwrap();
        let health: HealthResponse =
            call(&rt, "hms.sys.v1.System/Health", &HealthRequest {}).unwrap();
        assert_eq!(health.storage, "sqlite");
        populate(&rt);
        snapshot(&rt)
    };
    assert_eq!(before.agents.len(), 2);
    assert_eq!(before.tasks.len(), 3);
    assert_eq!(before.knowledge.len(), 2);
    assert_eq!(before.histories.iter().map(Vec::len).sum::<usize>(), 4);
    runtime::free(handle).unwrap();

    let rt = open(dir.path());
    let after = snapshot(&rt);
    assert_eq!(after, before);
    // The key index came back too.
    let entry: KnowledgeEntry = call(
        &rt,
        &format!("{KNOWLEDGE}/GetKnowledge"),
        &GetKnowledgeRequest {
            namespace: "facts".into(),
            key: "a".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(entry.text, "replaced");
    assert_eq!(entry.revision, 2);
    let replaced = put(&rt, "facts", "a", "third");
    assert_eq!(replaced.id, entry.id, "the same slot after the restart");
    assert_eq!(replaced.revision, 3);
}

#[test]
fn work_continues_where_it_stopped_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let agent_id = {
        let rt = open(dir.path());
        let agent = create_agent(&rt, "continuing");
        transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
        transition(&rt, &agent.id, LifecycleState::Paused, false).unwrap();
        agent.id
    }; // the last Arc is dropped here
    let rt = open(dir.path());
    let response = transition(&rt, &agent_id, LifecycleState::Active, false).unwrap();
    let event = response.event.unwrap();
    assert_eq!(event.sequence, 3, "the history goes on from where it was");
    assert_eq!(event.previous_state, LifecycleState::Paused as i32);
    let all = history(&rt, &agent_id);
    assert_eq!(all.len(), 3);
    common::assert_chained(&all);
    let agent = common::get_agent(&rt, &agent_id).unwrap();
    assert_eq!(agent.revision, 4);
    // Stale revisions are still detected against the stored ones.
    let stale: Result<Agent, _> = call(
        &rt,
        &format!("{AGENTS}/UpdateAgent"),
        &UpdateAgentRequest {
            agent: Some(Agent {
                id: agent_id.clone(),
                name: "x".into(),
                revision: 3,
                ..Default::default()
            }),
            update_mask: None,
        },
    );
    expect_code(stale, Code::Aborted);
    // New records get fresh ids, listed after the old ones.
    let newer = create_agent(&rt, "newer");
    let listed: ListAgentsResponse = call(
        &rt,
        &format!("{AGENTS}/ListAgents"),
        &ListAgentsRequest::default(),
    )
    .unwrap();
    let ids: Vec<&str> = listed.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [agent_id.as_str(), newer.id.as_str()]);
}

#[test]
fn deleted_records_stay_deleted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let rt = open(dir.path());
        let agent = create_agent(&rt, "gone");
        transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
        let _: DeleteAgentResponse = call(
            &rt,
            &format!("{AGENTS}/DeleteAgent"),
            &DeleteAgentRequest {
                id: agent.id.clone(),
                revision: 0,
            },
        )
        .unwrap();
        agent.id
    };
    let rt = open(dir.path());
    expect_code(common::get_agent(&rt, &id), Code::NotFound);
    expect_code(get_state(&rt, &id), Code::NotFound);
    let history: Result<hms_ffi::proto::hms::agent::lifecycle::v1::GetHistoryResponse, _> = call(
        &rt,
        &format!("{LIFECYCLE}/GetHistory"),
        &hms_ffi::proto::hms::agent::lifecycle::v1::GetHistoryRequest {
            agent_id: id,
            ..Default::default()
        },
    );
    expect_code(history, Code::NotFound);
}

#[test]
fn a_folder_belongs_to_one_open_runtime_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime::create(settings(dir.path())).unwrap();
    let error = expect_code(Runtime::new(settings(dir.path())), Code::FailedPrecondition);
    assert!(error.message.contains("in use"), "{error:?}");
    assert!(
        error.message.contains(&dir.path().display().to_string()),
        "the message names the folder: {error:?}"
    );
    assert_eq!(
        error.details.get("data_dir").map(String::as_str),
        Some(dir.path().display().to_string().as_str())
    );
    expect_code(
        runtime::create(settings(dir.path())),
        Code::FailedPrecondition,
    );
    // The first one is unharmed.
    {
        let rt = runtime::runtime(first).unwrap();
        create_agent(&rt, "still works");
    }
    runtime::free(first).unwrap();
    let second = open(dir.path());
    let listed: ListAgentsResponse = call(
        &second,
        &format!("{AGENTS}/ListAgents"),
        &ListAgentsRequest::default(),
    )
    .unwrap();
    assert_eq!(listed.agents.len(), 1);
    assert_eq!(listed.agents[0].name, "still works");
    // Dropping a runtime made with Runtime::new frees the folder too.
    drop(second);
    let third = open(dir.path());
    drop(third);
}

#[test]
fn separate_folders_are_separate_stores() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let first = open(one.path());
    let second = open(two.path());
    create_agent(&first, "one");
    let listed: ListAgentsResponse = call(
        &second,
        &format!("{AGENTS}/ListAgents"),
        &ListAgentsRequest::default(),
    )
    .unwrap();
    assert!(listed.agents.is_empty());
    // And memory runtimes stay memory.
    let memory = common::new_runtime();
    let health: HealthResponse =
        call(&memory, "hms.sys.v1.System/Health", &HealthRequest {}).unwrap();
    assert_eq!(health.storage, "memory");
}

#[test]
fn an_unusable_data_dir_is_a_failed_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let error = expect_code(Runtime::new(settings(&file)), Code::FailedPrecondition);
    assert!(!error.message.is_empty());
    let nested = file.join("below-a-file");
    expect_code(Runtime::new(settings(&nested)), Code::FailedPrecondition);
    // A folder that does not exist yet is created.
    let fresh = dir.path().join("new").join("deeper");
    let rt = open(&fresh);
    create_agent(&rt, "x");
    assert!(fresh.is_dir());
}

#[test]
fn a_damaged_database_is_a_failed_precondition_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hms.sqlite3"), vec![0x5a; 8192]).unwrap();
    let error = expect_code(Runtime::new(settings(dir.path())), Code::FailedPrecondition);
    assert_eq!(
        error.details.get("cause").map(String::as_str),
        Some("DataLoss")
    );
    assert!(error.message.contains("damaged"), "{}", error.message);

    // A readable database holding a record that does not decode.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let connection = rusqlite::Connection::open(dir.path().join("hms.sqlite3")).unwrap();
    connection
        .execute(
            "INSERT INTO agents (id, body) VALUES ('x', ?1)",
            [vec![0xffu8; 16]],
        )
        .unwrap();
    drop(connection);
    let error = expect_code(Runtime::new(settings(dir.path())), Code::FailedPrecondition);
    assert_eq!(
        error.details.get("cause").map(String::as_str),
        Some("DataLoss")
    );
}
