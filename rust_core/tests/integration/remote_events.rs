//! Events over NATS, against a real nats-server started per test: one
//! runtime's events reach another's subscribers with their origin and in
//! order, filters apply, own events never come twice, JetStream replays
//! for a late subscriber, bad filters fail clearly, a server restart loses
//! no publisher.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::nats_server::NatsServer;
use common::{
    WATCHDOG, create_agent, encode, expect_code, kinds, new_runtime, poll, subscribe, transition,
    unique, within,
};
use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState;
use hms_ffi::proto::hms::events::v1::{Event, EventFilter, event::Payload};
use hms_ffi::proto::v1::{EventStream, NatsTransport, RuntimeConfig};
use hms_ffi::runtime::{Runtime, SubscriptionEntry};

type Rt = Arc<Runtime>;

/// Longest wait for one event that should come.
const ARRIVAL: Duration = Duration::from_secs(10);
/// How long a test waits to be sure an event does not come.
const QUIET: Duration = Duration::from_millis(300);

fn transport(server: &NatsServer, configure: impl FnOnce(&mut NatsTransport)) -> NatsTransport {
    let mut nats = NatsTransport {
        servers: vec![server.url()],
        connect_timeout_ms: 5_000,
        request_timeout_ms: 5_000,
        ..Default::default()
    };
    configure(&mut nats);
    nats
}

fn settings(name: &str, nats: NatsTransport) -> Result<Settings, hms_ffi::HmsError> {
    Settings::from_config(RuntimeConfig {
        name: name.into(),
        nats: Some(nats),
        ..Default::default()
    })
}

/// A runtime named `name` on `server` that publishes its events.
fn publisher(server: &NatsServer, name: &str) -> Rt {
    let nats = transport(server, |nats| nats.publish_events = true);
    Runtime::new(settings(name, nats).unwrap()).expect("the runtime connects")
}

/// A publishing runtime whose events go to the JetStream stream too.
fn streaming(server: &NatsServer, name: &str) -> Rt {
    let nats = transport(server, |nats| {
        nats.publish_events = true;
        nats.event_stream = Some(EventStream {
            name: "TEST_EVENTS".into(),
            max_age_seconds: 3600,
        });
    });
    Runtime::new(settings(name, nats).unwrap()).expect("the runtime connects")
}

fn remote(filter: EventFilter) -> EventFilter {
    EventFilter {
        include_remote: true,
        ..filter
    }
}

/// The next event, failing the test when none comes within [`ARRIVAL`].
fn next(entry: &SubscriptionEntry) -> Event {
    poll(entry, Some(ARRIVAL)).expect("an event arrives")
}

/// Asserts nothing more arrives within [`QUIET`].
fn assert_quiet(entry: &SubscriptionEntry) {
    match poll(entry, Some(QUIET)) {
        Ok(event) => panic!("no event expected, got {event:?}"),
        Err(error) => assert_eq!(error.code, Code::DeadlineExceeded, "{error:?}"),
    }
}

/// What identifies an event of one origin.
fn key(event: &Event) -> (String, u64, String, String) {
    (
        event.origin.clone(),
        event.sequence,
        event.kind.clone(),
        event.agent_id.clone(),
    )
}

/// Two agents moved back and forth in `rt`, interleaved: every kind of
/// agent and lifecycle event, several per agent.
fn busy_agents(rt: &Rt, tag: &str) -> Vec<String> {
    let first = create_agent(rt, &format!("{tag}-1"));
    let second = create_agent(rt, &format!("{tag}-2"));
    for state in [
        LifecycleState::Active,
        LifecycleState::Paused,
        LifecycleState::Active,
    ] {
        transition(rt, &first.id, state, false).unwrap();
        transition(rt, &second.id, state, false).unwrap();
    }
    vec![first.id, second.id]
}

