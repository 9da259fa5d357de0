"""A short tour of the HMS domain from Python: ``python -m hms_cffi.demo``.

Two agents are created and activated; a blocking lifecycle hook written in
Python refuses to pause an agent while one of its tasks is RUNNING; tasks
move through their statuses; a knowledge entry is stored; a polling
subscriber prints every event as it arrives; a summary closes the run.

The output is the same on every run apart from ids and times (which it does
not print): events are drained after each step, and the core publishes an
event before the call that caused it returns.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

import hms_cffi
from hms_cffi import FailedPreconditionError, Hook, Runtime, State, StatusCode, TaskStatus
from hms_cffi.domain import Agent, HookInvocation, Task, payload
from hms_cffi.events import Subscription
from hms_cffi.proto.hms.events.v1 import events_pb2

__all__ = ["main", "run"]


class _Tour:
    def __init__(self, rt: Runtime, out: TextIO, sub: Subscription | None) -> None:
        self.rt = rt
        self.out = out
        self.sub = sub
        self.names: dict[str, str] = {}  # ids -> readable names
        self.kinds: Counter[str] = Counter()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        self.say(f"\n> {text}")

    def drain(self) -> None:
        """Prints the events that arrived since the last step."""
        if self.sub is None:
            return
        while (event := self.sub.next(0)) is not None:
            self.kinds[event.kind] += 1
            self.say(f"    event #{event.sequence:<3} {event.kind:<22} {self.describe(event)}")

    def describe(self, event: events_pb2.Event) -> str:
        body = payload(event)
        if isinstance(body, events_pb2.LaggedEvent):
            return f"{body.dropped} events dropped"
        name = self.names.get(event.agent_id, "")
        which = event.WhichOneof("payload")
        if which == "lifecycle":
            lc = event.lifecycle
            return f"{name}: {State(lc.previous_state).name} -> {State(lc.new_state).name}"
        if which == "task":
            return f"{self.names.get(event.task.id, '?')} ({TaskStatus(event.task.status).name})"
        if which == "agent":
            return f"{event.agent.name} ({State(event.agent.state).name})"
        if which == "knowledge":
            return f"{event.knowledge.namespace}/{event.knowledge.key}"
        if which == "hook_failed":
            return f"hook {event.hook_failed.hook_name}: {event.hook_failed.error.message}"
        return event.subject


def run(rt: Runtime, out: TextIO = sys.stdout, *, watch: bool = True) -> int:
    """Runs the tour on ``rt``, writing to ``out``; with ``watch``, a
    subscriber prints the domain's events after each step. Returns the
    number of vetoed transitions (1)."""
    sub = (
        rt.events.subscribe(["agent.*", "task.*", "lifecycle.*", "knowledge.*"]) if watch else None
    )
    tour = _Tour(rt, out, sub)
    try:
        return _tour(tour)
    finally:
        if sub is not None:
            sub.close()


def _tour(t: _Tour) -> int:
    major, minor = hms_cffi.abi_version()
    t.say(f"HMS demo: library {hms_cffi.library_version()}, ABI {major}.{minor}")
    scout, writer = _agents(t)
    busy_guard = _install_guard(t)
    try:
        search, summary = _submit(t, scout, writer)
        vetoed = _work(t, scout, search)
        _writer(t, writer, summary)
    finally:
        busy_guard.close()
    _summary(t, vetoed)
    return vetoed


def _state(value: int) -> str:
    return State(value).name


def _status(value: int) -> str:
    return TaskStatus(value).name


def _agents(t: _Tour) -> tuple[Agent, Agent]:
    rt = t.rt
    t.step("create two agents")
    scout = rt.agents.create(
        name="scout", kind="researcher", capabilities=["search"], labels={"team": "blue"}
    )
    writer = rt.agents.create(
        name="writer", kind="author", capabilities=["summarize"], labels={"team": "blue"}
    )
    t.names.update({scout.id: "scout", writer.id: "writer"})
    t.say(f"  scout and writer are {_state(scout.state)}")
    t.drain()

    t.step("activate both")
    for agent in (scout, writer):
        moved = rt.lifecycle.transition(agent.id, State.ACTIVE, reason="ready", initiated_by="demo")
        before, after = _state(moved.previous_state), _state(moved.current_state)
        t.say(f"  {t.names[agent.id]}: {before} -> {after}")
    t.drain()
    return scout, writer


def _install_guard(t: _Tour) -> Hook:
    rt = t.rt
    t.step("install a blocking hook: no PAUSED while a task is RUNNING")

    @rt.lifecycle.hook(to_states=[State.PAUSED], blocking=True, name="busy-guard")
    def busy_guard(invocation: HookInvocation) -> None:
        agent_id = invocation.event.agent_id
        running = list(rt.tasks.list(agent_id=agent_id, statuses=[TaskStatus.RUNNING]))
        if running:
            titles = ", ".join(task.title for task in running)
            raise FailedPreconditionError(f"{t.names[agent_id]} is running: {titles}")

    t.say(f"  hook {busy_guard.name!r} registered")
    return busy_guard


def _submit(t: _Tour, scout: Agent, writer: Agent) -> tuple[Task, Task]:
    rt = t.rt
    t.step("submit tasks")
    search = rt.tasks.submit("find sources", agent_id=scout.id, priority=2, input=b"hms ffi")
    summary = rt.tasks.submit("summarize findings", priority=1)
    t.names.update({search.id: "find sources", summary.id: "summarize findings"})
    t.say(f"  'find sources' is {_status(search.status)} (to scout at once)")
    t.say(f"  'summarize findings' is {_status(summary.status)}")
    summary = rt.tasks.assign(summary.id, writer.id)
    t.say(f"  'summarize findings' is {_status(summary.status)} to writer")
    t.drain()
    return search, summary


def _work(t: _Tour, scout: Agent, search: Task) -> int:
    rt = t.rt
    t.step("scout starts its task")
    search = rt.tasks.start(search.id)
    t.say(f"  'find sources' is {_status(search.status)}")
    t.drain()

    t.step("try to pause scout while it works")
    vetoed = 0
    try:
        rt.lifecycle.transition(scout.id, State.PAUSED, reason="coffee break")
    except FailedPreconditionError as exc:
        vetoed += 1
        t.say(f"  refused ({StatusCode(exc.code).name}): {exc.message.split(': ', 1)[-1]}")
    t.say(f"  scout is still {rt.lifecycle.state(scout.id).name}")
    t.drain()

    t.step("scout finishes; the pause goes through")
    search = rt.tasks.complete(search.id, b"3 sources", content_type="text/plain")
    t.say(f"  'find sources' is {_status(search.status)}: {search.result.decode()}")
    rt.lifecycle.transition(scout.id, State.PAUSED, reason="coffee break")
    t.say(f"  scout is {rt.lifecycle.state(scout.id).name}")
    t.drain()
    return vetoed


def _writer(t: _Tour, writer: Agent, summary: Task) -> None:
    rt = t.rt
    t.step("writer records what it learned, then fails its task")
    rt.knowledge.put(
        "research",
        "hms/sources",
        text="3 sources",
        tags=["hms"],
        confidence=0.9,
        agent_id=writer.id,
    )
    rt.tasks.start(summary.id)
    summary = rt.tasks.fail(summary.id, "ran out of words")
    t.say(f"  'summarize findings' is {_status(summary.status)}: {summary.error.message}")
    t.drain()


def _summary(t: _Tour, vetoed: int) -> None:
    rt = t.rt
    t.step("summary")
    for agent in rt.agents.list(labels={"team": "blue"}):
        history = list(rt.lifecycle.history(agent.id))
        path = " -> ".join(
            [_state(history[0].previous_state)] + [_state(e.new_state) for e in history]
        )
        t.say(f"  agent {agent.name:<7} {_state(agent.state):<8} history: {path}")
    for task in rt.tasks.list():
        t.say(f"  task  {task.title!r:<21} {_status(task.status)}")
    entries = list(rt.knowledge.query(namespace="research"))
    t.say(f"  knowledge entries: {len(entries)}; vetoed transitions: {vetoed}")
    if t.sub is not None:
        counts = ", ".join(f"{kind} x{n}" for kind, n in sorted(t.kinds.items()))
        t.say(f"  events seen: {sum(t.kinds.values())} ({counts})")


def main() -> int:
    """``python -m hms_cffi.demo``: the tour on a fresh in-memory runtime."""
    with Runtime() as rt:
        run(rt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
