//! TaskService: status moves only forward, only ACTIVE agents take tasks,
//! revisions, listing.

use crate::common;

use std::sync::Arc;

use common::{
    TASKS, active_agent, agent_in, call, drain, expect_code, kinds, new_runtime, subscribe,
};
use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState;
use hms_ffi::proto::hms::agent::v1::{
    AssignTaskRequest, CancelTaskRequest, CompleteTaskRequest, FailTaskRequest, GetTaskRequest,
    ListTasksRequest, ListTasksResponse, StartTaskRequest, SubmitTaskRequest, Task, TaskStatus,
};
use hms_ffi::proto::v1::Status;
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};
use prost_types::Timestamp;

type Rt = Arc<Runtime>;

fn submit(rt: &Rt, task: Task) -> Result<Task, HmsError> {
    call(
        rt,
        &format!("{TASKS}/SubmitTask"),
        &SubmitTaskRequest { task: Some(task) },
    )
}

fn titled(title: &str) -> Task {
    Task {
        title: title.into(),
        ..Default::default()
    }
}

fn get(rt: &Rt, id: &str) -> Result<Task, HmsError> {
    call(
        rt,
        &format!("{TASKS}/GetTask"),
        &GetTaskRequest { id: id.into() },
    )
}

fn list(rt: &Rt, request: &ListTasksRequest) -> Result<ListTasksResponse, HmsError> {
    call(rt, &format!("{TASKS}/ListTasks"), request)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Assign,
    Start,
    Complete,
    Fail,
    Cancel,
}

const OPS: [Op; 5] = [Op::Assign, Op::Start, Op::Complete, Op::Fail, Op::Cancel];

impl Op {
    /// The statuses it moves from, and where to.
    fn rule(self) -> (&'static [TaskStatus], TaskStatus) {
        use TaskStatus::*;
        match self {
            Op::Assign => (&[Pending], Assigned),
            Op::Start => (&[Assigned], Running),
            Op::Complete => (&[Running], Succeeded),
            Op::Fail => (&[Running], Failed),
            Op::Cancel => (&[Pending, Assigned, Running], Cancelled),
        }
    }

    fn event_kind(self) -> &'static str {
        match self {
            Op::Assign => "task.assigned",
            Op::Start => "task.running",
            Op::Complete => "task.succeeded",
            Op::Fail => "task.failed",
            Op::Cancel => "task.cancelled",
        }
    }

    fn apply(self, rt: &Rt, id: &str, agent_id: &str, revision: u64) -> Result<Task, HmsError> {
        let id = id.to_owned();
        match self {
            Op::Assign => call(
                rt,
                &format!("{TASKS}/AssignTask"),
                &AssignTaskRequest {
                    id,
                    agent_id: agent_id.into(),
                    revision,
                },
            ),
            Op::Start => call(
                rt,
                &format!("{TASKS}/StartTask"),
                &StartTaskRequest { id, revision },
            ),
            Op::Complete => call(
                rt,
                &format!("{TASKS}/CompleteTask"),
                &CompleteTaskRequest {
                    id,
                    result: vec![0, 42, 0].into(),
                    result_content_type: "application/x-test".into(),
                    revision,
                },
            ),
            Op::Fail => call(
                rt,
                &format!("{TASKS}/FailTask"),
                &FailTaskRequest {
                    id,
                    error: Some(Status {
                        code: Code::Internal as i32,
                        message: "it broke".into(),
                        ..Default::default()
                    }),
                    revision,
                    retry: false,
                },
            ),
            Op::Cancel => call(
                rt,
                &format!("{TASKS}/CancelTask"),
                &CancelTaskRequest {
                    id,
                    reason: "no longer needed".into(),
                    revision,
                },
            ),
        }
    }
}

const STATUSES: [TaskStatus; 6] = [
    TaskStatus::Pending,
    TaskStatus::Assigned,
    TaskStatus::Running,
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];

/// A new task brought to `status` the regular way.
fn task_in(rt: &Rt, agent_id: &str, status: TaskStatus) -> Task {
    let task = submit(rt, titled(&format!("in {}", status.as_str_name()))).unwrap();
    let path: &[Op] = match status {
        TaskStatus::Pending => &[],
        TaskStatus::Assigned => &[Op::Assign],
        TaskStatus::Running => &[Op::Assign, Op::Start],
        TaskStatus::Succeeded => &[Op::Assign, Op::Start, Op::Complete],
        TaskStatus::Failed => &[Op::Assign, Op::Start, Op::Fail],
        TaskStatus::Cancelled => &[Op::Cancel],
        // Reached only from the queue (task_queue.rs).
        TaskStatus::Unspecified | TaskStatus::DeadLetter => unreachable!(),
    };
    let mut task = task;
    for op in path {
        task = op.apply(rt, &task.id, agent_id, 0).unwrap();
    }
    assert_eq!(task.status, status as i32);
    task
}

