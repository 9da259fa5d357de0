//! `hms.agent.v1.TaskService`: tasks whose status only moves forward.

use prost::Message as _;

use super::paging::{Page, decode_token, record_weight};
use super::{Admit, Domain, Transaction, Write, check_revision, new_id, not_found, now, required};
use crate::error::{Code, HmsError, Result};
use crate::events::EventBus;
use crate::proto::hms::agent::lifecycle::v1::LifecycleState;
use crate::proto::hms::agent::v1::{
    AssignTaskRequest, CancelTaskRequest, ClaimTaskRequest, ClaimTaskResponse, CompleteTaskRequest,
    FailTaskRequest, GetTaskRequest, ListTasksRequest, ListTasksResponse, RenewLeaseRequest,
    StartTaskRequest, SubmitTaskRequest, Task, TaskStatus,
};
use crate::proto::hms::events::v1::event::Payload;
use crate::proto::v1::Status;

fn status_name(status: i32) -> &'static str {
    TaskStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name())
}

fn event_kind(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Unspecified | TaskStatus::Pending => "task.submitted",
        TaskStatus::Assigned => "task.assigned",
        TaskStatus::Running => "task.running",
        TaskStatus::Succeeded => "task.succeeded",
        TaskStatus::Failed => "task.failed",
        TaskStatus::Cancelled => "task.cancelled",
        TaskStatus::DeadLetter => "task.dead_lettered",
    }
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_LEASE_MS: u32 = 30_000;
pub const MAX_LEASE_MS: u32 = 3_600_000;

/// The lease a claim or renewal asks for (0: the default), from `now`.
fn lease_until(requested_ms: u32, now: prost_types::Timestamp) -> Result<prost_types::Timestamp> {
    let ms = match requested_ms {
        0 => DEFAULT_LEASE_MS,
        ms if ms > MAX_LEASE_MS => {
            return Err(HmsError::invalid_argument(format!(
                "lease_ms {ms} is over the maximum of {MAX_LEASE_MS}"
            ))
            .with_detail("field", "lease_ms"));
        }
        ms => ms,
    };
    let nanos = i64::from(now.nanos) + i64::from(ms % 1000) * 1_000_000;
    Ok(prost_types::Timestamp {
        seconds: now.seconds + i64::from(ms / 1000) + nanos / 1_000_000_000,
        nanos: (nanos % 1_000_000_000) as i32,
    })
}

/// Claims allowed for `task` before it is DEAD_LETTER.
fn max_attempts(task: &Task) -> u32 {
    if task.max_attempts == 0 {
        DEFAULT_MAX_ATTEMPTS
    } else {
        task.max_attempts
    }
}

/// FAILED_PRECONDITION naming the rule a move breaks.
fn refused_move(task: &Task, to: TaskStatus, rule: &str) -> HmsError {
    HmsError::new(
        Code::FailedPrecondition,
        format!(
            "task `{}` cannot move from {} to {}: {rule}",
            task.id,
            status_name(task.status),
            to.as_str_name()
        ),
    )
    .with_detail("rule", rule)
    .with_detail("from", status_name(task.status))
    .with_detail("to", to.as_str_name())
    .with_detail("id", &task.id)
}

/// The agent must exist and be ACTIVE to take a task.
fn check_assignee(tx: &mut dyn Transaction, agent_id: &str) -> Result<()> {
    let agent = tx
        .agent(agent_id)?
        .ok_or_else(|| not_found("agent", agent_id))?;
    if agent.state != LifecycleState::Active as i32 {
        let current = LifecycleState::try_from(agent.state).map_or("UNKNOWN", |s| s.as_str_name());
        return Err(HmsError::new(
            Code::FailedPrecondition,
            format!("agent `{agent_id}` is {current}: only an ACTIVE agent takes new tasks"),
        )
        .with_detail("rule", "only an ACTIVE agent takes new tasks")
        .with_detail("agent_id", agent_id)
        .with_detail("agent_state", current));
    }
    Ok(())
}

/// A move of a task's status: allowed only from the statuses in `from`.
struct Step<'a> {
    id: &'a str,
    revision: u64,
    from: &'a [TaskStatus],
    to: TaskStatus,
    rule: &'a str,
}

