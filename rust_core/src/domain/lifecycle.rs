//! `hms.agent.lifecycle.v1.LifecycleService`: the transition table, hooks,
//! and the history of every agent.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::SystemTime;

use parking_lot::{Condvar, Mutex, RwLock};
use prost::Message as _;

use super::paging::{Page, decode_token, record_weight};
use super::store::FleetHook;
use super::{Admit, Domain, Write, new_id, not_found, now, required};
use crate::audit::{AuditKind, AuditRecord};
use crate::codec::{self, Format};
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::agent::lifecycle::v1::{
    GetHistoryRequest, GetHistoryResponse, GetStateRequest, GetStateResponse, HookInvocation,
    LifecycleEvent, LifecycleState, RegisterHookRequest, RegisterHookResponse, TransitionRequest,
    TransitionResponse, TransitionType, UnregisterHookRequest, UnregisterHookResponse,
};
use crate::proto::hms::events::v1::HookFailedEvent;
use crate::proto::hms::events::v1::event::Payload;
use crate::proto::v1::{CallOptions, Status};
use crate::runtime::CallContext;

use LifecycleState as S;

pub const DEFAULT_HOOK_TIMEOUT_MS: u32 = 5_000;
pub const MAX_HOOK_TIMEOUT_MS: u32 = 600_000;

/// The states `from` may move to without `force` (DOMAIN.md).
pub fn allowed_targets(from: LifecycleState) -> &'static [LifecycleState] {
    match from {
        S::StateUnspecified | S::Terminated => &[],
        S::Initialized => &[S::Active, S::Error, S::Terminated],
        S::Active => &[
            S::Paused,
            S::Suspended,
            S::ShuttingDown,
            S::Error,
            S::Maintenance,
            S::Upgrading,
        ],
        S::Paused => &[S::Active, S::Suspended, S::ShuttingDown, S::Error],
        S::Suspended => &[S::Recovering, S::Terminated, S::Error],
        S::ShuttingDown => &[S::Terminated, S::Error],
        S::Maintenance => &[S::Active, S::Error, S::ShuttingDown],
        S::Error => &[S::Recovering, S::Terminated],
        S::Upgrading => &[S::Active, S::Error],
        S::Recovering => &[S::Active, S::Error, S::Terminated],
    }
}

fn state_of(number: i32) -> LifecycleState {
    LifecycleState::try_from(number).unwrap_or(S::StateUnspecified)
}

