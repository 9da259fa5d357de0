//! The event bus of a runtime: bounded per-subscriber queues, polled or
//! pushed.
//!
//! A subscriber that falls behind loses its oldest events, never the
//! publisher's time or memory: its next poll returns one `lagged` event with
//! the number lost, then the events it still has, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::codec::{self, Format};
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::events::v1::{Event, EventFilter, LaggedEvent, event::Payload};

pub const KIND_LAGGED: &str = "lagged";

/// Which events a subscription receives.
#[derive(Clone, Debug, Default)]
pub struct Filter(EventFilter);

impl Filter {
    /// `filter`, its own fields checked (what needs a transport is checked
    /// by the runtime).
    pub fn from_proto(filter: EventFilter) -> Result<Filter> {
        if filter.origins.iter().any(String::is_empty) {
            return Err(bad_filter(
                "origins",
                "holds an empty name: give runtime names, as in Event.origin",
            ));
        }
        if filter.replay_from_sequence > 0 && filter.replay_from_time.is_some() {
            return Err(bad_filter(
                "replay_from_sequence",
                "and replay_from_time are both set: give one of them",
            ));
        }
        if let Some(time) = &filter.replay_from_time
            && (time.seconds < 0 || !(0..1_000_000_000).contains(&time.nanos))
        {
            return Err(bad_filter(
                "replay_from_time",
                format!(
                    "is not a time since 1970 ({}s {}ns)",
                    time.seconds, time.nanos
                ),
            ));
        }
        Ok(Filter(filter))
    }

    pub fn proto(&self) -> &EventFilter {
        &self.0
    }

    /// Whether the subscription also takes other runtimes' events.
    pub fn wants_remote(&self) -> bool {
        self.0.include_remote || !self.0.origins.is_empty() || self.replays()
    }

    /// Whether the subscription starts with a replay from the event stream.
    pub fn replays(&self) -> bool {
        self.0.replay_from_sequence > 0 || self.0.replay_from_time.is_some()
    }

    /// Every non-empty list of the filter must match. A "lagged" event that
    /// came from another runtime (its events lost on the way) concerns
    /// every kind and agent, so only its origin is checked.
    pub fn matches(&self, event: &Event) -> bool {
        let filter = &self.0;
        let origin_ok = filter.origins.is_empty() || filter.origins.contains(&event.origin);
        if event.kind == KIND_LAGGED {
            return origin_ok;
        }
        let kind_ok = filter.kinds.is_empty()
            || filter
                .kinds
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => event.kind.starts_with(prefix),
                    None => *pattern == event.kind,
                });
        let subject_ok = filter.subjects.is_empty() || filter.subjects.contains(&event.subject);
        let agent_ok = filter.agent_ids.is_empty() || filter.agent_ids.contains(&event.agent_id);
        let state = match &event.payload {
            Some(Payload::Lifecycle(transition)) => Some(transition.new_state),
            Some(Payload::Agent(agent)) => Some(agent.state),
            _ => None,
        };
        let state_ok =
            filter.states.is_empty() || state.is_some_and(|s| filter.states.contains(&s));
        let transition_type = match &event.payload {
            Some(Payload::Lifecycle(transition)) => Some(transition.transition_type),
            _ => None,
        };
        let type_ok = filter.transition_types.is_empty()
            || transition_type.is_some_and(|t| filter.transition_types.contains(&t));
        origin_ok && kind_ok && subject_ok && agent_ok && state_ok && type_ok
    }
}

fn bad_filter(field: &str, problem: impl std::fmt::Display) -> HmsError {
    HmsError::invalid_argument(format!("EventFilter.{field} {problem}")).with_detail("field", field)
}

/// Takes every event a runtime publishes, after its own subscribers have
/// it (the NATS publisher). Must not block: the publisher is a handler.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: &Arc<Event>);
    /// Waits until every event up to `sequence` has reached the other
    /// runtimes' side (the NATS server has processed it), at most until
    /// `until`; whether it did.
    fn wait_sent(&self, sequence: u64, until: Instant) -> bool;
}

struct Queue {
    events: VecDeque<Arc<Event>>,
    dropped: u64,
    closed: bool,
}

/// One subscriber's bounded queue.
pub struct Subscription {
    filter: Filter,
    pub format: Format,
    capacity: usize,
    queue: Mutex<Queue>,
    ready: Condvar,
    pusher: Mutex<Option<JoinHandle<()>>>,
    pusher_thread: Mutex<Option<ThreadId>>,
    /// Set by the push thread as it ends, and whether close gave up on it.
    pusher_state: Mutex<PusherState>,
    pusher_exited: Condvar,
    pub is_push: bool,
    /// Takes this runtime's own events from NATS with the others' instead
    /// of from the bus, so that all of them arrive in the one order the
    /// NATS server gave them (a runtime sharing its store: the history of
    /// one agent is made by several runtimes).
    own_from_feed: bool,
}

