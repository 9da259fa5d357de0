//! Runtimes sharing one PostgreSQL database and one NATS server (a fleet,
//! docs/deployment.md): a blocking hook registered in one runtime runs for
//! the transitions made in any other, with its veto and its timeout, and
//! the events of an agent whose history several runtimes write reach every
//! runtime's subscribers in the order of that history. Real servers, both
//! started by the tests.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hms_ffi::Code;
use hms_ffi::config::Settings;
use hms_ffi::proto::hms::agent::lifecycle::v1::{
    LifecycleState as S, RegisterHookRequest, UnregisterHookRequest, UnregisterHookResponse,
};
use hms_ffi::proto::hms::events::v1::{Event, EventFilter, event::Payload};
use hms_ffi::proto::v1::{NatsTransport, RuntimeConfig};
use hms_ffi::runtime::{Runtime, SubscriptionEntry};

use crate::common::nats_server::NatsServer;
use crate::common::postgres::{self as server, TestDatabase};
use crate::common::*;
use crate::lifecycle::{hook, hook_host, register_hook};

type Rt = Arc<Runtime>;

/// A runtime named `name` on `database` and `nats`.
fn member(database: &TestDatabase, nats: &NatsServer, name: &str, publish_events: bool) -> Rt {
    let mut settings = Settings::from_config(RuntimeConfig {
        name: name.into(),
        nats: Some(NatsTransport {
            servers: vec![nats.url()],
            connect_timeout_ms: 5_000,
            request_timeout_ms: 5_000,
            publish_events,
            ..Default::default()
        }),
        ..Default::default()
    })
    .expect("a valid config");
    settings.store = database.store_settings();
    Runtime::new(settings).expect("the runtime joins the fleet")
}

/// How many blocking hooks the fleet lists for `runtime`.
fn listed_hooks(database: &TestDatabase, runtime: &str) -> i64 {
    database
        .client()
        .query_one(
            "SELECT count(*) FROM lifecycle_hooks WHERE runtime = $1",
            &[&runtime],
        )
        .unwrap()
        .get(0)
}

fn unregister_hook(rt: &Rt, hook_id: &str) {
    let _: UnregisterHookResponse = call(
        rt,
        &format!("{LIFECYCLE}/UnregisterHook"),
        &UnregisterHookRequest {
            hook_id: hook_id.into(),
        },
    )
    .unwrap();
}

#[test]
fn a_blocking_hook_of_one_runtime_vetoes_a_transition_made_in_another() {
    let (database, nats) = (server::fresh_database(), NatsServer::start());
    let here = member(&database, &nats, "fleet-here", false);
    let there = member(&database, &nats, "fleet-there", false);
    let host = hook_host(&there, false, |invocation| {
        let event = invocation.event.as_ref().unwrap();
        if event.new_state == S::Paused as i32 {
            Err((Code::FailedPrecondition, "not while there is work".into()))
        } else {
            Ok(())
        }
    });
    let hook_id = register_hook(&there, hook(&host.method, true)).unwrap();
    assert_eq!(listed_hooks(&database, "fleet-there"), 1);
    // A non-blocking hook stays with its runtime.
    register_hook(&there, hook(&host.method, false)).unwrap();
    assert_eq!(listed_hooks(&database, "fleet-there"), 1);

    let agent = create_agent(&here, "guarded");
    transition(&here, &agent.id, S::Active, false).expect("the hook approves");
    let vetoed = expect_code(
        transition(&here, &agent.id, S::Paused, false),
        Code::FailedPrecondition,
    );
    assert!(
        vetoed.message.contains("not while there is work"),
        "{vetoed:?}"
    );
    assert_eq!(vetoed.details.get("hook_id"), Some(&hook_id));
    assert_eq!(get_agent(&here, &agent.id).unwrap().state, S::Active as i32);
    assert_eq!(history(&here, &agent.id).len(), 1, "the veto wrote nothing");
    {
        let calls = host.calls.lock().unwrap();
        let blocking: Vec<_> = calls.iter().filter(|c| c.blocking).collect();
        assert_eq!(blocking.len(), 2, "the hook saw both transitions");
        assert_eq!(blocking[1].hook_id, hook_id);
        let event = blocking[1].event.as_ref().unwrap();
        assert_eq!(
            (event.agent_id.as_str(), event.sequence),
            (agent.id.as_str(), 2)
        );
    }

    // The runtime that registered it also runs it for itself, once.
    expect_code(
        transition(&there, &agent.id, S::Paused, false),
        Code::FailedPrecondition,
    );

    unregister_hook(&there, &hook_id);
    assert_eq!(listed_hooks(&database, "fleet-there"), 0);
    transition(&here, &agent.id, S::Paused, false).expect("no hook vetoes any more");
}

