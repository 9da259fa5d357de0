//! LifecycleService: the transition table of DOMAIN.md, forced moves,
//! state and history, hooks, and concurrent transitions.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    ALL_STATES, LIFECYCLE, RuntimeSlot, WATCHDOG, agent_in, assert_chained, call, call_in,
    create_agent, drain, expect_code, get_agent, get_state, history, kinds, new_runtime, subscribe,
    transition, transition_request, within,
};
use hms_ffi::codec::{self, Format, Limits};
use hms_ffi::proto::hms::agent::lifecycle::v1::{
    GetHistoryRequest, GetHistoryResponse, HookInvocation, LifecycleEvent, LifecycleState,
    RegisterHookRequest, RegisterHookResponse, TransitionRequest, TransitionResponse,
    TransitionType, UnregisterHookRequest, UnregisterHookResponse,
};
use hms_ffi::proto::hms::events::v1::event::Payload;
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};
use prost_types::Timestamp;

use LifecycleState as S;

type Rt = Arc<Runtime>;

/// The table of DOMAIN.md, written out independently of the core.
fn table(from: S) -> &'static [S] {
    match from {
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
        S::Terminated => &[],
        S::Maintenance => &[S::Active, S::Error, S::ShuttingDown],
        S::Error => &[S::Recovering, S::Terminated],
        S::Upgrading => &[S::Active, S::Error],
        S::Recovering => &[S::Active, S::Error, S::Terminated],
        S::StateUnspecified => &[],
    }
}

fn transition_with(rt: &Rt, request: &TransitionRequest) -> Result<TransitionResponse, HmsError> {
    call(rt, &format!("{LIFECYCLE}/Transition"), request)
}

fn key(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.expect("timestamp set");
    (t.seconds, t.nanos)
}

#[test]
fn the_transition_table_is_exactly_domain_md() {
    let rt = new_runtime();
    let (_, sub) = subscribe(&rt, &kinds(&["lifecycle.*"]));
    let mut allowed = 0;
    for from in ALL_STATES {
        for to in ALL_STATES {
            let agent = agent_in(&rt, from);
            let before = history(&rt, &agent.id);
            drain(&sub);
            let request = TransitionRequest {
                reason: format!("{from:?} to {to:?}"),
                initiated_by: "table-test".into(),
                metadata: [("pair".to_string(), format!("{from:?}-{to:?}"))].into(),
                ..transition_request(&agent.id, to, false)
            };
            let result = transition_with(&rt, &request);
            if table(from).contains(&to) {
                allowed += 1;
                let response = result.unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e:?}"));
                assert_eq!(response.previous_state, from as i32);
                assert_eq!(response.current_state, to as i32);
                let event = response.event.expect("the transition event");
                assert!(common::is_uuid(&event.event_id));
                assert_eq!(event.agent_id, agent.id);
                assert_eq!(event.previous_state, from as i32);
                assert_eq!(event.new_state, to as i32);
                assert_eq!(event.transition_type, TransitionType::Normal as i32);
                assert_eq!(event.initiated_by, "table-test");
                assert_eq!(event.reason, request.reason);
                assert_eq!(event.metadata, request.metadata);
                assert_eq!(event.sequence, before.len() as u64 + 1);
                let after = get_agent(&rt, &agent.id).unwrap();
                assert_eq!(after.state, to as i32);
                assert_eq!(after.revision, agent.revision + 1);
                assert_eq!(after.updated_at, event.timestamp);
                let now = history(&rt, &agent.id);
                assert_eq!(now.len(), before.len() + 1);
                assert_eq!(now.last(), Some(&event));
                assert_chained(&now);
                let state = get_state(&rt, &agent.id).unwrap();
                assert_eq!(state.state, to as i32);
                assert_eq!(state.previous_state, from as i32);
                assert_eq!(state.since, event.timestamp);
                let published = drain(&sub);
                assert_eq!(published.len(), 1);
                assert_eq!(published[0].payload, Some(Payload::Lifecycle(event)));
            } else {
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{from:?} -> {to:?} must be refused"));
                assert_eq!(
                    error.code,
                    Code::FailedPrecondition,
                    "{from:?} -> {to:?}: {error:?}"
                );
                assert!(error.details.get("rule").is_some_and(|r| !r.is_empty()));
                assert_eq!(
                    error.details.get("from").map(String::as_str),
                    Some(from.as_str_name())
                );
                assert_eq!(
                    error.details.get("to").map(String::as_str),
                    Some(to.as_str_name())
                );
                assert_eq!(
                    get_agent(&rt, &agent.id).unwrap(),
                    agent,
                    "{from:?} -> {to:?} changed the agent"
                );
                assert_eq!(
                    history(&rt, &agent.id),
                    before,
                    "{from:?} -> {to:?} changed the history"
                );
                assert!(
                    drain(&sub).is_empty(),
                    "a refused transition publishes nothing"
                );
            }
        }
    }
    assert_eq!(allowed, 28);
}