fn names(states: &[LifecycleState]) -> String {
    states
        .iter()
        .map(|s| s.as_str_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serialises the transitions of each agent. Taking the lock of an agent
/// twice on one thread (a hook transitioning the agent it guards) fails
/// instead of deadlocking.
#[derive(Default)]
pub struct AgentLocks {
    locks: Mutex<HashMap<String, Arc<AgentLock>>>,
}

#[derive(Default)]
struct AgentLock {
    holder: Mutex<Option<ThreadId>>,
    released: Condvar,
}

pub struct AgentGuard {
    lock: Arc<AgentLock>,
    _held: crate::workers::Held,
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        *self.lock.holder.lock() = None;
        self.lock.released.notify_one();
    }
}

impl AgentLocks {
    fn acquire(&self, agent_id: &str) -> Result<AgentGuard> {
        let key = format!("agent:{agent_id}");
        let lock = self
            .locks
            .lock()
            .entry(agent_id.to_owned())
            .or_default()
            .clone();
        let me = std::thread::current().id();
        let mut holder = lock.holder.lock();
        loop {
            match *holder {
                None => break,
                // Held by this call chain: this thread, or the transition
                // whose hook this (library) thread is running.
                Some(thread) if thread == me || crate::workers::is_held(&key) => {
                    return Err(HmsError::new(
                        Code::FailedPrecondition,
                        format!(
                            "a transition of agent `{agent_id}` is already running in this call chain: \
                             a blocking hook cannot transition the agent it guards"
                        ),
                    )
                    .with_detail("rule", "transitions of one agent never interleave")
                    .with_detail("agent_id", agent_id));
                }
                Some(_) => lock.released.wait(&mut holder),
            }
        }
        *holder = Some(me);
        drop(holder);
        Ok(AgentGuard {
            lock,
            _held: crate::workers::hold(key),
        })
    }

    pub fn forget(&self, agent_id: &str) {
        self.locks.lock().remove(agent_id);
    }
}

/// A method called on matching transitions.
struct Hook {
    id: String,
    name: String,
    method: String,
    agent_ids: Vec<String>,
    from_states: Vec<i32>,
    to_states: Vec<i32>,
    blocking: bool,
    timeout_ms: u32,
    /// The runtime sharing this one's store that runs it; `None`: this one.
    runtime: Option<String>,
}

impl Hook {
    /// `request` with its defaults filled in (see [`Hook::request`]).
    fn new(id: String, request: RegisterHookRequest, runtime: Option<String>) -> Hook {
        Hook {
            id,
            name: if request.name.is_empty() {
                request.method.clone()
            } else {
                request.name
            },
            method: request.method,
            agent_ids: request.agent_ids,
            from_states: request.from_states,
            to_states: request.to_states,
            blocking: request.blocking,
            timeout_ms: if request.timeout_ms == 0 {
                DEFAULT_HOOK_TIMEOUT_MS
            } else {
                request.timeout_ms
            },
            runtime,
        }
    }

    /// As the fleet stores it.
    fn request(&self) -> RegisterHookRequest {
        RegisterHookRequest {
            name: self.name.clone(),
            method: self.method.clone(),
            agent_ids: self.agent_ids.clone(),
            from_states: self.from_states.clone(),
            to_states: self.to_states.clone(),
            blocking: self.blocking,
            timeout_ms: self.timeout_ms,
        }
    }

    fn matches(&self, event: &LifecycleEvent) -> bool {
        (self.agent_ids.is_empty() || self.agent_ids.contains(&event.agent_id))
            && (self.from_states.is_empty() || self.from_states.contains(&event.previous_state))
            && (self.to_states.is_empty() || self.to_states.contains(&event.new_state))
    }
}

/// The hooks of a runtime, in registration order. They live in memory only:
/// they name host functions, which do not outlive the process.
#[derive(Default)]
pub struct Hooks {
    hooks: RwLock<Vec<Arc<Hook>>>,
}

impl Hooks {
    fn matching(&self, event: &LifecycleEvent, blocking: bool) -> Vec<Arc<Hook>> {
        self.hooks
            .read()
            .iter()
            .filter(|hook| hook.blocking == blocking && hook.matches(event))
            .cloned()
            .collect()
    }
}

fn call_hook(
    context: &CallContext<'_>,
    hook: &Hook,
    event: &LifecycleEvent,
    timeout_ms: u32,
) -> Result<()> {
    let invocation = HookInvocation {
        hook_id: hook.id.clone(),
        hook_name: hook.name.clone(),
        blocking: hook.blocking,
        event: Some(event.clone()),
    };
    let mut request = Vec::new();
    codec::encode_typed(&invocation, Format::Cbor, &mut request)?;
    let options = CallOptions {
        deadline_ms: timeout_ms,
        trace_id: context.options.trace_id.clone(),
        ..Default::default()
    };
    let mut response = Vec::new();
    match &hook.runtime {
        None => context.dispatch.nested_call(
            &hook.method,
            Format::Cbor,
            &request,
            options,
            &mut response,
        ),
        Some(runtime) => context.dispatch.remote_hook_call(
            runtime,
            &hook.id,
            &hook.method,
            &request,
            options,
            &mut response,
        ),
    }
}

/// Tells subscribers that `hook` failed without refusing the transition
/// (a non-blocking hook, or a blocking one whose runtime is gone).
fn publish_hook_failure(
    context: &CallContext<'_>,
    hook: &Hook,
    event: &LifecycleEvent,
    error: &HmsError,
) {
    let failure = HookFailedEvent {
        hook_id: hook.id.clone(),
        hook_name: hook.name.clone(),
        method: hook.method.clone(),
        error: Some(error.to_status()),
        event: Some(event.clone()),
    };
    context.events.publish(
        "lifecycle.hook_failed",
        &event.agent_id,
        &event.agent_id,
        Payload::HookFailed(failure),
    );
}

fn transition_type(request: &TransitionRequest) -> Result<TransitionType> {
    let requested = TransitionType::try_from(request.transition_type).map_err(|_| {
        HmsError::invalid_argument(format!(
            "unknown transition_type {}",
            request.transition_type
        ))
        .with_detail("field", "transition_type")
    })?;
    if request.force {
        return Ok(TransitionType::Forced);
    }
    match requested {
        TransitionType::Unspecified => Ok(TransitionType::Normal),
        TransitionType::Forced => Err(HmsError::invalid_argument(
            "transition_type FORCED is recorded by setting `force`, not requested",
        )
        .with_detail("field", "transition_type")),
        other => Ok(other),
    }
}

fn millis_since(stamp: &prost_types::Timestamp) -> u64 {
    SystemTime::try_from(*stamp)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(stamp: &Option<prost_types::Timestamp>) -> (i64, i32) {
    stamp.map_or((0, 0), |t| (t.seconds, t.nanos))
}

/// The audit record of a transition (made, or vetoed): which agent, from
/// and to which state, never the caller's reason or metadata.
fn audited(kind: AuditKind, decision: &str, status: Code, event: &LifecycleEvent) -> AuditRecord {
    AuditRecord {
        resource: format!("agent:{}", event.agent_id),
        ..AuditRecord::new(kind, decision, status)
    }
    .with_detail("from", state_of(event.previous_state).as_str_name())
    .with_detail("to", state_of(event.new_state).as_str_name())
    .with_detail("sequence", event.sequence)
    .with_detail("event_id", &event.event_id)
    .with_detail(
        "transition_type",
        TransitionType::try_from(event.transition_type)
            .unwrap_or(TransitionType::Unspecified)
            .as_str_name(),
    )
}

/// Longest a transition in a fleet holds its agent for its event to reach
/// the NATS server (when the server is away, events of one agent from two
/// runtimes may then arrive out of order).
const FLEET_SEND_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Domain {
    /// The blocking hooks for `event`: this runtime's, in registration
    /// order, then those of the other runtimes sharing the store, in the
    /// order the fleet registered them.
    fn blocking_hooks(
        &self,
        context: &CallContext<'_>,
        event: &LifecycleEvent,
    ) -> Result<Vec<Arc<Hook>>> {
        let mut hooks = self.hooks.matching(event, true);
        if let Some(fleet) = self.store.fleet_hooks() {
            let me = context.events.origin();
            hooks.extend(
                fleet
                    .list()?
                    .into_iter()
                    .filter(|listed| listed.runtime != me)
                    .map(|listed| Hook::new(listed.id, listed.hook, Some(listed.runtime)))
                    .filter(|hook| hook.blocking && hook.matches(event))
                    .map(Arc::new),
            );
        }
        Ok(hooks)
    }

    pub fn transition(
        &self,
        context: &CallContext<'_>,
        admit: &impl Admit,
        request: TransitionRequest,
    ) -> Result<TransitionResponse> {
        let agent_id = required(&request.agent_id, "agent_id")?.to_owned();
        let target = LifecycleState::try_from(request.target_state)
            .ok()
            .filter(|s| *s != S::StateUnspecified)
            .ok_or_else(|| {
                HmsError::invalid_argument(format!(
                    "target_state {} is not a lifecycle state",
                    request.target_state
                ))
                .with_detail("field", "target_state")
            })?;
        let transition_type = transition_type(&request)?;
        let guard = self.locks.acquire(&agent_id)?;
        let shared_guard = self.store.lock_transitions(&agent_id)?;
        let (from, sequence) = {
            let mut tx = self.read()?;
            let agent = tx
                .agent(&agent_id)?
                .ok_or_else(|| not_found("agent", &agent_id))?;
            let last = tx.last_event(&agent_id)?.map_or(0, |e| e.sequence);
            (state_of(agent.state), last + 1)
        };
        let allowed = allowed_targets(from);
        let refuse = |rule: &str, message: String| {
            HmsError::new(Code::FailedPrecondition, message)
                .with_detail("rule", rule)
                .with_detail("from", from.as_str_name())
                .with_detail("to", target.as_str_name())
                .with_detail("allowed", names(allowed))
                .with_detail("agent_id", &agent_id)
        };
        if from == S::Terminated {
            return Err(refuse(
                "TERMINATED is final",
                format!("agent `{agent_id}` is TERMINATED, which is final, even with force"),
            ));
        }
        if !request.force && !allowed.contains(&target) {
            return Err(refuse(
                "lifecycle transition table",
                format!(
                    "agent `{agent_id}` cannot move from {} to {} (allowed: {}); set `force` to override",
                    from.as_str_name(),
                    target.as_str_name(),
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        names(allowed)
                    }
                ),
            ));
        }
        let mut event = LifecycleEvent {
            event_id: new_id(),
            agent_id: agent_id.clone(),
            previous_state: from as i32,
            new_state: target as i32,
            transition_type: transition_type as i32,
            timestamp: Some(now()),
            initiated_by: request.initiated_by.clone(),
            reason: request.reason.clone(),
            metadata: request.metadata.clone(),
            sequence,
        };
        for hook in self.blocking_hooks(context, &event)? {
            let timeout = if request.timeout_ms > 0 {
                request.timeout_ms
            } else {
                hook.timeout_ms
            };
            if let Err(error) = call_hook(context, &hook, &event, timeout) {
                if hook.runtime.is_some() && crate::transport::is_hook_gone(&error) {
                    // Its hooks went with it; it lists them again when it
                    // starts again.
                    publish_hook_failure(context, &hook, &event, &error);
                    continue;
                }
                context.audit(
                    audited(AuditKind::HookVeto, "veto", error.code, &event)
                        .with_detail("hook_id", &hook.id)
                        .with_detail("hook_name", &hook.name)
                        .with_detail("hook_method", &hook.method),
                )?;
                let mut veto = HmsError::new(
                    error.code,
                    format!(
                        "transition of agent `{agent_id}` to {} vetoed by hook `{}`: {}",
                        target.as_str_name(),
                        hook.name,
                        error.message
                    ),
                )
                .with_detail("hook_id", &hook.id)
                .with_detail("hook_name", &hook.name)
                .with_origin(&hook.method);
                veto.details.extend(error.details);
                return Err(veto);
            }
        }
        {
            let _order = self.order.hold(&agent_id);
            let mut tx = self.write()?;
            let mut agent = tx.agent(&agent_id)?.ok_or_else(|| {
                not_found("agent", &agent_id).with_detail("reason", "deleted while its hooks ran")
            })?;
            event.timestamp = Some(now());
            agent.state = target as i32;
            agent.revision += 1;
            agent.updated_at = event.timestamp;
            admit.admit(&TransitionResponse {
                previous_state: from as i32,
                current_state: target as i32,
                event: Some(event.clone()),
            })?;
            // Recorded before it is stored: a transition the log cannot
            // take is not made.
            context.audit(audited(
                AuditKind::LifecycleTransition,
                "allow",
                Code::Ok,
                &event,
            ))?;
            tx.write(Write::Agent(agent))?;
            tx.write(Write::Event(event.clone()))?;
            tx.commit()?;
            // Published in the agent's stripe, so subscribers see each
            // agent's events in the order they happened.
            let published = context.events.publish(
                "lifecycle.transition",
                &agent_id,
                &agent_id,
                Payload::Lifecycle(event.clone()),
            );
            if self.shares_store() {
                // Sent before the next runtime may transition the agent, so
                // every runtime's subscribers see its history in order.
                context
                    .events
                    .wait_sent(published, std::time::Instant::now() + FLEET_SEND_WAIT);
            }
        }
        // Released before the non-blocking hooks, which may transition the
        // agent again.
        drop(shared_guard);
        drop(guard);
        for hook in self.hooks.matching(&event, false) {
            if let Err(error) = call_hook(context, &hook, &event, hook.timeout_ms) {
                publish_hook_failure(context, &hook, &event, &error);
            }
        }
        Ok(TransitionResponse {
            previous_state: from as i32,
            current_state: target as i32,
            event: Some(event),
        })
    }

    pub fn get_state(&self, request: GetStateRequest) -> Result<GetStateResponse> {
        required(&request.agent_id, "agent_id")?;
        let mut tx = self.read()?;
        let agent = tx
            .agent(&request.agent_id)?
            .ok_or_else(|| not_found("agent", &request.agent_id))?;
        let last = tx.last_event(&request.agent_id)?;
        let last = last.as_ref();
        let since = last.and_then(|e| e.timestamp).or(agent.created_at);
        let error = (agent.state == S::Error as i32).then(|| Status {
            code: Code::Unknown.as_i32(),
            message: last.map(|e| e.reason.clone()).unwrap_or_default(),
            details: last
                .map(|e| {
                    [
                        ("initiated_by".to_owned(), e.initiated_by.clone()),
                        ("event_id".to_owned(), e.event_id.clone()),
                    ]
                    .into_iter()
                    .collect()
                })
                .unwrap_or_default(),
            origin: "hms.agent.lifecycle.v1.LifecycleService".into(),
        });
        Ok(GetStateResponse {
            agent_id: agent.id.clone(),
            state: agent.state,
            previous_state: last.map_or(S::StateUnspecified as i32, |e| e.previous_state),
            since,
            time_in_state_ms: since.as_ref().map_or(0, millis_since),
            error,
        })
    }

    pub fn get_history(&self, request: GetHistoryRequest) -> Result<GetHistoryResponse> {
        required(&request.agent_id, "agent_id")?;
        let after = match decode_token(&request.page_token)? {
            None => 0,
            Some(token) => token.parse::<u64>().map_err(|_| {
                HmsError::invalid_argument("page_token is not one this service returned")
                    .with_detail("field", "page_token")
            })?,
        };
        let limit = self.page_limit(request.page_size);
        let mut tx = self.read()?;
        if tx.agent(&request.agent_id)?.is_none() {
            return Err(not_found("agent", &request.agent_id));
        }
        let start = request.start_time.map(|t| (t.seconds, t.nanos));
        let end = request.end_time.map(|t| (t.seconds, t.nanos));
        let matches = |e: &LifecycleEvent| {
            (request.transition_type == 0 || e.transition_type == request.transition_type)
                && start.is_none_or(|s| key(&e.timestamp) >= s)
                && end.is_none_or(|s| key(&e.timestamp) <= s)
        };
        // Weighed like the other lists: an event carries its caller's
        // reason and metadata, so a page of them can outgrow the size limit.
        let mut page = Page::new(limit);
        tx.scan_history(&request.agent_id, after, &mut |e| {
            !matches(e) || page.take(e, record_weight(e.encoded_len()))
        })?;
        Ok(GetHistoryResponse {
            next_page_token: page.next_token(|e| e.sequence.to_string()),
            events: page.items,
        })
    }

    pub fn register_hook(
        &self,
        context: &CallContext<'_>,
        admit: &impl Admit,
        request: RegisterHookRequest,
    ) -> Result<RegisterHookResponse> {
        required(&request.method, "method")?;
        context.registry.method(&request.method)?;
        for (field, states) in [
            ("from_states", &request.from_states),
            ("to_states", &request.to_states),
        ] {
            if let Some(bad) = states.iter().find(|s| state_of(**s) == S::StateUnspecified) {
                return Err(HmsError::invalid_argument(format!(
                    "{field} holds {bad}, which is not a lifecycle state"
                ))
                .with_detail("field", field));
            }
        }
        if request.timeout_ms > MAX_HOOK_TIMEOUT_MS {
            return Err(HmsError::invalid_argument(format!(
                "timeout_ms {} is over the maximum of {MAX_HOOK_TIMEOUT_MS}",
                request.timeout_ms
            ))
            .with_detail("field", "timeout_ms"));
        }
        let hook = Hook::new(new_id(), request, None);
        let response = RegisterHookResponse {
            hook_id: hook.id.clone(),
        };
        admit.admit(&response)?;
        // Other runtimes sharing the store run a blocking hook too, through
        // the transport; without one, nobody could reach it.
        let runtime = context.events.origin();
        if let Some(fleet) = self.store.fleet_hooks()
            && hook.blocking
            && !runtime.is_empty()
        {
            fleet.add(&FleetHook {
                runtime: runtime.to_owned(),
                id: hook.id.clone(),
                hook: hook.request(),
            })?;
        }
        self.hooks.hooks.write().push(Arc::new(hook));
        Ok(response)
    }

    /// The method of this runtime's blocking hook `hook_id`, which another
    /// runtime sharing the store asks it to run.
    pub fn blocking_hook_method(&self, hook_id: &str) -> Option<String> {
        self.hooks
            .hooks
            .read()
            .iter()
            .find(|hook| hook.id == hook_id && hook.blocking)
            .map(|hook| hook.method.clone())
    }

    /// Whether other runtimes may share this one's store (and so run its
    /// blocking hooks, and it theirs).
    pub fn shares_store(&self) -> bool {
        self.store.fleet_hooks().is_some()
    }

    /// Forgets the blocking hooks the fleet lists for `runtime`: it starts
    /// (any listed are a previous process's under the same name) or closes.
    pub fn forget_fleet_hooks(&self, runtime: &str) -> Result<()> {
        match self.store.fleet_hooks() {
            Some(fleet) => fleet.remove_runtime(runtime),
            None => Ok(()),
        }
    }

    pub fn unregister_hook(
        &self,
        request: UnregisterHookRequest,
    ) -> Result<UnregisterHookResponse> {
        required(&request.hook_id, "hook_id")?;
        let known = self
            .hooks
            .hooks
            .read()
            .iter()
            .any(|h| h.id == request.hook_id);
        if !known {
            return Err(not_found("hook", &request.hook_id));
        }
        if let Some(fleet) = self.store.fleet_hooks() {
            fleet.remove(&request.hook_id)?;
        }
        self.hooks.hooks.write().retain(|h| h.id != request.hook_id);
        Ok(UnregisterHookResponse {})
    }
}
