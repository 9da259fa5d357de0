"""``rt.lifecycle``: hms.agent.lifecycle.v1.LifecycleService, with hooks
written as decorated Python functions."""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, overload

from google.protobuf import empty_pb2

from hms_cffi.domain._common import Client, TimeLike, int_list, pages, str_list, timestamp
from hms_cffi.domain.enums import State, TransitionType
from hms_cffi.errors import ClosedError, NotFoundError
from hms_cffi.proto.hms.agent.lifecycle.v1 import lifecycle_pb2
from hms_cffi.schema import register_schema

if TYPE_CHECKING:
    from hms_cffi.runtime import Runtime
    from hms_cffi.services import Service

__all__ = ["Hook", "HookFunction", "Lifecycle"]

_SERVICE = "hms.agent.lifecycle.v1.LifecycleService/"
_GET_STATE = _SERVICE + "GetState"
_TRANSITION = _SERVICE + "Transition"
_HISTORY = _SERVICE + "GetHistory"
_REGISTER_HOOK = _SERVICE + "RegisterHook"
_UNREGISTER_HOOK = _SERVICE + "UnregisterHook"

#: A hook: called with the ``HookInvocation`` of a matching transition. A
#: blocking hook vetoes the transition by raising (an HmsError subclass keeps
#: its code; any other exception becomes HandlerError); its return value is
#: ignored.
HookFunction = Callable[[lifecycle_pb2.HookInvocation], object]

StateArg = Iterable[State | int] | State | int | None

#: The method every hook service exposes.
HOOK_METHOD = "Invoke"

_empty_lock = threading.Lock()
_empty_registered = False


def _register_empty() -> None:
    """Hooks answer ``google.protobuf.Empty``, which the core does not have
    built in: it learns it once per process."""
    global _empty_registered
    with _empty_lock:
        if _empty_registered:
            return
        register_schema(empty_pb2)
        _empty_registered = True


def _millis(seconds: float | None, what: str) -> int:
    if seconds is None:
        return 0
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"{what} is not negative: {seconds}")
    return max(1, math.ceil(seconds * 1000)) if seconds else 0


