"""Services implemented in Python: the handler trampoline and :class:`Service`."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
from google.protobuf import json_format
from google.protobuf.message import Message

from hms_cffi._ffi import ffi, lib, restore_buffers, stash_buffers
from hms_cffi._handle import Handle
from hms_cffi.context import CallContext, read_context
from hms_cffi.errors import HmsError, StatusCode, UnimplementedError
from hms_cffi.formats import Format

__all__ = ["ContextHandler", "Handler", "Service"]

log = logging.getLogger("hms_cffi")

#: A handler takes the decoded request and returns the response: dicts (or any
#: CBOR value) for CBOR services, message instances for protobuf services.
Handler = Callable[[Any], Any]
#: A handler that also reads its call: ``handler(request, ctx)``.
ContextHandler = Callable[[Any, CallContext], Any]

_HANDLER_ERROR = int(StatusCode.HANDLER_ERROR)
_UNKNOWN = int(StatusCode.UNKNOWN)
_PROTOBUF = int(Format.PROTOBUF)
_CBOR = int(Format.CBOR)

_tls = threading.local()


def in_handler_of(runtime: int) -> bool:
    """True when this thread runs a handler of ``runtime`` right now."""
    stack: list[int] | None = getattr(_tls, "runtimes", None)
    return bool(stack) and runtime in stack  # type: ignore[operator]


class ServiceState:
    """What a registered service's ``user_data`` points at."""

    __slots__ = (
        "fmt",
        "handlers",
        "inputs",
        "name",
        "outputs",
        "runtime",
        "typed",
        "with_context",
    )

    def __init__(
        self,
        name: str,
        runtime: int,
        handlers: Mapping[str, Handler | ContextHandler],
        fmt: int,
        inputs: Mapping[str, type[Message]],
        outputs: Mapping[str, type[Message]],
        typed: frozenset[str],
    ) -> None:
        self.name = name
        self.runtime = runtime
        self.handlers = dict(handlers)
        self.fmt = fmt
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.typed = typed  # methods with an output type (None answers {})
        # Decided once here, so a call whose handler ignores its context
        # never pays the crossing that reads it.
        self.with_context = frozenset(m for m, h in self.handlers.items() if takes_context(h))

    def dispatch(self, method: str, data: bytes, reply: Any) -> bytes:
        handler = self.handlers.get(method)
        if handler is None:
            raise UnimplementedError(f"{self.name} has no handler for {method!r}")
        run: Callable[..., Any] = handler
        if method in self.with_context:
            context = read_context(reply)

            def run(request: Any) -> Any:
                return handler(request, context)  # type: ignore[call-arg]

        if self.fmt == _PROTOBUF:
            request: Any = self.inputs[method].FromString(data)
            result = run(request)
            out_cls = self.outputs[method]
            if result is None:
                return b""
            if isinstance(result, Mapping):
                result = json_format.ParseDict(dict(result), out_cls())
            if not isinstance(result, out_cls):
                raise TypeError(
                    f"{self.name}/{method} must return {out_cls.DESCRIPTOR.full_name}, "
                    f"not {type(result).__name__}"
                )
            return result.SerializeToString()
        request = cbor2.loads(data) if data else ({} if method in self.typed else None)
        result = run(request)
        if result is None and method in self.typed:
            result = {}
        return cbor2.dumps(result)


def takes_context(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` requires a second positional argument, the
    :class:`CallContext`. Parameters with defaults (``lambda r, i=i: ...``)
    and ``*args`` keep the one-argument call handlers had before 1.2, as do
    handlers whose signature cannot be read."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [
        p for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty
    ]
    return len(required) >= 2


def _reply_error(reply: Any, code: int, text: str) -> None:
    raw = text.encode("utf-8", "replace")
    lib.hms_reply_error(reply, code, raw, len(raw))


def _reply_status(reply: Any, exc: HmsError) -> None:
    """Answers with the whole Status of ``exc``, so its details and origin
    reach the caller (an empty origin becomes the method's name)."""
    code = int(exc.code) or _UNKNOWN
    message = exc.message or str(exc)
    details = {str(k): str(v) for k, v in exc.details.items()}
    raw = cbor2.dumps({"code": code, "message": message, "details": details, "origin": exc.origin})
    if lib.hms_reply_status(reply, _CBOR, raw, len(raw)) != lib.HMS_OK:
        _reply_error(reply, code, message)


def _handler_onerror(exc_type: Any, exc: Any, tb: Any) -> None:
    # Only reached if the trampoline's own safety net failed (e.g. during
    # interpreter shutdown); the core then reports HMS_HANDLER_ERROR because
    # the reply was never answered.
    return None


@ffi.def_extern(onerror=_handler_onerror)  # type: ignore[untyped-decorator]
def _hms_py_handler(
    reply: Any,
    method: Any,
    method_len: int,
    fmt: int,
    request: Any,
    request_len: int,
    user_data: Any,
) -> None:
    state: ServiceState = ffi.from_handle(user_data)
    # The outer call on this thread (if any) still owns this thread's buffers:
    # a nested call made by the handler gets a pair of its own.
    saved = stash_buffers()
    stack: list[int] = _tls.__dict__.setdefault("runtimes", [])
    stack.append(state.runtime)
    try:
        name = ffi.unpack(method, method_len).decode("utf-8", "replace")
        data = ffi.buffer(request, request_len)[:] if request_len else b""
        try:
            answer = state.dispatch(name, data, reply)
        except HmsError as exc:
            _reply_status(reply, exc)
        except BaseException as exc:  # nothing may unwind into C
            _reply_error(reply, _HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
        else:
            lib.hms_reply_set(reply, answer, len(answer))
    except BaseException:
        log.exception("hms_cffi: service handler trampoline failed")
    finally:
        stack.pop()
        restore_buffers(saved)


class Service(Handle):
    """A service implemented in Python, registered with
    :meth:`Runtime.register_service`.

    ``close()`` unregisters it (waiting for calls in flight); it is
    idempotent, and the object is a context manager. The runtime keeps the
    service alive until either is closed.
    """

    __slots__ = ("_on_close", "_state", "name", "version")

    def __init__(
        self,
        handle: int,
        state: ServiceState,
        user_data: Any,
        version: str,
        on_close: Callable[[Service], None],
    ) -> None:
        super().__init__(handle, lib.hms_service_unregister, user_data, state)
        self._state = state
        self.name = state.name
        self.version = version
        self._on_close = on_close

    @property
    def format(self) -> Format:
        """The format handlers receive and return (PROTOBUF or CBOR)."""
        return Format(self._state.fmt)

    @property
    def methods(self) -> list[str]:
        return sorted(self._state.handlers)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._on_close(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"handle={self._handle:#x}"
        return f"<Service {self.name} {state}>"
