//! Events over NATS (docs/transport.md): the publisher that sends a
//! runtime's events to `<prefix>.evt.<origin>.<agent>.<kind>`, and the
//! feeds that bring other runtimes' events into a subscription.
//!
//! The publisher never blocks the code that publishes an event: the event
//! goes into a bounded outbox, and one task on the transport's runtime sends
//! the outbox in order over the one connection, which keeps every origin's
//! order (and so each agent's) end to end. A full outbox drops its oldest
//! events, and the next thing published is a "lagged" event with their
//! number, as a slow local subscriber would see.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::{Condvar, Mutex};
use prost::Message;
use tokio::sync::{Notify, watch};

use super::{EventStreamSettings, event_subject, events_subject};
use crate::error::{Code, HmsError, Result};
use crate::events::{EventSink, Filter, KIND_LAGGED, Subscription};
use crate::proto::hms::events::v1::{Event, LaggedEvent, event::Payload};

/// Longest the publisher waits for the server to confirm what it sent.
const ECHO_TIMEOUT: Duration = Duration::from_secs(2);

/// Events waiting for the publisher task, and how many were dropped since
/// it last looked.
struct Outbox {
    events: VecDeque<Arc<Event>>,
    dropped: u64,
    closing: bool,
}

/// The sending side of a runtime's events.
pub struct EventPublisher {
    outbox: Mutex<Outbox>,
    capacity: usize,
    wake: Notify,
    prefix: String,
    identity: String,
    /// The last sequence the NATS server is known to have processed, told
    /// to [`EventSink::wait_sent`] callers; `u64::MAX` once closed.
    sent: Mutex<u64>,
    sent_moved: Condvar,
    /// Callers in `wait_sent`: only then does the task ask the server to
    /// confirm what it sent (one round trip per batch).
    waiting: AtomicUsize,
}

impl EventSink for EventPublisher {
    fn publish(&self, event: &Arc<Event>) {
        let mut outbox = self.outbox.lock();
        if outbox.closing {
            return;
        }
        if outbox.events.len() >= self.capacity {
            outbox.events.pop_front();
            outbox.dropped += 1;
        }
        outbox.events.push_back(event.clone());
        drop(outbox);
        self.wake.notify_one();
    }

