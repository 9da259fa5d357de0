"""HMS FFI from Python: the Rust core of the HMS agent platform through CFFI.

Layers, bottom to top: ``hms_cffi._native`` (the CFFI extension built from
include/hms_ffi_cdef.h), ``hms_cffi._ffi`` (ABI check at import, per-thread
buffers, status -> exception), the handle base class, and this typed API::

    import hms_cffi
    from hms_cffi.proto.hms.sys.v1 import system_pb2

    with hms_cffi.Runtime() as rt:
        rt.call("hms.sys.v1.System/Echo", {"text": "hi"})            # dict -> dict (CBOR)
        rt.call("hms.sys.v1.System/Echo", system_pb2.EchoRequest())  # message -> message

        agent = rt.agents.create(name="scout")                          # the domain, typed
        rt.lifecycle.transition(agent.id, hms_cffi.State.ACTIVE)

Beside them, ``hms_cffi._fast`` (hms_cffi/_fast.c) compiles the hottest calls
only, ``Method.call_raw`` and batches (see :mod:`hms_cffi.methods`).
"""

from __future__ import annotations

from hms_cffi._ffi import ABI_MAJOR, ABI_MINOR, ffi, lib
from hms_cffi.context import CallContext
from hms_cffi.credentials import Credentials
from hms_cffi.domain import EventKind, Hook, State, TaskStatus, TransitionType
from hms_cffi.errors import (
    AbortedError,
    AlreadyExistsError,
    BatchError,
    CancelledError,
    ClosedError,
    DataLossError,
    DeadlineExceededError,
    DecodeError,
    FailedPreconditionError,
    HandlerError,
    HmsError,
    IncompatibleError,
    InternalError,
    InvalidArgumentError,
    InvalidHandleError,
    NotFoundError,
    OutOfRangeError,
    PanicError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StatusCode,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from hms_cffi.events import Subscription
from hms_cffi.formats import Format
from hms_cffi.methods import Method
from hms_cffi.paths import cdef_path, include_dir, library_path, proto_dir
from hms_cffi.runtime import Runtime
from hms_cffi.schema import convert, register_schema
from hms_cffi.services import Service

__version__ = "1.4.0"


def abi_version() -> tuple[int, int]:
    """(major, minor) of the loaded library's ABI."""
    v = int(lib.hms_abi_version())
    return v >> 16, v & 0xFFFF


def library_version() -> str:
    """Semantic version of the loaded library (hms_version())."""
    return str(ffi.string(lib.hms_version()).decode())


__all__ = [
    "ABI_MAJOR",
    "ABI_MINOR",
    "AbortedError",
    "AlreadyExistsError",
    "BatchError",
    "CallContext",
    "CancelledError",
    "ClosedError",
    "Credentials",
    "DataLossError",
    "DeadlineExceededError",
    "DecodeError",
    "EventKind",
    "FailedPreconditionError",
    "Format",
    "HandlerError",
    "HmsError",
    "Hook",
    "IncompatibleError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "Method",
    "NotFoundError",
    "OutOfRangeError",
    "PanicError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "Runtime",
    "Service",
    "State",
    "StatusCode",
    "Subscription",
    "TaskStatus",
    "TransitionType",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "abi_version",
    "cdef_path",
    "convert",
    "ffi",
    "include_dir",
    "lib",
    "library_path",
    "library_version",
    "proto_dir",
    "register_schema",
]
