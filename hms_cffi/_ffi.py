"""The thin native layer: ``ffi``/``lib``, the ABI check, per-thread output
buffers and the status -> exception mapping.

Everything above this module speaks Python; everything below is the C ABI of
include/hms_ffi.h.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from typing import Any

import cbor2

from hms_cffi._native import ffi, lib
from hms_cffi.errors import HmsError, IncompatibleError, StatusCode

__all__ = [
    "ABI_MAJOR",
    "ABI_MINOR",
    "Buffers",
    "buffers",
    "check_abi_version",
    "decode_status",
    "error_from",
    "error_from_status",
    "ffi",
    "lib",
    "next_wait_ms",
    "take",
]

#: The ABI this binding was built against (the header's macros).
ABI_MAJOR: int = lib.HMS_ABI_VERSION_MAJOR
ABI_MINOR: int = lib.HMS_ABI_VERSION_MINOR

#: Longest single wait inside a blocking library call (hms_poll, hms_serve),
#: so Ctrl-C is seen between waits.
_WAIT_SLICE_MS = 200


def next_wait_ms(deadline: float | None) -> int:
    """Milliseconds of the next wait of a blocking call: a slice of at most
    200, cut at ``deadline`` (a time.monotonic() value; None: no deadline)."""
    if deadline is None:
        return _WAIT_SLICE_MS
    left = math.ceil((deadline - time.monotonic()) * 1000)
    return max(0, min(left, _WAIT_SLICE_MS))


#: A response buffer whose capacity grew past this is released after use, so
#: one large answer does not pin memory in every thread for good.
_KEEP_CAPACITY = 1 << 20


def check_abi_version(loaded: int) -> None:
    """Raises IncompatibleError unless ``loaded`` ((major << 16) | minor, as
    hms_abi_version() returns it) has our major and at least our minor."""
    major, minor = loaded >> 16, loaded & 0xFFFF
    if major != ABI_MAJOR or minor < ABI_MINOR:
        raise IncompatibleError(
            f"libhms_ffi ABI {major}.{minor} is incompatible with hms_cffi built for ABI "
            f"{ABI_MAJOR}.{ABI_MINOR} (needs {ABI_MAJOR}.x with x >= {ABI_MINOR}): "
            "a stale library is being loaded; reinstall hms_cffi",
            details={
                "library_abi": f"{major}.{minor}",
                "binding_abi": f"{ABI_MAJOR}.{ABI_MINOR}",
            },
            origin="hms_cffi",
        )


check_abi_version(lib.hms_abi_version())


class Buffers:
    """One reusable pair of ``hms_buf`` (output, error), zeroed once.

    The library writes each answer into the memory it allocated for the
    previous one (growing it when needed), so a call crosses the boundary
    exactly once: no per-call allocation, no second call to free.
    """

    __slots__ = ("_addr", "_view", "_vlen", "err", "out", "pair", "words")

    def __init__(self) -> None:
        self.pair = ffi.new("hms_buf[2]")
        self.out = self.pair + 0
        self.err = self.pair + 1
        # The output hms_buf seen as three machine words (data, len, cap):
        # reading an integer is cheaper than a struct field holding a pointer.
        self.words = ffi.cast("uintptr_t *", self.pair)
        self._addr = 0
        self._view: Any = b""
        self._vlen = 0

    def read(self) -> bytes:
        """Copies the latest output out (one memcpy into a new bytes).

        A buffer object over the library's memory is kept while that memory
        stays where it is, so most calls pay for the slice only.
        """
        words = self.words
        n: int = words[1]
        if n <= self._vlen and words[0] == self._addr:
            return self._view[:n]  # type: ignore[no-any-return]
        return self._read_moved(n)

    def _read_moved(self, n: int) -> bytes:
        """read() after the library grew (moved) the memory, or at first use."""
        if n == 0:
            return b""
        cap: int = self.words[2]
        view = ffi.buffer(self.out.data, cap)
        data: bytes = view[:n]
        if cap > _KEEP_CAPACITY:
            # Not kept: one large answer must not pin memory in every thread.
            self.release()
        else:
            self._addr, self._view, self._vlen = self.words[0], view, cap
        return data

    def release(self) -> None:
        self._addr = 0
        self._view = b""
        self._vlen = 0
        lib.hms_buf_free(self.out)
        lib.hms_buf_free(self.err)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.release()


_tls = threading.local()


def buffers() -> Buffers:
    """This thread's buffer pair (created on first use)."""
    try:
        return _tls.bufs  # type: ignore[no-any-return]
    except AttributeError:
        bufs = _tls.bufs = Buffers()
        return bufs


def stash_buffers() -> Buffers | None:
    """Detaches this thread's pair, so a nested call (a handler calling back
    into the runtime while the outer call still owns the pair) gets its own.
    (hms_cffi._fast keeps a pair per thread of its own and does the same in
    C: a call made while that pair is in use gets a fresh one.)"""
    return _tls.__dict__.pop("bufs", None)  # type: ignore[no-any-return]


def restore_buffers(saved: Buffers | None) -> None:
    if saved is None:
        _tls.__dict__.pop("bufs", None)
    else:
        _tls.bufs = saved


def take(buf: Any) -> bytes:
    """Copies the latest output out of ``buf`` (an ``hms_buf *``)."""
    n = buf.len
    if n == 0:
        return b""
    data: bytes = ffi.buffer(buf.data, n)[:]
    if buf.cap > _KEEP_CAPACITY:
        lib.hms_buf_free(buf)
    return data


def error_from(rc: int, err: Any, fmt: int) -> HmsError:
    """The exception for status ``rc``, with the hms.v1.Status the library
    wrote into ``err`` (an ``hms_buf *`` or None) in format ``fmt``."""
    raw = b""
    if err is not None and err.len and err.data != ffi.NULL:
        raw = ffi.buffer(err.data, err.len)[:]
    return error_from_status(rc, raw, fmt)


def error_from_status(rc: int, raw: bytes, fmt: int) -> HmsError:
    """The exception for status ``rc`` described by ``raw``, an hms.v1.Status
    in format ``fmt`` (empty, garbage or stale: a message made from ``rc``)."""
    message, details, origin = "", {}, ""
    status = decode_status(raw, fmt) if raw else None
    # A status whose code differs from rc is stale (left by an earlier call).
    if status is not None and int(status.get("code", -1)) == rc:
        message = str(status.get("message", ""))
        details = {str(k): str(v) for k, v in (status.get("details") or {}).items()}
        origin = str(status.get("origin", ""))
    if not message:
        try:
            message = StatusCode(rc).name.lower().replace("_", " ")
        except ValueError:
            message = f"status {rc}"
    return HmsError.from_code(rc, message, details, origin)


def decode_status(raw: bytes, fmt: int) -> dict[str, Any] | None:
    try:
        if fmt == lib.HMS_FORMAT_PROTOBUF:
            from hms_cffi.proto.hms.v1 import status_pb2

            msg = status_pb2.Status.FromString(raw)
            return {
                "code": msg.code,
                "message": msg.message,
                "details": dict(msg.details),
                "origin": msg.origin,
            }
        value = cbor2.loads(raw) if fmt == lib.HMS_FORMAT_CBOR else json.loads(raw)
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def raise_for(rc: int, err: Any, fmt: int) -> None:
    """``check(rc, err)``: returns on HMS_OK, raises the matching HmsError otherwise."""
    if rc:
        raise error_from(rc, err, fmt)


check = raise_for
