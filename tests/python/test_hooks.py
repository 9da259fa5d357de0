"""Lifecycle hooks written in Python: veto, timeout, failures, filters."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from helpers import agent_in

from hms_cffi import (
    DeadlineExceededError,
    FailedPreconditionError,
    HandlerError,
    HmsError,
    Hook,
    NotFoundError,
    PermissionDeniedError,
    Runtime,
    State,
    TaskStatus,
)
from hms_cffi.domain import HookInvocation
from hms_cffi.proto.hms.events.v1 import events_pb2


def test_blocking_hook_sees_the_coming_transition(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    seen: list[tuple[HookInvocation, int]] = []

    @rt.lifecycle.hook(to_states=[State.PAUSED], name="watcher")
    def watcher(invocation: HookInvocation) -> None:
        # Not in the history yet: the change happens after the hook.
        seen.append((invocation, len(list(rt.lifecycle.history(invocation.event.agent_id)))))

    assert isinstance(watcher, Hook)
    reply = rt.lifecycle.transition(agent_id, State.PAUSED, reason="nap", initiated_by="me")
    ((invocation, history_len),) = seen
    assert history_len == 1
    assert invocation.blocking
    assert invocation.hook_id == watcher.id
    assert invocation.hook_name == "watcher"
    event = invocation.event
    assert (event.agent_id, event.previous_state, event.new_state) == (
        agent_id,
        State.ACTIVE,
        State.PAUSED,
    )
    assert (event.reason, event.initiated_by, event.sequence) == ("nap", "me", 2)
    assert event.event_id == reply.event.event_id
    watcher.close()


def test_veto_keeps_the_code_and_changes_nothing(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    before = rt.agents.get(agent_id)

    @rt.lifecycle.hook(to_states=[State.PAUSED], name="no-pause")
    def no_pause(invocation: HookInvocation) -> None:
        raise FailedPreconditionError("not now")

    with pytest.raises(FailedPreconditionError) as info:
        rt.lifecycle.transition(agent_id, State.PAUSED)
    assert "not now" in info.value.message
    assert "no-pause" in info.value.message
    assert info.value.details["hook_name"] == "no-pause"
    assert info.value.details["hook_id"] == no_pause.id
    assert info.value.origin == no_pause.method
    assert rt.agents.get(agent_id) == before
    assert len(list(rt.lifecycle.history(agent_id))) == 1
    # Transitions the hook does not match still go through.
    rt.lifecycle.transition(agent_id, State.MAINTENANCE)
    no_pause.close()
    rt.lifecycle.transition(agent_id, State.ACTIVE)
    rt.lifecycle.transition(agent_id, State.PAUSED)


@pytest.mark.parametrize(
    "error", [PermissionDeniedError("policy"), NotFoundError("gone"), HmsError("plain")]
)
def test_veto_with_any_hms_error(rt: Runtime, error: HmsError) -> None:
    agent_id = agent_in(rt, "INITIALIZED")

    def refuse(invocation: HookInvocation) -> None:
        raise error

    with rt.lifecycle.register_hook(refuse):
        with pytest.raises(HmsError) as info:
            rt.lifecycle.transition(agent_id, State.ACTIVE)
    assert type(info.value) is type(error) or type(error) is HmsError
    assert info.value.code == error.code
    assert error.message in info.value.message
    assert rt.lifecycle.state(agent_id) == State.INITIALIZED


def test_generic_exception_is_a_handler_error(rt: Runtime) -> None:
    agent_id = agent_in(rt, "INITIALIZED")

    @rt.lifecycle.hook()
    def broken(invocation: HookInvocation) -> None:
        raise ValueError("bad input")

    with pytest.raises(HandlerError) as info:
        rt.lifecycle.transition(agent_id, State.ACTIVE)
    assert "ValueError: bad input" in info.value.message
    assert rt.lifecycle.state(agent_id) == State.INITIALIZED
    broken.close()


def test_slow_blocking_hook_vetoes_with_deadline_exceeded(rt: Runtime) -> None:
    agent_id = agent_in(rt, "INITIALIZED")
    release = threading.Event()

    @rt.lifecycle.hook(timeout=0.2)
    def slow(invocation: HookInvocation) -> None:
        release.wait(5)

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        rt.lifecycle.transition(agent_id, State.ACTIVE)
    assert time.monotonic() - started < 2
    assert rt.lifecycle.state(agent_id) == State.INITIALIZED
    assert list(rt.lifecycle.history(agent_id)) == []
    # The transition's own budget replaces the hook's.
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        rt.lifecycle.transition(agent_id, State.ACTIVE, timeout=0.05)
    assert time.monotonic() - started < 1.0  # well under the hook's own 0.2 s x 5
    release.set()
    slow.close()
    rt.lifecycle.transition(agent_id, State.ACTIVE)


def test_non_blocking_hook_failure_is_an_event(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    calls: list[HookInvocation] = []

    @rt.lifecycle.hook(blocking=False, to_states=[State.PAUSED], name="after")
    def after(invocation: HookInvocation) -> None:
        calls.append(invocation)
        # Runs after the change: the event is in the history already.
        assert rt.lifecycle.state(invocation.event.agent_id) == State.PAUSED
        raise PermissionDeniedError("cannot notify")

    with rt.events.subscribe(kinds=["lifecycle.*"]) as sub:
        reply = rt.lifecycle.transition(agent_id, State.PAUSED)
        first, second = sub.next(1), sub.next(1)
        assert sub.next(0) is None
    assert rt.lifecycle.state(agent_id) == State.PAUSED  # never undone
    assert len(calls) == 1
    assert not calls[0].blocking
    assert first.kind == "lifecycle.transition"
    assert second.kind == "lifecycle.hook_failed"
    failed = second.hook_failed
    assert isinstance(failed, events_pb2.HookFailedEvent)
    assert failed.hook_id == after.id
    assert failed.hook_name == "after"
    assert failed.method == after.method
    assert failed.error.code == PermissionDeniedError.CODE
    assert "cannot notify" in failed.error.message
    assert failed.event == reply.event
    assert second.agent_id == agent_id
    after.close()


def test_non_blocking_hook_generic_failure_and_timeout(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    release = threading.Event()

    @rt.lifecycle.hook(blocking=False, to_states=[State.PAUSED])
    def boom(invocation: HookInvocation) -> None:
        raise RuntimeError("boom")

    @rt.lifecycle.hook(blocking=False, to_states=[State.ACTIVE], timeout=0.1)
    def sleepy(invocation: HookInvocation) -> None:
        release.wait(5)

    with rt.events.subscribe(kinds=["lifecycle.hook_failed"]) as sub:
        rt.lifecycle.transition(agent_id, State.PAUSED)
        rt.lifecycle.transition(agent_id, State.ACTIVE)
        failures = [sub.next(2), sub.next(2)]
    release.set()
    assert [f.hook_failed.error.code for f in failures] == [
        HandlerError.CODE,
        DeadlineExceededError.CODE,
    ]
    assert "RuntimeError: boom" in failures[0].hook_failed.error.message
    assert rt.lifecycle.state(agent_id) == State.ACTIVE
    boom.close()
    sleepy.close()


def test_hook_filters(rt: Runtime) -> None:
    a = agent_in(rt, "ACTIVE", "a")
    b = agent_in(rt, "ACTIVE", "b")
    calls: list[tuple[str, int, int]] = []

    def record(invocation: HookInvocation) -> None:
        e = invocation.event
        calls.append((e.agent_id, e.previous_state, e.new_state))

    with rt.lifecycle.register_hook(
        record, agent_ids=[a], from_states=[State.ACTIVE], to_states=[State.PAUSED, State.ERROR]
    ):
        rt.lifecycle.transition(b, State.PAUSED)  # another agent
        rt.lifecycle.transition(a, State.MAINTENANCE)  # another target
        rt.lifecycle.transition(a, State.ACTIVE)  # from MAINTENANCE
        rt.lifecycle.transition(a, State.PAUSED)  # matches
        rt.lifecycle.transition(a, State.ERROR)  # from PAUSED
    assert calls == [(a, State.ACTIVE, State.PAUSED)]


def test_hook_may_call_the_runtime(rt: Runtime) -> None:
    """The demo's rule: no PAUSED while a task is RUNNING (a nested call)."""
    agent_id = agent_in(rt, "ACTIVE")

    @rt.lifecycle.hook(to_states=[State.PAUSED])
    def busy_guard(invocation: HookInvocation) -> None:
        running = list(
            rt.tasks.list(agent_id=invocation.event.agent_id, statuses=[TaskStatus.RUNNING])
        )
        if running:
            raise FailedPreconditionError(f"{len(running)} task(s) running")

    task = rt.tasks.submit("work", agent_id=agent_id)
    rt.tasks.start(task.id)
    with pytest.raises(FailedPreconditionError, match="1 task"):
        rt.lifecycle.transition(agent_id, State.PAUSED)
    rt.tasks.complete(task.id)
    rt.lifecycle.transition(agent_id, State.PAUSED)
    busy_guard.close()