    fn wait_sent(&self, sequence: u64, until: Instant) -> bool {
        let mut sent = self.sent.lock();
        if *sent >= sequence {
            return true;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        // The task may be idle with this event sent but not confirmed.
        self.wake.notify_one();
        while *sent < sequence {
            if self.sent_moved.wait_until(&mut sent, until).timed_out() {
                break;
            }
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        *sent >= sequence
    }
}

impl EventPublisher {
    pub fn new(prefix: &str, identity: &str, capacity: usize) -> EventPublisher {
        EventPublisher {
            outbox: Mutex::new(Outbox {
                events: VecDeque::new(),
                dropped: 0,
                closing: false,
            }),
            capacity,
            wake: Notify::new(),
            prefix: prefix.to_owned(),
            identity: identity.to_owned(),
            sent: Mutex::new(0),
            sent_moved: Condvar::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn confirm_sent(&self, sequence: u64) {
        let mut sent = self.sent.lock();
        *sent = (*sent).max(sequence);
        drop(sent);
        self.sent_moved.notify_all();
    }

    /// Sends the outbox until [`EventPublisher::close`], then what is left
    /// in it. While the connection is down the client buffers what it is
    /// given and this task waits for it, so the outbox fills and drops its
    /// oldest events rather than blocking anyone.
    pub async fn run(self: Arc<Self>, client: Client) {
        // What comes back on this inbox was processed by the server after
        // every event sent before it, on this one connection.
        let inbox = client.new_inbox();
        let mut echoes = client.subscribe(inbox.clone()).await.ok();
        let mut unconfirmed = 0;
        loop {
            let (events, dropped, closing) = {
                let mut outbox = self.outbox.lock();
                (
                    std::mem::take(&mut outbox.events),
                    std::mem::take(&mut outbox.dropped),
                    outbox.closing,
                )
            };
            if dropped > 0 {
                let lagged = Event {
                    kind: KIND_LAGGED.to_owned(),
                    time: Some(crate::events::now()),
                    origin: self.identity.clone(),
                    payload: Some(Payload::Lagged(LaggedEvent { dropped })),
                    ..Event::default()
                };
                self.send(&client, &lagged).await;
            }
            for event in &events {
                self.send(&client, event).await;
            }
            unconfirmed = events.back().map_or(unconfirmed, |e| e.sequence);
            if closing {
                let _ = client.flush().await;
                self.confirm_sent(u64::MAX);
                return;
            }
            if let Some(echoes) = echoes.as_mut()
                && unconfirmed > 0
                && self.waiting.load(Ordering::Acquire) > 0
            {
                let _ = client.publish(inbox.clone(), Bytes::new()).await;
                if tokio::time::timeout(ECHO_TIMEOUT, echoes.next())
                    .await
                    .is_ok()
                {
                    self.confirm_sent(unconfirmed);
                    unconfirmed = 0;
                }
                continue;
            }
            if events.is_empty() && dropped == 0 {
                self.wake.notified().await;
            }
        }
    }

    async fn send(&self, client: &Client, event: &Event) {
        let subject = event_subject(&self.prefix, &event.origin, &event.agent_id, &event.kind);
        let payload = Bytes::from(event.encode_to_vec());
        // Fails only once the client is closed, at shutdown: nothing to do.
        let _ = client.publish(subject, payload).await;
    }

    /// Stops taking events; the task sends what is queued and ends.
    pub fn close(&self) {
        // Nobody waits for a confirmation that will not come.
        self.confirm_sent(u64::MAX);
        self.outbox.lock().closing = true;
        self.wake.notify_one();
    }
}

/// Makes sure the event stream exists: created with `settings` when
/// missing, used as it is otherwise.
pub async fn ensure_stream(
    client: &Client,
    prefix: &str,
    settings: &EventStreamSettings,
) -> Result<()> {
    let context = jetstream::new(client.clone());
    let config = stream::Config {
        name: settings.name.clone(),
        subjects: vec![format!("{prefix}.evt.>")],
        max_age: settings.max_age.unwrap_or_default(),
        ..Default::default()
    };
    context.get_or_create_stream(config).await.map_err(|e| {
        HmsError::new(
            Code::FailedPrecondition,
            format!(
                "cannot create or find the event stream {:?} (does the NATS server run \
                 JetStream, nats-server -js?): {e}",
                settings.name
            ),
        )
        .with_detail("field", "nats.event_stream")
        .with_origin("transport")
    })?;
    Ok(())
}

/// Other runtimes' events flowing into one subscription; dropping it stops
/// the flow and unsubscribes.
pub struct RemoteFeed {
    stop: watch::Sender<bool>,
}

impl Drop for RemoteFeed {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Where a feed reads from.
pub enum Source {
    /// Live events, core NATS.
    Live(async_nats::Subscriber),
    /// The event stream from a point, then live.
    Replay(Box<consumer::pull::Ordered>),
}

/// The subject narrowest for `filter` that NATS can select: one origin
/// and one agent when the filter names only one (the rest of the filter
/// applies here).
pub fn feed_subject(prefix: &str, filter: &Filter) -> String {
    let filter = filter.proto();
    let single = |values: &[String]| match values {
        [one] => Some(one.clone()),
        _ => None,
    };
    events_subject(
        prefix,
        single(&filter.origins).as_deref(),
        single(&filter.agent_ids).as_deref(),
    )
}

/// The ordered consumer that replays the event stream from where `filter`
/// says.
pub async fn replay(
    client: &Client,
    settings: &EventStreamSettings,
    subject: String,
    filter: &Filter,
) -> Result<consumer::pull::Ordered> {
    let filter = filter.proto();
    let deliver_policy = match &filter.replay_from_time {
        Some(time) => {
            let nanos = i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos);
            let start_time =
                time::OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| {
                    HmsError::invalid_argument(format!(
                        "EventFilter.replay_from_time is out of range: {e}"
                    ))
                    .with_detail("field", "replay_from_time")
                })?;
            consumer::DeliverPolicy::ByStartTime { start_time }
        }
        None => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: filter.replay_from_sequence,
        },
    };
    let failed = |e: &dyn std::fmt::Display| {
        HmsError::new(
            Code::Unavailable,
            format!("cannot replay the event stream {:?}: {e}", settings.name),
        )
        .with_origin("transport")
    };
    let context = jetstream::new(client.clone());
    let consumer = context
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy,
                ..Default::default()
            },
            settings.name.as_str(),
        )
        .await
        .map_err(|e| failed(&e))?;
    consumer.messages().await.map_err(|e| failed(&e))
}

