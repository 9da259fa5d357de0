"""What a Python handler sees of the call it serves: :class:`CallContext`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import cbor2

from hms_cffi._ffi import ffi, lib, raise_for

__all__ = ["CallContext"]

_CBOR = int(lib.HMS_FORMAT_CBOR)


@dataclasses.dataclass(frozen=True)
class CallContext:
    """The call a handler serves, from the caller's ``hms.v1.CallOptions``.

    A handler receives it when it takes a second parameter::

        def greet(request: dict, ctx: hms_cffi.CallContext) -> dict:
            if ctx.remaining() == 0:
                ...

    ``method`` is the full name ("package.Service/Method"); ``metadata`` and
    ``trace_id`` are what the caller passed; ``deadline`` is the
    :func:`time.monotonic` instant of the caller's deadline, or None;
    ``principal`` is the verified caller when the runtime authenticates calls
    (``RuntimeConfig.security``, docs/security.md), else empty, with the
    ``roles`` and ``principal_attributes`` (a JWT's other string claims) of
    its verified credential.
    """

    method: str
    metadata: Mapping[str, str]
    trace_id: str
    deadline: float | None
    principal: str = ""
    roles: tuple[str, ...] = ()
    principal_attributes: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0.0 once passed), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    @classmethod
    def _from_cbor(cls, raw: bytes, read_at: float) -> CallContext:
        fields: dict[str, Any] = cbor2.loads(raw) if raw else {}
        remaining_ms = fields.get("remaining_ms")
        return cls(
            method=str(fields.get("method", "")),
            metadata=_string_map(fields.get("metadata")),
            trace_id=str(fields.get("trace_id", "")),
            deadline=None if remaining_ms is None else read_at + int(remaining_ms) / 1000.0,
            principal=str(fields.get("principal", "")),
            roles=tuple(str(role) for role in fields.get("roles") or ()),
            principal_attributes=_string_map(fields.get("principal_attributes")),
        )


def _string_map(value: Any) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (value or {}).items()})


def read_context(reply: Any) -> CallContext:
    """The context of the running handler's ``reply`` (one crossing)."""
    out = ffi.new("hms_buf[2]")
    try:
        read_at = time.monotonic()
        rc = lib.hms_reply_context(reply, _CBOR, out + 0, out + 1)
        raise_for(rc, out + 1, _CBOR)
        raw = ffi.buffer(out[0].data, out[0].len)[:] if out[0].len else b""
        return CallContext._from_cbor(raw, read_at)
    finally:
        lib.hms_buf_free(out + 0)
        lib.hms_buf_free(out + 1)