#[derive(Default)]
struct PusherState {
    exited: bool,
    abandoned: bool,
}

/// Why a poll returned without an event.
#[derive(Debug, PartialEq, Eq)]
pub enum PollEnd {
    TimedOut,
    Closed,
}

impl Subscription {
    /// The next event, waiting up to `timeout` (`None`: until one comes or
    /// the subscription closes).
    pub fn next(&self, timeout: Option<Duration>) -> std::result::Result<Arc<Event>, PollEnd> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut queue = self.queue.lock();
        loop {
            if queue.dropped > 0 {
                let dropped = std::mem::take(&mut queue.dropped);
                let sequence = queue
                    .events
                    .front()
                    .map_or(0, |e| e.sequence.saturating_sub(1));
                return Ok(Arc::new(Event {
                    sequence,
                    kind: KIND_LAGGED.to_owned(),
                    subject: String::new(),
                    agent_id: String::new(),
                    time: Some(now()),
                    payload: Some(Payload::Lagged(LaggedEvent { dropped })),
                    ..Event::default()
                }));
            }
            if let Some(event) = queue.events.pop_front() {
                return Ok(event);
            }
            if queue.closed {
                return Err(PollEnd::Closed);
            }
            match deadline {
                None => self.ready.wait(&mut queue),
                Some(deadline) => {
                    if self.ready.wait_until(&mut queue, deadline).timed_out()
                        && queue.events.is_empty()
                        && queue.dropped == 0
                        && !queue.closed
                    {
                        return Err(PollEnd::TimedOut);
                    }
                }
            }
        }
    }

    /// The next event encoded in the subscription's format.
    pub fn poll(&self, timeout: Option<Duration>, out: &mut Vec<u8>) -> Result<()> {
        if self.is_push {
            return Err(HmsError::new(
                Code::FailedPrecondition,
                "this is a push subscription: its events go to its callback",
            ));
        }
        match self.next(timeout) {
            Ok(event) => codec::encode_typed(event.as_ref(), self.format, out),
            Err(PollEnd::TimedOut) => Err(HmsError::new(
                Code::DeadlineExceeded,
                "no event arrived before the timeout",
            )),
            Err(PollEnd::Closed) => {
                Err(HmsError::new(Code::Cancelled, "the subscription is closed"))
            }
        }
    }

    /// Queues `event` if the filter takes it.
    pub fn offer(&self, event: &Arc<Event>) {
        if !self.filter.matches(event) {
            return;
        }
        let mut queue = self.queue.lock();
        if queue.closed {
            return;
        }
        if queue.events.len() >= self.capacity {
            queue.events.pop_front();
            queue.dropped += 1;
        }
        queue.events.push_back(event.clone());
        drop(queue);
        self.ready.notify_one();
    }

    /// Wakes every poller with `Closed` and, for a push subscription, waits
    /// for its thread (until `until` if given) unless called from inside its
    /// callback. Returns false when it stopped waiting for a callback that
    /// is still running: that thread is counted as abandoned until it ends.
    pub fn close(&self, until: Option<Instant>) -> bool {
        self.queue.lock().closed = true;
        self.ready.notify_all();
        let on_pusher = *self.pusher_thread.lock() == Some(std::thread::current().id());
        let Some(handle) = self.pusher.lock().take() else {
            return true;
        };
        // From inside its own callback the thread is left to finish by itself.
        if on_pusher {
            return true;
        }
        let mut state = self.pusher_state.lock();
        while !state.exited {
            match until {
                None => self.pusher_exited.wait(&mut state),
                Some(until) => {
                    if self.pusher_exited.wait_until(&mut state, until).timed_out() {
                        state.abandoned = true;
                        crate::workers::abandon_thread();
                        return false;
                    }
                }
            }
        }
        drop(state);
        let _ = handle.join();
        true
    }

    /// Called by the push thread as it ends.
    fn pusher_ended(&self) {
        let mut state = self.pusher_state.lock();
        state.exited = true;
        if state.abandoned {
            crate::workers::abandoned_thread_returned();
        }
        self.pusher_exited.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }
}

/// Publishes a runtime's events to its subscriptions.
pub struct EventBus {
    /// The last sequence handed out. Held while an event is queued for every
    /// subscriber, so that each queue receives events in sequence order even
    /// when several threads publish about different agents at once.
    sequence: Mutex<u64>,
    subscribers: RwLock<Vec<Arc<Subscription>>>,
    capacity: usize,
    closed: AtomicBool,
    /// `Event.origin` of every event: the runtime's identity, set once its
    /// transport starts.
    origin: OnceLock<String>,
    /// Where every event goes too, set when the transport publishes events.
    sink: OnceLock<Arc<dyn EventSink>>,
}

