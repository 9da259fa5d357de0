"""Status codes and the exceptions that mirror them.

Every status code of include/hms_ffi.h other than HMS_OK has one subclass of
:class:`HmsError`; :meth:`HmsError.from_code` picks it. The numbers are read
from the compiled declarations (``lib.HMS_*``), never restated here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

from hms_cffi._native import lib

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "BatchError",
    "CancelledError",
    "ClosedError",
    "DataLossError",
    "DeadlineExceededError",
    "DecodeError",
    "FailedPreconditionError",
    "HandlerError",
    "HmsError",
    "IncompatibleError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "NotFoundError",
    "OutOfRangeError",
    "PanicError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "StatusCode",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
]


class StatusCode(enum.IntEnum):
    """The HMS_* status codes: 0..16 are gRPC's canonical codes, 100+ the bridge's."""

    OK = lib.HMS_OK
    CANCELLED = lib.HMS_CANCELLED
    UNKNOWN = lib.HMS_UNKNOWN
    INVALID_ARGUMENT = lib.HMS_INVALID_ARGUMENT
    DEADLINE_EXCEEDED = lib.HMS_DEADLINE_EXCEEDED
    NOT_FOUND = lib.HMS_NOT_FOUND
    ALREADY_EXISTS = lib.HMS_ALREADY_EXISTS
    PERMISSION_DENIED = lib.HMS_PERMISSION_DENIED
    RESOURCE_EXHAUSTED = lib.HMS_RESOURCE_EXHAUSTED
    FAILED_PRECONDITION = lib.HMS_FAILED_PRECONDITION
    ABORTED = lib.HMS_ABORTED
    OUT_OF_RANGE = lib.HMS_OUT_OF_RANGE
    UNIMPLEMENTED = lib.HMS_UNIMPLEMENTED
    INTERNAL = lib.HMS_INTERNAL
    UNAVAILABLE = lib.HMS_UNAVAILABLE
    DATA_LOSS = lib.HMS_DATA_LOSS
    UNAUTHENTICATED = lib.HMS_UNAUTHENTICATED
    INVALID_HANDLE = lib.HMS_INVALID_HANDLE
    DECODE_ERROR = lib.HMS_DECODE_ERROR
    HANDLER_ERROR = lib.HMS_HANDLER_ERROR
    INCOMPATIBLE = lib.HMS_INCOMPATIBLE
    PANIC = lib.HMS_PANIC


class HmsError(Exception):
    """An HMS call failed.

    Attributes mirror ``hms.v1.Status``: ``code`` (a :class:`StatusCode`, or
    the raw int for a code this binding does not know), ``message``,
    ``details`` (machine-readable facts, str -> str) and ``origin`` (the
    component or method that raised it). Catch a subclass to branch on one
    code, or ``HmsError`` for all of them.
    """

    #: The status code of the subclass; UNKNOWN on the base class.
    CODE: ClassVar[StatusCode] = StatusCode.UNKNOWN

    code: StatusCode | int
    message: str
    details: dict[str, str]
    origin: str

    def __init__(
        self,
        message: str = "",
        *,
        code: StatusCode | int | None = None,
        details: Mapping[str, str] | None = None,
        origin: str = "",
    ) -> None:
        super().__init__(message)
        self.code = self.CODE if code is None else _as_code(code)
        self.message = message
        self.details = dict(details or {})
        self.origin = origin

    def __str__(self) -> str:
        name = self.code.name if isinstance(self.code, StatusCode) else str(self.code)
        text = f"[{name}] {self.message}" if self.message else f"[{name}]"
        return f"{text} (origin: {self.origin})" if self.origin else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"details={self.details!r}, origin={self.origin!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (int(self.code), self.message, self.details, self.origin),
        )

    @staticmethod
    def from_code(
        code: StatusCode | int,
        message: str = "",
        details: Mapping[str, str] | None = None,
        origin: str = "",
    ) -> HmsError:
        """The exception of the subclass that matches ``code`` (HmsError for
        an unknown code number; UnknownError for OK, which is no error)."""
        cls = _BY_CODE.get(int(code), HmsError)
        if int(code) == StatusCode.OK:
            cls = UnknownError
        return cls(
            message, code=cls.CODE if cls is not HmsError else code, details=details, origin=origin
        )


def _as_code(code: StatusCode | int) -> StatusCode | int:
    try:
        return StatusCode(code)
    except ValueError:
        return int(code)


def _rebuild(code: int, message: str, details: dict[str, str], origin: str) -> HmsError:
    return HmsError.from_code(code, message, details, origin)


class CancelledError(HmsError):
    """The operation or subscription was closed."""

    CODE = StatusCode.CANCELLED


class UnknownError(HmsError):
    """An error without a better code."""

    CODE = StatusCode.UNKNOWN


class InvalidArgumentError(HmsError):
    """A malformed argument: NULL pointer with a length, bad UTF-8, unknown format."""

    CODE = StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(HmsError):
    """The call's deadline passed (or a poll timed out)."""

    CODE = StatusCode.DEADLINE_EXCEEDED


