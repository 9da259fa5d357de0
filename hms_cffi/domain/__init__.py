"""The HMS domain from Python: agents, tasks, knowledge and lifecycle.

Reached through a runtime's typed clients, which speak the generated
protobuf classes (``hms_cffi.proto``)::

    from hms_cffi import Runtime, State

    with Runtime() as rt:
        agent = rt.agents.create(name="scout", capabilities=["search"])
        rt.lifecycle.transition(agent.id, State.ACTIVE, reason="ready")
        task = rt.tasks.submit("find things", agent_id=agent.id)
"""

from __future__ import annotations

from hms_cffi.domain.agents import Agents
from hms_cffi.domain.enums import State, TaskStatus, TransitionType
from hms_cffi.domain.events import EventKind, Events, payload
from hms_cffi.domain.knowledge import Knowledge
from hms_cffi.domain.lifecycle import Hook, HookFunction, Lifecycle
from hms_cffi.domain.tasks import Tasks
from hms_cffi.proto.hms.agent.lifecycle.v1.lifecycle_pb2 import (
    GetStateResponse,
    HookInvocation,
    LifecycleEvent,
    TransitionResponse,
)
from hms_cffi.proto.hms.agent.v1.agent_pb2 import Agent, KnowledgeEntry, Task
from hms_cffi.proto.hms.events.v1.events_pb2 import Event

__all__ = [
    "Agent",
    "Agents",
    "Event",
    "EventKind",
    "Events",
    "GetStateResponse",
    "Hook",
    "HookFunction",
    "HookInvocation",
    "Knowledge",
    "KnowledgeEntry",
    "Lifecycle",
    "LifecycleEvent",
    "State",
    "Task",
    "TaskStatus",
    "Tasks",
    "TransitionResponse",
    "TransitionType",
    "payload",
]
