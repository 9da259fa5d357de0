"""``rt.events``: subscriptions to domain events as typed messages."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from hms_cffi.domain._common import Client, TimeLike
from hms_cffi.domain.enums import State, TransitionType
from hms_cffi.events import EventCallback
from hms_cffi.formats import Format
from hms_cffi.proto.hms.events.v1 import events_pb2

if TYPE_CHECKING:
    from hms_cffi.events import Subscription

__all__ = ["EventKind", "Events", "payload"]


class EventKind(enum.StrEnum):
    """The kinds of event a runtime publishes (``Event.kind``)."""

    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_DELETED = "agent.deleted"
    TASK_SUBMITTED = "task.submitted"
    TASK_ASSIGNED = "task.assigned"
    TASK_RUNNING = "task.running"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"
    KNOWLEDGE_PUT = "knowledge.put"
    KNOWLEDGE_DELETED = "knowledge.deleted"
    LIFECYCLE_TRANSITION = "lifecycle.transition"
    LIFECYCLE_HOOK_FAILED = "lifecycle.hook_failed"
    SERVICE_REGISTERED = "registry.service_registered"
    SERVICE_UNREGISTERED = "registry.service_unregistered"
    #: The subscriber fell behind: ``event.lagged.dropped`` older events were lost.
    LAGGED = "lagged"


def payload(event: events_pb2.Event) -> Message | None:
    """The message an event carries (an Agent, Task, KnowledgeEntry,
    LifecycleEvent, HookFailedEvent, ServiceEvent or LaggedEvent), or None."""
    which = event.WhichOneof("payload")
    if which is None:
        return None
    message: Message = getattr(event, which)
    return message


class Events(Client):
    """The runtime's event bus: ``rt.events``."""

    __slots__ = ()

    def subscribe(
        self,
        kinds: Iterable[str] | str | None = None,
        *,
        subjects: Iterable[str] | str | None = None,
        agent_ids: Iterable[str] | str | None = None,
        states: Iterable[State | int] | State | int | None = None,
        transition_types: Iterable[TransitionType | int] | TransitionType | int | None = None,
        include_remote: bool = False,
        origins: Iterable[str] | str | None = None,
        replay_from_sequence: int | None = None,
        replay_from_time: TimeLike | None = None,
        callback: EventCallback | None = None,
        format: Format | int = Format.PROTOBUF,
    ) -> Subscription:
        """Subscribes to events matching every given filter
        (``hms.events.v1.EventFilter``; empty matches all): ``kinds`` (a
        trailing "*" matches a prefix, e.g. "task.*"), ``subjects``,
        ``agent_ids``, ``states`` (lifecycle and agent events whose new state
        is one of them) and ``transition_types``.

        Events are ``events_pb2.Event`` messages (use :func:`payload` or
        ``event.WhichOneof("payload")``); pass ``format=Format.CBOR`` or
        ``Format.JSON`` for dicts. Without ``callback`` poll the
        subscription (``next(timeout)``, ``iter(timeout)``); with one, the
        library calls ``callback(event)`` on a library thread, in order.
        A subscriber that falls behind gets one "lagged" event saying how
        many of its oldest events were dropped. ``include_remote``,
        ``origins`` and the ``replay_from_*`` points take other runtimes'
        events through NATS (see :meth:`hms_cffi.Runtime.subscribe`).
        """
        return self._rt.subscribe(
            kinds,
            subjects,
            agent_ids=agent_ids,
            states=states,
            transition_types=transition_types,
            include_remote=include_remote,
            origins=origins,
            replay_from_sequence=replay_from_sequence,
            replay_from_time=replay_from_time,
            callback=callback,
            format=format,
        )