#[test]
fn the_core_table_matches_domain_md() {
    for from in ALL_STATES {
        let mut core: Vec<i32> = hms_ffi::domain::allowed_targets(from)
            .iter()
            .map(|s| *s as i32)
            .collect();
        let mut ours: Vec<i32> = table(from).iter().map(|s| *s as i32).collect();
        core.sort_unstable();
        ours.sort_unstable();
        assert_eq!(core, ours, "{from:?}");
    }
}

#[test]
fn force_allows_any_move_out_of_the_table_and_records_it_as_forced() {
    let rt = new_runtime();
    let mut forced = 0;
    for from in ALL_STATES.into_iter().filter(|s| *s != S::Terminated) {
        for to in ALL_STATES
            .into_iter()
            .filter(|to| !table(from).contains(to))
        {
            let agent = agent_in(&rt, from);
            let before = history(&rt, &agent.id);
            let response = transition(&rt, &agent.id, to, true)
                .unwrap_or_else(|e| panic!("forced {from:?} -> {to:?}: {e:?}"));
            let event = response.event.unwrap();
            assert_eq!(event.transition_type, TransitionType::Forced as i32);
            assert_eq!(event.previous_state, from as i32);
            assert_eq!(event.new_state, to as i32);
            let after = history(&rt, &agent.id);
            assert_eq!(after.len(), before.len() + 1);
            assert_eq!(
                after.last().unwrap().transition_type,
                TransitionType::Forced as i32
            );
            assert_eq!(get_agent(&rt, &agent.id).unwrap().state, to as i32);
            forced += 1;
        }
    }
    assert_eq!(forced, 90 - 28);
}

#[test]
fn terminated_is_final_even_with_force() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "done");
    transition(&rt, &agent.id, S::Terminated, false).unwrap();
    let agent = get_agent(&rt, &agent.id).unwrap();
    let before = history(&rt, &agent.id);
    for to in ALL_STATES {
        for force in [false, true] {
            let error = expect_code(
                transition(&rt, &agent.id, to, force),
                Code::FailedPrecondition,
            );
            assert!(
                error
                    .details
                    .get("rule")
                    .is_some_and(|r| r.contains("TERMINATED")),
                "{error:?}"
            );
            assert_eq!(
                error.details.get("from").map(String::as_str),
                Some("TERMINATED")
            );
        }
    }
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
    assert_eq!(history(&rt, &agent.id), before);
}

#[test]
fn transition_types_label_the_transition() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "typed");
    for (to, label) in [
        (S::Active, TransitionType::Automatic),
        (S::Maintenance, TransitionType::Maintenance),
        (S::Error, TransitionType::ErrorTriggered),
        (S::Recovering, TransitionType::Unspecified),
    ] {
        let response = transition_with(
            &rt,
            &TransitionRequest {
                transition_type: label as i32,
                ..transition_request(&agent.id, to, false)
            },
        )
        .unwrap();
        let expected = if label == TransitionType::Unspecified {
            TransitionType::Normal
        } else {
            label
        };
        assert_eq!(response.event.unwrap().transition_type, expected as i32);
    }
    // Forced wins over a requested label.
    let response = transition_with(
        &rt,
        &TransitionRequest {
            transition_type: TransitionType::Automatic as i32,
            ..transition_request(&agent.id, S::Paused, true)
        },
    )
    .unwrap();
    assert_eq!(
        response.event.unwrap().transition_type,
        TransitionType::Forced as i32
    );
    // FORCED is recorded, not requested; unknown numbers are refused.
    let before = get_agent(&rt, &agent.id).unwrap();
    for bad in [TransitionType::Forced as i32, 99] {
        expect_code(
            transition_with(
                &rt,
                &TransitionRequest {
                    transition_type: bad,
                    ..transition_request(&agent.id, S::Active, false)
                },
            ),
            Code::InvalidArgument,
        );
    }
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), before);
}