#[test]
fn a_hook_in_another_runtime_that_overruns_its_timeout_fails_the_transition() {
    let (database, nats) = (server::fresh_database(), NatsServer::start());
    let here = member(&database, &nats, "timeout-here", false);
    let there = member(&database, &nats, "timeout-there", false);
    let host = hook_host(&there, false, |_| {
        thread::sleep(Duration::from_secs(2));
        Ok(())
    });
    register_hook(
        &there,
        RegisterHookRequest {
            timeout_ms: 200,
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    let agent = create_agent(&here, "slow");
    expect_code(
        transition(&here, &agent.id, S::Active, false),
        Code::DeadlineExceeded,
    );
    assert_eq!(
        get_agent(&here, &agent.id).unwrap().state,
        S::Initialized as i32
    );
    assert!(history(&here, &agent.id).is_empty());
}

#[test]
fn hooks_of_a_runtime_that_is_gone_are_skipped_and_reported() {
    let (database, nats) = (server::fresh_database(), NatsServer::start());
    let here = member(&database, &nats, "gone-here", false);
    let there = member(&database, &nats, "gone-there", false);
    let host = hook_host(&there, false, |_| {
        Err((Code::PermissionDenied, "never".into()))
    });
    let hook_id = register_hook(&there, hook(&host.method, true)).unwrap();
    let agent = create_agent(&here, "orphan");
    expect_code(
        transition(&here, &agent.id, S::Active, false),
        Code::PermissionDenied,
    );

    // A process that dies leaves its hooks listed; nobody answers for them.
    database
        .client()
        .execute(
            "INSERT INTO lifecycle_hooks (id, runtime, body) \
             SELECT 'ghost-hook', 'ghost', body FROM lifecycle_hooks WHERE id = $1",
            &[&hook_id],
        )
        .unwrap();
    // One that closes takes its own away.
    there.close();
    assert_eq!(listed_hooks(&database, "gone-there"), 0);

    let (_, sub) = subscribe(&here, &kinds(&["lifecycle.*"]));
    transition(&here, &agent.id, S::Active, false).expect("a gone runtime vetoes nothing");
    let failure = drain(&sub)
        .into_iter()
        .find_map(|event| match event.payload {
            Some(Payload::HookFailed(failure)) => Some(failure),
            _ => None,
        })
        .expect("the skipped hook is reported");
    assert_eq!(failure.hook_id, "ghost-hook");
    let status = failure.error.unwrap();
    assert_eq!(
        status.details.get("reason").map(String::as_str),
        Some("hook_gone")
    );
    assert_eq!(
        status.details.get("runtime").map(String::as_str),
        Some("ghost")
    );

    // Starting again under its name clears what a previous process left.
    let ghost = member(&database, &nats, "ghost", false);
    assert_eq!(listed_hooks(&database, "ghost"), 0);
    drop(ghost);
}

#[test]
fn a_runtime_without_a_transport_cannot_skip_the_fleets_hooks() {
    let (database, nats) = (server::fresh_database(), NatsServer::start());
    let there = member(&database, &nats, "closed-there", false);
    let host = hook_host(&there, false, |_| Ok(()));
    register_hook(&there, hook(&host.method, true)).unwrap();
    let alone = Runtime::new(Settings {
        store: database.store_settings(),
        ..Settings::default()
    })
    .unwrap();
    let agent = create_agent(&alone, "unreachable");
    let refused = expect_code(
        transition(&alone, &agent.id, S::Active, false),
        Code::FailedPrecondition,
    );
    assert!(refused.message.contains("no transport"), "{refused:?}");
    assert!(history(&alone, &agent.id).is_empty());
}

/// The history sequence and origin of each lifecycle event of `agent_id`
/// that `entry` receives, until it has `count`.
fn history_seen(entry: &SubscriptionEntry, agent_id: &str, count: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let event: Event = poll(entry, Some(Duration::from_secs(10))).expect("an event arrives");
        if let Some(Payload::Lifecycle(moved)) = event.payload
            && moved.agent_id == agent_id
        {
            seen.push((moved.sequence, event.origin));
        }
    }
    seen
}

#[test]
fn every_runtime_sees_one_agents_events_in_the_order_of_its_history() {
    let (database, nats) = (server::fresh_database(), NatsServer::start());
    let writers = [
        member(&database, &nats, "order-a", true),
        member(&database, &nats, "order-b", true),
    ];
    // A runtime outside the fleet sees it through NATS alone.
    let watcher = Runtime::new(
        Settings::from_config(RuntimeConfig {
            name: "order-watcher".into(),
            nats: Some(NatsTransport {
                servers: vec![nats.url()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    let agent = create_agent(&writers[0], "shared");
    let filter = EventFilter {
        include_remote: true,
        agent_ids: vec![agent.id.clone()],
        kinds: vec!["lifecycle.transition".into()],
        ..Default::default()
    };
    let subscribers: Vec<_> = [&writers[0], &writers[1], &watcher]
        .into_iter()
        .map(|rt| subscribe(rt, &filter).1)
        .collect();
    const EACH: usize = 60;
    let workers: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(index, rt)| {
            let rt = rt.clone();
            let id = agent.id.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    let to = [S::Active, S::Paused, S::Maintenance][(i + index) % 3];
                    transition(&rt, &id, to, true).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let expected: Vec<u64> = (1..=(2 * EACH) as u64).collect();
    for (subscriber, name) in subscribers.iter().zip(["order-a", "order-b", "watcher"]) {
        let seen = history_seen(subscriber, &agent.id, expected.len());
        let sequences: Vec<u64> = seen.iter().map(|(sequence, _)| *sequence).collect();
        assert_eq!(sequences, expected, "{name} saw the history out of order");
        for writer in ["order-a", "order-b"] {
            let made = seen.iter().filter(|(_, origin)| origin == writer).count();
            assert_eq!(made, EACH, "{name} saw {made} events of {writer}");
        }
    }
}