class Hook:
    """A Python function called on matching transitions, made by
    :meth:`Lifecycle.hook` or :meth:`Lifecycle.register_hook`.

    The function runs as the method ``<service>/Invoke`` of a Python service
    registered for it, so it runs on whatever thread the core calls it from
    (a library thread when the call has a deadline, which hook calls always
    have). Calling the Hook object calls the function. :meth:`close`
    unregisters the hook, then its service (waiting for calls in flight);
    it is idempotent, and the object is a context manager. The hook stays
    registered until then, or until its runtime closes.
    """

    __slots__ = ("_closed", "_lock", "_rt", "_service", "blocking", "function", "id", "name")

    def __init__(
        self,
        runtime: Runtime,
        function: HookFunction,
        service: Service,
        hook_id: str,
        name: str,
        blocking: bool,
    ) -> None:
        self._rt = runtime
        self.function = function
        self._service = service
        self.id = hook_id
        self.name = name
        self.blocking = blocking
        self._lock = threading.Lock()
        self._closed = False

    @property
    def method(self) -> str:
        """The full name of the method the core calls."""
        return f"{self._service.name}/{HOOK_METHOD}"

    @property
    def service(self) -> Service:
        """The Python service that runs the function."""
        return self._service

    @property
    def closed(self) -> bool:
        return self._closed

    def __call__(self, invocation: lifecycle_pb2.HookInvocation) -> object:
        return self.function(invocation)

    def close(self) -> None:
        """Unregisters the hook and its service. A second call does nothing;
        so does a call after the runtime closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            with contextlib.suppress(ClosedError, NotFoundError):
                self._rt.lifecycle.unregister_hook(self.id)
        finally:
            self._service.close()

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "blocking" if self.blocking else "non-blocking"
        state = " closed" if self._closed else ""
        return f"<Hook {self.name!r} {kind} id={self.id}{state}>"


class Lifecycle(Client):
    """Agent lifecycles: ``rt.lifecycle``.

    A transition outside the table of DOMAIN.md raises
    FailedPreconditionError with ``details`` ``rule``, ``from``, ``to`` (and
    ``allowed``) and changes nothing, unless ``force=True``, which is recorded
    as a FORCED transition. TERMINATED is final, even with force.
    """

    __slots__ = ()

    def transition(
        self,
        agent_id: str,
        target: State | int,
        *,
        reason: str = "",
        force: bool = False,
        initiated_by: str = "",
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
        transition_type: TransitionType | int | None = None,
    ) -> lifecycle_pb2.TransitionResponse:
        """Moves ``agent_id`` to ``target`` and returns the previous and
        current state with the recorded ``LifecycleEvent``.

        Blocking hooks run first and may veto (their error is raised; a hook
        that does not answer within its time budget vetoes with
        DeadlineExceededError). ``timeout`` (seconds) replaces every blocking
        hook's own budget. ``transition_type`` labels the transition
        AUTOMATIC, ERROR_TRIGGERED or MAINTENANCE (default NORMAL, or FORCED
        when forced).
        """
        request = lifecycle_pb2.TransitionRequest(
            agent_id=agent_id, target_state=lifecycle_pb2.LifecycleState.ValueType(int(target))
        )
        if force:
            request.force = True
        if reason:
            request.reason = reason
        if initiated_by:
            request.initiated_by = initiated_by
        if timeout is not None:
            request.timeout_ms = _millis(timeout, "timeout")
        if metadata:
            request.metadata.update(metadata)
        if transition_type:
            request.transition_type = lifecycle_pb2.TransitionType.ValueType(int(transition_type))
        return self._call(_TRANSITION, request, lifecycle_pb2.TransitionResponse)

    def get_state(self, agent_id: str) -> lifecycle_pb2.GetStateResponse:
        """The agent's state, previous state, since when, time in state,
        and (in ERROR) why."""
        return self._call(
            _GET_STATE,
            lifecycle_pb2.GetStateRequest(agent_id=agent_id),
            lifecycle_pb2.GetStateResponse,
        )

    def state(self, agent_id: str) -> State:
        """Just the agent's current state."""
        return State(self.get_state(agent_id).state)

    def history_page(
        self,
        agent_id: str,
        *,
        transition_type: TransitionType | int | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[lifecycle_pb2.LifecycleEvent], str]:
        """One page of the agent's transitions, oldest first, and the next
        page's token (empty on the last). ``start`` and ``end`` bound the
        event time, inclusive."""
        request = lifecycle_pb2.GetHistoryRequest(
            agent_id=agent_id,
            transition_type=lifecycle_pb2.TransitionType.ValueType(int(transition_type or 0)),
            page_size=page_size,
            page_token=page_token,
        )
        if start is not None:
            request.start_time.CopyFrom(timestamp(start))
        if end is not None:
            request.end_time.CopyFrom(timestamp(end))
        reply = self._call(_HISTORY, request, lifecycle_pb2.GetHistoryResponse)
        return list(reply.events), reply.next_page_token

    def history(
        self,
        agent_id: str,
        *,
        transition_type: TransitionType | int | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        page_size: int = 0,
    ) -> Iterator[lifecycle_pb2.LifecycleEvent]:
        """Every matching transition of the agent, oldest first, page after
        page (lazily)."""
        return pages(
            lambda token: self.history_page(
                agent_id,
                transition_type=transition_type,
                start=start,
                end=end,
                page_size=page_size,
                page_token=token,
            )
        )

    # -- hooks -----------------------------------------------------------------

    @overload
    def hook(
        self,
        function: HookFunction,
        *,
        to_states: StateArg = None,
        from_states: StateArg = None,
        agent_ids: Iterable[str] | str | None = None,
        blocking: bool = True,
        timeout: float = 5.0,
        name: str | None = None,
    ) -> Hook: ...

    @overload
    def hook(
        self,
        function: None = None,
        *,
        to_states: StateArg = None,
        from_states: StateArg = None,
        agent_ids: Iterable[str] | str | None = None,
        blocking: bool = True,
        timeout: float = 5.0,
        name: str | None = None,
    ) -> Callable[[HookFunction], Hook]: ...

    def hook(
        self,
        function: HookFunction | None = None,
        *,
        to_states: StateArg = None,
        from_states: StateArg = None,
        agent_ids: Iterable[str] | str | None = None,
        blocking: bool = True,
        timeout: float = 5.0,
        name: str | None = None,
    ) -> Hook | Callable[[HookFunction], Hook]:
        """Decorator registering a Python function as a lifecycle hook::

            @rt.lifecycle.hook(to_states=[State.PAUSED])
            def no_pause_while_busy(invocation: HookInvocation) -> None:
                if busy(invocation.event.agent_id):
                    raise FailedPreconditionError("a task is running")

        The decorated name becomes a :class:`Hook` (call it to call the
        function; ``close()`` to unregister). Empty filters match everything.
        See :meth:`register_hook`.
        """

        def register(fn: HookFunction) -> Hook:
            return self.register_hook(
                fn,
                to_states=to_states,
                from_states=from_states,
                agent_ids=agent_ids,
                blocking=blocking,
                timeout=timeout,
                name=name,
            )

        return register if function is None else register(function)

    def register_hook(
        self,
        function: HookFunction,
        *,
        to_states: StateArg = None,
        from_states: StateArg = None,
        agent_ids: Iterable[str] | str | None = None,
        blocking: bool = True,
        timeout: float = 5.0,
        name: str | None = None,
    ) -> Hook:
        """Registers ``function`` as a hook on transitions of ``agent_ids``
        from any of ``from_states`` to any of ``to_states`` (empty: all).

        A blocking hook runs before the change and vetoes it by raising; one
        that takes longer than ``timeout`` seconds vetoes with
        DeadlineExceededError. A non-blocking hook runs after the change; its
        failures are published as "lifecycle.hook_failed" events. ``name``
        (default: the function's qualified name) shows in errors and events.
        """
        _register_empty()
        rt = self._rt
        hook_name = name or getattr(function, "__qualname__", None) or repr(function)

        def invoke(invocation: lifecycle_pb2.HookInvocation) -> None:
            function(invocation)

        service = rt.register_service(
            f"hms_cffi.hooks.H{uuid.uuid4().hex}",
            {HOOK_METHOD: invoke},
            input_types={HOOK_METHOD: lifecycle_pb2.HookInvocation},
            output_types={HOOK_METHOD: empty_pb2.Empty},
            description=f"lifecycle hook {hook_name}",
        )
        try:
            hook_id = self.register_hook_method(
                f"{service.name}/{HOOK_METHOD}",
                to_states=to_states,
                from_states=from_states,
                agent_ids=agent_ids,
                blocking=blocking,
                timeout=timeout,
                name=hook_name,
            )
        except BaseException:
            service.close()
            raise
        return Hook(rt, function, service, hook_id, hook_name, blocking)

    def register_hook_method(
        self,
        method: str,
        *,
        to_states: StateArg = None,
        from_states: StateArg = None,
        agent_ids: Iterable[str] | str | None = None,
        blocking: bool = True,
        timeout: float = 5.0,
        name: str = "",
    ) -> str:
        """RegisterHook for a method of any registered service (Python or
        another language); it receives an ``hms.agent.lifecycle.v1.HookInvocation``.
        Returns the hook id, for :meth:`unregister_hook`."""
        request = lifecycle_pb2.RegisterHookRequest(
            method=method,
            agent_ids=str_list(agent_ids),
            blocking=blocking,
            timeout_ms=_millis(timeout, "timeout"),
            name=name,
        )
        request.from_states.extend(int_list(from_states))  # type: ignore[arg-type]
        request.to_states.extend(int_list(to_states))  # type: ignore[arg-type]
        reply = self._call(_REGISTER_HOOK, request, lifecycle_pb2.RegisterHookResponse)
        return reply.hook_id

    def unregister_hook(self, hook_id: str) -> None:
        """UnregisterHook (NotFoundError for an unknown id). For a
        :class:`Hook`, prefer ``hook.close()``, which removes its service too."""
        self._call(
            _UNREGISTER_HOOK,
            lifecycle_pb2.UnregisterHookRequest(hook_id=hook_id),
            lifecycle_pb2.UnregisterHookResponse,
        )
