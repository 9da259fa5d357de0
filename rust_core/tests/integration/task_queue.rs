//! TaskService/ClaimTask and RenewLease: the queue workers share. Runs on
//! both stores (HMS_TEST_STORE=postgres runs it again on PostgreSQL, where
//! claims skip the rows other workers hold).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hms_ffi::proto::hms::agent::v1::{
    ClaimTaskRequest, ClaimTaskResponse, CompleteTaskRequest, FailTaskRequest, GetTaskRequest,
    RenewLeaseRequest, SubmitTaskRequest, Task, TaskStatus,
};
use hms_ffi::proto::hms::events::v1::event::Payload;
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};

use crate::common::*;

fn submit(rt: &Arc<Runtime>, title: &str, configure: impl FnOnce(&mut Task)) -> Task {
    let mut task = Task {
        title: title.into(),
        ..Default::default()
    };
    configure(&mut task);
    call(
        rt,
        &format!("{TASKS}/SubmitTask"),
        &SubmitTaskRequest { task: Some(task) },
    )
    .expect("SubmitTask")
}

fn claim_with(rt: &Arc<Runtime>, request: ClaimTaskRequest) -> Result<Option<Task>, HmsError> {
    call::<_, ClaimTaskResponse>(rt, &format!("{TASKS}/ClaimTask"), &request).map(|r| r.task)
}

fn claim(rt: &Arc<Runtime>, worker: &str) -> Option<Task> {
    claim_with(
        rt,
        ClaimTaskRequest {
            worker_id: worker.into(),
            ..Default::default()
        },
    )
    .expect("ClaimTask")
}

fn short_claim(rt: &Arc<Runtime>, worker: &str, lease_ms: u32) -> Option<Task> {
    claim_with(
        rt,
        ClaimTaskRequest {
            worker_id: worker.into(),
            lease_ms,
            ..Default::default()
        },
    )
    .expect("ClaimTask")
}

fn complete(rt: &Arc<Runtime>, task: &Task) -> Result<Task, HmsError> {
    call(
        rt,
        &format!("{TASKS}/CompleteTask"),
        &CompleteTaskRequest {
            id: task.id.clone(),
            revision: task.revision,
            result: b"done".to_vec().into(),
            ..Default::default()
        },
    )
}

fn get_task(rt: &Arc<Runtime>, id: &str) -> Task {
    call(
        rt,
        &format!("{TASKS}/GetTask"),
        &GetTaskRequest { id: id.into() },
    )
    .expect("GetTask")
}

fn renew(rt: &Arc<Runtime>, task: &Task, worker: &str, lease_ms: u32) -> Result<Task, HmsError> {
    call(
        rt,
        &format!("{TASKS}/RenewLease"),
        &RenewLeaseRequest {
            id: task.id.clone(),
            worker_id: worker.into(),
            lease_ms,
            revision: task.revision,
        },
    )
}

#[test]
fn a_claim_takes_the_most_urgent_task_first_then_the_oldest() {
    let rt = new_runtime();
    let low = submit(&rt, "low", |_| {});
    let high = submit(&rt, "high", |t| t.priority = 5);
    let second_low = submit(&rt, "low too", |_| {});
    let order: Vec<_> = (0..3).map(|_| claim(&rt, "w").unwrap().id).collect();
    assert_eq!(order, [high.id, low.id, second_low.id]);
    assert!(claim(&rt, "w").is_none(), "nothing left to claim");
}

#[test]
fn a_claimed_task_runs_under_the_workers_lease() {
    let rt = new_runtime();
    let submitted = submit(&rt, "work", |_| {});
    assert_eq!(submitted.max_attempts, 3, "the default");
    assert_eq!(submitted.attempts, 0);
    let claimed = claim(&rt, "worker-1").unwrap();
    assert_eq!(claimed.status, TaskStatus::Running as i32);
    assert_eq!(claimed.claimed_by, "worker-1");
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.revision, submitted.revision + 1);
    let lease = claimed.lease_expires_at.unwrap();
    let now = claimed.updated_at.unwrap();
    let length =
        (lease.seconds - now.seconds) * 1000 + i64::from(lease.nanos - now.nanos) / 1_000_000;
    assert_eq!(length, 30_000, "the default lease");
    let done = complete(&rt, &claimed).unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded as i32);
    assert_eq!(get_task(&rt, &claimed.id), done);
}

