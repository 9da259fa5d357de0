//! Exported calls of caller-thread-only services (PHP, Ruby's Fiddle):
//! their handlers may run only on a thread of their host, so an exported
//! call cannot run on a library thread as the others do. It waits in a
//! bounded queue of the runtime instead, until the host's thread runs it
//! inside `hms_serve` ([`Transport::serve`]).
//!
//! Nothing waits without a bound: a full queue answers
//! RESOURCE_EXHAUSTED at once; a call whose deadline passes while it waits
//! is answered DEADLINE_EXCEEDED without running (when the next call
//! arrives or the host serves); unregistering its service or freeing the
//! runtime answers UNAVAILABLE to every call still waiting for it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_nats::service::Request as ServiceRequest;
use parking_lot::{Condvar, Mutex};

use super::{Serving, Transport};
use crate::codec::Format;
use crate::error::{Code, HmsError, Result};
use crate::proto::v1::CallOptions;
use crate::registry::{Implementation, Method, Service, split_method};
use crate::runtime::Runtime;

/// Most exported calls of one runtime waiting for its host's thread; more
/// are answered RESOURCE_EXHAUSTED, naming this bound.
pub const MAX_WAITING_CALLS: usize = 64;

/// An exported call waiting for its host's thread.
struct WaitingCall {
    request: ServiceRequest,
    /// The registration it came for: unregistering that one fails it.
    service: Arc<Service>,
    method: Arc<Method>,
    full_name: Arc<str>,
    format: Format,
    options: CallOptions,
    deadline: Option<Instant>,
}

/// The calls waiting for the host's thread, and who serves them.
#[derive(Default)]
pub(super) struct HostQueue {
    state: Mutex<QueueState>,
    arrived: Condvar,
}

#[derive(Default)]
struct QueueState {
    calls: VecDeque<WaitingCall>,
    /// Set when the runtime is freed: nothing waits any more.
    closed: bool,
    /// The thread inside `hms_serve` for this runtime.
    server: Option<ThreadId>,
}

/// What answers a call that never ran.
type Refusal = (WaitingCall, HmsError);

impl Serving {
    /// The registration and method of `full_name` when its handler must run
    /// on the host's thread; `None` for everything that runs on a library
    /// thread (or is not here, which that path reports).
    pub(super) fn host_thread_target(
        &self,
        full_name: &str,
    ) -> Option<(Arc<Service>, Arc<Method>)> {
        let runtime = self.runtime.upgrade()?;
        let (service_name, method_name) = split_method(full_name).ok()?;
        let service = runtime.registry.get(service_name)?;
        let method = service.methods.get(method_name)?.clone();
        match &method.implementation {
            Implementation::Host(host) if host.caller_thread_only => Some((service, method)),
            _ => None,
        }
    }

    /// Queues an exported call for the host's thread, or answers it at
    /// once when it cannot wait.
    pub(super) fn wait_for_host(
        &self,
        request: ServiceRequest,
        (service, method): (Arc<Service>, Arc<Method>),
        full_name: Arc<str>,
        format: Format,
        options: CallOptions,
    ) {
        let deadline = (options.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(options.deadline_ms.into()));
        let call = WaitingCall {
            request,
            service,
            method,
            full_name,
            format,
            options,
            deadline,
        };
        let mut refusals = Vec::new();
        {
            let mut state = self.host_queue.state.lock();
            if state.closed {
                refusals.push((call, freed()));
            } else {
                refusals.extend(take_expired(&mut state.calls));
                if state.calls.len() >= MAX_WAITING_CALLS {
                    let full = HmsError::exhausted(format!(
                        "`{}` cannot wait for its host's thread (hms_serve): {} calls of \
                         runtime {} wait already, and at most {MAX_WAITING_CALLS} may",
                        call.full_name,
                        state.calls.len(),
                        self.identity
                    ))
                    .with_detail("max_waiting_calls", MAX_WAITING_CALLS);
                    refusals.push((call, full));
                } else {
                    state.calls.push_back(call);
                    self.host_queue.arrived.notify_all();
                }
            }
        }
        self.refuse(refusals);
    }

    /// Answers UNAVAILABLE to every waiting call of the registration
    /// `service` (it is being unregistered).
    pub(super) fn fail_waiting_for(&self, service: &Arc<Service>) {
        let refusals = {
            let mut state = self.host_queue.state.lock();
            drain_matching(
                &mut state.calls,
                |call| Arc::ptr_eq(&call.service, service),
                |call| {
                    HmsError::new(
                        Code::Unavailable,
                        format!(
                            "`{}` was unregistered while the call waited for its host's thread",
                            call.service.descriptor.name
                        ),
                    )
                },
            )
        };
        self.refuse(refusals);
    }

    /// Stops queueing (the runtime is being freed), answers UNAVAILABLE to
    /// every waiting call and wakes the host thread inside `hms_serve`.
    pub(super) fn close_host_queue(&self) {
        let refusals: Vec<Refusal> = {
            let mut state = self.host_queue.state.lock();
            state.closed = true;
            self.host_queue.arrived.notify_all();
            state.calls.drain(..).map(|call| (call, freed())).collect()
        };
        self.refuse(refusals);
    }

    fn refuse(&self, refusals: Vec<Refusal>) {
        for (call, error) in refusals {
            self.respond(call.request, Err(error), call.format);
        }
    }