#[test]
fn submit_creates_a_pending_task_and_ignores_core_owned_fields() {
    let rt = new_runtime();
    let deadline = Timestamp {
        seconds: 2_000_000_000,
        nanos: 5,
    };
    let task = submit(
        &rt,
        Task {
            id: "mine".into(),
            title: "write report".into(),
            input: vec![0, 1, 2, 0].into(),
            input_content_type: "application/octet-stream".into(),
            priority: i32::MIN,
            status: TaskStatus::Succeeded as i32,
            result: vec![9].into(),
            error: Some(Status {
                code: 13,
                ..Default::default()
            }),
            deadline: Some(deadline),
            revision: 77,
            labels: [("queue".to_string(), "fast".to_string())].into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(common::is_uuid(&task.id));
    assert_eq!(task.status, TaskStatus::Pending as i32);
    assert_eq!(task.revision, 1);
    assert!(task.result.is_empty() && task.error.is_none());
    assert_eq!(task.input, vec![0, 1, 2, 0]);
    assert_eq!(task.priority, i32::MIN);
    assert_eq!(task.deadline, Some(deadline));
    assert_eq!(task.labels.get("queue").map(String::as_str), Some("fast"));
    assert!(task.created_at.is_some() && task.created_at == task.updated_at);
    assert!(task.agent_id.is_empty());
    assert_eq!(get(&rt, &task.id).unwrap(), task);
    let high = submit(
        &rt,
        Task {
            priority: i32::MAX,
            ..titled("urgent")
        },
    )
    .unwrap();
    assert_eq!(get(&rt, &high.id).unwrap().priority, i32::MAX);
}

#[test]
fn submit_requires_a_title() {
    let rt = new_runtime();
    let error = expect_code(submit(&rt, Task::default()), Code::InvalidArgument);
    assert_eq!(
        error.details.get("field").map(String::as_str),
        Some("task.title")
    );
    let none: Result<Task, _> = call(
        &rt,
        &format!("{TASKS}/SubmitTask"),
        &SubmitTaskRequest { task: None },
    );
    expect_code(none, Code::InvalidArgument);
    assert!(
        list(&rt, &ListTasksRequest::default())
            .unwrap()
            .tasks
            .is_empty()
    );
}

#[test]
fn submit_with_an_active_agent_assigns_at_once() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    let task = submit(
        &rt,
        Task {
            agent_id: agent.id.clone(),
            ..titled("direct")
        },
    )
    .unwrap();
    assert_eq!(task.status, TaskStatus::Assigned as i32);
    assert_eq!(task.agent_id, agent.id);
}

#[test]
fn only_an_active_agent_takes_new_tasks() {
    let rt = new_runtime();
    for state in common::ALL_STATES {
        if state == LifecycleState::Active {
            continue;
        }
        let agent = agent_in(&rt, state);
        let error = expect_code(
            submit(
                &rt,
                Task {
                    agent_id: agent.id.clone(),
                    ..titled("refused")
                },
            ),
            Code::FailedPrecondition,
        );
        assert!(
            error
                .details
                .get("rule")
                .is_some_and(|r| r.contains("ACTIVE")),
            "{state:?}: {error:?}"
        );
        assert_eq!(
            error.details.get("agent_state").map(String::as_str),
            Some(state.as_str_name())
        );
        let pending = submit(&rt, titled("pending")).unwrap();
        let error = expect_code(
            Op::Assign.apply(&rt, &pending.id, &agent.id, 0),
            Code::FailedPrecondition,
        );
        assert!(error.details.contains_key("rule"));
        assert_eq!(get(&rt, &pending.id).unwrap(), pending, "nothing changed");
    }
    assert_eq!(
        list(&rt, &ListTasksRequest::default())
            .unwrap()
            .tasks
            .iter()
            .filter(|t| t.status != TaskStatus::Pending as i32)
            .count(),
        0,
        "no task was taken"
    );
    // Unknown agents are not found; an empty one is an invalid argument.
    let pending = submit(&rt, titled("pending")).unwrap();
    expect_code(
        Op::Assign.apply(&rt, &pending.id, "ghost", 0),
        Code::NotFound,
    );
    expect_code(
        Op::Assign.apply(&rt, &pending.id, "", 0),
        Code::InvalidArgument,
    );
    expect_code(
        submit(
            &rt,
            Task {
                agent_id: "ghost".into(),
                ..titled("x")
            },
        ),
        Code::NotFound,
    );
}

#[test]
fn every_move_is_allowed_or_refused_exactly_as_the_rules_say() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    let (_, sub) = subscribe(&rt, &kinds(&["task.*"]));
    let mut allowed = 0;
    let mut refused = 0;
    for from in STATUSES {
        for op in OPS {
            let task = task_in(&rt, &agent.id, from);
            drain(&sub);
            let (sources, to) = op.rule();
            let result = op.apply(&rt, &task.id, &agent.id, 0);
            if sources.contains(&from) {
                let moved = result.unwrap_or_else(|e| panic!("{op:?} from {from:?}: {e:?}"));
                assert_eq!(moved.status, to as i32, "{op:?} from {from:?}");
                assert_eq!(moved.revision, task.revision + 1);
                let owner = if op == Op::Assign {
                    &agent.id
                } else {
                    &task.agent_id
                };
                assert_eq!(&moved.agent_id, owner);
                assert_eq!(get(&rt, &task.id).unwrap(), moved);
                let events = drain(&sub);
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].kind, op.event_kind());
                allowed += 1;
            } else {
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{op:?} from {from:?} must be refused"));
                assert_eq!(
                    error.code,
                    Code::FailedPrecondition,
                    "{op:?} from {from:?}: {error:?}"
                );
                assert!(
                    error.details.get("rule").is_some_and(|r| !r.is_empty()),
                    "{error:?}"
                );
                assert_eq!(
                    error.details.get("from").map(String::as_str),
                    Some(from.as_str_name())
                );
                assert_eq!(
                    error.details.get("to").map(String::as_str),
                    Some(to.as_str_name())
                );
                assert_eq!(get(&rt, &task.id).unwrap(), task, "nothing changed");
                assert!(drain(&sub).is_empty(), "nothing published");
                refused += 1;
            }
        }
    }
    assert_eq!(allowed, 7);
    assert_eq!(refused, 23);
}