#[test]
fn capabilities_and_labels_choose_which_worker_takes_a_task() {
    let rt = new_runtime();
    let gpu = submit(&rt, "render", |t| {
        t.required_capabilities = vec!["gpu".into()];
        t.priority = 9;
    });
    let eu = submit(&rt, "eu only", |t| {
        t.labels = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
    });
    let plain = claim_with(
        &rt,
        ClaimTaskRequest {
            worker_id: "cpu-us".into(),
            capabilities: vec!["cpu".into()],
            labels: BTreeMap::from([("region".to_owned(), "us".to_owned())]),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        plain.is_none(),
        "neither task fits a US CPU worker: {plain:?}"
    );
    let eu_worker = claim_with(
        &rt,
        ClaimTaskRequest {
            worker_id: "cpu-eu".into(),
            capabilities: vec!["cpu".into()],
            labels: BTreeMap::from([("region".to_owned(), "eu".to_owned())]),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(eu_worker.id, eu.id);
    let gpu_worker = claim_with(
        &rt,
        ClaimTaskRequest {
            worker_id: "gpu".into(),
            capabilities: vec!["gpu".into(), "cpu".into()],
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(gpu_worker.id, gpu.id);
}

#[test]
fn a_lease_that_runs_out_lets_another_worker_take_the_task() {
    let rt = new_runtime();
    submit(&rt, "lost", |_| {});
    let first = short_claim(&rt, "slow", 50).unwrap();
    assert!(claim(&rt, "other").is_none(), "held while the lease runs");
    thread::sleep(Duration::from_millis(120));
    let second = claim(&rt, "other").unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.claimed_by, "other");
    assert_eq!(second.attempts, 2);
    // The first worker comes back: its revision is stale, its lease gone.
    expect_code(complete(&rt, &first), Code::Aborted);
    let refused = expect_code(renew(&rt, &second, "slow", 1000), Code::FailedPrecondition);
    assert!(refused.message.contains("`other`"), "{}", refused.message);
    complete(&rt, &second).unwrap();
}

#[test]
fn renewing_a_lease_keeps_the_task_and_only_its_holder_may() {
    let rt = new_runtime();
    submit(&rt, "long", |_| {});
    let claimed = short_claim(&rt, "holder", 100).unwrap();
    let renewed = renew(&rt, &claimed, "holder", 60_000).unwrap();
    assert_eq!(renewed.revision, claimed.revision + 1);
    assert!(
        renewed.lease_expires_at.unwrap().seconds >= claimed.lease_expires_at.unwrap().seconds + 59
    );
    thread::sleep(Duration::from_millis(150));
    assert!(
        claim(&rt, "thief").is_none(),
        "the renewed lease still holds"
    );
    expect_code(
        renew(&rt, &renewed, "thief", 1000),
        Code::FailedPrecondition,
    );
    expect_code(renew(&rt, &claimed, "holder", 1000), Code::Aborted);
    let too_long = expect_code(
        renew(&rt, &renewed, "holder", 3_600_001),
        Code::InvalidArgument,
    );
    assert!(
        too_long.message.contains("lease_ms"),
        "{}",
        too_long.message
    );
    let nameless = expect_code(
        claim_with(&rt, ClaimTaskRequest::default()),
        Code::InvalidArgument,
    );
    assert!(
        nameless.message.contains("worker_id"),
        "{}",
        nameless.message
    );
}

#[test]
fn a_task_whose_attempts_run_out_goes_to_dead_letter() {
    let rt = new_runtime();
    let (_, events) = subscribe(&rt, &kinds(&["task.dead_lettered"]));
    let task = submit(&rt, "doomed", |t| t.max_attempts = 2);
    for attempt in 1..=2 {
        let claimed = short_claim(&rt, "flaky", 20).unwrap();
        assert_eq!(claimed.attempts, attempt);
        thread::sleep(Duration::from_millis(60));
    }
    assert!(
        claim(&rt, "next").is_none(),
        "dead-lettered on the way, nothing else"
    );
    let dead = get_task(&rt, &task.id);
    assert_eq!(dead.status, TaskStatus::DeadLetter as i32);
    assert_eq!(dead.error.unwrap().code, Code::DeadlineExceeded as i32);
    let event = poll(&events, Some(Duration::from_secs(5))).unwrap();
    let Some(Payload::Task(published)) = event.payload else {
        panic!("{event:?}")
    };
    assert_eq!(published.id, task.id);
}

#[test]
fn a_failure_retried_returns_the_task_to_the_queue_until_its_attempts_run_out() {
    let rt = new_runtime();
    let task = submit(&rt, "retry me", |t| t.max_attempts = 2);
    let fail = |claimed: &Task| -> Task {
        call(
            &rt,
            &format!("{TASKS}/FailTask"),
            &FailTaskRequest {
                id: claimed.id.clone(),
                revision: claimed.revision,
                retry: true,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let again = fail(&claim(&rt, "w").unwrap());
    assert_eq!(again.status, TaskStatus::Pending as i32);
    assert!(again.claimed_by.is_empty() && again.lease_expires_at.is_none());
    let last = fail(&claim(&rt, "w").unwrap());
    assert_eq!(last.status, TaskStatus::DeadLetter as i32);
    assert!(claim(&rt, "w").is_none());
    assert_eq!(get_task(&rt, &task.id).attempts, 2);
}

/// Workers on several threads claim and complete 300 tasks: each is
/// claimed once and completed once (postgres_store.rs does the same with
/// several runtimes on one database).
#[test]
fn concurrent_workers_never_claim_the_same_task() {
    let rt = new_runtime();
    assert_workers_share_the_queue(&[rt.clone(), rt]);
}

pub fn assert_workers_share_the_queue(runtimes: &[Arc<Runtime>]) {
    let submitted: HashSet<String> = (0..300)
        .map(|i| submit(&runtimes[0], &format!("t{i}"), |t| t.priority = i % 7).id)
        .collect();
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let rt = runtimes[w % runtimes.len()].clone();
            thread::spawn(move || {
                let mut done = Vec::new();
                while let Some(task) = claim(&rt, &format!("worker-{w}")) {
                    complete(&rt, &task).expect("the holder completes its task");
                    done.push(task.id);
                }
                done
            })
        })
        .collect();
    let mut completed = Vec::new();
    for worker in workers {
        completed.extend(worker.join().unwrap());
    }
    assert_eq!(completed.len(), 300, "each task completed once");
    let unique: HashSet<String> = completed.into_iter().collect();
    assert_eq!(unique, submitted);
}
