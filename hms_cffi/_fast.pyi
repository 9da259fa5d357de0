"""Type stub of the compiled fast path built from hms_cffi/_fast.c."""

from array import array
from collections.abc import Callable, Sequence
from typing import Any, final

from typing_extensions import Buffer

@final
class Binding:
    """One method handle bound to its format and owner."""

    def __new__(cls, handle: int, fmt: int, owner: object) -> Binding: ...
    @property
    def handle(self) -> int: ...
    def call(self, request: Buffer, /) -> bytes:
        """hms_method_call through the handle, GIL released."""

def call_batch(
    handles: array[int], requests: Sequence[Buffer], /
) -> tuple[list[bytes], list[int] | None]:
    """hms_call_batch: the answers in order, and every call's code (None
    when all answered HMS_OK)."""

def set_error_factory(factory: Callable[[int, bytes, int, Any], BaseException], /) -> None:
    """factory(rc, status, fmt, owner) returns (or raises) a failed call's exception."""

def thread_buffers() -> tuple[int, int, bool]:
    """(output capacity, error capacity, in use) of this thread's pair of
    hms_buf, zeros before its first call; for tests."""
