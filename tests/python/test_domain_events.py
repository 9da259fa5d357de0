"""Domain events through rt.events: kinds, order, filters, lag."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from helpers import agent_in

from hms_cffi import EventKind, Format, Runtime, State, TransitionType
from hms_cffi.domain import payload
from hms_cffi.events import Subscription
from hms_cffi.proto.hms.agent.lifecycle.v1 import lifecycle_pb2
from hms_cffi.proto.hms.agent.v1 import agent_pb2
from hms_cffi.proto.hms.events.v1 import events_pb2


def drain(sub: Subscription) -> list[events_pb2.Event]:
    return list(sub.iter(0.05))


@pytest.fixture
def sub(rt: Runtime) -> Iterator[Subscription]:
    with rt.events.subscribe() as subscription:
        yield subscription


def test_every_change_is_an_event(rt: Runtime, sub: Subscription) -> None:
    agent = rt.agents.create(name="a")
    rt.agents.update(agent.id, kind="k")
    rt.lifecycle.transition(agent.id, State.ACTIVE)
    t1 = rt.tasks.submit("t1")
    rt.tasks.assign(t1.id, agent.id)
    rt.tasks.start(t1.id)
    rt.tasks.complete(t1.id)
    t2 = rt.tasks.start(rt.tasks.submit("t2", agent_id=agent.id).id)
    rt.tasks.fail(t2.id, "x")
    t3 = rt.tasks.submit("t3")
    rt.tasks.cancel(t3.id)
    entry = rt.knowledge.put("ns", "k", text="v", agent_id=agent.id)
    rt.knowledge.delete(entry.id)
    rt.agents.delete(agent.id)
    events = drain(sub)
    assert [e.kind for e in events] == [
        "agent.created",
        "agent.updated",
        "lifecycle.transition",
        "task.submitted",
        "task.assigned",
        "task.running",
        "task.succeeded",
        "task.submitted",
        "task.running",
        "task.failed",
        "task.submitted",
        "task.cancelled",
        "knowledge.put",
        "knowledge.deleted",
        "agent.deleted",
    ]
    assert {e.kind for e in events} <= set(EventKind)
    sequences = [e.sequence for e in events]
    assert sequences == list(range(sequences[0], sequences[0] + len(events)))
    payloads = [e.WhichOneof("payload") for e in events]
    assert payloads == ["agent", "agent", "lifecycle"] + ["task"] * 9 + ["knowledge"] * 2 + [
        "agent"
    ]
    created = events[0]
    assert isinstance(created, events_pb2.Event)
    assert isinstance(payload(created), agent_pb2.Agent)
    assert created.agent.id == agent.id == created.subject == created.agent_id
    assert events[1].agent.kind == "k"
    assert events[2].lifecycle.new_state == State.ACTIVE
    assert events[6].task.status == agent_pb2.SUCCEEDED
    assert events[6].subject == t1.id
    assert events[6].agent_id == agent.id
    assert events[10].agent_id == ""  # a task without an assignee
    assert events[12].knowledge.key == "k"
    assert events[12].agent_id == agent.id
    assert all(e.time.seconds > 0 for e in events)


def test_lifecycle_events_match_the_history(rt: Runtime, sub: Subscription) -> None:
    agent_id = agent_in(rt, "PAUSED")
    rt.lifecycle.transition(agent_id, State.TERMINATED, force=True)
    published = [e.lifecycle for e in drain(sub) if e.kind == "lifecycle.transition"]
    assert published == list(rt.lifecycle.history(agent_id))
    assert published[-1].transition_type == TransitionType.FORCED


def test_order_per_agent_under_concurrency(rt: Runtime, sub: Subscription) -> None:
    agents = [agent_in(rt, "ACTIVE", f"a{i}") for i in range(4)]
    drain(sub)

    def churn(agent_id: str) -> None:
        for _ in range(25):
            rt.lifecycle.transition(agent_id, State.PAUSED)
            rt.lifecycle.transition(agent_id, State.ACTIVE)

    threads = [threading.Thread(target=churn, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = drain(sub)
    assert len(events) == 4 * 50
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences)
    for agent_id in agents:
        mine = [e.lifecycle for e in events if e.agent_id == agent_id]
        assert [e.sequence for e in mine] == list(range(2, 52))
        assert mine == list(rt.lifecycle.history(agent_id))[1:]


def test_filter_by_kind_and_subject(rt: Runtime) -> None:
    a = rt.agents.create(name="a")
    b = rt.agents.create(name="b")
    with (
        rt.events.subscribe(kinds=["task.*", "agent.deleted"]) as by_kind,
        rt.events.subscribe(subjects=[a.id]) as by_subject,
        rt.events.subscribe(kinds=EventKind.LIFECYCLE_TRANSITION, subjects=b.id) as both,
    ):
        rt.lifecycle.transition(a.id, State.ACTIVE)
        rt.lifecycle.transition(b.id, State.ACTIVE)
        task = rt.tasks.submit("t", agent_id=a.id)
        rt.agents.update(a.id, kind="x")
        rt.agents.delete(b.id)
        assert [e.kind for e in drain(by_kind)] == ["task.submitted", "agent.deleted"]
        assert [e.kind for e in drain(by_subject)] == ["lifecycle.transition", "agent.updated"]
        assert [(e.kind, e.subject) for e in drain(both)] == [("lifecycle.transition", b.id)]
    assert task.agent_id == a.id


def test_filter_by_agent_ids(rt: Runtime) -> None:
    a = rt.agents.create(name="a")
    b = rt.agents.create(name="b")
    with rt.events.subscribe(agent_ids=[a.id]) as sub:
        rt.lifecycle.transition(b.id, State.ACTIVE)
        rt.lifecycle.transition(a.id, State.ACTIVE)
        rt.tasks.submit("for a", agent_id=a.id)
        rt.tasks.submit("for b", agent_id=b.id)
        rt.knowledge.put("ns", "k", text="v", agent_id=a.id)
        events = drain(sub)
    assert [(e.kind, e.agent_id) for e in events] == [
        ("lifecycle.transition", a.id),
        ("task.submitted", a.id),
        ("knowledge.put", a.id),
    ]


def test_filter_by_states(rt: Runtime) -> None:
    a = agent_in(rt, "ACTIVE")
    with rt.events.subscribe(states=[State.PAUSED, State.ERROR]) as sub:
        rt.lifecycle.transition(a, State.PAUSED)
        rt.lifecycle.transition(a, State.ACTIVE)
        rt.lifecycle.transition(a, State.ERROR)
        rt.agents.create(name="new one")  # INITIALIZED: not matched
        rt.tasks.submit("t")  # no state: not matched
        events = drain(sub)
    assert [State(e.lifecycle.new_state) for e in events] == [State.PAUSED, State.ERROR]


def test_filter_by_transition_types(rt: Runtime) -> None:
    a = agent_in(rt, "ACTIVE")
    with rt.events.subscribe(transition_types=[TransitionType.FORCED]) as sub:
        rt.lifecycle.transition(a, State.PAUSED)
        rt.lifecycle.transition(a, State.INITIALIZED, force=True)
        rt.agents.create(name="other")
        events = drain(sub)
    assert [e.lifecycle.transition_type for e in events] == [TransitionType.FORCED]


def test_dict_mode(rt: Runtime) -> None:
    with (
        rt.events.subscribe(kinds=["agent.*"], format=Format.CBOR) as cbor_sub,
        rt.events.subscribe(kinds=["agent.*"], format=Format.JSON) as json_sub,
    ):
        agent = rt.agents.create(name="a", labels={"x": "y"})
        (cbor_event,) = drain(cbor_sub)
        (json_event,) = drain(json_sub)
    for event in (cbor_event, json_event):
        assert event["kind"] == "agent.created"
        assert event["agent"]["id"] == agent.id
        assert event["agent"]["state"] == "INITIALIZED"
        assert event["agent"]["labels"] == {"x": "y"}
    assert cbor_event["agent"]["revision"] == 1  # CBOR keeps integers
    assert json_event["agent"]["revision"] == "1"  # JSON writes 64-bit integers as strings


def test_push_subscription_gets_typed_events(rt: Runtime) -> None:
    got: list[events_pb2.Event] = []
    done = threading.Event()

    def on_event(event: events_pb2.Event) -> None:
        got.append(event)
        if len(got) == 2:
            done.set()

    with rt.events.subscribe(kinds=["lifecycle.*"], callback=on_event) as sub:
        agent_id = agent_in(rt, "PAUSED")
        assert done.wait(5)
    assert sub.callback_errors == 0
    assert all(isinstance(e, events_pb2.Event) for e in got)
    assert [State(e.lifecycle.new_state) for e in got] == [State.ACTIVE, State.PAUSED]
    assert all(e.agent_id == agent_id for e in got)


@pytest.mark.parametrize("capacity", [1, 4, 16])
def test_lagging_subscriber_gets_one_lagged_event(capacity: int) -> None:
    produced = 40
    with Runtime({"event_queue_capacity": capacity}) as rt:
        with rt.events.subscribe(kinds=["agent.*", "lagged"]) as sub:
            made = [rt.agents.create(name=f"a{i}").id for i in range(produced)]
            first = sub.next(1)
            rest = drain(sub)
    assert first is not None
    assert first.kind == "lagged"
    assert isinstance(payload(first), events_pb2.LaggedEvent)
    assert first.lagged.dropped == produced - capacity
    # Then the newest `capacity` events, in order, and nothing else.
    assert [e.agent.id for e in rest] == made[-capacity:]
    assert all(e.kind == "agent.created" for e in rest)


def test_lag_is_reported_again_after_more_drops() -> None:
    with Runtime({"event_queue_capacity": 2}) as rt:
        with rt.events.subscribe() as sub:
            for i in range(5):
                rt.agents.create(name=f"a{i}")
            batch1 = drain(sub)
            for i in range(3):
                rt.agents.create(name=f"b{i}")
            batch2 = drain(sub)
    assert [e.kind for e in batch1] == ["lagged", "agent.created", "agent.created"]
    assert batch1[0].lagged.dropped == 3
    assert [e.kind for e in batch2] == ["lagged", "agent.created", "agent.created"]
    assert batch2[0].lagged.dropped == 1
    assert [e.agent.name for e in batch2[1:]] == ["b1", "b2"]


def test_lifecycle_event_payload_type(rt: Runtime, sub: Subscription) -> None:
    agent_in(rt, "ACTIVE")
    (event,) = [e for e in drain(sub) if e.kind == "lifecycle.transition"]
    assert isinstance(payload(event), lifecycle_pb2.LifecycleEvent)
    assert payload(events_pb2.Event()) is None