#[test]
fn malformed_transitions_are_refused() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "m");
    for target in [0, 11, 99, -1] {
        let error = expect_code(
            transition_with(
                &rt,
                &TransitionRequest {
                    agent_id: agent.id.clone(),
                    target_state: target,
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
        );
        assert_eq!(
            error.details.get("field").map(String::as_str),
            Some("target_state")
        );
    }
    expect_code(transition(&rt, "", S::Active, false), Code::InvalidArgument);
    expect_code(transition(&rt, "ghost", S::Active, false), Code::NotFound);
    expect_code(get_state(&rt, "ghost"), Code::NotFound);
    assert!(history(&rt, &agent.id).is_empty());
}

#[test]
fn transitions_work_in_every_format() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "fmt");
    let mut state = S::Initialized;
    for (format, to) in [
        (Format::Protobuf, S::Active),
        (Format::Cbor, S::Paused),
        (Format::Json, S::Active),
    ] {
        let response: TransitionResponse = call_in(
            &rt,
            &format!("{LIFECYCLE}/Transition"),
            format,
            &transition_request(&agent.id, to, false),
            None,
        )
        .unwrap();
        assert_eq!(response.previous_state, state as i32, "{format:?}");
        state = to;
    }
    let json = format!(
        r#"{{"agent_id": "{}", "target_state": "MAINTENANCE", "reason": "patch"}}"#,
        agent.id
    );
    let out = common::call_raw(
        &rt,
        &format!("{LIFECYCLE}/Transition"),
        Format::Json,
        json.as_bytes(),
        &[],
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""current_state":"MAINTENANCE""#), "{text}");
    assert!(
        text.contains(r#""transition_type":"TRANSITION_TYPE_NORMAL""#),
        "{text}"
    );
}

#[test]
fn get_state_reports_previous_state_since_and_errors() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "st");
    let state = get_state(&rt, &agent.id).unwrap();
    assert_eq!(state.agent_id, agent.id);
    assert_eq!(state.state, S::Initialized as i32);
    assert_eq!(state.previous_state, S::StateUnspecified as i32);
    assert_eq!(state.since, agent.created_at);
    assert!(state.error.is_none());

    transition(&rt, &agent.id, S::Active, false).unwrap();
    let into_error = transition_with(
        &rt,
        &TransitionRequest {
            reason: "disk full".into(),
            initiated_by: "monitor".into(),
            ..transition_request(&agent.id, S::Error, false)
        },
    )
    .unwrap();
    let state = get_state(&rt, &agent.id).unwrap();
    assert_eq!(state.state, S::Error as i32);
    assert_eq!(state.previous_state, S::Active as i32);
    assert_eq!(state.since, into_error.event.as_ref().unwrap().timestamp);
    let error = state.error.expect("error info while in ERROR");
    assert_ne!(error.code, 0);
    assert_eq!(error.message, "disk full");

    transition(&rt, &agent.id, S::Recovering, false).unwrap();
    let state = get_state(&rt, &agent.id).unwrap();
    assert_eq!(state.previous_state, S::Error as i32);
    assert!(state.error.is_none(), "no error once out of ERROR");
}

fn history_page(rt: &Rt, request: GetHistoryRequest) -> Result<GetHistoryResponse, HmsError> {
    call(rt, &format!("{LIFECYCLE}/GetHistory"), &request)
}

/// Every event matching `request`, following tokens with the given page size.
fn history_filtered(rt: &Rt, request: GetHistoryRequest) -> Vec<LifecycleEvent> {
    let mut request = request;
    let mut events = Vec::new();
    for _ in 0..1000 {
        let page = history_page(rt, request.clone()).unwrap();
        if request.page_size > 0 {
            assert!(page.events.len() <= request.page_size as usize);
        }
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        request.page_token = page.next_page_token;
    }
    panic!("paging never ends");
}