/// Receives each event of a push subscription, encoded; run on the
/// subscription's own thread.
pub type PushSink = Box<dyn FnMut(&[u8]) + Send>;

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        EventBus {
            sequence: Mutex::new(0),
            subscribers: RwLock::new(Vec::new()),
            capacity,
            closed: AtomicBool::new(false),
            origin: OnceLock::new(),
            sink: OnceLock::new(),
        }
    }

    /// Names the runtime in every event from now on.
    pub fn set_origin(&self, origin: &str) {
        let _ = self.origin.set(origin.to_owned());
    }

    pub fn origin(&self) -> &str {
        self.origin.get().map_or("", String::as_str)
    }

    /// Sends every event from now on to `sink` as well.
    pub fn set_sink(&self, sink: Arc<dyn EventSink>) {
        let _ = self.sink.set(sink);
    }

    pub fn subscribe(
        &self,
        filter: Filter,
        format: Format,
        sink: Option<PushSink>,
        own_from_feed: bool,
    ) -> Result<Arc<Subscription>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(HmsError::new(Code::Cancelled, "the runtime is closing"));
        }
        let subscription = Arc::new(Subscription {
            filter,
            format,
            capacity: self.capacity,
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                dropped: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            pusher: Mutex::new(None),
            pusher_thread: Mutex::new(None),
            pusher_state: Mutex::new(PusherState::default()),
            pusher_exited: Condvar::new(),
            is_push: sink.is_some(),
            own_from_feed,
        });
        if let Some(sink) = sink {
            let handle = spawn_pusher(subscription.clone(), sink)?;
            *subscription.pusher_thread.lock() = Some(handle.thread().id());
            *subscription.pusher.lock() = Some(handle);
        }
        self.subscribers.write().push(subscription.clone());
        Ok(subscription)
    }

    /// Removes and closes `subscription`; see [`Subscription::close`].
    pub fn unsubscribe(&self, subscription: &Arc<Subscription>, until: Option<Instant>) -> bool {
        self.subscribers
            .write()
            .retain(|s| !Arc::ptr_eq(s, subscription));
        subscription.close(until)
    }

    /// Publishes one event; `agent_id` is empty for events about no agent.
    /// Returns its sequence.
    pub fn publish(&self, kind: &str, subject: &str, agent_id: &str, payload: Payload) -> u64 {
        let mut sequence = self.sequence.lock();
        *sequence += 1;
        let event = Arc::new(Event {
            sequence: *sequence,
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            agent_id: agent_id.to_owned(),
            time: Some(now()),
            payload: Some(payload),
            origin: self.origin().to_owned(),
            stream_sequence: 0,
        });
        for subscriber in self.subscribers.read().iter() {
            if !subscriber.own_from_feed {
                subscriber.offer(&event);
            }
        }
        if let Some(sink) = self.sink.get() {
            sink.publish(&event);
        }
        event.sequence
    }

    /// Waits until the events up to `sequence` have reached the other
    /// runtimes, when this runtime publishes to them, at most until
    /// `until`; whether they did (true without a transport).
    pub fn wait_sent(&self, sequence: u64, until: Instant) -> bool {
        self.sink
            .get()
            .is_none_or(|sink| sink.wait_sent(sequence, until))
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.read().len()
    }

    /// Closes every subscription, waiting for push callbacks until `until`;
    /// later subscribes fail.
    pub fn close(&self, until: Option<Instant>) {
        self.closed.store(true, Ordering::Release);
        let subscribers = std::mem::take(&mut *self.subscribers.write());
        for subscriber in subscribers {
            subscriber.close(until);
        }
    }
}

fn spawn_pusher(subscription: Arc<Subscription>, mut sink: PushSink) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hms-events".into())
        .spawn(move || {
            crate::workers::mark_library_thread();
            let mut buffer = Vec::new();
            while let Ok(event) = subscription.next(None) {
                buffer.clear();
                // An event without a form in this format (a Timestamp outside
                // 0001..9999 in JSON) cannot be delivered; the next one can.
                if codec::encode_typed(event.as_ref(), subscription.format, &mut buffer).is_ok() {
                    sink(&buffer);
                }
            }
            subscription.pusher_ended();
        })
        .map_err(|e| {
            HmsError::new(
                Code::ResourceExhausted,
                format!("cannot start the event thread: {e}"),
            )
        })
}

pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}
