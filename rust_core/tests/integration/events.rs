//! Events: what is published, filters, bounded queues, polling and push.

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use common::{
    FORMATS, WATCHDOG, active_agent, call, create_agent, decode, drain, encode, expect_code, kinds,
    new_runtime, poll, subscribe, transition, within,
};
use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::agent::lifecycle::v1::{LifecycleState, TransitionType};
use hms_ffi::proto::hms::agent::v1::{
    Agent, DeleteAgentRequest, DeleteAgentResponse, KnowledgeEntry, PutKnowledgeRequest,
    SubmitTaskRequest, Task, UpdateAgentRequest,
};
use hms_ffi::proto::hms::events::v1::{Event, EventFilter, event::Payload};
use hms_ffi::runtime::{self, Runtime};

type Rt = Arc<Runtime>;

fn kinds_of(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.kind.clone()).collect()
}

fn update_agent(rt: &Rt, id: &str, description: &str) -> Agent {
    call(
        rt,
        &format!("{}/UpdateAgent", common::AGENTS),
        &UpdateAgentRequest {
            agent: Some(Agent {
                id: id.into(),
                description: description.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        },
    )
    .unwrap()
}

fn submit_task(rt: &Rt, title: &str, agent_id: &str) -> Task {
    call(
        rt,
        &format!("{}/SubmitTask", common::TASKS),
        &SubmitTaskRequest {
            task: Some(Task {
                title: title.into(),
                agent_id: agent_id.into(),
                ..Default::default()
            }),
        },
    )
    .unwrap()
}

fn put_knowledge(rt: &Rt, key: &str, agent_id: &str) -> KnowledgeEntry {
    call(
        rt,
        &format!("{}/PutKnowledge", common::KNOWLEDGE),
        &PutKnowledgeRequest {
            entry: Some(KnowledgeEntry {
                namespace: "ns".into(),
                key: key.into(),
                text: "fact".into(),
                agent_id: agent_id.into(),
                ..Default::default()
            }),
        },
    )
    .unwrap()
}

fn register_dummy(rt: &Rt, name: &str) -> u64 {
    rt.register_service(
        common::untyped(name, &["One", "Two"]),
        Format::Json,
        hms_ffi::runtime::HostOptions::default(),
        common::replying(b"null".to_vec()),
    )
    .unwrap()
}

#[test]
fn registering_and_unregistering_services_publishes_registry_events() {
    let rt = new_runtime();
    let (_, sub) = subscribe(&rt, &kinds(&["registry.*"]));
    let handle = register_dummy(&rt, "events.v1.Dummy");
    runtime::unregister_service(handle).unwrap();
    let events = drain(&sub);
    assert_eq!(
        kinds_of(&events),
        [
            "registry.service_registered",
            "registry.service_unregistered"
        ]
    );
    for event in &events {
        assert_eq!(event.subject, "events.v1.Dummy");
        assert!(event.agent_id.is_empty());
        assert!(event.time.is_some());
        let Some(Payload::Service(service)) = &event.payload else {
            panic!("{event:?}")
        };
        assert_eq!(service.name, "events.v1.Dummy");
        assert_eq!(service.version, "1.2.3");
        assert_eq!(service.methods, ["One", "Two"]);
    }
    assert!(events[0].sequence < events[1].sequence);
    // A refused registration publishes nothing.
    let again = register_dummy(&rt, "events.v1.Again");
    assert!(
        rt.register_service(
            common::untyped("events.v1.Again", &["One"]),
            Format::Json,
            hms_ffi::runtime::HostOptions::default(),
            common::replying(b"null".to_vec()),
        )
        .is_err()
    );
    assert_eq!(
        kinds_of(&drain(&sub)),
        ["registry.service_registered"],
        "one event for the one registration that succeeded"
    );
    runtime::unregister_service(again).unwrap();
}

#[test]
fn every_domain_change_is_published_with_its_payload() {
    let rt = new_runtime();
    let (_, sub) = subscribe(&rt, &EventFilter::default());
    let agent = active_agent(&rt, "pub");
    let updated = update_agent(&rt, &agent.id, "changed");
    let task = submit_task(&rt, "job", &agent.id);
    let entry = put_knowledge(&rt, "k", &agent.id);
    let _: hms_ffi::proto::hms::agent::v1::DeleteKnowledgeResponse = call(
        &rt,
        &format!("{}/DeleteKnowledge", common::KNOWLEDGE),
        &hms_ffi::proto::hms::agent::v1::DeleteKnowledgeRequest {
            id: entry.id.clone(),
            revision: 0,
        },
    )
    .unwrap();
    let _: DeleteAgentResponse = call(
        &rt,
        &format!("{}/DeleteAgent", common::AGENTS),
        &DeleteAgentRequest {
            id: agent.id.clone(),
            revision: 0,
        },
    )
    .unwrap();
    let events = drain(&sub);
    assert_eq!(
        kinds_of(&events),
        [
            "agent.created",
            "lifecycle.transition",
            "agent.updated",
            "task.submitted",
            "knowledge.put",
            "knowledge.deleted",
            "agent.deleted"
        ]
    );
    for event in &events {
        assert_eq!(event.agent_id, agent.id, "{}", event.kind);
    }
    let Some(Payload::Agent(created)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(created.id, agent.id);
    assert_eq!(created.state, LifecycleState::Initialized as i32);
    assert_eq!(events[0].subject, agent.id);
    let Some(Payload::Lifecycle(moved)) = &events[1].payload else {
        panic!()
    };
    assert_eq!(moved.new_state, LifecycleState::Active as i32);
    let Some(Payload::Agent(changed)) = &events[2].payload else {
        panic!()
    };
    assert_eq!(*changed, updated);
    let Some(Payload::Task(submitted)) = &events[3].payload else {
        panic!()
    };
    assert_eq!(*submitted, task);
    assert_eq!(events[3].subject, task.id);
    let Some(Payload::Knowledge(put)) = &events[4].payload else {
        panic!()
    };
    assert_eq!(*put, entry);
    assert_eq!(events[4].subject, entry.id);
    // Sequences grow by one per event of the runtime.
    for pair in events.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence + 1);
    }
}

#[test]
fn kind_filters_match_exactly_or_by_prefix() {
    let rt = new_runtime();
    let (_, created) = subscribe(&rt, &kinds(&["agent.created"]));
    let (_, tasks) = subscribe(&rt, &kinds(&["task.*"]));
    let (_, mixed) = subscribe(&rt, &kinds(&["agent.created", "knowledge.*"]));
    let (_, star) = subscribe(&rt, &kinds(&["*"]));
    let (_, all) = subscribe(&rt, &EventFilter::default());
    let (_, prefix_only) = subscribe(&rt, &kinds(&["agent"]));
    let agent = create_agent(&rt, "k");
    update_agent(&rt, &agent.id, "x");
    submit_task(&rt, "t", "");
    put_knowledge(&rt, "k", "");
    let everything = [
        "agent.created",
        "agent.updated",
        "task.submitted",
        "knowledge.put",
    ];
    assert_eq!(kinds_of(&drain(&created)), ["agent.created"]);
    assert_eq!(kinds_of(&drain(&tasks)), ["task.submitted"]);
    assert_eq!(kinds_of(&drain(&mixed)), ["agent.created", "knowledge.put"]);
    assert_eq!(kinds_of(&drain(&star)), everything);
    assert_eq!(kinds_of(&drain(&all)), everything);
    assert!(
        drain(&prefix_only).is_empty(),
        "without '*' a kind matches exactly"
    );
}

#[test]
fn subject_filters_match_the_subject() {
    let rt = new_runtime();
    let first = create_agent(&rt, "first");
    let second = create_agent(&rt, "second");
    let (_, sub) = subscribe(
        &rt,
        &EventFilter {
            subjects: vec![first.id.clone()],
            ..Default::default()
        },
    );
    update_agent(&rt, &second.id, "x");
    update_agent(&rt, &first.id, "x");
    transition(&rt, &second.id, LifecycleState::Active, false).unwrap();
    transition(&rt, &first.id, LifecycleState::Active, false).unwrap();
    register_dummy(&rt, "subject.v1.Svc");
    let events = drain(&sub);
    assert_eq!(kinds_of(&events), ["agent.updated", "lifecycle.transition"]);
    assert!(events.iter().all(|e| e.subject == first.id));
    // Service names are subjects too.
    let (_, by_service) = subscribe(
        &rt,
        &EventFilter {
            subjects: vec!["subject.v1.Other".into()],
            ..Default::default()
        },
    );
    register_dummy(&rt, "subject.v1.Unrelated");
    register_dummy(&rt, "subject.v1.Other");
    let events = drain(&by_service);
    assert_eq!(kinds_of(&events), ["registry.service_registered"]);
    assert_eq!(events[0].subject, "subject.v1.Other");
}

#[test]
fn agent_id_filters_follow_one_agent_everywhere() {
    let rt = new_runtime();
    let mine = active_agent(&rt, "mine");
    let other = active_agent(&rt, "other");
    let (_, sub) = subscribe(
        &rt,
        &EventFilter {
            agent_ids: vec![mine.id.clone()],
            ..Default::default()
        },
    );
    for agent in [&other, &mine] {
        update_agent(&rt, &agent.id, "x");
        submit_task(&rt, "t", &agent.id);
        put_knowledge(&rt, &format!("k-{}", agent.id), &agent.id);
        transition(&rt, &agent.id, LifecycleState::Paused, false).unwrap();
    }
    submit_task(&rt, "unassigned", "");
    put_knowledge(&rt, "unowned", "");
    register_dummy(&rt, "agents.v1.Svc");
    let events = drain(&sub);
    assert_eq!(
        kinds_of(&events),
        [
            "agent.updated",
            "task.submitted",
            "knowledge.put",
            "lifecycle.transition"
        ]
    );
    assert!(events.iter().all(|e| e.agent_id == mine.id));
}

#[test]
fn state_filters_match_lifecycle_and_agent_events_by_new_state() {
    let rt = new_runtime();
    let (_, sub) = subscribe(
        &rt,
        &EventFilter {
            states: vec![LifecycleState::Active as i32],
            ..Default::default()
        },
    );
    let agent = create_agent(&rt, "s");
    transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
    update_agent(&rt, &agent.id, "while active");
    submit_task(&rt, "t", &agent.id);
    transition(&rt, &agent.id, LifecycleState::Paused, false).unwrap();
    update_agent(&rt, &agent.id, "while paused");
    transition(&rt, &agent.id, LifecycleState::Active, false).unwrap();
    register_dummy(&rt, "states.v1.Svc");
    let events = drain(&sub);
    assert_eq!(
        kinds_of(&events),
        [
            "lifecycle.transition",
            "agent.updated",
            "lifecycle.transition"
        ]
    );
    let Some(Payload::Agent(updated)) = &events[1].payload else {
        panic!()
    };
    assert_eq!(updated.description, "while active");
    for index in [0, 2] {
        let Some(Payload::Lifecycle(moved)) = &events[index].payload else {
            panic!()
        };
        assert_eq!(moved.new_state, LifecycleState::Active as i32);
    }
}

#[test]
fn transition_type_filters_match_lifecycle_events() {
    let rt = new_runtime();
    let (_, forced) = subscribe(
        &rt,
        &EventFilter {
            transition_types: vec![TransitionType::Forced as i32],
            ..Default::default()
        },
    );
    let (_, normal_of_one) = subscribe(
        &rt,
        &EventFilter {
            kinds: vec!["lifecycle.*".into()],
            transition_types: vec![TransitionType::Normal as i32],
            states: vec![LifecycleState::Active as i32, LifecycleState::Paused as i32],
            ..Default::default()
        },
    );
    let agent = create_agent(&rt, "t");
    transition(&rt, &agent.id, LifecycleState::Active, false).unwrap(); // normal
    transition(&rt, &agent.id, LifecycleState::Recovering, true).unwrap(); // forced
    transition(&rt, &agent.id, LifecycleState::Active, false).unwrap(); // normal
    transition(&rt, &agent.id, LifecycleState::Maintenance, false).unwrap(); // normal, other state
    update_agent(&rt, &agent.id, "x");
    let events = drain(&forced);
    assert_eq!(kinds_of(&events), ["lifecycle.transition"]);
    let Some(Payload::Lifecycle(moved)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(moved.transition_type, TransitionType::Forced as i32);
    assert_eq!(moved.new_state, LifecycleState::Recovering as i32);
    let events = drain(&normal_of_one);
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        let Some(Payload::Lifecycle(moved)) = &event.payload else {
            panic!()
        };
        assert_eq!(moved.new_state, LifecycleState::Active as i32);
        assert_eq!(moved.transition_type, TransitionType::Normal as i32);
    }
}

#[test]
fn a_subscriber_that_falls_behind_gets_one_lagged_event_then_the_newest() {
    let rt = common::runtime_with(|s| s.event_queue_capacity = 4);
    let (_, sub) = subscribe(&rt, &kinds(&["agent.created"]));
    let agents: Vec<Agent> = (0..10)
        .map(|i| create_agent(&rt, &format!("a{i}")))
        .collect();
    let events = drain(&sub);
    assert_eq!(events.len(), 5, "{:?}", kinds_of(&events));
    assert_eq!(events[0].kind, "lagged");
    let Some(Payload::Lagged(lagged)) = &events[0].payload else {
        panic!("{:?}", events[0])
    };
    assert_eq!(lagged.dropped, 6);
    let names: Vec<String> = events[1..]
        .iter()
        .map(|e| match &e.payload {
            Some(Payload::Agent(agent)) => agent.name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["a6", "a7", "a8", "a9"]);
    assert_eq!(events[1].subject, agents[6].id);
    for pair in events[1..].windows(2) {
        assert!(pair[0].sequence < pair[1].sequence);
    }
    // Nothing more, and the count starts over.
    expect_code(poll(&sub, Some(Duration::ZERO)), Code::DeadlineExceeded);
    for i in 10..15 {
        create_agent(&rt, &format!("a{i}"));
    }
    let events = drain(&sub);
    let Some(Payload::Lagged(lagged)) = &events[0].payload else {
        panic!("{:?}", events[0])
    };
    assert_eq!(lagged.dropped, 1);
    assert_eq!(events.len(), 5);
    // A full queue that is read in time loses nothing.
    for i in 15..19 {
        create_agent(&rt, &format!("a{i}"));
    }
    let events = drain(&sub);
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.kind == "agent.created"));
}