#[test]
fn cancel_works_from_every_non_final_status_and_records_why() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    for from in [
        TaskStatus::Pending,
        TaskStatus::Assigned,
        TaskStatus::Running,
    ] {
        let task = task_in(&rt, &agent.id, from);
        let cancelled = Op::Cancel
            .apply(&rt, &task.id, &agent.id, task.revision)
            .unwrap();
        assert_eq!(cancelled.status, TaskStatus::Cancelled as i32);
        let error = cancelled.error.expect("why it was cancelled");
        assert_eq!(error.code, Code::Cancelled as i32);
        assert_eq!(error.message, "no longer needed");
    }
    for from in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ] {
        let task = task_in(&rt, &agent.id, from);
        let error = expect_code(
            Op::Cancel.apply(&rt, &task.id, &agent.id, 0),
            Code::FailedPrecondition,
        );
        assert!(error.details.contains_key("rule"));
        assert_eq!(get(&rt, &task.id).unwrap(), task);
    }
}

#[test]
fn complete_and_fail_record_their_outcome() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    let done = task_in(&rt, &agent.id, TaskStatus::Succeeded);
    assert_eq!(done.result, vec![0, 42, 0]);
    assert_eq!(done.result_content_type, "application/x-test");
    assert!(done.error.is_none());
    let failed = task_in(&rt, &agent.id, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, Code::Internal as i32);
    assert_eq!(error.message, "it broke");
    // A failure without a code is UNKNOWN.
    let running = task_in(&rt, &agent.id, TaskStatus::Running);
    let failed: Task = call(
        &rt,
        &format!("{TASKS}/FailTask"),
        &FailTaskRequest {
            id: running.id.clone(),
            error: None,
            revision: 0,
            retry: false,
        },
    )
    .unwrap();
    assert_eq!(failed.error.unwrap().code, Code::Unknown as i32);
}