    /// Runs one waiting call on this (the host's) thread and answers it.
    fn run_waiting(&self, runtime: &Arc<Runtime>, call: WaitingCall) {
        let WaitingCall {
            request,
            method,
            full_name,
            format,
            mut options,
            deadline,
            ..
        } = call;
        let mut out = Vec::new();
        // Its deadline runs from when it arrived: what is left goes on.
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis();
            options.deadline_ms = u32::try_from(left).unwrap_or(u32::MAX).max(1);
        }
        let payload = &request.message.payload;
        let stamps = super::request_info(request.message.headers.as_ref());
        let result = runtime
            .limits()
            .check_size(payload.len(), "request")
            .and_then(|()| {
                runtime.dispatch(
                    &method,
                    &full_name,
                    format,
                    payload,
                    options,
                    &mut out,
                    crate::runtime::Reach::LocalOnly(&stamps),
                )
            });
        self.respond(request, result.map(|()| out), format);
    }
}

fn freed() -> HmsError {
    HmsError::new(
        Code::Unavailable,
        "the runtime serving this call was freed while the call waited for its host's thread",
    )
}

/// Removes the calls whose deadline passed, each with its answer.
fn take_expired(calls: &mut VecDeque<WaitingCall>) -> Vec<Refusal> {
    let now = Instant::now();
    drain_matching(
        calls,
        |call| call.deadline.is_some_and(|d| d <= now),
        |call| {
            HmsError::new(
                Code::DeadlineExceeded,
                format!(
                    "`{}` waited for its host's thread (hms_serve) past its deadline and did not run",
                    call.full_name
                ),
            )
        },
    )
}

/// Removes the calls `matches` picks, each with the answer `refusal`
/// gives it; the queue is left untouched (no reallocation) when none does,
/// as on most arrivals.
fn drain_matching(
    calls: &mut VecDeque<WaitingCall>,
    matches: impl Fn(&WaitingCall) -> bool,
    refusal: impl Fn(&WaitingCall) -> HmsError,
) -> Vec<Refusal> {
    if !calls.iter().any(&matches) {
        return Vec::new();
    }
    let (matched, kept): (VecDeque<_>, _) = std::mem::take(calls).into_iter().partition(&matches);
    *calls = kept;
    matched
        .into_iter()
        .map(|call| {
            let error = refusal(&call);
            (call, error)
        })
        .collect()
}

/// Marks the thread inside `hms_serve` until dropped.
struct ServerSeat<'a>(&'a HostQueue);

impl Drop for ServerSeat<'_> {
    fn drop(&mut self) {
        self.0.state.lock().server = None;
    }
}

impl Transport {
    /// How many exported calls wait for the host's thread now.
    pub fn waiting_calls(&self) -> usize {
        self.serving.host_queue.state.lock().calls.len()
    }

    /// `hms_serve`: runs on this thread the exported calls waiting for the
    /// runtime's caller-thread-only services. Waits up to `timeout` (`None`:
    /// until one call was served or the runtime is being freed) for the
    /// first, then runs every call waiting at that moment; returns how many
    /// ran (those that waited past their deadline are answered without
    /// running and not counted). CANCELLED when the runtime is being freed
    /// and nothing ran.
    pub fn serve(&self, runtime: &Arc<Runtime>, timeout: Option<Duration>) -> Result<u32> {
        if crate::workers::on_library_thread() {
            return Err(HmsError::new(
                Code::FailedPrecondition,
                "hms_serve runs caller-thread handlers on the thread that calls it, and this is \
                 a library thread: call it from a thread of the host",
            ));
        }
        let serving = &self.serving;
        let queue = &serving.host_queue;
        let _seat = {
            let mut state = queue.state.lock();
            let me = std::thread::current().id();
            match state.server {
                Some(server) if server == me => {
                    return Err(HmsError::new(
                        Code::FailedPrecondition,
                        "hms_serve is running on this thread already (called from a handler it \
                         runs); the outer call serves the calls that arrive meanwhile",
                    ));
                }
                Some(_) => {
                    return Err(HmsError::new(
                        Code::FailedPrecondition,
                        "hms_serve is running for this runtime on another thread; one host \
                         thread serves a runtime's exported calls",
                    ));
                }
                None => state.server = Some(me),
            }
            ServerSeat(queue)
        };
        let until = timeout.map(|t| Instant::now() + t);
        let mut served = 0u32;
        loop {
            let (batch, expired) = {
                let mut state = queue.state.lock();
                while state.calls.is_empty() && !state.closed {
                    match until {
                        None => queue.arrived.wait(&mut state),
                        Some(until) => {
                            if queue.arrived.wait_until(&mut state, until).timed_out() {
                                break;
                            }
                        }
                    }
                }
                let expired = take_expired(&mut state.calls);
                let batch: Vec<WaitingCall> = state.calls.drain(..).collect();
                // Counted as in flight while still under the lock, so a
                // draining shutdown waits for their answers.
                serving
                    .in_flight
                    .fetch_add(batch.len(), std::sync::atomic::Ordering::AcqRel);
                (batch, expired)
            };
            serving.refuse(expired);
            for call in batch {
                serving.run_waiting(runtime, call);
                serving
                    .in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                served = served.saturating_add(1);
            }
            let closed = queue.state.lock().closed;
            if closed && served == 0 {
                return Err(HmsError::new(
                    Code::Cancelled,
                    "the runtime is being freed: no exported call will wait for hms_serve any more",
                ));
            }
            let out_of_time = until.is_some_and(|until| Instant::now() >= until);
            if served > 0 || closed || out_of_time {
                return Ok(served);
            }
        }
    }
}
