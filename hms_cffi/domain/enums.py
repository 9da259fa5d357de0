"""The domain's enums as Python IntEnums with short names.

Their numbers are the protobuf enum values (``lifecycle_pb2.LifecycleState``,
``lifecycle_pb2.TransitionType``, ``agent_pb2.TaskStatus``), so a member can be
stored in a message field or compared with one directly; a test checks that
both sides name the same values.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from hms_cffi.proto.hms.agent.lifecycle.v1 import lifecycle_pb2 as _lc
from hms_cffi.proto.hms.agent.v1 import agent_pb2 as _agent

__all__ = ["State", "TaskStatus", "TransitionType"]

E = TypeVar("E", bound=enum.IntEnum)


class State(enum.IntEnum):
    """The lifecycle state of an agent (``hms.agent.lifecycle.v1.LifecycleState``).

    A new agent starts INITIALIZED; TERMINATED is final.
    """

    UNSPECIFIED = _lc.STATE_UNSPECIFIED
    INITIALIZED = _lc.INITIALIZED
    ACTIVE = _lc.ACTIVE
    PAUSED = _lc.PAUSED
    SUSPENDED = _lc.SUSPENDED
    SHUTTING_DOWN = _lc.SHUTTING_DOWN
    TERMINATED = _lc.TERMINATED
    MAINTENANCE = _lc.MAINTENANCE
    ERROR = _lc.ERROR
    UPGRADING = _lc.UPGRADING
    RECOVERING = _lc.RECOVERING

    @property
    def proto_name(self) -> str:
        """The name in the .proto (and in JSON/CBOR), e.g. "STATE_UNSPECIFIED"."""
        return str(_lc.LifecycleState.Name(_lc.LifecycleState.ValueType(self.value)))

    @classmethod
    def parse(cls, value: State | int | str) -> State:
        """A member from itself, its number, its name or its proto name
        (case-insensitive): ``State.parse("active")``."""
        return _parse(cls, value, "STATE_")


class TransitionType(enum.IntEnum):
    """How a transition came about (``hms.agent.lifecycle.v1.TransitionType``,
    whose values carry a ``TRANSITION_TYPE_`` prefix in the .proto)."""

    UNSPECIFIED = _lc.TRANSITION_TYPE_UNSPECIFIED
    NORMAL = _lc.TRANSITION_TYPE_NORMAL
    #: Outside the transition table, allowed by ``force``.
    FORCED = _lc.TRANSITION_TYPE_FORCED
    AUTOMATIC = _lc.TRANSITION_TYPE_AUTOMATIC
    ERROR_TRIGGERED = _lc.TRANSITION_TYPE_ERROR_TRIGGERED
    MAINTENANCE = _lc.TRANSITION_TYPE_MAINTENANCE

    @property
    def proto_name(self) -> str:
        """The name in the .proto, e.g. "TRANSITION_TYPE_FORCED"."""
        return str(_lc.TransitionType.Name(_lc.TransitionType.ValueType(self.value)))

    @classmethod
    def parse(cls, value: TransitionType | int | str) -> TransitionType:
        """A member from itself, its number, its name or its proto name."""
        return _parse(cls, value, "TRANSITION_TYPE_")


class TaskStatus(enum.IntEnum):
    """The status of a task (``hms.agent.v1.TaskStatus``). It moves only
    forward: PENDING -> ASSIGNED -> RUNNING -> SUCCEEDED or FAILED; CANCELLED
    from any status that is not final. A claimed task that fails with
    ``retry`` goes back to PENDING, or to DEAD_LETTER once its attempts run
    out."""

    UNSPECIFIED = _agent.TASK_STATUS_UNSPECIFIED
    PENDING = _agent.PENDING
    ASSIGNED = _agent.ASSIGNED
    RUNNING = _agent.RUNNING
    SUCCEEDED = _agent.SUCCEEDED
    FAILED = _agent.FAILED
    CANCELLED = _agent.CANCELLED
    DEAD_LETTER = _agent.DEAD_LETTER

    @property
    def is_final(self) -> bool:
        """SUCCEEDED, FAILED, CANCELLED and DEAD_LETTER are final."""
        return self in (
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.DEAD_LETTER,
        )

    @property
    def proto_name(self) -> str:
        """The name in the .proto, e.g. "TASK_STATUS_UNSPECIFIED"."""
        return str(_agent.TaskStatus.Name(_agent.TaskStatus.ValueType(self.value)))

    @classmethod
    def parse(cls, value: TaskStatus | int | str) -> TaskStatus:
        """A member from itself, its number, its name or its proto name."""
        return _parse(cls, value, "TASK_STATUS_")


def _parse(cls: type[E], value: E | int | str, prefix: str) -> E:
    if isinstance(value, str):
        name = value.strip().upper()
        if name.startswith(prefix):
            name = name[len(prefix) :]
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"{value!r} is not a {cls.__name__}") from None
    return cls(value)