def test_close_unregisters_hook_and_service(rt: Runtime) -> None:
    agent_id = agent_in(rt, "INITIALIZED")
    calls: list[str] = []

    @rt.lifecycle.hook
    def counter(invocation: HookInvocation) -> None:
        calls.append(invocation.hook_id)

    service = counter.service.name
    assert [s.name for s in rt.list_services(service)] == [service]
    counter(HookInvocation(hook_id="direct"))  # the Hook calls the function
    counter.close()
    counter.close()  # idempotent
    assert counter.closed
    assert rt.list_services(service) == []
    with pytest.raises(NotFoundError):
        rt.lifecycle.unregister_hook(counter.id)
    rt.lifecycle.transition(agent_id, State.ACTIVE)
    assert calls == ["direct"]


def test_register_hook_method_of_any_service(rt: Runtime) -> None:
    """A hook may name a method of any registered service, e.g. one with
    CBOR handlers; it receives the HookInvocation in that format."""
    agent_id = agent_in(rt, "INITIALIZED")
    got: list[dict[str, object]] = []

    def handle(request: dict[str, object]) -> dict[str, object]:
        got.append(request)
        return {}

    with rt.register_service(
        "test.hooks.Plain",
        {"On": handle},
        input_types={"On": "hms.agent.lifecycle.v1.HookInvocation"},
        output_types={"On": "hms.agent.lifecycle.v1.UnregisterHookResponse"},
    ):
        hook_id = rt.lifecycle.register_hook_method("test.hooks.Plain/On", name="plain")
        rt.lifecycle.transition(agent_id, State.ACTIVE)
        rt.lifecycle.unregister_hook(hook_id)
    (invocation,) = got
    assert invocation["hook_name"] == "plain"
    assert invocation["blocking"] is True
    assert invocation["event"]["new_state"] == "ACTIVE"  # type: ignore[index]
    with pytest.raises(NotFoundError):
        rt.lifecycle.register_hook_method("test.hooks.Missing/On")


def test_runtime_close_with_hooks(rt: Runtime) -> None:
    @rt.lifecycle.hook
    def noop(invocation: HookInvocation) -> None:
        pass

    rt.close()
    noop.close()  # after the runtime: quietly nothing to do
    assert noop.closed


def test_hook_transitioning_its_own_agent_fails_fast(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    inner: list[BaseException | None] = []

    # A timeout far beyond the bound below: failing fast must not mean waiting it out.
    @rt.lifecycle.hook(to_states=[State.PAUSED], timeout=60.0)
    def meddler(invocation: HookInvocation) -> None:
        try:
            rt.lifecycle.transition(invocation.event.agent_id, State.ERROR)
        except HmsError as exc:
            inner.append(exc)
        else:
            inner.append(None)

    started = time.monotonic()
    with contextlib.suppress(HmsError):
        rt.lifecycle.transition(agent_id, State.PAUSED)
    elapsed = time.monotonic() - started
    time.sleep(0.2)
    meddler.close()
    assert isinstance(inner[0], FailedPreconditionError)
    assert elapsed < 30
    assert State.ERROR not in [e.new_state for e in rt.lifecycle.history(agent_id)]
