"""LifecycleService: the transition table, forced moves, history, concurrency."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time

import pytest
from helpers import ALLOWED, PATH_TO, STATE_NAMES, agent_in

from hms_cffi import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Runtime,
    State,
    TransitionType,
)
from hms_cffi.proto.hms.agent.lifecycle.v1 import lifecycle_pb2


def test_enums_match_the_protos() -> None:
    states = {v.name: v.number for v in lifecycle_pb2.LifecycleState.DESCRIPTOR.values}
    assert {s.proto_name: int(s) for s in State} == states
    types = {v.name: v.number for v in lifecycle_pb2.TransitionType.DESCRIPTOR.values}
    assert {t.proto_name: int(t) for t in TransitionType} == types
    assert TransitionType.FORCED.proto_name == "TRANSITION_TYPE_FORCED"
    assert State.parse("shutting_down") is State.SHUTTING_DOWN
    assert TransitionType.parse("TRANSITION_TYPE_NORMAL") is TransitionType.NORMAL
    assert State.parse(2) is State.ACTIVE
    with pytest.raises(ValueError, match="not a State"):
        State.parse("sleepy")


def test_table_covers_every_state() -> None:
    assert set(STATE_NAMES) == {s.name for s in State if s is not State.UNSPECIFIED}
    assert all(PATH_TO[s] == [] or PATH_TO[s][-1] == s for s in STATE_NAMES)


def test_new_agent_is_initialized(rt: Runtime) -> None:
    agent = rt.agents.create(name="a")
    state = rt.lifecycle.get_state(agent.id)
    assert state.agent_id == agent.id
    assert state.state == State.INITIALIZED
    assert state.previous_state == State.UNSPECIFIED
    assert state.since == agent.created_at
    assert not state.HasField("error")
    assert list(rt.lifecycle.history(agent.id)) == []


@pytest.mark.parametrize("target", STATE_NAMES)
@pytest.mark.parametrize("source", STATE_NAMES)
def test_transition_table(rt: Runtime, source: str, target: str) -> None:
    """Every (from, to) pair, to-self included: allowed exactly per DOMAIN.md;
    a refused move raises FailedPreconditionError naming the rule and changes
    nothing."""
    agent_id = agent_in(rt, source)
    before = rt.agents.get(agent_id)
    history = list(rt.lifecycle.history(agent_id))
    if target in ALLOWED[source]:
        reply = rt.lifecycle.transition(agent_id, State[target], reason="table", initiated_by="t")
        assert reply.previous_state == State[source]
        assert reply.current_state == State[target]
        event = reply.event
        assert event.agent_id == agent_id
        assert (event.previous_state, event.new_state) == (State[source], State[target])
        assert event.transition_type == TransitionType.NORMAL
        assert event.sequence == len(history) + 1
        assert (event.reason, event.initiated_by) == ("table", "t")
        after = rt.agents.get(agent_id)
        assert after.state == State[target]
        assert after.revision == before.revision + 1
        assert list(rt.lifecycle.history(agent_id)) == [*history, event]
        assert rt.lifecycle.get_state(agent_id).previous_state == State[source]
    else:
        with pytest.raises(FailedPreconditionError) as info:
            rt.lifecycle.transition(agent_id, State[target], reason="table")
        details = info.value.details
        assert details["from"] == source
        assert details["to"] == target
        assert details["rule"]
        assert rt.agents.get(agent_id) == before
        assert list(rt.lifecycle.history(agent_id)) == history


FORBIDDEN = [
    (s, t) for s in STATE_NAMES for t in STATE_NAMES if t not in ALLOWED[s] and s != "TERMINATED"
]


@pytest.mark.parametrize(("source", "target"), FORBIDDEN)
def test_forced_transitions_are_recorded_forced(rt: Runtime, source: str, target: str) -> None:
    agent_id = agent_in(rt, source)
    reply = rt.lifecycle.transition(agent_id, State[target], force=True, reason="override")
    assert reply.current_state == State[target]
    assert reply.event.transition_type == TransitionType.FORCED
    forced = list(rt.lifecycle.history(agent_id, transition_type=TransitionType.FORCED))
    assert forced == [reply.event]
    assert rt.lifecycle.state(agent_id) == State[target]


def test_force_on_an_allowed_move_is_still_forced(rt: Runtime) -> None:
    agent_id = agent_in(rt, "INITIALIZED")
    reply = rt.lifecycle.transition(agent_id, State.ACTIVE, force=True)
    assert reply.event.transition_type == TransitionType.FORCED


@pytest.mark.parametrize("target", STATE_NAMES)
def test_terminated_is_final_even_with_force(rt: Runtime, target: str) -> None:
    agent_id = agent_in(rt, "TERMINATED")
    history = list(rt.lifecycle.history(agent_id))
    for force in (False, True):
        with pytest.raises(FailedPreconditionError) as info:
            rt.lifecycle.transition(agent_id, State[target], force=force)
        assert info.value.details["from"] == "TERMINATED"
        assert info.value.details["to"] == target
    assert "final" in info.value.details["rule"]
    assert rt.lifecycle.state(agent_id) == State.TERMINATED
    assert list(rt.lifecycle.history(agent_id)) == history


def test_transition_type_labels(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    reply = rt.lifecycle.transition(
        agent_id, State.MAINTENANCE, transition_type=TransitionType.MAINTENANCE
    )
    assert reply.event.transition_type == TransitionType.MAINTENANCE
    reply = rt.lifecycle.transition(
        agent_id, State.ERROR, transition_type=TransitionType.ERROR_TRIGGERED
    )
    assert reply.event.transition_type == TransitionType.ERROR_TRIGGERED
    reply = rt.lifecycle.transition(
        agent_id, State.RECOVERING, transition_type=TransitionType.AUTOMATIC
    )
    assert reply.event.transition_type == TransitionType.AUTOMATIC
    # FORCED is what `force` records; it cannot be asked for.
    with pytest.raises(InvalidArgumentError):
        rt.lifecycle.transition(agent_id, State.ACTIVE, transition_type=TransitionType.FORCED)
    assert rt.lifecycle.state(agent_id) == State.RECOVERING


def test_bad_requests(rt: Runtime) -> None:
    with pytest.raises(NotFoundError):
        rt.lifecycle.transition("no-such-agent", State.ACTIVE)
    with pytest.raises(NotFoundError):
        rt.lifecycle.get_state("no-such-agent")
    with pytest.raises(NotFoundError):
        list(rt.lifecycle.history("no-such-agent"))
    agent_id = agent_in(rt, "INITIALIZED")
    with pytest.raises(InvalidArgumentError):
        rt.lifecycle.transition(agent_id, State.UNSPECIFIED)
    with pytest.raises(InvalidArgumentError):
        rt.lifecycle.transition(agent_id, 42)
    with pytest.raises(InvalidArgumentError):
        rt.lifecycle.transition("", State.ACTIVE)
    with pytest.raises(ValueError, match="not negative"):
        rt.lifecycle.transition(agent_id, State.ACTIVE, timeout=-1)
    assert rt.lifecycle.state(agent_id) == State.INITIALIZED


def test_get_state_reports_error_info(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    rt.lifecycle.transition(agent_id, State.ERROR, reason="disk full", initiated_by="monitor")
    state = rt.lifecycle.get_state(agent_id)
    assert state.state == State.ERROR
    assert state.previous_state == State.ACTIVE
    assert state.HasField("error")
    assert state.error.message == "disk full"
    assert state.error.details["initiated_by"] == "monitor"
    rt.lifecycle.transition(agent_id, State.RECOVERING)
    assert not rt.lifecycle.get_state(agent_id).HasField("error")


def test_time_in_state_grows(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    time.sleep(0.05)
    state = rt.lifecycle.get_state(agent_id)
    assert state.time_in_state_ms >= 40
    last = list(rt.lifecycle.history(agent_id))[-1]
    assert state.since == last.timestamp


def test_metadata_is_recorded(rt: Runtime) -> None:
    agent_id = agent_in(rt, "INITIALIZED")
    reply = rt.lifecycle.transition(agent_id, State.ACTIVE, metadata={"ticket": "T-1"})
    assert dict(reply.event.metadata) == {"ticket": "T-1"}
    assert dict(next(rt.lifecycle.history(agent_id)).metadata) == {"ticket": "T-1"}


def test_history_paging_and_filters(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    for _ in range(12):
        rt.lifecycle.transition(agent_id, State.PAUSED)
        rt.lifecycle.transition(agent_id, State.ACTIVE)
    rt.lifecycle.transition(agent_id, State.INITIALIZED, force=True)
    everything = list(rt.lifecycle.history(agent_id))
    assert [e.sequence for e in everything] == list(range(1, 27))
    for a, b in itertools.pairwise(everything):
        assert a.new_state == b.previous_state
    # Every page size sees every event exactly once, in order.
    for size in (1, 5, 7, 26, 100):
        assert list(rt.lifecycle.history(agent_id, page_size=size)) == everything
    events, token = rt.lifecycle.history_page(agent_id, page_size=10)
    assert events == everything[:10]
    assert token
    events, token = rt.lifecycle.history_page(agent_id, page_size=10, page_token=token)
    assert events == everything[10:20]
    assert token
    events, token = rt.lifecycle.history_page(agent_id, page_size=10, page_token=token)
    assert events == everything[20:]
    assert token == ""
    forced = list(rt.lifecycle.history(agent_id, transition_type=TransitionType.FORCED))
    assert forced == everything[-1:]
    normal = list(rt.lifecycle.history(agent_id, transition_type=TransitionType.NORMAL))
    assert normal == everything[:-1]
    # Time range, inclusive bounds.
    middle = everything[10].timestamp
    later = list(rt.lifecycle.history(agent_id, start=middle))
    assert later == everything[10:]
    earlier = list(rt.lifecycle.history(agent_id, end=middle))
    assert earlier == everything[:11]
    both = list(rt.lifecycle.history(agent_id, start=middle, end=everything[12].timestamp))
    assert both == everything[10:13]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert list(rt.lifecycle.history(agent_id, start=future)) == []
    with pytest.raises(InvalidArgumentError):
        rt.lifecycle.history_page(agent_id, page_token="not a token")


def test_two_threads_transitioning_one_agent(rt: Runtime) -> None:
    """Transitions of one agent never interleave: with two threads toggling
    ACTIVE <-> PAUSED blindly, every success is in the history, which stays
    gapless and chained (each event starts where the previous ended)."""
    agent_id = agent_in(rt, "ACTIVE")
    rounds = 200
    successes = [0, 0]
    refusals = [0, 0]
    barrier = threading.Barrier(2)

    def worker(index: int) -> None:
        barrier.wait()
        for i in range(rounds):
            target = State.PAUSED if (i + index) % 2 == 0 else State.ACTIVE
            try:
                reply = rt.lifecycle.transition(agent_id, target, initiated_by=f"t{index}")
            except FailedPreconditionError as exc:
                assert exc.details["to"] == target.name
                assert exc.details["from"] == target.name  # only a move to itself is refused
                refusals[index] += 1
            else:
                assert reply.current_state == target
                assert reply.previous_state != target
                successes[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(successes) + sum(refusals) == 2 * rounds
    history = list(rt.lifecycle.history(agent_id, page_size=1000))
    assert len(history) == 1 + sum(successes)
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    for a, b in itertools.pairwise(history):
        assert a.new_state == b.previous_state
        assert a.new_state != b.new_state
        assert (a.timestamp.seconds, a.timestamp.nanos) <= (b.timestamp.seconds, b.timestamp.nanos)
    by_thread = {name: sum(1 for e in history if e.initiated_by == name) for name in ("t0", "t1")}
    assert by_thread == {"t0": successes[0], "t1": successes[1]}
    assert rt.lifecycle.state(agent_id) == history[-1].new_state
    assert rt.agents.get(agent_id).revision == 1 + len(history)