#[test]
fn events_of_one_runtime_reach_another_in_order_with_their_origin() {
    let server = NatsServer::start();
    let a = publisher(&server, "runtime-a");
    let b = publisher(&server, "runtime-b");
    let watched = kinds(&["agent.*", "lifecycle.*"]);
    let (_, at_a) = subscribe(&a, &watched);
    let (_, at_b) = subscribe(&b, &remote(watched.clone()));

    let agents = busy_agents(&a, "a");
    let published: Vec<Event> = (0..8).map(|_| next(&at_a)).collect();
    assert!(published.iter().all(|e| e.origin == "runtime-a"));
    // B sees exactly A's events, in A's order (so in order per agent), with
    // the same content, and knows where they came from.
    let received: Vec<Event> = (0..8).map(|_| next(&at_b)).collect();
    assert_eq!(
        received.iter().map(key).collect::<Vec<_>>(),
        published.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(received, published);
    for agent in &agents {
        let sequences: Vec<u64> = received
            .iter()
            .filter(|e| &e.agent_id == agent)
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences.len(), 4);
        assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    }
    assert_quiet(&at_b);

    // B's own events come once, from its own bus, though B publishes them
    // to NATS as well.
    let own = create_agent(&b, "b-1");
    let event = next(&at_b);
    assert_eq!(event.kind, "agent.created");
    assert_eq!(event.agent_id, own.id);
    assert_eq!(event.origin, "runtime-b");
    assert_quiet(&at_b);
    // While A, subscribed to remote events too, gets it from NATS.
    let (_, a_remote) = subscribe(&a, &remote(kinds(&["agent.created"])));
    let other = create_agent(&b, "b-2");
    let event = next(&a_remote);
    assert_eq!(
        (event.origin.as_str(), event.agent_id.as_str()),
        ("runtime-b", other.id.as_str())
    );
}

#[test]
fn remote_events_come_only_with_the_flag_and_through_the_filter() {
    let server = NatsServer::start();
    let a = publisher(&server, "runtime-a");
    let b = publisher(&server, "runtime-b");
    let c = publisher(&server, "runtime-c");
    let (_, local_only) = subscribe(&b, &kinds(&["agent.created"]));
    let (_, everything) = subscribe(&b, &remote(EventFilter::default()));
    let (_, created) = subscribe(&b, &remote(kinds(&["agent.created"])));
    let (_, from_c) = subscribe(
        &b,
        &EventFilter {
            origins: vec!["runtime-c".into()],
            ..Default::default()
        },
    );

    let from_a = create_agent(&a, "from-a");
    let event = next(&created);
    assert_eq!(
        (event.origin.as_str(), event.agent_id.as_str()),
        ("runtime-a", from_a.id.as_str())
    );
    transition(&a, &from_a.id, LifecycleState::Active, false).unwrap();
    let later = create_agent(&c, "from-c");
    // The kind filter let the transition pass by; the origin filter took
    // only C's event.
    let event = next(&created);
    assert_eq!(
        (event.origin.as_str(), event.agent_id.as_str()),
        ("runtime-c", later.id.as_str())
    );
    let event = next(&from_c);
    assert_eq!(
        (event.origin.as_str(), event.agent_id.as_str()),
        ("runtime-c", later.id.as_str())
    );
    assert_quiet(&from_c);
    assert_quiet(&created);
    // Without the flag, nothing of A or C, while the events did flow (in
    // order per origin; there is no order between origins).
    let mut seen: Vec<(String, String)> = (0..3)
        .map(|_| next(&everything))
        .map(|e| (e.origin, e.kind))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [
        ("runtime-a", "agent.created"),
        ("runtime-a", "lifecycle.transition"),
        ("runtime-c", "agent.created"),
    ];
    assert_eq!(seen, expected.map(|(o, k)| (o.to_owned(), k.to_owned())));
    assert_quiet(&local_only);

    // One agent: NATS selects by subject, the filter holds.
    let watched = create_agent(&a, "watched");
    // Sent on by A's publisher task a moment later: once it is through,
    // the next subscription cannot get it.
    assert_eq!(next(&everything).agent_id, watched.id);
    let (_, one_agent) = subscribe(
        &b,
        &remote(EventFilter {
            agent_ids: vec![watched.id.clone()],
            ..Default::default()
        }),
    );
    create_agent(&a, "ignored");
    transition(&a, &watched.id, LifecycleState::Active, false).unwrap();
    let event = next(&one_agent);
    assert_eq!(event.agent_id, watched.id);
    assert_eq!(event.kind, "lifecycle.transition");
    assert_quiet(&one_agent);
}