impl Domain {
    pub fn submit_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: SubmitTaskRequest,
    ) -> Result<Task> {
        let draft = request.task.unwrap_or_default();
        required(&draft.title, "task.title")?;
        super::check_timestamp(draft.deadline.as_ref(), "task.deadline")?;
        let id = new_id();
        let _order = self.order.hold(&id);
        let mut tx = self.write()?;
        let status = if draft.agent_id.is_empty() {
            TaskStatus::Pending
        } else {
            check_assignee(tx.as_mut(), &draft.agent_id)?;
            TaskStatus::Assigned
        };
        let stamp = now();
        let task = Task {
            id,
            status: status as i32,
            result: Default::default(),
            result_content_type: String::new(),
            error: None,
            max_attempts: max_attempts(&draft),
            attempts: 0,
            claimed_by: String::new(),
            lease_expires_at: None,
            created_at: Some(stamp),
            updated_at: Some(stamp),
            revision: 1,
            ..draft
        };
        admit.admit(&task)?;
        tx.write(Write::Task(task.clone()))?;
        tx.commit()?;
        events.publish(
            "task.submitted",
            &task.id,
            &task.agent_id,
            Payload::Task(task.clone()),
        );
        Ok(task)
    }

    pub fn get_task(&self, request: GetTaskRequest) -> Result<Task> {
        required(&request.id, "id")?;
        self.read()?
            .task(&request.id)?
            .ok_or_else(|| not_found("task", &request.id))
    }

    pub fn list_tasks(&self, request: ListTasksRequest) -> Result<ListTasksResponse> {
        let start_after = decode_token(&request.page_token)?;
        let keep = |task: &Task| {
            (request.agent_id.is_empty() || task.agent_id == request.agent_id)
                && (request.statuses.is_empty() || request.statuses.contains(&task.status))
        };
        let mut page = Page::new(self.page_limit(request.page_size));
        self.read()?
            .scan_tasks(start_after.as_deref(), &mut |task| {
                !keep(task) || page.take(task, record_weight(task.encoded_len()))
            })?;
        Ok(ListTasksResponse {
            next_page_token: page.next_token(|task| task.id.clone()),
            tasks: page.items,
        })
    }

    /// Applies `step` to a task, then `change` to the new record.
    fn move_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        step: Step<'_>,
        change: impl FnOnce(&mut dyn Transaction, &mut Task) -> Result<()>,
    ) -> Result<Task> {
        let Step {
            id,
            revision,
            from,
            to,
            rule,
        } = step;
        required(id, "id")?;
        let _order = self.order.hold(id);
        let mut tx = self.write()?;
        let mut task = tx.task(id)?.ok_or_else(|| not_found("task", id))?;
        check_revision("task", id, revision, task.revision)?;
        if !from.iter().any(|s| *s as i32 == task.status) {
            return Err(refused_move(&task, to, rule));
        }
        task.status = to as i32;
        change(tx.as_mut(), &mut task)?;
        let to = TaskStatus::try_from(task.status).unwrap_or(to);
        task.revision += 1;
        task.updated_at = Some(now());
        admit.admit(&task)?;
        tx.write(Write::Task(task.clone()))?;
        tx.commit()?;
        events.publish(
            event_kind(to),
            &task.id,
            &task.agent_id,
            Payload::Task(task.clone()),
        );
        Ok(task)
    }

    pub fn assign_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: AssignTaskRequest,
    ) -> Result<Task> {
        required(&request.agent_id, "agent_id")?;
        self.move_task(
            events,
            admit,
            Step {
                id: &request.id,
                revision: request.revision,
                from: &[TaskStatus::Pending],
                to: TaskStatus::Assigned,
                rule: "only a PENDING task can be assigned",
            },
            |tx, task| {
                check_assignee(tx, &request.agent_id)?;
                task.agent_id = request.agent_id.clone();
                Ok(())
            },
        )
    }

    pub fn start_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: StartTaskRequest,
    ) -> Result<Task> {
        self.move_task(
            events,
            admit,
            Step {
                id: &request.id,
                revision: request.revision,
                from: &[TaskStatus::Assigned],
                to: TaskStatus::Running,
                rule: "only an ASSIGNED task can start",
            },
            |_, _| Ok(()),
        )
    }

    pub fn complete_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: CompleteTaskRequest,
    ) -> Result<Task> {
        self.move_task(
            events,
            admit,
            Step {
                id: &request.id,
                revision: request.revision,
                from: &[TaskStatus::Running],
                to: TaskStatus::Succeeded,
                rule: "only a RUNNING task can complete",
            },
            |_, task| {
                task.result = request.result.clone();
                task.result_content_type = request.result_content_type.clone();
                Ok(())
            },
        )
    }

    pub fn fail_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: FailTaskRequest,
    ) -> Result<Task> {
        self.move_task(
            events,
            admit,
            Step {
                id: &request.id,
                revision: request.revision,
                from: &[TaskStatus::Running],
                to: TaskStatus::Failed,
                rule: "only a RUNNING task can fail",
            },
            |_, task| {
                let mut error = request.error.clone().unwrap_or_default();
                if error.code == 0 {
                    error.code = Code::Unknown.as_i32();
                }
                task.error = Some(error);
                if request.retry && !task.claimed_by.is_empty() {
                    task.status = if task.attempts >= max_attempts(task) {
                        TaskStatus::DeadLetter as i32
                    } else {
                        TaskStatus::Pending as i32
                    };
                    task.claimed_by.clear();
                    task.lease_expires_at = None;
                }
                Ok(())
            },
        )
    }

    pub fn cancel_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: CancelTaskRequest,
    ) -> Result<Task> {
        let not_final = [
            TaskStatus::Pending,
            TaskStatus::Assigned,
            TaskStatus::Running,
        ];
        let reason = if request.reason.is_empty() {
            "cancelled".to_owned()
        } else {
            request.reason.clone()
        };
        self.move_task(
            events,
            admit,
            Step {
                id: &request.id,
                revision: request.revision,
                from: &not_final,
                to: TaskStatus::Cancelled,
                rule: "a final task (SUCCEEDED, FAILED, CANCELLED) cannot be cancelled",
            },
            |_, task| {
                task.error = Some(Status {
                    code: Code::Cancelled.as_i32(),
                    message: reason,
                    ..Default::default()
                });
                Ok(())
            },
        )
    }

    /// Takes the most urgent task `request`'s worker may run. A task whose
    /// lease ran out with its attempts used up goes to DEAD_LETTER on the
    /// way, and the claim looks further.
    pub fn claim_task(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: ClaimTaskRequest,
    ) -> Result<ClaimTaskResponse> {
        required(&request.worker_id, "worker_id")?;
        loop {
            let stamp = now();
            let lease = lease_until(request.lease_ms, stamp)?;
            let mut tx = self.write()?;
            let scan = super::store::ClaimScan {
                now_micros: super::store::micros(stamp),
                capabilities: &request.capabilities,
                labels: &request.labels,
            };
            let mut found = None;
            tx.scan_claimable(&scan, &mut |task| {
                // A task whose stripe is busy is being changed: skipped like
                // a row another claim holds (waiting here, inside the store's
                // lock, could deadlock with that change).
                match scan
                    .fits(task)
                    .then(|| self.order.try_hold(&task.id))
                    .flatten()
                {
                    Some(order) => {
                        found = Some((task.clone(), order));
                        false
                    }
                    None => true,
                }
            })?;
            let Some((mut task, _order)) = found else {
                return Ok(ClaimTaskResponse { task: None });
            };
            task.revision += 1;
            task.updated_at = Some(stamp);
            if task.attempts >= max_attempts(&task) {
                task.status = TaskStatus::DeadLetter as i32;
                task.error = Some(Status {
                    code: Code::DeadlineExceeded.as_i32(),
                    message: format!(
                        "the lease of `{}` ran out on each of its {} attempts",
                        task.claimed_by, task.attempts
                    ),
                    ..Default::default()
                });
                task.lease_expires_at = None;
                tx.write(Write::Task(task.clone()))?;
                tx.commit()?;
                events.publish(
                    "task.dead_lettered",
                    &task.id,
                    &task.agent_id,
                    Payload::Task(task.clone()),
                );
                continue;
            }
            task.status = TaskStatus::Running as i32;
            task.attempts += 1;
            task.claimed_by = request.worker_id.clone();
            task.lease_expires_at = Some(lease);
            let response = ClaimTaskResponse {
                task: Some(task.clone()),
            };
            admit.admit(&response)?;
            tx.write(Write::Task(task.clone()))?;
            tx.commit()?;
            events.publish(
                "task.claimed",
                &task.id,
                &task.agent_id,
                Payload::Task(task.clone()),
            );
            return Ok(response);
        }
    }

    /// Extends the lease of a task its worker still holds.
    pub fn renew_lease(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: RenewLeaseRequest,
    ) -> Result<Task> {
        required(&request.id, "id")?;
        required(&request.worker_id, "worker_id")?;
        let stamp = now();
        let lease = lease_until(request.lease_ms, stamp)?;
        let _order = self.order.hold(&request.id);
        let mut tx = self.write()?;
        let mut task = tx
            .task(&request.id)?
            .ok_or_else(|| not_found("task", &request.id))?;
        check_revision("task", &request.id, request.revision, task.revision)?;
        if task.status != TaskStatus::Running as i32 || task.claimed_by != request.worker_id {
            let holder = if task.claimed_by.is_empty() {
                "nobody".to_owned()
            } else {
                format!("`{}`", task.claimed_by)
            };
            return Err(HmsError::new(
                Code::FailedPrecondition,
                format!(
                    "task `{}` is {} and held by {holder}, not by `{}`: only the worker \
                     holding a RUNNING task's lease renews it",
                    task.id,
                    status_name(task.status),
                    request.worker_id
                ),
            )
            .with_detail("rule", "only the holder of a lease renews it")
            .with_detail("claimed_by", &task.claimed_by)
            .with_detail("status", status_name(task.status)));
        }
        // A lease that already ran out is renewed only while nobody claimed
        // the task again (the claim would have changed claimed_by).
        task.lease_expires_at = Some(lease);
        task.revision += 1;
        task.updated_at = Some(stamp);
        admit.admit(&task)?;
        tx.write(Write::Task(task.clone()))?;
        tx.commit()?;
        events.publish(
            "task.lease_renewed",
            &task.id,
            &task.agent_id,
            Payload::Task(task.clone()),
        );
        Ok(task)
    }
}