#[test]
fn lagging_is_counted_per_subscription() {
    let rt = common::runtime_with(|s| s.event_queue_capacity = 4);
    let (_, slow) = subscribe(&rt, &kinds(&["agent.created"]));
    let (_, fast) = subscribe(&rt, &kinds(&["agent.created"]));
    let mut seen_fast = 0;
    for i in 0..12 {
        create_agent(&rt, &format!("a{i}"));
        seen_fast += drain(&fast).len();
    }
    assert_eq!(seen_fast, 12);
    let events = drain(&slow);
    let Some(Payload::Lagged(lagged)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(lagged.dropped, 8);
}

#[test]
fn poll_times_out_with_deadline_exceeded() {
    let rt = new_runtime();
    let (_, sub) = subscribe(&rt, &EventFilter::default());
    expect_code(poll(&sub, Some(Duration::ZERO)), Code::DeadlineExceeded);
    expect_code(
        poll(&sub, Some(Duration::from_millis(30))),
        Code::DeadlineExceeded,
    );
    // The subscription is fine afterwards.
    create_agent(&rt, "later");
    assert_eq!(
        poll(&sub, Some(Duration::from_secs(5))).unwrap().kind,
        "agent.created"
    );
}

#[test]
fn a_waiting_poll_returns_the_event_that_arrives() {
    let rt = new_runtime();
    let (_, sub) = subscribe(&rt, &kinds(&["agent.created"]));
    let poller = std::thread::spawn(move || poll(&sub, None));
    std::thread::sleep(Duration::from_millis(50));
    let agent = create_agent(&rt, "wake");
    let event = within(WATCHDOG, move || poller.join().unwrap()).unwrap();
    assert_eq!(event.subject, agent.id);
}

#[test]
fn unsubscribing_wakes_a_blocked_poller_with_cancelled() {
    let rt = new_runtime();
    let (handle, sub) = subscribe(&rt, &EventFilter::default());
    let (started_tx, started) = mpsc::channel();
    let poller = std::thread::spawn({
        let sub = sub.clone();
        move || {
            started_tx.send(()).unwrap();
            poll(&sub, None)
        }
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    runtime::unsubscribe(handle).unwrap();
    let result = within(WATCHDOG, move || poller.join().unwrap());
    expect_code(result, Code::Cancelled);
    // Closed for good, and the handle is gone.
    expect_code(poll(&sub, Some(Duration::ZERO)), Code::Cancelled);
    expect_code(runtime::unsubscribe(handle), Code::InvalidHandle);
    expect_code(runtime::subscription(handle), Code::InvalidHandle);
    create_agent(&rt, "after");
    expect_code(poll(&sub, Some(Duration::ZERO)), Code::Cancelled);
}

#[test]
fn several_pollers_share_the_events_of_one_subscription() {
    let rt = new_runtime();
    let (handle, sub) = subscribe(&rt, &kinds(&["agent.created"]));
    let taken = Arc::new(AtomicUsize::new(0));
    let pollers: Vec<_> = (0..3)
        .map(|_| {
            let sub = sub.clone();
            let taken = taken.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(event) = poll(&sub, None) {
                    got.push(event.sequence);
                    taken.fetch_add(1, Ordering::SeqCst);
                }
                got
            })
        })
        .collect();
    for i in 0..60 {
        create_agent(&rt, &format!("p{i}"));
    }
    let deadline = Instant::now() + WATCHDOG;
    while taken.load(Ordering::SeqCst) < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    runtime::unsubscribe(handle).unwrap();
    let mut all: Vec<u64> = Vec::new();
    for poller in pollers {
        all.extend(within(WATCHDOG, move || poller.join().unwrap()));
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "an event went to two pollers");
    assert_eq!(all.len(), 60, "every event went to one poller");
}

#[test]
fn freeing_the_runtime_closes_its_subscriptions() {
    let handle = runtime::create(hms_ffi::config::Settings::default()).unwrap();
    let (polled, pushed, entry, rt_weak) = {
        let rt = runtime::runtime(handle).unwrap();
        let (polled, entry) = subscribe(&rt, &EventFilter::default());
        let pushed = rt
            .subscribe(
                Format::Json,
                &[],
                Some(Box::new(|_: &[u8]| {}) as hms_ffi::events::PushSink),
            )
            .unwrap();
        (polled, pushed, entry, Arc::downgrade(&rt))
    };
    let (started_tx, started) = mpsc::channel();
    let poller = std::thread::spawn({
        let entry = entry.clone();
        move || {
            started_tx.send(()).unwrap();
            poll(&entry, None)
        }
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    within(WATCHDOG, move || runtime::free(handle)).unwrap();
    expect_code(
        within(WATCHDOG, move || poller.join().unwrap()),
        Code::Cancelled,
    );
    expect_code(runtime::unsubscribe(polled), Code::InvalidHandle);
    expect_code(runtime::unsubscribe(pushed), Code::InvalidHandle);
    expect_code(runtime::subscription(polled), Code::InvalidHandle);
    assert!(entry.subscription.is_closed());
    // A runtime kept alive by someone still refuses new subscriptions.
    if let Some(rt) = rt_weak.upgrade() {
        assert!(rt.subscribe(Format::Json, &[], None).is_err());
    }
}

#[test]
fn push_subscriptions_receive_every_event_in_order() {
    let rt = new_runtime();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let filter = encode(&kinds(&["agent.created"]), Format::Cbor);
    let handle = rt
        .subscribe(
            Format::Cbor,
            &filter,
            Some(Box::new(move |bytes: &[u8]| {
                let event: Event = decode(Format::Cbor, bytes);
                log.lock().unwrap().push(event);
            })),
        )
        .unwrap();
    let agents: Vec<Agent> = (0..200)
        .map(|i| create_agent(&rt, &format!("push{i}")))
        .collect();
    let deadline = Instant::now() + WATCHDOG;
    while received.lock().unwrap().len() < agents.len() {
        assert!(
            Instant::now() < deadline,
            "only {} events arrived",
            received.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let events = received.lock().unwrap().clone();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let expected: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(subjects, expected, "in publication order");
    for pair in events.windows(2) {
        assert!(pair[0].sequence < pair[1].sequence);
    }
    // A push subscription cannot be polled.
    let entry = runtime::subscription(handle).unwrap();
    let mut out = Vec::new();
    expect_code(
        entry.subscription.poll(Some(Duration::ZERO), &mut out),
        Code::FailedPrecondition,
    );
    // After unsubscribe returns, the callback never runs again.
    runtime::unsubscribe(handle).unwrap();
    let count = received.lock().unwrap().len();
    for i in 0..20 {
        create_agent(&rt, &format!("late{i}"));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(received.lock().unwrap().len(), count);
}

#[test]
fn a_push_callback_may_unsubscribe_itself() {
    let rt = new_runtime();
    let slot: Arc<OnceLock<u64>> = Arc::new(OnceLock::new());
    let (sender, receiver) = mpsc::channel();
    let own = slot.clone();
    let sender = Mutex::new(sender);
    let handle = rt
        .subscribe(
            Format::Json,
            &[],
            Some(Box::new(move |_: &[u8]| {
                if let Some(handle) = own.get() {
                    let outcome = runtime::unsubscribe(*handle).map_err(|e| e.code);
                    let _ = sender.lock().unwrap().send(outcome);
                }
            })),
        )
        .unwrap();
    slot.set(handle).unwrap();
    create_agent(&rt, "bye");
    let outcome = receiver.recv_timeout(WATCHDOG).expect("callback ran");
    assert_eq!(outcome, Ok(()));
    expect_code(runtime::unsubscribe(handle), Code::InvalidHandle);
    // The runtime goes on.
    create_agent(&rt, "still here");
}

#[test]
fn subscriptions_speak_every_format_and_an_empty_filter_matches_all() {
    let rt = new_runtime();
    let mut subs = Vec::new();
    for format in FORMATS {
        let empty = rt.subscribe(format, &[], None).unwrap();
        let filter = encode(&kinds(&["agent.*"]), format);
        let filtered = rt.subscribe(format, &filter, None).unwrap();
        subs.push((format, empty, filtered));
    }
    let json_filter = br#"{"kinds": ["agent.created"], "agentIds": []}"#;
    let by_json = rt.subscribe(Format::Json, json_filter, None).unwrap();
    register_dummy(&rt, "formats.v1.Svc");
    let agent = create_agent(&rt, "fmt");
    for (format, empty, filtered) in subs {
        let empty = runtime::subscription(empty).unwrap();
        let filtered = runtime::subscription(filtered).unwrap();
        assert_eq!(empty.subscription.format, format);
        let mut out = Vec::new();
        empty
            .subscription
            .poll(Some(Duration::ZERO), &mut out)
            .unwrap();
        let event: Event = decode(format, &out);
        assert_eq!(event.kind, "registry.service_registered", "{format:?}");
        out.clear();
        filtered
            .subscription
            .poll(Some(Duration::ZERO), &mut out)
            .unwrap();
        let event: Event = decode(format, &out);
        assert_eq!(event.kind, "agent.created", "{format:?}");
        assert_eq!(event.agent_id, agent.id);
    }
    let by_json = runtime::subscription(by_json).unwrap();
    assert_eq!(kinds_of(&drain(&by_json)), ["agent.created"]);
}

#[test]
fn a_malformed_filter_is_a_decode_error() {
    let rt = new_runtime();
    expect_code(
        rt.subscribe(Format::Json, b"{kinds", None),
        Code::DecodeError,
    );
    expect_code(rt.subscribe(Format::Cbor, &[0xff], None), Code::DecodeError);
    expect_code(
        rt.subscribe(Format::Json, br#"{"kinds": "not a list"}"#, None),
        Code::DecodeError,
    );
    let health: hms_ffi::proto::hms::sys::v1::HealthResponse = call(
        &rt,
        "hms.sys.v1.System/Health",
        &hms_ffi::proto::hms::sys::v1::HealthRequest {},
    )
    .unwrap();
    assert_eq!(health.subscriptions, 0, "nothing was subscribed");
}

#[test]
fn unsubscribe_waits_for_a_running_push_callback() {
    let rt = new_runtime();
    let (entered_tx, entered) = mpsc::channel();
    let entered_tx = Mutex::new(entered_tx);
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = finished.clone();
    let handle = rt
        .subscribe(
            Format::Json,
            &[],
            Some(Box::new(move |_: &[u8]| {
                let _ = entered_tx.lock().unwrap().send(());
                std::thread::sleep(Duration::from_millis(300));
                done.store(true, Ordering::SeqCst);
            })),
        )
        .unwrap();
    create_agent(&rt, "slow consumer");
    entered
        .recv_timeout(WATCHDOG)
        .expect("the callback started");
    within(WATCHDOG, move || runtime::unsubscribe(handle)).unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "unsubscribe returned while the callback was still running"
    );
}