#[test]
fn a_late_subscriber_replays_the_stream_from_a_sequence_or_a_time() {
    let server = NatsServer::start_with_jetstream();
    let a = streaming(&server, "runtime-a");
    let b = streaming(&server, "runtime-b");
    let (_, live) = subscribe(&b, &remote(kinds(&["agent.created"])));
    let early: Vec<String> = (0..3)
        .map(|i| create_agent(&a, &format!("early-{i}")).id)
        .collect();
    // Once B saw them live, the stream holds them.
    let seen: Vec<Event> = (0..3).map(|_| next(&live)).collect();
    assert_eq!(
        seen.iter().map(|e| e.agent_id.clone()).collect::<Vec<_>>(),
        early
    );
    assert!(seen.iter().all(|e| e.stream_sequence == 0));
    std::thread::sleep(Duration::from_millis(50));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(50));
    let late: Vec<String> = (0..2)
        .map(|i| create_agent(&a, &format!("late-{i}")).id)
        .collect();

    // From the start: all five, in order, each with its stream sequence.
    let (_, replay) = subscribe(
        &b,
        &EventFilter {
            replay_from_sequence: 1,
            ..kinds(&["agent.created"])
        },
    );
    let replayed: Vec<Event> = (0..5).map(|_| next(&replay)).collect();
    let all: Vec<String> = early.iter().chain(&late).cloned().collect();
    assert_eq!(
        replayed
            .iter()
            .map(|e| e.agent_id.clone())
            .collect::<Vec<_>>(),
        all
    );
    assert!(replayed.iter().all(|e| e.origin == "runtime-a"));
    let sequences: Vec<u64> = replayed.iter().map(|e| e.stream_sequence).collect();
    assert!(sequences[0] >= 1 && sequences.windows(2).all(|w| w[0] < w[1]));

    // From the third event's sequence: the third on.
    let (_, from_third) = subscribe(
        &b,
        &EventFilter {
            replay_from_sequence: sequences[2],
            ..kinds(&["agent.created"])
        },
    );
    let ids: Vec<String> = (0..3).map(|_| next(&from_third).agent_id).collect();
    assert_eq!(ids, all[2..]);

    // From a time: only what was stored since.
    let (_, since) = subscribe(
        &b,
        &EventFilter {
            replay_from_time: Some(between.into()),
            ..kinds(&["agent.created"])
        },
    );
    let ids: Vec<String> = (0..2).map(|_| next(&since).agent_id).collect();
    assert_eq!(ids, late);
    assert_quiet(&since);
    // And the replay goes on live.
    let newest = create_agent(&a, "newest");
    assert_eq!(next(&since).agent_id, newest.id);
    assert_eq!(next(&replay).agent_id, newest.id);
    // B's own events in the stream are not replayed to B.
    create_agent(&b, "own");
    let (_, own_replay) = subscribe(
        &b,
        &EventFilter {
            replay_from_sequence: 1,
            origins: vec!["runtime-b".into()],
            ..Default::default()
        },
    );
    assert_quiet(&own_replay);
}

#[test]
fn bad_event_filters_and_settings_fail_clearly() {
    let subscribe_err = |rt: &Rt, filter: EventFilter, code: Code| {
        let error = expect_code(
            rt.subscribe(Format::Protobuf, &encode(&filter, Format::Protobuf), None),
            code,
        );
        assert!(error.message.contains("EventFilter."), "{}", error.message);
        error
    };
    // No transport: nothing remote to include.
    let alone = new_runtime();
    subscribe_err(
        &alone,
        remote(EventFilter::default()),
        Code::FailedPrecondition,
    );
    subscribe_err(
        &alone,
        EventFilter {
            origins: vec!["elsewhere".into()],
            ..Default::default()
        },
        Code::FailedPrecondition,
    );

    let server = NatsServer::start();
    let rt = publisher(&server, "runtime-a");
    // Replay without a stream configured.
    let error = subscribe_err(
        &rt,
        EventFilter {
            replay_from_sequence: 1,
            ..Default::default()
        },
        Code::FailedPrecondition,
    );
    assert!(error.message.contains("event_stream"), "{}", error.message);
    subscribe_err(
        &rt,
        EventFilter {
            replay_from_sequence: 1,
            replay_from_time: Some(SystemTime::now().into()),
            ..Default::default()
        },
        Code::InvalidArgument,
    );
    subscribe_err(
        &rt,
        EventFilter {
            replay_from_time: Some(prost_types::Timestamp {
                seconds: -5,
                nanos: 0,
            }),
            ..Default::default()
        },
        Code::InvalidArgument,
    );
    subscribe_err(
        &rt,
        EventFilter {
            origins: vec![String::new()],
            ..Default::default()
        },
        Code::InvalidArgument,
    );

    // Settings: a stream name NATS refuses, an outbox over its ceiling, and
    // events with no server.
    let bad_settings =
        |nats: NatsTransport| expect_code(settings("x", nats), Code::InvalidArgument);
    bad_settings(transport(&server, |nats| {
        nats.event_stream = Some(EventStream {
            name: "has.dot".into(),
            max_age_seconds: 0,
        })
    }));
    bad_settings(transport(&server, |nats| {
        nats.event_outbox_capacity = u32::MAX
    }));
    bad_settings(NatsTransport {
        publish_events: true,
        ..Default::default()
    });
    // A stream on a server without JetStream: the runtime says why.
    let nats = transport(&server, |nats| {
        nats.event_stream = Some(EventStream::default());
    });
    let error = expect_code(
        Runtime::new(settings("no-js", nats).unwrap()),
        Code::FailedPrecondition,
    );
    assert!(error.message.contains("JetStream"), "{}", error.message);
}

