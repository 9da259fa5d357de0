"""CreateAgent and Transition from Python, through each layer of the binding.

Run (not part of the test suite), together with the Echo benchmarks so the
report has its floor:
    python -m pytest benchmarks/python --benchmark-json=bench.json
    python benchmarks/python/report.py bench.json
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hms_cffi import Format, Runtime, State
from hms_cffi.domain import HookInvocation
from hms_cffi.proto.hms.agent.lifecycle.v1 import lifecycle_pb2
from hms_cffi.proto.hms.agent.v1 import agent_pb2

CREATE = "hms.agent.v1.AgentService/CreateAgent"
TRANSITION = "hms.agent.lifecycle.v1.LifecycleService/Transition"
STORES = ["memory", "sqlite"]


@pytest.fixture(params=STORES)
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    config = {"data_dir": str(tmp_path / "db")} if request.param == "sqlite" else None
    with Runtime(config) as runtime:
        yield runtime


def _toggler(rt: Runtime) -> tuple[str, Callable[[], State]]:
    """An ACTIVE agent and a function giving the next target: PAUSED,
    ACTIVE, PAUSED, ... (both moves allowed)."""
    agent = rt.agents.create(name="bench")
    rt.lifecycle.transition(agent.id, State.ACTIVE)
    targets = itertools.cycle([State.PAUSED, State.ACTIVE])
    return agent.id, targets.__next__


def test_create_agent_typed(benchmark: Any, rt: Runtime) -> None:
    """rt.agents.create(...): keyword arguments in, an Agent message out."""
    agent = benchmark(rt.agents.create, name="bench", capabilities=["x"], labels={"k": "v"})
    assert agent.state == State.INITIALIZED


def test_create_agent_raw(benchmark: Any, rt: Runtime) -> None:
    """A serialized CreateAgentRequest through rt.call_raw: the binding's floor."""
    request = agent_pb2.CreateAgentRequest(
        agent=agent_pb2.Agent(name="bench", capabilities=["x"], labels={"k": "v"})
    ).SerializeToString()
    out = benchmark(rt.call_raw, CREATE, request, int(Format.PROTOBUF))
    assert agent_pb2.Agent.FromString(out).name == "bench"


def test_create_agent_dict(benchmark: Any, rt: Runtime) -> None:
    """rt.call(CREATE, {...}): a dict in, a dict out, CBOR on the wire."""
    request = {"agent": {"name": "bench", "capabilities": ["x"], "labels": {"k": "v"}}}
    out = benchmark(rt.call, CREATE, request)
    assert out["state"] == "INITIALIZED"


def test_transition_typed(benchmark: Any, rt: Runtime) -> None:
    """rt.lifecycle.transition(agent, target): ACTIVE <-> PAUSED."""
    agent_id, target = _toggler(rt)
    transition = rt.lifecycle.transition
    reply = benchmark(lambda: transition(agent_id, target()))
    assert reply.event.sequence > 1


def test_transition_raw(benchmark: Any, rt: Runtime) -> None:
    """Pre-serialized TransitionRequests through rt.call_raw."""
    agent_id, _ = _toggler(rt)
    requests = itertools.cycle(
        [
            lifecycle_pb2.TransitionRequest(
                agent_id=agent_id, target_state=lifecycle_pb2.PAUSED
            ).SerializeToString(),
            lifecycle_pb2.TransitionRequest(
                agent_id=agent_id, target_state=lifecycle_pb2.ACTIVE
            ).SerializeToString(),
        ]
    )
    call_raw, fmt = rt.call_raw, int(Format.PROTOBUF)
    out = benchmark(lambda: call_raw(TRANSITION, next(requests), fmt))
    assert lifecycle_pb2.TransitionResponse.FromString(out).event.sequence > 1


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "non_blocking"])
def test_transition_with_python_hook(benchmark: Any, rt: Runtime, blocking: bool) -> None:
    """rt.lifecycle.transition with one Python hook (a no-op) on every move:
    the hook is a call from the core back into Python, on a library thread."""
    agent_id, target = _toggler(rt)
    calls = 0

    @rt.lifecycle.hook(blocking=blocking)
    def count(invocation: HookInvocation) -> None:
        nonlocal calls
        calls += 1

    transition = rt.lifecycle.transition
    reply = benchmark(lambda: transition(agent_id, target()))
    count.close()
    assert reply.event.sequence > 1
    assert calls > 0
