"""Base class of every object that owns a library handle."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["Handle"]


def _release(free: Callable[[int], Any], handle: int, keepalive: tuple[Any, ...]) -> None:
    # keepalive (e.g. the ffi.new_handle of a callback's user_data) is held by
    # the finalizer until the library has let go of the handle.
    del keepalive
    with contextlib.suppress(Exception):  # a backstop must never raise
        free(handle)


class Handle:
    """Owns one library handle (a runtime, service or subscription).

    ``close()`` frees it; it is idempotent and thread-safe (the free function
    runs at most once). The object is a context manager, and a finalizer frees
    the handle if the object is garbage-collected (or the interpreter exits)
    without ``close()``: a backstop, not a substitute for closing.
    """

    __slots__ = ("__weakref__", "_finalizer", "_handle")

    _handle: int

    def __init__(self, handle: int, free: Callable[[int], Any], *keepalive: Any) -> None:
        self._handle = handle
        self._finalizer = weakref.finalize(self, _release, free, handle, keepalive)

    @property
    def handle(self) -> int:
        """The raw 64-bit handle (0 once closed), for direct use with ``lib``."""
        return self._handle

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Frees the handle. A second call does nothing."""
        self._handle = 0
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"handle={self._handle:#x}"
        return f"<{type(self).__name__} {state}>"