impl RemoteFeed {
    /// Reads `source` into `subscription` on the transport's runtime until
    /// dropped.
    pub fn start(
        spawner: &tokio::runtime::Handle,
        source: Source,
        subscription: Arc<Subscription>,
        identity: String,
    ) -> RemoteFeed {
        let (stop, mut stopped) = watch::channel(false);
        spawner.spawn(async move {
            match source {
                Source::Live(mut subscriber) => loop {
                    tokio::select! {
                        message = subscriber.next() => match message {
                            Some(message) => deliver(&subscription, &identity, &message.payload, 0),
                            None => return,
                        },
                        _ = stopped.changed() => {
                            let _ = subscriber.unsubscribe().await;
                            return;
                        }
                    }
                },
                Source::Replay(mut messages) => loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(Ok(message)) => {
                                let sequence = message.info().map_or(0, |info| info.stream_sequence);
                                deliver(&subscription, &identity, &message.payload, sequence);
                            }
                            // The ordered consumer recreates itself after
                            // a gap or a reconnect; it ends only when it
                            // cannot.
                            Some(Err(_)) => continue,
                            None => return,
                        },
                        _ = stopped.changed() => return,
                    }
                },
            }
        });
        RemoteFeed { stop }
    }
}

/// Queues one event from NATS: never this runtime's own (its bus has them
/// already) unless `identity` is empty, never bytes that are not an event.
fn deliver(subscription: &Subscription, identity: &str, payload: &[u8], stream_sequence: u64) {
    let Ok(mut event) = Event::decode(payload) else {
        return;
    };
    if event.origin.is_empty() || (!identity.is_empty() && event.origin == identity) {
        return;
    }
    event.stream_sequence = stream_sequence;
    subscription.offer(&Arc::new(event));
}

/// A subject of core NATS for a live feed.
pub async fn subscribe_live(client: &Client, subject: String) -> Result<async_nats::Subscriber> {
    client.subscribe(Subject::from(subject)).await.map_err(|e| {
        HmsError::new(
            Code::Unavailable,
            format!("cannot subscribe to remote events on NATS: {e}"),
        )
        .with_origin("transport")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_drops_its_oldest_events_and_counts_them() {
        let publisher = EventPublisher::new("hms", "rt", 2);
        for sequence in 1..=5 {
            publisher.publish(&Arc::new(Event {
                sequence,
                ..Event::default()
            }));
        }
        let outbox = publisher.outbox.lock();
        let kept: Vec<u64> = outbox.events.iter().map(|e| e.sequence).collect();
        assert_eq!(kept, [4, 5]);
        assert_eq!(outbox.dropped, 3);
        drop(outbox);
        // Once closing, nothing more is taken.
        publisher.close();
        publisher.publish(&Arc::new(Event::default()));
        assert_eq!(publisher.outbox.lock().events.len(), 2);
    }
}