#[test]
fn events_flow_again_after_a_server_restart() {
    let mut server = NatsServer::start();
    let a = publisher(&server, "runtime-a");
    let b = publisher(&server, "runtime-b");
    let (_, at_b) = subscribe(&b, &remote(kinds(&["agent.created"])));
    let before = create_agent(&a, "before");
    assert_eq!(next(&at_b).agent_id, before.id);

    server.restart();
    // Both clients reconnect by themselves and B's subscription comes
    // back; an event published once both are back arrives. Events of the
    // time in between may be lost (core NATS is at most once).
    let tag = unique("after");
    let until = Instant::now() + Duration::from_secs(20);
    let mut created = Vec::new();
    loop {
        created.push(create_agent(&a, &tag).id);
        match poll(&at_b, Some(Duration::from_millis(300))) {
            Ok(event) if event.kind == "agent.created" => {
                assert_eq!(event.origin, "runtime-a");
                assert!(created.contains(&event.agent_id), "{event:?}");
                break;
            }
            Ok(event) => {
                assert!(
                    matches!(event.payload, Some(Payload::Lagged(_))),
                    "{event:?}"
                );
            }
            Err(error) => {
                assert_eq!(error.code, Code::DeadlineExceeded, "{error:?}");
                assert!(Instant::now() < until, "no event after the restart");
            }
        }
    }
}

/// Waits until `rt`'s transport is connected (`up`) or not.
fn wait_connected(rt: &Rt, up: bool) {
    let transport = rt.transport().expect("a transport");
    let until = Instant::now() + Duration::from_secs(20);
    while transport.is_connected() != up {
        assert!(Instant::now() < until, "connected never became {up}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_outbox_drops_events_and_says_how_many_to_remote_subscribers() {
    let mut server = NatsServer::start_with_jetstream();
    let nats = transport(&server, |nats| {
        nats.publish_events = true;
        nats.event_outbox_capacity = 1;
        nats.event_stream = Some(EventStream {
            name: "TEST_EVENTS".into(),
            max_age_seconds: 0,
        });
    });
    let a = Runtime::new(settings("runtime-a", nats).unwrap()).unwrap();
    let b = streaming(&server, "runtime-b");
    // With the server gone, the client takes what it can buffer and the
    // publisher waits: the outbox of one fills, the rest is dropped, and
    // creating agents never waits for any of it.
    server.stop();
    wait_connected(&a, false);
    let created = 6_000;
    let flooding = a.clone();
    within(WATCHDOG, move || {
        for _ in 0..created {
            create_agent(&flooding, "flood");
        }
    });
    server.restart();
    wait_connected(&a, true);
    wait_connected(&b, true);
    // The stream kept what A sent after the reconnect: among it, one
    // "lagged" event with A's origin and the number it dropped.
    let (_, replay) = subscribe(
        &b,
        &EventFilter {
            replay_from_sequence: 1,
            origins: vec!["runtime-a".into()],
            ..Default::default()
        },
    );
    let lagged = loop {
        let event = next(&replay);
        if let Some(Payload::Lagged(lagged)) = event.payload {
            assert_eq!(event.origin, "runtime-a");
            break lagged;
        }
        assert_eq!(event.kind, "agent.created");
    };
    assert!(lagged.dropped > 0 && lagged.dropped < created, "{lagged:?}");
}
