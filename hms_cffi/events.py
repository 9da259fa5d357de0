"""Event subscriptions: polled (:meth:`Subscription.next`) or pushed to a callback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import cbor2

from hms_cffi._ffi import buffers, error_from, ffi, lib, next_wait_ms
from hms_cffi._handle import Handle
from hms_cffi.errors import ClosedError, StatusCode
from hms_cffi.formats import Format

__all__ = ["Event", "EventCallback", "Subscription"]

log = logging.getLogger("hms_cffi")

#: A decoded ``hms.events.v1.Event``: a dict (CBOR/JSON subscriptions) or an
#: ``events_pb2.Event`` message (protobuf subscriptions).
Event = Any
EventCallback = Callable[[Event], None]

_DEADLINE = int(StatusCode.DEADLINE_EXCEEDED)
_INVALID_HANDLE = int(StatusCode.INVALID_HANDLE)


def decode_event(data: bytes, fmt: int) -> Event:
    if fmt == Format.CBOR:
        return cbor2.loads(data)
    if fmt == Format.JSON:
        return json.loads(data)
    from hms_cffi.proto.hms.events.v1 import events_pb2

    return events_pb2.Event.FromString(data)


class PushState:
    """What a push subscription's ``user_data`` points at."""

    __slots__ = ("callback", "errors", "fmt")

    def __init__(self, callback: EventCallback, fmt: int) -> None:
        self.callback = callback
        self.fmt = fmt
        self.errors = 0


def _event_onerror(exc_type: Any, exc: Any, tb: Any) -> None:
    return None


@ffi.def_extern(onerror=_event_onerror)  # type: ignore[untyped-decorator]
def _hms_py_event(event: Any, event_len: int, user_data: Any) -> None:
    state: PushState = ffi.from_handle(user_data)
    try:
        state.callback(decode_event(ffi.buffer(event, event_len)[:], state.fmt))
    except BaseException:  # nothing may unwind into C
        state.errors += 1
        log.exception("hms_cffi: event callback raised")


class Subscription(Handle):
    """A subscription to a runtime's events (:meth:`Runtime.subscribe`).

    Polled form: :meth:`next` and :meth:`iter`. Push form (created with a
    callback): events arrive on a library thread and ``next`` is refused.
    ``close()`` is idempotent; the object is a context manager.
    """

    __slots__ = ("_on_close", "_push", "format")

    def __init__(
        self,
        handle: int,
        fmt: int,
        push: PushState | None,
        user_data: Any,
        on_close: Callable[[Subscription], None],
    ) -> None:
        super().__init__(handle, lib.hms_unsubscribe, user_data, push)
        self.format = Format(fmt)
        self._push = push
        self._on_close = on_close

    @property
    def callback_errors(self) -> int:
        """How many times the push callback raised (each is logged)."""
        return self._push.errors if self._push is not None else 0

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: until one
        comes; 0: do not wait). Returns None when none came in time. Raises
        CancelledError when the runtime closed the subscription, ClosedError
        after :meth:`close`, FailedPreconditionError on a push subscription.
        """
        fmt = int(self.format)
        bufs = buffers()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            rc = lib.hms_poll(self._handle, next_wait_ms(deadline), bufs.out, bufs.err)
            if rc == 0:
                return decode_event(bufs.read(), fmt)
            if rc == _DEADLINE:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            if rc == _INVALID_HANDLE and self._handle == 0:
                raise ClosedError("the subscription is closed", origin="hms_cffi")
            raise error_from(rc, bufs.err, fmt)

    def iter(self, timeout: float | None = None) -> Iterator[Event]:
        """Yields events until none comes within ``timeout`` seconds (None:
        wait forever) or the subscription closes."""
        while True:
            try:
                event = self.next(timeout)
            except ClosedError:
                return
            except Exception as exc:
                if getattr(exc, "code", None) == StatusCode.CANCELLED:
                    return
                raise
            if event is None:
                return
            yield event

    def __iter__(self) -> Iterator[Event]:
        return self.iter(None)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._on_close(self)


__all__ += ["decode_event"]