class NotFoundError(HmsError):
    """No such method, service, message type or record."""

    CODE = StatusCode.NOT_FOUND


class AlreadyExistsError(HmsError):
    """A service of that name is registered already."""

    CODE = StatusCode.ALREADY_EXISTS


class PermissionDeniedError(HmsError):
    """Refused by policy."""

    CODE = StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(HmsError):
    """A size limit: payload, queue or nesting."""

    CODE = StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(HmsError):
    """The request is valid but the state forbids it."""

    CODE = StatusCode.FAILED_PRECONDITION


class AbortedError(HmsError):
    """A concurrency conflict."""

    CODE = StatusCode.ABORTED


class OutOfRangeError(HmsError):
    """A value past its valid range."""

    CODE = StatusCode.OUT_OF_RANGE


class UnimplementedError(HmsError):
    """The method exists but is not implemented."""

    CODE = StatusCode.UNIMPLEMENTED


class InternalError(HmsError):
    """An invariant of the core broke."""

    CODE = StatusCode.INTERNAL


class UnavailableError(HmsError):
    """The handler cannot run now (wrong thread, being unregistered)."""

    CODE = StatusCode.UNAVAILABLE


class DataLossError(HmsError):
    """Stored data is unreadable."""

    CODE = StatusCode.DATA_LOSS


class UnauthenticatedError(HmsError):
    """Missing or invalid credentials."""

    CODE = StatusCode.UNAUTHENTICATED


class InvalidHandleError(HmsError):
    """Unknown, stale, freed or wrong-kind handle."""

    CODE = StatusCode.INVALID_HANDLE


class ClosedError(InvalidHandleError):
    """The Python object (Runtime, Service, Subscription) was closed.

    A subclass of :class:`InvalidHandleError` (code INVALID_HANDLE): using a
    closed object is using a freed handle, said more clearly.
    """


class DecodeError(HmsError):
    """A payload does not parse in the declared format/type."""

    CODE = StatusCode.DECODE_ERROR


class HandlerError(HmsError):
    """A host-language handler raised or returned garbage."""

    CODE = StatusCode.HANDLER_ERROR


class IncompatibleError(HmsError):
    """ABI or schema version mismatch (e.g. a stale libhms_ffi)."""

    CODE = StatusCode.INCOMPATIBLE


class PanicError(HmsError):
    """A bug inside the core, caught at the boundary."""

    CODE = StatusCode.PANIC


_BY_CODE: dict[int, type[HmsError]] = {
    int(cls.CODE): cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
        InvalidHandleError,
        DecodeError,
        HandlerError,
        IncompatibleError,
        PanicError,
    )
}


class BatchError(HmsError):
    """Some calls of a batch failed; every call ran and every outcome is here.

    ``results`` holds, per call and in order, its answer (bytes or a message,
    as the batch method returns them) or its :class:`HmsError`; ``failures``
    maps the index of each failed call to its error. ``code``, ``message``
    and ``origin`` are those of the first failure.
    """

    def __init__(self, results: list[Any], failures: dict[int, HmsError]) -> None:
        first_index = min(failures)
        first = failures[first_index]
        super().__init__(
            f"{len(failures)} of {len(results)} calls failed; the first, call "
            f"{first_index}: {first.message}",
            code=first.code,
            details={"failed": str(len(failures)), "first_index": str(first_index)},
            origin=first.origin,
        )
        self.results = results
        self.failures = failures

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchError, (self.results, self.failures))