#[test]
fn history_pages_stay_under_the_size_limit() {
    // 40 events of ~3 KiB each (their reasons) are ~120 KiB: under a 32 KiB
    // limit, one page of the default 100 records would not fit; pages end
    // early instead, and together they still hold every event once.
    let rt = common::runtime_with(|s| s.limits.max_message_bytes = 32 * 1024);
    let agent = create_agent(&rt, "long-history");
    let mut to = S::Active;
    for round in 0..40 {
        let request = TransitionRequest {
            reason: format!("{round:04} {}", "r".repeat(3000)),
            ..transition_request(&agent.id, to, false)
        };
        transition_with(&rt, &request).unwrap();
        to = if to == S::Active {
            S::Paused
        } else {
            S::Active
        };
    }
    let mut request = GetHistoryRequest {
        agent_id: agent.id.clone(),
        ..Default::default()
    };
    let mut sequences = Vec::new();
    let mut pages = 0;
    loop {
        let page = history_page(&rt, request.clone()).unwrap();
        pages += 1;
        assert!(!page.events.is_empty());
        sequences.extend(page.events.iter().map(|e| e.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(sequences, (1..=40).collect::<Vec<u64>>());
    assert!(
        pages >= 4,
        "{pages} pages for ~120 KiB under a 32 KiB limit"
    );
}

#[test]
fn get_history_is_oldest_first_filtered_and_paged() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "h");
    assert!(history(&rt, &agent.id).is_empty());
    let steps = [
        (S::Active, false),
        (S::Paused, false),
        (S::Initialized, true),
        (S::Active, false),
        (S::Maintenance, false),
        (S::Upgrading, true),
    ];
    for (to, force) in steps {
        transition(&rt, &agent.id, to, force).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let all = history(&rt, &agent.id);
    assert_eq!(all.len(), 6);
    assert_chained(&all);
    for pair in all.windows(2) {
        assert!(
            key(&pair[0].timestamp) <= key(&pair[1].timestamp),
            "oldest first"
        );
    }
    // By type.
    let forced = history_filtered(
        &rt,
        GetHistoryRequest {
            agent_id: agent.id.clone(),
            transition_type: TransitionType::Forced as i32,
            ..Default::default()
        },
    );
    let expected: Vec<LifecycleEvent> = all
        .iter()
        .filter(|e| e.transition_type == TransitionType::Forced as i32)
        .cloned()
        .collect();
    assert_eq!(forced, expected);
    assert_eq!(forced.len(), 2);
    // By inclusive time range.
    let (start, end) = (all[1].timestamp, all[3].timestamp);
    let ranged = history_filtered(
        &rt,
        GetHistoryRequest {
            agent_id: agent.id.clone(),
            start_time: start,
            end_time: end,
            ..Default::default()
        },
    );
    let in_range: Vec<LifecycleEvent> = all
        .iter()
        .filter(|e| key(&e.timestamp) >= key(&start) && key(&e.timestamp) <= key(&end))
        .cloned()
        .collect();
    assert_eq!(ranged, in_range);
    assert_eq!(
        ranged.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let from_start = history_filtered(
        &rt,
        GetHistoryRequest {
            agent_id: agent.id.clone(),
            start_time: all[4].timestamp,
            ..Default::default()
        },
    );
    assert_eq!(from_start, all[4..]);
    let until_end = history_filtered(
        &rt,
        GetHistoryRequest {
            agent_id: agent.id.clone(),
            end_time: all[0].timestamp,
            ..Default::default()
        },
    );
    assert_eq!(until_end, all[..1]);
    // Pages, each event exactly once, with and without a filter.
    for page_size in [1, 2, 4, 6, 7] {
        let paged = history_filtered(
            &rt,
            GetHistoryRequest {
                agent_id: agent.id.clone(),
                page_size,
                ..Default::default()
            },
        );
        assert_eq!(paged, all, "page_size {page_size}");
    }
    let normal_paged = history_filtered(
        &rt,
        GetHistoryRequest {
            agent_id: agent.id.clone(),
            transition_type: TransitionType::Normal as i32,
            page_size: 1,
            ..Default::default()
        },
    );
    assert_eq!(normal_paged.len(), 4);
    // Bad tokens, unknown agents.
    for token in ["%%%", "YWJj"] {
        expect_code(
            history_page(
                &rt,
                GetHistoryRequest {
                    agent_id: agent.id.clone(),
                    page_token: token.into(),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
        );
    }
    expect_code(
        history_page(
            &rt,
            GetHistoryRequest {
                agent_id: "ghost".into(),
                ..Default::default()
            },
        ),
        Code::NotFound,
    );
    expect_code(
        history_page(&rt, GetHistoryRequest::default()),
        Code::InvalidArgument,
    );
}

// ------------------------------------------------------------------- hooks

/// A host service usable as a hook: records each invocation, then answers
/// with `behavior`'s verdict.
pub struct HookHost {
    pub method: String,
    pub calls: Arc<Mutex<Vec<HookInvocation>>>,
}

pub type Verdict = Result<(), (Code, String)>;

pub fn hook_host(
    rt: &Rt,
    caller_thread_only: bool,
    behavior: impl Fn(&HookInvocation) -> Verdict + Send + Sync + 'static,
) -> HookHost {
    let name = common::unique("hooks.v1.Hook");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    rt.register_service(
        common::hook_descriptor(&name),
        Format::Protobuf,
        hms_ffi::runtime::HostOptions {
            caller_thread_only,
            ..Default::default()
        },
        common::handler(move |reply, _, format, request| {
            let invocation: HookInvocation =
                codec::decode_typed(format, request, &Limits::default()).expect("a HookInvocation");
            log.lock().unwrap().push(invocation.clone());
            match behavior(&invocation) {
                Ok(()) => reply.set(&[]).unwrap(),
                Err((code, message)) => reply.error(code as i32, message).unwrap(),
            }
        }),
    )
    .unwrap();
    HookHost {
        method: format!("{name}/On"),
        calls,
    }
}

pub fn register_hook(rt: &Rt, request: RegisterHookRequest) -> Result<String, HmsError> {
    let response: RegisterHookResponse = call(rt, &format!("{LIFECYCLE}/RegisterHook"), &request)?;
    Ok(response.hook_id)
}

pub fn hook(method: &str, blocking: bool) -> RegisterHookRequest {
    RegisterHookRequest {
        method: method.into(),
        blocking,
        name: format!(
            "test hook ({})",
            if blocking { "blocking" } else { "after" }
        ),
        ..Default::default()
    }
}

#[test]
fn a_blocking_hook_vetoes_and_nothing_changes() {
    let rt = new_runtime();
    let host = hook_host(&rt, false, |_| {
        Err((Code::PermissionDenied, "not today".into()))
    });
    let hook_id = register_hook(&rt, hook(&host.method, true)).unwrap();
    let agent = create_agent(&rt, "vetoed");
    let (_, sub) = subscribe(&rt, &kinds(&["lifecycle.*"]));
    let error = expect_code(
        transition_with(
            &rt,
            &TransitionRequest {
                reason: "try".into(),
                ..transition_request(&agent.id, S::Active, false)
            },
        ),
        Code::PermissionDenied,
    );
    assert!(error.message.contains("not today"), "{error:?}");
    assert_eq!(error.details.get("hook_id"), Some(&hook_id));
    assert_eq!(
        error.details.get("hook_name").map(String::as_str),
        Some("test hook (blocking)")
    );
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
    assert!(history(&rt, &agent.id).is_empty());
    assert!(
        drain(&sub).is_empty(),
        "a vetoed transition publishes nothing"
    );
    let calls = host.calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    let invocation = &calls[0];
    assert_eq!(invocation.hook_id, hook_id);
    assert_eq!(invocation.hook_name, "test hook (blocking)");
    assert!(invocation.blocking);
    let event = invocation.event.as_ref().unwrap();
    assert_eq!(event.agent_id, agent.id);
    assert_eq!(event.previous_state, S::Initialized as i32);
    assert_eq!(event.new_state, S::Active as i32);
    assert_eq!(event.sequence, 1);
    assert_eq!(event.reason, "try");
}

#[test]
fn a_blocking_hook_runs_before_the_change_and_can_approve_it() {
    let rt = new_runtime();
    let slot = RuntimeSlot::default();
    slot.set(&rt);
    let seen_states = Arc::new(Mutex::new(Vec::new()));
    let log = seen_states.clone();
    let host = hook_host(&rt, false, move |invocation| {
        let agent_id = &invocation.event.as_ref().unwrap().agent_id;
        let state = get_state(&slot.get(), agent_id).map_err(|e| (e.code, e.message))?;
        log.lock().unwrap().push(state.state);
        Ok(())
    });
    register_hook(&rt, hook(&host.method, true)).unwrap();
    let agent = create_agent(&rt, "approved");
    within(WATCHDOG, {
        let rt = rt.clone();
        let id = agent.id.clone();
        move || transition(&rt, &id, S::Active, false)
    })
    .unwrap();
    assert_eq!(
        *seen_states.lock().unwrap(),
        [S::Initialized as i32],
        "the hook saw the old state"
    );
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Active as i32);
}

#[test]
fn hooks_fire_only_on_matching_transitions_until_unregistered() {
    let rt = new_runtime();
    let host = hook_host(&rt, false, |_| Ok(()));
    let watched = create_agent(&rt, "watched");
    let other = create_agent(&rt, "other");
    let by_agent = register_hook(
        &rt,
        RegisterHookRequest {
            agent_ids: vec![watched.id.clone()],
            to_states: vec![S::Paused as i32],
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    let by_from = register_hook(
        &rt,
        RegisterHookRequest {
            from_states: vec![S::Paused as i32],
            name: "from paused".into(),
            ..hook(&host.method, false)
        },
    )
    .unwrap();
    for agent in [&other, &watched] {
        transition(&rt, &agent.id, S::Active, false).unwrap(); // matches neither
        transition(&rt, &agent.id, S::Paused, false).unwrap(); // by_agent for `watched`
        transition(&rt, &agent.id, S::Active, false).unwrap(); // by_from for both
    }
    let calls: Vec<(String, String, i32)> = host
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| {
            let e = c.event.as_ref().unwrap();
            (c.hook_id.clone(), e.agent_id.clone(), e.new_state)
        })
        .collect();
    assert_eq!(
        calls,
        [
            (by_from.clone(), other.id.clone(), S::Active as i32),
            (by_agent.clone(), watched.id.clone(), S::Paused as i32),
            (by_from.clone(), watched.id.clone(), S::Active as i32),
        ]
    );
    // Unregistered hooks are never called again.
    for hook_id in [&by_agent, &by_from] {
        let _: UnregisterHookResponse = call(
            &rt,
            &format!("{LIFECYCLE}/UnregisterHook"),
            &UnregisterHookRequest {
                hook_id: hook_id.clone(),
            },
        )
        .unwrap();
    }
    transition(&rt, &watched.id, S::Paused, false).unwrap();
    transition(&rt, &watched.id, S::Active, false).unwrap();
    assert_eq!(host.calls.lock().unwrap().len(), 3);
    let again: Result<UnregisterHookResponse, _> = call(
        &rt,
        &format!("{LIFECYCLE}/UnregisterHook"),
        &UnregisterHookRequest { hook_id: by_agent },
    );
    expect_code(again, Code::NotFound);
    let empty: Result<UnregisterHookResponse, _> = call(
        &rt,
        &format!("{LIFECYCLE}/UnregisterHook"),
        &UnregisterHookRequest::default(),
    );
    expect_code(empty, Code::InvalidArgument);
}

#[test]
fn register_hook_validates_its_request() {
    let rt = new_runtime();
    let host = hook_host(&rt, false, |_| Ok(()));
    expect_code(register_hook(&rt, hook("", true)), Code::InvalidArgument);
    expect_code(
        register_hook(&rt, hook("no.such.v1.Svc/Method", true)),
        Code::NotFound,
    );
    expect_code(
        register_hook(&rt, hook("not a method", true)),
        Code::InvalidArgument,
    );
    for states in [vec![0], vec![99], vec![S::Active as i32, -3]] {
        expect_code(
            register_hook(
                &rt,
                RegisterHookRequest {
                    from_states: states.clone(),
                    ..hook(&host.method, true)
                },
            ),
            Code::InvalidArgument,
        );
        expect_code(
            register_hook(
                &rt,
                RegisterHookRequest {
                    to_states: states,
                    ..hook(&host.method, true)
                },
            ),
            Code::InvalidArgument,
        );
    }
    expect_code(
        register_hook(
            &rt,
            RegisterHookRequest {
                timeout_ms: 600_001,
                ..hook(&host.method, true)
            },
        ),
        Code::InvalidArgument,
    );
    // None of them was registered.
    let agent = create_agent(&rt, "x");
    transition(&rt, &agent.id, S::Active, false).unwrap();
    assert!(host.calls.lock().unwrap().is_empty());
    // A built-in method may be a hook too.
    assert!(register_hook(&rt, hook("hms.sys.v1.System/Health", true)).is_ok());
    transition(&rt, &agent.id, S::Paused, false).unwrap();
}

#[test]
fn a_blocking_hook_slower_than_its_timeout_vetoes_with_deadline_exceeded() {
    let rt = new_runtime();
    let host = hook_host(&rt, false, |_| {
        std::thread::sleep(Duration::from_millis(800));
        Ok(())
    });
    let hook_id = register_hook(
        &rt,
        RegisterHookRequest {
            timeout_ms: 50,
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "slow");
    let error = expect_code(
        transition(&rt, &agent.id, S::Active, false),
        Code::DeadlineExceeded,
    );
    assert_eq!(error.details.get("hook_id"), Some(&hook_id));
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
    assert!(history(&rt, &agent.id).is_empty());
    // The request's timeout_ms overrides the hook's own.
    let _: UnregisterHookResponse = call(
        &rt,
        &format!("{LIFECYCLE}/UnregisterHook"),
        &UnregisterHookRequest { hook_id },
    )
    .unwrap();
    register_hook(
        &rt,
        RegisterHookRequest {
            timeout_ms: 60_000,
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    expect_code(
        transition_with(
            &rt,
            &TransitionRequest {
                timeout_ms: 50,
                ..transition_request(&agent.id, S::Active, false)
            },
        ),
        Code::DeadlineExceeded,
    );
    assert_eq!(get_agent(&rt, &agent.id).unwrap(), agent);
}

#[test]
fn a_failing_non_blocking_hook_is_reported_and_the_transition_stands() {
    let rt = new_runtime();
    let slot = RuntimeSlot::default();
    slot.set(&rt);
    let history_seen = Arc::new(Mutex::new(Vec::new()));
    let log = history_seen.clone();
    let host = hook_host(&rt, false, move |invocation| {
        let agent_id = &invocation.event.as_ref().unwrap().agent_id;
        log.lock()
            .unwrap()
            .push(history(&slot.get(), agent_id).len());
        Err((Code::Internal, "after-hook broke".into()))
    });
    let hook_id = register_hook(
        &rt,
        RegisterHookRequest {
            name: "audit".into(),
            ..hook(&host.method, false)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "reported");
    let (_, sub) = subscribe(&rt, &kinds(&["lifecycle.*"]));
    let response = transition(&rt, &agent.id, S::Active, false).unwrap();
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Active as i32);
    assert_eq!(history(&rt, &agent.id).len(), 1);
    assert_eq!(*history_seen.lock().unwrap(), [1], "runs after the change");
    let invocation = host.calls.lock().unwrap()[0].clone();
    assert!(!invocation.blocking);
    let events = drain(&sub);
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["lifecycle.transition", "lifecycle.hook_failed"]
    );
    let failed = &events[1];
    assert_eq!(failed.agent_id, agent.id);
    let Some(Payload::HookFailed(failure)) = &failed.payload else {
        panic!("{failed:?}")
    };
    assert_eq!(failure.hook_id, hook_id);
    assert_eq!(failure.hook_name, "audit");
    assert_eq!(failure.method, host.method);
    let error = failure.error.as_ref().unwrap();
    assert_eq!(error.code, Code::Internal as i32);
    assert!(error.message.contains("after-hook broke"));
    assert_eq!(failure.event, response.event);
}

#[test]
fn a_non_blocking_hook_that_times_out_is_reported() {
    let rt = new_runtime();
    let host = hook_host(&rt, false, |_| {
        std::thread::sleep(Duration::from_millis(800));
        Ok(())
    });
    register_hook(
        &rt,
        RegisterHookRequest {
            timeout_ms: 50,
            ..hook(&host.method, false)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "late");
    let (_, sub) = subscribe(&rt, &kinds(&["lifecycle.hook_failed"]));
    transition(&rt, &agent.id, S::Active, false).unwrap();
    let events = drain(&sub);
    assert_eq!(events.len(), 1);
    let Some(Payload::HookFailed(failure)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(
        failure.error.as_ref().unwrap().code,
        Code::DeadlineExceeded as i32
    );
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Active as i32);
}

/// The outcomes of the nested transitions a hook attempted.
type Outcomes = Arc<Mutex<Vec<Result<(), Code>>>>;

/// A hook that moves its own agent to ERROR (allowed from INITIALIZED and
/// from ACTIVE), recording the outcome of that nested transition.
fn self_transitioning_hook(rt: &Rt, caller_thread_only: bool) -> (HookHost, Outcomes) {
    let slot = RuntimeSlot::default();
    slot.set(rt);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let log = outcomes.clone();
    let host = hook_host(rt, caller_thread_only, move |invocation| {
        let event = invocation.event.as_ref().unwrap();
        let nested = transition(&slot.get(), &event.agent_id, S::Error, false);
        log.lock()
            .unwrap()
            .push(nested.map(|_| ()).map_err(|e| e.code));
        Ok(())
    });
    (host, outcomes)
}

#[test]
fn a_non_blocking_hook_may_transition_its_own_agent() {
    let rt = new_runtime();
    let (host, outcomes) = self_transitioning_hook(&rt, false);
    register_hook(
        &rt,
        RegisterHookRequest {
            to_states: vec![S::Active as i32],
            ..hook(&host.method, false)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "self");
    within(WATCHDOG, {
        let rt = rt.clone();
        let id = agent.id.clone();
        move || transition(&rt, &id, S::Active, false)
    })
    .unwrap();
    assert_eq!(*outcomes.lock().unwrap(), [Ok(())]);
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Error as i32);
    let all = history(&rt, &agent.id);
    assert_eq!(all.len(), 2);
    assert_chained(&all);
}

#[test]
fn a_caller_thread_blocking_hook_transitioning_its_own_agent_fails_fast() {
    let rt = new_runtime();
    let (host, outcomes) = self_transitioning_hook(&rt, true);
    register_hook(
        &rt,
        RegisterHookRequest {
            to_states: vec![S::Active as i32],
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "self");
    within(WATCHDOG, {
        let rt = rt.clone();
        let id = agent.id.clone();
        move || transition(&rt, &id, S::Active, false)
    })
    .unwrap();
    assert_eq!(*outcomes.lock().unwrap(), [Err(Code::FailedPrecondition)]);
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Active as i32);
    assert_chained(&history(&rt, &agent.id));
}

#[test]
fn a_blocking_hook_transitioning_its_own_agent_does_not_stall() {
    let rt = new_runtime();
    let (host, outcomes) = self_transitioning_hook(&rt, false);
    register_hook(
        &rt,
        RegisterHookRequest {
            to_states: vec![S::Active as i32],
            timeout_ms: 3_000,
            ..hook(&host.method, true)
        },
    )
    .unwrap();
    let agent = create_agent(&rt, "self");
    let outer = within(WATCHDOG, {
        let rt = rt.clone();
        let id = agent.id.clone();
        move || {
            transition(&rt, &id, S::Active, false)
                .map(|_| ())
                .map_err(|e| e.code)
        }
    });
    // Let a nested transition stuck behind the lock finish before looking.
    let deadline = std::time::Instant::now() + WATCHDOG;
    while outcomes.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *outcomes.lock().unwrap(),
        [Err(Code::FailedPrecondition)],
        "the nested transition must be refused at once, as on the caller thread"
    );
    assert_eq!(outer, Ok(()), "the hook approved, so the transition stands");
    assert_eq!(get_agent(&rt, &agent.id).unwrap().state, S::Active as i32);
    assert_chained(&history(&rt, &agent.id));
}

#[test]
fn concurrent_transitions_of_one_agent_never_interleave() {
    let rt = new_runtime();
    let agent = create_agent(&rt, "busy");
    let (_, sub) = subscribe(
        &rt,
        &hms_ffi::proto::hms::events::v1::EventFilter {
            kinds: vec!["lifecycle.transition".into()],
            agent_ids: vec![agent.id.clone()],
            ..Default::default()
        },
    );
    const PER_THREAD: usize = 150;
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let rt = rt.clone();
            let id = agent.id.clone();
            std::thread::spawn(move || {
                let cycle: &[S] = if worker == 0 {
                    &[S::Active, S::Paused, S::Active, S::Maintenance]
                } else {
                    &[S::Error, S::Recovering, S::Upgrading, S::Suspended]
                };
                let mut succeeded = 0;
                for i in 0..PER_THREAD {
                    // Worker 0 asks for normal moves (some are refused),
                    // worker 1 forces its way.
                    match transition(&rt, &id, cycle[i % cycle.len()], worker == 1) {
                        Ok(_) => succeeded += 1,
                        Err(e) => assert_eq!(e.code, Code::FailedPrecondition, "{e:?}"),
                    }
                }
                succeeded
            })
        })
        .collect();
    let succeeded: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let all = history(&rt, &agent.id);
    assert_eq!(all.len(), succeeded);
    assert!(succeeded >= PER_THREAD, "every forced move succeeds");
    assert_chained(&all);
    let agent_now = get_agent(&rt, &agent.id).unwrap();
    assert_eq!(agent_now.state, all.last().unwrap().new_state);
    assert_eq!(agent_now.revision, 1 + succeeded as u64);
    // Subscribers saw the same events in the same order.
    let published: Vec<LifecycleEvent> = drain(&sub)
        .into_iter()
        .map(|e| match e.payload {
            Some(Payload::Lifecycle(event)) => event,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(published, all);
}

#[test]
fn events_of_each_agent_arrive_in_order_under_concurrency() {
    let rt = new_runtime();
    let agents: Vec<String> = (0..4)
        .map(|i| create_agent(&rt, &format!("a{i}")).id)
        .collect();
    let (_, sub) = subscribe(&rt, &kinds(&["lifecycle.transition"]));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let rt = rt.clone();
            let agents = agents.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let id = &agents[(worker + i) % agents.len()];
                    let to = [S::Active, S::Paused, S::Error, S::Recovering][(i + worker) % 4];
                    transition(&rt, id, to, true).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let mut per_agent: HashMap<String, Vec<LifecycleEvent>> = HashMap::new();
    let mut last_sequence = 0;
    for event in drain(&sub) {
        assert!(event.sequence > last_sequence, "runtime sequence grows");
        last_sequence = event.sequence;
        let Some(Payload::Lifecycle(moved)) = event.payload else {
            panic!()
        };
        per_agent
            .entry(moved.agent_id.clone())
            .or_default()
            .push(moved);
    }
    assert_eq!(per_agent.values().map(Vec::len).sum::<usize>(), 240);
    for id in &agents {
        let published = &per_agent[id];
        assert_chained(published);
        assert_eq!(*published, history(&rt, id));
    }
}
