"""Fast paths of ABI 1.1: :class:`Method` (a method resolved once) and
batches of calls in one crossing.

A call through a :class:`Method` passes five arguments to the library where
:meth:`Runtime.call_raw <hms_cffi.Runtime.call_raw>` passes ten; CFFI's
conversion of those arguments is most of what a call costs from Python.

The hottest calls, :attr:`Method.call_raw` and the batches, go through
``hms_cffi._fast`` (hms_cffi/_fast.c) when it is built, as every build of
the package does: one C function per call, the GIL released around the core,
the answer copied into one new ``bytes``. :data:`FAST` says whether it is in
use; without it the same calls go through CFFI, with the same behaviour.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from google.protobuf.message import Message

from hms_cffi._ffi import _tls, buffers, decode_status, error_from, error_from_status, ffi, lib
from hms_cffi._handle import Handle
from hms_cffi.errors import BatchError, ClosedError, HmsError, StatusCode
from hms_cffi.formats import Format, decode_value, encode_value

try:
    from hms_cffi._fast import Binding as _Binding
    from hms_cffi._fast import call_batch as _fast_batch
    from hms_cffi._fast import set_error_factory as _set_error_factory
except ImportError:  # a build without the compiled fast path: CFFI alone
    FAST = False
else:
    FAST = True

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from hms_cffi.runtime import Runtime

__all__ = ["FAST", "Method", "batch_raw"]

M = TypeVar("M", bound=Message)

_PROTOBUF = int(Format.PROTOBUF)
_INVALID_HANDLE = int(StatusCode.INVALID_HANDLE)
_JSON = int(Format.JSON)
#: Frames are little-endian uint64 words (see hms_call_batch in the header).
_SWAP = sys.byteorder != "little"
#: Bound once: a module global is found faster than an attribute of ``lib``.
_method_call = lib.hms_method_call
_WORD = 8


def _free_method(handle: int) -> None:
    lib.hms_method_free(handle)


class Method(Handle, Generic[M]):
    """One method of a runtime, looked up once (``hms_method_resolve``).

    Made by :meth:`Runtime.method <hms_cffi.Runtime.method>`. Requests and
    answers travel in :attr:`format`. A method handle names the method, not
    one registration of its service: if a host service goes away, calls
    answer NotFoundError as :meth:`Runtime.call` would, and reach the service
    again once it is registered anew. Calls take no options (no deadline):
    use :meth:`Runtime.call` for those.

    ``close()`` frees the handle; closing the runtime closes its methods.
    Every method may be called from any thread.
    """

    __slots__ = ("_forget", "_output_type", "_runtime", "call_raw", "format", "name")

    #: ``call_raw(request) -> bytes``: the request in :attr:`format` in (bytes,
    #: or any C-contiguous bytes-like object: bytearray, memoryview, ...), the
    #: answer out, in one crossing; raises the :class:`~hms_cffi.HmsError` of
    #: the status, :class:`~hms_cffi.ClosedError` once the method or its
    #: runtime is closed.
    #:
    #: An attribute, not a method, so that a call runs no Python code: with
    #: the fast path it is the bound ``call`` of an ``hms_cffi._fast.Binding``
    #: made for this handle (a builtin: the GIL is released around the core,
    #: the answer copied out once). ``close()`` swaps in a function that
    #: raises ClosedError; a call that raced with ``close()`` and reached the
    #: freed handle raises ClosedError as well (the error factory checks the
    #: method). Without the fast path it is the CFFI implementation.
    call_raw: Callable[[Buffer], bytes]

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        format: Format,
        handle: int,
        output_type: type[M] | None,
        forget: Callable[[Handle], None],
    ) -> None:
        super().__init__(handle, _free_method)
        self._runtime = runtime
        self._forget = forget
        #: The full method name, "package.Service/Method".
        self.name = name
        #: The format of every request and answer through this method.
        self.format = format
        self._output_type = output_type
        if FAST:
            self.call_raw = _Binding(handle, int(format), self).call
        else:
            self.call_raw = self._call_cffi

    @property
    def output_type(self) -> type[M]:
        """The message class of the answers of a protobuf method (looked up
        on first use unless given to :meth:`Runtime.method`)."""
        if self._output_type is None:
            self._output_type = self._runtime.output_type(self.name)  # type: ignore[assignment]
        return self._output_type  # type: ignore[return-value]

    def close(self) -> None:
        super().close()
        # Drops the Binding (and with it the Binding's reference back to this
        # method) or the bound CFFI call: nothing can reach the freed handle
        # through the method any more.
        self.call_raw = partial(_call_closed, self.name)
        self._forget(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"handle={self._handle:#x}"
        return f"<Method {self.name} {self.format.name} {state}>"

    # -- single calls ----------------------------------------------------------

    def _call_cffi(self, request: Buffer) -> bytes:
        """:attr:`call_raw` through CFFI (a build without ``hms_cffi._fast``)."""
        # Bytes-like objects other than bytes, as the fast path takes them.
        data: Any = request if type(request) is bytes else ffi.from_buffer("uint8_t[]", request)
        try:
            bufs = _tls.bufs
        except AttributeError:
            bufs = buffers()
        rc = _method_call(self._handle, data, len(data), bufs.out, bufs.err)
        if rc:
            self._raise(rc, bufs.err)
        return bufs.read()  # type: ignore[no-any-return]

    def __call__(self, request: M | Mapping[str, Any] | None = None) -> Any:
        """A typed call: a protobuf message in, the output message out (for a
        protobuf method); a dict (or None) in, a dict out otherwise."""
        return self._decode(self.call_raw(self._encode(request)))

    # -- batches -----------------------------------------------------------------

    def batch_raw(self, requests: Sequence[bytes]) -> list[bytes]:
        """Calls this method once per request, all in one crossing
        (``hms_call_batch``); answers in order.

        Every call runs even when some fail; then :class:`BatchError` carries
        every outcome (``results``, ``failures``).
        """
        self._check_open()
        handles = array("Q", [self._handle]) * len(requests)
        return _run_batch(handles, requests, repeat(self.format))

    def batch(self, requests: Iterable[M | Mapping[str, Any] | None]) -> list[Any]:
        """:meth:`batch_raw` with typed requests and answers, as ``__call__``."""
        try:
            answers = self.batch_raw([self._encode(r) for r in requests])
        except BatchError as error:
            error.results = [
                r if isinstance(r, HmsError) else self._decode(r) for r in error.results
            ]
            raise
        return [self._decode(a) for a in answers]

    # -- internals -----------------------------------------------------------------

    def _encode(self, request: M | Mapping[str, Any] | None) -> bytes:
        if isinstance(request, Message):
            if self.format != Format.PROTOBUF:
                raise TypeError(f"{self.name} travels as {self.format.name}: pass a dict")
            return request.SerializeToString()
        if request is None or isinstance(request, Mapping):
            if self.format == Format.PROTOBUF:
                raise TypeError(f"{self.name} travels as PROTOBUF: pass a message")
            return encode_value({} if request is None else request, int(self.format))
        raise TypeError(f"request must be a protobuf message or a dict, not {request!r}")

    def _decode(self, answer: bytes) -> Any:
        if self.format == Format.PROTOBUF:
            return self.output_type.FromString(answer)
        return decode_value(answer, int(self.format))

    def _check_open(self) -> None:
        if self._handle == 0:
            raise ClosedError(f"the method {self.name} is closed", origin="hms_cffi")

    def _check_closed(self, rc: int) -> None:
        """Raises ClosedError when ``rc`` (a failed call's status) is due to
        this method or its runtime being closed."""
        if rc == _INVALID_HANDLE:
            self._check_open()
            self._runtime._check_open()

    def _raise(self, rc: int, err: Any) -> None:
        self._check_closed(rc)
        raise error_from(rc, err, int(self.format))


def _call_closed(name: str, request: object) -> NoReturn:
    """:attr:`Method.call_raw` of a closed method."""
    raise ClosedError(f"the method {name} is closed", origin="hms_cffi")


def _fast_error(rc: int, status: bytes, fmt: int, method: Method[Any] | None) -> HmsError:
    """The error factory of ``hms_cffi._fast``: the exception of a call that
    failed with status ``rc`` (``status``: the hms.v1.Status the library
    wrote, in ``fmt``), the same as the CFFI path raises."""
    if method is not None:
        method._check_closed(rc)
    return error_from_status(rc, status, fmt)


if FAST:
    _set_error_factory(_fast_error)


def batch_raw(calls: Iterable[tuple[Method[Any], bytes]]) -> list[bytes]:
    """Runs calls of several methods in one crossing (``hms_call_batch``);
    each request in its method's format, answers in order. Raises
    :class:`BatchError` as :meth:`Method.batch_raw` does."""
    pairs = list(calls)
    for method, _ in pairs:
        method._check_open()
    handles = array("Q", [m.handle for m, _ in pairs])
    return _run_batch(handles, [r for _, r in pairs], [m.format for m, _ in pairs])


def _run_batch(
    handles: array[int], requests: Sequence[bytes], formats: Iterable[Format]
) -> list[bytes]:
    if FAST:
        fast_answers, codes = _fast_batch(handles, requests)
        if codes is None:
            return fast_answers
        raise _batch_error(fast_answers, codes, formats)
    count = len(requests)
    words = array("Q", [count])
    words += handles
    words += array("Q", accumulate(map(len, requests)))
    if _SWAP:
        words.byteswap()
    frame = words.tobytes() + b"".join(requests)
    try:
        bufs = _tls.bufs
    except AttributeError:
        bufs = buffers()
    rc = lib.hms_call_batch(frame, len(frame), bufs.out, bufs.err)
    if rc:
        raise error_from(rc, bufs.err, _JSON)
    results = bufs.read()
    header = _WORD * (1 + 2 * count)
    words = array("Q")
    words.frombytes(memoryview(results)[:header])
    if _SWAP:
        words.byteswap()
    ends = [header + end for end in words[1 + count :]]
    answers = [results[start:end] for start, end in zip([header, *ends], ends, strict=False)]
    status_codes = words[1 : 1 + count]
    if status_codes.count(0) == count:
        return answers
    raise _batch_error(answers, status_codes, formats)


def _batch_error(
    answers: list[bytes], codes: Sequence[int], formats: Iterable[Format]
) -> BatchError:
    """The BatchError of a batch some of whose calls failed (nonzero codes)."""
    failures = {
        i: _failure(code, answers[i], int(fmt))
        for i, (code, fmt) in enumerate(zip(codes, formats, strict=False))
        if code
    }
    outcomes: list[Any] = [failures.get(i, a) for i, a in enumerate(answers)]
    return BatchError(outcomes, failures)


def _failure(code: int, status: bytes, fmt: int) -> HmsError:
    """The error of a failed call of a batch. Its status is in its method's
    format, or in JSON when the handle was not live (it has no format)."""
    if fmt != _JSON and status[:1] == b"{" and decode_status(status, fmt) is None:
        fmt = _JSON
    return error_from_status(code, status, fmt)