#[test]
fn stale_revisions_are_aborted_for_every_move() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    for op in OPS {
        let (sources, _) = op.rule();
        let task = task_in(&rt, &agent.id, sources[0]);
        for stale in [task.revision - 1, task.revision + 1]
            .into_iter()
            .filter(|r| *r > 0)
        {
            let error = expect_code(op.apply(&rt, &task.id, &agent.id, stale), Code::Aborted);
            assert_eq!(
                error.details.get("current_revision").map(String::as_str),
                Some(task.revision.to_string().as_str())
            );
        }
        assert_eq!(get(&rt, &task.id).unwrap(), task);
        let moved = op.apply(&rt, &task.id, &agent.id, task.revision).unwrap();
        assert_eq!(moved.revision, task.revision + 1);
    }
}

#[test]
fn unknown_tasks_are_not_found() {
    let rt = new_runtime();
    let agent = active_agent(&rt, "worker");
    expect_code(get(&rt, "ghost"), Code::NotFound);
    expect_code(get(&rt, ""), Code::InvalidArgument);
    for op in OPS {
        let error = expect_code(op.apply(&rt, "ghost", &agent.id, 0), Code::NotFound);
        assert_eq!(error.details.get("id").map(String::as_str), Some("ghost"));
        expect_code(op.apply(&rt, "", &agent.id, 0), Code::InvalidArgument);
    }
}

#[test]
fn list_filters_by_agent_and_status_and_pages_exactly_once() {
    let rt = new_runtime();
    let first = active_agent(&rt, "first");
    let second = active_agent(&rt, "second");
    let mut expected_first = Vec::new();
    let mut all = Vec::new();
    for i in 0..12 {
        let status = STATUSES[i % STATUSES.len()];
        let owner = if i % 2 == 0 { &first } else { &second };
        let task = task_in(&rt, &owner.id, status);
        if owner.id == first.id && task.agent_id == first.id {
            expected_first.push(task.id.clone());
        }
        all.push(task);
    }
    let collect = |request: ListTasksRequest| -> Vec<String> {
        let mut ids = Vec::new();
        let mut request = ListTasksRequest {
            page_size: 2,
            ..request
        };
        loop {
            let page = list(&rt, &request).unwrap();
            assert!(page.tasks.len() <= 2);
            ids.extend(page.tasks.into_iter().map(|t| t.id));
            if page.next_page_token.is_empty() {
                return ids;
            }
            request.page_token = page.next_page_token;
        }
    };
    let every: Vec<String> = all.iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        collect(ListTasksRequest::default()),
        every,
        "oldest first, each once"
    );
    assert_eq!(
        collect(ListTasksRequest {
            agent_id: first.id.clone(),
            ..Default::default()
        }),
        expected_first
    );
    let pending_or_running: Vec<String> = all
        .iter()
        .filter(|t| [TaskStatus::Pending as i32, TaskStatus::Running as i32].contains(&t.status))
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(
        collect(ListTasksRequest {
            statuses: vec![TaskStatus::Pending as i32, TaskStatus::Running as i32],
            ..Default::default()
        }),
        pending_or_running
    );
    assert!(
        collect(ListTasksRequest {
            agent_id: "nobody".into(),
            ..Default::default()
        })
        .is_empty()
    );
    expect_code(
        list(
            &rt,
            &ListTasksRequest {
                page_token: "%%%".into(),
                ..Default::default()
            },
        ),
        Code::InvalidArgument,
    );
}

#[test]
fn a_deadline_without_an_rfc3339_form_is_refused_or_readable_in_every_format() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let rt = new_runtime();
    let far = Task {
        deadline: Some(Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        }),
        ..titled("far future")
    };
    match submit(&rt, far) {
        Err(error) => assert!(
            matches!(
                error.code,
                Code::InvalidArgument | Code::DecodeError | Code::OutOfRange
            ),
            "{error:?}"
        ),
        Ok(task) => {
            for format in [hms_ffi::codec::Format::Cbor, hms_ffi::codec::Format::Json] {
                let read = catch_unwind(AssertUnwindSafe(|| {
                    common::call_in::<_, Task>(
                        &rt,
                        &format!("{TASKS}/GetTask"),
                        format,
                        &GetTaskRequest {
                            id: task.id.clone(),
                        },
                        None,
                    )
                }));
                let read = read.unwrap_or_else(|_| panic!("GetTask in {format:?} panicked"));
                read.unwrap_or_else(|e| panic!("a stored task is unreadable in {format:?}: {e:?}"));
            }
        }
    }
}
